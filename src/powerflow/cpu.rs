//! The batched CPU solver in f64: fast-decoupled power flow (rotated XB/BX),
//! one copy per rayon task, shared factors, per-copy warm-started state.
//! Nothing is allocated inside the iteration loop: every buffer lives in the
//! copy's [`CopyState`], made once per batch. `shaders/fdpf.wgsl` mirrors
//! `solve_copy` line for line.

use super::admittance::{tapped_voltages, trafo_branch, BranchAdm};
use super::batch::{BatchInputs, BatchResults, PowerFlow, SolveSummary};
use super::plan::Plan;
use super::sparse_lu::{scale_upper, PatternValues};
use crate::complex::C64;
use crate::error::Result;
use rayon::prelude::*;
use std::sync::Arc;

/// A branch whose admittance every copy shares.
#[derive(Debug, Clone, Copy)]
struct FixedBranch {
    f: u32,
    t: u32,
    adm: BranchAdm,
}

/// One copy's state and scratch.
#[derive(Debug, Clone)]
pub struct CopyState {
    /// |V| of the PQ nodes.
    pub vm: Vec<f64>,
    /// 1/|V| of the PQ nodes.
    inv_vm: Vec<f64>,
    /// Voltages of every node (PQ nodes first, then slack nodes).
    pub v: Vec<C64>,
    /// Start from the no-load voltages at the next solve.
    pub cold: bool,
    s_spec: Vec<C64>,
    ysh: Vec<C64>,
    tap_adm: Vec<BranchAdm>,
    tap_pos: Vec<f64>,
    /// Uses its own B'' factors (its taps differ from the network's).
    own_bpp: bool,
    bpp_a: PatternValues,
    bpp_f: PatternValues,
    bpp_us: Vec<f64>,
    cur: Vec<C64>,
    rhs: Vec<f64>,
    tmp: Vec<f64>,
    /// Converged at the last solve.
    pub converged: bool,
    /// Iterations of the last solve.
    pub iterations: u32,
    /// Final mismatch of the last solve.
    pub mismatch: f64,
}

impl CopyState {
    fn new(plan: &Plan) -> Self {
        let (n, nn) = (plan.n_pq, plan.n_node);
        let mut v = vec![C64::ZERO; nn];
        v[n..].copy_from_slice(&plan.slack_v);
        CopyState {
            vm: vec![1.0; n],
            inv_vm: vec![1.0; n],
            cold: true,
            s_spec: vec![C64::ZERO; nn],
            ysh: vec![C64::ZERO; nn],
            tap_adm: plan
                .tap_trafos
                .iter()
                .map(|&(_, b)| plan.branches[b].adm)
                .collect(),
            tap_pos: vec![f64::NAN; plan.tap_trafos.len()],
            own_bpp: false,
            bpp_a: if plan.tap_trafos.is_empty() {
                PatternValues::default()
            } else {
                plan.bpp.zero_values()
            },
            bpp_f: if plan.tap_trafos.is_empty() {
                PatternValues::default()
            } else {
                plan.bpp.zero_values()
            },
            bpp_us: if plan.tap_trafos.is_empty() {
                vec![]
            } else {
                vec![0.0; plan.bpp.u_col.len()]
            },
            v,
            cur: vec![C64::ZERO; nn],
            rhs: vec![0.0; n],
            tmp: vec![0.0; n],
            converged: false,
            iterations: 0,
            mismatch: f64::NAN,
        }
    }
}

impl CopyState {
    /// Heap bytes this copy's state holds (for the memory estimate).
    pub(crate) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let pv = |p: &PatternValues| (p.l.capacity() + p.d.capacity() + p.u.capacity()) * 8;
        (self.vm.capacity() + self.inv_vm.capacity() + self.tap_pos.capacity()) * 8
            + (self.v.capacity()
                + self.s_spec.capacity()
                + self.ysh.capacity()
                + self.cur.capacity())
                * size_of::<C64>()
            + self.tap_adm.capacity() * size_of::<BranchAdm>()
            + pv(&self.bpp_a)
            + pv(&self.bpp_f)
            + (self.bpp_us.capacity() + self.rhs.capacity() + self.tmp.capacity()) * 8
            + size_of::<CopyState>()
    }

    /// Bytes one copy of `plan` needs in a [`CpuBatch`] (state, inputs, results).
    pub(crate) fn bytes_per_copy(plan: &Plan) -> usize {
        CopyState::new(plan).heap_bytes() + super::memory::io_bytes_per_copy(&plan.net)
    }
}

/// Shared, read-only data of the CPU kernel.
struct Kernel {
    plan: Arc<Plan>,
    fixed: Vec<FixedBranch>,
    taps: Vec<(u32, u32)>,
    trafo_tap: Vec<Option<usize>>,
    /// Nodes with a shunt element.
    shunt_nodes: Vec<usize>,
    /// Rows of the PQ nodes of the copy-independent part of Y (fixed branches), CSR.
    y_ptr: Vec<u32>,
    y_col: Vec<u32>,
    y_val: Vec<C64>,
    /// Convergence tolerance of the next solves (the plan's unless overridden).
    tol: f64,
    /// Per tap-changing trafo (index into `plan.tap_trafos`): the PQ nodes
    /// that reach a slack only through it, and whether they hang off its LV
    /// side; `None` where it is not such a cut (meshed around it).
    tap_down: Vec<Option<(bool, Vec<u32>)>>,
}

/// For each tap-changing trafo, the nodes cut off from every slack when it is
/// removed (see [`Kernel::tap_down`]). At most `8·n_node + 1024` entries in
/// all, so nested regulators on a long radial feeder cannot make it quadratic;
/// trafos past that budget get `None` (no warm-start scaling, same results).
fn downstream_nodes(p: &Plan) -> Vec<Option<(bool, Vec<u32>)>> {
    let n = p.n_node;
    let mut adj: Vec<Vec<(usize, usize)>> = vec![vec![]; n];
    for (i, b) in p.branches.iter().enumerate() {
        if b.f != b.t {
            adj[b.f].push((b.t, i));
            adj[b.t].push((b.f, i));
        }
    }
    let mut budget = 8 * n + 1024;
    let mut seen = vec![false; n];
    let mut stack = Vec::with_capacity(n);
    p.tap_trafos
        .iter()
        .map(|&(_, bi)| {
            seen.fill(false);
            stack.clear();
            stack.extend(p.n_pq..n);
            for &s in &stack {
                seen[s] = true;
            }
            while let Some(u) = stack.pop() {
                for &(v, e) in &adj[u] {
                    if e != bi && !seen[v] {
                        seen[v] = true;
                        stack.push(v);
                    }
                }
            }
            let br = &p.branches[bi];
            let lv_down = match (seen[br.f], seen[br.t]) {
                (true, false) => true,
                (false, true) => false,
                _ => return None,
            };
            let nodes: Vec<u32> = (0..p.n_pq)
                .filter(|&i| !seen[i])
                .map(|i| i as u32)
                .collect();
            if nodes.len() > budget {
                return None;
            }
            budget -= nodes.len();
            Some((lv_down, nodes))
        })
        .collect()
}

impl Kernel {
    fn new(plan: Arc<Plan>) -> Self {
        let fixed: Vec<FixedBranch> = plan
            .fixed_branches
            .iter()
            .map(|&i| {
                let b = &plan.branches[i];
                FixedBranch {
                    f: b.f as u32,
                    t: b.t as u32,
                    adm: b.adm,
                }
            })
            .collect();
        let taps = plan
            .tap_trafos
            .iter()
            .map(|&(_, b)| (plan.branches[b].f as u32, plan.branches[b].t as u32))
            .collect();
        let mut trafo_tap = vec![None; plan.net.trafos.len()];
        for (j, &(k, _)) in plan.tap_trafos.iter().enumerate() {
            trafo_tap[k] = Some(j);
        }
        let shunt_nodes = plan.shunt_nodes();
        // Gather form of the fixed branches: one accumulation per PQ row, no
        // store-to-load chains through shared nodes.
        let n = plan.n_pq;
        let mut rows: Vec<std::collections::BTreeMap<u32, C64>> = vec![Default::default(); n];
        for b in &fixed {
            let (f, t) = (b.f as usize, b.t as usize);
            let mut add = |r: usize, c: u32, y: C64| {
                if r < n {
                    *rows[r].entry(c).or_insert(C64::ZERO) += y;
                }
            };
            add(f, b.f, b.adm.yff);
            add(f, b.t, b.adm.yft);
            add(t, b.f, b.adm.ytf);
            add(t, b.t, b.adm.ytt);
        }
        let (mut y_ptr, mut y_col, mut y_val) = (vec![0u32], vec![], vec![]);
        for r in rows {
            for (c, y) in r {
                y_col.push(c);
                y_val.push(y);
            }
            y_ptr.push(y_col.len() as u32);
        }
        assert!(
            y_col.iter().all(|&c| (c as usize) < plan.n_node),
            "Y column out of range"
        );
        Kernel {
            tol: plan.options.tolerance_pu,
            tap_down: downstream_nodes(&plan),
            plan,
            fixed,
            taps,
            trafo_tap,
            shunt_nodes,
            y_ptr,
            y_col,
            y_val,
        }
    }

    /// Per-copy injections, shunts and tap-dependent admittances from row `c` of `inp`.
    fn prepare(&self, inp: &BatchInputs, c: usize, st: &mut CopyState) {
        let p = &*self.plan;
        let net = &p.net;
        super::injections::copy_injections(p, inp, c, &mut st.s_spec, &mut st.ysh);
        let mut taps_changed = false;
        for (j, &(k, _)) in p.tap_trafos.iter().enumerate() {
            let pos = inp.trafo_tap_pos[(c, k)];
            if pos != st.tap_pos[j] {
                // Warm start: the voltages behind a regulator follow its ratio
                // (to first order on a radial feeder), so scale them by the
                // ratio's change instead of letting FDPF find it in several
                // iterations. Only the starting point changes, not the solution.
                if let (Some((lv_down, nodes)), true) =
                    (&self.tap_down[j], st.tap_pos[j].is_finite())
                {
                    let t = &net.trafos[k];
                    let (h0, l0) = tapped_voltages(t, st.tap_pos[j]);
                    let (h1, l1) = tapped_voltages(t, pos);
                    // |V_lv|/|V_hv| goes as vn_lv/vn_hv.
                    let f = (l1 / h1) / (l0 / h0);
                    let f = if *lv_down { f } else { 1.0 / f };
                    if f.is_finite() && f > 0.0 {
                        for &i in nodes {
                            st.v[i as usize] = st.v[i as usize].scale(f);
                        }
                    }
                }
                st.tap_pos[j] = pos;
                st.tap_adm[j] = trafo_branch(net, &net.trafos[k], pos).admittance();
                taps_changed = true;
            }
        }
        if taps_changed {
            // FDPF needs B'' at the copy's own taps when they are far from the
            // network's (measured: ieee34 diverges otherwise); refactor on the static pattern.
            let base =
                p.tap_trafos.iter().zip(&st.tap_pos).all(|(&(k, _), &pos)| {
                    net.trafos[k].tap.as_ref().is_some_and(|t| t.pos == pos)
                });
            st.own_bpp = !base
                && p.bpp_factor_for_taps(&st.tap_pos, &mut st.bpp_a, &mut st.bpp_f, &mut st.tmp);
            if st.own_bpp {
                scale_upper(&p.bpp, &st.bpp_f, &mut st.bpp_us);
            }
        }
    }

    /// `ΔS = S_spec − V·conj(Y·V)` at every PQ node from the rectangular
    /// voltages `st.v`, written straight into the right-hand side of the next
    /// half-step: `rhs_i = Re(ΔS_i·e^{jψ})/|V_i|` for a P half-step (`p_step`),
    /// `Im(…)/|V_i|` for a Q half-step. Returns max(|ΔP|, |ΔQ|) (infinite if not finite).
    #[inline]
    fn mismatch(&self, st: &mut CopyState, p_step: bool) -> f64 {
        let n = self.plan.n_pq;
        let rot = self.plan.rot;
        // Copy-dependent parts first (shunt steps, tap-changing trafos), then one
        // pass over the rows of the shared part that also forms the mismatch.
        st.cur[..n].fill(C64::ZERO);
        for &i in &self.shunt_nodes {
            if i < n {
                st.cur[i] = st.ysh[i] * st.v[i];
            }
        }
        for (j, &(f, t)) in self.taps.iter().enumerate() {
            let (f, t) = (f as usize, t as usize);
            let a = st.tap_adm[j];
            let (vf, vt) = (st.v[f], st.v[t]);
            if f < n {
                st.cur[f] += a.yff * vf + a.yft * vt;
            }
            if t < n {
                st.cur[t] += a.ytf * vf + a.ytt * vt;
            }
        }
        let v = &st.v[..];
        let (y_val, y_col) = (&self.y_val[..], &self.y_col[..]);
        assert!(
            self.y_ptr.len() == n + 1
                && *self.y_ptr.last().unwrap_or(&0) as usize == y_val.len()
                && y_val.len() == y_col.len()
        );
        let rows = self.y_ptr.windows(2);
        let mut worst: f64 = 0.0;
        let mut total: f64 = 0.0;
        for ((((row, cur), s), (vi, inv_vm)), rhs) in rows
            .zip(&st.cur[..n])
            .zip(&st.s_spec[..n])
            .zip(v[..n].iter().zip(&st.inv_vm[..n]))
            .zip(st.rhs[..n].iter_mut())
        {
            let mut acc = *cur;
            for k in row[0] as usize..row[1] as usize {
                // SAFETY: y_ptr is non-decreasing and ends at y_val.len() (checked above and
                // in `Kernel::new`); every column is a node (< n_node = v.len()).
                unsafe {
                    acc += *y_val.get_unchecked(k)
                        * *v.get_unchecked(*y_col.get_unchecked(k) as usize);
                }
            }
            let d = *s - *vi * acc.conj();
            let (ar, ai) = (d.re.abs(), d.im.abs());
            let m = if ar > ai { ar } else { ai };
            worst = if m > worst { m } else { worst };
            total += ar + ai;
            let dr = d * rot;
            *rhs = if p_step { dr.re } else { dr.im } * inv_vm;
        }
        // A NaN anywhere makes the sum NaN (the comparisons above skip it).
        if total.is_finite() {
            worst
        } else {
            f64::INFINITY
        }
    }
}

/// `e^{jθ}`; a Taylor series for the small angle steps of an iteration
/// (exact to rounding for |θ| < 0.05), libm otherwise.
#[inline(always)]
fn cis(t: f64) -> C64 {
    if t.abs() < 0.05 {
        let t2 = t * t;
        let c = 1.0 - t2 * (0.5 - t2 * (1.0 / 24.0 - t2 * (1.0 / 720.0 - t2 * (1.0 / 40320.0))));
        let s = t
            * (1.0
                - t2 * (1.0 / 6.0
                    - t2 * (1.0 / 120.0 - t2 * (1.0 / 5040.0 - t2 * (1.0 / 362880.0)))));
        C64::new(c, s)
    } else {
        C64::from_polar(1.0, t)
    }
}

/// Solve one copy: rotated fast-decoupled iterations from its current state.
/// The state is the rectangular voltage `V`; a P half-step turns each `V_i` by
/// `Δθ_i`, a Q half-step scales it to `|V_i| + Δ|V_i|`. Returns with
/// `st.v`/`st.cur` consistent with the final voltages.
fn solve_copy(k: &Kernel, st: &mut CopyState) {
    let p = &*k.plan;
    let n = p.n_pq;
    if st.cold {
        st.v[..n].copy_from_slice(&p.v_noload);
    }
    for i in 0..n {
        st.vm[i] = st.v[i].norm_sqr().sqrt();
        st.inv_vm[i] = 1.0 / st.vm[i];
    }
    let tol = k.tol;
    let mut iters = 0;
    let mut converged = false;
    let mut norm = k.mismatch(st, true);
    loop {
        if norm <= tol {
            converged = true;
            break;
        }
        if iters >= p.options.max_iterations || norm > 1e6 {
            break;
        }
        iters += 1;
        // P half-step: B'·Δθ = ΔP'/|V| (rhs formed by the mismatch).
        p.bp.solve_in_place(&mut st.rhs);
        for i in 0..n {
            st.v[i] = st.v[i] * cis(st.rhs[i]);
        }
        norm = k.mismatch(st, false);
        if norm <= tol {
            converged = true;
            break;
        }
        // Q half-step: B''·Δ|V| = ΔQ'/|V|.
        if st.own_bpp {
            p.bpp
                .solve_flat(&st.bpp_f.l, &st.bpp_us, &st.bpp_f.d, &mut st.rhs);
        } else {
            p.bpp.solve_in_place(&mut st.rhs);
        }
        for i in 0..n {
            let vm = st.vm[i] + st.rhs[i];
            st.v[i] = st.v[i].scale(vm * st.inv_vm[i]);
            st.vm[i] = vm;
            st.inv_vm[i] = 1.0 / vm;
        }
        norm = k.mismatch(st, true);
    }
    st.converged = converged;
    st.iterations = iters;
    st.mismatch = norm;
    st.cold = !converged;
}

/// Score a plan's variant and rotation for the warm-started use the solver is
/// built for: iterations of a cold solve of the base case (weight 1/10) plus the
/// mean iterations of warm solves after deterministic ±3 % changes of every load
/// and sgen. `None` if any solve fails to converge.
pub(crate) fn score_variant(plan: &Arc<Plan>) -> Option<f64> {
    let k = Kernel::new(plan.clone());
    let mut inp = BatchInputs::from_network(&plan.net, 1);
    let mut st = CopyState::new(plan);
    k.prepare(&inp, 0, &mut st);
    solve_copy(&k, &mut st);
    if !st.converged {
        return None;
    }
    let cold = st.iterations as f64;
    let base = inp.clone();
    let mut warm = 0.0;
    const STEPS: usize = 4;
    for step in 0..STEPS {
        let f = |j: usize| 1.0 + 0.03 * ((j * 7 + step * 13) as f64).sin();
        for j in 0..base.load_p_mw.ncols() {
            inp.load_p_mw[(0, j)] = base.load_p_mw[(0, j)] * f(j);
            inp.load_q_mvar[(0, j)] = base.load_q_mvar[(0, j)] * f(j + 1);
        }
        for j in 0..base.sgen_p_mw.ncols() {
            inp.sgen_p_mw[(0, j)] = base.sgen_p_mw[(0, j)] * f(j + 2);
        }
        k.prepare(&inp, 0, &mut st);
        solve_copy(&k, &mut st);
        if !st.converged {
            return None;
        }
        warm += st.iterations as f64;
    }
    Some(cold / 10.0 + warm / STEPS as f64)
}

/// Per-copy result rows, written straight into the result tables.
struct ResultRows<'a> {
    vm: &'a mut [f64],
    va: &'a mut [f64],
    lp: &'a mut [f64],
    lq: &'a mut [f64],
    li: &'a mut [f64],
    ll: &'a mut [f64],
    tl: &'a mut [f64],
    ep: &'a mut [f64],
    eq: &'a mut [f64],
}

const SQRT3: f64 = 1.732_050_807_568_877_2;

/// Currents injected at the slack nodes (only needed for results).
fn slack_currents(k: &Kernel, st: &mut CopyState) {
    let n = k.plan.n_pq;
    for i in n..st.cur.len() {
        st.cur[i] = st.ysh[i] * st.v[i];
    }
    let add = |f: usize, t: usize, a: &BranchAdm, cur: &mut [C64]| {
        let (vf, vt) = (st.v[f], st.v[t]);
        if f >= n {
            cur[f] += a.yff * vf + a.yft * vt;
        }
        if t >= n {
            cur[t] += a.ytf * vf + a.ytt * vt;
        }
    };
    let mut cur = std::mem::take(&mut st.cur);
    for b in &k.fixed {
        add(b.f as usize, b.t as usize, &b.adm, &mut cur);
    }
    for (j, &(f, t)) in k.taps.iter().enumerate() {
        add(f as usize, t as usize, &st.tap_adm[j], &mut cur);
    }
    st.cur = cur;
}

fn copy_results(k: &Kernel, st: &CopyState, r: ResultRows) {
    let p = &*k.plan;
    let net = &p.net;
    let sn = net.sn_mva;
    for (b, node) in p.bus_node.iter().enumerate() {
        let (m, a) = match *node {
            Some(i) => (st.v[i].abs(), st.v[i].arg().to_degrees()),
            None => (0.0, 0.0),
        };
        r.vm[b] = m;
        r.va[b] = a;
    }
    let flows = |adm: &BranchAdm, f: usize, t: usize| {
        let (vf, vt) = (st.v[f], st.v[t]);
        let i_f = adm.yff * vf + adm.yft * vt;
        let i_t = adm.ytf * vf + adm.ytt * vt;
        (vf * i_f.conj(), i_f.abs(), i_t.abs())
    };
    for (li, l) in net.lines.iter().enumerate() {
        let Some(bi) = p.line_branch[li] else {
            r.lp[li] = 0.0;
            r.lq[li] = 0.0;
            r.li[li] = 0.0;
            r.ll[li] = 0.0;
            continue;
        };
        let b = &p.branches[bi];
        let (s, i_f, i_t) = flows(&b.adm, b.f, b.t);
        let base_i = sn / SQRT3;
        let i_ka = (i_f * base_i / net.buses[l.from_bus].vn_kv)
            .max(i_t * base_i / net.buses[l.to_bus].vn_kv);
        r.lp[li] = s.re * sn;
        r.lq[li] = s.im * sn;
        r.li[li] = i_ka;
        r.ll[li] = i_ka / (l.max_i_ka * l.df * l.parallel as f64) * 100.0;
    }
    for (ti, t) in net.trafos.iter().enumerate() {
        let Some(bi) = p.trafo_branch[ti] else {
            r.tl[ti] = 0.0;
            continue;
        };
        let b = &p.branches[bi];
        let adm = match k.trafo_tap[ti] {
            Some(j) => &st.tap_adm[j],
            None => &b.adm,
        };
        let (_, i_f, i_t) = flows(adm, b.f, b.t);
        let i_hv = i_f * sn / (SQRT3 * net.buses[t.hv_bus].vn_kv);
        let i_lv = i_t * sn / (SQRT3 * net.buses[t.lv_bus].vn_kv);
        let ld = (i_hv * t.vn_hv_kv).max(i_lv * t.vn_lv_kv) * SQRT3 / t.sn_mva * 100.0;
        r.tl[ti] = ld / t.parallel as f64 / t.df;
    }
    for (e, node) in p.ext_grid_node.iter().enumerate() {
        let (pe, qe) = match *node {
            Some((n, count)) => {
                let s = (st.v[n] * st.cur[n].conj() - st.s_spec[n]).scale(sn / count as f64);
                (s.re, s.im)
            }
            None => (0.0, 0.0),
        };
        r.ep[e] = pe;
        r.eq[e] = qe;
    }
}

/// B copies of one network on the CPU.
pub struct CpuBatch {
    kernel: Kernel,
    inputs: BatchInputs,
    results: BatchResults,
    states: Vec<CopyState>,
    pool: rayon::ThreadPool,
}

impl CpuBatch {
    /// `batch` copies at the network's own set-points, on a pool of its own with
    /// as many threads as the current rayon pool (`RAYON_NUM_THREADS` honoured).
    ///
    /// A pool of its own, not rayon's global one: measured on the 2-core dev
    /// machine, ieee123 ran at 25k power flows/s on the global pool with 2
    /// threads against 93k on a dedicated pool of 2 (47k with one thread).
    pub fn new(plan: Arc<Plan>, batch: usize) -> Self {
        let inputs = BatchInputs::from_network(&plan.net, batch);
        let results = BatchResults::zeros(&plan.net, batch);
        let states = (0..batch).map(|_| CopyState::new(&plan)).collect();
        CpuBatch {
            kernel: Kernel::new(plan),
            inputs,
            results,
            states,
            pool: Self::make_pool(rayon::current_num_threads()),
        }
    }

    fn make_pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("powergrid-cpu-{i}"))
            .build()
            .or_else(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build())
            .expect("a rayon thread pool of one thread")
    }

    /// Use a pool of `threads` threads (0 = as many as the current rayon pool).
    pub fn with_threads(mut self, threads: usize) -> Result<Self> {
        let n = if threads == 0 {
            rayon::current_num_threads()
        } else {
            threads
        };
        self.pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| crate::error::Error::InvalidInput(format!("thread pool: {e}")))?;
        Ok(self)
    }

    /// The shared plan.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.kernel.plan
    }

    /// Per-copy states.
    pub fn states(&self) -> &[CopyState] {
        &self.states
    }

    /// Solve every copy, or with `active` only those it marks (the others keep
    /// their state and result rows).
    fn run(&mut self, active: Option<&[bool]>) {
        let k = &self.kernel;
        let on = |c: usize| active.is_none_or(|a| a[c]);
        let inp = &self.inputs;
        let states = &mut self.states;
        let res = &mut self.results;
        let (nb, nl, nt, ne) = k.plan.sizes();
        let work = || {
            states.par_iter_mut().enumerate().for_each(|(c, st)| {
                if !on(c) {
                    return;
                }
                k.prepare(inp, c, st);
                solve_copy(k, st);
                slack_currents(k, st);
            });
            let sl = |a: &mut ndarray::Array2<f64>| {
                a.as_slice_mut().expect("standard layout").as_mut_ptr() as usize
            };
            // Each copy writes only its own rows: disjoint slices of each table.
            let ptrs = [
                sl(&mut res.vm_pu),
                sl(&mut res.va_degree),
                sl(&mut res.line_p_from_mw),
                sl(&mut res.line_q_from_mvar),
                sl(&mut res.line_i_ka),
                sl(&mut res.line_loading_percent),
                sl(&mut res.trafo_loading_percent),
                sl(&mut res.ext_grid_p_mw),
                sl(&mut res.ext_grid_q_mvar),
            ];
            states.par_iter().enumerate().for_each(|(c, st)| {
                if !on(c) {
                    return;
                }
                // SAFETY: row `c` of each table is written by this task only, the
                // tables outlive the loop and are in standard (row-major) layout.
                let row = |i: usize, n: usize| unsafe {
                    std::slice::from_raw_parts_mut((ptrs[i] as *mut f64).add(c * n), n)
                };
                copy_results(
                    k,
                    st,
                    ResultRows {
                        vm: row(0, nb),
                        va: row(1, nb),
                        lp: row(2, nl),
                        lq: row(3, nl),
                        li: row(4, nl),
                        ll: row(5, nl),
                        tl: row(6, nt),
                        ep: row(7, ne),
                        eq: row(8, ne),
                    },
                );
            });
        };
        self.pool.install(work);
        for (c, st) in self.states.iter().enumerate() {
            self.results.converged[c] = st.converged;
            self.results.iterations[c] = st.iterations;
            self.results.max_mismatch_pu[c] = st.mismatch;
        }
    }
}

impl PowerFlow for CpuBatch {
    fn describe(&self) -> String {
        format!("cpu (f64, {} threads)", self.threads())
    }
    fn batch(&self) -> usize {
        self.states.len()
    }
    fn inputs(&self) -> &BatchInputs {
        &self.inputs
    }
    fn inputs_mut(&mut self) -> &mut BatchInputs {
        &mut self.inputs
    }
    fn solve(&mut self) -> Result<SolveSummary> {
        self.inputs.validate(&self.kernel.plan.net)?;
        self.run(None);
        Ok(summary(&self.results))
    }
    fn solve_active(&mut self, active: &[bool]) -> Result<SolveSummary> {
        if active.len() != self.states.len() {
            return Err(crate::error::Error::InvalidInput(format!(
                "active mask has {} entries for {} copies",
                active.len(),
                self.states.len()
            )));
        }
        self.inputs.validate(&self.kernel.plan.net)?;
        self.run(Some(active));
        Ok(summary(&self.results))
    }
    fn results(&self) -> &BatchResults {
        &self.results
    }
    fn set_tolerance(&mut self, tolerance_pu: Option<f64>) {
        self.kernel.tol = tolerance_pu
            .filter(|t| t.is_finite() && *t > 0.0)
            .unwrap_or(self.kernel.plan.options.tolerance_pu);
    }
    fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
    fn reset_start(&mut self, copies: &[usize]) {
        for &c in copies {
            if let Some(st) = self.states.get_mut(c) {
                st.cold = true;
            }
        }
    }
}

/// Summary of a results table.
pub fn summary(r: &BatchResults) -> SolveSummary {
    let b = r.batch();
    SolveSummary {
        converged: r.converged.iter().filter(|&&c| c).count(),
        batch: b,
        mean_iterations: r.iterations.iter().map(|&i| i as f64).sum::<f64>() / b.max(1) as f64,
    }
}
