//! The sparse matrices of the plan, step 2 of [`Plan::new`](super::Plan::new):
//! the constant node injections and shunts, the factor pattern shared by B'
//! and B'', the complex `Y` of the no-load start, and B' and B'' stamped onto
//! their pattern and factored for one variant and ψ. No dense matrix is formed.

use super::topology::Topology;
use super::{BranchSource, Plan, PlanBranch, Variant};
use crate::complex::C64;
use crate::error::{Error, Result};
use crate::network::Network;
use crate::powerflow::admittance::{impedance_adm, shunt_y_per_step, trafo_branch, ward_y};
use crate::powerflow::sparse_lu::{PatternValues, Slot, SparseLu};

/// Constant node injections and shunts (the same in every copy).
#[derive(Debug, Clone)]
pub(crate) struct NodeConstants {
    /// Admittance per step of each shunt (p.u.).
    pub(crate) shunt_y: Vec<C64>,
    /// Constant power injected at each node (ward `ps`/`qs` as consumption).
    pub(crate) node_s_const: Vec<C64>,
    /// pandapower's ZIP shares `[i_p, z_p, i_q, z_q]` per node.
    pub(crate) node_zip: Vec<[f64; 4]>,
    /// Some PQ node has a nonzero ZIP share.
    pub(crate) has_zip: bool,
    /// Constant shunt admittance at each node (ward `pz`/`qz`, impedance
    /// `gf/bf`, `gt/bt`, xward `pz`/`qz`).
    pub(crate) node_y_const: Vec<C64>,
}

/// The constant injections and shunts of `net` on the nodes of `topo`.
pub(crate) fn node_constants(net: &Network, topo: &Topology) -> Result<NodeConstants> {
    let (bus_node, n_pq, n_node) = (&topo.bus_node, topo.n_pq, topo.n_node);
    let (ward_node, branches) = (&topo.elements.ward_node, &topo.branches.branches);
    let node = |b: usize| bus_node[b];
    let shunt_y = (0..net.shunts.len())
        .map(|k| shunt_y_per_step(net, k))
        .collect();
    let node_zip = super::topology::zip_shares(net, bus_node, n_node)?;
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
    // An xward in service at a solved bus (its internal node exists then).
    for x in net.xwards.iter() {
        if let (true, Some(n)) = (x.in_service, node(x.bus)) {
            node_s_const[n] -= C64::new(x.ps_mw, x.qs_mvar).scale(1.0 / net.sn_mva);
            node_y_const[n] += C64::new(x.pz_mw, -x.qz_mvar).scale(1.0 / net.sn_mva);
        }
    }
    for b in branches {
        if let BranchSource::Impedance(k) = b.source {
            let a = impedance_adm(net.sn_mva, &net.impedances[k]);
            node_y_const[b.f] += a.y_f;
            node_y_const[b.t] += a.y_t;
        }
    }
    Ok(NodeConstants {
        shunt_y,
        node_s_const,
        node_zip,
        has_zip,
        node_y_const,
    })
}

/// Symbolic factor pattern shared by B' and B'' (topology only): off-diagonal
/// entries at the branches between two PQ nodes.
pub(crate) fn factor_pattern(n_pq: usize, branches: &[PlanBranch]) -> SparseLu {
    let entries: Vec<(usize, usize)> = branches
        .iter()
        .filter(|b| b.f < n_pq && b.t < n_pq && b.f != b.t)
        .map(|b| (b.f, b.t))
        .collect();
    SparseLu::symbolic(n_pq, &entries)
}

/// `V_pq = −Y_pp⁻¹·Y_ps·V_s` for PQ nodes `0..n`, slack voltages `slack_v`,
/// node shunts `node_shunts`, the PV nodes `pv_nodes` held at `pv_v` (sources
/// like the slacks; `is_pv` per node): `Y_pp` assembled as triplets
/// (duplicates summed) and solved by faer's sparse LU (fill-reducing column
/// order, partial pivoting), complex.
pub(crate) fn no_load_voltages(
    n: usize,
    branches: &[PlanBranch],
    slack_v: &[C64],
    node_shunts: &[C64],
    pv_nodes: &[usize],
    pv_v: &[C64],
    is_pv: &[bool],
) -> Result<Vec<C64>> {
    use faer::c64;
    use faer::linalg::solvers::Solve;
    use faer::sparse::{SparseColMat, Triplet};
    if n == 0 {
        return Ok(vec![]);
    }
    let cx = |z: C64| c64::new(z.re, z.im);
    let mut triplets: Vec<Triplet<usize, usize, c64>> = Vec::with_capacity(n + 4 * branches.len());
    let mut rhs = faer::Mat::<c64>::zeros(n, 1);
    for (&i, &v) in pv_nodes.iter().zip(pv_v) {
        triplets.push(Triplet::new(i, i, c64::new(1.0, 0.0)));
        rhs[(i, 0)] = cx(v);
    }
    for (i, y) in node_shunts.iter().enumerate().take(n) {
        if !is_pv[i] {
            triplets.push(Triplet::new(i, i, cx(*y)));
        }
    }
    for b in branches {
        for (r, c, v) in [
            (b.f, b.f, b.adm.yff),
            (b.f, b.t, b.adm.yft),
            (b.t, b.f, b.adm.ytf),
            (b.t, b.t, b.adm.ytt),
        ] {
            if r >= n || is_pv[r] {
                continue;
            }
            if c < n {
                triplets.push(Triplet::new(r, c, cx(v)));
            } else {
                rhs[(r, 0)] -= cx(v * slack_v[c - n]);
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

/// Series susceptance of a branch of impedance `z` in B' (`p = true`) or B''
/// for `variant` and rotation `psi`.
pub(crate) fn series_b(z: C64, p: bool, variant: Variant, psi: f64) -> f64 {
    let zr = z * C64::from_polar(1.0, psi);
    let x_only = (variant == Variant::XB) == p;
    if x_only {
        1.0 / zr.im
    } else {
        -(zr.inv().im)
    }
}

/// B'' entries of a branch: `(ff, tt, ft = tf)` for impedance `z`, ratio and
/// shunt `y_sh`.
pub(crate) fn bpp_stamp(z: C64, ratio: f64, y_sh: C64, variant: Variant, psi: f64) -> [f64; 3] {
    let b = series_b(z, false, variant, psi);
    let half = (y_sh * C64::from_polar(1.0, -psi)).im * 0.5;
    let r2 = ratio * ratio;
    [(b - half) / r2, b - half, -b / ratio]
}

/// Where a branch's `(ff, tt, ft = tf)` entries go in a pattern of `n` rows:
/// none for a slack node, nor (where `pv` is given: B'') for a PV node, whose
/// row and column are the identity. A self-loop only adds to one diagonal.
pub(crate) fn stamp_slots(
    lu: &SparseLu,
    n: usize,
    pv: Option<&[bool]>,
    f: usize,
    t: usize,
) -> [Option<Slot>; 4] {
    let s = |i: usize, j: usize| {
        if i < n && j < n && !pv.is_some_and(|pv| pv[i] || pv[j]) {
            lu.slot(i, j)
        } else {
            None
        }
    };
    if f == t {
        [s(f, f), None, None, None]
    } else {
        [s(f, f), s(t, t), s(f, t), s(t, f)]
    }
}

/// Add a branch's entries `s = (ff, tt, ft = tf)` at `slots`.
pub(crate) fn add_stamp(v: &mut PatternValues, slots: &[Option<Slot>; 4], s: [f64; 3]) {
    for (slot, val) in slots.iter().zip([s[0], s[1], s[2], s[2]]) {
        match slot {
            Some(Slot::D(i)) => v.d[*i] += val,
            Some(Slot::L(k)) => v.l[*k] += val,
            Some(Slot::U(k)) => v.u[*k] += val,
            None => {}
        }
    }
}

/// What B' and B'' are built from (all of it topology and constant shunts).
pub(crate) struct FdpfInput<'a> {
    /// The shared factor pattern ([`factor_pattern`]).
    pub(crate) pattern: &'a SparseLu,
    /// The branches (node numbers; PQ nodes `0..pattern`'s size).
    pub(crate) branches: &'a [PlanBranch],
    /// Per node: a PV node (identity row and column in B'').
    pub(crate) is_pv: &'a [bool],
    /// Tap-changing trafos `(trafo, branch)`: stamped apart in B''.
    pub(crate) tap_trafos: &'a [(usize, usize)],
    /// Base-case shunt admittance per node.
    pub(crate) node_shunts: &'a [C64],
}

/// B' and B'' of one variant and ψ, factored.
#[derive(Debug, Clone)]
pub(crate) struct FdpfFactors {
    /// Factors of B'.
    pub(crate) bp: SparseLu,
    /// Factors of B'' at the network's tap positions.
    pub(crate) bpp: SparseLu,
    /// B'' without the tap-changing trafos (on `bpp`'s pattern).
    pub(crate) bpp_a0: PatternValues,
    /// Pattern slots of each tap-changing trafo in B''.
    pub(crate) bpp_tap_slots: Vec<[Option<Slot>; 4]>,
}

/// Build B' and B'' for `variant` and rotation `psi`, and factor them. Both
/// are assembled straight onto their static no-pivot sparse pattern; B''
/// keeps its tap-free values (`bpp_a0`) so that copies with other tap
/// positions can refactor it cheaply. The tap-changing trafos are stamped at
/// their branch values (the network's own tap positions).
pub(crate) fn fdpf_factors(m: &FdpfInput<'_>, variant: Variant, psi: f64) -> Result<FdpfFactors> {
    let n = m.pattern.n;
    let pv = m.is_pv;
    let slots =
        |lu: &SparseLu, f: usize, t: usize, bpp: bool| stamp_slots(lu, n, bpp.then_some(pv), f, t);

    // B': series susceptances only, `B'_ff += b`, `B'_ft −= b`.
    let mut bp_lu = m.pattern.clone();
    let mut bp = bp_lu.zero_values();
    for br in m.branches {
        if br.f != br.t {
            let b = series_b(br.z, true, variant, psi);
            add_stamp(&mut bp, &slots(&bp_lu, br.f, br.t, false), [b, b, -b]);
        }
    }
    bp_lu.factor_own(&bp)?;

    // B'': pattern, then values without the tap-changing trafos, then with them.
    let mut bpp = m.pattern.clone();
    let mut a0 = bpp.zero_values();
    let mut tapped = vec![false; m.branches.len()];
    for &(_, b) in m.tap_trafos {
        tapped[b] = true;
    }
    for (bi, br) in m.branches.iter().enumerate() {
        if tapped[bi] {
            continue;
        }
        let mut st = bpp_stamp(br.z, br.ratio, br.y_sh, variant, psi);
        if br.f == br.t {
            st = [st[0] + st[1] + 2.0 * st[2], 0.0, 0.0];
        }
        add_stamp(&mut a0, &slots(&bpp, br.f, br.t, true), st);
    }
    for (i, y) in m.node_shunts.iter().enumerate().take(n) {
        a0.d[i] = if pv[i] {
            1.0
        } else {
            a0.d[i] - (*y * C64::from_polar(1.0, -psi)).im
        };
    }
    let bpp_tap_slots: Vec<[Option<Slot>; 4]> = m
        .tap_trafos
        .iter()
        .map(|&(_, b)| slots(&bpp, m.branches[b].f, m.branches[b].t, true))
        .collect();
    let mut a = bpp.zero_values();
    a.l.copy_from_slice(&a0.l);
    a.d.copy_from_slice(&a0.d);
    a.u.copy_from_slice(&a0.u);
    for (j, &(_, b)) in m.tap_trafos.iter().enumerate() {
        let br = &m.branches[b];
        let st = bpp_stamp(br.z, br.ratio, br.y_sh, variant, psi);
        add_stamp(&mut a, &bpp_tap_slots[j], st);
    }
    let mut f = bpp.zero_values();
    let mut work = vec![0.0; n];
    if !bpp.factor_values(&a, &mut f, &mut work) {
        return Err(Error::InvalidNetwork("B'' is singular".into()));
    }
    bpp.factor_own(&a)?;
    Ok(FdpfFactors {
        bp: bp_lu,
        bpp,
        bpp_a0: a0,
        bpp_tap_slots,
    })
}

impl Plan {
    /// The no-load start of this plan ([`no_load_voltages`]): the network's own
    /// taps and shunt steps, the PV nodes at their set-points and the first
    /// slack's angle (without them a transmission grid fed by one ext_grid
    /// starts far from its solution: case300 at |V| ≈ 0.05).
    pub(super) fn no_load_voltages(&self) -> Result<Vec<C64>> {
        let angle = self
            .slack_v
            .first()
            .map_or(C64::new(1.0, 0.0), |v| v.scale(1.0 / v.abs()));
        let pv_v: Vec<C64> = (0..self.pv_nodes.len())
            .map(|j| angle.scale(self.pv_vm_base(j)))
            .collect();
        no_load_voltages(
            self.n_pq,
            &self.branches,
            &self.slack_v,
            &self.base_node_shunts(),
            &self.pv_nodes,
            &pv_v,
            &self.is_pv,
        )
    }

    /// B'' stamp of tap-changing trafo `j` (index into `tap_trafos`) at tap position `pos`.
    pub(crate) fn bpp_tap_stamp(&self, j: usize, pos: f64) -> [f64; 3] {
        let (k, _) = self.tap_trafos[j];
        let pi = trafo_branch(&self.net, &self.net.trafos[k], pos);
        bpp_stamp(pi.z, pi.ratio, pi.y_sh, self.variant, self.psi)
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
            add_stamp(a, &self.bpp_tap_slots[j], self.bpp_tap_stamp(j, pos));
        }
        self.bpp.factor_values(a, out, work)
    }

    /// Build B' and B'' for `variant` and rotation `psi` ([`fdpf_factors`]) and
    /// keep them. On an error the plan is left as it was.
    pub(crate) fn set_variant(&mut self, variant: Variant, psi: f64) -> Result<()> {
        let f = fdpf_factors(
            &FdpfInput {
                pattern: &self.pattern,
                branches: &self.branches,
                is_pv: &self.is_pv,
                tap_trafos: &self.tap_trafos,
                node_shunts: &self.base_node_shunts(),
            },
            variant,
            psi,
        )?;
        self.variant = variant;
        self.psi = psi;
        self.rot = C64::from_polar(1.0, psi);
        self.bp = f.bp;
        self.bpp = f.bpp;
        self.bpp_a0 = f.bpp_a0;
        self.bpp_tap_slots = f.bpp_tap_slots;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powerflow::plan::topology::Topology;

    /// Bus 0 (ext_grid at 1.02 p.u., 10°) – line – bus 1, 20 kV, 10 MVA base.
    const NET: &str = r#"
sn_mva: 10.0
f_hz: 50.0
buses:
- vn_kv: 20.0
- vn_kv: 20.0
ext_grids:
- {bus: 0, vm_pu: 1.02, va_degree: 10.0}
lines:
- {from_bus: 0, to_bus: 1, length_km: 3.0, r_ohm_per_km: 0.12, x_ohm_per_km: 0.35, c_nf_per_km: 260.0, max_i_ka: 0.4}
"#;

    /// The line's series impedance and total charging in p.u., from its data.
    fn line_pu() -> (C64, C64) {
        let z_base = 20.0 * 20.0 / 10.0;
        let z = C64::new(0.12 * 3.0, 0.35 * 3.0).scale(1.0 / z_base);
        let b = 2.0 * std::f64::consts::PI * 50.0 * 260e-9 * 3.0 * z_base;
        (z, C64::new(0.0, b))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn two_bus_line_matrices_follow_the_admittance_formula() {
        let net = crate::network::yaml::from_str(NET).expect("valid YAML");
        let topo = Topology::build(&net).expect("topology");
        let (z, y_sh) = line_pu();
        let br = &topo.branches.branches;
        assert_eq!(br.len(), 1);
        let (ys, half) = (z.inv(), y_sh.scale(0.5));
        for (got, want) in [
            (br[0].adm.yff, ys + half),
            (br[0].adm.ytt, ys + half),
            (br[0].adm.yft, -ys),
            (br[0].adm.ytf, -ys),
        ] {
            assert!(
                close(got.re, want.re) && close(got.im, want.im),
                "{got:?} vs {want:?}"
            );
        }
        // Bus 1 is PQ node 0, the slack node 1.
        assert_eq!((topo.n_pq, topo.bus_node[1]), (1, Some(0)));
        let pattern = factor_pattern(topo.n_pq, br);
        let shunts = vec![C64::ZERO; topo.n_node];
        let input = FdpfInput {
            pattern: &pattern,
            branches: br,
            is_pv: &topo.pv.is_pv,
            tap_trafos: &topo.branches.tap_trafos,
            node_shunts: &shunts,
        };
        // 1×1 B' and B'': a solve with right-hand side 1 gives their inverse.
        let inv = |lu: &SparseLu| {
            let mut x = [1.0];
            lu.solve_in_place(&mut x);
            1.0 / x[0]
        };
        for psi in [0.0, 0.4] {
            let zr = z * C64::from_polar(1.0, psi);
            let bsh = (y_sh * C64::from_polar(1.0, -psi)).im * 0.5;
            let xb = fdpf_factors(&input, Variant::XB, psi).expect("XB factors");
            assert!(close(inv(&xb.bp), 1.0 / zr.im), "XB B' = 1/x");
            assert!(
                close(inv(&xb.bpp), -zr.inv().im - bsh),
                "XB B'' = −Im(1/z) − b/2"
            );
            let bx = fdpf_factors(&input, Variant::BX, psi).expect("BX factors");
            assert!(close(inv(&bx.bp), -zr.inv().im), "BX B' = −Im(1/z)");
            assert!(close(inv(&bx.bpp), 1.0 / zr.im - bsh), "BX B'' = 1/x − b/2");
        }
        // No-load start: V1 = −Y11⁻¹·Y10·V0.
        let v0 = C64::from_polar(1.02, 10f64.to_radians());
        let v = no_load_voltages(1, br, &topo.slack_v, &shunts, &[], &[], &topo.pv.is_pv)
            .expect("no-load start");
        let want = ys * v0 * (ys + half).inv();
        assert!(
            close(v[0].re, want.re) && close(v[0].im, want.im),
            "{v:?} vs {want:?}"
        );
    }

    #[test]
    fn node_constants_put_a_ward_on_its_node() {
        let text = format!(
            "{NET}wards:\n- {{bus: 1, ps_mw: 2.0, qs_mvar: 1.0, pz_mw: 0.5, qz_mvar: 0.25}}\n"
        );
        let net = crate::network::yaml::from_str(&text).expect("valid YAML");
        let topo = Topology::build(&net).expect("topology");
        let c = node_constants(&net, &topo).expect("constants");
        // Consumption is a negative injection; the shunt `(pz − j·qz)/sn_mva`.
        assert_eq!(c.node_s_const, vec![C64::new(-0.2, -0.1), C64::ZERO]);
        assert_eq!(c.node_y_const, vec![C64::new(0.05, -0.025), C64::ZERO]);
        assert!(!c.has_zip);
    }
}
