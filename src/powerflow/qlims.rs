//! pandapower's `enforce_q_lims` (`runpp(enforce_q_lims=True)`,
//! `_run_ac_pf_with_qlims_enforced` in `pf/run_newton_raphson_pf.py`), the
//! parts every backend shares: the limit checks, B'' with some PV rows
//! released, and the Q split with gens held at a limit. The per-copy loop is
//! the CPU kernel's (`cpu/qlims.rs`).
//!
//! pandapower's algorithm, followed step by step:
//! 1. solve (all gens' nodes PV);
//! 2. Q of every in-service gen from the solution (`pfsoln`: the node's balance
//!    split among its gens and ext_grids, see [`split_q_limited`]); the gens
//!    not yet held whose Q is above `max_q_mvar` or below `min_q_mvar` (strictly;
//!    `[QMIN, QMAX]` as [`Gen::q_range`](crate::network::Gen::q_range): NaN or
//!    missing is ±1e9) are the violators — **all of them at once**, ext_grids
//!    never (pandapower's `ref_gens`), gens at an ext_grid's node included;
//! 3. none: done. Otherwise each violator is held at its violated limit for
//!    good (never released again, never re-examined); the node of each
//!    violator that is a PV node becomes a PQ node whose Q injection is the
//!    held gens' limits plus the Q of the node's other gens as the last split
//!    gave it (pandapower keeps those in `Sbus`); a violator at an ext_grid's
//!    node leaves it a slack (its Q is the limit, the ext_grids take the rest);
//! 4. solve again from the last solution (warm) and go to 2.
//!
//! Each round holds at least one more gen, so there are at most `n_gen + 1`
//! solves; pandapower has no other cap and raises nothing of its own (a
//! failed solve fails the copy).

use super::injections::{GenSite, GenSites};
use super::plan::matrices::{add_stamp, stamp_slots};
use super::plan::Plan;
use super::sparse_lu::PatternValues;
use crate::complex::C64;
use crate::error::{Error, Result};

/// Refuse what `enforce_q_lims` cannot follow, by gen: inverted limits
/// (`min_q_mvar > max_q_mvar`), and a gen at a node with voltage-dependent
/// loads (pandapower would scale the held gen's P and Q by the bus's ZIP
/// shares; not offered). Nothing is checked with the option off.
pub(crate) fn check_limits(p: &Plan) -> Result<()> {
    if !p.options.enforce_q_lims {
        return Ok(());
    }
    for (k, node) in p.gen_node.iter().enumerate() {
        let Some(n) = *node else { continue };
        let g = &p.net.gens[k];
        let (lo, hi) = g.q_range();
        if lo > hi {
            return Err(Error::InvalidNetwork(format!(
                "gen {k} ({:?}): min_q_mvar {lo} > max_q_mvar {hi} (enforce_q_lims needs \
                 min_q_mvar <= max_q_mvar)",
                g.name
            )));
        }
        if p.has_zip && n < p.n_pq && p.node_zip[n].iter().any(|&x| x != 0.0) {
            return Err(Error::Unsupported(format!(
                "gen {k} ({:?}): enforce_q_lims at a bus with voltage-dependent (ZIP) loads \
                 is not offered",
                g.name
            )));
        }
    }
    Ok(())
}

/// B'' of a copy at tap positions `taps` (per `plan.tap_trafos`) whose PV
/// nodes are those marked in `pv` (`n_pq` entries; a released PV node is a
/// PQ node: its real row and column, its shunts and tap stamps, on the
/// shared pattern): `a` receives the matrix, `out` its factors. Assembled in
/// the order of `Plan::set_variant` and `Plan::bpp_factor_for_taps` (fixed
/// branches, node shunts, tap-changing trafos), so that with `pv` equal to
/// `plan.is_pv` the values are the plan's bit for bit. Returns false on a
/// zero pivot.
pub(crate) fn bpp_factor(
    p: &Plan,
    taps: &[f64],
    pv: &[bool],
    a: &mut PatternValues,
    out: &mut PatternValues,
    work: &mut [f64],
) -> bool {
    let n = p.n_pq;
    let lu = &p.bpp;
    a.l.fill(0.0);
    a.d.fill(0.0);
    a.u.fill(0.0);
    let slots = |f: usize, t: usize| stamp_slots(lu, n, Some(pv), f, t);
    let mut tapped = vec![false; p.branches.len()];
    for &(_, b) in &p.tap_trafos {
        tapped[b] = true;
    }
    for (bi, br) in p.branches.iter().enumerate() {
        if tapped[bi] {
            continue;
        }
        let mut st = super::plan::matrices::bpp_stamp(br.z, br.ratio, br.y_sh, p.variant, p.psi);
        if br.f == br.t {
            st = [st[0] + st[1] + 2.0 * st[2], 0.0, 0.0];
        }
        add_stamp(a, &slots(br.f, br.t), st);
    }
    for (i, y) in p.base_node_shunts().iter().enumerate().take(n) {
        a.d[i] = if pv[i] {
            1.0
        } else {
            a.d[i] - (*y * C64::from_polar(1.0, -p.psi)).im
        };
    }
    for (j, &pos) in taps.iter().enumerate() {
        let b = &p.branches[p.tap_trafos[j].1];
        add_stamp(a, &slots(b.f, b.t), p.bpp_tap_stamp(j, pos));
    }
    lu.factor_values(a, out, work)
}

/// pandapower's `pfsoln._update_q` at one node once some gens are held
/// (`limited_gens`, out of service for the split): the held gens take their
/// fixed Q (`fixed[g]`, MVar), the node's ext_grids and other gens share the
/// rest of the node's Q balance `q_bus` as [`GenSites::split_q`] shares it,
/// with `n_held` gens of the whole network left out of its count of sources.
#[allow(clippy::too_many_arguments)]
pub(crate) fn split_q_limited(
    p: &Plan,
    sites: &GenSites,
    site: &GenSite,
    q_bus: f64,
    held: &[bool],
    fixed: &[f64],
    n_held: usize,
    eq: &mut [f64],
    gq: &mut [f64],
) {
    let mut q_on = q_bus;
    for &g in &site.gens {
        if held[g] {
            q_on -= fixed[g];
            gq[g] = fixed[g];
        }
    }
    let on_gens = || site.gens.iter().copied().filter(|&g| !held[g]);
    let count = site.ext_grids.len() + on_gens().count();
    if count == 0 {
        return;
    }
    let ranges = || {
        site.ext_grids
            .iter()
            .map(|_| (0.0, 0.0))
            .chain(on_gens().map(|g| p.net.gens[g].q_range()))
    };
    let q_equal = q_on / count as f64;
    let (mut q_tot, mut q_min, mut q_max) = (0.0, 0.0, 0.0);
    for (lo, hi) in ranges() {
        q_tot += q_equal;
        q_min += lo;
        q_max += hi;
    }
    let single = sites.n_sources() - n_held <= 1;
    let share = |(lo, hi): (f64, f64)| {
        if single {
            q_on
        } else if q_min == q_max {
            q_equal
        } else {
            lo + (q_tot - q_min) / (q_max - q_min + f64::EPSILON) * (hi - lo)
        }
    };
    for (&e, r) in site.ext_grids.iter().zip(ranges()) {
        eq[e] = share(r);
    }
    for (g, r) in on_gens().zip(ranges().skip(site.ext_grids.len())) {
        gq[g] = share(r);
    }
}
