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
