//! Setups: an environment configuration (`setups/<name>/config.yml`) and the
//! hourly time series it reads (a CSV with only the columns it uses).

pub mod agents;
pub mod config;
pub mod timeseries;

pub use config::{
    find_setup, list_setups, ControllerSpec, DeviceSpec, LoadMember, Setup, SetupConfig,
};
pub use timeseries::TimeSeries;
