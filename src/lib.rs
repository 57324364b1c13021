//! # powergrid
//!
//! Thousands of copies of a power distribution grid stepped in lockstep, for
//! reinforcement learning: a network model with pandapower's element models,
//! a batched fast-decoupled power flow on the CPU (f64) and GPU (WGSL), and a
//! multi-agent vector environment of networked microgrids.
//!
//! Data path (dependencies point one way):
//! `network` → `powerflow` → (`devices`, `env`) → CLI. See `ARCHITECTURE.md`.
#![warn(missing_docs)]

pub mod complex;
pub mod error;
pub mod network;
pub mod powerflow;

pub use error::{Error, Result};
