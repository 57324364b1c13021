//! The multi-period branch-flow (DistFlow) model of a setup and its conic
//! relaxation for given integer bounds.
//!
//! Per hour `t`, node `i` (fused bus, as in [`crate::powerflow::Plan`]) and
//! branch `b = (f → t)` with series impedance `z = r + jx`, total shunt
//! admittance `y_sh = g + jb` (half at each end) and tap ratio `ρ`:
//!
//! - squared voltages `w_i = |V_i|²`, squared series current `ℓ_b`, series
//!   sending-end flow `P_b + jQ_b`;
//! - ideal transformer: `w_a = K·w_f` with `K = 1/ρ²` (or, for a trafo tapped on
//!   its LV side, the impedance referred to the HV side and `w_t = K·w_b`);
//! - voltage drop `w_b = w_a − 2(r·P_b + x·Q_b) + (r² + x²)·ℓ_b`;
//! - the cone `P_b² + Q_b² ≤ w_a·ℓ_b` (the relaxation of `=`; it is exact at
//!   the optimum when the objective increases with the losses `r·ℓ_b`);
//! - power leaving node `f`: `P_b + g/2·w_a`, `Q_b − b/2·w_a`; leaving node `t`:
//!   `−P_b + r·ℓ_b + g/2·w_b`, `−Q_b + x·ℓ_b − b/2·w_b`; node balance
//!   `Σ injections − loads − shunts = Σ leaving`.
//!
//! Integers: a tap changer's position `n ∈ [lo, hi]` sets `K(n) = 1/ρ(n)²`
//! (pandapower's tapped winding voltage); in the relaxation `K` is a variable
//! with `K ≥` every chord of the convex `K(n)` between neighbouring integers
//! (valid at integer `n`), `K ≤` the chord over `[lo, hi]`, and `u = K·w` by
//! its McCormick envelope, exact when `lo = hi`. A capacitor's step `s`
//! absorbs `conj(y)·s·w`, with `s·w` by McCormick likewise.
//!
//! Devices and objective follow the environment (`src/env/reward.rs`):
//! generator `a·P² + b·P + c` (a quadratic objective term: Clarabel takes it
//! directly), storage `ch, dis ≥ 0` with `soc_t = soc_{t−1} + (η_ch·ch −
//! dis/η_dis)·dt/E` and degradation `d·(ch + dis)·dt`, renewables `0 ≤ P ≤
//! available`, `|Q| ≤ q_max`, `P² + Q² ≤ s²`, trading `price·P_pcc·dt` (with a
//! sell discount: import/export split, convex only when `price·(1 − discount) ≥ 0`),
//! wear `|Δn|`, and the voltage band over the buses the agents own (soft:
//! `penalty·(e_lo + e_hi)` with `√w ≥ v_min − e_lo` as a cone and
//! `e_hi ≥ (w − v_max²)/(2·v_max)`, the tangent of `√w − v_max`, which
//! over-estimates the env's `V − v_max` by `(V − v_max)²/(2·v_max)`; hard:
//! `v_min² ≤ w ≤ v_max²`). Line currents `ℓ ≤ (I_max/I_base)²` and
//! transformer flows `P² + Q² ≤ (sn/sn_sys)²` are hard limits.
//!
//! **Loss regulariser.** Where the objective does not grow with a branch's
//! losses — hours with a negative price, branches outside every microgrid, or
//! where a lower downstream voltage would lower an over-voltage penalty — the
//! cone need not be tight. We add `(λ_t·sn·r_b + γ_b)·ℓ_b·dt` with
//! `λ_t = ε + 1.05·max(−price_t, 0)` and
//! `γ_b = 1.5·penalty·(M_b·|z_b|² + 2·Σ_u M_u·(r_u·r_b + x_u·x_b))/(2·v_min)`
//! (`M_b` the number of penalised bus entries below branch `b`, `u` the
//! branches between the slack and `b`): inflating `ℓ_b` by `Δ` can lower the
//! over-voltage penalty by at most that times `Δ`. `γ` is switched on only in the hours where a solve
//! without it left a cone slack (it also taxes real losses, so it moves the
//! optimum a little). The regulariser is reported apart from the objective,
//! which holds only the environment's terms.

use super::conic::{Conic, Expr};
use crate::devices::{GeneratorParams, RenewableParams, StorageParams};
use crate::env::vec_env::Split;
use crate::error::{Error, Result};
use crate::network::Controller;
use crate::network::Network;
use crate::powerflow::admittance::trafo_branch;
use crate::powerflow::plan::BranchSource;
use crate::powerflow::{Plan, SolverOptions};
use crate::setup::config::DeviceSpec;
use crate::setup::config::PccElement;
use crate::setup::Setup;

/// Technical bounds on squared voltages (0.8 … 1.2 p.u.), used by the McCormick envelopes.
pub(crate) const W_LO: f64 = 0.64;
pub(crate) const W_HI: f64 = 1.44;
/// Margin of the over-voltage guard `γ_b` over its sensitivity bound.
const GUARD_MARGIN: f64 = 1.1;

/// How the voltage band enters.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// The environment's penalty `penalty·Σ violation` in the objective.
    #[default]
    Soft,
    /// `v_min ≤ V ≤ v_max` at every bus the reward watches (infeasible if impossible).
    Hard,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum BranchKind {
    /// `w_a = k·w_f`, `w_b = w_t`.
    Fixed(f64),
    /// Tap changer `tap`: `w_a = K·w_f`.
    TapFirst(usize),
    /// Tap changer `tap` (LV side): `w_a = w_f`, `w_t = K·w_b`.
    TapLast(usize),
}

#[derive(Debug, Clone)]
pub(crate) struct BranchM {
    pub f: usize,
    pub t: usize,
    pub r: f64,
    pub x: f64,
    pub g: f64,
    pub b: f64,
    pub kind: BranchKind,
    pub l_max: Option<f64>,
    pub s_max: Option<f64>,
    pub lambda_guard: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct TapM {
    pub trafo: usize,
    pub min: i64,
    pub max: i64,
    /// `K(n)` for `n = min..=max`.
    pub k: Vec<f64>,
    pub init: f64,
    pub wear: f64,
    /// Largest move per hour.
    pub max_move: f64,
}

impl TapM {
    pub fn k_at(&self, n: i64) -> f64 {
        self.k[(n - self.min) as usize]
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CapM {
    pub shunt: usize,
    pub node: usize,
    pub g: f64,
    pub b: f64,
    pub max: i64,
    pub init: f64,
    pub wear: f64,
    /// Largest move per hour.
    pub max_move: f64,
}

#[derive(Debug, Clone)]
pub(crate) enum PccM {
    /// Power leaving node `from_end ? f : t` into branch `branch`.
    Branch { branch: usize, from_end: bool },
    /// Slack injection of node `node`, shared by `count` ext_grids.
    Slack { node: usize, count: usize },
}

/// The model of one horizon: everything but the integer bounds.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub rows: Vec<usize>,
    pub dt: f64,
    pub sn: f64,
    pub n_node: usize,
    pub slack: Vec<(usize, f64)>,
    pub branches: Vec<BranchM>,
    /// Fixed demand per hour and node in p.u. (loads, non-device sgens/storage).
    pub pd: Vec<Vec<f64>>,
    pub qd: Vec<Vec<f64>>,
    /// Fixed shunt conductance/susceptance per node (absorbs `g·w`, `−b·w`).
    pub gsh: Vec<f64>,
    pub bsh: Vec<f64>,
    pub gens: Vec<(usize, f64, usize, GeneratorParams)>,
    pub rens: Vec<(usize, f64, usize, RenewableParams, Vec<f64>)>,
    pub stos: Vec<(usize, f64, usize, StorageParams, f64)>,
    pub taps: Vec<TapM>,
    pub caps: Vec<CapM>,
    pub pccs: Vec<PccM>,
    pub penalised: Vec<(usize, f64)>,
    pub price: Vec<f64>,
    pub sell_discount: f64,
    pub penalty: f64,
    pub band: [f64; 2],
    pub band_mode: Band,
    pub loss_eps: f64,
    pub bus_node: Vec<Option<usize>>,
    pub load_scaling: Vec<Vec<f64>>,
    /// Hours whose branches carry the over-voltage guard `γ_b` (set where a
    /// solve without it was not exact).
    pub guard_hours: Vec<bool>,
}

/// Indices of the variables of one build.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub w: Vec<Vec<usize>>,
    pub l: Vec<Vec<usize>>,
    pub gen_pq: Vec<Vec<(usize, usize)>>,
    pub ren_pq: Vec<Vec<(usize, usize)>>,
    pub sto: Vec<Vec<(usize, usize, usize)>>,
    pub tap_pos: Vec<Vec<usize>>,
    pub cap_step: Vec<Vec<usize>>,
    /// Per hour and tap: `(K, w_in, u)` with `u = K·w_in` by McCormick.
    pub tap_mc: Vec<Vec<(usize, usize, usize)>>,
    /// Per hour and capacitor: `(s, w, u)` with `u = s·w` by McCormick.
    pub cap_mc: Vec<Vec<(usize, usize, usize)>>,
    pub pcc: Vec<Vec<Expr>>,
    /// Regulariser terms `(variable ℓ, weight $/p.u.)`.
    pub reg: Vec<(usize, f64)>,
    /// Cone index and hour of each branch cone (for the exactness measure).
    pub cone_rows: Vec<(usize, usize, [usize; 3], Expr)>,
}

fn name_of(net: &Network, s: BranchSource) -> String {
    match s {
        BranchSource::Line(k) => format!("line {k} ({:?})", net.lines[k].name),
        BranchSource::Trafo(k) => format!("trafo {k} ({:?})", net.trafos[k].name),
        BranchSource::Switch(k) => format!("switch {k}"),
        BranchSource::Trafo3w(k, w) => {
            format!("trafo3w {k} ({:?}) winding {w}", net.trafo3ws[k].name)
        }
        BranchSource::Impedance(k) => format!("impedance {k} ({:?})", net.impedances[k].name),
        BranchSource::Xward(k) => format!("xward {k} ({:?})", net.xwards[k].name),
    }
}

impl Model {
    /// The model of `setup` over the CSV rows `rows` of `split`.
    pub fn new(
        setup: &Setup,
        split: Split,
        rows: Vec<usize>,
        band_mode: Band,
        loss_eps: f64,
    ) -> Result<Model> {
        let cfg = &setup.config;
        let net = setup.network.clone();
        let ts = match split {
            Split::Train => &setup.train,
            Split::Test => &setup.test,
        };
        if let Some(&last) = rows.last() {
            if last >= ts.hours {
                return Err(Error::InvalidInput(format!(
                    "hour {last} is outside the {} split of setup {:?} ({} hours)",
                    match split {
                        Split::Train => "train",
                        Split::Test => "test",
                    },
                    cfg.name,
                    ts.hours
                )));
            }
        }
        if cfg.system_operator.agent.is_some() {
            return Err(Error::Unsupported(format!(
                "setup {:?}: a price-setting system operator agent makes the objective bilinear; the optimiser needs a fixed price",
                cfg.name
            )));
        }
        for (table, n) in [
            ("trafo3w", net.trafo3ws.len()),
            ("impedance", net.impedances.len()),
            ("ward", net.wards.len()),
            ("gen", net.gens.len()),
            ("xward", net.xwards.len()),
        ] {
            if n > 0 {
                return Err(Error::Unsupported(format!(
                    "setup {:?}: the optimiser does not model the network's {table} elements",
                    cfg.name
                )));
            }
        }
        if let Some((k, l)) =
            (net.loads.iter().enumerate()).find(|(_, l)| l.in_service && l.is_zip())
        {
            return Err(Error::Unsupported(format!(
                "setup {:?}: the optimiser models loads as constant power; load {k} ({:?}) is voltage-dependent (const_z/const_i percentages)",
                cfg.name, l.name
            )));
        }
        let plan = Plan::new(&net, SolverOptions::default())?;
        let sn = net.sn_mva;
        let n_node = plan.n_node;
        let slack: Vec<(usize, f64)> = plan
            .slack_v
            .iter()
            .enumerate()
            .map(|(i, v)| (plan.n_pq + i, v.norm_sqr()))
            .collect();

        // Radial check: every branch joins two trees (slack nodes count as one root).
        let mut uf: Vec<usize> = (0..n_node).collect();
        fn find(uf: &mut [usize], mut i: usize) -> usize {
            while uf[i] != i {
                uf[i] = uf[uf[i]];
                i = uf[i];
            }
            i
        }
        for &(s, _) in slack.iter().skip(1) {
            let (a, b) = (find(&mut uf, s), find(&mut uf, slack[0].0));
            uf[a] = b;
        }
        for br in &plan.branches {
            if br.f == br.t {
                continue;
            }
            let (a, b) = (find(&mut uf, br.f), find(&mut uf, br.t));
            if a == b {
                return Err(Error::Unsupported(format!(
                    "network {:?} is meshed: {} closes a loop{}; the branch-flow SOCP relaxation is exact only on radial networks",
                    net.name,
                    name_of(&net, br.source),
                    if slack.len() > 1 { " (ext_grids count as one root)" } else { "" }
                )));
            }
            uf[a] = b;
        }

        let dt = cfg.dt_h;
        let col = |name: &str| {
            ts.column(name).ok_or_else(|| {
                Error::InvalidSetup(format!("setup {:?}: no column {name:?}", cfg.name))
            })
        };
        let price_col = col(&cfg.system_operator.price)?;
        let price: Vec<f64> = rows.iter().map(|&r| ts.at(price_col, r)).collect();
        let disc = cfg.system_operator.sell_discount;
        if disc != 1.0 {
            if let Some((i, p)) = price
                .iter()
                .enumerate()
                .find(|(_, &p)| p * (1.0 - disc) < 0.0)
            {
                return Err(Error::Unsupported(format!(
                    "setup {:?}: hour {} has price {p} with sell_discount {disc}: buying and selling at once would pay, the trading cost is not convex",
                    cfg.name, rows[i]
                )));
            }
        }

        // Devices.
        let mut gens = vec![];
        let mut rens = vec![];
        let mut stos = vec![];
        let mut taps = vec![];
        let mut caps = vec![];
        let mut dev_sgen = vec![false; net.sgens.len()];
        let mut dev_sto = vec![false; net.storages.len()];
        let mut dev_trafo = vec![None; net.trafos.len()];
        let mut dev_shunt = vec![false; net.shunts.len()];
        for specs in &setup.agent_devices {
            for d in specs {
                match d {
                    DeviceSpec::Generator { params, sgen: e } => {
                        let e = *e;
                        dev_sgen[e] = true;
                        let Some(n) = plan.sgen_node[e] else { continue };
                        gens.push((n, net.sgens[e].scaling / sn, e, params.clone()));
                    }
                    DeviceSpec::Storage { params, element: e } => {
                        let e = *e;
                        dev_sto[e] = true;
                        let Some(n) = plan.storage_node[e] else {
                            continue;
                        };
                        let st = &net.storages[e];
                        stos.push((
                            n,
                            st.scaling / sn,
                            e,
                            params.clone(),
                            st.q_mvar * st.scaling / sn,
                        ));
                    }
                    DeviceSpec::Renewable { params, sgen: e } => {
                        let e = *e;
                        dev_sgen[e] = true;
                        let Some(n) = plan.sgen_node[e] else { continue };
                        let avail = rows
                            .iter()
                            .map(|&h| params.available(ts.at(params.profile_column, h)))
                            .collect();
                        rens.push((n, net.sgens[e].scaling / sn, e, params.clone(), avail));
                    }
                    DeviceSpec::TapChanger { params, trafo: e } => {
                        let e = *e;
                        let tr = &net.trafos[e];
                        if plan.trafo_branch[e].is_none() {
                            continue;
                        }
                        let (min, max) =
                            (params.tap_min.ceil() as i64, params.tap_max.floor() as i64);
                        if max < min {
                            return Err(Error::InvalidNetwork(format!(
                                "trafo {:?}: tap range [{}, {}] holds no integer",
                                tr.name, params.tap_min, params.tap_max
                            )));
                        }
                        let k = (min..=max)
                            .map(|n| 1.0 / trafo_branch(&net, tr, n as f64).ratio.powi(2))
                            .collect();
                        dev_trafo[e] = Some(taps.len());
                        taps.push(TapM {
                            trafo: e,
                            min,
                            max,
                            k,
                            init: params.tap_init,
                            wear: params.wear_cost,
                            max_move: params.max_move,
                        });
                    }
                    DeviceSpec::Capacitor { params, shunt: e } => {
                        let e = *e;
                        dev_shunt[e] = true;
                        let Some(n) = plan.shunt_node[e] else {
                            continue;
                        };
                        let y = plan.shunt_y[e];
                        caps.push(CapM {
                            shunt: e,
                            node: n,
                            g: y.re,
                            b: y.im,
                            max: params.max_step as i64,
                            init: params.step_init,
                            wear: params.wear_cost,
                            max_move: params.max_move,
                        });
                    }
                }
            }
        }

        // Automatically controlled taps and capacitor banks: in the environment
        // their controllers move them inside each step. The optimiser chooses
        // them like devices (any position a controller could reach: no move
        // limit), with the controllers' wear cost where an agent pays it; the
        // replay leaves them to the controllers.
        for spec in &setup.controllers {
            let wear = if spec.charge_to().is_some() {
                spec.wear_cost()
            } else {
                0.0
            };
            match &spec.controller {
                Controller::DiscreteTap(tc) if tc.in_service => {
                    let e = tc.trafo;
                    if dev_trafo[e].is_some() || plan.trafo_branch[e].is_none() {
                        continue;
                    }
                    let tr = &net.trafos[e];
                    let Some(tap) = tr.tap.as_ref() else { continue };
                    let (min, max) = (tap.min.ceil() as i64, tap.max.floor() as i64);
                    if max < min {
                        continue;
                    }
                    let k = (min..=max)
                        .map(|n| 1.0 / trafo_branch(&net, tr, n as f64).ratio.powi(2))
                        .collect();
                    dev_trafo[e] = Some(taps.len());
                    taps.push(TapM {
                        trafo: e,
                        min,
                        max,
                        k,
                        init: tap.pos.round().clamp(tap.min, tap.max),
                        wear,
                        max_move: (max - min) as f64,
                    });
                }
                Controller::DiscreteShunt(sc) if sc.in_service => {
                    let e = sc.shunt;
                    if dev_shunt[e] {
                        continue;
                    }
                    let Some(n) = plan.shunt_node[e] else {
                        continue;
                    };
                    dev_shunt[e] = true;
                    let sh = &net.shunts[e];
                    let y = plan.shunt_y[e];
                    caps.push(CapM {
                        shunt: e,
                        node: n,
                        g: y.re,
                        b: y.im,
                        max: sh.max_step as i64,
                        init: sh.step.round().clamp(0.0, sh.max_step as f64),
                        wear,
                        max_move: sh.max_step as f64,
                    });
                }
                _ => {}
            }
        }

        // Penalised buses: every (agent, live bus) pair, as the reward counts them.
        let mut mult = vec![0.0; n_node];
        for buses in &setup.agent_buses {
            for &b in buses {
                if let Some(n) = plan.bus_node[b] {
                    mult[n] += 1.0;
                }
            }
        }
        // Every grid agent's safety holds operator_safety_weight × the system
        // operator's voltage violation.
        let w_op = cfg.operator_safety_weight * setup.agent_buses.len() as f64;
        if w_op > 0.0 {
            for &b in &setup.operator_buses {
                if let Some(n) = plan.bus_node[b] {
                    mult[n] += w_op;
                }
            }
        }
        let penalised: Vec<(usize, f64)> = (0..n_node)
            .filter(|&n| mult[n] > 0.0)
            .map(|n| (n, mult[n]))
            .collect();

        // Branches.
        let mut branches = vec![];
        let mut tap_branch = vec![usize::MAX; taps.len()];
        let mut gsh = vec![0.0; n_node];
        let mut bsh = vec![0.0; n_node];
        let mut branch_of_plan = vec![usize::MAX; plan.branches.len()];
        for (pi, br) in plan.branches.iter().enumerate() {
            if br.f == br.t {
                // Both ends on one fused node: only its shunts matter.
                let k = 1.0 / (br.ratio * br.ratio);
                gsh[br.f] += 0.5 * br.y_sh.re * (k + 1.0);
                bsh[br.f] += 0.5 * br.y_sh.im * (k + 1.0);
                continue;
            }
            let (mut r, mut x, mut g, mut b) = (br.z.re, br.z.im, br.y_sh.re, br.y_sh.im);
            let mut kind = BranchKind::Fixed(1.0 / (br.ratio * br.ratio));
            let (mut l_max, mut s_max) = (None, None);
            match br.source {
                BranchSource::Line(k) => {
                    let l = &net.lines[k];
                    let vn = net.buses[l.from_bus].vn_kv;
                    let i_base = sn / (3f64.sqrt() * vn);
                    if l.max_i_ka.is_finite() && l.max_i_ka > 0.0 {
                        let i = l.max_i_ka * l.parallel as f64 / i_base;
                        l_max = Some(i * i);
                    }
                }
                BranchSource::Trafo(k) => {
                    let tr = &net.trafos[k];
                    s_max = Some(tr.sn_mva * tr.parallel as f64 / sn);
                    if let Some(j) = dev_trafo[k] {
                        let tm = &taps[j];
                        let pis: Vec<_> = (tm.min..=tm.max)
                            .map(|n| trafo_branch(&net, tr, n as f64))
                            .collect();
                        if pis
                            .iter()
                            .any(|p| p.y_sh.norm_sqr() > 0.0 || p.shift_rad != 0.0)
                        {
                            return Err(Error::Unsupported(format!(
                                "trafo {:?}: a tap changer under optimisation needs a trafo without magnetising admittance or phase shift",
                                tr.name
                            )));
                        }
                        let same = |a: crate::complex::C64, b: crate::complex::C64| {
                            (a - b).norm_sqr().sqrt() <= 1e-9 * b.norm_sqr().sqrt().max(1e-12)
                        };
                        let z0 = pis[0].z;
                        let zr0 = pis[0].z.scale(pis[0].ratio * pis[0].ratio);
                        if pis.iter().all(|p| same(p.z, z0)) {
                            kind = BranchKind::TapFirst(j);
                            (r, x) = (z0.re, z0.im);
                        } else if pis.iter().all(|p| same(p.z.scale(p.ratio * p.ratio), zr0)) {
                            kind = BranchKind::TapLast(j);
                            (r, x) = (zr0.re, zr0.im);
                        } else {
                            return Err(Error::Unsupported(format!(
                                "trafo {:?}: its impedance changes with the tap in a way the model cannot express",
                                tr.name
                            )));
                        }
                        (g, b) = (0.0, 0.0);
                        tap_branch[j] = branches.len();
                    }
                }
                BranchSource::Switch(_)
                | BranchSource::Trafo3w(..)
                | BranchSource::Impedance(_)
                | BranchSource::Xward(_) => {}
            }
            branch_of_plan[pi] = branches.len();
            branches.push(BranchM {
                f: br.f,
                t: br.t,
                r,
                x,
                g,
                b,
                kind,
                l_max,
                s_max,
                lambda_guard: 0.0,
            });
        }
        // Over-voltage guard: raising ℓ_b by Δ lowers the squared voltages below b
        // by |z_b|²·Δ and, through the extra r_b·Δ, x_b·Δ the branches u above
        // it carry, those below each u by 2(r_u·r_b + x_u·x_b)·Δ; the
        // over-voltage penalty falls by at most penalty/(2·v) per unit of w and
        // penalised entry: γ_b = 1.5·penalty·(M_b·|z_b|² + 2Σ_u M_u(r_u·r_b + x_u·x_b))/(2·v_min).
        {
            let mut adj: Vec<Vec<(usize, usize)>> = vec![vec![]; n_node];
            for (bi, br) in branches.iter().enumerate() {
                adj[br.f].push((br.t, bi));
                adj[br.t].push((br.f, bi));
            }
            let mut seen = vec![false; n_node];
            let mut stack: Vec<usize> = slack.iter().map(|s| s.0).collect();
            stack.iter().for_each(|&s| seen[s] = true);
            let mut guard = vec![0.0; branches.len()];
            let vlo = cfg.voltage_band[0].clamp(0.5, 1.0);
            // Depth-first order from the slack(s); M of a branch = penalised
            // entries in the subtree below it (the voltages it can lower).
            let mut order = vec![];
            let mut parent = vec![(usize::MAX, usize::MAX); n_node];
            while let Some(u) = stack.pop() {
                order.push(u);
                for &(v, bi) in &adj[u] {
                    if seen[v] {
                        continue;
                    }
                    seen[v] = true;
                    parent[v] = (u, bi);
                    stack.push(v);
                }
            }
            let mut below = mult.clone();
            for &v in order.iter().rev() {
                let (u, _) = parent[v];
                if u != usize::MAX {
                    below[u] += below[v];
                }
            }
            // acc[v] = Σ over the branches u on the path to v of M_u·(r_u, x_u).
            let mut acc = vec![(0.0f64, 0.0f64); n_node];
            for &v in &order {
                let (u, bi) = parent[v];
                if u == usize::MAX {
                    continue;
                }
                let br = &branches[bi];
                acc[v] = (acc[u].0 + below[v] * br.r, acc[u].1 + below[v] * br.x);
                let z2 = br.r * br.r + br.x * br.x;
                guard[bi] = GUARD_MARGIN
                    * cfg.penalty
                    * (below[v] * z2 + 2.0 * (br.r * acc[u].0 + br.x * acc[u].1))
                    / (2.0 * vlo);
            }
            for (br, g) in branches.iter_mut().zip(guard) {
                br.lambda_guard = g;
            }
        }
        for &b in &tap_branch {
            if b == usize::MAX {
                return Err(Error::Unsupported(
                    "a tap changer's trafo joins two buses that are fused or unsolved".into(),
                ));
            }
        }

        // PCCs.
        let mut pccs = vec![];
        for p in setup.agent_pcc.iter().flatten() {
            pccs.push(match *p {
                PccElement::Trafo(k) => {
                    let pb = plan.trafo_branch[k].ok_or_else(|| {
                        Error::InvalidSetup(format!("PCC trafo {k} is not in the solved network"))
                    })?;
                    let b = branch_of_plan[pb];
                    if b == usize::MAX {
                        return Err(Error::Unsupported(format!(
                            "PCC trafo {k} joins fused buses"
                        )));
                    }
                    PccM::Branch {
                        branch: b,
                        from_end: plan.branches[pb].f
                            == plan.bus_node[net.trafos[k].hv_bus].unwrap_or(usize::MAX),
                    }
                }
                PccElement::Line(k) => {
                    let pb = plan.line_branch[k].ok_or_else(|| {
                        Error::InvalidSetup(format!("PCC line {k} is not in the solved network"))
                    })?;
                    let b = branch_of_plan[pb];
                    if b == usize::MAX {
                        return Err(Error::Unsupported(format!(
                            "PCC line {k} joins fused buses"
                        )));
                    }
                    PccM::Branch {
                        branch: b,
                        from_end: true,
                    }
                }
                PccElement::ExtGrid(i) => {
                    let (node, count) = plan.ext_grid_node[i].ok_or_else(|| {
                        Error::InvalidSetup(format!("PCC ext_grid {i} is out of service"))
                    })?;
                    PccM::Slack { node, count }
                }
            });
        }

        // Fixed demand.
        let mut load_scaling = vec![];
        let mut pd = vec![];
        let mut qd = vec![];
        for &h in &rows {
            let mut scal: Vec<f64> = net.loads.iter().map(|l| l.scaling).collect();
            for lm in &setup.load_members {
                scal[lm.load] = lm.scale * ts.at(lm.column, h);
            }
            let mut p = vec![0.0; n_node];
            let mut q = vec![0.0; n_node];
            for (l, load) in net.loads.iter().enumerate() {
                if let Some(n) = plan.load_node[l] {
                    p[n] += load.p_mw * scal[l] / sn;
                    q[n] += load.q_mvar * scal[l] / sn;
                }
            }
            for (k, s) in net.sgens.iter().enumerate() {
                if let (false, Some(n)) = (dev_sgen[k], plan.sgen_node[k]) {
                    p[n] -= s.p_mw * s.scaling / sn;
                    q[n] -= s.q_mvar * s.scaling / sn;
                }
            }
            for (k, s) in net.storages.iter().enumerate() {
                if let (false, Some(n)) = (dev_sto[k], plan.storage_node[k]) {
                    p[n] += s.p_mw * s.scaling / sn;
                    q[n] += s.q_mvar * s.scaling / sn;
                }
            }
            load_scaling.push(scal);
            pd.push(p);
            qd.push(q);
        }
        for (k, s) in net.shunts.iter().enumerate() {
            if let (false, Some(n)) = (dev_shunt[k], plan.shunt_node[k]) {
                gsh[n] += plan.shunt_y[k].re * s.step;
                bsh[n] += plan.shunt_y[k].im * s.step;
            }
        }

        Ok(Model {
            rows,
            dt,
            sn,
            n_node,
            slack,
            branches,
            pd,
            qd,
            gsh,
            bsh,
            gens,
            rens,
            stos,
            taps,
            caps,
            pccs,
            penalised,
            price,
            sell_discount: disc,
            penalty: cfg.penalty,
            band: cfg.voltage_band,
            band_mode,
            loss_eps,
            bus_node: plan.bus_node.clone(),
            guard_hours: vec![false; load_scaling.len()],
            load_scaling,
        })
    }

    /// Number of hours.
    pub fn hours(&self) -> usize {
        self.rows.len()
    }

    /// Integer variables per hour (taps, then capacitors).
    pub fn ints_per_hour(&self) -> usize {
        self.taps.len() + self.caps.len()
    }

    /// Full integer bounds `(lo, hi)`, hour-major.
    pub fn int_bounds(&self) -> (Vec<f64>, Vec<f64>) {
        let mut lo = vec![];
        let mut hi = vec![];
        for _ in 0..self.hours() {
            for t in &self.taps {
                lo.push(t.min as f64);
                hi.push(t.max as f64);
            }
            for c in &self.caps {
                lo.push(0.0);
                hi.push(c.max as f64);
            }
        }
        (lo, hi)
    }

    /// Build the conic program for integer bounds `lo ≤ n ≤ hi`.
    pub fn build(&self, lo: &[f64], hi: &[f64]) -> (Conic, Layout) {
        let mut c = Conic::default();
        let mut lay = Layout::default();
        let dt = self.dt;
        let sn = self.sn;
        let (vmin, vmax) = (self.band[0], self.band[1]);
        let ni = self.ints_per_hour();
        let mut prev_tap: Vec<Expr> = self.taps.iter().map(|t| Expr::constant(t.init)).collect();
        let mut prev_cap: Vec<Expr> = self.caps.iter().map(|k| Expr::constant(k.init)).collect();
        let mut prev_soc: Vec<Expr> = self
            .stos
            .iter()
            .map(|s| Expr::constant(s.3.soc_init))
            .collect();
        for h in 0..self.hours() {
            let price = self.price[h];
            // Voltages.
            let w: Vec<usize> = (0..self.n_node)
                .map(|_| c.var(Some(W_LO), Some(W_HI)))
                .collect();
            for &(n, v2) in &self.slack {
                c.eq0(Expr::var(w[n], 1.0).add_scaled(&Expr::constant(-v2), 1.0));
            }
            // Node balance accumulators: Σ injections − demand − Σ leaving = 0.
            let mut bal_p: Vec<Expr> = (0..self.n_node)
                .map(|n| Expr::constant(-self.pd[h][n]).add(w[n], -self.gsh[n]))
                .collect();
            let mut bal_q: Vec<Expr> = (0..self.n_node)
                .map(|n| Expr::constant(-self.qd[h][n]).add(w[n], self.bsh[n]))
                .collect();
            // Taps.
            let mut kvar = vec![];
            let mut tpos = vec![];
            for (j, tm) in self.taps.iter().enumerate() {
                let (l, u) = (lo[h * ni + j], hi[h * ni + j]);
                let pos = c.var(Some(l), Some(u));
                let (kl, ku) = (tm.k_at(l as i64), tm.k_at(u as i64));
                let k = c.var(Some(kl.min(ku)), Some(kl.max(ku)));
                if u > l {
                    // K ≤ chord over [l, u] (K(n) is convex).
                    c.le0(
                        Expr::var(k, 1.0)
                            .add(pos, -(ku - kl) / (u - l))
                            .add_scaled(&Expr::constant(-kl + (ku - kl) / (u - l) * l), 1.0),
                    );
                    // K ≥ every chord between neighbouring integers (valid at integers).
                    for n in (l as i64)..(u as i64) {
                        let (a, b) = (tm.k_at(n), tm.k_at(n + 1));
                        c.le0(
                            Expr::var(k, -1.0)
                                .add(pos, b - a)
                                .add_scaled(&Expr::constant(a - (b - a) * n as f64), 1.0),
                        );
                    }
                }
                move_limit(&mut c, pos, &mut prev_tap[j], tm.max_move, tm.wear);
                kvar.push((k, kl.min(ku), kl.max(ku)));
                tpos.push(pos);
            }
            lay.tap_pos.push(tpos);
            // Capacitors.
            let mut cstep = vec![];
            let mut cmc = vec![];
            for (j, cm) in self.caps.iter().enumerate() {
                let (l, u) = (
                    lo[h * ni + self.taps.len() + j],
                    hi[h * ni + self.taps.len() + j],
                );
                let s = c.var(Some(l), Some(u));
                let prod = mccormick(&mut c, s, (l, u), w[cm.node], (W_LO, W_HI));
                cmc.push((s, w[cm.node], prod));
                bal_p[cm.node] = bal_p[cm.node].clone().add(prod, -cm.g);
                bal_q[cm.node] = bal_q[cm.node].clone().add(prod, cm.b);
                move_limit(&mut c, s, &mut prev_cap[j], cm.max_move, cm.wear);
                cstep.push(s);
            }
            lay.cap_step.push(cstep);
            lay.cap_mc.push(cmc);
            let mut tmc = vec![(usize::MAX, usize::MAX, usize::MAX); self.taps.len()];
            // Branches.
            let mut lvec = vec![];
            let mut flows_from = vec![];
            for (bi, br) in self.branches.iter().enumerate() {
                let p = c.var(None, None);
                let q = c.var(None, None);
                let l = c.var(Some(0.0), br.l_max);
                let (wa, wb) = match br.kind {
                    BranchKind::Fixed(k) => (Expr::var(w[br.f], k), Expr::var(w[br.t], 1.0)),
                    BranchKind::TapFirst(j) => {
                        let (k, kl, ku) = kvar[j];
                        let u = mccormick(&mut c, k, (kl, ku), w[br.f], (W_LO, W_HI));
                        tmc[j] = (k, w[br.f], u);
                        (Expr::var(u, 1.0), Expr::var(w[br.t], 1.0))
                    }
                    BranchKind::TapLast(j) => {
                        let (k, kl, ku) = kvar[j];
                        let (xl, xu) = (W_LO / ku, W_HI / kl);
                        let wx = c.var(Some(xl), Some(xu));
                        let u = mccormick(&mut c, k, (kl, ku), wx, (xl, xu));
                        tmc[j] = (k, wx, u);
                        c.eq0(Expr::var(u, 1.0).add(w[br.t], -1.0));
                        (Expr::var(w[br.f], 1.0), Expr::var(wx, 1.0))
                    }
                };
                // Voltage drop.
                c.eq0(
                    wb.clone()
                        .add_scaled(&wa, -1.0)
                        .add(p, 2.0 * br.r)
                        .add(q, 2.0 * br.x)
                        .add(l, -(br.r * br.r + br.x * br.x)),
                );
                // P² + Q² ≤ w_a·ℓ  ⇔  ‖(2P, 2Q, w_a − ℓ)‖ ≤ w_a + ℓ.
                lay.cone_rows.push((h, bi, [p, q, l], wa.clone()));
                c.soc(
                    wa.clone().add(l, 1.0),
                    vec![
                        Expr::var(p, 2.0),
                        Expr::var(q, 2.0),
                        wa.clone().add(l, -1.0),
                    ],
                );
                if let Some(smax) = br.s_max {
                    c.soc(
                        Expr::constant(smax),
                        vec![Expr::var(p, 1.0), Expr::var(q, 1.0)],
                    );
                }
                let pf = Expr::var(p, 1.0).add_scaled(&wa, 0.5 * br.g);
                let qf = Expr::var(q, 1.0).add_scaled(&wa, -0.5 * br.b);
                let pt = Expr::var(p, -1.0).add(l, br.r).add_scaled(&wb, 0.5 * br.g);
                let qt = Expr::var(q, -1.0).add(l, br.x).add_scaled(&wb, -0.5 * br.b);
                bal_p[br.f] = bal_p[br.f].clone().add_scaled(&pf, -1.0);
                bal_q[br.f] = bal_q[br.f].clone().add_scaled(&qf, -1.0);
                bal_p[br.t] = bal_p[br.t].clone().add_scaled(&pt, -1.0);
                bal_q[br.t] = bal_q[br.t].clone().add_scaled(&qt, -1.0);
                flows_from.push((pf, pt));
                // Loss regulariser.
                let lam = self.loss_eps + 1.05 * (-price).max(0.0);
                let guard = if self.guard_hours[h] {
                    br.lambda_guard
                } else {
                    0.0
                };
                let wgt = (lam * sn * br.r + guard) * dt;
                if wgt > 0.0 {
                    c.cost(l, wgt);
                    lay.reg.push((l, wgt));
                }
                lvec.push(l);
            }
            lay.l.push(lvec);
            lay.tap_mc.push(tmc);
            // Slack injections.
            let mut slack_p = vec![None; self.n_node];
            for &(n, _) in &self.slack {
                let ps = c.var(None, None);
                let qs = c.var(None, None);
                bal_p[n] = bal_p[n].clone().add(ps, 1.0);
                bal_q[n] = bal_q[n].clone().add(qs, 1.0);
                slack_p[n] = Some(ps);
            }
            // Generators.
            let mut g_pq = vec![];
            for &(n, scale, _, ref g) in &self.gens {
                let p = c.var(Some(g.p_min_mw), Some(g.p_max_mw.min(g.s_rated_mva)));
                let q = c.var(Some(g.q_min_mvar), Some(g.q_max_mvar));
                c.soc(
                    Expr::constant(g.s_rated_mva),
                    vec![Expr::var(p, 1.0), Expr::var(q, 1.0)],
                );
                if g.pf_min > 0.0 {
                    let tan = (1.0 - g.pf_min * g.pf_min).max(0.0).sqrt() / g.pf_min;
                    c.le0(Expr::var(q, 1.0).add(p, -tan));
                    c.le0(Expr::var(q, -1.0).add(p, -tan));
                }
                c.cost_sq(p, g.cost[0] * dt);
                c.cost(p, g.cost[1] * dt);
                c.constant += g.cost[2] * dt;
                bal_p[n] = bal_p[n].clone().add(p, scale);
                bal_q[n] = bal_q[n].clone().add(q, scale);
                g_pq.push((p, q));
            }
            lay.gen_pq.push(g_pq);
            // Renewables.
            let mut r_pq = vec![];
            for &(n, scale, _, ref r, ref avail) in &self.rens {
                let p = c.var(Some(0.0), Some(avail[h]));
                let q = c.var(Some(-r.q_max_mvar), Some(r.q_max_mvar));
                c.soc(
                    Expr::constant(r.s_rated_mva),
                    vec![Expr::var(p, 1.0), Expr::var(q, 1.0)],
                );
                bal_p[n] = bal_p[n].clone().add(p, scale);
                bal_q[n] = bal_q[n].clone().add(q, scale);
                r_pq.push((p, q));
            }
            lay.ren_pq.push(r_pq);
            // Storage.
            let mut s_v = vec![];
            for (j, &(n, scale, _, ref s, qfix)) in self.stos.iter().enumerate() {
                let ch = c.var(Some(0.0), Some(s.p_max_mw));
                let dis = c.var(Some(0.0), Some(s.p_max_mw));
                let soc = c.var(Some(s.soc_min), Some(s.soc_max));
                c.eq0(
                    Expr::var(soc, 1.0)
                        .add_scaled(&prev_soc[j], -1.0)
                        .add(ch, -s.eta_ch * dt / s.e_mwh)
                        .add(dis, dt / (s.eta_dis * s.e_mwh)),
                );
                prev_soc[j] = Expr::var(soc, 1.0);
                c.cost(ch, s.degradation_cost_per_mwh * dt);
                c.cost(dis, s.degradation_cost_per_mwh * dt);
                bal_p[n] = bal_p[n].clone().add(ch, -scale).add(dis, scale);
                bal_q[n] = bal_q[n].clone().add_scaled(&Expr::constant(-qfix), 1.0);
                s_v.push((ch, dis, soc));
            }
            lay.sto.push(s_v);
            for e in bal_p.into_iter().chain(bal_q) {
                c.eq0(e);
            }
            // Trading at the PCCs.
            let mut pcc_e = vec![];
            for pm in &self.pccs {
                let imp = match *pm {
                    PccM::Branch { branch, from_end } => {
                        if from_end {
                            flows_from[branch].0.clone()
                        } else {
                            flows_from[branch].1.clone()
                        }
                    }
                    PccM::Slack { node, count } => {
                        Expr::var(slack_p[node].expect("slack node"), 1.0 / count as f64)
                    }
                };
                if self.sell_discount == 1.0 {
                    c.cost_expr(&imp, price * dt * sn);
                } else {
                    let bu = c.var(Some(0.0), None);
                    let se = c.var(Some(0.0), None);
                    c.eq0(Expr::var(bu, 1.0).add(se, -1.0).add_scaled(&imp, -1.0));
                    c.cost(bu, price * dt * sn);
                    c.cost(se, -price * self.sell_discount * dt * sn);
                }
                pcc_e.push(imp);
            }
            lay.pcc.push(pcc_e);
            // Voltage band over the watched buses.
            for &(n, mult) in &self.penalised {
                match self.band_mode {
                    Band::Hard => {
                        c.le0(Expr::var(w[n], -1.0).add_scaled(&Expr::constant(vmin * vmin), 1.0));
                        c.le0(Expr::var(w[n], 1.0).add_scaled(&Expr::constant(-vmax * vmax), 1.0));
                    }
                    Band::Soft => {
                        let elo = c.var(Some(0.0), None);
                        let ehi = c.var(Some(0.0), None);
                        // √w ≥ vmin − e_lo:  ‖(2(vmin − e_lo), w − 1)‖ ≤ w + 1.
                        c.soc(
                            Expr::var(w[n], 1.0).add_scaled(&Expr::constant(1.0), 1.0),
                            vec![
                                Expr::var(elo, -2.0).add_scaled(&Expr::constant(2.0 * vmin), 1.0),
                                Expr::var(w[n], 1.0).add_scaled(&Expr::constant(-1.0), 1.0),
                            ],
                        );
                        c.le0(
                            Expr::var(w[n], 1.0 / (2.0 * vmax))
                                .add(ehi, -1.0)
                                .add_scaled(&Expr::constant(-vmax / 2.0), 1.0),
                        );
                        c.cost(elo, self.penalty * mult);
                        c.cost(ehi, self.penalty * mult);
                    }
                }
            }
            lay.w.push(w);
        }
        (c, lay)
    }
}

/// Moves of an integer position `x` (tap or capacitor step) from the previous
/// hour's `prev`: `m ≥ |x − prev|`, `m ≤ max_move`, wear `wear·m` in the
/// objective; `prev` becomes `x` for the next hour.
fn move_limit(c: &mut Conic, x: usize, prev: &mut Expr, max_move: f64, wear: f64) {
    let m = c.var(Some(0.0), None);
    c.le0(Expr::var(x, 1.0).add(m, -1.0).add_scaled(prev, -1.0));
    c.le0(Expr::var(x, -1.0).add(m, -1.0).add_scaled(prev, 1.0));
    c.le0(Expr::var(m, 1.0).add_scaled(&Expr::constant(-max_move), 1.0));
    c.cost(m, wear);
    *prev = Expr::var(x, 1.0);
}

/// A variable `u` with the McCormick envelope of `u = a·b`, `a ∈ [al, au]`, `b ∈ [bl, bu]`
/// (exact when either interval is a point and the variable sits on it).
fn mccormick(
    c: &mut Conic,
    a: usize,
    (al, au): (f64, f64),
    b: usize,
    (bl, bu): (f64, f64),
) -> usize {
    let u = c.var(None, None);
    // u ≥ al·b + a·bl − al·bl ;  u ≥ au·b + a·bu − au·bu
    c.le0(
        Expr::var(u, -1.0)
            .add(b, al)
            .add(a, bl)
            .add_scaled(&Expr::constant(-al * bl), 1.0),
    );
    c.le0(
        Expr::var(u, -1.0)
            .add(b, au)
            .add(a, bu)
            .add_scaled(&Expr::constant(-au * bu), 1.0),
    );
    // u ≤ au·b + a·bl − au·bl ;  u ≤ al·b + a·bu − al·bu
    c.le0(
        Expr::var(u, 1.0)
            .add(b, -au)
            .add(a, -bl)
            .add_scaled(&Expr::constant(au * bl), 1.0),
    );
    c.le0(
        Expr::var(u, 1.0)
            .add(b, -al)
            .add(a, -bu)
            .add_scaled(&Expr::constant(al * bu), 1.0),
    );
    u
}
