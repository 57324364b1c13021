//! Each copy's node injections and node shunts from its set-points, in one
//! place for both backends (`cpu::Kernel::prepare`, `gpu::GpuBatch::prepare`).

use super::batch::BatchInputs;
use super::plan::Plan;
use crate::complex::C64;

/// Copy `c` of `inp`: `s[node]` = specified injection in p.u. (loads, sgens,
/// storage and the plan's constant injections such as ward `ps`/`qs`); `s`
/// has `plan.n_node` entries; nothing is allocated. The shunts are
/// [`copy_shunts`].
pub(crate) fn copy_injections(p: &Plan, inp: &BatchInputs, c: usize, s: &mut [C64]) {
    let net = &p.net;
    let inv_sn = 1.0 / net.sn_mva;
    s.copy_from_slice(&p.node_s_const);
    for (k, n) in p.load_node.iter().enumerate() {
        if let Some(n) = *n {
            let f = inp.load_scaling[(c, k)] * inv_sn;
            s[n] -= C64::new(inp.load_p_mw[(c, k)] * f, inp.load_q_mvar[(c, k)] * f);
        }
    }
    for (k, n) in p.sgen_node.iter().enumerate() {
        if let Some(n) = *n {
            let f = net.sgens[k].scaling * inv_sn;
            s[n] += C64::new(inp.sgen_p_mw[(c, k)] * f, inp.sgen_q_mvar[(c, k)] * f);
        }
    }
    for (k, n) in p.storage_node.iter().enumerate() {
        if let Some(n) = *n {
            let f = net.storages[k].scaling * inv_sn;
            s[n] -= C64::new(inp.storage_p_mw[(c, k)] * f, net.storages[k].q_mvar * f);
        }
    }
}

/// Copy `c` of `inp`: adds each in-service gen's `p_mw · scaling` (p.u.) to
/// `s[node]`. Kept apart from [`copy_injections`]: pandapower's ZIP shares
/// apply to the bus loads (sgens included), not to gens, so the kernels add it
/// after [`copy_zip`].
pub(crate) fn copy_gen_p(p: &Plan, inp: &BatchInputs, c: usize, s: &mut [C64]) {
    let inv_sn = 1.0 / p.net.sn_mva;
    for (k, n) in p.gen_node.iter().enumerate() {
        if let Some(n) = *n {
            s[n].re += inp.gen_p_mw[(c, k)] * p.net.gens[k].scaling * inv_sn;
        }
    }
}

/// Copy `c` of `inp`: `y[node]` = shunt admittance in p.u. (shunts at the
/// copy's steps and the plan's constant shunts: ward `pz`/`qz`, impedance
/// shunts); `plan.n_node` entries.
pub(crate) fn copy_shunts(p: &Plan, inp: &BatchInputs, c: usize, y: &mut [C64]) {
    y.copy_from_slice(&p.node_y_const);
    for (k, n) in p.shunt_node.iter().enumerate() {
        if let Some(n) = *n {
            y[n] += p.shunt_y[k].scale(inp.shunt_step[(c, k)]);
        }
    }
}

/// The voltage-dependent parts of the PQ nodes' injections (only for a plan
/// with [`Plan::has_zip`]): from a copy's `s` ([`copy_injections`], the
/// injection at |V| = 1), `si[i]` (∝ |V|) and `sz[i]` (∝ |V|²) with pandapower's
/// shares; the constant-power part is `s − si − sz`. The kernels form
/// `S_spec(|V|) = s + (|V| − 1)·(si + sz·(|V| + 1))`, which is
/// `S_p + S_i·|V| + S_z·|V|²` without cancellation near |V| = 1.
pub(crate) fn copy_zip(p: &Plan, s: &[C64], si: &mut [C64], sz: &mut [C64]) {
    for (((si, sz), s), z) in si.iter_mut().zip(sz.iter_mut()).zip(s).zip(&p.node_zip) {
        *si = C64::new(s.re * z[0], s.im * z[2]);
        *sz = C64::new(s.re * z[1], s.im * z[3]);
    }
}
