//! Dispatchable generator (diesel unit): P/Q box, apparent-power circle,
//! power-factor wedge, quadratic cost. Injected as a static generator.

use ndarray::Array2;

/// Parameters of one generator.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorParams {
    /// Lowest P in MW.
    pub p_min_mw: f64,
    /// Highest P in MW.
    pub p_max_mw: f64,
    /// Lowest Q in Mvar.
    pub q_min_mvar: f64,
    /// Highest Q in Mvar.
    pub q_max_mvar: f64,
    /// Rating in MVA.
    pub s_rated_mva: f64,
    /// Lowest power factor (0: none).
    pub pf_min: f64,
    /// Cost `[a, b, c]` of `a·P² + b·P + c` in $/h.
    pub cost: [f64; 3],
}

impl GeneratorParams {
    /// Project a set-point into the feasible set: P first into
    /// `[p_min, min(p_max, s_rated)]`, then Q into the box `[q_min, q_max]` ∩
    /// the circle `|Q| ≤ √(s² − P²)` ∩ the wedge `|Q| ≤ P·tan(acos(pf_min))`.
    /// If that set is empty (e.g. `q_min > 0` at `P = 0`), Q is the middle of
    /// the bounds and the violation shows in safety.
    pub fn project(&self, p: f64, q: f64) -> (f64, f64) {
        let p = p.clamp(self.p_min_mw, self.p_max_mw.min(self.s_rated_mva));
        let qs = (self.s_rated_mva * self.s_rated_mva - p * p)
            .max(0.0)
            .sqrt();
        let mut lo = self.q_min_mvar.max(-qs);
        let mut hi = self.q_max_mvar.min(qs);
        if self.pf_min > 0.0 {
            let qw = p.abs() * (1.0 - self.pf_min * self.pf_min).max(0.0).sqrt() / self.pf_min;
            lo = lo.max(-qw);
            hi = hi.min(qw);
        }
        let q = if lo <= hi {
            q.clamp(lo, hi)
        } else {
            0.5 * (lo + hi)
        };
        (p, q)
    }

    /// Set-point from an action pair (see the module table in [`crate::devices`]):
    /// `P = p_min + max(a_p, 0)·(p_max − p_min)` (zero or negative: at its minimum),
    /// `Q = centred(a_q, q_min, q_max)` (zero: `Q = 0`), then [`Self::project`].
    pub fn from_action(&self, a_p: f64, a_q: f64) -> (f64, f64) {
        let p = self.p_min_mw + a_p.clamp(0.0, 1.0) * (self.p_max_mw - self.p_min_mw);
        let q = super::centred(a_q, self.q_min_mvar, self.q_max_mvar);
        self.project(p, q)
    }

    /// The action that gives a set-point (inverse of [`Self::from_action`] for
    /// feasible set-points): `a_p = (P − p_min)/(p_max − p_min)`, `a_q = centred⁻¹(Q)`.
    pub fn action_for(&self, p_mw: f64, q_mvar: f64) -> [f64; 2] {
        let span = self.p_max_mw - self.p_min_mw;
        let a_p = if span > 0.0 {
            ((p_mw - self.p_min_mw) / span).clamp(0.0, 1.0)
        } else {
            0.0
        };
        [
            a_p,
            super::centred_inverse(q_mvar, self.q_min_mvar, self.q_max_mvar),
        ]
    }

    /// Cost rate `a·P² + b·P + c` in $/h.
    pub fn cost_rate(&self, p: f64) -> f64 {
        self.cost[0] * p * p + self.cost[1] * p + self.cost[2]
    }
}

/// Generators of a batch.
#[derive(Debug, Clone)]
pub struct Generators {
    /// Parameters per unit.
    pub params: Vec<GeneratorParams>,
    /// Static-generator index of each unit.
    pub sgen: Vec<usize>,
    /// P in MW, `[B, n]`.
    pub p_mw: Array2<f64>,
    /// Q in Mvar, `[B, n]`.
    pub q_mvar: Array2<f64>,
}

impl Generators {
    /// Units for `batch` copies.
    pub fn new(params: Vec<GeneratorParams>, sgen: Vec<usize>, batch: usize) -> Self {
        let n = params.len();
        let mut g = Generators {
            params,
            sgen,
            p_mw: Array2::zeros((batch, n)),
            q_mvar: Array2::zeros((batch, n)),
        };
        (0..batch).for_each(|c| g.reset_copy(c));
        g
    }
    /// The per-copy state rows, all copies.
    pub(crate) fn rows(&mut self) -> GeneratorRows<'_> {
        GeneratorRows {
            params: &self.params,
            p_mw: self.p_mw.view_mut(),
            q_mvar: self.q_mvar.view_mut(),
        }
    }
    /// At reset a unit runs at `p_min` with `Q = 0` projected.
    pub fn reset_copy(&mut self, c: usize) {
        self.rows().reset_copy(c)
    }
    /// Apply an action.
    pub fn apply(&mut self, c: usize, k: usize, a_p: f64, a_q: f64) {
        self.rows().apply(c, k, a_p, a_q)
    }
    /// Generation cost over `dt_h` hours.
    pub fn cost(&self, c: usize, k: usize, dt_h: f64) -> f64 {
        self.params[k].cost_rate(self.p_mw[[c, k]]) * dt_h
    }
    /// `max(|S| − s_rated, 0)` in MVA.
    pub fn violation(&self, c: usize, k: usize) -> f64 {
        let (p, q) = (self.p_mw[[c, k]], self.q_mvar[[c, k]]);
        ((p * p + q * q).sqrt() - self.params[k].s_rated_mva).max(0.0)
    }
    /// `[P/p_max, Q/s_rated]`.
    pub fn observe(&self, c: usize, k: usize, out: &mut [f32]) {
        out[0] = (self.p_mw[[c, k]] / self.params[k].p_max_mw) as f32;
        out[1] = (self.q_mvar[[c, k]] / self.params[k].s_rated_mva) as f32;
    }
}

device_rows! {
    /// [`Generators`]' P and Q rows.
    GeneratorRows { params: [GeneratorParams]; p_mw, q_mvar }
}

impl GeneratorRows<'_> {
    /// See [`Generators::reset_copy`].
    pub fn reset_copy(&mut self, c: usize) {
        for (k, prm) in self.params.iter().enumerate() {
            let (p, q) = prm.project(prm.p_min_mw, 0.0);
            self.p_mw[[c, k]] = p;
            self.q_mvar[[c, k]] = q;
        }
    }
    /// See [`Generators::apply`].
    pub fn apply(&mut self, c: usize, k: usize, a_p: f64, a_q: f64) {
        let (p, q) = self.params[k].from_action(a_p, a_q);
        self.p_mw[[c, k]] = p;
        self.q_mvar[[c, k]] = q;
    }
}
