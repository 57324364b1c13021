//! The automatic controllers of a setup inside the environment's step: built
//! from the setup's resolved controllers, run to settlement after the
//! agents' set-points are written (see [`crate::control`]).

use crate::error::{Error, Result};
use crate::network::Network;
use crate::powerflow::PowerFlow;
use crate::setup::ControllerSpec;
use ndarray::Array2;

/// The environment's controllers.
pub(crate) struct EnvControl {
    /// Controllers in setup order.
    pub specs: Vec<ControllerSpec>,
    /// Control iterations (power flows) of the last step, per copy.
    pub iterations: Vec<u32>,
    /// Moves per copy and controller in the last step.
    pub moves: Array2<u32>,
}

impl EnvControl {
    pub fn new(
        _net: &Network,
        specs: Vec<ControllerSpec>,
        batch: usize,
        _cap: u32,
    ) -> Result<Self> {
        let n = specs.len();
        Ok(EnvControl {
            specs,
            iterations: vec![1; batch],
            moves: Array2::zeros((batch, n)),
        })
    }

    /// Solve and settle every copy's controllers.
    pub fn run(&mut self, pf: &mut dyn PowerFlow) -> Result<()> {
        if !self.specs.is_empty() {
            return Err(Error::InvalidSetup(
                "automatic controllers need the control module".into(),
            ));
        }
        pf.solve()?;
        self.iterations.iter_mut().for_each(|x| *x = 1);
        Ok(())
    }
}
