//! Energy storage: state of charge with charge/discharge efficiencies.
//! P is in load convention (positive = charging) and goes into the power flow
//! as the storage element's `p_mw`.

use ndarray::Array2;

/// Parameters of one storage unit.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageParams {
    /// Energy capacity in MWh.
    pub e_mwh: f64,
    /// Power limit in MW (both directions).
    pub p_max_mw: f64,
    /// Lowest SOC.
    pub soc_min: f64,
    /// Highest SOC.
    pub soc_max: f64,
    /// SOC at reset.
    pub soc_init: f64,
    /// Charging efficiency.
    pub eta_ch: f64,
    /// Discharging efficiency.
    pub eta_dis: f64,
    /// Degradation cost in $/MWh throughput.
    pub degradation_cost_per_mwh: f64,
}

impl StorageParams {
    /// Clip a requested P to `[−p_max, p_max]` and to the SOC head-room:
    /// charging at most `(soc_max − soc)·E/(η_ch·dt)`, discharging at most
    /// `(soc − soc_min)·E·η_dis/dt`.
    pub fn clip(&self, soc: f64, p: f64, dt_h: f64) -> f64 {
        let ch = ((self.soc_max - soc) * self.e_mwh / (self.eta_ch * dt_h)).max(0.0);
        let dis = ((soc - self.soc_min) * self.e_mwh * self.eta_dis / dt_h).max(0.0);
        p.clamp(-self.p_max_mw.min(dis), self.p_max_mw.min(ch))
    }

    /// The action that asks for `P` (inverse of the mapping): `a = P/p_max`.
    pub fn action_for(&self, p_mw: f64) -> f64 {
        (p_mw / self.p_max_mw).clamp(-1.0, 1.0)
    }

    /// SOC after a step: `soc + P·η_ch·dt/E` when charging, `soc + P/η_dis·dt/E` when discharging.
    pub fn next_soc(&self, soc: f64, p: f64, dt_h: f64) -> f64 {
        if p >= 0.0 {
            soc + p * self.eta_ch * dt_h / self.e_mwh
        } else {
            soc + p / self.eta_dis * dt_h / self.e_mwh
        }
    }
}

/// Storage units of a batch.
#[derive(Debug, Clone)]
pub struct Storages {
    /// Parameters per unit.
    pub params: Vec<StorageParams>,
    /// Storage-element index of each unit.
    pub element: Vec<usize>,
    /// State of charge, `[B, n]`.
    pub soc: Array2<f64>,
    /// P of the last step in MW (positive = charging), `[B, n]`.
    pub p_mw: Array2<f64>,
}

impl Storages {
    /// Units for `batch` copies.
    pub fn new(params: Vec<StorageParams>, element: Vec<usize>, batch: usize) -> Self {
        let n = params.len();
        let mut s = Storages {
            params,
            element,
            soc: Array2::zeros((batch, n)),
            p_mw: Array2::zeros((batch, n)),
        };
        (0..batch).for_each(|c| s.reset_copy(c));
        s
    }
    /// The per-copy state rows, all copies.
    pub(crate) fn rows(&mut self) -> StorageRows<'_> {
        StorageRows {
            params: &self.params,
            soc: self.soc.view_mut(),
            p_mw: self.p_mw.view_mut(),
        }
    }
    /// SOC back to `soc_init`, P = 0.
    pub fn reset_copy(&mut self, c: usize) {
        self.rows().reset_copy(c)
    }
    /// Apply an action: `P = a·p_max` (zero: idle), clipped, then the SOC update.
    pub fn apply(&mut self, c: usize, k: usize, a: f64, dt_h: f64) {
        self.rows().apply(c, k, a, dt_h)
    }
    /// Degradation cost `cost_per_mwh·|P|·dt` (charging and discharging alike).
    pub fn cost(&self, c: usize, k: usize, dt_h: f64) -> f64 {
        self.params[k].degradation_cost_per_mwh * self.p_mw[[c, k]].abs() * dt_h
    }
    /// `max(soc − soc_max, 0) + max(soc_min − soc, 0)`, ignoring rounding below 1e-9.
    pub fn violation(&self, c: usize, k: usize) -> f64 {
        let (s, p) = (self.soc[[c, k]], &self.params[k]);
        let v = (s - p.soc_max).max(0.0) + (p.soc_min - s).max(0.0);
        if v > 1e-9 {
            v
        } else {
            0.0
        }
    }
    /// `[soc, P/p_max]`.
    pub fn observe(&self, c: usize, k: usize, out: &mut [f32]) {
        out[0] = self.soc[[c, k]] as f32;
        out[1] = (self.p_mw[[c, k]] / self.params[k].p_max_mw) as f32;
    }
}

device_rows! {
    /// [`Storages`]' SOC and P rows.
    StorageRows { params: [StorageParams]; soc, p_mw }
}

impl StorageRows<'_> {
    /// See [`Storages::reset_copy`].
    pub fn reset_copy(&mut self, c: usize) {
        for (k, prm) in self.params.iter().enumerate() {
            self.soc[[c, k]] = prm.soc_init;
            self.p_mw[[c, k]] = 0.0;
        }
    }
    /// See [`Storages::apply`].
    pub fn apply(&mut self, c: usize, k: usize, a: f64, dt_h: f64) {
        let prm = &self.params[k];
        let soc = self.soc[[c, k]];
        let p = prm.clip(soc, a.clamp(-1.0, 1.0) * prm.p_max_mw, dt_h);
        self.p_mw[[c, k]] = p;
        self.soc[[c, k]] = prm.next_soc(soc, p, dt_h);
    }
}
