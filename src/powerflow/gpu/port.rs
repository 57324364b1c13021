//! CPU port of `shaders/fdpf.wgsl`, function for function with the shader's names
//! (as vello ports its shaders), on the very buffers the host uploads (`Params`,
//! `idx`, `sh`, `pc`, `bppv`, `work`, `outp`) held as slices. Generic over the float
//! type: `Port<f32>` reproduces the shader's rounding closely (same operations in
//! the same order; the device may fuse multiply-adds and round `sin`/`sqrt`
//! differently), `Port<f64>` is the exact arithmetic reference.
//!
//! Debugging a kernel: [`GpuBatch::probe`] runs one of the shader's test entry
//! points (`test_mismatch`, `test_p_half_step`, …: one function on the current
//! `work` state) on the device; [`GpuBatch::port`] gives a `Port<f32>` holding the
//! same buffers (inputs from the host mirrors, `work`/`outp` read back), on which
//! the same function runs; compare `work`/`outp` element by element (see the tests).
//! [`PortBatch`] runs the port's `main` over a batch with buffers built by the GPU
//! backend's host code, in f64 (`sh`, `pc`, `bppv` before their f32 rounding).

use super::{
    bind_group_layout, build_shared, build_shared64, prepare_copies, GpuBatch, HostState, Layout,
    Params, Put,
};
use crate::error::{Error, Result};
use crate::powerflow::batch::{BatchInputs, PowerFlow};
use crate::powerflow::plan::Plan;
use crate::powerflow::sparse_lu::PatternValues;
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub, SubAssign};
use std::sync::Arc;

/// The float type a port runs in (f32: the shader's, f64: the reference).
pub(crate) trait Real:
    Copy
    + Debug
    + PartialOrd
    + PartialEq
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
{
    /// A constant or host value (rounded to `Self`, as WGSL rounds its constants).
    fn of(x: f64) -> Self;
    fn to64(self) -> f64;
    fn abs(self) -> Self;
    fn sqrt(self) -> Self;
    fn sin(self) -> Self;
    /// WGSL `round`: ties to even.
    fn round(self) -> Self;
    /// WGSL `max` of two non-NaN values.
    fn max(self, o: Self) -> Self {
        if o > self {
            o
        } else {
            self
        }
    }
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn to64(self) -> f64 {
        self as f64
    }
    fn abs(self) -> Self {
        f32::abs(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn sin(self) -> Self {
        f32::sin(self)
    }
    fn round(self) -> Self {
        f32::round_ties_even(self)
    }
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn to64(self) -> f64 {
        self
    }
    fn abs(self) -> Self {
        f64::abs(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn sin(self) -> Self {
        f64::sin(self)
    }
    fn round(self) -> Self {
        f64::round_ties_even(self)
    }
}

/// WGSL `vec2<f32>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct V2<T> {
    pub x: T,
    pub y: T,
}

fn v2<T>(x: T, y: T) -> V2<T> {
    V2 { x, y }
}

impl<T: Real> Add for V2<T> {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        v2(self.x + o.x, self.y + o.y)
    }
}
impl<T: Real> Sub for V2<T> {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        v2(self.x - o.x, self.y - o.y)
    }
}
impl<T: Real> Neg for V2<T> {
    type Output = Self;
    fn neg(self) -> Self {
        v2(-self.x, -self.y)
    }
}
impl<T: Real> AddAssign for V2<T> {
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}
/// `vec2 * scalar`.
impl<T: Real> Mul<T> for V2<T> {
    type Output = Self;
    fn mul(self, k: T) -> Self {
        v2(self.x * k, self.y * k)
    }
}

/// `scalar * vec2` (WGSL `k * v`).
fn sv<T: Real>(k: T, a: V2<T>) -> V2<T> {
    v2(k * a.x, k * a.y)
}

fn vmax<T: Real>(a: V2<T>, b: V2<T>) -> V2<T> {
    v2(a.x.max(b.x), a.y.max(b.y))
}

fn length<T: Real>(a: V2<T>) -> T {
    (a.x * a.x + a.y * a.y).sqrt()
}

pub(crate) const NONE: u32 = 0xffff_ffff;
const F9: u32 = 9;
use super::PV_RELEASED;

/// WGSL `Branch`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Branch<T> {
    pub ys: V2<T>,
    pub yh: V2<T>,
    pub rho: T,
    pub c0: V2<T>,
    pub e: V2<T>,
}

/// WGSL `Flow`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flow<T> {
    pub f: u32,
    pub t: u32,
    pub jf: V2<T>,
    pub jt: V2<T>,
}

/// The shader's bindings. `tol`, `rot`, `diverge` and `sn` are the f32 fields of
/// `Params` as `T` (an f64 port may set them from the plan without rounding).
#[derive(Debug, Clone)]
pub(crate) struct Port<T> {
    pub p: Params,
    pub tol: T,
    pub rot: V2<T>,
    pub diverge: T,
    pub sn: T,
    pub idx: Vec<u32>,
    pub sh: Vec<T>,
    pub pc: Vec<T>,
    pub bppv: Vec<T>,
    pub work: Vec<T>,
    pub outp: Vec<T>,
    /// The listed copies (`copy_of`): their number, then their indices;
    /// `[NONE]`: every copy.
    pub list: Vec<u32>,
}

pub(crate) fn cmul<T: Real>(a: V2<T>, b: V2<T>) -> V2<T> {
    v2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x)
}

pub(crate) fn conj<T: Real>(a: V2<T>) -> V2<T> {
    v2(a.x, -a.y)
}

/// `(cos θ − 1, sin θ)` (the shader's series for small θ).
pub(crate) fn cosm1_sin<T: Real>(th: T) -> V2<T> {
    let c = T::of;
    if th.abs() < c(0.785) {
        let t2 = th * th;
        let cm1 = -t2
            * (c(0.5)
                - t2 * (c(1.0 / 24.0)
                    - t2 * (c(1.0 / 720.0) - t2 * (c(1.0 / 40320.0) - t2 * c(1.0 / 3628800.0)))));
        let s = th
            * (c(1.0)
                - t2 * (c(1.0 / 6.0)
                    - t2 * (c(1.0 / 120.0)
                        - t2 * (c(1.0 / 5040.0)
                            - t2 * (c(1.0 / 362880.0) - t2 * c(1.0 / 39916800.0))))));
        return v2(cm1, s);
    }
    let h = (c(0.5) * th).sin();
    v2(c(-2.0) * h * h, th.sin())
}

impl<T: Real> Port<T> {
    /// Buffers of the given values; `tol`, `rot`, `diverge`, `sn` from `p`.
    pub fn new(p: Params, idx: Vec<u32>, sh: Vec<T>, pc: Vec<T>, bppv: Vec<T>) -> Self {
        Port {
            tol: T::of(p.tol as f64),
            rot: v2(T::of(p.rot_re as f64), T::of(p.rot_im as f64)),
            diverge: T::of(p.diverge as f64),
            sn: T::of(p.sn as f64),
            p,
            idx,
            sh,
            pc,
            bppv,
            work: vec![],
            outp: vec![],
            list: vec![NONE],
        }
    }

    fn k(x: f64) -> T {
        T::of(x)
    }
    fn one() -> V2<T> {
        v2(T::of(1.0), T::of(0.0))
    }

    pub fn at(&self, row: u32, c: u32) -> usize {
        (row * self.p.batch + c) as usize
    }

    pub fn copy_of(&self, i: u32) -> u32 {
        let n = self.list[0];
        if n == NONE {
            return i;
        }
        if i >= n {
            return NONE;
        }
        self.list[1 + i as usize]
    }

    pub fn r_u(&self, i: u32) -> u32 {
        i
    }
    pub fn r_th(&self, i: u32) -> u32 {
        self.p.n_node + i
    }
    pub fn r_dwr(&self, i: u32) -> u32 {
        2 * self.p.n_node + i
    }
    pub fn r_dwi(&self, i: u32) -> u32 {
        3 * self.p.n_node + i
    }
    pub fn r_jr(&self, i: u32) -> u32 {
        4 * self.p.n_node + i
    }
    pub fn r_ji(&self, i: u32) -> u32 {
        5 * self.p.n_node + i
    }
    pub fn r_x(&self, i: u32) -> u32 {
        6 * self.p.n_node + i
    }
    pub fn r_cold(&self) -> u32 {
        6 * self.p.n_node + self.p.n_pq
    }
    pub fn r_loop(&self, k: u32) -> u32 {
        self.r_cold() + 1 + k
    }

    fn w(&self, row: u32, c: u32) -> T {
        self.work[self.at(row, c)]
    }
    fn set_w(&mut self, row: u32, c: u32, v: T) {
        let a = self.at(row, c);
        self.work[a] = v;
    }
    fn pcv(&self, row: u32, c: u32) -> T {
        self.pc[self.at(row, c)]
    }
    fn set_o(&mut self, row: u32, c: u32, v: T) {
        let a = self.at(row, c);
        self.outp[a] = v;
    }
    fn shv(&self, o: u32) -> T {
        self.sh[o as usize]
    }
    fn ix(&self, o: u32) -> u32 {
        self.idx[o as usize]
    }

    pub fn branch(&self, k: u32, c: u32) -> Branch<T> {
        let p = &self.p;
        if k < p.n_fixed {
            let o = p.s_br + F9 * k;
            let s = |j: u32| self.shv(o + j);
            return Branch {
                ys: v2(s(0), s(1)),
                yh: v2(s(2), s(3)),
                rho: s(4),
                c0: v2(s(5), s(6)),
                e: v2(s(7), s(8)),
            };
        }
        let r = 2 * p.n_node + F9 * (k - p.n_fixed);
        let s = |j: u32| self.pcv(r + j, c);
        Branch {
            ys: v2(s(0), s(1)),
            yh: v2(s(2), s(3)),
            rho: s(4),
            c0: v2(s(5), s(6)),
            e: v2(s(7), s(8)),
        }
    }

    pub fn dw(&self, i: u32, c: u32) -> V2<T> {
        v2(self.w(self.r_dwr(i), c), self.w(self.r_dwi(i), c))
    }

    pub fn cur(&self, i: u32, c: u32) -> V2<T> {
        v2(self.w(self.r_jr(i), c), self.w(self.r_ji(i), c))
    }

    pub fn branch_flow(&self, k: u32, c: u32) -> Flow<T> {
        let f = self.ix(self.p.i_br + 2 * k);
        let t = self.ix(self.p.i_br + 2 * k + 1);
        let b = self.branch(k, c);
        let dwf = self.dw(f, c);
        let dwt = self.dw(t, c);
        let d = b.c0 + sv(b.rho, dwf) - cmul(b.e, dwt);
        let wf = Self::one() + dwf;
        let wt = Self::one() + dwt;
        let jf = sv(b.rho, cmul(b.ys, d)) + sv(b.rho * b.rho, cmul(b.yh, wf));
        let jt = cmul(b.yh, wt) - cmul(cmul(b.ys, conj(b.e)), d);
        Flow { f, t, jf, jt }
    }

    pub fn tap_warm_start(&mut self, c: u32) {
        let p = self.p;
        let n_tap = p.n_br - p.n_fixed;
        let r0 = 2 * p.n_node + F9 * n_tap;
        for j in 0..n_tap {
            let g = self.pcv(r0 + j, c);
            if g != T::of(0.0) {
                for k in self.ix(p.i_down_ptr + j)..self.ix(p.i_down_ptr + j + 1) {
                    let r = self.r_u(self.ix(p.i_down + k));
                    let u = self.w(r, c);
                    self.set_w(r, c, u + g * (Self::k(1.0) + u));
                }
            }
        }
    }

    pub fn inj_term(&self, t: u32, c: u32) -> V2<T> {
        let o = self.p.i_inj + 3 * t;
        let mut v = v2(self.pcv(self.ix(o), c), Self::k(0.0));
        if self.ix(o + 1) != NONE {
            v.y = self.pcv(self.ix(o + 1), c);
        }
        if self.ix(o + 2) != NONE {
            v = v * self.pcv(self.ix(o + 2), c);
        }
        v * self.shv(self.p.s_inj + t)
    }

    pub fn injections(&mut self, c: u32) {
        let p = self.p;
        let nn = p.n_node;
        for i in 0..nn {
            let mut s = v2(self.shv(p.s_sbase + i), self.shv(p.s_sbase + nn + i));
            let o = p.i_inj_ptr + 2 * i;
            let mid = self.ix(o + 1);
            for t in self.ix(o)..mid {
                s += self.inj_term(t, c);
            }
            if p.w_zip != NONE && i < p.n_pq {
                let n = p.n_pq;
                let z = p.s_zip + 4 * i;
                self.set_w(p.w_zip + i, c, s.x * self.shv(z));
                self.set_w(p.w_zip + n + i, c, s.y * self.shv(z + 2));
                self.set_w(p.w_zip + 2 * n + i, c, s.x * self.shv(z + 1));
                self.set_w(p.w_zip + 3 * n + i, c, s.y * self.shv(z + 3));
            }
            for t in mid..self.ix(o + 2) {
                s += self.inj_term(t, c);
            }
            let j = self.pv_row(i);
            if j != NONE && !self.pv_held(i, c) {
                s.y += self.pcv(p.p_pvq + j, c);
            }
            self.set_w(p.w_s + i, c, s.x);
            self.set_w(p.w_s + nn + i, c, s.y);
        }
    }

    pub fn s_spec(&self, i: u32, c: u32) -> V2<T> {
        v2(
            self.w(self.p.w_s + i, c),
            self.w(self.p.w_s + self.p.n_node + i, c),
        )
    }

    pub fn s_spec_v(&self, i: u32, c: u32) -> V2<T> {
        let p = &self.p;
        let mut s = self.s_spec(i, c);
        if p.w_zip != NONE && i < p.n_pq {
            let n = p.n_pq;
            let u = self.w(self.r_u(i), c);
            let si = v2(self.w(p.w_zip + i, c), self.w(p.w_zip + n + i, c));
            let sz = v2(
                self.w(p.w_zip + 2 * n + i, c),
                self.w(p.w_zip + 3 * n + i, c),
            );
            s += sv(u, si + sz * (Self::k(2.0) + u));
        }
        s
    }

    pub fn pv_row(&self, i: u32) -> u32 {
        if self.p.p_pv == NONE || i >= self.p.n_pq {
            return NONE;
        }
        self.ix(self.p.i_pv + i)
    }

    pub fn pv_held(&self, i: u32, c: u32) -> bool {
        let j = self.pv_row(i);
        j != NONE && self.pcv(self.p.p_pv + j, c) < Self::k(PV_RELEASED)
    }

    pub fn delta_s(&self, i: u32, c: u32) -> V2<T> {
        let w = Self::one() + self.dw(i, c);
        self.s_spec_v(i, c) - cmul(w, conj(self.cur(i, c)))
    }

    pub fn mismatch(&mut self, c: u32) -> V2<T> {
        self.mismatch_currents(c);
        self.mismatch_norm(c)
    }

    pub fn mismatch_currents(&mut self, c: u32) {
        let n_node = self.p.n_node;
        let one = Self::k(1.0);
        for i in 0..n_node {
            let u = self.w(self.r_u(i), c);
            let cs = cosm1_sin(self.w(self.r_th(i), c));
            let d = v2(u * (one + cs.x) + cs.x, (one + u) * cs.y);
            self.set_w(self.r_dwr(i), c, d.x);
            self.set_w(self.r_dwi(i), c, d.y);
            let y = v2(self.pcv(i, c), self.pcv(n_node + i, c));
            let j = cmul(y, Self::one() + d);
            self.set_w(self.r_jr(i), c, j.x);
            self.set_w(self.r_ji(i), c, j.y);
        }
        for k in 0..self.p.n_br {
            let fl = self.branch_flow(k, c);
            let (rf, rfi, rt, rti) = (
                self.r_jr(fl.f),
                self.r_ji(fl.f),
                self.r_jr(fl.t),
                self.r_ji(fl.t),
            );
            self.set_w(rf, c, self.w(rf, c) + fl.jf.x);
            self.set_w(rfi, c, self.w(rfi, c) + fl.jf.y);
            self.set_w(rt, c, self.w(rt, c) + fl.jt.x);
            self.set_w(rti, c, self.w(rti, c) + fl.jt.y);
        }
    }

    pub fn mismatch_norm(&mut self, c: u32) -> V2<T> {
        let mut worst = v2(Self::k(0.0), Self::k(0.0));
        for i in 0..self.p.n_pq {
            let ds = self.delta_s(i, c);
            let mut m = ds.x.abs();
            if !self.pv_held(i, c) {
                m = m.max(ds.y.abs());
            }
            let tol = self
                .tol
                .max(self.shv(self.p.s_tol + i) * (length(self.dw(i, c)) + Self::k(0.01)));
            worst = vmax(worst, v2(m, m / tol));
            // The shader's `!(m < 1e30)`: NaN or infinite, diverged.
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            let diverged = !(m < Self::k(1e30));
            if diverged {
                worst = v2(Self::k(1e30), Self::k(1e30));
            }
        }
        worst
    }

    pub fn solve_bp(&mut self, c: u32) {
        self.solve_bp_lower(c);
        self.solve_bp_upper(c);
    }

    pub fn solve_bp_lower(&mut self, c: u32) {
        let p = self.p;
        let n = p.n_pq;
        for i in 0..n {
            let mut s = self.w(self.r_x(i), c);
            for k in self.ix(p.i_bp_lptr + i)..self.ix(p.i_bp_lptr + i + 1) {
                s -= self.shv(p.s_bp_l + k) * self.w(self.r_x(self.ix(p.i_bp_lcol + k)), c);
            }
            self.set_w(self.r_x(i), c, s);
        }
    }

    pub fn solve_bp_upper(&mut self, c: u32) {
        let p = self.p;
        let n = p.n_pq;
        for ii in 0..n {
            let i = n - 1 - ii;
            let mut s = self.w(self.r_x(i), c);
            for k in self.ix(p.i_bp_uptr + i)..self.ix(p.i_bp_uptr + i + 1) {
                s -= self.shv(p.s_bp_u + k) * self.w(self.r_x(self.ix(p.i_bp_ucol + k)), c);
            }
            self.set_w(self.r_x(i), c, s * self.shv(p.s_bp_d + i));
        }
    }

    pub fn solve_bpp(&mut self, c: u32) {
        self.solve_bpp_lower(c);
        self.solve_bpp_upper(c);
    }

    pub fn bpp_set(&self, c: u32) -> u32 {
        self.pcv(self.p.p_bset, c).to64() as u32 * self.p.n_bpp
    }

    pub fn solve_bpp_lower(&mut self, c: u32) {
        let p = self.p;
        let n = p.n_pq;
        let b0 = self.bpp_set(c);
        let b = |s: &Self, r: u32| s.bppv[(b0 + r) as usize];
        for i in 0..n {
            let mut s = self.w(self.r_x(i), c);
            for k in self.ix(p.i_bpp_lptr + i)..self.ix(p.i_bpp_lptr + i + 1) {
                s -= b(self, k) * self.w(self.r_x(self.ix(p.i_bpp_lcol + k)), c);
            }
            self.set_w(self.r_x(i), c, s);
        }
    }

    pub fn solve_bpp_upper(&mut self, c: u32) {
        let p = self.p;
        let n = p.n_pq;
        let ou = p.nnz_bpp_l;
        let od = p.nnz_bpp_l + p.nnz_bpp_u;
        let b0 = self.bpp_set(c);
        let b = |s: &Self, r: u32| s.bppv[(b0 + r) as usize];
        for ii in 0..n {
            let i = n - 1 - ii;
            let mut s = self.w(self.r_x(i), c);
            for k in self.ix(p.i_bpp_uptr + i)..self.ix(p.i_bpp_uptr + i + 1) {
                s -= b(self, ou + k) * self.w(self.r_x(self.ix(p.i_bpp_ucol + k)), c);
            }
            self.set_w(self.r_x(i), c, s * b(self, od + i));
        }
    }

    pub fn p_half_step(&mut self, c: u32) {
        self.p_rhs(c);
        self.solve_bp(c);
        self.p_update(c);
    }

    pub fn p_rhs(&mut self, c: u32) {
        let rot = self.rot;
        for i in 0..self.p.n_pq {
            let mut ds = self.delta_s(i, c);
            if self.pv_held(i, c) {
                ds.y = Self::k(0.0);
            }
            let x = cmul(ds, rot).x / (Self::k(1.0) + self.w(self.r_u(i), c));
            self.set_w(self.r_x(i), c, x);
        }
    }

    pub fn p_update(&mut self, c: u32) {
        for i in 0..self.p.n_pq {
            let r = self.r_th(i);
            self.set_w(r, c, self.w(r, c) + self.w(self.r_x(i), c));
        }
    }

    pub fn q_half_step(&mut self, c: u32) {
        self.q_rhs(c);
        self.solve_bpp(c);
        self.q_update(c);
    }

    pub fn q_rhs(&mut self, c: u32) {
        let rot = self.rot;
        for i in 0..self.p.n_pq {
            let mut x = Self::k(0.0);
            if !self.pv_held(i, c) {
                x = cmul(self.delta_s(i, c), rot).y / (Self::k(1.0) + self.w(self.r_u(i), c));
            }
            self.set_w(self.r_x(i), c, x);
        }
    }

    pub fn q_update(&mut self, c: u32) {
        for i in 0..self.p.n_pq {
            let r = self.r_u(i);
            self.set_w(r, c, self.w(r, c) + self.w(self.r_x(i), c));
        }
    }

    /// Current injected at node i by its loads and generation, conj(S_spec/W).
    pub fn injected(&self, i: u32, c: u32) -> V2<T> {
        let w = Self::one() + self.dw(i, c);
        let s = self.s_spec_v(i, c);
        let q = conj(cmul(s, conj(w)));
        let d = w.x * w.x + w.y * w.y;
        v2(q.x / d, q.y / d)
    }

    /// Branch currents of the result pass by Kirchhoff's law on the host's order.
    pub fn branch_currents(&mut self, c: u32) {
        let p = self.p;
        let nn = p.n_node;
        for i in 0..nn {
            let y = v2(self.pcv(i, c), self.pcv(nn + i, c));
            let j = cmul(y, Self::one() + self.dw(i, c));
            self.set_w(self.r_jr(i), c, j.x);
            self.set_w(self.r_ji(i), c, j.y);
        }
        let nl = p.nl;
        let o_lp = 3 + 2 * p.nb;
        let o_tl = o_lp + 4 * nl;
        for q in 0..p.n_br {
            let code = self.ix(p.i_order + q);
            let k = code >> 2;
            let mode = code & 3;
            let f = self.ix(p.i_br + 2 * k);
            let t = self.ix(p.i_br + 2 * k + 1);
            let (jf, jt);
            if mode == 0 {
                let fl = self.branch_flow(k, c);
                jf = fl.jf;
                jt = fl.jt;
            } else {
                let b = self.branch(k, c);
                let wf = Self::one() + self.dw(f, c);
                let wt = Self::one() + self.dw(t, c);
                let hf = sv(b.rho * b.rho, cmul(b.yh, wf));
                let ht = cmul(b.yh, wt);
                if mode == 1 {
                    jf = self.injected(f, c) - self.cur(f, c);
                    let m = cmul(conj(b.e), jf - hf);
                    jt = ht - v2(m.x / b.rho, m.y / b.rho);
                } else {
                    jt = self.injected(t, c) - self.cur(t, c);
                    jf = sv(b.rho, cmul(b.e, ht - jt)) + hf;
                }
            }
            let (rf, rfi, rt, rti) = (self.r_jr(f), self.r_ji(f), self.r_jr(t), self.r_ji(t));
            self.set_w(rf, c, self.w(rf, c) + jf.x);
            self.set_w(rfi, c, self.w(rfi, c) + jf.y);
            self.set_w(rt, c, self.w(rt, c) + jt.x);
            self.set_w(rti, c, self.w(rti, c) + jt.y);
            let slot = self.ix(p.i_slot + k);
            if slot != NONE {
                let mut r = [
                    o_lp + slot,
                    o_lp + nl + slot,
                    o_lp + 2 * nl + slot,
                    o_lp + 3 * nl + slot,
                ];
                if slot >= nl {
                    let tt = slot - nl;
                    r = [
                        o_tl + tt,
                        o_tl + p.nt + tt,
                        o_tl + 2 * p.nt + tt,
                        o_tl + 3 * p.nt + tt,
                    ];
                }
                self.set_o(r[0], c, jf.x);
                self.set_o(r[1], c, jf.y);
                self.set_o(r[2], c, jt.x);
                self.set_o(r[3], c, jt.y);
            }
        }
    }

    pub fn write_results(&mut self, c: u32) {
        self.branch_currents(c);
        self.write_tables(c);
    }

    pub fn write_tables(&mut self, c: u32) {
        let p = self.p;
        let (nb, nl, nt) = (p.nb, p.nl, p.nt);
        let o_va = 3 + nb;
        let o_lp = 3 + 2 * nb;
        let o_lq = o_lp + nl;
        let o_li = o_lq + nl;
        let o_ll = o_li + nl;
        let o_tl = o_ll + nl;
        let o_tp = o_tl + nt;
        let o_tq = o_tp + nt;
        let o_tpl = o_tq + nt;
        let o_tql = o_tpl + nt;
        let o_ep = o_tql + nt;
        let o_eq = o_ep + p.ne;
        let z = Self::k(0.0);
        let o = |s: &Self, r: u32| s.outp[s.at(r, c)];
        for b in 0..nb {
            let i = self.ix(p.i_bus + b);
            let mut vm = z;
            let mut va = z;
            if i != NONE {
                vm = Self::k(1.0) + self.w(self.r_u(i), c);
                va = self.shv(p.s_phi + i) + self.w(self.r_th(i), c) * Self::k(57.29577951308232);
                va -= Self::k(360.0) * (va / Self::k(360.0)).round();
            }
            self.set_o(3 + b, c, vm);
            self.set_o(o_va + b, c, va);
        }
        for l in 0..nl {
            let k = self.ix(p.i_line + l);
            let mut s = v2(z, z);
            let mut i_ka = z;
            let mut loading = z;
            if k != NONE {
                let jf = v2(o(self, o_lp + l), o(self, o_lq + l));
                let jt = v2(o(self, o_li + l), o(self, o_ll + l));
                let wf = Self::one() + self.dw(self.ix(p.i_br + 2 * k), c);
                s = cmul(wf, conj(jf)) * self.sn;
                let os = p.s_line + 3 * l;
                i_ka = (length(jf) * self.shv(os)).max(length(jt) * self.shv(os + 1));
                loading = i_ka * self.shv(os + 2);
            }
            self.set_o(o_lp + l, c, s.x);
            self.set_o(o_lq + l, c, s.y);
            self.set_o(o_li + l, c, i_ka);
            self.set_o(o_ll + l, c, loading);
        }
        for t in 0..nt {
            let k = self.ix(p.i_trafo + t);
            let mut loading = z;
            let mut s_hv = v2(z, z);
            let mut s_lv = v2(z, z);
            if k != NONE {
                let jf = v2(o(self, o_tl + t), o(self, o_tp + t));
                let jt = v2(o(self, o_tq + t), o(self, o_tpl + t));
                let wf = Self::one() + self.dw(self.ix(p.i_br + 2 * k), c);
                let wt = Self::one() + self.dw(self.ix(p.i_br + 2 * k + 1), c);
                let os = p.s_trafo + 2 * t;
                loading = (length(jf) * self.shv(os)).max(length(jt) * self.shv(os + 1));
                s_hv = cmul(wf, conj(jf)) * self.sn;
                s_lv = cmul(wt, conj(jt)) * self.sn;
            }
            self.set_o(o_tl + t, c, loading);
            self.set_o(o_tp + t, c, s_hv.x);
            self.set_o(o_tq + t, c, s_hv.y);
            self.set_o(o_tpl + t, c, s_lv.x);
            self.set_o(o_tql + t, c, s_lv.y);
        }
        for e in 0..p.ne {
            let i = self.ix(p.i_ext + e);
            let mut s = v2(z, z);
            if i != NONE {
                s = -self.delta_s(i, c) * self.shv(p.s_ext + e);
            }
            self.set_o(o_ep + e, c, s.x);
            self.set_o(o_eq + e, c, s.y);
        }
        let o_gq = o_eq + p.ne;
        for k in 0..p.n_site {
            let i = self.ix(p.i_site + k);
            let w = Self::one() + self.dw(i, c);
            let q = (cmul(w, conj(self.cur(i, c))).y - self.s_spec(i, c).y) * self.sn;
            self.set_o(o_gq + k, c, q);
        }
    }

    /// A new solve: the injections, slack voltages, cold start or tap-move
    /// warm start, PV set-points.
    pub fn start(&mut self, c: u32) {
        let p = self.p;
        let k = Self::k;
        self.injections(c);
        for i in p.n_pq..p.n_node {
            self.set_w(self.r_u(i), c, self.shv(p.s_u0 + i));
            self.set_w(self.r_th(i), c, k(0.0));
        }
        if self.w(self.r_cold(), c) != k(0.0) {
            for i in 0..p.n_pq {
                self.set_w(self.r_u(i), c, self.shv(p.s_u0 + i));
                self.set_w(self.r_th(i), c, k(0.0));
            }
        } else {
            self.tap_warm_start(c);
        }
        if p.p_pv != NONE {
            for i in 0..p.n_pq {
                if self.pv_held(i, c) {
                    self.set_w(self.r_u(i), c, self.pcv(p.p_pv + self.pv_row(i), c));
                }
            }
        }
    }

    /// The shader's `main` for invocation `c` (one dispatch).
    pub fn main(&mut self, i: u32) {
        let p = self.p;
        let c = self.copy_of(i);
        if c >= p.batch {
            return;
        }
        let k = Self::k;
        let phase = self.w(self.r_loop(0), c);
        if phase == k(2.0) {
            return;
        }
        let mut iters = 0u32;
        let mut polish = 0u32;
        let mut converged = false;
        let mut norm;
        if phase == k(0.0) {
            self.start(c);
            norm = self.mismatch(c);
        } else {
            iters = self.w(self.r_loop(1), c).to64() as u32;
            polish = self.w(self.r_loop(2), c).to64() as u32;
            converged = self.w(self.r_loop(3), c) != k(0.0);
            norm = v2(self.w(self.r_loop(4), c), self.w(self.r_loop(5), c));
        }
        let mut finished = false;
        let mut budget = p.pass_iters;
        loop {
            if norm.y <= k(1.0) || converged {
                converged = true;
                if polish >= p.polish {
                    finished = true;
                    break;
                }
            } else if iters >= p.max_iter || norm.x > self.diverge {
                finished = true;
                break;
            }
            if budget == 0 {
                break;
            }
            budget -= 1;
            if converged {
                polish += 1;
            }
            iters += 1;
            self.p_half_step(c);
            norm = self.mismatch(c);
            if norm.y <= k(1.0) && !converged {
                converged = true;
                if p.polish == 0 {
                    finished = true;
                    break;
                }
            }
            self.q_half_step(c);
            norm = self.mismatch(c);
        }
        let flag = |b: bool| if b { k(1.0) } else { k(0.0) };
        if !finished {
            self.set_w(self.r_loop(0), c, k(1.0));
            self.set_w(self.r_loop(1), c, k(iters as f64));
            self.set_w(self.r_loop(2), c, k(polish as f64));
            self.set_w(self.r_loop(3), c, flag(converged));
            self.set_w(self.r_loop(4), c, norm.x);
            self.set_w(self.r_loop(5), c, norm.y);
            return;
        }
        self.set_w(self.r_loop(0), c, k(2.0));
        self.set_o(0, c, flag(converged));
        self.set_o(1, c, k((iters - polish) as f64));
        self.set_o(2, c, norm.x);
        self.set_w(self.r_cold(), c, flag(!converged));
        self.write_results(c);
    }

    /// The shader's `main_staged` for invocation `c` (one dispatch, one stage).
    pub fn main_staged(&mut self, i: u32) {
        let p = self.p;
        let c = self.copy_of(i);
        if c >= p.batch {
            return;
        }
        let k = Self::k;
        let phase = self.w(self.r_loop(0), c);
        if phase >= k(2.0) && phase <= k(4.0) {
            return;
        }
        let mut iters = self.w(self.r_loop(1), c).to64() as u32;
        let mut polish = self.w(self.r_loop(2), c).to64() as u32;
        let mut converged = self.w(self.r_loop(3), c) != k(0.0);
        let mut norm = v2(self.w(self.r_loop(4), c), self.w(self.r_loop(5), c));
        let mut next = phase + k(1.0);
        let mut head = false;
        if phase == k(0.0) {
            iters = 0;
            polish = 0;
            converged = false;
            self.start(c);
            next = k(5.0);
        } else if phase == k(5.0) || phase == k(14.0) || phase == k(19.0) {
            self.mismatch_currents(c);
        } else if phase == k(6.0) || phase == k(20.0) {
            norm = self.mismatch_norm(c);
            head = true;
        } else if phase == k(11.0) {
            self.p_rhs(c);
        } else if phase == k(12.0) {
            self.solve_bp_lower(c);
        } else if phase == k(13.0) {
            self.solve_bp_upper(c);
            self.p_update(c);
        } else if phase == k(15.0) {
            norm = self.mismatch_norm(c);
            if norm.y <= k(1.0) && !converged {
                converged = true;
                if p.polish == 0 {
                    next = k(3.0);
                }
            }
        } else if phase == k(16.0) {
            self.q_rhs(c);
        } else if phase == k(17.0) {
            self.solve_bpp_lower(c);
        } else {
            self.solve_bpp_upper(c);
            self.q_update(c);
        }
        if head {
            next = k(11.0);
            if norm.y <= k(1.0) || converged {
                converged = true;
                if polish >= p.polish {
                    next = k(3.0);
                }
            } else if iters >= p.max_iter || norm.x > self.diverge {
                next = k(3.0);
            }
            if next == k(11.0) {
                if converged {
                    polish += 1;
                }
                iters += 1;
            }
        }
        let flag = |b: bool| if b { k(1.0) } else { k(0.0) };
        self.set_w(self.r_loop(0), c, next);
        self.set_w(self.r_loop(1), c, k(iters as f64));
        self.set_w(self.r_loop(2), c, k(polish as f64));
        self.set_w(self.r_loop(3), c, flag(converged));
        self.set_w(self.r_loop(4), c, norm.x);
        self.set_w(self.r_loop(5), c, norm.y);
        if next == k(3.0) {
            self.set_o(0, c, flag(converged));
            self.set_o(1, c, k((iters - polish) as f64));
            self.set_o(2, c, norm.x);
            self.set_w(self.r_cold(), c, flag(!converged));
        }
    }

    /// The shader's `results_staged` for invocation `c`.
    pub fn results_staged(&mut self, i: u32) {
        let k = Self::k;
        let c = self.copy_of(i);
        if c >= self.p.batch {
            return;
        }
        let phase = self.w(self.r_loop(0), c);
        if phase == k(3.0) {
            self.set_w(self.r_loop(0), c, k(4.0));
            self.branch_currents(c);
        } else if phase == k(4.0) {
            self.set_w(self.r_loop(0), c, k(2.0));
            self.write_tables(c);
        }
    }

    /// Every invocation of one dispatch of `main_staged`.
    pub fn dispatch_main_staged(&mut self) {
        for c in 0..self.p.batch {
            self.main_staged(c);
        }
    }

    /// Every invocation of one dispatch of `main`.
    pub fn dispatch_main(&mut self) {
        for c in 0..self.p.batch {
            self.main(c);
        }
    }

    /// One of the shader's test entry points (`test_<name>`) on every copy.
    pub fn run_test_entry(&mut self, entry: &str) {
        for c in 0..self.p.batch {
            match entry {
                "test_mismatch" => {
                    let norm = self.mismatch(c);
                    self.set_w(self.r_loop(4), c, norm.x);
                    self.set_w(self.r_loop(5), c, norm.y);
                }
                "test_p_half_step" => self.p_half_step(c),
                "test_q_half_step" => self.q_half_step(c),
                "test_solve_bp" => self.solve_bp(c),
                "test_solve_bpp" => self.solve_bpp(c),
                "test_tap_warm_start" => self.tap_warm_start(c),
                "test_injections" => self.injections(c),
                "test_write_results" => self.write_results(c),
                _ => panic!("no test entry point {entry}"),
            }
        }
    }
}

/// A plain per-copy buffer the host code writes into (`row * batch + copy`).
struct Buf<T> {
    data: Vec<T>,
    batch: usize,
}

impl<T: Real> Put for Buf<T> {
    fn put(&mut self, row: usize, c: usize, v: f64) {
        self.data[row * self.batch + c] = T::of(v);
    }
}

/// A batch solved by the port's `main` with buffers built by the GPU backend's host
/// code (`build_shared64`, `prepare_copies`) in `T` (f64: no f32 rounding anywhere).
pub(crate) struct PortBatch<T> {
    pub plan: Arc<Plan>,
    pub inputs: BatchInputs,
    layout: Layout,
    pub port: Port<T>,
    tap_pos: Vec<f64>,
    bpp_a: PatternValues,
    bpp_f: PatternValues,
    bpp_work: Vec<f64>,
    sets: super::BppSets,
    primed: bool,
    /// Run `main_staged` (one stage per dispatch, as on llvmpipe for large
    /// networks) instead of `main`.
    pub staged: bool,
}

impl<T: Real> PortBatch<T> {
    pub fn new(plan: Arc<Plan>, batch: usize) -> Self {
        let (idx, sh, mut layout) = build_shared64(&plan);
        layout.params.batch = batch as u32;
        let sh = sh.iter().map(|&x| T::of(x)).collect();
        let mut port = Port::new(layout.params, idx, sh, vec![], vec![]);
        port.pc = vec![T::of(0.0); layout.rows_pc * batch];
        // `batch` value sets of `rows_bpp` values (`BppSets`).
        port.bppv = vec![T::of(0.0); layout.rows_bpp * batch];
        port.work = vec![T::of(0.0); layout.rows_work * batch];
        port.outp = vec![T::of(0.0); layout.rows_out * batch];
        for c in 0..batch {
            port.work[layout.row_cold * batch + c] = T::of(1.0);
        }
        let zero = plan.bpp.zero_values();
        PortBatch {
            inputs: BatchInputs::from_network(&plan.net, batch),
            tap_pos: vec![f64::NAN; batch * plan.tap_trafos.len()],
            bpp_a: zero.clone(),
            bpp_f: zero,
            bpp_work: vec![0.0; plan.n_pq],
            sets: super::BppSets::new(batch),
            primed: false,
            staged: false,
            layout,
            port,
            plan,
        }
    }

    /// The f64 reference: the plan's own tolerance (not the GPU's f32 floor), the
    /// rotation unrounded and the mismatch noise floor scaled to f64's epsilon.
    pub fn exact(plan: Arc<Plan>, batch: usize) -> Self {
        let mut b = Self::new(plan.clone(), batch);
        b.port.tol = T::of(plan.options.tolerance_pu);
        b.port.rot = v2(T::of(plan.rot.re), T::of(plan.rot.im));
        let s = T::of(f64::EPSILON / f32::EPSILON as f64);
        let o = b.port.p.s_tol as usize;
        for v in &mut b.port.sh[o..o + plan.n_node] {
            *v = *v * s;
        }
        b
    }

    /// Prepare the inputs as the GPU backend does and run `main` (as many passes as
    /// the GPU would on a real device: one).
    pub fn solve(&mut self) -> Result<()> {
        self.inputs.validate(&self.plan.net)?;
        let batch = self.port.p.batch as usize;
        let mut shunt_step = vec![f64::NAN; batch * self.plan.net.shunts.len()];
        let mut host = HostState {
            setpoints: true,
            tap_pos: &mut self.tap_pos,
            shunt_step: &mut shunt_step,
            bpp_a: &mut self.bpp_a,
            bpp_f: &mut self.bpp_f,
            bpp_work: &mut self.bpp_work,
            taps: &mut super::TapCache::default(),
        };
        let mut pc = Buf {
            data: std::mem::take(&mut self.port.pc),
            batch,
        };
        let mut bppv = Buf {
            data: std::mem::take(&mut self.port.bppv),
            batch: self.layout.rows_bpp,
        };
        prepare_copies(
            &self.plan,
            &self.inputs,
            &self.layout,
            &mut host,
            (0, batch, self.primed),
            None,
            &mut pc,
            (&mut self.sets, &mut bppv),
        );
        self.primed = true;
        self.port.pc = pc.data;
        self.port.bppv = bppv.data;
        let r = self.layout.row_cold + 1;
        self.port.work[r * batch..(r + 1) * batch].fill(T::of(0.0));
        if self.staged {
            // Dispatches until every copy has finished iterating, then the two
            // result dispatches, as the host schedules them.
            let done = |p: &Port<T>| (0..batch).all(|c| p.work[r * batch + c] == T::of(3.0));
            while !done(&self.port) {
                self.port.dispatch_main_staged();
            }
            for _ in 0..2 {
                for c in 0..batch as u32 {
                    self.port.results_staged(c);
                }
            }
        } else {
            self.port.dispatch_main();
        }
        Ok(())
    }

    /// `vm_pu` of copy `c` from the results.
    pub fn vm(&self, c: usize) -> Vec<f64> {
        self.table(c, 3)
    }

    /// `va_degree` of copy `c` from the results.
    pub fn va(&self, c: usize) -> Vec<f64> {
        self.table(c, 3 + self.port.p.nb as usize)
    }

    /// `line_loading_percent` and `trafo_loading_percent` of copy `c`, one vector.
    pub fn loading(&self, c: usize) -> Vec<f64> {
        let (nb, nl, nt) = (
            self.port.p.nb as usize,
            self.port.p.nl as usize,
            self.port.p.nt as usize,
        );
        let mut v = self.rows(c, 3 + 2 * nb + 3 * nl, nl);
        v.extend(self.rows(c, 3 + 2 * nb + 4 * nl, nt));
        v
    }

    fn table(&self, c: usize, o: usize) -> Vec<f64> {
        self.rows(c, o, self.port.p.nb as usize)
    }

    fn rows(&self, c: usize, o: usize, n: usize) -> Vec<f64> {
        let b = self.port.p.batch as usize;
        (0..n)
            .map(|k| self.port.outp[(o + k) * b + c].to64())
            .collect()
    }
}

impl GpuBatch {
    /// Prepare and upload the inputs of the next solve (as `solve` does before its
    /// dispatch), without solving: tap moves since the last solve are in `pc`.
    pub(crate) fn stage(&mut self) -> Result<()> {
        self.inputs.validate(&self.plan.net)?;
        for ci in 0..self.chunks.len() {
            self.prepare(ci, None);
        }
        for ch in &mut self.chunks {
            ch.pc.upload(&self.ctx.queue, &ch.pc_buf);
            ch.bpp.upload(&self.ctx.queue, &ch.bpp_buf);
        }
        Ok(())
    }

    fn read(&self, buf: &wgpu::Buffer) -> Result<Vec<f32>> {
        let device = &self.ctx.device;
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("fdpf probe readback"),
            size: buf.size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, 0, &staging, 0, buf.size());
        self.ctx.queue.submit([enc.finish()]);
        staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(e.to_string()))?;
        let v = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Gpu(e.to_string()))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        Ok(v)
    }

    /// The single chunk's buffers as a `Port<f32>`: `Params`, `idx`, `sh` as built
    /// for the upload, `pc`/`bppv` from the host mirrors, `work`/`outp` read back.
    pub(crate) fn port(&self) -> Result<Port<f32>> {
        assert_eq!(self.chunks.len(), 1, "probe a batch of one chunk");
        assert_eq!(
            self.plan.options.gpu_precision,
            super::GpuPrecision::F32,
            "the port mirrors the f32 shader"
        );
        let ch = &self.chunks[0];
        let (idx, sh, _) = build_shared(&self.plan);
        let mut p = self.layout.params;
        p.batch = ch.len as u32;
        let mut port = Port::new(p, idx, sh, ch.pc.data.clone(), ch.bpp.data.clone());
        let b = ch.len;
        port.work = self.read(&ch.work_buf)?[..self.layout.rows_work * b].to_vec();
        port.outp = self.read(&ch.out_buf)?[..self.layout.rows_out * b].to_vec();
        Ok(port)
    }

    /// Overwrite the single chunk's `work` buffer.
    pub(crate) fn write_work(&self, work: &[f32]) {
        let ch = &self.chunks[0];
        self.ctx
            .queue
            .write_buffer(&ch.work_buf, 0, bytemuck::cast_slice(work));
    }

    /// One dispatch of the shader's entry point `entry` (`test_mismatch`, `test_p_half_step`, `test_q_half_step`,
    /// `test_solve_bp`, `test_solve_bpp`, `test_tap_warm_start`, `test_write_results`)
    /// on the single chunk's current buffers; waits for it.
    pub(crate) fn probe(&self, entry: &str) -> Result<()> {
        let device = &self.ctx.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("fdpf.wgsl"),
            source: wgpu::ShaderSource::Wgsl(super::FDPF_WGSL.into()),
        });
        let bgl = bind_group_layout(device);
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("fdpf probe"),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        // The chunk's own bind group (its layout equals `bgl`).
        let ch = &self.chunks[0];
        let bg = &ch.bind_group;
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups((ch.len as u32).div_ceil(super::WORKGROUP), 1, 1);
        }
        self.ctx.queue.submit([enc.finish()]);
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
