//! GPU backend: the batched FDPF of [`cpu`](super::cpu) in WGSL (`shaders/fdpf.wgsl`),
//! the whole iteration loop in one dispatch, one invocation per copy.
//!
//! Data path: the shared matrices, factors and element maps are uploaded once per
//! batch; per-copy set-points, node shunts, tap-dependent branches and B'' factor
//! values are prepared on the host in f64, rounded to f32 and uploaded only where
//! they changed (host mirrors of the device buffers tell what changed). The voltage
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

use super::admittance::trafo_branch;
use super::batch::{BatchInputs, BatchResults, PowerFlow, SolveSummary};
use super::plan::{BranchSource, Plan};
use super::sparse_lu::PatternValues;
use super::tap_warm::{downstream_nodes, tap_move_factor, TapDown};
use crate::complex::C64;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use std::sync::Arc;

/// f64/f32 CPU port of the shader, function for function (kernel-by-kernel tests).
#[cfg(test)]
pub(crate) mod port;

/// The solver's WGSL source.
pub const FDPF_WGSL: &str = include_str!("../../shaders/fdpf.wgsl");

/// Smallest mismatch tolerance (p.u.) used on the GPU: f32 rounding of branch
/// currents puts the mismatch floor a little below it.
pub const F32_TOLERANCE_PU: f64 = 1e-6;
/// Iterations run after reaching the tolerance, to tighten the f32 answer.
pub const POLISH_ITERATIONS: u32 = 5;
/// Copies per workgroup (the shader's `@workgroup_size`).
const WORKGROUP: u32 = 64;
const NONE: u32 = u32::MAX;
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

/// A batch on the GPU (the process-wide [`GpuContext`]).
pub fn new_batch(plan: Arc<Plan>, batch: usize) -> Result<Box<dyn PowerFlow>> {
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
    /// Row in `pc` of the PQ nodes' ZIP parts (`S_i` re, im, `S_z` re, im;
    /// `NONE` without ZIP loads).
    p_zip: u32,
    i_pv: u32,
    p_pv: u32,
    n_site: u32,
    i_site: u32,
    /// Order of the result pass's branch currents (`4·k + mode`, see
    /// [`branch_order`]) and each branch's result slot (line `l`, trafo `nl + t`).
    i_order: u32,
    i_slot: u32,
    _pad0: u32,
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
}

/// Per-row dirty ranges of a host mirror (copy indices, inclusive).
struct Mirror {
    data: Vec<f32>,
    lo: Vec<usize>,
    hi: Vec<usize>,
    batch: usize,
}

impl Mirror {
    fn new(rows: usize, batch: usize) -> Self {
        Mirror {
            data: vec![0.0; rows * batch],
            lo: vec![usize::MAX; rows],
            hi: vec![0; rows],
            batch,
        }
    }
}

/// Where the host writes per-copy values (row, copy in the chunk, f64 value): the
/// f32 upload mirrors, or the shader port's buffers.
trait Put {
    fn put(&mut self, row: usize, c: usize, v: f64);
}

impl Put for Mirror {
    #[inline]
    fn put(&mut self, row: usize, c: usize, v: f64) {
        let v = v as f32;
        let i = row * self.batch + c;
        if self.data[i].to_bits() != v.to_bits() {
            self.data[i] = v;
            self.lo[row] = self.lo[row].min(c);
            self.hi[row] = self.hi[row].max(c);
        }
    }
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
                    queue.write_buffer(buf, (s * 4) as u64, bytemuck::cast_slice(&self.data[s..e]));
                    Some((a, b))
                }
                None => Some((a, b)),
            };
            self.lo[row] = usize::MAX;
            self.hi[row] = 0;
        }
        if let Some((s, e)) = span {
            queue.write_buffer(buf, (s * 4) as u64, bytemuck::cast_slice(&self.data[s..e]));
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
    bpp: Mirror,
    pc_buf: wgpu::Buffer,
    bpp_buf: wgpu::Buffer,
    work_buf: wgpu::Buffer,
    out_buf: wgpu::Buffer,
    staging: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
}

/// B copies of one network on the GPU.
pub struct GpuBatch {
    ctx: Arc<GpuContext>,
    plan: Arc<Plan>,
    layout: Layout,
    pipeline: wgpu::ComputePipeline,
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
    /// Nodes with gens (the Q split of the results).
    gen_sites: super::injections::GenSites,
    gpu_ns: Option<f64>,
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
        Self::build(ctx, plan, batch, usize::MAX, true)
    }

    /// On an explicit context.
    pub fn on(
        ctx: Arc<GpuContext>,
        plan: Arc<Plan>,
        batch: usize,
        max_chunk: usize,
    ) -> Result<Self> {
        Self::build(ctx, plan, batch, max_chunk, false)
    }

    fn build(
        ctx: Arc<GpuContext>,
        plan: Arc<Plan>,
        batch: usize,
        max_chunk: usize,
        single_dispatch: bool,
    ) -> Result<Self> {
        if plan.options.enforce_q_lims {
            return Err(Error::Gpu(
                "enforce_q_lims (gens held at their Q limits) is offered on the CPU backend only"
                    .into(),
            ));
        }
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
        if ctx.info.is_cpu_emulated() {
            // An emulated device's buffers are host memory too.
            super::memory::check_emulated_gpu(&plan, batch)?;
        }
        let (idx, sh, mut layout) = build_shared(&plan);
        if ctx.info.is_cpu_emulated() && !single_dispatch {
            // llvmpipe stops a shader invocation after 65535 loop trips in total, so
            // the iteration loop is split over several dispatches there (state and
            // loop counters stay in the work buffer between them).
            let (n, nn) = (plan.n_pq, plan.n_node);
            let (nb, nl, nt, ne) = plan.sizes();
            let mismatch = nn + layout.params.n_br as usize + n;
            let per_iter = 2 * mismatch
                + (4 * n + plan.bp.l_col.len() + plan.bp.u_col.len())
                + (4 * n + plan.bpp.l_col.len() + plan.bpp.u_col.len())
                + 4;
            let down: usize = layout.tap_down.iter().flatten().map(|(_, v)| v.len()).sum();
            let fixed = nn
                + n
                + mismatch
                + (nn + layout.params.n_br as usize)
                + nb
                + nl
                + nt
                + ne
                + plan.tap_trafos.len()
                + down
                + 16;
            if fixed + per_iter > LLVMPIPE_LOOP_LIMIT {
                // Not even one iteration fits in a dispatch: llvmpipe would stop
                // the invocation mid-iteration and the copy would diverge.
                return Err(Error::Gpu(format!(
                    "{} nodes with {} factor non-zeros need about {} shader loop trips per \
                     FDPF iteration, more than llvmpipe's limit of {LLVMPIPE_LOOP_LIMIT} per \
                     invocation and dispatch: use the CPU backend or a real GPU",
                    plan.n_node,
                    plan.bp.l_col.len() + plan.bp.u_col.len(),
                    fixed + per_iter
                )));
            }
            let iters = (LOOP_TRIP_BUDGET.saturating_sub(fixed) / per_iter).max(1);
            layout.params.pass_iters = iters as u32;
            let total = plan.options.max_iterations as usize + POLISH_ITERATIONS as usize + 1;
            layout.passes = total.div_ceil(iters) + 1;
        }
        let device = &ctx.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("fdpf.wgsl"),
            source: wgpu::ShaderSource::Wgsl(FDPF_WGSL.into()),
        });
        let bgl = bind_group_layout(device);
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("fdpf"),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("fdpf"),
            layout: Some(&pl),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let su = wgpu::BufferUsages::STORAGE;
        let idx_buf = init_buffer(&ctx, "fdpf idx", bytemuck::cast_slice(&idx), su);
        let sh_buf = init_buffer(&ctx, "fdpf shared", bytemuck::cast_slice(&sh), su);

        // Chunk size: the largest per-copy buffer must fit one binding.
        let max_rows = layout
            .rows_pc
            .max(layout.rows_bpp)
            .max(layout.rows_work)
            .max(layout.rows_out)
            .max(1);
        let fit = (ctx.max_binding_bytes() / (max_rows as u64 * 4)) as usize;
        let per = max_chunk.min(fit).min(65535 * WORKGROUP as usize).max(1);
        let mut chunks = vec![];
        let mut c0 = 0;
        while c0 < batch {
            let len = per.min(batch - c0);
            chunks.push(make_chunk(&ctx, &layout, &bgl, &idx_buf, &sh_buf, c0, len));
            c0 += len;
        }
        let n_tap = plan.tap_trafos.len();
        let results = BatchResults::zeros(&plan.net, batch);
        let inputs = BatchInputs::from_network(&plan.net, batch);
        let zero = plan.bpp.zero_values();
        Ok(GpuBatch {
            layout,
            pipeline,
            chunks,
            inputs,
            results,
            tap_pos: vec![f64::NAN; batch * n_tap],
            pending_cold: vec![],
            gen_sites: super::injections::GenSites::new(&plan),
            bpp_a: zero.clone(),
            bpp_f: zero,
            bpp_work: vec![0.0; plan.n_pq],
            gpu_ns: None,
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

    /// Per-copy inputs of `chunk` into its host mirrors (f64 → f32), B'' refactored
    /// for copies whose taps changed.
    fn prepare(&mut self, ci: usize) {
        let chunk = &mut self.chunks[ci];
        let mut host = HostState {
            tap_pos: &mut self.tap_pos,
            bpp_a: &mut self.bpp_a,
            bpp_f: &mut self.bpp_f,
            bpp_work: &mut self.bpp_work,
        };
        prepare_copies(
            &self.plan,
            &self.inputs,
            &self.layout,
            &mut host,
            (chunk.c0, chunk.len, chunk.primed),
            &mut chunk.pc,
            &mut chunk.bpp,
        );
        chunk.primed = true;
    }

    fn run(&mut self) -> Result<()> {
        for ci in 0..self.chunks.len() {
            self.prepare(ci);
        }
        let ctx = self.ctx.clone();
        let (device, queue) = (&ctx.device, &ctx.queue);
        for ch in &mut self.chunks {
            ch.pc.upload(queue, &ch.pc_buf);
            ch.bpp.upload(queue, &ch.bpp_buf);
        }
        let one = 1.0f32.to_ne_bytes();
        for c in self.pending_cold.drain(..) {
            if let Some(ch) = self
                .chunks
                .iter()
                .find(|ch| c >= ch.c0 && c < ch.c0 + ch.len)
            {
                queue.write_buffer(
                    &ch.work_buf,
                    ((self.layout.row_cold * ch.len + c - ch.c0) * 4) as u64,
                    &one,
                );
            }
        }
        // Every copy starts a new solve (loop phase 0).
        for ch in &self.chunks {
            let zeros = vec![0u8; ch.len * 4];
            queue.write_buffer(
                &ch.work_buf,
                ((self.layout.row_cold + 1) * ch.len * 4) as u64,
                &zeros,
            );
        }
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("fdpf"),
        });
        for ch in &self.chunks {
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
                for _ in 0..self.layout.passes {
                    pass.dispatch_workgroups((ch.len as u32).div_ceil(WORKGROUP), 1, 1);
                }
            }
            if let Some((q, resolve, read)) = &ch.queries {
                enc.resolve_query_set(q, 0..2, resolve, 0);
                enc.copy_buffer_to_buffer(resolve, 0, read, 0, 16);
            }
            enc.copy_buffer_to_buffer(&ch.out_buf, 0, &ch.staging, 0, ch.out_buf.size());
        }
        queue.submit([enc.finish()]);
        for ch in &self.chunks {
            ch.staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
            if let Some((_, _, read)) = &ch.queries {
                read.slice(..).map_async(wgpu::MapMode::Read, |_| {});
            }
        }
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("{}: {e}", ctx.info)))?;
        let period = queue.get_timestamp_period() as f64;
        let mut gpu_ns = None;
        let (nb, nl, nt, ne) = self.plan.sizes();
        let r = &mut self.results;
        for ch in &self.chunks {
            {
                let view = ch
                    .staging
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| Error::Gpu(format!("reading results: {e}")))?;
                let out: &[f32] = bytemuck::cast_slice(&view);
                let b = ch.len;
                let row = |k: usize| &out[k * b..(k + 1) * b];
                for lc in 0..b {
                    let c = ch.c0 + lc;
                    r.converged[c] = row(0)[lc] != 0.0;
                    r.iterations[c] = row(1)[lc] as u32;
                    r.max_mismatch_pu[c] = row(2)[lc] as f64;
                }
                let mut o = 3;
                for table in [&mut r.vm_pu, &mut r.va_degree] {
                    fill_table(table, out, o, nb, ch.c0, b);
                    o += nb;
                }
                for table in [
                    &mut r.line_p_from_mw,
                    &mut r.line_q_from_mvar,
                    &mut r.line_i_ka,
                    &mut r.line_loading_percent,
                ] {
                    fill_table(table, out, o, nl, ch.c0, b);
                    o += nl;
                }
                for table in [
                    &mut r.trafo_loading_percent,
                    &mut r.trafo_p_hv_mw,
                    &mut r.trafo_q_hv_mvar,
                    &mut r.trafo_p_lv_mw,
                    &mut r.trafo_q_lv_mvar,
                ] {
                    fill_table(table, out, o, nt, ch.c0, b);
                    o += nt;
                }
                fill_table(&mut r.ext_grid_p_mw, out, o, ne, ch.c0, b);
                fill_table(&mut r.ext_grid_q_mvar, out, o + ne, ne, ch.c0, b);
                // Gen nodes' Q balance (MVar), split among their gens and
                // ext_grids on the host as the CPU does; gen P is the set-point.
                let o = o + 2 * ne;
                let plan = &*self.plan;
                for lc in 0..b {
                    let c = ch.c0 + lc;
                    for (k, n) in plan.gen_node.iter().enumerate() {
                        r.gen_p_mw[(c, k)] = if n.is_some() {
                            self.inputs.gen_p_mw[(c, k)] * plan.net.gens[k].scaling
                        } else {
                            0.0
                        };
                        r.gen_q_mvar[(c, k)] = 0.0;
                    }
                    let mut eq = r.ext_grid_q_mvar.row_mut(c);
                    let eq = eq.as_slice_mut().expect("standard layout");
                    let mut gq = r.gen_q_mvar.row_mut(c);
                    let gq = gq.as_slice_mut().expect("standard layout");
                    for (j, site) in self.gen_sites.sites.iter().enumerate() {
                        let q_bus = out[(o + j) * b + lc] as f64;
                        self.gen_sites.split_q(plan, site, q_bus, eq, gq);
                    }
                }
            }
            ch.staging.unmap();
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
        }
        self.gpu_ns = gpu_ns;
        Ok(())
    }
}

/// The host's per-copy state between solves (tap positions, B'' refactoring scratch).
struct HostState<'a> {
    tap_pos: &'a mut [f64],
    bpp_a: &'a mut PatternValues,
    bpp_f: &'a mut PatternValues,
    bpp_work: &'a mut Vec<f64>,
}

/// Per-copy inputs of copies `c0..c0 + len` into `pc` and `bppv` (the host mirrors,
/// or the shader port's buffers), B'' refactored for copies whose taps changed (all
/// of them unless `primed`).
fn prepare_copies(
    p: &Plan,
    inp: &BatchInputs,
    layout: &Layout,
    host: &mut HostState,
    (c0, len, primed): (usize, usize, bool),
    pc: &mut impl Put,
    bppv: &mut impl Put,
) {
    let net = &p.net;
    let (n, nn) = (p.n_pq, p.n_node);
    let n_tap = p.tap_trafos.len();
    let mut s = vec![C64::ZERO; nn];
    let mut y = vec![C64::ZERO; nn];
    let zn = if p.has_zip { n } else { 0 };
    let (mut si, mut sz) = (vec![C64::ZERO; zn], vec![C64::ZERO; zn]);
    for lc in 0..len {
        let c = c0 + lc;
        super::injections::copy_injections(p, inp, c, &mut s);
        if p.has_zip {
            // From the loads' injections, before the gens' P (as the CPU).
            super::injections::copy_zip(p, &s[..n], &mut si, &mut sz);
        }
        super::injections::copy_gen_p(p, inp, c, &mut s);
        super::injections::copy_shunts(p, inp, c, &mut y);
        for i in 0..nn {
            pc.put(i, lc, s[i].re);
            pc.put(nn + i, lc, s[i].im);
            pc.put(2 * nn + i, lc, y[i].re);
            pc.put(3 * nn + i, lc, y[i].im);
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
                let pi = trafo_branch(net, &net.trafos[k], pos);
                let b = &p.branches[bi];
                let v = branch_values(
                    pi.z,
                    pi.y_sh,
                    pi.ratio,
                    layout.tap_shift[j],
                    layout.phi[b.f],
                    layout.phi[b.t],
                );
                for (q, x) in v.iter().enumerate() {
                    pc.put(4 * nn + 9 * j + q, lc, *x);
                }
            }
            pc.put(4 * nn + 9 * n_tap + j, lc, g);
        }
        if p.has_zip {
            let r0 = 4 * nn + 10 * n_tap;
            for i in 0..n {
                pc.put(r0 + i, lc, si[i].re);
                pc.put(r0 + n + i, lc, si[i].im);
                pc.put(r0 + 2 * n + i, lc, sz[i].re);
                pc.put(r0 + 3 * n + i, lc, sz[i].im);
            }
        }
        // PV set-points as deviations (|V| − 1), per `plan.pv_nodes`.
        let r0 = layout.params.p_pv as usize;
        for j in 0..p.pv_nodes.len() {
            pc.put(r0 + j, lc, p.pv_vm(j, inp, c) - 1.0);
        }
        if changed || !primed {
            let taps = &host.tap_pos[c * n_tap..(c + 1) * n_tap];
            let base =
                p.tap_trafos.iter().zip(taps).all(|(&(k, _), &pos)| {
                    net.trafos[k].tap.as_ref().is_some_and(|t| t.pos == pos)
                });
            let own = !base && p.bpp_factor_for_taps(taps, host.bpp_a, host.bpp_f, host.bpp_work);
            let (l, u, d) = if own {
                (&host.bpp_f.l, &host.bpp_f.u, &host.bpp_f.d)
            } else {
                (&p.bpp.l_val, &p.bpp.u_val, &p.bpp.u_diag_inv)
            };
            for (k, &v) in l.iter().chain(u).chain(&d[..n]).enumerate() {
                bppv.put(k, lc, v);
            }
        }
    }
}

/// `table[c0 + lc][j] = out[(o + j)·b + lc]` (de-interleave one result table).
fn fill_table(
    table: &mut ndarray::Array2<f64>,
    out: &[f32],
    o: usize,
    n: usize,
    c0: usize,
    b: usize,
) {
    for j in 0..n {
        let src = &out[(o + j) * b..(o + j + 1) * b];
        for (lc, v) in src.iter().enumerate() {
            table[(c0 + lc, j)] = *v as f64;
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
        ],
    })
}

fn make_chunk(
    ctx: &GpuContext,
    layout: &Layout,
    bgl: &wgpu::BindGroupLayout,
    idx: &wgpu::Buffer,
    sh: &wgpu::Buffer,
    c0: usize,
    len: usize,
) -> Chunk {
    use wgpu::BufferUsages as U;
    let b = len as u64 * 4;
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
    let mut work = vec![0.0f32; layout.rows_work * len];
    work[layout.row_cold * len..(layout.row_cold + 1) * len].fill(1.0);
    let work_buf = init_buffer(
        ctx,
        "fdpf state",
        bytemuck::cast_slice(&work),
        U::STORAGE | U::COPY_DST | U::COPY_SRC,
    );
    let out_bytes = layout.rows_out as u64 * b;
    let out_buf = storage(ctx, "fdpf results", out_bytes, U::STORAGE | U::COPY_SRC);
    let staging = storage(
        ctx,
        "fdpf results readback",
        out_buf.size(),
        U::MAP_READ | U::COPY_DST,
    );
    fn entry(binding: u32, buf: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
        wgpu::BindGroupEntry {
            binding,
            resource: buf.as_entire_binding(),
        }
    }
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
        pc: Mirror::new(layout.rows_pc, len),
        bpp: Mirror::new(layout.rows_bpp, len),
        pc_buf,
        bpp_buf,
        work_buf,
        out_buf,
        staging,
        bind_group,
        queries,
    }
}

/// Bytes one copy of `plan` needs on the GPU backend: `(host, device)`. Device:
/// the per-copy inputs, B'' values, state and results buffers (f32) and the
/// results' readback copy; host: their upload mirrors, the f64 inputs and results.
pub(crate) fn bytes_per_copy(plan: &Plan) -> (usize, usize) {
    let l = build_shared(plan).2;
    let device = 4 * (l.rows_pc + l.rows_bpp + l.rows_work + 2 * l.rows_out);
    let host = 4 * (l.rows_pc + l.rows_bpp)
        + 8 * plan.tap_trafos.len()
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
        tol: p.options.tolerance_pu.max(F32_TOLERANCE_PU) as f32,
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
    let tol_node: Vec<f64> = k_node
        .iter()
        .map(|k| 8.0 * 0.5 * f32::EPSILON as f64 * k)
        .collect();
    prm.s_tol = putf(&tol_node, &mut sh);
    prm.tol = p.options.tolerance_pu.max(F32_TOLERANCE_PU) as f32;

    let n_tap = p.tap_trafos.len();
    prm.p_zip = if p.has_zip {
        (4 * nn + 10 * n_tap) as u32
    } else {
        NONE
    };
    let rows_zip = if p.has_zip { 4 * n } else { 0 };
    prm.p_pv = if p.has_pv() {
        (4 * nn + 10 * n_tap + rows_zip) as u32
    } else {
        NONE
    };
    let n_site = prm.n_site as usize;
    let layout = Layout {
        params: prm,
        // S_spec, node shunts, tap-changing branches, warm-start factors, ZIP
        // parts, PV set-points.
        rows_pc: 4 * nn + 10 * n_tap + rows_zip + p.pv_nodes.len(),
        rows_bpp: p.bpp.l_col.len() + p.bpp.u_col.len() + n,
        rows_work: 6 * nn + n + 7,
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
        format!("gpu (f32 WGSL on {}{chunks})", self.ctx.info)
    }
    fn batch(&self) -> usize {
        self.results.batch()
    }
    fn inputs(&self) -> &BatchInputs {
        &self.inputs
    }
    fn inputs_mut(&mut self) -> &mut BatchInputs {
        &mut self.inputs
    }
    fn solve(&mut self) -> Result<SolveSummary> {
        self.inputs.validate(&self.plan.net)?;
        self.plan.check_gen_setpoints(&self.inputs, None)?;
        self.run()?;
        Ok(super::cpu::summary(&self.results))
    }
    fn results(&self) -> &BatchResults {
        &self.results
    }
    fn reset_start(&mut self, copies: &[usize]) {
        self.pending_cold
            .extend(copies.iter().copied().filter(|&c| c < self.results.batch()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
