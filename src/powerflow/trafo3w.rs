//! Three-winding transformer loading from a solution's bus voltages, for
//! either backend (the star node is not a bus, so its voltage is recovered here).

use super::batch::BatchResults;
use super::plan::Plan;
use crate::complex::C64;
use crate::error::{Error, Result};
use ndarray::Array2;

const SQRT3: f64 = 1.732_050_807_568_877_2;

/// pandapower's `res_trafo3w.loading_percent` (`trafo_loading = "current"`) of
/// every copy, `[B, n_trafo3w]`: `max_w(i_w·vn_w·√3/sn_w)·100` over the HV, MV
/// and LV terminal currents `i_w` (kA at the bus's rated voltage). The star
/// node's voltage follows from its current balance with the bus voltages of
/// `r` (a winding cut off by an open switch hangs on a node of its own with no
/// injection, which is eliminated first); 0 for a trafo3w not in the solved
/// network or a copy that did not converge. A winding at an out-of-service bus
/// counts 0 (pandapower reports NaN for the whole trafo3w there).
/// Results of another network (bus tables of another width) are an error.
pub fn trafo3w_loading_percent(plan: &Plan, r: &BatchResults) -> Result<Array2<f64>> {
    let net = &plan.net;
    let b = r.batch();
    let nb = net.buses.len();
    if r.vm_pu.dim() != (b, nb) || r.va_degree.dim() != (b, nb) || r.converged.len() != b {
        return Err(Error::InvalidInput(format!(
            "trafo3w loading: results of {} buses for a network of {nb}",
            r.vm_pu.ncols()
        )));
    }
    let mut out = Array2::zeros((b, net.trafo3ws.len()));
    for c in 0..b {
        if !r.converged[c] {
            continue;
        }
        for (k, t) in net.trafo3ws.iter().enumerate() {
            let buses = [t.hv_bus, t.mv_bus, t.lv_bus];
            let v_bus =
                |bus: usize| C64::from_polar(r.vm_pu[(c, bus)], r.va_degree[(c, bus)].to_radians());
            // Star current = diag·V_s + known; outer ends with a bus voltage or eliminated.
            let (mut diag, mut known) = (C64::ZERO, C64::ZERO);
            let mut ends = [None; 3];
            for w in 0..3 {
                let Some(bi) = plan.trafo3w_branch[k][w] else {
                    continue;
                };
                let br = &plan.branches[bi];
                // (outer node, y_oo, y_os, y_so, y_ss)
                let (o, y_oo, y_os, y_so, y_ss) = if w == 0 {
                    (br.f, br.adm.yff, br.adm.yft, br.adm.ytf, br.adm.ytt)
                } else {
                    (br.t, br.adm.ytt, br.adm.ytf, br.adm.yft, br.adm.yff)
                };
                if plan.bus_node[buses[w]] == Some(o) {
                    let vo = v_bus(buses[w]);
                    diag += y_ss;
                    known += y_so * vo;
                    ends[w] = Some((vo, y_oo, y_os));
                } else {
                    diag += y_ss - y_so * y_os / y_oo;
                }
            }
            if diag == C64::ZERO {
                continue;
            }
            let vs = -(known / diag);
            let sides = [
                (t.vn_hv_kv, t.sn_hv_mva),
                (t.vn_mv_kv, t.sn_mv_mva),
                (t.vn_lv_kv, t.sn_lv_mva),
            ];
            let mut ld: f64 = 0.0;
            for w in 0..3 {
                if let Some((vo, y_oo, y_os)) = ends[w] {
                    let i_pu = (y_oo * vo + y_os * vs).abs();
                    let i_ka = i_pu * net.sn_mva / (SQRT3 * net.buses[buses[w]].vn_kv);
                    let (vn, sn) = sides[w];
                    ld = ld.max(i_ka * vn * SQRT3 / sn * 100.0);
                }
            }
            out[(c, k)] = ld;
        }
    }
    Ok(out)
}
