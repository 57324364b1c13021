//! The baseline policies and what the zero action means.
#![allow(clippy::needless_range_loop)]

mod env_util;
use env_util::*;
use powergrid::env::{EnvOptions, Policy, PolicyRunner, Split, VecEnv};

/// The zero action holds: agent taps and capacitor steps unchanged,
/// generators at their minimum, storage idle, renewables uncurtailed with no
/// reactive power, the price factor at 1.
#[test]
fn zero_action_holds_every_device() {
    let cfg = edited_setup("ieee34_ieee13_dso", "hold_all", |s| {
        s.replace(
            "  bus_prefix: \"DSO \"\nloads:",
            "  bus_prefix: \"DSO \"\n  agent: { min_factor: 0.5, max_factor: 2.0 }\nloads:",
        )
    });
    let mut env = env(cfg.to_str().unwrap(), 3);
    env.reset(5).unwrap();
    // Move things first, so that holding is visible.
    let mut a = const_actions(&env, 0.7);
    step(&mut env, &a).unwrap();
    let taps = env.devices().taps.pos.clone();
    let steps = env.devices().capacitors.step.clone();
    for x in a.iter_mut() {
        x.fill(0.0);
    }
    for _ in 0..3 {
        let soc = env.devices().storages.soc.clone();
        step(&mut env, &a).unwrap();
        let d = env.devices();
        assert_eq!(d.taps.pos, taps);
        assert_eq!(d.capacitors.step, steps);
        assert_eq!(d.storages.p_mw.iter().map(|x| x.abs()).sum::<f64>(), 0.0);
        assert_eq!(d.storages.soc, soc);
        for c in 0..3 {
            for k in 0..3 {
                assert_eq!(d.generators.p_mw[[c, k]], d.generators.params[k].p_min_mw);
                assert_eq!(d.generators.q_mvar[[c, k]], 0.0);
                assert_eq!(d.renewables.p_mw[[c, k]], d.renewables.available_mw[[c, k]]);
                assert_eq!(d.renewables.q_mvar[[c, k]], 0.0);
            }
            assert_eq!(env.operator().factor[c], 1.0);
        }
    }
}

/// Policies fill the action arrays deterministically per seed.
#[test]
fn policies_are_deterministic_per_seed() {
    let mut env = env("ieee34_ieee13", 4);
    env.reset(0).unwrap();
    for p in [Policy::Random, Policy::Heuristic, Policy::Zero] {
        let fill = |seed| {
            let mut r = PolicyRunner::new(p, 4, seed);
            let mut a = PolicyRunner::zero_actions(&env);
            r.fill(&env, &mut a).unwrap();
            a
        };
        assert_eq!(fill(1), fill(1), "{p}");
        for a in fill(1) {
            assert!(a.iter().all(|x| (-1.0..=1.0).contains(x)), "{p}");
        }
        if p == Policy::Random {
            assert_ne!(fill(1), fill(2));
        }
        assert_eq!(p.to_string().parse::<Policy>().unwrap(), p);
    }
    assert!("greedy".parse::<Policy>().is_err());
}

fn mean_reward_and_violations(policy: Policy) -> (f64, f64, f64) {
    let b = 32;
    let mut env = VecEnv::from_name(
        "ieee34_ieee13",
        &EnvOptions {
            batch: b,
            split: Split::Test,
            ..Default::default()
        },
    )
    .unwrap();
    env.reset(0).unwrap();
    let mut pol = PolicyRunner::new(policy, b, 0);
    let mut a = PolicyRunner::zero_actions(&env);
    let (mut r, mut viol, mut conv, mut n) = (0.0, 0.0, 0.0, 0.0);
    for _ in 0..96 {
        pol.fill(&env, &mut a).unwrap();
        let v: Vec<_> = a.iter().map(|x| x.view()).collect();
        env.step(&v).unwrap();
        for c in 0..b {
            if env.info().reset[c] {
                continue;
            }
            n += 1.0;
            r += env.rewards()[[c, 0]] as f64;
            viol += env.info().voltage_violation[c] as u8 as f64;
            conv += env.info().converged[c] as u8 as f64;
        }
    }
    (r / n, viol / n, conv / n)
}

/// On the test split with automatic DSO regulators: the zero policy keeps the
/// whole network inside the band on most steps, every power flow converges,
/// and the heuristic beats holding, which beats acting at random.
#[test]
fn heuristic_beats_zero_beats_random_on_the_test_split() {
    let (zero, zero_viol, zero_conv) = mean_reward_and_violations(Policy::Zero);
    let (random, _, random_conv) = mean_reward_and_violations(Policy::Random);
    let (heuristic, _, heur_conv) = mean_reward_and_violations(Policy::Heuristic);
    eprintln!("mean reward: heuristic {heuristic:.3}, zero {zero:.3}, random {random:.3}; zero policy violates on {:.1} %", 100.0 * zero_viol);
    assert!(zero_viol <= 0.25, "zero policy violation share {zero_viol}");
    assert!(heuristic > zero && zero > random);
    for c in [zero_conv, random_conv, heur_conv] {
        assert!(c >= 0.999, "convergence {c}");
    }
}
