// Batched rotated fast-decoupled power flow, one invocation per copy.
//
// Mirrors `solve_copy` in src/powerflow/cpu.rs step for step (mismatch, P half-step
// B'·Δθ = Re(ΔS·e^{jψ})/|V|, Q half-step B''·Δ|V| = Im(ΔS·e^{jψ})/|V|, convergence
// checked after each half-step), then writes the result tables of `copy_results`.
//
// f32 accuracy: node voltages are kept as deviations from a per-node reference frame,
// V_i = e^{jφ_i}·W_i with W_i = (1+u_i)·e^{jθ_i}, u = |V|−1 and φ_i the no-load
// angle, so θ and W−1 are small. Branch currents are formed from voltage
// differences, never as Y·V, so no large terms cancel:
//   D   = Wf/r − e^{−jδ}·Wt = (ρ − e^{−jδ}) + ρ·dWf − e^{−jδ}·dWt   (ρ = 1/r)
//   J_f = ρ·ys·D + ρ²·yh·Wf,   J_t = −ys·e^{jδ}·D + yh·Wt
// with J = I·e^{−jφ} (local frame), ys the series admittance, yh half the shunt
// admittance, r the off-nominal ratio and δ = φ_f − shift − φ_t (≈ 0).
// The result pass forms the reported branch currents by Kirchhoff's law on a
// spanning tree instead (`branch_currents`): across a near-zero impedance even
// these differences carry eps·|ys|·|dW| of noise.
//
// Layout: everything per copy is batch-interleaved, `row * batch + copy`.

struct Params {
    batch: u32,
    n_pq: u32,
    n_node: u32,
    n_br: u32,
    n_fixed: u32,
    nb: u32,
    nl: u32,
    nt: u32,
    ne: u32,
    max_iter: u32,
    polish: u32,
    tol: f32,
    rot_re: f32,
    rot_im: f32,
    diverge: f32,
    // Offsets into `idx`.
    i_br: u32,
    i_bp_lptr: u32,
    i_bp_lcol: u32,
    i_bp_uptr: u32,
    i_bp_ucol: u32,
    i_bpp_lptr: u32,
    i_bpp_lcol: u32,
    i_bpp_uptr: u32,
    i_bpp_ucol: u32,
    i_bus: u32,
    i_line: u32,
    i_trafo: u32,
    i_ext: u32,
    nnz_bpp_l: u32,
    nnz_bpp_u: u32,
    // Offsets into `sh`.
    s_br: u32,
    s_bp_l: u32,
    s_bp_u: u32,
    s_bp_d: u32,
    s_u0: u32,
    s_phi: u32,
    s_line: u32,
    s_trafo: u32,
    s_ext: u32,
    sn: f32,
    // Per-node f32 noise-floor coefficient of the mismatch (× (|dW| + 0.01)).
    s_tol: u32,
    // FDPF iterations one dispatch may run (lavapipe caps loop trips per invocation).
    pass_iters: u32,
    // Offsets into `idx`: per tap-changing trafo, the nodes its moves warm-start
    // (CSR: n_tap + 1 pointers, then the nodes).
    i_down_ptr: u32,
    i_down: u32,
    // Row in `work` of the PQ nodes' ZIP parts (S_i re, im, S_z re, im; NONE: no ZIP loads).
    w_zip: u32,
    // Offset into `idx` of each PQ-numbered node's row among the PV set-points
    // (NONE: a PQ node); row in `pc` of the PV set-points (|V| − 1; NONE: no PV nodes).
    i_pv: u32,
    p_pv: u32,
    // Gen nodes (offset into `idx`) whose Q balance is written after the ext_grid rows.
    n_site: u32,
    i_site: u32,
    // Offsets into `idx`: the order in which `write_results` forms branch currents
    // (n_br codes 4·k + mode) and each branch's result slot (line l: l, trafo t:
    // nl + t, NONE otherwise).
    i_order: u32,
    i_slot: u32,
    // Row in `pc` of each copy's B'' value set (its number, a whole float) and
    // values per set in `bppv` (L, U, 1/diag of the PQ rows).
    p_bset: u32,
    n_bpp: u32,
    // Node injections from the set-points (`injections`): per node two segments of
    // terms (loads, sgens, storage; then gens) as 2·n_node + 1 pointers at
    // `i_inj_ptr`, each term three `pc` rows at `i_inj` (P, Q or NONE, scaling or
    // NONE) and its factor at `s_inj`; the constant part of every node at `s_sbase`
    // (re, then im); the PQ nodes' ZIP shares at `s_zip` (4 each); the row in
    // `work` of S_spec (re, then im); the row in `pc` of a released PV node's held
    // gens' Q (per PV set-point row).
    i_inj_ptr: u32,
    i_inj: u32,
    s_inj: u32,
    s_sbase: u32,
    s_zip: u32,
    w_s: u32,
    p_pvq: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
// Shared integer data: branch ends, factor patterns, element → node/branch maps.
@group(0) @binding(1) var<storage, read> idx: array<u32>;
// Shared f32 data: fixed branches, B' factors, reference frame, result scales.
@group(0) @binding(2) var<storage, read> sh: array<f32>;
// Per-copy inputs: node shunts, tap-changing branches, warm-start factors, PV
// set-points, the set-points of loads, sgens, storage and gens.
@group(0) @binding(3) var<storage, read> pc: array<f32>;
// B'' factor values (L, U, 1/diag) by value set, `n_bpp` each: copies whose
// taps stand alike share one (see `bpp_set`).
@group(0) @binding(4) var<storage, read> bppv: array<f32>;
// Per-copy state and scratch: u, θ, dW, J, x, cold flag, loop state, S_spec and
// its ZIP parts.
@group(0) @binding(5) var<storage, read_write> work: array<f32>;
// Per-copy status and result tables.
@group(0) @binding(6) var<storage, read_write> outp: array<f32>;
// The copies a solve of some copies only visits (`copy_of`): their number,
// then their indices; NONE as the number: every copy.
@group(0) @binding(7) var<storage, read> list: array<u32>;

const NONE: u32 = 0xffffffffu;
const DEG: f32 = 57.29577951308232;
const F9: u32 = 9u;
// A PV set-point at or above this marks the node released to PQ (Q limits).
const PV_RELEASED: f32 = 1e20;

fn at(row: u32, c: u32) -> u32 {
    return row * P.batch + c;
}

// The copy invocation `i` of a solving entry point works on: `i` itself, or
// the `i`-th listed copy (NONE past the list's end, which the entry points
// skip as they skip `i >= batch`).
fn copy_of(i: u32) -> u32 {
    let n = list[0];
    if n == NONE {
        return i;
    }
    if i >= n {
        return NONE;
    }
    return list[1u + i];
}

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

fn conj(a: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x, -a.y);
}

// Work rows.
fn r_u(i: u32) -> u32 { return i; }
fn r_th(i: u32) -> u32 { return P.n_node + i; }
fn r_dwr(i: u32) -> u32 { return 2u * P.n_node + i; }
fn r_dwi(i: u32) -> u32 { return 3u * P.n_node + i; }
fn r_jr(i: u32) -> u32 { return 4u * P.n_node + i; }
fn r_ji(i: u32) -> u32 { return 5u * P.n_node + i; }
fn r_x(i: u32) -> u32 { return 6u * P.n_node + i; }
fn r_cold() -> u32 { return 6u * P.n_node + P.n_pq; }
// Loop state kept between dispatches: phase (0 start, 1 iterating, 2 done),
// iterations, polish iterations, converged, raw and scaled mismatch.
fn r_loop(k: u32) -> u32 { return r_cold() + 1u + k; }

// `(cos θ − 1, sin θ)` accurate to f32 rounding for small θ (the usual case: θ is
// relative to the no-load angle); the built-ins otherwise.
fn cosm1_sin(th: f32) -> vec2<f32> {
    if abs(th) < 0.785 {
        let t2 = th * th;
        let cm1 = -t2 * (0.5 - t2 * (1.0 / 24.0 - t2 * (1.0 / 720.0 - t2 * (1.0 / 40320.0 - t2 * (1.0 / 3628800.0)))));
        let s = th * (1.0 - t2 * (1.0 / 6.0 - t2 * (1.0 / 120.0 - t2 * (1.0 / 5040.0 - t2 * (1.0 / 362880.0 - t2 * (1.0 / 39916800.0))))));
        return vec2<f32>(cm1, s);
    }
    let h = sin(0.5 * th);
    return vec2<f32>(-2.0 * h * h, sin(th));
}

struct Branch {
    ys: vec2<f32>,
    yh: vec2<f32>,
    rho: f32,
    c0: vec2<f32>,
    e: vec2<f32>,
}

// Branch k: fixed branches are shared, tap-changing ones are per copy.
fn branch(k: u32, c: u32) -> Branch {
    if k < P.n_fixed {
        let o = P.s_br + F9 * k;
        return Branch(vec2<f32>(sh[o], sh[o + 1u]), vec2<f32>(sh[o + 2u], sh[o + 3u]), sh[o + 4u], vec2<f32>(sh[o + 5u], sh[o + 6u]), vec2<f32>(sh[o + 7u], sh[o + 8u]));
    }
    let r = 2u * P.n_node + F9 * (k - P.n_fixed);
    return Branch(
        vec2<f32>(pc[at(r, c)], pc[at(r + 1u, c)]),
        vec2<f32>(pc[at(r + 2u, c)], pc[at(r + 3u, c)]),
        pc[at(r + 4u, c)],
        vec2<f32>(pc[at(r + 5u, c)], pc[at(r + 6u, c)]),
        vec2<f32>(pc[at(r + 7u, c)], pc[at(r + 8u, c)]),
    );
}

fn dw(i: u32, c: u32) -> vec2<f32> {
    return vec2<f32>(work[at(r_dwr(i), c)], work[at(r_dwi(i), c)]);
}

fn cur(i: u32, c: u32) -> vec2<f32> {
    return vec2<f32>(work[at(r_jr(i), c)], work[at(r_ji(i), c)]);
}

struct Flow {
    f: u32,
    t: u32,
    jf: vec2<f32>,
    jt: vec2<f32>,
}

// Currents at both ends of branch k (local frames), from the stored dW.
fn branch_flow(k: u32, c: u32) -> Flow {
    let f = idx[P.i_br + 2u * k];
    let t = idx[P.i_br + 2u * k + 1u];
    let b = branch(k, c);
    let dwf = dw(f, c);
    let dwt = dw(t, c);
    let d = b.c0 + b.rho * dwf - cmul(b.e, dwt);
    let wf = vec2<f32>(1.0, 0.0) + dwf;
    let wt = vec2<f32>(1.0, 0.0) + dwt;
    let jf = b.rho * cmul(b.ys, d) + (b.rho * b.rho) * cmul(b.yh, wf);
    let jt = cmul(b.yh, wt) - cmul(cmul(b.ys, conj(b.e)), d);
    return Flow(f, t, jf, jt);
}

// Tap-move warm start (cpu.rs `Kernel::prepare`): the host uploads g = f − 1 per
// tap-changing trafo, f the change of its ratio since this copy's last solve (0
// where it did not move); |V| of the nodes behind it goes to (1+u)·f, i.e.
// u ← u·f + (f − 1) = u + g·(1 + u), without rounding f near 1. Angles stay.
fn tap_warm_start(c: u32) {
    let n_tap = P.n_br - P.n_fixed;
    let r0 = 2u * P.n_node + F9 * n_tap;
    for (var j = 0u; j < n_tap; j++) {
        let g = pc[at(r0 + j, c)];
        if g != 0.0 {
            for (var k = idx[P.i_down_ptr + j]; k < idx[P.i_down_ptr + j + 1u]; k++) {
                let r = at(r_u(idx[P.i_down + k]), c);
                let u = work[r];
                work[r] = u + g * (1.0 + u);
            }
        }
    }
}

// Term t of the node injections for copy c: its factor times (P, Q) times the
// scaling, from the copy's set-point rows.
fn inj_term(t: u32, c: u32) -> vec2<f32> {
    let o = P.i_inj + 3u * t;
    var v = vec2<f32>(pc[at(idx[o], c)], 0.0);
    if idx[o + 1u] != NONE {
        v.y = pc[at(idx[o + 1u], c)];
    }
    if idx[o + 2u] != NONE {
        v *= pc[at(idx[o + 2u], c)];
    }
    return v * sh[P.s_inj + t];
}

// Copy c's specified injections in p.u. from its set-points (injections.rs
// `copy_specified`): the constant part, loads, sgens and storage; from these the
// PQ nodes' ZIP parts; then the gens' P, and at a released PV node its held gens'
// Q. Every solve starts with it, so the host uploads set-points only.
fn injections(c: u32) {
    let nn = P.n_node;
    for (var i = 0u; i < nn; i++) {
        var s = vec2<f32>(sh[P.s_sbase + i], sh[P.s_sbase + nn + i]);
        let o = P.i_inj_ptr + 2u * i;
        let mid = idx[o + 1u];
        for (var t = idx[o]; t < mid; t++) {
            s += inj_term(t, c);
        }
        if P.w_zip != NONE && i < P.n_pq {
            let n = P.n_pq;
            let z = P.s_zip + 4u * i;
            work[at(P.w_zip + i, c)] = s.x * sh[z];
            work[at(P.w_zip + n + i, c)] = s.y * sh[z + 2u];
            work[at(P.w_zip + 2u * n + i, c)] = s.x * sh[z + 1u];
            work[at(P.w_zip + 3u * n + i, c)] = s.y * sh[z + 3u];
        }
        for (var t = mid; t < idx[o + 2u]; t++) {
            s += inj_term(t, c);
        }
        let j = pv_row(i);
        if j != NONE && !pv_held(i, c) {
            s.y += pc[at(P.p_pvq + j, c)];
        }
        work[at(P.w_s + i, c)] = s.x;
        work[at(P.w_s + nn + i, c)] = s.y;
    }
}

fn s_spec(i: u32, c: u32) -> vec2<f32> {
    return vec2<f32>(work[at(P.w_s + i, c)], work[at(P.w_s + P.n_node + i, c)]);
}

// S_spec at PQ node i: with ZIP loads S_p + S_i·|V| + S_z·|V|², formed from
// u = |V| − 1 as s + u·(S_i + S_z·(2 + u)) (s = S_spec at |V| = 1), so nothing
// cancels. Slack nodes keep s (pandapower's ext_grid results use the nominal load).
fn s_spec_v(i: u32, c: u32) -> vec2<f32> {
    var s = s_spec(i, c);
    if P.w_zip != NONE && i < P.n_pq {
        let n = P.n_pq;
        let u = work[at(r_u(i), c)];
        let si = vec2<f32>(work[at(P.w_zip + i, c)], work[at(P.w_zip + n + i, c)]);
        let sz = vec2<f32>(work[at(P.w_zip + 2u * n + i, c)], work[at(P.w_zip + 3u * n + i, c)]);
        s += u * (si + sz * (2.0 + u));
    }
    return s;
}

// Row of PQ-numbered node i among the PV set-points, NONE for a PQ node.
fn pv_row(i: u32) -> u32 {
    if P.p_pv == NONE || i >= P.n_pq {
        return NONE;
    }
    return idx[P.i_pv + i];
}

// Whether PQ-numbered node i holds its voltage in copy c: a PV node whose
// set-point row is not released (Q limits: the host writes PV_RELEASED there
// for a PV node turned PQ, its gens held at a limit in S_spec).
fn pv_held(i: u32, c: u32) -> bool {
    let j = pv_row(i);
    return j != NONE && pc[at(P.p_pv + j, c)] < PV_RELEASED;
}

// ΔS_i = S_spec − W·conj(J) (frame-independent).
fn delta_s(i: u32, c: u32) -> vec2<f32> {
    let w = vec2<f32>(1.0, 0.0) + dw(i, c);
    return s_spec_v(i, c) - cmul(w, conj(cur(i, c)));
}

// Voltages from the state, currents into every node; returns max(|ΔP|, |ΔQ|) over
// PQ nodes, raw and scaled by each node's tolerance (converged when the latter ≤ 1).
fn mismatch(c: u32) -> vec2<f32> {
    mismatch_currents(c);
    return mismatch_norm(c);
}

// dW and the node currents J of the current state (`mismatch`'s first half).
fn mismatch_currents(c: u32) {
    let n_node = P.n_node;
    for (var i = 0u; i < n_node; i++) {
        let u = work[at(r_u(i), c)];
        let cs = cosm1_sin(work[at(r_th(i), c)]);
        // (1+u)·e^{jθ} − 1 = u·cos θ + (cos θ − 1) + j(1+u)·sin θ
        let d = vec2<f32>(u * (1.0 + cs.x) + cs.x, (1.0 + u) * cs.y);
        work[at(r_dwr(i), c)] = d.x;
        work[at(r_dwi(i), c)] = d.y;
        let y = vec2<f32>(pc[at(i, c)], pc[at(n_node + i, c)]);
        let j = cmul(y, vec2<f32>(1.0, 0.0) + d);
        work[at(r_jr(i), c)] = j.x;
        work[at(r_ji(i), c)] = j.y;
    }
    for (var k = 0u; k < P.n_br; k++) {
        let fl = branch_flow(k, c);
        work[at(r_jr(fl.f), c)] += fl.jf.x;
        work[at(r_ji(fl.f), c)] += fl.jf.y;
        work[at(r_jr(fl.t), c)] += fl.jt.x;
        work[at(r_ji(fl.t), c)] += fl.jt.y;
    }
}

// max(|ΔP|, |ΔQ|) over PQ nodes from dW and J, raw and scaled (`mismatch`'s second half).
fn mismatch_norm(c: u32) -> vec2<f32> {
    var worst = vec2<f32>(0.0, 0.0);
    for (var i = 0u; i < P.n_pq; i++) {
        let ds = delta_s(i, c);
        // A PV node's ΔQ is its gens' free Q: left out (cpu.rs `Kernel::mismatch`).
        var m = abs(ds.x);
        if !pv_held(i, c) {
            m = max(m, abs(ds.y));
        }
        let tol = max(P.tol, sh[P.s_tol + i] * (length(dw(i, c)) + 0.01));
        worst = max(worst, vec2<f32>(m, m / tol));
        if !(m < 1e30) {
            // NaN or infinite: diverged.
            worst = vec2<f32>(1e30, 1e30);
        }
    }
    return worst;
}

// x ← B'⁻¹·x with the shared factors (no pivoting: the static pattern's order).
fn solve_bp(c: u32) {
    solve_bp_lower(c);
    solve_bp_upper(c);
}

// The forward (L) and backward (U, 1/diag) halves of `solve_bp`.
fn solve_bp_lower(c: u32) {
    let n = P.n_pq;
    for (var i = 0u; i < n; i++) {
        var s = work[at(r_x(i), c)];
        for (var k = idx[P.i_bp_lptr + i]; k < idx[P.i_bp_lptr + i + 1u]; k++) {
            s -= sh[P.s_bp_l + k] * work[at(r_x(idx[P.i_bp_lcol + k]), c)];
        }
        work[at(r_x(i), c)] = s;
    }
}

fn solve_bp_upper(c: u32) {
    let n = P.n_pq;
    for (var ii = 0u; ii < n; ii++) {
        let i = n - 1u - ii;
        var s = work[at(r_x(i), c)];
        for (var k = idx[P.i_bp_uptr + i]; k < idx[P.i_bp_uptr + i + 1u]; k++) {
            s -= sh[P.s_bp_u + k] * work[at(r_x(idx[P.i_bp_ucol + k]), c)];
        }
        work[at(r_x(i), c)] = s * sh[P.s_bp_d + i];
    }
}

// x ← B''⁻¹·x with this copy's factor values (no permutation).
fn solve_bpp(c: u32) {
    solve_bpp_lower(c);
    solve_bpp_upper(c);
}

// Offset in `bppv` of this copy's B'' factor values: the value set numbered
// in its `pc` row `p_bset`.
fn bpp_set(c: u32) -> u32 {
    return u32(pc[at(P.p_bset, c)]) * P.n_bpp;
}

// The forward and backward halves of `solve_bpp`.
fn solve_bpp_lower(c: u32) {
    let n = P.n_pq;
    let b0 = bpp_set(c);
    for (var i = 0u; i < n; i++) {
        var s = work[at(r_x(i), c)];
        for (var k = idx[P.i_bpp_lptr + i]; k < idx[P.i_bpp_lptr + i + 1u]; k++) {
            s -= bppv[b0 + k] * work[at(r_x(idx[P.i_bpp_lcol + k]), c)];
        }
        work[at(r_x(i), c)] = s;
    }
}

fn solve_bpp_upper(c: u32) {
    let n = P.n_pq;
    let ou = P.nnz_bpp_l;
    let od = P.nnz_bpp_l + P.nnz_bpp_u;
    let b0 = bpp_set(c);
    for (var ii = 0u; ii < n; ii++) {
        let i = n - 1u - ii;
        var s = work[at(r_x(i), c)];
        for (var k = idx[P.i_bpp_uptr + i]; k < idx[P.i_bpp_uptr + i + 1u]; k++) {
            s -= bppv[b0 + ou + k] * work[at(r_x(idx[P.i_bpp_ucol + k]), c)];
        }
        work[at(r_x(i), c)] = s * bppv[b0 + od + i];
    }
}

fn p_half_step(c: u32) {
    p_rhs(c);
    solve_bp(c);
    p_update(c);
}

// x = Re(ΔS·e^{jψ})/|V| (PV nodes: ΔQ left out).
fn p_rhs(c: u32) {
    let rot = vec2<f32>(P.rot_re, P.rot_im);
    for (var i = 0u; i < P.n_pq; i++) {
        var ds = delta_s(i, c);
        if pv_held(i, c) {
            ds.y = 0.0;
        }
        work[at(r_x(i), c)] = cmul(ds, rot).x / (1.0 + work[at(r_u(i), c)]);
    }
}

fn p_update(c: u32) {
    for (var i = 0u; i < P.n_pq; i++) {
        work[at(r_th(i), c)] += work[at(r_x(i), c)];
    }
}

fn q_half_step(c: u32) {
    q_rhs(c);
    solve_bpp(c);
    q_update(c);
}

fn q_rhs(c: u32) {
    let rot = vec2<f32>(P.rot_re, P.rot_im);
    for (var i = 0u; i < P.n_pq; i++) {
        // PV nodes: 0, which their identity rows of B'' keep (Δ|V| = 0).
        var x: f32 = 0.0;
        if !pv_held(i, c) {
            x = cmul(delta_s(i, c), rot).y / (1.0 + work[at(r_u(i), c)]);
        }
        work[at(r_x(i), c)] = x;
    }
}

fn q_update(c: u32) {
    for (var i = 0u; i < P.n_pq; i++) {
        work[at(r_u(i), c)] += work[at(r_x(i), c)];
    }
}

// Current injected at node i by its loads and generation, conj(S_spec/W) (local frame).
fn injected(i: u32, c: u32) -> vec2<f32> {
    let w = vec2<f32>(1.0, 0.0) + dw(i, c);
    let s = s_spec_v(i, c);
    return conj(cmul(s, conj(w))) / dot(w, w);
}

// Branch currents of the converged state, accurate to f32 rounding of the currents
// themselves. From voltages (`branch_flow`), the series current ys·D of a branch
// carries ≈ eps·|ys|·|dW| of rounding noise, which swamps the current of a
// near-zero impedance (a regulator's jumper line: 0.05 pp of loading). So only the
// branches of meshes and of paths between slack and PV nodes (mode 0) are formed
// from voltages; the others are peeled off from the leaves inwards (host order):
// at its peel node (a PQ node whose other branches are done) the branch carries
// what the node's injection leaves, J = conj(S/W) − y_sh·W − Σ others (mode 1: at
// the from end, 2: at the to end), and its other end follows from the branch's own
// relation. The node currents (rows J) are rebuilt as these sums: the slack and
// gen nodes' balances use them.
fn branch_currents(c: u32) {
    let nn = P.n_node;
    for (var i = 0u; i < nn; i++) {
        let y = vec2<f32>(pc[at(i, c)], pc[at(nn + i, c)]);
        let j = cmul(y, vec2<f32>(1.0, 0.0) + dw(i, c));
        work[at(r_jr(i), c)] = j.x;
        work[at(r_ji(i), c)] = j.y;
    }
    let nl = P.nl;
    let o_lp = 3u + 2u * P.nb;
    let o_tl = o_lp + 4u * nl;
    for (var q = 0u; q < P.n_br; q++) {
        let code = idx[P.i_order + q];
        let k = code >> 2u;
        let mode = code & 3u;
        let f = idx[P.i_br + 2u * k];
        let t = idx[P.i_br + 2u * k + 1u];
        var jf: vec2<f32>;
        var jt: vec2<f32>;
        if mode == 0u {
            let fl = branch_flow(k, c);
            jf = fl.jf;
            jt = fl.jt;
        } else {
            let b = branch(k, c);
            let wf = vec2<f32>(1.0, 0.0) + dw(f, c);
            let wt = vec2<f32>(1.0, 0.0) + dw(t, c);
            let hf = (b.rho * b.rho) * cmul(b.yh, wf);
            let ht = cmul(b.yh, wt);
            if mode == 1u {
                jf = injected(f, c) - cur(f, c);
                // ρ·ys·D = J_f − ρ²·yh·W_f, J_t = yh·W_t − e*·ys·D
                jt = ht - cmul(conj(b.e), jf - hf) / b.rho;
            } else {
                jt = injected(t, c) - cur(t, c);
                // ys·D = e·(yh·W_t − J_t), J_f = ρ·ys·D + ρ²·yh·W_f
                jf = b.rho * cmul(b.e, ht - jt) + hf;
            }
        }
        work[at(r_jr(f), c)] += jf.x;
        work[at(r_ji(f), c)] += jf.y;
        work[at(r_jr(t), c)] += jt.x;
        work[at(r_ji(t), c)] += jt.y;
        // A line's or trafo's currents wait in its result rows (read back below).
        let slot = idx[P.i_slot + k];
        if slot != NONE {
            var r = array<u32, 4>(o_lp + slot, o_lp + nl + slot, o_lp + 2u * nl + slot, o_lp + 3u * nl + slot);
            if slot >= nl {
                let tt = slot - nl;
                r = array<u32, 4>(o_tl + tt, o_tl + P.nt + tt, o_tl + 2u * P.nt + tt, o_tl + 3u * P.nt + tt);
            }
            outp[at(r[0], c)] = jf.x;
            outp[at(r[1], c)] = jf.y;
            outp[at(r[2], c)] = jt.x;
            outp[at(r[3], c)] = jt.y;
        }
    }
}

fn write_results(c: u32) {
    branch_currents(c);
    write_tables(c);
}

// The result tables from the state and the branch currents (`write_results`'
// second half).
fn write_tables(c: u32) {
    let nb = P.nb;
    let nl = P.nl;
    let nt = P.nt;
    let o_va = 3u + nb;
    let o_lp = 3u + 2u * nb;
    let o_lq = o_lp + nl;
    let o_li = o_lq + nl;
    let o_ll = o_li + nl;
    // Trafo rows: loading, P and Q at the HV side, P and Q at the LV side.
    let o_tl = o_ll + nl;
    let o_tp = o_tl + nt;
    let o_tq = o_tp + nt;
    let o_tpl = o_tq + nt;
    let o_tql = o_tpl + nt;
    let o_ep = o_tql + nt;
    let o_eq = o_ep + P.ne;
    for (var b = 0u; b < nb; b++) {
        let i = idx[P.i_bus + b];
        var vm: f32 = 0.0;
        var va: f32 = 0.0;
        if i != NONE {
            vm = 1.0 + work[at(r_u(i), c)];
            va = sh[P.s_phi + i] + work[at(r_th(i), c)] * DEG;
            va -= 360.0 * round(va / 360.0);
        }
        outp[at(3u + b, c)] = vm;
        outp[at(o_va + b, c)] = va;
    }
    for (var l = 0u; l < nl; l++) {
        let k = idx[P.i_line + l];
        var s = vec2<f32>(0.0, 0.0);
        var i_ka: f32 = 0.0;
        var loading: f32 = 0.0;
        if k != NONE {
            let jf = vec2<f32>(outp[at(o_lp + l, c)], outp[at(o_lq + l, c)]);
            let jt = vec2<f32>(outp[at(o_li + l, c)], outp[at(o_ll + l, c)]);
            let wf = vec2<f32>(1.0, 0.0) + dw(idx[P.i_br + 2u * k], c);
            s = cmul(wf, conj(jf)) * P.sn;
            let o = P.s_line + 3u * l;
            i_ka = max(length(jf) * sh[o], length(jt) * sh[o + 1u]);
            loading = i_ka * sh[o + 2u];
        }
        outp[at(o_lp + l, c)] = s.x;
        outp[at(o_lq + l, c)] = s.y;
        outp[at(o_li + l, c)] = i_ka;
        outp[at(o_ll + l, c)] = loading;
    }
    for (var t = 0u; t < nt; t++) {
        let k = idx[P.i_trafo + t];
        var loading: f32 = 0.0;
        var s_hv = vec2<f32>(0.0, 0.0);
        var s_lv = vec2<f32>(0.0, 0.0);
        if k != NONE {
            let jf = vec2<f32>(outp[at(o_tl + t, c)], outp[at(o_tp + t, c)]);
            let jt = vec2<f32>(outp[at(o_tq + t, c)], outp[at(o_tpl + t, c)]);
            let wf = vec2<f32>(1.0, 0.0) + dw(idx[P.i_br + 2u * k], c);
            let wt = vec2<f32>(1.0, 0.0) + dw(idx[P.i_br + 2u * k + 1u], c);
            let o = P.s_trafo + 2u * t;
            loading = max(length(jf) * sh[o], length(jt) * sh[o + 1u]);
            // Power into the trafo at each side (pandapower's p_hv_mw, p_lv_mw).
            s_hv = cmul(wf, conj(jf)) * P.sn;
            s_lv = cmul(wt, conj(jt)) * P.sn;
        }
        outp[at(o_tl + t, c)] = loading;
        outp[at(o_tp + t, c)] = s_hv.x;
        outp[at(o_tq + t, c)] = s_hv.y;
        outp[at(o_tpl + t, c)] = s_lv.x;
        outp[at(o_tql + t, c)] = s_lv.y;
    }
    for (var e = 0u; e < P.ne; e++) {
        let i = idx[P.i_ext + e];
        var s = vec2<f32>(0.0, 0.0);
        if i != NONE {
            s = -delta_s(i, c) * sh[P.s_ext + e];
        }
        outp[at(o_ep + e, c)] = s.x;
        outp[at(o_eq + e, c)] = s.y;
    }
    // Gen nodes: Q balance Im(W·conj(J)) − Im(S_spec) in MVar (the host splits it).
    let o_gq = o_eq + P.ne;
    for (var k = 0u; k < P.n_site; k++) {
        let i = idx[P.i_site + k];
        let w = vec2<f32>(1.0, 0.0) + dw(i, c);
        outp[at(o_gq + k, c)] = (cmul(w, conj(cur(i, c))).y - s_spec(i, c).y) * P.sn;
    }
}

// A new solve: the injections, slack voltages, the cold start or the tap-move
// warm start, PV set-points.
fn start(c: u32) {
    injections(c);
    // Slack nodes: fixed voltage (θ is relative to the slack's own angle).
    for (var i = P.n_pq; i < P.n_node; i++) {
        work[at(r_u(i), c)] = sh[P.s_u0 + i];
        work[at(r_th(i), c)] = 0.0;
    }
    if work[at(r_cold(), c)] != 0.0 {
        // No-load start: θ = 0 in the no-load frame.
        for (var i = 0u; i < P.n_pq; i++) {
            work[at(r_u(i), c)] = sh[P.s_u0 + i];
            work[at(r_th(i), c)] = 0.0;
        }
    } else {
        tap_warm_start(c);
    }
    // PV nodes at this copy's set-points (angle kept), cold or warm.
    if P.p_pv != NONE {
        for (var i = 0u; i < P.n_pq; i++) {
            if pv_held(i, c) {
                work[at(r_u(i), c)] = pc[at(P.p_pv + pv_row(i), c)];
            }
        }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = copy_of(gid.x);
    if c >= P.batch {
        return;
    }
    let phase = work[at(r_loop(0u), c)];
    if phase == 2.0 {
        return;
    }
    var iters = 0u;
    var polish = 0u;
    var converged = false;
    var norm: vec2<f32>;
    if phase == 0.0 {
        start(c);
        norm = mismatch(c);
    } else {
        // Resume: dW and J are still those of the current state.
        iters = u32(work[at(r_loop(1u), c)]);
        polish = u32(work[at(r_loop(2u), c)]);
        converged = work[at(r_loop(3u), c)] != 0.0;
        norm = vec2<f32>(work[at(r_loop(4u), c)], work[at(r_loop(5u), c)]);
    }
    var finished = false;
    var budget = P.pass_iters;
    loop {
        if norm.y <= 1.0 || converged {
            // f32: a few more iterations below the tolerance tighten the answer.
            converged = true;
            if polish >= P.polish {
                finished = true;
                break;
            }
        } else if iters >= P.max_iter || norm.x > P.diverge {
            finished = true;
            break;
        }
        if budget == 0u {
            break;
        }
        budget -= 1u;
        if converged {
            polish += 1u;
        }
        iters += 1u;
        p_half_step(c);
        norm = mismatch(c);
        if norm.y <= 1.0 && !converged {
            converged = true;
            if P.polish == 0u {
                finished = true;
                break;
            }
        }
        q_half_step(c);
        norm = mismatch(c);
    }
    if !finished {
        work[at(r_loop(0u), c)] = 1.0;
        work[at(r_loop(1u), c)] = f32(iters);
        work[at(r_loop(2u), c)] = f32(polish);
        work[at(r_loop(3u), c)] = select(f32(0.0), f32(1.0), converged);
        work[at(r_loop(4u), c)] = norm.x;
        work[at(r_loop(5u), c)] = norm.y;
        return;
    }
    work[at(r_loop(0u), c)] = 2.0;
    outp[at(0u, c)] = select(f32(0.0), f32(1.0), converged);
    outp[at(1u, c)] = f32(iters - polish);
    outp[at(2u, c)] = norm.x;
    work[at(r_cold(), c)] = select(f32(1.0), f32(0.0), converged);
    write_results(c);
}

// `main` in stages, one per dispatch, for llvmpipe when one FDPF iteration needs
// more loop trips than it allows per invocation and dispatch: the same
// operations in the same order (bit for bit the same answer). Phases: 0 start;
// 5 and 6 the start's mismatch (currents, norm and loop head); 11–20 the stages
// of an iteration (P right-hand side, forward solve, backward solve and update,
// mismatch currents, mismatch norm; the same for Q); 3 finished, waiting for
// `results_staged`; 4 and 2 see there. Copies still iterating move through the
// stages together and finished ones wait, so a dispatch runs one stage.
@compute @workgroup_size(64)
fn main_staged(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = copy_of(gid.x);
    if c >= P.batch {
        return;
    }
    let phase = work[at(r_loop(0u), c)];
    if phase >= 2.0 && phase <= 4.0 {
        return;
    }
    var iters = u32(work[at(r_loop(1u), c)]);
    var polish = u32(work[at(r_loop(2u), c)]);
    var converged = work[at(r_loop(3u), c)] != 0.0;
    var norm = vec2<f32>(work[at(r_loop(4u), c)], work[at(r_loop(5u), c)]);
    var next = phase + 1.0;
    var head = false;
    if phase == 0.0 {
        iters = 0u;
        polish = 0u;
        converged = false;
        start(c);
        next = 5.0;
    } else if phase == 5.0 || phase == 14.0 || phase == 19.0 {
        mismatch_currents(c);
    } else if phase == 6.0 || phase == 20.0 {
        norm = mismatch_norm(c);
        head = true;
    } else if phase == 11.0 {
        p_rhs(c);
    } else if phase == 12.0 {
        solve_bp_lower(c);
    } else if phase == 13.0 {
        solve_bp_upper(c);
        p_update(c);
    } else if phase == 15.0 {
        norm = mismatch_norm(c);
        if norm.y <= 1.0 && !converged {
            converged = true;
            if P.polish == 0u {
                next = 3.0;
            }
        }
    } else if phase == 16.0 {
        q_rhs(c);
    } else if phase == 17.0 {
        solve_bpp_lower(c);
    } else {
        solve_bpp_upper(c);
        q_update(c);
    }
    if head {
        // `main`'s loop head.
        next = 11.0;
        if norm.y <= 1.0 || converged {
            converged = true;
            if polish >= P.polish {
                next = 3.0;
            }
        } else if iters >= P.max_iter || norm.x > P.diverge {
            next = 3.0;
        }
        if next == 11.0 {
            if converged {
                polish += 1u;
            }
            iters += 1u;
        }
    }
    work[at(r_loop(0u), c)] = next;
    work[at(r_loop(1u), c)] = f32(iters);
    work[at(r_loop(2u), c)] = f32(polish);
    work[at(r_loop(3u), c)] = select(f32(0.0), f32(1.0), converged);
    work[at(r_loop(4u), c)] = norm.x;
    work[at(r_loop(5u), c)] = norm.y;
    if next == 3.0 {
        outp[at(0u, c)] = select(f32(0.0), f32(1.0), converged);
        outp[at(1u, c)] = f32(iters - polish);
        outp[at(2u, c)] = norm.x;
        work[at(r_cold(), c)] = select(f32(1.0), f32(0.0), converged);
    }
}

// `main_staged`'s results, dispatched twice once every copy has finished:
// branch currents (phase 3 → 4), then the tables (4 → 2, done).
@compute @workgroup_size(64)
fn results_staged(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = copy_of(gid.x);
    if c >= P.batch {
        return;
    }
    let phase = work[at(r_loop(0u), c)];
    if phase == 3.0 {
        work[at(r_loop(0u), c)] = 4.0;
        branch_currents(c);
    } else if phase == 4.0 {
        work[at(r_loop(0u), c)] = 2.0;
        write_tables(c);
    }
}

// Test-only entry points (src/powerflow/gpu/port.rs): ONE function of the solver on
// the current `work` state, for comparison with the CPU port kernel by kernel. The
// solver's pipeline compiles `main` only, so these cost it nothing.
@compute @workgroup_size(64)
fn test_mismatch(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if c < P.batch {
        let norm = mismatch(c);
        work[at(r_loop(4u), c)] = norm.x;
        work[at(r_loop(5u), c)] = norm.y;
    }
}

@compute @workgroup_size(64)
fn test_p_half_step(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x < P.batch {
        p_half_step(gid.x);
    }
}

@compute @workgroup_size(64)
fn test_q_half_step(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x < P.batch {
        q_half_step(gid.x);
    }
}

@compute @workgroup_size(64)
fn test_solve_bp(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x < P.batch {
        solve_bp(gid.x);
    }
}

@compute @workgroup_size(64)
fn test_solve_bpp(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x < P.batch {
        solve_bpp(gid.x);
    }
}

@compute @workgroup_size(64)
fn test_tap_warm_start(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x < P.batch {
        tap_warm_start(gid.x);
    }
}

@compute @workgroup_size(64)
fn test_injections(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x < P.batch {
        injections(gid.x);
    }
}

@compute @workgroup_size(64)
fn test_write_results(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x < P.batch {
        write_results(gid.x);
    }
}
