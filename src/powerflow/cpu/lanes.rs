//! Copies in SIMD lanes: [`LANES`] copies of one network are solved together,
//! because they share every matrix, factor and index. This is the GPU's
//! batch-interleaved layout (`x[node·B + copy]`) brought to the CPU: each node
//! holds one value per lane (`F8`, 64-byte aligned), so every sparse index
//! load is shared by eight copies and each arithmetic step is one vector
//! instruction over the lanes (AVX-512) or two (AVX2). `pulp` picks the
//! instruction set at run time; the kernels below are written with its
//! vector operations (`Ops`), inlined into its target-feature functions.
//!
//! Every lane does exactly the arithmetic of the scalar [`super::solve_copy`],
//! operation for operation and in the same order (Rust never contracts `a·b+c`
//! into a fused multiply-add; the mismatch sums, the triangular solves and the
//! `cis` series fuse exactly where the scalar kernel calls `mul_add`, which is
//! exactly rounded on every instruction set), so a lane's result is bit for
//! bit the scalar kernel's. A lane that has converged (or given up) is masked:
//! its voltages are no longer written while the other lanes iterate. Per-copy B'' factors
//! (copies whose taps differ from the network's) become per-lane factor values.
//!
//! A group is loaded from the copies' [`CopyState`]s before its solve and
//! written back after it, so any set of copies (the active ones of a control
//! iteration, cold copies apart from warm ones) can share a group; a group
//! with fewer than [`LANES`] copies repeats its last copy in the spare lanes,
//! masked from the start.

use super::{col, CopyState, Kernel, LaneRows, ResultTables, Rows};
use crate::complex::C64;
use crate::powerflow::sparse_lu::SparseLu;
use pulp::Simd;

/// Copies per lane group.
pub(crate) const LANES: usize = 8;

/// One f64 per lane (64-byte aligned: one AVX-512 register, two AVX2 ones).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(C, align(64))]
pub(crate) struct F8(pub(crate) [f64; LANES]);

/// One complex number per lane.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct C8 {
    re: F8,
    im: F8,
}

#[cfg(test)]
impl C8 {
    /// The real and imaginary lanes.
    pub(crate) fn parts(&self) -> (F8, F8) {
        (self.re, self.im)
    }
}

const ZERO8: C8 = C8 {
    re: F8([0.0; LANES]),
    im: F8([0.0; LANES]),
};

/// Lane arithmetic with pulp's vectors of the instruction set in use: each
/// operation on an [`F8`] is one AVX-512 instruction, two AVX2 ones or eight
/// scalar ones, whatever the compiler's vectoriser would make of the loops.
/// Only IEEE operations (add, sub, mul, div, sqrt, compare/select, f32
/// conversions, and the exactly rounded fused multiply-add where the scalar
/// kernel has `mul_add`),
/// so every lane rounds exactly as the scalar kernel.
#[derive(Clone, Copy)]
struct Ops<S: Simd>(S);

impl<S: Simd> Ops<S> {
    #[inline(always)]
    fn map2(self, a: F8, b: F8, f: impl Fn(S, S::f64s, S::f64s) -> S::f64s) -> F8 {
        let mut r = F8::default();
        let (rv, _) = S::as_mut_simd_f64s(&mut r.0);
        let (av, _) = S::as_simd_f64s(&a.0);
        let (bv, _) = S::as_simd_f64s(&b.0);
        for ((r, a), b) in rv.iter_mut().zip(av).zip(bv) {
            *r = f(self.0, *a, *b);
        }
        r
    }
    #[inline(always)]
    fn map1(self, a: F8, f: impl Fn(S, S::f64s) -> S::f64s) -> F8 {
        let mut r = F8::default();
        let (rv, _) = S::as_mut_simd_f64s(&mut r.0);
        let (av, _) = S::as_simd_f64s(&a.0);
        for (r, a) in rv.iter_mut().zip(av) {
            *r = f(self.0, *a);
        }
        r
    }
    #[inline(always)]
    fn add(self, a: F8, b: F8) -> F8 {
        self.map2(a, b, |s, a, b| s.add_f64s(a, b))
    }
    #[inline(always)]
    fn sub(self, a: F8, b: F8) -> F8 {
        self.map2(a, b, |s, a, b| s.sub_f64s(a, b))
    }
    #[inline(always)]
    fn mul(self, a: F8, b: F8) -> F8 {
        self.map2(a, b, |s, a, b| s.mul_f64s(a, b))
    }
    #[inline(always)]
    fn div(self, a: F8, b: F8) -> F8 {
        self.map2(a, b, |s, a, b| s.div_f64s(a, b))
    }
    /// `if a > b { a } else { b }` per lane (a NaN `a` gives `b`).
    #[inline(always)]
    fn max_of(self, a: F8, b: F8) -> F8 {
        self.map2(a, b, |s, a, b| {
            s.select_f64s(s.greater_than_f64s(a, b), a, b)
        })
    }
    #[inline(always)]
    fn map3(self, a: F8, b: F8, c: F8, f: impl Fn(S, S::f64s, S::f64s, S::f64s) -> S::f64s) -> F8 {
        let mut r = F8::default();
        let (rv, _) = S::as_mut_simd_f64s(&mut r.0);
        let (av, _) = S::as_simd_f64s(&a.0);
        let (bv, _) = S::as_simd_f64s(&b.0);
        let (cv, _) = S::as_simd_f64s(&c.0);
        for (((r, a), b), c) in rv.iter_mut().zip(av).zip(bv).zip(cv) {
            *r = f(self.0, *a, *b, *c);
        }
        r
    }
    /// `if m > 0 { a } else { b }` per lane, for a mask `m` of 1.0/0.0.
    #[inline(always)]
    fn select(self, m: F8, a: F8, b: F8) -> F8 {
        let zero = self.0.splat_f64s(0.0);
        self.map3(m, a, b, |s, m, a, b| {
            s.select_f64s(s.greater_than_f64s(m, zero), a, b)
        })
    }
    /// `1/a` as the scalar [`super::recip`]: the f32 reciprocal of each lane
    /// (the compiler makes one vector division of eight f32s of the loop),
    /// then two fused Newton steps.
    #[inline(always)]
    fn recip(self, a: F8) -> F8 {
        let mut r0 = F8::default();
        for (r, x) in r0.0.iter_mut().zip(a.0) {
            *r = (1.0f32 / x as f32) as f64;
        }
        let one = self.splat(1.0);
        let e = self.fnma(a, r0, one);
        let r1 = self.fma(r0, e, r0);
        let e = self.fnma(a, r1, one);
        self.fma(r1, e, r1)
    }
    /// `1/√a` as the scalar [`super::rsqrt`]: the f32 square root and
    /// reciprocal of each lane, then two fused Newton steps.
    #[inline(always)]
    fn rsqrt(self, a: F8) -> F8 {
        let mut y = F8::default();
        for (r, x) in y.0.iter_mut().zip(a.0) {
            *r = (1.0f32 / (x as f32).sqrt()) as f64;
        }
        let (one, half) = (self.splat(1.0), self.splat(0.5));
        for _ in 0..2 {
            let e = self.fnma(self.mul(a, y), y, one);
            y = self.fma(self.mul(half, y), e, y);
        }
        y
    }
    #[inline(always)]
    fn abs(self, a: F8) -> F8 {
        self.map1(a, |s, a| s.abs_f64s(a))
    }
    #[inline(always)]
    fn neg(self, a: F8) -> F8 {
        self.map1(a, |s, a| s.neg_f64s(a))
    }
    #[inline(always)]
    fn sqrt(self, a: F8) -> F8 {
        self.map1(a, |s, a| s.sqrt_f64s(a))
    }
    /// Whether every lane has `|a| < c` (a NaN lane has not).
    #[inline(always)]
    fn all_abs_lt(self, a: F8, c: f64) -> bool {
        let s = self.0;
        let (av, _) = S::as_simd_f64s(&a.0);
        let cv = s.splat_f64s(c);
        av.iter().all(|&x| {
            let outside = s.not_m64s(s.less_than_f64s(s.abs_f64s(x), cv));
            s.first_true_m64s(outside) >= S::F64_LANES
        })
    }
    #[inline(always)]
    fn splat(self, x: f64) -> F8 {
        F8([x; LANES])
    }
    /// `a·b` lane by lane, as [`C64`]'s `Mul`.
    #[inline(always)]
    fn cmul(self, a: C8, b: C8) -> C8 {
        C8 {
            re: self.sub(self.mul(a.re, b.re), self.mul(a.im, b.im)),
            im: self.add(self.mul(a.re, b.im), self.mul(a.im, b.re)),
        }
    }
    #[inline(always)]
    fn cadd(self, a: C8, b: C8) -> C8 {
        C8 {
            re: self.add(a.re, b.re),
            im: self.add(a.im, b.im),
        }
    }
    /// `a·b + c`, rounded once.
    #[inline(always)]
    fn fma(self, a: F8, b: F8, c: F8) -> F8 {
        self.map3(a, b, c, |s, a, b, c| s.mul_add_e_f64s(a, b, c))
    }
    /// `c − a·b`, rounded once (as the scalar `(−a).mul_add(b, c)`).
    #[inline(always)]
    fn fnma(self, a: F8, b: F8, c: F8) -> F8 {
        self.map3(a, b, c, |s, a, b, c| s.negate_mul_add_e_f64s(a, b, c))
    }
    /// `acc + y·b` for one `y` shared by every lane, in the scalar
    /// `Kernel::mismatch`'s fused steps: the real part's `−y.im·b.im` is
    /// summed apart in `neg`.
    #[inline(always)]
    fn cmul_shared_acc(self, acc: C8, neg: F8, y: C64, b: &C8) -> (C8, F8) {
        let (yr, yi) = (self.splat(y.re), self.splat(y.im));
        (
            C8 {
                re: self.fma(yr, b.re, acc.re),
                im: self.fma(yi, b.re, self.fma(yr, b.im, acc.im)),
            },
            self.fma(yi, b.im, neg),
        )
    }
    /// `1.0` where `a < b`, else `0.0` (a mask for [`Ops::select`]).
    #[inline(always)]
    fn lt(self, a: F8, b: F8) -> F8 {
        let (one, zero) = (self.0.splat_f64s(1.0), self.0.splat_f64s(0.0));
        self.map2(a, b, |s, a, b| {
            s.select_f64s(s.less_than_f64s(a, b), one, zero)
        })
    }
    /// `1.0` where `a == b`, else `0.0`.
    #[inline(always)]
    fn eq(self, a: F8, b: F8) -> F8 {
        let (one, zero) = (self.0.splat_f64s(1.0), self.0.splat_f64s(0.0));
        self.map2(a, b, |s, a, b| s.select_f64s(s.equal_f64s(a, b), one, zero))
    }
    /// [`super::angle_deg`] per lane, operation for operation (its branches
    /// as selects).
    #[inline(always)]
    fn angle_deg(self, v: C8) -> F8 {
        use super::{ATAN_P, ATAN_Q, PI_2_LOW, TAN_3PI_8};
        use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};
        let sp = |x: f64| self.splat(x);
        let (y, x) = (v.im, v.re);
        let q = self.div(y, x);
        let t = self.abs(q);
        let big = self.lt(sp(TAN_3PI_8), t);
        let mid = self.lt(sp(0.66), t); // 0 where t ≤ 0.66 (or NaN)
        let sel3 = |a: f64, b: F8, c: F8| self.select(big, sp(a), self.select(mid, c, b));
        let num = sel3(-1.0, t, self.sub(t, sp(1.0)));
        let den = sel3(0.0, sp(1.0), self.add(t, sp(1.0)));
        let den = self.select(big, t, den);
        let base = sel3(FRAC_PI_2, sp(0.0), sp(FRAC_PI_4));
        let low = sel3(PI_2_LOW, sp(0.0), sp(0.5 * PI_2_LOW));
        let u = self.div(num, den);
        let z = self.mul(u, u);
        let step = |acc: F8, c: f64| self.add(self.mul(acc, z), sp(c));
        let p = step(
            step(step(step(sp(ATAN_P[0]), ATAN_P[1]), ATAN_P[2]), ATAN_P[3]),
            ATAN_P[4],
        );
        let qq = step(
            step(
                step(step(self.add(z, sp(ATAN_Q[0])), ATAN_Q[1]), ATAN_Q[2]),
                ATAN_Q[3],
            ),
            ATAN_Q[4],
        );
        let r = self.add(
            base,
            self.add(self.add(self.mul(u, self.div(self.mul(z, p), qq)), u), low),
        );
        let a = self.select(self.lt(q, sp(0.0)), self.neg(r), r);
        let w = self.select(
            self.lt(x, sp(0.0)),
            self.select(self.lt(y, sp(0.0)), sp(-PI), sp(PI)),
            sp(0.0),
        );
        let deg = self.mul(self.add(w, a), sp(180.0 / PI));
        let origin = self.mul(self.eq(x, sp(0.0)), self.eq(y, sp(0.0)));
        self.select(origin, sp(0.0), deg)
    }
    /// `(cos t, sin t)` per lane by [`super::cis_taylor`]'s series, operation for operation.
    #[inline(always)]
    fn cis_taylor(self, t: F8) -> (F8, F8) {
        let sp = |x: f64| self.splat(x);
        let t2 = self.mul(t, t);
        let step = |x: F8, a: f64| self.fnma(t2, x, sp(a));
        let c = step(
            step(step(step(sp(1.0 / 40320.0), 1.0 / 720.0), 1.0 / 24.0), 0.5),
            1.0,
        );
        let s = self.mul(
            t,
            step(
                step(
                    step(step(sp(1.0 / 362880.0), 1.0 / 5040.0), 1.0 / 120.0),
                    1.0 / 6.0,
                ),
                1.0,
            ),
        );
        (c, s)
    }
}

/// The complex value of lane `l`.
#[inline(always)]
fn get(z: &C8, l: usize) -> C64 {
    C64::new(z.re.0[l], z.im.0[l])
}

#[inline(always)]
fn set(z: &mut C8, l: usize, v: C64) {
    z.re.0[l] = v.re;
    z.im.0[l] = v.im;
}

/// A lane vector ([`C8`], [`F8`]) and its per-copy value.
trait Lanes: Sized {
    type Value: Copy;
    /// Lane `l` ← `x`.
    fn set_lane(&mut self, l: usize, x: Self::Value);
    /// The blocked part of [`gather`]: how many values it did.
    ///
    /// # Safety
    /// The CPU has AVX-512 ([`super::transpose::blocked`]).
    unsafe fn gather_blocks(dst: &mut [Self], src: &[&[Self::Value]; LANES]) -> usize;
}

impl Lanes for C8 {
    type Value = C64;
    #[inline(always)]
    fn set_lane(&mut self, l: usize, x: C64) {
        set(self, l, x);
    }
    #[inline(always)]
    unsafe fn gather_blocks(dst: &mut [C8], src: &[&[C64]; LANES]) -> usize {
        // SAFETY: as the trait's.
        unsafe { super::transpose::gather(dst, src) }
    }
}

impl Lanes for F8 {
    type Value = f64;
    #[inline(always)]
    fn set_lane(&mut self, l: usize, x: f64) {
        self.0[l] = x;
    }
    #[inline(always)]
    unsafe fn gather_blocks(dst: &mut [F8], src: &[&[f64]; LANES]) -> usize {
        // SAFETY: as the trait's.
        unsafe { super::transpose::gather_real(dst, src) }
    }
}

/// `dst[i]` lane `l` ← `src[l][i]` (the lanes' slices have `dst.len()`
/// values): in 8×8 blocks with AVX-512 (`blocked`), the rest lane by lane.
#[inline(always)]
fn gather<T: Lanes>(dst: &mut [T], src: [&[T::Value]; LANES], blocked: bool) {
    let len = dst.len();
    // SAFETY: `blocked` only where the CPU has AVX-512 (`transpose::blocked`).
    let done = if blocked {
        unsafe { T::gather_blocks(dst, &src) }
    } else {
        0
    };
    // Lane by lane: each copy's values read in order (no bounds checks).
    for (l, s) in src.iter().enumerate() {
        for (z, x) in dst[done..].iter_mut().zip(&s[done..len]) {
            z.set_lane(l, *x);
        }
    }
}

/// Scratch of one lane group: the copies' state in lane-interleaved form.
/// Made once per batch (one per group slot), so a solve allocates nothing.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// Voltages of every node.
    v: Vec<C8>,
    vm: Vec<F8>,
    inv_vm: Vec<F8>,
    rhs: Vec<F8>,
    /// Currents of the copy-dependent parts at the PQ nodes.
    cur: Vec<C8>,
    s_spec: Vec<C8>,
    /// ZIP parts of the injections (empty without ZIP loads).
    s_i: Vec<C8>,
    s_z: Vec<C8>,
    /// Shunt admittance per PQ shunt node (in [`Kernel::shunt_nodes`] order).
    ysh: Vec<C8>,
    /// Per tap-changing trafo: `yff, yft, ytf, ytt`.
    tap: Vec<[C8; 4]>,
    /// The lanes use different B'' factors: `bpp_*` hold every lane's.
    own_bpp: bool,
    /// Every lane uses these factors (copies at the same taps, other than
    /// the network's): the solve reads them once for all lanes.
    shared_bpp: Option<std::sync::Arc<super::BppFactors>>,
    bpp_l: Vec<F8>,
    bpp_us: Vec<F8>,
    bpp_d: Vec<F8>,
    /// Lanes holding a copy of the group (the others repeat the last one, masked).
    lanes: usize,
    /// Which factors `bpp_*` hold per lane ([`super::BppFactors::id`]; 0: the
    /// network's own; `u64::MAX`: none yet).
    lane_bpp: [u64; LANES],
    converged: [bool; LANES],
    iterations: [u32; LANES],
    mismatch: [f64; LANES],
}

impl Group {
    pub(crate) fn new(k: &Kernel) -> Group {
        let p = &*k.plan;
        let (n, nn) = (p.n_pq, p.n_node);
        let n_sh = k.shunt_nodes.iter().filter(|&&i| i < n).count();
        let has_taps = !p.tap_trafos.is_empty();
        let f8 = |len: usize| vec![F8::default(); len];
        Group {
            v: vec![ZERO8; nn],
            vm: f8(n),
            inv_vm: f8(n),
            rhs: f8(n),
            cur: vec![ZERO8; n],
            s_spec: vec![ZERO8; n],
            s_i: vec![ZERO8; if p.has_zip { n } else { 0 }],
            s_z: vec![ZERO8; if p.has_zip { n } else { 0 }],
            ysh: vec![ZERO8; n_sh],
            tap: vec![[ZERO8; 4]; p.tap_trafos.len()],
            own_bpp: false,
            shared_bpp: None,
            bpp_l: if has_taps {
                f8(p.bpp.l_col.len())
            } else {
                vec![]
            },
            bpp_us: if has_taps {
                f8(p.bpp.u_col.len())
            } else {
                vec![]
            },
            bpp_d: if has_taps { f8(n) } else { vec![] },
            lanes: 0,
            lane_bpp: [u64::MAX; LANES],
            converged: [false; LANES],
            iterations: [0; LANES],
            mismatch: [f64::NAN; LANES],
        }
    }

    /// Heap bytes of one group for `plan` (for the memory estimate).
    pub(crate) fn bytes_for(plan: &crate::powerflow::Plan) -> usize {
        use std::mem::size_of;
        let (n, nn) = (plan.n_pq, plan.n_node);
        let n_sh = plan.shunt_node.iter().flatten().count().min(n);
        let bpp = if plan.tap_trafos.is_empty() {
            0
        } else {
            plan.bpp.l_col.len() + plan.bpp.u_col.len() + n
        };
        let zip = if plan.has_zip { 2 * n } else { 0 };
        (nn + 2 * n + zip + n_sh + 4 * plan.tap_trafos.len()) * size_of::<C8>()
            + (3 * n + bpp) * size_of::<F8>()
            + size_of::<Group>()
    }

    /// Start loading a group of `lanes` copies (1..=[`LANES`]).
    pub(crate) fn begin(&mut self, lanes: usize) {
        debug_assert!((1..=LANES).contains(&lanes));
        self.lanes = lanes;
    }

    /// Load prepared copies, one per lane (spare lanes repeat a loaded copy).
    /// Node by node over the lanes: each lane-interleaved value is written
    /// whole, reading the copies' arrays as parallel streams.
    pub(crate) fn load(&mut self, k: &Kernel, sts: [&CopyState; LANES]) {
        let p = &*k.plan;
        let n = p.n_pq;
        let nn = p.n_node;
        // A cold copy starts from the no-load voltages at its PQ nodes.
        let start: [&[C64]; LANES] = std::array::from_fn(|l| {
            if sts[l].cold {
                &p.v_noload[..n]
            } else {
                &sts[l].v[..n]
            }
        });
        let blocked = super::transpose::blocked(k.arch);
        gather(&mut self.v[..n], start, blocked);
        gather(&mut self.v[n..nn], sts.map(|s| &s.v[n..nn]), blocked);
        gather(&mut self.s_spec, sts.map(|s| &s.s_spec[..n]), blocked);
        gather(&mut self.s_i, sts.map(|s| &s.s_i[..]), blocked);
        gather(&mut self.s_z, sts.map(|s| &s.s_z[..]), blocked);
        let pq_shunts = k.shunt_nodes.iter().filter(|&&i| i < n);
        for (z, &i) in self.ysh.iter_mut().zip(pq_shunts) {
            for (l, st) in sts.iter().enumerate() {
                set(z, l, st.ysh[i]);
            }
        }
        self.load_taps(&sts);
        // B'': the network's, one set shared by every lane (the copies
        // arrive sorted by taps, so most groups are at one set), or per lane.
        let id = |st: &CopyState| st.bpp.as_ref().map_or(0, |f| f.id);
        let same = sts.iter().all(|st| id(st) == id(sts[0]));
        self.own_bpp = !same;
        self.shared_bpp = if same { sts[0].bpp.clone() } else { None };
        if !self.own_bpp {
            return;
        }
        /// A copy's B'' factor values (`l`, `us`, `d`).
        fn factors<'a>(p: &'a crate::powerflow::Plan, st: &'a CopyState) -> [&'a [f64]; 3] {
            match &st.bpp {
                Some(f) => [&f.l, &f.us, &f.d],
                None => [&p.bpp.l_val, &p.bpp.u_scaled, &p.bpp.u_diag_inv],
            }
        }
        let changed = (0..LANES)
            .filter(|&l| self.lane_bpp[l] != id(sts[l]))
            .count();
        if changed >= 2 && blocked {
            // Every lane's values at once, in 8×8 blocks (unchanged lanes
            // rewritten with what they hold).
            let f = sts.map(|st| factors(p, st));
            gather(&mut self.bpp_l, f.map(|f| f[0]), true);
            gather(&mut self.bpp_us, f.map(|f| f[1]), true);
            gather(&mut self.bpp_d, f.map(|f| f[2]), true);
            self.lane_bpp = sts.map(id);
            return;
        }
        for (l, st) in sts.iter().enumerate() {
            if self.lane_bpp[l] == id(st) {
                continue;
            }
            let [lv, us, d] = factors(p, st);
            for (z, x) in self.bpp_l.iter_mut().zip(lv) {
                z.0[l] = *x;
            }
            for (z, x) in self.bpp_us.iter_mut().zip(us) {
                z.0[l] = *x;
            }
            for (z, x) in self.bpp_d.iter_mut().zip(d) {
                z.0[l] = *x;
            }
            self.lane_bpp[l] = id(st);
        }
    }

    /// The tap-changing trafos' admittances of the lanes' copies.
    fn load_taps(&mut self, sts: &[&CopyState; LANES]) {
        for (j, z) in self.tap.iter_mut().enumerate() {
            for (l, st) in sts.iter().enumerate() {
                let a = &st.tap_adm[j];
                set(&mut z[0], l, a.yff);
                set(&mut z[1], l, a.yft);
                set(&mut z[2], l, a.ytf);
                set(&mut z[3], l, a.ytt);
            }
        }
    }

    /// Load only what the result rows need (voltages, tap admittances) of
    /// solved copies, one per lane.
    pub(crate) fn load_voltages(&mut self, k: &Kernel, sts: [&CopyState; LANES]) {
        gather(
            &mut self.v,
            sts.map(|s| &s.v[..]),
            super::transpose::blocked(k.arch),
        );
        self.load_taps(&sts);
    }

    /// Write lane `l`'s solve back into its copy.
    pub(crate) fn store_lane(&self, k: &Kernel, l: usize, st: &mut CopyState) {
        self.store_from(k, l, st, 0);
    }

    /// Write every lane's solve back into its copy (a full group): the
    /// voltages in blocks with AVX-512, the rest as [`Group::store_lane`].
    pub(crate) fn store_all(&self, k: &Kernel, sts: &mut [&mut CopyState; LANES]) {
        let n = k.plan.n_pq;
        let mut dv = 0;
        if super::transpose::blocked(k.arch) {
            let mut it = sts.iter_mut();
            let mut v: [&mut [C64]; LANES] = std::array::from_fn(|_| {
                let st = it.next().expect("LANES states");
                &mut st.v[..n]
            });
            // SAFETY: `blocked`: the CPU has AVX-512.
            dv = unsafe { super::transpose::scatter(&self.v[..n], &mut v) };
        }
        for (l, st) in sts.iter_mut().enumerate() {
            self.store_from(k, l, st, dv);
        }
    }

    /// [`Group::store_lane`] with `st.v[..dv]` already written.
    #[inline(always)]
    fn store_from(&self, k: &Kernel, l: usize, st: &mut CopyState, dv: usize) {
        let n = k.plan.n_pq;
        // Only what outlives the solve: the voltages. |V|, 1/|V| and the PQ
        // currents are scratch, formed afresh from them by every solve.
        for (v, z) in st.v[dv..n].iter_mut().zip(&self.v[dv..n]) {
            *v = get(z, l);
        }
        st.converged = self.converged[l];
        st.iterations = self.iterations[l];
        st.mismatch = self.mismatch[l];
        st.cold = !self.converged[l];
    }
}

/// Runs [`solve_group`] inside pulp's best instruction set, then (with
/// `results`: the group's copies, in lane order, and the tables) writes the
/// bus, line and trafo rows of those copies from the lanes.
pub(crate) struct SolveGroup<'a> {
    pub(crate) k: &'a Kernel,
    pub(crate) g: &'a mut Group,
    /// Mismatch tolerance (p.u.).
    pub(crate) tol: f64,
    pub(crate) results: Option<(&'a [usize], &'a ResultTables, Rows<'a>)>,
}

impl pulp::WithSimd for SolveGroup<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let o = Ops(simd);
        solve_group(o, self.k, self.g, self.tol);
        if let Some((copies, tables, rows)) = self.results {
            write_rows(o, self.k, self.g, copies, tables, rows, true);
        }
    }
}

/// Runs [`write_rows`] (every table but the ext_grids') inside pulp's best
/// instruction set, for a group loaded by [`Group::load_voltages`].
pub(crate) struct WriteRows<'a> {
    pub(crate) k: &'a Kernel,
    pub(crate) g: &'a Group,
    pub(crate) copies: &'a [usize],
    pub(crate) tables: &'a ResultTables,
    /// Write `va_degree` too (else left as it was).
    pub(crate) angles: bool,
}

impl pulp::WithSimd for WriteRows<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        write_rows(
            Ops(simd),
            self.k,
            self.g,
            self.copies,
            self.tables,
            Rows::All,
            self.angles,
        );
    }
}

/// A branch's admittance for every lane.
#[inline(always)]
fn splat_adm(a: &crate::powerflow::admittance::BranchAdm) -> [C8; 4] {
    let z = |y: C64| C8 {
        re: F8([y.re; LANES]),
        im: F8([y.im; LANES]),
    };
    [z(a.yff), z(a.yft), z(a.ytf), z(a.ytt)]
}

/// `(s_f = V_f·conj(I_f), |I_f|, |I_t|, s_t = V_t·conj(I_t))` per lane, as the
/// scalar `copy_results` forms them.
#[inline(always)]
fn flows<S: Simd>(o: Ops<S>, a: &[C8; 4], vf: C8, vt: C8) -> (C8, F8, F8, C8) {
    let i_f = o.cadd(o.cmul(a[0], vf), o.cmul(a[1], vt));
    let i_t = o.cadd(o.cmul(a[2], vf), o.cmul(a[3], vt));
    let conj = |z: C8| C8 {
        re: z.re,
        im: o.neg(z.im),
    };
    let abs = |z: C8| o.sqrt(o.add(o.mul(z.re, z.re), o.mul(z.im, z.im)));
    (
        o.cmul(vf, conj(i_f)),
        abs(i_f),
        abs(i_t),
        o.cmul(vt, conj(i_t)),
    )
}

/// The scalar `copy_results` for the bus, line and trafo rows of every copy
/// of a solved group (ext_grid rows need the slack currents: per copy).
#[inline(always)]
fn write_rows<S: Simd>(
    o: Ops<S>,
    k: &Kernel,
    g: &Group,
    copies: &[usize],
    tables: &ResultTables,
    rows: Rows,
    angles: bool,
) {
    let p = &*k.plan;
    let sn = p.net.sn_mva;
    // SAFETY: the group's copies are distinct and this task's only.
    let mut r = unsafe { LaneRows::new(tables, copies) };
    let all = matches!(rows, Rows::All);
    let angles = all && angles;
    let zero = [0.0; LANES];
    for (b, node) in rows.vm_buses(p) {
        match node {
            Some(i) => {
                let v = g.v[i];
                let m = o.sqrt(o.add(o.mul(v.re, v.re), o.mul(v.im, v.im)));
                r.put(col::VM, b, &m.0);
                if angles {
                    r.put(col::VA, b, &o.angle_deg(v).0);
                }
            }
            None => {
                r.put(col::VM, b, &zero);
                if angles {
                    r.put(col::VA, b, &zero);
                }
            }
        }
    }
    let Rows::All = rows else {
        if let Rows::Buses { va, .. } = rows {
            for &b in va {
                let a = p.bus_node[b].map_or(zero, |i| {
                    std::array::from_fn(|l| super::angle_deg(get(&g.v[i], l)))
                });
                r.put(col::VA, b, &a);
            }
        }
        return;
    };
    let sn8 = o.splat(sn);
    // max(|I_f|·k_f, |I_t|·k_t), as the scalar `copy_results`.
    let larger = |row: &super::BranchRow, i_f: F8, i_t: F8| {
        o.max_of(o.mul(i_f, o.splat(row.k_f)), o.mul(i_t, o.splat(row.k_t)))
    };
    // A line's or trafo's values for all lanes at once, then written into
    // each copy's row.
    for (li, row) in k.line_rows.iter().enumerate() {
        let Some(row) = row else {
            for c in [col::LP, col::LQ, col::LI, col::LL] {
                r.put(c, li, &zero);
            }
            continue;
        };
        let br = &p.branches[row.branch];
        let (s, i_f, i_t, _) = flows(o, &splat_adm(&br.adm), g.v[br.f], g.v[br.t]);
        let i_ka = larger(row, i_f, i_t);
        r.put(col::LP, li, &o.mul(s.re, sn8).0);
        r.put(col::LQ, li, &o.mul(s.im, sn8).0);
        r.put(col::LI, li, &i_ka.0);
        r.put(col::LL, li, &o.mul(i_ka, o.splat(row.pct)).0);
    }
    for (ti, row) in k.trafo_rows.iter().enumerate() {
        let Some(row) = row else {
            for c in [col::TL, col::TP, col::TQ, col::TPL, col::TQL] {
                r.put(c, ti, &zero);
            }
            continue;
        };
        let br = &p.branches[row.branch];
        let adm = match k.trafo_tap[ti] {
            Some(j) => g.tap[j],
            None => splat_adm(&br.adm),
        };
        let (s_hv, i_f, i_t, s_lv) = flows(o, &adm, g.v[br.f], g.v[br.t]);
        let tl = larger(row, i_f, i_t);
        r.put(col::TP, ti, &o.mul(s_hv.re, sn8).0);
        r.put(col::TQ, ti, &o.mul(s_hv.im, sn8).0);
        r.put(col::TPL, ti, &o.mul(s_lv.re, sn8).0);
        r.put(col::TQL, ti, &o.mul(s_lv.im, sn8).0);
        r.put(col::TL, ti, &o.mul(tl, o.splat(row.pct)).0);
    }
}

/// [`Kernel::mismatch`] for every lane: writes `rhs` and returns each lane's
/// max(|ΔP|, |ΔQ|) (infinite where not finite).
#[inline(always)]
fn mismatch<S: Simd>(o: Ops<S>, k: &Kernel, g: &mut Group, p_step: bool) -> [f64; LANES] {
    match (k.plan.has_zip, k.plan.has_pv()) {
        (true, true) => mismatch_with::<S, true, true>(o, k, g, p_step),
        (true, false) => mismatch_with::<S, true, false>(o, k, g, p_step),
        (false, true) => mismatch_with::<S, false, true>(o, k, g, p_step),
        (false, false) => mismatch_with::<S, false, false>(o, k, g, p_step),
    }
}

#[inline(always)]
fn mismatch_with<S: Simd, const ZIP: bool, const PV: bool>(
    o: Ops<S>,
    k: &Kernel,
    g: &mut Group,
    p_step: bool,
) -> [f64; LANES] {
    let n = k.plan.n_pq;
    let rot = k.plan.rot;
    // Only shunt nodes and tap-changing trafos' ends are ever written: every
    // other entry stays zero from `Group::new`.
    for &i in &k.cur_nodes {
        g.cur[i] = ZERO8;
    }
    let pq_shunts = k.shunt_nodes.iter().filter(|&&i| i < n);
    for (y, &i) in g.ysh.iter().zip(pq_shunts) {
        g.cur[i] = o.cmul(*y, g.v[i]);
    }
    for (a, &(f, t)) in g.tap.iter().zip(&k.taps) {
        let (f, t) = (f as usize, t as usize);
        let (vf, vt) = (g.v[f], g.v[t]);
        if f < n {
            g.cur[f] = o.cadd(g.cur[f], o.cadd(o.cmul(a[0], vf), o.cmul(a[1], vt)));
        }
        if t < n {
            g.cur[t] = o.cadd(g.cur[t], o.cadd(o.cmul(a[2], vf), o.cmul(a[3], vt)));
        }
    }
    let (y_val, y_col) = (&k.y_val[..], &k.y_col[..]);
    assert!(
        k.y_ptr.len() == n + 1
            && *k.y_ptr.last().unwrap_or(&0) as usize == y_val.len()
            && y_val.len() == y_col.len()
            && g.v.len() == k.plan.n_node
            && g.cur.len() >= n
            && g.s_spec.len() >= n
            && (!ZIP || (g.s_i.len() >= n && g.s_z.len() >= n && g.vm.len() >= n))
            && g.inv_vm.len() >= n
            && g.rhs.len() >= n
    );
    let (rot_re, rot_im) = (o.splat(rot.re), o.splat(rot.im));
    let mut worst = o.splat(0.0);
    let mut total = o.splat(0.0);
    // Slices of exactly n (no bounds checks below, no reloads of the
    // group's fields after each store).
    let v = &g.v[..];
    let (cur, s_spec, inv_vm) = (&g.cur[..n], &g.s_spec[..n], &g.inv_vm[..n]);
    let rhs = &mut g.rhs[..n];
    let (vm, s_i, s_z) = if ZIP {
        (&g.vm[..n], &g.s_i[..n], &g.s_z[..n])
    } else {
        (&[][..], &[][..], &[][..])
    };
    let pv_mask = if PV { &k.pv_mask[..n] } else { &[][..] };
    let y_ptr = &k.y_ptr[..n + 1];
    for (i, (((cur, s), inv_vm), rhs)) in cur.iter().zip(s_spec).zip(inv_vm).zip(rhs).enumerate() {
        let (mut acc, mut neg) = (*cur, o.splat(0.0));
        // SAFETY: i < n, y_ptr has n + 1 entries, non-decreasing, ending at
        // y_val.len() (checked above and in `Kernel::new`); every column is a
        // node (< n_node = v.len()).
        let (lo, hi) = unsafe { (*y_ptr.get_unchecked(i), *y_ptr.get_unchecked(i + 1)) };
        for kk in lo as usize..hi as usize {
            let (y, x) = unsafe {
                (
                    *y_val.get_unchecked(kk),
                    v.get_unchecked(*y_col.get_unchecked(kk) as usize),
                )
            };
            (acc, neg) = o.cmul_shared_acc(acc, neg, y, x);
        }
        acc.re = o.sub(acc.re, neg);
        // d = s − v·conj(acc), exactly as C64 arithmetic forms it.
        let conj = C8 {
            re: acc.re,
            im: o.neg(acc.im),
        };
        // SAFETY: i < n ≤ v.len().
        let prod = o.cmul(unsafe { *v.get_unchecked(i) }, conj);
        let mut s = *s;
        if ZIP {
            // s + (|V| − 1)·(S_i + S_z·(|V| + 1)), as `Kernel::mismatch` forms it.
            let (m, si, sz) = (vm[i], s_i[i], s_z[i]);
            let (w, u) = (o.add(m, o.splat(1.0)), o.sub(m, o.splat(1.0)));
            s = C8 {
                re: o.add(s.re, o.mul(o.add(si.re, o.mul(sz.re, w)), u)),
                im: o.add(s.im, o.mul(o.add(si.im, o.mul(sz.im, w)), u)),
            };
        }
        let (dr, mut di) = (o.sub(s.re, prod.re), o.sub(s.im, prod.im));
        // A PV node's ΔQ is its gens' free Q (as `Kernel::mismatch`).
        let pv = PV && pv_mask[i];
        if pv {
            di = o.splat(0.0);
        }
        let (ar, ai) = (o.abs(dr), o.abs(di));
        worst = o.max_of(o.max_of(ar, ai), worst);
        total = o.add(total, o.add(ar, ai));
        let x = if p_step {
            o.sub(o.mul(dr, rot_re), o.mul(di, rot_im))
        } else {
            o.add(o.mul(dr, rot_im), o.mul(di, rot_re))
        };
        *rhs = if pv && !p_step {
            o.splat(0.0)
        } else {
            o.mul(x, *inv_vm)
        };
    }
    let mut out = [0.0; LANES];
    for ((o, t), w) in out.iter_mut().zip(total.0).zip(worst.0) {
        *o = if t.is_finite() { w } else { f64::INFINITY };
    }
    out
}

/// Forward and backward substitution on every lane (`SparseLu::solve_flat`'s
/// order) with factor values `l`, `us` (`D⁻¹U`), `d` (`1/U_ii`), each either
/// shared by the lanes (`f64`) or each lane's own ([`F8`]).
#[inline(always)]
fn solve<S: Simd, V: LaneValue>(
    o: Ops<S>,
    lu: &SparseLu,
    l: &[V],
    us: &[V],
    d: &[V],
    x: &mut [F8],
) {
    let n = lu.n;
    assert!(
        x.len() >= n && l.len() == lu.l_col.len() && us.len() == lu.u_col.len() && d.len() == n
    );
    for ((val, &r), &c) in l.iter().zip(&lu.l_row).zip(&lu.l_col) {
        // SAFETY: rows and columns of the pattern are < n <= x.len() (built by `symbolic`).
        unsafe {
            let xc = *x.get_unchecked(c as usize);
            let xr = *x.get_unchecked(r as usize);
            *x.get_unchecked_mut(r as usize) = o.fnma(val.lanes(), xc, xr);
        }
    }
    for (xi, d) in x[..n].iter_mut().zip(d) {
        *xi = o.mul(*xi, d.lanes());
    }
    for ((val, &r), &c) in us.iter().zip(&lu.u_row).zip(&lu.u_col).rev() {
        // SAFETY: as above.
        unsafe {
            let xc = *x.get_unchecked(c as usize);
            let xr = *x.get_unchecked(r as usize);
            *x.get_unchecked_mut(r as usize) = o.fnma(val.lanes(), xc, xr);
        }
    }
}

/// A factor value: one shared by the lanes, or one per lane.
trait LaneValue: Copy {
    fn lanes(self) -> F8;
}
impl LaneValue for f64 {
    #[inline(always)]
    fn lanes(self) -> F8 {
        F8([self; LANES])
    }
}
impl LaneValue for F8 {
    #[inline(always)]
    fn lanes(self) -> F8 {
        self
    }
}

/// [`super::solve_copy`] for the lanes of a loaded group; results in
/// `g.converged`, `g.iterations`, `g.mismatch`.
#[inline(always)]
fn solve_group<S: Simd>(o: Ops<S>, k: &Kernel, g: &mut Group, tol: f64) {
    let p = &*k.plan;
    let n = p.n_pq;
    for ((v, vm), inv_vm) in g.v[..n].iter().zip(&mut g.vm[..n]).zip(&mut g.inv_vm[..n]) {
        // |V| and 1/|V| from one reciprocal square root (as `solve_copy`).
        let x = o.add(o.mul(v.re, v.re), o.mul(v.im, v.im));
        let r = o.rsqrt(x);
        *vm = o.mul(x, r);
        *inv_vm = r;
    }
    let max_it = p.options.max_iterations;
    let mut live = [false; LANES];
    for (l, x) in live.iter_mut().enumerate() {
        *x = l < g.lanes;
    }
    // `live` as a lane mask (1.0 / 0.0) for the vector selects.
    let mask = |live: &[bool; LANES]| F8(live.map(|x| if x { 1.0 } else { 0.0 }));
    let mut iters = [0u32; LANES];
    let mut conv = [false; LANES];
    let mut fin = [f64::NAN; LANES];
    let mut norm = mismatch(o, k, g, true);
    loop {
        for l in 0..LANES {
            if live[l] {
                fin[l] = norm[l];
                if norm[l] <= tol {
                    conv[l] = true;
                    live[l] = false;
                } else if iters[l] >= max_it || norm[l] > 1e6 {
                    live[l] = false;
                } else {
                    iters[l] += 1;
                }
            }
        }
        if !live.iter().any(|&x| x) {
            break;
        }
        let m = mask(&live);
        // P half-step: B'·Δθ = ΔP'/|V|, then turn each live lane's V_i by Δθ_i.
        solve(
            o,
            &p.bp,
            &p.bp.l_val,
            &p.bp.u_scaled,
            &p.bp.u_diag_inv,
            &mut g.rhs,
        );
        for (&t, v) in g.rhs[..n].iter().zip(&mut g.v[..n]) {
            let (mut c, mut s) = o.cis_taylor(t);
            // cis(): libm where the series is not exact (rare; NaN included).
            let series = |x: f64| x.abs() < 0.05;
            if !o.all_abs_lt(t, 0.05) {
                for l in 0..LANES {
                    if !series(t.0[l]) {
                        let z = C64::from_polar(1.0, t.0[l]);
                        (c.0[l], s.0[l]) = (z.re, z.im);
                    }
                }
            }
            let turned = o.cmul(*v, C8 { re: c, im: s });
            *v = C8 {
                re: o.select(m, turned.re, v.re),
                im: o.select(m, turned.im, v.im),
            };
        }
        let norm_p = mismatch(o, k, g, false);
        for l in 0..LANES {
            if live[l] {
                fin[l] = norm_p[l];
                if norm_p[l] <= tol {
                    conv[l] = true;
                    live[l] = false;
                }
            }
        }
        if !live.iter().any(|&x| x) {
            break;
        }
        let m = mask(&live);
        // Q half-step: B''·Δ|V| = ΔQ'/|V|, then scale each live lane's V_i.
        if g.own_bpp {
            solve(o, &p.bpp, &g.bpp_l, &g.bpp_us, &g.bpp_d, &mut g.rhs);
        } else if let Some(f) = &g.shared_bpp {
            solve(o, &p.bpp, &f.l, &f.us, &f.d, &mut g.rhs);
        } else {
            solve(
                o,
                &p.bpp,
                &p.bpp.l_val,
                &p.bpp.u_scaled,
                &p.bpp.u_diag_inv,
                &mut g.rhs,
            );
        }
        let nodes = g.v[..n]
            .iter_mut()
            .zip(&mut g.vm[..n])
            .zip(&mut g.inv_vm[..n])
            .zip(&g.rhs[..n]);
        for (((v, vm), inv_vm), dvm) in nodes {
            let new_vm = o.add(*vm, *dvm);
            let f = o.mul(new_vm, *inv_vm);
            *v = C8 {
                re: o.select(m, o.mul(v.re, f), v.re),
                im: o.select(m, o.mul(v.im, f), v.im),
            };
            *vm = o.select(m, new_vm, *vm);
            *inv_vm = o.select(m, o.recip(new_vm), *inv_vm);
        }
        norm = mismatch(o, k, g, true);
    }
    g.converged = conv;
    g.iterations = iters;
    g.mismatch = fin;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    struct Angles<'a>(&'a [C64], &'a mut [f64]);
    impl pulp::WithSimd for Angles<'_> {
        type Output = ();
        fn with_simd<S: pulp::Simd>(self, simd: S) {
            for (vs, out) in self.0.chunks(LANES).zip(self.1.chunks_mut(LANES)) {
                let mut z = ZERO8;
                for (l, v) in vs.iter().enumerate() {
                    set(&mut z, l, *v);
                }
                let a = Ops(simd).angle_deg(z);
                out.copy_from_slice(&a.0[..out.len()]);
            }
        }
    }

    /// The lanes' angle is the scalar one bit for bit, and both are libm's
    /// `atan2` to within a few ulps, on every quadrant, the reduction's
    /// boundaries, the axes and the origin.
    #[test]
    fn angle_matches_scalar_and_libm() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut vs = vec![
            C64::new(0.0, 0.0),
            C64::new(1.0, 0.0),
            C64::new(-1.0, 0.0),
            C64::new(0.0, 1.0),
            C64::new(0.0, -1.0),
            C64::new(1.0, super::super::TAN_3PI_8),
            C64::new(1.0, 0.66),
            C64::new(-1.0, -0.66),
            C64::new(1.0, 1.0),
            C64::new(1e-300, 1.0),
        ];
        for _ in 0..20_000 {
            let m = 10f64.powf(rng.random_range(-3.0..1.0));
            let th = rng.random_range(-std::f64::consts::PI..std::f64::consts::PI);
            vs.push(C64::from_polar(m, th));
        }
        // Feeder voltages: |V| near 1, angles within ±60°.
        for _ in 0..20_000 {
            let th = rng.random_range(-1.0..1.0);
            vs.push(C64::from_polar(rng.random_range(0.9..1.1), th));
        }
        let mut lanes = vec![0.0; vs.len()];
        pulp::Arch::new().dispatch(Angles(&vs, &mut lanes));
        for (v, a) in vs.iter().zip(&lanes) {
            let s = super::super::angle_deg(*v);
            assert_eq!(s.to_bits(), a.to_bits(), "{v:?}: scalar {s} lanes {a}");
            let libm = v.im.atan2(v.re).to_degrees();
            assert!(
                (s - libm).abs() <= 4.0 * f64::EPSILON * libm.abs().max(1e-300) + 1e-300,
                "{v:?}: {s} vs libm {libm}"
            );
        }
    }
}
