//! Every converged reference scenario of the five networks, solved as one batch
//! per network on the CPU, against pandapower.

mod common;
use common::*;
use powergrid::network;
use powergrid::powerflow::CpuKernel;

fn check(name: &str, net: powergrid::network::Network) {
    check_against(name, net, reference(name));
}

fn check_against(
    name: &str,
    net: powergrid::network::Network,
    reference: powergrid::powerflow::scenarios::ScenarioFile,
) {
    let (plan, r) = cpu_solve(&net, &reference, CpuKernel::Lanes);
    let r = &r;
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
        let d = |key: &str| table_diff(r, &reference, c, key);
        let dv = [
            "vm_pu",
            "va_degree",
            "line_loading_percent",
            "ext_grid_p_mw",
            "trafo_loading_percent",
        ]
        .map(d);
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
            "trafo_p_hv_mw",
            "trafo_q_hv_mvar",
            "trafo_p_lv_mw",
            "trafo_q_lv_mvar",
        ] {
            let dd = d(key);
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

#[test]
fn shipped_yaml_matches_reference() {
    for name in NETWORKS {
        check(name, network::load(network_yaml(name)).unwrap());
    }
}

/// Where pandapower did not converge, a copy either says it did not converge, or
/// converged with a mismatch that this test recomputes independently.
#[test]
fn non_converged_reference_scenarios_are_honest() {
    let mut checked = 0;
    for name in NETWORKS {
        let net = network::load(pandapower_json(name)).unwrap();
        let reference = reference(name);
        let (plan, r) = cpu_solve(&net, &reference, CpuKernel::Lanes);
        let inp = reference.to_inputs(&net).unwrap();
        for c in 0..reference.scenarios.len() {
            // The recomputation must agree with the solver on every copy it calls converged.
            if !r.converged[c] {
                assert!(
                    !ref_converged(&reference, c),
                    "{name} scenario {c}: pandapower converged, we did not"
                );
                continue;
            }
            let m = recomputed_mismatch(
                &net,
                &plan,
                &inp,
                c,
                r.vm_pu.row(c).as_slice().unwrap(),
                r.va_degree.row(c).as_slice().unwrap(),
            );
            assert!(
                m <= 1e-7,
                "{name} scenario {c}: claims convergence but the recomputed mismatch is {m:e} p.u."
            );
            if !ref_converged(&reference, c) {
                checked += 1;
                eprintln!("{name} scenario {c}: pandapower did not converge; ours did, recomputed mismatch {m:.1e} p.u.");
            }
        }
    }
    eprintln!("{checked} scenarios that pandapower could not solve were solved and verified");
}

/// Element-model features the five networks leave at their defaults (trafo iron
/// losses and magnetising current in the "t" model, HV-side taps, a 150° shift,
/// parallel lines, line conductance, derating, a shunt rated at another voltage,
/// scaling, an out-of-service line, an open line switch, a switch with impedance,
/// an out-of-service second slack, f = 60 Hz, sn_mva = 10), against pandapower
/// (`tests/data/features/make_reference.py`).
#[test]
fn element_features_match_pandapower() {
    let net = network::load(path("tests/data/features/network.json")).unwrap();
    let reference = powergrid::powerflow::scenarios::ScenarioFile::read(&path(
        "tests/data/features/reference.json",
    ))
    .unwrap();
    check_against("features", net, reference);
}
