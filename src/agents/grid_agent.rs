//! A grid agent: one microgrid (or feeder area). It owns buses, the lines and
//! transformers between them, loads on them, devices, and a point of common
//! coupling where it trades with the upstream grid.

use crate::devices::{DeviceRef, DeviceRows, Devices};
use crate::network::Network;
use crate::powerflow::BatchResults;

/// Point of common coupling: where the agent's import is measured (MW, positive = import).
#[derive(Debug, Clone)]
pub enum Pcc {
    /// Active power into transformer `trafo` at its HV terminal
    /// (`trafo_p_hv_mw`, pandapower's `res_trafo.p_hv_mw`).
    Trafo(usize),
    /// Active power into line `line` at its from end (`line_p_from_mw`).
    Line(usize),
    /// The ext_grid's active power (`ext_grid_p_mw`).
    ExtGrid(usize),
}

impl Pcc {
    /// Import in MW of copy `c`.
    pub fn import_mw(&self, res: &BatchResults, c: usize) -> f64 {
        match self {
            Pcc::Trafo(t) => res.trafo_p_hv_mw[[c, *t]],
            Pcc::Line(l) => res.line_p_from_mw[[c, *l]],
            Pcc::ExtGrid(e) => res.ext_grid_p_mw[[c, *e]],
        }
    }
}

/// A grid agent.
#[derive(Debug, Clone)]
pub struct GridAgent {
    /// Name.
    pub name: String,
    /// Devices in action order.
    pub devices: Vec<DeviceRef>,
    /// Action offset of each device.
    pub action_offsets: Vec<usize>,
    /// Action length.
    pub action_dim: usize,
    /// Its buses that are solved (in service and connected), ascending.
    pub buses: Vec<usize>,
    /// Lines with both ends on its buses.
    pub lines: Vec<usize>,
    /// Transformers with both ends on its buses.
    pub trafos: Vec<usize>,
    /// Loads on its buses.
    pub loads: Vec<usize>,
    /// Point of common coupling.
    pub pcc: Option<Pcc>,
}

impl GridAgent {
    /// An agent over `buses` (all buses it owns; unsolved ones are dropped).
    pub fn new(
        name: String,
        devices: Vec<DeviceRef>,
        buses: &[usize],
        live: &[bool],
        net: &Network,
        pcc: Option<Pcc>,
    ) -> Self {
        let mut own = vec![false; net.buses.len()];
        buses.iter().for_each(|&b| own[b] = true);
        let mut action_offsets = Vec::with_capacity(devices.len());
        let mut off = 0;
        for d in &devices {
            action_offsets.push(off);
            off += d.action_dim();
        }
        GridAgent {
            name,
            action_offsets,
            action_dim: off,
            devices,
            buses: buses.iter().copied().filter(|&b| live[b]).collect(),
            lines: (0..net.lines.len())
                .filter(|&l| own[net.lines[l].from_bus] && own[net.lines[l].to_bus])
                .collect(),
            trafos: (0..net.trafos.len())
                .filter(|&t| own[net.trafos[t].hv_bus] && own[net.trafos[t].lv_bus])
                .collect(),
            loads: (0..net.loads.len())
                .filter(|&l| own[net.loads[l].bus])
                .collect(),
            pcc,
        }
    }

    /// Split copy `c`'s action row over the devices (setpoint protocol), on
    /// the devices' rows of all copies or of a part of the batch (`c` local).
    /// `renewable_profile[k]` is renewable unit k's profile value this hour.
    pub(crate) fn apply(
        &self,
        devices: &mut DeviceRows,
        c: usize,
        action: &[f64],
        dt_h: f64,
        renewable_profile: &[f64],
    ) {
        for (d, &off) in self.devices.iter().zip(&self.action_offsets) {
            let a = &action[off..off + d.action_dim()];
            let prof = match d {
                DeviceRef::Renewable(k) => renewable_profile[*k],
                _ => 0.0,
            };
            devices.apply(*d, c, a, dt_h, prof);
        }
    }

    /// Device cost of copy `c` (generation, degradation, wear) in $.
    pub fn device_cost(&self, devices: &Devices, c: usize, dt_h: f64) -> f64 {
        self.devices.iter().map(|d| devices.cost(*d, c, dt_h)).sum()
    }

    /// Device limit violations of copy `c`.
    pub fn device_violation(&self, devices: &Devices, c: usize) -> f64 {
        self.devices.iter().map(|d| devices.violation(*d, c)).sum()
    }

    /// Observation length of its devices.
    pub fn device_obs_dim(&self) -> usize {
        self.devices.iter().map(|d| d.obs_dim()).sum()
    }
}
