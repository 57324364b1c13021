//! Agents: grid agents (one per microgrid) that split their action vector over
//! their devices, and the optional system operator that publishes the price.

pub mod grid_agent;
pub mod hierarchy;
pub mod system_operator;

pub use grid_agent::{GridAgent, Pcc};
pub use system_operator::SystemOperator;
