//! Warm start after tap moves, shared by the CPU ([`super::cpu`]) and GPU
//! ([`super::gpu`]) backends so both start a re-solve from the same point.
//!
//! When a copy's tap changer moves between two solves, the voltages behind the
//! regulator follow its ratio (to first order on a radial feeder). Scaling the
//! previous solution's |V| there by the ratio's change, before the FDPF
//! iterations start, saves the iterations FDPF would spend finding it (and keeps
//! f32 GPU solves of extreme copies from diverging where the f64 CPU solve still
//! converges from the unscaled point). Only the starting point changes, not the
//! solution.

use super::admittance::tapped_voltages;
use super::plan::Plan;
use crate::network::Trafo;

/// Per tap-changing trafo (index into `plan.tap_trafos`): the PQ nodes that
/// reach a slack only through it, and whether they hang off its LV side; `None`
/// where it is not such a cut (meshed around it) or past the size budget.
pub(crate) type TapDown = Vec<Option<(bool, Vec<u32>)>>;

/// For each tap-changing trafo, the nodes cut off from every slack when it is
/// removed (see [`TapDown`]). At most `8·n_node + 1024` entries in all, so
/// nested regulators on a long radial feeder cannot make it quadratic; trafos
/// past that budget get `None` (no warm-start scaling, same results).
pub(crate) fn downstream_nodes(p: &Plan) -> TapDown {
    let n = p.n_node;
    let mut adj: Vec<Vec<(usize, usize)>> = vec![vec![]; n];
    for (i, b) in p.branches.iter().enumerate() {
        if b.f != b.t {
            adj[b.f].push((b.t, i));
            adj[b.t].push((b.f, i));
        }
    }
    let mut budget = 8 * n + 1024;
    let mut seen = vec![false; n];
    let mut stack = Vec::with_capacity(n);
    p.tap_trafos
        .iter()
        .map(|&(_, bi)| {
            seen.fill(false);
            stack.clear();
            stack.extend(p.n_pq..n);
            for &s in &stack {
                seen[s] = true;
            }
            while let Some(u) = stack.pop() {
                for &(v, e) in &adj[u] {
                    if e != bi && !seen[v] {
                        seen[v] = true;
                        stack.push(v);
                    }
                }
            }
            let br = &p.branches[bi];
            let lv_down = match (seen[br.f], seen[br.t]) {
                (true, false) => true,
                (false, true) => false,
                _ => return None,
            };
            let nodes: Vec<u32> = (0..p.n_pq)
                .filter(|&i| !seen[i])
                .map(|i| i as u32)
                .collect();
            if nodes.len() > budget {
                return None;
            }
            budget -= nodes.len();
            Some((lv_down, nodes))
        })
        .collect()
}

/// Factor by which |V| of the nodes behind trafo `t` (on its LV side when
/// `lv_down`, else on its HV side) moves when its tap goes from `from` to `to`:
/// |V_lv|/|V_hv| goes as vn_lv/vn_hv. `None` where there is nothing to scale
/// (no previous position) or the factor is not a positive finite number.
pub(crate) fn tap_move_factor(t: &Trafo, from: f64, to: f64, lv_down: bool) -> Option<f64> {
    if !from.is_finite() {
        return None;
    }
    let (h0, l0) = tapped_voltages(t, from);
    let (h1, l1) = tapped_voltages(t, to);
    let f = (l1 / h1) / (l0 / h0);
    let f = if lv_down { f } else { 1.0 / f };
    (f.is_finite() && f > 0.0).then_some(f)
}
