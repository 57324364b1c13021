//! Devices, vectorised over the batch: parameters once per unit, state as
//! `[B, n_units]` arrays (structure of arrays). Each kind decodes its slice of
//! an agent's action (values in `[-1, 1]`, clipped) into set-points, enforces
//! its limits, and writes the set-points into the power-flow inputs.
//!
//! **Zero means "hold".** Every mapping is chosen so that the all-zero action
//! leaves the grid as it is: taps and capacitor steps unchanged (relative
//! moves), generators at their minimum, storage idle, solar and wind
//! uncurtailed, no reactive power. Actions are clipped to `[-1, 1]`.
//!
//! | device | dims | action → set-point | at `a = 0` | set-point → action (`action_for`) |
//! |---|---|---|---|---|
//! | generator | 2 | `P = p_min + max(a0,0)·(p_max−p_min)`; `Q = a1·q_max` for `a1 ≥ 0`, `−a1·q_min` for `a1 < 0`; then projected onto box ∩ circle ∩ power-factor wedge | `P = p_min`, `Q = 0` | `a0 = (P−p_min)/(p_max−p_min)`, `a1 = Q/q_max` or `−Q/q_min` |
//! | storage | 1 | `P = a0·p_max` (positive = charging), clipped to the SOC head-room | idle | `a0 = P/p_max` |
//! | solar / wind | 2 | `P = available·(1 + min(a0,0))` (negative curtails), `Q = a1·q_max` within the inverter rating | uncurtailed, `Q = 0` | `a0 = P/available − 1`, `a1 = Q/q_max` |
//! | tap changer | 1 | `tap ← clamp(tap + round(a0·max_move), tap_min, tap_max)` | unchanged | `a0 = (target − tap)/max_move` |
//! | capacitor | 1 | `step ← clamp(step + round(a0·max_move), 0, max_step)` | unchanged | `a0 = (target − step)/max_move` |
//! | system operator | 1 | price factor `1 + a0·(max−1)` for `a0 ≥ 0`, `1 + a0·(1−min)` for `a0 < 0` | factor 1 | see [`crate::agents::SystemOperator::action_for`] |
//!
//! The inverse mappings (`GeneratorParams::action_for`, `StorageParams::action_for`,
//! `RenewableParams::action_for`, `TapChangers::action_for`,
//! `Capacitors::action_for`) turn set-points back into actions, so a schedule
//! computed elsewhere (an optimal dispatch) can be replayed through the
//! environment.

/// A device kind's per-copy state rows (views of its `[B, n]` arrays, all
/// copies or a part's) with the parameters they need, and `split`, which cuts
/// them into parts of consecutive copies (for stepping parts of the batch on
/// several threads; local copy indices from 0 in each part).
macro_rules! device_rows {
    ($(#[$m:meta])* $name:ident { $($shared:ident: $st:ty),* ; $($rows:ident),* }) => {
        $(#[$m])*
        pub(crate) struct $name<'a> {
            $(pub(crate) $shared: &'a $st,)*
            $(pub(crate) $rows: ndarray::ArrayViewMut2<'a, f64>,)*
        }
        impl<'a> $name<'a> {
            /// These rows cut at `bounds` (`bounds[0] = 0`, ascending, last =
            /// the rows): one part per consecutive pair.
            pub(crate) fn split(self, bounds: &[usize]) -> Vec<$name<'a>> {
                $(let mut $rows = crate::powerflow::batch::split_rows(self.$rows, bounds).into_iter();)*
                (1..bounds.len())
                    .map(|_| $name {
                        $($shared: self.$shared,)*
                        $($rows: $rows.next().expect("a part per bound"),)*
                    })
                    .collect()
            }
        }
    };
}

pub mod capacitor;
pub mod generator;
pub mod load;
pub mod renewable;
pub mod storage;
pub mod transformer;

pub(crate) use capacitor::CapacitorRows;
pub use capacitor::{CapacitorParams, Capacitors};
pub(crate) use generator::GeneratorRows;
pub use generator::{GeneratorParams, Generators};
pub use load::LoadGroups;
pub(crate) use renewable::RenewableRows;
pub use renewable::{RenewableParams, Renewables};
pub(crate) use storage::StorageRows;
pub use storage::{StorageParams, Storages};
pub(crate) use transformer::TapRows;
pub use transformer::{TapChangers, TapParams};

/// Map an action value in `[-1, 1]` (clipped) to `[lo, hi]` linearly.
#[inline]
pub fn scale_action(a: f64, lo: f64, hi: f64) -> f64 {
    let a = a.clamp(-1.0, 1.0);
    lo + 0.5 * (a + 1.0) * (hi - lo)
}

/// Map `a ∈ [-1, 1]` (clipped) onto `[lo, hi]` with `a = 0 → 0`, piecewise
/// linear: `a·hi` for `a ≥ 0`, `−a·lo` for `a < 0` (with `lo ≤ 0 ≤ hi`; a
/// bound on the wrong side of 0 is treated as 0).
#[inline]
pub fn centred(a: f64, lo: f64, hi: f64) -> f64 {
    let a = a.clamp(-1.0, 1.0);
    if a >= 0.0 {
        a * hi.max(0.0)
    } else {
        -a * lo.min(0.0)
    }
}

/// A tap's or a capacitor's position after an action from `current`:
/// `clamp(current + round(a·max_move), lo, hi)` (`a` clipped to `[-1, 1]`).
#[inline]
pub(crate) fn relative_move(current: f64, a: f64, max_move: f64, lo: f64, hi: f64) -> f64 {
    (current + (a.clamp(-1.0, 1.0) * max_move).round()).clamp(lo, hi)
}

/// Inverse of [`centred`]: `x/hi` for `x ≥ 0`, `−x/lo` for `x < 0`, clipped to `[-1, 1]`.
#[inline]
pub fn centred_inverse(x: f64, lo: f64, hi: f64) -> f64 {
    let a = if x >= 0.0 {
        if hi > 0.0 {
            x / hi
        } else {
            0.0
        }
    } else if lo < 0.0 {
        -x / lo
    } else {
        0.0
    };
    a.clamp(-1.0, 1.0)
}

/// One device of an agent: its kind and its unit index within that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRef {
    /// Unit of [`Generators`].
    Generator(usize),
    /// Unit of [`Storages`].
    Storage(usize),
    /// Unit of [`Renewables`].
    Renewable(usize),
    /// Unit of [`TapChangers`].
    TapChanger(usize),
    /// Unit of [`Capacitors`].
    Capacitor(usize),
}

impl DeviceRef {
    /// Number of action values the device takes.
    pub fn action_dim(self) -> usize {
        match self {
            DeviceRef::Generator(_) | DeviceRef::Renewable(_) => 2,
            DeviceRef::Storage(_) | DeviceRef::TapChanger(_) | DeviceRef::Capacitor(_) => 1,
        }
    }
    /// Number of observation values the device contributes.
    pub fn obs_dim(self) -> usize {
        match self {
            DeviceRef::Generator(_) => 2,
            DeviceRef::Storage(_) => 2,
            DeviceRef::Renewable(_) => 3,
            DeviceRef::TapChanger(_) | DeviceRef::Capacitor(_) => 1,
        }
    }
}

/// Every device of a batch.
#[derive(Debug, Clone)]
pub struct Devices {
    /// Dispatchable generators.
    pub generators: Generators,
    /// Energy storage.
    pub storages: Storages,
    /// Solar and wind.
    pub renewables: Renewables,
    /// Tap changers.
    pub taps: TapChangers,
    /// Capacitor banks.
    pub capacitors: Capacitors,
    /// Loads following profiles.
    pub loads: LoadGroups,
}

/// Every device's per-copy state rows (all copies, [`Devices::rows`], or a
/// part's, [`DeviceRows::split`]): what applying actions and resetting copies
/// write, so that parts of the batch can be stepped on several threads.
pub(crate) struct DeviceRows<'a> {
    pub generators: GeneratorRows<'a>,
    pub storages: StorageRows<'a>,
    pub renewables: RenewableRows<'a>,
    pub taps: TapRows<'a>,
    pub capacitors: CapacitorRows<'a>,
}

impl<'a> DeviceRows<'a> {
    /// These rows cut at `bounds` (one part per consecutive pair).
    pub fn split(self, bounds: &[usize]) -> Vec<DeviceRows<'a>> {
        let mut g = self.generators.split(bounds).into_iter();
        let mut s = self.storages.split(bounds).into_iter();
        let mut r = self.renewables.split(bounds).into_iter();
        let mut t = self.taps.split(bounds).into_iter();
        let mut c = self.capacitors.split(bounds).into_iter();
        let part = "a part per bound";
        (1..bounds.len())
            .map(|_| DeviceRows {
                generators: g.next().expect(part),
                storages: s.next().expect(part),
                renewables: r.next().expect(part),
                taps: t.next().expect(part),
                capacitors: c.next().expect(part),
            })
            .collect()
    }

    /// Apply one device's action slice for copy `c`; `renewable_profile` is
    /// the renewable's profile value this hour.
    #[inline]
    pub fn apply(&mut self, d: DeviceRef, c: usize, a: &[f64], dt_h: f64, renewable_profile: f64) {
        match d {
            DeviceRef::Generator(k) => self.generators.apply(c, k, a[0], a[1]),
            DeviceRef::Storage(k) => self.storages.apply(c, k, a[0], dt_h),
            DeviceRef::Renewable(k) => self.renewables.apply(c, k, a[0], a[1], renewable_profile),
            DeviceRef::TapChanger(k) => self.taps.apply(c, k, a[0]),
            DeviceRef::Capacitor(k) => self.capacitors.apply(c, k, a[0]),
        }
    }

    /// Reset copy `c`'s device state (renewables at zero until
    /// [`RenewableRows::set_uncurtailed`]).
    pub fn reset_copy(&mut self, c: usize) {
        self.generators.reset_copy(c);
        self.storages.reset_copy(c);
        self.renewables.reset_copy(c);
        self.taps.reset_copy(c);
        self.capacitors.reset_copy(c);
    }
}

impl Devices {
    /// Every device's per-copy state rows, all copies.
    pub(crate) fn rows(&mut self) -> DeviceRows<'_> {
        DeviceRows {
            generators: self.generators.rows(),
            storages: self.storages.rows(),
            renewables: self.renewables.rows(),
            taps: self.taps.rows(),
            capacitors: self.capacitors.rows(),
        }
    }

    /// Apply one device's action slice for copy `c`; `renewable_profile` is
    /// the renewable's profile value this hour.
    #[inline]
    pub fn apply(&mut self, d: DeviceRef, c: usize, a: &[f64], dt_h: f64, renewable_profile: f64) {
        self.rows().apply(d, c, a, dt_h, renewable_profile)
    }

    /// Operating cost of one device for copy `c` over this step ($).
    #[inline]
    pub fn cost(&self, d: DeviceRef, c: usize, dt_h: f64) -> f64 {
        match d {
            DeviceRef::Generator(k) => self.generators.cost(c, k, dt_h),
            DeviceRef::Storage(k) => self.storages.cost(c, k, dt_h),
            DeviceRef::Renewable(_) => 0.0,
            DeviceRef::TapChanger(k) => self.taps.cost(c, k),
            DeviceRef::Capacitor(k) => self.capacitors.cost(c, k),
        }
    }

    /// Limit violation of one device for copy `c` (SOC outside limits; `|S|` above rating in MVA).
    #[inline]
    pub fn violation(&self, d: DeviceRef, c: usize) -> f64 {
        match d {
            DeviceRef::Generator(k) => self.generators.violation(c, k),
            DeviceRef::Storage(k) => self.storages.violation(c, k),
            DeviceRef::Renewable(k) => self.renewables.violation(c, k),
            DeviceRef::TapChanger(_) | DeviceRef::Capacitor(_) => 0.0,
        }
    }

    /// Write one device's normalised observation (`obs_dim` values).
    #[inline]
    pub fn observe(&self, d: DeviceRef, c: usize, out: &mut [f32]) {
        match d {
            DeviceRef::Generator(k) => self.generators.observe(c, k, out),
            DeviceRef::Storage(k) => self.storages.observe(c, k, out),
            DeviceRef::Renewable(k) => self.renewables.observe(c, k, out),
            DeviceRef::TapChanger(k) => self.taps.observe(c, k, out),
            DeviceRef::Capacitor(k) => self.capacitors.observe(c, k, out),
        }
    }

    /// Reset copy `c`'s device state (renewables at zero until
    /// [`Renewables::set_uncurtailed`]).
    pub fn reset_copy(&mut self, c: usize) {
        self.rows().reset_copy(c)
    }
}
