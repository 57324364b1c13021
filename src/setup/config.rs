//! `setups/<name>/config.yml`: which network, which time series, which agents
//! own which devices, and the cost/safety/reward constants. Unknown keys are
//! errors that name the key and the file.
//!
//! ```yaml
//! name: ieee34_ieee13
//! network: ../../networks/ieee34_ieee13.yml   # relative to this file
//! train_data: train.csv                       # hourly CSV (2023)
//! test_data: test.csv                         # hourly CSV (2024)
//! max_episode_steps: 96
//! penalty: 10.0
//! share_reward: true
//! observation: distributed                    # or centralized
//! convergence_failure_reward: -200.0
//! convergence_failure_safety: 20.0
//! system_operator: { price: "price:0096WD_7_N001", bus_prefix: "DSO " }
//! loads: [ { prefix: "MG1 ", profile: "load:AVA", scale: 0.1 } ]
//! agents:
//!   - name: MG1
//!     bus_prefix: "MG1 "
//!     pcc: { trafo: "MG1 Substation" }
//!     devices:
//!       - { type: storage, element: "MG1 ess_1", e_mwh: 0.5, p_max_mw: 0.1 }
//! ```

use crate::devices::{CapacitorParams, GeneratorParams, RenewableParams, StorageParams, TapParams};
use crate::error::{Error, Result};
use crate::network::{
    self, Controller, DiscreteShuntControl, DiscreteTapControl, LineDrop, Network, Sgen, Storage,
    TapSide,
};
use crate::setup::timeseries::TimeSeries;
use serde::Deserialize;
use std::path::{Path, PathBuf};

fn one() -> f64 {
    1.0
}
fn hundred() -> f64 {
    100.0
}
fn default_tol() -> f64 {
    crate::powerflow::SolverOptions::default().tolerance_pu
}
fn band() -> [f64; 2] {
    [0.95, 1.05]
}
fn control_cap() -> u32 {
    30
}
fn max_move() -> f64 {
    1.0
}
fn lv_side() -> TapSide {
    TapSide::Lv
}
fn one_u32() -> u32 {
    1
}
fn soc_min() -> f64 {
    0.1
}
fn soc_max() -> f64 {
    0.9
}
fn soc_init() -> f64 {
    0.5
}
fn eta() -> f64 {
    0.95
}

/// Which observation each agent gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservationMode {
    /// The agent's own devices, its own buses' voltages, price and time of day.
    #[default]
    Distributed,
    /// The global state, identical for every agent.
    Centralized,
}

/// The whole setup file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupConfig {
    /// Setup name.
    pub name: String,
    /// One line saying what the setup is (listed by `powergrid setups`).
    #[serde(default)]
    pub description: Option<String>,
    /// A shipped network by name (`ieee34_ieee13`: `networks/ieee34_ieee13.yml`
    /// of the crate), or a network file (`.yml` or pandapower `.json`) relative
    /// to the config file. With a name and data files inside its folder, a
    /// setup folder can be copied anywhere.
    pub network: String,
    /// Hourly CSV of the training split, relative to the config file.
    pub train_data: String,
    /// Hourly CSV of the test split, relative to the config file.
    pub test_data: String,
    /// Step length in hours.
    #[serde(default = "one")]
    pub dt_h: f64,
    /// Steps per episode (then the copy is truncated).
    pub max_episode_steps: usize,
    /// Weight of safety in the reward: `r = −(cost + penalty·safety)`.
    pub penalty: f64,
    /// Every agent gets the mean reward.
    #[serde(default)]
    pub share_reward: bool,
    /// Observation mode.
    #[serde(default)]
    pub observation: ObservationMode,
    /// Voltage band `[v_min, v_max]` in p.u.
    #[serde(default = "band")]
    pub voltage_band: [f64; 2],
    /// Rewards are multiplied by this: `r = reward_scale·(−(cost + penalty·safety))`.
    #[serde(default = "one")]
    pub reward_scale: f64,
    /// Weight with which the system operator's voltage violation (its buses,
    /// e.g. the DSO feeder) is added to every grid agent's safety (0: not at all).
    #[serde(default)]
    pub operator_safety_weight: f64,
    /// When set, every in-service ext_grid of the network runs at this voltage (p.u.).
    #[serde(default)]
    pub slack_vm_pu: Option<f64>,
    /// Automatic controllers (tap changers, capacitor banks) that settle inside
    /// every step, in addition to those of the network file.
    #[serde(default)]
    pub controllers: Vec<ControllerConfig>,
    /// Cap on control iterations (power flows) per step.
    #[serde(default = "control_cap")]
    pub control_max_iterations: u32,
    /// Settle the controllers on power flows solved only to this mismatch
    /// (p.u.) first, then re-solve to `solver_tolerance_pu` and finish
    /// (`ControlOptions::screening_tolerance_pu`): the same settled conditions
    /// in fewer iterations. Unset: every control power flow to full tolerance.
    #[serde(default)]
    pub control_screening_tolerance_pu: Option<f64>,
    /// Skip a control power flow where the next decision is certain on the
    /// voltages predicted from the tap moves, more than this margin (p.u.)
    /// from every threshold (`ControlOptions::predict_margin_pu`). Unset: a
    /// power flow after every control iteration.
    #[serde(default)]
    pub control_prediction_margin_pu: Option<f64>,
    /// Reward of every agent of a copy whose power flow did not converge.
    pub convergence_failure_reward: f64,
    /// Safety of every agent of a copy whose power flow did not converge.
    pub convergence_failure_safety: f64,
    /// Power normalisation of observations in MW.
    #[serde(default = "one", alias = "base_power")]
    pub base_power_mva: f64,
    /// Power-flow convergence tolerance: max `|ΔP|`, `|ΔQ|` in p.u. of the
    /// network's `sn_mva` (default: the solver's 1e-9).
    #[serde(default = "default_tol")]
    pub solver_tolerance_pu: f64,
    /// Hold gens at their Q limits, their buses turned PQ, per copy
    /// (`SolverOptions::enforce_q_lims`, pandapower's `enforce_q_lims`; both
    /// backends). Default false, as in `runpp`.
    #[serde(default)]
    pub solver_enforce_q_lims: bool,
    /// Price normalisation of observations in $/MWh.
    #[serde(default = "hundred")]
    pub price_scale: f64,
    /// The system operator (price publisher; DSO buses).
    pub system_operator: SystemOperatorConfig,
    /// Load groups: loads whose name starts with `prefix` follow `profile × scale`.
    #[serde(default)]
    pub loads: Vec<LoadGroupConfig>,
    /// Grid agents, one per microgrid (or feeder area).
    pub agents: Vec<AgentConfig>,
}

/// The system operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemOperatorConfig {
    /// Price column ($/MWh).
    pub price: String,
    /// Export is paid `price × sell_discount`.
    #[serde(default = "one")]
    pub sell_discount: f64,
    /// Buses it watches (its safety), by name prefix.
    #[serde(default)]
    pub bus_prefix: Option<String>,
    /// When set, the operator is an agent that scales the price by a factor in `[min_factor, max_factor]`.
    #[serde(default)]
    pub agent: Option<PriceControlConfig>,
}

/// Price control of a system-operator agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceControlConfig {
    /// Lowest price factor.
    pub min_factor: f64,
    /// Highest price factor.
    pub max_factor: f64,
}

/// A load group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadGroupConfig {
    /// Load-name prefix.
    pub prefix: String,
    /// Profile column (normalised load).
    pub profile: String,
    /// Scale: `load = nominal × scale × profile`.
    #[serde(default = "one")]
    pub scale: f64,
}

/// Where a microgrid meets the rest of the network: exactly one of the keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PccConfig {
    /// Import = active power into this transformer at its HV terminal.
    #[serde(default)]
    pub trafo: Option<String>,
    /// Import = active power into this line at its from end.
    #[serde(default)]
    pub line: Option<String>,
    /// Import = this ext_grid's active power (index into the ext_grid table).
    #[serde(default)]
    pub ext_grid: Option<usize>,
}

/// A resolved point of common coupling (element indices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PccElement {
    /// Transformer index.
    Trafo(usize),
    /// Line index.
    Line(usize),
    /// Ext-grid index.
    ExtGrid(usize),
}

/// A grid agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Agent name.
    pub name: String,
    /// Its buses: every bus whose name starts with this.
    #[serde(default)]
    pub bus_prefix: Option<String>,
    /// Its buses by name (added to `bus_prefix`'s).
    #[serde(default)]
    pub buses: Vec<String>,
    /// Point of common coupling (trading); none: no trading cost.
    #[serde(default)]
    pub pcc: Option<PccConfig>,
    /// Its devices, in action order.
    pub devices: Vec<DeviceConfig>,
    /// Whether the agent (the coordinator, when it has `device_agents`) is a
    /// learner that receives actions (default true). A coordinator that does
    /// not learn sends the all-zero message.
    #[serde(default = "yes")]
    pub learner: bool,
    /// What a coordinator's action is (only with `device_agents`; default
    /// `setpoints`), see [`crate::setup::agents`].
    #[serde(default)]
    pub message: Option<MessageConfig>,
    /// Device agents under this agent (its coordinator), see [`crate::setup::agents`].
    #[serde(default)]
    pub device_agents: Vec<DeviceAgentConfig>,
    /// When it acts and how late it sees and acts (whole steps).
    #[serde(default)]
    pub timing: TimingConfig,
    /// Observation history: the last `history` observations, stacked newest first (default 1).
    #[serde(default)]
    pub history: Option<i64>,
    /// Visibility: the quantities it sees, in this order (default: the
    /// mode's layout), see [`crate::setup::agents::Quantity`].
    #[serde(default)]
    pub observe: Option<Vec<QuantityConfig>>,
}

fn yes() -> bool {
    true
}

/// A coordinator's message to its device agents: `setpoints` (every device's
/// set-points, as a flat grid agent's action; each device agent receives its
/// devices' slice) or `{ vector: k }` (a free vector of length `k`, received
/// whole by every device agent).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MessageConfig {
    /// `setpoints`.
    Name(String),
    /// `{ vector: k }`.
    Vector {
        /// Its length.
        vector: i64,
    },
}

/// A device agent under a coordinator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceAgentConfig {
    /// Its name; the agent is called `<coordinator>/<name>`.
    pub name: String,
    /// Its devices by network element name (generator `name`, storage or
    /// solar/wind `element`, tap changer `trafo`, capacitor `shunt`).
    pub devices: Vec<String>,
    /// `learner` (default), `pass_through` or `proportional`.
    #[serde(default)]
    pub policy: DevicePolicyConfig,
    /// Timing (whole steps); `msg_delay` is only for device agents.
    #[serde(default)]
    pub timing: TimingConfig,
    /// Observation history length (default 1).
    #[serde(default)]
    pub history: Option<i64>,
    /// Visibility (default: its devices, its devices' buses, the message,
    /// the price and time of day).
    #[serde(default)]
    pub observe: Option<Vec<QuantityConfig>>,
}

/// What drives a device agent's devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DevicePolicyConfig {
    /// A learner: its own action drives its devices; it observes the message.
    #[default]
    Learner,
    /// Fixed rule: apply the coordinator's set-points as received.
    PassThrough,
    /// Fixed rule: split the coordinator's `[p, q]` request over its devices
    /// in proportion to their ranges.
    Proportional,
}

/// Timing of an agent in whole environment steps (integers so that a
/// negative value is reported by name).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingConfig {
    /// It acts every `tick_every` steps and holds its last action in between (default 1).
    #[serde(default)]
    pub tick_every: Option<i64>,
    /// It sees the observation of `t − obs_delay`.
    #[serde(default)]
    pub obs_delay: i64,
    /// Its action takes effect `act_delay` steps later.
    #[serde(default)]
    pub act_delay: i64,
    /// Its coordinator's messages arrive `msg_delay` steps late (device agents only).
    #[serde(default)]
    pub msg_delay: i64,
}

/// One visibility item: a quantity name (`devices`, `buses`, `load`, `pcc`,
/// `total_import`, `price`, `time`, `price_factor`, `message`) or a
/// one-key map naming its argument (`{ pcc: MG2 }`, `{ bus: "DSO Bus 850" }`,
/// `{ buses_of: MG2 }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QuantityConfig {
    /// A quantity without argument.
    Name(String),
    /// A quantity with its argument.
    WithArg(std::collections::BTreeMap<String, String>),
}

/// A device, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceConfig {
    /// Dispatchable generator.
    Generator(GeneratorConfig),
    /// Energy storage.
    Storage(StorageConfig),
    /// Solar generator.
    Solar(RenewableConfig),
    /// Wind generator.
    Wind(RenewableConfig),
    /// Transformer tap changer.
    TapChanger(TapChangerConfig),
    /// Capacitor bank.
    Capacitor(CapacitorConfig),
}

/// Dispatchable generator (added to the network as a static generator at `bus`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Name.
    pub name: String,
    /// Bus name.
    pub bus: String,
    /// Lowest P in MW.
    #[serde(default)]
    pub p_min_mw: f64,
    /// Highest P in MW.
    pub p_max_mw: f64,
    /// Lowest Q in Mvar.
    pub q_min_mvar: f64,
    /// Highest Q in Mvar.
    pub q_max_mvar: f64,
    /// Apparent power rating in MVA.
    pub s_rated_mva: f64,
    /// Lowest power factor (0: no limit).
    #[serde(default)]
    pub pf_min: f64,
    /// Cost curve `[a, b, c]`: `a·P² + b·P + c` in $/h.
    pub cost: [f64; 3],
}

/// Energy storage: an existing storage element (`element`) or a new one at `bus`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Name of an existing storage element.
    #[serde(default)]
    pub element: Option<String>,
    /// Bus of a new storage element.
    #[serde(default)]
    pub bus: Option<String>,
    /// Energy capacity in MWh.
    pub e_mwh: f64,
    /// Power limit (charge and discharge) in MW.
    pub p_max_mw: f64,
    /// Lowest state of charge.
    #[serde(default = "soc_min")]
    pub soc_min: f64,
    /// Highest state of charge.
    #[serde(default = "soc_max")]
    pub soc_max: f64,
    /// State of charge at reset.
    #[serde(default = "soc_init")]
    pub soc_init: f64,
    /// Charging efficiency.
    #[serde(default = "eta")]
    pub eta_ch: f64,
    /// Discharging efficiency.
    #[serde(default = "eta")]
    pub eta_dis: f64,
    /// Degradation cost in $/MWh of throughput.
    #[serde(default)]
    pub degradation_cost_per_mwh: f64,
}

/// Solar or wind: an existing static generator (`element`) or a new one at `bus`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewableConfig {
    /// Name of an existing static generator.
    #[serde(default)]
    pub element: Option<String>,
    /// Bus of a new static generator.
    #[serde(default)]
    pub bus: Option<String>,
    /// Normalised profile column of its zone.
    pub profile: String,
    /// Capacity in MW (available P = capacity × profile).
    pub capacity_mw: f64,
    /// Reactive power limit (±) in Mvar.
    pub q_max_mvar: f64,
    /// Inverter rating in MVA.
    pub s_rated_mva: f64,
}

/// Tap changer of a transformer, moved by its agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapChangerConfig {
    /// Transformer name.
    pub trafo: String,
    /// Cost per tap step moved ($).
    #[serde(default)]
    pub wear_cost: f64,
    /// Largest move per step, in tap steps (at `|a| = 1`).
    #[serde(default = "max_move")]
    pub max_move: f64,
}

/// Capacitor bank (a shunt with steps), switched by its agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitorConfig {
    /// Shunt name.
    pub shunt: String,
    /// Cost per step switched ($).
    #[serde(default)]
    pub wear_cost: f64,
    /// Largest move per step, in steps (at `|a| = 1`).
    #[serde(default = "max_move")]
    pub max_move: f64,
}

/// An automatic controller, tagged by `type` as in the network format
/// ([`crate::network::Controller`]), but naming its element instead of
/// indexing it, with an optional wear cost.
///
/// ```yaml
/// controllers:
///   - { type: discrete_tap, trafo: "DSO Regulator 1", vm_lower_pu: 1.0083, vm_upper_pu: 1.025,
///       line_drop: { r_volt: 2.7, x_volt: 1.6, pt_ratio: 120, ct_primary_a: 100 } }
///   - { type: discrete_shunt, shunt: "SCB 1", vm_set_pu: 1.0, tol: 0.02 }
/// ```
///
/// A type other than these two is an error that names it.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControllerConfig {
    /// pandapower's `DiscreteTapControl`: one tap step per control iteration
    /// until the controlled bus is inside `[vm_lower_pu, vm_upper_pu]`.
    DiscreteTap(TapControlConfig),
    /// pandapower's `DiscreteShuntController`: one step per iteration until
    /// the shunt's bus is inside `vm_set_pu ± tol`.
    DiscreteShunt(ShuntControlConfig),
}

/// An automatic tap controller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapControlConfig {
    /// Transformer name (it must have a tap changer).
    pub trafo: String,
    /// Measured side (default `lv`).
    #[serde(default = "lv_side")]
    pub side: TapSide,
    /// Lower edge of the band in p.u.
    pub vm_lower_pu: f64,
    /// Upper edge of the band in p.u.
    pub vm_upper_pu: f64,
    /// Line-drop compensation (IEEE style, volts on the regulator's PT secondary).
    #[serde(default)]
    pub line_drop: Option<LineDrop>,
    /// Cost per tap step moved ($), reported in info and charged to `charge_to`.
    #[serde(default)]
    pub wear_cost: f64,
    /// Grid agent whose cost carries the wear (none: reported only).
    #[serde(default)]
    pub charge_to: Option<String>,
}

/// An automatic capacitor controller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShuntControlConfig {
    /// Shunt name.
    pub shunt: String,
    /// Measured bus by name (default: the shunt's bus).
    #[serde(default)]
    pub bus: Option<String>,
    /// Voltage set-point in p.u.
    pub vm_set_pu: f64,
    /// Dead band (±) in p.u.
    pub tol: f64,
    /// Steps per move (default 1).
    #[serde(default = "one_u32")]
    pub increment: u32,
    /// Cost per step switched ($), reported in info and charged to `charge_to`.
    #[serde(default)]
    pub wear_cost: f64,
    /// Grid agent whose cost carries the wear (none: reported only).
    #[serde(default)]
    pub charge_to: Option<String>,
}

/// A resolved automatic controller: the network controller (element indices,
/// checked) with its wear cost and the agent that pays it.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerSpec {
    /// The controller.
    pub controller: Controller,
    /// Cost per step moved ($).
    pub wear_cost: f64,
    /// Grid agent charged with the wear.
    pub charge_to: Option<usize>,
}

impl ControllerSpec {
    /// Its name.
    pub fn name(&self) -> &str {
        self.controller.name()
    }
    /// Cost per move ($).
    pub fn wear_cost(&self) -> f64 {
        self.wear_cost
    }
    /// Grid agent charged with the wear.
    pub fn charge_to(&self) -> Option<usize> {
        self.charge_to
    }
}

/// A device resolved from the config: its parameters and its network element.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceSpec {
    /// Dispatchable generator on static generator `sgen`.
    Generator {
        /// Parameters.
        params: GeneratorParams,
        /// Static-generator index.
        sgen: usize,
    },
    /// Storage on storage element `element`.
    Storage {
        /// Parameters.
        params: StorageParams,
        /// Storage index.
        element: usize,
    },
    /// Solar or wind on static generator `sgen`.
    Renewable {
        /// Parameters (the profile column indexes the setup's time series).
        params: RenewableParams,
        /// Static-generator index.
        sgen: usize,
    },
    /// Tap changer of trafo `trafo`.
    TapChanger {
        /// Parameters.
        params: TapParams,
        /// Trafo index.
        trafo: usize,
    },
    /// Capacitor bank on shunt `shunt`.
    Capacitor {
        /// Parameters.
        params: CapacitorParams,
        /// Shunt index.
        shunt: usize,
    },
}

impl DeviceSpec {
    /// `(element table, index)` of the device's network element.
    pub fn element(&self) -> (&'static str, usize) {
        match self {
            DeviceSpec::Generator { sgen, .. } | DeviceSpec::Renewable { sgen, .. } => {
                ("static generator", *sgen)
            }
            DeviceSpec::Storage { element, .. } => ("storage", *element),
            DeviceSpec::TapChanger { trafo, .. } => ("trafo", *trafo),
            DeviceSpec::Capacitor { shunt, .. } => ("shunt", *shunt),
        }
    }
}

/// A load that follows a profile: `scaling = scale × profile(hour)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadMember {
    /// Load index.
    pub load: usize,
    /// Time-series column of its profile.
    pub column: usize,
    /// Scale.
    pub scale: f64,
    /// Index of its group in the setup's `loads:`.
    pub group: usize,
}

fn device_spec(
    path: &Path,
    key: &str,
    d: &DeviceConfig,
    e: usize,
    net: &Network,
    cols: &[String],
) -> Result<DeviceSpec> {
    let moves = |m: f64| {
        if m.is_finite() && m >= 1.0 {
            Ok(m)
        } else {
            Err(Error::parse(path, format!("{key}.max_move: must be >= 1")))
        }
    };
    Ok(match d {
        DeviceConfig::Generator(g) => DeviceSpec::Generator {
            params: GeneratorParams {
                p_min_mw: g.p_min_mw,
                p_max_mw: g.p_max_mw,
                q_min_mvar: g.q_min_mvar,
                q_max_mvar: g.q_max_mvar,
                s_rated_mva: g.s_rated_mva,
                pf_min: g.pf_min,
                cost: g.cost,
            },
            sgen: e,
        },
        DeviceConfig::Storage(s) => DeviceSpec::Storage {
            params: StorageParams {
                e_mwh: s.e_mwh,
                p_max_mw: s.p_max_mw,
                soc_min: s.soc_min,
                soc_max: s.soc_max,
                soc_init: s.soc_init,
                eta_ch: s.eta_ch,
                eta_dis: s.eta_dis,
                degradation_cost_per_mwh: s.degradation_cost_per_mwh,
            },
            element: e,
        },
        DeviceConfig::Solar(r) | DeviceConfig::Wind(r) => DeviceSpec::Renewable {
            params: RenewableParams {
                capacity_mw: r.capacity_mw,
                q_max_mvar: r.q_max_mvar,
                s_rated_mva: r.s_rated_mva,
                profile_column: cols
                    .iter()
                    .position(|c| *c == r.profile)
                    .expect("columns() has it"),
            },
            sgen: e,
        },
        DeviceConfig::TapChanger(t) => {
            let tap = net.trafos[e]
                .tap
                .as_ref()
                .expect("checked: it has a tap changer");
            DeviceSpec::TapChanger {
                params: TapParams {
                    tap_min: tap.min,
                    tap_max: tap.max,
                    tap_init: tap.pos.round().clamp(tap.min, tap.max),
                    max_move: moves(t.max_move)?,
                    wear_cost: t.wear_cost,
                },
                trafo: e,
            }
        }
        DeviceConfig::Capacitor(c) => {
            let sh = &net.shunts[e];
            DeviceSpec::Capacitor {
                params: CapacitorParams {
                    max_step: sh.max_step as f64,
                    step_init: sh.step.round().clamp(0.0, sh.max_step as f64),
                    max_move: moves(c.max_move)?,
                    wear_cost: c.wear_cost,
                },
                shunt: e,
            }
        }
    })
}

/// A loaded setup: the config, the network with the setup's added elements,
/// and both time-series splits.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The parsed config.
    pub config: SetupConfig,
    /// The config file.
    pub path: PathBuf,
    /// The network, with one static generator appended per dispatchable generator
    /// and per `bus`-placed renewable/storage.
    pub network: Network,
    /// Training split.
    pub train: TimeSeries,
    /// Test split.
    pub test: TimeSeries,
    /// Each agent's devices in config order, typed and resolved (parameters
    /// and network element).
    pub agent_devices: Vec<Vec<DeviceSpec>>,
    /// Loads that follow a profile (setup `loads:` groups).
    pub load_members: Vec<LoadMember>,
    /// Point of common coupling of each agent.
    pub agent_pcc: Vec<Option<PccElement>>,
    /// Bus indices of each agent.
    pub agent_buses: Vec<Vec<usize>>,
    /// Bus indices watched by the system operator.
    pub operator_buses: Vec<usize>,
    /// The setup's automatic controllers, resolved.
    pub controllers: Vec<ControllerSpec>,
    /// The agents that act (hierarchy, timing, history, visibility), resolved.
    pub agents: crate::setup::agents::Agents,
}

/// Find a setup's config: a path to a folder or a `config.yml`, or a name under
/// `setups/` relative to the current directory or to the crate root.
pub fn find_setup(name_or_path: &str) -> Result<PathBuf> {
    let p = Path::new(name_or_path);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    if p.is_dir() && p.join("config.yml").is_file() {
        return Ok(p.join("config.yml"));
    }
    let candidates = [
        PathBuf::from("setups")
            .join(name_or_path)
            .join("config.yml"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("setups")
            .join(name_or_path)
            .join("config.yml"),
    ];
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    let known: Vec<String> = list_setups().into_iter().map(|(n, _)| n).collect();
    Err(Error::InvalidSetup(format!(
        "unknown setup {name_or_path:?}: not a file or folder, and neither {} nor {} exists; setups: {}",
        candidates[0].display(),
        candidates[1].display(),
        if known.is_empty() { "none found".to_string() } else { known.join(", ") }
    )))
}

impl SetupConfig {
    /// Parse a config file (no cross-checks).
    pub fn read(path: &Path) -> Result<SetupConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        yaml_serde::from_str(&text).map_err(|e| Error::parse(path, e))
    }

    /// Every time-series column the setup uses (price first).
    pub fn columns(&self) -> Vec<String> {
        let mut cols = vec![self.system_operator.price.clone()];
        let mut add = |c: &String| {
            if !cols.contains(c) {
                cols.push(c.clone());
            }
        };
        self.loads.iter().for_each(|g| add(&g.profile));
        for a in &self.agents {
            for d in &a.devices {
                if let DeviceConfig::Solar(r) | DeviceConfig::Wind(r) = d {
                    add(&r.profile);
                }
            }
        }
        cols
    }
}

fn find_named<'a>(
    path: &Path,
    what: &str,
    key: &str,
    mut names: impl Iterator<Item = &'a str>,
    name: &str,
) -> Result<usize> {
    names.position(|n| n == name).ok_or_else(|| {
        Error::parse(
            path,
            format!("{key}: the network has no {what} named {name:?}"),
        )
    })
}

impl Setup {
    /// Load a setup by name or path (see [`find_setup`]).
    pub fn load(name_or_path: &str) -> Result<Setup> {
        let path = find_setup(name_or_path)?;
        let config = SetupConfig::read(&path)?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let check = |ok: bool, key: &str, msg: &str| -> Result<()> {
            if ok {
                Ok(())
            } else {
                Err(Error::parse(&path, format!("{key}: {msg}")))
            }
        };
        check(
            config.max_episode_steps > 0,
            "max_episode_steps",
            "must be positive",
        )?;
        check(
            config.dt_h > 0.0 && config.dt_h.is_finite(),
            "dt_h",
            "must be positive",
        )?;
        check(
            !config.agents.is_empty(),
            "agents",
            "at least one agent is needed",
        )?;
        check(
            config.voltage_band[0] < config.voltage_band[1],
            "voltage_band",
            "must be [low, high] with low < high",
        )?;
        check(
            config.base_power_mva > 0.0,
            "base_power_mva",
            "must be positive",
        )?;
        check(config.price_scale > 0.0, "price_scale", "must be positive")?;
        check(
            config.solver_tolerance_pu > 0.0 && config.solver_tolerance_pu.is_finite(),
            "solver_tolerance_pu",
            "must be positive",
        )?;
        if let Some(pc) = &config.system_operator.agent {
            check(
                pc.min_factor <= pc.max_factor
                    && pc.min_factor.is_finite()
                    && pc.max_factor.is_finite(),
                "system_operator.agent",
                "needs min_factor <= max_factor",
            )?;
        }
        check(
            config.reward_scale > 0.0 && config.reward_scale.is_finite(),
            "reward_scale",
            "must be positive",
        )?;
        check(
            config.operator_safety_weight >= 0.0 && config.operator_safety_weight.is_finite(),
            "operator_safety_weight",
            "must be >= 0",
        )?;
        check(
            config
                .control_screening_tolerance_pu
                .is_none_or(|t| t.is_finite() && t > 0.0 && t < 1.0),
            "control_screening_tolerance_pu",
            "must be a mismatch in p.u. between 0 and 1",
        )?;
        check(
            config
                .control_prediction_margin_pu
                .is_none_or(|m| m.is_finite() && m > 0.0 && m < 1.0),
            "control_prediction_margin_pu",
            "must be a voltage margin in p.u. between 0 and 1",
        )?;
        check(
            config.control_max_iterations > 0,
            "control_max_iterations",
            "must be positive",
        )?;
        let net_path = {
            let p = Path::new(&config.network);
            if p.extension().is_none() && p.components().count() == 1 {
                network::shipped_dir().join(p).with_extension("yml")
            } else {
                dir.join(p)
            }
        };
        let mut network = network::load(net_path)
            .map_err(|e| Error::parse(&path, format!("network {:?}: {e}", config.network)))?;
        if let Some(v) = config.slack_vm_pu {
            check(
                v.is_finite() && (0.5..=1.5).contains(&v),
                "slack_vm_pu",
                "must be in [0.5, 1.5]",
            )?;
            network
                .ext_grids
                .iter_mut()
                .filter(|e| e.in_service)
                .for_each(|e| e.vm_pu = v);
        }

        let bus_of = |net: &Network, key: &str, name: &str| {
            find_named(
                &path,
                "bus",
                key,
                net.buses.iter().map(|b| b.name.as_str()),
                name,
            )
        };
        let cols = config.columns();
        let mut agent_devices = Vec::new();
        let mut pccs = Vec::new();
        let mut agent_buses = Vec::new();
        for (ai, a) in config.agents.iter().enumerate() {
            let key = format!("agents[{ai}] ({})", a.name);
            let mut buses: Vec<usize> = match &a.bus_prefix {
                Some(p) => (0..network.buses.len())
                    .filter(|&b| network.buses[b].name.starts_with(p.as_str()))
                    .collect(),
                None => Vec::new(),
            };
            for n in &a.buses {
                let b = bus_of(&network, &format!("{key}.buses"), n)?;
                if !buses.contains(&b) {
                    buses.push(b);
                }
            }
            check(
                !buses.is_empty(),
                &key,
                "the agent owns no bus (bus_prefix/buses match nothing)",
            )?;
            buses.sort_unstable();
            agent_buses.push(buses);
            let mut elems = Vec::new();
            for (di, d) in a.devices.iter().enumerate() {
                let dkey = format!("{key}.devices[{di}]");
                let pos = |x: f64, f: &str| {
                    check(
                        x.is_finite() && x > 0.0,
                        &format!("{dkey}.{f}"),
                        "must be positive",
                    )
                };
                let e = match d {
                    DeviceConfig::Generator(g) => {
                        pos(g.p_max_mw, "p_max_mw")?;
                        pos(g.s_rated_mva, "s_rated_mva")?;
                        check(g.p_min_mw <= g.p_max_mw, &dkey, "p_min_mw > p_max_mw")?;
                        check(
                            g.q_min_mvar <= g.q_max_mvar,
                            &dkey,
                            "q_min_mvar > q_max_mvar",
                        )?;
                        check(
                            (0.0..=1.0).contains(&g.pf_min),
                            &format!("{dkey}.pf_min"),
                            "must be in [0, 1]",
                        )?;
                        let bus = bus_of(&network, &format!("{dkey}.bus"), &g.bus)?;
                        network
                            .sgens
                            .push(new_sgen(&g.name, bus, Some(g.s_rated_mva)));
                        network.sgens.len() - 1
                    }
                    DeviceConfig::Storage(s) => {
                        pos(s.e_mwh, "e_mwh")?;
                        pos(s.p_max_mw, "p_max_mw")?;
                        pos(s.eta_ch, "eta_ch")?;
                        pos(s.eta_dis, "eta_dis")?;
                        check(
                            0.0 <= s.soc_min
                                && s.soc_min <= s.soc_init
                                && s.soc_init <= s.soc_max
                                && s.soc_max <= 1.0,
                            &dkey,
                            "needs 0 <= soc_min <= soc_init <= soc_max <= 1",
                        )?;
                        match (&s.element, &s.bus) {
                            (Some(n), None) => find_named(
                                &path,
                                "storage",
                                &format!("{dkey}.element"),
                                network.storages.iter().map(|x| x.name.as_str()),
                                n,
                            )?,
                            (None, Some(b)) => {
                                let bus = bus_of(&network, &format!("{dkey}.bus"), b)?;
                                network.storages.push(Storage {
                                    name: format!("{} storage {di}", a.name),
                                    bus,
                                    p_mw: 0.0,
                                    q_mvar: 0.0,
                                    scaling: 1.0,
                                    max_e_mwh: s.e_mwh,
                                    in_service: true,
                                });
                                network.storages.len() - 1
                            }
                            _ => {
                                return Err(Error::parse(
                                    &path,
                                    format!("{dkey}: give exactly one of element, bus"),
                                ))
                            }
                        }
                    }
                    DeviceConfig::Solar(r) | DeviceConfig::Wind(r) => {
                        check(
                            r.capacity_mw >= 0.0,
                            &format!("{dkey}.capacity_mw"),
                            "must be >= 0",
                        )?;
                        check(
                            r.q_max_mvar >= 0.0,
                            &format!("{dkey}.q_max_mvar"),
                            "must be >= 0",
                        )?;
                        pos(r.s_rated_mva, "s_rated_mva")?;
                        match (&r.element, &r.bus) {
                            (Some(n), None) => find_named(
                                &path,
                                "static generator",
                                &format!("{dkey}.element"),
                                network.sgens.iter().map(|x| x.name.as_str()),
                                n,
                            )?,
                            (None, Some(b)) => {
                                let bus = bus_of(&network, &format!("{dkey}.bus"), b)?;
                                network.sgens.push(new_sgen(
                                    &format!("{} renewable {di}", a.name),
                                    bus,
                                    Some(r.s_rated_mva),
                                ));
                                network.sgens.len() - 1
                            }
                            _ => {
                                return Err(Error::parse(
                                    &path,
                                    format!("{dkey}: give exactly one of element, bus"),
                                ))
                            }
                        }
                    }
                    DeviceConfig::TapChanger(t) => {
                        let k = find_named(
                            &path,
                            "transformer",
                            &format!("{dkey}.trafo"),
                            network.trafos.iter().map(|x| x.name.as_str()),
                            &t.trafo,
                        )?;
                        check(
                            network.trafos[k].tap.is_some(),
                            &format!("{dkey}.trafo"),
                            "the transformer has no tap changer",
                        )?;
                        k
                    }
                    DeviceConfig::Capacitor(c) => find_named(
                        &path,
                        "shunt",
                        &format!("{dkey}.shunt"),
                        network.shunts.iter().map(|x| x.name.as_str()),
                        &c.shunt,
                    )?,
                };
                elems.push(device_spec(&path, &dkey, d, e, &network, &cols)?);
            }
            let pcc = match &a.pcc {
                None => None,
                Some(p) => {
                    let pkey = format!("{key}.pcc");
                    Some(match (&p.trafo, &p.line, p.ext_grid) {
                        (Some(n), None, None) => PccElement::Trafo(find_named(
                            &path,
                            "transformer",
                            &pkey,
                            network.trafos.iter().map(|x| x.name.as_str()),
                            n,
                        )?),
                        (None, Some(n), None) => PccElement::Line(find_named(
                            &path,
                            "line",
                            &pkey,
                            network.lines.iter().map(|x| x.name.as_str()),
                            n,
                        )?),
                        (None, None, Some(i)) => {
                            check(i < network.ext_grids.len(), &pkey, "no such ext_grid")?;
                            PccElement::ExtGrid(i)
                        }
                        _ => {
                            return Err(Error::parse(
                                &path,
                                format!("{pkey}: give exactly one of trafo, line, ext_grid"),
                            ))
                        }
                    })
                }
            };
            pccs.push(pcc);
            agent_devices.push(elems);
        }
        let operator_buses = match &config.system_operator.bus_prefix {
            Some(p) => (0..network.buses.len())
                .filter(|&b| network.buses[b].name.starts_with(p.as_str()))
                .collect(),
            None => Vec::new(),
        };
        for (gi, g) in config.loads.iter().enumerate() {
            check(
                network
                    .loads
                    .iter()
                    .any(|l| l.name.starts_with(g.prefix.as_str())),
                &format!("loads[{gi}].prefix"),
                &format!("no load name starts with {:?}", g.prefix),
            )?;
        }
        // A network element may be one device only.
        let mut owners: Vec<(&str, usize, String)> = Vec::new();
        for (ai, devs) in agent_devices.iter().enumerate() {
            for (di, d) in devs.iter().enumerate() {
                let (what, e) = d.element();
                let key = format!("agents[{ai}].devices[{di}]");
                if let Some((_, _, first)) = owners.iter().find(|(w, x, _)| *w == what && *x == e) {
                    return Err(Error::parse(
                        &path,
                        format!("{key}: {what} {e} is already the device {first}"),
                    ));
                }
                owners.push((what, e, key));
            }
        }
        let mut load_members = Vec::new();
        for (l, load) in network.loads.iter().enumerate() {
            if let Some(gi) = config
                .loads
                .iter()
                .position(|g| load.name.starts_with(g.prefix.as_str()))
            {
                let g = &config.loads[gi];
                let col = cols
                    .iter()
                    .position(|c| *c == g.profile)
                    .expect("columns() has it");
                load_members.push(LoadMember {
                    load: l,
                    column: col,
                    scale: g.scale,
                    group: gi,
                });
            }
        }
        let controllers = resolve_controllers(&path, &config, &network)?;
        let agents = crate::setup::agents::resolve(&path, &config, &network, &agent_devices)?;
        let train = TimeSeries::read(&dir.join(&config.train_data), &cols)?;
        let test = TimeSeries::read(&dir.join(&config.test_data), &cols)?;
        for (ts, key) in [(&train, "train_data"), (&test, "test_data")] {
            check(
                // an episode reads the hour after its last step (the next price)
                ts.hours > config.max_episode_steps + 1,
                key,
                &format!(
                    "{} hours are too few for episodes of {} steps",
                    ts.hours, config.max_episode_steps
                ),
            )?;
        }
        Ok(Setup {
            config,
            path,
            network,
            train,
            test,
            agent_devices,
            load_members,
            agent_pcc: pccs,
            agent_buses,
            operator_buses,
            controllers,
            agents,
        })
    }
}

/// Check and resolve the automatic controllers: the network file's own
/// (no wear cost), then the setup's `controllers:` section. Elements must
/// exist, a tap controller's transformer must have a tap changer, bands must
/// be ordered, and no element may be both driven by an agent and automatic, or
/// automatic twice. Errors name the controller and its element.
fn resolve_controllers(
    path: &Path,
    config: &SetupConfig,
    net: &Network,
) -> Result<Vec<ControllerSpec>> {
    let err = |key: &str, msg: String| Error::parse(path, format!("{key}: {msg}"));
    let agent_of = |key: &str, name: &Option<String>| -> Result<Option<usize>> {
        match name {
            None => Ok(None),
            Some(n) => config
                .agents
                .iter()
                .position(|a| &a.name == n)
                .map(Some)
                .ok_or_else(|| err(&format!("{key}.charge_to"), format!("no agent named {n:?}"))),
        }
    };
    let wear = |key: &str, w: f64| -> Result<f64> {
        if w.is_finite() && w >= 0.0 {
            Ok(w)
        } else {
            Err(err(&format!("{key}.wear_cost"), "must be >= 0".into()))
        }
    };
    let mut out: Vec<ControllerSpec> = net
        .controllers
        .iter()
        .map(|c| ControllerSpec {
            controller: c.clone(),
            wear_cost: 0.0,
            charge_to: None,
        })
        .collect();
    let n_net = out.len();
    for (i, c) in config.controllers.iter().enumerate() {
        let key = format!("controllers[{i}]");
        let spec = match c {
            ControllerConfig::DiscreteTap(t) => {
                let key = format!("{key} (discrete_tap on trafo {:?})", t.trafo);
                let k = find_named(
                    path,
                    "transformer",
                    &key,
                    net.trafos.iter().map(|x| x.name.as_str()),
                    &t.trafo,
                )?;
                if net.trafos[k].tap.is_none() {
                    return Err(err(&key, "the transformer has no tap changer".into()));
                }
                if !(t.vm_lower_pu.is_finite()
                    && t.vm_upper_pu.is_finite()
                    && t.vm_lower_pu < t.vm_upper_pu)
                {
                    return Err(err(
                        &key,
                        format!(
                            "needs vm_lower_pu < vm_upper_pu (got {} and {})",
                            t.vm_lower_pu, t.vm_upper_pu
                        ),
                    ));
                }
                if let Some(l) = &t.line_drop {
                    let pos = |x: f64| x.is_finite() && x > 0.0;
                    if !(pos(l.pt_ratio)
                        && pos(l.ct_primary_a)
                        && l.r_volt.is_finite()
                        && l.x_volt.is_finite())
                    {
                        return Err(err(
                            &format!("{key}.line_drop"),
                            "needs finite r_volt, x_volt and positive pt_ratio, ct_primary_a"
                                .into(),
                        ));
                    }
                }
                ControllerSpec {
                    controller: Controller::DiscreteTap(DiscreteTapControl {
                        name: format!("tap:{}", t.trafo),
                        trafo: k,
                        side: t.side,
                        vm_lower_pu: t.vm_lower_pu,
                        vm_upper_pu: t.vm_upper_pu,
                        tol: 1e-3,
                        line_drop: t.line_drop,
                        in_service: true,
                    }),
                    wear_cost: wear(&key, t.wear_cost)?,
                    charge_to: agent_of(&key, &t.charge_to)?,
                }
            }
            ControllerConfig::DiscreteShunt(sc) => {
                let key = format!("{key} (discrete_shunt on shunt {:?})", sc.shunt);
                let k = find_named(
                    path,
                    "shunt",
                    &key,
                    net.shunts.iter().map(|x| x.name.as_str()),
                    &sc.shunt,
                )?;
                if !(sc.vm_set_pu.is_finite() && sc.tol.is_finite() && sc.tol > 0.0) {
                    return Err(err(
                        &key,
                        format!(
                            "needs a finite vm_set_pu and tol > 0 (got {} and {})",
                            sc.vm_set_pu, sc.tol
                        ),
                    ));
                }
                if net.shunts[k].max_step < 1 || sc.increment < 1 {
                    return Err(err(
                        &key,
                        "the shunt has no steps to switch (max_step and increment must be >= 1)"
                            .into(),
                    ));
                }
                let bus = match &sc.bus {
                    None => None,
                    Some(b) => Some(find_named(
                        path,
                        "bus",
                        &format!("{key}.bus"),
                        net.buses.iter().map(|x| x.name.as_str()),
                        b,
                    )?),
                };
                ControllerSpec {
                    controller: Controller::DiscreteShunt(DiscreteShuntControl {
                        name: format!("shunt:{}", sc.shunt),
                        shunt: k,
                        bus,
                        vm_set_pu: sc.vm_set_pu,
                        tol: sc.tol,
                        increment: sc.increment,
                        in_service: true,
                    }),
                    wear_cost: wear(&key, sc.wear_cost)?,
                    charge_to: agent_of(&key, &sc.charge_to)?,
                }
            }
        };
        out.push(spec);
    }
    // Ownership: an element is automatic once, and never also an agent's device.
    for (j, s) in out.iter().enumerate() {
        let key = if j < n_net {
            format!("network controller {j} ({:?})", s.name())
        } else {
            format!("controllers[{}] ({:?})", j - n_net, s.name())
        };
        let (what, idx, elem_name) = match &s.controller {
            Controller::DiscreteTap(t) => {
                ("transformer", t.trafo, net.trafos[t.trafo].name.as_str())
            }
            Controller::DiscreteShunt(x) => ("shunt", x.shunt, net.shunts[x.shunt].name.as_str()),
        };
        let same = |o: &ControllerSpec| match (&o.controller, &s.controller) {
            (Controller::DiscreteTap(a), Controller::DiscreteTap(b)) => a.trafo == b.trafo,
            (Controller::DiscreteShunt(a), Controller::DiscreteShunt(b)) => a.shunt == b.shunt,
            _ => false,
        };
        if out[..j].iter().any(same) {
            return Err(err(
                &key,
                format!("a second automatic controller on {what} {elem_name:?} ({idx})"),
            ));
        }
        let driven = config.agents.iter().any(|a| {
            a.devices.iter().any(|d| match (d, &s.controller) {
                (DeviceConfig::TapChanger(t), Controller::DiscreteTap(_)) => t.trafo == elem_name,
                (DeviceConfig::Capacitor(c), Controller::DiscreteShunt(_)) => c.shunt == elem_name,
                _ => false,
            })
        });
        if driven {
            return Err(err(
                &key,
                format!("{what} {elem_name:?} is already an agent's device"),
            ));
        }
    }
    crate::network::validate_controllers(
        net,
        &out.iter().map(|s| s.controller.clone()).collect::<Vec<_>>(),
    )
    .map_err(|e| Error::parse(path, format!("controllers: {e}")))?;
    Ok(out)
}

/// Every setup under `setups/` (current directory, else the crate root):
/// `(name, description)` sorted by name; the description is the config's
/// `description`, or its first comment line.
pub fn list_setups() -> Vec<(String, String)> {
    let mut dirs = vec![PathBuf::from("setups")];
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("setups"));
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut out: Vec<(String, String)> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("config.yml").is_file())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let cfg = e.path().join("config.yml");
                let desc = match SetupConfig::read(&cfg) {
                    Ok(c) => c.description.unwrap_or_else(|| {
                        std::fs::read_to_string(&cfg)
                            .ok()
                            .and_then(|t| {
                                t.lines()
                                    .find_map(|l| l.strip_prefix('#').map(|x| x.trim().to_string()))
                            })
                            .unwrap_or_default()
                    }),
                    Err(e) => format!("(unreadable: {e})"),
                };
                (name, desc)
            })
            .collect();
        if !out.is_empty() {
            out.sort();
            return out;
        }
    }
    Vec::new()
}

fn new_sgen(name: &str, bus: usize, sn_mva: Option<f64>) -> Sgen {
    Sgen {
        name: name.to_string(),
        bus,
        p_mw: 0.0,
        q_mvar: 0.0,
        scaling: 1.0,
        sn_mva,
        in_service: true,
    }
}
