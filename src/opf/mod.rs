//! The optimal baseline: a multi-period optimal power flow of a setup over one
//! episode with perfect foresight of prices and profiles.
//!
//! - [`model`]: the branch-flow (DistFlow) second-order-cone relaxation of the
//!   radial network, the devices and the environment's reward terms;
//! - [`bnb`]: best-first branch and bound over taps and capacitor steps;
//! - [`optimize`]: one horizon → an [`OptPlan`] (status, objective, gap, per
//!   hour the set-points in the `pf` scenario format and the OPF's voltages);
//! - [`check_plan`]: re-solve every planned hour with the AC power flow and
//!   compare voltages (the relaxation is exact when they agree).
//!
//! Hours: an episode starting on day `d` resets at CSV row `24·d` (devices at
//! their initial state, no reward) and step `k = 1..H` acts on row `24·d + k`
//! (see [`crate::env::vec_env`]); the plan covers rows `24·d + 1 ..= 24·d + H`.

pub mod bnb;
pub(crate) mod conic;
pub mod model;
pub mod replay;

pub use bnb::Status;
pub use model::Band;

use crate::env::vec_env::Split;
use crate::error::{Error, Result};
use crate::powerflow::scenarios::ScenarioInputs;
use crate::powerflow::{new_backend, BackendKind, BatchInputs, Plan, SolverOptions};
use crate::setup::Setup;
use model::Model;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// Options of one optimisation.
#[derive(Debug, Clone)]
pub struct OptimizeOptions {
    /// Data split.
    pub split: Split,
    /// Hours in the horizon (default: the setup's `max_episode_steps`).
    pub hours: Option<usize>,
    /// Voltage band: soft (env penalty) or hard.
    pub band: Band,
    /// Wall-clock limit of the branch and bound per horizon, in seconds.
    pub time_limit_s: f64,
    /// Relative gap at which the branch and bound stops.
    pub gap: f64,
    /// Solve only the continuous relaxation (integers relaxed).
    pub relax: bool,
    /// Floor `ε` of the loss regulariser in $/MWh of losses (see [`model`]).
    pub loss_eps: f64,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        OptimizeOptions {
            split: Split::Train,
            hours: None,
            band: Band::Soft,
            time_limit_s: 60.0,
            gap: bnb::OPTIMAL_GAP,
            relax: false,
            loss_eps: 0.1,
        }
    }
}

/// One planned hour.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanHour {
    /// Row of the split's CSV.
    pub hour: usize,
    /// Price in $/MWh.
    pub price: f64,
    /// Set-points for `powergrid pf` on the setup's network (element order).
    pub inputs: ScenarioInputs,
    /// The OPF's voltage magnitude per bus (0 for unsolved buses).
    pub vm_pu: Vec<f64>,
    /// Import at each PCC in MW (agents with a PCC, in config order).
    pub pcc_import_mw: Vec<f64>,
    /// State of charge of each storage unit after the hour (device order).
    pub soc: Vec<f64>,
}

/// The plan of one horizon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OptPlan {
    /// Setup name.
    pub setup: String,
    /// `train` or `test`.
    pub split: String,
    /// Start day (the episode resets at row `24·day`).
    pub day: usize,
    /// How the search ended.
    pub status: Status,
    /// The environment's cost over the horizon, summed over agents:
    /// `Σ_t Σ_agents (cost + penalty·safety)`, at the plan (the loss
    /// regulariser excluded).
    pub objective: f64,
    /// Mean reward per agent and step the objective implies: `−reward_scale·objective/(H·n_agents)`.
    pub mean_reward: f64,
    /// Relative gap proven by the branch and bound (on objective + regulariser).
    pub gap: f64,
    /// Lower bound on objective + regulariser.
    pub bound: f64,
    /// The loss regulariser's value at the plan ($).
    pub regularizer: f64,
    /// Objective + regulariser of the root relaxation.
    pub relaxation_objective: f64,
    /// Branch-and-bound nodes (conic solves).
    pub nodes: usize,
    /// Wall-clock seconds of the optimisation.
    pub solve_seconds: f64,
    /// Voltage band mode.
    pub band: Band,
    /// Hours (index in the horizon) where the over-voltage guard was switched on.
    pub guard_hours: Vec<usize>,
    /// Tap positions and capacitor steps, hour-major (taps, then capacitors).
    pub integers: Vec<f64>,
    /// The planned hours.
    pub hours: Vec<PlanHour>,
}

const GUARD_ROUNDS: usize = 3;
/// Cone slack `w_a·ℓ − P² − Q²` above which an hour counts as inexact (p.u.²).
const CONE_TOL: f64 = 1e-6;

/// Hours with a cone slack above [`CONE_TOL`].
fn cone_slack_hours(m: &Model, s: &bnb::Sol) -> Vec<usize> {
    let mut bad = vec![false; m.hours()];
    for (h, _, [p, q, l], wa) in &s.lay.cone_rows {
        let (p, q, l) = (s.x[*p], s.x[*q], s.x[*l]);
        if wa.eval(&s.x) * l - p * p - q * q > CONE_TOL {
            bad[*h] = true;
        }
    }
    (0..m.hours()).filter(|&h| bad[h]).collect()
}

/// The CSV rows of the horizon starting on `day`.
pub fn horizon_rows(setup: &Setup, split: Split, day: usize, hours: usize) -> Result<Vec<usize>> {
    let ts = match split {
        Split::Train => &setup.train,
        Split::Test => &setup.test,
    };
    if hours == 0 {
        return Err(Error::InvalidInput(
            "the horizon needs at least one hour".into(),
        ));
    }
    let start = 24usize.saturating_mul(day);
    let last = start.saturating_add(hours);
    if last >= ts.hours {
        let max_day = (ts.hours.saturating_sub(1 + hours)) / 24;
        return Err(Error::InvalidInput(format!(
            "day {day}: a {hours}-hour horizon needs rows {}..={last}, but the {} split of setup {:?} has {} rows (last start day: {max_day})",
            start + 1,
            split_name(split),
            setup.config.name,
            ts.hours
        )));
    }
    Ok((start + 1..=last).collect())
}

fn split_name(s: Split) -> &'static str {
    match s {
        Split::Train => "train",
        Split::Test => "test",
    }
}

/// Optimise one horizon of `setup` starting on `day`.
pub fn optimize(setup: &Setup, day: usize, opts: &OptimizeOptions) -> Result<OptPlan> {
    let t0 = Instant::now();
    let h = opts.hours.unwrap_or(setup.config.max_episode_steps);
    let rows = horizon_rows(setup, opts.split, day, h)?;
    if !(opts.time_limit_s > 0.0 && opts.gap >= 0.0 && opts.loss_eps >= 0.0) {
        return Err(Error::InvalidInput(
            "time limit must be positive, gap and loss weight non-negative".into(),
        ));
    }
    let mut m = Model::new(setup, opts.split, rows, opts.band, opts.loss_eps)?;
    // Where a cone is slack (inexact), switch the over-voltage guard on for
    // that hour and solve again: first on the root relaxation (cheap), then
    // after the branch and bound if its plan still has a slack hour.
    let mut nodes = 0;
    for _ in 0..GUARD_ROUNDS {
        let root = bnb::branch_and_bound(&m, opts.time_limit_s, opts.gap, true)?;
        nodes += root.nodes;
        let new: Vec<usize> = cone_slack_hours(&m, &root.best)
            .into_iter()
            .filter(|&h| !m.guard_hours[h])
            .collect();
        if new.is_empty() {
            break;
        }
        new.iter().for_each(|&h| m.guard_hours[h] = true);
    }
    let mut out;
    let mut round = 0;
    loop {
        let left = opts.time_limit_s - t0.elapsed().as_secs_f64();
        out = bnb::branch_and_bound(&m, left.max(0.0), opts.gap, opts.relax)?;
        nodes += out.nodes;
        let new: Vec<usize> = cone_slack_hours(&m, &out.best)
            .into_iter()
            .filter(|&h| !m.guard_hours[h])
            .collect();
        round += 1;
        if new.is_empty() || round >= GUARD_ROUNDS {
            break;
        }
        new.iter().for_each(|&h| m.guard_hours[h] = true);
    }
    out.nodes = nodes;
    let secs = t0.elapsed().as_secs_f64();
    let s = &out.best;
    let objective = s.obj - s.reg;
    let n_agents = setup.config.agents.len().max(1);
    let hours = plan_hours(setup, &m, s);
    let gap = ((s.obj - out.bound) / s.obj.abs().max(1.0)).max(0.0);
    Ok(OptPlan {
        setup: setup.config.name.clone(),
        split: split_name(opts.split).into(),
        day,
        status: out.status,
        objective,
        mean_reward: -setup.config.reward_scale * objective / (m.hours() * n_agents) as f64,
        gap,
        bound: out.bound,
        regularizer: s.reg,
        relaxation_objective: out.root_obj,
        nodes: out.nodes,
        solve_seconds: secs,
        band: opts.band,
        guard_hours: (0..m.hours()).filter(|&h| m.guard_hours[h]).collect(),
        integers: bnb::int_values(&m, s).iter().map(|x| x.round()).collect(),
        hours,
    })
}

/// One horizon's model, for fixed-integer solves, enumeration and export
/// (tests and the cvxpy cross-check use it).
pub struct Problem {
    model: Model,
}

impl Problem {
    /// The model of the horizon starting on `day` (guard off in every hour).
    pub fn new(setup: &Setup, day: usize, opts: &OptimizeOptions) -> Result<Problem> {
        let h = opts.hours.unwrap_or(setup.config.max_episode_steps);
        let rows = horizon_rows(setup, opts.split, day, h)?;
        Ok(Problem {
            model: Model::new(setup, opts.split, rows, opts.band, opts.loss_eps)?,
        })
    }
    /// Switch the over-voltage guard on in every hour.
    pub fn guard_all(&mut self) {
        self.model.guard_hours.iter_mut().for_each(|g| *g = true);
    }
    /// Switch the over-voltage guard on in these hours (as a plan's `guard_hours`).
    pub fn guard_hours(&mut self, hours: &[usize]) {
        for &h in hours {
            if let Some(g) = self.model.guard_hours.get_mut(h) {
                *g = true;
            }
        }
    }
    /// Integer bounds `(lo, hi)` (hour-major: taps, then capacitors).
    pub fn int_bounds(&self) -> (Vec<f64>, Vec<f64>) {
        self.model.int_bounds()
    }
    /// Objective + regulariser with the integers fixed at `ints` (`None`: infeasible).
    pub fn solve_fixed(&self, ints: &[f64]) -> Result<Option<f64>> {
        self.check_len(ints)?;
        Ok(bnb::solve_node(&self.model, ints, ints, 600.0)?.map(|s| s.obj))
    }
    /// Branch and bound: `(status, objective + regulariser, integers, nodes)`.
    pub fn branch_and_bound(
        &self,
        time_limit_s: f64,
        gap: f64,
    ) -> Result<(Status, f64, Vec<f64>, usize)> {
        let o = bnb::branch_and_bound(&self.model, time_limit_s, gap, false)?;
        let ints = bnb::int_values(&self.model, &o.best)
            .iter()
            .map(|x| x.round())
            .collect();
        Ok((o.status, o.best.obj, ints, o.nodes))
    }
    /// The conic program with integers in `[lo, hi]` in Clarabel's standard
    /// form `min ½xᵀPx + qᵀx + c, A·x + s = b, s ∈ K`, as JSON: `n`, `m`,
    /// `P` and `A` as `[row, col, value]` triplets (`P` upper triangle), `q`,
    /// `b`, `c`, `cones` (`[kind, dim]`, kind `zero` / `nonneg` / `soc`), and
    /// `objective`: Clarabel's optimum (with `c`).
    pub fn export(&self, lo: &[f64], hi: &[f64]) -> Result<serde_json::Value> {
        self.check_len(lo)?;
        self.check_len(hi)?;
        let (c, _) = self.model.build(lo, hi);
        let (st, _, obj) = c.solve(600.0);
        let (ri, ci, vv, b, cones) = c.standard_form();
        let cones: Vec<serde_json::Value> = cones
            .iter()
            .map(|k| match k {
                clarabel::solver::SupportedConeT::ZeroConeT(d) => serde_json::json!(["zero", d]),
                clarabel::solver::SupportedConeT::NonnegativeConeT(d) => {
                    serde_json::json!(["nonneg", d])
                }
                clarabel::solver::SupportedConeT::SecondOrderConeT(d) => {
                    serde_json::json!(["soc", d])
                }
                _ => serde_json::json!(["other", 0]),
            })
            .collect();
        let a: Vec<(usize, usize, f64)> = ri
            .into_iter()
            .zip(ci)
            .zip(vv)
            .map(|((r, c), v)| (r, c, v))
            .collect();
        Ok(serde_json::json!({
            "n": c.n, "m": b.len(), "P": c.p, "q": c.q, "c": c.constant, "A": a, "b": b,
            "cones": cones, "status": format!("{st:?}"), "objective": obj,
        }))
    }
    fn check_len(&self, v: &[f64]) -> Result<()> {
        let n = self.model.hours() * self.model.ints_per_hour();
        if v.len() != n {
            return Err(Error::InvalidInput(format!(
                "expected {n} integer values (hours × (taps + capacitors)), got {}",
                v.len()
            )));
        }
        Ok(())
    }
}

/// Optimise the horizons starting on `days`, in parallel (rayon).
pub fn optimize_days(
    setup: &Setup,
    days: &[usize],
    opts: &OptimizeOptions,
) -> Vec<Result<OptPlan>> {
    days.par_iter().map(|&d| optimize(setup, d, opts)).collect()
}

fn plan_hours(setup: &Setup, m: &Model, s: &bnb::Sol) -> Vec<PlanHour> {
    let net = &setup.network;
    let base = BatchInputs::from_network(net, 1);
    let row = |a: &ndarray::Array2<f64>| a.row(0).to_vec();
    let x = &s.x;
    (0..m.hours())
        .map(|h| {
            let mut sgen_p = row(&base.sgen_p_mw);
            let mut sgen_q = row(&base.sgen_q_mvar);
            let mut sto_p = row(&base.storage_p_mw);
            let mut taps = row(&base.trafo_tap_pos);
            let mut steps = row(&base.shunt_step);
            for (k, g) in m.gens.iter().enumerate() {
                let (p, q) = s.lay.gen_pq[h][k];
                (sgen_p[g.2], sgen_q[g.2]) = (x[p], x[q]);
            }
            for (k, r) in m.rens.iter().enumerate() {
                let (p, q) = s.lay.ren_pq[h][k];
                (sgen_p[r.2], sgen_q[r.2]) = (x[p], x[q]);
            }
            let mut soc = vec![];
            for (k, st) in m.stos.iter().enumerate() {
                let (ch, dis, so) = s.lay.sto[h][k];
                sto_p[st.2] = x[ch] - x[dis];
                soc.push(x[so]);
            }
            for (k, t) in m.taps.iter().enumerate() {
                taps[t.trafo] = x[s.lay.tap_pos[h][k]].round();
            }
            for (k, c) in m.caps.iter().enumerate() {
                steps[c.shunt] = x[s.lay.cap_step[h][k]].round();
            }
            let vm_pu = m
                .bus_node
                .iter()
                .map(|n| n.map_or(0.0, |n| x[s.lay.w[h][n]].max(0.0).sqrt()))
                .collect();
            PlanHour {
                hour: m.rows[h],
                price: m.price[h],
                inputs: ScenarioInputs {
                    load_p_mw: Some(row(&base.load_p_mw)),
                    load_q_mvar: Some(row(&base.load_q_mvar)),
                    load_scaling: Some(m.load_scaling[h].clone()),
                    sgen_p_mw: Some(sgen_p),
                    sgen_q_mvar: Some(sgen_q),
                    storage_p_mw: Some(sto_p),
                    trafo_tap_pos: Some(taps),
                    shunt_step: Some(steps),
                    gen_p_mw: None,
                    gen_vm_pu: None,
                },
                vm_pu,
                pcc_import_mw: s.lay.pcc[h].iter().map(|e| e.eval(x) * m.sn).collect(),
                soc,
            }
        })
        .collect()
}

/// The AC power flow of every planned hour against the OPF's voltages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanCheck {
    /// Hours whose power flow converged.
    pub converged: usize,
    /// Hours checked.
    pub hours: usize,
    /// `max |vm_ac − vm_opf|` over buses and hours, in p.u.
    pub max_vm_diff_pu: f64,
    /// Hour (CSV row) and bus of the worst case.
    pub worst_hour: usize,
    /// Bus of the worst case.
    pub worst_bus: usize,
    /// `max |import_ac − import_opf|` over PCCs and hours, in MW.
    pub max_pcc_diff_mw: f64,
}

/// Solve every hour of `plan` with the CPU power flow (tolerance 1e-10 p.u.)
/// on the setup's network and compare the voltages with the OPF's.
pub fn check_plan(setup: &Setup, plan: &OptPlan) -> Result<PlanCheck> {
    let net = &setup.network;
    let n = plan.hours.len();
    if n == 0 {
        return Err(Error::InvalidInput("the plan has no hours".into()));
    }
    let p = Arc::new(Plan::new(
        net,
        SolverOptions {
            tolerance_pu: 1e-10,
            max_iterations: 500,
            ..SolverOptions::default()
        },
    )?);
    let mut inp = BatchInputs::from_network(net, n);
    for (c, h) in plan.hours.iter().enumerate() {
        let i = &h.inputs;
        let set = |a: &mut ndarray::Array2<f64>, v: &Option<Vec<f64>>| {
            if let Some(v) = v {
                a.row_mut(c).iter_mut().zip(v).for_each(|(d, s)| *d = *s);
            }
        };
        set(&mut inp.load_p_mw, &i.load_p_mw);
        set(&mut inp.load_q_mvar, &i.load_q_mvar);
        set(&mut inp.load_scaling, &i.load_scaling);
        set(&mut inp.sgen_p_mw, &i.sgen_p_mw);
        set(&mut inp.sgen_q_mvar, &i.sgen_q_mvar);
        set(&mut inp.storage_p_mw, &i.storage_p_mw);
        set(&mut inp.trafo_tap_pos, &i.trafo_tap_pos);
        set(&mut inp.shunt_step, &i.shunt_step);
    }
    let (mut pf, _) = new_backend(BackendKind::Cpu, p.clone(), n)?;
    *pf.inputs_mut() = inp;
    pf.solve()?;
    let res = pf.results();
    let mut out = PlanCheck {
        converged: res.converged.iter().filter(|&&c| c).count(),
        hours: n,
        max_vm_diff_pu: 0.0,
        worst_hour: plan.hours[0].hour,
        worst_bus: 0,
        max_pcc_diff_mw: 0.0,
    };
    for (c, h) in plan.hours.iter().enumerate() {
        for (b, &v) in h.vm_pu.iter().enumerate() {
            let d = (res.vm_pu[[c, b]] - v).abs();
            if d > out.max_vm_diff_pu || !d.is_finite() {
                out.max_vm_diff_pu = if d.is_finite() { d } else { f64::INFINITY };
                out.worst_hour = h.hour;
                out.worst_bus = b;
            }
        }
    }
    // PCC imports as the environment measures them.
    let pccs: Vec<_> = setup.agent_pcc.iter().flatten().collect();
    let inputs = pf.inputs();
    for (c, h) in plan.hours.iter().enumerate() {
        for (k, pcc) in pccs.iter().enumerate() {
            let ac = match **pcc {
                crate::setup::config::PccElement::Trafo(t) => {
                    let tr = &net.trafos[t];
                    let adm = crate::powerflow::admittance::trafo_branch(
                        net,
                        tr,
                        inputs.trafo_tap_pos[[c, t]],
                    )
                    .admittance();
                    let v = |b: usize| {
                        crate::complex::C64::from_polar(
                            res.vm_pu[[c, b]],
                            res.va_degree[[c, b]].to_radians(),
                        )
                    };
                    let (vf, vt) = (v(tr.hv_bus), v(tr.lv_bus));
                    (vf * (adm.yff * vf + adm.yft * vt).conj()).re * net.sn_mva
                }
                crate::setup::config::PccElement::Line(l) => res.line_p_from_mw[[c, l]],
                crate::setup::config::PccElement::ExtGrid(e) => res.ext_grid_p_mw[[c, e]],
            };
            let d = (ac - h.pcc_import_mw[k]).abs();
            out.max_pcc_diff_mw = out.max_pcc_diff_mw.max(d);
        }
    }
    Ok(out)
}
