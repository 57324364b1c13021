//! Baseline policies that fill the `[B, action_dim]` action arrays of a
//! [`VecEnv`] from its state: the yardsticks for learnt policies.
//!
//! - [`Policy::Zero`]: all zeros, which holds the grid as it is (see
//!   [`crate::devices`]): generators at their minimum, storage idle, renewables
//!   uncurtailed, taps and capacitors unchanged.
//! - [`Policy::Random`]: uniform in `[-1, 1]`, from each copy's own ChaCha8
//!   stream (seeded from `(seed, copy)`), so one seed gives one trajectory.
//! - [`Policy::Heuristic`], rule-based, per copy and agent, from what the
//!   agent could know at decision time (the next hour's price it observes, the
//!   last converged voltages of its buses, the trailing 24-hour mean price):
//!   - generators: economic dispatch against the price, `P = (price − b)/(2a)`
//!     (marginal cost `2aP + b` equal to the price) clipped to `[p_min, p_max]`;
//!   - storage: charge at full power when the price is below 0.9 × the trailing
//!     24-hour mean, discharge at full power above 1.1 ×, idle between;
//!   - solar/wind: uncurtailed;
//!   - reactive support: when a bus of the agent is within 0.005 p.u. of a
//!     band edge or outside it, generators and inverters absorb (high voltage)
//!     or inject (low voltage) reactive power in proportion to the excess
//!     (full at 0.02 p.u.); capacitors step off on high and on at low voltage;
//!     taps and the operator's price factor are held.

use crate::devices::DeviceRef;
use crate::env::vec_env::{copy_rng, VecEnv};
use crate::error::{Error, Result};
use ndarray::Array2;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// A baseline policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Uniform random actions in `[-1, 1]`.
    Random,
    /// All-zero actions (hold).
    Zero,
    /// Rule-based dispatch and reactive support.
    Heuristic,
}

impl std::str::FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Policy> {
        match s.to_ascii_lowercase().as_str() {
            "random" => Ok(Policy::Random),
            "zero" => Ok(Policy::Zero),
            "heuristic" => Ok(Policy::Heuristic),
            _ => Err(Error::InvalidInput(format!(
                "unknown policy {s:?}: use random, zero or heuristic"
            ))),
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Policy::Random => "random",
            Policy::Zero => "zero",
            Policy::Heuristic => "heuristic",
        })
    }
}

/// A policy with its per-copy random streams.
pub struct PolicyRunner {
    policy: Policy,
    rngs: Vec<ChaCha8Rng>,
}

/// Margin inside the band at which reactive support starts (p.u.).
const SUPPORT_MARGIN_PU: f64 = 0.005;
/// Excess over the margin at which reactive support is at its limit (p.u.).
const SUPPORT_FULL_PU: f64 = 0.02;

impl PolicyRunner {
    /// A runner for `batch` copies; random streams from `(seed, copy)` (apart
    /// from the environment's own streams).
    pub fn new(policy: Policy, batch: usize, seed: u64) -> Self {
        PolicyRunner {
            policy,
            rngs: (0..batch)
                .map(|c| copy_rng(seed ^ 0x05ee_d0fa_11ce, c))
                .collect(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Zero arrays of the environment's action shapes.
    pub fn zero_actions(env: &VecEnv) -> Vec<Array2<f32>> {
        env.action_dims()
            .iter()
            .map(|&d| Array2::zeros((env.batch(), d)))
            .collect()
    }

    /// Fill `actions` (one `[B, action_dim]` array per agent) for the
    /// environment's current state.
    pub fn fill(&mut self, env: &VecEnv, actions: &mut [Array2<f32>]) -> Result<()> {
        if actions.len() != env.action_dims().len()
            || actions
                .iter()
                .zip(env.action_dims())
                .any(|(a, &d)| a.dim() != (env.batch(), d))
            || self.rngs.len() != env.batch()
        {
            return Err(Error::InvalidInput(format!(
                "policy actions must be {} arrays of shape [{}, {:?}]",
                env.action_dims().len(),
                env.batch(),
                env.action_dims()
            )));
        }
        match self.policy {
            Policy::Zero => actions.iter_mut().for_each(|a| a.fill(0.0)),
            Policy::Random => {
                for (c, rng) in self.rngs.iter_mut().enumerate() {
                    for a in actions.iter_mut() {
                        a.row_mut(c)
                            .iter_mut()
                            .for_each(|x| *x = rng.random_range(-1.0f32..=1.0));
                    }
                }
            }
            Policy::Heuristic => heuristic(env, actions),
        }
        Ok(())
    }
}

fn heuristic(env: &VecEnv, actions: &mut [Array2<f32>]) {
    let cfg = &env.setup().config;
    let (v_min, v_max) = (cfg.voltage_band[0], cfg.voltage_band[1]);
    let d = env.devices();
    let vm = env.voltages();
    for a in actions.iter_mut() {
        a.fill(0.0);
    }
    // Rules are per grid agent's device row; each agent takes its slots of
    // it (a coordinator with a vector message and the operator hold: zero).
    let slots: Vec<Option<crate::env::vec_env::ActionSlots>> = (0..actions.len())
        .map(|e| env.device_action_slots(e))
        .collect();
    let mut rows: Vec<Vec<f32>> = env
        .agents()
        .iter()
        .map(|a| vec![0.0; a.action_dim])
        .collect();
    for c in 0..env.batch() {
        let price = env.next_price(c);
        let mean = env.trailing_mean_price(c, 24);
        for (i, agent) in env.agents().iter().enumerate() {
            let (lo, hi) = agent
                .buses
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &b| {
                    (lo.min(vm[[c, b]]), hi.max(vm[[c, b]]))
                });
            let over = hi - (v_max - SUPPORT_MARGIN_PU);
            let under = (v_min + SUPPORT_MARGIN_PU) - lo;
            // Reactive support in [-1, 1]: negative absorbs (lowers voltage).
            let q = if over > 0.0 && over >= under {
                -(over / SUPPORT_FULL_PU).min(1.0)
            } else if under > 0.0 {
                (under / SUPPORT_FULL_PU).min(1.0)
            } else {
                0.0
            };
            let row = &mut rows[i];
            for (dev, &off) in agent.devices.iter().zip(&agent.action_offsets) {
                match *dev {
                    DeviceRef::Generator(k) => {
                        let g = &d.generators.params[k];
                        let p = if g.cost[0] > 0.0 {
                            (price - g.cost[1]) / (2.0 * g.cost[0])
                        } else if price > g.cost[1] {
                            g.p_max_mw
                        } else {
                            g.p_min_mw
                        };
                        let p = p.clamp(g.p_min_mw, g.p_max_mw);
                        let [ap, _] = g.action_for(p, 0.0);
                        row[off] = ap as f32;
                        row[off + 1] = q as f32;
                    }
                    DeviceRef::Storage(_) => {
                        row[off] = if price < 0.9 * mean {
                            1.0
                        } else if price > 1.1 * mean {
                            -1.0
                        } else {
                            0.0
                        };
                    }
                    DeviceRef::Renewable(_) => {
                        row[off] = 0.0;
                        row[off + 1] = q as f32;
                    }
                    DeviceRef::TapChanger(_) => row[off] = 0.0,
                    DeviceRef::Capacitor(_) => {
                        row[off] = if q > 0.0 {
                            1.0
                        } else if q < 0.0 {
                            -1.0
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
        for (a, s) in actions.iter_mut().zip(&slots) {
            if let Some((g, slots)) = s {
                let mut out = a.row_mut(c);
                let mut k = 0;
                for &(off, len) in slots {
                    for x in &rows[*g][off..off + len] {
                        out[k] = *x;
                        k += 1;
                    }
                }
            }
        }
    }
}
