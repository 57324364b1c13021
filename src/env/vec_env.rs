//! The vector environment: `B` copies of a setup stepped in lockstep over one
//! batched power flow.
//!
//! **Arrays.** Actions and observations are `f32`, one contiguous row-major
//! `[B, dim]` array per agent (agents: the grid agents in config order, then
//! the system operator if it is an agent). Rewards are `f32 [B, n_agents]`;
//! terminated / truncated are `bool [B]`; the info arrays are `f64`. All
//! buffers are made once and overwritten by every step, so bindings can hand
//! them out without copying.
//!
//! **Actions** are in `[-1, 1]` (clipped) and scaled per device as listed in
//! [`crate::devices`]; integers (taps, capacitor steps) are rounded. NaN,
//! infinite or wrongly shaped actions are rejected before any state changes.
//!
//! **Time.** A copy's episode starts at 00:00 of a day (row `24·day` of its
//! split's CSV); `reset` solves that hour with the devices at their initial
//! state; step `k` applies the actions to hour `start + k`. After
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

use crate::agents::{GridAgent, Pcc, SystemOperator};
use crate::devices::{
    Capacitors, DeviceRef, Devices, GeneratorParams, Generators, LoadGroups, RenewableParams,
    Renewables, StorageParams, Storages, TapChangers,
};
use crate::env::observation::{finite, time_features, voltage_feature, ObservationLayout};
use crate::env::reward;
use crate::error::{Error, Result};
use crate::network::Network;
use crate::powerflow::admittance::trafo_branch;
use crate::powerflow::scenarios::{Scenario, ScenarioInputs};
use crate::powerflow::{new_backend, BackendKind, BatchResults, Plan, PowerFlow, SolverOptions};
use crate::setup::config::{DeviceConfig, ObservationMode, PccElement};
use crate::setup::{Setup, TimeSeries};
use ndarray::{Array1, Array2, ArrayView2};
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
    /// Whether the copy's power flow converged.
    pub converged: Array1<bool>,
    /// Whether the copy was reset by this call (its reward is 0).
    pub reset: Array1<bool>,
    /// Import at each grid agent's PCC in MW (negative = export), `[B, n_grid_agents]`.
    pub pcc_import_mw: Array2<f64>,
    /// Price this hour in $/MWh (after the operator's factor).
    pub price: Array1<f64>,
    /// Any solved bus of the whole network outside the voltage band.
    pub voltage_violation: Array1<bool>,
    /// `Σ` voltage-band violation over every solved bus of the network
    /// (the DSO feeder included, whether or not an agent owns it).
    pub network_voltage_safety: Array1<f64>,
    /// Voltage-band violation over the system operator's buses.
    pub operator_safety: Array1<f64>,
    /// Hour (row of the split's CSV) the copy is at.
    pub hour: Array1<usize>,
}

/// The vector environment.
pub struct VecEnv {
    setup: Setup,
    split: Split,
    mode: ObservationMode,
    batch: usize,
    pf: Box<dyn PowerFlow>,
    backend: String,
    plan: Arc<Plan>,
    devices: Devices,
    agents: Vec<GridAgent>,
    operator: SystemOperator,
    live_buses: Vec<usize>,
    layouts: Vec<ObservationLayout>,
    agent_names: Vec<String>,
    action_dims: Vec<usize>,
    // per-copy time and randomness
    start_row: Vec<usize>,
    step_in_episode: Vec<usize>,
    episodes: Vec<u64>,
    rngs: Vec<ChaCha8Rng>,
    needs_reset: Vec<bool>,
    start_slots: usize,
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
        let mut tap_r = Vec::new();
        let mut tap_w = Vec::new();
        let mut cap_e = Vec::new();
        let mut cap_max = Vec::new();
        let mut cap_init = Vec::new();
        let mut cap_w = Vec::new();
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
                        tap_r.push((tap.min, tap.max, tap.pos.round().clamp(tap.min, tap.max)));
                        tap_w.push(t.wear_cost);
                        DeviceRef::TapChanger(tap_e.len() - 1)
                    }
                    DeviceConfig::Capacitor(c) => {
                        let s = &net.shunts[e];
                        cap_e.push(e);
                        cap_max.push(s.max_step as f64);
                        cap_init.push(s.step.round().clamp(0.0, s.max_step as f64));
                        cap_w.push(c.wear_cost);
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
            taps: TapChangers::new(tap_e, tap_r, tap_w, b),
            capacitors: Capacitors::new(cap_e, cap_max, cap_init, cap_w, b),
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
                    let controlled = devices.taps.trafo.contains(&k);
                    let fixed = (!controlled).then(|| {
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
        let layouts = build_layouts(mode, &agents, &operator, &live_buses, net);
        let mut agent_names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
        let mut action_dims: Vec<usize> = agents.iter().map(|a| a.action_dim).collect();
        if operator.is_agent() {
            agent_names.push("system_operator".into());
            action_dims.push(1);
        }
        let n_agents = agent_names.len();
        let (pf, backend) = new_backend(options.backend, plan.clone(), b)?;
        let hours = match options.split {
            Split::Train => setup.train.hours,
            Split::Test => setup.test.hours,
        };
        let start_slots = (hours - 1 - cfg.max_episode_steps) / 24 + 1;
        let n_grid = agents.len();
        let obs = layouts
            .iter()
            .map(|l| Array2::zeros((b, l.dim())))
            .collect();
        Ok(VecEnv {
            split: options.split,
            mode,
            batch: b,
            pf,
            backend,
            plan,
            devices,
            agents,
            operator,
            live_buses,
            layouts,
            agent_names,
            action_dims,
            start_row: vec![0; b],
            step_in_episode: vec![0; b],
            episodes: vec![0; b],
            rngs: (0..b).map(|c| copy_rng(0, c)).collect(),
            needs_reset: vec![true; b],
            start_slots,
            obs,
            rewards: Array2::zeros((b, n_agents)),
            terminated: Array1::from_elem(b, false),
            truncated: Array1::from_elem(b, false),
            info: StepInfo {
                cost: Array2::zeros((b, n_agents)),
                safety: Array2::zeros((b, n_agents)),
                converged: Array1::from_elem(b, false),
                reset: Array1::from_elem(b, false),
                pcc_import_mw: Array2::zeros((b, n_grid)),
                price: Array1::zeros(b),
                voltage_violation: Array1::from_elem(b, false),
                network_voltage_safety: Array1::zeros(b),
                operator_safety: Array1::zeros(b),
                hour: Array1::zeros(b),
            },
            reset_list: Vec::with_capacity(b),
            renewable_profile: vec![0.0; n_ren],
            agent_reward: vec![0.0; n_agents],
            setup,
        })
    }

    /// Number of copies.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Agent names (grid agents, then `system_operator` if it acts).
    pub fn agent_names(&self) -> &[String] {
        &self.agent_names
    }
    /// Action length of each agent.
    pub fn action_dims(&self) -> &[usize] {
        &self.action_dims
    }
    /// Observation length of each agent.
    pub fn obs_dims(&self) -> Vec<usize> {
        self.layouts.iter().map(|l| l.dim()).collect()
    }
    /// Observation layout of agent `i`.
    pub fn layout(&self, i: usize) -> &ObservationLayout {
        &self.layouts[i]
    }
    /// Observation mode.
    pub fn observation_mode(&self) -> ObservationMode {
        self.mode
    }
    /// Which backend solves the power flow, and why.
    pub fn backend(&self) -> &str {
        &self.backend
    }
    /// The setup.
    pub fn setup(&self) -> &Setup {
        &self.setup
    }
    /// The network as solved (with the setup's added elements).
    pub fn network(&self) -> &Network {
        &self.plan.net
    }
    /// The grid agents.
    pub fn agents(&self) -> &[GridAgent] {
        &self.agents
    }
    /// Device state.
    pub fn devices(&self) -> &Devices {
        &self.devices
    }
    /// The system operator.
    pub fn operator(&self) -> &SystemOperator {
        &self.operator
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
    /// Power-flow results of the last call.
    pub fn power_flow(&self) -> &BatchResults {
        self.pf.results()
    }
    /// Steps taken in each copy's current episode.
    pub fn steps_in_episode(&self) -> &[usize] {
        &self.step_in_episode
    }
    /// Current CSV row of each copy.
    pub fn hour(&self, c: usize) -> usize {
        self.start_row[c] + self.step_in_episode[c]
    }

    /// The power-flow set-points of copy `c` in the last solve, as a `pf`
    /// scenario (solve it with `powergrid pf` on [`VecEnv::network`]).
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
        match self.split {
            Split::Train => &self.setup.train,
            Split::Test => &self.setup.test,
        }
    }

    /// Reset every copy: reseed copy `c`'s stream from `(seed, c)`, pick its
    /// start day, reset its devices, solve, and write first observations.
    pub fn reset(&mut self, seed: u64) -> Result<()> {
        for c in 0..self.batch {
            self.rngs[c] = copy_rng(seed, c);
            self.episodes[c] = 0;
            self.needs_reset[c] = true;
        }
        self.reset_list.clear();
        for c in 0..self.batch {
            self.begin_episode(c);
            self.reset_list.push(c);
        }
        self.solve_and_evaluate()
    }

    /// Step every copy with `actions[i]` of shape `[B, action_dims[i]]`.
    /// Copies that ended on the previous call are reset instead (NEXT_STEP);
    /// their actions are ignored but must still be finite.
    /// Every action is checked before anything changes: on an error (wrong
    /// number of agents, wrong shape, NaN or infinite value) no copy's state
    /// has changed.
    pub fn step(&mut self, actions: &[ArrayView2<f32>]) -> Result<()> {
        if actions.len() != self.action_dims.len() {
            return Err(Error::InvalidInput(format!(
                "expected actions for {} agents ({:?}), got {}",
                self.action_dims.len(),
                self.agent_names,
                actions.len()
            )));
        }
        for (i, a) in actions.iter().enumerate() {
            let want = (self.batch, self.action_dims[i]);
            if a.dim() != want {
                return Err(Error::InvalidInput(format!(
                    "actions of agent {i} ({}) have shape {:?}, expected {want:?}",
                    self.agent_names[i],
                    a.dim()
                )));
            }
            if let Some(((c, j), v)) = a.indexed_iter().find(|(_, v)| !v.is_finite()) {
                return Err(Error::InvalidInput(format!(
                    "action [{c}, {j}] of agent {i} ({}) is {v}",
                    self.agent_names[i]
                )));
            }
        }
        self.reset_list.clear();
        let dt = self.setup.config.dt_h;
        let n_grid = self.agents.len();
        for c in 0..self.batch {
            if self.needs_reset[c] {
                self.begin_episode(c);
                self.reset_list.push(c);
                continue;
            }
            self.step_in_episode[c] += 1;
            let row = self.start_row[c] + self.step_in_episode[c];
            let ts = match self.split {
                Split::Train => &self.setup.train,
                Split::Test => &self.setup.test,
            };
            for (k, p) in self.devices.renewables.params.iter().enumerate() {
                self.renewable_profile[k] = ts.at(p.profile_column, row);
            }
            for (i, agent) in self.agents.iter().enumerate() {
                let a = actions[i].row(c);
                match a.as_slice() {
                    Some(s) => agent.apply(&mut self.devices, c, s, dt, &self.renewable_profile),
                    None => {
                        let v = a.to_vec();
                        agent.apply(&mut self.devices, c, &v, dt, &self.renewable_profile)
                    }
                }
            }
            if self.operator.is_agent() {
                self.operator.apply(c, actions[n_grid][[c, 0]]);
            }
        }
        self.solve_and_evaluate()
    }

    fn begin_episode(&mut self, c: usize) {
        let slot = match self.split {
            Split::Train => self.rngs[c].random_range(0..self.start_slots),
            Split::Test => ((self.episodes[c] as usize) * self.batch + c) % self.start_slots,
        };
        self.episodes[c] += 1;
        self.start_row[c] = 24 * slot;
        self.step_in_episode[c] = 0;
        self.needs_reset[c] = false;
        self.devices.reset_copy(c);
        self.operator.reset_copy(c);
        let row = self.start_row[c];
        for k in 0..self.devices.renewables.params.len() {
            let v = self
                .series()
                .at(self.devices.renewables.params[k].profile_column, row);
            self.devices.renewables.set_uncurtailed(c, k, v);
        }
    }

    /// Write set-points, solve, then cost, safety, reward, observations, flags.
    fn solve_and_evaluate(&mut self) -> Result<()> {
        self.write_inputs();
        if !self.reset_list.is_empty() {
            self.pf.reset_start(&self.reset_list);
        }
        self.pf.solve()?;
        self.info.reset.fill(false);
        for &c in &self.reset_list {
            self.info.reset[c] = true;
        }
        self.evaluate();
        Ok(())
    }

    fn write_inputs(&mut self) {
        let ts = match self.split {
            Split::Train => &self.setup.train,
            Split::Test => &self.setup.test,
        };
        let d = &self.devices;
        let inp = self.pf.inputs_mut();
        for c in 0..self.batch {
            let row = self.start_row[c] + self.step_in_episode[c];
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
    }

    fn evaluate(&mut self) {
        let cfg = &self.setup.config;
        let ts = match self.split {
            Split::Train => &self.setup.train,
            Split::Test => &self.setup.test,
        };
        let (v_min, v_max) = (cfg.voltage_band[0], cfg.voltage_band[1]);
        let dt = cfg.dt_h;
        let net = &self.plan.net;
        let res = self.pf.results();
        let inp = self.pf.inputs();
        let n_grid = self.agents.len();
        let n_agents = self.agent_names.len();
        let bp = cfg.base_power_mva;
        for c in 0..self.batch {
            let row = self.start_row[c] + self.step_in_episode[c];
            let conv = res.converged[c];
            let price = ts.at(self.operator.price_column, row) * self.operator.factor[c];
            let vm = res.vm_pu.row(c);
            let mut revenue = 0.0;
            for (i, a) in self.agents.iter().enumerate() {
                let import = match &a.pcc {
                    Some(p) if conv => p.import_mw(net, inp, res, c),
                    _ => 0.0,
                };
                self.info.pcc_import_mw[[c, i]] = import;
                let trading = reward::trading_cost(import, price, self.operator.sell_discount, dt);
                revenue += trading;
                let cost = a.device_cost(&self.devices, c, dt) + trading;
                let mut safety = a.device_violation(&self.devices, c);
                for &b in &a.buses {
                    safety += reward::voltage_violation(vm[b], v_min, v_max);
                }
                for &l in &a.lines {
                    safety += reward::loading_violation(res.line_loading_percent[[c, l]]);
                }
                for &t in &a.trafos {
                    safety += reward::loading_violation(res.trafo_loading_percent[[c, t]]);
                }
                self.info.cost[[c, i]] = cost;
                self.info.safety[[c, i]] = safety;
            }
            let mut op_safety = 0.0;
            for &b in &self.operator.buses {
                op_safety += reward::voltage_violation(vm[b], v_min, v_max);
            }
            self.info.operator_safety[c] = op_safety;
            if self.operator.is_agent() {
                let mut s = op_safety;
                for &l in &self.operator.lines {
                    s += reward::loading_violation(res.line_loading_percent[[c, l]]);
                }
                self.info.cost[[c, n_grid]] = -revenue;
                self.info.safety[[c, n_grid]] = s;
            }
            let mut net_v = 0.0;
            let mut any = false;
            for &b in &self.live_buses {
                let v = reward::voltage_violation(vm[b], v_min, v_max);
                net_v += v;
                any |= v > 0.0;
            }
            self.info.network_voltage_safety[c] = net_v;
            self.info.voltage_violation[c] = any || !conv;
            self.info.converged[c] = conv;
            self.info.price[c] = price;
            self.info.hour[c] = row;
            for i in 0..n_agents {
                if !conv {
                    self.info.safety[[c, i]] = cfg.convergence_failure_safety;
                }
                self.agent_reward[i] = if conv {
                    reward::reward(
                        self.info.cost[[c, i]],
                        self.info.safety[[c, i]],
                        cfg.penalty,
                    )
                } else {
                    cfg.convergence_failure_reward
                };
            }
            if cfg.share_reward {
                let m = self.agent_reward.iter().sum::<f64>() / n_agents as f64;
                self.agent_reward.iter_mut().for_each(|r| *r = m);
            }
            let is_reset = self.info.reset[c];
            for i in 0..n_agents {
                self.rewards[[c, i]] = if is_reset {
                    0.0
                } else {
                    self.agent_reward[i] as f32
                };
            }
            let done = !is_reset && self.step_in_episode[c] >= cfg.max_episode_steps;
            self.truncated[c] = done;
            self.terminated[c] = false;
            self.needs_reset[c] = done;

            // observations
            let [s, co] = time_features(row % 24);
            let price_f = finite(price / cfg.price_scale);
            let load_mw = |l: usize| inp.load_p_mw[[c, l]] * inp.load_scaling[[c, l]];
            match self.mode {
                ObservationMode::Distributed => {
                    for (i, a) in self.agents.iter().enumerate() {
                        let mut o = self.obs[i].row_mut(c);
                        let o = o.as_slice_mut().expect("standard layout");
                        let mut k = 0;
                        for d in &a.devices {
                            let n = d.obs_dim();
                            self.devices.observe(*d, c, &mut o[k..k + n]);
                            k += n;
                        }
                        for &b in &a.buses {
                            o[k] = voltage_feature(vm[b]);
                            k += 1;
                        }
                        o[k] = finite(a.loads.iter().map(|&l| load_mw(l)).sum::<f64>() / bp);
                        o[k + 1] = finite(self.info.pcc_import_mw[[c, i]] / bp);
                        o[k + 2] = price_f;
                        o[k + 3] = s;
                        o[k + 4] = co;
                    }
                    if self.operator.is_agent() {
                        let mut o = self.obs[n_grid].row_mut(c);
                        let o = o.as_slice_mut().expect("standard layout");
                        o[0] = self.operator.factor[c] as f32;
                        let mut k = 1;
                        for &b in &self.operator.buses {
                            o[k] = voltage_feature(vm[b]);
                            k += 1;
                        }
                        let total: f64 = (0..n_grid).map(|i| self.info.pcc_import_mw[[c, i]]).sum();
                        o[k] = finite(total / bp);
                        o[k + 1] = price_f;
                        o[k + 2] = s;
                        o[k + 3] = co;
                    }
                }
                ObservationMode::Centralized => {
                    let (first, rest) = self.obs.split_at_mut(1);
                    let mut o0 = first[0].row_mut(c);
                    let o = o0.as_slice_mut().expect("standard layout");
                    let mut k = 0;
                    for &b in &self.live_buses {
                        o[k] = voltage_feature(vm[b]);
                        k += 1;
                    }
                    for a in &self.agents {
                        for d in &a.devices {
                            let n = d.obs_dim();
                            self.devices.observe(*d, c, &mut o[k..k + n]);
                            k += n;
                        }
                    }
                    for l in 0..net.loads.len() {
                        o[k] = finite(load_mw(l) / bp);
                        k += 1;
                    }
                    for i in 0..n_grid {
                        o[k] = finite(self.info.pcc_import_mw[[c, i]] / bp);
                        k += 1;
                    }
                    o[k] = self.operator.factor[c] as f32;
                    o[k + 1] = price_f;
                    o[k + 2] = s;
                    o[k + 3] = co;
                    for other in rest.iter_mut() {
                        let mut r = other.row_mut(c);
                        r.as_slice_mut()
                            .expect("standard layout")
                            .copy_from_slice(o);
                    }
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

fn build_layouts(
    mode: ObservationMode,
    agents: &[GridAgent],
    operator: &SystemOperator,
    live_buses: &[usize],
    net: &Network,
) -> Vec<ObservationLayout> {
    let n_agents = agents.len() + operator.is_agent() as usize;
    let device_fields = |l: &mut ObservationLayout, a: &GridAgent| {
        for (j, d) in a.devices.iter().enumerate() {
            let kind = match d {
                DeviceRef::Generator(_) => "generator [P/p_max, Q/s_rated]",
                DeviceRef::Storage(_) => "storage [soc, P/p_max]",
                DeviceRef::Renewable(_) => "renewable [available/capacity, P/capacity, Q/s_rated]",
                DeviceRef::TapChanger(_) => "tap [2(tap-min)/(max-min)-1]",
                DeviceRef::Capacitor(_) => "capacitor [step/max_step]",
            };
            l.push(format!("{}.device[{j}] {kind}", a.name), d.obs_dim());
        }
    };
    let tail = |l: &mut ObservationLayout| {
        l.push("price/price_scale", 1);
        l.push("sin(2pi hour/24)", 1);
        l.push("cos(2pi hour/24)", 1);
    };
    match mode {
        ObservationMode::Distributed => {
            let mut out = Vec::new();
            for a in agents {
                let mut l = ObservationLayout::default();
                device_fields(&mut l, a);
                l.push("bus (vm_pu-1)/0.05", a.buses.len());
                l.push("load P/base_power", 1);
                l.push("pcc import/base_power", 1);
                tail(&mut l);
                out.push(l);
            }
            if operator.is_agent() {
                let mut l = ObservationLayout::default();
                l.push("price factor", 1);
                l.push("bus (vm_pu-1)/0.05", operator.buses.len());
                l.push("total pcc import/base_power", 1);
                tail(&mut l);
                out.push(l);
            }
            out
        }
        ObservationMode::Centralized => {
            let mut l = ObservationLayout::default();
            l.push("bus (vm_pu-1)/0.05", live_buses.len());
            for a in agents {
                device_fields(&mut l, a);
            }
            l.push("load P/base_power", net.loads.len());
            l.push("pcc import/base_power", agents.len());
            l.push("price factor", 1);
            tail(&mut l);
            vec![l; n_agents]
        }
    }
}
