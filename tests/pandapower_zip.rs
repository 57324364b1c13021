//! Voltage-dependent (ZIP) loads against `pandapower.runpp` (defaults,
//! voltage_depend_loads = True, tolerance_mva = 1e-10): a Kerber network with
//! every load 30 % Z / 20 % I and a handcrafted net mixing ZIP and
//! constant-power loads (see `tests/data/pandapower_zip/make_reference.py`).
//! Base case plus load scalings, imported from pandapower JSON and
//! round-tripped through YAML.

mod common;
use common::*;
use powergrid::network::{self, yaml};
use powergrid::powerflow::scenarios::ScenarioFile;
use powergrid::powerflow::{CpuBatch, CpuKernel, Plan, PowerFlow, SolverOptions};
use std::sync::Arc;

const NETS: [&str; 2] = ["kerber_zip", "zip_mixed"];

fn load(name: &str) -> (network::Network, ScenarioFile) {
    reference_case("pandapower_zip", name)
}

#[test]
fn zip_loads_are_imported() {
    let (net, _) = load("zip_mixed");
    let l = net.loads.iter().find(|l| l.name == "ZIP MV1").unwrap();
    assert_eq!(
        [
            l.const_z_p_percent,
            l.const_i_p_percent,
            l.const_z_q_percent,
            l.const_i_q_percent
        ],
        [30.0, 20.0, 10.0, 50.0]
    );
    let plan = Plan::new(&net, SolverOptions::default()).unwrap();
    assert!(plan.has_zip);
    let (kerber, _) = load("kerber_zip");
    assert!(kerber.loads.iter().all(|l| l.is_zip()));
}

#[test]
fn cpu_matches_pandapower_runpp() {
    for name in NETS {
        let (net, reference) = load(name);
        for kernel in [CpuKernel::Scalar, CpuKernel::Lanes] {
            let (plan, r) = cpu_solve(&net, &reference, kernel);
            let w = worst_all_converged(name, &reference, &r);
            eprintln!(
                "{name} (CPU {kernel:?}, {:?} psi {:.1}): worst |Δvm| {:.2e} p.u., |Δva| {:.2e}°, |Δline%| {:.2e}, |Δtrafo%| {:.2e}, |ΔP_ext| {:.2e} MW, |ΔQ_ext| {:.2e} Mvar",
                plan.variant, plan.psi, w[0], w[1], w[2], w[3], w[4], w[5]
            );
            assert_worst(name, "CPU", &w, 1e-6, 1e-4, Some(1e-3));
            assert!(w[4] <= 1e-6, "{name}: max |Δext_grid P| = {:e} MW", w[4]);
            assert!(w[5] <= 1e-6, "{name}: max |Δext_grid Q| = {:e} Mvar", w[5]);
            check_trafo_flows(name, &format!("CPU {kernel:?}"), &net, &reference, &r, 1e-7);
        }
    }
}

/// The YAML form of the imported network gives the same answers.
#[test]
fn yaml_round_trip_gives_the_same_answer() {
    for name in NETS {
        let (net, reference) = load(name);
        let (text, _, _) = yaml_round_trip(name, &net, &reference);
        assert!(text.contains("const_z_p_percent"), "{name}");
    }
}

/// The f32 GPU solver: voltages within 1e-5 p.u. of pandapower, angles within
/// 1e-4°, loadings within 1e-3 pp.
#[test]
fn gpu_matches_pandapower_runpp() {
    if !gpu_or_skip("gpu_matches_pandapower_runpp") {
        return;
    }
    for name in NETS {
        let (net, reference) = load(name);
        let (_, r) = gpu_solve(&net, &reference);
        let w = worst_all_converged(name, &reference, &r);
        check_trafo_flows(name, "GPU", &net, &reference, &r, 1e-4);
        eprintln!(
            "{name} (GPU): worst |Δvm| {:.2e} p.u., |Δva| {:.2e}°, |Δline%| {:.2e}, |Δtrafo%| {:.2e}, |ΔP_ext| {:.2e} MW, |ΔQ_ext| {:.2e} Mvar",
            w[0], w[1], w[2], w[3], w[4], w[5]
        );
        assert_worst(name, "GPU", &w, 1e-5, 1e-4, Some(1e-3));
    }
}

const SMALL: &str = r#"
name: small zip
buses:
- vn_kv: 20.0
- vn_kv: 20.0
ext_grids:
- bus: 0
lines:
- from_bus: 0
  to_bus: 1
  length_km: 2.0
  r_ohm_per_km: 0.16
  x_ohm_per_km: 0.12
  c_nf_per_km: 260.0
  max_i_ka: 0.36
loads:
- name: L1
  bus: 1
  p_mw: 1.0
  q_mvar: 0.3
  const_z_p_percent: 30.0
  const_i_q_percent: 20.0
"#;

#[test]
fn yaml_zip_fields_are_optional_and_checked() {
    let net = yaml::from_str(SMALL).unwrap();
    net.validate().unwrap();
    let l = &net.loads[0];
    assert_eq!(
        [
            l.const_z_p_percent,
            l.const_z_q_percent,
            l.const_i_p_percent,
            l.const_i_q_percent
        ],
        [30.0, 0.0, 0.0, 20.0]
    );
    let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    let mut b = CpuBatch::new(plan, 1);
    b.solve().unwrap();
    assert!(b.results().converged[0]);
    for (from, to, what) in [
        (
            "const_z_p_percent: 30.0",
            "const_z_p_percent: 101.0",
            "load 0 (\"L1\"): const_z_p_percent must lie in [0, 100], got 101",
        ),
        (
            "const_z_p_percent: 30.0",
            "const_z_p_percent: -1.0",
            "load 0 (\"L1\"): const_z_p_percent must lie in [0, 100], got -1",
        ),
        (
            "const_i_q_percent: 20.0",
            "const_i_q_percent: .nan",
            "load 0 (\"L1\"): const_i_q_percent must lie in [0, 100], got NaN",
        ),
        (
            "const_i_q_percent: 20.0",
            "const_i_q_percent: 20.0\n  const_z_q_percent: 90.0",
            "load 0 (\"L1\"): const_z_q_percent + const_i_q_percent must be at most 100, got 110",
        ),
        (
            "const_i_q_percent: 20.0",
            "const_i_percent: 20.0",
            "unknown field `const_i_percent`",
        ),
    ] {
        let e = yaml_err(&SMALL.replacen(from, to, 1));
        assert!(e.contains(what), "{what}: {e}");
    }
}

/// `zip_mixed.json` with the load table changed by `f`.
fn with_load_table(f: impl Fn(&mut Value)) -> String {
    let text = std::fs::read_to_string(path("tests/data/pandapower_zip/zip_mixed.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let obj = &mut v["_object"]["load"]["_object"];
    let mut t: Value = serde_json::from_str(obj.as_str().unwrap()).unwrap();
    f(&mut t);
    *obj = Value::String(t.to_string());
    v.to_string()
}

fn col(t: &Value, name: &str) -> usize {
    t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == name)
        .unwrap()
}

use serde_json::Value;

#[test]
fn bad_pandapower_percentages_name_the_load_and_column() {
    for (column, value) in [("const_i_p_percent", 150.0), ("const_z_q_percent", -5.0)] {
        let text = with_load_table(|t| {
            let c = col(t, column);
            t["data"][2][c] = value.into();
        });
        let e = match powergrid::network::pandapower::from_str(&text) {
            Ok(net) => net.validate().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("load 2 (\"ZIP MV1\")") && e.contains(column),
            "{column}: {e}"
        );
    }
}

/// Files from before pandapower 2.x: `const_z_percent`/`const_i_percent` apply
/// to P and Q (pandapower's `convert_format` renames and copies them).
#[test]
fn legacy_columns_apply_to_p_and_q() {
    let text = with_load_table(|t| {
        for (new, old, drop) in [
            ("const_z_p_percent", "const_z_percent", "const_z_q_percent"),
            ("const_i_p_percent", "const_i_percent", "const_i_q_percent"),
        ] {
            let c = col(t, new);
            t["columns"][c] = old.into();
            let d = col(t, drop);
            t["columns"][d] = format!("unused_{drop}").into();
        }
    });
    let net = powergrid::network::pandapower::from_str(&text).unwrap();
    let l = net.loads.iter().find(|l| l.name == "ZIP MV1").unwrap();
    assert_eq!(
        [
            l.const_z_p_percent,
            l.const_z_q_percent,
            l.const_i_p_percent,
            l.const_i_q_percent
        ],
        [30.0, 30.0, 20.0, 20.0]
    );
}

/// Buses fused by a closed bus-bus switch share one node: their loads' ZIP
/// shares must agree (pandapower would keep whichever bus it meets last).
#[test]
fn fused_buses_with_different_zip_shares_are_refused() {
    let fused = |z: f64| {
        format!(
            "{}- name: L2\n  bus: 2\n  p_mw: 0.5\n  const_z_p_percent: {z}\n  const_i_q_percent: 20.0\nswitches:\n- {{bus: 1, element: 2, et: b, closed: true}}\n",
            SMALL.replacen("- vn_kv: 20.0\next_grids", "- vn_kv: 20.0\n- vn_kv: 20.0\next_grids", 1)
        )
    };
    let ok = yaml::from_str(&fused(30.0)).unwrap();
    ok.validate().unwrap();
    let plan = Plan::new(&ok, SolverOptions::default()).unwrap();
    assert!(plan.has_zip);
    let bad = yaml::from_str(&fused(40.0)).unwrap();
    bad.validate().unwrap();
    let e = match Plan::new(&bad, SolverOptions::default()) {
        Ok(_) => panic!("different shares at fused buses"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("buses 1") && e.contains("and 2") && e.contains("ZIP"),
        "{e}"
    );
}
