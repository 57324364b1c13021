//! Cost, safety and reward, as in `design/environment.md`:
//!
//! - cost = generation `Σ (a·P² + b·P + c)·dt` + trading at the point of common
//!   coupling `(max(P,0)·price − max(−P,0)·price·sell_discount)·dt` + storage
//!   degradation `cost_per_mwh·|P|·dt` + tap/capacitor wear `wear·|Δ|` (agent
//!   devices, and automatic controllers charged to the agent);
//! - safety = `Σ_bus max(V − v_max, 0) + max(v_min − V, 0)`
//!   + `0.01·Σ max(loading% − 100, 0)` over its lines and transformers
//!   + device limit violations (SOC outside limits, `|S|` above rating in MVA)
//!   + `operator_safety_weight·(the system operator's voltage violation)`, the
//!     DSO feeder's, which the microgrids' exports drive;
//! - reward `r = reward_scale·(−(cost + penalty·safety))`; with `share_reward`
//!   every agent gets the mean.
//!
//! Each term is reported per copy and agent in `StepInfo::terms`
//! (`[B, n_agents, TERMS.len()]`, in the order of [`TERMS`]); `cost` is the sum
//! of the cost terms and `safety` of the safety terms.
//!
//! **Scale** (`ieee34_ieee13`, hourly steps): a microgrid's cost is tens of
//! dollars per hour (it imports about 0.2–0.5 MW at 30–150 $/MWh; a diesel at
//! full output costs about 90 $/h), safety is 0 inside the band and about
//! 0.01–0.1 per bus-hour outside it, weighted by `penalty = 10`; so rewards
//! are about −5 to −60 per step and −200 for a failed power flow. Set
//! `reward_scale` (e.g. 0.02) to bring them near unit size for learning.

/// One reward term: its position in `StepInfo::terms` (`term as usize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Term {
    /// Generation cost `Σ (a·P² + b·P + c)·dt` ($).
    Generation = 0,
    /// Trading at the PCC ($; negative when exporting; for the operator: minus the revenue).
    Trading,
    /// Storage degradation ($).
    Storage,
    /// Wear of the agent's own taps and capacitors ($).
    Wear,
    /// Wear of automatic controllers charged to the agent ($).
    ControllerWear,
    /// Voltage-band violation over the agent's buses.
    Voltage,
    /// Overloading of the agent's lines and transformers.
    Loading,
    /// Device limit violations (SOC, apparent power).
    Devices,
    /// `operator_safety_weight ×` the system operator's voltage violation.
    OperatorVoltage,
}

impl Term {
    /// Its name in [`TERMS`] (and in `powergrid rollout`'s JSON).
    pub fn name(self) -> &'static str {
        TERMS[self as usize]
    }
    /// Whether it is a cost in $ (else a safety term).
    pub fn is_cost(self) -> bool {
        (self as usize) < N_COST_TERMS
    }
}

/// Every term, in `StepInfo::terms` order.
pub const ALL_TERMS: [Term; 9] = [
    Term::Generation,
    Term::Trading,
    Term::Storage,
    Term::Wear,
    Term::ControllerWear,
    Term::Voltage,
    Term::Loading,
    Term::Devices,
    Term::OperatorVoltage,
];

/// Names of the reward terms, in the order of `StepInfo::terms`: the first
/// [`N_COST_TERMS`] are costs in $, the rest safety terms (unweighted).
pub const TERMS: [&str; 9] = [
    "cost_generation",
    "cost_trading",
    "cost_storage",
    "cost_wear",
    "cost_controller_wear",
    "safety_voltage",
    "safety_loading",
    "safety_devices",
    "safety_operator_voltage",
];
/// Number of cost terms at the front of [`TERMS`].
pub const N_COST_TERMS: usize = 5;

/// Voltage-band violation of one bus in p.u.
#[inline]
pub fn voltage_violation(vm_pu: f64, v_min: f64, v_max: f64) -> f64 {
    (vm_pu - v_max).max(0.0) + (v_min - vm_pu).max(0.0)
}

/// Overloading term of one branch: `0.01·max(loading% − 100, 0)`.
#[inline]
pub fn loading_violation(loading_percent: f64) -> f64 {
    0.01 * (loading_percent - 100.0).max(0.0)
}

/// Trading cost of an import `p_import_mw` (negative = export) over `dt_h` hours.
#[inline]
pub fn trading_cost(p_import_mw: f64, price: f64, sell_discount: f64, dt_h: f64) -> f64 {
    (p_import_mw.max(0.0) * price - (-p_import_mw).max(0.0) * price * sell_discount) * dt_h
}

/// `r = −(cost + penalty·safety)` (before `reward_scale`).
#[inline]
pub fn reward(cost: f64, safety: f64, penalty: f64) -> f64 {
    -(cost + penalty * safety)
}
