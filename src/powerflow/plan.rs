//! The power-flow plan: everything shared by every copy of a batch, built once
//! per network — fused buses, node numbering (fill-reducing order), branch
//! admittances, the rotated B'/B'' and their sparse LU factors, the no-load start.

use super::admittance::{line_branch, shunt_y_per_step, switch_branch, trafo_branch, BranchAdm};
use super::sparse_lu::SparseLu;
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
    /// Convergence: max over PQ buses of `|ΔP|` and `|ΔQ|` in p.u. of `sn_mva`.
    pub tolerance_pu: f64,
    /// Iteration cap (one iteration = a P and a Q half-step).
    pub max_iterations: u32,
    /// Fixed variant and rotation ψ in radians; `None` picks the pair that
    /// converges fastest on the base case.
    pub variant: Option<(Variant, f64)>,
}

impl Default for SolverOptions {
    fn default() -> Self {
        SolverOptions { tolerance_pu: 1e-9, max_iterations: 100, variant: None }
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
    /// PQ nodes are `0..n_pq` in elimination order.
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
    /// Node of each ext_grid, and how many in-service ext_grids share that node.
    pub ext_grid_node: Vec<Option<(usize, usize)>>,
    /// Chosen variant.
    pub variant: Variant,
    /// Rotation ψ (radians): the solver works with `Y·e^{−jψ}`, `S·e^{jψ}`.
    pub psi: f64,
    /// `e^{jψ}`.
    pub rot: C64,
    /// Factors of B' (P half-step).
    pub bp: SparseLu,
    /// Factors of B'' (Q half-step).
    pub bpp: SparseLu,
    /// No-load voltages of the PQ nodes: `−Y_pp⁻¹·Y_ps·V_s`.
    pub v_noload: Vec<C64>,
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
        // 1. Fuse buses joined by closed zero-impedance bus-bus switches.
        let mut uf = UnionFind((0..nb).collect());
        let mut open_line = vec![false; net.lines.len()];
        let mut open_trafo = vec![false; net.trafos.len()];
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
                SwitchElement::Line => open_line[s.element] |= !s.closed,
                SwitchElement::Trafo => open_trafo[s.element] |= !s.closed,
            }
        }
        let root: Vec<usize> = (0..nb).map(|b| uf.find(b)).collect();

        // 2. Raw branches between bus roots.
        struct Raw {
            f: usize,
            t: usize,
            source: BranchSource,
            pi: super::admittance::PiBranch,
        }
        let mut raw = vec![];
        for (k, l) in net.lines.iter().enumerate() {
            if l.in_service && !open_line[k] && net.buses[l.from_bus].in_service && net.buses[l.to_bus].in_service {
                raw.push(Raw { f: root[l.from_bus], t: root[l.to_bus], source: BranchSource::Line(k), pi: line_branch(net, l) });
            }
        }
        for (k, t) in net.trafos.iter().enumerate() {
            if t.in_service && !open_trafo[k] && net.buses[t.hv_bus].in_service && net.buses[t.lv_bus].in_service {
                let pos = t.tap.as_ref().map(|x| x.pos).unwrap_or(0.0);
                raw.push(Raw { f: root[t.hv_bus], t: root[t.lv_bus], source: BranchSource::Trafo(k), pi: trafo_branch(net, t, pos) });
            }
        }
        for &k in &z_switches {
            let s = &net.switches[k];
            raw.push(Raw { f: root[s.bus], t: root[s.element], source: BranchSource::Switch(k), pi: switch_branch(net, s.bus, s.z_ohm) });
        }

        // 3. Live part: roots reachable from an in-service ext_grid.
        let mut adj: Vec<Vec<usize>> = vec![vec![]; nb];
        for r in &raw {
            if r.f != r.t {
                adj[r.f].push(r.t);
                adj[r.t].push(r.f);
            }
        }
        let mut is_slack = vec![false; nb];
        let mut live = vec![false; nb];
        let mut stack = vec![];
        for e in net.ext_grids.iter().filter(|e| e.in_service && net.buses[e.bus].in_service) {
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
        let isolated_buses: Vec<usize> = (0..nb).filter(|&b| net.buses[b].in_service && !live[root[b]]).collect();

        // 4. Order PQ roots by minimum degree (leaves first on a tree: no fill).
        let pq_roots: Vec<usize> = (0..nb).filter(|&r| root[r] == r && live[r] && !is_slack[r]).collect();
        let order = min_degree_order(&pq_roots, &adj, &is_slack);
        let mut node_of_root = vec![usize::MAX; nb];
        for (i, &r) in order.iter().enumerate() {
            node_of_root[r] = i;
        }
        let n_pq = order.len();
        let mut slack_v = vec![];
        let mut n_node = n_pq;
        for e in net.ext_grids.iter().filter(|e| e.in_service && net.buses[e.bus].in_service) {
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
                BranchSource::Switch(_) => false,
            };
            if !tapped {
                fixed_branches.push(i);
            }
            branches.push(PlanBranch {
                f: node_of_root[r.f],
                t: node_of_root[r.t],
                source: r.source,
                adm: r.pi.admittance(),
                z: r.pi.z,
                ratio: r.pi.ratio,
                y_sh: r.pi.y_sh,
            });
        }

        let node = |b: usize| bus_node[b];
        let load_node = net.loads.iter().map(|e| if e.in_service { node(e.bus) } else { None }).collect();
        let sgen_node = net.sgens.iter().map(|e| if e.in_service { node(e.bus) } else { None }).collect();
        let storage_node = net.storages.iter().map(|e| if e.in_service { node(e.bus) } else { None }).collect();
        let shunt_node: Vec<Option<usize>> = net.shunts.iter().map(|e| if e.in_service { node(e.bus) } else { None }).collect();
        let shunt_y = (0..net.shunts.len()).map(|k| shunt_y_per_step(net, k)).collect();
        let mut per_node = vec![0usize; n_node];
        let eg_nodes: Vec<Option<usize>> = net
            .ext_grids
            .iter()
            .map(|e| if e.in_service { node(e.bus) } else { None })
            .collect();
        for n in eg_nodes.iter().flatten() {
            per_node[*n] += 1;
        }
        let ext_grid_node = eg_nodes.iter().map(|n| n.map(|n| (n, per_node[n]))).collect();

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
            tap_trafos,
            fixed_branches,
            load_node,
            sgen_node,
            storage_node,
            shunt_node,
            shunt_y,
            ext_grid_node,
            variant: Variant::XB,
            psi: 0.0,
            rot: C64::new(1.0, 0.0),
            bp: SparseLu::factor(0, &[])?,
            bpp: SparseLu::factor(0, &[])?,
            v_noload: vec![],
        };
        plan.v_noload = plan.no_load_voltages()?;
        match plan.options.variant {
            Some((v, psi)) => plan.set_variant(v, psi)?,
            None => plan.choose_variant()?,
        }
        Ok(plan)
    }

    /// Base-case shunt admittance at every node (network's own shunt steps).
    pub fn base_node_shunts(&self) -> Vec<C64> {
        let mut y = vec![C64::ZERO; self.n_node];
        for (k, n) in self.shunt_node.iter().enumerate() {
            if let Some(n) = n {
                y[*n] += self.shunt_y[k].scale(self.net.shunts[k].step);
            }
        }
        y
    }

    /// `V_pq = −Y_pp⁻¹·Y_ps·V_s` with the network's own taps and shunt steps (faer LU, complex).
    fn no_load_voltages(&self) -> Result<Vec<C64>> {
        use faer::c64;
        let n = self.n_pq;
        if n == 0 {
            return Ok(vec![]);
        }
        let mut y = faer::Mat::<c64>::zeros(n, n);
        let mut rhs = faer::Mat::<c64>::zeros(n, 1);
        let cx = |z: C64| c64::new(z.re, z.im);
        let ysh = self.base_node_shunts();
        for i in 0..n {
            y[(i, i)] += cx(ysh[i]);
        }
        let add = |r: usize, c: usize, v: C64, y: &mut faer::Mat<c64>, rhs: &mut faer::Mat<c64>| {
            if r >= n {
                return;
            }
            if c < n {
                y[(r, c)] += cx(v);
            } else {
                let vs = self.slack_v[c - n];
                rhs[(r, 0)] -= cx(v * vs);
            }
        };
        for b in &self.branches {
            add(b.f, b.f, b.adm.yff, &mut y, &mut rhs);
            add(b.f, b.t, b.adm.yft, &mut y, &mut rhs);
            add(b.t, b.f, b.adm.ytf, &mut y, &mut rhs);
            add(b.t, b.t, b.adm.ytt, &mut y, &mut rhs);
        }
        use faer::linalg::solvers::Solve;
        let x = y.partial_piv_lu().solve(&rhs);
        let v: Vec<C64> = (0..n).map(|i| C64::new(x[(i, 0)].re, x[(i, 0)].im)).collect();
        if v.iter().any(|z| !(z.re.is_finite() && z.im.is_finite())) {
            return Err(Error::InvalidNetwork("the no-load solution is singular".into()));
        }
        Ok(v)
    }

    /// Build B' and B'' for `variant` and rotation `psi`, and factor them.
    pub fn set_variant(&mut self, variant: Variant, psi: f64) -> Result<()> {
        let n = self.n_pq;
        let rot_z = C64::from_polar(1.0, psi); // z' = z·e^{jψ}
        let rot_y = C64::from_polar(1.0, -psi); // y' = y·e^{−jψ}
        let mut bp = vec![0.0; n * n];
        let mut bpp = vec![0.0; n * n];
        let x_only = |z: C64| 1.0 / (z * rot_z).im;
        let full = |z: C64| -((z * rot_z).inv().im);
        let (fp, fpp): (&dyn Fn(C64) -> f64, &dyn Fn(C64) -> f64) = match variant {
            Variant::XB => (&x_only, &full),
            Variant::BX => (&full, &x_only),
        };
        let stamp = |m: &mut Vec<f64>, f: usize, t: usize, b: f64, ratio: f64| {
            if f == t {
                return;
            }
            if f < n {
                m[f * n + f] += b / (ratio * ratio);
            }
            if t < n {
                m[t * n + t] += b;
            }
            if f < n && t < n {
                m[f * n + t] -= b / ratio;
                m[t * n + f] -= b / ratio;
            }
        };
        for br in &self.branches {
            stamp(&mut bp, br.f, br.t, fp(br.z), 1.0);
            stamp(&mut bpp, br.f, br.t, fpp(br.z), br.ratio);
            // Line charging and magnetising admittance belong to B'' only.
            let half = (br.y_sh * rot_y).im * 0.5;
            if br.f < n {
                bpp[br.f * n + br.f] -= half / (br.ratio * br.ratio);
            }
            if br.t < n {
                bpp[br.t * n + br.t] -= half;
            }
        }
        for (i, y) in self.base_node_shunts().iter().enumerate().take(n) {
            bpp[i * n + i] -= (*y * rot_y).im;
        }
        self.bp = SparseLu::factor(n, &bp)?;
        self.bpp = SparseLu::factor(n, &bpp)?;
        self.variant = variant;
        self.psi = psi;
        self.rot = C64::from_polar(1.0, psi);
        Ok(())
    }

    /// Try XB and BX over a grid of ψ on the base case from the no-load start and
    /// keep the pair with the fewest iterations (ties: smaller ψ, XB first).
    fn choose_variant(&mut self) -> Result<()> {
        let mut best: Option<(u32, Variant, f64)> = None;
        for variant in [Variant::XB, Variant::BX] {
            for step in 0..=12 {
                let psi = step as f64 * 0.1;
                if self.set_variant(variant, psi).is_err() {
                    continue;
                }
                let (conv, iters) = super::cpu::solve_base_case(self);
                if conv && best.is_none_or(|(b, _, _)| iters < b) {
                    best = Some((iters, variant, psi));
                }
            }
        }
        let (_, v, psi) = best.unwrap_or((0, Variant::XB, 0.0));
        self.set_variant(v, psi)
    }

    /// Number of buses / lines / trafos / ext_grids in the network tables.
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (self.net.buses.len(), self.net.lines.len(), self.net.trafos.len(), self.net.ext_grids.len())
    }
}

/// Greedy minimum-degree elimination order of the PQ nodes (ties by index).
fn min_degree_order(pq: &[usize], adj: &[Vec<usize>], is_slack: &[bool]) -> Vec<usize> {
    let mut nbrs: std::collections::HashMap<usize, BTreeSet<usize>> = pq
        .iter()
        .map(|&r| (r, adj[r].iter().copied().filter(|&v| v != r && !is_slack[v]).collect()))
        .collect();
    let mut remaining: BTreeSet<(usize, usize)> = nbrs.iter().map(|(&r, s)| (s.len(), r)).collect();
    let mut order = Vec::with_capacity(pq.len());
    while let Some(&(deg, r)) = remaining.iter().next() {
        remaining.remove(&(deg, r));
        order.push(r);
        let ns: Vec<usize> = nbrs.remove(&r).map(|s| s.into_iter().collect()).unwrap_or_default();
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
