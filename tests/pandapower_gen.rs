//! pandapower's `gen` (PV buses) against `pandapower.runpp` (defaults,
//! tolerance_mva = 1e-10): `example_multivoltage` with its real gen (xwards
//! replaced by wards), a handcrafted meshed net (two gens at one bus with
//! different Q ranges, a gen at the ext_grid's bus, gens at different vm_pu, a
//! gen behind a trafo, out-of-service gens, gens at buses joined by a switch),
//! and pandapower's `case118` and `case300`; base case, load scalings and a
//! scenario that moves every gen's P and vm_pu (data and script in
//! `tests/data/pandapower_gen/`). Both CPU kernels and the GPU.

mod common;
use common::*;
use powergrid::network;
use powergrid::powerflow::scenarios::ScenarioFile;
use powergrid::powerflow::{BatchResults, CpuBatch, CpuKernel, Plan, PowerFlow};

const NETS: [&str; 6] = [
    "multivoltage_gen",
    "gens",
    "case118",
    "case300",
    "multivoltage_full",
    "xwards",
];

fn load(name: &str) -> (network::Network, ScenarioFile) {
    reference_case("pandapower_gen", name)
}

/// Worst differences over the scenarios: `[|Δvm| p.u., |Δva| °, |Δline loading|
/// pp, |Δtrafo loading| pp, |Δext_grid P| MW, |Δext_grid Q| Mvar, |Δgen P| MW,
/// |Δgen Q| Mvar]`.
fn worst(name: &str, reference: &ScenarioFile, r: &BatchResults) -> [f64; 8] {
    let six = worst_all_converged(name, reference, r);
    let mut w = [six[0], six[1], six[2], six[3], six[4], six[5], 0.0, 0.0];
    for c in 0..reference.scenarios.len() {
        w[6] = w[6].max(table_diff(r, reference, c, "gen_p_mw"));
        w[7] = w[7].max(table_diff(r, reference, c, "gen_q_mvar"));
    }
    w
}

fn check(name: &str, what: &str, plan: &Plan, w: [f64; 8]) {
    eprintln!(
        "{name} ({what}, {:?} psi {:.1}): worst |Δvm| {:.2e} p.u., |Δva| {:.2e}°, |Δline%| {:.2e}, \
         |Δtrafo%| {:.2e}, |ΔP_ext| {:.2e} MW, |ΔQ_ext| {:.2e} Mvar, |ΔP_gen| {:.2e} MW, |ΔQ_gen| {:.2e} Mvar",
        plan.variant, plan.psi, w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
    );
    assert_worst(name, what, &w, 1e-6, 1e-4, Some(1e-3));
    assert!(
        w[4] <= 1e-5,
        "{name} {what}: max |Δext_grid P| = {:e} MW",
        w[4]
    );
    assert!(
        w[5] <= 1e-5,
        "{name} {what}: max |Δext_grid Q| = {:e} Mvar",
        w[5]
    );
    assert!(w[6] <= 1e-9, "{name} {what}: max |Δgen P| = {:e} MW", w[6]);
    assert!(
        w[7] <= 1e-5,
        "{name} {what}: max |Δgen Q| = {:e} Mvar",
        w[7]
    );
}

#[test]
fn cpu_kernels_match_pandapower_runpp() {
    for name in NETS {
        let (net, reference) = load(name);
        let (plan, scalar) = cpu_solve(&net, &reference, CpuKernel::Scalar);
        check(name, "CPU scalar", &plan, worst(name, &reference, &scalar));
        check_trafo_flows(name, "CPU scalar", &net, &reference, &scalar, 1e-7);
        let (plan, lanes) = cpu_solve(&net, &reference, CpuKernel::Lanes);
        check(name, "CPU lanes", &plan, worst(name, &reference, &lanes));
        // The lane kernel gives the scalar kernel's results bit for bit.
        for ((key, a), (_, b)) in scalar.tables().into_iter().zip(lanes.tables()) {
            assert_eq!(a, b, "{name}: {key}, scalar vs lanes");
        }
        assert_eq!(scalar.iterations, lanes.iterations, "{name}");
    }
}

/// Warm starts: every copy solved at the base case first, then at its
/// scenario (loads, gen P and vm_pu moved): the PV voltages follow the new
/// set-points and the answers are pandapower's.
#[test]
fn warm_start_follows_new_gen_setpoints() {
    for name in NETS {
        let (net, reference) = load(name);
        for kernel in [CpuKernel::Scalar, CpuKernel::Lanes] {
            let plan = default_plan(&net);
            let b = reference.scenarios.len();
            let mut batch = CpuBatch::new(plan.clone(), b).with_kernel(kernel);
            let target = reference.to_inputs(&net).unwrap();
            {
                let inp = batch.inputs_mut();
                for c in 0..b {
                    inp.copy_row_from(c, &target, 0);
                }
            }
            batch.solve().unwrap();
            assert!(batch.results().converged.iter().all(|&x| x), "{name}");
            batch.inputs_mut().assign(&target);
            batch.solve().unwrap();
            let w = worst(name, &reference, batch.results());
            check(name, &format!("{kernel:?} warm"), &plan, w);
        }
    }
}

/// The YAML form of the imported network gives the same answers.
#[test]
fn yaml_round_trip_gives_the_same_answer() {
    for name in NETS {
        let (net, reference) = load(name);
        assert!(!net.gens.is_empty(), "{name}: gens imported");
        assert_eq!(
            net.xwards.is_empty(),
            !name.contains("x") && name != "multivoltage_full"
        );
        let (_, a, b) = yaml_round_trip(name, &net, &reference);
        assert_eq!(a.gen_q_mvar, b.gen_q_mvar, "{name}");
    }
}

/// The f32 GPU solver against pandapower: voltages within 1e-5 p.u., angles
/// within 1e-3°, loadings within 1e-3 pp; ext_grid and gen P/Q printed and
/// bounded (f32 currents, MVA bases of 1 to 100).
#[test]
fn gpu_matches_pandapower_runpp() {
    if !gpu_or_skip("gpu_matches_pandapower_runpp") {
        return;
    }
    for name in NETS {
        let (net, reference) = load(name);
        let (plan, r) = gpu_solve(&net, &reference);
        check_trafo_flows(name, "GPU", &net, &reference, &r, 1e-4);
        let w = worst(name, &reference, &r);
        eprintln!(
            "{name} (GPU): worst |Δvm| {:.2e} p.u., |Δva| {:.2e}°, |Δline%| {:.2e}, |Δtrafo%| {:.2e}, \
             |ΔP_ext| {:.2e} MW, |ΔQ_ext| {:.2e} Mvar, |ΔP_gen| {:.2e} MW, |ΔQ_gen| {:.2e} Mvar",
            w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
        );
        let sn = plan.net.sn_mva;
        assert_worst(name, "GPU", &w, 1e-5, 1e-3, Some(1e-3));
        assert!(
            w[4] <= 1e-3 * sn,
            "{name}: GPU max |Δext_grid P| = {:e} MW",
            w[4]
        );
        assert!(
            w[5] <= 1e-3 * sn,
            "{name}: GPU max |Δext_grid Q| = {:e} Mvar",
            w[5]
        );
        assert!(w[6] <= 1e-9, "{name}: GPU max |Δgen P| = {:e} MW", w[6]);
        assert!(
            w[7] <= 1e-3 * sn,
            "{name}: GPU max |Δgen Q| = {:e} Mvar",
            w[7]
        );
    }
}

/// Warm starts on the GPU: every copy at the base case first, then at its
/// scenario (the PV set-points move).
#[test]
fn gpu_warm_start_follows_new_gen_setpoints() {
    if !gpu_or_skip("gpu_warm_start_follows_new_gen_setpoints") {
        return;
    }
    for name in NETS {
        let (net, reference) = load(name);
        let plan = default_plan(&net);
        let b = reference.scenarios.len();
        let mut gpu = powergrid::powerflow::gpu::GpuBatch::new(plan, b).unwrap();
        let target = reference.to_inputs(&net).unwrap();
        for c in 0..b {
            gpu.inputs_mut().copy_row_from(c, &target, 0);
        }
        gpu.solve().unwrap();
        gpu.inputs_mut().assign(&target);
        gpu.solve().unwrap();
        let w = worst(name, &reference, gpu.results());
        eprintln!(
            "{name} (GPU warm): worst |Δvm| {:.2e} p.u., |Δva| {:.2e}°",
            w[0], w[1]
        );
        assert_worst(name, "GPU warm", &w, 1e-5, 1e-3, None);
    }
}

/// Plan-build time (variant/ψ search included) of the IEEE cases (printed, not asserted).
#[test]
fn plan_build_time_is_printed() {
    for name in ["case118", "case300"] {
        print_plan_build_time(name, &load(name).0);
    }
}

/// `powergrid pf` with a reference file as its scenarios (gen P and vm_pu per
/// scenario): the output has the gen tables, and they are pandapower's.
#[test]
fn pf_cli_reads_gen_setpoints_and_writes_gen_results() {
    let dir = path("tests/data/pandapower_gen");
    let out = std::env::temp_dir().join(format!("powergrid_gen_cli_{}.json", std::process::id()));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_powergrid"))
        .args(["pf", "--network"])
        .arg(dir.join("gens.json"))
        .arg("--scenarios")
        .arg(dir.join("gens.reference.json"))
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (_, reference) = load("gens");
    for (c, s) in v["scenarios"].as_array().unwrap().iter().enumerate() {
        assert_eq!(s["converged"], true, "scenario {c}");
        for key in ["gen_p_mw", "gen_q_mvar", "vm_pu"] {
            let got: Vec<f64> = s["results"][key]
                .as_array()
                .unwrap_or_else(|| panic!("no {key} in the output"))
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let d = max_abs_diff(&got, &ref_table(&reference, c, key));
            assert!(d <= 1e-6, "scenario {c} {key}: {d:e}");
        }
    }
}
