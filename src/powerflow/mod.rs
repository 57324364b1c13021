//! Batched power flow: the shared plan (matrices, factors), the CPU solver in f64,
//! and the GPU solver in WGSL.

pub mod admittance;
pub mod batch;
pub mod cpu;
pub mod plan;
pub mod scenarios;
pub mod sparse_lu;

pub use batch::{BatchInputs, BatchResults, PowerFlow, SolveSummary};
pub use cpu::CpuBatch;
pub use plan::{Plan, SolverOptions, Variant};
