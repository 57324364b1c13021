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
//! every load group's total `P / base_power` (setup `loads:` order; loads of
//! one group follow one profile, so one column per group), every grid
//! agent's PCC import `/ base_power`, the price factor (only when the operator
//! acts), then item 4.
//!
//! Columns that could never change are left out (slack voltages, loads
//! without a profile, a price factor nobody sets), and so are exact copies
//! (fused buses).
//!
//! **Failed copies.** A copy whose power flow did not converge shows the last
//! converged voltages and PCC imports of its episode (after a reset that did
//! not converge: `vm = 1`, import 0); `info.converged` is false for it.

use crate::agents::{GridAgent, SystemOperator};
use crate::devices::DeviceRef;
use crate::error::{Error, Result};
use crate::powerflow::Plan;
use crate::setup::agents::Quantity;
use crate::setup::config::ObservationMode;

/// Where one observation column comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObsSource {
    /// Value `j` of a device's observation block.
    Device(DeviceRef, usize),
    /// A bus voltage `(vm − 1)/0.05`.
    BusVm(usize),
    /// A grid agent's total load `/ base_power`.
    AgentLoad(usize),
    /// One load group's (setup `loads[g]`) total P `/ base_power`.
    LoadGroup(usize),
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
    /// Value `j` of the message device agent `unit` (global index) received
    /// this step (as sent, not normalised: actions are in `[-1, 1]`).
    Message(usize, usize),
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
    // Formed once: every copy observes it every step.
    static HOURS: std::sync::OnceLock<[[f32; 2]; 24]> = std::sync::OnceLock::new();
    HOURS.get_or_init(|| {
        std::array::from_fn(|h| {
            let a = 2.0 * std::f64::consts::PI * h as f64 / 24.0;
            [a.sin() as f32, a.cos() as f32]
        })
    })[hour_of_day % 24]
}

/// The buses of `buses` worth observing: one per solved node (the lowest
/// index of buses fused by switches), no slack buses.
fn observed_buses(buses: &[usize], plan: &Plan) -> Vec<usize> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut sorted = buses.to_vec();
    sorted.sort_unstable();
    for b in sorted {
        if let Some(n) = plan.bus_node.get(b).copied().flatten() {
            if n < plan.n_pq && seen.insert(n) {
                out.push(b);
            }
        }
    }
    out
}

const DEVICE_COLUMNS: [&[&str]; 5] = [
    &["P/p_max", "Q/s_rated"],
    &["soc", "P/p_max"],
    &["available/capacity", "P/capacity", "Q/s_rated"],
    &["tap 2(tap-min)/(max-min)-1"],
    &["step/max_step"],
];

pub(crate) fn build_layouts(
    mode: ObservationMode,
    agents: &[GridAgent],
    operator: &SystemOperator,
    live_buses: &[usize],
    plan: &Plan,
    load_groups: &[Vec<usize>],
    group_names: &[String],
) -> Vec<ObservationLayout> {
    let net = &plan.net;
    let n_agents = agents.len() + operator.is_agent() as usize;
    // Loads whose power changes: profiled and non-zero.
    let profiled: Vec<usize> = load_groups.iter().flatten().copied().collect();
    let device_fields = |l: &mut ObservationLayout, a: &GridAgent| {
        let devs: Vec<(usize, DeviceRef)> = a.devices.iter().copied().enumerate().collect();
        push_devices(l, &a.name, &devs);
    };
    let bus_field = |l: &mut ObservationLayout, buses: &[usize]| {
        l.push(
            "bus (vm_pu-1)/0.05",
            observed_buses(buses, plan)
                .into_iter()
                .map(|b| (format!("{} vm", net.buses[b].name), ObsSource::BusVm(b))),
        );
    };
    let tail = |l: &mut ObservationLayout| {
        l.push(
            "tanh(price/price_scale)",
            [("next-hour price".to_string(), ObsSource::Price)],
        );
        l.push(
            "sin(2pi hour/24)",
            [("next-hour sin".to_string(), ObsSource::HourSin)],
        );
        l.push(
            "cos(2pi hour/24)",
            [("next-hour cos".to_string(), ObsSource::HourCos)],
        );
    };
    match mode {
        ObservationMode::Distributed => {
            let mut out = Vec::new();
            for (i, a) in agents.iter().enumerate() {
                let mut l = ObservationLayout::default();
                device_fields(&mut l, a);
                bus_field(&mut l, &a.buses);
                if a.loads.iter().any(|x| profiled.contains(x)) {
                    l.push(
                        "load P/base_power",
                        [(format!("{} load", a.name), ObsSource::AgentLoad(i))],
                    );
                }
                if a.pcc.is_some() {
                    l.push(
                        "pcc import/base_power",
                        [(format!("{} pcc import", a.name), ObsSource::PccImport(i))],
                    );
                }
                tail(&mut l);
                out.push(l);
            }
            if operator.is_agent() {
                let mut l = ObservationLayout::default();
                l.push(
                    "price factor",
                    [("price factor".to_string(), ObsSource::PriceFactor)],
                );
                bus_field(&mut l, &operator.buses);
                l.push(
                    "total pcc import/base_power",
                    [("total pcc import".to_string(), ObsSource::TotalImport)],
                );
                tail(&mut l);
                out.push(l);
            }
            out
        }
        ObservationMode::Centralized => {
            let mut l = ObservationLayout::default();
            bus_field(&mut l, live_buses);
            for a in agents {
                device_fields(&mut l, a);
            }
            l.push(
                "load group P/base_power",
                load_groups
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| !m.is_empty())
                    .map(|(g, _)| {
                        (
                            format!("loads {:?} P", group_names[g]),
                            ObsSource::LoadGroup(g),
                        )
                    }),
            );
            l.push(
                "pcc import/base_power",
                agents
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.pcc.is_some())
                    .map(|(i, a)| (format!("{} pcc import", a.name), ObsSource::PccImport(i))),
            );
            if operator.is_agent() {
                l.push(
                    "price factor",
                    [("price factor".to_string(), ObsSource::PriceFactor)],
                );
            }
            tail(&mut l);
            vec![l; n_agents]
        }
    }
}

/// Device columns of `(j, device)` of grid agent `agent` (j: its index in
/// the agent's device list).
fn push_devices(l: &mut ObservationLayout, agent: &str, devices: &[(usize, DeviceRef)]) {
    for &(j, d) in devices {
        let (kind, cols) = match d {
            DeviceRef::Generator(_) => ("generator", DEVICE_COLUMNS[0]),
            DeviceRef::Storage(_) => ("storage", DEVICE_COLUMNS[1]),
            DeviceRef::Renewable(_) => ("renewable", DEVICE_COLUMNS[2]),
            DeviceRef::TapChanger(_) => ("tap", DEVICE_COLUMNS[3]),
            DeviceRef::Capacitor(_) => ("capacitor", DEVICE_COLUMNS[4]),
        };
        let field = format!("{agent}.device[{j}] {kind} [{}]", cols.join(", "));
        l.push(
            field,
            cols.iter()
                .enumerate()
                .map(|(k, c)| (format!("{agent}.device[{j}] {c}"), ObsSource::Device(d, k))),
        );
    }
}

/// Who an `observe:` list is resolved for.
pub(crate) struct Viewer<'a> {
    /// The agent's name (for errors).
    pub name: &'a str,
    /// Its grid agent (a device agent: its coordinator).
    pub grid: usize,
    /// Its devices `(index in the grid agent's list, device)`.
    pub devices: Vec<(usize, DeviceRef)>,
    /// Its buses (a device agent: its devices' buses).
    pub buses: Vec<usize>,
    /// `(global unit index, message length)` for a device agent.
    pub message: Option<(usize, usize)>,
}

/// The layout of an `observe:` list (see [`crate::setup::agents::Quantity`]),
/// in list order. A quantity that would give no column or never change
/// (no profiled load, no PCC, a slack or unsolved bus) is an error naming
/// the agent and the quantity.
pub(crate) fn layout_from_list(
    list: &[Quantity],
    v: &Viewer,
    agents: &[GridAgent],
    plan: &Plan,
    load_groups: &[Vec<usize>],
) -> Result<ObservationLayout> {
    let net = &plan.net;
    let bad = |q: &Quantity, why: &str| {
        Error::InvalidSetup(format!("agent {}: observe {q:?}: {why}", v.name))
    };
    let profiled: Vec<usize> = load_groups.iter().flatten().copied().collect();
    let mut l = ObservationLayout::default();
    let bus_cols = |buses: &[usize]| -> Vec<(String, ObsSource)> {
        observed_buses(buses, plan)
            .into_iter()
            .map(|b| (format!("{} vm", net.buses[b].name), ObsSource::BusVm(b)))
            .collect()
    };
    let a = &agents[v.grid];
    for q in list {
        let before = l.dim();
        match *q {
            Quantity::Devices => push_devices(&mut l, &a.name, &v.devices),
            Quantity::Buses => l.push("bus (vm_pu-1)/0.05", bus_cols(&v.buses)),
            Quantity::Bus(b) => {
                // A bus fused to another shows as the node's lowest bus.
                let node = plan.bus_node.get(b).copied().flatten();
                let rep = (0..net.buses.len())
                    .find(|&x| node.is_some() && plan.bus_node[x] == node)
                    .filter(|_| node.is_some_and(|n| n < plan.n_pq));
                let Some(rep) = rep else {
                    return Err(bad(
                        q,
                        &format!(
                            "bus {:?} is a slack or unsolved bus: its voltage never changes",
                            net.buses[b].name
                        ),
                    ));
                };
                l.push(
                    format!("bus {} (vm_pu-1)/0.05", net.buses[b].name),
                    [(format!("{} vm", net.buses[rep].name), ObsSource::BusVm(rep))],
                );
            }
            Quantity::BusesOf(g) => l.push(
                format!("{} bus (vm_pu-1)/0.05", agents[g].name),
                bus_cols(&agents[g].buses),
            ),
            Quantity::Load => {
                if !a.loads.iter().any(|x| profiled.contains(x)) {
                    return Err(bad(
                        q,
                        &format!("{} has no load that follows a profile", a.name),
                    ));
                }
                l.push(
                    "load P/base_power",
                    [(format!("{} load", a.name), ObsSource::AgentLoad(v.grid))],
                );
            }
            Quantity::Pcc | Quantity::PccOf(_) => {
                let g = if let Quantity::PccOf(g) = *q {
                    g
                } else {
                    v.grid
                };
                if agents[g].pcc.is_none() {
                    return Err(bad(q, &format!("{} has no pcc", agents[g].name)));
                }
                l.push(
                    format!("{} pcc import/base_power", agents[g].name),
                    [(
                        format!("{} pcc import", agents[g].name),
                        ObsSource::PccImport(g),
                    )],
                );
            }
            Quantity::TotalImport => l.push(
                "total pcc import/base_power",
                [("total pcc import".to_string(), ObsSource::TotalImport)],
            ),
            Quantity::Price => l.push(
                "tanh(price/price_scale)",
                [("next-hour price".to_string(), ObsSource::Price)],
            ),
            Quantity::Time => {
                l.push(
                    "sin(2pi hour/24)",
                    [("next-hour sin".to_string(), ObsSource::HourSin)],
                );
                l.push(
                    "cos(2pi hour/24)",
                    [("next-hour cos".to_string(), ObsSource::HourCos)],
                );
            }
            Quantity::PriceFactor => l.push(
                "price factor",
                [("price factor".to_string(), ObsSource::PriceFactor)],
            ),
            Quantity::Message => {
                let Some((u, n)) = v.message else {
                    return Err(bad(q, "only device agents receive a message"));
                };
                l.push(
                    "message",
                    (0..n).map(|j| (format!("{} message[{j}]", v.name), ObsSource::Message(u, j))),
                );
            }
        }
        if l.dim() == before {
            return Err(bad(q, "gives no column (no solved, non-slack bus)"));
        }
    }
    Ok(l)
}

/// The observation an agent gets from `base` with obs delay `delay` and
/// `history` stacked steps: `history` copies of `base`, newest first, each
/// field and column suffixed with its lag (`[t-2]`). Unchanged when
/// `delay = 0` and `history = 1`.
pub(crate) fn stacked(base: &ObservationLayout, delay: usize, history: usize) -> ObservationLayout {
    if delay == 0 && history == 1 {
        return base.clone();
    }
    let mut l = ObservationLayout::default();
    for j in 0..history {
        let lag = delay + j;
        for f in &base.fields {
            l.push(
                format!("{} [t-{lag}]", f.name),
                (f.offset..f.offset + f.len)
                    .map(|k| (format!("{} [t-{lag}]", base.columns[k]), base.sources[k])),
            );
        }
    }
    l
}
