//! One step of every copy: actions are applied by `VecEnv::step`; here the
//! episode starts, the power-flow inputs, the solve with automatic control,
//! then cost, safety, reward (the terms of [`crate::env::reward`]) and the
//! observations from the layouts' source tables.

use super::{Split, VecEnv};
use crate::devices::DeviceRef;
use crate::env::observation::{finite, price_feature, time_features, voltage_feature, ObsSource};
use crate::env::reward::{self, Term, N_COST_TERMS};
use crate::error::Result;
use rand::RngExt;

impl VecEnv {
    pub(super) fn begin_episode(&mut self, c: usize) {
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
        // Autoreset clears every queue of the copy: held actions, delayed
        // actions and messages (the observation rings refill at t = 0).
        for h in &mut self.st.held {
            h.row_mut(c).fill(0.0);
        }
        for q in &mut self.st.act_lines {
            q.clear(c);
        }
        for q in &mut self.st.msg_lines {
            q.clear(c);
        }
        for m in &mut self.st.msg_held {
            m.row_mut(c).fill(0.0);
        }
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
    pub(super) fn solve_and_evaluate(&mut self) -> Result<()> {
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
        let n_agents = self.agent_reward.len();
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
            self.info.control_iterations[c] = self.control.iterations(c);
            let mut ctrl_wear = 0.0;
            let terms = &mut self.inner_terms;
            terms.fill(0.0);
            for (k, spec) in self.control.specs.iter().enumerate() {
                let m = self.control.moves(c, k);
                self.info.controller_moves[[c, k]] = m;
                let w = spec.wear_cost() * m as f64;
                ctrl_wear += w;
                if let Some(a) = spec.charge_to() {
                    terms[[a, Term::ControllerWear as usize]] += w;
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
                        DeviceRef::Generator(_) => Term::Generation,
                        DeviceRef::Storage(_) => Term::Storage,
                        DeviceRef::Renewable(_) => continue,
                        DeviceRef::TapChanger(_) | DeviceRef::Capacitor(_) => Term::Wear,
                    };
                    terms[[i, t as usize]] += devices.cost(*d, c, dt);
                }
                terms[[i, Term::Trading as usize]] = trading;
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
                    terms[[i, Term::Voltage as usize]] = v;
                    terms[[i, Term::Loading as usize]] = l;
                    terms[[i, Term::OperatorVoltage as usize]] =
                        cfg.operator_safety_weight * op_safety;
                }
                terms[[i, Term::Devices as usize]] = a.device_violation(devices, c);
            }
            if operator.is_agent() {
                let mut l = 0.0;
                if conv {
                    for &x in &operator.lines {
                        l += reward::loading_violation(res.line_loading_percent[[c, x]]);
                    }
                }
                terms[[n_grid, Term::Trading as usize]] = -revenue;
                terms[[n_grid, Term::Voltage as usize]] = op_safety;
                terms[[n_grid, Term::Loading as usize]] = l;
            }
            for i in 0..n_agents {
                let row_t = terms.row(i);
                let cost: f64 = row_t.iter().take(N_COST_TERMS).sum();
                let safety: f64 = if conv {
                    row_t.iter().skip(N_COST_TERMS).sum()
                } else {
                    cfg.convergence_failure_safety
                };
                self.inner_cost[i] = cost;
                self.inner_safety[i] = safety;
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
            // Each agent takes its grid agent's (a device agent: its coordinator's) row.
            for (e, &i) in self.p.reward_of.iter().enumerate() {
                self.rewards[[c, e]] = if is_reset {
                    0.0
                } else {
                    self.agent_reward[i] as f32
                };
                self.info.cost[[c, e]] = self.inner_cost[i];
                self.info.safety[[c, e]] = self.inner_safety[i];
                self.info
                    .terms
                    .slice_mut(ndarray::s![c, e, ..])
                    .assign(&self.inner_terms.row(i));
            }
            let done = !is_reset && self.st.step_in_episode[c] >= cfg.max_episode_steps;
            self.truncated[c] = done;
            self.terminated[c] = false;
            self.st.needs_reset[c] = done;
            let s = self.st.step_in_episode[c];
            for (e, t) in self.p.timing.iter().enumerate() {
                self.info.acts_next[[c, e]] = !done && s.is_multiple_of(t.tick_every);
            }
        }
        self.observe();
    }

    /// Fill every agent's observation: its one-step layout's sources, then
    /// (agents with an observation delay or history) through its ring.
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
        let shared = self.p.shared_obs;
        for c in 0..self.p.batch {
            let next = self.st.start_row[c] + self.st.step_in_episode[c] + 1;
            let next_price = ts.at(operator.price_column, next) * operator.factor[c];
            let [s, co] = time_features(next % 24);
            let price_f = price_feature(next_price, cfg.price_scale);
            let vm = self.st.vm_held.row(c);
            let pcc = self.st.pcc_held.row(c);
            let load_mw = |l: usize| inp.load_p_mw[[c, l]] * inp.load_scaling[[c, l]];
            let msg_held = &self.st.msg_held;
            let dev_obs = &mut self.dev_obs;
            let mut fill = |out: &mut [f32], sources: &[ObsSource]| {
                for (x, src) in out.iter_mut().zip(sources) {
                    *x = match *src {
                        ObsSource::Device(d, j) => {
                            devices.observe(d, c, &mut dev_obs[..d.obs_dim()]);
                            dev_obs[j]
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
                        ObsSource::LoadGroup(g) => finite(
                            self.p.load_groups[g]
                                .iter()
                                .map(|&l| load_mw(l))
                                .sum::<f64>()
                                / bp,
                        ),
                        ObsSource::PccImport(a) => finite(pcc[a] / bp),
                        ObsSource::TotalImport => finite(pcc.sum() / bp),
                        ObsSource::PriceFactor => operator.factor[c] as f32,
                        ObsSource::Price => price_f,
                        ObsSource::HourSin => s,
                        ObsSource::HourCos => co,
                        ObsSource::Message(u, j) => finite(msg_held[u][[c, j]]),
                    };
                }
            };
            if shared {
                let l = &self.p.base_layouts[0];
                fill(&mut self.shared_row[..l.dim()], &l.sources);
            }
            let t = self.st.step_in_episode[c];
            for (e, layout) in self.p.base_layouts.iter().enumerate() {
                let mut row = self.obs[e].row_mut(c);
                let out = row.as_slice_mut().expect("observation rows are contiguous");
                let dim = layout.dim();
                match &mut self.st.obs_hist[e] {
                    None if shared => out.copy_from_slice(&self.shared_row[..dim]),
                    None => fill(out, &layout.sources),
                    Some(h) => {
                        let base = &mut self.base_row[..dim];
                        if shared {
                            base.copy_from_slice(&self.shared_row[..dim]);
                        } else {
                            fill(base, &layout.sources);
                        }
                        h.record(c, t, base);
                        h.assemble(c, t, out);
                    }
                }
            }
        }
    }
}
