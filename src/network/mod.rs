//! The network model: elements with pandapower's electrical models, read from the
//! project's YAML format or imported from pandapower JSON.

mod controllers;
mod model;
pub mod pandapower;
pub mod yaml;

pub use controllers::*;
pub use model::*;

use crate::error::{Error, Result};
use std::path::Path;

/// Load a network from `.yml`/`.yaml` (project format) or `.json` (pandapower).
pub fn load(path: impl AsRef<Path>) -> Result<Network> {
    let path = path.as_ref();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let net = match ext.as_str() {
        "yml" | "yaml" => yaml::read(path)?,
        "json" => pandapower::read(path)?,
        _ => {
            return Err(Error::parse(
                path,
                "unknown network file extension (expected .yml, .yaml or .json)",
            ))
        }
    };
    net.validate()
        .map_err(|e| Error::parse(path, e.to_string()))?;
    Ok(net)
}
