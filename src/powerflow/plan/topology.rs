//! The topology of the plan, step 1 of [`Plan::new`](super::Plan::new):
//! buses fused over closed switches, branches between the fused buses (an
//! auxiliary node at an end cut by an open switch), the live part (islands
//! fed by an ext_grid), the node numbering (fill-reducing order of the PQ
//! nodes, slacks after them), element → node maps and the PV nodes.
//!
//! [`Topology::build`] runs the steps in order; each takes and returns plain
//! data, so each can be checked on its own.

use super::{BranchSource, PlanBranch, PvSource};
use crate::complex::C64;
use crate::error::{Error, Result};
use crate::network::{Network, SwitchElement};
use crate::powerflow::admittance::{
    impedance_adm, line_branch, switch_branch, trafo3w_branches, trafo_branch, BranchAdm, PiBranch,
};
use std::collections::BTreeSet;

/// Everything [`Plan`](super::Plan) takes from the network's topology.
#[derive(Debug, Clone)]
pub(crate) struct Topology {
    /// PQ nodes are `0..n_pq` in elimination order.
    pub(crate) n_pq: usize,
    /// Slack nodes are `n_pq..n_node`.
    pub(crate) n_node: usize,
    /// Node of each bus (`None`: out of service or cut off from every slack).
    pub(crate) bus_node: Vec<Option<usize>>,
    /// Buses in service but cut off from every slack bus.
    pub(crate) isolated_buses: Vec<usize>,
    /// Fixed voltage of each slack node (index `node − n_pq`).
    pub(crate) slack_v: Vec<C64>,
    /// Branches between live nodes, with their element → branch maps.
    pub(crate) branches: NodeBranches,
    /// Element → node maps.
    pub(crate) elements: ElementNodes,
    /// The PV nodes.
    pub(crate) pv: PvNodes,
}

impl Topology {
    /// Run the topology steps on `net` (validated): fuse, branches between
    /// roots, islands, numbering, branches in node numbers, element nodes, PV
    /// nodes.
    pub(crate) fn build(net: &Network) -> Result<Topology> {
        let fused = fuse_buses(net);
        let raw = raw_branches(net, fused)?;
        let islands = islands(net, &raw);
        let numbering = number_nodes(net, &raw.root, &islands);
        let elements = element_nodes(net, &numbering, &raw.xward_root, &islands.live);
        let branches = node_branches(net, raw.branches, &islands.live, &numbering.node_of_root);
        let pv = pv_nodes(&elements, numbering.n_pq, numbering.n_node);
        Ok(Topology {
            n_pq: numbering.n_pq,
            n_node: numbering.n_node,
            bus_node: numbering.bus_node,
            isolated_buses: islands.isolated_buses,
            slack_v: numbering.slack_v,
            branches,
            elements,
            pv,
        })
    }
}

/// Buses fused by closed zero-impedance bus-bus switches, and the ends that
/// open switches cut.
#[derive(Debug, Clone)]
pub(crate) struct Fused {
    /// Root of each bus (the smallest bus fused with it).
    pub(crate) root: Vec<usize>,
    /// Per line, `[from, to]` end behind an open switch.
    pub(crate) open_line: Vec<[bool; 2]>,
    /// Per trafo, `[hv, lv]` end behind an open switch.
    pub(crate) open_trafo: Vec<[bool; 2]>,
    /// Per trafo3w, `[hv, mv, lv]` end behind an open switch.
    pub(crate) open_trafo3w: Vec<[bool; 3]>,
    /// Closed bus-bus switches with an impedance (branches, not fused).
    pub(crate) z_switches: Vec<usize>,
}

/// Step 1: fuse buses over closed bus-bus switches and note open ends.
pub(crate) fn fuse_buses(net: &Network) -> Fused {
    let nb = net.buses.len();
    // 1. Fuse buses joined by closed zero-impedance bus-bus switches; note which
    //    end of each line / trafo an open switch cuts (`[from/hv, to/lv]`).
    let mut uf = UnionFind((0..nb).collect());
    let mut open_line = vec![[false; 2]; net.lines.len()];
    let mut open_trafo = vec![[false; 2]; net.trafos.len()];
    let mut open_trafo3w = vec![[false; 3]; net.trafo3ws.len()];
    let mut z_switches = vec![];
    for (k, s) in net.switches.iter().enumerate() {
        match s.et {
            SwitchElement::Bus => {
                let live = net.buses[s.bus].in_service && net.buses[s.element].in_service;
                if s.closed && live {
                    if s.z_ohm > 0.0 {
                        z_switches.push(k);
                    } else {
                        uf.union(s.bus, s.element);
                    }
                }
            }
            // pandapower (`_gather_branch_switch_info`): the switch is at the
            // from/hv end if its bus is that end's bus, else at the other end.
            SwitchElement::Line => {
                let end = (s.bus != net.lines[s.element].from_bus) as usize;
                open_line[s.element][end] |= !s.closed;
            }
            SwitchElement::Trafo => {
                let end = (s.bus != net.trafos[s.element].hv_bus) as usize;
                open_trafo[s.element][end] |= !s.closed;
            }
            // pandapower: the first of hv, mv, lv whose bus is the switch's.
            SwitchElement::Trafo3w => {
                let t = &net.trafo3ws[s.element];
                let end = [t.hv_bus, t.mv_bus, t.lv_bus]
                    .iter()
                    .position(|&b| b == s.bus)
                    .unwrap_or(0);
                open_trafo3w[s.element][end] |= !s.closed;
            }
        }
    }
    // Roots `0..nb` are bus roots; roots from `nb` on are auxiliary nodes.
    let root: Vec<usize> = (0..nb).map(|b| uf.find(b)).collect();
    Fused {
        root,
        open_line,
        open_trafo,
        open_trafo3w,
        z_switches,
    }
}

/// A branch between two roots, before the nodes are numbered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw {
    pub(crate) f: usize,
    pub(crate) t: usize,
    pub(crate) source: BranchSource,
    pub(crate) pi: PiBranch,
    pub(crate) adm: BranchAdm,
}

/// Branches between roots, and the roots that no bus maps to.
#[derive(Debug, Clone)]
pub(crate) struct RawBranches {
    /// Root of each bus (`0..nb`), then of each auxiliary node (itself).
    pub(crate) root: Vec<usize>,
    /// In-service branches with at least one live end.
    pub(crate) branches: Vec<Raw>,
    /// Internal root of each xward (`None`: out of service or at an
    /// out-of-service bus).
    pub(crate) xward_root: Vec<Option<usize>>,
}

/// Step 2: branches between roots, auxiliary nodes at cut ends, trafo3w star
/// nodes, xward internal nodes.
pub(crate) fn raw_branches(net: &Network, fused: Fused) -> Result<RawBranches> {
    let Fused {
        mut root,
        open_line,
        open_trafo,
        open_trafo3w,
        z_switches,
    } = fused;
    // 2. Raw branches between roots. As pandapower (`_switch_branches`,
    //    `_branches_with_oos_buses`, with `neglect_open_switch_branches =
    //    False`), a branch cut at one end only (open switch, or for a line an
    //    out-of-service bus) keeps that end on an auxiliary PQ node of its own
    //    with no injection: its charging and magnetising admittance stay
    //    connected at the other end. A branch cut at both ends is dropped.
    let end_root = |bus: usize, live: bool, root: &mut Vec<usize>| -> usize {
        if live {
            root[bus]
        } else {
            root.push(root.len());
            root.len() - 1
        }
    };
    let mut raw = vec![];
    for (k, l) in net.lines.iter().enumerate() {
        let live_f = net.buses[l.from_bus].in_service && !open_line[k][0];
        let live_t = net.buses[l.to_bus].in_service && !open_line[k][1];
        if l.in_service && (live_f || live_t) {
            raw.push(Raw {
                f: end_root(l.from_bus, live_f, &mut root),
                t: end_root(l.to_bus, live_t, &mut root),
                source: BranchSource::Line(k),
                pi: line_branch(net, l),
                adm: line_branch(net, l).admittance(),
            });
        }
    }
    for (k, t) in net.trafos.iter().enumerate() {
        let [open_hv, open_lv] = open_trafo[k];
        // A trafo at an out-of-service bus is out of service (pandapower).
        if t.in_service
            && !(open_hv && open_lv)
            && net.buses[t.hv_bus].in_service
            && net.buses[t.lv_bus].in_service
        {
            let pos = t.tap.as_ref().map(|x| x.pos).unwrap_or(0.0);
            raw.push(Raw {
                f: end_root(t.hv_bus, !open_hv, &mut root),
                t: end_root(t.lv_bus, !open_lv, &mut root),
                source: BranchSource::Trafo(k),
                pi: trafo_branch(net, t, pos),
                adm: trafo_branch(net, t, pos).admittance(),
            });
        }
    }
    // Three-winding transformers: a star node of their own and three branches
    // (pandapower's auxiliary bus). A winding at an out-of-service bus drops its
    // branch; one behind an open switch keeps it on an auxiliary node.
    for (k, t) in net.trafo3ws.iter().enumerate() {
        if !t.in_service {
            continue;
        }
        let pis = trafo3w_branches(net, t)?;
        root.push(root.len());
        let star = root.len() - 1;
        for (w, (bus, pi)) in [t.hv_bus, t.mv_bus, t.lv_bus]
            .into_iter()
            .zip(pis)
            .enumerate()
        {
            if !net.buses[bus].in_service {
                continue;
            }
            let outer = end_root(bus, !open_trafo3w[k][w], &mut root);
            let (f, t) = if w == 0 { (outer, star) } else { (star, outer) };
            raw.push(Raw {
                f,
                t,
                source: BranchSource::Trafo3w(k, w as u8),
                pi,
                adm: pi.admittance(),
            });
        }
    }
    // Impedances: both buses in service (pandapower drops one at an
    // out-of-service bus); the series part is the branch, the shunts go to
    // the nodes (below).
    for (k, e) in net.impedances.iter().enumerate() {
        if e.in_service && net.buses[e.from_bus].in_service && net.buses[e.to_bus].in_service {
            let a = impedance_adm(net.sn_mva, e);
            raw.push(Raw {
                f: root[e.from_bus],
                t: root[e.to_bus],
                source: BranchSource::Impedance(k),
                pi: PiBranch {
                    z: a.z_ft,
                    y_sh: C64::ZERO,
                    ratio: 1.0,
                    shift_rad: 0.0,
                },
                adm: a.series(),
            });
        }
    }
    // Extended wards: an internal node of their own behind r + jx (pandapower's
    // auxiliary bus, a PV node at the xward's vm_pu).
    let mut xward_root = vec![None; net.xwards.len()];
    for (k, x) in net.xwards.iter().enumerate() {
        if x.in_service && net.buses[x.bus].in_service {
            root.push(root.len());
            let aux = root.len() - 1;
            xward_root[k] = Some(aux);
            let vn = net.buses[x.bus].vn_kv;
            let pi = PiBranch {
                z: C64::new(x.r_ohm, x.x_ohm).scale(net.sn_mva / (vn * vn)),
                y_sh: C64::ZERO,
                ratio: 1.0,
                shift_rad: 0.0,
            };
            raw.push(Raw {
                f: root[x.bus],
                t: aux,
                source: BranchSource::Xward(k),
                pi,
                adm: pi.admittance(),
            });
        }
    }
    for &k in &z_switches {
        let s = &net.switches[k];
        raw.push(Raw {
            f: root[s.bus],
            t: root[s.element],
            source: BranchSource::Switch(k),
            pi: switch_branch(net, s.bus, s.z_ohm),
            adm: switch_branch(net, s.bus, s.z_ohm).admittance(),
        });
    }
    Ok(RawBranches {
        root,
        branches: raw,
        xward_root,
    })
}

/// The live part of the network: roots reachable from an in-service ext_grid.
#[derive(Debug, Clone)]
pub(crate) struct Islands {
    /// Neighbours of each root.
    pub(crate) adj: Vec<Vec<usize>>,
    /// Per root: an in-service ext_grid is there.
    pub(crate) is_slack: Vec<bool>,
    /// Per root: reachable from an ext_grid.
    pub(crate) live: Vec<bool>,
    /// Buses in service but not live.
    pub(crate) isolated_buses: Vec<usize>,
}

/// Step 3: which roots an ext_grid reaches.
pub(crate) fn islands(net: &Network, raw_branches: &RawBranches) -> Islands {
    let nb = net.buses.len();
    let (root, raw) = (&raw_branches.root, raw_branches.branches.as_slice());
    let n_root = root.len();
    // 3. Live part: roots reachable from an in-service ext_grid.
    let mut adj: Vec<Vec<usize>> = vec![vec![]; n_root];
    for r in raw {
        if r.f != r.t {
            adj[r.f].push(r.t);
            adj[r.t].push(r.f);
        }
    }
    let mut is_slack = vec![false; n_root];
    let mut live = vec![false; n_root];
    let mut stack = vec![];
    for e in net
        .ext_grids
        .iter()
        .filter(|e| e.in_service && net.buses[e.bus].in_service)
    {
        let r = root[e.bus];
        is_slack[r] = true;
        if !live[r] {
            live[r] = true;
            stack.push(r);
        }
    }
    while let Some(u) = stack.pop() {
        for &v in &adj[u] {
            if !live[v] {
                live[v] = true;
                stack.push(v);
            }
        }
    }
    let isolated_buses: Vec<usize> = (0..nb)
        .filter(|&b| net.buses[b].in_service && !live[root[b]])
        .collect();
    Islands {
        adj,
        is_slack,
        live,
        isolated_buses,
    }
}

/// Node numbers.
#[derive(Debug, Clone)]
pub(crate) struct Numbering {
    /// Node of each root (`usize::MAX`: not a live node).
    pub(crate) node_of_root: Vec<usize>,
    /// PQ nodes are `0..n_pq`.
    pub(crate) n_pq: usize,
    /// Slack nodes are `n_pq..n_node`.
    pub(crate) n_node: usize,
    /// Voltage of each slack node.
    pub(crate) slack_v: Vec<C64>,
    /// Node of each bus.
    pub(crate) bus_node: Vec<Option<usize>>,
}

/// Step 4: PQ nodes in minimum-degree order, then the slack nodes.
pub(crate) fn number_nodes(net: &Network, root: &[usize], islands: &Islands) -> Numbering {
    let nb = net.buses.len();
    let n_root = root.len();
    let (adj, is_slack, live) = (&islands.adj, &islands.is_slack, &islands.live);
    // 4. Order PQ roots by minimum degree (leaves first on a tree: no fill; on a
    //    meshed grid its fill is within 2 % of faer's AMD, see README).
    let pq_roots: Vec<usize> = (0..n_root)
        .filter(|&r| root[r] == r && live[r] && !is_slack[r])
        .collect();
    let order = min_degree_order(&pq_roots, adj, is_slack);
    let mut node_of_root = vec![usize::MAX; n_root];
    for (i, &r) in order.iter().enumerate() {
        node_of_root[r] = i;
    }
    let n_pq = order.len();
    let mut slack_v = vec![];
    let mut n_node = n_pq;
    for e in net
        .ext_grids
        .iter()
        .filter(|e| e.in_service && net.buses[e.bus].in_service)
    {
        let r = root[e.bus];
        if node_of_root[r] == usize::MAX {
            node_of_root[r] = n_node;
            n_node += 1;
            slack_v.push(C64::from_polar(e.vm_pu, e.va_degree.to_radians()));
        }
    }
    let bus_node: Vec<Option<usize>> = (0..nb)
        .map(|b| {
            let r = root[b];
            (net.buses[b].in_service && live[r]).then_some(node_of_root[r])
        })
        .collect();
    Numbering {
        node_of_root,
        n_pq,
        n_node,
        slack_v,
        bus_node,
    }
}

/// Branches in node numbers and the element → branch maps.
#[derive(Debug, Clone)]
pub(crate) struct NodeBranches {
    /// Branches between live nodes.
    pub(crate) branches: Vec<PlanBranch>,
    /// Branch of each line.
    pub(crate) line_branch: Vec<Option<usize>>,
    /// Branch of each trafo.
    pub(crate) trafo_branch: Vec<Option<usize>>,
    /// Branches of each trafo3w's windings.
    pub(crate) trafo3w_branch: Vec<[Option<usize>; 3]>,
    /// Trafos with a tap changer: `(trafo, branch)`.
    pub(crate) tap_trafos: Vec<(usize, usize)>,
    /// Branches whose admittance is the same for every copy.
    pub(crate) fixed_branches: Vec<usize>,
}

/// Step 5: the live branches in node numbers.
pub(crate) fn node_branches(
    net: &Network,
    raw: Vec<Raw>,
    live: &[bool],
    node_of_root: &[usize],
) -> NodeBranches {
    // 5. Branches in node numbers.
    let mut branches = vec![];
    let mut line_branch_idx = vec![None; net.lines.len()];
    let mut trafo_branch_idx = vec![None; net.trafos.len()];
    let mut trafo3w_branch_idx = vec![[None; 3]; net.trafo3ws.len()];
    let mut tap_trafos = vec![];
    let mut fixed_branches = vec![];
    for r in raw {
        if !live[r.f] {
            continue;
        }
        let i = branches.len();
        let tapped = match r.source {
            BranchSource::Line(k) => {
                line_branch_idx[k] = Some(i);
                false
            }
            BranchSource::Trafo(k) => {
                trafo_branch_idx[k] = Some(i);
                let has_tap = net.trafos[k].tap.is_some();
                if has_tap {
                    tap_trafos.push((k, i));
                }
                has_tap
            }
            BranchSource::Trafo3w(k, w) => {
                trafo3w_branch_idx[k][w as usize] = Some(i);
                false
            }
            BranchSource::Switch(_) | BranchSource::Impedance(_) | BranchSource::Xward(_) => false,
        };
        if !tapped {
            fixed_branches.push(i);
        }
        branches.push(PlanBranch {
            f: node_of_root[r.f],
            t: node_of_root[r.t],
            source: r.source,
            adm: r.adm,
            z: r.pi.z,
            ratio: r.pi.ratio,
            y_sh: r.pi.y_sh,
        });
    }
    NodeBranches {
        branches,
        line_branch: line_branch_idx,
        trafo_branch: trafo_branch_idx,
        trafo3w_branch: trafo3w_branch_idx,
        tap_trafos,
        fixed_branches,
    }
}

/// Node of each element (`None`: out of service, or its bus is not solved).
#[derive(Debug, Clone)]
pub(crate) struct ElementNodes {
    pub(crate) load_node: Vec<Option<usize>>,
    pub(crate) sgen_node: Vec<Option<usize>>,
    pub(crate) storage_node: Vec<Option<usize>>,
    pub(crate) shunt_node: Vec<Option<usize>>,
    pub(crate) ward_node: Vec<Option<usize>>,
    /// And how many in-service ext_grids share that node.
    pub(crate) ext_grid_node: Vec<Option<(usize, usize)>>,
    pub(crate) gen_node: Vec<Option<usize>>,
    /// The xward's internal node.
    pub(crate) xward_node: Vec<Option<usize>>,
}

/// Step 6: the node of every element.
pub(crate) fn element_nodes(
    net: &Network,
    numbering: &Numbering,
    xward_root: &[Option<usize>],
    live: &[bool],
) -> ElementNodes {
    let (bus_node, node_of_root, n_node) = (
        &numbering.bus_node,
        &numbering.node_of_root,
        numbering.n_node,
    );
    let node = |b: usize| bus_node[b];
    let at_bus = |in_service: bool, bus: usize| if in_service { node(bus) } else { None };
    let load_node = net
        .loads
        .iter()
        .map(|e| at_bus(e.in_service, e.bus))
        .collect();
    let sgen_node = net
        .sgens
        .iter()
        .map(|e| at_bus(e.in_service, e.bus))
        .collect();
    let storage_node = net
        .storages
        .iter()
        .map(|e| at_bus(e.in_service, e.bus))
        .collect();
    let shunt_node = net
        .shunts
        .iter()
        .map(|e| at_bus(e.in_service, e.bus))
        .collect();
    let ward_node = net
        .wards
        .iter()
        .map(|e| at_bus(e.in_service, e.bus))
        .collect();
    let mut per_node = vec![0usize; n_node];
    let eg_nodes: Vec<Option<usize>> = net
        .ext_grids
        .iter()
        .map(|e| if e.in_service { node(e.bus) } else { None })
        .collect();
    for n in eg_nodes.iter().flatten() {
        per_node[*n] += 1;
    }
    let ext_grid_node = eg_nodes
        .iter()
        .map(|n| n.map(|n| (n, per_node[n])))
        .collect();
    let gen_node: Vec<Option<usize>> = net
        .gens
        .iter()
        .map(|e| if e.in_service { node(e.bus) } else { None })
        .collect();
    let xward_node: Vec<Option<usize>> = xward_root
        .iter()
        .map(|r| r.filter(|&r| live[r]).map(|r| node_of_root[r]))
        .collect();
    ElementNodes {
        load_node,
        sgen_node,
        storage_node,
        shunt_node,
        ward_node,
        ext_grid_node,
        gen_node,
        xward_node,
    }
}

/// The PV nodes: sorted, with what holds each one's voltage.
#[derive(Debug, Clone)]
pub(crate) struct PvNodes {
    pub(crate) pv_nodes: Vec<usize>,
    pub(crate) pv_source: Vec<PvSource>,
    /// Per node: a PV node.
    pub(crate) is_pv: Vec<bool>,
}

/// Step 7: PQ-numbered nodes with an in-service gen (the first gen holds it)
/// or an xward's internal node.
pub(crate) fn pv_nodes(elements: &ElementNodes, n_pq: usize, n_node: usize) -> PvNodes {
    let (gen_node, xward_node) = (&elements.gen_node, &elements.xward_node);
    let mut is_pv = vec![false; n_node];
    let mut pv_nodes = vec![];
    let mut pv_source = vec![];
    let sources = (gen_node
        .iter()
        .enumerate()
        .map(|(k, n)| (*n, PvSource::Gen(k))))
    .chain((xward_node.iter().enumerate()).map(|(k, n)| (*n, PvSource::Xward(k))));
    for (n, src) in sources {
        if let Some(n) = n {
            if n < n_pq && !is_pv[n] {
                is_pv[n] = true;
                pv_nodes.push(n);
                pv_source.push(src);
            }
        }
    }
    let mut pv_order: Vec<usize> = (0..pv_nodes.len()).collect();
    pv_order.sort_by_key(|&j| pv_nodes[j]);
    let pv_source: Vec<PvSource> = pv_order.iter().map(|&j| pv_source[j]).collect();
    pv_nodes.sort_unstable();
    PvNodes {
        pv_nodes,
        pv_source,
        is_pv,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Bus 0 (ext_grid) and bus 1 joined by a closed bus-bus switch; line 0
    /// from bus 1 to bus 2; line 1 from bus 2 to bus 0, open at bus 0's end;
    /// bus 3 reached by nothing; a gen at bus 2.
    const NET: &str = r#"
buses:
- vn_kv: 20.0
- vn_kv: 20.0
- vn_kv: 20.0
- vn_kv: 20.0
ext_grids:
- bus: 0
lines:
- {from_bus: 1, to_bus: 2, length_km: 1.0, r_ohm_per_km: 0.1, x_ohm_per_km: 0.3, max_i_ka: 0.4}
- {from_bus: 2, to_bus: 0, length_km: 2.0, r_ohm_per_km: 0.1, x_ohm_per_km: 0.3, c_nf_per_km: 200.0, max_i_ka: 0.4}
switches:
- {bus: 0, element: 1, et: b}
- {bus: 0, element: 1, et: l, closed: false}
loads:
- {bus: 2, p_mw: 1.0, q_mvar: 0.2}
- {bus: 3, p_mw: 1.0, q_mvar: 0.2}
gens:
- {bus: 2, p_mw: 0.5, vm_pu: 1.01}
"#;

    fn net() -> Network {
        let net = crate::network::yaml::from_str(NET).expect("valid YAML");
        net.validate().expect("valid network");
        net
    }

    #[test]
    fn fusing_marks_the_switched_buses_and_the_open_end() {
        let f = fuse_buses(&net());
        assert_eq!(f.root, vec![0, 0, 2, 3]);
        // Line 1 runs 2 → 0: the open switch at bus 0 cuts its to end.
        assert_eq!(f.open_line, vec![[false, false], [false, true]]);
        assert!(f.z_switches.is_empty());
    }

    #[test]
    fn open_line_end_gets_an_auxiliary_node_and_the_rest_is_numbered() {
        let net = net();
        let t = Topology::build(&net).expect("topology");
        // PQ nodes: bus 2 and the auxiliary node at line 1's open end; the
        // fused buses 0 and 1 are one slack node; bus 3 is isolated.
        assert_eq!((t.n_pq, t.n_node), (2, 3));
        assert_eq!(t.bus_node[0], Some(2));
        assert_eq!(t.bus_node[1], Some(2));
        assert_eq!(t.bus_node[3], None);
        assert_eq!(t.isolated_buses, vec![3]);
        let bus2 = t.bus_node[2].expect("bus 2 solved");
        let b = &t.branches;
        assert_eq!(b.branches.len(), 2);
        let l0 = &b.branches[b.line_branch[0].expect("line 0 solved")];
        assert_eq!((l0.f, l0.t), (2, bus2));
        let l1 = &b.branches[b.line_branch[1].expect("line 1 kept at one end")];
        assert_eq!(l1.f, bus2);
        assert!(l1.t < t.n_pq && l1.t != bus2, "open end on its own node");
        assert!(!t.bus_node.contains(&Some(l1.t)), "no bus maps to it");
        assert_eq!(b.fixed_branches, vec![0, 1]);
        assert!(b.tap_trafos.is_empty());
        // Element maps: the load at bus 3 is not solved; the gen makes bus 2 PV.
        assert_eq!(t.elements.load_node, vec![Some(bus2), None]);
        assert_eq!(t.elements.ext_grid_node, vec![Some((2, 1))]);
        assert_eq!(t.pv.pv_nodes, vec![bus2]);
        assert_eq!(t.pv.pv_source, vec![PvSource::Gen(0)]);
        assert!(t.pv.is_pv[bus2] && !t.pv.is_pv[l1.t]);
        // The slack holds the ext_grid's voltage (default 1 p.u., 0°).
        assert_eq!(t.slack_v, vec![C64::new(1.0, 0.0)]);
    }

    #[test]
    fn a_line_open_at_both_ends_is_dropped() {
        let mut net = net();
        net.switches.push(crate::network::Switch {
            name: String::new(),
            bus: 2,
            element: 1,
            et: SwitchElement::Line,
            closed: false,
            z_ohm: 0.0,
        });
        let t = Topology::build(&net).expect("topology");
        assert_eq!(t.branches.line_branch[1], None);
        assert_eq!((t.n_pq, t.branches.branches.len()), (1, 1));
    }

    /// Fill edges created by eliminating `order` on the graph `adj` (slacks left out).
    fn fill(order: &[usize], adj: &[Vec<usize>], is_slack: &[bool]) -> usize {
        let mut g: Vec<BTreeSet<usize>> = adj
            .iter()
            .map(|a| a.iter().copied().filter(|&v| !is_slack[v]).collect())
            .collect();
        let mut fill = 0;
        for &v in order {
            let ns: Vec<usize> = g[v].iter().copied().collect();
            for &a in &ns {
                g[a].remove(&v);
                for &b in &ns {
                    if a != b && g[a].insert(b) {
                        fill += 1;
                    }
                }
            }
        }
        fill
    }

    #[test]
    fn min_degree_order_makes_no_fill_on_a_tree() {
        // A star: hub 1 with leaves 2, 3, 4, and root 0 (a slack) on the hub.
        let star = vec![vec![1], vec![0, 2, 3, 4], vec![1], vec![1], vec![1]];
        let is_slack = [true, false, false, false, false];
        let pq = [1, 2, 3, 4];
        let order = min_degree_order(&pq, &star, &is_slack);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, pq);
        assert_eq!(fill(&order, &star, &is_slack), 0);
        // The hub first would join its three leaves (3 edges, both ways).
        assert_eq!(fill(&[1, 2, 3, 4], &star, &is_slack), 6);
    }
}
