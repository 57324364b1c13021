//! How much memory a batch needs, checked before anything is allocated.
//!
//! A batch's memory grows linearly with its copies: per copy, the solver state
//! (voltages, injections, per-copy B'' factor values), the `[B, n]` input and
//! result arrays, and on the GPU backend the device buffers and their host
//! mirrors. [`estimate`] computes that from the plan without allocating;
//! [`check`] refuses a batch whose estimate exceeds what the machine has
//! (`MemAvailable` of `/proc/meminfo`, or `POWERGRID_MEMORY_LIMIT_GB` when set),
//! with a message that gives the estimate, the limit and the largest batch that fits.
//! wgpu cannot tell how much memory a real GPU has, so device buffers are
//! checked only on a CPU-emulated adapter (lavapipe), where they are host memory
//! ([`check_emulated_gpu`]); on a real GPU the estimate is printed (`--verbose`)
//! and allocation failures are reported by wgpu.

use super::plan::Plan;
use super::BackendKind;
use crate::error::{Error, Result};
use crate::network::Network;

/// Headroom on top of the solver's own arrays: the environment's per-copy
/// arrays (devices, observations, info), allocator slack.
const MARGIN: f64 = 1.5;

/// Bytes of one copy's rows of [`super::BatchInputs`] and [`super::BatchResults`].
pub(crate) fn io_bytes_per_copy(net: &Network) -> usize {
    let inputs = 3 * net.loads.len()
        + 2 * net.sgens.len()
        + net.storages.len()
        + net.trafos.len()
        + net.shunts.len()
        + 2 * net.gens.len();
    let results = 2 * net.buses.len()
        + 4 * net.lines.len()
        + 5 * net.trafos.len()
        + 2 * net.ext_grids.len()
        + 2 * net.gens.len();
    8 * (inputs + results) + 24
}

/// What a batch is expected to take.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MemoryEstimate {
    /// Copies.
    pub batch: usize,
    /// Host (RAM) bytes, margin included.
    pub host_bytes: u64,
    /// GPU buffer bytes (0 on the CPU backend).
    pub device_bytes: u64,
    /// Host bytes per copy, margin included.
    pub host_bytes_per_copy: f64,
    /// The host limit it is checked against, when known.
    pub host_limit_bytes: Option<u64>,
}

impl std::fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} copies need about {} of host memory ({:.1} kB per copy)",
            self.batch,
            human(self.host_bytes),
            self.host_bytes_per_copy / 1e3
        )?;
        if self.device_bytes > 0 {
            write!(f, " and {} of GPU buffers", human(self.device_bytes))?;
        }
        if let Some(l) = self.host_limit_bytes {
            write!(f, "; {} available", human(l))?;
        }
        Ok(())
    }
}

/// Bytes as `12.3 GB`.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} kB", b / 1e3)
    }
}

/// The memory `batch` copies of `plan` need on `backend` (`Auto` is counted as
/// the larger of the two).
pub fn estimate(plan: &Plan, batch: usize, backend: BackendKind) -> MemoryEstimate {
    let cpu = || super::cpu::CopyState::bytes_per_copy(plan);
    let (host, dev) = match backend {
        BackendKind::Cpu => (cpu(), 0),
        BackendKind::Gpu => super::gpu::bytes_per_copy(plan),
        BackendKind::Auto => {
            let (gpu_host, gpu_dev) = super::gpu::bytes_per_copy(plan);
            (cpu().max(gpu_host), gpu_dev)
        }
    };
    let per = host as f64 * MARGIN;
    MemoryEstimate {
        batch,
        host_bytes: (per * batch as f64) as u64,
        device_bytes: (dev as f64 * batch as f64) as u64,
        host_bytes_per_copy: per,
        host_limit_bytes: host_limit(),
    }
}

/// Host memory a batch may use: `POWERGRID_MEMORY_LIMIT_GB` if set, else
/// `MemAvailable` (Linux); `None` where neither is known.
pub fn host_limit() -> Option<u64> {
    if let Some(gb) = std::env::var("POWERGRID_MEMORY_LIMIT_GB")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
    {
        return Some((gb * 1e9) as u64);
    }
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// [`estimate`], refused with [`Error::Memory`] when it exceeds [`host_limit`].
pub fn check(plan: &Plan, batch: usize, backend: BackendKind) -> Result<MemoryEstimate> {
    within_limit(
        estimate(plan, batch, backend),
        &format!("network {:?}", plan.net.name),
    )
}

/// `e` if its host bytes fit [`host_limit`] (or the limit is unknown), else
/// [`Error::Memory`] with the estimate, the limit and the largest batch that fits.
fn within_limit(e: MemoryEstimate, what: &str) -> Result<MemoryEstimate> {
    match e.host_limit_bytes {
        Some(limit) if e.host_bytes > limit => {
            let fits = (limit as f64 / e.host_bytes_per_copy).floor() as u64;
            Err(Error::Memory(format!(
                "{what}: {e}; use at most about {fits} copies here (or set POWERGRID_MEMORY_LIMIT_GB)"
            )))
        }
        _ => Ok(e),
    }
}

/// On a CPU-emulated adapter (lavapipe) the GPU buffers live in host memory:
/// refuse a batch whose host and device bytes together exceed [`host_limit`].
pub fn check_emulated_gpu(plan: &Plan, batch: usize) -> Result<MemoryEstimate> {
    let mut e = estimate(plan, batch, BackendKind::Gpu);
    let per = e.host_bytes_per_copy + e.device_bytes as f64 / batch.max(1) as f64;
    e.host_bytes_per_copy = per;
    e.host_bytes = (per * batch as f64) as u64;
    e.device_bytes = 0;
    within_limit(
        e,
        &format!(
            "network {:?} on a CPU-emulated GPU (its buffers are host memory)",
            plan.net.name
        ),
    )
}
