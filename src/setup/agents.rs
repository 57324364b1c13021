//! The agents of a setup as the environment exposes them: the hierarchy
//! (coordinators and device agents), each agent's timing, observation history
//! and visibility, resolved once from `config.yml` and checked by name.
//!
//! **Hierarchy.** A grid agent with `device_agents` is a *coordinator*:
//!
//! ```yaml
//! agents:
//!   - name: MG1
//!     message: setpoints          # or { vector: 2 }
//!     learner: true               # false: the coordinator sends the zero message
//!     devices: [ ... ]
//!     device_agents:
//!       - { name: ESS1, devices: ["MG1 ess_1"], policy: learner, timing: { msg_delay: 1 } }
//! ```
//!
//! - `message: setpoints`: the coordinator's action is every device's action
//!   (the flat grid agent's action, device order); device agent `u` receives
//!   its devices' slice. Devices in no device agent apply the set-points
//!   directly.
//! - `message: { vector: k }`: the coordinator's action is a free `k`-vector
//!   that every device agent receives whole. Devices in no device agent hold
//!   (zero action).
//! - Device agent `policy`: `learner` (its own action drives its devices;
//!   the received message is in its observation), `pass_through` (applies the
//!   received set-points; needs `setpoints`) or `proportional` (needs a
//!   vector: `m = [p, q]`, `q = 0` when `k = 1`; every device takes the same
//!   share of its own range: generator `[p, q]`, storage `[−p]` (p > 0
//!   discharges), solar/wind `[min(p, 0), q]` (p < 0 curtails), tap changer
//!   and capacitor hold).
//! - Agents (what receives actions and returns observations and rewards), in
//!   order: per grid agent its coordinator (if it learns) then its learning
//!   device agents in config order, then `system_operator` if it acts. A
//!   device agent is named `<coordinator>/<name>` (e.g. `MG1/ESS1`) and its
//!   parent is the coordinator's name. A device agent's reward, cost, safety
//!   and terms are its coordinator's (one team per microgrid).
//! - The hierarchy is two levels by construction (device agents are listed
//!   under their coordinator), so it cannot have a cycle; a device named by
//!   two device agents, or not among its coordinator's devices, is an error.
//!
//! **Timing** (`timing:`, whole environment steps, per agent):
//! `tick_every` n ≥ 1 (acts on steps 1, 1 + n, 1 + 2n, … of an episode and
//! holds its last action in between; `info.acts_next` says who acts on the
//! next step), `obs_delay` d (it sees the observation of step `t − d`, the
//! episode's first observation while `t < d`), `act_delay` d (the action it
//! gives on step `t` takes effect on step `t + d`; zero, i.e. hold, before),
//! `msg_delay` d (device agents: the message sent on step `t` arrives on
//! step `t + d`; zero before). Each delay must be in `[0, max_episode_steps)`.
//!
//! **History** (`history: k`, default 1): the observation is the last `k`
//! (delayed) observations stacked newest first: `[o(t−d), o(t−d−1), …,
//! o(t−d−k+1)]`, padded with the episode's first observation.
//!
//! **Visibility** (`observe:`, a list in column order; default: the mode's
//! layout, see [`crate::env::observation`]): see [`Quantity`].

use crate::error::{Error, Result};
use crate::network::Network;
use crate::setup::config::{
    DeviceAgentConfig, DevicePolicyConfig, MessageConfig, QuantityConfig, SetupConfig, TimingConfig,
};
use crate::setup::DeviceSpec;
use std::path::Path;

/// One quantity an agent may see (`observe:` item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// `devices`: its own devices' blocks.
    Devices,
    /// `buses`: its buses' voltages (a device agent: its devices' buses).
    Buses,
    /// `load`: its (coordinator's) load.
    Load,
    /// `pcc`: its (coordinator's) PCC import.
    Pcc,
    /// `{ pcc: AGENT }`: grid agent `AGENT`'s PCC import (a neighbour's).
    PccOf(usize),
    /// `{ bus: NAME }`: one bus voltage.
    Bus(usize),
    /// `{ buses_of: AGENT }`: grid agent `AGENT`'s buses' voltages.
    BusesOf(usize),
    /// `total_import`: Σ PCC import of every grid agent.
    TotalImport,
    /// `price`: the next hour's price feature.
    Price,
    /// `time`: `sin`, `cos` of the next hour.
    Time,
    /// `price_factor`: the system operator's price factor (only when it acts).
    PriceFactor,
    /// `message`: the message received from the coordinator (device agents).
    Message,
}

/// Timing of one agent in whole steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Acts every `tick_every` steps.
    pub tick_every: usize,
    /// Sees the observation of `t − obs_delay`.
    pub obs_delay: usize,
    /// Its action takes effect `act_delay` steps later.
    pub act_delay: usize,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            tick_every: 1,
            obs_delay: 0,
            act_delay: 0,
        }
    }
}

/// What an agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A grid agent that drives its devices directly (no device agents).
    Grid(usize),
    /// A coordinator: its action is the message to grid agent `.0`'s device agents.
    Coordinator(usize),
    /// Device agent `unit` of grid agent `grid`'s hierarchy.
    Device {
        /// Grid agent (coordinator) index.
        grid: usize,
        /// Index in its hierarchy's `units`.
        unit: usize,
    },
    /// The system operator (price factor).
    Operator,
}

/// One agent as the environment exposes it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentDef {
    /// Name (`MG1`, `MG1/ESS1`, `system_operator`).
    pub name: String,
    /// Its parent's name (a device agent's coordinator).
    pub parent: Option<String>,
    /// What it is.
    pub role: Role,
    /// When it acts and how late.
    pub timing: Timing,
    /// Observations stacked (≥ 1).
    pub history: usize,
    /// Its visibility list (None: the default layout).
    pub observe: Option<Vec<Quantity>>,
}

/// The coordinator's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Every device's set-points.
    Setpoints,
    /// A free vector of this length.
    Vector(usize),
}

/// A device agent's rule.
pub type DevicePolicy = DevicePolicyConfig;

/// One device agent (learner or rule).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitDef {
    /// Full name `<coordinator>/<name>`.
    pub name: String,
    /// Its devices: indices into the grid agent's device list, in its config order.
    pub devices: Vec<usize>,
    /// What drives its devices.
    pub policy: DevicePolicy,
    /// Message delay in steps.
    pub msg_delay: usize,
}

/// A grid agent's hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchy {
    /// Whether the coordinator learns (else it sends zeros).
    pub learner: bool,
    /// Its message.
    pub message: Message,
    /// Its device agents in config order.
    pub units: Vec<UnitDef>,
}

/// The resolved agents of a setup.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Agents {
    /// Every agent that acts, in action order.
    pub defs: Vec<AgentDef>,
    /// Per grid agent: its hierarchy (None: it drives its devices itself).
    pub hierarchies: Vec<Option<Hierarchy>>,
}

/// The network element name of a device (what `device_agents[].devices` names).
pub fn device_name(net: &Network, d: &DeviceSpec) -> String {
    match d {
        DeviceSpec::Generator { sgen, .. } | DeviceSpec::Renewable { sgen, .. } => {
            net.sgens[*sgen].name.clone()
        }
        DeviceSpec::Storage { element, .. } => net.storages[*element].name.clone(),
        DeviceSpec::TapChanger { trafo, .. } => net.trafos[*trafo].name.clone(),
        DeviceSpec::Capacitor { shunt, .. } => net.shunts[*shunt].name.clone(),
    }
}

/// Resolve and check the agents of `config` (devices already resolved).
pub(crate) fn resolve(
    path: &Path,
    config: &SetupConfig,
    net: &Network,
    agent_devices: &[Vec<DeviceSpec>],
) -> Result<Agents> {
    let err = |key: &str, msg: String| Error::parse(path, format!("{key}: {msg}"));
    let steps = config.max_episode_steps;
    let grid_names: Vec<&str> = config.agents.iter().map(|a| a.name.as_str()).collect();
    for (i, n) in grid_names.iter().enumerate() {
        if grid_names[..i].contains(n) || *n == "system_operator" || n.contains('/') {
            return Err(err(
                &format!("agents[{i}].name"),
                format!("{n:?} is taken or contains '/' (agent names must be unique; '/' separates a device agent from its coordinator)"),
            ));
        }
    }
    let timing = |key: &str, t: &TimingConfig, device: bool| -> Result<(Timing, usize)> {
        let delay = |v: i64, k: &str| -> Result<usize> {
            if v < 0 || v as u64 >= steps as u64 {
                Err(err(
                    &format!("{key}.timing.{k}"),
                    format!("{v} must be in [0, max_episode_steps = {steps})"),
                ))
            } else {
                Ok(v as usize)
            }
        };
        let tick = t.tick_every.unwrap_or(1);
        if tick < 1 || tick as u64 > steps as u64 {
            return Err(err(
                &format!("{key}.timing.tick_every"),
                format!("{tick} must be in [1, max_episode_steps = {steps}]"),
            ));
        }
        if !device && t.msg_delay != 0 {
            return Err(err(
                &format!("{key}.timing.msg_delay"),
                "only device agents receive messages".into(),
            ));
        }
        Ok((
            Timing {
                tick_every: tick as usize,
                obs_delay: delay(t.obs_delay, "obs_delay")?,
                act_delay: delay(t.act_delay, "act_delay")?,
            },
            delay(t.msg_delay, "msg_delay")?,
        ))
    };
    let history = |key: &str, h: Option<i64>| -> Result<usize> {
        match h {
            None => Ok(1),
            Some(h) if h >= 1 && h as u64 <= steps as u64 => Ok(h as usize),
            Some(h) => Err(err(
                &format!("{key}.history"),
                format!("{h} must be in [1, max_episode_steps = {steps}]"),
            )),
        }
    };
    let grid_of = |key: &str, name: &str| -> Result<usize> {
        grid_names.iter().position(|n| *n == name).ok_or_else(|| {
            err(
                key,
                format!("no grid agent named {name:?} (agents: {grid_names:?})"),
            )
        })
    };
    let observe = |key: &str, list: &Option<Vec<QuantityConfig>>, device: bool| {
        let Some(list) = list else {
            return Ok(None);
        };
        let mut out: Vec<Quantity> = Vec::new();
        for (j, q) in list.iter().enumerate() {
            let k = format!("{key}.observe[{j}]");
            let item = match q {
                QuantityConfig::Name(n) => match n.as_str() {
                    "devices" => Quantity::Devices,
                    "buses" => Quantity::Buses,
                    "load" => Quantity::Load,
                    "pcc" => Quantity::Pcc,
                    "total_import" => Quantity::TotalImport,
                    "price" => Quantity::Price,
                    "time" => Quantity::Time,
                    "price_factor" => Quantity::PriceFactor,
                    "message" => Quantity::Message,
                    _ => return Err(err(&k, format!("unknown quantity {n:?} (known: devices, buses, load, pcc, total_import, price, time, price_factor, message, {{pcc: AGENT}}, {{bus: NAME}}, {{buses_of: AGENT}})"))),
                },
                QuantityConfig::WithArg(m) => {
                    let mut it = m.iter();
                    let (Some((name, arg)), None) = (it.next(), it.next()) else {
                        return Err(err(&k, "a quantity with an argument is a map with one key".into()));
                    };
                    match name.as_str() {
                        "pcc" => {
                            let g = grid_of(&k, arg)?;
                            if config.agents[g].pcc.is_none() {
                                return Err(err(&k, format!("agent {arg:?} has no pcc")));
                            }
                            Quantity::PccOf(g)
                        }
                        "buses_of" => Quantity::BusesOf(grid_of(&k, arg)?),
                        "bus" => Quantity::Bus(
                            net.buses.iter().position(|b| b.name == *arg).ok_or_else(|| {
                                err(&k, format!("the network has no bus named {arg:?}"))
                            })?,
                        ),
                        _ => return Err(err(&k, format!("unknown quantity {name:?} (with an argument: pcc, bus, buses_of)"))),
                    }
                }
            };
            if item == Quantity::Message && !device {
                return Err(err(&k, "only device agents receive a message".into()));
            }
            if item == Quantity::PriceFactor && config.system_operator.agent.is_none() {
                return Err(err(
                    &k,
                    "price_factor never changes: the system operator does not act".into(),
                ));
            }
            if out.contains(&item) {
                return Err(err(&k, format!("{item:?} is listed twice")));
            }
            out.push(item);
        }
        if out.is_empty() {
            return Err(err(
                &format!("{key}.observe"),
                "lists nothing to see".into(),
            ));
        }
        Ok(Some(out))
    };

    let mut out = Agents::default();
    for (gi, a) in config.agents.iter().enumerate() {
        let key = format!("agents[{gi}] ({})", a.name);
        let (t, _) = timing(&key, &a.timing, false)?;
        let hist = history(&key, a.history)?;
        let obs = observe(&key, &a.observe, false)?;
        if a.device_agents.is_empty() {
            if a.message.is_some() {
                return Err(err(
                    &format!("{key}.message"),
                    "only a coordinator (an agent with device_agents) sends messages".into(),
                ));
            }
            if !a.learner {
                return Err(err(
                    &format!("{key}.learner"),
                    "an agent without device_agents must learn (nothing else drives its devices)"
                        .into(),
                ));
            }
            out.hierarchies.push(None);
            out.defs.push(AgentDef {
                name: a.name.clone(),
                parent: None,
                role: Role::Grid(gi),
                timing: t,
                history: hist,
                observe: obs,
            });
            continue;
        }
        let message = match &a.message {
            None => Message::Setpoints,
            Some(MessageConfig::Name(n)) if n == "setpoints" => Message::Setpoints,
            Some(MessageConfig::Name(n)) => {
                return Err(err(
                    &format!("{key}.message"),
                    format!("unknown message {n:?} (use setpoints or {{ vector: k }})"),
                ))
            }
            Some(MessageConfig::Vector { vector: k }) if *k >= 1 => Message::Vector(*k as usize),
            Some(MessageConfig::Vector { vector: k }) => {
                return Err(err(
                    &format!("{key}.message.vector"),
                    format!("{k}: a message has at least one value"),
                ))
            }
        };
        let names: Vec<String> = agent_devices[gi]
            .iter()
            .map(|d| device_name(net, d))
            .collect();
        let mut claimed: Vec<Option<String>> = vec![None; names.len()];
        let mut units = Vec::new();
        let mut unit_defs = Vec::new();
        for (ui, u) in a.device_agents.iter().enumerate() {
            let ukey = format!("{key}.device_agents[{ui}] ({})", u.name);
            let full = format!("{}/{}", a.name, u.name);
            if u.name.is_empty()
                || u.name.contains('/')
                || a.device_agents[..ui].iter().any(|o| o.name == u.name)
            {
                return Err(err(
                    &format!("{ukey}.name"),
                    "device agent names are non-empty, unique under their coordinator, without '/'"
                        .into(),
                ));
            }
            let devices = unit_devices(&ukey, u, &names, &mut claimed, &full, &err)?;
            match (u.policy, message) {
                (DevicePolicyConfig::PassThrough, Message::Vector(_)) => {
                    return Err(err(
                        &format!("{ukey}.policy"),
                        "pass_through needs message: setpoints".into(),
                    ))
                }
                (DevicePolicyConfig::Proportional, Message::Setpoints) => {
                    return Err(err(
                        &format!("{ukey}.policy"),
                        "proportional needs message: { vector: k } ([p, q])".into(),
                    ))
                }
                _ => {}
            }
            let learner = u.policy == DevicePolicyConfig::Learner;
            let (ut, msg_delay) = timing(&ukey, &u.timing, true)?;
            let uh = history(&ukey, u.history)?;
            let uobs = observe(&ukey, &u.observe, true)?;
            if !learner && (ut != Timing::default() || uh != 1 || uobs.is_some()) {
                return Err(err(
                    &ukey,
                    "a fixed-rule device agent takes only timing.msg_delay (it neither observes nor acts on its own)".into(),
                ));
            }
            units.push(UnitDef {
                name: full.clone(),
                devices,
                policy: u.policy,
                msg_delay,
            });
            if learner {
                unit_defs.push(AgentDef {
                    name: full,
                    parent: Some(a.name.clone()),
                    role: Role::Device { grid: gi, unit: ui },
                    timing: ut,
                    history: uh,
                    observe: uobs,
                });
            }
        }
        if a.learner {
            out.defs.push(AgentDef {
                name: a.name.clone(),
                parent: None,
                role: Role::Coordinator(gi),
                timing: t,
                history: hist,
                observe: obs,
            });
        } else if t != Timing::default() || hist != 1 || obs.is_some() {
            return Err(err(
                &key,
                "a coordinator that does not learn takes no timing, history or observe".into(),
            ));
        }
        out.defs.extend(unit_defs);
        out.hierarchies.push(Some(Hierarchy {
            learner: a.learner,
            message,
            units,
        }));
    }
    if config.system_operator.agent.is_some() {
        out.defs.push(AgentDef {
            name: "system_operator".into(),
            parent: None,
            role: Role::Operator,
            timing: Timing::default(),
            history: 1,
            observe: None,
        });
    }
    if out.defs.is_empty() {
        return Err(err("agents", "no agent learns".into()));
    }
    Ok(out)
}

fn unit_devices(
    ukey: &str,
    u: &DeviceAgentConfig,
    names: &[String],
    claimed: &mut [Option<String>],
    full: &str,
    err: &impl Fn(&str, String) -> Error,
) -> Result<Vec<usize>> {
    if u.devices.is_empty() {
        return Err(err(&format!("{ukey}.devices"), "names no device".into()));
    }
    let mut out = Vec::new();
    for (k, n) in u.devices.iter().enumerate() {
        let dk = format!("{ukey}.devices[{k}]");
        let d = names.iter().position(|x| x == n).ok_or_else(|| {
            err(
                &dk,
                format!("{n:?} is not a device of its coordinator (devices: {names:?})"),
            )
        })?;
        if let Some(first) = &claimed[d] {
            return Err(err(
                &dk,
                format!("device {n:?} is already claimed by device agent {first}"),
            ));
        }
        claimed[d] = Some(full.to_string());
        out.push(d);
    }
    Ok(out)
}
