//! One step of every copy: actions are applied by `VecEnv::step`; here the
//! episode starts, the power-flow inputs, the solve with automatic control,
//! then cost, safety, reward (the terms of [`crate::env::reward`]) and the
//! observations from the layouts' source tables.

use super::{Split, VecEnv};
use crate::devices::DeviceRef;
use crate::env::observation::{finite, price_feature, time_features, voltage_feature, ObsSource};
use crate::env::reward::{self, Term, N_COST_TERMS};
use crate::env::timing::HistRows;
use crate::error::Result;
use crate::powerflow::batch::{even_bounds, split_rows, split_slice};
use ndarray::{Array2, ArrayViewMut1, ArrayViewMut2, ArrayViewMut3, Axis};

impl VecEnv {
    /// Episode starts and actions ([`VecEnv::act`]), then set-points, the
    /// solve with automatic control, cost, safety, reward, observations,
    /// flags: all of it in one trip to the backend's pool (its parallel parts
    /// then start from a pool thread instead of waking the pool from this
    /// one each time).
    pub(super) fn act_solve_and_evaluate<A: super::ActionScalar>(
        &mut self,
        actions: Option<&[ndarray::ArrayView2<A>]>,
    ) -> Result<()> {
        match self.pf.shared_pool() {
            Some(pool) => pool.install(|| {
                self.act(actions);
                self.solve_and_evaluate()
            }),
            None => {
                self.act(actions);
                self.solve_and_evaluate()
            }
        }
    }

    fn solve_and_evaluate(&mut self) -> Result<()> {
        self.write_inputs();
        if !self.reset_list.is_empty() {
            self.pf.reset_start(&self.reset_list);
        }
        self.control.run(self.pf.as_mut())?;
        self.info.reset.fill(false);
        for &c in &self.reset_list {
            self.info.reset[c] = true;
        }
        self.evaluate();
        Ok(())
    }

    /// The set-points of every copy into the power-flow inputs: in parts of
    /// the batch in parallel on the backend's pool (as [`VecEnv::evaluate`]).
    fn write_inputs(&mut self) {
        let ts = match self.p.split {
            Split::Train => &self.p.setup.train,
            Split::Test => &self.p.setup.test,
        };
        let d = &self.st.devices;
        let (start_row, step_in_episode) = (&self.st.start_row, &self.st.step_in_episode);
        let b = self.p.batch;
        let n_parts = self.n_parts();
        let pool = self.pf.shared_pool();
        let inp = self.pf.inputs_mut();
        let rows = b.div_ceil(n_parts).max(1);
        let mut load = inp.load_scaling.axis_chunks_iter_mut(Axis(0), rows);
        let mut sgen_p = inp.sgen_p_mw.axis_chunks_iter_mut(Axis(0), rows);
        let mut sgen_q = inp.sgen_q_mvar.axis_chunks_iter_mut(Axis(0), rows);
        let mut storage = inp.storage_p_mw.axis_chunks_iter_mut(Axis(0), rows);
        let mut tap = inp.trafo_tap_pos.axis_chunks_iter_mut(Axis(0), rows);
        let mut shunt = inp.shunt_step.axis_chunks_iter_mut(Axis(0), rows);
        let parts: Vec<InputRows> = (0..b.div_ceil(rows))
            .map(|i| InputRows {
                c0: i * rows,
                load: load.next().expect("a chunk per part"),
                sgen_p: sgen_p.next().expect("a chunk per part"),
                sgen_q: sgen_q.next().expect("a chunk per part"),
                storage: storage.next().expect("a chunk per part"),
                tap: tap.next().expect("a chunk per part"),
                shunt: shunt.next().expect("a chunk per part"),
            })
            .collect();
        let write = |mut r: InputRows| {
            for lc in 0..r.load.nrows() {
                let c = r.c0 + lc;
                let row = start_row[c] + step_in_episode[c];
                for &(l, col, scale) in &d.loads.members {
                    r.load[[lc, l]] = scale * ts.at(col, row);
                }
                for (k, &s) in d.generators.sgen.iter().enumerate() {
                    r.sgen_p[[lc, s]] = d.generators.p_mw[[c, k]];
                    r.sgen_q[[lc, s]] = d.generators.q_mvar[[c, k]];
                }
                for (k, &s) in d.renewables.sgen.iter().enumerate() {
                    r.sgen_p[[lc, s]] = d.renewables.p_mw[[c, k]];
                    r.sgen_q[[lc, s]] = d.renewables.q_mvar[[c, k]];
                }
                for (k, &s) in d.storages.element.iter().enumerate() {
                    r.storage[[lc, s]] = d.storages.p_mw[[c, k]];
                }
                for (k, &t) in d.taps.trafo.iter().enumerate() {
                    r.tap[[lc, t]] = d.taps.pos[[c, k]];
                }
                for (k, &s) in d.capacitors.shunt.iter().enumerate() {
                    r.shunt[[lc, s]] = d.capacitors.step[[c, k]];
                }
            }
        };
        match pool {
            // Called from inside the pool (`act_solve_and_evaluate`): no wake-up.
            Some(pool) if parts.len() > 1 => {
                use rayon::prelude::*;
                pool.install(|| parts.into_par_iter().for_each(write));
            }
            _ => parts.into_iter().for_each(write),
        }
        // Automatic controllers keep their settled positions from step to
        // step (they live in the inputs); a reset puts them back to the network's.
        for &c in &self.reset_list {
            for &(t, v) in &self.p.controlled_taps {
                inp.trafo_tap_pos[[c, t]] = v;
            }
            for &(s, v) in &self.p.controlled_shunts {
                inp.shunt_step[[c, s]] = v;
            }
        }
    }

    /// Cost, safety, reward, flags and observations of every copy, in parts
    /// of the batch evaluated in parallel on the backend's pool (copies are
    /// independent; each part owns its rows of every output and a scratch).
    fn evaluate(&mut self) {
        let b = self.p.batch;
        let n_parts = self.n_parts();
        while self.scratch.len() < n_parts {
            let s = Scratch::like(&self.scratch[0]);
            self.scratch.push(s);
        }
        let bounds = even_bounds(b, n_parts);
        let ctx = Ctx {
            p: &self.p,
            ts: match self.p.split {
                Split::Train => &self.p.setup.train,
                Split::Test => &self.p.setup.test,
            },
            res: self.pf.limited_results(),
            inp: self.pf.inputs(),
            control: &self.control,
            devices: &self.st.devices,
            operator: &self.st.operator,
            start_row: &self.st.start_row,
            step_in_episode: &self.st.step_in_episode,
            msg_held: &self.st.msg_held,
        };
        let mut vm_held = split_rows(self.st.vm_held.view_mut(), &bounds).into_iter();
        let mut pcc_held = split_rows(self.st.pcc_held.view_mut(), &bounds).into_iter();
        let mut needs_reset = split_slice(&mut self.st.needs_reset, 1, &bounds).into_iter();
        let mut rewards = split_rows(self.rewards.view_mut(), &bounds).into_iter();
        let mut terminated = split_rows(self.terminated.view_mut(), &bounds).into_iter();
        let mut truncated = split_rows(self.truncated.view_mut(), &bounds).into_iter();
        let mut obs: Vec<_> = self
            .obs
            .iter_mut()
            .map(|o| split_rows(o.view_mut(), &bounds).into_iter())
            .collect();
        let mut hist: Vec<Option<_>> = self
            .st
            .obs_hist
            .iter_mut()
            .map(|h| h.as_mut().map(|h| h.split_rows(&bounds).into_iter()))
            .collect();
        let mut info = split_info(&mut self.info, &bounds).into_iter();
        let mut parts: Vec<Part> = self.scratch[..n_parts]
            .iter_mut()
            .zip(bounds.windows(2))
            .map(|(s, w)| Part {
                c0: w[0],
                n: w[1] - w[0],
                vm_held: vm_held.next().expect("a part per bound"),
                pcc_held: pcc_held.next().expect("a part per bound"),
                needs_reset: needs_reset.next().expect("a part per bound"),
                rewards: rewards.next().expect("a part per bound"),
                terminated: terminated.next().expect("a part per bound"),
                truncated: truncated.next().expect("a part per bound"),
                obs: obs
                    .iter_mut()
                    .map(|o| o.next().expect("a part per bound"))
                    .collect(),
                hist: hist
                    .iter_mut()
                    .map(|h| h.as_mut().map(|h| h.next().expect("a part per bound")))
                    .collect(),
                info: info.next().expect("a part per bound"),
                s,
            })
            .collect();
        match self.pf.pool() {
            Some(pool) if parts.len() > 1 => {
                use rayon::prelude::*;
                pool.install(|| parts.par_iter_mut().for_each(|pt| ctx.evaluate(pt)));
            }
            _ => parts.iter_mut().for_each(|pt| ctx.evaluate(pt)),
        }
    }
}

/// Fewest copies a part of [`VecEnv::evaluate`] is worth a thread for.
const MIN_COPIES_PER_PART: usize = 64;

/// One part's rows (copies `c0..`) of the inputs [`VecEnv::write_inputs`] writes.
struct InputRows<'a> {
    c0: usize,
    load: ArrayViewMut2<'a, f64>,
    sgen_p: ArrayViewMut2<'a, f64>,
    sgen_q: ArrayViewMut2<'a, f64>,
    storage: ArrayViewMut2<'a, f64>,
    tap: ArrayViewMut2<'a, f64>,
    shunt: ArrayViewMut2<'a, f64>,
}

impl VecEnv {
    /// Parts of the batch worked on in parallel: one per pool thread, at
    /// least [`MIN_COPIES_PER_PART`] copies each (one without a pool).
    pub(super) fn n_parts(&self) -> usize {
        let b = self.p.batch;
        if self.pf.pool().is_some() && b >= MIN_COPIES_PER_PART * 2 {
            self.pf.threads().clamp(1, b / MIN_COPIES_PER_PART)
        } else {
            1
        }
    }
}

/// What evaluating a copy reads (shared by the parts).
struct Ctx<'a> {
    p: &'a super::Params,
    ts: &'a crate::setup::TimeSeries,
    res: &'a crate::powerflow::BatchResults,
    inp: &'a crate::powerflow::BatchInputs,
    control: &'a crate::env::control_glue::EnvControl,
    devices: &'a crate::devices::Devices,
    operator: &'a crate::agents::SystemOperator,
    start_row: &'a [usize],
    step_in_episode: &'a [usize],
    msg_held: &'a [Array2<f64>],
}

/// Rows `c0 .. c0 + n` of every per-copy output, and a scratch.
struct Part<'a> {
    c0: usize,
    n: usize,
    vm_held: ArrayViewMut2<'a, f64>,
    pcc_held: ArrayViewMut2<'a, f64>,
    needs_reset: &'a mut [bool],
    rewards: ArrayViewMut2<'a, f32>,
    terminated: ArrayViewMut1<'a, bool>,
    truncated: ArrayViewMut1<'a, bool>,
    obs: Vec<ArrayViewMut2<'a, f32>>,
    hist: Vec<Option<HistRows<'a>>>,
    info: InfoRows<'a>,
    s: &'a mut Scratch,
}

/// Per-part scratch of [`VecEnv::evaluate`].
#[derive(Debug, Clone)]
pub(super) struct Scratch {
    /// Reward terms of the grid agents (and the operator) of one copy.
    pub(super) inner_terms: Array2<f64>,
    pub(super) inner_cost: Vec<f64>,
    pub(super) inner_safety: Vec<f64>,
    pub(super) agent_reward: Vec<f64>,
    pub(super) dev_obs: Vec<f32>,
    /// One-step observation scratch (agents with a ring, shared layouts).
    pub(super) base_row: Vec<f32>,
    pub(super) shared_row: Vec<f32>,
}

impl Scratch {
    pub(super) fn new(n_inner: usize, max_base: usize) -> Scratch {
        Scratch {
            inner_terms: Array2::zeros((n_inner, crate::env::reward::TERMS.len())),
            inner_cost: vec![0.0; n_inner],
            inner_safety: vec![0.0; n_inner],
            agent_reward: vec![0.0; n_inner],
            dev_obs: vec![0.0; 4],
            base_row: vec![0.0; max_base],
            shared_row: vec![0.0; max_base],
        }
    }
    fn like(other: &Scratch) -> Scratch {
        Scratch::new(other.inner_cost.len(), other.base_row.len())
    }
}

/// The rows of a part of every [`StepInfo`](super::StepInfo) table, listed once.
macro_rules! info_rows {
    ($($f:ident: $t:ident<$a:ty>),* $(,)?) => {
        struct InfoRows<'a> {
            $($f: $t<'a, $a>,)*
        }
        fn split_info<'a>(i: &'a mut super::StepInfo, bounds: &[usize]) -> Vec<InfoRows<'a>> {
            $(let mut $f = split_rows(i.$f.view_mut(), bounds).into_iter();)*
            bounds
                .windows(2)
                .map(|_| InfoRows { $($f: $f.next().expect("a part per bound"),)* })
                .collect()
        }
    };
}
info_rows!(
    cost: ArrayViewMut2<f64>,
    safety: ArrayViewMut2<f64>,
    terms: ArrayViewMut3<f64>,
    converged: ArrayViewMut1<bool>,
    reset: ArrayViewMut1<bool>,
    pcc_import_mw: ArrayViewMut2<f64>,
    price: ArrayViewMut1<f64>,
    voltage_violation: ArrayViewMut1<bool>,
    network_voltage_safety: ArrayViewMut1<f64>,
    operator_safety: ArrayViewMut1<f64>,
    hour: ArrayViewMut1<usize>,
    control_iterations: ArrayViewMut1<u32>,
    controller_moves: ArrayViewMut2<u32>,
    controller_wear_cost: ArrayViewMut1<f64>,
    acts_next: ArrayViewMut2<bool>,
);

impl Ctx<'_> {
    fn evaluate(&self, pt: &mut Part) {
        let p = self.p;
        let cfg = &p.setup.config;
        let ts = self.ts;
        let (v_min, v_max) = (cfg.voltage_band[0], cfg.voltage_band[1]);
        let dt = cfg.dt_h;
        let res = self.res;
        let n_grid = p.agents.len();
        let n_agents = pt.s.agent_reward.len();
        let devices = self.devices;
        let operator = self.operator;
        for lc in 0..pt.n {
            let c = pt.c0 + lc;
            let row = self.start_row[c] + self.step_in_episode[c];
            let conv = res.converged[c];
            let is_reset = pt.info.reset[lc];
            let price = ts.at(operator.price_column, row) * operator.factor[c];
            // Hold the last converged values of the copy; after a failed reset, no-load values.
            if conv {
                pt.vm_held.row_mut(lc).assign(&res.vm_pu.row(c));
            } else if is_reset {
                pt.vm_held.row_mut(lc).fill(1.0);
                pt.pcc_held.row_mut(lc).fill(0.0);
            }
            let vm = res.vm_pu.row(c);
            pt.info.control_iterations[lc] = self.control.iterations(c);
            let mut ctrl_wear = 0.0;
            let terms = &mut pt.s.inner_terms;
            terms.fill(0.0);
            for (k, spec) in self.control.specs.iter().enumerate() {
                let m = self.control.moves(c, k);
                pt.info.controller_moves[[lc, k]] = m;
                let w = spec.wear_cost() * m as f64;
                ctrl_wear += w;
                if let Some(a) = spec.charge_to() {
                    terms[[a, Term::ControllerWear as usize]] += w;
                }
            }
            pt.info.controller_wear_cost[lc] = ctrl_wear;
            let mut op_safety = 0.0;
            if conv {
                for &b in &operator.buses {
                    op_safety += reward::voltage_violation(vm[b], v_min, v_max);
                }
            }
            pt.info.operator_safety[lc] = op_safety;
            let mut revenue = 0.0;
            for (i, a) in p.agents.iter().enumerate() {
                let import = match &a.pcc {
                    Some(pcc) if conv => pcc.import_mw(res, c),
                    _ => 0.0,
                };
                if conv {
                    pt.pcc_held[[lc, i]] = import;
                }
                pt.info.pcc_import_mw[[lc, i]] = import;
                let trading = reward::trading_cost(import, price, operator.sell_discount, dt);
                revenue += trading;
                for d in &a.devices {
                    let t = match d {
                        DeviceRef::Generator(_) => Term::Generation,
                        DeviceRef::Storage(_) => Term::Storage,
                        DeviceRef::Renewable(_) => continue,
                        DeviceRef::TapChanger(_) | DeviceRef::Capacitor(_) => Term::Wear,
                    };
                    terms[[i, t as usize]] += devices.cost(*d, c, dt);
                }
                terms[[i, Term::Trading as usize]] = trading;
                if conv {
                    let mut v = 0.0;
                    for &b in &a.buses {
                        v += reward::voltage_violation(vm[b], v_min, v_max);
                    }
                    let mut l = 0.0;
                    for &x in &a.lines {
                        l += reward::loading_violation(res.line_loading_percent[[c, x]]);
                    }
                    for &x in &a.trafos {
                        l += reward::loading_violation(res.trafo_loading_percent[[c, x]]);
                    }
                    terms[[i, Term::Voltage as usize]] = v;
                    terms[[i, Term::Loading as usize]] = l;
                    terms[[i, Term::OperatorVoltage as usize]] =
                        cfg.operator_safety_weight * op_safety;
                }
                terms[[i, Term::Devices as usize]] = a.device_violation(devices, c);
            }
            if operator.is_agent() {
                let mut l = 0.0;
                if conv {
                    for &x in &operator.lines {
                        l += reward::loading_violation(res.line_loading_percent[[c, x]]);
                    }
                }
                terms[[n_grid, Term::Trading as usize]] = -revenue;
                terms[[n_grid, Term::Voltage as usize]] = op_safety;
                terms[[n_grid, Term::Loading as usize]] = l;
            }
            for i in 0..n_agents {
                let row_t = terms.row(i);
                let cost: f64 = row_t.iter().take(N_COST_TERMS).sum();
                let safety: f64 = if conv {
                    row_t.iter().skip(N_COST_TERMS).sum()
                } else {
                    cfg.convergence_failure_safety
                };
                pt.s.inner_cost[i] = cost;
                pt.s.inner_safety[i] = safety;
                pt.s.agent_reward[i] = if conv {
                    cfg.reward_scale * reward::reward(cost, safety, cfg.penalty)
                } else {
                    cfg.convergence_failure_reward
                };
            }
            let mut net_v = 0.0;
            let mut any = false;
            if conv {
                for &b in &p.live_buses {
                    let v = reward::voltage_violation(vm[b], v_min, v_max);
                    net_v += v;
                    any |= v > 0.0;
                }
            }
            pt.info.network_voltage_safety[lc] = net_v;
            pt.info.voltage_violation[lc] = any || !conv;
            pt.info.converged[lc] = conv;
            pt.info.price[lc] = price;
            pt.info.hour[lc] = row;
            if cfg.share_reward {
                let m = pt.s.agent_reward.iter().sum::<f64>() / n_agents as f64;
                pt.s.agent_reward.iter_mut().for_each(|r| *r = m);
            }
            // Each agent takes its grid agent's (a device agent: its coordinator's) row.
            for (e, &i) in p.reward_of.iter().enumerate() {
                pt.rewards[[lc, e]] = if is_reset {
                    0.0
                } else {
                    pt.s.agent_reward[i] as f32
                };
                pt.info.cost[[lc, e]] = pt.s.inner_cost[i];
                pt.info.safety[[lc, e]] = pt.s.inner_safety[i];
                pt.info
                    .terms
                    .slice_mut(ndarray::s![lc, e, ..])
                    .assign(&pt.s.inner_terms.row(i));
            }
            let done = !is_reset && self.step_in_episode[c] >= cfg.max_episode_steps;
            pt.truncated[lc] = done;
            pt.terminated[lc] = false;
            pt.needs_reset[lc] = done;
            let s = self.step_in_episode[c];
            for (e, t) in p.timing.iter().enumerate() {
                pt.info.acts_next[[lc, e]] = !done && s.is_multiple_of(t.tick_every);
            }
            self.observe(pt, lc);
        }
    }

    /// Fill every agent's observation of copy `pt.c0 + lc`: its one-step
    /// layout's sources, then (agents with an observation delay or history)
    /// through its ring.
    fn observe(&self, pt: &mut Part, lc: usize) {
        let p = self.p;
        let cfg = &p.setup.config;
        let c = pt.c0 + lc;
        let bp = cfg.base_power_mva;
        let inp = self.inp;
        let devices = self.devices;
        let operator = self.operator;
        let shared = p.shared_obs;
        let next = self.start_row[c] + self.step_in_episode[c] + 1;
        let next_price = self.ts.at(operator.price_column, next) * operator.factor[c];
        let [s, co] = time_features(next % 24);
        let price_f = price_feature(next_price, cfg.price_scale);
        let vm = pt.vm_held.row(lc);
        let pcc = pt.pcc_held.row(lc);
        let load_mw = |l: usize| inp.load_p_mw[[c, l]] * inp.load_scaling[[c, l]];
        let msg_held = self.msg_held;
        let dev_obs = &mut pt.s.dev_obs;
        let mut fill = |out: &mut [f32], sources: &[ObsSource]| {
            for (x, src) in out.iter_mut().zip(sources) {
                *x = match *src {
                    ObsSource::Device(d, j) => {
                        devices.observe(d, c, &mut dev_obs[..d.obs_dim()]);
                        dev_obs[j]
                    }
                    ObsSource::BusVm(b) => voltage_feature(vm[b]),
                    ObsSource::AgentLoad(a) => {
                        finite(p.agents[a].loads.iter().map(|&l| load_mw(l)).sum::<f64>() / bp)
                    }
                    ObsSource::LoadGroup(g) => {
                        finite(p.load_groups[g].iter().map(|&l| load_mw(l)).sum::<f64>() / bp)
                    }
                    ObsSource::PccImport(a) => finite(pcc[a] / bp),
                    ObsSource::TotalImport => finite(pcc.sum() / bp),
                    ObsSource::PriceFactor => operator.factor[c] as f32,
                    ObsSource::Price => price_f,
                    ObsSource::HourSin => s,
                    ObsSource::HourCos => co,
                    ObsSource::Message(u, j) => finite(msg_held[u][[c, j]]),
                };
            }
        };
        let shared_row = &mut pt.s.shared_row;
        let base_row = &mut pt.s.base_row;
        if shared {
            let l = &p.base_layouts[0];
            fill(&mut shared_row[..l.dim()], &l.sources);
        }
        let t = self.step_in_episode[c];
        for (e, layout) in p.base_layouts.iter().enumerate() {
            let mut row = pt.obs[e].row_mut(lc);
            let out = row.as_slice_mut().expect("observation rows are contiguous");
            let dim = layout.dim();
            match &mut pt.hist[e] {
                None if shared => out.copy_from_slice(&shared_row[..dim]),
                None => fill(out, &layout.sources),
                Some(h) => {
                    let base = &mut base_row[..dim];
                    if shared {
                        base.copy_from_slice(&shared_row[..dim]);
                    } else {
                        fill(base, &layout.sources);
                    }
                    h.record(lc, t, base);
                    h.assemble(lc, t, out);
                }
            }
        }
    }
}
