//! Bad `trafo3w`, `impedance`, `ward` and `xward` input: YAML and pandapower
//! JSON errors name the element, row and column; nothing panics.

mod common;
use common::*;
use powergrid::network::{pandapower, yaml};
use powergrid::powerflow::{Plan, SolverOptions};
use serde_json::Value;

const NET: &str = r#"
name: small
buses:
- vn_kv: 110.0
- vn_kv: 20.0
- vn_kv: 10.0
- vn_kv: 20.0
ext_grids:
- bus: 0
trafo3ws:
- name: T1
  hv_bus: 0
  mv_bus: 1
  lv_bus: 2
  sn_hv_mva: 40.0
  sn_mv_mva: 30.0
  sn_lv_mva: 15.0
  vn_hv_kv: 110.0
  vn_mv_kv: 20.0
  vn_lv_kv: 10.0
  vk_hv_percent: 10.0
  vk_mv_percent: 6.0
  vk_lv_percent: 11.0
  vkr_hv_percent: 0.3
  vkr_mv_percent: 0.25
  vkr_lv_percent: 0.35
  tap: {side: mv, step_percent: 1.5, min: -5, max: 5, pos: 2}
impedances:
- name: Z1
  from_bus: 1
  to_bus: 3
  rft_pu: 0.02
  xft_pu: 0.06
  sn_mva: 10.0
wards:
- name: W1
  bus: 3
  ps_mw: 2.0
  qs_mvar: 0.5
  pz_mw: 0.1
  qz_mvar: -0.4
"#;

#[test]
fn the_small_network_solves() {
    let net = yaml::from_str(NET).unwrap();
    net.validate().unwrap();
    let plan = Plan::new(&net, SolverOptions::default()).unwrap();
    // 4 buses and the star node.
    assert_eq!(plan.n_node, 5);
    // rtf/xtf default to rft/xft (pandapower's default): reciprocal.
    assert!(!net.impedances[0].is_asymmetric());
}

#[test]
fn unknown_keys_are_named() {
    for (from, to, key) in [
        (
            "  vk_hv_percent:",
            "  vk_hv_pct: 1\n  vk_hv_percent:",
            "vk_hv_pct",
        ),
        ("  rft_pu:", "  r_pu: 1\n  rft_pu:", "r_pu"),
        ("  ps_mw:", "  p_mw: 1\n  ps_mw:", "p_mw"),
        (
            "step_percent: 1.5",
            "step_percent: 1.5, at_star_point: true",
            "at_star_point",
        ),
    ] {
        let e = yaml_err(&NET.replacen(from, to, 1));
        assert!(e.contains(&format!("unknown field `{key}`")), "{key}: {e}");
    }
    let e = yaml_err(&NET.replacen("side: mv", "side: star", 1));
    assert!(e.contains("unknown variant `star`"), "{e}");
}

#[test]
fn out_of_range_buses_are_named() {
    for (from, to, what) in [
        (
            "  lv_bus: 2",
            "  lv_bus: 7",
            "trafo3w 0 (\"T1\") refers to bus 7",
        ),
        (
            "  to_bus: 3",
            "  to_bus: 9",
            "impedance 0 (\"Z1\") refers to bus 9",
        ),
        (
            "  bus: 3\n  ps_mw",
            "  bus: 4\n  ps_mw",
            "ward 0 (\"W1\") refers to bus 4",
        ),
    ] {
        let e = yaml_err(&NET.replacen(from, to, 1));
        assert!(e.contains(what) && e.contains("4 buses"), "{what}: {e}");
    }
}

#[test]
fn nan_parameters_are_named() {
    for (from, to, what) in [
        (
            "vk_mv_percent: 6.0",
            "vk_mv_percent: .nan",
            "trafo3w 0 (\"T1\"): vk_mv_percent is NaN",
        ),
        ("pos: 2", "pos: .nan", "trafo3w 0 (\"T1\"): tap.pos is NaN"),
        (
            "xft_pu: 0.06",
            "xft_pu: .nan",
            "impedance 0 (\"Z1\"): xft_pu is NaN",
        ),
        (
            "  sn_mva: 10.0",
            "  sn_mva: .inf",
            "impedance 0 (\"Z1\"): sn_mva is inf",
        ),
        (
            "qz_mvar: -0.4",
            "qz_mvar: .nan",
            "ward 0 (\"W1\"): qz_mvar is NaN",
        ),
        ("ps_mw: 2.0", "ps_mw: .nan", "ward 0 (\"W1\"): ps_mw is NaN"),
    ] {
        let e = yaml_err(&NET.replacen(from, to, 1));
        assert!(e.contains(what), "{what}: {e}");
    }
}

#[test]
fn impossible_parameters_are_named() {
    for (from, to, what) in [
        (
            "vkr_lv_percent: 0.35",
            "vkr_lv_percent: 12",
            "trafo3w 0 (\"T1\"): each vkr_*_percent",
        ),
        (
            "sn_lv_mva: 15.0",
            "sn_lv_mva: 0",
            "trafo3w 0 (\"T1\"): sn_*_mva",
        ),
        (
            "min: -5, max: 5",
            "min: 5, max: -5",
            "trafo3w 0 (\"T1\"): tap.min > tap.max",
        ),
        (
            "rft_pu: 0.02\n  xft_pu: 0.06",
            "rft_pu: 0\n  xft_pu: 0",
            "impedance 0 (\"Z1\") has zero impedance",
        ),
        (
            "rft_pu: 0.02",
            "rft_pu: 0.02\n  rtf_pu: 0\n  xtf_pu: 0",
            "impedance 0 (\"Z1\") has zero impedance",
        ),
        (
            "  sn_mva: 10.0",
            "  sn_mva: -1",
            "impedance 0 (\"Z1\"): sn_mva must be positive",
        ),
    ] {
        let e = yaml_err(&NET.replacen(from, to, 1));
        assert!(e.contains(what), "{what}: {e}");
    }
    // Star branches whose impedances cancel: named by the plan, no panic.
    // (equal ratings: the HV star value is (vk_hv + vk_lv − vk_mv)/2 = 0).
    let zero = NET
        .replacen("sn_mv_mva: 30.0", "sn_mv_mva: 40.0", 1)
        .replacen("sn_lv_mva: 15.0", "sn_lv_mva: 40.0", 1)
        .replacen("vk_hv_percent: 10.0", "vk_hv_percent: 5.0", 1)
        .replacen("vk_mv_percent: 6.0", "vk_mv_percent: 10.0", 1)
        .replacen("vk_lv_percent: 11.0", "vk_lv_percent: 5.0", 1)
        .replacen("vkr_hv_percent: 0.3", "vkr_hv_percent: 0.0", 1)
        .replacen("vkr_mv_percent: 0.25", "vkr_mv_percent: 0.0", 1)
        .replacen("vkr_lv_percent: 0.35", "vkr_lv_percent: 0.0", 1);
    let net = yaml::from_str(&zero).unwrap();
    net.validate().unwrap();
    let e = Plan::new(&net, SolverOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("trafo3w \"T1\"") && e.contains("zero impedance"),
        "{e}"
    );
}

#[test]
fn trafo3w_switches_must_touch_it() {
    let text = format!("{NET}switches:\n- bus: 3\n  element: 0\n  et: t3\n  closed: false\n");
    let e = yaml_err(&text);
    assert!(e.contains("trafo3w 0 does not touch bus 3"), "{e}");
    let text = format!("{NET}switches:\n- bus: 2\n  element: 1\n  et: t3\n  closed: false\n");
    let e = yaml_err(&text);
    assert!(e.contains("Trafo3w 1, which does not exist"), "{e}");
}

/// `elements.json` with one cell of one table changed.
fn with_cell(table: &str, row: usize, col: &str, value: Value) -> String {
    let text =
        std::fs::read_to_string(path("tests/data/pandapower_elements/elements.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let obj = &mut v["_object"][table]["_object"];
    let mut t: Value = serde_json::from_str(obj.as_str().unwrap()).unwrap();
    let cols: Vec<String> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    match cols.iter().position(|c| c == col) {
        Some(c) => t["data"][row][c] = value,
        None => {
            t["columns"].as_array_mut().unwrap().push(col.into());
            for r in t["data"].as_array_mut().unwrap() {
                r.as_array_mut().unwrap().push(Value::Null);
            }
            t["data"][row][cols.len()] = value;
        }
    }
    *obj = Value::String(t.to_string());
    v.to_string()
}

fn import_err(text: &str) -> String {
    match pandapower::from_str(text) {
        Ok(net) => net.validate().unwrap_err().to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsupported_trafo3w_variants_name_row_and_column() {
    for (col, value, what) in [
        (
            "tap_at_star_point",
            Value::Bool(true),
            "a tap changer at the star point",
        ),
        (
            "tap_dependency_table",
            Value::Bool(true),
            "tap-dependent impedance tables",
        ),
        (
            "tap_changer_type",
            "Ideal".into(),
            "tap changer type \"Ideal\"",
        ),
        ("tap_step_degree", 5.0.into(), "phase-shifting tap changer"),
        ("loss_side", "star".into(), "iron losses at \"star\""),
    ] {
        let e = import_err(&with_cell("trafo3w", 1, col, value));
        assert!(
            e.contains("unsupported element")
                && e.contains("trafo3w row 1 (\"T3w MV tap, LV open\")")
                && e.contains(&format!("column {col}"))
                && e.contains(what),
            "{col}: {e}"
        );
    }
    // The out-of-service trafo3w (row 3) may carry them.
    let text = with_cell("trafo3w", 3, "tap_dependency_table", Value::Bool(true));
    assert!(pandapower::from_str(&text).is_ok());
    // loss_side "mv" and "lv" are modelled.
    let net = pandapower::from_str(&with_cell("trafo3w", 0, "loss_side", "mv".into())).unwrap();
    assert_eq!(
        net.trafo3ws[0].loss_side,
        powergrid::network::Trafo3wSide::Mv
    );
}

#[test]
fn bad_pandapower_values_name_row_and_column() {
    for (table, col, value, what) in [
        (
            "trafo3w",
            "mv_bus",
            99.into(),
            "trafo3w row 0: mv_bus = 99 is not a bus",
        ),
        (
            "impedance",
            "to_bus",
            99.into(),
            "impedance row 0: to_bus = 99 is not a bus",
        ),
        (
            "ward",
            "bus",
            42.into(),
            "ward row 0: bus = 42 is not a bus",
        ),
        (
            "ward",
            "ps_mw",
            Value::Null,
            "ward row 0: missing value in column ps_mw",
        ),
        (
            "impedance",
            "sn_mva",
            Value::Null,
            "impedance row 0: missing value in column sn_mva",
        ),
        (
            "trafo3w",
            "vk_lv_percent",
            "x".into(),
            "trafo3w row 0: column vk_lv_percent is not a number",
        ),
        (
            "switch",
            "element",
            7.into(),
            "switch row 0: element 7 is not a trafo3w",
        ),
    ] {
        let e = import_err(&with_cell(table, 0, col, value));
        assert!(e.contains(what), "{table}.{col}: {e}");
    }
}

/// An xward is imported (its internal PV node is solved); bad values are named.
#[test]
fn xward_is_imported_and_bad_values_are_named() {
    let text =
        std::fs::read_to_string(path("tests/data/pandapower_elements/elements.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let xward = |r: f64, x: f64, vm: f64| serde_json::json!({"columns": ["name", "bus", "ps_mw", "qs_mvar", "qz_mvar", "pz_mw", "r_ohm", "x_ohm", "vm_pu", "in_service"], "index": [0], "data": [["X1", 3, 1.0, 0.5, 0.0, 0.1, r, x, vm, true]]});
    v["_object"]["xward"]["_object"] = Value::String(xward(0.0, 10.0, 1.02).to_string());
    let net = pandapower::from_str(&v.to_string()).unwrap();
    assert_eq!(net.xwards.len(), 1);
    let plan = Plan::new(&net, SolverOptions::default()).unwrap();
    assert_eq!(plan.pv_nodes.len(), 1);
    for (r, x, vm, what) in [
        (
            0.0,
            0.0,
            1.02,
            "xward 0 (\"X1\"): r_ohm and x_ohm are both 0",
        ),
        (0.0, 10.0, 0.0, "xward 0 (\"X1\"): vm_pu must be positive"),
        (f64::NAN, 10.0, 1.0, "xward 0 (\"X1\"): r_ohm is NaN"),
    ] {
        let mut w = v.clone();
        let mut t = xward(r, x, vm);
        if r.is_nan() {
            // JSON has no NaN: pandas writes null, which is a missing value.
            t["data"][0][6] = Value::Null;
        }
        w["_object"]["xward"]["_object"] = Value::String(t.to_string());
        let e = match pandapower::from_str(&w.to_string()) {
            Ok(net) => net.validate().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        let what = if r.is_nan() {
            "missing value in column r_ohm"
        } else {
            what
        };
        assert!(e.contains(what), "{what}: {e}");
    }
}

#[test]
fn trafo3w_loading_of_other_results_is_an_error() {
    use powergrid::powerflow::trafo3w::trafo3w_loading_percent;
    use powergrid::powerflow::{CpuBatch, PowerFlow};
    let net = yaml::from_str(NET).unwrap();
    let plan = std::sync::Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    let mut batch = CpuBatch::new(plan.clone(), 2);
    batch.solve().unwrap();
    let ld = trafo3w_loading_percent(&plan, batch.results()).unwrap();
    assert!(ld.iter().all(|x| x.is_finite() && *x > 0.0), "{ld:?}");
    let other = powergrid::network::load(network_yaml("ieee13")).unwrap();
    let plan13 = std::sync::Arc::new(Plan::new(&other, SolverOptions::default()).unwrap());
    let mut b13 = CpuBatch::new(plan13, 2);
    b13.solve().unwrap();
    let e = trafo3w_loading_percent(&plan, b13.results())
        .unwrap_err()
        .to_string();
    assert!(e.contains("results of 13 buses for a network of 4"), "{e}");
}
