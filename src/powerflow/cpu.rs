//! The batched CPU solver in f64: fast-decoupled power flow (rotated XB/BX),
//! one copy per rayon task (or eight per SIMD group, `cpu/lanes.rs`), shared
//! factors, per-copy warm-started state.
//! Nothing is allocated inside the iteration loop: every buffer lives in the
//! copy's [`CopyState`], made once per batch. `shaders/fdpf.wgsl` mirrors
//! `solve_copy` line for line.

use super::admittance::{trafo_branch, BranchAdm};
use super::batch::{BatchInputs, BatchResults, PowerFlow, SolveSummary, SolveWork};
use super::injections::GenSites;
use super::plan::Plan;
use super::sparse_lu::{scale_upper, PatternValues};
use super::tap_warm::{downstream_nodes, tap_move_factor, TapDown};
use crate::complex::C64;
use crate::error::Result;
use ndarray::Array2;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

mod lanes;
mod qlims;
mod shards;
pub(crate) use shards::Shard;
mod transpose;
use lanes::{Group, SolveGroup, WriteRows, LANES};

/// Which CPU kernel solves the copies of a [`CpuBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuKernel {
    /// Eight copies at a time in SIMD lanes (AVX-512, AVX2 or scalar code,
    /// chosen at run time); bit for bit the scalar kernel's results.
    #[default]
    Lanes,
    /// One copy at a time, scalar f64 (the reference the lanes are checked against).
    Scalar,
}

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
    /// |V| of the PQ nodes: scratch of a solve, formed from `v` at its start
    /// (the lane kernel does not write it back).
    vm: Vec<f64>,
    /// 1/|V| of the PQ nodes.
    inv_vm: Vec<f64>,
    /// Voltages of every node (PQ nodes first, then slack nodes).
    pub v: Vec<C64>,
    /// Start from the no-load voltages at the next solve.
    pub cold: bool,
    /// `s_spec` (and the ZIP parts) are those of the current inputs: no
    /// set-point but taps and shunt steps changed since they were formed
    /// ([`PowerFlow::controls_mut`]).
    injections_fresh: bool,
    s_spec: Vec<C64>,
    /// ZIP parts of the PQ nodes' injections (empty without ZIP loads):
    /// ∝ |V| and ∝ |V|² ([`super::injections::copy_zip`]).
    s_i: Vec<C64>,
    s_z: Vec<C64>,
    /// |V| set-point of each PV node (per `plan.pv_nodes`), from the gens' `vm_pu`.
    pv_vm: Vec<f64>,
    /// Each gen's P in MW (`p_mw · scaling`; 0 where not solved), for the results.
    gen_p: Vec<f64>,
    ysh: Vec<C64>,
    tap_adm: Vec<BranchAdm>,
    tap_pos: Vec<f64>,
    /// B'' factors at this copy's taps where they differ from the network's
    /// (`None`: the network's own), shared through [`BppCache`].
    bpp: Option<Arc<BppFactors>>,
    /// Scratch for factoring B'' on a cache miss: the matrix, its factors and
    /// the cache key (tap positions).
    bpp_a: PatternValues,
    bpp_f: PatternValues,
    bpp_key: Vec<u64>,
    cur: Vec<C64>,
    rhs: Vec<f64>,
    tmp: Vec<f64>,
    /// Converged at the last solve.
    pub converged: bool,
    /// Iterations of the last solve.
    pub iterations: u32,
    /// Final mismatch of the last solve.
    pub mismatch: f64,
    /// `enforce_q_lims`: the gens held at a Q limit and the released PV
    /// nodes of the last solve (empty with the option off).
    q: qlims::QState,
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
            injections_fresh: false,
            s_spec: vec![C64::ZERO; nn],
            s_i: vec![C64::ZERO; if plan.has_zip { n } else { 0 }],
            s_z: vec![C64::ZERO; if plan.has_zip { n } else { 0 }],
            pv_vm: (0..plan.pv_nodes.len())
                .map(|j| plan.pv_vm_base(j))
                .collect(),
            gen_p: vec![0.0; plan.gen_node.len()],
            ysh: vec![C64::ZERO; nn],
            tap_adm: plan
                .tap_trafos
                .iter()
                .map(|&(_, b)| plan.branches[b].adm)
                .collect(),
            tap_pos: vec![f64::NAN; plan.tap_trafos.len()],
            bpp: None,
            bpp_key: Vec::with_capacity(plan.tap_trafos.len()),
            bpp_a: if plan.tap_trafos.is_empty() && !plan.options.enforce_q_lims {
                PatternValues::default()
            } else {
                plan.bpp.zero_values()
            },
            bpp_f: if plan.tap_trafos.is_empty() && !plan.options.enforce_q_lims {
                PatternValues::default()
            } else {
                plan.bpp.zero_values()
            },
            v,
            cur: vec![C64::ZERO; nn],
            rhs: vec![0.0; n],
            tmp: vec![0.0; n],
            converged: false,
            iterations: 0,
            mismatch: f64::NAN,
            q: qlims::QState::default(),
        }
    }
}

impl CopyState {
    /// Heap bytes this copy's state holds (for the memory estimate).
    pub(crate) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let pv = |p: &PatternValues| (p.l.capacity() + p.d.capacity() + p.u.capacity()) * 8;
        (self.vm.capacity() + self.inv_vm.capacity() + self.tap_pos.capacity()) * 8
            + (self.pv_vm.capacity() + self.gen_p.capacity()) * 8
            + (self.v.capacity()
                + self.s_spec.capacity()
                + self.s_i.capacity()
                + self.s_z.capacity()
                + self.ysh.capacity()
                + self.cur.capacity())
                * size_of::<C64>()
            + self.tap_adm.capacity() * size_of::<BranchAdm>()
            + pv(&self.bpp_a)
            + pv(&self.bpp_f)
            + (self.bpp_key.capacity() + self.rhs.capacity() + self.tmp.capacity()) * 8
            + self.q.heap_bytes()
            + size_of::<CopyState>()
    }

    /// Bytes one copy of `plan` needs in a [`CpuBatch`] (state, inputs,
    /// results), and an eighth of a lane group's scratch (an upper bound: the
    /// batch holds one group per thread, not one per eight copies).
    pub(crate) fn bytes_per_copy(plan: &Plan) -> usize {
        CopyState::new(plan).heap_bytes()
            + Group::bytes_for(plan).div_ceil(LANES)
            + super::memory::io_bytes_per_copy(&plan.net)
    }
}

/// B'' factors (flat form, as [`SparseLu::solve_flat`](super::sparse_lu::SparseLu)
/// takes them) at one set of tap positions.
#[derive(Debug)]
pub(crate) struct BppFactors {
    /// Unique per factorisation (never reused), so that a lane group can tell
    /// that it already holds these values.
    pub(crate) id: u64,
    pub(crate) l: Vec<f64>,
    pub(crate) us: Vec<f64>,
    pub(crate) d: Vec<f64>,
}

/// Copies whose taps differ from the network's need B'' at their own taps
/// (FDPF diverges on ieee34 otherwise). Every copy at the same positions has
/// the same factors, and a feeder's regulators visit few combinations, so
/// they are factored once and shared: a tap move costs a look-up instead
/// of an O(nnz) refactor (and the lane kernel skips reloading unchanged lanes).
/// Bounded: past [`BppCache::MAX`] combinations, misses are factored per copy
/// and not kept. The factors are a pure function of the taps, so results do
/// not depend on hits or misses.
///
/// Whole positions inside the trafos' ranges, when their combinations are
/// few ([`BppCache::DENSE_MAX`]; ieee34_ieee13 has 33²·5³), have a slot each
/// that every thread reads without a lock ([`DenseSlots`]); other positions,
/// and released PV nodes, go through a map behind a lock.
#[derive(Debug, Default)]
struct BppCache {
    dense: Option<DenseSlots>,
    /// Tap positions (f64 bits, per `plan.tap_trafos`) → factors (`None`: a
    /// zero pivot at those taps; the network's own factors are used).
    map: std::sync::RwLock<std::collections::HashMap<Vec<u64>, Option<Arc<BppFactors>>>>,
    /// Factor sets kept (in `dense` and `map` together).
    kept: std::sync::atomic::AtomicUsize,
    next_id: std::sync::atomic::AtomicU64,
}

/// One slot per combination of whole tap positions (mixed radix over
/// `plan.tap_trafos`), filled once, on first use.
#[derive(Debug)]
struct DenseSlots {
    /// Per tap-changing trafo: its lowest position, its number of positions
    /// and its stride in `slots`.
    axes: Vec<(f64, usize, usize)>,
    slots: Box<[std::sync::OnceLock<Option<Arc<BppFactors>>>]>,
}

impl DenseSlots {
    fn new(p: &Plan) -> Option<DenseSlots> {
        let mut axes = Vec::with_capacity(p.tap_trafos.len());
        let mut len = 1usize;
        for &(k, _) in &p.tap_trafos {
            let tap = p.net.trafos[k].tap.as_ref()?;
            let span = tap.max - tap.min;
            if !(span >= 0.0 && span < BppCache::DENSE_MAX as f64 && tap.min.fract() == 0.0) {
                return None;
            }
            let count = span as usize + 1;
            axes.push((tap.min, count, len));
            len = len
                .checked_mul(count)
                .filter(|&l| l <= BppCache::DENSE_MAX)?;
        }
        let slots = (0..len).map(|_| std::sync::OnceLock::new()).collect();
        Some(DenseSlots { axes, slots })
    }

    /// The slot of `taps` (`None`: a position that is not whole or out of range).
    fn slot(&self, taps: &[f64]) -> Option<&std::sync::OnceLock<Option<Arc<BppFactors>>>> {
        let mut i = 0;
        for (&(min, count, stride), &pos) in self.axes.iter().zip(taps) {
            let x = pos - min;
            if !(x >= 0.0 && x.fract() == 0.0 && (x as usize) < count) {
                return None;
            }
            i += x as usize * stride;
        }
        self.slots.get(i)
    }
}

impl BppCache {
    /// Most factor sets kept.
    const MAX: usize = 4096;
    /// Most slots of [`DenseSlots`] (16 bytes each).
    const DENSE_MAX: usize = 1 << 18;

    fn new(p: &Plan) -> BppCache {
        BppCache {
            dense: DenseSlots::new(p),
            ..BppCache::default()
        }
    }

    /// The factors for `st.tap_pos` (looked up, or factored with `st`'s scratch).
    fn factors(&self, p: &Plan, st: &mut CopyState) -> Option<Arc<BppFactors>> {
        use std::sync::atomic::Ordering::Relaxed;
        let released = st.q.released();
        let slot = self
            .dense
            .as_ref()
            .filter(|_| !released)
            .and_then(|d| d.slot(&st.tap_pos));
        if let Some(slot) = slot {
            if let Some(f) = slot.get() {
                return f.clone();
            }
            if self.kept.load(Relaxed) < Self::MAX {
                return slot
                    .get_or_init(|| {
                        self.kept.fetch_add(1, Relaxed);
                        self.factor(p, st, false)
                    })
                    .clone();
            }
            return self.factor(p, st, false);
        }
        st.bpp_key.clear();
        st.bpp_key.extend(st.tap_pos.iter().map(|x| x.to_bits()));
        // Released PV nodes (`enforce_q_lims`) after a marker no tap's bits can be.
        if released {
            let from = st.bpp_key.len() + 1;
            st.bpp_key.push(u64::MAX);
            st.bpp_key.extend(st.q.saved.iter().map(|&(i, _)| i as u64));
            st.bpp_key[from..].sort_unstable();
        }
        // A poisoned lock only means another thread panicked mid-insert; the
        // map itself is always consistent, so go on with it.
        let hit = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&st.bpp_key[..])
            .cloned();
        if let Some(f) = hit {
            return f;
        }
        let f = self.factor(p, st, released);
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = map.get(&st.bpp_key[..]) {
            return existing.clone();
        }
        if self.kept.load(Relaxed) < Self::MAX {
            self.kept.fetch_add(1, Relaxed);
            map.insert(st.bpp_key.clone(), f.clone());
        }
        f
    }

    /// Factor B'' at `st.tap_pos` (with `st`'s released PV nodes where
    /// `released`), with `st`'s scratch.
    fn factor(&self, p: &Plan, st: &mut CopyState, released: bool) -> Option<Arc<BppFactors>> {
        let ok = if released {
            super::qlims::bpp_factor(
                p,
                &st.tap_pos,
                &st.q.pv_mask,
                &mut st.bpp_a,
                &mut st.bpp_f,
                &mut st.tmp,
            )
        } else {
            p.bpp_factor_for_taps(&st.tap_pos, &mut st.bpp_a, &mut st.bpp_f, &mut st.tmp)
        };
        if !ok {
            return None;
        }
        let mut us = vec![0.0; p.bpp.u_col.len()];
        scale_upper(&p.bpp, &st.bpp_f, &mut us);
        Some(Arc::new(BppFactors {
            id: self
                .next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1,
            l: st.bpp_f.l.clone(),
            us,
            d: st.bpp_f.d.clone(),
        }))
    }
}

/// Shared, read-only data of the CPU kernel.
struct Kernel {
    plan: Arc<Plan>,
    fixed: Vec<FixedBranch>,
    taps: Vec<(u32, u32)>,
    trafo_tap: Vec<Option<usize>>,
    /// Nodes with a shunt element or a constant admittance.
    shunt_nodes: Vec<usize>,
    /// The entries of a copy's `ysh` the kernels read: `shunt_nodes` and
    /// the slack nodes.
    ysh_nodes: Vec<usize>,
    /// PQ nodes with a copy-dependent current (a shunt, a tap-changing
    /// trafo's end): the only entries of the lanes' `cur` ever written.
    pub(crate) cur_nodes: Vec<usize>,
    /// Rows of the PQ nodes of the copy-independent part of Y (fixed branches), CSR.
    y_ptr: Vec<u32>,
    y_col: Vec<u32>,
    y_val: Vec<C64>,
    /// Convergence tolerance of the next solves (the plan's unless overridden).
    tol: f64,
    /// Per tap-changing trafo: the nodes its moves warm-start (shared with the
    /// GPU backend, see [`super::tap_warm`]).
    tap_down: TapDown,
    /// The instruction set the lane kernel runs with (detected once).
    arch: pulp::Arch,
    /// B'' factors per set of tap positions, shared by the copies.
    bpp_cache: BppCache,
    /// Fixed branches with an end at a slack node (the slack currents' terms).
    slack_fixed: Vec<u32>,
    /// Per PQ-numbered node: a PV node (`plan.is_pv[..n_pq]`).
    pv_mask: Vec<bool>,
    /// Nodes with gens, for the gen and ext_grid Q results.
    gen_sites: GenSites,
    /// Per tap-changing trafo: its admittances at each whole position of its
    /// range (`TapTable`), so that a tap move is a look-up.
    tap_table: Vec<TapTable>,
    /// Per line and per trafo: what turns its end currents into its rows
    /// (`None`: out of service or isolated, rows of zeros).
    line_rows: Vec<Option<BranchRow>>,
    trafo_rows: Vec<Option<BranchRow>>,
}

/// A tap-changing trafo's branch admittances at the whole positions
/// `first, first + 1, …` of its range, formed once per network by the same
/// `trafo_branch(…).admittance()` a move would call (so the same bits); other
/// positions (fractional, or ranges past [`TapTable::MAX`]) are formed on the move.
#[derive(Debug, Clone, Default)]
pub(crate) struct TapTable {
    first: f64,
    adm: Vec<BranchAdm>,
}

impl TapTable {
    const MAX: usize = 256;

    fn new(p: &Plan) -> Vec<TapTable> {
        let net = &p.net;
        p.tap_trafos
            .iter()
            .map(|&(k, _)| {
                let t = &net.trafos[k];
                let Some(tap) = &t.tap else {
                    return TapTable::default();
                };
                let (lo, hi) = (tap.min.ceil(), tap.max.floor());
                // NaN bounds or an empty or long range: no table.
                let fits = lo <= hi && hi - lo < Self::MAX as f64;
                if !fits {
                    return TapTable::default();
                }
                let adm = (0..=(hi - lo) as usize)
                    .map(|i| trafo_branch(net, t, lo + i as f64).admittance())
                    .collect();
                TapTable { first: lo, adm }
            })
            .collect()
    }

    /// The admittances at position `pos` (trafo `k` of `net`).
    #[inline]
    fn at(&self, net: &crate::network::Network, k: usize, pos: f64) -> BranchAdm {
        let i = pos - self.first;
        if i >= 0.0 && i.fract() == 0.0 && (i as usize) < self.adm.len() {
            self.adm[i as usize]
        } else {
            trafo_branch(net, &net.trafos[k], pos).admittance()
        }
    }
}

/// A branch's result-row factors, formed once per network: `k_f`, `k_t` turn
/// |I| (p.u.) at each end into kA (a line) or into kA·kV at the rated
/// voltage (a trafo), and `pct` turns the larger of the two into loading %.
/// Both kernels write `max_of(|I_f|·k_f, |I_t|·k_t)·pct`, bit for bit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BranchRow {
    pub(crate) branch: usize,
    pub(crate) k_f: f64,
    pub(crate) k_t: f64,
    pub(crate) pct: f64,
}

impl BranchRow {
    fn lines(p: &Plan) -> Vec<Option<BranchRow>> {
        let net = &p.net;
        let base_i = net.sn_mva / SQRT3;
        net.lines
            .iter()
            .zip(&p.line_branch)
            .map(|(l, bi)| {
                bi.map(|branch| BranchRow {
                    branch,
                    k_f: base_i / net.buses[l.from_bus].vn_kv,
                    k_t: base_i / net.buses[l.to_bus].vn_kv,
                    pct: 100.0 / (l.max_i_ka * l.df * l.parallel as f64),
                })
            })
            .collect()
    }
    fn trafos(p: &Plan) -> Vec<Option<BranchRow>> {
        let net = &p.net;
        let sn = net.sn_mva;
        net.trafos
            .iter()
            .zip(&p.trafo_branch)
            .map(|(t, bi)| {
                bi.map(|branch| BranchRow {
                    branch,
                    k_f: sn / (SQRT3 * net.buses[t.hv_bus].vn_kv) * t.vn_hv_kv,
                    k_t: sn / (SQRT3 * net.buses[t.lv_bus].vn_kv) * t.vn_lv_kv,
                    pct: SQRT3 / t.sn_mva * 100.0 / t.parallel as f64 / t.df,
                })
            })
            .collect()
    }
}

/// `if a > b { a } else { b }`: the larger of two currents as both kernels
/// form it (a NaN `a` gives `b`, as the lanes' compare-and-select).
#[inline(always)]
pub(crate) fn max_of(a: f64, b: f64) -> f64 {
    if a > b {
        a
    } else {
        b
    }
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
        let mut ysh_nodes: Vec<usize> = shunt_nodes
            .iter()
            .copied()
            .chain(plan.n_pq..plan.n_node)
            .collect();
        ysh_nodes.sort_unstable();
        ysh_nodes.dedup();
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
        let taps: Vec<(u32, u32)> = taps;
        let mut cur_nodes: Vec<usize> = shunt_nodes
            .iter()
            .copied()
            .chain(taps.iter().flat_map(|&(f, t)| [f as usize, t as usize]))
            .filter(|&i| i < n)
            .collect();
        cur_nodes.sort_unstable();
        cur_nodes.dedup();
        let slack_fixed = (0..fixed.len() as u32)
            .filter(|&i| {
                let b = &fixed[i as usize];
                b.f as usize >= plan.n_pq || b.t as usize >= plan.n_pq
            })
            .collect();
        Kernel {
            tap_table: TapTable::new(&plan),
            line_rows: BranchRow::lines(&plan),
            trafo_rows: BranchRow::trafos(&plan),
            pv_mask: plan.is_pv[..plan.n_pq].to_vec(),
            gen_sites: GenSites::new(&plan),
            slack_fixed,
            arch: pulp::Arch::new(),
            bpp_cache: BppCache::new(&plan),
            tol: plan.options.tolerance_pu,
            tap_down: downstream_nodes(&plan),
            plan,
            fixed,
            taps,
            trafo_tap,
            shunt_nodes,
            ysh_nodes,
            cur_nodes,
            y_ptr,
            y_col,
            y_val,
        }
    }

    /// The tolerance a solve uses for a caller's `tolerance_pu`
    /// ([`PowerFlow::set_tolerance`]; `None` or not a positive number: the plan's).
    fn tolerance(&self, tolerance_pu: Option<f64>) -> f64 {
        tolerance_pu
            .filter(|t| t.is_finite() && *t > 0.0)
            .unwrap_or(self.plan.options.tolerance_pu)
    }

    /// The buses of `buses` that are in the network (result rows are kept
    /// for those only).
    fn known_buses(&self, buses: &[usize]) -> Vec<usize> {
        let nb = self.plan.net.buses.len();
        buses.iter().copied().filter(|&b| b < nb).collect()
    }

    /// Copy `st`'s complex voltage (p.u.) at `bus`, as its last solve left
    /// it (0 at a bus that is not solved). The control loop reads line-drop
    /// compensated voltages here rather than through `vm_pu` and `va_degree`
    /// (an arctangent to write, a sine and cosine to read back).
    pub(crate) fn voltage(&self, st: &CopyState, bus: usize) -> C64 {
        match self.plan.bus_node.get(bus).copied().flatten() {
            Some(i) if !st.cold => st.v[i],
            _ => C64::ZERO,
        }
    }

    /// Per-copy injections, shunts and tap-dependent admittances from row `c` of `inp`.
    fn prepare(&self, inp: &BatchInputs, c: usize, st: &mut CopyState) {
        let p = &*self.plan;
        let net = &p.net;
        // Every solve starts with every gen's node PV again (as every `runpp`).
        qlims::reset(self, st);
        if !st.injections_fresh {
            super::injections::copy_specified(p, inp, c, &mut st.s_spec, &mut st.s_i, &mut st.s_z);
            for (j, x) in st.pv_vm.iter_mut().enumerate() {
                *x = p.pv_vm(j, inp, c);
            }
            for (k, (x, n)) in st.gen_p.iter_mut().zip(&p.gen_node).enumerate() {
                *x = if n.is_some() {
                    inp.gen_p_mw[(c, k)] * net.gens[k].scaling
                } else {
                    0.0
                };
            }
            st.injections_fresh = true;
        }
        // Only shunt nodes and slack nodes are read (every other entry of the
        // copy's `ysh` is zero from the start, as the network's).
        super::injections::copy_shunts_at(p, inp, c, &mut st.ysh, &self.ysh_nodes);
        let mut taps_changed = false;
        for (j, &(k, _)) in p.tap_trafos.iter().enumerate() {
            let pos = inp.trafo_tap_pos[(c, k)];
            if pos != st.tap_pos[j] {
                // Warm start: the voltages behind a regulator follow its ratio
                // (to first order on a radial feeder), so scale them by the
                // ratio's change instead of letting FDPF find it in several
                // iterations. Only the starting point changes, not the solution.
                if let Some((lv_down, nodes)) = &self.tap_down[j] {
                    if let Some(f) = tap_move_factor(&net.trafos[k], st.tap_pos[j], pos, *lv_down) {
                        for &i in nodes {
                            st.v[i as usize] = st.v[i as usize].scale(f);
                        }
                    }
                }
                st.tap_pos[j] = pos;
                st.tap_adm[j] = self.tap_table[j].at(net, k, pos);
                taps_changed = true;
            }
        }
        if taps_changed {
            st.bpp = self.copy_bpp(st);
        }
        if p.has_pv() {
            // PV nodes start at their set-points: a cold copy from the no-load
            // voltages (taken here, so both kernels start from `st.v`), a warm
            // one from its last solution, |V| rescaled to the copy's `vm_pu`
            // (which may have changed), the angle kept.
            if st.cold {
                st.v[..p.n_pq].copy_from_slice(&p.v_noload);
                st.cold = false;
            }
            for (&i, &vm) in p.pv_nodes.iter().zip(&st.pv_vm) {
                let m = st.v[i].abs();
                st.v[i] = if m > 0.0 {
                    st.v[i].scale(vm / m)
                } else {
                    C64::new(vm, 0.0)
                };
            }
        }
    }

    /// The B'' factors of a copy at its taps (`st.tap_pos`) with its released
    /// PV nodes (`enforce_q_lims`): `None` for the network's own.
    fn copy_bpp(&self, st: &mut CopyState) -> Option<Arc<BppFactors>> {
        // FDPF needs B'' at the copy's own taps when they are far from the
        // network's (measured: ieee34 diverges otherwise); refactor on the static pattern.
        let p = &*self.plan;
        let base = p
            .tap_trafos
            .iter()
            .zip(&st.tap_pos)
            .all(|(&(k, _), &pos)| p.net.trafos[k].tap.as_ref().is_some_and(|t| t.pos == pos));
        if base && !st.q.released() {
            None
        } else {
            self.bpp_cache.factors(p, st)
        }
    }

    /// `ΔS = S_spec − V·conj(Y·V)` at every PQ node from the rectangular
    /// voltages `st.v`, written straight into the right-hand side of the next
    /// half-step: `rhs_i = Re(ΔS_i·e^{jψ})/|V_i|` for a P half-step (`p_step`),
    /// `Im(…)/|V_i|` for a Q half-step. Returns max(|ΔP|, |ΔQ|) (infinite if not finite).
    /// With ZIP loads `S_spec` depends on |V| ([`super::injections::copy_zip`]).
    /// At a PV node ΔQ is the gen's (free) Q: it is left out of the norm and
    /// taken as 0 in the rotated right-hand side (P: `ΔP·cos ψ`; Q: 0, which
    /// the B'' identity row turns into Δ|V| = 0).
    #[inline(always)]
    fn mismatch(&self, st: &mut CopyState, p_step: bool) -> f64 {
        match (self.plan.has_zip, self.plan.has_pv()) {
            (true, true) => self.mismatch_with::<true, true>(st, p_step),
            (true, false) => self.mismatch_with::<true, false>(st, p_step),
            (false, true) => self.mismatch_with::<false, true>(st, p_step),
            (false, false) => self.mismatch_with::<false, false>(st, p_step),
        }
    }

    #[inline(always)]
    fn mismatch_with<const ZIP: bool, const PV: bool>(
        &self,
        st: &mut CopyState,
        p_step: bool,
    ) -> f64 {
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
        // PV nodes: the plan's, or this copy's once `enforce_q_lims` released some.
        let pv_mask = if st.q.released() {
            &st.q.pv_mask[..]
        } else {
            &self.pv_mask[..]
        };
        let (s_i, s_z, vm) = if ZIP {
            (&st.s_i[..n], &st.s_z[..n], &st.vm[..n])
        } else {
            (&[][..], &[][..], &[][..])
        };
        for (i, ((((row, cur), s), (vi, inv_vm)), rhs)) in rows
            .zip(&st.cur[..n])
            .zip(&st.s_spec[..n])
            .zip(v[..n].iter().zip(&st.inv_vm[..n]))
            .zip(st.rhs[..n].iter_mut())
            .enumerate()
        {
            // acc = cur + Σ y·v in fused multiply-adds, the Σ y.im·v.im of the
            // real part apart (two chains; the lanes' `mismatch` in the same order).
            let (mut re, mut im, mut neg) = (cur.re, cur.im, 0.0f64);
            for k in row[0] as usize..row[1] as usize {
                // SAFETY: y_ptr is non-decreasing and ends at y_val.len() (checked above and
                // in `Kernel::new`); every column is a node (< n_node = v.len()).
                let (y, x) = unsafe {
                    (
                        *y_val.get_unchecked(k),
                        *v.get_unchecked(*y_col.get_unchecked(k) as usize),
                    )
                };
                re = y.re.mul_add(x.re, re);
                neg = y.im.mul_add(x.im, neg);
                im = y.im.mul_add(x.re, y.re.mul_add(x.im, im));
            }
            let acc = C64::new(re - neg, im);
            let s = if ZIP {
                // S_p + S_i·|V| + S_z·|V|² as s + (|V| − 1)·(S_i + S_z·(|V| + 1));
                // the lanes' `mismatch` forms it in the same order.
                let m = vm[i];
                *s + (s_i[i] + s_z[i].scale(m + 1.0)).scale(m - 1.0)
            } else {
                *s
            };
            let mut d = s - *vi * acc.conj();
            let pv = PV && pv_mask[i];
            if pv {
                d.im = 0.0;
            }
            let (ar, ai) = (d.re.abs(), d.im.abs());
            let m = if ar > ai { ar } else { ai };
            worst = if m > worst { m } else { worst };
            total += ar + ai;
            let dr = d * rot;
            *rhs = if p_step {
                dr.re * inv_vm
            } else if pv {
                0.0
            } else {
                dr.im * inv_vm
            };
        }
        // A NaN anywhere makes the sum NaN (the comparisons above skip it).
        if total.is_finite() {
            worst
        } else {
            f64::INFINITY
        }
    }
}

/// `(cos θ, sin θ)` by their Taylor series (exact to rounding for |θ| < 0.05).
#[inline(always)]
fn cis_taylor(t: f64) -> (f64, f64) {
    // Horner's steps `a − t²·x` as fused multiply-adds, the lanes' in the same order.
    let t2 = t * t;
    let step = |x: f64, a: f64| (-t2).mul_add(x, a);
    let c = step(
        step(step(step(1.0 / 40320.0, 1.0 / 720.0), 1.0 / 24.0), 0.5),
        1.0,
    );
    let s = t * step(
        step(
            step(step(1.0 / 362880.0, 1.0 / 5040.0), 1.0 / 120.0),
            1.0 / 6.0,
        ),
        1.0,
    );
    (c, s)
}

/// Cephes' `atan` coefficients: `atan(u) = u + u·z·P(z)/Q(z)`, `z = u²`, for |u| ≤ 0.66.
pub(crate) const ATAN_P: [f64; 5] = [
    -8.750_608_600_031_904e-1,
    -1.615_753_718_733_365e1,
    -7.500_855_792_314_705e1,
    -1.228_866_684_490_136_2e2,
    -6.485_021_904_942_025e1,
];
pub(crate) const ATAN_Q: [f64; 5] = [
    2.485_846_490_142_306_4e1,
    1.650_270_098_316_988_6e2,
    4.328_810_604_912_902_5e2,
    4.853_903_996_359_137e2,
    1.945_506_571_482_614e2,
];
/// tan(3π/8).
pub(crate) const TAN_3PI_8: f64 = 2.414_213_562_373_095;
/// The low bits of π/2 that `f64` π/2 misses.
pub(crate) const PI_2_LOW: f64 = 6.123_233_995_736_766e-17;

/// The angle of `v` in degrees, as pandapower's `np.angle(V, deg=True)`:
/// `atan2(im, re)` by Cephes' `atan2` (within about 1 ulp of libm's), in plain
/// IEEE operations so that [`lanes`]' `Ops::angle_deg` gives the same bits for
/// eight copies at once (libm's `atan2` was a twentieth of a rollout's time).
#[inline(always)]
pub(crate) fn angle_deg(v: C64) -> f64 {
    let (y, x) = (v.im, v.re);
    if x == 0.0 && y == 0.0 {
        return 0.0;
    }
    let q = y / x;
    let t = q.abs();
    // Reduce t to |u| ≤ 0.66 (one division in every branch, for the lanes).
    let (num, den, base, low) = if t > TAN_3PI_8 {
        (-1.0, t, std::f64::consts::FRAC_PI_2, PI_2_LOW)
    } else if t > 0.66 {
        (
            t - 1.0,
            t + 1.0,
            std::f64::consts::FRAC_PI_4,
            0.5 * PI_2_LOW,
        )
    } else {
        // t ≤ 0.66 (and NaN, as the lanes select it)
        (t, 1.0, 0.0, 0.0)
    };
    let u = num / den;
    let z = u * u;
    let p = (((ATAN_P[0] * z + ATAN_P[1]) * z + ATAN_P[2]) * z + ATAN_P[3]) * z + ATAN_P[4];
    let qq = ((((z + ATAN_Q[0]) * z + ATAN_Q[1]) * z + ATAN_Q[2]) * z + ATAN_Q[3]) * z + ATAN_Q[4];
    let r = base + ((u * (z * p / qq) + u) + low);
    let a = if q < 0.0 { -r } else { r };
    // Quadrants II and III: atan2 = atan(y/x) ± π.
    let w = if x < 0.0 {
        if y < 0.0 {
            -std::f64::consts::PI
        } else {
            std::f64::consts::PI
        }
    } else {
        0.0
    };
    (w + a) * (180.0 / std::f64::consts::PI)
}

/// `1/a` (for `1/|V|`) without an f64 division, which is the slowest
/// instruction of an iteration (measured: 5 % of the default rollout's time):
/// the f32 reciprocal, then two Newton steps `r + r·(1 − a·r)`, each rounded
/// once (`mul_add`). Within 2 ulps of `1/a` wherever `a` and `1/a` are in
/// f32's normal range (every voltage magnitude; measured on 200,000 values);
/// not finite for 0 or a non-finite `a`, which the mismatch norm then reports
/// as a failed solve.
/// The lanes' `Ops::recip` does the same operations, so both kernels agree
/// bit for bit.
#[inline(always)]
pub(crate) fn recip(a: f64) -> f64 {
    let r0 = (1.0f32 / a as f32) as f64;
    let e = (-a).mul_add(r0, 1.0);
    let r1 = r0.mul_add(e, r0);
    let e = (-a).mul_add(r1, 1.0);
    r1.mul_add(e, r1)
}

/// `1/√a` (for 1/|V| at a solve's start, |V| then `a·rsqrt(a)`) without an
/// f64 square root or division: the f32 square root and reciprocal, then two
/// Newton steps `y + (y/2)·(1 − a·y·y)`, each rounded once. Within 2 ulps of
/// `1/√a`, and `a·rsqrt(a)` within 2 ulps of `√a`, wherever `a` is in f32's
/// normal range (measured on 200,000 values); not finite for 0 or a
/// non-finite `a`. The lanes' `Ops::rsqrt` does the same operations.
#[inline(always)]
pub(crate) fn rsqrt(a: f64) -> f64 {
    let mut y = (1.0f32 / (a as f32).sqrt()) as f64;
    for _ in 0..2 {
        let e = (-(a * y)).mul_add(y, 1.0);
        y = (0.5 * y).mul_add(e, y);
    }
    y
}

/// `e^{jθ}`; a Taylor series for the small angle steps of an iteration
/// (exact to rounding for |θ| < 0.05), libm otherwise.
#[inline(always)]
fn cis(t: f64) -> C64 {
    if t.abs() < 0.05 {
        let (c, s) = cis_taylor(t);
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
    // In pulp's instruction set, as the lanes: `mul_add` is one instruction
    // (a `WithSimd` whose `with_simd` is inlined, so the kernel is compiled
    // with the target features; a closure's body was not).
    struct Solve<'a>(&'a Kernel, &'a mut CopyState);
    impl pulp::WithSimd for Solve<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            solve_copy_with(self.0, self.1);
        }
    }
    k.arch.dispatch(Solve(k, st));
}

#[inline(always)]
fn solve_copy_with(k: &Kernel, st: &mut CopyState) {
    let p = &*k.plan;
    let n = p.n_pq;
    if st.cold {
        st.v[..n].copy_from_slice(&p.v_noload);
    }
    for i in 0..n {
        // |V| and 1/|V| from one reciprocal square root (no f64 square
        // root and division: as the lanes).
        let x = st.v[i].norm_sqr();
        let r = rsqrt(x);
        st.vm[i] = x * r;
        st.inv_vm[i] = r;
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
        if let Some(f) = &st.bpp {
            p.bpp.solve_flat(&f.l, &f.us, &f.d, &mut st.rhs);
        } else {
            p.bpp.solve_in_place(&mut st.rhs);
        }
        for i in 0..n {
            let vm = st.vm[i] + st.rhs[i];
            st.v[i] = st.v[i].scale(vm * st.inv_vm[i]);
            st.vm[i] = vm;
            st.inv_vm[i] = recip(vm);
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
    let cold = solve_changed(&k, &inp, &mut st)? as f64;
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
        warm += solve_changed(&k, &inp, &mut st)? as f64;
    }
    Some(cold / 10.0 + warm / STEPS as f64)
}

/// Prepare and solve copy 0 of `inp` after its set-points changed outside
/// [`PowerFlow::inputs_mut`] (the injections are formed again); its
/// iterations, `None` if it did not converge.
fn solve_changed(k: &Kernel, inp: &BatchInputs, st: &mut CopyState) -> Option<u32> {
    st.injections_fresh = false;
    k.prepare(inp, 0, st);
    solve_copy(k, st);
    st.converged.then_some(st.iterations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recip_is_within_two_ulps_of_the_division() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut xs: Vec<f64> = (0..200_000).map(|_| rng.random_range(0.05..3.0)).collect();
        xs.extend([1.0, 0.5, 2.0, 1e-30, 1e30, -0.97, f64::MIN_POSITIVE * 1e300]);
        for x in xs {
            let (r, want) = (recip(x), 1.0 / x);
            let ulps = (r.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(
                ulps <= 2,
                "recip({x:e}) = {r:e}, 1/x = {want:e}: {ulps} ulps"
            );
        }
        for x in [0.0, f64::NAN, f64::INFINITY] {
            assert!(!recip(x).is_finite(), "recip({x}) = {}", recip(x));
        }
    }

    #[test]
    fn rsqrt_is_within_two_ulps_of_the_square_root() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let ulps = |a: f64, b: f64| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        let mut xs: Vec<f64> = (0..200_000)
            .map(|_| rng.random_range(0.0025..9.0))
            .collect();
        xs.extend([1.0, 0.25, 4.0, 1e-30, 1e30, 2.0]);
        let mut worst = (0, 0);
        for x in xs {
            let r = rsqrt(x);
            let (inv, vm) = (ulps(r, 1.0 / x.sqrt()), ulps(x * r, x.sqrt()));
            assert!(
                inv <= 2 && vm <= 2,
                "rsqrt({x:e}) = {r:e}: {inv} and {vm} ulps"
            );
            worst = (worst.0.max(inv), worst.1.max(vm));
        }
        eprintln!(
            "rsqrt: at most {} ulps (1/√x), {} ulps (x·rsqrt(x) = √x)",
            worst.0, worst.1
        );
        for x in [0.0, f64::NAN, f64::INFINITY] {
            assert!(!rsqrt(x).is_finite(), "rsqrt({x}) = {}", rsqrt(x));
        }
    }

    #[test]
    fn dense_bpp_slots_are_one_per_tap_combination() {
        let net = crate::network::load("ieee34_ieee13").expect("ieee34_ieee13 ships");
        let plan = Plan::new(&net, Default::default()).expect("plan");
        let d = DenseSlots::new(&plan).expect("33² · 5³ combinations fit");
        let ranges: Vec<(f64, f64)> = plan
            .tap_trafos
            .iter()
            .map(|&(k, _)| {
                let t = net.trafos[k].tap.as_ref().expect("a tap changer");
                (t.min, t.max)
            })
            .collect();
        assert_eq!(ranges.len(), 5);
        assert_eq!(d.slots.len(), 33 * 33 * 5 * 5 * 5);
        // Every combination has its own slot.
        let mut seen = vec![false; d.slots.len()];
        let mut taps: Vec<f64> = ranges.iter().map(|r| r.0).collect();
        'all: loop {
            let slot = d.slot(&taps).expect("a whole position in range");
            let i = (slot as *const _ as usize - d.slots.as_ptr() as usize)
                / std::mem::size_of_val(slot);
            assert!(!seen[i], "{taps:?} shares slot {i}");
            seen[i] = true;
            for (t, r) in taps.iter_mut().zip(&ranges) {
                if *t < r.1 {
                    *t += 1.0;
                    continue 'all;
                }
                *t = r.0;
            }
            break;
        }
        assert!(seen.iter().all(|&x| x));
        // Out of range or between positions: no slot (the locked map).
        let mut t: Vec<f64> = ranges.iter().map(|r| r.0).collect();
        t[0] = ranges[0].1 + 1.0;
        assert!(d.slot(&t).is_none());
        t[0] = ranges[0].0 + 0.5;
        assert!(d.slot(&t).is_none());
        t[0] = f64::NAN;
        assert!(d.slot(&t).is_none());
    }

    /// The variant search changes loads in place between solves: every solve
    /// must see the loads it was given, not the injections of the last one.
    #[test]
    fn variant_scoring_solves_the_loads_it_is_given() {
        let net = crate::network::load("ieee13").expect("ieee13 ships");
        let plan = Arc::new(Plan::new(&net, Default::default()).expect("plan"));
        let k = Kernel::new(plan.clone());
        let mut inp = BatchInputs::from_network(&plan.net, 1);
        let mut st = CopyState::new(&plan);
        assert!(solve_changed(&k, &inp, &mut st).is_some());
        inp.load_p_mw.mapv_inplace(|p| 1.5 * p);
        assert!(solve_changed(&k, &inp, &mut st).is_some());
        let mut want = vec![C64::ZERO; plan.n_node];
        super::super::injections::copy_injections(&plan, &inp, 0, &mut want);
        assert_eq!(st.s_spec, want);
    }
}

/// Per-copy result rows, written straight into the result tables.
pub(crate) struct ResultRows<'a> {
    pub(crate) vm: &'a mut [f64],
    pub(crate) va: &'a mut [f64],
    pub(crate) lp: &'a mut [f64],
    pub(crate) lq: &'a mut [f64],
    pub(crate) li: &'a mut [f64],
    pub(crate) ll: &'a mut [f64],
    pub(crate) tl: &'a mut [f64],
    pub(crate) tp: &'a mut [f64],
    pub(crate) tq: &'a mut [f64],
    pub(crate) tpl: &'a mut [f64],
    pub(crate) tql: &'a mut [f64],
    pub(crate) ep: &'a mut [f64],
    pub(crate) eq: &'a mut [f64],
    pub(crate) gp: &'a mut [f64],
    pub(crate) gq: &'a mut [f64],
}

pub(crate) const SQRT3: f64 = 1.732_050_807_568_877_2;

/// Currents injected at the slack nodes (only needed for results), into `st.cur`.
fn slack_currents(k: &Kernel, st: &mut CopyState) {
    let mut cur = std::mem::take(&mut st.cur);
    slack_currents_into(k, st, &mut cur);
    st.cur = cur;
}

/// [`slack_currents`] into `cur` (a node-long buffer).
fn slack_currents_into(k: &Kernel, st: &CopyState, cur: &mut [C64]) {
    let n = k.plan.n_pq;
    for ((c, y), v) in cur[n..].iter_mut().zip(&st.ysh[n..]).zip(&st.v[n..]) {
        *c = *y * *v;
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
    for &i in &k.slack_fixed {
        let b = &k.fixed[i as usize];
        add(b.f as usize, b.t as usize, &b.adm, cur);
    }
    for (j, &(f, t)) in k.taps.iter().enumerate() {
        add(f as usize, t as usize, &st.tap_adm[j], cur);
    }
}

/// Which result rows a solve writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rows<'a> {
    /// Every table.
    All,
    /// `vm_pu` of the buses `vm` (`None`: every bus) and `va_degree` of the
    /// buses `va` only ([`PowerFlow::defer_results_at`]).
    Buses {
        vm: Option<&'a [usize]>,
        va: &'a [usize],
    },
}

impl Rows<'_> {
    /// The `vm_pu` entries these rows hold: `(bus, node)` pairs (a bus
    /// without a node reads 0).
    fn vm_buses<'p>(
        &self,
        p: &'p Plan,
    ) -> impl Iterator<Item = (usize, Option<usize>)> + use<'_, 'p> {
        let some = match *self {
            Rows::Buses { vm: Some(b), .. } => Some(b),
            _ => None,
        };
        let all = some
            .is_none()
            .then(|| p.bus_node.iter().copied().enumerate());
        let some = some.map(|b| b.iter().map(|&b| (b, p.bus_node[b])));
        all.into_iter().flatten().chain(some.into_iter().flatten())
    }
}

fn copy_results(k: &Kernel, st: &CopyState, r: ResultRows, rows: Rows) {
    let p = &*k.plan;
    let net = &p.net;
    let sn = net.sn_mva;
    if let Rows::Buses { va, .. } = rows {
        for (b, node) in rows.vm_buses(p) {
            r.vm[b] = node.map_or(0.0, |i| st.v[i].abs());
        }
        for &b in va {
            r.va[b] = p.bus_node[b].map_or(0.0, |i| angle_deg(st.v[i]));
        }
        return;
    }
    for (b, node) in p.bus_node.iter().enumerate() {
        let (m, a) = match *node {
            Some(i) => (st.v[i].abs(), angle_deg(st.v[i])),
            None => (0.0, 0.0),
        };
        r.vm[b] = m;
        r.va[b] = a;
    }
    let flows = |adm: &BranchAdm, f: usize, t: usize| {
        let (vf, vt) = (st.v[f], st.v[t]);
        let i_f = adm.yff * vf + adm.yft * vt;
        let i_t = adm.ytf * vf + adm.ytt * vt;
        (vf * i_f.conj(), i_f.abs(), i_t.abs(), vt * i_t.conj())
    };
    for (li, row) in k.line_rows.iter().enumerate() {
        let Some(row) = row else {
            r.lp[li] = 0.0;
            r.lq[li] = 0.0;
            r.li[li] = 0.0;
            r.ll[li] = 0.0;
            continue;
        };
        let b = &p.branches[row.branch];
        let (s, i_f, i_t, _) = flows(&b.adm, b.f, b.t);
        let i_ka = max_of(i_f * row.k_f, i_t * row.k_t);
        r.lp[li] = s.re * sn;
        r.lq[li] = s.im * sn;
        r.li[li] = i_ka;
        r.ll[li] = i_ka * row.pct;
    }
    for (ti, row) in k.trafo_rows.iter().enumerate() {
        let Some(row) = row else {
            r.tl[ti] = 0.0;
            r.tp[ti] = 0.0;
            r.tq[ti] = 0.0;
            r.tpl[ti] = 0.0;
            r.tql[ti] = 0.0;
            continue;
        };
        let b = &p.branches[row.branch];
        let adm = match k.trafo_tap[ti] {
            Some(j) => &st.tap_adm[j],
            None => &b.adm,
        };
        let (s_hv, i_f, i_t, s_lv) = flows(adm, b.f, b.t);
        r.tp[ti] = s_hv.re * sn;
        r.tq[ti] = s_hv.im * sn;
        r.tpl[ti] = s_lv.re * sn;
        r.tql[ti] = s_lv.im * sn;
        r.tl[ti] = max_of(i_f * row.k_f, i_t * row.k_t) * row.pct;
    }
    ext_grid_rows(k, st, &st.cur, r.ep, r.eq, r.gp, r.gq);
}

/// Ext-grid and gen P and Q of one copy (its slack currents formed). A node
/// with gens splits its Q balance (`Im(V·conj(I) − S_spec)`: the injection
/// plus the bus's own consumption) among its ext_grids and gens as pandapower's
/// `pfsoln._update_q` does: equally, then in proportion to each one's
/// `[QMIN, QMAX]` range (an ext_grid's is `[0, 0]`, a gen's its limits or
/// ±1e9), when the network has more than one of them. Gens keep their P; the
/// ext_grids at a node share the rest.
fn ext_grid_rows(
    k: &Kernel,
    st: &CopyState,
    cur: &[C64],
    ep: &mut [f64],
    eq: &mut [f64],
    gp: &mut [f64],
    gq: &mut [f64],
) {
    let p = &*k.plan;
    let sn = p.net.sn_mva;
    for (e, node) in p.ext_grid_node.iter().enumerate() {
        let (pe, qe) = match *node {
            Some((n, count)) => {
                let s = (st.v[n] * cur[n].conj() - st.s_spec[n]).scale(sn / count as f64);
                (s.re, s.im)
            }
            None => (0.0, 0.0),
        };
        ep[e] = pe;
        eq[e] = qe;
    }
    if p.gen_node.is_empty() {
        return;
    }
    gp.copy_from_slice(&st.gen_p);
    gq.fill(0.0);
    for site in &k.gen_sites.sites {
        let i = site.node;
        let cur = if i >= p.n_pq {
            cur[i]
        } else {
            node_current(k, st, i)
        };
        let q_bus = (st.v[i] * cur.conj() - st.q.spec(&st.s_spec, i)).im * sn;
        if st.q.n_held == 0 {
            k.gen_sites.split_q(p, site, q_bus, eq, gq);
        } else {
            let q = &st.q;
            super::qlims::split_q_limited(
                p,
                &k.gen_sites,
                site,
                q_bus,
                &q.held,
                &q.gen_q,
                q.n_held,
                eq,
                gq,
            );
        }
    }
}

/// The whole current `(Y·V)_i` injected at PQ-numbered node `i` (a PV node's,
/// for its gens' Q): shunts, tap-changing trafos and the fixed branches.
fn node_current(k: &Kernel, st: &CopyState, i: usize) -> C64 {
    let mut acc = st.ysh[i] * st.v[i];
    for (j, &(f, t)) in k.taps.iter().enumerate() {
        let (f, t) = (f as usize, t as usize);
        let a = &st.tap_adm[j];
        if f == i {
            acc += a.yff * st.v[f] + a.yft * st.v[t];
        }
        if t == i {
            acc += a.ytf * st.v[f] + a.ytt * st.v[t];
        }
    }
    for kk in k.y_ptr[i] as usize..k.y_ptr[i + 1] as usize {
        acc += k.y_val[kk] * st.v[k.y_col[kk] as usize];
    }
    acc
}

/// The result tables as raw row pointers, so that parallel tasks each write
/// the rows of their own copies.
pub(crate) struct ResultTables {
    ptrs: [usize; 15],
    nb: usize,
    nl: usize,
    nt: usize,
    ne: usize,
    ng: usize,
}

impl ResultTables {
    fn new(plan: &Plan, res: &mut BatchResults) -> Self {
        let sl = |a: &mut ndarray::Array2<f64>| {
            a.as_slice_mut().expect("standard layout").as_mut_ptr() as usize
        };
        let (nb, nl, nt, ne) = plan.sizes();
        ResultTables {
            ptrs: [
                sl(&mut res.vm_pu),
                sl(&mut res.va_degree),
                sl(&mut res.line_p_from_mw),
                sl(&mut res.line_q_from_mvar),
                sl(&mut res.line_i_ka),
                sl(&mut res.line_loading_percent),
                sl(&mut res.trafo_loading_percent),
                sl(&mut res.trafo_p_hv_mw),
                sl(&mut res.trafo_q_hv_mvar),
                sl(&mut res.trafo_p_lv_mw),
                sl(&mut res.trafo_q_lv_mvar),
                sl(&mut res.ext_grid_p_mw),
                sl(&mut res.ext_grid_q_mvar),
                sl(&mut res.gen_p_mw),
                sl(&mut res.gen_q_mvar),
            ],
            nb,
            nl,
            nt,
            ne,
            ng: plan.gen_node.len(),
        }
    }

    /// Copy `c`'s rows.
    ///
    /// # Safety
    /// `c` is a copy of the batch the tables were made from, the tables are
    /// alive and not otherwise borrowed, and no other task uses copy `c`'s rows.
    pub(crate) unsafe fn rows(&self, c: usize) -> ResultRows<'_> {
        let row = |i: usize| unsafe {
            let n = self.row_len(i);
            std::slice::from_raw_parts_mut((self.ptrs[i] as *mut f64).add(c * n), n)
        };
        ResultRows {
            vm: row(col::VM),
            va: row(col::VA),
            lp: row(col::LP),
            lq: row(col::LQ),
            li: row(col::LI),
            ll: row(col::LL),
            tl: row(col::TL),
            tp: row(col::TP),
            tq: row(col::TQ),
            tpl: row(col::TPL),
            tql: row(col::TQL),
            ep: row(col::EP),
            eq: row(col::EQ),
            gp: row(col::GP),
            gq: row(col::GQ),
        }
    }

    /// Value `i` of copy `c`'s row of table `t`.
    ///
    /// # Safety
    /// As [`ResultTables::rows`] (for reading: no other task writes the row).
    pub(crate) unsafe fn get(&self, t: usize, c: usize, i: usize) -> f64 {
        let n = self.row_len(t);
        assert!(i < n);
        unsafe { *(self.ptrs[t] as *const f64).add(c * n + i) }
    }

    /// The row length (values per copy) of table `i` (the order of `ptrs`).
    fn row_len(&self, i: usize) -> usize {
        match i {
            col::VM | col::VA => self.nb,
            col::LP..=col::LL => self.nl,
            col::TL..=col::TQL => self.nt,
            col::EP | col::EQ => self.ne,
            _ => self.ng,
        }
    }
}

/// The tables of [`ResultTables`], in the order of its pointers. A lane
/// group writes the first [`col::COUNT`] (bus, line and trafo tables) from its
/// lanes; the ext_grid and gen rows are written per copy.
pub(crate) mod col {
    pub(crate) const VM: usize = 0;
    pub(crate) const VA: usize = 1;
    pub(crate) const LP: usize = 2;
    pub(crate) const LQ: usize = 3;
    pub(crate) const LI: usize = 4;
    pub(crate) const LL: usize = 5;
    pub(crate) const TL: usize = 6;
    pub(crate) const TP: usize = 7;
    pub(crate) const TQ: usize = 8;
    pub(crate) const TPL: usize = 9;
    pub(crate) const TQL: usize = 10;
    pub(crate) const COUNT: usize = 11;
    pub(crate) const EP: usize = 11;
    pub(crate) const EQ: usize = 12;
    pub(crate) const GP: usize = 13;
    pub(crate) const GQ: usize = 14;
}

/// The rows of a lane group's copies in the bus, line and trafo tables
/// ([`col`]), as raw pointers: lane `l` of a value goes to copy `copies[l]`.
pub(crate) struct LaneRows {
    ptrs: [[*mut f64; LANES]; col::COUNT],
    len: [usize; col::COUNT],
    lanes: usize,
}

impl LaneRows {
    /// The rows of `copies` (1..=[`LANES`] copies).
    ///
    /// # Safety
    /// As [`ResultTables::rows`], for every copy of `copies`, for as long as
    /// the value lives.
    pub(crate) unsafe fn new(t: &ResultTables, copies: &[usize]) -> LaneRows {
        let len: [usize; col::COUNT] = std::array::from_fn(|i| t.row_len(i));
        let ptrs = std::array::from_fn(|i| {
            std::array::from_fn(|l| match copies.get(l) {
                // SAFETY: copy `c` is in the batch: its row is in the table.
                Some(&c) => unsafe { (t.ptrs[i] as *mut f64).add(c * len[i]) },
                None => std::ptr::null_mut(),
            })
        });
        LaneRows {
            ptrs,
            len,
            lanes: copies.len().min(LANES),
        }
    }

    /// Column `i` of table `t` ← each lane's value.
    #[inline(always)]
    pub(crate) fn put(&mut self, t: usize, i: usize, x: &[f64; LANES]) {
        assert!(i < self.len[t]);
        for (p, x) in self.ptrs[t][..self.lanes].iter().zip(x) {
            // SAFETY: `p` is a row of `len[t]` values of this group's copy (`new`).
            unsafe { *p.add(i) = *x };
        }
    }
}

/// A raw pointer that rayon tasks may share (each task uses disjoint elements).
struct SendPtr<T>(*mut T);
// SAFETY: only used to hand disjoint elements of one slice to rayon tasks.
unsafe impl<T: Send> Sync for SendPtr<T> {}
unsafe impl<T: Send> Send for SendPtr<T> {}

/// Runs `f(group, copies, state)` in parallel for each chunk of [`LANES`]
/// copies of `order` (distinct indices into `states`); `state(c)` gives copy
/// `c` of the chunk. Each pool thread works in a group slot of its own, so the
/// group's scratch stays in that core's cache from chunk to chunk (one slot per
/// chunk put ⌈B/8⌉ scratch groups, megabytes, through the caches every solve).
fn for_each_group(
    groups: &[Mutex<Group>],
    order: &[usize],
    states: &mut [CopyState],
    f: impl Fn(&mut Group, &[usize], &dyn Fn(usize) -> *mut CopyState) + Sync,
) {
    assert!(order.iter().all(|&c| c < states.len()));
    assert!(!groups.is_empty());
    let base = SendPtr(states.as_mut_ptr());
    order.par_chunks(LANES).for_each(|copies| {
        let base = &base;
        // A task never waits inside `f` (no nested parallelism), so the
        // thread's own slot is free; the scan only guards against a pool
        // larger than the slots.
        let own = rayon::current_thread_index().unwrap_or(0) % groups.len();
        let mut g = match groups[own].try_lock() {
            Ok(g) => g,
            Err(_) => (0..groups.len())
                .find_map(|i| groups[(own + i) % groups.len()].try_lock().ok())
                .unwrap_or_else(|| groups[own].lock().unwrap_or_else(|e| e.into_inner())),
        };
        f(&mut g, copies, &|c| base.0.wrapping_add(c))
    });
}

/// Prepare, solve (to `tol`) and store the copies of one lane group, and
/// write their `rows`; `st(c)` is batch copy `c`'s state.
#[allow(clippy::too_many_arguments)]
fn solve_lanes<'s>(
    k: &Kernel,
    inp: &BatchInputs,
    g: &mut Group,
    copies: &[usize],
    st: &dyn Fn(usize) -> &'s mut CopyState,
    tables: &ResultTables,
    rows: Rows,
    tol: f64,
) {
    for &c in copies {
        k.prepare(inp, c, st(c));
    }
    g.begin(copies.len());
    let lane = |l: usize| &*st(copies[l.min(copies.len() - 1)]);
    g.load(k, std::array::from_fn(lane));
    k.arch.dispatch(SolveGroup {
        k,
        g: &mut *g,
        tol,
        results: Some((copies, tables, rows)),
    });
    if copies.len() == LANES {
        let mut sts = std::array::from_fn(|l| st(copies[l]));
        g.store_all(k, &mut sts);
    } else {
        for (l, &c) in copies.iter().enumerate() {
            g.store_lane(k, l, st(c));
        }
    }
    for &c in copies {
        let s = st(c);
        // `enforce_q_lims`: the lanes solved the first round; a copy with gens
        // to hold is solved on from there by the scalar kernel (bit for bit the
        // scalar path) and its rows written again.
        let again = k.plan.options.enforce_q_lims && qlims::enforce(k, s);
        if let Rows::All = rows {
            slack_currents(k, s);
        }
        // SAFETY: copy `c` belongs to this task only.
        let r = unsafe { tables.rows(c) };
        if again {
            copy_results(k, s, r, rows);
        } else if let Rows::All = rows {
            ext_grid_rows(k, s, &s.cur, r.ep, r.eq, r.gp, r.gq);
        }
    }
}

/// The rows of the copies of one lane group from their solved voltages
/// (nothing solved); `st(c)` is batch copy `c`'s state. Every row, except
/// where `skip` leaves out the angles or the ext_grid and gen rows
/// ([`CpuBatch::skip`]).
fn write_lanes<'s>(
    k: &Kernel,
    g: &mut Group,
    copies: &[usize],
    st: &dyn Fn(usize) -> &'s mut CopyState,
    tables: &ResultTables,
    skip: Skip,
) {
    let lane = |l: usize| &*st(copies[l.min(copies.len() - 1)]);
    g.load_voltages(k, std::array::from_fn(lane));
    k.arch.dispatch(WriteRows {
        k,
        g: &*g,
        copies,
        tables,
        angles: !skip.angles,
    });
    if skip.slack {
        return;
    }
    for &c in copies {
        let s = st(c);
        slack_currents(k, s);
        // SAFETY: copy `c` belongs to this task only.
        let r = unsafe { tables.rows(c) };
        ext_grid_rows(k, s, &s.cur, r.ep, r.eq, r.gp, r.gq);
    }
}

/// The copies `on(c)` in the order the lane kernel groups them: cold copies
/// first (their longer solves then share groups), then by tap positions, so
/// that copies at the same taps share a group and its B'' factors
/// ([`Group::load`]). The order changes only which copies share a group, never
/// a result.
///
/// `states` are copies `lo ..` of the batch, `on` takes an index into them,
/// and `order` receives batch indices.
fn group_order(
    k: &Kernel,
    inp: &BatchInputs,
    states: &[CopyState],
    lo: usize,
    on: &dyn Fn(usize) -> bool,
    keys: &mut Vec<(u64, usize)>,
    order: &mut Vec<usize>,
) {
    keys.clear();
    keys.extend((0..states.len()).filter(|&c| on(c)).map(|c| {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for &(t, _) in &k.plan.tap_trafos {
            h = (h ^ inp.trafo_tap_pos[(lo + c, t)].to_bits()).wrapping_mul(0x0100_0000_01b3);
        }
        ((!states[c].cold as u64) << 63 | h >> 1, lo + c)
    }));
    keys.sort_unstable();
    order.clear();
    order.extend(keys.iter().map(|&(_, c)| c));
}

fn isa_name(arch: pulp::Arch) -> &'static str {
    match arch {
        #[cfg(target_arch = "x86_64")]
        pulp::Arch::V4(_) => "avx512",
        #[cfg(target_arch = "x86_64")]
        pulp::Arch::V3(_) => "avx2",
        _ => "scalar",
    }
}

/// Write the result rows (`rows`) of the copies `on(c)`, in parallel; with
/// [`Rows::All`] the slack currents are formed first (ext_grid results).
fn write_results(
    k: &Kernel,
    states: &mut [CopyState],
    res: &mut BatchResults,
    on: &(dyn Fn(usize) -> bool + Sync),
    rows: Rows,
) {
    let tables = ResultTables::new(&k.plan, res);
    states.par_iter_mut().enumerate().for_each(|(c, st)| {
        if !on(c) {
            return;
        }
        if let Rows::All = rows {
            slack_currents(k, st);
        }
        // SAFETY: row `c` of each table is written by this task only; the
        // tables outlive the loop.
        copy_results(k, st, unsafe { tables.rows(c) }, rows);
    });
}

/// Which rows the end of a control loop may leave out, because the caller
/// reads only the columns of [`PowerFlow::limit_results`]: they are formed on
/// demand by [`PowerFlow::results`] ([`CpuBatch::completed`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Skip {
    /// `va_degree`.
    angles: bool,
    /// The ext_grid and gen tables (the slack currents they need).
    slack: bool,
}

/// B copies of one network on the CPU.
pub struct CpuBatch {
    kernel: Kernel,
    inputs: BatchInputs,
    results: BatchResults,
    states: Vec<CopyState>,
    pool: std::sync::Arc<rayon::ThreadPool>,
    cpu_kernel: CpuKernel,
    /// Lane-group scratch, one per pool thread ([`for_each_group`]).
    groups: Vec<Mutex<Group>>,
    /// Copies to solve, in group order ([`group_order`]).
    order: Vec<usize>,
    /// Scratch of [`group_order`].
    keys: Vec<(u64, usize)>,
    /// `Some((vm_buses, va_buses))` while results are deferred
    /// ([`PowerFlow::defer_results_at`]; `vm_buses` `None`: every bus).
    deferred: Option<(Option<Vec<usize>>, Vec<usize>)>,
    /// Copies whose result rows are incomplete (solved while deferred).
    stale: Vec<bool>,
    /// Work counted since the batch was made.
    work: SolveWork,
    /// What the control loop's end may leave out ([`PowerFlow::limit_results`]).
    skip: Skip,
    /// Copies whose rows lack what `skip` left out.
    partial: Vec<bool>,
    /// Some copy is `partial`.
    any_partial: bool,
    /// [`PowerFlow::results`] completed, made on the first call after rows
    /// were left out.
    full: std::sync::OnceLock<BatchResults>,
}

impl CpuBatch {
    /// Copy `c`'s complex voltage (p.u.) at `bus` ([`Kernel::voltage`]).
    pub(crate) fn voltage(&self, c: usize, bus: usize) -> C64 {
        self.kernel.voltage(&self.states[c], bus)
    }

    /// What the end of a control loop leaves out now ([`Skip`]; nothing with
    /// `enforce_q_lims`, whose rounds read the gens' rows).
    pub(crate) fn skip(&self) -> Skip {
        if self.kernel.plan.options.enforce_q_lims {
            Skip::default()
        } else {
            self.skip
        }
    }

    /// The result tables changed: the completed copy is out of date.
    pub(crate) fn rows_changed(&mut self) {
        self.any_partial = self.partial.iter().any(|&p| p);
        self.full = std::sync::OnceLock::new();
    }

    /// The result tables with the rows [`Skip`] left out formed from the
    /// copies' voltages, as the end of a control loop would have written them.
    fn completed(&self) -> BatchResults {
        let mut r = self.results.clone();
        let k = &self.kernel;
        let p = &*k.plan;
        let tables = ResultTables::new(p, &mut r);
        let mut cur = vec![C64::ZERO; p.n_node];
        for (c, st) in self.states.iter().enumerate() {
            if !self.partial[c] {
                continue;
            }
            // SAFETY: `r` is this batch's size and only this loop writes it.
            let rows = unsafe { tables.rows(c) };
            for (b, node) in p.bus_node.iter().enumerate() {
                rows.va[b] = node.map_or(0.0, |i| angle_deg(st.v[i]));
            }
            slack_currents_into(k, st, &mut cur);
            ext_grid_rows(k, st, &cur, rows.ep, rows.eq, rows.gp, rows.gq);
        }
        r
    }

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
        let kernel = Kernel::new(plan);
        let threads = rayon::current_num_threads();
        let groups = Self::make_groups(&kernel, threads);
        CpuBatch {
            kernel,
            inputs,
            results,
            states,
            pool: std::sync::Arc::new(Self::make_pool(threads)),
            cpu_kernel: CpuKernel::default(),
            groups,
            order: Vec::with_capacity(batch),
            keys: Vec::with_capacity(batch),
            deferred: None,
            stale: vec![false; batch],
            skip: Skip::default(),
            partial: vec![false; batch],
            any_partial: false,
            full: std::sync::OnceLock::new(),
            work: SolveWork::default(),
        }
    }

    /// Solve with `kernel` from now on (the default is [`CpuKernel::Lanes`]).
    /// Both give the same results, bit for bit.
    pub fn with_kernel(mut self, kernel: CpuKernel) -> Self {
        self.cpu_kernel = kernel;
        self
    }

    /// The kernel in use.
    pub fn kernel(&self) -> CpuKernel {
        self.cpu_kernel
    }

    /// The instruction set the lane kernel runs with: `"avx512"`, `"avx2"` or `"scalar"`.
    pub fn lane_isa(&self) -> &'static str {
        isa_name(self.kernel.arch)
    }

    fn make_groups(k: &Kernel, threads: usize) -> Vec<Mutex<Group>> {
        (0..threads.max(1))
            .map(|_| Mutex::new(Group::new(k)))
            .collect()
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
        self.pool = std::sync::Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| crate::error::Error::InvalidInput(format!("thread pool: {e}")))?,
        );
        self.groups = Self::make_groups(&self.kernel, n);
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

    /// With [`SolverOptions::enforce_q_lims`](super::SolverOptions): per gen,
    /// whether copy `c`'s last solve holds it at a Q limit (its `gen_q_mvar`
    /// is that limit; its bus was turned PQ unless it is an ext_grid's). All
    /// false with the option off.
    pub fn gens_at_q_limit(&self, c: usize) -> Vec<bool> {
        let held = &self.states[c].q.held;
        (0..self.kernel.plan.gen_node.len())
            .map(|g| held.get(g).copied().unwrap_or(false))
            .collect()
    }

    /// Validate the inputs (of the copies to solve), then solve every copy, or
    /// with `active` only those it marks (the others keep their state and
    /// result rows); one trip to the thread pool for both.
    fn run(&mut self, active: Option<&[bool]>) -> Result<()> {
        let k = &self.kernel;
        let on = |c: usize| active.is_none_or(|a| a[c]);
        let inp = &self.inputs;
        let states = &mut self.states;
        let res = &mut self.results;
        let cpu_kernel = self.cpu_kernel;
        let groups = &self.groups;
        let order = &mut self.order;
        let keys = &mut self.keys;
        let rows = match &self.deferred {
            Some((vm, va)) => Rows::Buses {
                vm: vm.as_deref(),
                va,
            },
            None => Rows::All,
        };
        let work = || -> Result<()> {
            // A copy whose injections are still the prepared ones had its
            // set-points validated when they were formed (`inputs_mut` clears
            // the mark): only its taps and steps can have changed.
            let fresh = |c: usize| states[c].injections_fresh;
            inp.validate_unchecked(&k.plan.net, active, &fresh)?;
            k.plan.check_gen_setpoints(inp, active)?;
            match cpu_kernel {
                CpuKernel::Scalar => {
                    states.par_iter_mut().enumerate().for_each(|(c, st)| {
                        if !on(c) {
                            return;
                        }
                        k.prepare(inp, c, st);
                        solve_copy(k, st);
                        if k.plan.options.enforce_q_lims {
                            qlims::enforce(k, st);
                        }
                    });
                    write_results(k, states, res, &on, rows);
                }
                CpuKernel::Lanes => {
                    group_order(k, inp, states, 0, &on, keys, order);
                    let tables = ResultTables::new(&k.plan, res);
                    for_each_group(groups, order, states, |g, copies, state| {
                        // SAFETY: `order` holds distinct copy indices < states.len(),
                        // and each chunk (one task) is the only user of its copies.
                        let st = |c: usize| unsafe { &mut *state(c) };
                        solve_lanes(k, inp, g, copies, &st, &tables, rows, k.tol);
                    });
                }
            }
            Ok(())
        };
        self.pool.install(work)?;
        // Solved while deferred: incomplete rows; solved in full: complete again.
        let deferred = self.deferred.is_some();
        for (c, x) in self.stale.iter_mut().enumerate() {
            if active.is_none_or(|a| a[c]) {
                *x = deferred;
                self.partial[c] &= deferred;
            }
        }
        self.rows_changed();
        for (c, st) in self.states.iter().enumerate() {
            if active.is_none_or(|a| a[c]) {
                self.work.copy_solves += 1;
                self.work.iterations += st.iterations as u64;
            }
            self.results.converged[c] = st.converged;
            self.results.iterations[c] = st.iterations;
            self.results.max_mismatch_pu[c] = st.mismatch;
        }
        Ok(())
    }
}

impl PowerFlow for CpuBatch {
    fn describe(&self) -> String {
        match self.cpu_kernel {
            CpuKernel::Lanes => format!(
                "cpu (f64, {} threads, {LANES} copies per SIMD group, {})",
                self.threads(),
                self.lane_isa()
            ),
            CpuKernel::Scalar => format!("cpu (f64, {} threads, scalar)", self.threads()),
        }
    }
    fn batch(&self) -> usize {
        self.states.len()
    }
    fn inputs(&self) -> &BatchInputs {
        &self.inputs
    }
    fn inputs_mut(&mut self) -> &mut BatchInputs {
        for st in &mut self.states {
            st.injections_fresh = false;
        }
        &mut self.inputs
    }
    fn pool(&self) -> Option<&rayon::ThreadPool> {
        Some(&self.pool)
    }
    fn shared_pool(&self) -> Option<std::sync::Arc<rayon::ThreadPool>> {
        Some(self.pool.clone())
    }
    fn as_cpu_mut(&mut self) -> Option<&mut CpuBatch> {
        Some(self)
    }
    fn as_cpu(&self) -> Option<&CpuBatch> {
        Some(self)
    }
    fn plan(&self) -> Option<&Plan> {
        Some(&self.kernel.plan)
    }
    fn controls_mut(&mut self) -> (&mut Array2<f64>, &mut Array2<f64>) {
        (&mut self.inputs.trafo_tap_pos, &mut self.inputs.shunt_step)
    }
    fn solve(&mut self) -> Result<SolveSummary> {
        self.run(None)?;
        Ok(summary(&self.results))
    }
    fn solve_active(&mut self, active: &[bool]) -> Result<SolveSummary> {
        super::batch::check_active(active, self.states.len())?;
        self.run(Some(active))?;
        Ok(summary(&self.results))
    }
    fn limit_results(&mut self, columns: Option<super::batch::ResultColumns>) {
        self.skip = columns.map_or(Skip::default(), |cols| {
            let asked = |name: &str| cols.tables.iter().any(|(n, c)| *n == name && !c.is_empty());
            Skip {
                angles: !asked("va_degree"),
                slack: !["ext_grid_p_mw", "ext_grid_q_mvar", "gen_p_mw", "gen_q_mvar"]
                    .iter()
                    .any(|n| asked(n)),
            }
        });
    }
    fn limited_results(&self) -> &BatchResults {
        &self.results
    }
    fn results(&self) -> &BatchResults {
        if self.any_partial {
            return self.full.get_or_init(|| self.completed());
        }
        &self.results
    }
    fn set_tolerance(&mut self, tolerance_pu: Option<f64>) {
        self.kernel.tol = self.kernel.tolerance(tolerance_pu);
    }
    fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
    fn work(&self) -> Option<SolveWork> {
        Some(self.work)
    }
    fn defer_results(&mut self, va_buses: &[usize]) {
        self.deferred = Some((None, self.kernel.known_buses(va_buses)));
    }
    fn defer_results_at(&mut self, vm_buses: &[usize], va_buses: &[usize]) {
        let k = &self.kernel;
        self.deferred = Some((Some(k.known_buses(vm_buses)), k.known_buses(va_buses)));
    }
    fn finish_results(&mut self) {
        self.deferred = None;
        if !self.stale.iter().any(|&x| x) {
            return;
        }
        let skip = self.skip();
        let k = &self.kernel;
        let (states, res, stale) = (&mut self.states, &mut self.results, &self.stale);
        match self.cpu_kernel {
            CpuKernel::Scalar => self
                .pool
                .install(|| write_results(k, states, res, &|c| stale[c], Rows::All)),
            CpuKernel::Lanes => {
                // The rows from the lanes, as after a solve (voltages and tap
                // admittances loaded; nothing solved).
                let order = &mut self.order;
                order.clear();
                order.extend((0..states.len()).filter(|&c| stale[c]));
                let groups = &self.groups;
                let tables = ResultTables::new(&k.plan, res);
                self.pool.install(|| {
                    for_each_group(groups, order, states, |g, copies, state| {
                        // SAFETY: `order` holds distinct copy indices < states.len(),
                        // and each chunk (one task) is the only user of its copies.
                        let st = |c: usize| unsafe { &mut *state(c) };
                        write_lanes(k, g, copies, &st, &tables, skip);
                    });
                });
            }
        }
        let left_out = skip != Skip::default() && self.cpu_kernel == CpuKernel::Lanes;
        for (p, s) in self.partial.iter_mut().zip(&self.stale) {
            if *s {
                *p = left_out;
            }
        }
        self.stale.fill(false);
        self.rows_changed();
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
