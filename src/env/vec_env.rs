//! The vector environment: `B` copies of a setup stepped in lockstep over one
//! batched power flow.
//!
//! **Structure.** [`VecEnv`] holds the parameters (`Params`: the setup, the
//! agents, the observation tables; fixed after `new`), the per-copy state
//! (`State`: devices, time, random streams, the last converged voltages), the
//! power-flow batch with its automatic controllers, and the output buffers.
//! A step is: actions → devices → time-series values → power flow and
//! automatic control → cost, safety, reward → observations.
//!
//! **Arrays.** Actions are one row-major `[B, dim]` array per agent (agents:
//! the grid agents in config order, then the system operator if it is an
//! agent), `f32` or `f64` ([`ActionScalar`]); observations are `f32 [B, dim]`
//! per agent. Rewards are `f32 [B, n_agents]`; terminated / truncated are
//! `bool [B]`; the info arrays are `f64` (counts `u32`). All buffers are made
//! once and overwritten by every step, so bindings can hand them out without
//! copying.
//!
//! **Actions** are in `[-1, 1]` (clipped) and mapped per device as listed in
//! [`crate::devices`]; the all-zero action holds the grid as it is. NaN,
//! infinite or wrongly shaped actions are rejected, naming the agent and the
//! shape, before any state changes.
//!
//! **Time.** A copy's episode starts at 00:00 of a day (row `24·day` of its
//! split's CSV); `reset` solves that hour with the devices at their initial
//! state; step `k` applies the actions to hour `start + k`, at that hour's
//! price. Observations show the price and time of day of the hour the *next*
//! action applies to (see [`crate::env::observation`]). After
//! `max_episode_steps` steps the copy is truncated (`terminated` is always
//! false: episodes only end by time). Training copies start on random days of
//! the training split (their own ChaCha8 stream, seeded from `(seed, copy)`);
//! test copies walk the test days in order (copy `c`'s `e`-th episode starts
//! on episode slot `e·B + c`).
//!
//! **Autoreset: Gymnasium `NEXT_STEP`.** The step that ends a copy returns its
//! last observation with `truncated = true`; the next `step` ignores that
//! copy's actions, resets it, and returns its first observation with reward 0,
//! `terminated = truncated = false` and `info.reset = true`.
//!
//! **Failed power flows.** A copy whose power flow does not converge gets the
//! setup's `convergence_failure_reward` and `_safety`, `info.converged =
//! false`, `info.voltage_violation = true`, and zeros for every
//! power-flow-derived info value (PCC imports, trading cost, network and
//! operator voltage safety). Its observations hold the last converged
//! voltages and imports of the episode (no-load values, `vm = 1` and import
//! 0, after a reset that failed). Diverged values never leave the environment
//! except through [`VecEnv::power_flow`], the raw solver output.

use crate::agents::{GridAgent, Pcc, SystemOperator};
use crate::devices::{
    CapacitorParams, Capacitors, DeviceRef, Devices, GeneratorParams, Generators, LoadGroups,
    RenewableParams, Renewables, StorageParams, Storages, TapChangers, TapParams,
};
use crate::env::control_glue::EnvControl;
use crate::env::observation::{
    finite, price_feature, time_features, voltage_feature, ObsSource, ObservationLayout,
};
use crate::env::reward::{self, N_COST_TERMS, TERMS};
use crate::error::{Error, Result};
use crate::network::Network;
use crate::powerflow::admittance::trafo_branch;
use crate::powerflow::scenarios::{Scenario, ScenarioInputs};
use crate::powerflow::{new_backend, BackendKind, BatchResults, Plan, PowerFlow, SolverOptions};
use crate::setup::config::{ControllerSpec, DeviceConfig, ObservationMode, PccElement};
use crate::setup::{Setup, TimeSeries};
use ndarray::{Array1, Array2, Array3, ArrayView2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// Which split of the data the copies use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Split {
    /// Training: random start days of the training CSV (2023).
    #[default]
    Train,
    /// Test: the test CSV's days (2024) in order.
    Test,
}

impl std::str::FromStr for Split {
    type Err = Error;
    fn from_str(s: &str) -> Result<Split> {
        match s.to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            _ => Err(Error::InvalidInput(format!(
                "unknown split {s:?}: use train or test"
            ))),
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// An action value type: `f32` or `f64`.
pub trait ActionScalar: Copy + Send + Sync + std::fmt::Display + 'static {
    /// As f64.
    fn to_f64(self) -> f64;
}
impl ActionScalar for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl ActionScalar for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}

/// How to build a [`VecEnv`].
#[derive(Debug, Clone)]
pub struct EnvOptions {
    /// Number of copies `B`.
    pub batch: usize,
    /// Power-flow backend.
    pub backend: BackendKind,
    /// Data split.
    pub split: Split,
    /// Override the setup's observation mode.
    pub observation: Option<ObservationMode>,
    /// Override the setup's power-flow tolerance (p.u. mismatch).
    pub solver_tolerance_pu: Option<f64>,
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions {
            batch: 1,
            backend: BackendKind::Cpu,
            split: Split::Train,
            observation: None,
            solver_tolerance_pu: None,
        }
    }
}

/// Per-step information, `[B]` or `[B, n_agents]`.
#[derive(Debug, Clone)]
pub struct StepInfo {
    /// Cost per agent in $ (see [`crate::env::reward`]).
    pub cost: Array2<f64>,
    /// Safety per agent.
    pub safety: Array2<f64>,
    /// Every reward term per agent, `[B, n_agents, reward::TERMS.len()]`.
    pub terms: Array3<f64>,
    /// Whether the copy's power flow converged.
    pub converged: Array1<bool>,
    /// Whether the copy was reset by this call (its reward is 0).
    pub reset: Array1<bool>,
    /// Import at each grid agent's PCC in MW (negative = export), `[B, n_grid_agents]`; 0 for failed copies.
    pub pcc_import_mw: Array2<f64>,
    /// Price this hour in $/MWh (after the operator's factor): the price this step settles at.
    pub price: Array1<f64>,
    /// Any solved bus of the whole network outside the voltage band (true for failed copies).
    pub voltage_violation: Array1<bool>,
    /// `Σ` voltage-band violation over every solved bus of the network
    /// (the DSO feeder included, whether or not an agent owns it).
    pub network_voltage_safety: Array1<f64>,
    /// Voltage-band violation over the system operator's buses.
    pub operator_safety: Array1<f64>,
    /// Hour (row of the split's CSV) the copy is at.
    pub hour: Array1<usize>,
    /// Power flows the automatic control needed this step (1 without controllers).
    pub control_iterations: Array1<u32>,
    /// Steps each automatic controller moved this step, `[B, n_controllers]`.
    pub controller_moves: Array2<u32>,
    /// Wear cost of the automatic controllers' moves this step ($).
    pub controller_wear_cost: Array1<f64>,
}

/// Fixed after `new`: the setup, agents, observation tables.
struct Params {
    setup: Setup,
    split: Split,
    mode: ObservationMode,
    batch: usize,
    backend: String,
    plan: Arc<Plan>,
    agents: Vec<GridAgent>,
    live_buses: Vec<usize>,
    layouts: Vec<ObservationLayout>,
    agent_names: Vec<String>,
    action_dims: Vec<usize>,
    start_slots: usize,
    /// `(trafo, initial tap)` / `(shunt, initial step)` of the automatic controllers.
    controlled_taps: Vec<(usize, f64)>,
    controlled_shunts: Vec<(usize, f64)>,
}

/// Per-copy state.
struct State {
    devices: Devices,
    operator: SystemOperator,
    start_row: Vec<usize>,
    step_in_episode: Vec<usize>,
    episodes: Vec<u64>,
    rngs: Vec<ChaCha8Rng>,
    needs_reset: Vec<bool>,
    /// Last converged voltages of each copy (what observations show).
    vm_held: Array2<f64>,
    /// Last converged PCC imports of each copy.
    pcc_held: Array2<f64>,
}

/// The vector environment.
pub struct VecEnv {
    p: Params,
    st: State,
    pf: Box<dyn PowerFlow>,
    control: EnvControl,
    // outputs
    obs: Vec<Array2<f32>>,
    rewards: Array2<f32>,
    terminated: Array1<bool>,
    truncated: Array1<bool>,
    info: StepInfo,
    // scratch
    reset_list: Vec<usize>,
    renewable_profile: Vec<f64>,
    agent_reward: Vec<f64>,
    action_row: Vec<f64>,
    dev_obs: Vec<f32>,
}

impl VecEnv {
    /// Build from a setup name or path (see [`crate::setup::find_setup`]).
    pub fn from_name(name_or_path: &str, options: &EnvOptions) -> Result<VecEnv> {
        VecEnv::new(Setup::load(name_or_path)?, options)
    }

    /// Build from a loaded setup.
    pub fn new(setup: Setup, options: &EnvOptions) -> Result<VecEnv> {
        let b = options.batch;
        if b == 0 {
            return Err(Error::InvalidSetup(
                "the batch needs at least one copy".into(),
            ));
        }
        let cfg = &setup.config;
        let net = &setup.network;
        let ts = &setup.train;
        let col = |name: &str| ts.column(name).expect("setup columns are read");
        let mut gen_p = Vec::new();
        let mut gen_e = Vec::new();
        let mut sto_p = Vec::new();
        let mut sto_e = Vec::new();
        let mut ren_p = Vec::new();
        let mut ren_e = Vec::new();
        let mut tap_e = Vec::new();
        let mut tap_p = Vec::new();
        let mut cap_e = Vec::new();
        let mut cap_p = Vec::new();
        let mut agent_devices = Vec::new();
        for (a, elems) in cfg.agents.iter().zip(&setup.device_elements) {
            let mut refs = Vec::new();
            for (d, &e) in a.devices.iter().zip(elems) {
                refs.push(match d {
                    DeviceConfig::Generator(g) => {
                        gen_p.push(GeneratorParams {
                            p_min_mw: g.p_min_mw,
                            p_max_mw: g.p_max_mw,
                            q_min_mvar: g.q_min_mvar,
                            q_max_mvar: g.q_max_mvar,
                            s_rated_mva: g.s_rated_mva,
                            pf_min: g.pf_min,
                            cost: g.cost,
                        });
                        gen_e.push(e);
                        DeviceRef::Generator(gen_p.len() - 1)
                    }
                    DeviceConfig::Storage(s) => {
                        sto_p.push(StorageParams {
                            e_mwh: s.e_mwh,
                            p_max_mw: s.p_max_mw,
                            soc_min: s.soc_min,
                            soc_max: s.soc_max,
                            soc_init: s.soc_init,
                            eta_ch: s.eta_ch,
                            eta_dis: s.eta_dis,
                            degradation_cost_per_mwh: s.degradation_cost_per_mwh,
                        });
                        sto_e.push(e);
                        DeviceRef::Storage(sto_p.len() - 1)
                    }
                    DeviceConfig::Solar(r) | DeviceConfig::Wind(r) => {
                        ren_p.push(RenewableParams {
                            capacity_mw: r.capacity_mw,
                            q_max_mvar: r.q_max_mvar,
                            s_rated_mva: r.s_rated_mva,
                            profile_column: col(&r.profile),
                        });
                        ren_e.push(e);
                        DeviceRef::Renewable(ren_p.len() - 1)
                    }
                    DeviceConfig::TapChanger(t) => {
                        let tap = net.trafos[e].tap.as_ref().expect("checked by Setup::load");
                        tap_e.push(e);
                        tap_p.push(TapParams {
                            tap_min: tap.min,
                            tap_max: tap.max,
                            tap_init: tap.pos.round().clamp(tap.min, tap.max),
                            max_move: t.max_move,
                            wear_cost: t.wear_cost,
                        });
                        DeviceRef::TapChanger(tap_e.len() - 1)
                    }
                    DeviceConfig::Capacitor(c) => {
                        let s = &net.shunts[e];
                        cap_e.push(e);
                        cap_p.push(CapacitorParams {
                            max_step: s.max_step as f64,
                            step_init: s.step.round().clamp(0.0, s.max_step as f64),
                            max_move: c.max_move,
                            wear_cost: c.wear_cost,
                        });
                        DeviceRef::Capacitor(cap_e.len() - 1)
                    }
                });
            }
            agent_devices.push(refs);
        }
        // A device element may be owned once.
        for (what, e) in [
            ("static generator", [gen_e.clone(), ren_e.clone()].concat()),
            ("storage", sto_e.clone()),
            ("trafo", tap_e.clone()),
            ("shunt", cap_e.clone()),
        ] {
            let mut s = e.clone();
            s.sort_unstable();
            if let Some(w) = s.windows(2).find(|w| w[0] == w[1]) {
                return Err(Error::parse(
                    &setup.path,
                    format!("{what} {} is controlled by two devices", w[0]),
                ));
            }
        }
        let mut loads = LoadGroups::default();
        for (l, load) in net.loads.iter().enumerate() {
            if let Some(g) = cfg
                .loads
                .iter()
                .find(|g| load.name.starts_with(g.prefix.as_str()))
            {
                loads.members.push((l, col(&g.profile), g.scale));
            }
        }
        let n_ren = ren_p.len();
        let devices = Devices {
            generators: Generators::new(gen_p, gen_e, b),
            storages: Storages::new(sto_p, sto_e, b),
            renewables: Renewables::new(ren_p, ren_e, b),
            taps: TapChangers::new(tap_e, tap_p, b),
            capacitors: Capacitors::new(cap_e, cap_p, b),
            loads,
        };

        let plan = Arc::new(Plan::new(
            net,
            SolverOptions {
                tolerance_pu: options
                    .solver_tolerance_pu
                    .unwrap_or(cfg.solver_tolerance_pu),
                ..SolverOptions::default()
            },
        )?);
        let live: Vec<bool> = plan.bus_node.iter().map(|n| n.is_some()).collect();
        let live_buses: Vec<usize> = (0..net.buses.len()).filter(|&i| live[i]).collect();
        let mut agents = Vec::new();
        let controlled_trafo = |k: usize| {
            devices.taps.trafo.contains(&k)
                || setup
                    .controllers
                    .iter()
                    .any(|c| matches!(c, ControllerSpec::Tap { trafo, .. } if *trafo == k))
        };
        for (((a, refs), buses), pcc) in cfg
            .agents
            .iter()
            .zip(agent_devices)
            .zip(&setup.agent_buses)
            .zip(&setup.agent_pcc)
        {
            let pcc = pcc.map(|p| match p {
                PccElement::Trafo(k) => {
                    let t = &net.trafos[k];
                    let fixed = (!controlled_trafo(k)).then(|| {
                        trafo_branch(net, t, t.tap.as_ref().map_or(0.0, |x| x.pos)).admittance()
                    });
                    Pcc::Trafo {
                        trafo: k,
                        hv: t.hv_bus,
                        lv: t.lv_bus,
                        fixed,
                    }
                }
                PccElement::Line(l) => Pcc::Line(l),
                PccElement::ExtGrid(i) => Pcc::ExtGrid(i),
            });
            agents.push(GridAgent::new(a.name.clone(), refs, buses, &live, net, pcc));
        }
        let so = &cfg.system_operator;
        let mut op_own = vec![false; net.buses.len()];
        setup.operator_buses.iter().for_each(|&x| op_own[x] = true);
        let mut operator = SystemOperator {
            price_column: col(&so.price),
            sell_discount: so.sell_discount,
            buses: setup
                .operator_buses
                .iter()
                .copied()
                .filter(|&x| live[x])
                .collect(),
            lines: (0..net.lines.len())
                .filter(|&l| op_own[net.lines[l].from_bus] && op_own[net.lines[l].to_bus])
                .collect(),
            control: so.agent.as_ref().map(|p| (p.min_factor, p.max_factor)),
            factor: Array1::ones(b),
        };
        (0..b).for_each(|c| operator.reset_copy(c));

        let mode = options.observation.unwrap_or(cfg.observation);
        let layouts = build_layouts(mode, &agents, &operator, &live_buses, &plan, &devices);
        let mut agent_names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
        let mut action_dims: Vec<usize> = agents.iter().map(|a| a.action_dim).collect();
        if operator.is_agent() {
            agent_names.push("system_operator".into());
            action_dims.push(1);
        }
        let n_agents = agent_names.len();
        let n_ctrl = setup.controllers.len();
        let control = EnvControl::new(
            net,
            setup.controllers.clone(),
            b,
            cfg.control_max_iterations,
        )?;
        let controlled_taps = setup
            .controllers
            .iter()
            .filter_map(|c| match c {
                ControllerSpec::Tap { trafo, .. } => {
                    let t = net.trafos[*trafo]
                        .tap
                        .as_ref()
                        .expect("checked by Setup::load");
                    Some((*trafo, t.pos.round().clamp(t.min, t.max)))
                }
                _ => None,
            })
            .collect();
        let controlled_shunts = setup
            .controllers
            .iter()
            .filter_map(|c| match c {
                ControllerSpec::Shunt { shunt, .. } => {
                    let s = &net.shunts[*shunt];
                    Some((*shunt, s.step.round().clamp(0.0, s.max_step as f64)))
                }
                _ => None,
            })
            .collect();
        let (pf, backend) = new_backend(options.backend, plan.clone(), b)?;
        let hours = match options.split {
            Split::Train => setup.train.hours,
            Split::Test => setup.test.hours,
        };
        // The last step of an episode reads the next hour's price for its observation.
        let start_slots = (hours - 2 - cfg.max_episode_steps) / 24 + 1;
        let n_grid = agents.len();
        let n_bus = net.buses.len();
        let obs = layouts
            .iter()
            .map(|l| Array2::zeros((b, l.dim())))
            .collect();
        let max_action = action_dims.iter().copied().max().unwrap_or(0);
        Ok(VecEnv {
            p: Params {
                split: options.split,
                mode,
                batch: b,
                backend,
                plan,
                agents,
                live_buses,
                layouts,
                agent_names,
                action_dims,
                start_slots,
                controlled_taps,
                controlled_shunts,
                setup,
            },
            st: State {
                devices,
                operator,
                start_row: vec![0; b],
                step_in_episode: vec![0; b],
                episodes: vec![0; b],
                rngs: (0..b).map(|c| copy_rng(0, c)).collect(),
                needs_reset: vec![true; b],
                vm_held: Array2::ones((b, n_bus)),
                pcc_held: Array2::zeros((b, n_grid)),
            },
            pf,
            control,
            obs,
            rewards: Array2::zeros((b, n_agents)),
            terminated: Array1::from_elem(b, false),
            truncated: Array1::from_elem(b, false),
            info: StepInfo {
                cost: Array2::zeros((b, n_agents)),
                safety: Array2::zeros((b, n_agents)),
                terms: Array3::zeros((b, n_agents, TERMS.len())),
                converged: Array1::from_elem(b, false),
                reset: Array1::from_elem(b, false),
                pcc_import_mw: Array2::zeros((b, n_grid)),
                price: Array1::zeros(b),
                voltage_violation: Array1::from_elem(b, false),
                network_voltage_safety: Array1::zeros(b),
                operator_safety: Array1::zeros(b),
                hour: Array1::zeros(b),
                control_iterations: Array1::zeros(b),
                controller_moves: Array2::zeros((b, n_ctrl)),
                controller_wear_cost: Array1::zeros(b),
            },
            reset_list: Vec::with_capacity(b),
            renewable_profile: vec![0.0; n_ren],
            agent_reward: vec![0.0; n_agents],
            action_row: vec![0.0; max_action],
            dev_obs: vec![0.0; 4],
        })
    }

    /// Number of copies.
    pub fn batch(&self) -> usize {
        self.p.batch
    }
    /// Agent names (grid agents, then `system_operator` if it acts).
    pub fn agent_names(&self) -> &[String] {
        &self.p.agent_names
    }
    /// Action length of each agent.
    pub fn action_dims(&self) -> &[usize] {
        &self.p.action_dims
    }
    /// Observation length of each agent.
    pub fn obs_dims(&self) -> Vec<usize> {
        self.p.layouts.iter().map(|l| l.dim()).collect()
    }
    /// Observation layout of agent `i` (a name and a source for every column).
    pub fn layout(&self, i: usize) -> &ObservationLayout {
        &self.p.layouts[i]
    }
    /// Observation mode.
    pub fn observation_mode(&self) -> ObservationMode {
        self.p.mode
    }
    /// The data split.
    pub fn split(&self) -> Split {
        self.p.split
    }
    /// Which backend solves the power flow, and why.
    pub fn backend(&self) -> &str {
        &self.p.backend
    }
    /// The setup.
    pub fn setup(&self) -> &Setup {
        &self.p.setup
    }
    /// The network as solved (with the setup's added elements).
    pub fn network(&self) -> &Network {
        &self.p.plan.net
    }
    /// The grid agents.
    pub fn agents(&self) -> &[GridAgent] {
        &self.p.agents
    }
    /// Device state.
    pub fn devices(&self) -> &Devices {
        &self.st.devices
    }
    /// The system operator.
    pub fn operator(&self) -> &SystemOperator {
        &self.st.operator
    }
    /// Names of the automatic controllers (`tap:<trafo>`, `shunt:<shunt>`), in
    /// the column order of `info.controller_moves`.
    pub fn controller_names(&self) -> Vec<String> {
        self.control
            .specs
            .iter()
            .map(|c| c.name().to_string())
            .collect()
    }
    /// Observations, one `[B, dim]` array per agent.
    pub fn observations(&self) -> &[Array2<f32>] {
        &self.obs
    }
    /// Rewards `[B, n_agents]` of the last call.
    pub fn rewards(&self) -> &Array2<f32> {
        &self.rewards
    }
    /// Terminated flags `[B]` (always false: episodes end by time).
    pub fn terminated(&self) -> &Array1<bool> {
        &self.terminated
    }
    /// Truncated flags `[B]`.
    pub fn truncated(&self) -> &Array1<bool> {
        &self.truncated
    }
    /// Info of the last call.
    pub fn info(&self) -> &StepInfo {
        &self.info
    }
    /// Raw power-flow results of the last call (diverged values included for
    /// copies that failed: use [`VecEnv::voltages`] for held values).
    pub fn power_flow(&self) -> &BatchResults {
        self.pf.results()
    }
    /// Bus voltages `[B, n_bus]` as the observations show them: the last
    /// converged values of each copy.
    pub fn voltages(&self) -> &Array2<f64> {
        &self.st.vm_held
    }
    /// Steps taken in each copy's current episode.
    pub fn steps_in_episode(&self) -> &[usize] {
        &self.st.step_in_episode
    }
    /// Current CSV row of each copy.
    pub fn hour(&self, c: usize) -> usize {
        self.st.start_row[c] + self.st.step_in_episode[c]
    }
    /// The price (after the operator's current factor) of the hour copy `c`'s
    /// next action applies to: what its observation shows.
    pub fn next_price(&self, c: usize) -> f64 {
        self.series()
            .at(self.st.operator.price_column, self.hour(c) + 1)
            * self.st.operator.factor[c]
    }
    /// Mean published price of the `n` hours up to and including copy `c`'s
    /// current hour (fewer at the start of the series).
    pub fn trailing_mean_price(&self, c: usize, n: usize) -> f64 {
        let h = self.hour(c);
        let lo = h.saturating_sub(n.saturating_sub(1));
        let ts = self.series();
        (lo..=h)
            .map(|r| ts.at(self.st.operator.price_column, r))
            .sum::<f64>()
            / (h - lo + 1) as f64
    }

    /// The power-flow set-points of copy `c` in the last solve (after the
    /// automatic controllers settled), as a `pf` scenario (solve it with
    /// `powergrid pf` on [`VecEnv::network`]).
    pub fn scenario(&self, c: usize) -> Scenario {
        let i = self.pf.inputs();
        let r = |a: &Array2<f64>| Some(a.row(c).to_vec());
        Scenario {
            inputs: ScenarioInputs {
                load_p_mw: r(&i.load_p_mw),
                load_q_mvar: r(&i.load_q_mvar),
                load_scaling: r(&i.load_scaling),
                sgen_p_mw: r(&i.sgen_p_mw),
                sgen_q_mvar: r(&i.sgen_q_mvar),
                storage_p_mw: r(&i.storage_p_mw),
                trafo_tap_pos: r(&i.trafo_tap_pos),
                shunt_step: r(&i.shunt_step),
            },
            extra: Default::default(),
        }
    }

    fn series(&self) -> &TimeSeries {
        match self.p.split {
            Split::Train => &self.p.setup.train,
            Split::Test => &self.p.setup.test,
        }
    }

    /// Reset every copy: reseed copy `c`'s stream from `(seed, c)`, pick its
    /// start day, reset its devices, solve, and write first observations.
    pub fn reset(&mut self, seed: u64) -> Result<()> {
        for c in 0..self.p.batch {
            self.st.rngs[c] = copy_rng(seed, c);
            self.st.episodes[c] = 0;
            self.st.needs_reset[c] = true;
        }
        self.reset_list.clear();
        for c in 0..self.p.batch {
            self.begin_episode(c);
            self.reset_list.push(c);
        }
        self.solve_and_evaluate()
    }

    /// Check actions: one array per agent, shape `[B, action_dims[i]]`, finite.
    fn check_actions<A: ActionScalar>(&self, actions: &[ArrayView2<A>]) -> Result<()> {
        if actions.len() != self.p.action_dims.len() {
            return Err(Error::InvalidInput(format!(
                "expected actions for {} agents ({:?}), got {}",
                self.p.action_dims.len(),
                self.p.agent_names,
                actions.len()
            )));
        }
        for (i, a) in actions.iter().enumerate() {
            let want = (self.p.batch, self.p.action_dims[i]);
            if a.dim() != want {
                return Err(Error::InvalidInput(format!(
                    "actions of agent {i} ({}) have shape {:?}, expected {want:?}",
                    self.p.agent_names[i],
                    a.dim()
                )));
            }
            if let Some(((c, j), v)) = a.indexed_iter().find(|(_, v)| !v.to_f64().is_finite()) {
                return Err(Error::InvalidInput(format!(
                    "action [{c}, {j}] of agent {i} ({}) is {v}",
                    self.p.agent_names[i]
                )));
            }
        }
        Ok(())
    }

    /// Step every copy with `actions[i]` of shape `[B, action_dims[i]]`
    /// (`f32` or `f64`). Copies that ended on the previous call are reset
    /// instead (NEXT_STEP); their actions are ignored but must still be finite.
    /// Every action is checked before anything changes: on an error (wrong
    /// number of agents, wrong shape, NaN or infinite value) no copy's state
    /// has changed.
    pub fn step<A: ActionScalar>(&mut self, actions: &[ArrayView2<A>]) -> Result<()> {
        self.check_actions(actions)?;
        self.reset_list.clear();
        let dt = self.p.setup.config.dt_h;
        let n_grid = self.p.agents.len();
        for c in 0..self.p.batch {
            if self.st.needs_reset[c] {
                self.begin_episode(c);
                self.reset_list.push(c);
                continue;
            }
            self.st.step_in_episode[c] += 1;
            let row = self.hour(c);
            let ts = match self.p.split {
                Split::Train => &self.p.setup.train,
                Split::Test => &self.p.setup.test,
            };
            for (k, p) in self.st.devices.renewables.params.iter().enumerate() {
                self.renewable_profile[k] = ts.at(p.profile_column, row);
            }
            for (i, agent) in self.p.agents.iter().enumerate() {
                let a = actions[i].row(c);
                let buf = &mut self.action_row[..a.len()];
                buf.iter_mut()
                    .zip(a.iter())
                    .for_each(|(d, s)| *d = s.to_f64());
                agent.apply(&mut self.st.devices, c, buf, dt, &self.renewable_profile);
            }
            if self.st.operator.is_agent() {
                self.st.operator.apply(c, actions[n_grid][[c, 0]].to_f64());
            }
        }
        self.solve_and_evaluate()
    }

    fn begin_episode(&mut self, c: usize) {
        let slot = match self.p.split {
            Split::Train => self.st.rngs[c].random_range(0..self.p.start_slots),
            Split::Test => ((self.st.episodes[c] as usize) * self.p.batch + c) % self.p.start_slots,
        };
        self.st.episodes[c] += 1;
        self.st.start_row[c] = 24 * slot;
        self.st.step_in_episode[c] = 0;
        self.st.needs_reset[c] = false;
        self.st.devices.reset_copy(c);
        self.st.operator.reset_copy(c);
        let row = self.st.start_row[c];
        for k in 0..self.st.devices.renewables.params.len() {
            let v = self
                .series()
                .at(self.st.devices.renewables.params[k].profile_column, row);
            self.st.devices.renewables.set_uncurtailed(c, k, v);
        }
    }

    /// Write set-points, solve with automatic control, then cost, safety,
    /// reward, observations, flags.
    fn solve_and_evaluate(&mut self) -> Result<()> {
        self.write_inputs();
        if !self.reset_list.is_empty() {
            self.pf.reset_start(&self.reset_list);
        }
        self.control.run(self.pf.as_mut())?;
        self.info.reset.fill(false);
        for &c in &self.reset_list {
            self.info.reset[c] = true;
        }
        self.evaluate();
        Ok(())
    }

    fn write_inputs(&mut self) {
        let ts = match self.p.split {
            Split::Train => &self.p.setup.train,
            Split::Test => &self.p.setup.test,
        };
        let d = &self.st.devices;
        let inp = self.pf.inputs_mut();
        for c in 0..self.p.batch {
            let row = self.st.start_row[c] + self.st.step_in_episode[c];
            for &(l, col, scale) in &d.loads.members {
                inp.load_scaling[[c, l]] = scale * ts.at(col, row);
            }
            for (k, &s) in d.generators.sgen.iter().enumerate() {
                inp.sgen_p_mw[[c, s]] = d.generators.p_mw[[c, k]];
                inp.sgen_q_mvar[[c, s]] = d.generators.q_mvar[[c, k]];
            }
            for (k, &s) in d.renewables.sgen.iter().enumerate() {
                inp.sgen_p_mw[[c, s]] = d.renewables.p_mw[[c, k]];
                inp.sgen_q_mvar[[c, s]] = d.renewables.q_mvar[[c, k]];
            }
            for (k, &s) in d.storages.element.iter().enumerate() {
                inp.storage_p_mw[[c, s]] = d.storages.p_mw[[c, k]];
            }
            for (k, &t) in d.taps.trafo.iter().enumerate() {
                inp.trafo_tap_pos[[c, t]] = d.taps.pos[[c, k]];
            }
            for (k, &s) in d.capacitors.shunt.iter().enumerate() {
                inp.shunt_step[[c, s]] = d.capacitors.step[[c, k]];
            }
        }
        // Automatic controllers keep their settled positions from step to
        // step (they live in the inputs); a reset puts them back to the network's.
        for &c in &self.reset_list {
            for &(t, v) in &self.p.controlled_taps {
                inp.trafo_tap_pos[[c, t]] = v;
            }
            for &(s, v) in &self.p.controlled_shunts {
                inp.shunt_step[[c, s]] = v;
            }
        }
    }

    fn evaluate(&mut self) {
        let cfg = &self.p.setup.config;
        let ts = match self.p.split {
            Split::Train => &self.p.setup.train,
            Split::Test => &self.p.setup.test,
        };
        let (v_min, v_max) = (cfg.voltage_band[0], cfg.voltage_band[1]);
        let dt = cfg.dt_h;
        let net = &self.p.plan.net;
        let res = self.pf.results();
        let inp = self.pf.inputs();
        let n_grid = self.p.agents.len();
        let n_agents = self.p.agent_names.len();
        let devices = &self.st.devices;
        let operator = &self.st.operator;
        for c in 0..self.p.batch {
            let row = self.st.start_row[c] + self.st.step_in_episode[c];
            let conv = res.converged[c];
            let is_reset = self.info.reset.get(c).copied().unwrap_or(false);
            let price = ts.at(operator.price_column, row) * operator.factor[c];
            // Hold the last converged values of the copy; after a failed reset, no-load values.
            if conv {
                self.st.vm_held.row_mut(c).assign(&res.vm_pu.row(c));
            } else if is_reset {
                self.st.vm_held.row_mut(c).fill(1.0);
                self.st.pcc_held.row_mut(c).fill(0.0);
            }
            let vm = res.vm_pu.row(c);
            self.info.control_iterations[c] = self.control.iterations[c];
            let mut ctrl_wear = 0.0;
            let mut terms = self.info.terms.index_axis_mut(ndarray::Axis(0), c);
            terms.fill(0.0);
            for (k, spec) in self.control.specs.iter().enumerate() {
                let m = self.control.moves[[c, k]];
                self.info.controller_moves[[c, k]] = m;
                let w = spec.wear_cost() * m as f64;
                ctrl_wear += w;
                if let Some(a) = spec.charge_to() {
                    terms[[a, 4]] += w;
                }
            }
            self.info.controller_wear_cost[c] = ctrl_wear;
            let mut op_safety = 0.0;
            if conv {
                for &b in &operator.buses {
                    op_safety += reward::voltage_violation(vm[b], v_min, v_max);
                }
            }
            self.info.operator_safety[c] = op_safety;
            let mut revenue = 0.0;
            for (i, a) in self.p.agents.iter().enumerate() {
                let import = match &a.pcc {
                    Some(p) if conv => p.import_mw(net, inp, res, c),
                    _ => 0.0,
                };
                if conv {
                    self.st.pcc_held[[c, i]] = import;
                }
                self.info.pcc_import_mw[[c, i]] = import;
                let trading = reward::trading_cost(import, price, operator.sell_discount, dt);
                revenue += trading;
                for d in &a.devices {
                    let t = match d {
                        DeviceRef::Generator(_) => 0,
                        DeviceRef::Storage(_) => 2,
                        DeviceRef::Renewable(_) => continue,
                        DeviceRef::TapChanger(_) | DeviceRef::Capacitor(_) => 3,
                    };
                    terms[[i, t]] += devices.cost(*d, c, dt);
                }
                terms[[i, 1]] = trading;
                if conv {
                    let mut v = 0.0;
                    for &b in &a.buses {
                        v += reward::voltage_violation(vm[b], v_min, v_max);
                    }
                    let mut l = 0.0;
                    for &x in &a.lines {
                        l += reward::loading_violation(res.line_loading_percent[[c, x]]);
                    }
                    for &x in &a.trafos {
                        l += reward::loading_violation(res.trafo_loading_percent[[c, x]]);
                    }
                    terms[[i, 5]] = v;
                    terms[[i, 6]] = l;
                    terms[[i, 8]] = cfg.operator_safety_weight * op_safety;
                }
                terms[[i, 7]] = a.device_violation(devices, c);
            }
            if operator.is_agent() {
                let mut l = 0.0;
                if conv {
                    for &x in &operator.lines {
                        l += reward::loading_violation(res.line_loading_percent[[c, x]]);
                    }
                }
                terms[[n_grid, 1]] = -revenue;
                terms[[n_grid, 5]] = op_safety;
                terms[[n_grid, 6]] = l;
            }
            for i in 0..n_agents {
                let row_t = terms.row(i);
                let cost: f64 = row_t.iter().take(N_COST_TERMS).sum();
                let safety: f64 = if conv {
                    row_t.iter().skip(N_COST_TERMS).sum()
                } else {
                    cfg.convergence_failure_safety
                };
                self.info.cost[[c, i]] = cost;
                self.info.safety[[c, i]] = safety;
                self.agent_reward[i] = if conv {
                    cfg.reward_scale * reward::reward(cost, safety, cfg.penalty)
                } else {
                    cfg.convergence_failure_reward
                };
            }
            let mut net_v = 0.0;
            let mut any = false;
            if conv {
                for &b in &self.p.live_buses {
                    let v = reward::voltage_violation(vm[b], v_min, v_max);
                    net_v += v;
                    any |= v > 0.0;
                }
            }
            self.info.network_voltage_safety[c] = net_v;
            self.info.voltage_violation[c] = any || !conv;
            self.info.converged[c] = conv;
            self.info.price[c] = price;
            self.info.hour[c] = row;
            if cfg.share_reward {
                let m = self.agent_reward.iter().sum::<f64>() / n_agents as f64;
                self.agent_reward.iter_mut().for_each(|r| *r = m);
            }
            for i in 0..n_agents {
                self.rewards[[c, i]] = if is_reset {
                    0.0
                } else {
                    self.agent_reward[i] as f32
                };
            }
            let done = !is_reset && self.st.step_in_episode[c] >= cfg.max_episode_steps;
            self.truncated[c] = done;
            self.terminated[c] = false;
            self.st.needs_reset[c] = done;
        }
        self.observe();
    }

    /// Fill every agent's observation from its layout's sources.
    fn observe(&mut self) {
        let cfg = &self.p.setup.config;
        let ts = match self.p.split {
            Split::Train => &self.p.setup.train,
            Split::Test => &self.p.setup.test,
        };
        let bp = cfg.base_power_mva;
        let inp = self.pf.inputs();
        let devices = &self.st.devices;
        let operator = &self.st.operator;
        let shared = self.p.mode == ObservationMode::Centralized;
        for c in 0..self.p.batch {
            let next = self.st.start_row[c] + self.st.step_in_episode[c] + 1;
            let next_price = ts.at(operator.price_column, next) * operator.factor[c];
            let [s, co] = time_features(next % 24);
            let price_f = price_feature(next_price, cfg.price_scale);
            let vm = self.st.vm_held.row(c);
            let pcc = self.st.pcc_held.row(c);
            let load_mw = |l: usize| inp.load_p_mw[[c, l]] * inp.load_scaling[[c, l]];
            let n_fill = if shared { 1 } else { self.obs.len() };
            for i in 0..n_fill {
                let layout = &self.p.layouts[i];
                let mut o = self.obs[i].row_mut(c);
                for (x, src) in o.iter_mut().zip(&layout.sources) {
                    *x = match *src {
                        ObsSource::Device(d, j) => {
                            devices.observe(d, c, &mut self.dev_obs[..d.obs_dim()]);
                            self.dev_obs[j]
                        }
                        ObsSource::BusVm(b) => voltage_feature(vm[b]),
                        ObsSource::AgentLoad(a) => finite(
                            self.p.agents[a]
                                .loads
                                .iter()
                                .map(|&l| load_mw(l))
                                .sum::<f64>()
                                / bp,
                        ),
                        ObsSource::LoadP(l) => finite(load_mw(l) / bp),
                        ObsSource::PccImport(a) => finite(pcc[a] / bp),
                        ObsSource::TotalImport => finite(pcc.sum() / bp),
                        ObsSource::PriceFactor => operator.factor[c] as f32,
                        ObsSource::Price => price_f,
                        ObsSource::HourSin => s,
                        ObsSource::HourCos => co,
                    };
                }
            }
            if shared {
                let (first, rest) = self.obs.split_at_mut(1);
                for other in rest.iter_mut() {
                    other.row_mut(c).assign(&first[0].row(c));
                }
            }
        }
    }
}

/// Copy `c`'s random stream: ChaCha8 seeded with `seed`, stream `c`.
pub fn copy_rng(seed: u64, c: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(c as u64);
    r
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

fn build_layouts(
    mode: ObservationMode,
    agents: &[GridAgent],
    operator: &SystemOperator,
    live_buses: &[usize],
    plan: &Plan,
    devices: &Devices,
) -> Vec<ObservationLayout> {
    let net = &plan.net;
    let n_agents = agents.len() + operator.is_agent() as usize;
    // Loads whose power changes: profiled and non-zero.
    let profiled: Vec<usize> = devices
        .loads
        .members
        .iter()
        .map(|m| m.0)
        .filter(|&l| net.loads[l].p_mw != 0.0 && net.loads[l].in_service)
        .collect();
    let device_fields = |l: &mut ObservationLayout, a: &GridAgent| {
        for (j, d) in a.devices.iter().enumerate() {
            let (kind, cols) = match d {
                DeviceRef::Generator(_) => ("generator", DEVICE_COLUMNS[0]),
                DeviceRef::Storage(_) => ("storage", DEVICE_COLUMNS[1]),
                DeviceRef::Renewable(_) => ("renewable", DEVICE_COLUMNS[2]),
                DeviceRef::TapChanger(_) => ("tap", DEVICE_COLUMNS[3]),
                DeviceRef::Capacitor(_) => ("capacitor", DEVICE_COLUMNS[4]),
            };
            let field = format!("{}.device[{j}] {kind} [{}]", a.name, cols.join(", "));
            l.push(
                field,
                cols.iter().enumerate().map(|(k, c)| {
                    (
                        format!("{}.device[{j}] {c}", a.name),
                        ObsSource::Device(*d, k),
                    )
                }),
            );
        }
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
                "load P/base_power",
                profiled
                    .iter()
                    .map(|&x| (format!("{} P", net.loads[x].name), ObsSource::LoadP(x))),
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
