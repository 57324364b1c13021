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
///
/// One depth-first search from the non-PQ nodes (joined into one root) finds
/// the bridges (Tarjan's low-links, parallel branches told apart by index): a
/// trafo cuts nodes off exactly when it is a bridge, and those nodes are the
/// search subtree below it. Linear in the network's size plus the output (a
/// search per trafo, as before, took most of the 30 s plan build of
/// case9241pegase: the plan is scored under 26 variants, each with a kernel).
pub(crate) fn downstream_nodes(p: &Plan) -> TapDown {
    let n = p.n_node;
    let root = n; // every non-PQ node hangs off this virtual node
    let mut adj: Vec<Vec<(usize, usize)>> = vec![vec![]; n + 1];
    let m = p.branches.len();
    for (i, b) in p.branches.iter().enumerate() {
        if b.f != b.t {
            adj[b.f].push((b.t, i));
            adj[b.t].push((b.f, i));
        }
    }
    for (k, v) in (p.n_pq..n).enumerate() {
        adj[root].push((v, m + k));
        adj[v].push((root, m + k));
    }
    const UNSEEN: usize = usize::MAX;
    let mut tin = vec![UNSEEN; n + 1];
    let mut low = vec![0usize; n + 1];
    let mut tout = vec![0usize; n + 1];
    // Tree edge into each node (branch index), and the nodes in visiting order.
    let mut parent_edge = vec![UNSEEN; n + 1];
    let mut order: Vec<usize> = Vec::with_capacity(n + 1);
    let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
    tin[root] = 0;
    low[root] = 0;
    order.push(root);
    while let Some(&mut (u, ref mut next)) = stack.last_mut() {
        if let Some(&(v, e)) = adj[u].get(*next) {
            *next += 1;
            if e == parent_edge[u] {
                continue;
            }
            if tin[v] == UNSEEN {
                tin[v] = order.len();
                low[v] = tin[v];
                parent_edge[v] = e;
                order.push(v);
                stack.push((v, 0));
            } else {
                low[u] = low[u].min(tin[v]);
            }
        } else {
            stack.pop();
            tout[u] = order.len();
            if let Some(&(w, _)) = stack.last() {
                low[w] = low[w].min(low[u]);
            }
        }
    }
    // PQ nodes no slack reaches at all are cut off by every bridge (as a
    // search per trafo would find them).
    let unreachable: Vec<u32> = (0..p.n_pq)
        .filter(|&i| tin[i] == UNSEEN)
        .map(|i| i as u32)
        .collect();
    let mut budget = 8 * n + 1024;
    p.tap_trafos
        .iter()
        .map(|&(_, bi)| {
            let br = &p.branches[bi];
            if br.f == br.t {
                return None;
            }
            // The child end of the tree edge `bi`, if it is one and a bridge.
            let child = [br.f, br.t]
                .into_iter()
                .find(|&c| tin[c] != UNSEEN && parent_edge[c] == bi)?;
            if low[child] < tin[child] {
                return None;
            }
            let lv_down = child == br.t;
            let mut nodes: Vec<u32> = order[tin[child]..tout[child]]
                .iter()
                .filter(|&&v| v < p.n_pq)
                .map(|&v| v as u32)
                .chain(unreachable.iter().copied())
                .collect();
            if nodes.len() > budget {
                return None;
            }
            nodes.sort_unstable();
            budget -= nodes.len();
            Some((lv_down, nodes))
        })
        .collect()
}

/// The search per trafo that [`downstream_nodes`] replaces, kept to check it.
#[cfg(test)]
pub(crate) fn downstream_nodes_by_search(p: &Plan) -> TapDown {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powerflow::SolverOptions;

    /// The bridge search gives what a search per trafo gives, on radial feeders
    /// with regulators, meshed transmission cases and multi-voltage nets.
    #[test]
    fn bridges_give_the_search_per_trafo() {
        let root = env!("CARGO_MANIFEST_DIR");
        let nets = [
            "ieee13".to_string(),
            "ieee34".to_string(),
            "ieee123".to_string(),
            "ieee34_ieee13".to_string(),
            format!("{root}/tests/data/pandapower_gen/case300.json"),
            format!("{root}/tests/data/pandapower_gen/case118.json"),
            format!("{root}/tests/data/pandapower_gen/multivoltage_full.json"),
            format!("{root}/tests/data/pandapower_nets/mv_oberrhein.json"),
            format!("{root}/tests/data/pandapower_nets/open_ends.json"),
            format!("{root}/tests/data/pandapower_large/case1354pegase.json"),
        ];
        let mut cuts = 0;
        for name in nets {
            let net = crate::network::load(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
            let options = SolverOptions {
                variant: Some((crate::powerflow::Variant::XB, 0.0)),
                ..Default::default()
            };
            let plan = Plan::new(&net, options).unwrap();
            let fast = downstream_nodes(&plan);
            assert_eq!(fast, downstream_nodes_by_search(&plan), "{name}");
            cuts += fast.iter().flatten().count();
        }
        assert!(cuts > 10, "{cuts}");
    }
}
