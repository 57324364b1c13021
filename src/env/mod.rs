//! The multi-agent vector environment: `B` copies of a setup stepped in
//! lockstep over one batched power flow ([`vec_env::VecEnv`]), its reward
//! terms ([`reward`]), observation tables ([`observation`]) and the baseline
//! policies ([`policy`]).

pub(crate) mod control_glue;
pub mod observation;
pub mod policy;
pub mod reward;
pub(crate) mod timing;
pub mod vec_env;
pub(crate) mod world;

pub use observation::{ObsField, ObsSource, ObservationLayout};
pub use policy::{Policy, PolicyRunner};
pub use vec_env::{ActionScalar, EnvOptions, Split, StepInfo, VecEnv};
