//! Coordinators and device agents at run time (semantics: [`crate::setup::agents`]):
//! how the agents' effective actions become each grid agent's device action
//! row (the row a [`crate::agents::GridAgent`] splits over its devices).

use crate::devices::DeviceRef;
use crate::setup::agents::{DevicePolicy, Message};

/// One device agent (learner or fixed rule).
#[derive(Debug, Clone)]
pub struct Unit {
    /// Full name (`MG1/ESS1`).
    pub name: String,
    /// Its devices: `(offset, length, device)` in its grid agent's action row.
    pub slots: Vec<(usize, usize, DeviceRef)>,
    /// What drives its devices.
    pub policy: DevicePolicy,
    /// Length of the message it receives.
    pub msg_dim: usize,
    /// Message delay in steps.
    pub msg_delay: usize,
    /// Its agent index when it learns.
    pub agent: Option<usize>,
}

/// How a grid agent's device action row is made.
#[derive(Debug, Clone)]
pub enum Driver {
    /// The row is agent `.0`'s action.
    Flat(usize),
    /// A coordinator and its device agents.
    Hier {
        /// The coordinator's agent index (None: it does not learn; zero message).
        coordinator: Option<usize>,
        /// The message kind.
        message: Message,
        /// Length of the coordinator's message.
        msg_dim: usize,
        /// Its units: a range of the global unit list.
        units: std::ops::Range<usize>,
        /// `(offset, length)` of devices in no unit (set-points apply directly).
        direct: Vec<(usize, usize)>,
    },
}

impl Unit {
    /// Gather this unit's set-points out of a coordinator's set-point message.
    #[inline]
    pub fn gather(&self, msg: &[f64], out: &mut [f64]) {
        let mut k = 0;
        for &(off, len, _) in &self.slots {
            out[k..k + len].copy_from_slice(&msg[off..off + len]);
            k += len;
        }
    }

    /// Write this unit's own action (slot order) into the grid row.
    #[inline]
    pub fn scatter(&self, action: &[f64], row: &mut [f64]) {
        let mut k = 0;
        for &(off, len, _) in &self.slots {
            row[off..off + len].copy_from_slice(&action[k..k + len]);
            k += len;
        }
    }

    /// Proportional split of the request `m = [p, q]` (`q = 0` when the
    /// message has one value): generator `[p, q]`, storage `[−p]`, solar/wind
    /// `[min(p, 0), q]`, tap changer and capacitor `[0]` (hold).
    #[inline]
    pub fn proportional(&self, m: &[f64], row: &mut [f64]) {
        let p = m.first().copied().unwrap_or(0.0);
        let q = m.get(1).copied().unwrap_or(0.0);
        for &(off, _, d) in &self.slots {
            match d {
                DeviceRef::Generator(_) => {
                    row[off] = p;
                    row[off + 1] = q;
                }
                DeviceRef::Storage(_) => row[off] = -p,
                DeviceRef::Renewable(_) => {
                    row[off] = p.min(0.0);
                    row[off + 1] = q;
                }
                DeviceRef::TapChanger(_) | DeviceRef::Capacitor(_) => row[off] = 0.0,
            }
        }
    }
}
