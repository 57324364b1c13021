//! Networks of pandapower's own `networks` module, imported as they are
//! (`tests/data/pandapower_nets/make_reference.py`), against `pandapower.runpp`
//! with its defaults at tolerance_mva = 1e-10: base case and load scalings.

mod common;
use common::*;
use powergrid::network;
use powergrid::powerflow::scenarios::ScenarioFile;
use powergrid::powerflow::{BatchResults, CpuKernel};

/// `mv_oberrhein` (loads labelled "MV/LV Station", six open line switches) and
/// CIGRE MV with all DER (three open line switches: their lines' charging stays),
/// and `open_ends`, built by the script: trafos open at the LV and at the HV side,
/// a line at an out-of-service bus, a line open at both ends.
const NETS: [&str; 3] = ["mv_oberrhein", "cigre_mv_der", "open_ends"];

fn load(name: &str) -> (network::Network, ScenarioFile) {
    reference_case("pandapower_nets", name)
}

/// Worst differences to pandapower over the converged scenarios:
/// `[|Δvm| p.u., |Δva| °, |Δline loading| pp, |Δtrafo loading| pp, |Δext_grid P| MW]`.
fn worst_vs_pandapower(name: &str, reference: &ScenarioFile, r: &BatchResults) -> [f64; 5] {
    let mut worst = [0.0f64; 5];
    let mut compared = 0;
    for c in 0..reference.scenarios.len() {
        if !ref_converged(reference, c) {
            continue;
        }
        assert!(
            r.converged[c],
            "{name} scenario {c}: did not converge (mismatch {:e})",
            r.max_mismatch_pu[c]
        );
        let dv = [
            "vm_pu",
            "va_degree",
            "line_loading_percent",
            "trafo_loading_percent",
            "ext_grid_p_mw",
        ]
        .map(|key| table_diff(r, reference, c, key));
        for k in 0..5 {
            worst[k] = worst[k].max(dv[k]);
        }
        compared += 1;
    }
    assert!(
        compared >= 4,
        "{name}: only {compared} converged references"
    );
    worst
}

#[test]
fn cpu_matches_pandapower_runpp() {
    for name in NETS {
        let (net, reference) = load(name);
        let (plan, r) = cpu_solve(&net, &reference, CpuKernel::Lanes);
        check_trafo_flows(name, "CPU", &net, &reference, &r, 1e-7);
        let w = worst_vs_pandapower(name, &reference, &r);
        eprintln!(
            "{name} (CPU, {:?} psi {:.1}): worst |Δvm| {:.2e} p.u., |Δva| {:.2e}°, |Δline%| {:.2e}, |Δtrafo%| {:.2e}, |ΔP_ext| {:.2e} MW",
            plan.variant, plan.psi, w[0], w[1], w[2], w[3], w[4]
        );
        assert_worst(name, "CPU", &w, 1e-6, 1e-4, Some(1e-3));
        assert!(w[4] <= 1e-6, "{name}: max |Δext_grid P| = {:e} MW", w[4]);
    }
}

/// The f32 GPU solver: voltages within 1e-5 p.u. of pandapower (the bound of
/// `gpu_vs_pandapower`), angles within 1e-3°, loadings within 1e-3 pp (branch
/// currents by Kirchhoff's law; 6.8e-3 pp on `mv_oberrhein` from voltages).
#[test]
fn gpu_matches_pandapower_runpp() {
    if !gpu_or_skip("gpu_matches_pandapower_runpp") {
        return;
    }
    for name in NETS {
        let (net, reference) = load(name);
        let (_, r) = gpu_solve(&net, &reference);
        check_trafo_flows(name, "GPU", &net, &reference, &r, 1e-4);
        let w = worst_vs_pandapower(name, &reference, &r);
        eprintln!(
            "{name} (GPU): worst |Δvm| {:.2e} p.u., |Δva| {:.2e}°, |Δline%| {:.2e}, |Δtrafo%| {:.2e}, |ΔP_ext| {:.2e} MW",
            w[0], w[1], w[2], w[3], w[4]
        );
        assert_worst(name, "GPU", &w, 1e-5, 1e-3, Some(1e-3));
    }
}
