//! The power-flow plan: everything shared by every copy of a batch, built once
//! per network — fused buses, node numbering (fill-reducing order), branch
//! admittances, the rotated B'/B'' and their sparse LU factors, the no-load start.

use super::admittance::{
    impedance_adm, line_branch, shunt_y_per_step, switch_branch, trafo3w_branches, trafo_branch,
    ward_y, BranchAdm, PiBranch,
};
use super::sparse_lu::{PatternValues, Slot, SparseLu};
use crate::complex::C64;
use crate::error::{Error, Result};
use crate::network::{Network, SwitchElement};
use std::collections::BTreeSet;

/// Which half-step uses the reactance-only matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Variant {
    /// B' from `1/x`, B'' from `−Im(1/z)` (Stott–Alsac).
    XB,
    /// B' from `−Im(1/z)`, B'' from `1/x` (van Amerongen).
    BX,
}

/// Solver settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SolverOptions {
    /// Convergence: max of `|ΔP|` over PQ and PV nodes and `|ΔQ|` over PQ
    /// nodes, in p.u. of `sn_mva`.
    pub tolerance_pu: f64,
    /// Iteration cap (one iteration = a P and a Q half-step).
    pub max_iterations: u32,
    /// Fixed variant and rotation ψ in radians; `None` picks the pair that
    /// converges fastest on the base case.
    pub variant: Option<(Variant, f64)>,
    /// pandapower's `enforce_q_lims`: a gen whose Q leaves `[min_q_mvar,
    /// max_q_mvar]` is held at the limit and its node becomes a PQ node, per
    /// copy (`powerflow/qlims.rs`; CPU backend only, see
    /// [`CpuBatch::gens_at_q_limit`](super::CpuBatch::gens_at_q_limit)). Off by
    /// default, as in `runpp`.
    pub enforce_q_lims: bool,
}

impl Default for SolverOptions {
    fn default() -> Self {
        SolverOptions {
            tolerance_pu: 1e-8,
            max_iterations: 100,
            variant: None,
            enforce_q_lims: false,
        }
    }
}

/// Where a branch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchSource {
    /// Row of the line table.
    Line(usize),
    /// Row of the trafo table.
    Trafo(usize),
    /// Row of the switch table (bus-bus switch with impedance).
    Switch(usize),
    /// Row of the trafo3w table and winding (0 HV bus → star, 1 star → MV bus,
    /// 2 star → LV bus).
    Trafo3w(usize, u8),
    /// Row of the impedance table (possibly non-reciprocal: `adm.yft ≠ adm.ytf`;
    /// `z` is the from → to impedance; its shunts are in `node_y_const`).
    Impedance(usize),
    /// Row of the xward table: its bus → its internal PV node.
    Xward(usize),
}

/// What holds a PV node's voltage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvSource {
    /// A gen (row of the gen table; `vm_pu` per copy from the batch inputs).
    Gen(usize),
    /// An xward's internal node (row of the xward table; its `vm_pu`).
    Xward(usize),
}

/// A branch between two nodes.
#[derive(Debug, Clone, Copy)]
pub struct PlanBranch {
    /// From node.
    pub f: usize,
    /// To node.
    pub t: usize,
    /// Origin.
    pub source: BranchSource,
    /// Admittance at the network's own tap positions.
    pub adm: BranchAdm,
    /// Series impedance (for B'/B'').
    pub z: C64,
    /// Off-nominal ratio magnitude at base taps.
    pub ratio: f64,
    /// Total shunt admittance.
    pub y_sh: C64,
}

/// Everything the copies of a batch share.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The network.
    pub net: Network,
    /// Solver settings.
    pub options: SolverOptions,
    /// PQ nodes are `0..n_pq` in elimination order (bus nodes, and the
    /// auxiliary nodes of branches cut at one end, which no bus maps to).
    pub n_pq: usize,
    /// Slack nodes are `n_pq..n_node`.
    pub n_node: usize,
    /// Node of each bus (`None`: out of service or cut off from every slack).
    pub bus_node: Vec<Option<usize>>,
    /// Buses in service but cut off from every slack bus (reported, not solved).
    pub isolated_buses: Vec<usize>,
    /// Fixed voltage of each slack node (index `node − n_pq`).
    pub slack_v: Vec<C64>,
    /// In-service branches between live nodes.
    pub branches: Vec<PlanBranch>,
    /// Branch index of each line (`None`: not in the solved network).
    pub line_branch: Vec<Option<usize>>,
    /// Branch index of each trafo.
    pub trafo_branch: Vec<Option<usize>>,
    /// Branch index of each trafo3w's HV, MV and LV winding (`None`: not in
    /// the solved network).
    pub trafo3w_branch: Vec<[Option<usize>; 3]>,
    /// Trafos with a tap changer in the solved network: `(trafo, branch)`.
    pub tap_trafos: Vec<(usize, usize)>,
    /// Branches whose admittance is the same for every copy.
    pub fixed_branches: Vec<usize>,
    /// Node of each load / sgen / storage / shunt / ext_grid (`None`: not solved).
    pub load_node: Vec<Option<usize>>,
    /// Node of each sgen.
    pub sgen_node: Vec<Option<usize>>,
    /// Node of each storage unit.
    pub storage_node: Vec<Option<usize>>,
    /// Node of each shunt.
    pub shunt_node: Vec<Option<usize>>,
    /// Admittance per step of each shunt (p.u.).
    pub shunt_y: Vec<C64>,
    /// Node of each ward.
    pub ward_node: Vec<Option<usize>>,
    /// Constant power injected at each node, the same in every copy (p.u.; ward
    /// `ps`/`qs` as consumption).
    pub node_s_const: Vec<C64>,
    /// Per node, pandapower's ZIP shares of its whole specified injection
    /// (`build_bus.py`: the mean percentages of the bus's in-service loads / 100),
    /// `[i_p, z_p, i_q, z_q]`; all zero where the node has no ZIP load.
    pub node_zip: Vec<[f64; 4]>,
    /// Some PQ node has a nonzero ZIP share: the kernels add the
    /// voltage-dependent terms to the mismatch (skipped otherwise).
    pub has_zip: bool,
    /// Constant shunt admittance at each node, the same in every copy (p.u.;
    /// ward `pz`/`qz`, impedance `gf/bf`, `gt/bt`).
    pub node_y_const: Vec<C64>,
    /// Node of each ext_grid, and how many in-service ext_grids share that node.
    pub ext_grid_node: Vec<Option<(usize, usize)>>,
    /// Node of each gen (`None`: out of service, at an out-of-service bus, or cut
    /// off from every slack).
    pub gen_node: Vec<Option<usize>>,
    /// PV nodes (sorted; among the PQ-numbered nodes `0..n_pq`): nodes with an
    /// in-service gen and no ext_grid. Each has an angle unknown in B' and an
    /// identity row and column in B'' (|V| is fixed), and its ΔQ is left out of
    /// the mismatch norm.
    pub pv_nodes: Vec<usize>,
    /// What holds each PV node's voltage: the first gen at the node (every gen
    /// at a node must have the same set-point, as pandapower requires), or an
    /// xward's internal node.
    pub pv_source: Vec<PvSource>,
    /// Internal node of each xward (`None`: not solved).
    pub xward_node: Vec<Option<usize>>,
    /// Per node: a PV node.
    pub is_pv: Vec<bool>,
    /// Chosen variant.
    pub variant: Variant,
    /// Rotation ψ (radians): the solver works with `Y·e^{−jψ}`, `S·e^{jψ}`.
    pub psi: f64,
    /// `e^{jψ}`.
    pub rot: C64,
    /// Factors of B' (P half-step).
    pub(crate) bp: SparseLu,
    /// Factors of B'' (Q half-step).
    pub(crate) bpp: SparseLu,
    /// No-load voltages of the PQ nodes: `−Y_pp⁻¹·Y_ps·V_s`, PV nodes held at
    /// their gens' `vm_pu` and the first slack's angle.
    pub v_noload: Vec<C64>,
    /// B'' values (on `bpp`'s pattern) without the tap-changing trafos.
    pub(crate) bpp_a0: PatternValues,
    /// Pattern slots `(ff, tt, ft, tf)` of each tap-changing trafo in B''.
    pub(crate) bpp_tap_slots: Vec<[Option<Slot>; 4]>,
    /// Symbolic factor pattern shared by B' and B'' (topology only: built once,
    /// whatever the variant).
    pattern: SparseLu,
}

struct UnionFind(Vec<usize>);
impl UnionFind {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

impl Plan {
    /// Build the plan for `net`.
    pub fn new(net: &Network, options: SolverOptions) -> Result<Plan> {
        net.validate()?;
        let nb = net.buses.len();
        if !(options.tolerance_pu > 0.0 && options.tolerance_pu.is_finite()) {
            return Err(Error::InvalidInput("tolerance_pu must be positive".into()));
        }
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
        let mut root: Vec<usize> = (0..nb).map(|b| uf.find(b)).collect();

        // 2. Raw branches between roots. As pandapower (`_switch_branches`,
        //    `_branches_with_oos_buses`, with `neglect_open_switch_branches =
        //    False`), a branch cut at one end only (open switch, or for a line an
        //    out-of-service bus) keeps that end on an auxiliary PQ node of its own
        //    with no injection: its charging and magnetising admittance stay
        //    connected at the other end. A branch cut at both ends is dropped.
        struct Raw {
            f: usize,
            t: usize,
            source: BranchSource,
            pi: PiBranch,
            adm: BranchAdm,
        }
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
        let n_root = root.len();

        // 3. Live part: roots reachable from an in-service ext_grid.
        let mut adj: Vec<Vec<usize>> = vec![vec![]; n_root];
        for r in &raw {
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

        // 4. Order PQ roots by minimum degree (leaves first on a tree: no fill; on a
        //    meshed grid its fill is within 2 % of faer's AMD, see README).
        let pq_roots: Vec<usize> = (0..n_root)
            .filter(|&r| root[r] == r && live[r] && !is_slack[r])
            .collect();
        let order = min_degree_order(&pq_roots, &adj, &is_slack);
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
                BranchSource::Switch(_) | BranchSource::Impedance(_) | BranchSource::Xward(_) => {
                    false
                }
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

        let node = |b: usize| bus_node[b];
        let load_node = net
            .loads
            .iter()
            .map(|e| if e.in_service { node(e.bus) } else { None })
            .collect();
        let sgen_node = net
            .sgens
            .iter()
            .map(|e| if e.in_service { node(e.bus) } else { None })
            .collect();
        let storage_node = net
            .storages
            .iter()
            .map(|e| if e.in_service { node(e.bus) } else { None })
            .collect();
        let shunt_node: Vec<Option<usize>> = net
            .shunts
            .iter()
            .map(|e| if e.in_service { node(e.bus) } else { None })
            .collect();
        let shunt_y = (0..net.shunts.len())
            .map(|k| shunt_y_per_step(net, k))
            .collect();
        let ward_node: Vec<Option<usize>> = net
            .wards
            .iter()
            .map(|e| if e.in_service { node(e.bus) } else { None })
            .collect();
        let node_zip = zip_shares(net, &bus_node, n_node)?;
        let has_zip = node_zip[..n_pq].iter().any(|z| z.iter().any(|&x| x != 0.0));
        let mut node_s_const = vec![C64::ZERO; n_node];
        let mut node_y_const = vec![C64::ZERO; n_node];
        for (k, n) in ward_node.iter().enumerate() {
            if let Some(n) = *n {
                let w = &net.wards[k];
                node_s_const[n] -= C64::new(w.ps_mw, w.qs_mvar).scale(1.0 / net.sn_mva);
                node_y_const[n] += ward_y(net, k);
            }
        }
        for (k, x) in net.xwards.iter().enumerate() {
            if let (Some(_), Some(n)) = (xward_root[k], node(x.bus)) {
                node_s_const[n] -= C64::new(x.ps_mw, x.qs_mvar).scale(1.0 / net.sn_mva);
                node_y_const[n] += C64::new(x.pz_mw, -x.qz_mvar).scale(1.0 / net.sn_mva);
            }
        }
        for b in &branches {
            if let BranchSource::Impedance(k) = b.source {
                let a = impedance_adm(net.sn_mva, &net.impedances[k]);
                node_y_const[b.f] += a.y_f;
                node_y_const[b.t] += a.y_t;
            }
        }
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

        let mut plan = Plan {
            net: net.clone(),
            options,
            n_pq,
            n_node,
            bus_node,
            isolated_buses,
            slack_v,
            branches,
            line_branch: line_branch_idx,
            trafo_branch: trafo_branch_idx,
            trafo3w_branch: trafo3w_branch_idx,
            tap_trafos,
            fixed_branches,
            load_node,
            sgen_node,
            storage_node,
            shunt_node,
            shunt_y,
            ward_node,
            node_s_const,
            node_zip,
            has_zip,
            node_y_const,
            ext_grid_node,
            gen_node,
            pv_nodes,
            pv_source,
            xward_node,
            is_pv,
            variant: Variant::XB,
            psi: 0.0,
            rot: C64::new(1.0, 0.0),
            bp: SparseLu::default(),
            bpp: SparseLu::default(),
            v_noload: vec![],
            bpp_a0: PatternValues::default(),
            bpp_tap_slots: vec![],
            pattern: SparseLu::default(),
        };
        // Off-diagonal pattern of B' and B'': branches between two PQ nodes.
        let entries: Vec<(usize, usize)> = plan
            .branches
            .iter()
            .filter(|b| b.f < n_pq && b.t < n_pq && b.f != b.t)
            .map(|b| (b.f, b.t))
            .collect();
        plan.pattern = SparseLu::symbolic(n_pq, &entries);
        if let Some(why) = plan.gen_vm_conflict(&|k| net.gens[k].vm_pu) {
            return Err(Error::InvalidNetwork(why));
        }
        super::qlims::check_limits(&plan)?;
        plan.v_noload = plan.no_load_voltages()?;
        match plan.options.variant {
            Some((v, psi)) => {
                plan.set_variant(v, psi)?;
                Ok(plan)
            }
            None => Plan::choose_variant(plan),
        }
    }

    /// The network's voltage set-point of PV node `j` (index into `pv_nodes`).
    pub fn pv_vm_base(&self, j: usize) -> f64 {
        match self.pv_source[j] {
            PvSource::Gen(k) => self.net.gens[k].vm_pu,
            PvSource::Xward(k) => self.net.xwards[k].vm_pu,
        }
    }

    /// Copy `c`'s voltage set-point of PV node `j`: a gen's from the inputs.
    pub fn pv_vm(&self, j: usize, inp: &super::batch::BatchInputs, c: usize) -> f64 {
        match self.pv_source[j] {
            PvSource::Gen(k) => inp.gen_vm_pu[(c, k)],
            PvSource::Xward(k) => self.net.xwards[k].vm_pu,
        }
    }

    /// Whether some node is a PV node ([`Plan::pv_nodes`]).
    pub fn has_pv(&self) -> bool {
        !self.pv_nodes.is_empty()
    }

    /// Gens (and an ext_grid) that share a node but not a voltage set-point,
    /// with the gens' set-points `vm(gen)`: pandapower refuses them ("Voltage
    /// controlling elements … at the same bus have different setpoints",
    /// compared with `np.allclose`). `None` when they agree.
    pub fn gen_vm_conflict(&self, vm: &dyn Fn(usize) -> f64) -> Option<String> {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-8 + 1e-5 * b.abs();
        let mut first: Vec<Option<usize>> = vec![None; self.n_node];
        for (k, n) in self.gen_node.iter().enumerate() {
            let Some(n) = *n else { continue };
            let name = |k: usize| &self.net.gens[k].name;
            if n >= self.n_pq {
                let held = self.slack_v[n - self.n_pq].abs();
                if !close(vm(k), held) {
                    let e = self
                        .ext_grid_node
                        .iter()
                        .position(|x| x.is_some_and(|(m, _)| m == n))
                        .unwrap_or(0);
                    return Some(format!(
                        "gen {k} ({:?}) has vm_pu = {} at the node of ext_grid {e} ({:?}), \
                         which holds vm_pu = {held}: voltage set-points at one bus must agree",
                        name(k),
                        vm(k),
                        self.net.ext_grids.get(e).map_or("", |x| x.name.as_str())
                    ));
                }
            }
            match first[n] {
                Some(j) if !close(vm(k), vm(j)) => {
                    return Some(format!(
                        "gens {j} ({:?}, vm_pu = {}) and {k} ({:?}, vm_pu = {}) are at one bus \
                         (or buses joined by closed switches) with different voltage set-points",
                        name(j),
                        vm(j),
                        name(k),
                        vm(k)
                    ));
                }
                Some(_) => {}
                None => first[n] = Some(k),
            }
        }
        None
    }

    /// [`Plan::gen_vm_conflict`] for every copy of `inp` (`active`: only those
    /// marked): the error names the gens and the copy.
    pub fn check_gen_setpoints(
        &self,
        inp: &super::batch::BatchInputs,
        active: Option<&[bool]>,
    ) -> Result<()> {
        let mut seen = vec![false; self.n_node];
        let mut shared = false;
        for n in self.gen_node.iter().flatten() {
            shared |= seen[*n] || *n >= self.n_pq;
            seen[*n] = true;
        }
        if !shared || inp.gen_vm_pu.ncols() != self.gen_node.len() {
            return Ok(());
        }
        for c in 0..inp.batch() {
            if active.is_some_and(|a| !a.get(c).copied().unwrap_or(true)) {
                continue;
            }
            if let Some(why) = self.gen_vm_conflict(&|k| inp.gen_vm_pu[(c, k)]) {
                return Err(Error::InvalidInput(format!("gen_vm_pu of copy {c}: {why}")));
            }
        }
        Ok(())
    }

    /// Nodes with a shunt admittance (a shunt element, or a constant one), sorted.
    pub fn shunt_nodes(&self) -> Vec<usize> {
        let mut nodes: Vec<usize> = self.shunt_node.iter().flatten().copied().collect();
        nodes.extend((0..self.n_node).filter(|&i| self.node_y_const[i] != C64::ZERO));
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// Base-case shunt admittance at every node (network's own shunt steps and
    /// the constant shunts).
    pub fn base_node_shunts(&self) -> Vec<C64> {
        let mut y = self.node_y_const.clone();
        for (k, n) in self.shunt_node.iter().enumerate() {
            if let Some(n) = n {
                y[*n] += self.shunt_y[k].scale(self.net.shunts[k].step);
            }
        }
        y
    }

    /// `V_pq = −Y_pp⁻¹·Y_ps·V_s` with the network's own taps and shunt steps,
    /// the PV nodes held at their set-points (sources like the slacks):
    /// `Y_pp` assembled as triplets (duplicates summed) and solved by faer's
    /// sparse LU (fill-reducing column order, partial pivoting), complex.
    fn no_load_voltages(&self) -> Result<Vec<C64>> {
        use faer::c64;
        use faer::linalg::solvers::Solve;
        use faer::sparse::{SparseColMat, Triplet};
        let n = self.n_pq;
        if n == 0 {
            return Ok(vec![]);
        }
        let cx = |z: C64| c64::new(z.re, z.im);
        let mut triplets: Vec<Triplet<usize, usize, c64>> =
            Vec::with_capacity(n + 4 * self.branches.len());
        let mut rhs = faer::Mat::<c64>::zeros(n, 1);
        // PV nodes are sources too, at their gen's vm_pu and the first slack's
        // angle: an identity row each (without them a transmission grid fed
        // by one ext_grid starts far from its solution: case300 at |V| ≈ 0.05).
        let angle = self
            .slack_v
            .first()
            .map_or(C64::new(1.0, 0.0), |v| v.scale(1.0 / v.abs()));
        for (j, &i) in self.pv_nodes.iter().enumerate() {
            triplets.push(Triplet::new(i, i, c64::new(1.0, 0.0)));
            rhs[(i, 0)] = cx(angle.scale(self.pv_vm_base(j)));
        }
        for (i, y) in self.base_node_shunts().iter().enumerate().take(n) {
            if !self.is_pv[i] {
                triplets.push(Triplet::new(i, i, cx(*y)));
            }
        }
        for b in &self.branches {
            for (r, c, v) in [
                (b.f, b.f, b.adm.yff),
                (b.f, b.t, b.adm.yft),
                (b.t, b.f, b.adm.ytf),
                (b.t, b.t, b.adm.ytt),
            ] {
                if r >= n || self.is_pv[r] {
                    continue;
                }
                if c < n {
                    triplets.push(Triplet::new(r, c, cx(v)));
                } else {
                    rhs[(r, 0)] -= cx(v * self.slack_v[c - n]);
                }
            }
        }
        let singular = || Error::InvalidNetwork("the no-load solution is singular".into());
        let y = SparseColMat::<usize, c64>::try_new_from_triplets(n, n, &triplets)
            .map_err(|_| singular())?;
        let lu = y.sp_lu().map_err(|_| singular())?;
        let x = lu.solve(&rhs);
        let v: Vec<C64> = (0..n)
            .map(|i| C64::new(x[(i, 0)].re, x[(i, 0)].im))
            .collect();
        if v.iter().any(|z| !(z.re.is_finite() && z.im.is_finite())) {
            return Err(singular());
        }
        Ok(v)
    }

    /// Series susceptance of a branch in B' (`p = true`) or B'' for the current variant.
    fn series_b(&self, z: C64, p: bool) -> f64 {
        let zr = z * C64::from_polar(1.0, self.psi);
        let x_only = (self.variant == Variant::XB) == p;
        if x_only {
            1.0 / zr.im
        } else {
            -(zr.inv().im)
        }
    }

    /// B'' entries of a branch: `(ff, tt, ft = tf)` for impedance `z`, ratio and shunt `y_sh`.
    pub(crate) fn bpp_stamp(&self, z: C64, ratio: f64, y_sh: C64) -> [f64; 3] {
        let b = self.series_b(z, false);
        let half = (y_sh * C64::from_polar(1.0, -self.psi)).im * 0.5;
        let r2 = ratio * ratio;
        [(b - half) / r2, b - half, -b / ratio]
    }

    /// B'' stamp of tap-changing trafo `j` (index into `tap_trafos`) at tap position `pos`.
    pub(crate) fn bpp_tap_stamp(&self, j: usize, pos: f64) -> [f64; 3] {
        let (k, _) = self.tap_trafos[j];
        let pi = trafo_branch(&self.net, &self.net.trafos[k], pos);
        self.bpp_stamp(pi.z, pi.ratio, pi.y_sh)
    }

    fn add_stamp(v: &mut PatternValues, slots: &[Option<Slot>; 4], s: [f64; 3]) {
        for (slot, val) in slots.iter().zip([s[0], s[1], s[2], s[2]]) {
            match slot {
                Some(Slot::D(i)) => v.d[*i] += val,
                Some(Slot::L(k)) => v.l[*k] += val,
                Some(Slot::U(k)) => v.u[*k] += val,
                None => {}
            }
        }
    }

    /// B'' factors for a copy whose tap positions (per `tap_trafos` entry) are `taps`:
    /// `a` receives the matrix, `out` its factors (same pattern as `self.bpp`).
    /// Allocates nothing; returns false on a zero pivot.
    pub(crate) fn bpp_factor_for_taps(
        &self,
        taps: &[f64],
        a: &mut PatternValues,
        out: &mut PatternValues,
        work: &mut [f64],
    ) -> bool {
        a.l.copy_from_slice(&self.bpp_a0.l);
        a.d.copy_from_slice(&self.bpp_a0.d);
        a.u.copy_from_slice(&self.bpp_a0.u);
        for (j, &pos) in taps.iter().enumerate() {
            Self::add_stamp(a, &self.bpp_tap_slots[j], self.bpp_tap_stamp(j, pos));
        }
        self.bpp.factor_values(a, out, work)
    }

    /// Build B' and B'' for `variant` and rotation `psi`, and factor them.
    /// Both are assembled straight onto their static no-pivot sparse pattern
    /// (symbolic elimination in the plan's fill-reducing order); B'' keeps its
    /// tap-free values so that copies with other tap positions can refactor it
    /// cheaply. No dense matrix is formed.
    pub fn set_variant(&mut self, variant: Variant, psi: f64) -> Result<()> {
        self.variant = variant;
        self.psi = psi;
        self.rot = C64::from_polar(1.0, psi);
        let n = self.n_pq;
        // B'' leaves the PV nodes out (|V| fixed): their rows and columns are
        // the identity, on the same pattern.
        let pv = self.is_pv.clone();
        let slots = |lu: &SparseLu, f: usize, t: usize, bpp: bool| -> [Option<Slot>; 4] {
            let s = |i: usize, j: usize| {
                if i < n && j < n && !(bpp && (pv[i] || pv[j])) {
                    lu.slot(i, j)
                } else {
                    None
                }
            };
            if f == t {
                // A self-loop only adds its shunt part to one diagonal.
                [s(f, f), None, None, None]
            } else {
                [s(f, f), s(t, t), s(f, t), s(t, f)]
            }
        };

        // B': series susceptances only, `B'_ff += b`, `B'_ft −= b`.
        self.bp = self.pattern.clone();
        let mut bp = self.bp.zero_values();
        for br in &self.branches {
            if br.f != br.t {
                let b = self.series_b(br.z, true);
                Self::add_stamp(&mut bp, &slots(&self.bp, br.f, br.t, false), [b, b, -b]);
            }
        }
        self.bp.factor_own(&bp)?;

        // B'': pattern, then values without the tap-changing trafos, then with them.
        self.bpp = self.pattern.clone();
        let mut a0 = self.bpp.zero_values();
        let mut tapped = vec![false; self.branches.len()];
        for &(_, b) in &self.tap_trafos {
            tapped[b] = true;
        }
        for (bi, br) in self.branches.iter().enumerate() {
            if tapped[bi] {
                continue;
            }
            let mut st = self.bpp_stamp(br.z, br.ratio, br.y_sh);
            if br.f == br.t {
                st = [st[0] + st[1] + 2.0 * st[2], 0.0, 0.0];
            }
            Self::add_stamp(&mut a0, &slots(&self.bpp, br.f, br.t, true), st);
        }
        for (i, y) in self.base_node_shunts().iter().enumerate().take(n) {
            a0.d[i] = if pv[i] {
                1.0
            } else {
                a0.d[i] - (*y * C64::from_polar(1.0, -psi)).im
            };
        }
        self.bpp_tap_slots = self
            .tap_trafos
            .iter()
            .map(|&(_, b)| slots(&self.bpp, self.branches[b].f, self.branches[b].t, true))
            .collect();
        self.bpp_a0 = a0;
        let base_taps: Vec<f64> = self
            .tap_trafos
            .iter()
            .map(|&(k, _)| self.net.trafos[k].tap.as_ref().map_or(0.0, |t| t.pos))
            .collect();
        let mut a = self.bpp.zero_values();
        let mut f = self.bpp.zero_values();
        let mut work = vec![0.0; n];
        if !self.bpp_factor_for_taps(&base_taps, &mut a, &mut f, &mut work) {
            return Err(Error::InvalidNetwork("B'' is singular".into()));
        }
        self.bpp.factor_own(&a)?;
        Ok(())
    }

    /// Try XB and BX over a grid of ψ and keep the pair with the lowest score
    /// (see `cpu::score_variant`: mostly warm-start iterations; ties: smaller ψ, XB first).
    /// The plan is scored in place behind an `Arc` (each scoring kernel holds a
    /// reference and is dropped before the next variant is set), never cloned.
    fn choose_variant(plan: Plan) -> Result<Plan> {
        const UNIQUE: &str = "the scoring kernel has been dropped";
        let mut plan = std::sync::Arc::new(plan);
        let mut best: Option<(f64, Variant, f64)> = None;
        for variant in [Variant::XB, Variant::BX] {
            for step in 0..=12 {
                let psi = step as f64 * 0.1;
                let p = std::sync::Arc::get_mut(&mut plan).expect(UNIQUE);
                if p.set_variant(variant, psi).is_err() {
                    continue;
                }
                if let Some(score) = super::cpu::score_variant(&plan) {
                    if best.is_none_or(|(b, _, _)| score < b - 1e-9) {
                        best = Some((score, variant, psi));
                    }
                }
            }
        }
        let (_, v, psi) = best.unwrap_or((0.0, Variant::XB, 0.0));
        let mut plan = std::sync::Arc::try_unwrap(plan).expect(UNIQUE);
        plan.set_variant(v, psi)?;
        Ok(plan)
    }

    /// Non-zeros stored in the factors of B' and of B'' (L and U, diagonal
    /// included; both share one pattern, fill included).
    pub fn factor_nnz(&self) -> usize {
        self.bp.nnz()
    }

    /// Number of buses / lines / trafos / ext_grids in the network tables.
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.net.buses.len(),
            self.net.lines.len(),
            self.net.trafos.len(),
            self.net.ext_grids.len(),
        )
    }
}

/// Greedy minimum-degree elimination order of the PQ nodes (ties by index).
fn min_degree_order(pq: &[usize], adj: &[Vec<usize>], is_slack: &[bool]) -> Vec<usize> {
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
fn zip_shares(net: &Network, bus_node: &[Option<usize>], n_node: usize) -> Result<Vec<[f64; 4]>> {
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
