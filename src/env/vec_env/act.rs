//! The first half of a step: every copy either starts its episode (it ended
//! on the previous call, or `reset`) or takes its agents' actions (ticks,
//! delay lines, coordinator messages, devices, the operator's price factor).
//! Copies are independent, so this runs in parts of the batch on the
//! backend's pool, as the evaluation after the solve does: each part owns
//! its rows of every per-copy table (devices, operator, delay lines, held
//! actions and messages, episode counters and random streams) and a scratch
//! of its own, and the results do not depend on the number of parts.

use super::{ActionScalar, Driver, Params, Split, VecEnv};
use crate::devices::DeviceRows;
use crate::env::timing::DelayRows;
use crate::powerflow::batch::{even_bounds, split_rows, split_slice};
use crate::setup::agents::{DevicePolicy, Message};
use crate::setup::TimeSeries;
use ndarray::{ArrayView2, ArrayViewMut2};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// One part's scratch rows (an action row, each agent's effective action,
/// messages, this hour's renewable profile).
#[derive(Clone)]
pub(super) struct ActScratch {
    pub renewable_profile: Vec<f64>,
    pub action_row: Vec<f64>,
    /// Each agent's effective action of the copy being stepped.
    pub eff: Vec<Vec<f64>>,
    pub msg_row: Vec<f64>,
    pub unit_msg: Vec<f64>,
}

/// One part of the batch: copies `c0 ..`, its rows of every table the first
/// half of a step writes (local copy indices from 0).
struct Part<'a> {
    c0: usize,
    devices: DeviceRows<'a>,
    operator: crate::agents::system_operator::OperatorRows<'a>,
    start_row: &'a mut [usize],
    step_in_episode: &'a mut [usize],
    episodes: &'a mut [u64],
    rngs: &'a mut [ChaCha8Rng],
    needs_reset: &'a mut [bool],
    held: Vec<ArrayViewMut2<'a, f64>>,
    act_lines: Vec<DelayRows<'a>>,
    msg_lines: Vec<DelayRows<'a>>,
    msg_held: Vec<ArrayViewMut2<'a, f64>>,
    s: &'a mut ActScratch,
    /// Copies (batch indices) that started their episode.
    resets: Vec<usize>,
}

impl VecEnv {
    /// Start the episodes of the copies that need it and apply the others'
    /// `actions` (`None`: every copy must need it, as after `reset`), in
    /// parts of the batch on the backend's pool; the started copies in
    /// `reset_list`, ascending.
    pub(super) fn act<A: ActionScalar>(&mut self, actions: Option<&[ArrayView2<A>]>) {
        let b = self.p.batch;
        let n_parts = self.n_parts();
        while self.act_scratch.len() < n_parts {
            let s = self.act_scratch[0].clone();
            self.act_scratch.push(s);
        }
        let bounds = even_bounds(b, n_parts);
        let pool = self.pf.shared_pool();
        let st = &mut self.st;
        let mut devices = st.devices.rows().split(&bounds).into_iter();
        let mut operator = st.operator.rows().split(&bounds).into_iter();
        let mut start_row = split_slice(&mut st.start_row, 1, &bounds).into_iter();
        let mut step_in_episode = split_slice(&mut st.step_in_episode, 1, &bounds).into_iter();
        let mut episodes = split_slice(&mut st.episodes, 1, &bounds).into_iter();
        let mut rngs = split_slice(&mut st.rngs, 1, &bounds).into_iter();
        let mut needs_reset = split_slice(&mut st.needs_reset, 1, &bounds).into_iter();
        let mut held = split_tables(&mut st.held, &bounds);
        let mut msg_held = split_tables(&mut st.msg_held, &bounds);
        let mut act_lines = split_lines(&mut st.act_lines, &bounds);
        let mut msg_lines = split_lines(&mut st.msg_lines, &bounds);
        let parts: Vec<Part> = (self.act_scratch[..n_parts].iter_mut())
            .zip(bounds.windows(2))
            .map(|(s, w)| Part {
                c0: w[0],
                devices: devices.next().expect("a part per bound"),
                operator: operator.next().expect("a part per bound"),
                start_row: start_row.next().expect("a part per bound"),
                step_in_episode: step_in_episode.next().expect("a part per bound"),
                episodes: episodes.next().expect("a part per bound"),
                rngs: rngs.next().expect("a part per bound"),
                needs_reset: needs_reset.next().expect("a part per bound"),
                held: next_of(&mut held),
                act_lines: next_of(&mut act_lines),
                msg_lines: next_of(&mut msg_lines),
                msg_held: next_of(&mut msg_held),
                s,
                resets: vec![],
            })
            .collect();
        let p = &self.p;
        let ts = match p.split {
            Split::Train => &p.setup.train,
            Split::Test => &p.setup.test,
        };
        let run = |mut part: Part| {
            part.run(p, ts, actions);
            part.resets
        };
        let resets: Vec<Vec<usize>> = match pool {
            Some(pool) if parts.len() > 1 => {
                use rayon::prelude::*;
                pool.install(|| parts.into_par_iter().map(run).collect())
            }
            _ => parts.into_iter().map(run).collect(),
        };
        self.reset_list.clear();
        resets.into_iter().for_each(|r| self.reset_list.extend(r));
    }
}

/// Each table's parts (rows cut at `bounds`).
fn split_tables<'a>(
    tables: &'a mut [ndarray::Array2<f64>],
    bounds: &[usize],
) -> Vec<std::vec::IntoIter<ArrayViewMut2<'a, f64>>> {
    (tables.iter_mut())
        .map(|a| split_rows(a.view_mut(), bounds).into_iter())
        .collect()
}

/// Each delay line's parts (copies cut at `bounds`).
fn split_lines<'a>(
    lines: &'a mut [crate::env::timing::DelayLine],
    bounds: &[usize],
) -> Vec<std::vec::IntoIter<DelayRows<'a>>> {
    (lines.iter_mut())
        .map(|q| q.split_rows(bounds).into_iter())
        .collect()
}

/// The next part of each table's parts.
fn next_of<T>(tables: &mut [std::vec::IntoIter<T>]) -> Vec<T> {
    (tables.iter_mut())
        .map(|t| t.next().expect("a part per bound"))
        .collect()
}

impl Part<'_> {
    /// Every copy of the part: a new episode where it needs one, else its actions.
    fn run<A: ActionScalar>(
        &mut self,
        p: &Params,
        ts: &TimeSeries,
        actions: Option<&[ArrayView2<A>]>,
    ) {
        let dt = p.setup.config.dt_h;
        for lc in 0..self.needs_reset.len() {
            let c = self.c0 + lc;
            if self.needs_reset[lc] {
                self.begin_episode(p, ts, lc);
                self.resets.push(c);
                continue;
            }
            let Some(actions) = actions else {
                continue;
            };
            self.step_in_episode[lc] += 1;
            let row = self.start_row[lc] + self.step_in_episode[lc];
            let s = &mut *self.s;
            for (k, prm) in self.devices.renewables.params.iter().enumerate() {
                s.renewable_profile[k] = ts.at(prm.profile_column, row);
            }
            let step = self.step_in_episode[lc] - 1;
            let t = step + 1;
            // Each agent's effective action: its chosen action when its tick
            // is due (else the held one), delayed by act_delay.
            for (e, eff) in s.eff.iter_mut().enumerate() {
                let mut held = self.held[e].row_mut(lc);
                if step.is_multiple_of(p.timing[e].tick_every) {
                    held.iter_mut()
                        .zip(actions[e].row(c).iter())
                        .for_each(|(d, x)| *d = x.to_f64());
                }
                eff.iter_mut().zip(held.iter()).for_each(|(d, x)| *d = *x);
                self.act_lines[e].shift(lc, t, eff);
            }
            for (i, agent) in p.agents.iter().enumerate() {
                let row = &mut s.action_row[..agent.action_dim];
                match &p.drivers[i] {
                    Driver::Flat(e) => row.copy_from_slice(&s.eff[*e]),
                    Driver::Hier {
                        coordinator,
                        message,
                        msg_dim,
                        units,
                        direct,
                    } => {
                        let msg = &mut s.msg_row[..*msg_dim];
                        match coordinator {
                            Some(e) => msg.copy_from_slice(&s.eff[*e]),
                            None => msg.fill(0.0),
                        }
                        row.fill(0.0);
                        if *message == Message::Setpoints {
                            for &(off, len) in direct {
                                row[off..off + len].copy_from_slice(&msg[off..off + len]);
                            }
                        }
                        for u in units.clone() {
                            let unit = &p.units[u];
                            let m = &mut s.unit_msg[..unit.msg_dim];
                            match message {
                                Message::Setpoints => unit.gather(msg, m),
                                Message::Vector(_) => m.copy_from_slice(msg),
                            }
                            self.msg_lines[u].shift(lc, t, m);
                            self.msg_held[u]
                                .row_mut(lc)
                                .iter_mut()
                                .zip(m.iter())
                                .for_each(|(d, x)| *d = *x);
                            match unit.policy {
                                DevicePolicy::Learner => {
                                    let e = unit.agent.expect("a learner unit is an agent");
                                    unit.scatter(&s.eff[e], row);
                                }
                                DevicePolicy::PassThrough => unit.scatter(m, row),
                                DevicePolicy::Proportional => unit.proportional(m, row),
                            }
                        }
                    }
                }
                agent.apply(&mut self.devices, lc, row, dt, &s.renewable_profile);
            }
            if let Some(e) = p.operator_agent {
                self.operator.apply(lc, s.eff[e][0]);
            }
        }
    }

    /// Copy `lc` starts an episode: its start day (random on the training
    /// split, in order on the test split), its devices and operator reset,
    /// every queue of the copy cleared (held actions, delayed actions and
    /// messages; the observation rings refill at t = 0), its renewables
    /// uncurtailed at the first hour.
    fn begin_episode(&mut self, p: &Params, ts: &TimeSeries, lc: usize) {
        let c = self.c0 + lc;
        let slot = match p.split {
            Split::Train => self.rngs[lc].random_range(0..p.start_slots),
            Split::Test => ((self.episodes[lc] as usize) * p.batch + c) % p.start_slots,
        };
        self.episodes[lc] += 1;
        self.start_row[lc] = 24 * slot;
        self.step_in_episode[lc] = 0;
        self.needs_reset[lc] = false;
        self.devices.reset_copy(lc);
        self.operator.reset_copy(lc);
        for h in &mut self.held {
            h.row_mut(lc).fill(0.0);
        }
        for q in &mut self.act_lines {
            q.clear(lc);
        }
        for q in &mut self.msg_lines {
            q.clear(lc);
        }
        for m in &mut self.msg_held {
            m.row_mut(lc).fill(0.0);
        }
        let row = self.start_row[lc];
        let r = &mut self.devices.renewables;
        for k in 0..r.params.len() {
            let v = ts.at(r.params[k].profile_column, row);
            r.set_uncurtailed(lc, k, v);
        }
    }
}
