//! Branch and shunt admittances in per unit, exactly as pandapower builds them
//! (line pi model, trafo "t" model with ratio taps, switch impedances, shunts).

use crate::complex::C64;
use crate::error::{Error, Result};
use crate::network::{
    Impedance, Line, Network, TapChanger, TapSide, Trafo, Trafo3w, Trafo3wSide, SWITCH_RX_RATIO,
};
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
    let bus_hv = net.buses[t.hv_bus].vn_kv;
    let bus_lv = net.buses[t.lv_bus].vn_kv;
    trafo_branch_between(net.sn_mva, t, tap_pos, bus_hv, bus_lv)
}

/// [`trafo_branch`] between buses of rated voltages `bus_hv` and `bus_lv` (kV)
/// (`t.hv_bus`/`t.lv_bus` are not read), for a system base of `sn_sys` MVA.
/// A negative `vk_percent` (a star-point branch of a three-winding transformer)
/// gives a negative reactance, as pandapower's `sign(z_sc)·√(z_sc² − r_sc²)`.
pub fn trafo_branch_between(
    sn_sys: f64,
    t: &Trafo,
    tap_pos: f64,
    bus_hv: f64,
    bus_lv: f64,
) -> PiBranch {
    let (vn_hv, vn_lv) = tapped_voltages(t, tap_pos);
    let ratio = (vn_hv / vn_lv) / (bus_hv / bus_lv);
    let par = t.parallel as f64;
    let tap_lv = (vn_lv / bus_lv).powi(2) * sn_sys;
    let z_sc = t.vk_percent / 100.0 / t.sn_mva * tap_lv;
    let r_sc = t.vkr_percent / 100.0 / t.sn_mva * tap_lv;
    let x_sc = z_sc.signum() * (z_sc * z_sc - r_sc * r_sc).max(0.0).sqrt();
    let (mut r, mut x) = (r_sc / par, x_sc / par);

    // Magnetising branch (pandapower `_calc_y_from_dataframe`), as a ppc "BR_B" value y,
    // referred to the tapped LV winding voltage.
    let base_z = bus_lv * bus_lv / sn_sys;
    let vnl2 = vn_lv * vn_lv;
    let pfe = t.pfe_kw * 1e-3;
    let b_real = pfe / vnl2 * base_z;
    let b_img = ((t.i0_percent / 100.0 * t.sn_mva).powi(2) - pfe * pfe)
        .max(0.0)
        .sqrt()
        * base_z
        / vnl2;
    // y = −j·b_real − b_img: pandapower 3.x (`_calc_y_from_dataframe`) takes
    // `b = −√((i0/100·sn)² − pfe²)` whatever the sign of `i0_percent` (the IEEE
    // cases' line-like trafos have a negative one).
    let mut y = C64::new(-b_img, -b_real).scale(par);
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

/// The three two-winding transformers of a three-winding one (pandapower's
/// `_trafo_df_from_trafo3w`), in the order HV, MV, LV: HV bus → star, star → MV
/// bus, star → LV bus. The star node is at the HV bus's rated voltage; the
/// pairwise `vk`/`vkr` are referred to `sn_hv_mva` and turned into star values
/// (`z_br_to_bus`, `wye_delta`); the magnetising branch sits on `loss_side`'s
/// branch; MV and LV carry their phase shifts; a tap on the HV side is on the
/// HV branch's HV end, one on MV or LV on that branch's far (LV) end.
/// The `hv_bus`/`lv_bus` fields of the result are not meaningful.
pub fn trafo3w_equivalents(t: &Trafo3w) -> Result<[Trafo; 3]> {
    let sn = [t.sn_hv_mva, t.sn_mv_mva, t.sn_lv_mva];
    let to_delta = |z: [f64; 3]| {
        [
            sn[0] * z[0] / sn[0].min(sn[1]),
            sn[0] * z[1] / sn[1].min(sn[2]),
            sn[0] * z[2] / sn[0].min(sn[2]),
        ]
    };
    let wye = |z: [f64; 3]| {
        [
            0.5 * sn[0] / sn[0] * (z[0] + z[2] - z[1]),
            0.5 * sn[1] / sn[0] * (z[1] + z[0] - z[2]),
            0.5 * sn[2] / sn[0] * (z[2] + z[1] - z[0]),
        ]
    };
    let vk_d = to_delta([t.vk_hv_percent, t.vk_mv_percent, t.vk_lv_percent]);
    let vkr_d = to_delta([t.vkr_hv_percent, t.vkr_mv_percent, t.vkr_lv_percent]);
    let vki_d = [0, 1, 2].map(|k| (vk_d[k] * vk_d[k] - vkr_d[k] * vkr_d[k]).max(0.0).sqrt());
    let vkr = wye(vkr_d);
    let vki = wye(vki_d);
    let sides = [Trafo3wSide::Hv, Trafo3wSide::Mv, Trafo3wSide::Lv];
    let vn = [t.vn_hv_kv, t.vn_mv_kv, t.vn_lv_kv];
    let shift = [0.0, t.shift_mv_degree, t.shift_lv_degree];
    let mut out = Vec::with_capacity(3);
    for k in 0..3 {
        // numpy's sign: 0 for 0 (then pandapower refuses the branch).
        let sign = if vki[k] > 0.0 {
            1.0
        } else if vki[k] < 0.0 {
            -1.0
        } else {
            0.0
        };
        let vk = sign * (vki[k] * vki[k] + vkr[k] * vkr[k]).sqrt();
        if vk == 0.0 || !vk.is_finite() {
            return Err(Error::InvalidNetwork(format!(
                "trafo3w {:?}: its {:?} star branch has zero impedance",
                t.name, sides[k]
            )));
        }
        let losses = t.loss_side == sides[k];
        let tap = t
            .tap
            .as_ref()
            .filter(|x| x.side == sides[k])
            .map(|x| TapChanger {
                side: if k == 0 { TapSide::Hv } else { TapSide::Lv },
                neutral: x.neutral,
                step_percent: x.step_percent,
                min: x.min,
                max: x.max,
                pos: x.pos,
            });
        out.push(Trafo {
            name: t.name.clone(),
            hv_bus: 0,
            lv_bus: 0,
            sn_mva: sn[k],
            vn_hv_kv: t.vn_hv_kv,
            vn_lv_kv: vn[k],
            vk_percent: vk,
            vkr_percent: vkr[k],
            pfe_kw: if losses { t.pfe_kw } else { 0.0 },
            i0_percent: if losses { t.i0_percent } else { 0.0 },
            shift_degree: shift[k],
            tap,
            parallel: 1,
            df: 1.0,
            in_service: t.in_service,
        });
    }
    Ok(out.try_into().expect("three branches"))
}

/// The three star branches of trafo3w `t` of `net` (HV, MV, LV; see
/// [`trafo3w_equivalents`]), from the outer bus (HV) or the star node (MV, LV),
/// at the network's tap position.
pub fn trafo3w_branches(net: &Network, t: &Trafo3w) -> Result<[PiBranch; 3]> {
    let eq = trafo3w_equivalents(t)?;
    let star = net.buses[t.hv_bus].vn_kv;
    let outer = [t.hv_bus, t.mv_bus, t.lv_bus].map(|b| net.buses[b].vn_kv);
    let pos = |tr: &Trafo| tr.tap.as_ref().map_or(0.0, |x| x.pos);
    Ok([
        trafo_branch_between(net.sn_mva, &eq[0], pos(&eq[0]), outer[0], star),
        trafo_branch_between(net.sn_mva, &eq[1], pos(&eq[1]), star, outer[1]),
        trafo_branch_between(net.sn_mva, &eq[2], pos(&eq[2]), star, outer[2]),
    ])
}

/// An impedance element in per unit of the network (pandapower
/// `_calc_impedance_parameters_from_dataframe` and `makeYbus`' asymmetric
/// branch): the series part from → to (`z_ft`), to → from (`z_tf`), and the
/// shunts at the from and the to bus (`y_f`, `y_t`), all scaled from the
/// element's `sn_mva` to the network's.
#[derive(Debug, Clone, Copy)]
pub struct ImpedanceAdm {
    /// Series impedance seen from the from bus.
    pub z_ft: C64,
    /// Series impedance seen from the to bus.
    pub z_tf: C64,
    /// Shunt admittance at the from bus.
    pub y_f: C64,
    /// Shunt admittance at the to bus.
    pub y_t: C64,
}

impl ImpedanceAdm {
    /// `Yff = 1/z_ft`, `Yft = −1/z_ft`, `Ytf = −1/z_tf`, `Ytt = 1/z_tf`
    /// (series part only; the shunts go to the buses).
    pub fn series(&self) -> BranchAdm {
        let (yf, yt) = (self.z_ft.inv(), self.z_tf.inv());
        BranchAdm {
            yff: yf,
            yft: -yf,
            ytf: -yt,
            ytt: yt,
        }
    }
}

/// Per-unit parameters of impedance `e` for a network of base `sn_sys` MVA.
pub fn impedance_adm(sn_sys: f64, e: &Impedance) -> ImpedanceAdm {
    let k = sn_sys / e.sn_mva;
    let (rtf, xtf) = e.tf_pu();
    ImpedanceAdm {
        z_ft: C64::new(e.rft_pu, e.xft_pu).scale(k),
        z_tf: C64::new(rtf, xtf).scale(k),
        y_f: C64::new(e.gf_pu, e.bf_pu).scale(1.0 / k),
        y_t: C64::new(e.gt_pu, e.bt_pu).scale(1.0 / k),
    }
}

/// Constant-impedance part of ward `k` in p.u.: `(pz − j·qz)/sn` at 1 p.u.
pub fn ward_y(net: &Network, k: usize) -> C64 {
    let w = &net.wards[k];
    C64::new(w.pz_mw, -w.qz_mvar).scale(1.0 / net.sn_mva)
}
