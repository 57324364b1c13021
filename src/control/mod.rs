//! The batched control loop: pandapower's `runpp(net, run_control=True)` for
//! every copy of a batch at once, with the controllers of
//! [`crate::network::Controller`].
//!
//! Per copy (copies are independent):
//!
//! 1. power flow;
//! 2. every controller that is not settled (in list order) moves once — a tap
//!    controller one tap step, a shunt controller `increment` steps;
//! 3. if none moved, the copy is settled; else power flow again and back to 2,
//!    at most [`ControlOptions::max_iterations`] times.
//!
//! On the CPU backend the loop runs on shards of the batch, one per pool
//! thread, each to the end on its own (`powerflow::cpu` `run_shards`), and on
//! the GPU backend driven from several host threads on each part of the
//! batch likewise (`powerflow::gpu` `GpuParts::run_parts`); copies are
//! independent, so the results are bit for bit those of one loop over the
//! whole batch.
//!
//! A copy whose power flow fails stops controlling (it is reported in
//! [`ControlLoop::failed`]); a copy that still moves after the cap is reported
//! unsettled (pandapower raises `ControllerNotConverged` there, after one more
//! move and power flow). Settled copies are not solved again
//! ([`PowerFlow::solve_active`]). The final taps and steps stay in the
//! backend's inputs, so the next run starts from them.
//!
//! Details as pandapower 3.5.6 has them (`run_control.py`,
//! `DiscreteTapControl.py`, `shunt_control.py`): within an iteration each
//! controller checks `is_converged` and, if not, makes its `control_step`, in
//! list order (pandapower's `order`), all against the same power flow; the
//! loop ends when no controller moved. A controller that is not settled but
//! cannot move (a voltage exactly on a band edge) keeps the copy unsettled,
//! as in pandapower. `hunting_limit` only records history in 3.5.6 and is not
//! modelled; several controller `level`s are rejected at import.

use crate::complex::C64;
use crate::error::{Error, Result};
use crate::network::{Controller, Network, TapSide};
use crate::powerflow::admittance::trafo_branch;
use crate::powerflow::batch::{CopyControl, CopyReadings};
use crate::powerflow::tap_warm::{downstream_nodes, tap_move_factor};
use crate::powerflow::{Plan, PowerFlow};
use ndarray::{Array2, ArrayView2};
use std::sync::Mutex;

/// Options of the control loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControlOptions {
    /// Most control iterations (move + power flow) per copy; pandapower's
    /// `max_iter` of `run_control` (default 30).
    pub max_iterations: u32,
    /// `None` (the default): every power flow of the loop is solved to the
    /// plan's tolerance, as pandapower does. `Some(t)`: the loop first settles
    /// every copy on *screening* power flows solved only to `t` p.u. (cheaper:
    /// fewer iterations per re-solve), then re-solves every copy to the plan's
    /// tolerance and goes on controlling from those results until settled.
    /// The final state therefore meets the same conditions (every controlled
    /// voltage inside its band, or its tap at a limit, on fully converged
    /// results); only where a voltage lies within about `t` of a threshold can
    /// the path, and so the settled position, differ from the default's.
    pub screening_tolerance_pu: Option<f64>,
    /// `None` (the default): every control iteration is followed by a power
    /// flow, as in pandapower. `Some(m)`: a copy's power flow after a move is
    /// skipped when its next decision is already certain: the voltages behind
    /// each moved tap changer are predicted to follow its ratio (the warm
    /// start both solvers use, `powerflow::tap_warm`), and if every
    /// predicted voltage lies more than `m` p.u. (times the number of
    /// predictions in a row) from each of its controller's thresholds, and some
    /// controller still has to move, the controllers move on that prediction.
    /// A copy is only ever found settled on a power flow, so the final state
    /// meets the same conditions; no shunt step may have moved (its effect is
    /// not predicted), and the move that reaches the iteration cap is always
    /// solved. Needs a backend that gives its plan ([`PowerFlow::plan`]).
    pub predict_margin_pu: Option<f64>,
}

impl Default for ControlOptions {
    fn default() -> Self {
        ControlOptions {
            max_iterations: 30,
            screening_tolerance_pu: None,
            predict_margin_pu: None,
        }
    }
}

/// What one [`ControlLoop::run`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControlSummary {
    /// Copies in the batch.
    pub batch: usize,
    /// Copies whose controllers all settled.
    pub settled: usize,
    /// Copies whose power flow failed (they stopped controlling).
    pub failed: usize,
    /// Mean control iterations over copies.
    pub mean_iterations: f64,
    /// Most control iterations of any copy.
    pub max_iterations: u32,
    /// Power-flow calls (the first included); on the CPU backend's shards,
    /// the most of any shard.
    pub solves: u32,
}

/// A controller resolved against the network.
#[derive(Debug, Clone)]
enum Compiled {
    Tap {
        trafo: usize,
        /// Measured bus.
        bus: usize,
        /// `+1`: a higher tap lowers the measured voltage.
        coeff: i8,
        lower: f64,
        upper: f64,
        min: f64,
        max: f64,
        /// Trafo out of service or measured bus at an ext_grid: never acts.
        idle: bool,
        /// Line-drop compensation: impedance in the measured bus's p.u.
        ldc: Option<C64>,
        /// With line-drop compensation: the trafo's admittance at each whole
        /// tap position `min, min + 1, …, max` (the loop reads it every iteration).
        adm_by_tap: Vec<crate::powerflow::admittance::BranchAdm>,
    },
    Shunt {
        shunt: usize,
        bus: usize,
        set: f64,
        tol: f64,
        increment: f64,
        /// sign(q_mvar): −1 for a capacitor.
        sign: f64,
        max_step: f64,
        /// Shunt out of service or measured bus at an ext_grid.
        idle: bool,
    },
}

impl Compiled {
    /// Its trafo's tap position or its shunt's step in copy `c` of `t` (0 for
    /// an idle controller, which never reads it).
    fn position<T: CopyControl + ?Sized>(&self, t: &T, c: usize) -> f64 {
        match *self {
            Compiled::Tap { idle: true, .. } | Compiled::Shunt { idle: true, .. } => 0.0,
            Compiled::Tap { trafo, .. } => t.tap_pos(c, trafo),
            Compiled::Shunt { shunt, .. } => t.shunt_step(c, shunt),
        }
    }

    /// Whether the controller is settled at measured voltage `v`, with its
    /// trafo's tap or its shunt's step at `pos` ([`Compiled::position`]; an
    /// idle controller always is).
    fn settled(&self, v: f64, pos: f64) -> bool {
        match *self {
            Compiled::Tap { idle: true, .. } | Compiled::Shunt { idle: true, .. } => true,
            Compiled::Tap {
                coeff,
                lower,
                upper,
                min,
                max,
                ..
            } => tap_settled(v, pos, coeff, lower, upper, min, max),
            Compiled::Shunt {
                set,
                tol,
                sign,
                max_step,
                ..
            } => shunt_settled(v, pos, set, tol, sign, max_step),
        }
    }

    /// The voltages at which its decision changes: the first `n` of the
    /// array (none for an idle controller).
    fn thresholds(&self) -> ([f64; 3], usize) {
        match *self {
            Compiled::Tap { idle: true, .. } | Compiled::Shunt { idle: true, .. } => ([0.0; 3], 0),
            Compiled::Tap { lower, upper, .. } => ([lower, upper, 0.0], 2),
            Compiled::Shunt { set, tol, .. } => ([set - tol, set, set + tol], 3),
        }
    }
}

/// Runs a network's controllers on every copy of a batch.
pub struct ControlLoop {
    net: Network,
    ctrls: Vec<Compiled>,
    batch: usize,
    options: ControlOptions,
    iterations: Vec<u32>,
    settled: Vec<bool>,
    failed: Vec<bool>,
    active: Vec<bool>,
    /// Buses whose voltage angle the loop reads (both ends of every
    /// line-drop compensated trafo), through the result tables on backends
    /// other than the CPU's ([`CopyReadings::voltage`]).
    va_buses: Vec<usize>,
    /// Buses whose voltage magnitude the loop reads (every controlled bus and
    /// the `va_buses`).
    vm_buses: Vec<usize>,
    moves: Array2<u32>,
    /// Measured (or compensated) voltage per copy and controller, NaN where the bus is dead.
    vm: Array2<f64>,
    /// Copies solved by the last power flow (the ones `measure` reads).
    solved: Vec<bool>,
    /// Per copy: decisions made on predicted voltages in a row.
    predicted: Vec<u32>,
    /// With [`ControlOptions::predict_margin_pu`]: which moves scale which
    /// measured voltages (made from the backend's plan at the first run).
    predictor: Option<Predictor>,
    /// Power flows skipped on a prediction in the last run (copies × iterations).
    skipped: u64,
}

impl ControlLoop {
    /// Resolve `controllers` (validated against `net`; out-of-service ones are
    /// dropped from the loop but keep their column in [`moves`](Self::moves))
    /// for `batch` copies.
    pub fn new(
        net: &Network,
        controllers: &[Controller],
        batch: usize,
        options: ControlOptions,
    ) -> Result<ControlLoop> {
        crate::network::validate_controllers(net, controllers)?;
        let slack_bus = |b: usize| net.ext_grids.iter().any(|e| e.in_service && e.bus == b);
        let ctrls = controllers
            .iter()
            .map(|c| match c {
                Controller::DiscreteTap(t) => {
                    let tr = &net.trafos[t.trafo];
                    let tap = tr.tap.as_ref().expect("validated: trafo has a tap changer");
                    let bus = match t.side {
                        TapSide::Hv => tr.hv_bus,
                        TapSide::Lv => tr.lv_bus,
                    };
                    let mut coeff: i8 = if tap.side == TapSide::Hv { 1 } else { -1 };
                    if t.side == TapSide::Hv {
                        coeff = -coeff;
                    }
                    if tap.step_percent < 0.0 {
                        coeff = -coeff;
                    }
                    Compiled::Tap {
                        trafo: t.trafo,
                        bus,
                        coeff,
                        lower: t.vm_lower_pu,
                        upper: t.vm_upper_pu,
                        min: tap.min,
                        max: tap.max,
                        idle: !t.in_service || !tr.in_service || slack_bus(bus),
                        ldc: t
                            .line_drop
                            .map(|ld| ld.z_pu(net.buses[bus].vn_kv, net.sn_mva)),
                        adm_by_tap: if t.line_drop.is_some() && tap.max - tap.min <= 1024.0 {
                            (0..=(tap.max - tap.min) as i64)
                                .map(|i| trafo_branch(net, tr, tap.min + i as f64).admittance())
                                .collect()
                        } else {
                            vec![]
                        },
                    }
                }
                Controller::DiscreteShunt(s) => {
                    let sh = &net.shunts[s.shunt];
                    let bus = s.measured_bus(net);
                    Compiled::Shunt {
                        shunt: s.shunt,
                        bus,
                        set: s.vm_set_pu,
                        tol: s.tol,
                        increment: s.increment as f64,
                        sign: if sh.q_mvar > 0.0 {
                            1.0
                        } else if sh.q_mvar < 0.0 {
                            -1.0
                        } else {
                            0.0
                        },
                        max_step: sh.max_step as f64,
                        idle: !s.in_service || !sh.in_service || slack_bus(bus),
                    }
                }
            })
            .collect::<Vec<_>>();
        let n = ctrls.len();
        let mut va_buses: Vec<usize> = ctrls
            .iter()
            .filter_map(|c| match *c {
                Compiled::Tap {
                    trafo,
                    ldc: Some(_),
                    ..
                } => Some([net.trafos[trafo].hv_bus, net.trafos[trafo].lv_bus]),
                _ => None,
            })
            .flatten()
            .collect();
        va_buses.sort_unstable();
        va_buses.dedup();
        // `measure` reads |V| at the controlled buses and both ends of the
        // line-drop compensated trafos.
        let mut vm_buses: Vec<usize> = ctrls
            .iter()
            .map(|c| match c {
                Compiled::Tap { bus, .. } | Compiled::Shunt { bus, .. } => *bus,
            })
            .chain(va_buses.iter().copied())
            .collect();
        vm_buses.sort_unstable();
        vm_buses.dedup();
        Ok(ControlLoop {
            vm_buses,
            va_buses,
            net: net.clone(),
            ctrls,
            batch,
            options,
            iterations: vec![0; batch],
            settled: vec![false; batch],
            failed: vec![false; batch],
            active: vec![false; batch],
            moves: Array2::zeros((batch, n)),
            vm: Array2::from_elem((batch, n), f64::NAN),
            solved: vec![false; batch],
            predicted: vec![0; batch],
            predictor: None,
            skipped: 0,
        })
    }

    /// Number of copies.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Solve, then (per copy) every unsettled controller moves once, re-solve,
    /// until every controller of the copy is settled or the cap; the final
    /// taps/steps stay in the backend's inputs so they persist to the next call
    /// (the caller may overwrite them).
    pub fn run(&mut self, pf: &mut dyn PowerFlow) -> Result<ControlSummary> {
        let b = self.batch;
        if pf.batch() != b {
            return Err(Error::InvalidInput(format!(
                "the control loop was made for {b} copies, the power flow has {}",
                pf.batch()
            )));
        }
        {
            let inp = pf.inputs();
            if inp.trafo_tap_pos.ncols() != self.net.trafos.len()
                || inp.shunt_step.ncols() != self.net.shunts.len()
            {
                return Err(Error::InvalidInput(format!(
                    "the power flow has {} trafos and {} shunts, the controllers' network {} and {}",
                    inp.trafo_tap_pos.ncols(),
                    inp.shunt_step.ncols(),
                    self.net.trafos.len(),
                    self.net.shunts.len()
                )));
            }
        }
        self.iterations.fill(0);
        self.skipped = 0;
        self.settled.fill(false);
        self.failed.fill(false);
        self.active.fill(true);
        self.moves.fill(0);
        if self.options.predict_margin_pu.is_some() && self.predictor.is_none() {
            self.predictor = pf
                .plan()
                .and_then(|p| Predictor::new(&self.net, &self.ctrls, p));
        }
        let rules = Rules {
            net: &self.net,
            ctrls: &self.ctrls,
            options: self.options,
            predictor: self.predictor.as_ref(),
        };
        let n = self.ctrls.len();
        let copies = Copies {
            iterations: &mut self.iterations,
            settled: &mut self.settled,
            failed: &mut self.failed,
            active: &mut self.active,
            solved: &mut self.solved,
            predicted: &mut self.predicted,
            moves: self.moves.as_slice_mut().expect("a standard-layout table"),
            vm: self.vm.as_slice_mut().expect("a standard-layout table"),
            n,
        };
        let (solves, skipped) = if let Some(gpu) = pf.as_gpu_parts_mut() {
            // The GPU backend in parts runs the loop on each part, on its
            // own thread, to the end (copies are independent).
            let parts: Vec<_> = (copies.split(gpu.ranges()).into_iter())
                .map(Mutex::new)
                .collect();
            let (vm_buses, va_buses) = (&self.vm_buses, &self.va_buses);
            shards_total(gpu.run_parts(|i, part| {
                let mut copies = parts[i].lock().unwrap_or_else(|e| e.into_inner());
                part.defer_results_at(vm_buses, va_buses);
                let out = rules.iterate(&mut copies, &mut Whole(part));
                part.finish_results();
                out
            })?)?
        } else {
            // The CPU backend runs the loop on shards of the batch, one per
            // thread, each to the end on its own (copies are independent).
            match pf.as_cpu_mut().and_then(|cpu| {
                let ranges = cpu.shard_ranges()?;
                Some((cpu, ranges))
            }) {
                Some((cpu, ranges)) => {
                    let parts: Vec<_> = copies.split(&ranges).into_iter().map(Mutex::new).collect();
                    shards_total(cpu.run_shards(&ranges, &self.vm_buses, |i, shard| {
                        let mut part = parts[i].lock().unwrap_or_else(|e| e.into_inner());
                        rules.iterate(&mut part, shard)
                    })?)?
                }
                None => {
                    // Between solves the loop reads only voltages (magnitudes, and
                    // angles at the line-drop compensated trafos, which the CPU
                    // backend gives from its states): the backend may leave the
                    // branch tables for the end.
                    let va = if pf.as_cpu().is_some() {
                        &[][..]
                    } else {
                        &self.va_buses[..]
                    };
                    pf.defer_results_at(&self.vm_buses, va);
                    let mut copies = copies;
                    let out = rules.iterate(&mut copies, &mut Whole(pf));
                    pf.finish_results();
                    out?
                }
            }
        };
        self.skipped = skipped;
        Ok(self.summary(solves))
    }

    /// The last run's summary, with its `solves`.
    fn summary(&self, solves: u32) -> ControlSummary {
        let b = self.batch;
        let settled = self.settled.iter().filter(|&&s| s).count();
        let failed = self.failed.iter().filter(|&&s| s).count();
        ControlSummary {
            batch: b,
            settled,
            failed,
            mean_iterations: self.iterations.iter().map(|&i| i as f64).sum::<f64>()
                / b.max(1) as f64,
            max_iterations: self.iterations.iter().copied().max().unwrap_or(0),
            solves,
        }
    }

    /// Copy power flows the last run skipped because the decisions after them
    /// were certain on predicted voltages ([`ControlOptions::predict_margin_pu`]).
    pub fn skipped_power_flows(&self) -> u64 {
        self.skipped
    }

    /// Control iterations per copy in the last run (0 = the first power flow already settled).
    pub fn iterations(&self) -> &[u32] {
        &self.iterations
    }

    /// Whether each copy's controllers all settled in the last run.
    pub fn settled(&self) -> &[bool] {
        &self.settled
    }

    /// Whether each copy's power flow failed in the last run (it stopped controlling).
    pub fn failed(&self) -> &[bool] {
        &self.failed
    }

    /// Steps moved in the last run, `[B, n_controllers]` (taps: one per move;
    /// shunts: `|Δstep|`).
    pub fn moves(&self) -> ArrayView2<'_, u32> {
        self.moves.view()
    }

    /// The measured voltage each controller saw at the last power flow of each
    /// copy, `[B, n_controllers]` (line-drop compensated where set; NaN where
    /// the bus is not energised or the copy failed first).
    pub fn measured_vm(&self) -> ArrayView2<'_, f64> {
        self.vm.view()
    }
}

/// The loop's solves (the most of any shard) and skipped power flows (their
/// sum) over shards run side by side; the first shard's error.
fn shards_total(out: Vec<Result<(u32, u64)>>) -> Result<(u32, u64)> {
    let mut total = (0, 0);
    for r in out {
        let (solves, skipped) = r?;
        total = (total.0.max(solves), total.1 + skipped);
    }
    Ok(total)
}

/// First-order prediction of a copy's measured voltages after tap moves, for
/// [`ControlOptions::predict_margin_pu`].
#[derive(Debug, Clone)]
struct Predictor {
    /// Per controller: the tap controllers whose trafo's moves scale its
    /// measured voltage (its bus lies behind that trafo, cut off from every
    /// slack without it).
    upstream: Vec<Vec<usize>>,
    /// Per controller: for a tap controller whose trafo is such a cut, whether
    /// the nodes behind it are on its LV side (`None`: its moves are not predicted).
    lv_down: Vec<Option<bool>>,
}

impl Predictor {
    /// `None` where the plan is not of the controllers' network.
    fn new(net: &Network, ctrls: &[Compiled], plan: &Plan) -> Option<Predictor> {
        if plan.net.buses.len() != net.buses.len() || plan.net.trafos.len() != net.trafos.len() {
            return None;
        }
        let down = downstream_nodes(plan);
        let n = ctrls.len();
        let (mut upstream, mut lv_down) = (vec![vec![]; n], vec![None; n]);
        for (i, ci) in ctrls.iter().enumerate() {
            let Compiled::Tap { trafo, .. } = *ci else {
                continue;
            };
            let Some(ti) = plan.tap_trafos.iter().position(|&(k, _)| k == trafo) else {
                continue;
            };
            let Some((lv, nodes)) = &down[ti] else {
                continue;
            };
            // A PV node behind the trafo holds its voltage (and its
            // neighbours' nearly): the ratio does not predict them.
            if nodes.iter().any(|&x| plan.is_pv[x as usize]) {
                continue;
            }
            lv_down[i] = Some(*lv);
            for (j, cj) in ctrls.iter().enumerate() {
                let (Compiled::Tap { bus, .. } | Compiled::Shunt { bus, .. }) = *cj;
                let node = plan.bus_node.get(bus).copied().flatten();
                if node.is_some_and(|x| nodes.binary_search(&(x as u32)).is_ok()) {
                    upstream[j].push(i);
                }
            }
        }
        Some(Predictor { upstream, lv_down })
    }

    /// How tap controller `j`'s move of `trafo` from `from` to `to` scales the
    /// voltages behind it (NaN where it is not predicted).
    fn factor(&self, net: &Network, j: usize, trafo: usize, from: f64, to: f64) -> f64 {
        self.lv_down[j]
            .and_then(|lv| tap_move_factor(&net.trafos[trafo], from, to, lv))
            .unwrap_or(f64::NAN)
    }

    /// Scale one copy's measured voltages `vm` in place by the factors of the
    /// moves just made (1 where a controller did not move); whether the
    /// decisions on them are certain: every voltage farther than `margin`
    /// from each threshold of its controller, and some controller still to move.
    fn predict(
        &self,
        ctrls: &[Compiled],
        factor: &[f64],
        vm: &mut [f64],
        pos: &[f64],
        margin: f64,
    ) -> bool {
        if factor.iter().any(|f| !f.is_finite()) {
            return false;
        }
        let far = |v: f64, x: f64| (v - x).abs() > margin;
        let mut moves = false;
        for (j, ctrl) in ctrls.iter().enumerate() {
            let v = self.upstream[j].iter().fold(vm[j], |v, &i| v * factor[i]);
            vm[j] = v;
            let (at, n) = ctrl.thresholds();
            if !at[..n].iter().all(|&x| far(v, x)) {
                return false;
            }
            moves |= !ctrl.settled(v, pos[j]);
        }
        moves
    }
}

/// Active copies from which [`Whole`] measures on the backend's pool.
const PARALLEL_MEASURE: usize = 256;
/// Copies per parallel task of [`Whole`]'s measuring.
const MEASURE_CHUNK: usize = 64;

/// How a loop measures its copies: [`Measure::copies`] on this thread,
/// except for a whole backend with a pool ([`Whole`]).
trait Measured: CopyControl {
    /// The measured voltages of the `solved` copies into `vm` (marking failed copies).
    fn measure(&self, m: &Measure, solved: &[bool], failed: &mut [bool], vm: &mut [f64]) {
        m.copies(self, 0, solved, failed, vm)
    }
}

impl Measured for crate::powerflow::cpu::Shard<'_> {}

/// A whole backend as a [`CopyControl`].
struct Whole<'a>(&'a mut dyn PowerFlow);

/// A backend's result and input tables as [`CopyReadings`] (shared by the
/// parallel tasks of [`Whole`]'s measuring); the CPU backend's complex
/// voltages from its copies' states.
struct Tables<'a> {
    res: &'a crate::powerflow::BatchResults,
    inp: &'a crate::powerflow::BatchInputs,
    cpu: Option<&'a crate::powerflow::CpuBatch>,
}

impl CopyReadings for Tables<'_> {
    fn converged(&self, c: usize) -> bool {
        self.res.converged[c]
    }
    fn vm_pu(&self, c: usize, bus: usize) -> f64 {
        self.res.vm_pu[(c, bus)]
    }
    fn voltage(&self, c: usize, bus: usize) -> C64 {
        match self.cpu {
            Some(cpu) => cpu.voltage(c, bus),
            None => C64::from_polar(
                self.res.vm_pu[(c, bus)],
                self.res.va_degree[(c, bus)].to_radians(),
            ),
        }
    }
    fn tap_pos(&self, c: usize, trafo: usize) -> f64 {
        self.inp.trafo_tap_pos[(c, trafo)]
    }
}

impl Whole<'_> {
    fn tables(&self) -> Tables<'_> {
        Tables {
            res: self.0.results(),
            inp: self.0.inputs(),
            cpu: self.0.as_cpu(),
        }
    }
}

impl CopyReadings for Whole<'_> {
    fn converged(&self, c: usize) -> bool {
        self.tables().converged(c)
    }
    fn vm_pu(&self, c: usize, bus: usize) -> f64 {
        self.tables().vm_pu(c, bus)
    }
    fn voltage(&self, c: usize, bus: usize) -> C64 {
        self.tables().voltage(c, bus)
    }
    fn tap_pos(&self, c: usize, trafo: usize) -> f64 {
        self.tables().tap_pos(c, trafo)
    }
}

impl CopyControl for Whole<'_> {
    fn solve(&mut self, active: Option<&[bool]>) -> Result<()> {
        match active {
            None => self.0.solve().map(drop),
            Some(a) => self.0.solve_active(a).map(drop),
        }
    }
    fn set_tolerance(&mut self, tolerance_pu: Option<f64>) {
        self.0.set_tolerance(tolerance_pu);
    }
    fn set_tap_pos(&mut self, c: usize, trafo: usize, pos: f64) {
        self.0.controls_mut().0[(c, trafo)] = pos;
    }
    fn shunt_step(&self, c: usize, shunt: usize) -> f64 {
        self.0.inputs().shunt_step[(c, shunt)]
    }
    fn set_shunt_step(&mut self, c: usize, shunt: usize, step: f64) {
        self.0.controls_mut().1[(c, shunt)] = step;
    }
}

impl Measured for Whole<'_> {
    /// With many solved copies, in parallel on the backend's pool.
    fn measure(&self, m: &Measure, solved: &[bool], failed: &mut [bool], vm: &mut [f64]) {
        let n = m.ctrls.len();
        let count = solved.iter().filter(|&&a| a).count();
        let tables = self.tables();
        match self.0.pool() {
            Some(pool) if count >= PARALLEL_MEASURE && n > 0 => {
                use rayon::prelude::*;
                pool.install(|| {
                    vm.par_chunks_mut(MEASURE_CHUNK * n)
                        .zip(failed.par_chunks_mut(MEASURE_CHUNK))
                        .zip(solved.par_chunks(MEASURE_CHUNK))
                        .enumerate()
                        .for_each(|(k, ((vm, failed), active))| {
                            m.copies(&tables, k * MEASURE_CHUNK, active, failed, vm)
                        })
                });
            }
            _ => m.copies(&tables, 0, solved, failed, vm),
        }
    }
}

/// The controllers and options of a loop (shared by its shards).
struct Rules<'a> {
    net: &'a Network,
    ctrls: &'a [Compiled],
    options: ControlOptions,
    predictor: Option<&'a Predictor>,
}

/// The per-copy state of a loop over some copies (all of them, or a shard's).
pub(crate) struct Copies<'a> {
    iterations: &'a mut [u32],
    settled: &'a mut [bool],
    failed: &'a mut [bool],
    active: &'a mut [bool],
    solved: &'a mut [bool],
    predicted: &'a mut [u32],
    /// `n` per copy.
    moves: &'a mut [u32],
    /// `n` per copy.
    vm: &'a mut [f64],
    /// Controllers.
    n: usize,
}

impl<'a> Copies<'a> {
    /// Split into the copies of consecutive `ranges` (covering `0..len`).
    fn split(self, ranges: &[std::ops::Range<usize>]) -> Vec<Copies<'a>> {
        let mut rest = self;
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            let (head, tail) = rest.split_at(r.len());
            out.push(head);
            rest = tail;
        }
        out
    }

    fn split_at(self, k: usize) -> (Copies<'a>, Copies<'a>) {
        let n = self.n;
        let (i0, i1) = self.iterations.split_at_mut(k);
        let (s0, s1) = self.settled.split_at_mut(k);
        let (f0, f1) = self.failed.split_at_mut(k);
        let (a0, a1) = self.active.split_at_mut(k);
        let (d0, d1) = self.solved.split_at_mut(k);
        let (p0, p1) = self.predicted.split_at_mut(k);
        let (m0, m1) = self.moves.split_at_mut(k * n);
        let (v0, v1) = self.vm.split_at_mut(k * n);
        (
            Copies {
                iterations: i0,
                settled: s0,
                failed: f0,
                active: a0,
                solved: d0,
                predicted: p0,
                moves: m0,
                vm: v0,
                n,
            },
            Copies {
                iterations: i1,
                settled: s1,
                failed: f1,
                active: a1,
                solved: d1,
                predicted: p1,
                moves: m1,
                vm: v1,
                n,
            },
        )
    }
}

impl Rules<'_> {
    /// The loop itself over `cp`'s copies: (power-flow calls, copy power flows
    /// skipped on a prediction).
    fn iterate<T: Measured + ?Sized>(&self, cp: &mut Copies, t: &mut T) -> Result<(u32, u64)> {
        let b = cp.iterations.len();
        let n = cp.n;
        let margin = self
            .options
            .predict_margin_pu
            .filter(|_| self.predictor.is_some());
        let mut factor = vec![1.0; n];
        let mut pos = vec![0.0; n];
        let mut skipped = 0u64;
        cp.solved.fill(true);
        cp.predicted.fill(0);
        let mut screening = self.options.screening_tolerance_pu.is_some();
        if screening {
            t.set_tolerance(self.options.screening_tolerance_pu);
        }
        let first = t.solve(None);
        if first.is_err() {
            t.set_tolerance(None);
        }
        first?;
        let mut solves = 1u32;
        let measure = Measure {
            net: self.net,
            ctrls: self.ctrls,
        };
        let max_it = self.options.max_iterations;
        loop {
            t.measure(&measure, cp.solved, cp.failed, cp.vm);
            let mut any = false;
            let mut any_solve = false;
            for c in 0..b {
                cp.solved[c] = false;
                if !cp.active[c] {
                    continue;
                }
                if cp.failed[c] {
                    cp.active[c] = false;
                    continue;
                }
                let may_move = cp.iterations[c] < max_it;
                let mut moved = false;
                let mut shunt_moved = false;
                factor.fill(1.0);
                let vm = &mut cp.vm[c * n..(c + 1) * n];
                let moves = &mut cp.moves[c * n..(c + 1) * n];
                for (j, ctrl) in self.ctrls.iter().enumerate() {
                    let v = vm[j];
                    // Read now: an earlier controller of the copy may have moved it.
                    if ctrl.settled(v, ctrl.position(t, c)) {
                        continue;
                    }
                    moved = true;
                    match *ctrl {
                        Compiled::Tap {
                            trafo,
                            coeff,
                            lower,
                            upper,
                            min,
                            max,
                            ..
                        } => {
                            let p = t.tap_pos(c, trafo);
                            let d = tap_move(v, p, coeff, lower, upper, min, max);
                            if may_move && d != 0.0 {
                                t.set_tap_pos(c, trafo, p + d);
                                moves[j] += 1;
                                if let Some(pr) = self.predictor {
                                    factor[j] = pr.factor(self.net, j, trafo, p, p + d);
                                }
                            }
                        }
                        Compiled::Shunt {
                            shunt,
                            set,
                            tol,
                            increment,
                            sign,
                            max_step,
                            ..
                        } => {
                            let step = t.shunt_step(c, shunt);
                            if may_move {
                                let new = shunt_move(v, step, set, tol, increment, sign, max_step);
                                t.set_shunt_step(c, shunt, new);
                                moves[j] += (new - step).abs() as u32;
                                shunt_moved |= new != step;
                            }
                        }
                    }
                }
                if !moved {
                    cp.settled[c] = true;
                    cp.active[c] = false;
                } else if !may_move {
                    cp.active[c] = false;
                } else {
                    cp.iterations[c] += 1;
                    any = true;
                    // Skip the power flow where the next decision is certain
                    // (never after a shunt move, never for the capped move).
                    let certain = match (margin, self.predictor) {
                        (Some(m), Some(pr)) if !shunt_moved && cp.iterations[c] < max_it => {
                            let m = m * (cp.predicted[c] + 1) as f64;
                            for (j, ctrl) in self.ctrls.iter().enumerate() {
                                pos[j] = ctrl.position(t, c);
                            }
                            pr.predict(self.ctrls, &factor, vm, &pos, m)
                        }
                        _ => false,
                    };
                    if certain {
                        cp.predicted[c] += 1;
                        skipped += 1;
                    } else {
                        cp.predicted[c] = 0;
                        cp.solved[c] = true;
                        any_solve = true;
                    }
                }
            }
            if !any {
                if !screening {
                    break;
                }
                // Settled on screening solves: solve every copy to the full
                // tolerance and control on from those results.
                screening = false;
                t.set_tolerance(None);
                for c in 0..b {
                    cp.active[c] = !cp.failed[c];
                    cp.solved[c] = cp.active[c];
                    cp.predicted[c] = 0;
                    cp.settled[c] = false;
                }
                any_solve = true;
            }
            if !any_solve {
                // Every copy still controlling moves on a prediction.
                continue;
            }
            let r = t.solve(Some(cp.solved));
            if r.is_err() {
                t.set_tolerance(None);
            }
            r?;
            solves += 1;
        }
        Ok((solves, skipped))
    }
}

/// What measuring reads besides the copies' results.
pub(crate) struct Measure<'a> {
    net: &'a Network,
    ctrls: &'a [Compiled],
}

impl Measure<'_> {
    /// Copies `c0 ..` of `r` (`active[k]`, `failed[k]`, `vm[k·n ..]` of copy `c0 + k`).
    fn copies<R: CopyReadings + ?Sized>(
        &self,
        r: &R,
        c0: usize,
        active: &[bool],
        failed: &mut [bool],
        vm: &mut [f64],
    ) {
        let net = self.net;
        let n = self.ctrls.len();
        for (k, &on) in active.iter().enumerate() {
            if !on {
                continue;
            }
            let c = c0 + k;
            if !r.converged(c) {
                failed[k] = true;
                continue;
            }
            for (j, ctrl) in self.ctrls.iter().enumerate() {
                let bus = match ctrl {
                    Compiled::Tap { bus, .. } | Compiled::Shunt { bus, .. } => *bus,
                };
                let m = r.vm_pu(c, bus);
                // Isolated and out-of-service buses read 0: pandapower's NaN.
                let mut v = if m > 0.0 && m.is_finite() {
                    m
                } else {
                    f64::NAN
                };
                if let Compiled::Tap {
                    trafo,
                    ldc: Some(z),
                    min,
                    ref adm_by_tap,
                    ..
                } = *ctrl
                {
                    if v.is_finite() {
                        let t = &net.trafos[trafo];
                        let (vh, vl) = (r.voltage(c, t.hv_bus), r.voltage(c, t.lv_bus));
                        let pos = r.tap_pos(c, trafo);
                        let a = match adm_by_tap.get((pos - min) as usize) {
                            Some(a) if pos.fract() == 0.0 && pos >= min => *a,
                            _ => trafo_branch(net, t, pos).admittance(),
                        };
                        // Current injected into the trafo at the measured side; the
                        // current leaving it towards the feeder is its negative.
                        let (vs, i_in) = if bus == t.lv_bus {
                            (vl, a.ytf * vh + a.ytt * vl)
                        } else {
                            (vh, a.yff * vh + a.yft * vl)
                        };
                        v = compensated_vm(vs, -i_in, z);
                    }
                }
                vm[k * n + j] = v;
            }
        }
    }
}

/// Line-drop compensated voltage magnitude `|V − I·Z|` (all in the bus's p.u.;
/// `i_out` is the current leaving the regulator towards the feeder).
pub fn compensated_vm(v: C64, i_out: C64, z: C64) -> f64 {
    (v - i_out * z).abs()
}

/// pandapower `DiscreteTapControl.control_step`: the tap change (−1, 0, +1)
/// for measured voltage `v` at tap `pos` (NaN voltage: no move).
pub fn tap_move(v: f64, pos: f64, coeff: i8, lower: f64, upper: f64, min: f64, max: f64) -> f64 {
    if coeff == 1 {
        if v < lower && pos > min {
            -1.0
        } else if v > upper && pos < max {
            1.0
        } else {
            0.0
        }
    } else if v < lower && pos < max {
        1.0
    } else if v > upper && pos > min {
        -1.0
    } else {
        0.0
    }
}

/// pandapower `DiscreteTapControl.is_converged`: inside the open band, at the
/// limit it would have to pass, or the bus is dead (NaN).
pub fn tap_settled(
    v: f64,
    pos: f64,
    coeff: i8,
    lower: f64,
    upper: f64,
    min: f64,
    max: f64,
) -> bool {
    if v.is_nan() {
        return true;
    }
    let at_limit = if coeff == 1 {
        (v < lower && pos == min) || (v > upper && pos == max)
    } else {
        (v < lower && pos == max) || (v > upper && pos == min)
    };
    at_limit || (lower < v && v < upper)
}

/// pandapower `DiscreteShuntController.is_converged` (a dead bus, NaN, counts as settled).
pub fn shunt_settled(v: f64, step: f64, set: f64, tol: f64, sign: f64, max_step: f64) -> bool {
    if v.is_nan() || (v - set).abs() < tol {
        return true;
    }
    if sign >= 0.0 {
        (v < set && step == 0.0) || (v > set && step == max_step)
    } else {
        (v < set && step == max_step) || (v > set && step == 0.0)
    }
}

/// pandapower `DiscreteShuntController.control_step`: the new step,
/// `step ± increment·sign` clipped to `[0, max_step]`.
pub fn shunt_move(
    v: f64,
    step: f64,
    set: f64,
    tol: f64,
    increment: f64,
    sign: f64,
    max_step: f64,
) -> f64 {
    let s = if v > set + tol {
        step + increment * sign
    } else if v <= set - tol {
        step - increment * sign
    } else {
        step
    };
    s.clamp(0.0, max_step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_step_directions() {
        // Tap on HV, LV measured: a higher tap lowers the LV voltage (coeff +1).
        assert_eq!(tap_move(0.95, 0.0, 1, 0.98, 1.02, -16.0, 16.0), -1.0);
        assert_eq!(tap_move(1.05, 0.0, 1, 0.98, 1.02, -16.0, 16.0), 1.0);
        assert_eq!(tap_move(1.00, 0.0, 1, 0.98, 1.02, -16.0, 16.0), 0.0);
        // coeff −1 (tap on LV, LV measured): the reverse.
        assert_eq!(tap_move(0.95, 0.0, -1, 0.98, 1.02, -16.0, 16.0), 1.0);
        assert_eq!(tap_move(1.05, 0.0, -1, 0.98, 1.02, -16.0, 16.0), -1.0);
        // At the limit: no move, and settled.
        assert_eq!(tap_move(1.05, -16.0, -1, 0.98, 1.02, -16.0, 16.0), 0.0);
        assert!(tap_settled(1.05, -16.0, -1, 0.98, 1.02, -16.0, 16.0));
        assert!(!tap_settled(1.05, -15.0, -1, 0.98, 1.02, -16.0, 16.0));
        // The band is open: its edges are not inside.
        assert!(!tap_settled(0.98, 0.0, 1, 0.98, 1.02, -16.0, 16.0));
        assert!(tap_settled(f64::NAN, 0.0, 1, 0.98, 1.02, -16.0, 16.0));
    }

    #[test]
    fn shunt_step_directions() {
        // Capacitor (sign −1): high voltage switches steps off, low voltage on.
        assert_eq!(shunt_move(1.05, 2.0, 1.0, 0.01, 1.0, -1.0, 4.0), 1.0);
        assert_eq!(shunt_move(0.95, 2.0, 1.0, 0.01, 2.0, -1.0, 4.0), 4.0);
        assert_eq!(shunt_move(0.95, 3.0, 1.0, 0.01, 2.0, -1.0, 4.0), 4.0);
        assert_eq!(shunt_move(1.005, 2.0, 1.0, 0.01, 1.0, -1.0, 4.0), 2.0);
        assert!(shunt_settled(1.005, 2.0, 1.0, 0.01, -1.0, 4.0));
        assert!(shunt_settled(0.95, 4.0, 1.0, 0.01, -1.0, 4.0));
        assert!(!shunt_settled(0.95, 3.0, 1.0, 0.01, -1.0, 4.0));
        assert!(shunt_settled(1.05, 0.0, 1.0, 0.01, -1.0, 4.0));
        // Reactor (sign +1): the reverse.
        assert_eq!(shunt_move(1.05, 2.0, 1.0, 0.01, 1.0, 1.0, 4.0), 3.0);
        assert!(shunt_settled(0.95, 0.0, 1.0, 0.01, 1.0, 4.0));
    }

    #[test]
    fn ldc_ieee34_regulator_1() {
        // R = 2.7 V, X = 1.6 V, PT 120, CT 100 A → Z = 3.24 + j1.92 Ω.
        let ld = crate::network::LineDrop {
            r_volt: 2.7,
            x_volt: 1.6,
            pt_ratio: 120.0,
            ct_primary_a: 100.0,
        };
        let z = ld.z_ohm();
        assert!((z.re - 3.24).abs() < 1e-12 && (z.im - 1.92).abs() < 1e-12);
        // 24.9 kV, 1 MVA: Z_b = 620.01 Ω.
        let zp = ld.z_pu(24.9, 1.0);
        assert!((zp.re - 3.24 / 620.01).abs() < 1e-12);
        // CT-rated current (100 A) in phase with V = 1 p.u.: the relay sees the
        // R setting as a drop, 2.7 V on the 120 V secondary base of 14.376 kV / 120.
        let i_base_a = 1.0e6 / (3f64.sqrt() * 24.9e3);
        let i = C64::new(100.0 / i_base_a, 0.0);
        let v = compensated_vm(C64::new(1.0, 0.0), i, zp);
        let v_sec_base = 24.9e3 / 3f64.sqrt() / 120.0;
        let hand = ((v_sec_base - 2.7).powi(2) + 1.6f64.powi(2)).sqrt() / v_sec_base;
        assert!((v - hand).abs() < 1e-12, "{v} vs {hand}");
    }
}
