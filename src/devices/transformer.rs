//! Transformer tap changer: an integer position in `[tap_min, tap_max]`,
//! written to the power flow's `trafo_tap_pos` (the copy's own admittances
//! change; the shared factors do not).

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
    /// Cost per step moved ($).
    pub wear_cost: Vec<f64>,
    /// Position, `[B, n]` (integer values).
    pub pos: Array2<f64>,
    /// Steps moved in the last step, `[B, n]`.
    pub moved: Array2<f64>,
}

impl TapChangers {
    /// Units for `batch` copies.
    pub fn new(
        trafo: Vec<usize>,
        range: Vec<(f64, f64, f64)>,
        wear_cost: Vec<f64>,
        batch: usize,
    ) -> Self {
        let n = trafo.len();
        let mut t = TapChangers {
            trafo,
            tap_min: range.iter().map(|r| r.0).collect(),
            tap_max: range.iter().map(|r| r.1).collect(),
            tap_init: range.iter().map(|r| r.2).collect(),
            wear_cost,
            pos: Array2::zeros((batch, n)),
            moved: Array2::zeros((batch, n)),
        };
        (0..batch).for_each(|c| t.reset_copy(c));
        t
    }
    /// Position for an action: `round(tap_min + (a+1)/2·(tap_max − tap_min))`.
    pub fn position(&self, k: usize, a: f32) -> f64 {
        super::scale_action(a, self.tap_min[k], self.tap_max[k])
            .round()
            .clamp(self.tap_min[k], self.tap_max[k])
    }
    /// Back to the network's position.
    pub fn reset_copy(&mut self, c: usize) {
        for k in 0..self.trafo.len() {
            self.pos[[c, k]] = self.tap_init[k];
            self.moved[[c, k]] = 0.0;
        }
    }
    /// Apply an action.
    pub fn apply(&mut self, c: usize, k: usize, a: f32) {
        let p = self.position(k, a);
        self.moved[[c, k]] = (p - self.pos[[c, k]]).abs();
        self.pos[[c, k]] = p;
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
