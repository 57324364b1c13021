//! Helpers shared by the integration tests.
#![allow(dead_code)]

use powergrid::powerflow::scenarios::ScenarioFile;
use std::path::PathBuf;

/// The five reference networks.
pub const NETWORKS: [&str; 5] = ["ieee13", "ieee34", "ieee123", "cigre_lv", "ieee34_ieee13"];

/// Path under the crate root.
pub fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The pandapower JSON of a network.
pub fn pandapower_json(name: &str) -> PathBuf {
    path(&format!("tests/data/pandapower/{name}.json"))
}

/// The shipped YAML of a network.
pub fn network_yaml(name: &str) -> PathBuf {
    path(&format!("networks/{name}.yml"))
}

/// pandapower's reference solutions of a network.
pub fn reference(name: &str) -> ScenarioFile {
    ScenarioFile::read(&path(&format!("tests/data/reference/{name}.json"))).unwrap()
}

/// A reference scenario's converged flag.
pub fn ref_converged(f: &ScenarioFile, c: usize) -> bool {
    f.scenarios[c]
        .extra
        .get("converged")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// A reference scenario's result table.
pub fn ref_table(f: &ScenarioFile, c: usize, key: &str) -> Vec<f64> {
    f.scenarios[c].extra["results"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap_or(0.0))
        .collect()
}

/// Max |a − b|.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
