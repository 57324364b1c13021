//! The project's own YAML network format: the fields of [`Network`],
//! units in field names, unknown keys rejected.

use super::model::Network;
use crate::error::{Error, Result};
use std::path::Path;

/// Read a network from a YAML file.
pub fn read(path: &Path) -> Result<Network> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    yaml_serde::from_str(&text).map_err(|e| Error::parse(path, e))
}

/// Parse YAML text. Errors are [`Error::Parse`] with the path `<YAML text>`
/// and the parser's message (line and column).
pub fn from_str(text: &str) -> Result<Network> {
    yaml_serde::from_str(text).map_err(|e| Error::parse("<YAML text>", e))
}

/// Serialise to YAML (element order kept).
pub fn to_string(net: &Network) -> Result<String> {
    let body = yaml_serde::to_string(net).map_err(|e| Error::InvalidNetwork(e.to_string()))?;
    Ok(format!(
        "# powergrid network (units in field names; buses are referred to by 0-based position)\n{body}"
    ))
}

/// Write a network as YAML.
pub fn write(net: &Network, path: &Path) -> Result<()> {
    std::fs::write(path, to_string(net)?).map_err(|e| Error::io(path, e))
}
