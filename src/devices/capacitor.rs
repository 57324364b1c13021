//! Capacitor bank driven by an agent: an integer step in `[0, max_step]`,
//! written to the power flow's `shunt_step` (shunt q = q_mvar × step).
//!
//! The action is a **relative move**: `step ← clamp(step + round(a·max_move),
//! 0, max_step)`, so `a = 0` holds the step.

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
    /// Largest move per step (at `|a| = 1`).
    pub max_move: Vec<f64>,
    /// Cost per step switched ($).
    pub wear_cost: Vec<f64>,
    /// Step, `[B, n]` (integer values).
    pub step: Array2<f64>,
    /// Steps switched in the last step, `[B, n]`.
    pub moved: Array2<f64>,
}

/// One capacitor bank's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacitorParams {
    /// Highest step.
    pub max_step: f64,
    /// Step at reset.
    pub step_init: f64,
    /// Largest move per step.
    pub max_move: f64,
    /// Cost per step switched ($).
    pub wear_cost: f64,
}

impl Capacitors {
    /// Units for `batch` copies.
    pub fn new(shunt: Vec<usize>, params: Vec<CapacitorParams>, batch: usize) -> Self {
        let n = shunt.len();
        let mut s = Capacitors {
            shunt,
            max_step: params.iter().map(|p| p.max_step).collect(),
            step_init: params.iter().map(|p| p.step_init).collect(),
            max_move: params.iter().map(|p| p.max_move).collect(),
            wear_cost: params.iter().map(|p| p.wear_cost).collect(),
            step: Array2::zeros((batch, n)),
            moved: Array2::zeros((batch, n)),
        };
        (0..batch).for_each(|c| s.reset_copy(c));
        s
    }
    /// Step after an action from `current`: `clamp(current + round(a·max_move), 0, max_step)`.
    pub fn step_for(&self, k: usize, current: f64, a: f64) -> f64 {
        super::relative_move(current, a, self.max_move[k], 0.0, self.max_step[k])
    }
    /// The action that moves from `current` to `target`: `(target − current)/max_move`.
    pub fn action_for(&self, k: usize, current: f64, target: f64) -> f64 {
        ((target - current) / self.max_move[k].max(1e-12)).clamp(-1.0, 1.0)
    }
    /// The per-copy state rows, all copies.
    pub(crate) fn rows(&mut self) -> CapacitorRows<'_> {
        CapacitorRows {
            max_step: &self.max_step,
            step_init: &self.step_init,
            max_move: &self.max_move,
            step: self.step.view_mut(),
            moved: self.moved.view_mut(),
        }
    }
    /// Back to the network's step.
    pub fn reset_copy(&mut self, c: usize) {
        self.rows().reset_copy(c)
    }
    /// Apply an action.
    pub fn apply(&mut self, c: usize, k: usize, a: f64) {
        self.rows().apply(c, k, a)
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

device_rows! {
    /// [`Capacitors`]' step and move rows.
    CapacitorRows { max_step: [f64], step_init: [f64], max_move: [f64]; step, moved }
}

impl CapacitorRows<'_> {
    /// See [`Capacitors::reset_copy`].
    pub fn reset_copy(&mut self, c: usize) {
        for (k, &init) in self.step_init.iter().enumerate() {
            self.step[[c, k]] = init;
            self.moved[[c, k]] = 0.0;
        }
    }
    /// See [`Capacitors::apply`].
    pub fn apply(&mut self, c: usize, k: usize, a: f64) {
        let from = self.step[[c, k]];
        let s = super::relative_move(from, a, self.max_move[k], 0.0, self.max_step[k]);
        self.moved[[c, k]] = (s - from).abs();
        self.step[[c, k]] = s;
    }
}
