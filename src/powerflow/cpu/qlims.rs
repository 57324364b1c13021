//! The CPU kernel's `enforce_q_lims` loop, per copy (the algorithm and the
//! shared parts: [`crate::powerflow::qlims`]): after a converged solve, hold
//! the violators at their limits, release their PV nodes (this copy's own PV
//! mask, B'' factors with those nodes' real rows from the kernel's cache, Q
//! injections), solve on from the last solution, until no gen violates.

use super::{ext_grid_rows, slack_currents, solve_copy, CopyState, Kernel};
use crate::complex::C64;

/// One copy's `enforce_q_lims` state, as of its last solve.
#[derive(Debug, Clone, Default)]
pub(crate) struct QState {
    /// Per gen: held at a Q limit (pandapower's `limited`); empty until used.
    pub(crate) held: Vec<bool>,
    /// Per gen, MVar: a held gen's limit; another gen's Q from the last split.
    pub(crate) gen_q: Vec<f64>,
    /// Held gens.
    pub(crate) n_held: usize,
    /// Per PQ-numbered node: still a PV node (valid when [`QState::released`]).
    pub(crate) pv_mask: Vec<bool>,
    /// Released PV nodes, in order of release, with their injection before
    /// the gens' Q was put in.
    pub(crate) saved: Vec<(usize, C64)>,
    /// Scratch: ext_grid Q of the split.
    eq: Vec<f64>,
}

impl QState {
    /// Some PV node of this copy is a PQ node now.
    #[inline]
    pub(crate) fn released(&self) -> bool {
        !self.saved.is_empty()
    }

    /// Node `i`'s injection without its gens' Q (`s_spec` at a PV node).
    pub(crate) fn spec(&self, s_spec: &[C64], i: usize) -> C64 {
        self.saved
            .iter()
            .find(|&&(j, _)| j == i)
            .map_or(s_spec[i], |&(_, s)| s)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.held.capacity()
            + (self.gen_q.capacity() + self.eq.capacity()) * 8
            + self.pv_mask.capacity()
            + self.saved.capacity() * std::mem::size_of::<(usize, C64)>()
    }
}

/// Back to every gen's node PV (the start of every solve): the released
/// nodes' injections restored, no gen held, B'' at the copy's taps.
pub(super) fn reset(k: &Kernel, st: &mut CopyState) {
    if st.q.n_held == 0 && !st.q.released() {
        return;
    }
    let released = st.q.released();
    for &(i, s) in &st.q.saved {
        st.s_spec[i] = s;
    }
    st.q.saved.clear();
    st.q.held.fill(false);
    st.q.n_held = 0;
    if released {
        st.bpp = k.copy_bpp(st);
    }
}

/// Run pandapower's loop on a copy just solved with every gen's node PV;
/// true if it held a gen (and solved again).
pub(super) fn enforce(k: &Kernel, st: &mut CopyState) -> bool {
    let p = &*k.plan;
    let n_gen = p.gen_node.len();
    if !st.converged || n_gen == 0 {
        return false;
    }
    let sn = p.net.sn_mva;
    if st.q.held.len() != n_gen {
        st.q.held = vec![false; n_gen];
        st.q.gen_q = vec![0.0; n_gen];
        st.q.eq = vec![0.0; p.ext_grid_node.len()];
    }
    let mut iterations = st.iterations;
    let mut any = false;
    loop {
        // Every gen's Q as pandapower's `pfsoln` splits it, held gens at
        // their limits (the ext_grid rows' code: slack currents first).
        slack_currents(k, st);
        let (mut ep, mut gp) = (vec![0.0; p.ext_grid_node.len()], vec![0.0; n_gen]);
        let mut eq = std::mem::take(&mut st.q.eq);
        // The split reads the held gens' limits from `st.q.gen_q`.
        let mut gq = st.q.gen_q.clone();
        ext_grid_rows(k, st, &st.cur, &mut ep, &mut eq, &mut gp, &mut gq);
        st.q.eq = eq;
        st.q.gen_q = gq;
        // Violators: all of them at once (pandapower's enforce_q_lims=True).
        let mut found = false;
        for (g, node) in p.gen_node.iter().enumerate() {
            if node.is_none() || st.q.held[g] {
                continue;
            }
            let (lo, hi) = p.net.gens[g].q_range();
            let q = st.q.gen_q[g];
            let limit = if q > hi {
                hi
            } else if q < lo {
                lo
            } else {
                continue;
            };
            st.q.held[g] = true;
            st.q.n_held += 1;
            st.q.gen_q[g] = limit;
            found = true;
        }
        if !found {
            break;
        }
        any = true;
        // Release the violators' PV nodes (a slack node stays a slack).
        let mut new_release = false;
        for (g, node) in p.gen_node.iter().enumerate() {
            let Some(i) = *node else { continue };
            if !st.q.held[g] || i >= p.n_pq {
                continue;
            }
            if !st.q.released() {
                st.q.pv_mask.clear();
                st.q.pv_mask.extend_from_slice(&k.pv_mask);
            }
            if st.q.pv_mask[i] {
                st.q.pv_mask[i] = false;
                st.q.saved.push((i, st.s_spec[i]));
                new_release = true;
            }
        }
        // A released node's Q injection: its gens' (held: the limit; the
        // others: their last split), as pandapower's `Sbus` has them.
        for &(i, s0) in &st.q.saved {
            let q: f64 = (k.gen_sites.sites.iter())
                .filter(|s| s.node == i)
                .flat_map(|s| s.gens.iter())
                .map(|&g| st.q.gen_q[g])
                .sum();
            st.s_spec[i] = s0 + C64::new(0.0, q / sn);
        }
        if new_release {
            st.bpp = k.copy_bpp(st);
        }
        solve_copy(k, st);
        iterations += st.iterations;
        if !st.converged {
            break;
        }
    }
    st.iterations = iterations;
    any
}
