//! Every converged reference scenario of the five networks, solved as one batch
//! per network on the CPU, against pandapower.

mod common;
use common::*;
use powergrid::network;
use powergrid::powerflow::{CpuBatch, Plan, PowerFlow, SolverOptions};
use std::sync::Arc;

fn check(name: &str, net: powergrid::network::Network) {
    let reference = reference(name);
    let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    let mut batch = CpuBatch::new(plan.clone(), reference.scenarios.len());
    *batch.inputs_mut() = reference.to_inputs(&net).unwrap();
    batch.solve().unwrap();
    let r = batch.results();
    let mut worst = [0.0f64; 5];
    for c in 0..reference.scenarios.len() {
        if !ref_converged(&reference, c) {
            continue;
        }
        assert!(
            r.converged[c],
            "{name} scenario {c}: did not converge (mismatch {})",
            r.max_mismatch_pu[c]
        );
        let d = |key: &str, a: &ndarray::Array2<f64>| {
            max_abs_diff(a.row(c).as_slice().unwrap(), &ref_table(&reference, c, key))
        };
        let dv = [
            d("vm_pu", &r.vm_pu),
            d("va_degree", &r.va_degree),
            d("line_loading_percent", &r.line_loading_percent),
            d("ext_grid_p_mw", &r.ext_grid_p_mw),
            d("trafo_loading_percent", &r.trafo_loading_percent),
        ];
        for k in 0..5 {
            worst[k] = worst[k].max(dv[k]);
        }
        assert!(
            dv[0] <= 1e-6,
            "{name} scenario {c}: max |Δvm| = {:e}",
            dv[0]
        );
        assert!(
            dv[1] <= 1e-4,
            "{name} scenario {c}: max |Δva| = {:e}°",
            dv[1]
        );
        assert!(
            dv[2] <= 1e-3,
            "{name} scenario {c}: max |Δline loading| = {:e} %",
            dv[2]
        );
        assert!(
            dv[3] <= 1e-6,
            "{name} scenario {c}: max |Δext_grid P| = {:e} MW",
            dv[3]
        );
        assert!(
            dv[4] <= 1e-3,
            "{name} scenario {c}: max |Δtrafo loading| = {:e} %",
            dv[4]
        );
        for key in [
            "line_p_from_mw",
            "line_q_from_mvar",
            "line_i_ka",
            "ext_grid_q_mvar",
        ] {
            let a = r.tables().into_iter().find(|(k, _)| *k == key).unwrap().1;
            let dd = d(key, a);
            assert!(dd <= 1e-5, "{name} scenario {c}: max |Δ{key}| = {dd:e}");
        }
    }
    eprintln!(
        "{name}: {:?} psi {:.1}, worst |Δvm| {:.2e} |Δva| {:.2e} |Δline%| {:.2e} |ΔP_ext| {:.2e} |Δtrafo%| {:.2e}",
        plan.variant, plan.psi, worst[0], worst[1], worst[2], worst[3], worst[4]
    );
}

#[test]
fn pandapower_json_matches_reference() {
    for name in NETWORKS {
        check(name, network::load(pandapower_json(name)).unwrap());
    }
}
