//! Loads: `P = p_mw × scale × profile(hour)` (Q likewise), written to the power
//! flow as the load's scaling factor `scale × profile`. Loads in no group keep
//! the network's scaling.

/// Loads that follow a profile.
#[derive(Debug, Clone, Default)]
pub struct LoadGroups {
    /// `(load index, profile column, scale)` per profiled load.
    pub members: Vec<(usize, usize, f64)>,
}

impl LoadGroups {
    /// Scaling factor of member `m` at a profile value.
    #[inline]
    pub fn scaling(&self, m: usize, profile: f64) -> f64 {
        self.members[m].2 * profile
    }
}
