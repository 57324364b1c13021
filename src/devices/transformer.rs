//! Transformer tap changer driven by an agent: an integer position in
//! `[tap_min, tap_max]`, written to the power flow's `trafo_tap_pos` (the
//! copy's own admittances change; the shared factors do not).
//!
//! The action is a **relative move**: `tap ← clamp(tap + round(a·max_move),
//! tap_min, tap_max)`, so `a = 0` holds the position.

use ndarray::Array2;

/// Tap changers of a batch.
#[derive(Debug, Clone)]
pub struct TapChangers {
    /// Trafo index of each unit.
    pub trafo: Vec<usize>,
    /// Lowest position.
    pub tap_min: Vec<f64>,
    /// Highest position.
    pub tap_max: Vec<f64>,
    /// Position at reset (the network's).
    pub tap_init: Vec<f64>,
    /// Largest move per step (at `|a| = 1`).
    pub max_move: Vec<f64>,
    /// Cost per tap step moved ($).
    pub wear_cost: Vec<f64>,
    /// Position, `[B, n]` (integer values).
    pub pos: Array2<f64>,
    /// Steps moved in the last step, `[B, n]`.
    pub moved: Array2<f64>,
}

/// One tap changer's parameters: `(tap_min, tap_max, tap_init, max_move, wear_cost)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TapParams {
    /// Lowest position.
    pub tap_min: f64,
    /// Highest position.
    pub tap_max: f64,
    /// Position at reset.
    pub tap_init: f64,
    /// Largest move per step.
    pub max_move: f64,
    /// Cost per step moved ($).
    pub wear_cost: f64,
}

impl TapChangers {
    /// Units for `batch` copies.
    pub fn new(trafo: Vec<usize>, params: Vec<TapParams>, batch: usize) -> Self {
        let n = trafo.len();
        let mut t = TapChangers {
            trafo,
            tap_min: params.iter().map(|r| r.tap_min).collect(),
            tap_max: params.iter().map(|r| r.tap_max).collect(),
            tap_init: params.iter().map(|r| r.tap_init).collect(),
            max_move: params.iter().map(|r| r.max_move).collect(),
            wear_cost: params.iter().map(|r| r.wear_cost).collect(),
            pos: Array2::zeros((batch, n)),
            moved: Array2::zeros((batch, n)),
        };
        (0..batch).for_each(|c| t.reset_copy(c));
        t
    }
    /// Position after an action from `current`: `clamp(current + round(a·max_move), min, max)`.
    pub fn position(&self, k: usize, current: f64, a: f64) -> f64 {
        super::relative_move(
            current,
            a,
            self.max_move[k],
            self.tap_min[k],
            self.tap_max[k],
        )
    }
    /// The action that moves from `current` to `target` (inverse of
    /// [`Self::position`] for moves within `max_move`): `(target − current)/max_move`.
    pub fn action_for(&self, k: usize, current: f64, target: f64) -> f64 {
        ((target - current) / self.max_move[k].max(1e-12)).clamp(-1.0, 1.0)
    }
    /// The per-copy state rows, all copies.
    pub(crate) fn rows(&mut self) -> TapRows<'_> {
        TapRows {
            tap_min: &self.tap_min,
            tap_max: &self.tap_max,
            tap_init: &self.tap_init,
            max_move: &self.max_move,
            pos: self.pos.view_mut(),
            moved: self.moved.view_mut(),
        }
    }
    /// Back to the network's position.
    pub fn reset_copy(&mut self, c: usize) {
        self.rows().reset_copy(c)
    }
    /// Apply an action.
    pub fn apply(&mut self, c: usize, k: usize, a: f64) {
        self.rows().apply(c, k, a)
    }
    /// Wear cost `wear_cost·|Δtap|`.
    pub fn cost(&self, c: usize, k: usize) -> f64 {
        self.wear_cost[k] * self.moved[[c, k]]
    }
    /// `[2·(pos − tap_min)/(tap_max − tap_min) − 1]` in `[-1, 1]`.
    pub fn observe(&self, c: usize, k: usize, out: &mut [f32]) {
        let span = (self.tap_max[k] - self.tap_min[k]).max(1e-12);
        out[0] = (2.0 * (self.pos[[c, k]] - self.tap_min[k]) / span - 1.0) as f32;
    }
}

device_rows! {
    /// [`TapChangers`]' position and move rows.
    TapRows { tap_min: [f64], tap_max: [f64], tap_init: [f64], max_move: [f64]; pos, moved }
}

impl TapRows<'_> {
    /// See [`TapChangers::reset_copy`].
    pub fn reset_copy(&mut self, c: usize) {
        for (k, &init) in self.tap_init.iter().enumerate() {
            self.pos[[c, k]] = init;
            self.moved[[c, k]] = 0.0;
        }
    }
    /// See [`TapChangers::apply`].
    pub fn apply(&mut self, c: usize, k: usize, a: f64) {
        let from = self.pos[[c, k]];
        let p = super::relative_move(from, a, self.max_move[k], self.tap_min[k], self.tap_max[k]);
        self.moved[[c, k]] = (p - from).abs();
        self.pos[[c, k]] = p;
    }
}
