//! Observations, data-driven: one table of [`ObsSource`]s per agent gives both
//! the layout (a name for every column) and the values. Every value is `f32`.
//!
//! **Distributed** (grid agent `i`):
//! 1. its devices in config order: generator `[P/p_max, Q/s_rated]`, storage
//!    `[soc, P/p_max]`, solar/wind `[available/capacity, P/capacity, Q/s_rated]`,
//!    tap changer `[2·(tap − min)/(max − min) − 1]`, capacitor `[step/max_step]`;
//! 2. its buses' voltages `(vm_pu − 1)/0.05` (±1 at the edges of a ±5 % band),
//!    ascending bus index, **one bus per solved node**: buses fused by closed
//!    bus-bus switches appear once (the lowest index), slack buses (fixed
//!    voltage) and unsolved buses not at all;
//! 3. its load `Σ P / base_power` (when it has profiled loads) and its PCC
//!    import `/ base_power` (when it has a PCC);
//! 4. the price `tanh(price/price_scale)` (bounded in (−1, 1)) and
//!    `sin`, `cos(2π·hour/24)` — **of the hour the next action is applied to**
//!    (the observation after the step at hour `h` shows hour `h + 1`'s price:
//!    the price an agent acts on is the one it sees).
//!
//! The system operator (when it is an agent) sees: its price factor, its buses'
//! voltages, the total PCC import of all grid agents `/ base_power`, then item 4.
//!
//! **Centralized**: every agent gets the same global vector: every solved
//! node's voltage (as in 2), every grid agent's device block (agent order),
//! every profiled load's `P / base_power` (load table order), every grid
//! agent's PCC import `/ base_power`, the price factor (only when the operator
//! acts), then item 4.
//!
//! Columns that could never change are left out (slack voltages, loads
//! without a profile or with zero power, a price factor nobody sets).
//!
//! **Failed copies.** A copy whose power flow did not converge shows the last
//! converged voltages and PCC imports of its episode (after a reset that did
//! not converge: `vm = 1`, import 0); `info.converged` is false for it.

use crate::devices::DeviceRef;

/// Where one observation column comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObsSource {
    /// Value `j` of a device's observation block.
    Device(DeviceRef, usize),
    /// A bus voltage `(vm − 1)/0.05`.
    BusVm(usize),
    /// A grid agent's total load `/ base_power`.
    AgentLoad(usize),
    /// One load's P `/ base_power`.
    LoadP(usize),
    /// A grid agent's PCC import `/ base_power`.
    PccImport(usize),
    /// Σ PCC import of every grid agent `/ base_power`.
    TotalImport,
    /// The operator's price factor.
    PriceFactor,
    /// `tanh(price/price_scale)` of the next hour.
    Price,
    /// `sin(2π·hour/24)` of the next hour.
    HourSin,
    /// `cos(2π·hour/24)` of the next hour.
    HourCos,
}

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

/// The layout of one agent's observation: grouped fields, a name per column,
/// and the source of every column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservationLayout {
    /// Fields in order.
    pub fields: Vec<ObsField>,
    /// One name per column (e.g. `MG1 Bus 671 vm`, `MG1.device[1] soc`).
    pub columns: Vec<String>,
    /// One source per column.
    pub sources: Vec<ObsSource>,
}

impl ObservationLayout {
    /// Append a field of columns.
    pub fn push(
        &mut self,
        name: impl Into<String>,
        cols: impl IntoIterator<Item = (String, ObsSource)>,
    ) {
        let offset = self.dim();
        let mut len = 0;
        for (n, s) in cols {
            self.columns.push(n);
            self.sources.push(s);
            len += 1;
        }
        if len > 0 {
            self.fields.push(ObsField {
                name: name.into(),
                offset,
                len,
            });
        }
    }
    /// Total length.
    pub fn dim(&self) -> usize {
        self.columns.len()
    }
    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&ObsField> {
        self.fields.iter().find(|f| f.name == name)
    }
    /// Index of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// Voltage feature `(vm − 1)/0.05`.
#[inline]
pub fn voltage_feature(vm_pu: f64) -> f32 {
    finite((vm_pu - 1.0) / 0.05)
}

/// Price feature `tanh(price/price_scale)`, in (−1, 1).
#[inline]
pub fn price_feature(price: f64, price_scale: f64) -> f32 {
    finite((price / price_scale).tanh())
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
