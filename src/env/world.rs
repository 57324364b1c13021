//! A setup resolved once into the typed world a [`crate::env::VecEnv`] steps:
//! the devices as batch arrays, the grid agents with their buses, lines,
//! transformers, loads and PCC, the system operator, the load groups, the
//! solved (live) buses, and the automatic controllers with the elements they
//! own. Names were resolved and checked by [`Setup::load`]; nothing here
//! matches names again.

use crate::agents::{GridAgent, Pcc, SystemOperator};
use crate::devices::{
    Capacitors, DeviceRef, Devices, Generators, LoadGroups, Renewables, Storages, TapChangers,
};
use crate::network::Controller;
use crate::powerflow::Plan;
use crate::setup::config::PccElement;
use crate::setup::{DeviceSpec, Setup};
use ndarray::Array1;

/// The resolved world of a setup for `B` copies.
pub(crate) struct World {
    /// Every device, `[B, n]` state arrays at their reset values.
    pub devices: Devices,
    /// Grid agents in config order.
    pub agents: Vec<GridAgent>,
    /// The system operator.
    pub operator: SystemOperator,
    /// Buses the power flow solves, ascending.
    pub live_buses: Vec<usize>,
    /// Loads of each setup load group (in service, non-zero power).
    pub load_groups: Vec<Vec<usize>>,
    /// `(trafo, tap at reset)` of the automatically controlled trafos.
    pub controlled_taps: Vec<(usize, f64)>,
    /// `(shunt, step at reset)` of the automatically controlled shunts.
    pub controlled_shunts: Vec<(usize, f64)>,
}

impl World {
    /// Build the world of `setup` for `batch` copies over `plan` (made from
    /// `setup.network`).
    pub fn new(setup: &Setup, plan: &Plan, batch: usize) -> World {
        let cfg = &setup.config;
        let net = &setup.network;
        let mut generators = (Vec::new(), Vec::new());
        let mut storages = (Vec::new(), Vec::new());
        let mut renewables = (Vec::new(), Vec::new());
        let mut taps = (Vec::new(), Vec::new());
        let mut capacitors = (Vec::new(), Vec::new());
        let agent_refs: Vec<Vec<DeviceRef>> = setup
            .agent_devices
            .iter()
            .map(|devs| {
                devs.iter()
                    .map(|d| match d {
                        DeviceSpec::Generator { params, sgen } => {
                            generators.0.push(params.clone());
                            generators.1.push(*sgen);
                            DeviceRef::Generator(generators.0.len() - 1)
                        }
                        DeviceSpec::Storage { params, element } => {
                            storages.0.push(params.clone());
                            storages.1.push(*element);
                            DeviceRef::Storage(storages.0.len() - 1)
                        }
                        DeviceSpec::Renewable { params, sgen } => {
                            renewables.0.push(params.clone());
                            renewables.1.push(*sgen);
                            DeviceRef::Renewable(renewables.0.len() - 1)
                        }
                        DeviceSpec::TapChanger { params, trafo } => {
                            taps.0.push(*trafo);
                            taps.1.push(*params);
                            DeviceRef::TapChanger(taps.0.len() - 1)
                        }
                        DeviceSpec::Capacitor { params, shunt } => {
                            capacitors.0.push(*shunt);
                            capacitors.1.push(*params);
                            DeviceRef::Capacitor(capacitors.0.len() - 1)
                        }
                    })
                    .collect()
            })
            .collect();
        let mut load_groups: Vec<Vec<usize>> = vec![Vec::new(); cfg.loads.len()];
        let mut loads = LoadGroups::default();
        for m in &setup.load_members {
            loads.members.push((m.load, m.column, m.scale));
            let l = &net.loads[m.load];
            if l.in_service && l.p_mw != 0.0 {
                load_groups[m.group].push(m.load);
            }
        }
        let devices = Devices {
            generators: Generators::new(generators.0, generators.1, batch),
            storages: Storages::new(storages.0, storages.1, batch),
            renewables: Renewables::new(renewables.0, renewables.1, batch),
            taps: TapChangers::new(taps.0, taps.1, batch),
            capacitors: Capacitors::new(capacitors.0, capacitors.1, batch),
            loads,
        };

        let live: Vec<bool> = plan.bus_node.iter().map(|n| n.is_some()).collect();
        let live_buses: Vec<usize> = (0..net.buses.len()).filter(|&i| live[i]).collect();
        let mut controlled_taps = Vec::new();
        let mut controlled_shunts = Vec::new();
        for c in &setup.controllers {
            match &c.controller {
                Controller::DiscreteTap(t) => {
                    let tap = net.trafos[t.trafo]
                        .tap
                        .as_ref()
                        .expect("checked by Setup::load");
                    controlled_taps.push((t.trafo, tap.pos.round().clamp(tap.min, tap.max)));
                }
                Controller::DiscreteShunt(x) => {
                    let s = &net.shunts[x.shunt];
                    controlled_shunts.push((x.shunt, s.step.round().clamp(0.0, s.max_step as f64)));
                }
            }
        }
        let agents = cfg
            .agents
            .iter()
            .zip(agent_refs)
            .zip(&setup.agent_buses)
            .zip(&setup.agent_pcc)
            .map(|(((a, refs), buses), pcc)| {
                let pcc = pcc.map(|p| match p {
                    PccElement::Trafo(k) => Pcc::Trafo(k),
                    PccElement::Line(l) => Pcc::Line(l),
                    PccElement::ExtGrid(i) => Pcc::ExtGrid(i),
                });
                GridAgent::new(a.name.clone(), refs, buses, &live, net, pcc)
            })
            .collect();
        let so = &cfg.system_operator;
        let mut op_own = vec![false; net.buses.len()];
        setup.operator_buses.iter().for_each(|&x| op_own[x] = true);
        let mut operator = SystemOperator {
            price_column: 0, // the price is the first column of Setup::columns()
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
            factor: Array1::ones(batch),
        };
        (0..batch).for_each(|c| operator.reset_copy(c));
        World {
            devices,
            agents,
            operator,
            live_buses,
            load_groups,
            controlled_taps,
            controlled_shunts,
        }
    }
}
