//! Observation layouts. Every value is `f32`; the layout of an agent is fixed
//! for a setup and listed by [`ObservationLayout::fields`].
//!
//! **Distributed** (agent `i`):
//! 1. its devices in config order: generator `[P/p_max, Q/s_rated]`, storage
//!    `[soc, P/p_max]`, solar/wind `[available/capacity, P/capacity, Q/s_rated]`,
//!    tap changer `[2·(tap − min)/(max − min) − 1]`, capacitor `[step/max_step]`;
//! 2. its solved buses' voltages, ascending bus index: `(vm_pu − 1)/0.05`
//!    (±1 at the edges of a ±5 % band);
//! 3. its load `Σ P / base_power` and its PCC import `/ base_power` (0 without a PCC);
//! 4. `price / price_scale`, `sin(2π·hour/24)`, `cos(2π·hour/24)`.
//!
//! The system operator (when it is an agent) sees: its price factor, its buses'
//! voltages, the total PCC import of all grid agents `/ base_power`, then item 4.
//!
//! **Centralized**: every agent gets the same global vector: every solved
//! bus's voltage (ascending), every grid agent's device block (agent order),
//! every load's `P / base_power` (load table order), every grid agent's PCC
//! import `/ base_power`, the price factor, then item 4.
//!
//! Non-finite values (a copy whose power flow diverged) are written as 0.

/// A named slice of an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsField {
    /// What the values are.
    pub name: String,
    /// First index.
    pub offset: usize,
    /// Number of values.
    pub len: usize,
}

/// The layout of one agent's observation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservationLayout {
    /// Fields in order.
    pub fields: Vec<ObsField>,
}

impl ObservationLayout {
    /// Append a field.
    pub fn push(&mut self, name: impl Into<String>, len: usize) {
        let offset = self.dim();
        self.fields.push(ObsField {
            name: name.into(),
            offset,
            len,
        });
    }
    /// Total length.
    pub fn dim(&self) -> usize {
        self.fields.last().map_or(0, |f| f.offset + f.len)
    }
    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&ObsField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Voltage feature `(vm − 1)/0.05`.
#[inline]
pub fn voltage_feature(vm_pu: f64) -> f32 {
    finite((vm_pu - 1.0) / 0.05)
}

/// `x` as f32, 0 when not finite.
#[inline]
pub fn finite(x: f64) -> f32 {
    if x.is_finite() {
        x as f32
    } else {
        0.0
    }
}

/// `[sin, cos]` of the hour of day.
#[inline]
pub fn time_features(hour_of_day: usize) -> [f32; 2] {
    let a = 2.0 * std::f64::consts::PI * (hour_of_day % 24) as f64 / 24.0;
    [a.sin() as f32, a.cos() as f32]
}
