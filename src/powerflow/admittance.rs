//! Branch and shunt admittances in per unit, exactly as pandapower builds them
//! (line pi model, trafo "t" model with ratio taps, switch impedances, shunts).

use crate::complex::C64;
use crate::network::{Line, Network, TapSide, Trafo, SWITCH_RX_RATIO};
use std::f64::consts::PI;

/// The four entries a branch adds to the bus admittance matrix:
/// `I_f = yff·V_f + yft·V_t`, `I_t = ytf·V_f + ytt·V_t`.
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct BranchAdm {
    /// From-from.
    pub yff: C64,
    /// From-to.
    pub yft: C64,
    /// To-from.
    pub ytf: C64,
    /// To-to.
    pub ytt: C64,
}

/// A branch in pypower form: series impedance `z`, total shunt admittance `y_sh`
/// (half at each end) and complex tap `t = ratio·e^{j·shift}` on the from side.
#[derive(Debug, Clone, Copy)]
pub struct PiBranch {
    /// Series impedance (p.u.).
    pub z: C64,
    /// Total shunt admittance (p.u.), split half/half.
    pub y_sh: C64,
    /// Off-nominal ratio magnitude.
    pub ratio: f64,
    /// Phase shift in radians.
    pub shift_rad: f64,
}

impl PiBranch {
    /// Admittance entries (pypower's makeYbus):
    /// `Ytt = ys + y_sh/2`, `Yff = Ytt/|t|²`, `Yft = −ys/t*`, `Ytf = −ys/t`.
    pub fn admittance(&self) -> BranchAdm {
        let ys = self.z.inv();
        let t = C64::from_polar(self.ratio, self.shift_rad);
        let ytt = ys + self.y_sh.scale(0.5);
        BranchAdm {
            yff: ytt.scale(1.0 / (self.ratio * self.ratio)),
            yft: -(ys / t.conj()),
            ytf: -(ys / t),
            ytt,
        }
    }
}

/// Line pi model: `baseZ = vn_from² / sn`, `z = (r + jx)·len / parallel / baseZ`,
/// `y_sh = (g + j·2πf·c)·len·parallel·baseZ`.
pub fn line_branch(net: &Network, l: &Line) -> PiBranch {
    let vn = net.buses[l.from_bus].vn_kv;
    let base_z = vn * vn / net.sn_mva;
    let par = l.parallel as f64;
    let z = C64::new(l.r_ohm_per_km, l.x_ohm_per_km).scale(l.length_km / par / base_z);
    let b = 2.0 * PI * net.f_hz * l.c_nf_per_km * 1e-9 * base_z * l.length_km * par;
    let g = l.g_us_per_km * 1e-6 * base_z * l.length_km * par;
    PiBranch {
        z,
        y_sh: C64::new(g, b),
        ratio: 1.0,
        shift_rad: 0.0,
    }
}

/// Bus-bus switch with impedance `z_ohm` (pandapower: `r:x = switch_rx_ratio`,
/// base impedance of the switch's bus).
pub fn switch_branch(net: &Network, bus: usize, z_ohm: f64) -> PiBranch {
    let vn = net.buses[bus].vn_kv;
    let base_z = vn * vn / net.sn_mva;
    let k = (1.0 + SWITCH_RX_RATIO * SWITCH_RX_RATIO).sqrt();
    let z = C64::new(SWITCH_RX_RATIO / k, 1.0 / k).scale(z_ohm / base_z);
    PiBranch {
        z,
        y_sh: C64::ZERO,
        ratio: 1.0,
        shift_rad: 0.0,
    }
}

/// Rated winding voltages after the tap: the tapped side's voltage is
/// multiplied by `1 + (pos − neutral)·step_percent/100`.
pub fn tapped_voltages(t: &Trafo, tap_pos: f64) -> (f64, f64) {
    let (mut hv, mut lv) = (t.vn_hv_kv, t.vn_lv_kv);
    if let Some(tap) = &t.tap {
        let k = 1.0 + (tap_pos - tap.neutral) * tap.step_percent / 100.0;
        match tap.side {
            TapSide::Hv => hv *= k,
            TapSide::Lv => lv *= k,
        }
    }
    (hv, lv)
}

/// Transformer "t" model as pandapower builds it for a given tap position.
///
/// `z_sc = vk/100/sn·(vn_lv,tapped/vn_lv,bus)²·sn_sys`, `r_sc = vkr/100/…`,
/// magnetising admittance from `pfe_kw` and `i0_percent`, then the T is
/// turned into the equivalent pi (wye-delta); ratio
/// `(vn_hv/vn_lv)/(vn_hv,bus/vn_lv,bus)`, shift `shift_degree`.
pub fn trafo_branch(net: &Network, t: &Trafo, tap_pos: f64) -> PiBranch {
    let (vn_hv, vn_lv) = tapped_voltages(t, tap_pos);
    let bus_hv = net.buses[t.hv_bus].vn_kv;
    let bus_lv = net.buses[t.lv_bus].vn_kv;
    let ratio = (vn_hv / vn_lv) / (bus_hv / bus_lv);
    let par = t.parallel as f64;
    let tap_lv = (vn_lv / bus_lv).powi(2) * net.sn_mva;
    let z_sc = t.vk_percent / 100.0 / t.sn_mva * tap_lv;
    let r_sc = t.vkr_percent / 100.0 / t.sn_mva * tap_lv;
    let x_sc = (z_sc * z_sc - r_sc * r_sc).max(0.0).sqrt();
    let (mut r, mut x) = (r_sc / par, x_sc / par);

    // Magnetising branch (pandapower `_calc_y_from_dataframe`), as a ppc "BR_B" value y,
    // referred to the tapped LV winding voltage.
    let base_z = bus_lv * bus_lv / net.sn_mva;
    let vnl2 = vn_lv * vn_lv;
    let pfe = t.pfe_kw * 1e-3;
    let b_real = pfe / vnl2 * base_z;
    let b_img = ((t.i0_percent / 100.0 * t.sn_mva).powi(2) - pfe * pfe)
        .max(0.0)
        .sqrt()
        * base_z
        / vnl2;
    // y = −j·b_real − b_img·sign(i0)
    let mut y = C64::new(
        -b_img * t.i0_percent.signum() * (t.i0_percent != 0.0) as u8 as f64,
        -b_real,
    )
    .scale(par);
    if y != C64::ZERO {
        // T to pi (pandapower `_wye_delta`, symmetric split of the leakage impedance).
        let za = C64::new(r, x).scale(0.5);
        let zc = C64::new(0.0, -1.0) / y;
        let zsum = za * za + (za * zc).scale(2.0);
        let zab = zsum / zc;
        let zbc = zsum / za;
        r = zab.re;
        x = zab.im;
        y = C64::new(0.0, -2.0) / zbc;
    }
    // ppc stores y as BR_B; the shunt admittance is j·BR_B.
    let y_sh = C64::new(0.0, 1.0) * y;
    PiBranch {
        z: C64::new(r, x),
        y_sh,
        ratio,
        shift_rad: t.shift_degree.to_radians(),
    }
}

/// Shunt admittance per step in p.u. (pandapower: `(p − jq)/sn · (vn_bus/vn_shunt)²`).
pub fn shunt_y_per_step(net: &Network, k: usize) -> C64 {
    let s = &net.shunts[k];
    let vb = net.buses[s.bus].vn_kv;
    let ratio = (vb / s.vn_kv.unwrap_or(vb)).powi(2);
    C64::new(s.p_mw, -s.q_mvar).scale(ratio / net.sn_mva)
}
