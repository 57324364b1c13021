//! Automatic controllers of a network, in the manner of pandapower's
//! `DiscreteTapControl` and `DiscreteShuntController` (the control loop that
//! runs them is `crate::control::ControlLoop`).
//!
//! Controllers refer to elements by 0-based position, like the rest of the
//! network format. In YAML each one is tagged by `type`:
//!
//! ```yaml
//! controllers:
//!   - type: discrete_tap        # pandapower DiscreteTapControl
//!     name: reg1
//!     trafo: 0                  # index into trafos (must have a tap changer)
//!     side: lv                  # measured side (default lv)
//!     vm_lower_pu: 0.99
//!     vm_upper_pu: 1.01
//!     line_drop: {r_volt: 2.7, x_volt: 1.6, pt_ratio: 120, ct_primary_a: 100}   # optional
//!   - type: discrete_shunt      # pandapower DiscreteShuntController
//!     shunt: 0                  # index into shunts
//!     bus: 24                   # measured bus (default the shunt's bus)
//!     vm_set_pu: 1.0
//!     tol: 0.01
//! ```

use super::model::{Network, TapSide};
use crate::complex::C64;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn lv() -> TapSide {
    TapSide::Lv
}
fn tol_default() -> f64 {
    1e-3
}
fn one_u32() -> u32 {
    1
}
fn is_one_u32(x: &u32) -> bool {
    *x == 1
}

/// An automatic controller. Controllers act in list order within a control
/// iteration (pandapower: ascending `order`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Controller {
    /// A tap changer keeping a bus voltage inside a band.
    DiscreteTap(DiscreteTapControl),
    /// A switched shunt (capacitor bank) keeping a bus voltage near a set-point.
    DiscreteShunt(DiscreteShuntControl),
}

impl Controller {
    /// The controller's name.
    pub fn name(&self) -> &str {
        match self {
            Controller::DiscreteTap(c) => &c.name,
            Controller::DiscreteShunt(c) => &c.name,
        }
    }
    /// Whether the controller acts.
    pub fn in_service(&self) -> bool {
        match self {
            Controller::DiscreteTap(c) => c.in_service,
            Controller::DiscreteShunt(c) => c.in_service,
        }
    }
    /// The YAML type tag (`discrete_tap`, `discrete_shunt`).
    pub fn kind(&self) -> &'static str {
        match self {
            Controller::DiscreteTap(_) => "discrete_tap",
            Controller::DiscreteShunt(_) => "discrete_shunt",
        }
    }
}

/// pandapower's `DiscreteTapControl`: after each power flow, a trafo whose
/// measured voltage `V` (at the bus of `side`, or the line-drop compensated
/// voltage, see [`LineDrop`]) lies outside the band moves its tap by one step
/// towards the band:
///
/// * direction: let `c = s_tap·s_side·sign(step_percent)` with `s_tap = +1` if
///   the tap changer is on the HV winding (−1 on LV) and `s_side = −1` if the
///   measured side is HV (+1 on LV). If `c = +1` a higher tap lowers `V`:
///   `V < vm_lower_pu` → tap − 1, `V > vm_upper_pu` → tap + 1; if `c = −1`, the
///   reverse. A move that would leave `[tap.min, tap.max]` is not made.
/// * settled when `vm_lower_pu < V < vm_upper_pu` (strict, as pandapower), or
///   when the tap sits at the limit it would have to pass; also when the trafo
///   is out of service, the measured bus is an in-service ext_grid's bus, or the
///   bus is not energised.
///
/// `tol` does not widen the band (pandapower ignores it in this mode); it only
/// enters when the band is made from a set-point, see
/// [`DiscreteTapControl::from_set_point`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscreteTapControl {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Controlled trafo (index into `trafos`; it must have a tap changer).
    pub trafo: usize,
    /// Measured side: the voltage of this winding's bus is regulated (pandapower's default `lv`).
    #[serde(default = "lv")]
    pub side: TapSide,
    /// Lower edge of the band in p.u.
    pub vm_lower_pu: f64,
    /// Upper edge of the band in p.u.
    pub vm_upper_pu: f64,
    /// pandapower's `tol` (default 1e-3 p.u.); see the type's documentation.
    #[serde(default = "tol_default")]
    pub tol: f64,
    /// Optional line-drop compensation (our extension; pandapower has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_drop: Option<LineDrop>,
    /// Whether the controller acts.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

impl DiscreteTapControl {
    /// pandapower's `DiscreteTapControl.from_tap_step_percent`: the band
    /// `vm_set_pu ± (|tap.step_percent|/200 + tol)` (half a tap step plus `tol`
    /// on either side), measured at the LV side.
    pub fn from_set_point(net: &Network, trafo: usize, vm_set_pu: f64, tol: f64) -> Result<Self> {
        let t = net.trafos.get(trafo).ok_or_else(|| {
            Error::InvalidNetwork(format!(
                "trafo {trafo} does not exist ({} trafos)",
                net.trafos.len()
            ))
        })?;
        let tap = t.tap.as_ref().ok_or_else(|| {
            Error::InvalidNetwork(format!("trafo {trafo} ({:?}) has no tap changer", t.name))
        })?;
        let delta = tap.step_percent.abs() / 200.0 + tol;
        Ok(DiscreteTapControl {
            name: String::new(),
            trafo,
            side: TapSide::Lv,
            vm_lower_pu: vm_set_pu - delta,
            vm_upper_pu: vm_set_pu + delta,
            tol,
            line_drop: None,
            in_service: true,
        })
    }
}

/// Line-drop compensation of a tap controller, as IEEE regulators are set: the
/// controller regulates the voltage at a virtual load centre,
///
/// `V_reg = V − I·Z_c`, `Z_c = (r_volt + j·x_volt)·pt_ratio / ct_primary_a` (ohms),
///
/// with `V` the measured bus's voltage and `I` the current leaving the trafo
/// at that side, towards the feeder. In the bus's per unit (base
/// `Z_b = vn_kv²/sn_mva`): `V_reg,pu = V_pu − I_pu·Z_c/Z_b`. This is the relay
/// voltage `V/pt_ratio − (I/ct_primary_a)·(R + jX)` in volts divided by the
/// secondary base `V_LN,base/pt_ratio`.
///
/// Example, IEEE 34 regulator 1: `R = 2.7 V`, `X = 1.6 V`, PT ratio 120, CT
/// 100 A give `Z_c = (2.7 + j1.6)·120/100 = 3.24 + j1.92 Ω`, i.e. on 24.9 kV
/// and 1 MVA `0.005226 + j0.003097 p.u.`
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDrop {
    /// Compensator R setting in volts (on the PT secondary, at rated CT current).
    pub r_volt: f64,
    /// Compensator X setting in volts.
    pub x_volt: f64,
    /// Potential-transformer ratio (primary line-to-neutral volts per secondary volt).
    pub pt_ratio: f64,
    /// CT primary rating in A (the line current that gives rated compensator current).
    pub ct_primary_a: f64,
}

impl LineDrop {
    /// Compensator impedance on the primary in ohms: `(R + jX)·pt_ratio/ct_primary_a`.
    pub fn z_ohm(&self) -> C64 {
        C64::new(self.r_volt, self.x_volt).scale(self.pt_ratio / self.ct_primary_a)
    }
    /// Compensator impedance in per unit of a bus of `vn_kv` on base `sn_mva`.
    pub fn z_pu(&self, vn_kv: f64, sn_mva: f64) -> C64 {
        self.z_ohm().scale(sn_mva / (vn_kv * vn_kv))
    }
}

/// pandapower's `DiscreteShuntController`: after each power flow, with `V` the
/// measured bus's voltage and `s = sign(q_mvar)` of the shunt (−1 for a
/// capacitor):
///
/// * `V > vm_set_pu + tol` → `step += increment·s`; `V ≤ vm_set_pu − tol` →
///   `step −= increment·s`; then clipped to `[0, max_step]`;
/// * settled when `|V − vm_set_pu| < tol`, or the step sits at the limit on the
///   side it would have to pass (for a capacitor: `V < vm_set_pu` at
///   `max_step`, `V > vm_set_pu` at 0), or the shunt is out of service, or the
///   measured bus is not energised (pandapower would never settle there).
///
/// A controller measuring an in-service ext_grid's bus does nothing
/// (pandapower deactivates it). The step compared with the limits is the
/// shunt's current one; pandapower 3.5.6 compares the step it cached when the
/// controller was made or last moved, which differs only when the step was
/// changed from outside in between (the reference script syncs it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscreteShuntControl {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Controlled shunt (index into `shunts`; `max_step` ≥ 1).
    pub shunt: usize,
    /// Measured bus (index into `buses`); `None` = the shunt's bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<usize>,
    /// Voltage set-point in p.u.
    pub vm_set_pu: f64,
    /// Half-width of the dead band in p.u. (pandapower's default 1e-3).
    #[serde(default = "tol_default")]
    pub tol: f64,
    /// Steps per control iteration (≥ 1).
    #[serde(default = "one_u32", skip_serializing_if = "is_one_u32")]
    pub increment: u32,
    /// Whether the controller acts.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

impl DiscreteShuntControl {
    /// The measured bus: `bus`, or the shunt's bus.
    pub fn measured_bus(&self, net: &Network) -> usize {
        self.bus
            .unwrap_or_else(|| net.shunts.get(self.shunt).map_or(usize::MAX, |s| s.bus))
    }
}

/// Check `controllers` against `net`; every problem names the controller and the element.
pub fn validate_controllers(net: &Network, controllers: &[Controller]) -> Result<()> {
    for (i, c) in controllers.iter().enumerate() {
        let bad = |what: String| {
            Err(Error::InvalidNetwork(format!(
                "controller {i} ({:?}, {}): {what}",
                c.name(),
                c.kind()
            )))
        };
        match c {
            Controller::DiscreteTap(t) => {
                let Some(tr) = net.trafos.get(t.trafo) else {
                    return bad(format!(
                        "trafo {} does not exist (the network has {} trafos)",
                        t.trafo,
                        net.trafos.len()
                    ));
                };
                if tr.tap.is_none() {
                    return bad(format!(
                        "trafo {} ({:?}) has no tap changer",
                        t.trafo, tr.name
                    ));
                }
                if !(t.vm_lower_pu.is_finite() && t.vm_upper_pu.is_finite()) {
                    return bad(format!(
                        "band [{}, {}] is not finite",
                        t.vm_lower_pu, t.vm_upper_pu
                    ));
                }
                if t.vm_lower_pu >= t.vm_upper_pu {
                    return bad(format!(
                        "vm_lower_pu ({}) must be below vm_upper_pu ({})",
                        t.vm_lower_pu, t.vm_upper_pu
                    ));
                }
                if !(t.tol.is_finite() && t.tol >= 0.0) {
                    return bad(format!("tol must be finite and ≥ 0, got {}", t.tol));
                }
                if let Some(ld) = &t.line_drop {
                    if !(ld.r_volt.is_finite() && ld.x_volt.is_finite()) {
                        return bad("line_drop r_volt and x_volt must be finite".into());
                    }
                    let positive = |x: f64| x.is_finite() && x > 0.0;
                    if !(positive(ld.pt_ratio) && positive(ld.ct_primary_a)) {
                        return bad(format!(
                            "line_drop pt_ratio ({}) and ct_primary_a ({}) must be positive",
                            ld.pt_ratio, ld.ct_primary_a
                        ));
                    }
                }
            }
            Controller::DiscreteShunt(s) => {
                let Some(sh) = net.shunts.get(s.shunt) else {
                    return bad(format!(
                        "shunt {} does not exist (the network has {} shunts)",
                        s.shunt,
                        net.shunts.len()
                    ));
                };
                if sh.max_step == 0 {
                    return bad(format!(
                        "shunt {} ({:?}) has max_step 0: nothing to switch",
                        s.shunt, sh.name
                    ));
                }
                if let Some(b) = s.bus {
                    if b >= net.buses.len() {
                        return bad(format!(
                            "bus {b} does not exist (the network has {} buses)",
                            net.buses.len()
                        ));
                    }
                }
                if !(s.vm_set_pu.is_finite() && s.vm_set_pu > 0.0) {
                    return bad(format!("vm_set_pu must be positive, got {}", s.vm_set_pu));
                }
                if !(s.tol.is_finite() && s.tol >= 0.0) {
                    return bad(format!("tol must be finite and ≥ 0, got {}", s.tol));
                }
                if s.increment == 0 {
                    return bad("increment must be at least 1".into());
                }
            }
        }
    }
    Ok(())
}
