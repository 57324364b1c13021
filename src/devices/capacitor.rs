//! Capacitor bank: an integer step in `[0, max_step]`, written to the power
//! flow's `shunt_step` (shunt q = q_mvar × step).

use ndarray::Array2;

/// Capacitor banks of a batch.
#[derive(Debug, Clone)]
pub struct Capacitors {
    /// Shunt index of each unit.
    pub shunt: Vec<usize>,
    /// Highest step.
    pub max_step: Vec<f64>,
    /// Step at reset (the network's).
    pub step_init: Vec<f64>,
    /// Cost per step switched ($).
    pub wear_cost: Vec<f64>,
    /// Step, `[B, n]` (integer values).
    pub step: Array2<f64>,
    /// Steps switched in the last step, `[B, n]`.
    pub moved: Array2<f64>,
}

impl Capacitors {
    /// Units for `batch` copies.
    pub fn new(
        shunt: Vec<usize>,
        max_step: Vec<f64>,
        step_init: Vec<f64>,
        wear_cost: Vec<f64>,
        batch: usize,
    ) -> Self {
        let n = shunt.len();
        let mut s = Capacitors {
            shunt,
            max_step,
            step_init,
            wear_cost,
            step: Array2::zeros((batch, n)),
            moved: Array2::zeros((batch, n)),
        };
        (0..batch).for_each(|c| s.reset_copy(c));
        s
    }
    /// Step for an action: `round((a+1)/2·max_step)`.
    pub fn step_for(&self, k: usize, a: f32) -> f64 {
        super::scale_action(a, 0.0, self.max_step[k])
            .round()
            .clamp(0.0, self.max_step[k])
    }
    /// Back to the network's step.
    pub fn reset_copy(&mut self, c: usize) {
        for k in 0..self.shunt.len() {
            self.step[[c, k]] = self.step_init[k];
            self.moved[[c, k]] = 0.0;
        }
    }
    /// Apply an action.
    pub fn apply(&mut self, c: usize, k: usize, a: f32) {
        let s = self.step_for(k, a);
        self.moved[[c, k]] = (s - self.step[[c, k]]).abs();
        self.step[[c, k]] = s;
    }
    /// Wear cost `wear_cost·|Δstep|`.
    pub fn cost(&self, c: usize, k: usize) -> f64 {
        self.wear_cost[k] * self.moved[[c, k]]
    }
    /// `[step/max_step]`.
    pub fn observe(&self, c: usize, k: usize, out: &mut [f32]) {
        out[0] = (self.step[[c, k]] / self.max_step[k].max(1.0)) as f32;
    }
}
