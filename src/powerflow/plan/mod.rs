//! The power-flow plan: everything shared by every copy of a batch, built once
//! per network — fused buses, node numbering (fill-reducing order), branch
//! admittances, the rotated B'/B'' and their sparse LU factors, the no-load start.
//!
//! [`Plan::new`] runs named steps, each on plain data: `topology` (fusing,
//! islands, node order, element → node maps), `matrices` (constant node
//! injections and shunts, the factor pattern, the no-load start, B'/B'' and
//! their factors), and `variant` (XB or BX and ψ, scored in place).

use super::admittance::BranchAdm;
use super::sparse_lu::{PatternValues, Slot, SparseLu};
use crate::complex::C64;
use crate::error::{Error, Result};
use crate::network::Network;

pub(crate) mod matrices;
mod topology;
mod variant;

use matrices::NodeConstants;
use topology::Topology;
pub use variant::Variant;

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
    /// copy (`powerflow/qlims.rs`; both backends, see
    /// [`CpuBatch::gens_at_q_limit`](super::CpuBatch::gens_at_q_limit)). Off by
    /// default, as in `runpp`.
    pub enforce_q_lims: bool,
    /// Arithmetic of the GPU backend (the CPU solver is f64 whatever this says).
    pub gpu_precision: super::GpuPrecision,
    /// Chunks the GPU backend splits a batch into, at least (more where one
    /// buffer binding cannot hold the batch). With two or more, each chunk is
    /// prepared, uploaded and submitted on its own and unpacked when it is
    /// done, so the host's work on one chunk overlaps the device's work on
    /// another; each chunk's dispatch has fewer copies. Default 1.
    pub gpu_chunks: usize,
    /// Host threads that drive the GPU backend (default 1). With two or more,
    /// the batch is split into that many parts of consecutive copies, each
    /// with its own device buffers and its own thread, which prepares,
    /// submits, waits for and unpacks its part's solves (and runs its
    /// control loop) on its own: the host's work runs on several cores and
    /// overlaps the device's work on the other parts. The same results bit
    /// for bit.
    pub gpu_threads: usize,
}

impl Default for SolverOptions {
    fn default() -> Self {
        SolverOptions {
            tolerance_pu: 1e-8,
            max_iterations: 100,
            variant: None,
            enforce_q_lims: false,
            gpu_precision: super::GpuPrecision::F32,
            gpu_chunks: 1,
            gpu_threads: 1,
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
pub(crate) enum PvSource {
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
    pub(crate) slack_v: Vec<C64>,
    /// In-service branches between live nodes.
    pub branches: Vec<PlanBranch>,
    /// Branch index of each line (`None`: not in the solved network).
    pub(crate) line_branch: Vec<Option<usize>>,
    /// Branch index of each trafo.
    pub(crate) trafo_branch: Vec<Option<usize>>,
    /// Branch index of each trafo3w's HV, MV and LV winding (`None`: not in
    /// the solved network).
    pub(crate) trafo3w_branch: Vec<[Option<usize>; 3]>,
    /// Trafos with a tap changer in the solved network: `(trafo, branch)`.
    pub tap_trafos: Vec<(usize, usize)>,
    /// Branches whose admittance is the same for every copy.
    pub(crate) fixed_branches: Vec<usize>,
    /// Node of each load / sgen / storage / shunt / ext_grid (`None`: not solved).
    pub(crate) load_node: Vec<Option<usize>>,
    /// Node of each sgen.
    pub(crate) sgen_node: Vec<Option<usize>>,
    /// Node of each storage unit.
    pub(crate) storage_node: Vec<Option<usize>>,
    /// Node of each shunt.
    pub(crate) shunt_node: Vec<Option<usize>>,
    /// Admittance per step of each shunt (p.u.).
    pub(crate) shunt_y: Vec<C64>,
    /// Constant power injected at each node, the same in every copy (p.u.; ward
    /// `ps`/`qs` as consumption).
    pub(crate) node_s_const: Vec<C64>,
    /// Per node, pandapower's ZIP shares of its whole specified injection
    /// (`build_bus.py`: the mean percentages of the bus's in-service loads / 100),
    /// `[i_p, z_p, i_q, z_q]`; all zero where the node has no ZIP load.
    pub(crate) node_zip: Vec<[f64; 4]>,
    /// Some PQ node has a nonzero ZIP share: the kernels add the
    /// voltage-dependent terms to the mismatch (skipped otherwise).
    pub has_zip: bool,
    /// Constant shunt admittance at each node, the same in every copy (p.u.;
    /// ward `pz`/`qz`, impedance `gf/bf`, `gt/bt`).
    pub(crate) node_y_const: Vec<C64>,
    /// Node of each ext_grid, and how many in-service ext_grids share that node.
    pub(crate) ext_grid_node: Vec<Option<(usize, usize)>>,
    /// Node of each gen (`None`: out of service, at an out-of-service bus, or cut
    /// off from every slack).
    pub(crate) gen_node: Vec<Option<usize>>,
    /// PV nodes (sorted; among the PQ-numbered nodes `0..n_pq`): nodes with an
    /// in-service gen and no ext_grid. Each has an angle unknown in B' and an
    /// identity row and column in B'' (|V| is fixed), and its ΔQ is left out of
    /// the mismatch norm.
    pub pv_nodes: Vec<usize>,
    /// What holds each PV node's voltage: the first gen at the node (every gen
    /// at a node must have the same set-point, as pandapower requires), or an
    /// xward's internal node.
    pub(crate) pv_source: Vec<PvSource>,
    /// Internal node of each xward (`None`: not solved).
    pub(crate) xward_node: Vec<Option<usize>>,
    /// Per node: a PV node.
    pub(crate) is_pv: Vec<bool>,
    /// Chosen variant.
    pub variant: Variant,
    /// Rotation ψ (radians): the solver works with `Y·e^{−jψ}`, `S·e^{jψ}`.
    pub psi: f64,
    /// `e^{jψ}`.
    pub(crate) rot: C64,
    /// Factors of B' (P half-step).
    pub(crate) bp: SparseLu,
    /// Factors of B'' (Q half-step).
    pub(crate) bpp: SparseLu,
    /// No-load voltages of the PQ nodes: `−Y_pp⁻¹·Y_ps·V_s`, PV nodes held at
    /// their gens' `vm_pu` and the first slack's angle.
    pub(crate) v_noload: Vec<C64>,
    /// B'' values (on `bpp`'s pattern) without the tap-changing trafos.
    pub(crate) bpp_a0: PatternValues,
    /// Pattern slots `(ff, tt, ft, tf)` of each tap-changing trafo in B''.
    pub(crate) bpp_tap_slots: Vec<[Option<Slot>; 4]>,
    /// Symbolic factor pattern shared by B' and B'' (topology only: built once,
    /// whatever the variant).
    pattern: SparseLu,
}

impl Plan {
    /// Build the plan for `net`, in steps: its topology (`topology.rs`:
    /// fused buses, branches, islands, node order, element → node maps, PV
    /// nodes), the constant node injections and shunts and the factor pattern
    /// (`matrices.rs`), the gens' set-points checked, the no-load start, then
    /// B' and B'' for the variant and ψ given in `options` or chosen by the
    /// search (`variant.rs`).
    pub fn new(net: &Network, options: SolverOptions) -> Result<Plan> {
        net.validate()?;
        if !(options.tolerance_pu > 0.0 && options.tolerance_pu.is_finite()) {
            return Err(Error::InvalidInput("tolerance_pu must be positive".into()));
        }
        let topo = Topology::build(net)?;
        let consts = matrices::node_constants(net, &topo)?;
        let pattern = matrices::factor_pattern(topo.n_pq, &topo.branches.branches);
        let mut plan = Plan::from_parts(net, options, topo, consts, pattern);
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
            None => Plan::choose_variant(plan).map(|(plan, _)| plan),
        }
    }

    /// The plan of `net` from its topology, constants and factor pattern,
    /// before the no-load start and the variant (B', B'' empty).
    fn from_parts(
        net: &Network,
        options: SolverOptions,
        topo: Topology,
        consts: NodeConstants,
        pattern: SparseLu,
    ) -> Plan {
        let Topology {
            n_pq,
            n_node,
            bus_node,
            isolated_buses,
            slack_v,
            branches,
            elements,
            pv,
        } = topo;
        let NodeConstants {
            shunt_y,
            node_s_const,
            node_zip,
            has_zip,
            node_y_const,
        } = consts;
        Plan {
            net: net.clone(),
            options,
            n_pq,
            n_node,
            bus_node,
            isolated_buses,
            slack_v,
            branches: branches.branches,
            line_branch: branches.line_branch,
            trafo_branch: branches.trafo_branch,
            trafo3w_branch: branches.trafo3w_branch,
            tap_trafos: branches.tap_trafos,
            fixed_branches: branches.fixed_branches,
            load_node: elements.load_node,
            sgen_node: elements.sgen_node,
            storage_node: elements.storage_node,
            shunt_node: elements.shunt_node,
            shunt_y,
            node_s_const,
            node_zip,
            has_zip,
            node_y_const,
            ext_grid_node: elements.ext_grid_node,
            gen_node: elements.gen_node,
            pv_nodes: pv.pv_nodes,
            pv_source: pv.pv_source,
            xward_node: elements.xward_node,
            is_pv: pv.is_pv,
            variant: Variant::XB,
            psi: 0.0,
            rot: C64::new(1.0, 0.0),
            bp: SparseLu::default(),
            bpp: SparseLu::default(),
            v_noload: vec![],
            bpp_a0: PatternValues::default(),
            bpp_tap_slots: vec![],
            pattern,
        }
    }

    /// The network's voltage set-point of PV node `j` (index into `pv_nodes`).
    pub(crate) fn pv_vm_base(&self, j: usize) -> f64 {
        match self.pv_source[j] {
            PvSource::Gen(k) => self.net.gens[k].vm_pu,
            PvSource::Xward(k) => self.net.xwards[k].vm_pu,
        }
    }

    /// Copy `c`'s voltage set-point of PV node `j`: a gen's from the inputs.
    pub(crate) fn pv_vm(&self, j: usize, inp: &super::batch::BatchInputs, c: usize) -> f64 {
        match self.pv_source[j] {
            PvSource::Gen(k) => inp.gen_vm_pu[(c, k)],
            PvSource::Xward(k) => self.net.xwards[k].vm_pu,
        }
    }

    /// Whether some node is a PV node ([`Plan::pv_nodes`]).
    pub(crate) fn has_pv(&self) -> bool {
        !self.pv_nodes.is_empty()
    }

    /// Gens (and an ext_grid) that share a node but not a voltage set-point,
    /// with the gens' set-points `vm(gen)`: pandapower refuses them ("Voltage
    /// controlling elements … at the same bus have different setpoints",
    /// compared with `np.allclose`). `None` when they agree.
    pub(crate) fn gen_vm_conflict(&self, vm: &dyn Fn(usize) -> f64) -> Option<String> {
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
    pub(crate) fn check_gen_setpoints(
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
    pub(crate) fn shunt_nodes(&self) -> Vec<usize> {
        let mut nodes: Vec<usize> = self.shunt_node.iter().flatten().copied().collect();
        nodes.extend((0..self.n_node).filter(|&i| self.node_y_const[i] != C64::ZERO));
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// Base-case shunt admittance at every node (network's own shunt steps and
    /// the constant shunts).
    pub(crate) fn base_node_shunts(&self) -> Vec<C64> {
        let mut y = self.node_y_const.clone();
        for (k, n) in self.shunt_node.iter().enumerate() {
            if let Some(n) = n {
                y[*n] += self.shunt_y[k].scale(self.net.shunts[k].step);
            }
        }
        y
    }

    /// Non-zeros stored in the factors of B' and of B'' (L and U, diagonal
    /// included; both share one pattern, fill included).
    pub fn factor_nnz(&self) -> usize {
        self.bp.nnz()
    }

    /// Number of buses / lines / trafos / ext_grids in the network tables.
    pub(crate) fn sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.net.buses.len(),
            self.net.lines.len(),
            self.net.trafos.len(),
            self.net.ext_grids.len(),
        )
    }
}
