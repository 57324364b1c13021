//! The system operator: publishes the hourly price; as an agent it scales the
//! price by a factor in `[min_factor, max_factor]` (action `a` → `1 + a·(max − 1)`
//! for `a ≥ 0`, `1 + a·(1 − min)` for `a < 0`, so that zero holds the published
//! price; with 1 outside the bounds the factor is clipped), and its cost is
//! minus the trading revenue.

use ndarray::Array1;

/// The system operator of a batch.
#[derive(Debug, Clone)]
pub struct SystemOperator {
    /// Price column of the time series.
    pub price_column: usize,
    /// Export is paid `price × sell_discount`.
    pub sell_discount: f64,
    /// Buses it watches (e.g. the DSO feeder), solved ones only.
    pub buses: Vec<usize>,
    /// Lines with both ends on its buses.
    pub lines: Vec<usize>,
    /// Price-factor bounds when it is an agent.
    pub control: Option<(f64, f64)>,
    /// Price factor per copy.
    pub factor: Array1<f64>,
}

impl SystemOperator {
    /// Whether it acts.
    pub fn is_agent(&self) -> bool {
        self.control.is_some()
    }
    /// The price factors' rows, all copies.
    pub(crate) fn rows(&mut self) -> OperatorRows<'_> {
        OperatorRows {
            control: self.control,
            factor: self.factor.view_mut(),
        }
    }
    /// Apply an action of copy `c`.
    pub fn apply(&mut self, c: usize, a: f64) {
        self.rows().apply(c, a)
    }
    /// The action that sets price factor `f` (inverse of [`Self::apply`]).
    pub fn action_for(&self, f: f64) -> f64 {
        match self.control {
            Some((lo, hi)) => crate::devices::centred_inverse(f - 1.0, lo - 1.0, hi - 1.0),
            None => 0.0,
        }
    }
    /// Factor back to 1 (clipped to the bounds).
    pub fn reset_copy(&mut self, c: usize) {
        self.rows().reset_copy(c)
    }
}

/// The operator's price factor rows (all copies, or a part's), for stepping
/// parts of the batch on several threads.
pub(crate) struct OperatorRows<'a> {
    control: Option<(f64, f64)>,
    factor: ndarray::ArrayViewMut1<'a, f64>,
}

impl<'a> OperatorRows<'a> {
    /// These rows cut at `bounds` (one part per consecutive pair).
    pub fn split(self, bounds: &[usize]) -> Vec<OperatorRows<'a>> {
        let control = self.control;
        (crate::powerflow::batch::split_rows(self.factor, bounds).into_iter())
            .map(|factor| OperatorRows { control, factor })
            .collect()
    }
    /// See [`SystemOperator::apply`].
    pub fn apply(&mut self, c: usize, a: f64) {
        if let Some((lo, hi)) = self.control {
            self.factor[c] = (1.0 + crate::devices::centred(a, lo - 1.0, hi - 1.0)).clamp(lo, hi);
        }
    }
    /// See [`SystemOperator::reset_copy`].
    pub fn reset_copy(&mut self, c: usize) {
        self.factor[c] = match self.control {
            Some((lo, hi)) => 1.0f64.clamp(lo, hi),
            None => 1.0,
        };
    }
}
