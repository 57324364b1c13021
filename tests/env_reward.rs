//! Cost, safety and reward against hand-computed values, share_reward, and the
//! convergence-failure reward.
#![allow(clippy::needless_range_loop)]

mod env_util;
use approx::assert_abs_diff_eq;
use env_util::*;
use ndarray::Array2;
use powergrid::env::reward::{loading_violation, reward, trading_cost, voltage_violation};

#[test]
fn reward_terms_by_hand() {
    assert_abs_diff_eq!(voltage_violation(1.07, 0.95, 1.05), 0.02, epsilon = 1e-12);
    assert_abs_diff_eq!(voltage_violation(0.90, 0.95, 1.05), 0.05, epsilon = 1e-12);
    assert_eq!(voltage_violation(1.0, 0.95, 1.05), 0.0);
    assert_abs_diff_eq!(loading_violation(130.0), 0.3, epsilon = 1e-12);
    assert_eq!(loading_violation(99.0), 0.0);
    assert_abs_diff_eq!(trading_cost(0.2, 50.0, 0.8, 1.0), 10.0);
    assert_abs_diff_eq!(trading_cost(-0.2, 50.0, 0.8, 0.5), -4.0);
    assert_abs_diff_eq!(reward(3.0, 0.5, 10.0), -8.0);
    // The term table: positions, names and kinds agree.
    use powergrid::env::reward::{Term, ALL_TERMS, TERMS};
    for (i, t) in ALL_TERMS.iter().enumerate() {
        assert_eq!(*t as usize, i);
        assert_eq!(t.name(), TERMS[i]);
        assert_eq!(t.is_cost(), TERMS[i].starts_with("cost_"));
    }
    assert_eq!(Term::OperatorVoltage.name(), "safety_operator_voltage");
}

/// The price column of the training CSV.
fn train_price(row: usize) -> f64 {
    let text = std::fs::read_to_string(root().join("setups/ieee34_ieee13/train.csv")).unwrap();
    let line = text.lines().nth(row + 1).unwrap();
    line.split(',').nth(1).unwrap().parse().unwrap()
}

#[test]
fn cost_safety_reward_of_a_microgrid_by_hand() {
    let cfg = edited_setup("ieee34_ieee13", "reward_hand", |s| {
        s.replace("share_reward: true", "share_reward: false")
    });
    let mut env = env(cfg.to_str().unwrap(), 2);
    env.reset(3).unwrap();
    // MG1: diesel at full P with Q target 0, ESS charging at full power, solar uncurtailed.
    let mut a: Vec<Array2<f32>> = const_actions(&env, 0.0);
    for c in 0..2 {
        a[0][[c, 0]] = 1.0; // P = p_max
        a[0][[c, 1]] = 0.0; // Q target = middle of [-0.33, 0.33] = 0
        a[0][[c, 2]] = 1.0; // ESS P = +0.1 MW
        a[0][[c, 3]] = 1.0; // solar: no curtailment
        a[0][[c, 4]] = 0.0; // solar Q = 0
    }
    step(&mut env, &a).unwrap();
    let info = env.info();
    let net = env.network();
    for c in 0..2 {
        assert!(info.converged[c]);
        let row = info.hour[c];
        let price = train_price(row);
        assert_abs_diff_eq!(info.price[c], price, epsilon = 1e-9);
        let gen = 100.0 * 0.66 * 0.66 + 72.4 * 0.66 + 0.5011;
        let degradation = 1.0 * 0.1;
        let import = info.pcc_import_mw[[c, 0]];
        let cost = gen + degradation + import.max(0.0) * price - (-import).max(0.0) * price;
        assert_abs_diff_eq!(info.cost[[c, 0]], cost, epsilon = 1e-9);
        // Import ≈ load + charging − generation (losses are small).
        let inp = env.scenario(c).inputs;
        let mut load = 0.0;
        for (l, ld) in net.loads.iter().enumerate() {
            if ld.name.starts_with("MG1 ") {
                load += inp.load_p_mw.as_ref().unwrap()[l] * inp.load_scaling.as_ref().unwrap()[l];
            }
        }
        let solar = env.devices().renewables.p_mw[[c, 0]];
        let balance = load + 0.1 - 0.66 - solar;
        assert!(
            (import - balance).abs() < 0.02,
            "import {import} vs balance {balance}"
        );
        // Safety: voltage band over MG1's buses + loading + device limits (0 here).
        let vm = env.power_flow().vm_pu.row(c);
        let mut safety = 0.0;
        for (b, bus) in net.buses.iter().enumerate() {
            if bus.name.starts_with("MG1 ") {
                safety += (vm[b] - 1.05).max(0.0) + (0.95 - vm[b]).max(0.0);
            }
        }
        let res = env.power_flow();
        for (l, line) in net.lines.iter().enumerate() {
            if net.buses[line.from_bus].name.starts_with("MG1 ")
                && net.buses[line.to_bus].name.starts_with("MG1 ")
            {
                safety += 0.01 * (res.line_loading_percent[[c, l]] - 100.0).max(0.0);
            }
        }
        for (t, tr) in net.trafos.iter().enumerate() {
            if net.buses[tr.hv_bus].name.starts_with("MG1 ")
                && net.buses[tr.lv_bus].name.starts_with("MG1 ")
            {
                safety += 0.01 * (res.trafo_loading_percent[[c, t]] - 100.0).max(0.0);
            }
        }
        assert_abs_diff_eq!(info.safety[[c, 0]], safety, epsilon = 1e-9);
        let r = -(cost + 10.0 * safety);
        assert_abs_diff_eq!(
            env.rewards()[[c, 0]] as f64,
            r,
            epsilon = 1e-3 * r.abs().max(1.0)
        );
    }
}

#[test]
fn share_reward_gives_every_agent_the_mean() {
    let mut env = env("ieee34_ieee13", 3);
    env.reset(1).unwrap();
    {
        let a = const_actions(&env, 0.3);
        step(&mut env, &a)
    }
    .unwrap();
    let i = env.info();
    for c in 0..3 {
        let own: Vec<f64> = (0..3)
            .map(|k| -(i.cost[[c, k]] + 10.0 * i.safety[[c, k]]))
            .collect();
        let mean = own.iter().sum::<f64>() / 3.0;
        for k in 0..3 {
            assert_abs_diff_eq!(
                env.rewards()[[c, k]] as f64,
                mean,
                epsilon = 1e-3 * mean.abs()
            );
        }
    }
}

#[test]
fn convergence_failure_gets_the_setup_reward_and_safety() {
    // DSO loads 60 times their nominal: the feeder collapses.
    let cfg = edited_setup("ieee34_ieee13", "diverge", |s| {
        s.replace(
            r#"{ prefix: "DSO ", profile: "load:BANC", scale: 1.0 }"#,
            r#"{ prefix: "DSO ", profile: "load:BANC", scale: 60.0 }"#,
        )
    });
    let mut env = env(cfg.to_str().unwrap(), 2);
    env.reset(0).unwrap();
    {
        let a = const_actions(&env, 0.0);
        step(&mut env, &a)
    }
    .unwrap();
    let i = env.info();
    for c in 0..2 {
        assert!(!i.converged[c], "the overloaded copy should not converge");
        assert!(i.voltage_violation[c]);
        for k in 0..3 {
            assert_eq!(env.rewards()[[c, k]], -200.0);
            assert_eq!(i.safety[[c, k]], 20.0);
        }
        // Observations stay finite, and (failed at reset) show no-load values.
        for o in env.observations() {
            assert!(o.row(c).iter().all(|x| x.is_finite()));
        }
        assert_eq!(i.pcc_import_mw.row(c).sum(), 0.0);
        assert_eq!(i.network_voltage_safety[c], 0.0);
    }
}

/// A copy that converged and then fails (DSO loads at 4× nominal: some hours
/// solve, peak hours do not) keeps its last converged voltages and imports in
/// its observations, while the solver's raw output holds the diverged iterate;
/// info flags the copy and reports no power-flow values for it.
#[test]
fn failed_copies_hold_their_last_converged_observations() {
    use powergrid::env::ObsSource;
    let cfg = edited_setup("ieee34_ieee13", "hold", |s| {
        s.replace(
            r#"{ prefix: "DSO ", profile: "load:BANC", scale: 1.0 }"#,
            r#"{ prefix: "DSO ", profile: "load:BANC", scale: 4.0 }"#,
        )
    });
    let mut env = env(cfg.to_str().unwrap(), 4);
    env.reset(0).unwrap();
    let a = const_actions(&env, 0.0);
    let held_cols: Vec<Vec<usize>> = (0..3)
        .map(|i| {
            let l = env.layout(i);
            (0..l.dim())
                .filter(|&j| matches!(l.sources[j], ObsSource::BusVm(_) | ObsSource::PccImport(_)))
                .collect()
        })
        .collect();
    let (mut transitions, mut worst_raw, mut failures) = (0, 0.0f64, 0);
    for _ in 0..40 {
        let prev_obs: Vec<_> = env.observations().to_vec();
        let prev_conv = env.info().converged.clone();
        step(&mut env, &a).unwrap();
        let i = env.info();
        for c in 0..4 {
            for o in env.observations() {
                assert!(
                    o.row(c).iter().all(|x| x.is_finite() && x.abs() < 10.0),
                    "bounded observations"
                );
            }
            if i.converged[c] || i.reset[c] {
                continue;
            }
            failures += 1;
            worst_raw = env
                .power_flow()
                .vm_pu
                .row(c)
                .iter()
                .fold(worst_raw, |m, v| m.max((v - 1.0).abs()));
            assert!(i.voltage_violation[c]);
            assert_eq!(i.pcc_import_mw.row(c).sum(), 0.0);
            assert_eq!(i.network_voltage_safety[c], 0.0);
            assert_eq!(i.operator_safety[c], 0.0);
            assert_eq!(env.rewards()[[c, 0]], -200.0);
            // Held columns equal the previous step's (converged or held) values.
            for (k, cols) in held_cols.iter().enumerate() {
                for &j in cols {
                    assert_eq!(
                        env.observations()[k][[c, j]],
                        prev_obs[k][[c, j]],
                        "agent {k} column {j} is held"
                    );
                }
            }
            if prev_conv[c] {
                transitions += 1;
            }
        }
    }
    assert!(
        transitions > 0,
        "a converged copy failed later (found {failures} failures)"
    );
    assert!(
        worst_raw > 10.0,
        "the raw iterate diverged (|vm − 1| up to {worst_raw:.1e}), the observations did not"
    );
}

#[test]
fn system_operator_agent_scales_the_price_within_bounds() {
    let cfg = edited_setup("ieee34_ieee13", "operator", |s| {
        s.replace("share_reward: true", "share_reward: false")
            .replace(
                "  bus_prefix: \"DSO \"\n",
                "  bus_prefix: \"DSO \"\n  agent: { min_factor: 0.5, max_factor: 1.5 }\n",
            )
    });
    let mut env = env(cfg.to_str().unwrap(), 2);
    assert_eq!(env.agent_names().last().unwrap(), "system_operator");
    assert_eq!(env.action_dims(), &[5, 5, 5, 1]);
    env.reset(0).unwrap();
    let mut a = const_actions(&env, 0.0);
    a[3][[0, 0]] = 1.0; // copy 0: factor 1.5
    a[3][[1, 0]] = -9.0; // copy 1: clipped to 0.5
    step(&mut env, &a).unwrap();
    let i = env.info();
    for (c, f) in [(0, 1.5), (1, 0.5)] {
        assert_abs_diff_eq!(i.price[c], f * train_price(i.hour[c]), epsilon = 1e-9);
        let trading: f64 = (0..3)
            .map(|k| trading_cost(i.pcc_import_mw[[c, k]], i.price[c], 1.0, 1.0))
            .sum();
        assert_abs_diff_eq!(i.cost[[c, 3]], -trading, epsilon = 1e-9);
        let r = -(i.cost[[c, 3]] + 10.0 * i.safety[[c, 3]]);
        assert_abs_diff_eq!(
            env.rewards()[[c, 3]] as f64,
            r,
            epsilon = 1e-3 * r.abs().max(1.0)
        );
        // Its safety: its buses' voltage band (+ overloading of its lines, none here).
        assert_abs_diff_eq!(i.safety[[c, 3]], i.operator_safety[c], epsilon = 1e-9);
        assert_eq!(env.observations()[3][[c, 0]], f as f32);
    }
}

/// The DSO's voltage violation enters every microgrid's safety with
/// `operator_safety_weight`; automatic controller moves are in info and, with a
/// wear cost, charged to the named agent; `reward_scale` scales the reward.
#[test]
fn operator_safety_controller_wear_and_reward_scale() {
    use powergrid::env::reward::TERMS;
    let term = |n: &str| TERMS.iter().position(|t| *t == n).unwrap();
    let edit = |weight: &'static str, scale: &'static str| {
        move |s: String| {
            s.replace("slack_vm_pu: 1.05", "slack_vm_pu: 1.1")
                .replace("operator_safety_weight: 1.0", &format!("operator_safety_weight: {weight}"))
                .replace("reward_scale: 1.0", &format!("reward_scale: {scale}"))
                .replace(
                    "ct_primary_a: 100.0 } }\n  - { type: discrete_tap, trafo: \"DSO Regulator 2\"",
                    "ct_primary_a: 100.0 }, wear_cost: 0.5, charge_to: MG2 }\n  - { type: discrete_tap, trafo: \"DSO Regulator 2\"",
                )
        }
    };
    let run = |tag: &str, weight: &'static str, scale: &'static str| {
        let cfg = edited_setup("ieee34_ieee13", tag, edit(weight, scale));
        let mut env = env(cfg.to_str().unwrap(), 4);
        env.reset(2).unwrap();
        // At reset the regulators travel from the network file's taps to the
        // band: Regulator 1's moves cost 0.5 $ each, charged to MG2 only.
        let i = env.info();
        for c in 0..4 {
            let moves = i.controller_moves[[c, 0]] as f64;
            assert!(moves > 0.0, "the regulator moved at reset");
            assert_abs_diff_eq!(i.terms[[c, 1, term("cost_controller_wear")]], 0.5 * moves);
            assert_eq!(i.terms[[c, 0, term("cost_controller_wear")]], 0.0);
            assert_abs_diff_eq!(i.controller_wear_cost[c], 0.5 * moves);
            assert!(i.control_iterations[c] as f64 >= moves);
        }
        let a = const_actions(&env, 0.3);
        for _ in 0..3 {
            step(&mut env, &a).unwrap();
        }
        env
    };
    let w2 = run("opw2", "2.0", "1.0");
    let w0 = run("opw0", "0.0", "0.5");
    assert_eq!(w2.controller_names()[0], "tap:DSO Regulator 1");
    let (i2, i0) = (w2.info(), w0.info());
    let mut seen_violation = false;
    for c in 0..4 {
        assert!(i2.converged[c]);
        seen_violation |= i2.operator_safety[c] > 0.0;
        for k in 0..3 {
            assert_abs_diff_eq!(
                i2.terms[[c, k, term("safety_operator_voltage")]],
                2.0 * i2.operator_safety[c],
                epsilon = 1e-12
            );
            assert_eq!(i0.terms[[c, k, term("safety_operator_voltage")]], 0.0);
        }
        let moves = i2.controller_moves[[c, 0]] as f64;
        assert_abs_diff_eq!(i2.terms[[c, 1, term("cost_controller_wear")]], 0.5 * moves);
        // Same trajectory, half the reward scale and no operator term: the
        // reward is half of −(cost + penalty·safety without that term).
        let k = 1;
        let safety0 = i2.safety[[c, k]] - i2.terms[[c, k, term("safety_operator_voltage")]];
        assert_abs_diff_eq!(i0.safety[[c, k]], safety0, epsilon = 1e-9);
        assert_abs_diff_eq!(i0.cost[[c, k]], i2.cost[[c, k]], epsilon = 1e-9);
    }
    let mean = |e: &powergrid::env::VecEnv, c: usize| {
        (0..3)
            .map(|k| -(e.info().cost[[c, k]] + 10.0 * e.info().safety[[c, k]]))
            .sum::<f64>()
            / 3.0
    };
    for c in 0..4 {
        assert_abs_diff_eq!(
            w0.rewards()[[c, 0]] as f64,
            0.5 * mean(&w0, c),
            epsilon = 1e-3
        );
        assert_abs_diff_eq!(w2.rewards()[[c, 0]] as f64, mean(&w2, c), epsilon = 1e-3);
    }
    assert!(
        seen_violation,
        "a slack at 1.1 p.u. puts the DSO above the band"
    );
}
