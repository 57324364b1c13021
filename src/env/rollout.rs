//! `powergrid rollout`: step a setup's vector environment with a simple policy
//! and report throughput, rewards, costs, voltage violations and convergence.

use crate::env::vec_env::{copy_rng, EnvOptions, Split, VecEnv};
use crate::error::{Error, Result};
use crate::powerflow::BackendKind;
use ndarray::Array2;
use rand::RngExt;
use std::time::Instant;

/// Policy for rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Uniform random actions in [-1, 1].
    Random,
    /// All-zero actions.
    Zero,
}

/// Options of `powergrid rollout`.
#[derive(Debug, Clone)]
pub struct RolloutOptions {
    /// Setup name (a folder under `setups/`) or path to a setup folder / config.yml.
    pub setup: String,
    /// Number of copies.
    pub envs: usize,
    /// Steps per copy.
    pub steps: usize,
    /// Policy.
    pub policy: Policy,
    /// Power-flow backend.
    pub backend: BackendKind,
    /// Seed.
    pub seed: u64,
    /// Show a progress bar.
    pub progress: bool,
}

/// Run a rollout; returns the summary as JSON (at least `env_steps_per_s`,
/// `mean_reward`, `convergence_rate`) and a human-readable text.
///
/// Timing covers the `step` calls and the policy, not building or resetting.
/// Rewards and costs are averaged over non-reset steps; the violation share
/// counts steps where any bus of the network is outside the voltage band.
pub fn run(opts: &RolloutOptions) -> Result<(serde_json::Value, String)> {
    if opts.envs == 0 || opts.steps == 0 {
        return Err(Error::InvalidInput(
            "rollout needs --envs and --steps of at least 1".into(),
        ));
    }
    let mut env = VecEnv::from_name(
        &opts.setup,
        &EnvOptions {
            batch: opts.envs,
            backend: opts.backend,
            split: Split::Train,
            ..Default::default()
        },
    )?;
    env.reset(opts.seed)?;
    let b = env.batch();
    let dims = env.action_dims().to_vec();
    let names = env.agent_names().to_vec();
    let na = names.len();
    let mut actions: Vec<Array2<f32>> = dims.iter().map(|&d| Array2::zeros((b, d))).collect();
    // The policy's own streams, apart from the environment's.
    let mut rngs: Vec<_> = (0..b)
        .map(|c| copy_rng(opts.seed ^ 0x05ee_d0fa_11ce, c))
        .collect();
    let bar = if opts.progress && opts.steps >= 20 {
        let pb = indicatif::ProgressBar::new(opts.steps as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} steps  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(pb)
    } else {
        None
    };
    let mut sum_reward = vec![0.0f64; na];
    let mut sum_cost = vec![0.0f64; na];
    let mut sum_safety = vec![0.0f64; na];
    let (mut counted, mut converged, mut violations, mut solved) = (0u64, 0u64, 0u64, 0u64);
    let t0 = Instant::now();
    for _ in 0..opts.steps {
        if opts.policy == Policy::Random {
            for (c, rng) in rngs.iter_mut().enumerate() {
                for a in actions.iter_mut() {
                    a.row_mut(c)
                        .iter_mut()
                        .for_each(|x| *x = rng.random_range(-1.0f32..=1.0));
                }
            }
        }
        let views: Vec<_> = actions.iter().map(|a| a.view()).collect();
        env.step(&views)?;
        let info = env.info();
        let r = env.rewards();
        for c in 0..b {
            solved += 1;
            converged += info.converged[c] as u64;
            violations += info.voltage_violation[c] as u64;
            if info.reset[c] {
                continue;
            }
            counted += 1;
            for i in 0..na {
                sum_reward[i] += r[[c, i]] as f64;
                sum_cost[i] += info.cost[[c, i]];
                sum_safety[i] += info.safety[[c, i]];
            }
        }
        if let Some(pb) = &bar {
            pb.inc(1);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    let env_steps = (b * opts.steps) as f64;
    let sps = env_steps / secs;
    let n = counted.max(1) as f64;
    let mean = |v: &[f64]| v.iter().map(|x| x / n).collect::<Vec<f64>>();
    let (mr, mc, ms) = (mean(&sum_reward), mean(&sum_cost), mean(&sum_safety));
    let mean_reward = mr.iter().sum::<f64>() / na as f64;
    let conv_rate = converged as f64 / solved as f64;
    let viol = violations as f64 / solved as f64;
    let per = |v: &[f64]| {
        serde_json::Value::Object(
            names
                .iter()
                .cloned()
                .zip(v.iter().map(|x| serde_json::json!(x)))
                .collect(),
        )
    };
    let json = serde_json::json!({
        "setup": env.setup().config.name,
        "backend": env.backend(),
        "envs": b,
        "steps": opts.steps,
        "policy": format!("{:?}", opts.policy).to_lowercase(),
        "seconds": secs,
        "env_steps": env_steps,
        "env_steps_per_s": sps,
        "mean_reward": mean_reward,
        "mean_reward_per_agent": per(&mr),
        "mean_cost_per_agent": per(&mc),
        "mean_safety_per_agent": per(&ms),
        "voltage_violation_share": viol,
        "convergence_rate": conv_rate,
    });
    let mut text = format!(
        "setup {} on {}: {b} copies x {} steps in {secs:.3} s = {sps:.0} env-steps/s\n",
        env.setup().config.name,
        env.backend(),
        opts.steps
    );
    for i in 0..na {
        text += &format!(
            "  {:<16} mean reward {:>10.3}  cost {:>10.3}  safety {:>8.4}\n",
            names[i], mr[i], mc[i], ms[i]
        );
    }
    text += &format!(
        "  steps with a voltage violation: {:.1} %   power flow converged: {:.2} %\n",
        100.0 * viol,
        100.0 * conv_rate
    );
    Ok((json, text))
}
