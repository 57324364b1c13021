//! Each copy's node injections and node shunts from its set-points, in one
//! place: the CPU kernels' `prepare` calls both, the GPU backend's
//! `prepare_copies` the shunts; the GPU's injections are formed by the
//! shader's `injections` from the uploaded set-points, and its port is
//! tested against [`copy_specified`].

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

/// Copy `c` of `inp`: its specified injections `s` (all nodes) as both
/// backends take them — [`copy_injections`], then (with ZIP loads, `si`/`sz`
/// at least `n_pq` long) [`copy_zip`] of the loads' part, then the gens' P
/// ([`copy_gen_p`]). The shunts are [`copy_shunts`].
pub(crate) fn copy_specified(
    p: &Plan,
    inp: &BatchInputs,
    c: usize,
    s: &mut [C64],
    si: &mut [C64],
    sz: &mut [C64],
) {
    copy_injections(p, inp, c, s);
    if p.has_zip {
        // From the loads' injections, before the gens' P.
        copy_zip(p, &s[..p.n_pq], si, sz);
    }
    copy_gen_p(p, inp, c, s);
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
    add_shunt_steps(p, inp, c, y);
}

/// [`copy_shunts`] into a `y` that already holds the constant part
/// everywhere but at `nodes` (every node with a shunt or a constant
/// admittance among them): only `nodes` are written. The CPU kernel's copies
/// keep their `y` between solves, and every other entry stays zero.
pub(crate) fn copy_shunts_at(
    p: &Plan,
    inp: &BatchInputs,
    c: usize,
    y: &mut [C64],
    nodes: &[usize],
) {
    for &i in nodes {
        y[i] = p.node_y_const[i];
    }
    add_shunt_steps(p, inp, c, y);
}

fn add_shunt_steps(p: &Plan, inp: &BatchInputs, c: usize, y: &mut [C64]) {
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

/// A node with gens: its gens and ext_grids (pandapower's `ppc` gens at one bus).
#[derive(Debug, Clone)]
pub(crate) struct GenSite {
    pub(crate) node: usize,
    pub(crate) gens: Vec<usize>,
    pub(crate) ext_grids: Vec<usize>,
}

/// Every node with gens, for the gen and ext_grid Q results of both backends.
#[derive(Debug, Clone, Default)]
pub(crate) struct GenSites {
    pub(crate) sites: Vec<GenSite>,
    /// In-service gens and ext_grids in the solved network (pandapower splits
    /// Q by the Q ranges only when there is more than one).
    n_sources: usize,
}

impl GenSites {
    pub(crate) fn new(p: &Plan) -> Self {
        let mut sites: Vec<GenSite> = vec![];
        for (k, n) in p.gen_node.iter().enumerate() {
            let Some(n) = *n else { continue };
            match sites.iter_mut().find(|s| s.node == n) {
                Some(s) => s.gens.push(k),
                None => sites.push(GenSite {
                    node: n,
                    gens: vec![k],
                    ext_grids: p
                        .ext_grid_node
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| x.is_some_and(|(m, _)| m == n))
                        .map(|(e, _)| e)
                        .collect(),
                }),
            }
        }
        // pandapower's `ppc` gens: ext_grids, gens and xwards' internal nodes.
        let n_sources = p.gen_node.iter().flatten().count()
            + p.ext_grid_node.iter().flatten().count()
            + p.xward_node.iter().flatten().count();
        GenSites { sites, n_sources }
    }

    /// In-service gens, ext_grids and xwards of the solved network.
    pub(crate) fn n_sources(&self) -> usize {
        self.n_sources
    }

    /// Split a gen node's Q balance `q_bus` (MVar: injection plus the bus's own
    /// consumption) among its ext_grids (`eq`) and gens (`gq`) as pandapower's
    /// `pfsoln._update_q`: equally, then in proportion to each one's
    /// `[QMIN, QMAX]` (an ext_grid's `[0, 0]`, a gen's [`Gen::q_range`](crate::network::Gen::q_range)),
    /// when the network has more than one gen or ext_grid.
    pub(crate) fn split_q(
        &self,
        p: &Plan,
        site: &GenSite,
        q_bus: f64,
        eq: &mut [f64],
        gq: &mut [f64],
    ) {
        let ranges = site
            .ext_grids
            .iter()
            .map(|_| (0.0, 0.0))
            .chain(site.gens.iter().map(|&g| p.net.gens[g].q_range()));
        let count = (site.ext_grids.len() + site.gens.len()) as f64;
        let q_equal = q_bus / count;
        let (mut q_tot, mut q_min, mut q_max) = (0.0, 0.0, 0.0);
        for (lo, hi) in ranges.clone() {
            q_tot += q_equal;
            q_min += lo;
            q_max += hi;
        }
        let share = |(lo, hi): (f64, f64)| {
            if self.n_sources <= 1 {
                q_bus
            } else if q_min == q_max {
                q_equal
            } else {
                lo + (q_tot - q_min) / (q_max - q_min + f64::EPSILON) * (hi - lo)
            }
        };
        for (&e, r) in site.ext_grids.iter().zip(ranges.clone()) {
            eq[e] = share(r);
        }
        for (&g, r) in site.gens.iter().zip(ranges.skip(site.ext_grids.len())) {
            gq[g] = share(r);
        }
    }
}
