//! The multi-agent vector environment: `B` copies of a setup stepped in
//! lockstep over one batched power flow ([`vec_env::VecEnv`]), its reward
//! terms ([`reward`]), observation layouts ([`observation`]) and the
//! `powergrid rollout` driver ([`rollout`]).

pub mod observation;
pub mod reward;
pub mod rollout;
pub mod vec_env;

pub use observation::{ObsField, ObservationLayout};
pub use vec_env::{EnvOptions, Split, StepInfo, VecEnv};
