//! `rollout --policy opf`: replay the optimal schedule through the environment.
//!
//! Each copy's episode is optimised once (perfect foresight of its days, in
//! parallel over rayon), then stepped: before step `k` every device's action
//! is the inverse of its action mapping ([`crate::devices`], `action_for`)
//! at the plan's set-point for hour `k`: generators `a = ((P − p_min)/(p_max −
//! p_min), centred⁻¹(Q))`, storage `P/p_max`, renewables `(P/available − 1,
//! Q/q_max)` with this hour's availability, taps and capacitors `(target −
//! current)/max_move`. The environment then applies its own clipping and the
//! automatic controllers of the setup (which the optimiser holds at the
//! network's positions). The same copies and episodes are run with the zero
//! and heuristic policies, and each gets its gap to the replayed optimum.

use super::{optimize_days, OptPlan, OptimizeOptions};
use crate::devices::DeviceRef;
use crate::env::vec_env::{EnvOptions, Split, VecEnv};
use crate::env::{Policy, PolicyRunner};
use crate::error::{Error, Result};
use crate::powerflow::BackendKind;
use ndarray::Array2;
use serde_json::json;
use std::collections::BTreeMap;

/// Mean reward per agent and (non-reset) step, and its per-agent means.
#[derive(Debug, Clone)]
struct Score {
    mean_reward: f64,
    per_agent: Vec<f64>,
    violation_share: f64,
    converged: f64,
}

fn env_for(setup: &str, envs: usize, split: Split) -> Result<VecEnv> {
    VecEnv::from_name(
        setup,
        &EnvOptions {
            batch: envs,
            backend: BackendKind::Cpu,
            split,
            ..Default::default()
        },
    )
}

/// Fill copy `c`'s actions from `plan` hour `k` (0-based).
fn plan_actions(env: &VecEnv, plan: &OptPlan, k: usize, c: usize, actions: &mut [Array2<f64>]) {
    let d = env.devices();
    let h = &plan.hours[k];
    let inp = &h.inputs;
    let get = |v: &Option<Vec<f64>>, i: usize| v.as_ref().map_or(0.0, |v| v[i]);
    let setup = env.setup();
    let ts = match env.split() {
        Split::Train => &setup.train,
        Split::Test => &setup.test,
    };
    for (i, a) in env.agents().iter().enumerate() {
        for (dev, &off) in a.devices.iter().zip(&a.action_offsets) {
            let row = &mut actions[i];
            match *dev {
                DeviceRef::Generator(u) => {
                    let s = d.generators.sgen[u];
                    let x = d.generators.params[u]
                        .action_for(get(&inp.sgen_p_mw, s), get(&inp.sgen_q_mvar, s));
                    row[[c, off]] = x[0];
                    row[[c, off + 1]] = x[1];
                }
                DeviceRef::Storage(u) => {
                    let e = d.storages.element[u];
                    row[[c, off]] = d.storages.params[u].action_for(get(&inp.storage_p_mw, e));
                }
                DeviceRef::Renewable(u) => {
                    let s = d.renewables.sgen[u];
                    let prm = &d.renewables.params[u];
                    let avail = prm.available(ts.at(prm.profile_column, h.hour));
                    let x = prm.action_for(avail, get(&inp.sgen_p_mw, s), get(&inp.sgen_q_mvar, s));
                    row[[c, off]] = x[0];
                    row[[c, off + 1]] = x[1];
                }
                DeviceRef::TapChanger(u) => {
                    let t = d.taps.trafo[u];
                    row[[c, off]] =
                        d.taps
                            .action_for(u, d.taps.pos[[c, u]], get(&inp.trafo_tap_pos, t));
                }
                DeviceRef::Capacitor(u) => {
                    let s = d.capacitors.shunt[u];
                    row[[c, off]] = d.capacitors.action_for(
                        u,
                        d.capacitors.step[[c, u]],
                        get(&inp.shunt_step, s),
                    );
                }
            }
        }
    }
}

/// Step one episode of every copy with `fill`, averaging rewards over the steps.
fn run_episode(
    env: &mut VecEnv,
    seed: u64,
    mut fill: impl FnMut(&VecEnv, usize, &mut [Array2<f64>]) -> Result<()>,
) -> Result<Score> {
    env.reset(seed)?;
    let b = env.batch();
    let na = env.agent_names().len();
    let steps = env.setup().config.max_episode_steps;
    let mut actions: Vec<Array2<f64>> = env
        .action_dims()
        .iter()
        .map(|&d| Array2::zeros((b, d)))
        .collect();
    let mut sum = vec![0.0; na];
    let (mut n, mut viol, mut conv) = (0usize, 0usize, 0usize);
    for k in 0..steps {
        actions.iter_mut().for_each(|a| a.fill(0.0));
        fill(env, k, &mut actions)?;
        let views: Vec<_> = actions.iter().map(|a| a.view()).collect();
        env.step(&views)?;
        let info = env.info();
        let r = env.rewards();
        for c in 0..b {
            if info.reset[c] {
                continue;
            }
            n += 1;
            viol += info.voltage_violation[c] as usize;
            conv += info.converged[c] as usize;
            for i in 0..na {
                sum[i] += r[[c, i]] as f64;
            }
        }
    }
    let nn = n.max(1) as f64;
    let per_agent: Vec<f64> = sum.iter().map(|s| s / nn).collect();
    Ok(Score {
        mean_reward: per_agent.iter().sum::<f64>() / na.max(1) as f64,
        per_agent,
        violation_share: viol as f64 / nn,
        converged: conv as f64 / nn,
    })
}

/// Replay the optimal schedule of one episode per copy and compare it with
/// the zero and heuristic policies on the same episodes. Returns the summary.
pub fn rollout_opf(
    setup: &str,
    envs: usize,
    split: Split,
    seed: u64,
    opts: &OptimizeOptions,
) -> Result<serde_json::Value> {
    if envs == 0 {
        return Err(Error::InvalidInput(
            "rollout needs --envs of at least 1".into(),
        ));
    }
    let mut env = env_for(setup, envs, split)?;
    let a = &env.setup().agents;
    if a.hierarchies.iter().any(Option::is_some)
        || a.defs
            .iter()
            .any(|d| d.timing != Default::default() || d.history != 1 || d.observe.is_some())
    {
        return Err(Error::InvalidInput(format!(
            "rollout --policy opf replays set-points through grid agents that drive their devices directly, without timing: setup {:?} has device agents, timing, history or observe lists",
            env.setup().config.name
        )));
    }
    env.reset(seed)?;
    let days: Vec<usize> = (0..envs).map(|c| env.hour(c) / 24).collect();
    let mut uniq = days.clone();
    uniq.sort_unstable();
    uniq.dedup();
    let mut o = opts.clone();
    o.split = split;
    o.hours = Some(env.setup().config.max_episode_steps);
    let t0 = std::time::Instant::now();
    let solved = optimize_days(env.setup(), &uniq, &o);
    let solve_s = t0.elapsed().as_secs_f64();
    let mut plans = BTreeMap::new();
    for (d, p) in uniq.iter().zip(solved) {
        plans.insert(*d, p?);
    }
    let opf = run_episode(&mut env, seed, |env, k, actions| {
        for (c, d) in days.iter().enumerate() {
            plan_actions(env, &plans[d], k, c, actions);
        }
        Ok(())
    })?;
    let predicted = plans.values().map(|p| p.mean_reward).sum::<f64>() / plans.len() as f64;
    let mut others = serde_json::Map::new();
    for pol in [Policy::Zero, Policy::Heuristic] {
        let mut env = env_for(setup, envs, split)?;
        let mut runner = PolicyRunner::new(pol, envs, seed);
        let mut buf: Vec<Array2<f32>> = PolicyRunner::zero_actions(&env);
        let s = run_episode(&mut env, seed, |env, _, actions| {
            runner.fill(env, &mut buf)?;
            for (a, b) in actions.iter_mut().zip(&buf) {
                a.zip_mut_with(b, |x, &y| *x = y as f64);
            }
            Ok(())
        })?;
        others.insert(
            pol.to_string(),
            json!({
                "mean_reward": s.mean_reward,
                "mean_reward_per_agent": s.per_agent,
                "voltage_violation_share": s.violation_share,
                "optimality_gap": (opf.mean_reward - s.mean_reward) / opf.mean_reward.abs().max(1e-12),
            }),
        );
    }
    let statuses: BTreeMap<String, usize> = plans.values().fold(BTreeMap::new(), |mut m, p| {
        *m.entry(format!("{:?}", p.status).to_lowercase())
            .or_insert(0) += 1;
        m
    });
    Ok(json!({
        "setup": env.setup().config.name,
        "split": split.to_string(),
        "envs": envs,
        "episodes": envs,
        "steps_per_episode": env.setup().config.max_episode_steps,
        "policy": "opf",
        "days": uniq,
        "plan_status": statuses,
        "solve_seconds": solve_s,
        "mean_reward": opf.mean_reward,
        "mean_reward_per_agent": opf.per_agent,
        "voltage_violation_share": opf.violation_share,
        "convergence_rate": opf.converged,
        "opf_predicted_mean_reward": predicted,
        "others": others,
    }))
}
