//! GPU backend: the batched FDPF of [`cpu`](super::cpu) in WGSL (`shaders/fdpf.wgsl`),
//! the whole iteration loop in one dispatch, one invocation per copy.
//!
//! Data path: the shared matrices, factors and element maps are uploaded once per
//! batch; per-copy set-points, node shunts, tap-dependent branches and B'' factor
//! values are prepared on the host in f64, rounded to f32 and uploaded only where
//! they changed (host mirrors of the device buffers tell what changed); B'' values
//! as value sets shared by the copies whose taps stand alike (`BppSets`).
//! Results are unpacked only where asked ([`PowerFlow::defer_results_at`],
//! [`PowerFlow::limit_results`]); the rest from the readback on request. The voltage
//! state stays on the device, so a warm start costs no upload. A batch larger than
//! the device's storage-binding limit is split into chunks, each with its own
//! buffers, all dispatched in one submission.
//!
//! Tap moves warm-start like the CPU's (`Kernel::prepare`, `powerflow::tap_warm`):
//! the host computes, per copy and tap-changing trafo, the ratio change `f` of a
//! tap that moved since the copy's last solve and uploads `f − 1` (0 where nothing
//! moved, so a factor is applied at one solve only); the shader scales |V| of the
//! nodes behind that trafo (shared CSR lists in `idx`) at the start of a warm solve.
//!
//! f32 accuracy: the state is stored as deviations from the no-load frame and branch
//! currents are formed from voltage differences (see the shader's header), so the
//! answer matches the f64 CPU solver to about 1e-6 p.u. The convergence tolerance is
//! `max(tolerance_pu, F32_TOLERANCE_PU)` followed by [`POLISH_ITERATIONS`] more iterations.
//! The reported branch currents come from Kirchhoff's law on a spanning tree
//! (`branch_order`), so loadings match pandapower to about 1e-4 pp even across
//! near-zero impedances.
//!
//! [`GpuPrecision::F64`] (in the plan's [`SolverOptions`](super::SolverOptions))
//! runs the same shader in f64 ([`shader_source`]) on adapters with f64 shaders:
//! pandapower's precision on meshed transmission networks, where f32 angles alone
//! cost about 1e-2 pp of line loading.

use super::admittance::trafo_branch;
use super::batch::{BatchInputs, BatchResults, HostTime, PowerFlow, SolveSummary};
use super::plan::{BranchSource, Plan};
use super::precision::GpuPrecision;
use super::sparse_lu::PatternValues;
use super::tap_warm::{downstream_nodes, tap_move_factor, TapDown};
use crate::complex::C64;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use std::sync::Arc;
use std::time::Instant;

/// The batch in parts, each driven by its own host thread.
mod parts;
/// f64/f32 CPU port of the shader, function for function (kernel-by-kernel tests).
#[cfg(test)]
pub(crate) mod port;
/// `enforce_q_lims`: pandapower's PV→PQ rounds, driven from the host.
mod qlims;

pub use parts::GpuParts;

/// The solver's WGSL source.
pub const FDPF_WGSL: &str = include_str!("../../shaders/fdpf.wgsl");

/// The solver's source at `precision`. f64 is the f32 source with every `f32`
/// outside the uniform `Params` turned into `f64` (its f32 fields converted
/// where read) and `cosm1_sin` built on an f64 sine: WGSL's `sin` has no f64
/// overload. One source, so the two cannot drift apart.
pub fn shader_source(precision: GpuPrecision) -> std::borrow::Cow<'static, str> {
    match precision {
        GpuPrecision::F32 => FDPF_WGSL.into(),
        GpuPrecision::F64 => shader_f64(FDPF_WGSL).into(),
    }
}

/// `cosm1_sin` of the f64 shader: `(cos θ − 1, sin θ)` to f64 rounding at any θ.
const COSM1_SIN_F64: &str = "// f64 sine: Cody-Waite reduction by π/2 (fdlibm's two-part constant, exact for
// |k| < 2^20), then Taylor polynomials on |r| ≤ π/4 (truncation below 1e-17).
fn sin_f64(x: f64) -> f64 {
    let k = round(x * 0.6366197723675814);
    let r = (x - k * 1.5707963267341256) - k * 6.077100506506192e-11;
    let r2 = r * r;
    let s = r * (1.0 - r2 * (1.0 / 6.0 - r2 * (1.0 / 120.0 - r2 * (1.0 / 5040.0 - r2 * (1.0 / 362880.0 - r2 * (1.0 / 39916800.0 - r2 * (1.0 / 6227020800.0 - r2 * (1.0 / 1307674368000.0 - r2 * (1.0 / 355687428096000.0)))))))));
    let c = 1.0 - r2 * (0.5 - r2 * (1.0 / 24.0 - r2 * (1.0 / 720.0 - r2 * (1.0 / 40320.0 - r2 * (1.0 / 3628800.0 - r2 * (1.0 / 479001600.0 - r2 * (1.0 / 87178291200.0 - r2 * (1.0 / 20922789888000.0))))))));
    let q = i32(k) & 3;
    if q == 0 {
        return s;
    }
    if q == 1 {
        return c;
    }
    if q == 2 {
        return -s;
    }
    return -c;
}

fn cosm1_sin(th: f64) -> vec2<f64> {
    let h = sin_f64(0.5 * th);
    return vec2<f64>(-2.0 * h * h, sin_f64(th));
}
";

/// The f64 shader text from the f32 one (see [`shader_source`]).
fn shader_f64(src: &str) -> String {
    let start = src
        .find("struct Params {")
        .expect("the shader declares Params");
    let end = start + src[start..].find("\n}\n").expect("Params ends") + 3;
    let (head, params, body) = (&src[..start], &src[start..end], &src[end..]);
    let mut body = body.replace("f32", "f64");
    // Params' f32 fields, converted where read.
    for f in ["tol", "rot_re", "rot_im", "diverge", "sn"] {
        let pat = format!("P.{f}");
        let mut out = String::with_capacity(body.len());
        let mut rest = body.as_str();
        while let Some(i) = rest.find(&pat) {
            let after = &rest[i + pat.len()..];
            let whole = !after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
            out.push_str(&rest[..i]);
            if whole {
                out.push_str(&format!("f64({pat})"));
            } else {
                out.push_str(&pat);
            }
            rest = after;
        }
        out.push_str(rest);
        body = out;
    }
    let f = body
        .find("fn cosm1_sin(")
        .expect("the shader has cosm1_sin");
    let f_end = f + body[f..].find("\n}\n").expect("cosm1_sin ends") + 3;
    body.replace_range(f..f_end, COSM1_SIN_F64);
    format!("{head}{params}{body}")
}

/// Smallest mismatch tolerance (p.u.) used on the GPU: f32 rounding of branch
/// currents puts the mismatch floor a little below it.
pub const F32_TOLERANCE_PU: f64 = 1e-6;
/// Iterations run after reaching the tolerance, to tighten the f32 answer.
pub const POLISH_ITERATIONS: u32 = 5;
/// Copies per workgroup (the shader's `@workgroup_size`).
const WORKGROUP: u32 = 64;
const NONE: u32 = u32::MAX;
/// The shader's `PV_RELEASED`: a PV set-point row at or above it marks the
/// node released to PQ in that copy (Q limits).
pub(crate) const PV_RELEASED: f64 = 1e20;
/// Loop trips one invocation may make per dispatch on llvmpipe. Its hard limit is
/// 65535 per SIMD group, and lanes on diverging paths (one iterating, one writing
/// results) add up, so half of it.
const LOOP_TRIP_BUDGET: usize = 30_000;
/// llvmpipe's hard limit of loop trips per invocation and dispatch: a network
/// whose single iteration (plus the solve's fixed work) needs more is refused
/// there (pandapower's case2869pegase and case9241pegase are).
const LLVMPIPE_LOOP_LIMIT: usize = 65_535;
const SQRT3: f64 = 1.732_050_807_568_877_2;

/// Whether a real (non-CPU-emulated) GPU adapter is present.
pub fn real_gpu_available() -> bool {
    crate::gpu::context::real_gpu_available()
}

/// A batch on the GPU (the process-wide [`GpuContext`]): one [`GpuBatch`],
/// or [`GpuParts`] where the plan asks for more than one host thread
/// ([`SolverOptions::gpu_threads`](super::SolverOptions::gpu_threads)).
pub fn new_batch(plan: Arc<Plan>, batch: usize) -> Result<Box<dyn PowerFlow>> {
    let threads = plan.options.gpu_threads;
    if threads > 1 && batch > 1 {
        let ctx = GpuContext::shared()?;
        return Ok(Box::new(GpuParts::on(ctx, plan, batch, threads)?));
    }
    Ok(Box::new(GpuBatch::new(plan, batch)?))
}

/// Uniform parameters; field order and layout match `Params` in the shader.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
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
    s_tol: u32,
    pass_iters: u32,
    i_down_ptr: u32,
    i_down: u32,
    /// Row in `work` of the PQ nodes' ZIP parts (`S_i` re, im, `S_z` re, im;
    /// `NONE` without ZIP loads), formed by the shader's `injections`.
    w_zip: u32,
    i_pv: u32,
    p_pv: u32,
    n_site: u32,
    i_site: u32,
    /// Order of the result pass's branch currents (`4·k + mode`, see
    /// [`branch_order`]) and each branch's result slot (line `l`, trafo `nl + t`).
    i_order: u32,
    i_slot: u32,
    /// Row in `pc` of each copy's B'' value set (its number) and values per
    /// set in `bppv` ([`BppSets`]).
    p_bset: u32,
    n_bpp: u32,
    /// The shader's `injections`: pointers (two segments per node) and
    /// terms in `idx` (each term the `pc` rows of its [`SetPoint`] values),
    /// factors, the constant part and the ZIP shares (4 per PQ node) in `sh`,
    /// S_spec's row in `work`, the released PV nodes' held Q row in `pc`.
    i_inj_ptr: u32,
    i_inj: u32,
    s_inj: u32,
    s_sbase: u32,
    s_zip: u32,
    w_s: u32,
    p_pvq: u32,
}

/// Branch data in the shader's local-frame form (9 values):
/// `ys`, `yh = y_sh/2`, `ρ = 1/ratio`, `c0 = ρ − e^{−jδ}`, `e = e^{−jδ}`
/// with `δ = φ_f − shift − φ_t`.
fn branch_values(z: C64, y_sh: C64, ratio: f64, shift: f64, phi_f: f64, phi_t: f64) -> [f64; 9] {
    let ys = z.inv();
    let yh = y_sh.scale(0.5);
    let rho = 1.0 / ratio;
    let delta = phi_f - shift - phi_t;
    let e = C64::from_polar(1.0, -delta);
    // ρ − e^{−jδ} = (ρ − 1) + (1 − cos δ) + j·sin δ, without cancellation.
    let h = (0.5 * delta).sin();
    let c0 = C64::new((rho - 1.0) + 2.0 * h * h, delta.sin());
    [ys.re, ys.im, yh.re, yh.im, rho, c0.re, c0.im, e.re, e.im]
}

/// An input table whose values the host uploads as they are, one `pc` row per
/// in-service element ([`Layout::setpoints`]), for the shader's `injections`
/// to turn into node injections.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SetPoint {
    LoadP,
    LoadQ,
    LoadScaling,
    SgenP,
    SgenQ,
    StorageP,
    GenP,
}

impl SetPoint {
    /// The table in `inp` (copies × elements).
    fn of(self, inp: &BatchInputs) -> &ndarray::Array2<f64> {
        match self {
            SetPoint::LoadP => &inp.load_p_mw,
            SetPoint::LoadQ => &inp.load_q_mvar,
            SetPoint::LoadScaling => &inp.load_scaling,
            SetPoint::SgenP => &inp.sgen_p_mw,
            SetPoint::SgenQ => &inp.sgen_q_mvar,
            SetPoint::StorageP => &inp.storage_p_mw,
            SetPoint::GenP => &inp.gen_p_mw,
        }
    }
}

/// Offsets and sizes shared by every chunk.
struct Layout {
    params: Params,
    /// Rows of the per-copy input buffer.
    rows_pc: usize,
    /// Rows of the per-copy B'' value buffer.
    rows_bpp: usize,
    /// Rows of the state/scratch buffer.
    rows_work: usize,
    /// Rows of the output buffer.
    rows_out: usize,
    /// Row of the cold-start flag in the work buffer (the loop phase row follows it).
    row_cold: usize,
    /// Dispatches per solve.
    passes: usize,
    /// Reference angle of every node (rad).
    phi: Vec<f64>,
    /// `shift` (rad) of each tap-changing trafo.
    tap_shift: Vec<f64>,
    /// Nodes each tap-changing trafo's moves warm-start (the CPU's lists; uploaded
    /// as CSR at `i_down_ptr`/`i_down`).
    tap_down: TapDown,
    /// The set-point tables in `pc`: table, its in-service elements (one row
    /// each, in this order), first row.
    setpoints: Vec<(SetPoint, Vec<usize>, usize)>,
    /// Terms of the node injections (loop trips of the shader's `injections`).
    n_terms: usize,
    /// The nodes with shunts, ascending, distinct (the only node shunts a
    /// primed chunk writes again).
    shunt_nodes: Vec<usize>,
}

/// Per-row dirty ranges of a host mirror (copy indices, inclusive). The values
/// are f32, or f64 for the f64 shader ([`GpuPrecision::F64`]).
struct Mirror {
    data: Vec<f32>,
    data64: Vec<f64>,
    lo: Vec<usize>,
    hi: Vec<usize>,
    batch: usize,
}

impl Mirror {
    fn new(rows: usize, batch: usize, precision: GpuPrecision) -> Self {
        let (n32, n64) = match precision {
            GpuPrecision::F32 => (rows * batch, 0),
            GpuPrecision::F64 => (0, rows * batch),
        };
        Mirror {
            data: vec![0.0; n32],
            data64: vec![0.0; n64],
            lo: vec![usize::MAX; rows],
            hi: vec![0; rows],
            batch,
        }
    }

    /// Values `s..e` as the device's bytes.
    fn bytes(&self, s: usize, e: usize) -> (&[u8], usize) {
        if self.data64.is_empty() {
            (bytemuck::cast_slice(&self.data[s..e]), 4)
        } else {
            (bytemuck::cast_slice(&self.data64[s..e]), 8)
        }
    }
}

/// Where the host writes per-copy values (row, copy in the chunk, f64 value): the
/// f32 upload mirrors, or the shader port's buffers.
trait Put {
    fn put(&mut self, row: usize, c: usize, v: f64);

    /// Rows `row..row + elements.len()` of every copy from one input table
    /// (`copies`: the chunk's copies × the table's elements): row `row + j`
    /// holds element `elements[j]`.
    fn put_columns(&mut self, row: usize, copies: ndarray::ArrayView2<f64>, elements: &[usize]) {
        for (lc, values) in copies.outer_iter().enumerate() {
            for (j, &k) in elements.iter().enumerate() {
                self.put(row + j, lc, values[k]);
            }
        }
    }
}

impl Put for Mirror {
    #[inline]
    fn put(&mut self, row: usize, c: usize, v: f64) {
        let i = row * self.batch + c;
        let changed = if self.data64.is_empty() {
            set(&mut self.data[i], v as f32)
        } else {
            set(&mut self.data64[i], v)
        };
        if changed {
            self.lo[row] = self.lo[row].min(c);
            self.hi[row] = self.hi[row].max(c);
        }
    }

    /// Column by column in blocks of 64 copies (the table's rows of a block
    /// stay in L1), a row's values compared and stored in one loop.
    fn put_columns(&mut self, row: usize, copies: ndarray::ArrayView2<f64>, elements: &[usize]) {
        const BLOCK: usize = 64;
        let len = copies.nrows();
        for b0 in (0..len).step_by(BLOCK) {
            let b1 = (b0 + BLOCK).min(len);
            for (j, &k) in elements.iter().enumerate() {
                let r = row + j;
                let values = copies.slice(ndarray::s![b0..b1, k]);
                let o = r * self.batch;
                let changed = if self.data64.is_empty() {
                    store(&mut self.data[o + b0..o + b1], values, |v| v as f32)
                } else {
                    store(&mut self.data64[o + b0..o + b1], values, |v| v)
                };
                if changed {
                    self.lo[r] = self.lo[r].min(b0);
                    self.hi[r] = self.hi[r].max(b1 - 1);
                }
            }
        }
    }
}

/// A mirror's value type, compared by its bits (a NaN or a signed zero that
/// differs is a change).
trait Bits: Copy {
    fn bits(self) -> u64;
}

impl Bits for f32 {
    fn bits(self) -> u64 {
        self.to_bits() as u64
    }
}

impl Bits for f64 {
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

/// `*d = v`; whether its bits changed.
#[inline]
fn set<T: Bits>(d: &mut T, v: T) -> bool {
    let changed = d.bits() != v.bits();
    *d = v;
    changed
}

/// `to[i] = of(values[i])`; whether any bits changed.
fn store<T: Bits>(to: &mut [T], values: ndarray::ArrayView1<f64>, of: impl Fn(f64) -> T) -> bool {
    let mut changed = false;
    for (d, &v) in to.iter_mut().zip(&values) {
        changed |= set(d, of(v));
    }
    changed
}

impl Mirror {
    /// Upload what changed since the last upload: dirty spans, merged when close.
    fn upload(&mut self, queue: &wgpu::Queue, buf: &wgpu::Buffer) {
        let mut span: Option<(usize, usize)> = None;
        let gap = self.batch / 4 + 64;
        for row in 0..self.lo.len() {
            if self.lo[row] == usize::MAX {
                continue;
            }
            let (a, b) = (
                row * self.batch + self.lo[row],
                row * self.batch + self.hi[row] + 1,
            );
            span = match span {
                Some((s, e)) if a <= e + gap => Some((s, b)),
                Some((s, e)) => {
                    let (bytes, w) = self.bytes(s, e);
                    queue.write_buffer(buf, (s * w) as u64, bytes);
                    Some((a, b))
                }
                None => Some((a, b)),
            };
            self.lo[row] = usize::MAX;
            self.hi[row] = 0;
        }
        if let Some((s, e)) = span {
            let (bytes, w) = self.bytes(s, e);
            queue.write_buffer(buf, (s * w) as u64, bytes);
        }
    }
}

/// One slice of the batch with its own per-copy buffers.
struct Chunk {
    /// B'' values written for every copy at least once.
    primed: bool,
    _params: wgpu::Buffer,
    c0: usize,
    len: usize,
    pc: Mirror,
    /// The B'' value sets (`sets`), set-major.
    bpp: Mirror,
    sets: BppSets,
    pc_buf: wgpu::Buffer,
    bpp_buf: wgpu::Buffer,
    work_buf: wgpu::Buffer,
    out_buf: wgpu::Buffer,
    /// The copies a solve of some copies visits (`copy_of` in the shader):
    /// their number, then their indices; `NONE` first: every copy.
    list_buf: wgpu::Buffer,
    /// Whether `list_buf` holds a list (else `NONE`: every copy).
    listed: bool,
    /// Two readback copies of `out_buf`: a deferred solve's stays mapped (`held`)
    /// until `finish_results` or the next solve, which reads into the other.
    staging: [wgpu::Buffer; 2],
    held: Option<usize>,
    bind_group: wgpu::BindGroup,
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
}

/// B copies of one network on the GPU.
pub struct GpuBatch {
    ctx: Arc<GpuContext>,
    plan: Arc<Plan>,
    layout: Layout,
    pipeline: wgpu::ComputePipeline,
    /// `results_staged`, dispatched twice after `main_staged`'s passes.
    results_pipeline: Option<wgpu::ComputePipeline>,
    chunks: Vec<Chunk>,
    inputs: BatchInputs,
    results: BatchResults,
    /// Tap position of every copy's tap-changing trafos at the last prepare (NaN: never).
    tap_pos: Vec<f64>,
    /// Copies to start cold at the next solve.
    pending_cold: Vec<usize>,
    bpp_a: PatternValues,
    bpp_f: PatternValues,
    bpp_work: Vec<f64>,
    tap_cache: TapCache,
    /// Nodes with gens (the Q split of the results).
    gen_sites: super::injections::GenSites,
    gpu_ns: Option<f64>,
    /// Host time of the solves so far, by phase.
    host: HostTime,
    /// Whether set-points other than taps and steps may have changed since the
    /// last prepare (set by `inputs_mut`).
    setpoints: bool,
    /// Shunt step of every copy's shunts at the last prepare (NaN: never).
    shunt_step: Vec<f64>,
    /// The inputs of the next solve were checked by the caller ([`GpuParts`],
    /// for the whole batch): the solve does not check them again.
    pub(crate) checked: bool,
    /// `Some((vm_buses, va_buses))` while results are deferred
    /// ([`PowerFlow::defer_results`]; `vm_buses` `None`: every bus).
    deferred: Option<(Option<Vec<usize>>, Vec<usize>)>,
    /// The result columns asked for ([`PowerFlow::limit_results`]: table
    /// index in [`BatchResults::tables`] order, columns; `None`: all).
    limit: Option<Vec<(usize, Vec<usize>)>>,
    /// Whether `results` holds only the limited columns of the last solve (the
    /// rest is in the readback kept mapped).
    lazy: bool,
    /// The last solve's complete tables, formed on the first call to `results`
    /// while `lazy`.
    full: std::sync::OnceLock<BatchResults>,
    /// The copies the next unpack reads (`solve_active`; `None`: all).
    active: Option<Vec<bool>>,
    /// `enforce_q_lims` state of every copy.
    q: qlims::GpuQ,
    _shared: (wgpu::Buffer, wgpu::Buffer),
}

fn storage(ctx: &GpuContext, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(16).next_multiple_of(4),
        usage,
        mapped_at_creation: false,
    })
}

fn init_buffer(
    ctx: &GpuContext,
    label: &str,
    data: &[u8],
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    // Bindings may not be empty: pad to at least 16 bytes.
    let mut bytes = data.to_vec();
    bytes.resize(bytes.len().max(16).next_multiple_of(4), 0);
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: &bytes,
            usage,
        })
}

/// How a solve is spread over dispatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schedule {
    /// The whole iteration loop in one dispatch, or on llvmpipe as many
    /// iterations per dispatch as its loop-trip limit allows, or one stage per
    /// dispatch where not even one iteration fits.
    Auto,
    /// One dispatch (tests on llvmpipe with small networks).
    Single,
    /// One stage per dispatch (`main_staged`; tests).
    Staged,
}

/// Shader loop trips of one invocation (llvmpipe counts them per dispatch).
struct LoopTrips {
    /// A solve's start and results.
    fixed: usize,
    /// One FDPF iteration.
    per_iter: usize,
    /// `main_staged`'s stages (start, mismatch currents and norm, P right-hand
    /// side, forward solve, backward solve and update, the same for Q).
    stages: [(&'static str, usize); 9],
    /// Its two result stages (branch currents, tables), dispatched once every
    /// copy has finished (`results_staged`).
    results: [usize; 2],
}

impl LoopTrips {
    fn of(plan: &Plan, layout: &Layout) -> LoopTrips {
        let (n, nn) = (plan.n_pq, plan.n_node);
        let (nb, nl, nt, ne) = plan.sizes();
        let n_br = layout.params.n_br as usize;
        let currents = nn + n_br;
        let mismatch = currents + n;
        let per_iter = 2 * mismatch
            + (4 * n + plan.bp.l_col.len() + plan.bp.u_col.len())
            + (4 * n + plan.bpp.l_col.len() + plan.bpp.u_col.len())
            + 4;
        let down: usize = layout.tap_down.iter().flatten().map(|(_, v)| v.len()).sum();
        let start = 2 * nn + layout.n_terms + n + plan.tap_trafos.len() + down + 8;
        let results = [
            currents + 8,
            nb + nl + nt + ne + layout.params.n_site as usize + 8,
        ];
        LoopTrips {
            fixed: start + mismatch + results[0] + results[1],
            per_iter,
            stages: [
                ("start", start),
                ("mismatch currents", currents),
                ("mismatch norm", n),
                ("P right-hand side", n),
                ("P forward solve", n + plan.bp.l_col.len()),
                ("P backward solve", 2 * n + plan.bp.u_col.len()),
                ("Q right-hand side", n),
                ("Q forward solve", n + plan.bpp.l_col.len()),
                ("Q backward solve", 2 * n + plan.bpp.u_col.len()),
            ],
            results,
        }
    }

    /// The largest stage and its trips.
    fn largest_stage(&self) -> (&'static str, usize) {
        let r = self.results[0].max(self.results[1]);
        let (name, t) = self
            .stages
            .iter()
            .copied()
            .max_by_key(|s| s.1)
            .expect("stages");
        if r > t {
            ("results", r)
        } else {
            (name, t)
        }
    }
}

impl GpuBatch {
    /// `batch` copies at the network's own set-points, on the shared context.
    pub fn new(plan: Arc<Plan>, batch: usize) -> Result<Self> {
        Self::with_max_chunk(plan, batch, usize::MAX)
    }

    /// Like [`new`](Self::new), with at most `max_chunk` copies per dispatch (the
    /// device's binding limit lowers it further).
    pub fn with_max_chunk(plan: Arc<Plan>, batch: usize, max_chunk: usize) -> Result<Self> {
        let ctx = GpuContext::shared()?;
        Self::on(ctx, plan, batch, max_chunk)
    }

    /// Like [`new`](Self::new), but the whole iteration loop in one dispatch even on
    /// a CPU-emulated adapter (as on real GPUs), so that path can be tested on
    /// lavapipe with a network small enough for its loop-trip limit.
    pub fn single_dispatch(plan: Arc<Plan>, batch: usize) -> Result<Self> {
        let ctx = GpuContext::shared()?;
        Self::build(ctx, plan, batch, usize::MAX, Schedule::Single)
    }

    /// Like [`new`](Self::new), but one stage of an FDPF iteration per dispatch
    /// (the shader's `main_staged`), as on llvmpipe for networks whose iteration
    /// exceeds its loop-trip limit, so that schedule can be tested on any network.
    pub fn staged(plan: Arc<Plan>, batch: usize) -> Result<Self> {
        let ctx = GpuContext::shared()?;
        Self::build(ctx, plan, batch, usize::MAX, Schedule::Staged)
    }

    /// On an explicit context.
    pub fn on(
        ctx: Arc<GpuContext>,
        plan: Arc<Plan>,
        batch: usize,
        max_chunk: usize,
    ) -> Result<Self> {
        Self::build(ctx, plan, batch, max_chunk, Schedule::Auto)
    }

    fn build(
        ctx: Arc<GpuContext>,
        plan: Arc<Plan>,
        batch: usize,
        max_chunk: usize,
        schedule: Schedule,
    ) -> Result<Self> {
        // The shader's branch form is reciprocal (one series admittance).
        if let Some(k) = plan.branches.iter().find_map(|b| match b.source {
            BranchSource::Impedance(k) if plan.net.impedances[k].is_asymmetric() => Some(k),
            _ => None,
        }) {
            return Err(Error::Unsupported(format!(
                "impedance {k} ({:?}): a non-reciprocal impedance (rft_pu, xft_pu ≠ rtf_pu, xtf_pu) is solved by the CPU backend only",
                plan.net.impedances[k].name
            )));
        }
        let precision = plan.options.gpu_precision;
        if precision == GpuPrecision::F64 && !ctx.shader_f64 {
            return Err(Error::Unsupported(format!(
                "GPU precision f64: {} has no f64 shaders (SHADER_F64); use gpu_precision f32 or the CPU backend",
                ctx.info
            )));
        }
        if ctx.info.is_cpu_emulated() {
            // An emulated device's buffers are host memory too.
            super::memory::check_emulated_gpu(&plan, batch)?;
        }
        let (idx, sh64, mut layout) = build_shared64(&plan);
        let esize = precision_bytes(precision);
        let emulated = ctx.info.is_cpu_emulated();
        let trips = LoopTrips::of(&plan, &layout);
        let staged = match schedule {
            Schedule::Staged => true,
            Schedule::Single => false,
            Schedule::Auto => emulated && trips.fixed + trips.per_iter > LLVMPIPE_LOOP_LIMIT,
        };
        let mut entry = "main";
        if staged {
            // llvmpipe cannot run even one FDPF iteration in a dispatch: one stage
            // of it per dispatch (`main_staged`), if each stage fits.
            let (stage, worst) = trips.largest_stage();
            if emulated && worst > LLVMPIPE_LOOP_LIMIT - 2_000 {
                return Err(Error::Gpu(format!(
                    "{} nodes with {} factor non-zeros: one stage of an FDPF iteration ({stage}) \
                     needs about {worst} shader loop trips, more than llvmpipe's limit of \
                     {LLVMPIPE_LOOP_LIMIT} per invocation and dispatch: use the CPU backend or a \
                     real GPU",
                    plan.n_node,
                    plan.bp.l_col.len() + plan.bp.u_col.len(),
                )));
            }
            entry = "main_staged";
            let iters = plan.options.max_iterations as usize + layout.params.polish as usize;
            layout.passes = 3 + 10 * iters;
        } else if emulated && schedule == Schedule::Auto {
            // llvmpipe stops a shader invocation after 65535 loop trips in total, so
            // the iteration loop is split over several dispatches there (state and
            // loop counters stay in the work buffer between them).
            let iters = (LOOP_TRIP_BUDGET.saturating_sub(trips.fixed) / trips.per_iter).max(1);
            layout.params.pass_iters = iters as u32;
            let total = plan.options.max_iterations as usize + POLISH_ITERATIONS as usize + 1;
            layout.passes = total.div_ceil(iters) + 1;
        }
        let device = &ctx.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("fdpf.wgsl"),
            source: wgpu::ShaderSource::Wgsl(shader_source(precision)),
        });
        let bgl = bind_group_layout(device);
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("fdpf"),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let make = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("fdpf"),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let pipeline = make(entry);
        let results_pipeline = staged.then(|| make("results_staged"));
        let su = wgpu::BufferUsages::STORAGE;
        let idx_buf = init_buffer(&ctx, "fdpf idx", bytemuck::cast_slice(&idx), su);
        let sh_buf = match precision {
            GpuPrecision::F32 => {
                let sh: Vec<f32> = sh64.iter().map(|&x| x as f32).collect();
                init_buffer(&ctx, "fdpf shared", bytemuck::cast_slice(&sh), su)
            }
            GpuPrecision::F64 => init_buffer(&ctx, "fdpf shared", bytemuck::cast_slice(&sh64), su),
        };

        // Chunk size: the largest per-copy buffer must fit one binding.
        let max_rows = layout
            .rows_pc
            .max(layout.rows_bpp)
            .max(layout.rows_work)
            .max(layout.rows_out)
            .max(1);
        let fit = (ctx.max_binding_bytes() / (max_rows * esize) as u64) as usize;
        let asked = batch.div_ceil(plan.options.gpu_chunks.max(1));
        let per = (max_chunk.min(fit).min(asked))
            .min(65535 * WORKGROUP as usize)
            .max(1);
        let mut chunks = vec![];
        let mut c0 = 0;
        while c0 < batch {
            let len = per.min(batch - c0);
            let bufs = (&idx_buf, &sh_buf);
            chunks.push(make_chunk(&ctx, &layout, &bgl, bufs, precision, c0, len));
            c0 += len;
        }
        let n_tap = plan.tap_trafos.len();
        let results = BatchResults::zeros(&plan.net, batch);
        let inputs = BatchInputs::from_network(&plan.net, batch);
        let zero = plan.bpp.zero_values();
        Ok(GpuBatch {
            layout,
            pipeline,
            results_pipeline,
            chunks,
            inputs,
            results,
            tap_pos: vec![f64::NAN; batch * n_tap],
            pending_cold: vec![],
            gen_sites: super::injections::GenSites::new(&plan),
            bpp_a: zero.clone(),
            bpp_f: zero,
            bpp_work: vec![0.0; plan.n_pq],
            tap_cache: TapCache::default(),
            gpu_ns: None,
            host: HostTime::default(),
            setpoints: true,
            shunt_step: vec![f64::NAN; batch * plan.net.shunts.len()],
            checked: false,
            deferred: None,
            limit: None,
            lazy: false,
            full: std::sync::OnceLock::new(),
            active: None,
            q: Default::default(),
            _shared: (idx_buf, sh_buf),
            plan,
            ctx,
        })
    }

    /// The adapter this batch runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Number of dispatches (chunks) the batch is split into.
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    /// GPU time of the last solve's compute passes in seconds (timestamp queries),
    /// where the adapter supports them.
    pub fn last_gpu_seconds(&self) -> Option<f64> {
        self.gpu_ns.map(|ns| ns * 1e-9)
    }

    /// The last solve's tables complete: the limited ones
    /// ([`PowerFlow::limit_results`]) with every table unpacked from the
    /// readback still mapped.
    fn completed(&self) -> BatchResults {
        let mut r = self.results.clone();
        let esize = precision_bytes(self.plan.options.gpu_precision);
        let all = 0..self.layout.rows_out;
        for ch in &self.chunks {
            // The solve's readback held only the asked rows: every row now,
            // from the output buffer (the last solve's until the next one).
            let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("fdpf results on request"),
                size: ch.out_buf.size(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            if (self.read_rows(ch, &staging, std::slice::from_ref(&all), esize)).is_err() {
                continue;
            }
            if let Ok(view) = staging.slice(..).get_mapped_range() {
                let to = Tables {
                    plan: &self.plan,
                    inputs: &self.inputs,
                    sites: &self.gen_sites,
                    results: &mut r,
                };
                unpack_bytes(to, &view, esize, (ch.c0, ch.len), Unpack::All);
            }
        }
        // Gen P as solved (the unpack took it from the inputs, which may have
        // changed since).
        r.gen_p_mw.assign(&self.results.gen_p_mw);
        r
    }

    /// Defer results ([`PowerFlow::defer_results_at`]; `vm_buses` `None`:
    /// every bus), unless the Q-limit rounds need every copy's gen Q.
    fn defer_at(&mut self, vm_buses: Option<&[usize]>, va_buses: &[usize]) {
        if self.plan.options.enforce_q_lims {
            // The Q-limit rounds read every copy's gen Q after each solve.
            return;
        }
        let nb = self.plan.net.buses.len();
        let buses = |b: &[usize]| b.iter().copied().filter(|&b| b < nb).collect::<Vec<_>>();
        self.deferred = Some((vm_buses.map(buses), buses(va_buses)));
    }

    /// Per-copy inputs of `chunk` into its host mirrors (f64 → f32), B'' refactored
    /// for copies whose taps changed.
    fn prepare(&mut self, ci: usize, active: Option<&[bool]>) {
        let chunk = &mut self.chunks[ci];
        let mut host = HostState {
            setpoints: self.setpoints,
            tap_pos: &mut self.tap_pos,
            shunt_step: &mut self.shunt_step,
            bpp_a: &mut self.bpp_a,
            bpp_f: &mut self.bpp_f,
            bpp_work: &mut self.bpp_work,
            taps: &mut self.tap_cache,
        };
        prepare_copies(
            &self.plan,
            &self.inputs,
            &self.layout,
            &mut host,
            (chunk.c0, chunk.len, chunk.primed),
            active,
            &mut chunk.pc,
            (&mut chunk.sets, &mut chunk.bpp),
        );
        chunk.primed = true;
    }

    /// The rows of the output buffer a readback needs (ascending ranges): what
    /// [`unpack`] reads for a deferred solve (`deferred`), for the asked
    /// columns (`limit`), or every row. A solve's readback holds only these;
    /// `finish_results` and `results` read what else they need afterwards.
    fn readback_rows(
        &self,
        deferred: Option<&(Option<Vec<usize>>, Vec<usize>)>,
        limit: Option<&[(usize, Vec<usize>)]>,
    ) -> Vec<std::ops::Range<usize>> {
        let (nb, nl, nt, ne) = self.plan.sizes();
        // The status rows (converged, iterations, mismatch), then the asked.
        let mut rows = Vec::from_iter(std::iter::once(0..3));
        match (deferred, limit) {
            (Some((vm_buses, va_buses)), _) => {
                match vm_buses {
                    Some(buses) => rows.extend(buses.iter().map(|&b| 3 + b..4 + b)),
                    None => rows.push(3..3 + nb),
                }
                rows.extend(va_buses.iter().map(|&b| 3 + nb + b..4 + nb + b));
            }
            (None, Some(limit)) => {
                // The device's tables in `BatchResults::tables` order (as `unpack`).
                let sizes = [nb, nb, nl, nl, nl, nl, nt, nt, nt, nt, nt, ne, ne];
                for (i, cols) in limit {
                    if *i >= sizes.len() - 1 {
                        // ext_grid Q and the gens' Q balance, whole.
                        let o = 3 + sizes[..sizes.len() - 2].iter().sum::<usize>();
                        rows.push(o + ne..self.layout.rows_out);
                    } else {
                        let at = 3 + sizes[..*i].iter().sum::<usize>();
                        rows.extend(cols.iter().map(|&j| at + j..at + j + 1));
                    }
                }
            }
            (None, None) => return std::iter::once(0..self.layout.rows_out).collect(),
        }
        merge_ranges(rows)
    }

    /// Copies `rows` of chunk `ch`'s output buffer into `to` (at the same
    /// offsets), maps `to` and waits for it; the bytes copied.
    fn read_rows(
        &self,
        ch: &Chunk,
        to: &wgpu::Buffer,
        rows: &[std::ops::Range<usize>],
        esize: usize,
    ) -> Result<u64> {
        let ctx = &self.ctx;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let bytes = copy_rows(&mut enc, ch, to, rows, esize);
        let index = ctx.queue.submit([enc.finish()]);
        to.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        ctx.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| Error::Gpu(format!("{}: {e}", ctx.info)))?;
        Ok(bytes)
    }

    /// One solve, chunk by chunk: each chunk is prepared, uploaded and
    /// submitted on its own, then each is waited for and unpacked in turn, so
    /// with several chunks the host's work on one (prepare and upload of the
    /// next, unpack of the last) overlaps the device's work on the others.
    fn run(&mut self) -> Result<()> {
        // The last solve's tables, completed on request, are no longer current.
        self.full = std::sync::OnceLock::new();
        self.lazy = false;
        let rows = self.readback_rows(self.deferred.as_ref(), self.limit.as_deref());
        let active = self.active.take();
        let mut submitted = Vec::with_capacity(self.chunks.len());
        for ci in 0..self.chunks.len() {
            submitted.push(self.submit(ci, &rows, active.as_deref()));
        }
        self.setpoints = false;
        self.pending_cold.clear();
        let ctx = self.ctx.clone();
        let period = ctx.queue.get_timestamp_period() as f64;
        let esize = precision_bytes(self.plan.options.gpu_precision);
        let mut gpu_ns = None;
        for (ch, index) in self.chunks.iter_mut().zip(submitted) {
            let wall = Instant::now();
            ctx.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(index),
                    timeout: None,
                })
                .map_err(|e| Error::Gpu(format!("{}: {e}", ctx.info)))?;
            self.host.wait_s += wall.elapsed().as_secs_f64();
            let t_ready = thread_cpu_s();
            let now = ch.held.map_or(0, |h| 1 - h);
            if let Some(h) = ch.held.take() {
                ch.staging[h].unmap();
            }
            {
                let view = ch.staging[now]
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| Error::Gpu(format!("reading results: {e}")))?;
                let what = match &self.deferred {
                    // Voltages now, the rest at `finish_results` (this readback
                    // stays mapped until then).
                    Some((vm_buses, va_buses)) => Unpack::Voltages {
                        vm_buses: vm_buses.as_deref(),
                        va_buses,
                        active: active.as_deref(),
                    },
                    // The asked columns now, the rest when `results` is called
                    // (this readback stays mapped until the next solve).
                    None => match self.limit.as_deref() {
                        Some(limit) => Unpack::Columns(limit),
                        None => Unpack::All,
                    },
                };
                let to = Tables {
                    plan: &self.plan,
                    inputs: &self.inputs,
                    sites: &self.gen_sites,
                    results: &mut self.results,
                };
                unpack_bytes(to, &view, esize, (ch.c0, ch.len), what);
            }
            if self.deferred.is_some() || self.limit.is_some() {
                ch.held = Some(now);
            } else {
                ch.staging[now].unmap();
            }
            if let Some((_, _, read)) = &ch.queries {
                {
                    let view = read
                        .slice(..)
                        .get_mapped_range()
                        .map_err(|e| Error::Gpu(format!("reading timestamps: {e}")))?;
                    let t: &[u64] = bytemuck::cast_slice(&view);
                    let dt = t[1].wrapping_sub(t[0]) as f64 * period;
                    gpu_ns = Some(gpu_ns.unwrap_or(0.0) + dt);
                }
                read.unmap();
            }
            self.host.unpack_s += thread_cpu_s() - t_ready;
        }
        self.gpu_ns = gpu_ns;
        self.host.kernel_s += gpu_ns.unwrap_or(0.0) * 1e-9;
        self.lazy = self.deferred.is_none() && self.limit.is_some();
        self.host.solves += 1;
        self.host.copy_solves += (active.as_deref())
            .map_or(self.results.batch(), |a| a.iter().filter(|&&x| x).count())
            as u64;
        Ok(())
    }

    /// Chunk `ci`'s part of a solve up to its submission: its inputs prepared
    /// and uploaded, its cold starts marked, its passes and readback recorded
    /// and submitted (the readback: output `rows`), its readback mapped when
    /// done. Copies not `active` (`None`: all are) are skipped: not prepared,
    /// and not listed for the device (`list_buf`), whose dispatches cover only
    /// the listed copies, so their state and result rows stay those of their
    /// last solve.
    fn submit(
        &mut self,
        ci: usize,
        rows: &[std::ops::Range<usize>],
        active: Option<&[bool]>,
    ) -> wgpu::SubmissionIndex {
        let wall = Instant::now();
        let t = thread_cpu_s();
        self.prepare(ci, active);
        self.q_write(ci);
        let t_prepared = thread_cpu_s();
        self.host.prepare_s += t_prepared - t;
        let ctx = self.ctx.clone();
        let (device, queue) = (&ctx.device, &ctx.queue);
        let esize = precision_bytes(self.plan.options.gpu_precision);
        let ch = &mut self.chunks[ci];
        ch.pc.upload(queue, &ch.pc_buf);
        ch.bpp.upload(queue, &ch.bpp_buf);
        let one_f32 = 1.0f32.to_ne_bytes();
        let one_f64 = 1.0f64.to_ne_bytes();
        let one: &[u8] = if esize == 8 { &one_f64 } else { &one_f32 };
        for &c in &self.pending_cold {
            if c >= ch.c0 && c < ch.c0 + ch.len {
                let at = (self.layout.row_cold * ch.len + c - ch.c0) * esize;
                queue.write_buffer(&ch.work_buf, at as u64, one);
            }
        }
        let t_uploaded = thread_cpu_s();
        self.host.upload_s += t_uploaded - t_prepared;
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("fdpf"),
        });
        // Every copy starts a new solve (loop phase 0); a solve of some
        // copies only lists them, and its dispatches cover only those (the
        // queue's write lands before this submission's commands).
        let phase = ((self.layout.row_cold + 1) * ch.len * esize) as u64;
        enc.clear_buffer(&ch.work_buf, phase, Some((ch.len * esize) as u64));
        let mut visited = ch.len;
        match active.map(|a| &a[ch.c0..ch.c0 + ch.len]) {
            Some(a) if a.iter().any(|&x| !x) => {
                let mut list = vec![0u32];
                list.extend((0..ch.len as u32).filter(|&lc| a[lc as usize]));
                visited = list.len() - 1;
                list[0] = visited as u32;
                queue.write_buffer(&ch.list_buf, 0, bytemuck::cast_slice(&list));
                ch.listed = true;
            }
            _ if ch.listed => {
                queue.write_buffer(&ch.list_buf, 0, bytemuck::bytes_of(&NONE));
                ch.listed = false;
            }
            _ => {}
        }
        {
            let tw = ch
                .queries
                .as_ref()
                .map(|(q, _, _)| wgpu::ComputePassTimestampWrites {
                    query_set: q,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                });
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("fdpf"),
                timestamp_writes: tw,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &ch.bind_group, &[]);
            // No dispatch where no copy is listed.
            let groups = (visited as u32).div_ceil(WORKGROUP);
            for _ in 0..self.layout.passes * (groups > 0) as usize {
                pass.dispatch_workgroups(groups, 1, 1);
            }
            match &self.results_pipeline {
                Some(results) if groups > 0 => {
                    pass.set_pipeline(results);
                    pass.dispatch_workgroups(groups, 1, 1);
                    pass.dispatch_workgroups(groups, 1, 1);
                }
                _ => {}
            }
        }
        if let Some((q, resolve, read)) = &ch.queries {
            enc.resolve_query_set(q, 0..2, resolve, 0);
            enc.copy_buffer_to_buffer(resolve, 0, read, 0, 16);
        }
        let st = &ch.staging[ch.held.map_or(0, |h| 1 - h)];
        self.host.read_bytes += copy_rows(&mut enc, ch, st, rows, esize);
        let index = queue.submit([enc.finish()]);
        st.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        if let Some((_, _, read)) = &ch.queries {
            read.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        }
        let t_submitted = thread_cpu_s();
        self.host.submit_s += t_submitted - t_uploaded;
        // Time blocked in here (a queue that waits for the device's earlier
        // work) is a wait on the device, not host work.
        self.host.wait_s += (wall.elapsed().as_secs_f64() - (t_submitted - t)).max(0.0);
        index
    }
}

/// Records copies of `rows` of chunk `ch`'s output buffer into `to` (the same
/// offsets: row `k` of the chunk's `len` copies at `k·len` values); the bytes.
fn copy_rows(
    enc: &mut wgpu::CommandEncoder,
    ch: &Chunk,
    to: &wgpu::Buffer,
    rows: &[std::ops::Range<usize>],
    esize: usize,
) -> u64 {
    let bytes = |row: usize| (row * ch.len * esize) as u64;
    let mut total = 0;
    for r in rows {
        let size = bytes(r.end) - bytes(r.start);
        enc.copy_buffer_to_buffer(&ch.out_buf, bytes(r.start), to, bytes(r.start), size);
        total += size;
    }
    total
}

/// `ranges` sorted, with overlapping and adjacent ones joined.
fn merge_ranges(mut ranges: Vec<std::ops::Range<usize>>) -> Vec<std::ops::Range<usize>> {
    ranges.sort_unstable_by_key(|r| r.start);
    let mut out: Vec<std::ops::Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The host's per-copy state between solves (tap positions, B'' refactoring scratch).
struct HostState<'a> {
    /// Whether the set-points other than taps and steps may have changed since
    /// the last prepare (false: only taps and shunt steps are looked at).
    setpoints: bool,
    tap_pos: &'a mut [f64],
    /// Shunt step of every copy's shunts at the last prepare (NaN: never).
    shunt_step: &'a mut [f64],
    bpp_a: &'a mut PatternValues,
    bpp_f: &'a mut PatternValues,
    bpp_work: &'a mut Vec<f64>,
    /// Tap-dependent values already formed, by tap position.
    taps: &'a mut TapCache,
}

/// The tap-dependent per-copy values of a network, formed once per tap
/// position (branch) or combination of positions (B'' factors) and reused by
/// every copy and solve that meets it again: taps take few distinct positions.
#[derive(Default)]
pub(crate) struct TapCache {
    /// `(tap-changing trafo j, position bits)` → its branch values.
    branch: std::collections::HashMap<(usize, u64), [f64; 9]>,
    /// Position bits of every tap-changing trafo → the B'' factor values (L,
    /// U, D of the PQ rows; `None`: the network's own factors).
    bpp: std::collections::HashMap<Vec<u64>, Option<Arc<[f64]>>>,
    /// The network's own B'' factor values (L, U, D of the PQ rows).
    base: Option<Arc<[f64]>>,
}

impl TapCache {
    /// Entries kept at most per table (cleared when full: a bound on memory for
    /// batches whose taps wander over many combinations).
    const MAX: usize = 4096;
}

/// The B'' factor values of a chunk's copies as numbered value sets in `bppv`
/// (`n_bpp` values each, set `s` from `s·n_bpp`): copies whose taps stand
/// alike share one set, a copy's `pc` row `p_bset` holds its number, and a
/// tap move writes only that number unless the combination is new to the
/// chunk. At most one set per copy is in use, so `len` sets always suffice:
/// a copy that needs new values and is alone on its set rewrites it in place.
#[derive(Debug)]
pub(crate) struct BppSets {
    /// Set of each copy (`NONE`: none yet).
    of_copy: Vec<u32>,
    /// Copies on each set.
    users: Vec<u32>,
    /// Tap-position bits each set holds the factors for (`None`: a copy's
    /// own values, the Q-limit rounds').
    key: Vec<Option<Vec<u64>>>,
    by_key: std::collections::HashMap<Vec<u64>, u32>,
    free: Vec<u32>,
}

impl BppSets {
    /// Sets for `len` copies.
    pub(crate) fn new(len: usize) -> Self {
        BppSets {
            of_copy: vec![NONE; len],
            users: vec![0; len],
            key: vec![None; len],
            by_key: Default::default(),
            free: (0..len as u32).rev().collect(),
        }
    }

    /// Put copy `lc` on the set for the tap-position bits `key` (`None`: values
    /// of its own): `(set, whether the set's values must be written)`.
    fn assign(&mut self, lc: usize, key: Option<Vec<u64>>) -> (u32, bool) {
        let cur = self.of_copy[lc];
        if let Some(&s) = key.as_ref().and_then(|k| self.by_key.get(k)) {
            if s != cur {
                self.users[s as usize] += 1;
                self.leave(lc);
                self.of_copy[lc] = s;
            }
            return (s, false);
        }
        let s = if cur != NONE && self.users[cur as usize] == 1 {
            // Alone on its set: rewrite it in place.
            if let Some(k) = self.key[cur as usize].take() {
                self.by_key.remove(&k);
            }
            cur
        } else {
            self.leave(lc);
            // At most len − 1 sets are in use by the other copies.
            let s = self.free.pop().expect("a free B'' set");
            self.users[s as usize] = 1;
            self.of_copy[lc] = s;
            s
        };
        if let Some(k) = key {
            self.by_key.insert(k.clone(), s);
            self.key[s as usize] = Some(k);
        }
        (s, true)
    }

    /// Copy `lc` leaves its set (freed when no copy is left on it).
    fn leave(&mut self, lc: usize) {
        let cur = std::mem::replace(&mut self.of_copy[lc], NONE);
        if cur == NONE {
            return;
        }
        let u = &mut self.users[cur as usize];
        *u -= 1;
        if *u == 0 {
            if let Some(k) = self.key[cur as usize].take() {
                self.by_key.remove(&k);
            }
            self.free.push(cur);
        }
    }
}

/// Copy `lc`'s B'' factor values `v()`: its set number into `pc` (row
/// `p_bset`), the values into `bppv` (set-major, [`BppSets`]) when its set is
/// new or rewritten.
fn put_bpp(
    layout: &Layout,
    sets: &mut BppSets,
    (lc, key): (usize, Option<Vec<u64>>),
    v: impl FnOnce() -> Arc<[f64]>,
    pc: &mut impl Put,
    bppv: &mut impl Put,
) {
    let (set, write) = sets.assign(lc, key);
    pc.put(layout.params.p_bset as usize, lc, set as f64);
    if write {
        for (k, &x) in v().iter().enumerate() {
            bppv.put(set as usize, k, x);
        }
    }
}

/// Per-copy inputs of copies `c0..c0 + len` into `pc` and `bppv` (the host mirrors,
/// or the shader port's buffers), B'' refactored for copies whose taps changed (all
/// of them unless `primed`) and put on the chunk's value `sets`. Copies not
/// `active` (`None`: all are; the device skips them) get only their
/// set-points: their shunts, taps (with the warm-start factor of a tap move)
/// and B'' stay as at their last solve, so the next solve that includes
/// them sees every change since then.
#[allow(clippy::too_many_arguments)]
fn prepare_copies(
    p: &Plan,
    inp: &BatchInputs,
    layout: &Layout,
    host: &mut HostState,
    (c0, len, primed): (usize, usize, bool),
    active: Option<&[bool]>,
    pc: &mut impl Put,
    (sets, bppv): (&mut BppSets, &mut impl Put),
) {
    let net = &p.net;
    let (n, nn) = (p.n_pq, p.n_node);
    let n_tap = p.tap_trafos.len();
    let mut y = vec![C64::ZERO; nn];
    let n_shunt = net.shunts.len();
    // Once a chunk is primed, shunts are written again only at the nodes whose
    // values can change (the others keep the plan's constants).
    let all: Vec<usize>;
    let y_nodes = if primed {
        &layout.shunt_nodes[..]
    } else {
        all = (0..nn).collect();
        &all[..]
    };
    // The set-points as they are (the shader forms the injections), table by
    // table.
    if host.setpoints {
        for (table, elements, row) in &layout.setpoints {
            let copies = table.of(inp).slice(ndarray::s![c0..c0 + len, ..]);
            pc.put_columns(*row, copies, elements);
        }
    }
    for lc in 0..len {
        let c = c0 + lc;
        // PV set-points as deviations (|V| − 1), per `plan.pv_nodes`.
        if host.setpoints {
            let r0 = layout.params.p_pv as usize;
            for j in 0..p.pv_nodes.len() {
                pc.put(r0 + j, lc, p.pv_vm(j, inp, c) - 1.0);
            }
        }
        if primed && active.is_some_and(|a| !a[c]) {
            continue;
        }
        // Node shunts: only where a step moved (every node the first time).
        let steps = &mut host.shunt_step[c * n_shunt..(c + 1) * n_shunt];
        let mut moved = !primed;
        for (k, slot) in steps.iter_mut().enumerate() {
            let v = inp.shunt_step[(c, k)];
            if v.to_bits() != slot.to_bits() {
                *slot = v;
                moved = true;
            }
        }
        if moved {
            super::injections::copy_shunts(p, inp, c, &mut y);
            for &i in y_nodes {
                pc.put(i, lc, y[i].re);
                pc.put(nn + i, lc, y[i].im);
            }
        }
        let mut changed = false;
        for (j, &(k, bi)) in p.tap_trafos.iter().enumerate() {
            let pos = inp.trafo_tap_pos[(c, k)];
            let slot = &mut host.tap_pos[c * n_tap + j];
            // Warm-start factor of this solve, as `f − 1` (exact 0 where the tap
            // did not move: written every solve, so it is applied once). The
            // shader ignores it for copies starting cold, as the CPU does.
            let mut g = 0.0;
            if pos.to_bits() != slot.to_bits() {
                if let Some((lv_down, _)) = &layout.tap_down[j] {
                    if let Some(f) = tap_move_factor(&net.trafos[k], *slot, pos, *lv_down) {
                        g = f - 1.0;
                    }
                }
                *slot = pos;
                changed = true;
                if host.taps.branch.len() >= TapCache::MAX {
                    host.taps.branch.clear();
                }
                let v = host
                    .taps
                    .branch
                    .entry((j, pos.to_bits()))
                    .or_insert_with(|| {
                        let pi = trafo_branch(net, &net.trafos[k], pos);
                        let b = &p.branches[bi];
                        branch_values(
                            pi.z,
                            pi.y_sh,
                            pi.ratio,
                            layout.tap_shift[j],
                            layout.phi[b.f],
                            layout.phi[b.t],
                        )
                    });
                for (q, x) in v.iter().enumerate() {
                    pc.put(2 * nn + 9 * j + q, lc, *x);
                }
            }
            pc.put(2 * nn + 9 * n_tap + j, lc, g);
        }
        if changed || !primed {
            let taps = &host.tap_pos[c * n_tap..(c + 1) * n_tap];
            let key: Vec<u64> = taps.iter().map(|x| x.to_bits()).collect();
            // The factors are formed (or found in the cache) only for a
            // combination of taps new to the chunk's sets.
            let values = || {
                if host.taps.bpp.len() >= TapCache::MAX {
                    host.taps.bpp.clear();
                }
                let own = host.taps.bpp.entry(key.clone()).or_insert_with(|| {
                    let base = p.tap_trafos.iter().zip(taps).all(|(&(k, _), &pos)| {
                        net.trafos[k].tap.as_ref().is_some_and(|t| t.pos == pos)
                    });
                    let own =
                        !base && p.bpp_factor_for_taps(taps, host.bpp_a, host.bpp_f, host.bpp_work);
                    own.then(|| {
                        let f = &*host.bpp_f;
                        f.l.iter().chain(&f.u).chain(&f.d[..n]).copied().collect()
                    })
                });
                match own {
                    Some(v) => v.clone(),
                    None => host
                        .taps
                        .base
                        .get_or_insert_with(|| {
                            let (l, u, d) = (&p.bpp.l_val, &p.bpp.u_val, &p.bpp.u_diag_inv);
                            l.iter().chain(u).chain(&d[..n]).copied().collect()
                        })
                        .clone(),
                }
            };
            put_bpp(layout, sets, (lc, Some(key.clone())), values, pc, bppv);
        }
    }
}

/// The distinct nodes of `nodes`, ascending.
fn sorted_nodes(nodes: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut v: Vec<usize> = nodes.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// CPU time of the calling thread in seconds (the host phases of
/// [`HostTime`]: time the thread was descheduled or blocked is not counted).
/// Off unix, wall time since the first call.
fn thread_cpu_s() -> f64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for the call to write.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        }
    }
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Check a solve's inputs: every set-point where `setpoints` may have
/// changed, else only the taps and steps (`controls_mut`): a sequential range
/// check, and the full one to name the value where it fails.
fn check_inputs(plan: &Plan, inputs: &BatchInputs, setpoints: bool) -> Result<()> {
    if setpoints {
        inputs.validate(&plan.net)?;
        plan.check_gen_setpoints(inputs, None)?;
    } else if !controls_in_range(&plan.net, inputs) {
        inputs.validate_unchecked(&plan.net, None, &|_| true)?;
    }
    Ok(())
}

/// Whether every copy's tap positions and shunt steps are finite and within
/// their ranges (the checks of [`BatchInputs::validate`] on the controls).
fn controls_in_range(net: &crate::network::Network, inp: &BatchInputs) -> bool {
    if inp.trafo_tap_pos.ncols() != net.trafos.len() || inp.shunt_step.ncols() != net.shunts.len() {
        return false;
    }
    let taps: Vec<(usize, f64, f64)> = net
        .trafos
        .iter()
        .enumerate()
        .filter_map(|(k, t)| t.tap.as_ref().map(|tap| (k, tap.min, tap.max)))
        .collect();
    let in_range = |row: ndarray::ArrayView1<f64>, c: usize| {
        row.iter().all(|v| v.is_finite())
            && taps.iter().all(|&(k, lo, hi)| {
                let v = inp.trafo_tap_pos[(c, k)];
                v >= lo && v <= hi
            })
    };
    (0..inp.batch()).all(|c| {
        in_range(inp.trafo_tap_pos.row(c), c)
            && inp
                .shunt_step
                .row(c)
                .iter()
                .zip(&net.shunts)
                .all(|(&v, s)| v >= 0.0 && v <= s.max_step as f64)
    })
}

/// Which result rows a solve reads back into the tables.
enum Unpack<'a> {
    /// Every table of every copy.
    All,
    /// The convergence columns and, of every copy, the columns of the tables
    /// named (index in [`BatchResults::tables`] order, columns), ext_grid Q
    /// and the gen tables whole ([`PowerFlow::limit_results`]).
    Columns(&'a [(usize, Vec<usize>)]),
    /// The convergence columns, `vm_pu` at `vm_buses` (`None`: every bus)
    /// and `va_degree` at `va_buses`, of the copies `active` marks (`None`:
    /// all): a deferred solve ([`PowerFlow::defer_results_at`]).
    Voltages {
        vm_buses: Option<&'a [usize]>,
        va_buses: &'a [usize],
        active: Option<&'a [bool]>,
    },
}

/// What [`unpack`] writes into, and reads the gens' set-points from.
struct Tables<'a> {
    plan: &'a Plan,
    inputs: &'a BatchInputs,
    sites: &'a super::injections::GenSites,
    results: &'a mut BatchResults,
}

/// [`unpack`] of read-back bytes of `esize`-byte values (f32 or f64 shader).
fn unpack_bytes(to: Tables, bytes: &[u8], esize: usize, (c0, b): (usize, usize), what: Unpack) {
    if esize == 8 {
        unpack(to, bytemuck::cast_slice::<u8, f64>(bytes), c0, b, what);
    } else {
        unpack(to, bytemuck::cast_slice::<u8, f32>(bytes), c0, b, what);
    }
}

/// Copies `c0 .. c0 + b` of the result tables from the shader's output rows `out`
/// (batch-interleaved, `row·b + copy`).
fn unpack<T: Copy + Into<f64>>(to: Tables, out: &[T], c0: usize, b: usize, what: Unpack) {
    let (nb, nl, nt, ne) = to.plan.sizes();
    let r = to.results;
    let (vm_cols, va_cols, active, limit) = match what {
        Unpack::All => (None, None, None, None),
        Unpack::Voltages {
            vm_buses,
            va_buses,
            active,
        } => (vm_buses, Some(va_buses), active, None),
        Unpack::Columns(limit) => (None, None, None, Some(limit)),
    };
    let keep = |c: usize| active.is_none_or(|a| a[c]);
    let row = |k: usize| &out[k * b..(k + 1) * b];
    for lc in (0..b).filter(|&lc| keep(c0 + lc)) {
        let c = c0 + lc;
        r.converged[c] = row(0)[lc].into() != 0.0;
        r.iterations[c] = row(1)[lc].into() as u32;
        r.max_mismatch_pu[c] = row(2)[lc].into();
    }
    let mut o = 3;
    let span = (out, c0, b, active);
    if let Some(limit) = limit {
        // The device's tables in `BatchResults::tables` order and their rows.
        let rows = [nb, nb, nl, nl, nl, nl, nt, nt, nt, nt, nt, ne, ne];
        let mut gens = false;
        for (i, cols) in limit {
            if *i >= rows.len() - 1 {
                // ext_grid Q and the gen tables: whole, as `All` forms them.
                gens = true;
                continue;
            }
            let at = 3 + rows[..*i].iter().sum::<usize>();
            fill_table(table_mut(r, *i), span, at, Some(cols));
        }
        // Gen P now (the set-points as solved): `results` completes the
        // other tables later, when the inputs may have changed.
        fill_gen_p(to.plan, to.inputs, r, (c0, b));
        if !gens {
            return;
        }
        o += rows[..rows.len() - 2].iter().sum::<usize>();
        fill_table(&mut r.ext_grid_q_mvar, span, o + ne, None);
        split_gens(to.plan, to.inputs, to.sites, r, (out, c0, b), o + 2 * ne);
        return;
    }
    fill_table(&mut r.vm_pu, span, o, vm_cols);
    o += nb;
    fill_table(&mut r.va_degree, span, o, va_cols);
    o += nb;
    if va_cols.is_some() {
        return;
    }
    for table in [
        &mut r.line_p_from_mw,
        &mut r.line_q_from_mvar,
        &mut r.line_i_ka,
        &mut r.line_loading_percent,
    ] {
        fill_table(table, span, o, None);
        o += nl;
    }
    for table in [
        &mut r.trafo_loading_percent,
        &mut r.trafo_p_hv_mw,
        &mut r.trafo_q_hv_mvar,
        &mut r.trafo_p_lv_mw,
        &mut r.trafo_q_lv_mvar,
    ] {
        fill_table(table, span, o, None);
        o += nt;
    }
    fill_table(&mut r.ext_grid_p_mw, span, o, None);
    fill_table(&mut r.ext_grid_q_mvar, span, o + ne, None);
    split_gens(to.plan, to.inputs, to.sites, r, (out, c0, b), o + 2 * ne);
}

/// Result table `i` in [`BatchResults::tables`] order.
fn table_mut(r: &mut BatchResults, i: usize) -> &mut ndarray::Array2<f64> {
    (r.tables_mut().into_iter().nth(i)).expect("a table index below 15")
}

/// Gen nodes' Q balance (MVar, output rows from `o`), split among their gens
/// and ext_grids on the host as the CPU does; gen P is the set-point.
fn split_gens<T: Copy + Into<f64>>(
    plan: &Plan,
    inputs: &BatchInputs,
    sites: &super::injections::GenSites,
    r: &mut BatchResults,
    (out, c0, b): (&[T], usize, usize),
    o: usize,
) {
    if plan.net.gens.is_empty() && sites.sites.is_empty() {
        return;
    }
    fill_gen_p(plan, inputs, r, (c0, b));
    for lc in 0..b {
        let c = c0 + lc;
        r.gen_q_mvar.row_mut(c).fill(0.0);
        let mut eq = r.ext_grid_q_mvar.row_mut(c);
        let eq = eq.as_slice_mut().expect("standard layout");
        let mut gq = r.gen_q_mvar.row_mut(c);
        let gq = gq.as_slice_mut().expect("standard layout");
        for (j, site) in sites.sites.iter().enumerate() {
            let q_bus = out[(o + j) * b + lc].into();
            sites.split_q(plan, site, q_bus, eq, gq);
        }
    }
}

/// Gen P of copies `c0 .. c0 + b`: the set-point `p_mw · scaling` (0 where
/// not solved).
fn fill_gen_p(plan: &Plan, inputs: &BatchInputs, r: &mut BatchResults, (c0, b): (usize, usize)) {
    for c in c0..c0 + b {
        for (k, n) in plan.gen_node.iter().enumerate() {
            r.gen_p_mw[(c, k)] = if n.is_some() {
                inputs.gen_p_mw[(c, k)] * plan.net.gens[k].scaling
            } else {
                0.0
            };
        }
    }
}

/// Copies per block of [`fill_table`]'s transposition (their rows of a table
/// stay in the cache while its columns are read).
const UNPACK_BLOCK: usize = 32;

/// `table[c0 + lc][j] = out[(o + j)·b + lc]` for the columns `cols` (`None`:
/// all) and the copies `active` marks (`None`: all) (de-interleave one result table, in blocks
/// of copies).
fn fill_table<T: Copy + Into<f64>>(
    table: &mut ndarray::Array2<f64>,
    (out, c0, b, active): (&[T], usize, usize, Option<&[bool]>),
    o: usize,
    cols: Option<&[usize]>,
) {
    let n = table.ncols();
    if n == 0 {
        return;
    }
    let t = table.as_slice_mut().expect("standard layout");
    let keep = |c: usize| active.is_none_or(|a| a[c]);
    let all: Vec<usize>;
    let cols = match cols {
        Some(c) => c,
        None => {
            all = (0..n).collect();
            &all
        }
    };
    for l0 in (0..b).step_by(UNPACK_BLOCK) {
        let l1 = (l0 + UNPACK_BLOCK).min(b);
        let every = (l0..l1).all(|lc| keep(c0 + lc));
        if !every && !(l0..l1).any(|lc| keep(c0 + lc)) {
            continue;
        }
        for &j in cols {
            let src = &out[(o + j) * b + l0..(o + j) * b + l1];
            let dst = &mut t[(c0 + l0) * n + j..];
            if every {
                for (k, v) in src.iter().enumerate() {
                    dst[k * n] = (*v).into();
                }
            } else {
                for (k, v) in src.iter().enumerate() {
                    if keep(c0 + l0 + k) {
                        dst[k * n] = (*v).into();
                    }
                }
            }
        }
    }
}

/// The bind group layout of `Params` and the six buffers.
fn bind_group_layout(device: &wgpu::Device) -> wgpu::BindGroupLayout {
    let ro = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("fdpf"),
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
            ro(1, true),
            ro(2, true),
            ro(3, true),
            ro(4, true),
            ro(5, false),
            ro(6, false),
            ro(7, true),
        ],
    })
}

fn make_chunk(
    ctx: &GpuContext,
    layout: &Layout,
    bgl: &wgpu::BindGroupLayout,
    (idx, sh): (&wgpu::Buffer, &wgpu::Buffer),
    precision: GpuPrecision,
    c0: usize,
    len: usize,
) -> Chunk {
    use wgpu::BufferUsages as U;
    let b = (len * precision_bytes(precision)) as u64;
    let mut params = layout.params;
    params.batch = len as u32;
    let params_buf = init_buffer(ctx, "fdpf params", bytemuck::bytes_of(&params), U::UNIFORM);
    let pc_buf = storage(
        ctx,
        "fdpf per-copy inputs",
        layout.rows_pc as u64 * b,
        U::STORAGE | U::COPY_DST,
    );
    let bpp_buf = storage(
        ctx,
        "fdpf per-copy B''",
        layout.rows_bpp as u64 * b,
        U::STORAGE | U::COPY_DST,
    );
    // Work starts zeroed with every copy cold.
    let mut work = vec![0.0f64; layout.rows_work * len];
    work[layout.row_cold * len..(layout.row_cold + 1) * len].fill(1.0);
    let work32: Vec<f32>;
    let work_bytes: &[u8] = match precision {
        GpuPrecision::F32 => {
            work32 = work.iter().map(|&x| x as f32).collect();
            bytemuck::cast_slice(&work32)
        }
        GpuPrecision::F64 => bytemuck::cast_slice(&work),
    };
    let work_buf = init_buffer(
        ctx,
        "fdpf state",
        work_bytes,
        U::STORAGE | U::COPY_DST | U::COPY_SRC,
    );
    let out_bytes = layout.rows_out as u64 * b;
    let out_buf = storage(ctx, "fdpf results", out_bytes, U::STORAGE | U::COPY_SRC);
    let staging = [0, 1].map(|_| {
        storage(
            ctx,
            "fdpf results readback",
            out_buf.size(),
            U::MAP_READ | U::COPY_DST,
        )
    });
    fn entry(binding: u32, buf: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
        wgpu::BindGroupEntry {
            binding,
            resource: buf.as_entire_binding(),
        }
    }
    // The copies a solve visits (`copy_of`): every copy (NONE) to begin with.
    let list = vec![NONE; len + 1];
    let list_buf = init_buffer(
        ctx,
        "fdpf copy list",
        bytemuck::cast_slice(&list),
        U::STORAGE | U::COPY_DST,
    );
    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("fdpf"),
        layout: bgl,
        entries: &[
            entry(0, &params_buf),
            entry(1, idx),
            entry(2, sh),
            entry(3, &pc_buf),
            entry(4, &bpp_buf),
            entry(5, &work_buf),
            entry(6, &out_buf),
            entry(7, &list_buf),
        ],
    });
    let queries = ctx.timestamps.then(|| {
        let q = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("fdpf time"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolve = storage(ctx, "fdpf time resolve", 16, U::QUERY_RESOLVE | U::COPY_SRC);
        let read = storage(ctx, "fdpf time read", 16, U::MAP_READ | U::COPY_DST);
        (q, resolve, read)
    });
    Chunk {
        primed: false,
        _params: params_buf,
        c0,
        len,
        pc: Mirror::new(layout.rows_pc, len, precision),
        // Set-major: `len` value sets of `rows_bpp` values.
        bpp: Mirror::new(len, layout.rows_bpp, precision),
        sets: BppSets::new(len),
        pc_buf,
        bpp_buf,
        work_buf,
        out_buf,
        list_buf,
        listed: false,
        staging,
        held: None,
        bind_group,
        queries,
    }
}

/// Bytes per value of the device buffers at `precision`.
fn precision_bytes(precision: GpuPrecision) -> usize {
    match precision {
        GpuPrecision::F32 => 4,
        GpuPrecision::F64 => 8,
    }
}

/// Bytes one copy of `plan` needs on the GPU backend: `(host, device)`. Device:
/// the per-copy inputs, B'' values, state and results buffers (f32) and the
/// results' two readback copies; host: their upload mirrors, the last prepared
/// taps and shunt steps, the f64 inputs and results.
pub(crate) fn bytes_per_copy(plan: &Plan) -> (usize, usize) {
    let l = build_shared(plan).2;
    let device = 4 * (l.rows_pc + l.rows_bpp + l.rows_work + 3 * l.rows_out);
    let host = 4 * (l.rows_pc + l.rows_bpp)
        + 8 * (plan.tap_trafos.len() + plan.net.shunts.len())
        + super::memory::io_bytes_per_copy(&plan.net);
    (host, device)
}

/// The order in which the shader's result pass forms branch currents, as codes
/// `4·k + mode` over the GPU branches `k` (`order[k]` is the plan's branch), and
/// each GPU branch's result slot (line `l`: `l`, trafo `t`: `nl + t`, else NONE).
///
/// Mode 0 (first): from the branch's voltages, whose f32 noise grows with the
/// series admittance. Modes 1 and 2: by Kirchhoff's current law at the from (1)
/// or to (2) node, a PQ node all of whose other branches come earlier. Slack and
/// PV nodes (injection not known) are taken as one ground node; a spanning tree
/// of largest series admittances (Kruskal) is peeled from its leaves inwards
/// (modes 1, 2), and the chords, one per independent mesh and the branches
/// between slack and PV nodes, are the mode-0 branches: none on a radial
/// network, and on a meshed one each mesh's smallest admittance.
fn branch_order(p: &Plan, order: &[usize], gpu_branch: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let nn = p.n_node;
    let peelable = |i: usize| i < p.n_pq && !p.is_pv[i];
    // Union-find with every slack and PV node in one set (the ground).
    let mut parent: Vec<usize> = (0..nn).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let ground = (0..nn).find(|&i| !peelable(i));
    if let Some(g) = ground {
        for i in (0..nn).filter(|&i| !peelable(i)) {
            parent[i] = g;
        }
    }
    let mut by_y: Vec<usize> = (0..order.len()).collect();
    let y = |k: usize| p.branches[order[k]].z.inv().abs();
    by_y.sort_by(|&a, &b| y(b).total_cmp(&y(a)).then(a.cmp(&b)));
    let mut tree = vec![false; order.len()];
    for &k in &by_y {
        let br = &p.branches[order[k]];
        let (rf, rt) = (find(&mut parent, br.f), find(&mut parent, br.t));
        if rf != rt {
            parent[rf] = rt;
            tree[k] = true;
        }
    }
    // Peel the tree from its leaves (PQ nodes with one tree branch left).
    let mut at_node: Vec<Vec<usize>> = vec![vec![]; nn];
    for k in (0..order.len()).filter(|&k| tree[k]) {
        let br = &p.branches[order[k]];
        at_node[br.f].push(k);
        at_node[br.t].push(k);
    }
    let mut left: Vec<usize> = at_node.iter().map(|v| v.len()).collect();
    let mut done = vec![false; order.len()];
    let mut peeled = vec![];
    let mut stack: Vec<usize> = (0..nn).filter(|&i| peelable(i) && left[i] == 1).collect();
    while let Some(i) = stack.pop() {
        if left[i] != 1 {
            continue;
        }
        let Some(&k) = at_node[i].iter().find(|&&k| !done[k]) else {
            continue;
        };
        done[k] = true;
        let br = &p.branches[order[k]];
        let (mode, other) = if br.f == i { (1, br.t) } else { (2, br.f) };
        peeled.push(4 * k as u32 + mode);
        left[i] = 0;
        left[other] -= 1;
        if peelable(other) && left[other] == 1 {
            stack.push(other);
        }
    }
    // Chords (and anything not peeled) first, from voltages.
    let mut codes: Vec<u32> = (0..order.len())
        .filter(|&k| !done[k])
        .map(|k| 4 * k as u32)
        .collect();
    codes.extend(peeled);
    let mut slot = vec![NONE; order.len()];
    for (l, b) in p.line_branch.iter().enumerate() {
        if let Some(b) = *b {
            slot[gpu_branch[b] as usize] = l as u32;
        }
    }
    let nl = p.net.lines.len();
    for (t, b) in p.trafo_branch.iter().enumerate() {
        if let Some(b) = *b {
            slot[gpu_branch[b] as usize] = (nl + t) as u32;
        }
    }
    (codes, slot)
}

/// The shared `idx` (u32) and `sh` (f32) arrays and the layout of every buffer.
fn build_shared(p: &Plan) -> (Vec<u32>, Vec<f32>, Layout) {
    let (idx, sh, layout) = build_shared64(p);
    (idx, sh.iter().map(|&x| x as f32).collect(), layout)
}

/// [`build_shared`] with `sh` before its rounding to f32.
fn build_shared64(p: &Plan) -> (Vec<u32>, Vec<f64>, Layout) {
    let net = &p.net;
    let (n, nn) = (p.n_pq, p.n_node);
    let (nb, nl, nt, ne) = p.sizes();
    let sn = net.sn_mva;
    // Reference frame: the no-load voltages (slack: its own voltage).
    let mut phi = vec![0.0; nn];
    let mut u0 = vec![0.0; nn];
    for i in 0..nn {
        let v = if i < n {
            p.v_noload[i]
        } else {
            p.slack_v[i - n]
        };
        phi[i] = v.arg();
        u0[i] = v.abs() - 1.0;
    }
    let shift_of = |src: BranchSource| match src {
        BranchSource::Trafo(k) => net.trafos[k].shift_degree.to_radians(),
        BranchSource::Trafo3w(k, 1) => net.trafo3ws[k].shift_mv_degree.to_radians(),
        BranchSource::Trafo3w(k, 2) => net.trafo3ws[k].shift_lv_degree.to_radians(),
        _ => 0.0,
    };
    // GPU branch order: fixed branches, then the tap-changing trafos.
    let mut gpu_branch = vec![NONE; p.branches.len()];
    let order: Vec<usize> = p
        .fixed_branches
        .iter()
        .copied()
        .chain(p.tap_trafos.iter().map(|&(_, b)| b))
        .collect();
    for (k, &b) in order.iter().enumerate() {
        gpu_branch[b] = k as u32;
    }
    let mut prm = Params {
        n_pq: n as u32,
        n_node: nn as u32,
        n_br: order.len() as u32,
        n_fixed: p.fixed_branches.len() as u32,
        nb: nb as u32,
        nl: nl as u32,
        nt: nt as u32,
        ne: ne as u32,
        max_iter: p.options.max_iterations,
        polish: POLISH_ITERATIONS,
        tol: 0.0,
        rot_re: p.rot.re as f32,
        rot_im: p.rot.im as f32,
        diverge: 1e6,
        sn: sn as f32,
        pass_iters: u32::MAX,
        ..Default::default()
    };

    let mut idx: Vec<u32> = vec![];
    let put = |v: &[u32], idx: &mut Vec<u32>| -> u32 {
        let o = idx.len() as u32;
        idx.extend_from_slice(v);
        o
    };
    let ft: Vec<u32> = order
        .iter()
        .flat_map(|&b| [p.branches[b].f as u32, p.branches[b].t as u32])
        .collect();
    prm.i_br = put(&ft, &mut idx);
    prm.i_bp_lptr = put(&p.bp.l_ptr, &mut idx);
    prm.i_bp_lcol = put(&p.bp.l_col, &mut idx);
    prm.i_bp_uptr = put(&p.bp.u_ptr, &mut idx);
    prm.i_bp_ucol = put(&p.bp.u_col, &mut idx);
    prm.i_bpp_lptr = put(&p.bpp.l_ptr, &mut idx);
    prm.i_bpp_lcol = put(&p.bpp.l_col, &mut idx);
    prm.i_bpp_uptr = put(&p.bpp.u_ptr, &mut idx);
    prm.i_bpp_ucol = put(&p.bpp.u_col, &mut idx);
    let bus: Vec<u32> = p
        .bus_node
        .iter()
        .map(|x| x.map_or(NONE, |i| i as u32))
        .collect();
    prm.i_bus = put(&bus, &mut idx);
    let line: Vec<u32> = p
        .line_branch
        .iter()
        .map(|x| x.map_or(NONE, |b| gpu_branch[b]))
        .collect();
    prm.i_line = put(&line, &mut idx);
    let trafo: Vec<u32> = p
        .trafo_branch
        .iter()
        .map(|x| x.map_or(NONE, |b| gpu_branch[b]))
        .collect();
    prm.i_trafo = put(&trafo, &mut idx);
    let ext: Vec<u32> = p
        .ext_grid_node
        .iter()
        .map(|x| x.map_or(NONE, |(i, _)| i as u32))
        .collect();
    prm.i_ext = put(&ext, &mut idx);
    // Warm-start node lists of the tap-changing trafos (CSR; empty where `None`).
    let tap_down = downstream_nodes(p);
    let mut down_ptr = vec![0u32];
    let mut down = vec![];
    for d in &tap_down {
        if let Some((_, nodes)) = d {
            down.extend_from_slice(nodes);
        }
        down_ptr.push(down.len() as u32);
    }
    prm.i_down_ptr = put(&down_ptr, &mut idx);
    prm.i_down = put(&down, &mut idx);
    // PV nodes: per PQ-numbered node its row among the PV set-points (NONE: PQ);
    // the gen nodes whose Q balance the shader writes.
    let mut pv_row = vec![NONE; n];
    for (j, &i) in p.pv_nodes.iter().enumerate() {
        pv_row[i] = j as u32;
    }
    prm.i_pv = put(&pv_row, &mut idx);
    let sites: Vec<u32> = super::injections::GenSites::new(p)
        .sites
        .iter()
        .map(|s| s.node as u32)
        .collect();
    prm.n_site = sites.len() as u32;
    prm.i_site = put(&sites, &mut idx);
    let (order_codes, slot) = branch_order(p, &order, &gpu_branch);
    prm.i_order = put(&order_codes, &mut idx);
    prm.i_slot = put(&slot, &mut idx);
    prm.nnz_bpp_l = p.bpp.l_col.len() as u32;
    prm.nnz_bpp_u = p.bpp.u_col.len() as u32;

    let mut sh: Vec<f64> = vec![];
    let putf = |v: &[f64], sh: &mut Vec<f64>| -> u32 {
        let o = sh.len() as u32;
        sh.extend_from_slice(v);
        o
    };
    let fixed: Vec<f64> = p
        .fixed_branches
        .iter()
        .flat_map(|&b| {
            let br = &p.branches[b];
            branch_values(
                br.z,
                br.y_sh,
                br.ratio,
                shift_of(br.source),
                phi[br.f],
                phi[br.t],
            )
        })
        .collect();
    prm.s_br = putf(&fixed, &mut sh);
    prm.s_bp_l = putf(&p.bp.l_val, &mut sh);
    prm.s_bp_u = putf(&p.bp.u_val, &mut sh);
    prm.s_bp_d = putf(&p.bp.u_diag_inv, &mut sh);
    prm.s_u0 = putf(&u0, &mut sh);
    let phi_deg: Vec<f64> = phi.iter().map(|x| x.to_degrees()).collect();
    prm.s_phi = putf(&phi_deg, &mut sh);
    let line_k: Vec<f64> = net
        .lines
        .iter()
        .flat_map(|l| {
            let base_i = sn / SQRT3;
            [
                base_i / net.buses[l.from_bus].vn_kv,
                base_i / net.buses[l.to_bus].vn_kv,
                100.0 / (l.max_i_ka * l.df * l.parallel as f64),
            ]
        })
        .collect();
    prm.s_line = putf(&line_k, &mut sh);
    let trafo_k: Vec<f64> = net
        .trafos
        .iter()
        .flat_map(|t| {
            let k = 100.0 / (t.sn_mva * t.parallel as f64 * t.df);
            [
                sn * t.vn_hv_kv / net.buses[t.hv_bus].vn_kv * k,
                sn * t.vn_lv_kv / net.buses[t.lv_bus].vn_kv * k,
            ]
        })
        .collect();
    prm.s_trafo = putf(&trafo_k, &mut sh);
    let ext_k: Vec<f64> = p
        .ext_grid_node
        .iter()
        .map(|x| x.map_or(0.0, |(_, cnt)| sn / cnt as f64))
        .collect();
    prm.s_ext = putf(&ext_k, &mut sh);
    // Per-node f32 noise floor of the mismatch: the rounding of dW (≈ eps·|dW|) at
    // both ends of a branch makes ≈ 2·eps·|ys|·|dW| of current noise, so the shader
    // accepts |ΔS_i| ≤ max(tol, k_i·(|dW_i| + 0.01)) with k_i = 8·eps·Σ|ys| (margin 4).
    let mut k_node = vec![0.0; nn];
    for b in &p.branches {
        let y = b.z.inv().abs();
        k_node[b.f] += y;
        k_node[b.t] += y;
    }
    // f64: the same floor at f64's epsilon (far below any tolerance), no polish.
    let (eps, floor, polish) = match p.options.gpu_precision {
        GpuPrecision::F32 => (f32::EPSILON as f64, F32_TOLERANCE_PU, POLISH_ITERATIONS),
        GpuPrecision::F64 => (f64::EPSILON, 0.0, 0),
    };
    let tol_node: Vec<f64> = k_node.iter().map(|k| 8.0 * 0.5 * eps * k).collect();
    prm.s_tol = putf(&tol_node, &mut sh);
    prm.tol = p.options.tolerance_pu.max(floor) as f32;
    prm.polish = polish;

    // Per-copy rows of `pc`: node shunts (re, im), tap-changing branches,
    // warm-start factors, PV set-points, the released PV nodes' held Q, the
    // set-points of loads, sgens, storage and gens, the B'' value set.
    let n_tap = p.tap_trafos.len();
    let n_pv = p.pv_nodes.len();
    let r_pv = 2 * nn + 10 * n_tap;
    (prm.p_pv, prm.p_pvq) = if p.has_pv() {
        (r_pv as u32, (r_pv + n_pv) as u32)
    } else {
        (NONE, NONE)
    };
    let p_set = r_pv + 2 * n_pv;
    // The node injections as terms over the set-point rows, two segments per
    // node (loads, sgens and storage; gens, added after the ZIP parts), each
    // term `(P row, Q row or NONE, scaling row or NONE)` with its factor, in
    // `copy_specified`'s terms; a storage unit's constant Q joins the node's
    // constant part.
    let inv_sn = 1.0 / sn;
    let in_service = |nodes: &[Option<usize>]| -> Vec<(usize, usize)> {
        (nodes.iter().enumerate())
            .filter_map(|(k, n)| n.map(|i| (k, i)))
            .collect()
    };
    let (loads, sgens) = (in_service(&p.load_node), in_service(&p.sgen_node));
    let (storages, gens) = (in_service(&p.storage_node), in_service(&p.gen_node));
    let mut setpoints = vec![];
    let mut next = p_set;
    // The rows of `table` for `elements` (the k-th element's row: first + k).
    let mut block = |table: SetPoint, elements: &[(usize, usize)]| {
        let first = next;
        next += elements.len();
        setpoints.push((table, elements.iter().map(|e| e.0).collect(), first));
        first as u32
    };
    let r_lp = block(SetPoint::LoadP, &loads);
    let r_lq = block(SetPoint::LoadQ, &loads);
    let r_ls = block(SetPoint::LoadScaling, &loads);
    let r_sp = block(SetPoint::SgenP, &sgens);
    let r_sq = block(SetPoint::SgenQ, &sgens);
    let r_st = block(SetPoint::StorageP, &storages);
    let r_gp = block(SetPoint::GenP, &gens);
    // A term: its `pc` rows and factor.
    type Term = ([u32; 3], f64);
    let mut segs: Vec<[Vec<Term>; 2]> = vec![Default::default(); nn];
    let mut sbase = p.node_s_const.clone();
    for (j, &(_, i)) in loads.iter().enumerate() {
        let j = j as u32;
        segs[i][0].push(([r_lp + j, r_lq + j, r_ls + j], -inv_sn));
    }
    for (j, &(k, i)) in sgens.iter().enumerate() {
        let j = j as u32;
        segs[i][0].push(([r_sp + j, r_sq + j, NONE], net.sgens[k].scaling * inv_sn));
    }
    for (j, &(k, i)) in storages.iter().enumerate() {
        let f = net.storages[k].scaling * inv_sn;
        segs[i][0].push(([r_st + j as u32, NONE, NONE], -f));
        sbase[i].im -= net.storages[k].q_mvar * f;
    }
    for (j, &(k, i)) in gens.iter().enumerate() {
        segs[i][1].push(([r_gp + j as u32, NONE, NONE], net.gens[k].scaling * inv_sn));
    }
    let mut inj_ptr = vec![0u32];
    let (mut terms, mut factors) = (vec![], vec![]);
    for seg in segs.iter().flatten() {
        for (rows, f) in seg {
            terms.extend_from_slice(rows);
            factors.push(*f);
        }
        inj_ptr.push(factors.len() as u32);
    }
    prm.i_inj_ptr = put(&inj_ptr, &mut idx);
    prm.i_inj = put(&terms, &mut idx);
    prm.s_inj = putf(&factors, &mut sh);
    let sbase: Vec<f64> = (sbase.iter().map(|x| x.re))
        .chain(sbase.iter().map(|x| x.im))
        .collect();
    prm.s_sbase = putf(&sbase, &mut sh);
    let zip: Vec<f64> = p.node_zip[..n].iter().flatten().copied().collect();
    prm.s_zip = putf(&zip, &mut sh);
    // `work`: u, θ, dW, J, x, the cold flag and six loop rows, S_spec, ZIP parts.
    prm.w_s = (6 * nn + n + 7) as u32;
    prm.w_zip = if p.has_zip {
        prm.w_s + 2 * nn as u32
    } else {
        NONE
    };
    let rows_zip = if p.has_zip { 4 * n } else { 0 };
    let n_site = prm.n_site as usize;
    let rows_pc = next;
    let rows_bpp = p.bpp.l_col.len() + p.bpp.u_col.len() + n;
    prm.p_bset = rows_pc as u32;
    prm.n_bpp = rows_bpp as u32;
    let layout = Layout {
        params: prm,
        rows_pc: rows_pc + 1,
        rows_bpp,
        rows_work: 6 * nn + n + 7 + 2 * nn + rows_zip,
        rows_out: 3 + 2 * nb + 4 * nl + 5 * nt + 2 * ne + n_site,
        row_cold: 6 * nn + n,
        passes: 1,
        phi,
        tap_shift: p
            .tap_trafos
            .iter()
            .map(|&(k, _)| net.trafos[k].shift_degree.to_radians())
            .collect(),
        tap_down,
        n_terms: factors.len(),
        setpoints,
        shunt_nodes: sorted_nodes(p.shunt_node.iter().flatten().copied()),
    };
    (idx, sh, layout)
}

impl PowerFlow for GpuBatch {
    fn plan(&self) -> Option<&Plan> {
        Some(&self.plan)
    }
    fn describe(&self) -> String {
        let chunks = if self.chunks.len() > 1 {
            format!(", {} dispatches", self.chunks.len())
        } else {
            String::new()
        };
        format!(
            "gpu ({} WGSL on {}{chunks})",
            self.plan.options.gpu_precision, self.ctx.info
        )
    }
    fn batch(&self) -> usize {
        self.results.batch()
    }
    fn inputs(&self) -> &BatchInputs {
        &self.inputs
    }
    fn inputs_mut(&mut self) -> &mut BatchInputs {
        self.setpoints = true;
        &mut self.inputs
    }
    fn controls_mut(&mut self) -> (&mut ndarray::Array2<f64>, &mut ndarray::Array2<f64>) {
        (&mut self.inputs.trafo_tap_pos, &mut self.inputs.shunt_step)
    }
    fn solve_active(&mut self, active: &[bool]) -> Result<SolveSummary> {
        super::batch::check_active(active, self.batch())?;
        // Only the active copies are prepared and solved on the device; the
        // others keep their state and last results (a deferred solve reads
        // back only the active ones). The Q-limit rounds solve every copy.
        if !self.plan.options.enforce_q_lims {
            self.active = Some(active.to_vec());
        }
        let r = self.solve();
        self.active = None;
        r
    }
    fn defer_results(&mut self, va_buses: &[usize]) {
        self.defer_at(None, va_buses);
    }
    fn defer_results_at(&mut self, vm_buses: &[usize], va_buses: &[usize]) {
        self.defer_at(Some(vm_buses), va_buses);
    }
    fn finish_results(&mut self) {
        if self.deferred.take().is_none() {
            return;
        }
        let t = thread_cpu_s();
        let esize = precision_bytes(self.plan.options.gpu_precision);
        // The deferred solve's readback held only voltages: the rows the
        // tables need now, from the output buffer (the last solve's).
        let rows = self.readback_rows(None, self.limit.as_deref());
        for ci in 0..self.chunks.len() {
            let Some(h) = self.chunks[ci].held else {
                continue;
            };
            let ch = &self.chunks[ci];
            ch.staging[h].unmap();
            let wall = Instant::now();
            let read = self.read_rows(ch, &ch.staging[h], &rows, esize);
            self.host.wait_s += wall.elapsed().as_secs_f64();
            let ch = &mut self.chunks[ci];
            ch.held = None;
            let Ok(bytes) = read else {
                continue;
            };
            self.host.read_bytes += bytes;
            if let Ok(view) = ch.staging[h].slice(..).get_mapped_range() {
                let to = Tables {
                    plan: &self.plan,
                    inputs: &self.inputs,
                    sites: &self.gen_sites,
                    results: &mut self.results,
                };
                let what = match self.limit.as_deref() {
                    Some(limit) => Unpack::Columns(limit),
                    None => Unpack::All,
                };
                unpack_bytes(to, &view, esize, (ch.c0, ch.len), what);
            }
            if self.limit.is_some() {
                // The rest when `results` is called.
                ch.held = Some(h);
            } else {
                ch.staging[h].unmap();
            }
        }
        self.full = std::sync::OnceLock::new();
        self.lazy = self.limit.is_some();
        self.host.unpack_s += thread_cpu_s() - t;
    }
    fn limit_results(&mut self, columns: Option<super::batch::ResultColumns>) {
        if self.plan.options.enforce_q_lims {
            // The Q-limit rounds read every copy's gen Q after each solve.
            return;
        }
        let names = self.results.tables().map(|(name, _)| name);
        self.limit = columns.map(|cols| {
            (cols.tables.into_iter())
                .filter_map(|(name, c)| {
                    let i = names.iter().position(|&n| n == name)?;
                    let n = table_mut(&mut self.results, i).ncols();
                    Some((i, c.into_iter().filter(|&j| j < n).collect()))
                })
                .collect()
        });
    }
    fn limited_results(&self) -> &BatchResults {
        &self.results
    }
    fn solve(&mut self) -> Result<SolveSummary> {
        let t = thread_cpu_s();
        if !std::mem::take(&mut self.checked) {
            check_inputs(&self.plan, &self.inputs, self.setpoints)?;
        }
        self.host.check_s += thread_cpu_s() - t;
        let q_lims = self.plan.options.enforce_q_lims;
        if q_lims {
            self.q_reset();
        }
        self.run()?;
        if q_lims {
            self.q_rounds()?;
        }
        let t = thread_cpu_s();
        let summary = super::cpu::summary(&self.results);
        self.host.unpack_s += thread_cpu_s() - t;
        Ok(summary)
    }
    fn host_time(&self) -> Option<HostTime> {
        Some(self.host)
    }
    fn results(&self) -> &BatchResults {
        if self.lazy {
            self.full.get_or_init(|| self.completed())
        } else {
            &self.results
        }
    }
    fn reset_start(&mut self, copies: &[usize]) {
        self.pending_cold
            .extend(copies.iter().copied().filter(|&c| c < self.results.batch()));
    }
}

/// (Tests) The shared GPU context, or `None` where there is no adapter: the
/// test `test` then skips, saying why, unless `POWERGRID_REQUIRE_GPU=1`, which
/// makes it a failure.
#[cfg(test)]
pub(crate) fn context_or_skip(test: &str) -> Option<Arc<GpuContext>> {
    match GpuContext::shared() {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            if std::env::var("POWERGRID_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("{test}: POWERGRID_REQUIRE_GPU=1 but {e}");
            }
            eprintln!("{test}: skipped, {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f64 shader is the f32 one with every f32 outside `Params` turned
    /// into f64, Params' f32 fields converted where read, and an f64 sine.
    #[test]
    fn f64_shader_is_the_f32_shader_in_f64() {
        let src = shader_source(GpuPrecision::F64);
        let start = src.find("struct Params {").unwrap();
        let end = start + src[start..].find("\n}\n").unwrap();
        assert!(src[start..end].contains("tol: f32"));
        let body = &src[end..];
        assert!(!body.contains("f32"), "f32 left in the f64 shader");
        for f in ["tol", "rot_re", "rot_im", "diverge", "sn"] {
            assert!(body.contains(&format!("f64(P.{f})")), "P.{f} not converted");
        }
        assert!(!body.contains(" sin("), "WGSL's sin has no f64 overload");
        assert_eq!(body.matches("fn cosm1_sin(").count(), 1);
        assert!(body.contains("fn sin_f64("));
    }

    /// The f64 shader's sine (`sin_f64` in `COSM1_SIN_F64`), written again in
    /// Rust with the same constants and polynomials: within 2 ulp of libm over the
    /// angles a power flow sees, and `cos θ − 1` from it without cancellation.
    #[test]
    fn f64_shader_sine_is_accurate() {
        fn sin_f64(x: f64) -> f64 {
            let k = (x * std::f64::consts::FRAC_2_PI).round();
            let r = (x - k * 1.5707963267341256) - k * 6.077100506506192e-11;
            let r2 = r * r;
            let s = r
                * (1.0
                    - r2 * (1.0 / 6.0
                        - r2 * (1.0 / 120.0
                            - r2 * (1.0 / 5040.0
                                - r2 * (1.0 / 362880.0
                                    - r2 * (1.0 / 39916800.0
                                        - r2 * (1.0 / 6227020800.0
                                            - r2 * (1.0 / 1307674368000.0
                                                - r2 * (1.0 / 355687428096000.0)))))))));
            let c = 1.0
                - r2 * (0.5
                    - r2 * (1.0 / 24.0
                        - r2 * (1.0 / 720.0
                            - r2 * (1.0 / 40320.0
                                - r2 * (1.0 / 3628800.0
                                    - r2 * (1.0 / 479001600.0
                                        - r2 * (1.0 / 87178291200.0
                                            - r2 * (1.0 / 20922789888000.0))))))));
            match (k as i32) & 3 {
                0 => s,
                1 => c,
                2 => -s,
                _ => -c,
            }
        }
        assert!(COSM1_SIN_F64.contains("round(x * 0.6366197723675814)"));
        assert!(COSM1_SIN_F64.contains("k * 1.5707963267341256) - k * 6.077100506506192e-11"));
        let mut worst = 0.0f64;
        for i in -40_000..=40_000 {
            let x = i as f64 * 1e-4 + 1e-9 * i as f64;
            let (a, b) = (sin_f64(x), x.sin());
            worst = worst.max((a - b).abs() / f64::EPSILON);
            let cm1 = -2.0 * sin_f64(0.5 * x).powi(2);
            let want = -2.0 * (0.5 * x).sin().powi(2);
            assert!((cm1 - want).abs() <= 8.0 * f64::EPSILON * want.abs(), "{x}");
        }
        assert!(worst <= 2.0, "sin_f64 off by {worst} ulp of 1");
    }

    /// The result pass's order: every branch once; Kirchhoff-law branches after
    /// everything else at their peel node (a PQ node); from voltages only the
    /// chords of a spanning tree with the slack node as root (branches − PQ
    /// nodes): none on the radial feeders, three on the meshed ieee123.
    #[test]
    fn branch_order_peels_trees_and_leaves_one_chord_per_mesh() {
        for (name, chords) in [("ieee13", 0), ("ieee34", 0), ("ieee123", 3)] {
            let net = crate::network::load(name).expect("shipped");
            let p = Plan::new(&net, Default::default()).expect("plan");
            let order: Vec<usize> = p
                .fixed_branches
                .iter()
                .copied()
                .chain(p.tap_trafos.iter().map(|&(_, b)| b))
                .collect();
            let mut gpu_branch = vec![NONE; p.branches.len()];
            for (k, &b) in order.iter().enumerate() {
                gpu_branch[b] = k as u32;
            }
            let (codes, slot) = branch_order(&p, &order, &gpu_branch);
            assert_eq!(codes.len(), order.len(), "{name}");
            let mut seen = vec![false; order.len()];
            let mut done_at = vec![0usize; p.n_node];
            let degree = |i: usize| {
                order
                    .iter()
                    .filter(|&&b| p.branches[b].f == i || p.branches[b].t == i)
                    .count()
            };
            for &code in &codes {
                let (k, mode) = ((code >> 2) as usize, code & 3);
                assert!(!seen[k], "{name}: branch {k} twice");
                seen[k] = true;
                let br = &p.branches[order[k]];
                if mode != 0 {
                    let i = if mode == 1 { br.f } else { br.t };
                    assert!(i < p.n_pq && !p.is_pv[i], "{name}: peel node {i}");
                    assert_eq!(done_at[i] + 1, degree(i), "{name}: node {i} not a leaf");
                }
                done_at[br.f] += 1;
                done_at[br.t] += 1;
            }
            let from_voltages = codes.iter().filter(|&&c| c & 3 == 0).count();
            assert_eq!(from_voltages, order.len() - p.n_pq, "{name}");
            assert_eq!(from_voltages, chords, "{name}");
            for (l, b) in p.line_branch.iter().enumerate() {
                if let Some(b) = *b {
                    assert_eq!(slot[gpu_branch[b] as usize], l as u32);
                }
            }
        }
    }

    /// The uniform `Params` has the shader's fields, in the shader's order
    /// (names from the Rust struct's `Debug`, the WGSL struct's text), all
    /// 4 bytes: a field added to one side only fails here, not on a device.
    #[test]
    fn params_match_the_shaders_struct() {
        let src = FDPF_WGSL;
        let body = &src[src.find("struct Params {").expect("Params") + 15..];
        let body = &body[..body.find('}').expect("end of Params")];
        let wgsl: Vec<&str> = (body.lines())
            .map(|l| l.split("//").next().unwrap_or("").trim())
            .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
            .collect();
        let debug = format!("{:?}", Params::default());
        let inner = &debug[debug.find('{').expect("{") + 1..debug.rfind('}').expect("}")];
        let rust: Vec<&str> = (inner.split(','))
            .filter_map(|f| f.split_once(':').map(|(name, _)| name.trim()))
            .collect();
        assert_eq!(rust, wgsl);
        assert_eq!(std::mem::size_of::<Params>(), 4 * wgsl.len());
        assert_eq!(std::mem::size_of::<Params>() % 16, 0, "a uniform's size");
    }

    /// A batch in three chunks (each prepared, submitted and unpacked on its
    /// own) gives one chunk's results bit for bit: a cold solve, then a warm
    /// one after load changes and tap moves.
    #[test]
    fn chunks_solve_as_one_chunk_bit_for_bit() {
        let Some(ctx) = context_or_skip("chunks_solve_as_one_chunk_bit_for_bit") else {
            return;
        };
        let net = crate::network::load("ieee34_ieee13").expect("shipped");
        let b = 10;
        let batch = |chunks: usize| {
            let options = crate::powerflow::SolverOptions {
                gpu_chunks: chunks,
                ..Default::default()
            };
            let plan = Arc::new(Plan::new(&net, options).expect("plan"));
            GpuBatch::on(ctx.clone(), plan, b, usize::MAX).expect("batch")
        };
        let (mut one, mut three) = (batch(1), batch(3));
        assert_eq!((one.chunks(), three.chunks()), (1, 3));
        for step in 0..2 {
            for pf in [&mut one, &mut three] {
                let inp = pf.inputs_mut();
                inp.load_scaling
                    .indexed_iter_mut()
                    .for_each(|((c, j), v)| *v *= 0.9 + 0.05 * ((c + j + step) % 5) as f64);
                inp.storage_p_mw
                    .indexed_iter_mut()
                    .for_each(|((c, _), v)| *v = 0.01 * c as f64 - 0.02);
                for (k, t) in net.trafos.iter().enumerate() {
                    if let Some(tap) = &t.tap {
                        for c in 0..b {
                            let d = ((c + step) % 3) as f64 - 1.0;
                            inp.trafo_tap_pos[(c, k)] = (tap.pos + d).clamp(tap.min, tap.max);
                        }
                    }
                }
                pf.solve().expect("solve");
            }
            assert!(one.results().converged.iter().all(|&x| x), "step {step}");
            assert_eq!(one.results(), three.results(), "step {step}");
        }
    }

    /// The host shortcuts of the control loop's re-solves give the device the
    /// same inputs and the tables the same values as full solves: taps and
    /// shunt steps moved through `controls_mut` (set-points not prepared again,
    /// taps from the cache), a deferred `solve_active` (voltages of the active
    /// copies only; with `defer_results_at`, `vm_pu` at the asked buses only),
    /// only those rows read back, then `finish_results` (every table from the
    /// output buffer), against a second batch solving the same inputs and
    /// copies with every table (`inputs_mut`, `solve_active` not deferred).
    #[test]
    fn control_resolves_and_deferred_results_match_full_solves() {
        deferred_results_match_full_solves(None);
        deferred_results_match_full_solves(Some(&[0, 3, 17]));
    }

    /// [`control_resolves_and_deferred_results_match_full_solves`], deferred by
    /// `defer_results_at(vm_buses, ..)` (`None`: `defer_results`).
    fn deferred_results_match_full_solves(vm_buses: Option<&[usize]>) {
        let Some(ctx) = context_or_skip("deferred_results_match_full_solves") else {
            return;
        };
        let net = crate::network::load("ieee34").expect("shipped");
        let plan = Arc::new(Plan::new(&net, Default::default()).expect("plan"));
        assert!(!plan.tap_trafos.is_empty() && !net.shunts.is_empty());
        let b = 8;
        let mut fast = GpuBatch::on(ctx.clone(), plan.clone(), b, usize::MAX).expect("batch");
        let mut full = GpuBatch::on(ctx, plan.clone(), b, usize::MAX).expect("batch");
        for pf in [&mut fast, &mut full] {
            let inp = pf.inputs_mut();
            inp.load_scaling
                .indexed_iter_mut()
                .for_each(|((c, j), v)| *v = 0.8 + 0.05 * ((c + j) % 7) as f64);
            pf.solve().expect("solve");
        }
        let va_buses = [0, 3];
        match vm_buses {
            Some(vm_buses) => fast.defer_results_at(vm_buses, &va_buses),
            None => fast.defer_results(&va_buses),
        }
        // Two rounds of control moves: taps up, then steps of some shunts.
        for round in 0..2 {
            let moved: Vec<bool> = (0..b).map(|c| (c + round) % 3 != 0).collect();
            let set = |taps: &mut ndarray::Array2<f64>, steps: &mut ndarray::Array2<f64>| {
                for c in (0..b).filter(|&c| moved[c]) {
                    for (k, t) in net.trafos.iter().enumerate() {
                        if let Some(tap) = &t.tap {
                            taps[(c, k)] = (tap.pos + (round + 1) as f64).min(tap.max);
                        }
                    }
                    for (k, sh) in net.shunts.iter().enumerate() {
                        steps[(c, k)] = ((c + k + round) % (sh.max_step as usize + 1)) as f64;
                    }
                }
            };
            let (taps, steps) = fast.controls_mut();
            set(taps, steps);
            let inp = full.inputs_mut();
            set(&mut inp.trafo_tap_pos, &mut inp.shunt_step);
            let before = fast.host.read_bytes;
            fast.solve_active(&moved).expect("solve");
            // Only the status rows and the asked voltages crossed.
            let nb = plan.net.buses.len();
            let rows = 3 + vm_buses.map_or(nb, <[usize]>::len) + va_buses.len();
            assert_eq!(fast.host.read_bytes - before, (rows * b * 4) as u64);
            full.solve_active(&moved).expect("solve");
            let (rf, rr) = (fast.results(), full.results());
            for c in (0..b).filter(|&c| moved[c]) {
                match vm_buses {
                    Some(vm_buses) => {
                        for &k in vm_buses {
                            assert_eq!(
                                rf.vm_pu[(c, k)],
                                rr.vm_pu[(c, k)],
                                "round {round} copy {c}"
                            );
                        }
                    }
                    None => assert_eq!(rf.vm_pu.row(c), rr.vm_pu.row(c), "round {round} copy {c}"),
                }
                for &k in &va_buses {
                    assert_eq!(rf.va_degree[(c, k)], rr.va_degree[(c, k)], "copy {c}");
                }
                assert_eq!(rf.converged[c], rr.converged[c]);
                assert_eq!(rf.iterations[c], rr.iterations[c]);
            }
        }
        fast.finish_results();
        assert_eq!(fast.results(), full.results());
    }

    /// `solve_active` skips the inactive copies on the device (the dispatch
    /// covers only the listed active ones): their state and results stay as
    /// they were, bit for bit (a re-solve of a converged copy would move its
    /// f32 answer by its polish iterations), and a tap moved while a copy was
    /// skipped is taken (warm-start factor, branch, B'') at its next solve: it
    /// then gives the answer of a batch that never skipped it. A solve of no
    /// copy changes nothing. The same with one stage per dispatch (the list
    /// also drives `main_staged` and `results_staged`), bit for bit. A prepare
    /// that takes the move at the skipped solve (losing its warm-start
    /// factor), or a dispatch over every copy, fails it.
    #[test]
    fn skipped_copies_keep_their_state_and_take_tap_moves_later() {
        let Some(ctx) = context_or_skip("skipped_copies_keep_their_state_and_take_tap_moves_later")
        else {
            return;
        };
        let net = crate::network::load("ieee34").expect("shipped");
        let plan = Arc::new(Plan::new(&net, Default::default()).expect("plan"));
        let b = 70; // two workgroups
        let single = || GpuBatch::on(ctx.clone(), plan.clone(), b, usize::MAX).expect("batch");
        let staged = || GpuBatch::staged(plan.clone(), b).expect("batch");
        let mut ends = vec![];
        for batch in [&single as &dyn Fn() -> GpuBatch, &staged] {
            let (mut skips, mut never) = (batch(), batch());
            for pf in [&mut skips, &mut never] {
                pf.inputs_mut()
                    .load_scaling
                    .indexed_iter_mut()
                    .for_each(|((c, j), v)| *v = 0.8 + 0.05 * ((c + j) % 7) as f64);
                pf.solve().expect("solve");
            }
            assert_eq!(skips.results(), never.results());
            let before = skips.results().clone();
            skips.solve_active(&vec![false; b]).expect("solve");
            assert_eq!(skips.results(), &before, "a solve of no copy");
            // Every tap up one step in every copy; `skips` solves only the
            // even copies first, then the odd ones; `never` every copy once.
            let (k, tap) = (net.trafos.iter().enumerate())
                .find_map(|(k, t)| t.tap.as_ref().map(|x| (k, x.clone())))
                .expect("a tap changer");
            for pf in [&mut skips, &mut never] {
                let (taps, _) = pf.controls_mut();
                taps.column_mut(k).fill((tap.pos + 1.0).min(tap.max));
            }
            let even: Vec<bool> = (0..b).map(|c| c % 2 == 0).collect();
            skips.solve_active(&even).expect("solve");
            let rows = |r: &BatchResults, c: usize| {
                let t = r.tables().map(|(_, t)| t.row(c).to_vec());
                (t, r.iterations[c], r.converged[c])
            };
            for c in (0..b).filter(|c| c % 2 == 1) {
                assert_eq!(
                    rows(skips.results(), c),
                    rows(&before, c),
                    "skipped copy {c}"
                );
            }
            let odd: Vec<bool> = even.iter().map(|e| !e).collect();
            skips.solve_active(&odd).expect("solve");
            never.solve().expect("solve");
            for c in (0..b).filter(|c| c % 2 == 1) {
                assert_eq!(
                    rows(skips.results(), c),
                    rows(never.results(), c),
                    "copy {c}"
                );
            }
            ends.push(skips.results().clone());
        }
        assert_eq!(ends[0], ends[1], "one stage per dispatch");
    }

    /// `HostTime::kernel_s` sums the timestamp queries' pass times: positive
    /// after solves where the adapter times passes, 0 where it does not, and
    /// never above the wait (the device's passes are inside it).
    #[test]
    fn kernel_time_is_counted_where_the_adapter_times_passes() {
        let Some(ctx) = context_or_skip("kernel_time_is_counted_where_the_adapter_times_passes")
        else {
            return;
        };
        let net = crate::network::load("ieee13").expect("shipped");
        let plan = Arc::new(Plan::new(&net, Default::default()).expect("plan"));
        let mut pf = GpuBatch::on(ctx.clone(), plan, 64, usize::MAX).expect("batch");
        pf.solve().expect("solve");
        let first = pf.host_time().expect("counted").kernel_s;
        pf.solve().expect("solve");
        let h = pf.host_time().expect("counted");
        assert_eq!(h.kernel_s > 0.0, ctx.timestamps, "{h:?}");
        let last = pf.last_gpu_seconds().unwrap_or(0.0);
        assert!((h.kernel_s - first - last).abs() <= 1e-12, "{h:?} {last}");
        assert!(h.kernel_s <= h.wait_s, "{h:?}");
    }

    /// `limit_results`: after each solve (plain, and deferred through
    /// `finish_results`) the limited tables hold the asked columns as full
    /// solves give them, and `results` is complete all the same (formed from
    /// the readback on request, again after the next solve).
    #[test]
    fn limited_results_hold_the_asked_columns_and_results_stay_complete() {
        let Some(ctx) =
            context_or_skip("limited_results_hold_the_asked_columns_and_results_stay_complete")
        else {
            return;
        };
        let net = crate::network::load("ieee34").expect("shipped");
        let plan = Arc::new(Plan::new(&net, Default::default()).expect("plan"));
        let b = 8;
        let mut lim = GpuBatch::on(ctx.clone(), plan.clone(), b, usize::MAX).expect("batch");
        let mut full = GpuBatch::on(ctx, plan.clone(), b, usize::MAX).expect("batch");
        let asked = vec![
            ("vm_pu", vec![1, 4, 9]),
            ("line_loading_percent", vec![0, 2, 30]),
            ("trafo_p_hv_mw", vec![0]),
            ("ext_grid_q_mvar", vec![0]),
            ("no_such_table", vec![0]),
        ];
        lim.limit_results(Some(super::super::batch::ResultColumns {
            tables: asked.clone(),
        }));
        for round in 0..3 {
            for pf in [&mut lim, &mut full] {
                let inp = pf.inputs_mut();
                inp.load_scaling
                    .indexed_iter_mut()
                    .for_each(|((c, j), v)| *v = 0.7 + 0.05 * ((c + j + round) % 9) as f64);
            }
            if round == 2 {
                // Deferred: voltages between solves, the asked columns at the end.
                lim.defer_results_at(&[0], &[0]);
                lim.solve().expect("solve");
                lim.finish_results();
            } else {
                lim.solve().expect("solve");
            }
            full.solve().expect("solve");
            let (rl, rf) = (lim.limited_results(), full.results());
            assert_eq!(rl.converged, rf.converged);
            assert_eq!(rl.iterations, rf.iterations);
            for (name, cols) in &asked {
                let Some((_, tl)) = rl.tables().into_iter().find(|(n, _)| n == name) else {
                    continue;
                };
                let tf = rf.tables().into_iter().find(|(n, _)| n == name).unwrap().1;
                for c in 0..b {
                    for &j in cols.iter().filter(|&&j| j < tl.ncols()) {
                        assert_eq!(tl[(c, j)], tf[(c, j)], "round {round} {name}[{c}][{j}]");
                    }
                }
            }
            assert_eq!(lim.results(), full.results(), "round {round}");
        }
        // With gens: results formed on request after the inputs changed are
        // still those of the solve (gen P is the solved set-point).
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/pandapower_gen/gens.json"
        );
        let net = crate::network::load(path).expect("test network");
        let plan = Arc::new(Plan::new(&net, Default::default()).expect("plan"));
        let ctx = lim.ctx.clone();
        let mut lim = GpuBatch::on(ctx.clone(), plan.clone(), b, usize::MAX).expect("batch");
        let mut full = GpuBatch::on(ctx, plan, b, usize::MAX).expect("batch");
        lim.limit_results(Some(super::super::batch::ResultColumns {
            tables: vec![("vm_pu", vec![0])],
        }));
        lim.solve().expect("solve");
        full.solve().expect("solve");
        assert!(full.results().gen_p_mw.iter().any(|&p| p != 0.0));
        lim.inputs_mut().gen_p_mw.mapv_inplace(|p| 2.0 * p + 1.0);
        assert_eq!(lim.results(), full.results());
    }

    /// `BppSets` under a random walk of copies asking for tap combinations
    /// and values of their own: every copy's set holds the values it asked
    /// for last (a set is rewritten only while it is the copy's alone), copies
    /// asking for the same combination share a set written once, users are
    /// counted right and `len` sets never run out.
    #[test]
    fn bpp_sets_keep_every_copys_values() {
        let len = 7;
        let mut sets = BppSets::new(len);
        // The value each set holds on the "device", and each copy's due value.
        let mut table = vec![f64::NAN; len];
        let mut due = vec![f64::NAN; len];
        let value = |key: &Option<Vec<u64>>, own: f64| key.as_ref().map_or(own, |k| k[0] as f64);
        // Every copy at the same taps: one set, written once.
        let writes: Vec<bool> = (0..len)
            .map(|lc| sets.assign(lc, Some(vec![0])).1)
            .collect();
        assert_eq!(writes.iter().filter(|&&w| w).count(), 1);
        assert_eq!(sets.free.len(), len - 1);
        table[sets.of_copy[0] as usize] = 0.0;
        due.fill(0.0);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut shared = 0;
        for step in 0..20_000 {
            rng = rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let lc = (rng >> 33) as usize % len;
            let k = (rng >> 45) % 6;
            let key = (k < 5).then(|| vec![k]);
            let own = 100.0 + step as f64;
            let (set, write) = sets.assign(lc, key.clone());
            if write {
                table[set as usize] = value(&key, own);
            } else {
                shared += 1;
            }
            due[lc] = value(&key, own);
            assert_eq!(sets.of_copy[lc], set);
            for (c, &d) in due.iter().enumerate() {
                let s = sets.of_copy[c] as usize;
                assert_eq!(table[s], d, "step {step}: copy {c} on set {s}");
                assert_eq!(
                    sets.users[s] as usize,
                    sets.of_copy.iter().filter(|&&x| x as usize == s).count()
                );
                assert!(!sets.free.contains(&(s as u32)));
            }
            for (k, &s) in &sets.by_key {
                assert_eq!(sets.key[s as usize].as_ref(), Some(k));
                assert_eq!(table[s as usize], k[0] as f64);
            }
            let used = (0..len).filter(|&s| sets.users[s] > 0).count();
            assert_eq!(used + sets.free.len(), len);
        }
        assert!(shared > 1000, "copies share sets ({shared} assignments)");
    }

    /// The shader's branch-current form equals `Y·V` of the branch (f64 mirror).
    #[test]
    fn branch_form_matches_admittance() {
        let pi = crate::powerflow::admittance::PiBranch {
            z: C64::new(0.01, 0.05),
            y_sh: C64::new(0.001, 0.02),
            ratio: 1.0375,
            shift_rad: -0.6,
        };
        let a = pi.admittance();
        let (phi_f, phi_t) = (0.1, 0.1 + 0.6 - 0.003);
        let v = |phi: f64, u: f64, th: f64| {
            (
                C64::from_polar(1.0 + u, phi + th),
                C64::new(u * th.cos() + th.cos() - 1.0, (1.0 + u) * th.sin()),
            )
        };
        let ((vf, dwf), (vt, dwt)) = (v(phi_f, 0.02, 0.01), v(phi_t, -0.03, -0.02));
        let x = branch_values(pi.z, pi.y_sh, pi.ratio, pi.shift_rad, phi_f, phi_t);
        let c = |i: usize| C64::new(x[i], x[i + 1]);
        let (ys, yh, rho, c0, e) = (c(0), c(2), x[4], c(5), c(7));
        let d = c0 + dwf.scale(rho) - e * dwt;
        let one = C64::new(1.0, 0.0);
        let jf = (ys * d).scale(rho) + (yh * (one + dwf)).scale(rho * rho);
        let jt = yh * (one + dwt) - ys * e.conj() * d;
        let i_f = (a.yff * vf + a.yft * vt) * C64::from_polar(1.0, -phi_f);
        let i_t = (a.ytf * vf + a.ytt * vt) * C64::from_polar(1.0, -phi_t);
        assert!((jf - i_f).abs() < 1e-12, "{jf:?} {i_f:?}");
        assert!((jt - i_t).abs() < 1e-12, "{jt:?} {i_t:?}");
    }
}
