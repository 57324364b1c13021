//! Autoreset, the data splits, determinism across thread counts, the volt-var
//! setup, and one step checked against an independent solve of its set-points.
#![allow(clippy::needless_range_loop)]

mod env_util;
use approx::assert_abs_diff_eq;
use env_util::*;
use ndarray::Array2;
use powergrid::env::vec_env::copy_rng;
use powergrid::env::{EnvOptions, Split, VecEnv};
use powergrid::powerflow::scenarios::ScenarioFile;
use powergrid::powerflow::{CpuBatch, Plan, PowerFlow, SolverOptions};
use rand::RngExt;
use std::sync::Arc;

fn short(tag: &str, steps: usize, split: Split, batch: usize) -> VecEnv {
    short_setup("ieee34_ieee13", tag, steps, split, batch)
}

fn short_setup(name: &str, tag: &str, steps: usize, split: Split, batch: usize) -> VecEnv {
    let cfg = edited_setup(name, tag, |s| {
        s.replace(
            "max_episode_steps: 96",
            &format!("max_episode_steps: {steps}"),
        )
    });
    VecEnv::from_name(
        cfg.to_str().unwrap(),
        &EnvOptions {
            batch,
            split,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn autoreset_next_step_convention() {
    let mut env = short("autoreset", 3, Split::Train, 2);
    env.reset(9).unwrap();
    assert!(env.info().reset.iter().all(|r| *r));
    let start: Vec<usize> = (0..2).map(|c| env.info().hour[c]).collect();
    let a = const_actions(&env, 1.0);
    for k in 1..=3 {
        step(&mut env, &a).unwrap();
        for c in 0..2 {
            assert_eq!(
                env.info().hour[c],
                start[c] + k,
                "the hour advances every step"
            );
            assert!(!env.info().reset[c]);
            assert_eq!(env.truncated()[c], k == 3);
            assert!(!env.terminated()[c]);
        }
    }
    let soc_before = env.devices().storages.soc.clone();
    assert!(
        soc_before.iter().all(|s| *s > 0.5),
        "charging raised the SOC"
    );
    // The next step resets the ended copies and ignores their actions.
    step(&mut env, &a).unwrap();
    for c in 0..2 {
        assert!(env.info().reset[c]);
        assert!(!env.truncated()[c]);
        assert_eq!(env.steps_in_episode()[c], 0);
        assert_eq!(env.info().hour[c] % 24, 0, "episodes start at midnight");
        for k in 0..3 {
            assert_eq!(env.rewards()[[c, k]], 0.0);
            assert_eq!(env.devices().storages.soc[[c, k]], 0.5);
        }
    }
    // ...and the episode goes on from there.
    step(&mut env, &a).unwrap();
    assert!(env.info().reset.iter().all(|r| !*r));
    assert!(env.rewards().iter().all(|r| *r != 0.0));
}

#[test]
fn test_copies_walk_the_test_days_in_order_and_train_copies_start_at_random() {
    let b = 3;
    let mut env = short("testsplit", 2, Split::Test, b);
    env.reset(0).unwrap();
    let a = const_actions(&env, 0.0);
    for e in 0..3 {
        for c in 0..b {
            assert_eq!(
                env.info().hour[c],
                24 * (e * b + c),
                "copy {c}, episode {e}"
            );
        }
        for _ in 0..3 {
            step(&mut env, &a).unwrap();
        }
    }
    let mut train = short("trainsplit", 2, Split::Train, 16);
    train.reset(0).unwrap();
    let days: std::collections::BTreeSet<usize> =
        (0..16).map(|c| train.info().hour[c] / 24).collect();
    assert!(days.len() > 8, "random start days: {days:?}");
    assert!(days.iter().all(|d| 24 * d + 2 < 8760));
}

fn random_run(setup: &str, threads: usize, batch: usize, seed: u64) -> Vec<f64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let tag = format!("det_{setup}_{threads}_{batch}_{seed}");
        let mut env = short_setup(setup, &tag, 4, Split::Train, batch);
        env.reset(seed).unwrap();
        let mut rngs: Vec<_> = (0..batch).map(|c| copy_rng(seed + 1000, c)).collect();
        let mut out = snapshot(&env);
        let mut acts: Vec<Array2<f32>> = const_actions(&env, 0.0);
        for _ in 0..11 {
            for (c, rng) in rngs.iter_mut().enumerate() {
                for a in acts.iter_mut() {
                    a.row_mut(c)
                        .iter_mut()
                        .for_each(|x| *x = rng.random_range(-1.0f32..=1.0));
                }
            }
            step(&mut env, &acts).unwrap();
            out.extend(snapshot(&env));
        }
        out
    })
}

#[test]
fn same_seed_same_trajectory_on_one_and_two_threads() {
    let one = random_run("ieee34_ieee13", 1, 6, 42);
    let two = random_run("ieee34_ieee13", 2, 6, 42);
    assert_eq!(one.len(), two.len());
    assert!(
        one.iter()
            .zip(&two)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "1 and 2 threads differ"
    );
    let other = random_run("ieee34_ieee13", 2, 6, 43);
    assert_ne!(one, other, "another seed gives another trajectory");
}

/// With enough copies the environment applies actions to and evaluates its
/// batch in parts, one per thread (here 3 parts of 66 or 67 copies: uneven
/// bounds): every output and device state, the observation rings and action
/// delay lines of the delayed agents, the coordinators' messages, the volt-var
/// agent's taps and capacitors and the operator's price factor included, is
/// the one-part result bit for bit, across autoresets (4-step episodes).
#[test]
fn parts_of_the_batch_give_the_one_part_results() {
    for setup in [
        "ieee34_ieee13",
        "ieee34_ieee13_delayed",
        "ieee34_ieee13_hierarchical",
        "ieee34_ieee13_dso",
        "ieee34_voltvar",
    ] {
        let one = random_run(setup, 1, 200, 7);
        let three = random_run(setup, 3, 200, 7);
        assert_eq!(one.len(), three.len());
        let first = one
            .iter()
            .zip(&three)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(
            first.is_none(),
            "{setup}: 1 and 3 parts differ at value {first:?}"
        );
    }
}

/// The round trip through the `pf` formats (`tests/env_vs_pandapower.rs` compares
/// a step with pandapower itself): a step's set-points
/// are exported in the `pf` scenario format, together with the network as solved
/// (YAML), read back, and solved independently by a fresh CPU batch; the
/// environment's bus voltages must match that solution within 1e-6 p.u.
#[test]
fn a_step_matches_an_independent_solve_of_its_scenario() {
    let env = ieee34_ieee13_after_a_random_step();
    let dir = scratch("scenario");
    let net_path = dir.join("network.yml");
    powergrid::network::yaml::write(env.network(), &net_path).unwrap();
    let file = ScenarioFile {
        scenarios: (0..3).map(|c| env.scenario(c)).collect(),
        extra: Default::default(),
    };
    let sc_path = dir.join("scenario.json");
    std::fs::write(&sc_path, serde_json::to_string(&file).unwrap()).unwrap();

    let net = powergrid::network::load(&net_path).unwrap();
    let inputs = ScenarioFile::read(&sc_path)
        .unwrap()
        .to_inputs(&net)
        .unwrap();
    let mut pf = CpuBatch::new(
        Arc::new(Plan::new(&net, SolverOptions::default()).unwrap()),
        3,
    );
    *pf.inputs_mut() = inputs;
    pf.solve().unwrap();
    for c in 0..3 {
        assert!(pf.results().converged[c] && env.info().converged[c]);
        for b in 0..net.buses.len() {
            assert_abs_diff_eq!(
                env.power_flow().vm_pu[[c, b]],
                pf.results().vm_pu[[c, b]],
                epsilon = 1e-6
            );
        }
        // The devices' set-points are what the power flow saw.
        let s = &file.scenarios[c].inputs;
        let d = env.devices();
        for k in 0..3 {
            assert_eq!(
                s.storage_p_mw.as_ref().unwrap()[d.storages.element[k]],
                d.storages.p_mw[[c, k]]
            );
            assert_eq!(
                s.sgen_p_mw.as_ref().unwrap()[d.generators.sgen[k]],
                d.generators.p_mw[[c, k]]
            );
            assert_eq!(
                s.sgen_q_mvar.as_ref().unwrap()[d.renewables.sgen[k]],
                d.renewables.q_mvar[[c, k]]
            );
        }
    }
}

#[test]
fn volt_var_agent_moves_taps_and_capacitors() {
    let mut env = env("ieee34_voltvar", 2);
    env.reset(0).unwrap();
    assert_eq!(env.action_dims(), &[4]);
    let far = env
        .network()
        .buses
        .iter()
        .position(|b| b.name.ends_with("Bus 840"))
        .unwrap();
    let wear = powergrid::env::reward::TERMS
        .iter()
        .position(|t| *t == "cost_wear")
        .unwrap();
    // The voltage change of copy 1 relative to copy 0, which holds (the
    // hour's load change is in both).
    let relative_change = |env: &mut VecEnv, a1: [f32; 4]| {
        let before = env.power_flow().vm_pu.clone();
        let mut a = Array2::zeros((2, 4));
        a.row_mut(1).assign(&ndarray::arr1(&a1));
        step(env, &[a]).unwrap();
        let after = env.power_flow().vm_pu.clone();
        (after[[1, far]] - before[[1, far]]) - (after[[0, far]] - before[[0, far]])
    };
    // Copy 1 moves each tap down by max_move = 4.
    let dv = relative_change(&mut env, [-1.0, -1.0, 0.0, 0.0]);
    let d = env.devices();
    assert_eq!(d.taps.pos.row(0).to_vec(), vec![12.0, 16.0], "zero holds");
    assert_eq!(d.taps.pos.row(1).to_vec(), vec![8.0, 12.0]);
    assert_abs_diff_eq!(env.info().terms[[1, 0, wear]], 0.8, epsilon = 1e-12);
    assert_eq!(env.info().terms[[0, 0, wear]], 0.0);
    assert!(dv < -0.02, "lower taps lower the far-end voltage: {dv}");
    let s = env.scenario(1).inputs;
    assert_eq!(s.trafo_tap_pos.unwrap()[..2], [8.0, 12.0]);
    // Then it switches each capacitor bank on by max_move = 1 step.
    let dv = relative_change(&mut env, [0.0, 0.0, 1.0, 1.0]);
    let d = env.devices();
    assert_eq!(d.taps.pos.row(1).to_vec(), vec![8.0, 12.0], "zero holds");
    assert_eq!(d.capacitors.step.row(0).to_vec(), vec![0.0, 0.0]);
    assert_eq!(d.capacitors.step.row(1).to_vec(), vec![1.0, 1.0]);
    assert_abs_diff_eq!(env.info().terms[[1, 0, wear]], 0.2, epsilon = 1e-12);
    assert!(dv > 0.01, "capacitors raise the far-end voltage: {dv}");
    assert_eq!(env.scenario(1).inputs.shunt_step.unwrap(), vec![1.0, 1.0]);
}

/// The GPU backend (f32 WGSL; lavapipe/llvmpipe where there is no GPU) steps
/// the same environment; it agrees with the CPU backend to f32 accuracy.
/// Skipped where no wgpu adapter exists (a failure under `POWERGRID_REQUIRE_GPU`).
/// Automatic control runs on both (each re-solves only the unsettled copies).
#[test]
fn gpu_backend_steps_the_same_environment() {
    use powergrid::powerflow::BackendKind;
    let make = |backend| {
        VecEnv::from_name(
            "ieee34_ieee13",
            &EnvOptions {
                batch: 4,
                backend,
                ..Default::default()
            },
        )
    };
    let Some(mut gpu) = gpu_env_or_skip(make(BackendKind::Gpu)) else {
        return;
    };
    let mut cpu = make(BackendKind::Cpu).unwrap();
    gpu.reset(7).unwrap();
    cpu.reset(7).unwrap();
    let mut rng = copy_rng(8, 0);
    for _ in 0..3 {
        let mut a = const_actions(&cpu, 0.0);
        for x in a.iter_mut() {
            x.iter_mut()
                .for_each(|v| *v = rng.random_range(-1.0f32..=1.0));
        }
        step(&mut cpu, &a).unwrap();
        step(&mut gpu, &a).unwrap();
        for (g, c) in gpu
            .power_flow()
            .vm_pu
            .iter()
            .zip(cpu.power_flow().vm_pu.iter())
        {
            assert_abs_diff_eq!(g, c, epsilon = 1e-4);
        }
        for (g, c) in gpu.rewards().iter().zip(cpu.rewards().iter()) {
            assert_abs_diff_eq!(*g, *c, epsilon = 0.05 + 1e-3 * c.abs());
        }
    }
}

/// `gpu_threads`: the batch in parts driven by three host threads (each part
/// its own device buffers and control loop) steps the environment exactly as
/// one thread does: the same observations, rewards, results and control
/// iterations, bit for bit.
#[test]
fn gpu_threads_step_the_same_environment_bit_for_bit() {
    use powergrid::powerflow::BackendKind;
    let make = |threads| {
        VecEnv::from_name(
            "ieee34_ieee13",
            &EnvOptions {
                batch: 10,
                backend: BackendKind::Gpu,
                gpu_threads: threads,
                ..Default::default()
            },
        )
    };
    let Some(mut one) = gpu_env_or_skip(make(1)) else {
        return;
    };
    let mut three = make(3).unwrap();
    assert!(
        three.backend().ends_with("3 host threads)"),
        "{}",
        three.backend()
    );
    one.reset(3).unwrap();
    three.reset(3).unwrap();
    let mut rng = copy_rng(4, 0);
    let mut moved = 0;
    for t in 0..4 {
        let mut a = const_actions(&one, 0.0);
        for x in a.iter_mut() {
            x.iter_mut()
                .for_each(|v| *v = rng.random_range(-1.0f32..=1.0));
        }
        step(&mut one, &a).unwrap();
        step(&mut three, &a).unwrap();
        assert_eq!(one.observations(), three.observations(), "step {t}");
        assert_eq!(one.rewards(), three.rewards(), "step {t}");
        assert_eq!(one.power_flow(), three.power_flow(), "step {t}");
        assert_eq!(
            one.info().control_iterations,
            three.info().control_iterations,
            "step {t}"
        );
        moved += one
            .info()
            .control_iterations
            .iter()
            .filter(|&&i| i > 0)
            .count();
    }
    assert!(moved > 0, "the controllers moved in some copy");
}

#[test]
fn every_shipped_setup_loads_and_steps() {
    for (name, agents) in [
        ("ieee34_ieee13", 3),
        ("ieee34_ieee13_dso", 4),
        ("ieee34_voltvar", 1),
    ] {
        let mut env = env(name, 2);
        assert_eq!(env.agent_names().len(), agents, "{name}");
        env.reset(0).unwrap();
        let a = const_actions(&env, 0.0);
        step(&mut env, &a).unwrap();
        assert!(env.info().converged.iter().all(|c| *c), "{name}");
        assert!(
            env.rewards().iter().all(|r| r.is_finite() && *r < 0.0),
            "{name}"
        );
    }
}
