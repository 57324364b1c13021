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

use crate::error::{Error, Result};
use crate::network::{self, Network, Sgen, Storage};
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
fn lv() -> String {
    "lv".into()
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
    /// Network file (`.yml` or pandapower `.json`), relative to the config file.
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

/// An automatic controller, tagged by `type` (pandapower's class names in snake case).
///
/// ```yaml
/// controllers:
///   - { type: discrete_tap_control, trafo: "DSO Regulator 1", vm_lower_pu: 1.0083, vm_upper_pu: 1.025,
///       line_drop: { r_v: 2.7, x_v: 1.6, pt_ratio: 120, ct_primary_a: 100 } }
///   - { type: discrete_shunt_control, shunt: "SCB 1", vm_set_pu: 1.0, tol: 0.02 }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControllerConfig {
    /// pandapower's `DiscreteTapControl`: one tap step per control iteration
    /// until the controlled bus is inside `[vm_lower_pu, vm_upper_pu]`.
    DiscreteTapControl(TapControlConfig),
    /// pandapower's `DiscreteShuntController`: one step per iteration until
    /// the shunt's bus is inside `vm_set_pu ± tol`.
    DiscreteShuntControl(ShuntControlConfig),
}

/// An automatic tap controller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapControlConfig {
    /// Transformer name (it must have a tap changer).
    pub trafo: String,
    /// Controlled side: `lv` (default) or `hv`.
    #[serde(default = "lv")]
    pub side: String,
    /// Lower edge of the band in p.u.
    pub vm_lower_pu: f64,
    /// Upper edge of the band in p.u.
    pub vm_upper_pu: f64,
    /// Line-drop compensation (IEEE style, in volts on the regulator's base).
    #[serde(default)]
    pub line_drop: Option<LineDropConfig>,
    /// Cost per tap step moved ($), reported in info and charged to `charge_to`.
    #[serde(default)]
    pub wear_cost: f64,
    /// Agent whose cost carries the wear (none: reported only).
    #[serde(default)]
    pub charge_to: Option<String>,
}

/// Line-drop compensation of a regulator: the controlled voltage is
/// `V_reg − Z·I` with `Z = (r_v + j·x_v)/ct_primary_a` volts per ampere on the
/// 120 V base of `pt_ratio`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDropConfig {
    /// Compensator R in volts (at rated CT current).
    pub r_v: f64,
    /// Compensator X in volts.
    pub x_v: f64,
    /// Potential-transformer ratio (e.g. 120: 14.4 kV → 120 V).
    pub pt_ratio: f64,
    /// Current-transformer primary rating in A.
    pub ct_primary_a: f64,
}

/// An automatic capacitor controller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShuntControlConfig {
    /// Shunt name.
    pub shunt: String,
    /// Voltage set-point in p.u.
    pub vm_set_pu: f64,
    /// Dead band (±) in p.u.
    pub tol: f64,
    /// Cost per step switched ($), reported in info and charged to `charge_to`.
    #[serde(default)]
    pub wear_cost: f64,
    /// Agent whose cost carries the wear (none: reported only).
    #[serde(default)]
    pub charge_to: Option<String>,
}

/// A resolved automatic controller (element indices, checked).
#[derive(Debug, Clone, PartialEq)]
pub enum ControllerSpec {
    /// Discrete tap control of a transformer.
    Tap {
        /// Name for info and errors (`tap:<trafo name>`).
        name: String,
        /// Trafo index.
        trafo: usize,
        /// Whether the LV side's bus is controlled (else HV).
        lv_side: bool,
        /// Band `[lower, upper]` in p.u.
        vm_lower_pu: f64,
        /// Upper edge.
        vm_upper_pu: f64,
        /// Line-drop compensation `(r_v, x_v, pt_ratio, ct_primary_a)`.
        line_drop: Option<[f64; 4]>,
        /// Cost per step moved ($).
        wear_cost: f64,
        /// Grid agent charged with the wear.
        charge_to: Option<usize>,
    },
    /// Discrete step control of a shunt.
    Shunt {
        /// Name for info and errors (`shunt:<shunt name>`).
        name: String,
        /// Shunt index.
        shunt: usize,
        /// Set-point in p.u.
        vm_set_pu: f64,
        /// Dead band in p.u.
        tol: f64,
        /// Cost per step switched ($).
        wear_cost: f64,
        /// Grid agent charged with the wear.
        charge_to: Option<usize>,
    },
}

impl ControllerSpec {
    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            ControllerSpec::Tap { name, .. } | ControllerSpec::Shunt { name, .. } => name,
        }
    }
    /// Cost per move ($).
    pub fn wear_cost(&self) -> f64 {
        match self {
            ControllerSpec::Tap { wear_cost, .. } | ControllerSpec::Shunt { wear_cost, .. } => {
                *wear_cost
            }
        }
    }
    /// Grid agent charged with the wear.
    pub fn charge_to(&self) -> Option<usize> {
        match self {
            ControllerSpec::Tap { charge_to, .. } | ControllerSpec::Shunt { charge_to, .. } => {
                *charge_to
            }
        }
    }
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
    /// Network element of each device, in config order per agent:
    /// sgen index for generators/renewables, storage index, trafo index, shunt index.
    pub device_elements: Vec<Vec<usize>>,
    /// Point of common coupling of each agent.
    pub agent_pcc: Vec<Option<PccElement>>,
    /// Bus indices of each agent.
    pub agent_buses: Vec<Vec<usize>>,
    /// Bus indices watched by the system operator.
    pub operator_buses: Vec<usize>,
    /// The setup's automatic controllers, resolved.
    pub controllers: Vec<ControllerSpec>,
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
            config.control_max_iterations > 0,
            "control_max_iterations",
            "must be positive",
        )?;
        let mut network = network::load(dir.join(&config.network))
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
        let mut device_elements = Vec::new();
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
                elems.push(e);
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
            device_elements.push(elems);
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
        let controllers = resolve_controllers(&path, &config, &network)?;
        let cols = config.columns();
        let train = TimeSeries::read(&dir.join(&config.train_data), &cols)?;
        let test = TimeSeries::read(&dir.join(&config.test_data), &cols)?;
        for (ts, key) in [(&train, "train_data"), (&test, "test_data")] {
            check(
                ts.hours > config.max_episode_steps,
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
            device_elements,
            agent_pcc: pccs,
            agent_buses,
            operator_buses,
            controllers,
        })
    }
}

/// Check and resolve the `controllers:` section: elements exist, a tap
/// controller's transformer has a tap changer, bands are ordered, no element
/// is both driven by an agent and automatic, or automatic twice.
fn resolve_controllers(
    path: &Path,
    config: &SetupConfig,
    net: &Network,
) -> Result<Vec<ControllerSpec>> {
    let err = |key: String, msg: String| Error::parse(path, format!("{key}: {msg}"));
    let agent_of = |key: &str, name: &Option<String>| -> Result<Option<usize>> {
        match name {
            None => Ok(None),
            Some(n) => config
                .agents
                .iter()
                .position(|a| &a.name == n)
                .map(Some)
                .ok_or_else(|| err(format!("{key}.charge_to"), format!("no agent named {n:?}"))),
        }
    };
    let driven_trafo = |k: usize| {
        config.agents.iter().any(|a| {
            a.devices.iter().any(|d| {
                matches!(d, DeviceConfig::TapChanger(t) if net.trafos.get(k).is_some_and(|x| x.name == t.trafo))
            })
        })
    };
    let driven_shunt = |k: usize| {
        config.agents.iter().any(|a| {
            a.devices.iter().any(|d| {
                matches!(d, DeviceConfig::Capacitor(c) if net.shunts.get(k).is_some_and(|x| x.name == c.shunt))
            })
        })
    };
    let mut out: Vec<ControllerSpec> = Vec::new();
    for (i, c) in config.controllers.iter().enumerate() {
        let key = format!("controllers[{i}]");
        let finite_pos = |x: f64| x.is_finite() && x > 0.0;
        match c {
            ControllerConfig::DiscreteTapControl(t) => {
                let key = format!("{key} (trafo {:?})", t.trafo);
                let k = find_named(
                    path,
                    "transformer",
                    &format!("{key}.trafo"),
                    net.trafos.iter().map(|x| x.name.as_str()),
                    &t.trafo,
                )?;
                if net.trafos[k].tap.is_none() {
                    return Err(err(key, "the transformer has no tap changer".into()));
                }
                if !(t.vm_lower_pu.is_finite()
                    && t.vm_upper_pu.is_finite()
                    && t.vm_lower_pu < t.vm_upper_pu)
                {
                    return Err(err(
                        key,
                        format!(
                            "needs vm_lower_pu < vm_upper_pu (got {} and {})",
                            t.vm_lower_pu, t.vm_upper_pu
                        ),
                    ));
                }
                let lv_side = match t.side.as_str() {
                    "lv" => true,
                    "hv" => false,
                    s => return Err(err(format!("{key}.side"), format!("{s:?} is not lv or hv"))),
                };
                let line_drop = match &t.line_drop {
                    None => None,
                    Some(l) => {
                        if !(finite_pos(l.pt_ratio)
                            && finite_pos(l.ct_primary_a)
                            && l.r_v.is_finite()
                            && l.x_v.is_finite())
                        {
                            return Err(err(
                                format!("{key}.line_drop"),
                                "needs finite r_v, x_v and positive pt_ratio, ct_primary_a".into(),
                            ));
                        }
                        Some([l.r_v, l.x_v, l.pt_ratio, l.ct_primary_a])
                    }
                };
                if driven_trafo(k) {
                    return Err(err(
                        key,
                        "the transformer's taps are already an agent's device".into(),
                    ));
                }
                if out
                    .iter()
                    .any(|o| matches!(o, ControllerSpec::Tap { trafo, .. } if *trafo == k))
                {
                    return Err(err(
                        key,
                        "a second controller on the same transformer".into(),
                    ));
                }
                if !(t.wear_cost.is_finite() && t.wear_cost >= 0.0) {
                    return Err(err(format!("{key}.wear_cost"), "must be >= 0".into()));
                }
                out.push(ControllerSpec::Tap {
                    name: format!("tap:{}", t.trafo),
                    trafo: k,
                    lv_side,
                    vm_lower_pu: t.vm_lower_pu,
                    vm_upper_pu: t.vm_upper_pu,
                    line_drop,
                    wear_cost: t.wear_cost,
                    charge_to: agent_of(&key, &t.charge_to)?,
                });
            }
            ControllerConfig::DiscreteShuntControl(sc) => {
                let key = format!("{key} (shunt {:?})", sc.shunt);
                let k = find_named(
                    path,
                    "shunt",
                    &format!("{key}.shunt"),
                    net.shunts.iter().map(|x| x.name.as_str()),
                    &sc.shunt,
                )?;
                if !(sc.vm_set_pu.is_finite() && finite_pos(sc.tol)) {
                    return Err(err(
                        key,
                        format!(
                            "needs a finite vm_set_pu and tol > 0 (got {} and {})",
                            sc.vm_set_pu, sc.tol
                        ),
                    ));
                }
                if net.shunts[k].max_step < 1 {
                    return Err(err(key, "the shunt has no steps to switch".into()));
                }
                if driven_shunt(k) {
                    return Err(err(key, "the shunt is already an agent's device".into()));
                }
                if out
                    .iter()
                    .any(|o| matches!(o, ControllerSpec::Shunt { shunt, .. } if *shunt == k))
                {
                    return Err(err(key, "a second controller on the same shunt".into()));
                }
                if !(sc.wear_cost.is_finite() && sc.wear_cost >= 0.0) {
                    return Err(err(format!("{key}.wear_cost"), "must be >= 0".into()));
                }
                out.push(ControllerSpec::Shunt {
                    name: format!("shunt:{}", sc.shunt),
                    shunt: k,
                    vm_set_pu: sc.vm_set_pu,
                    tol: sc.tol,
                    wear_cost: sc.wear_cost,
                    charge_to: agent_of(&key, &sc.charge_to)?,
                });
            }
        }
    }
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
