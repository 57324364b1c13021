//! Every reference scenario of the five networks, solved as one GPU batch per
//! network, against pandapower and against the CPU solver.

mod common;
use common::*;
use powergrid::network;
use powergrid::powerflow::gpu::GpuBatch;
use powergrid::powerflow::scenarios::ScenarioFile;
use powergrid::powerflow::{CpuBatch, Plan, PowerFlow, SolverOptions};
use std::sync::Arc;

/// Every reference scenario of `name` solved as one batch on the GPU and on
/// the CPU with `options`: the reference, the number of scenarios and both batches.
fn solve_both(name: &str, options: SolverOptions) -> (ScenarioFile, usize, GpuBatch, CpuBatch) {
    let net = network::load(pandapower_json(name)).unwrap();
    let reference = reference(name);
    let plan = Arc::new(Plan::new(&net, options).unwrap());
    let b = reference.scenarios.len();
    let inputs = reference.to_inputs(&net).unwrap();
    let mut gpu = GpuBatch::new(plan.clone(), b).unwrap();
    *gpu.inputs_mut() = inputs.clone();
    gpu.solve().unwrap();
    let mut cpu = CpuBatch::new(plan, b);
    *cpu.inputs_mut() = inputs;
    cpu.solve().unwrap();
    (reference, b, gpu, cpu)
}

pub fn check(name: &str) {
    let (reference, b, gpu, cpu) = solve_both(name, SolverOptions::default());
    let (g, c) = (gpu.results(), cpu.results());
    let mut worst = [0.0f64; 6];
    for s in 0..b {
        assert_eq!(
            g.converged[s], c.converged[s],
            "{name} scenario {s}: GPU converged {} (mismatch {:e}), CPU {}",
            g.converged[s], g.max_mismatch_pu[s], c.converged[s]
        );
        if !c.converged[s] {
            continue;
        }
        let row = |a: &ndarray::Array2<f64>| a.row(s).to_vec();
        let dvm_cpu = max_abs_diff(&row(&g.vm_pu), &row(&c.vm_pu));
        let dva_cpu = max_abs_diff(&row(&g.va_degree), &row(&c.va_degree));
        worst[0] = worst[0].max(dvm_cpu);
        worst[1] = worst[1].max(dva_cpu);
        assert!(
            dvm_cpu <= 1e-5,
            "{name} scenario {s}: GPU vs CPU max |Δvm| = {dvm_cpu:e}"
        );
        if !ref_converged(&reference, s) {
            continue;
        }
        let dvm = max_abs_diff(&row(&g.vm_pu), &ref_table(&reference, s, "vm_pu"));
        let dva = max_abs_diff(&row(&g.va_degree), &ref_table(&reference, s, "va_degree"));
        worst[2] = worst[2].max(dvm);
        worst[3] = worst[3].max(dva);
        assert!(
            dvm <= 1e-5,
            "{name} scenario {s}: GPU vs pandapower max |Δvm| = {dvm:e}"
        );
        assert!(
            dva <= 1e-3,
            "{name} scenario {s}: GPU vs pandapower max |Δva| = {dva:e}°"
        );
        // Loadings within 1e-3 pp; flows relative to the table's largest value
        // (the GPU's branch currents come from Kirchhoff's law, not from the f32
        // voltage differences across near-zero impedances).
        for key in ["line_loading_percent", "trafo_loading_percent"] {
            let a = g.tables().into_iter().find(|(k, _)| *k == key).unwrap().1;
            let d = max_abs_diff(&row(a), &ref_table(&reference, s, key));
            worst[5] = worst[5].max(d);
            assert!(
                d <= 1e-3,
                "{name} scenario {s}: GPU vs pandapower max |Δ{key}| = {d:e} pp"
            );
        }
        for key in [
            "line_p_from_mw",
            "line_q_from_mvar",
            "line_i_ka",
            "line_loading_percent",
            "trafo_loading_percent",
            "ext_grid_p_mw",
            "ext_grid_q_mvar",
            "trafo_p_hv_mw",
            "trafo_q_hv_mvar",
            "trafo_p_lv_mw",
            "trafo_q_lv_mvar",
        ] {
            let a = g.tables().into_iter().find(|(k, _)| *k == key).unwrap().1;
            let r = ref_table(&reference, s, key);
            let scale = r.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let d = max_abs_diff(&row(a), &r) / scale;
            worst[4] = worst[4].max(d);
            assert!(
                d <= 1e-5,
                "{name} scenario {s}: GPU vs pandapower max |Δ{key}| = {d:e} of the largest value"
            );
        }
    }
    eprintln!(
        "{name}: {b} scenarios on {}: worst vs CPU |Δvm| {:.2e} |Δva| {:.2e}°, vs pandapower |Δvm| {:.2e} |Δva| {:.2e}°, flows/loading (relative) {:.2e}, loading {:.2e} pp",
        gpu.describe(),
        worst[0],
        worst[1],
        worst[2],
        worst[3],
        worst[4],
        worst[5]
    );
}

#[test]
fn gpu_matches_pandapower_and_cpu() {
    if !gpu_or_skip("gpu_matches_pandapower_and_cpu") {
        return;
    }
    for name in NETWORKS {
        check(name);
    }
}

/// The f64 GPU solver (`GpuPrecision::F64`, where the adapter has f64 shaders)
/// against the CPU solver on every reference scenario of the five networks
/// (per-copy taps and loads): the same convergence, and the same answer to far
/// below the f32 path's 1e-5 p.u. The two differ only in the order of their
/// floating-point operations (and the GPU's branch currents by Kirchhoff's law,
/// which carry the converged mismatch, ≤ 1e-8 p.u.).
#[test]
fn gpu_f64_matches_cpu() {
    if !gpu_or_skip("gpu_f64_matches_cpu") {
        return;
    }
    if !powergrid::gpu::GpuContext::shared().unwrap().shader_f64 {
        eprintln!(
            "gpu_f64_matches_cpu: no f64 shaders on this adapter (tested in pandapower_large)"
        );
        return;
    }
    for name in NETWORKS {
        let options = SolverOptions {
            gpu_precision: powergrid::powerflow::GpuPrecision::F64,
            ..SolverOptions::default()
        };
        let (_, b, gpu, cpu) = solve_both(name, options);
        let (g, c) = (gpu.results(), cpu.results());
        let mut worst = [0.0f64; 3];
        for s in 0..b {
            assert_eq!(g.converged[s], c.converged[s], "{name} scenario {s}");
            if !c.converged[s] {
                continue;
            }
            let row = |a: &ndarray::Array2<f64>| a.row(s).to_vec();
            worst[0] = worst[0].max(max_abs_diff(&row(&g.vm_pu), &row(&c.vm_pu)));
            worst[1] = worst[1].max(max_abs_diff(&row(&g.va_degree), &row(&c.va_degree)));
            for t in [&g.line_loading_percent, &g.trafo_loading_percent] {
                let ct = if std::ptr::eq(t, &g.line_loading_percent) {
                    &c.line_loading_percent
                } else {
                    &c.trafo_loading_percent
                };
                worst[2] = worst[2].max(max_abs_diff(&row(t), &row(ct)));
            }
        }
        eprintln!(
            "{name}: {b} scenarios, GPU f64 vs CPU: |Δvm| {:.2e} p.u., |Δva| {:.2e}°, loading {:.2e} pp",
            worst[0], worst[1], worst[2]
        );
        assert!(worst[0] <= 1e-9, "{name}: |Δvm| {:e}", worst[0]);
        assert!(worst[1] <= 1e-7, "{name}: |Δva| {:e}", worst[1]);
        // Loadings: the converged mismatch (≤ 1e-8 p.u. of sn_mva) is a current of
        // 1.4e-8 kA at cigre_lv's 0.4 kV, 1.4e-5 pp of a 0.1 kA line.
        assert!(worst[2] <= 1e-4, "{name}: loading {:e} pp", worst[2]);
    }
}
