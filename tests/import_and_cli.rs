//! `powergrid import` keeps every element in order, the shipped YAML files are
//! what the importer makes of the pandapower files, and `powergrid pf` writes
//! the documented output shape.

mod common;
use common::*;
use powergrid::network::{self, yaml};
use std::process::Command;

#[test]
fn yaml_round_trip_is_exact() {
    for name in NETWORKS {
        let net = network::load(pandapower_json(name)).unwrap();
        let text = yaml::to_string(&net).unwrap();
        let back = yaml::from_str(&text).unwrap();
        assert_eq!(net, back, "{name}: YAML round trip changed the network");
    }
}

#[test]
fn shipped_yaml_is_the_import_of_the_pandapower_file() {
    for name in NETWORKS {
        let from_json = network::load(pandapower_json(name)).unwrap();
        let shipped = network::load(network_yaml(name)).unwrap();
        assert_eq!(
            from_json, shipped,
            "{name}: networks/{name}.yml is stale; run `powergrid import`"
        );
    }
}

#[test]
fn cli_import_then_pf() {
    let dir = std::env::temp_dir().join(format!("powergrid-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let yml = dir.join("ieee34.yml");
    let st = Command::new(env!("CARGO_BIN_EXE_powergrid"))
        .args([
            "import",
            pandapower_json("ieee34").to_str().unwrap(),
            "-o",
            yml.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let out_json = dir.join("out.json");
    let st = Command::new(env!("CARGO_BIN_EXE_powergrid"))
        .args([
            "pf",
            "--network",
            yml.to_str().unwrap(),
            "--scenarios",
            path("tests/data/reference/ieee34.json").to_str().unwrap(),
            "--output",
            out_json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_json).unwrap()).unwrap();
    let sc = out["scenarios"].as_array().unwrap();
    assert_eq!(sc.len(), 25);
    let reference = reference("ieee34");
    for (c, s) in sc.iter().enumerate() {
        assert!(s["iterations"].as_u64().is_some() && s["max_mismatch_pu"].as_f64().is_some());
        let keys = [
            "vm_pu",
            "va_degree",
            "line_p_from_mw",
            "line_q_from_mvar",
            "line_i_ka",
            "line_loading_percent",
            "trafo_loading_percent",
            "ext_grid_p_mw",
            "ext_grid_q_mvar",
        ];
        for k in keys {
            assert!(s["results"][k].is_array(), "missing {k}");
        }
        if ref_converged(&reference, c) {
            assert_eq!(s["converged"], true);
            let vm: Vec<f64> = s["results"]["vm_pu"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert!(max_abs_diff(&vm, &ref_table(&reference, c, "vm_pu")) <= 1e-6);
        }
    }
    // Without scenarios: the network as given, once, to stdout.
    let out = Command::new(env!("CARGO_BIN_EXE_powergrid"))
        .args(["pf", "--network", network_yaml("ieee13").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["scenarios"].as_array().unwrap().len(), 1);
    assert_eq!(v["scenarios"][0]["converged"], true);
}
