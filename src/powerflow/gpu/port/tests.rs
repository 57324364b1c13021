//! The shader against its CPU port, kernel by kernel on one state (test entry
//! points of `shaders/fdpf.wgsl`), and the port's `main` end to end against the CPU
//! backend and the GPU. GPU tests skip without an adapter unless
//! `POWERGRID_REQUIRE_GPU=1`.

use super::*;
use crate::complex::C64;
use crate::network::Network;
use crate::powerflow::cpu::CpuBatch;
use crate::powerflow::plan::SolverOptions;

/// Copies per batch (one chunk, one workgroup).
const B: usize = 6;

fn gpu_or_skip(test: &str) -> bool {
    let ctx = crate::powerflow::gpu::context_or_skip(test);
    if let Some(ctx) = &ctx {
        eprintln!("{test}: running on {}", ctx.info);
    }
    ctx.is_some()
}

/// The networks: radial with tap trafos, LV, gens (PV nodes), ZIP loads.
const NETS: [&str; 6] = [
    "pandapower/ieee13",
    "pandapower/ieee34",
    "pandapower/cigre_lv",
    "pandapower_gen/gens",
    "pandapower_zip/zip_mixed",
    "pandapower_zip/kerber_zip",
];

fn load(name: &str) -> Network {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/data/{name}.json"));
    crate::network::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn plan(net: &Network, max_iterations: u32) -> Arc<Plan> {
    let options = SolverOptions {
        max_iterations,
        ..SolverOptions::default()
    };
    Arc::new(Plan::new(net, options).unwrap())
}

/// Copies that differ: loads and sgens scaled per copy, taps one step apart.
fn inputs(net: &Network, batch: usize) -> BatchInputs {
    let mut inp = BatchInputs::from_network(net, batch);
    for c in 0..batch {
        let f = 0.7 + 0.15 * c as f64;
        inp.load_p_mw.row_mut(c).mapv_inplace(|v| v * f);
        inp.load_q_mvar
            .row_mut(c)
            .mapv_inplace(|v| v * (1.6 - 0.1 * c as f64));
        inp.sgen_p_mw
            .row_mut(c)
            .mapv_inplace(|v| v * (1.2 - 0.1 * c as f64));
        for (k, t) in net.trafos.iter().enumerate() {
            if let Some(tap) = &t.tap {
                let p = tap.pos + (c % 3) as f64 - 1.0;
                inp.trafo_tap_pos[(c, k)] = p.clamp(tap.min, tap.max);
            }
        }
    }
    inp
}

/// Move every tap-changing trafo by `d` steps (within range).
fn move_taps(net: &Network, inp: &mut BatchInputs, d: f64) {
    for c in 0..inp.batch() {
        for (k, t) in net.trafos.iter().enumerate() {
            if let Some(tap) = &t.tap {
                let s = if c % 2 == 0 { d } else { -d };
                inp.trafo_tap_pos[(c, k)] = (inp.trafo_tap_pos[(c, k)] + s).clamp(tap.min, tap.max);
            }
        }
    }
}

fn to64(p: &Port<f32>) -> Port<f64> {
    let v = |x: &[f32]| x.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    Port {
        p: p.p,
        tol: p.tol as f64,
        rot: v2(p.rot.x as f64, p.rot.y as f64),
        diverge: p.diverge as f64,
        sn: p.sn as f64,
        idx: p.idx.clone(),
        sh: v(&p.sh),
        pc: v(&p.pc),
        bppv: v(&p.bppv),
        work: v(&p.work),
        outp: v(&p.outp),
        list: p.list.clone(),
    }
}

/// Row groups of `work` (name, first row, rows): one quantity each, compared
/// relative to its largest magnitude.
fn work_groups(p: &Params) -> Vec<(&'static str, usize, usize)> {
    let (nn, n) = (p.n_node as usize, p.n_pq as usize);
    let w_s = p.w_s as usize;
    let mut g = vec![
        ("u", 0, nn),
        ("theta", nn, nn),
        ("dW.re", 2 * nn, nn),
        ("dW.im", 3 * nn, nn),
        ("J.re", 4 * nn, nn),
        ("J.im", 5 * nn, nn),
        ("x", 6 * nn, n),
        ("cold", 6 * nn + n, 1),
        ("loop phase", 6 * nn + n + 1, 1),
        ("loop iters", 6 * nn + n + 2, 2),
        ("loop converged", 6 * nn + n + 4, 1),
        ("norm raw", 6 * nn + n + 5, 1),
        ("norm scaled", 6 * nn + n + 6, 1),
        ("S_spec.re", w_s, nn),
        ("S_spec.im", w_s + nn, nn),
    ];
    if p.w_zip != NONE {
        g.push(("ZIP parts", p.w_zip as usize, 4 * n));
    }
    g
}

fn out_groups(p: &Params) -> Vec<(&'static str, usize, usize)> {
    let (nb, nl, nt, ne) = (p.nb as usize, p.nl as usize, p.nt as usize, p.ne as usize);
    let mut g = vec![("status", 0, 3)];
    let mut o = 3;
    for (name, len) in [
        ("vm_pu", nb),
        ("va_degree", nb),
        ("line_p", nl),
        ("line_q", nl),
        ("line_i_ka", nl),
        ("line_loading", nl),
        ("trafo_loading", nt),
        ("trafo_p_hv", nt),
        ("trafo_q_hv", nt),
        ("trafo_p_lv", nt),
        ("trafo_q_lv", nt),
        ("ext_grid_p", ne),
        ("ext_grid_q", ne),
        ("gen_site_q", p.n_site as usize),
    ] {
        g.push((name, o, len));
        o += len;
    }
    g
}

/// Worst `|gpu − port32| / (ε₃₂·scale)` over the buffer, per group, where scale is
/// the group's largest |value| in the f64 port (at least `floor`, in the group's
/// units). Returns the worst group's (name, ratio, absolute difference), and the
/// same ratio of the f64 port against the f32 port (the f32 rounding itself).
fn worst(
    groups: &[(&'static str, usize, usize)],
    batch: usize,
    gpu: &[f32],
    p32: &[f32],
    p64: &[f64],
    floor: &dyn Fn(&str) -> f64,
) -> ((&'static str, f64, f64), f64) {
    let eps = f32::EPSILON as f64;
    let mut w = ("", 0.0f64, 0.0f64);
    let mut w64 = 0.0f64;
    for &(name, r0, rows) in groups {
        let range = r0 * batch..(r0 + rows) * batch;
        let scale = p64[range.clone()]
            .iter()
            .fold(floor(name), |m, v| m.max(v.abs()));
        for i in range {
            let (g, a, b) = (gpu[i] as f64, p32[i] as f64, p64[i]);
            assert!(
                g.is_finite() == a.is_finite(),
                "{name}[{i}]: gpu {g}, port {a}"
            );
            if !g.is_finite() {
                continue;
            }
            let r = (g - a).abs() / (eps * scale);
            if r > w.1 {
                w = (name, r, (g - a).abs());
            }
            w64 = w64.max((b - a).abs() / (eps * scale));
        }
    }
    (w, w64)
}

/// Tolerance of a kernel comparison in units of ε₃₂ times the quantity's largest
/// magnitude: the port repeats the shader's operations in the same order, so they
/// differ only where the device fuses a multiply-add or rounds `sqrt`/`sin`
/// differently; those half-ulp differences, grown through the sums of the
/// mismatch and the triangular solves, stay within a few hundred ε of the largest
/// value (measured: see the reports). A wrong operation or index gives differences
/// of the order of the value itself (ratios ≥ 1e4).
const KERNEL_TOL_EPS: f64 = 16.0;

/// Floor of a group's scale: current noise (J, ΔS) is measured against the largest
/// current; norms against the noise floor of the scaled mismatch.
fn floor_of(p: &Port<f32>) -> impl Fn(&str) -> f64 {
    // The largest current of the state and the mismatch tolerance.
    let nn = p.p.n_node as usize;
    let b = p.p.batch as usize;
    let jmax = p.work[4 * nn * b..6 * nn * b]
        .iter()
        .fold(1e-3f64, |m, v| m.max((*v as f64).abs()));
    let tol = p.tol as f64;
    move |name: &str| match name {
        "norm raw" => jmax,
        "norm scaled" => jmax / tol,
        "x" | "theta" | "u" | "dW.re" | "dW.im" => 1e-4,
        _ => 1e-6,
    }
}

/// Run `entry` on the GPU and on the port (f32 and f64) from the GPU's current
/// state; compare `work` and `outp`. Returns the worst ratio (units of ε₃₂·scale).
fn check(gpu: &GpuBatch, what: &str, entry: &str) -> f64 {
    let before = gpu.port().unwrap();
    let floor = floor_of(&before);
    let mut p32 = before.clone();
    p32.run_test_entry(entry);
    let mut p64 = to64(&before);
    p64.run_test_entry(entry);
    gpu.probe(entry).unwrap();
    let after = gpu.port().unwrap();
    let b = before.p.batch as usize;
    let (ww, w64) = worst(
        &work_groups(&before.p),
        b,
        &after.work,
        &p32.work,
        &p64.work,
        &floor,
    );
    let (wo, o64) = worst(
        &out_groups(&before.p),
        b,
        &after.outp,
        &p32.outp,
        &p64.outp,
        &floor,
    );
    let w = if ww.1 >= wo.1 { ww } else { wo };
    eprintln!(
        "{what:>32} {entry:<20} gpu−port32: {:8.2} ε·scale ({:<14} |Δ| {:.2e});  port64−port32: {:8.2} ε·scale",
        w.1,
        w.0,
        w.2,
        w64.max(o64)
    );
    assert!(
        w.1 <= KERNEL_TOL_EPS,
        "{what} {entry}: {} differs by {:.1} ε·scale (|Δ| {:e})",
        w.0,
        w.1,
        w.2
    );
    w.1
}

/// Put every copy of `gpu` in its start state (`main`'s phase 0, computed by the
/// port on the GPU's own buffers) and upload it.
fn start_state(gpu: &GpuBatch) {
    let mut p = gpu.port().unwrap();
    for c in 0..p.p.batch {
        p.start(c);
    }
    gpu.write_work(&p.work);
}

const SOLVE_SEQ: [&str; 5] = [
    "test_mismatch",
    "test_p_half_step",
    "test_mismatch",
    "test_q_half_step",
    "test_mismatch",
];

/// The solve kernels (mismatch, half-steps, triangular solves, tap warm start) of
/// the shader against the port, each from the same state, at a cold start, after a
/// few iterations and after a tap move.
#[test]
fn solve_kernels_match_shader() {
    if !gpu_or_skip("solve_kernels_match_shader") {
        return;
    }
    let mut worst_all = 0.0f64;
    for name in NETS {
        let net = load(name);
        // Cold start.
        let mut gpu = GpuBatch::new(plan(&net, 100), B).unwrap();
        gpu.inputs = inputs(&net, B);
        gpu.stage().unwrap();
        worst_all = worst_all.max(check(&gpu, &format!("{name} cold"), "test_injections"));
        start_state(&gpu);
        for e in SOLVE_SEQ.iter().chain(&["test_solve_bp", "test_solve_bpp"]) {
            worst_all = worst_all.max(check(&gpu, &format!("{name} cold"), e));
        }
        // After three iterations (the solver's own state; not converged).
        let mut gpu = GpuBatch::new(plan(&net, 3), B).unwrap();
        gpu.inputs = inputs(&net, B);
        gpu.solve().unwrap();
        for e in SOLVE_SEQ {
            worst_all = worst_all.max(check(&gpu, &format!("{name} 3 iterations"), e));
        }
        // After a tap move: converged, taps moved, warm-start factors uploaded.
        let mut gpu = GpuBatch::new(plan(&net, 100), B).unwrap();
        gpu.inputs = inputs(&net, B);
        gpu.solve().unwrap();
        if gpu.plan.tap_trafos.is_empty() {
            continue;
        }
        move_taps(&net, &mut gpu.inputs, 3.0);
        gpu.stage().unwrap();
        worst_all = worst_all.max(check(
            &gpu,
            &format!("{name} tap move"),
            "test_tap_warm_start",
        ));
        for e in SOLVE_SEQ {
            worst_all = worst_all.max(check(&gpu, &format!("{name} tap move"), e));
        }
    }
    eprintln!("worst: {worst_all:.2} ε·scale (tolerance {KERNEL_TOL_EPS})");
}

/// `write_results` (with `branch_flow`) of the shader against the port, apart
/// from the solve kernels: after three iterations, converged, after a tap move.
#[test]
fn result_kernel_matches_shader() {
    if !gpu_or_skip("result_kernel_matches_shader") {
        return;
    }
    let mut worst_all = 0.0f64;
    for name in NETS {
        let net = load(name);
        let mut gpu = GpuBatch::new(plan(&net, 3), B).unwrap();
        gpu.inputs = inputs(&net, B);
        gpu.solve().unwrap();
        worst_all = worst_all.max(check(
            &gpu,
            &format!("{name} 3 iterations"),
            "test_write_results",
        ));
        let mut gpu = GpuBatch::new(plan(&net, 100), B).unwrap();
        gpu.inputs = inputs(&net, B);
        gpu.solve().unwrap();
        worst_all = worst_all.max(check(
            &gpu,
            &format!("{name} converged"),
            "test_write_results",
        ));
        if !gpu.plan.tap_trafos.is_empty() {
            move_taps(&net, &mut gpu.inputs, 3.0);
            gpu.solve().unwrap();
            worst_all = worst_all.max(check(
                &gpu,
                &format!("{name} tap move"),
                "test_write_results",
            ));
        }
    }
    eprintln!("worst: {worst_all:.2} ε·scale (tolerance {KERNEL_TOL_EPS})");
}

/// The shader's `injections` (the port in f64, on the buffers the host
/// uploads: set-points, not injections) gives `copy_specified`'s node
/// injections and ZIP parts to 1e-12 of the largest: every load, sgen,
/// storage unit and gen reaches its node with its factor and scaling.
#[test]
fn port_injections_match_copy_specified() {
    use crate::powerflow::injections::copy_specified;
    for name in NETS {
        let net = load(name);
        let plan = plan(&net, 100);
        let mut inp = inputs(&net, B);
        for c in 0..B {
            let f = 0.8 + 0.07 * c as f64;
            inp.load_scaling.row_mut(c).fill(f);
            inp.sgen_q_mvar.row_mut(c).fill(0.01 * c as f64);
            inp.storage_p_mw.row_mut(c).fill(0.02 * c as f64 - 0.05);
            inp.gen_p_mw.row_mut(c).mapv_inplace(|v| v * f);
        }
        let mut b = PortBatch::<f64>::new(plan.clone(), B);
        b.inputs = inp.clone();
        b.solve().unwrap();
        let (nn, n) = (plan.n_node, plan.n_pq);
        let zn = if plan.has_zip { n } else { 0 };
        let (mut s, mut si, mut sz) = (
            vec![C64::ZERO; nn],
            vec![C64::ZERO; zn],
            vec![C64::ZERO; zn],
        );
        let p = &b.port;
        let w = |row: u32, c: usize| p.work[row as usize * B + c];
        let mut worst = 0.0f64;
        for c in 0..B {
            copy_specified(&plan, &inp, c, &mut s, &mut si, &mut sz);
            let scale = s.iter().fold(1e-3f64, |m, x| m.max(x.abs()));
            for (i, want) in s.iter().enumerate() {
                let got = C64::new(w(p.p.w_s + i as u32, c), w(p.p.w_s + (nn + i) as u32, c));
                worst = worst.max((got - *want).abs() / scale);
            }
            for i in 0..zn {
                let r = |k: usize| w(p.p.w_zip + (k * n + i) as u32, c);
                let (gi, gz) = (C64::new(r(0), r(1)), C64::new(r(2), r(3)));
                worst = worst.max((gi - si[i]).abs().max((gz - sz[i]).abs()) / scale);
            }
        }
        eprintln!("{name}: injections within {worst:.1e} of the largest");
        assert!(
            worst <= 1e-12,
            "{name}: injections off by {worst:e} of the largest"
        );
    }
}

/// The port's `main` in f64 gives the CPU backend's answer; in f64 and f32 the
/// GPU's within its f32 tolerance. Two solves: the first cold, the second warm
/// after tap moves.
#[test]
fn port_main_matches_cpu_and_gpu() {
    let gpu_on = gpu_or_skip("port_main_matches_cpu_and_gpu");
    for name in NETS {
        let net = load(name);
        // Both f64 solvers well below 1e-8 (the default tolerance leaves the CPU's
        // answer up to ~1e-8 from the exact one); the GPU's is max(this, 1e-6).
        let options = SolverOptions {
            tolerance_pu: 1e-10,
            ..SolverOptions::default()
        };
        let plan = Arc::new(Plan::new(&net, options).unwrap());
        let mut cpu = CpuBatch::new(plan.clone(), B);
        let mut p64 = PortBatch::<f64>::exact(plan.clone(), B);
        let mut p32 = PortBatch::<f32>::new(plan.clone(), B);
        let mut gpu = gpu_on.then(|| GpuBatch::new(plan.clone(), B).unwrap());
        let mut inp = inputs(&net, B);
        for step in 0..2 {
            if step == 1 {
                move_taps(&net, &mut inp, 2.0);
            }
            *cpu.inputs_mut() = inp.clone();
            cpu.solve().unwrap();
            p64.inputs = inp.clone();
            p64.solve().unwrap();
            p32.inputs = inp.clone();
            p32.solve().unwrap();
            let (mut d_cpu, mut d_gpu, mut d_32, mut d_g32) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            let mut iters_gap = 0u32;
            // |Δva| (degrees): port f64 − cpu, port f64 − port f32, ports − gpu.
            let (mut a_cpu, mut a_32, mut a_gpu) = (0.0f64, 0.0f64, 0.0f64);
            // |Δloading| (pp, lines and trafos): port f64 − cpu, port f32 − gpu.
            let (mut l_cpu, mut l_gpu) = (0.0f64, 0.0f64);
            if let Some(g) = &mut gpu {
                *g.inputs_mut() = inp.clone();
                g.solve().unwrap();
            }
            let r = cpu.results();
            for c in 0..B {
                assert!(r.converged[c], "{name} {c}: cpu");
                let o = &p64.port.outp;
                assert_eq!(o[c], 1.0, "{name} {c}: port f64 did not converge");
                assert_eq!(
                    p32.port.outp[c], 1.0,
                    "{name} {c}: port f32 did not converge"
                );
                let vm = p64.vm(c);
                let vm32 = p32.vm(c);
                for (k, v) in vm.iter().enumerate() {
                    d_cpu = d_cpu.max((v - r.vm_pu[(c, k)]).abs());
                    d_32 = d_32.max((v - vm32[k]).abs());
                }
                let cpu_loading: Vec<f64> = r
                    .line_loading_percent
                    .row(c)
                    .iter()
                    .chain(r.trafo_loading_percent.row(c).iter())
                    .copied()
                    .collect();
                for (v, w) in p64.loading(c).iter().zip(&cpu_loading) {
                    l_cpu = l_cpu.max((v - w).abs());
                }
                let (va, va32) = (p64.va(c), p32.va(c));
                for (k, v) in va.iter().enumerate() {
                    a_cpu = a_cpu.max((v - r.va_degree[(c, k)]).abs());
                    a_32 = a_32.max((v - va32[k]).abs());
                }
                if let Some(g) = &gpu {
                    let gr = g.results();
                    assert!(gr.converged[c], "{name} {c}: gpu");
                    for (k, v) in vm32.iter().enumerate() {
                        d_g32 = d_g32.max((v - gr.vm_pu[(c, k)]).abs());
                    }
                    for (k, v) in vm.iter().enumerate() {
                        d_gpu = d_gpu.max((v - gr.vm_pu[(c, k)]).abs());
                    }
                    for (k, v) in va.iter().enumerate() {
                        a_gpu = a_gpu.max((v - gr.va_degree[(c, k)]).abs());
                    }
                    let gpu_loading = gr
                        .line_loading_percent
                        .row(c)
                        .iter()
                        .chain(gr.trafo_loading_percent.row(c).iter())
                        .copied()
                        .collect::<Vec<f64>>();
                    for (v, w) in p32.loading(c).iter().zip(&gpu_loading) {
                        l_gpu = l_gpu.max((v - w).abs());
                    }
                    for (k, v) in va32.iter().enumerate() {
                        a_gpu = a_gpu.max((v - gr.va_degree[(c, k)]).abs());
                    }
                    let it32 = p32.port.outp[B + c] as u32;
                    iters_gap = iters_gap.max(it32.abs_diff(gr.iterations[c]));
                }
            }
            eprintln!(
                "{name:>28} solve {step}: |Δvm| port64−cpu {d_cpu:.2e}, port64−port32 {d_32:.2e}, port64−gpu {d_gpu:.2e}, port32−gpu {d_g32:.2e} (iterations ±{iters_gap}); |Δva| port64−cpu {a_cpu:.2e}, port64−port32 {a_32:.2e}, ports−gpu {a_gpu:.2e}; |Δloading| port64−cpu {l_cpu:.2e}, port32−gpu {l_gpu:.2e}"
            );
            assert!(d_cpu <= 1e-8, "{name}: port f64 vs cpu {d_cpu:e}");
            assert!(a_cpu <= 1e-6, "{name}: va port f64 vs cpu {a_cpu:e}");
            assert!(l_cpu <= 1e-6, "{name}: loading port f64 vs cpu {l_cpu:e}");
            // The GPU's loading tolerance against pandapower (1e-3 pp).
            assert!(l_gpu <= 1e-3, "{name}: loading port f32 vs gpu {l_gpu:e}");
            // The GPU's angle tolerance (tests/gpu_vs_pandapower.rs).
            assert!(a_32 <= 1e-3, "{name}: va port f32 vs f64 {a_32:e}");
            assert!(a_gpu <= 1e-3, "{name}: va port vs gpu {a_gpu:e}");
            // The GPU's tolerance against the f64 CPU (tests/gpu_vs_cpu.rs).
            assert!(d_32 <= 1e-5, "{name}: port f32 vs f64 {d_32:e}");
            assert!(d_gpu <= 1e-5, "{name}: port f64 vs gpu {d_gpu:e}");
            assert!(d_g32 <= 1e-5, "{name}: port f32 vs gpu {d_g32:e}");
        }
    }
}

/// `main_staged` (llvmpipe's one-stage-per-dispatch schedule for networks whose
/// FDPF iteration exceeds its loop-trip limit) gives `main`'s answer bit for
/// bit, in f32 and f64: a cold solve, then a warm one after load changes and
/// tap moves.
#[test]
fn staged_main_is_main_bit_for_bit() {
    fn check<T: Real>(name: &str, net: &Network, plan: &Arc<Plan>) {
        let mut one = PortBatch::<T>::new(plan.clone(), B);
        let mut staged = PortBatch::<T>::new(plan.clone(), B);
        staged.staged = true;
        let mut inp = inputs(net, B);
        for step in 0..2 {
            if step == 1 {
                move_taps(net, &mut inp, 2.0);
                inp.load_p_mw.mapv_inplace(|p| 1.1 * p);
            }
            one.inputs = inp.clone();
            one.solve().unwrap();
            staged.inputs = inp.clone();
            staged.solve().unwrap();
            let bits = |v: &[T]| v.iter().map(|x| x.to64().to_bits()).collect::<Vec<u64>>();
            assert_eq!(
                bits(&one.port.outp),
                bits(&staged.port.outp),
                "{name} solve {step}: results"
            );
            // The state (the loop rows after the phase aside: main keeps its
            // counters in registers when it finishes in one dispatch).
            let r = one.port.r_loop(1) as usize;
            let state = |w: &[T]| [bits(&w[..r * B]), bits(&w[(r + 5) * B..])];
            assert_eq!(
                state(&one.port.work),
                state(&staged.port.work),
                "{name} solve {step}: state"
            );
            let converged = one.port.outp[..B]
                .iter()
                .filter(|&&x| x == T::of(1.0))
                .count();
            assert!(converged > 0, "{name} solve {step}: none converged");
        }
    }
    for name in NETS {
        let net = load(name);
        let plan = plan(&net, 100);
        check::<f32>(name, &net, &plan);
        check::<f64>(name, &net, &plan);
    }
}
