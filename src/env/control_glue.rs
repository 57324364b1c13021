//! The automatic controllers of a setup inside the environment's step: the
//! batched [`ControlLoop`] runs them to settlement after the agents'
//! set-points are written (see [`crate::control`]).

use crate::control::{ControlLoop, ControlOptions};
use crate::error::Result;
use crate::network::Network;
use crate::powerflow::PowerFlow;
use crate::setup::ControllerSpec;

/// The environment's controllers.
pub(crate) struct EnvControl {
    /// Controllers in order (the network file's, then the setup's).
    pub specs: Vec<ControllerSpec>,
    /// `None` when there are no controllers: one plain power flow per step.
    lp: Option<ControlLoop>,
}

impl EnvControl {
    pub fn new(
        net: &Network,
        specs: Vec<ControllerSpec>,
        batch: usize,
        options: ControlOptions,
    ) -> Result<Self> {
        let lp = if specs.is_empty() {
            None
        } else {
            let ctrls: Vec<_> = specs.iter().map(|s| s.controller.clone()).collect();
            Some(ControlLoop::new(net, &ctrls, batch, options)?)
        };
        Ok(EnvControl { specs, lp })
    }

    /// Solve and settle every copy's controllers.
    pub fn run(&mut self, pf: &mut dyn PowerFlow) -> Result<()> {
        match &mut self.lp {
            Some(lp) => {
                lp.run(pf)?;
            }
            None => {
                pf.solve()?;
            }
        }
        Ok(())
    }

    /// Control iterations of copy `c` in the last step (0: the first power
    /// flow was already settled, or there are no controllers).
    #[inline]
    pub fn iterations(&self, c: usize) -> u32 {
        self.lp.as_ref().map_or(0, |l| l.iterations()[c])
    }

    /// Steps controller `k` moved in copy `c` in the last step.
    #[inline]
    pub fn moves(&self, c: usize, k: usize) -> u32 {
        self.lp.as_ref().map_or(0, |l| l.moves()[[c, k]])
    }
}
