//! The topology of the plan: buses fused over closed switches, the live part
//! (islands), the fill-reducing node order, element → node maps.

use crate::error::{Error, Result};
use crate::network::Network;
use std::collections::BTreeSet;

pub(super) struct UnionFind(pub(super) Vec<usize>);
impl UnionFind {
    pub(super) fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }
    pub(super) fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Greedy minimum-degree elimination order of the PQ nodes (ties by index).
pub(super) fn min_degree_order(pq: &[usize], adj: &[Vec<usize>], is_slack: &[bool]) -> Vec<usize> {
    let mut nbrs: std::collections::HashMap<usize, BTreeSet<usize>> = pq
        .iter()
        .map(|&r| {
            (
                r,
                adj[r]
                    .iter()
                    .copied()
                    .filter(|&v| v != r && !is_slack[v])
                    .collect(),
            )
        })
        .collect();
    let mut remaining: BTreeSet<(usize, usize)> = nbrs.iter().map(|(&r, s)| (s.len(), r)).collect();
    let mut order = Vec::with_capacity(pq.len());
    while let Some(&(deg, r)) = remaining.iter().next() {
        remaining.remove(&(deg, r));
        order.push(r);
        let ns: Vec<usize> = nbrs
            .remove(&r)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        for &a in &ns {
            if let Some(sa) = nbrs.get_mut(&a) {
                let old = sa.len();
                sa.remove(&r);
                for &b in &ns {
                    if b != a {
                        sa.insert(b);
                    }
                }
                remaining.remove(&(old, a));
                remaining.insert((sa.len(), a));
            }
        }
    }
    order
}

/// Per node, pandapower's ZIP shares `[i_p, z_p, i_q, z_q]` (`build_bus.py`,
/// `_calc_pq_elements_and_add_on_ppc`): per bus the mean of its in-service
/// loads' percentages / 100, applied by `makeSbus` to the bus's whole load
/// (sgens, storage and ward injections included). Buses fused into one node
/// (closed bus-bus switches) must agree: pandapower keeps whichever it meets last.
pub(super) fn zip_shares(
    net: &Network,
    bus_node: &[Option<usize>],
    n_node: usize,
) -> Result<Vec<[f64; 4]>> {
    let mut out = vec![[0.0; 4]; n_node];
    if !net.loads.iter().any(|l| l.in_service && l.is_zip()) {
        return Ok(out);
    }
    let nb = net.buses.len();
    let mut sum = vec![[0.0; 4]; nb];
    let mut count = vec![0usize; nb];
    for l in net.loads.iter().filter(|l| l.in_service) {
        let s = &mut sum[l.bus];
        s[0] += l.const_i_p_percent / 100.0;
        s[1] += l.const_z_p_percent / 100.0;
        s[2] += l.const_i_q_percent / 100.0;
        s[3] += l.const_z_q_percent / 100.0;
        count[l.bus] += 1;
    }
    let mut seen = vec![None::<usize>; n_node];
    for b in 0..nb {
        let (Some(n), true) = (bus_node[b], count[b] > 0) else {
            continue;
        };
        let z = sum[b].map(|x| x / count[b] as f64);
        match seen[n] {
            Some(b0) if out[n] != z => {
                return Err(Error::Unsupported(format!(
                    "buses {b0} ({:?}) and {b} ({:?}) are joined by closed switches and \
                     their loads have different ZIP shares (const_z_*/const_i_*_percent)",
                    net.buses[b0].name, net.buses[b].name
                )));
            }
            _ => {
                out[n] = z;
                seen[n] = Some(b);
            }
        }
    }
    Ok(out)
}
