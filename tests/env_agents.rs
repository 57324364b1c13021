//! Agent semantics (`src/setup/agents.rs`): timing (tick_every, obs_delay,
//! act_delay, msg_delay) checked against a reference environment without
//! timing fed the shifted actions, observation history, visibility lists,
//! the hierarchy (messages, fixed rules, equivalence with the flat setup),
//! autoreset of the queues, determinism across thread counts, bad configs,
//! and both shipped setups on both backends.
#![allow(clippy::needless_range_loop)]

mod env_util;
use env_util::*;
use ndarray::Array2;
use powergrid::env::vec_env::copy_rng;
use powergrid::env::{EnvOptions, VecEnv};
use powergrid::powerflow::BackendKind;
use rand::RngExt;

const MG1: &str = "    pcc: { trafo: \"MG1 Substation\" }\n";

/// `ieee34_ieee13` (or another setup) with `max_episode_steps` and MG1's
/// config block extended by `extra` (YAML lines under the agent).
fn edited(base: &str, tag: &str, steps: usize, extra: &str) -> VecEnv {
    let extra = extra.to_string();
    let cfg = edited_setup(base, tag, move |s| {
        assert!(s.contains(MG1));
        s.replace(
            "max_episode_steps: 96",
            &format!("max_episode_steps: {steps}"),
        )
        .replace(MG1, &format!("{MG1}{extra}"))
    });
    VecEnv::from_name(
        cfg.to_str().unwrap(),
        &EnvOptions {
            batch: 3,
            ..Default::default()
        },
    )
    .unwrap()
}

fn load_err(base: &str, tag: &str, edit: impl Fn(String) -> String) -> String {
    let cfg = edited_setup(base, tag, edit);
    match VecEnv::from_name(cfg.to_str().unwrap(), &EnvOptions::default()) {
        Ok(_) => panic!("{tag}: the setup loaded"),
        Err(e) => e.to_string(),
    }
}

fn random_actions(env: &VecEnv, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<Array2<f32>> {
    let mut a = const_actions(env, 0.0);
    for x in a.iter_mut() {
        x.iter_mut()
            .for_each(|v| *v = rng.random_range(-1.0f32..=1.0));
    }
    a
}

/// Everything except agent 0's observation, for bitwise comparison.
fn outputs_but_mg1_obs(env: &VecEnv) -> Vec<f64> {
    let mut v = Vec::new();
    for o in &env.observations()[1..] {
        v.extend(o.iter().map(|x| *x as f64));
    }
    v.extend(env.rewards().iter().map(|x| *x as f64));
    let i = env.info();
    v.extend(i.cost.iter());
    v.extend(i.pcc_import_mw.iter());
    v.extend(i.hour.iter().map(|h| *h as f64));
    v.extend(i.reset.iter().map(|b| *b as u8 as f64));
    v.extend(env.truncated().iter().map(|b| *b as u8 as f64));
    let d = env.devices();
    v.extend(d.storages.soc.iter());
    v.extend(d.storages.p_mw.iter());
    v.extend(d.generators.p_mw.iter());
    v.extend(d.renewables.p_mw.iter());
    v.extend(env.power_flow().vm_pu.iter());
    v
}

/// MG1 with `tick_every`, `act_delay`, `obs_delay` and `history` against the
/// plain setup fed what the timing should make of the same actions: MG1's
/// action of step `k` is the one it chose on step `k − act_delay` (zero
/// before), where "chose" means the action given on its last tick
/// (steps 1, 1 + n, … of the episode); MG1's observation is the plain
/// observations of steps `t − obs_delay − j`, `j < history`, clamped at the
/// episode's first. Everything else must be bitwise equal. Runs `calls`
/// steps over episodes of `steps`, so autoresets are crossed.
fn check_timing(
    tag: &str,
    tick: usize,
    act: usize,
    obs: usize,
    hist: usize,
    steps: usize,
    calls: usize,
) {
    let extra = format!(
        "    timing: {{ tick_every: {tick}, obs_delay: {obs}, act_delay: {act} }}\n    history: {hist}\n"
    );
    let mut a = edited("ieee34_ieee13", &format!("{tag}_timed"), steps, &extra);
    let mut b = edited("ieee34_ieee13", &format!("{tag}_plain"), steps, "");
    let n = a.batch();
    let dim0 = b.action_dims()[0];
    let base = b.obs_dims()[0];
    assert_eq!(a.obs_dims()[0], base * hist);
    assert_eq!(a.agent_timing()[0].tick_every, tick);
    a.reset(5).unwrap();
    b.reset(5).unwrap();
    let mut chosen: Vec<Vec<Vec<f32>>> = vec![Vec::new(); n];
    let mut held: Vec<Vec<f32>> = vec![vec![0.0; dim0]; n];
    let mut seen: Vec<Vec<Vec<f32>>> = vec![Vec::new(); n];
    let mut rng = copy_rng(77, 0);
    let mut resets = 0;
    for call in 0..=calls {
        if call > 0 {
            let acts = random_actions(&a, &mut rng);
            let mut reference = acts.clone();
            for c in 0..n {
                if b.truncated()[c] {
                    chosen[c].clear();
                    held[c].iter_mut().for_each(|x| *x = 0.0);
                    continue;
                }
                let s = b.steps_in_episode()[c];
                assert_eq!(
                    a.info().acts_next[[c, 0]],
                    s.is_multiple_of(tick),
                    "call {call} copy {c}"
                );
                if s.is_multiple_of(tick) {
                    held[c] = acts[0].row(c).to_vec();
                }
                chosen[c].push(held[c].clone());
                let k = s + 1;
                let eff = if k > act {
                    chosen[c][k - 1 - act].clone()
                } else {
                    vec![0.0; dim0]
                };
                reference[0]
                    .row_mut(c)
                    .iter_mut()
                    .zip(&eff)
                    .for_each(|(d, x)| *d = *x);
            }
            step(&mut a, &acts).unwrap();
            step(&mut b, &reference).unwrap();
        }
        for c in 0..n {
            if b.info().reset[c] {
                seen[c].clear();
                resets += 1;
                assert!(a.info().acts_next[[c, 0]], "a fresh episode ticks first");
            }
            seen[c].push(b.observations()[0].row(c).to_vec());
            let t = seen[c].len() - 1;
            let got = a.observations()[0].row(c).to_vec();
            for j in 0..hist {
                let src = t.saturating_sub(obs + j);
                assert_eq!(
                    got[j * base..(j + 1) * base],
                    seen[c][src][..],
                    "{tag}: call {call}, copy {c}, block {j} should be step {src}'s"
                );
            }
        }
        assert_eq!(
            outputs_but_mg1_obs(&a),
            outputs_but_mg1_obs(&b),
            "{tag}: call {call}"
        );
    }
    assert!(resets >= 2 * n, "{tag}: crossed autoresets ({resets})");
}

#[test]
fn tick_every_holds_the_last_action_between_ticks() {
    check_timing("tick", 3, 0, 0, 1, 7, 16);
}

#[test]
fn act_delay_shifts_the_effect_by_exactly_d_steps() {
    check_timing("act1", 1, 1, 0, 1, 6, 14);
    check_timing("act3", 1, 3, 0, 1, 6, 14);
}

#[test]
fn obs_delay_shows_the_observation_of_t_minus_d() {
    check_timing("obs2", 1, 0, 2, 1, 6, 14);
}

#[test]
fn history_stacks_the_past_observations_newest_first() {
    check_timing("hist3", 1, 0, 0, 3, 6, 14);
}

/// All of them together over several episodes: every queue starts empty
/// after an autoreset (no action, message or observation of the last
/// episode leaks into the next).
#[test]
fn queues_reset_cleanly_with_autoreset() {
    check_timing("all", 2, 2, 1, 3, 4, 15);
}

#[test]
fn stacked_layout_names_each_lag() {
    let env = edited(
        "ieee34_ieee13",
        "names",
        96,
        "    timing: { obs_delay: 1 }\n    history: 2\n",
    );
    let cols = &env.layout(0).columns;
    assert_eq!(cols.len(), env.obs_dims()[0]);
    assert!(
        cols.contains(&"next-hour price [t-1]".to_string()),
        "{cols:?}"
    );
    assert!(
        cols.contains(&"next-hour price [t-2]".to_string()),
        "{cols:?}"
    );
    assert_eq!(
        env.layout(1).column("next-hour price"),
        Some(env.layout(1).dim() - 3),
        "other agents keep their layout"
    );
}

/// MG1 sees exactly its `observe:` list, in its order: a neighbour's PCC
/// import, the price, its devices; the values are those the plain setup
/// shows in the same columns (or its info).
#[test]
fn visibility_agent_sees_exactly_its_allowed_quantities() {
    let mut a = edited(
        "ieee34_ieee13",
        "vis",
        96,
        "    observe: [ { pcc: MG2 }, price, devices ]\n",
    );
    let mut b = edited("ieee34_ieee13", "vis_plain", 96, "");
    let la = a.layout(0).clone();
    let lb = b.layout(0).clone();
    let dev_cols: Vec<String> = lb
        .columns
        .iter()
        .filter(|c| c.starts_with("MG1.device["))
        .cloned()
        .collect();
    let mut want = vec!["MG2 pcc import".to_string(), "next-hour price".to_string()];
    want.extend(dev_cols.iter().cloned());
    assert_eq!(la.columns, want);
    a.reset(3).unwrap();
    b.reset(3).unwrap();
    let mut rng = copy_rng(4, 0);
    for _ in 0..4 {
        let acts = random_actions(&a, &mut rng);
        step(&mut a, &acts).unwrap();
        step(&mut b, &acts).unwrap();
        let bp = a.setup().config.base_power_mva;
        for c in 0..a.batch() {
            let oa = a.observations()[0].row(c);
            let ob = b.observations()[0].row(c);
            assert_eq!(oa[0], (a.info().pcc_import_mw[[c, 1]] / bp) as f32);
            let mg2 = b.layout(1).column("MG2 pcc import").unwrap();
            assert_eq!(oa[0], b.observations()[1][[c, mg2]]);
            assert_eq!(oa[1], ob[lb.column("next-hour price").unwrap()]);
            for (k, name) in dev_cols.iter().enumerate() {
                assert_eq!(oa[2 + k], ob[lb.column(name).unwrap()], "{name}");
            }
        }
    }
}

fn hierarchical(tag: &str, edit: impl Fn(String) -> String) -> VecEnv {
    let cfg = edited_setup("ieee34_ieee13_hierarchical", tag, edit);
    VecEnv::from_name(
        cfg.to_str().unwrap(),
        &EnvOptions {
            batch: 2,
            ..Default::default()
        },
    )
    .unwrap()
}

fn index(env: &VecEnv, name: &str) -> usize {
    env.agent_names().iter().position(|n| n == name).unwrap()
}

#[test]
fn hierarchy_names_parents_and_spaces() {
    let env = env("ieee34_ieee13_hierarchical", 1);
    let names = env.agent_names();
    let want: Vec<String> = (1..=3)
        .flat_map(|i| {
            [
                format!("MG{i}"),
                format!("MG{i}/DG{i}"),
                format!("MG{i}/ESS{i}"),
                format!("MG{i}/PV{i}"),
            ]
        })
        .collect();
    assert_eq!(names, &want[..]);
    for (n, p) in names.iter().zip(env.agent_parents()) {
        assert_eq!(p.as_deref(), n.split_once('/').map(|x| x.0), "{n}");
    }
    // coordinator: every device's set-points; device agents: their device's
    assert_eq!(&env.action_dims()[..4], &[5, 2, 1, 2]);
    let ess = env.layout(index(&env, "MG1/ESS1"));
    assert!(ess.columns.contains(&"MG1/ESS1 message[0]".to_string()));
    assert!(
        ess.columns.contains(&"MG1 Bus 680 vm".to_string()),
        "{:?}",
        ess.columns
    );
}

/// A coordinator's set-point reaches its device agent's observation on the
/// step it is sent, or `msg_delay` steps later (zero before, and again after
/// an autoreset: the message queue starts empty every episode).
#[test]
fn coordinator_message_reaches_device_observation_on_the_step_or_after_msg_delay() {
    for d in [0usize, 2] {
        let mut env = hierarchical(&format!("msg{d}"), |s| {
            s.replace("max_episode_steps: 96", "max_episode_steps: 4")
                .replace(
                    "{ name: ESS1, devices: [\"MG1 ess_1\"] }",
                    &format!(
                        "{{ name: ESS1, devices: [\"MG1 ess_1\"], timing: {{ msg_delay: {d} }} }}"
                    ),
                )
        });
        let coord = index(&env, "MG1");
        let ess = index(&env, "MG1/ESS1");
        let col = env.layout(ess).column("MG1/ESS1 message[0]").unwrap();
        env.reset(1).unwrap();
        assert_eq!(env.observations()[ess][[0, col]], 0.0);
        // the value sent on call n (global), and the calls of this episode's steps
        let v = |n: usize| 0.05 * n as f32 - 0.4;
        let mut sent_at: Vec<usize> = Vec::new();
        let mut resets = 0;
        for n in 1..=13 {
            let mut a = const_actions(&env, 0.0);
            // ESS is MG1's second device: offset 2 of the set-points.
            a[coord].column_mut(2).fill(v(n));
            let resetting = env.truncated()[0];
            step(&mut env, &a).unwrap();
            if resetting {
                sent_at.clear();
                resets += 1;
                assert!(env.info().reset[0]);
            } else {
                sent_at.push(n);
            }
            let k = sent_at.len(); // step within the episode
            let want = if k > d { v(sent_at[k - 1 - d]) } else { 0.0 };
            for c in 0..2 {
                assert_eq!(env.observations()[ess][[c, col]], want, "d {d}, call {n}");
            }
        }
        assert!(resets >= 2);
    }
}

/// A coordinator with `learner: false` is no agent and sends the zero
/// message; its device agents still name it as their parent.
#[test]
fn a_coordinator_that_does_not_learn_is_no_agent_and_sends_zeros() {
    let mut env = hierarchical("silent", |s| {
        s.replacen(
            "    message: setpoints\n",
            "    learner: false\n    message: setpoints\n",
            1,
        )
    });
    assert_eq!(
        &env.agent_names()[..4],
        &["MG1/DG1", "MG1/ESS1", "MG1/PV1", "MG2"]
    );
    assert!(env.agent_parents()[..3]
        .iter()
        .all(|p| p.as_deref() == Some("MG1")));
    let ess1 = index(&env, "MG1/ESS1");
    let ess2 = index(&env, "MG2/ESS2");
    let col1 = env.layout(ess1).column("MG1/ESS1 message[0]").unwrap();
    let col2 = env.layout(ess2).column("MG2/ESS2 message[0]").unwrap();
    env.reset(0).unwrap();
    let a = const_actions(&env, 0.7);
    step(&mut env, &a).unwrap();
    for c in 0..2 {
        assert_eq!(env.observations()[ess1][[c, col1]], 0.0);
        assert_eq!(env.observations()[ess2][[c, col2]], 0.7);
    }
}

/// `pass_through` applies the received set-points: the storage follows the
/// coordinator's charge command `msg_delay` steps late; a learning device
/// agent's own action drives its device whatever the coordinator sends.
#[test]
fn pass_through_applies_set_points_after_msg_delay_and_learners_act_themselves() {
    let mut env = hierarchical("pass", |s| {
        s.replace(
            "{ name: ESS1, devices: [\"MG1 ess_1\"] }",
            "{ name: ESS1, devices: [\"MG1 ess_1\"], policy: pass_through, timing: { msg_delay: 1 } }",
        )
    });
    assert!(!env.agent_names().contains(&"MG1/ESS1".to_string()));
    let coord = index(&env, "MG1");
    let ess2 = index(&env, "MG2/ESS2");
    env.reset(2).unwrap();
    let p_max1 = env.devices().storages.params[0].p_max_mw;
    let p_max2 = env.devices().storages.params[1].p_max_mw;
    let mut got = Vec::new();
    for k in 1..=4 {
        let mut a = const_actions(&env, 0.0);
        if k == 2 {
            a[coord].column_mut(2).fill(1.0);
        }
        // MG2's coordinator says discharge, its learning ESS agent charges.
        a[index(&env, "MG2")].column_mut(2).fill(-1.0);
        a[ess2].fill(0.5);
        step(&mut env, &a).unwrap();
        got.push(env.devices().storages.p_mw[[0, 0]] / p_max1);
        assert!((env.devices().storages.p_mw[[0, 1]] - 0.5 * p_max2).abs() < 1e-12);
    }
    assert_eq!(
        got,
        vec![0.0, 0.0, 1.0, 0.0],
        "charge sent on step 2 acts on step 3"
    );
}

/// With learning device agents, the device actions are what matters: the
/// hierarchical setup fed the flat setup's device actions (through
/// `device_action_slots`) steps exactly like `ieee34_ieee13`, whatever the
/// coordinators send.
#[test]
fn hierarchy_with_the_flat_device_actions_equals_the_flat_setup() {
    let mut h = env("ieee34_ieee13_hierarchical", 3);
    let mut f = env("ieee34_ieee13", 3);
    h.reset(9).unwrap();
    f.reset(9).unwrap();
    let mut rng = copy_rng(10, 0);
    for _ in 0..5 {
        let flat = random_actions(&f, &mut rng);
        let mut ha = random_actions(&h, &mut rng);
        for e in 0..ha.len() {
            let (g, slots) = h.device_action_slots(e).unwrap();
            if h.agent_parents()[e].is_none() {
                continue; // coordinators: random set-points nobody follows
            }
            let mut k = 0;
            for (off, len) in slots {
                for j in off..off + len {
                    ha[e].column_mut(k).assign(&flat[g].column(j));
                    k += 1;
                }
            }
        }
        step(&mut h, &ha).unwrap();
        step(&mut f, &flat).unwrap();
        assert_eq!(h.devices().storages.soc, f.devices().storages.soc);
        assert_eq!(h.devices().generators.p_mw, f.devices().generators.p_mw);
        assert_eq!(h.power_flow().vm_pu, f.power_flow().vm_pu);
        for (g, name) in ["MG1", "MG2", "MG3"].iter().enumerate() {
            let e = index(&h, name);
            assert_eq!(h.rewards().column(e), f.rewards().column(g));
            assert_eq!(h.info().cost.column(e), f.info().cost.column(g));
            // device agents share their coordinator's reward row
            assert_eq!(h.rewards().column(e + 2), f.rewards().column(g));
        }
    }
}

/// `proportional`: the coordinator's `[p, q]` request, every device the same
/// share of its own range.
#[test]
fn proportional_rule_splits_the_request_over_the_devices() {
    let mut env = edited(
        "ieee34_ieee13",
        "prop",
        96,
        "    message: { vector: 2 }\n    device_agents:\n      - { name: ALL, devices: [\"MG1 diesel\", \"MG1 ess_1\", \"MG1 solar_1\"], policy: proportional }\n",
    );
    assert_eq!(env.agent_names()[0], "MG1");
    assert_eq!(env.action_dims()[0], 2);
    env.reset(0).unwrap();
    let mut a = const_actions(&env, 0.0);
    a[0].column_mut(0).fill(0.5);
    step(&mut env, &a).unwrap();
    let d = env.devices();
    let g = &d.generators.params[0];
    let want_g = g.p_min_mw + 0.5 * (g.p_max_mw - g.p_min_mw);
    assert!((d.generators.p_mw[[0, 0]] - want_g).abs() < 1e-12);
    assert!((d.storages.p_mw[[0, 0]] + 0.5 * d.storages.params[0].p_max_mw).abs() < 1e-12);
    a[0].column_mut(0).fill(-0.5);
    step(&mut env, &a).unwrap();
    let d = env.devices();
    assert!((d.storages.p_mw[[0, 0]] - 0.5 * d.storages.params[0].p_max_mw).abs() < 1e-12);
    // p < 0 curtails the solar unit to (1 + p) of what is available
    let avail = d.renewables.available_mw[[0, 0]];
    assert!((d.renewables.p_mw[[0, 0]] - 0.5 * avail).abs() < 1e-12);
}

fn run_on_pool(setup: &str, threads: usize) -> Vec<f64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut e = env(setup, 5);
        e.reset(21).unwrap();
        let mut rng = copy_rng(22, 0);
        let mut out = snapshot(&e);
        for _ in 0..8 {
            let a = random_actions(&e, &mut rng);
            step(&mut e, &a).unwrap();
            out.extend(snapshot(&e));
            out.extend(e.info().acts_next.iter().map(|x| *x as u8 as f64));
        }
        out
    })
}

#[test]
fn same_seed_same_trajectory_on_one_and_two_threads() {
    for s in ["ieee34_ieee13_delayed", "ieee34_ieee13_hierarchical"] {
        let one = run_on_pool(s, 1);
        let two = run_on_pool(s, 2);
        assert_eq!(one.len(), two.len());
        assert!(
            one.iter()
                .zip(&two)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{s}"
        );
    }
}

/// The delayed setup keeps `ieee34_ieee13`'s spaces (a policy trained there
/// runs unchanged) and its timing is as documented.
#[test]
fn delayed_setup_has_the_plain_spaces_and_its_timing() {
    let d = env("ieee34_ieee13_delayed", 1);
    let p = env("ieee34_ieee13", 1);
    assert_eq!(d.agent_names(), p.agent_names());
    assert_eq!(d.action_dims(), p.action_dims());
    assert_eq!(d.obs_dims(), p.obs_dims());
    let t = d.agent_timing();
    assert_eq!((t[0].tick_every, t[0].obs_delay, t[0].act_delay), (1, 1, 0));
    assert_eq!((t[1].tick_every, t[1].obs_delay, t[1].act_delay), (1, 0, 1));
    assert_eq!((t[2].tick_every, t[2].obs_delay, t[2].act_delay), (2, 1, 1));
}

/// Both new setups step on the GPU backend (lavapipe where there is no GPU)
/// and agree with the CPU. Skipped where no wgpu adapter exists (a failure
/// under `POWERGRID_REQUIRE_GPU`).
#[test]
fn both_setups_run_on_the_gpu_backend() {
    for s in ["ieee34_ieee13_delayed", "ieee34_ieee13_hierarchical"] {
        let make = |backend| {
            VecEnv::from_name(
                s,
                &EnvOptions {
                    batch: 3,
                    backend,
                    ..Default::default()
                },
            )
        };
        let Some(mut gpu) = gpu_env_or_skip(make(BackendKind::Gpu)) else {
            return;
        };
        let mut cpu = make(BackendKind::Cpu).unwrap();
        gpu.reset(3).unwrap();
        cpu.reset(3).unwrap();
        let mut rng = copy_rng(6, 0);
        for _ in 0..3 {
            let a = random_actions(&cpu, &mut rng);
            step(&mut cpu, &a).unwrap();
            step(&mut gpu, &a).unwrap();
            assert!(gpu.info().converged.iter().all(|x| *x), "{s}");
            for (g, c) in gpu.rewards().iter().zip(cpu.rewards().iter()) {
                assert!((g - c).abs() < 0.05 + 1e-3 * c.abs(), "{s}: {g} vs {c}");
            }
        }
    }
}

#[test]
fn bad_agent_configs_are_errors_naming_the_agent_and_key() {
    let mg1 = |extra: &'static str| move |s: String| s.replace(MG1, &format!("{MG1}{extra}"));
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        ("unknown_quantity", Box::new(mg1("    observe: [ devices, voltage ]\n")), &["agents[0] (MG1).observe[1]", "\"voltage\""]),
        ("unknown_agent", Box::new(mg1("    observe: [ { pcc: MG9 } ]\n")), &["agents[0] (MG1).observe[0]", "\"MG9\""]),
        ("unknown_bus", Box::new(mg1("    observe: [ { bus: \"Bus 9999\" } ]\n")), &["observe[0]", "\"Bus 9999\""]),
        ("negative_delay", Box::new(mg1("    timing: { obs_delay: -1 }\n")), &["agents[0] (MG1).timing.obs_delay", "-1"]),
        ("past_episode", Box::new(mg1("    timing: { act_delay: 96 }\n")), &["agents[0] (MG1).timing.act_delay", "96"]),
        ("tick_zero", Box::new(mg1("    timing: { tick_every: 0 }\n")), &["timing.tick_every"]),
        ("unknown_timing_key", Box::new(mg1("    timing: { latency: 1 }\n")), &["latency"]),
        ("msg_on_grid", Box::new(mg1("    timing: { msg_delay: 1 }\n")), &["agents[0] (MG1).timing.msg_delay"]),
        ("history_zero", Box::new(mg1("    history: 0\n")), &["agents[0] (MG1).history"]),
        ("message_alone", Box::new(mg1("    message: setpoints\n")), &["agents[0] (MG1).message"]),
        ("message_on_grid", Box::new(mg1("    observe: [ message ]\n")), &["observe[0]", "message"]),
        (
            "claimed_twice",
            Box::new(mg1("    device_agents:\n      - { name: A, devices: [\"MG1 ess_1\"] }\n      - { name: B, devices: [\"MG1 ess_1\"] }\n")),
            &["device_agents[1] (B).devices[0]", "\"MG1 ess_1\"", "MG1/A"],
        ),
        (
            "not_its_device",
            Box::new(mg1("    device_agents:\n      - { name: A, devices: [\"MG2 ess_2\"] }\n")),
            &["device_agents[0] (A).devices[0]", "\"MG2 ess_2\""],
        ),
        (
            "pass_through_vector",
            Box::new(mg1("    message: { vector: 2 }\n    device_agents:\n      - { name: A, devices: [\"MG1 ess_1\"], policy: pass_through }\n")),
            &["device_agents[0] (A).policy", "pass_through"],
        ),
        (
            "negative_msg_delay",
            Box::new(mg1("    device_agents:\n      - { name: A, devices: [\"MG1 ess_1\"], timing: { msg_delay: -2 } }\n")),
            &["device_agents[0] (A).timing.msg_delay", "-2"],
        ),
    ];
    for (tag, edit, needles) in cases {
        let e = load_err("ieee34_ieee13", &format!("bad_{tag}"), edit);
        for n in needles {
            assert!(e.contains(n), "{tag}: {e:?} should name {n:?}");
        }
        assert!(
            e.contains("config.yml"),
            "{tag}: {e:?} should name the file"
        );
    }
}
