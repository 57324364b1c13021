//! Batched power flow: the shared plan (matrices, factors), the CPU solver in f64,
//! and the GPU solver in WGSL.

pub mod admittance;
pub mod batch;
pub mod cpu;
pub(crate) mod injections;
pub mod memory;
pub mod plan;
pub mod precision;
pub(crate) mod qlims;
pub mod scenarios;
pub(crate) mod sparse_lu;
pub(crate) mod tap_warm;
pub mod trafo3w;

pub use batch::{
    BatchInputs, BatchResults, HostTime, PowerFlow, ResultColumns, SolveSummary, SolveWork,
};
pub use cpu::{CpuBatch, CpuKernel};
pub use plan::{Plan, SolverOptions, Variant};
pub use precision::GpuPrecision;
pub mod gpu;

/// Which power-flow backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The f64 CPU solver.
    Cpu,
    /// The WGSL solver on any wgpu adapter (lavapipe included).
    Gpu,
    /// A real GPU if there is one, else the CPU.
    Auto,
}

impl std::str::FromStr for BackendKind {
    type Err = crate::Error;
    /// `cpu`, `gpu` or `auto` (any case).
    fn from_str(s: &str) -> crate::Result<BackendKind> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(BackendKind::Cpu),
            "gpu" => Ok(BackendKind::Gpu),
            "auto" => Ok(BackendKind::Auto),
            _ => Err(crate::Error::InvalidInput(format!(
                "unknown backend {s:?}: use cpu, gpu or auto"
            ))),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Gpu => "gpu",
            BackendKind::Auto => "auto",
        })
    }
}

/// Make a batch of `batch` copies on the chosen backend; returns it with a line
/// saying which backend was chosen and why. A batch of 0 copies, or one whose
/// memory estimate ([`memory::check`]) exceeds what the machine has, is refused
/// before anything is allocated.
pub fn new_backend(
    kind: BackendKind,
    plan: std::sync::Arc<Plan>,
    batch: usize,
) -> crate::Result<(Box<dyn PowerFlow>, String)> {
    if batch == 0 {
        return Err(crate::Error::InvalidInput(
            "a batch needs at least one copy".into(),
        ));
    }
    memory::check(&plan, batch, kind)?;
    if kind != BackendKind::Cpu {
        // A misspelt WGPU_BACKEND is an error, not a silent fall-back to the CPU.
        crate::gpu::context::backends_from_env()?;
    }
    match kind {
        BackendKind::Cpu => {
            let b = CpuBatch::new(plan, batch);
            let d = b.describe();
            Ok((Box::new(b), d))
        }
        BackendKind::Gpu => {
            let b = gpu::new_batch(plan, batch)?;
            let d = b.describe();
            Ok((b, d))
        }
        BackendKind::Auto => {
            if gpu::real_gpu_available() {
                let b = gpu::new_batch(plan, batch)?;
                let d = format!("auto: {}", b.describe());
                Ok((b, d))
            } else {
                let b = CpuBatch::new(plan, batch);
                let d = format!("auto: no real GPU adapter found, using {}", b.describe());
                Ok((Box::new(b), d))
            }
        }
    }
}
