//! Cost, safety and reward, as in `design/environment.md`:
//!
//! - cost = generation `Σ (a·P² + b·P + c)·dt` + trading at the point of common
//!   coupling `(max(P,0)·price − max(−P,0)·price·sell_discount)·dt` + storage
//!   degradation `cost_per_mwh·|P|·dt` + tap/capacitor wear `wear·|Δ|`;
//! - safety = `Σ_bus max(V − v_max, 0) + max(v_min − V, 0)`
//!   + `0.01·Σ max(loading% − 100, 0)` over its lines and transformers
//!   + device limit violations (SOC outside limits, `|S|` above rating in MVA);
//! - reward `r = −(cost + penalty·safety)`; with `share_reward` every agent gets the mean.

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

/// `r = −(cost + penalty·safety)`.
#[inline]
pub fn reward(cost: f64, safety: f64, penalty: f64) -> f64 {
    -(cost + penalty * safety)
}
