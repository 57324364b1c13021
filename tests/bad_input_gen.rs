//! Bad `gen` input: YAML, pandapower JSON and per-copy set-points; errors name
//! the gen (and the copy), nothing panics.

mod common;
use common::*;
use powergrid::network::{pandapower, yaml};
use powergrid::powerflow::{CpuBatch, Plan, PowerFlow, SolverOptions};
use std::sync::Arc;

const NET: &str = r#"
name: small_gen
buses:
- vn_kv: 20.0
- vn_kv: 20.0
- vn_kv: 20.0
- vn_kv: 20.0
ext_grids:
- bus: 0
  vm_pu: 1.02
lines:
- {from_bus: 0, to_bus: 1, length_km: 2.0, r_ohm_per_km: 0.12, x_ohm_per_km: 0.35, max_i_ka: 0.4}
- {from_bus: 1, to_bus: 2, length_km: 3.0, r_ohm_per_km: 0.12, x_ohm_per_km: 0.35, max_i_ka: 0.4}
- {from_bus: 2, to_bus: 3, length_km: 1.0, r_ohm_per_km: 0.12, x_ohm_per_km: 0.35, max_i_ka: 0.4}
loads:
- {bus: 1, p_mw: 2.0, q_mvar: 0.6}
- {bus: 3, p_mw: 1.0, q_mvar: 0.3}
gens:
- name: G1
  bus: 2
  p_mw: 1.5
  vm_pu: 1.01
- name: G2
  bus: 2
  p_mw: 0.5
  vm_pu: 1.01
  min_q_mvar: -1.0
  max_q_mvar: 1.0
"#;

fn plan_err(text: &str) -> String {
    let net = yaml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
    Plan::new(&net, SolverOptions::default())
        .expect_err("an error")
        .to_string()
}

#[test]
fn the_small_network_solves_with_its_pv_bus() {
    let net = yaml::from_str(NET).unwrap();
    let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    assert_eq!(plan.pv_nodes.len(), 1);
    let mut b = CpuBatch::new(plan, 2);
    b.solve().unwrap();
    let r = b.results();
    assert!(r.converged.iter().all(|&c| c));
    assert!(
        (r.vm_pu[(0, 2)] - 1.01).abs() < 1e-12,
        "{}",
        r.vm_pu[(0, 2)]
    );
    assert_eq!(r.gen_p_mw[(0, 0)], 1.5);
}

#[test]
fn out_of_range_bus_and_bad_values_are_named() {
    for (from, to, what) in [
        (
            "  bus: 2\n  p_mw: 1.5",
            "  bus: 9\n  p_mw: 1.5",
            "gen 0 (\"G1\") refers to bus 9",
        ),
        ("p_mw: 1.5", "p_mw: .nan", "gen 0 (\"G1\"): p_mw is NaN"),
        (
            "vm_pu: 1.01\n- name",
            "vm_pu: .nan\n- name",
            "gen 0 (\"G1\"): vm_pu is NaN",
        ),
        (
            "vm_pu: 1.01\n- name",
            "vm_pu: 0.0\n- name",
            "gen 0 (\"G1\"): vm_pu must be positive",
        ),
        (
            "  p_mw: 0.5",
            "  p_mw: 0.5\n  scaling: .inf",
            "gen 1 (\"G2\"): scaling is inf",
        ),
    ] {
        let text = NET.replacen(from, to, 1);
        assert_ne!(text, NET, "{what}: the replacement applies");
        let e = yaml_err(&text);
        assert!(e.contains(what), "{what}: {e}");
    }
    let e = yaml_err(&NET.replacen("  vm_pu: 1.01\n- name", "  volts: 1\n- name", 1));
    assert!(e.contains("unknown field `volts`"), "{e}");
}

/// pandapower refuses voltage set-points that differ at one bus (gen vs gen,
/// gen vs ext_grid), and so does the plan, naming the gens.
#[test]
fn different_setpoints_at_one_bus_are_refused() {
    let e = plan_err(&NET.replacen(
        "  p_mw: 0.5\n  vm_pu: 1.01",
        "  p_mw: 0.5\n  vm_pu: 1.03",
        1,
    ));
    assert!(
        e.contains("gens 0 (\"G1\"")
            && e.contains("1 (\"G2\"")
            && e.contains("different voltage set-points"),
        "{e}"
    );
    let slack = NET.replacen("- name: G2\n  bus: 2", "- name: G2\n  bus: 0", 1);
    let e = plan_err(&slack);
    assert!(
        e.contains("gen 1 (\"G2\")") && e.contains("ext_grid 0"),
        "{e}"
    );
    // At the ext_grid's own set-point it is accepted.
    let ok = slack.replacen(
        "  p_mw: 0.5\n  vm_pu: 1.01",
        "  p_mw: 0.5\n  vm_pu: 1.02",
        1,
    );
    Plan::new(&yaml::from_str(&ok).unwrap(), SolverOptions::default()).unwrap();
}

/// `slack = true` (a gen as a reference bus) is not modelled: refused by name.
#[test]
fn slack_gens_are_refused() {
    let e = yaml_err(&NET.replacen(
        "  vm_pu: 1.01\n- name",
        "  vm_pu: 1.01\n  slack: true\n- name",
        1,
    ));
    assert!(e.contains("gen 0 (\"G1\")") && e.contains("slack"), "{e}");
    // From pandapower JSON: the row and the column.
    let (json, _) = reference_case("pandapower_gen", "gens");
    let text = std::fs::read_to_string(path("tests/data/pandapower_gen/gens.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let inner = v["_object"]["gen"]["_object"].as_str().unwrap().to_string();
    let mut t: serde_json::Value = serde_json::from_str(&inner).unwrap();
    let col = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == "slack")
        .unwrap();
    t["data"][1][col] = serde_json::Value::Bool(true);
    v["_object"]["gen"]["_object"] = serde_json::Value::String(t.to_string());
    let e = pandapower::from_str(&v.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("gen row 1") && e.contains("G2a") && e.contains("slack"),
        "{e}"
    );
    assert!(!json.gens.is_empty());
}

/// Per-copy set-points: NaN or infinite P / vm_pu, vm_pu ≤ 0, and different
/// set-points of gens sharing a bus are typed errors naming the gen and copy.
#[test]
fn bad_per_copy_setpoints_are_named() {
    let net = yaml::from_str(NET).unwrap();
    let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    let mut b = CpuBatch::new(plan, 3);
    for (field, k, v, what) in [
        ("p", 1, f64::NAN, "gen_p_mw[copy 2][1] is NaN"),
        ("vm", 0, f64::INFINITY, "gen_vm_pu[copy 2][0] is inf"),
        ("vm", 1, 0.0, "gen_vm_pu[copy 2][1] = 0: gen 1 (\"G2\")"),
        ("vm", 1, -1.0, "gen_vm_pu[copy 2][1] = -1: gen 1 (\"G2\")"),
        ("vm", 1, 1.05, "gen_vm_pu of copy 2: gens 0 (\"G1\""),
    ] {
        let inp = b.inputs_mut();
        let base = inp.clone();
        let a = if field == "p" {
            &mut inp.gen_p_mw
        } else {
            &mut inp.gen_vm_pu
        };
        a[(2, k)] = v;
        let e = b.solve().unwrap_err().to_string();
        assert!(
            e.contains("invalid input") && e.contains(what),
            "{what}: {e}"
        );
        b.inputs_mut().assign(&base);
    }
    // Both gens moved together is fine, and the bus follows.
    b.inputs_mut().gen_vm_pu[(1, 0)] = 1.03;
    b.inputs_mut().gen_vm_pu[(1, 1)] = 1.03;
    b.solve().unwrap();
    assert!((b.results().vm_pu[(1, 2)] - 1.03).abs() < 1e-12);
    assert!((b.results().vm_pu[(0, 2)] - 1.01).abs() < 1e-12);
}
