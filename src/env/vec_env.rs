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
//! agent; with device agents, each coordinator is followed by its learning
//! device agents, see [`crate::setup::agents`]), `f32` or `f64` ([`ActionScalar`]); observations are `f32 [B, dim]`
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
//! **Timing and hierarchy** ([`crate::setup::agents`]): an agent's action is
//! read on its ticks and held in between (`info.acts_next`), then delayed by
//! its `act_delay`; a coordinator's action is a message that reaches its
//! device agents after their `msg_delay`; an agent's observation is its
//! one-step layout delayed by `obs_delay` and stacked `history` deep. Every
//! queue is per copy and cleared when the copy resets.
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

use crate::agents::hierarchy::{Driver, Unit};
use crate::agents::{GridAgent, Pcc, SystemOperator};
use crate::control::ControlOptions;
use crate::devices::Devices;
use crate::env::control_glue::EnvControl;
use crate::env::observation::{build_layouts, ObservationLayout};
use crate::env::observation::{layout_from_list, stacked, Viewer};
use crate::env::reward::TERMS;
use crate::env::timing::{DelayLine, ObsHistory};
use crate::env::world::World;
use crate::error::{Error, Result};
use crate::network::Network;
use crate::powerflow::scenarios::{Scenario, ScenarioInputs};
use crate::powerflow::{
    new_backend, BackendKind, BatchResults, Plan, PowerFlow, ResultColumns, SolverOptions,
};
use crate::setup::agents::{Message, Quantity, Role, Timing};
use crate::setup::config::ObservationMode;
use crate::setup::{Setup, TimeSeries};
use ndarray::{Array1, Array2, Array3, ArrayView2};
use rand::SeedableRng;
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

/// A grid agent and `(offset, length)` slots of its device action row.
pub type ActionSlots = (usize, Vec<(usize, usize)>);

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
    /// GPU backend: chunks the batch is split into
    /// ([`SolverOptions::gpu_chunks`]; 1 by default).
    pub gpu_chunks: usize,
    /// GPU backend: host threads driving it, each with its part of the batch
    /// ([`SolverOptions::gpu_threads`]; 1 by default). The environment's own
    /// per-copy work (set-points, rewards, observations) runs on the same
    /// threads.
    pub gpu_threads: usize,
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions {
            batch: 1,
            backend: BackendKind::Cpu,
            split: Split::Train,
            observation: None,
            solver_tolerance_pu: None,
            gpu_chunks: 1,
            gpu_threads: 1,
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
    /// Control iterations of the automatic controllers this step (each is a
    /// move and a power flow; 0: the first power flow already settled, or no
    /// controllers).
    pub control_iterations: Array1<u32>,
    /// Steps each automatic controller moved this step, `[B, n_controllers]`.
    pub controller_moves: Array2<u32>,
    /// Wear cost of the automatic controllers' moves this step ($).
    pub controller_wear_cost: Array1<f64>,
    /// `[B, n_agents]`: whether the next `step` reads the agent's action for
    /// the copy (its tick is due and the copy is not about to be reset);
    /// otherwise its last action is held (see [`crate::setup::agents`]).
    pub acts_next: Array2<bool>,
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
    /// Loads of each setup load group (in service, non-zero power).
    load_groups: Vec<Vec<usize>>,
    /// Each agent's observation layout (stacked for history / obs delay).
    layouts: Vec<ObservationLayout>,
    /// Each agent's one-step layout (what one observation is made of).
    base_layouts: Vec<ObservationLayout>,
    /// Every agent has the same one-step layout (centralized): computed once per copy.
    shared_obs: bool,
    agent_names: Vec<String>,
    action_dims: Vec<usize>,
    /// Each agent's timing.
    timing: Vec<Timing>,
    /// Each agent's parent (a device agent's coordinator).
    parents: Vec<Option<String>>,
    /// Reward row (grid agent, or the operator after them) each agent takes.
    reward_of: Vec<usize>,
    /// How each grid agent's device action row is made.
    drivers: Vec<Driver>,
    /// Every device agent (learner or rule), grid agent by grid agent.
    units: Vec<Unit>,
    /// The operator's agent index when it acts.
    operator_agent: Option<usize>,
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
    /// Each agent's last chosen action `[B, dim]` (held between its ticks).
    held: Vec<Array2<f64>>,
    /// Each agent's action delay line.
    act_lines: Vec<DelayLine>,
    /// Each unit's message delay line.
    msg_lines: Vec<DelayLine>,
    /// The message each unit received on the copy's last step `[B, msg_dim]`.
    msg_held: Vec<Array2<f64>>,
    /// Each agent's observation ring (None: no delay, no history).
    obs_hist: Vec<Option<ObsHistory>>,
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
    /// One scratch per part of the batch whose actions are applied in
    /// parallel (`act::ActScratch`).
    act_scratch: Vec<act::ActScratch>,
    /// One scratch per part of the batch evaluated in parallel (`step::Scratch`).
    scratch: Vec<step::Scratch>,
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
        let plan = Arc::new(Plan::new(
            net,
            SolverOptions {
                tolerance_pu: options
                    .solver_tolerance_pu
                    .unwrap_or(cfg.solver_tolerance_pu),
                enforce_q_lims: cfg.solver_enforce_q_lims,
                gpu_chunks: options.gpu_chunks,
                gpu_threads: options.gpu_threads,
                ..SolverOptions::default()
            },
        )?);
        // Refuse a batch that cannot fit before any [B, n] array exists.
        crate::powerflow::memory::check(&plan, b, options.backend)?;
        let World {
            devices,
            agents,
            operator,
            live_buses,
            load_groups,
            controlled_taps,
            controlled_shunts,
        } = World::new(&setup, &plan, b);
        let n_ren = devices.renewables.params.len();
        let mode = options.observation.unwrap_or(cfg.observation);
        let group_names: Vec<String> = cfg.loads.iter().map(|g| g.prefix.clone()).collect();
        let layouts = build_layouts(
            mode,
            &agents,
            &operator,
            &live_buses,
            &plan,
            &load_groups,
            &group_names,
        );
        let Roster {
            drivers,
            units,
            action_dims,
            reward_of,
            base_layouts,
            operator_agent,
        } = roster(&setup, &agents, &devices, &plan, &load_groups, &layouts)?;
        let defs = &setup.agents.defs;
        let agent_names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
        let parents: Vec<Option<String>> = defs.iter().map(|d| d.parent.clone()).collect();
        let timing: Vec<Timing> = defs.iter().map(|d| d.timing).collect();
        let layouts: Vec<ObservationLayout> = base_layouts
            .iter()
            .zip(defs)
            .map(|(l, d)| stacked(l, d.timing.obs_delay, d.history))
            .collect();
        let shared_obs =
            base_layouts.len() > 1 && base_layouts.iter().all(|l| *l == base_layouts[0]);
        let n_agents = agent_names.len();
        let n_inner = agents.len() + operator.is_agent() as usize;
        let n_ctrl = setup.controllers.len();
        let control = EnvControl::new(
            net,
            setup.controllers.clone(),
            b,
            ControlOptions {
                max_iterations: cfg.control_max_iterations,
                screening_tolerance_pu: cfg.control_screening_tolerance_pu,
                predict_margin_pu: cfg.control_prediction_margin_pu,
            },
        )?;
        let (mut pf, backend) = new_backend(options.backend, plan.clone(), b)?;
        pf.limit_results(Some(step_columns(&agents, &operator, net.buses.len())));
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
        let max_action = agents
            .iter()
            .map(|a| a.action_dim)
            .chain(action_dims.iter().copied())
            .max()
            .unwrap_or(0)
            .max(1);
        let max_msg = drivers
            .iter()
            .map(|d| match d {
                Driver::Hier { msg_dim, .. } => *msg_dim,
                Driver::Flat(_) => 0,
            })
            .max()
            .unwrap_or(0);
        let max_base = base_layouts.iter().map(|l| l.dim()).max().unwrap_or(0);
        let held = action_dims.iter().map(|&d| Array2::zeros((b, d))).collect();
        let act_lines = action_dims
            .iter()
            .zip(&timing)
            .map(|(&d, t)| DelayLine::new(b, t.act_delay, d))
            .collect();
        let msg_lines = units
            .iter()
            .map(|u| DelayLine::new(b, u.msg_delay, u.msg_dim))
            .collect();
        let msg_held = units
            .iter()
            .map(|u| Array2::zeros((b, u.msg_dim)))
            .collect();
        let obs_hist = base_layouts
            .iter()
            .zip(defs)
            .map(|(l, d)| {
                (d.timing.obs_delay > 0 || d.history > 1)
                    .then(|| ObsHistory::new(b, d.timing.obs_delay, d.history, l.dim()))
            })
            .collect();
        let eff = action_dims.iter().map(|&d| vec![0.0; d]).collect();
        Ok(VecEnv {
            p: Params {
                split: options.split,
                mode,
                batch: b,
                backend,
                plan,
                agents,
                live_buses,
                load_groups,
                layouts,
                base_layouts,
                shared_obs,
                agent_names,
                action_dims,
                timing,
                parents,
                reward_of,
                drivers,
                units,
                operator_agent,
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
                held,
                act_lines,
                msg_lines,
                msg_held,
                obs_hist,
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
                acts_next: Array2::from_elem((b, n_agents), false),
            },
            reset_list: Vec::with_capacity(b),
            act_scratch: vec![act::ActScratch {
                renewable_profile: vec![0.0; n_ren],
                action_row: vec![0.0; max_action],
                eff,
                msg_row: vec![0.0; max_msg],
                unit_msg: vec![0.0; max_msg.max(max_action)],
            }],
            scratch: vec![step::Scratch::new(n_inner, max_base)],
        })
    }

    /// Number of copies.
    pub fn batch(&self) -> usize {
        self.p.batch
    }
    /// Agent names in action order (grid agents, each coordinator followed by
    /// its learning device agents `MG1/ESS1`, then `system_operator` if it acts).
    pub fn agent_names(&self) -> &[String] {
        &self.p.agent_names
    }
    /// Each agent's parent: a device agent's coordinator (named whether or
    /// not the coordinator learns); None for top-level agents.
    pub fn agent_parents(&self) -> &[Option<String>] {
        &self.p.parents
    }
    /// Each agent's grid agent (its own, or a device agent's coordinator's);
    /// None for the system operator. Indexes `info.pcc_import_mw`'s columns.
    pub fn agent_grid(&self) -> Vec<Option<usize>> {
        let n = self.p.agents.len();
        self.p
            .reward_of
            .iter()
            .map(|&i| (i < n).then_some(i))
            .collect()
    }
    /// Each agent's timing (tick, observation and action delay).
    pub fn agent_timing(&self) -> &[Timing] {
        &self.p.timing
    }
    /// For agent `i` whose action is device set-points: its grid agent and
    /// the `(offset, length)` slots of that grid agent's device action row
    /// (see [`GridAgent::action_offsets`]) its action is made of, in order.
    /// None for a coordinator with a vector message and the system operator.
    pub fn device_action_slots(&self, i: usize) -> Option<ActionSlots> {
        match self.p.setup.agents.defs.get(i)?.role {
            Role::Grid(g) => Some((g, vec![(0, self.p.agents[g].action_dim)])),
            Role::Coordinator(g) => match &self.p.drivers[g] {
                Driver::Hier {
                    message: Message::Setpoints,
                    ..
                } => Some((g, vec![(0, self.p.agents[g].action_dim)])),
                _ => None,
            },
            Role::Device { grid, .. } => {
                let u = self.p.units.iter().find(|u| u.agent == Some(i))?;
                Some((grid, u.slots.iter().map(|&(o, l, _)| (o, l)).collect()))
            }
            Role::Operator => None,
        }
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
    /// Power-flow work of the backend so far (copies solved, FDPF iterations;
    /// `None` where the backend does not count it).
    pub fn power_flow_work(&self) -> Option<crate::powerflow::SolveWork> {
        self.pf.work()
    }
    /// Host time of the backend's solves so far, by phase (`None` where the
    /// backend does not count it; the GPU backend does).
    pub fn power_flow_host_time(&self) -> Option<crate::powerflow::HostTime> {
        self.pf.host_time()
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
                gen_p_mw: r(&i.gen_p_mw),
                gen_vm_pu: r(&i.gen_vm_pu),
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
        self.act_solve_and_evaluate::<f32>(None)
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
        self.act_solve_and_evaluate(Some(actions))
    }
}

/// Copy `c`'s random stream: ChaCha8 seeded with `seed`, stream `c`.
pub fn copy_rng(seed: u64, c: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(c as u64);
    r
}

mod act;
mod step;

/// The agents of a setup made concrete for the batch.
struct Roster {
    drivers: Vec<Driver>,
    units: Vec<Unit>,
    action_dims: Vec<usize>,
    reward_of: Vec<usize>,
    base_layouts: Vec<ObservationLayout>,
    operator_agent: Option<usize>,
}

/// Resolve the setup's agents ([`crate::setup::agents`]) against the world:
/// action lengths, device slots, message lengths, one-step observation
/// layouts (`defaults[i]`: grid agent `i`'s layout of the mode, then the
/// operator's). Errors name the agent and the quantity at fault.
fn roster(
    setup: &Setup,
    agents: &[GridAgent],
    devices: &Devices,
    plan: &Plan,
    load_groups: &[Vec<usize>],
    defaults: &[ObservationLayout],
) -> Result<Roster> {
    use crate::devices::DeviceRef;
    let net = &plan.net;
    let n_grid = agents.len();
    let bus_of = |d: DeviceRef| match d {
        DeviceRef::Generator(k) => net.sgens[devices.generators.sgen[k]].bus,
        DeviceRef::Renewable(k) => net.sgens[devices.renewables.sgen[k]].bus,
        DeviceRef::Storage(k) => net.storages[devices.storages.element[k]].bus,
        DeviceRef::TapChanger(k) => net.trafos[devices.taps.trafo[k]].lv_bus,
        DeviceRef::Capacitor(k) => net.shunts[devices.capacitors.shunt[k]].bus,
    };
    let defs = &setup.agents.defs;
    let agent_of = |role: Role| defs.iter().position(|d| d.role == role);
    // Units, grid agent by grid agent.
    let mut units = Vec::new();
    let mut drivers = Vec::new();
    for (g, a) in agents.iter().enumerate() {
        let Some(h) = &setup.agents.hierarchies[g] else {
            drivers.push(Driver::Flat(
                agent_of(Role::Grid(g)).expect("a flat grid agent is an agent"),
            ));
            continue;
        };
        let first = units.len();
        let mut claimed = vec![false; a.devices.len()];
        for (ui, u) in h.units.iter().enumerate() {
            let slots: Vec<(usize, usize, DeviceRef)> = u
                .devices
                .iter()
                .map(|&j| {
                    claimed[j] = true;
                    (a.action_offsets[j], a.devices[j].action_dim(), a.devices[j])
                })
                .collect();
            let msg_dim = match h.message {
                Message::Setpoints => slots.iter().map(|s| s.1).sum(),
                Message::Vector(k) => k,
            };
            units.push(Unit {
                name: u.name.clone(),
                slots,
                policy: u.policy,
                msg_dim,
                msg_delay: u.msg_delay,
                agent: agent_of(Role::Device { grid: g, unit: ui }),
            });
        }
        drivers.push(Driver::Hier {
            coordinator: agent_of(Role::Coordinator(g)),
            message: h.message,
            msg_dim: match h.message {
                Message::Setpoints => a.action_dim,
                Message::Vector(k) => k,
            },
            units: first..units.len(),
            direct: (0..a.devices.len())
                .filter(|&j| !claimed[j])
                .map(|j| (a.action_offsets[j], a.devices[j].action_dim()))
                .collect(),
        });
    }
    let mut action_dims = Vec::new();
    let mut reward_of = Vec::new();
    let mut base_layouts = Vec::new();
    let mut operator_agent = None;
    for (e, d) in defs.iter().enumerate() {
        let (dim, inner, viewer) = match d.role {
            Role::Grid(g) => (agents[g].action_dim, g, None),
            Role::Coordinator(g) => {
                let dim = match &drivers[g] {
                    Driver::Hier { msg_dim, .. } => *msg_dim,
                    Driver::Flat(_) => agents[g].action_dim,
                };
                (dim, g, None)
            }
            Role::Device { grid, .. } => {
                let u = units
                    .iter()
                    .position(|u| u.agent == Some(e))
                    .expect("every learning unit was made");
                let unit = &units[u];
                let devs: Vec<(usize, DeviceRef)> = unit
                    .slots
                    .iter()
                    .map(|&(off, _, dev)| {
                        let j = agents[grid]
                            .action_offsets
                            .iter()
                            .position(|&o| o == off)
                            .expect("slot of the agent's row");
                        (j, dev)
                    })
                    .collect();
                let mut buses: Vec<usize> = devs.iter().map(|&(_, dev)| bus_of(dev)).collect();
                buses.sort_unstable();
                buses.dedup();
                let dim = unit.slots.iter().map(|s| s.1).sum();
                (
                    dim,
                    grid,
                    Some(Viewer {
                        name: &d.name,
                        grid,
                        devices: devs,
                        buses,
                        message: Some((u, unit.msg_dim)),
                    }),
                )
            }
            Role::Operator => {
                operator_agent = Some(e);
                (1, n_grid, None)
            }
        };
        action_dims.push(dim);
        reward_of.push(inner);
        let viewer = viewer.unwrap_or_else(|| Viewer {
            name: &d.name,
            grid: inner.min(n_grid.saturating_sub(1)),
            devices: agents
                .get(inner)
                .map(|a| a.devices.iter().copied().enumerate().collect())
                .unwrap_or_default(),
            buses: agents
                .get(inner)
                .map(|a| a.buses.clone())
                .unwrap_or_default(),
            message: None,
        });
        let device_default = [
            Quantity::Devices,
            Quantity::Buses,
            Quantity::Message,
            Quantity::Price,
            Quantity::Time,
        ];
        let layout = match (&d.observe, d.role) {
            (Some(list), _) => layout_from_list(list, &viewer, agents, plan, load_groups)?,
            (None, Role::Device { .. }) => {
                layout_from_list(&device_default, &viewer, agents, plan, load_groups)?
            }
            (None, _) => defaults[inner].clone(),
        };
        base_layouts.push(layout);
    }
    Ok(Roster {
        drivers,
        units,
        action_dims,
        reward_of,
        base_layouts,
        operator_agent,
    })
}

/// The result columns a step reads (`step::Ctx::evaluate`, through
/// [`PowerFlow::limited_results`]): every bus voltage, the loading of the
/// agents' and the operator's lines and of the agents' trafos, the agents'
/// PCC flows.
fn step_columns(agents: &[GridAgent], operator: &SystemOperator, n_bus: usize) -> ResultColumns {
    let sorted = |v: Vec<usize>| {
        let mut v = v;
        v.sort_unstable();
        v.dedup();
        v
    };
    let lines = agents
        .iter()
        .flat_map(|a| a.lines.iter())
        .chain(&operator.lines);
    let trafos = agents.iter().flat_map(|a| a.trafos.iter());
    let mut tables = vec![
        ("vm_pu", (0..n_bus).collect()),
        ("line_loading_percent", sorted(lines.copied().collect())),
        ("trafo_loading_percent", sorted(trafos.copied().collect())),
    ];
    let (mut pcc_t, mut pcc_l, mut pcc_e) = (vec![], vec![], vec![]);
    for a in agents {
        match a.pcc {
            Some(Pcc::Trafo(t)) => pcc_t.push(t),
            Some(Pcc::Line(l)) => pcc_l.push(l),
            Some(Pcc::ExtGrid(e)) => pcc_e.push(e),
            None => {}
        }
    }
    tables.push(("trafo_p_hv_mw", sorted(pcc_t)));
    tables.push(("line_p_from_mw", sorted(pcc_l)));
    tables.push(("ext_grid_p_mw", sorted(pcc_e)));
    ResultColumns { tables }
}
