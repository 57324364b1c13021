//! Solar and wind: available P = capacity × this hour's normalised profile of
//! its zone; the action curtails P and sets Q within the inverter rating.

use ndarray::Array2;

/// Parameters of one solar or wind unit.
#[derive(Debug, Clone, PartialEq)]
pub struct RenewableParams {
    /// Capacity in MW.
    pub capacity_mw: f64,
    /// Reactive limit (±) in Mvar.
    pub q_max_mvar: f64,
    /// Inverter rating in MVA.
    pub s_rated_mva: f64,
    /// Time-series column of its profile.
    pub profile_column: usize,
}

impl RenewableParams {
    /// Available P for a profile value: `capacity × max(profile, 0)`, at most the rating.
    pub fn available(&self, profile: f64) -> f64 {
        (self.capacity_mw * profile.max(0.0)).min(self.s_rated_mva)
    }
    /// Set-point: `P = available·(1 + min(a_p, 0))` (zero or positive:
    /// uncurtailed; −1: all curtailed), `Q = a_q·q_max` clipped to `±√(s² − P²)`.
    pub fn set_point(&self, available: f64, a_p: f64, a_q: f64) -> (f64, f64) {
        let p = available * (1.0 + a_p.clamp(-1.0, 0.0));
        let qs = (self.s_rated_mva * self.s_rated_mva - p * p)
            .max(0.0)
            .sqrt();
        let qlim = self.q_max_mvar.min(qs);
        let q = (a_q.clamp(-1.0, 1.0) * self.q_max_mvar).clamp(-qlim, qlim);
        (p, q)
    }

    /// The action that gives a set-point at an availability (inverse of
    /// [`Self::set_point`]): `a_p = P/available − 1` (0 when nothing is
    /// available), `a_q = Q/q_max`.
    pub fn action_for(&self, available: f64, p_mw: f64, q_mvar: f64) -> [f64; 2] {
        let a_p = if available > 0.0 {
            (p_mw / available - 1.0).clamp(-1.0, 0.0)
        } else {
            0.0
        };
        let a_q = if self.q_max_mvar > 0.0 {
            (q_mvar / self.q_max_mvar).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        [a_p, a_q]
    }
}

/// Renewable units of a batch.
#[derive(Debug, Clone)]
pub struct Renewables {
    /// Parameters per unit.
    pub params: Vec<RenewableParams>,
    /// Static-generator index of each unit.
    pub sgen: Vec<usize>,
    /// Available P this hour in MW, `[B, n]`.
    pub available_mw: Array2<f64>,
    /// Delivered P in MW, `[B, n]`.
    pub p_mw: Array2<f64>,
    /// Q in Mvar, `[B, n]`.
    pub q_mvar: Array2<f64>,
}

impl Renewables {
    /// Units for `batch` copies.
    pub fn new(params: Vec<RenewableParams>, sgen: Vec<usize>, batch: usize) -> Self {
        let n = params.len();
        Renewables {
            params,
            sgen,
            available_mw: Array2::zeros((batch, n)),
            p_mw: Array2::zeros((batch, n)),
            q_mvar: Array2::zeros((batch, n)),
        }
    }
    /// The per-copy state rows, all copies.
    pub(crate) fn rows(&mut self) -> RenewableRows<'_> {
        RenewableRows {
            params: &self.params,
            available_mw: self.available_mw.view_mut(),
            p_mw: self.p_mw.view_mut(),
            q_mvar: self.q_mvar.view_mut(),
        }
    }
    /// Zero state; the environment then calls [`Renewables::set_uncurtailed`].
    pub fn reset_copy(&mut self, c: usize) {
        self.rows().reset_copy(c)
    }
    /// At reset: deliver everything available, `Q = 0`.
    pub fn set_uncurtailed(&mut self, c: usize, k: usize, profile: f64) {
        self.rows().set_uncurtailed(c, k, profile)
    }
    /// Apply an action for a profile value of this hour.
    pub fn apply(&mut self, c: usize, k: usize, a_p: f64, a_q: f64, profile: f64) {
        self.rows().apply(c, k, a_p, a_q, profile)
    }
    /// `max(|S| − s_rated, 0)` in MVA.
    pub fn violation(&self, c: usize, k: usize) -> f64 {
        let (p, q) = (self.p_mw[[c, k]], self.q_mvar[[c, k]]);
        ((p * p + q * q).sqrt() - self.params[k].s_rated_mva).max(0.0)
    }
    /// `[available/capacity, P/capacity, Q/s_rated]`.
    pub fn observe(&self, c: usize, k: usize, out: &mut [f32]) {
        let cap = self.params[k].capacity_mw.max(1e-12);
        out[0] = (self.available_mw[[c, k]] / cap) as f32;
        out[1] = (self.p_mw[[c, k]] / cap) as f32;
        out[2] = (self.q_mvar[[c, k]] / self.params[k].s_rated_mva) as f32;
    }
}

device_rows! {
    /// [`Renewables`]' available P, P and Q rows.
    RenewableRows { params: [RenewableParams]; available_mw, p_mw, q_mvar }
}

impl RenewableRows<'_> {
    /// See [`Renewables::reset_copy`].
    pub fn reset_copy(&mut self, c: usize) {
        for k in 0..self.params.len() {
            self.available_mw[[c, k]] = 0.0;
            self.p_mw[[c, k]] = 0.0;
            self.q_mvar[[c, k]] = 0.0;
        }
    }
    /// See [`Renewables::set_uncurtailed`].
    pub fn set_uncurtailed(&mut self, c: usize, k: usize, profile: f64) {
        let a = self.params[k].available(profile);
        self.available_mw[[c, k]] = a;
        self.p_mw[[c, k]] = a;
        self.q_mvar[[c, k]] = 0.0;
    }
    /// See [`Renewables::apply`].
    pub fn apply(&mut self, c: usize, k: usize, a_p: f64, a_q: f64, profile: f64) {
        let prm = &self.params[k];
        let avail = prm.available(profile);
        let (p, q) = prm.set_point(avail, a_p, a_q);
        self.available_mw[[c, k]] = avail;
        self.p_mw[[c, k]] = p;
        self.q_mvar[[c, k]] = q;
    }
}
