//! # powergrid
//!
//! Thousands of copies of a power distribution grid stepped in lockstep, for
//! reinforcement learning: a network model with pandapower's element models,
//! a batched fast-decoupled power flow on the CPU (f64) and GPU (WGSL), and a
//! multi-agent vector environment of networked microgrids.
//!
//! Data path (dependencies point one way):
//! `network` → `powerflow` → `control` → (`devices`, `env`) → CLI. See `ARCHITECTURE.md`.
#![warn(missing_docs)]

pub mod agents;
pub mod bench;
pub mod complex;
pub mod control;
pub mod devices;
pub mod env;
pub mod error;
pub mod gpu;
pub mod network;
pub mod powerflow;
pub mod setup;

pub use error::{Error, Result};
/// The array crate of every `[B, n]` input, result, action and observation.
pub use ndarray;

/// What a library user needs in scope: `use powergrid::prelude::*;`.
pub mod prelude {
    pub use crate::env::{EnvOptions, Split, VecEnv};
    pub use crate::network::{self, Network};
    pub use crate::powerflow::{
        new_backend, BackendKind, BatchInputs, BatchResults, Plan, PowerFlow, SolverOptions,
    };
    pub use crate::{Error, Result};
    pub use ndarray::{self, Array1, Array2, ArrayView2};
}

/// Every Rust snippet of `README.md` is compiled and run by `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
