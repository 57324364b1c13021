use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_one(x: &f64) -> bool {
    *x == 1.0
}
fn is_one_u32(x: &u32) -> bool {
    *x == 1
}
fn is_zero(x: &f64) -> bool {
    *x == 0.0
}
fn fifty() -> f64 {
    50.0
}

/// A whole network. Element tables keep their order; buses are referred to by
/// their position in `buses` (0-based).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Name of the network.
    #[serde(default)]
    pub name: String,
    /// System frequency in Hz (line charging uses it).
    #[serde(default = "fifty")]
    pub f_hz: f64,
    /// Per-unit power base in MVA.
    #[serde(default = "one")]
    pub sn_mva: f64,
    /// Buses.
    pub buses: Vec<Bus>,
    /// Lines (pi model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<Line>,
    /// Two-winding transformers (pandapower "t" model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trafos: Vec<Trafo>,
    /// Constant-power loads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loads: Vec<Load>,
    /// Static generators (constant P/Q injections).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sgens: Vec<Sgen>,
    /// Storage units (load convention: positive P = charging).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storages: Vec<Storage>,
    /// Shunts (constant impedance, `step` times the rated power).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shunts: Vec<Shunt>,
    /// External grids (slack buses).
    pub ext_grids: Vec<ExtGrid>,
    /// Three-winding transformers (pandapower's star-point model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trafo3ws: Vec<Trafo3w>,
    /// Per-unit impedances between two buses (possibly non-reciprocal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub impedances: Vec<Impedance>,
    /// Ward equivalents: a constant-power load plus a constant-impedance shunt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wards: Vec<Ward>,
    /// Voltage-controlling generators (PV buses): `p_mw` and `|V| = vm_pu` fixed,
    /// Q whatever holds the voltage (pandapower's `gen`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gens: Vec<Gen>,
    /// Extended wards: a ward plus an internal PV node at `vm_pu` behind
    /// `r_ohm + j·x_ohm` (pandapower's `xward`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xwards: Vec<Xward>,
    /// Switches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub switches: Vec<Switch>,
    /// Automatic controllers (tap changers, switched capacitors), run by
    /// `crate::control::ControlLoop` (see [`Controller`](super::Controller)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controllers: Vec<super::Controller>,
}

/// A bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bus {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Nominal voltage in kV (the per-unit base).
    pub vn_kv: f64,
    /// Whether the bus is in service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
    /// Zone label (informational).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
}

/// A line: pi model with per-km parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// From bus (index into `buses`).
    pub from_bus: usize,
    /// To bus.
    pub to_bus: usize,
    /// Length in km.
    pub length_km: f64,
    /// Series resistance per km.
    pub r_ohm_per_km: f64,
    /// Series reactance per km.
    pub x_ohm_per_km: f64,
    /// Shunt capacitance per km.
    #[serde(default)]
    pub c_nf_per_km: f64,
    /// Shunt conductance per km.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub g_us_per_km: f64,
    /// Thermal current limit (one system) in kA.
    pub max_i_ka: f64,
    /// Number of parallel systems.
    #[serde(default = "one_u32", skip_serializing_if = "is_one_u32")]
    pub parallel: u32,
    /// Derating factor of `max_i_ka`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub df: f64,
    /// In service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

/// Which winding carries the tap changer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TapSide {
    /// High-voltage side.
    Hv,
    /// Low-voltage side.
    Lv,
}

/// A ratio tap changer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapChanger {
    /// Winding with the taps.
    pub side: TapSide,
    /// Neutral position.
    #[serde(default)]
    pub neutral: f64,
    /// Voltage change per step in percent of the rated voltage of `side`.
    pub step_percent: f64,
    /// Lowest position.
    pub min: f64,
    /// Highest position.
    pub max: f64,
    /// Current position.
    #[serde(default)]
    pub pos: f64,
}

/// A two-winding transformer (pandapower "t" model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trafo {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// High-voltage bus.
    pub hv_bus: usize,
    /// Low-voltage bus.
    pub lv_bus: usize,
    /// Rated power in MVA.
    pub sn_mva: f64,
    /// Rated HV voltage in kV.
    pub vn_hv_kv: f64,
    /// Rated LV voltage in kV.
    pub vn_lv_kv: f64,
    /// Short-circuit voltage in percent.
    pub vk_percent: f64,
    /// Real part of the short-circuit voltage in percent.
    pub vkr_percent: f64,
    /// Iron losses in kW.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pfe_kw: f64,
    /// Open-loop (magnetising) current in percent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub i0_percent: f64,
    /// Phase shift in degrees (LV lags HV by this angle).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shift_degree: f64,
    /// Optional ratio tap changer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap: Option<TapChanger>,
    /// Parallel units.
    #[serde(default = "one_u32", skip_serializing_if = "is_one_u32")]
    pub parallel: u32,
    /// Derating factor.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub df: f64,
    /// In service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

/// A load: consumes `p_mw * scaling`, `q_mvar * scaling` at |V| = 1 p.u.
/// Voltage-dependent (ZIP) as in pandapower's `runpp`: of P, `const_z_p_percent`
/// is constant impedance (∝ |V|²), `const_i_p_percent` constant current (∝ |V|),
/// the rest constant power; likewise for Q. pandapower applies the mean
/// percentages of a bus's in-service loads to every injection of the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Bus.
    pub bus: usize,
    /// Active power consumed in MW.
    pub p_mw: f64,
    /// Reactive power consumed in Mvar.
    #[serde(default)]
    pub q_mvar: f64,
    /// Scaling factor.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub scaling: f64,
    /// Constant-impedance share of P in percent (0–100).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub const_z_p_percent: f64,
    /// Constant-impedance share of Q in percent (0–100).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub const_z_q_percent: f64,
    /// Constant-current share of P in percent (0–100).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub const_i_p_percent: f64,
    /// Constant-current share of Q in percent (0–100).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub const_i_q_percent: f64,
    /// In service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

impl Load {
    /// Some share of P or Q depends on the voltage.
    pub fn is_zip(&self) -> bool {
        self.const_z_p_percent != 0.0
            || self.const_z_q_percent != 0.0
            || self.const_i_p_percent != 0.0
            || self.const_i_q_percent != 0.0
    }
}

/// A static generator: injects `p_mw * scaling`, `q_mvar * scaling`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sgen {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Bus.
    pub bus: usize,
    /// Active power injected in MW.
    pub p_mw: f64,
    /// Reactive power injected in Mvar.
    #[serde(default)]
    pub q_mvar: f64,
    /// Scaling factor.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub scaling: f64,
    /// Rated apparent power in MVA (informational; devices use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sn_mva: Option<f64>,
    /// In service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

/// A storage unit in load convention: positive `p_mw` is charging (consumption).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Bus.
    pub bus: usize,
    /// Active power in MW (positive = charging).
    #[serde(default)]
    pub p_mw: f64,
    /// Reactive power in Mvar (positive = consumption).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub q_mvar: f64,
    /// Scaling factor.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub scaling: f64,
    /// Energy capacity in MWh (informational; devices use it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_e_mwh: f64,
    /// In service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

/// A shunt: consumes `step * (p_mw + j q_mvar)` at rated voltage `vn_kv`
/// (constant impedance). Negative `q_mvar` is a capacitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shunt {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Bus.
    pub bus: usize,
    /// Active power per step at rated voltage in MW.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub p_mw: f64,
    /// Reactive power per step at rated voltage in Mvar.
    pub q_mvar: f64,
    /// Rated voltage in kV (defaults to the bus's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vn_kv: Option<f64>,
    /// Current step.
    #[serde(default = "one")]
    pub step: f64,
    /// Highest step.
    #[serde(default = "one_u32")]
    pub max_step: u32,
    /// In service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

/// An external grid: a slack bus with fixed voltage magnitude and angle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtGrid {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Bus.
    pub bus: usize,
    /// Voltage magnitude set-point in p.u.
    #[serde(default = "one")]
    pub vm_pu: f64,
    /// Voltage angle in degrees.
    #[serde(default)]
    pub va_degree: f64,
    /// In service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

/// What a switch connects its bus to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SwitchElement {
    /// Another bus.
    #[serde(rename = "b")]
    Bus,
    /// A line end.
    #[serde(rename = "l")]
    Line,
    /// A transformer end.
    #[serde(rename = "t")]
    Trafo,
    /// A three-winding transformer end.
    #[serde(rename = "t3")]
    Trafo3w,
}

/// A switch. A closed bus-bus switch with `z_ohm == 0` fuses its buses; with
/// `z_ohm > 0` it is an impedance branch (`r:x = 2:1`, as pandapower).
/// An open line or transformer switch cuts that end of the branch; the branch
/// stays connected at its other end (charging, magnetising branch), as in pandapower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Bus.
    pub bus: usize,
    /// Index of the other bus, line or trafo.
    pub element: usize,
    /// Kind of `element`.
    pub et: SwitchElement,
    /// Closed?
    #[serde(default = "yes")]
    pub closed: bool,
    /// Impedance of a closed bus-bus switch in ohm.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub z_ohm: f64,
}

/// A winding of a three-winding transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trafo3wSide {
    /// High-voltage winding.
    Hv,
    /// Medium-voltage winding.
    Mv,
    /// Low-voltage winding.
    Lv,
}

fn side_hv() -> Trafo3wSide {
    Trafo3wSide::Hv
}
fn is_hv(s: &Trafo3wSide) -> bool {
    *s == Trafo3wSide::Hv
}

/// The ratio tap changer of a three-winding transformer, at the terminal of
/// `side` (pandapower's `tap_at_star_point = False`). The network's `pos` is
/// used by every copy of a batch (per-copy trafo3w taps are not offered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trafo3wTap {
    /// Winding with the taps.
    pub side: Trafo3wSide,
    /// Neutral position.
    #[serde(default)]
    pub neutral: f64,
    /// Voltage change per step in percent of the rated voltage of `side`.
    pub step_percent: f64,
    /// Lowest position.
    pub min: f64,
    /// Highest position.
    pub max: f64,
    /// Current position.
    #[serde(default)]
    pub pos: f64,
}

/// A three-winding transformer in pandapower's star-point model: three
/// two-winding "t"-model branches from the HV, MV and LV buses to an
/// auxiliary star node at the HV bus's voltage level. `vk_*`/`vkr_*` are the
/// short-circuit voltages between pairs of windings (hv–mv, mv–lv, hv–lv),
/// each referred to the smaller rating of its pair, as in pandapower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trafo3w {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// High-voltage bus.
    pub hv_bus: usize,
    /// Medium-voltage bus.
    pub mv_bus: usize,
    /// Low-voltage bus.
    pub lv_bus: usize,
    /// Rated power of the HV winding in MVA.
    pub sn_hv_mva: f64,
    /// Rated power of the MV winding in MVA.
    pub sn_mv_mva: f64,
    /// Rated power of the LV winding in MVA.
    pub sn_lv_mva: f64,
    /// Rated HV voltage in kV.
    pub vn_hv_kv: f64,
    /// Rated MV voltage in kV.
    pub vn_mv_kv: f64,
    /// Rated LV voltage in kV.
    pub vn_lv_kv: f64,
    /// Short-circuit voltage HV–MV in percent.
    pub vk_hv_percent: f64,
    /// Short-circuit voltage MV–LV in percent.
    pub vk_mv_percent: f64,
    /// Short-circuit voltage HV–LV in percent.
    pub vk_lv_percent: f64,
    /// Real part of `vk_hv_percent`.
    pub vkr_hv_percent: f64,
    /// Real part of `vk_mv_percent`.
    pub vkr_mv_percent: f64,
    /// Real part of `vk_lv_percent`.
    pub vkr_lv_percent: f64,
    /// Iron losses in kW.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pfe_kw: f64,
    /// Open-loop (magnetising) current in percent of `sn_hv_mva`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub i0_percent: f64,
    /// Phase shift of the MV winding in degrees.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shift_mv_degree: f64,
    /// Phase shift of the LV winding in degrees.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shift_lv_degree: f64,
    /// Optional ratio tap changer (at the network's position in every copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap: Option<Trafo3wTap>,
    /// Winding whose branch carries the magnetising admittance (pandapower's
    /// `trafo3w_losses`, default `"hv"`).
    #[serde(default = "side_hv", skip_serializing_if = "is_hv")]
    pub loss_side: Trafo3wSide,
    /// In service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

/// A per-unit impedance between two buses (pandapower's `impedance`):
/// `I_f = y_ft·(V_f − V_t) + y_f·V_f`, `I_t = y_tf·(V_t − V_f) + y_t·V_t` with
/// `y_ft = 1/(rft + j·xft)`, `y_tf = 1/(rtf + j·xtf)` and the shunts `y_f = gf + j·bf`,
/// `y_t = gt + j·bt`, all in p.u. of `sn_mva` and the from bus's voltage.
/// `rft ≠ rtf` or `xft ≠ xtf` makes it non-reciprocal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impedance {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// From bus.
    pub from_bus: usize,
    /// To bus.
    pub to_bus: usize,
    /// Resistance from → to in p.u. of `sn_mva`.
    pub rft_pu: f64,
    /// Reactance from → to in p.u.
    pub xft_pu: f64,
    /// Resistance to → from in p.u. (default: `rft_pu`, as pandapower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtf_pu: Option<f64>,
    /// Reactance to → from in p.u. (default: `xft_pu`, as pandapower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xtf_pu: Option<f64>,
    /// Shunt conductance at the from bus in p.u.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gf_pu: f64,
    /// Shunt susceptance at the from bus in p.u.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bf_pu: f64,
    /// Shunt conductance at the to bus in p.u.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gt_pu: f64,
    /// Shunt susceptance at the to bus in p.u.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bt_pu: f64,
    /// Rating (the per-unit base of the values above) in MVA.
    pub sn_mva: f64,
    /// In service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

impl Impedance {
    /// `(rtf_pu, xtf_pu)`, defaulted to the from → to values.
    pub fn tf_pu(&self) -> (f64, f64) {
        (
            self.rtf_pu.unwrap_or(self.rft_pu),
            self.xtf_pu.unwrap_or(self.xft_pu),
        )
    }

    /// Whether the element is non-reciprocal (`y_ft ≠ y_tf`).
    pub fn is_asymmetric(&self) -> bool {
        self.tf_pu() != (self.rft_pu, self.xft_pu)
    }
}

/// A ward equivalent (pandapower's `ward`): consumes `ps_mw + j·qs_mvar`
/// (constant power) and `pz_mw + j·qz_mvar` at 1 p.u. (constant impedance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ward {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Bus.
    pub bus: usize,
    /// Constant active power consumed in MW.
    #[serde(default)]
    pub ps_mw: f64,
    /// Constant reactive power consumed in Mvar.
    #[serde(default)]
    pub qs_mvar: f64,
    /// Active power of the constant impedance at 1 p.u. in MW.
    #[serde(default)]
    pub pz_mw: f64,
    /// Reactive power of the constant impedance at 1 p.u. in Mvar.
    #[serde(default)]
    pub qz_mvar: f64,
    /// In service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

/// A voltage-controlling generator (pandapower's `gen`): injects `p_mw * scaling`
/// and holds its bus at `vm_pu` (a PV bus; at an ext_grid's bus the ext_grid's
/// voltage, which must be the same). Its Q is a result: the bus's balance,
/// split among the bus's gens (and ext_grids) as pandapower's `pfsoln` does, in
/// proportion to their `[min_q_mvar, max_q_mvar]` ranges. Q limits are
/// enforced only with `SolverOptions::enforce_q_lims` (`runpp`'s
/// `enforce_q_lims`, off by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gen {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Bus.
    pub bus: usize,
    /// Active power injected in MW (before scaling).
    #[serde(default)]
    pub p_mw: f64,
    /// Voltage magnitude set-point in p.u.
    #[serde(default = "one")]
    pub vm_pu: f64,
    /// Scaling factor of `p_mw`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub scaling: f64,
    /// Rated apparent power in MVA (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sn_mva: Option<f64>,
    /// Lower reactive limit in Mvar (`None`: pandapower's −1e9); splits Q
    /// among several gens at one bus, and with `enforce_q_lims` the gen is
    /// held there when its Q would be lower.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_q_mvar: Option<f64>,
    /// Upper reactive limit in Mvar (`None`: pandapower's 1e9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_q_mvar: Option<f64>,
    /// pandapower's `slack = True` (a reference bus of its own): not modelled,
    /// refused when in service.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub slack: bool,
    /// In service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

impl Gen {
    /// pandapower's `q_lim_default` (the Q range of a gen without limits).
    pub const Q_LIM_DEFAULT: f64 = 1e9;

    /// `[QMIN, QMAX]` as pandapower's `pd2ppc` puts them in the `gen` table
    /// for `runpp` (`delta_q = 0`): the columns, or ±1e9 where missing or NaN.
    pub fn q_range(&self) -> (f64, f64) {
        (
            self.min_q_mvar
                .filter(|x| !x.is_nan())
                .unwrap_or(-Self::Q_LIM_DEFAULT),
            self.max_q_mvar
                .filter(|x| !x.is_nan())
                .unwrap_or(Self::Q_LIM_DEFAULT),
        )
    }
}

/// An extended ward (pandapower's `xward`): a [`Ward`]'s `ps`/`qs` (constant
/// power) and `pz`/`qz` (constant impedance) at its bus, plus an internal PV
/// node (no P, free Q) held at `vm_pu` behind `r_ohm + j·x_ohm` (ohms at the
/// bus's `vn_kv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Xward {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Bus.
    pub bus: usize,
    /// Constant active power consumed in MW.
    #[serde(default)]
    pub ps_mw: f64,
    /// Constant reactive power consumed in Mvar.
    #[serde(default)]
    pub qs_mvar: f64,
    /// Active power of the constant impedance at 1 p.u. in MW.
    #[serde(default)]
    pub pz_mw: f64,
    /// Reactive power of the constant impedance at 1 p.u. in Mvar.
    #[serde(default)]
    pub qz_mvar: f64,
    /// Resistance to the internal node in ohms.
    pub r_ohm: f64,
    /// Reactance to the internal node in ohms.
    pub x_ohm: f64,
    /// Voltage set-point of the internal node in p.u.
    #[serde(default = "one")]
    pub vm_pu: f64,
    /// In service.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub in_service: bool,
}

/// Ratio of r to x used for bus-bus switches with an impedance (pandapower's `switch_rx_ratio`).
pub const SWITCH_RX_RATIO: f64 = 2.0;

impl Network {
    /// Check indices and parameters; every problem names the element.
    pub fn validate(&self) -> Result<()> {
        let nb = self.buses.len();
        let bad = |s: String| Err(Error::InvalidNetwork(s));
        if nb == 0 {
            return bad("the network has no buses".into());
        }
        if !(self.sn_mva.is_finite() && self.sn_mva > 0.0) {
            return bad(format!("sn_mva must be positive, got {}", self.sn_mva));
        }
        if !(self.f_hz.is_finite() && self.f_hz > 0.0) {
            return bad(format!("f_hz must be positive, got {}", self.f_hz));
        }
        let check_bus = |what: &str, i: usize, name: &str, bus: usize| -> Result<()> {
            if bus >= nb {
                return Err(Error::InvalidNetwork(format!(
                    "{what} {i} ({name:?}) refers to bus {bus}, but the network has {nb} buses (0..{})",
                    nb - 1
                )));
            }
            Ok(())
        };
        let check_num = |what: &str, i: usize, name: &str, field: &str, v: f64| -> Result<()> {
            if !v.is_finite() {
                return Err(Error::InvalidNetwork(format!(
                    "{what} {i} ({name:?}): {field} is {v}"
                )));
            }
            Ok(())
        };
        // A tap changer's `[neutral, step_percent, min, max, pos]` (trafo or trafo3w).
        let check_tap = |what: &str, i: usize, name: &str, v: [f64; 5]| -> Result<()> {
            for (f, x) in [
                "tap.neutral",
                "tap.step_percent",
                "tap.min",
                "tap.max",
                "tap.pos",
            ]
            .into_iter()
            .zip(v)
            {
                check_num(what, i, name, f, x)?;
            }
            if v[2] > v[3] {
                return bad(format!("{what} {i} ({name:?}): tap.min > tap.max"));
            }
            Ok(())
        };
        for (i, b) in self.buses.iter().enumerate() {
            if !(b.vn_kv.is_finite() && b.vn_kv > 0.0) {
                return bad(format!(
                    "bus {i} ({:?}): vn_kv must be positive, got {}",
                    b.name, b.vn_kv
                ));
            }
        }
        for (i, l) in self.lines.iter().enumerate() {
            check_bus("line", i, &l.name, l.from_bus)?;
            check_bus("line", i, &l.name, l.to_bus)?;
            for (f, v) in [
                ("length_km", l.length_km),
                ("r_ohm_per_km", l.r_ohm_per_km),
                ("x_ohm_per_km", l.x_ohm_per_km),
                ("c_nf_per_km", l.c_nf_per_km),
                ("g_us_per_km", l.g_us_per_km),
                ("max_i_ka", l.max_i_ka),
                ("df", l.df),
            ] {
                check_num("line", i, &l.name, f, v)?;
            }
            if l.in_service && l.r_ohm_per_km == 0.0 && l.x_ohm_per_km == 0.0 {
                return bad(format!("line {i} ({:?}) has zero impedance", l.name));
            }
            if l.length_km <= 0.0 || l.parallel == 0 {
                return bad(format!(
                    "line {i} ({:?}): length_km and parallel must be positive",
                    l.name
                ));
            }
        }
        for (i, t) in self.trafos.iter().enumerate() {
            check_bus("trafo", i, &t.name, t.hv_bus)?;
            check_bus("trafo", i, &t.name, t.lv_bus)?;
            for (f, v) in [
                ("sn_mva", t.sn_mva),
                ("vn_hv_kv", t.vn_hv_kv),
                ("vn_lv_kv", t.vn_lv_kv),
                ("vk_percent", t.vk_percent),
                ("vkr_percent", t.vkr_percent),
                ("pfe_kw", t.pfe_kw),
                ("i0_percent", t.i0_percent),
                ("shift_degree", t.shift_degree),
                ("df", t.df),
            ] {
                check_num("trafo", i, &t.name, f, v)?;
            }
            if t.sn_mva <= 0.0 || t.vn_hv_kv <= 0.0 || t.vn_lv_kv <= 0.0 {
                return bad(format!(
                    "trafo {i} ({:?}): sn_mva, vn_hv_kv and vn_lv_kv must be positive",
                    t.name
                ));
            }
            // Negative values are equivalent branches of reduced networks (the
            // PEGASE, RTE and SP cases: negative resistance or reactance, as
            // pandapower's `sign(z_sc)·√(z_sc² − r_sc²)`); |vkr| ≤ |vk| keeps the
            // reactance real.
            if t.vk_percent == 0.0 {
                return bad(format!(
                    "trafo {i} ({:?}): vk_percent must not be zero",
                    t.name
                ));
            }
            if t.vkr_percent.abs() > t.vk_percent.abs() {
                return bad(format!(
                    "trafo {i} ({:?}): |vkr_percent| must not exceed |vk_percent|",
                    t.name
                ));
            }
            if let Some(tap) = &t.tap {
                let v = [tap.neutral, tap.step_percent, tap.min, tap.max, tap.pos];
                check_tap("trafo", i, &t.name, v)?;
            }
        }
        for (i, e) in self.loads.iter().enumerate() {
            check_bus("load", i, &e.name, e.bus)?;
            for (f, v) in [
                ("p_mw", e.p_mw),
                ("q_mvar", e.q_mvar),
                ("scaling", e.scaling),
            ] {
                check_num("load", i, &e.name, f, v)?;
            }
            for (f, v) in [
                ("const_z_p_percent", e.const_z_p_percent),
                ("const_z_q_percent", e.const_z_q_percent),
                ("const_i_p_percent", e.const_i_p_percent),
                ("const_i_q_percent", e.const_i_q_percent),
            ] {
                if !(0.0..=100.0).contains(&v) {
                    return bad(format!(
                        "load {i} ({:?}): {f} must lie in [0, 100], got {v}",
                        e.name
                    ));
                }
            }
            for (z, c, v) in [
                (
                    "const_z_p_percent",
                    "const_i_p_percent",
                    e.const_z_p_percent + e.const_i_p_percent,
                ),
                (
                    "const_z_q_percent",
                    "const_i_q_percent",
                    e.const_z_q_percent + e.const_i_q_percent,
                ),
            ] {
                if v > 100.0 {
                    return bad(format!(
                        "load {i} ({:?}): {z} + {c} must be at most 100, got {v}",
                        e.name
                    ));
                }
            }
        }
        for (i, e) in self.sgens.iter().enumerate() {
            check_bus("sgen", i, &e.name, e.bus)?;
            for (f, v) in [
                ("p_mw", e.p_mw),
                ("q_mvar", e.q_mvar),
                ("scaling", e.scaling),
            ] {
                check_num("sgen", i, &e.name, f, v)?;
            }
        }
        for (i, e) in self.storages.iter().enumerate() {
            check_bus("storage", i, &e.name, e.bus)?;
            for (f, v) in [
                ("p_mw", e.p_mw),
                ("q_mvar", e.q_mvar),
                ("scaling", e.scaling),
            ] {
                check_num("storage", i, &e.name, f, v)?;
            }
        }
        for (i, e) in self.shunts.iter().enumerate() {
            check_bus("shunt", i, &e.name, e.bus)?;
            for (f, v) in [("p_mw", e.p_mw), ("q_mvar", e.q_mvar), ("step", e.step)] {
                check_num("shunt", i, &e.name, f, v)?;
            }
            if let Some(v) = e.vn_kv {
                if !(v.is_finite() && v > 0.0) {
                    return bad(format!("shunt {i} ({:?}): vn_kv must be positive", e.name));
                }
            }
        }
        for (i, e) in self.ext_grids.iter().enumerate() {
            check_bus("ext_grid", i, &e.name, e.bus)?;
            for (f, v) in [("vm_pu", e.vm_pu), ("va_degree", e.va_degree)] {
                check_num("ext_grid", i, &e.name, f, v)?;
            }
            if e.vm_pu <= 0.0 {
                return bad(format!(
                    "ext_grid {i} ({:?}): vm_pu must be positive",
                    e.name
                ));
            }
        }
        for (i, t) in self.trafo3ws.iter().enumerate() {
            for b in [t.hv_bus, t.mv_bus, t.lv_bus] {
                check_bus("trafo3w", i, &t.name, b)?;
            }
            for (f, v) in [
                ("sn_hv_mva", t.sn_hv_mva),
                ("sn_mv_mva", t.sn_mv_mva),
                ("sn_lv_mva", t.sn_lv_mva),
                ("vn_hv_kv", t.vn_hv_kv),
                ("vn_mv_kv", t.vn_mv_kv),
                ("vn_lv_kv", t.vn_lv_kv),
                ("vk_hv_percent", t.vk_hv_percent),
                ("vk_mv_percent", t.vk_mv_percent),
                ("vk_lv_percent", t.vk_lv_percent),
                ("vkr_hv_percent", t.vkr_hv_percent),
                ("vkr_mv_percent", t.vkr_mv_percent),
                ("vkr_lv_percent", t.vkr_lv_percent),
                ("pfe_kw", t.pfe_kw),
                ("i0_percent", t.i0_percent),
                ("shift_mv_degree", t.shift_mv_degree),
                ("shift_lv_degree", t.shift_lv_degree),
            ] {
                check_num("trafo3w", i, &t.name, f, v)?;
            }
            if [
                t.sn_hv_mva,
                t.sn_mv_mva,
                t.sn_lv_mva,
                t.vn_hv_kv,
                t.vn_mv_kv,
                t.vn_lv_kv,
                t.vk_hv_percent,
                t.vk_mv_percent,
                t.vk_lv_percent,
            ]
            .iter()
            .any(|&x| x <= 0.0)
            {
                return bad(format!(
                    "trafo3w {i} ({:?}): sn_*_mva, vn_*_kv and vk_*_percent must be positive",
                    t.name
                ));
            }
            for (vk, vkr) in [
                (t.vk_hv_percent, t.vkr_hv_percent),
                (t.vk_mv_percent, t.vkr_mv_percent),
                (t.vk_lv_percent, t.vkr_lv_percent),
            ] {
                if vkr < 0.0 || vkr > vk {
                    return bad(format!(
                        "trafo3w {i} ({:?}): each vkr_*_percent must lie in [0, vk_*_percent]",
                        t.name
                    ));
                }
            }
            if let Some(tap) = &t.tap {
                let v = [tap.neutral, tap.step_percent, tap.min, tap.max, tap.pos];
                check_tap("trafo3w", i, &t.name, v)?;
            }
        }
        for (i, e) in self.impedances.iter().enumerate() {
            check_bus("impedance", i, &e.name, e.from_bus)?;
            check_bus("impedance", i, &e.name, e.to_bus)?;
            let (rtf, xtf) = e.tf_pu();
            for (f, v) in [
                ("rft_pu", e.rft_pu),
                ("xft_pu", e.xft_pu),
                ("rtf_pu", rtf),
                ("xtf_pu", xtf),
                ("gf_pu", e.gf_pu),
                ("bf_pu", e.bf_pu),
                ("gt_pu", e.gt_pu),
                ("bt_pu", e.bt_pu),
                ("sn_mva", e.sn_mva),
            ] {
                check_num("impedance", i, &e.name, f, v)?;
            }
            if e.sn_mva <= 0.0 {
                return bad(format!(
                    "impedance {i} ({:?}): sn_mva must be positive",
                    e.name
                ));
            }
            if e.in_service && ((e.rft_pu == 0.0 && e.xft_pu == 0.0) || (rtf == 0.0 && xtf == 0.0))
            {
                return bad(format!("impedance {i} ({:?}) has zero impedance", e.name));
            }
        }
        for (i, e) in self.wards.iter().enumerate() {
            check_bus("ward", i, &e.name, e.bus)?;
            for (f, v) in [
                ("ps_mw", e.ps_mw),
                ("qs_mvar", e.qs_mvar),
                ("pz_mw", e.pz_mw),
                ("qz_mvar", e.qz_mvar),
            ] {
                check_num("ward", i, &e.name, f, v)?;
            }
        }
        for (i, e) in self.gens.iter().enumerate() {
            check_bus("gen", i, &e.name, e.bus)?;
            for (f, v) in [("p_mw", e.p_mw), ("vm_pu", e.vm_pu), ("scaling", e.scaling)] {
                check_num("gen", i, &e.name, f, v)?;
            }
            if e.vm_pu <= 0.0 {
                return bad(format!(
                    "gen {i} ({:?}): vm_pu must be positive, got {}",
                    e.name, e.vm_pu
                ));
            }
            for (f, v) in [("min_q_mvar", e.min_q_mvar), ("max_q_mvar", e.max_q_mvar)] {
                if v.is_some_and(|x| x.is_infinite()) {
                    return bad(format!("gen {i} ({:?}): {f} is {v:?}", e.name));
                }
            }
            if e.slack && e.in_service {
                return Err(Error::Unsupported(format!(
                    "gen {i} ({:?}): slack = true (a gen as a reference bus) is not modelled; \
                     use an ext_grid at its bus",
                    e.name
                )));
            }
        }
        for (i, e) in self.xwards.iter().enumerate() {
            check_bus("xward", i, &e.name, e.bus)?;
            for (f, v) in [
                ("ps_mw", e.ps_mw),
                ("qs_mvar", e.qs_mvar),
                ("pz_mw", e.pz_mw),
                ("qz_mvar", e.qz_mvar),
                ("r_ohm", e.r_ohm),
                ("x_ohm", e.x_ohm),
                ("vm_pu", e.vm_pu),
            ] {
                check_num("xward", i, &e.name, f, v)?;
            }
            if e.vm_pu <= 0.0 {
                return bad(format!(
                    "xward {i} ({:?}): vm_pu must be positive, got {}",
                    e.name, e.vm_pu
                ));
            }
            if e.r_ohm == 0.0 && e.x_ohm == 0.0 {
                return bad(format!(
                    "xward {i} ({:?}): r_ohm and x_ohm are both 0 (the internal node needs an impedance)",
                    e.name
                ));
            }
        }
        if !self
            .ext_grids
            .iter()
            .any(|e| e.in_service && self.buses[e.bus].in_service)
        {
            return bad("no in-service ext_grid: the network has no slack bus".into());
        }
        for (i, s) in self.switches.iter().enumerate() {
            check_bus("switch", i, &s.name, s.bus)?;
            let n = match s.et {
                SwitchElement::Bus => nb,
                SwitchElement::Line => self.lines.len(),
                SwitchElement::Trafo => self.trafos.len(),
                SwitchElement::Trafo3w => self.trafo3ws.len(),
            };
            if s.element >= n {
                return bad(format!(
                    "switch {i} ({:?}) refers to {:?} {}, which does not exist",
                    s.name, s.et, s.element
                ));
            }
            check_num("switch", i, &s.name, "z_ohm", s.z_ohm)?;
            if s.z_ohm < 0.0 {
                return bad(format!(
                    "switch {i} ({:?}): z_ohm must not be negative",
                    s.name
                ));
            }
            match s.et {
                SwitchElement::Line => {
                    let l = &self.lines[s.element];
                    if l.from_bus != s.bus && l.to_bus != s.bus {
                        return bad(format!(
                            "switch {i} ({:?}): line {} does not touch bus {}",
                            s.name, s.element, s.bus
                        ));
                    }
                }
                SwitchElement::Trafo => {
                    let t = &self.trafos[s.element];
                    if t.hv_bus != s.bus && t.lv_bus != s.bus {
                        return bad(format!(
                            "switch {i} ({:?}): trafo {} does not touch bus {}",
                            s.name, s.element, s.bus
                        ));
                    }
                }
                SwitchElement::Trafo3w => {
                    let t = &self.trafo3ws[s.element];
                    if ![t.hv_bus, t.mv_bus, t.lv_bus].contains(&s.bus) {
                        return bad(format!(
                            "switch {i} ({:?}): trafo3w {} does not touch bus {}",
                            s.name, s.element, s.bus
                        ));
                    }
                }
                SwitchElement::Bus => {}
            }
        }
        super::controllers::validate_controllers(self, &self.controllers)?;
        Ok(())
    }
}
