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

/// The folder of the networks shipped with the crate (`networks/` of the source tree).
pub fn shipped_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("networks")
}

/// Names of the shipped networks (`ieee13`, `ieee34`, …), sorted.
pub fn shipped_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(shipped_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "yml").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    names
}

/// Where a network argument points: an existing path as given; else a shipped
/// network by name (`ieee123` → `networks/ieee123.yml` of the crate); else a
/// relative path resolved against the crate's source tree (so README examples
/// such as `networks/ieee123.yml` work from any working directory).
pub fn resolve(path: impl AsRef<Path>) -> Result<std::path::PathBuf> {
    let path = path.as_ref();
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let is_name = path.extension().is_none() && path.components().count() == 1;
    if is_name {
        let p = shipped_dir().join(path).with_extension("yml");
        if p.is_file() {
            return Ok(p);
        }
    } else if path.is_relative() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "no such file, and not a shipped network (shipped: {})",
                shipped_names().join(", ")
            ),
        ),
    ))
}

/// Load a network from `.yml`/`.yaml` (project format) or `.json` (pandapower),
/// or a shipped network by name (see [`resolve`]).
pub fn load(path: impl AsRef<Path>) -> Result<Network> {
    let resolved = resolve(path)?;
    let path = resolved.as_path();
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
