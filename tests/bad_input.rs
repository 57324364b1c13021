//! Bad input gets a clear error naming what is wrong, and nothing panics.

mod common;
use common::*;
use powergrid::network::{self, pandapower};
use powergrid::powerflow::scenarios::ScenarioFile;
use powergrid::powerflow::{CpuBatch, Plan, PowerFlow, SolverOptions};
use std::process::Command;
use std::sync::Arc;

fn ieee13_yaml() -> String {
    std::fs::read_to_string(network_yaml("ieee13")).unwrap()
}

#[test]
fn malformed_yaml_says_where() {
    let e = yaml_err("buses: [ {vn_kv: 4.16 ");
    assert!(e.contains("line"), "{e}");
}

#[test]
fn unknown_yaml_key_is_named() {
    let text = ieee13_yaml().replacen("vn_kv: 4.16", "vn_kv: 4.16\n  voltage_kv: 4.16", 1);
    let e = yaml_err(&text);
    assert!(e.contains("unknown field `voltage_kv`"), "{e}");
}

#[test]
fn missing_bus_index_is_named() {
    let text = ieee13_yaml().replacen("from_bus: ", "from_bus: 99 #", 1);
    let e = yaml_err(&text);
    assert!(
        e.contains("refers to bus 99") && e.contains("13 buses"),
        "{e}"
    );
}

#[test]
fn malformed_json_is_an_error() {
    let e = pandapower::from_str("{\"_class\": \"pandapowerNet\", ")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not JSON"), "{e}");
    let e = pandapower::from_str("{\"a\": 1}").unwrap_err().to_string();
    assert!(e.contains("not a pandapower network"), "{e}");
}

/// A pandapower network with an in-service element powergrid does not model.
#[test]
fn unsupported_element_is_named() {
    let text = std::fs::read_to_string(pandapower_json("ieee13")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cols = [
        "name",
        "from_bus",
        "to_bus",
        "p_mw",
        "loss_percent",
        "loss_mw",
        "vm_from_pu",
        "vm_to_pu",
        "in_service",
    ];
    let dcline = |on: bool| {
        serde_json::json!({"_class": "DataFrame", "_module": "pandas.core.frame", "_object":
            serde_json::json!({"columns": cols, "index": [0],
                "data": [["D1", 3, 4, 0.5, 1.0, 0.0, 1.0, 1.0, on]]}).to_string()})
    };
    v["_object"]["dcline"] = dcline(true);
    let e = pandapower::from_str(&v.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unsupported element") && e.contains("'dcline'"),
        "{e}"
    );
    // An out-of-service one changes nothing and is accepted.
    v["_object"]["dcline"] = dcline(false);
    assert!(pandapower::from_str(&v.to_string()).is_ok());
}

fn plan13() -> (powergrid::network::Network, Arc<Plan>) {
    let net = network::load(network_yaml("ieee13")).unwrap();
    let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    (net, plan)
}

#[test]
fn nan_and_infinite_set_points_are_rejected() {
    let (_, plan) = plan13();
    let mut b = CpuBatch::new(plan, 4);
    b.inputs_mut().load_p_mw[(2, 1)] = f64::NAN;
    let e = b.solve().unwrap_err().to_string();
    assert!(e.contains("load_p_mw[copy 2][1] is NaN"), "{e}");
    b.inputs_mut().load_p_mw[(2, 1)] = 0.1;
    b.inputs_mut().sgen_p_mw = ndarray::Array2::zeros((4, 0));
    b.inputs_mut().load_q_mvar[(0, 0)] = f64::INFINITY;
    let e = b.solve().unwrap_err().to_string();
    assert!(e.contains("load_q_mvar[copy 0][0] is inf"), "{e}");
    b.inputs_mut().load_q_mvar[(0, 0)] = 0.1;
    // Once fixed, it solves.
    assert_eq!(b.solve().unwrap().converged, 4);
}

#[test]
fn wrong_shapes_and_ranges_are_rejected() {
    let (_, plan) = plan13();
    let mut b = CpuBatch::new(plan, 2);
    b.inputs_mut().load_p_mw = ndarray::Array2::zeros((2, 3));
    let e = b.solve().unwrap_err().to_string();
    assert!(
        e.contains("load_p_mw has shape [2, 3], expected [2, 8]"),
        "{e}"
    );
    let (_, plan) = plan13();
    let mut b = CpuBatch::new(plan, 2);
    b.inputs_mut().trafo_tap_pos[(1, 0)] = 7.0;
    let e = b.solve().unwrap_err().to_string();
    assert!(
        e.contains("outside trafo 0") && e.contains("[-2, 2]"),
        "{e}"
    );
}

#[test]
fn scenario_arrays_of_the_wrong_length_are_rejected() {
    let (net, _) = plan13();
    let f: ScenarioFile =
        serde_json::from_str(r#"{"scenarios":[{"inputs":{"load_p_mw":[1.0, 2.0]}}]}"#).unwrap();
    let e = f.to_inputs(&net).unwrap_err().to_string();
    assert!(
        e.contains("scenario 0: load_p_mw has 2 values, the network has 8"),
        "{e}"
    );
    let bad: Result<ScenarioFile, _> =
        serde_json::from_str(r#"{"scenarios":[{"inputs":{"load_pmw":[1.0]}}]}"#);
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("unknown field `load_pmw`"));
}

/// The CLI turns every one of these into a message and a non-zero exit, not a panic.
#[test]
fn cli_reports_errors_cleanly() {
    let dir = std::env::temp_dir().join(format!("powergrid-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_net = dir.join("bad.yml");
    std::fs::write(
        &bad_net,
        ieee13_yaml().replacen("vn_kv: 4.16", "vn_kv: 4.16\n  colour: red", 1),
    )
    .unwrap();
    let bad_sc = dir.join("bad.json");
    std::fs::write(
        &bad_sc,
        r#"{"scenarios":[{"inputs":{"load_scaling":[1,1,1]}}]}"#,
    )
    .unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "pf".into(),
                "--network".into(),
                bad_net.display().to_string(),
            ],
            "unknown field `colour`",
        ),
        (
            vec!["pf".into(), "--network".into(), "no/such.yml".into()],
            "no/such.yml",
        ),
        (
            vec![
                "pf".into(),
                "--network".into(),
                network_yaml("ieee13").display().to_string(),
                "--scenarios".into(),
                bad_sc.display().to_string(),
            ],
            "load_scaling has 3 values",
        ),
    ];
    for (args, expect) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_powergrid"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains("error: ") && err.contains(expect),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
}
