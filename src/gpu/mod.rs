//! wgpu plumbing shared by the GPU solvers: adapter choice, device limits, buffers.

pub mod context;

pub use context::{GpuContext, GpuInfo};
