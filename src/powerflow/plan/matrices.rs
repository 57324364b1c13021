//! The sparse matrices of the plan: the complex `Y` of the no-load start, B'
//! and B'' stamped onto their shared factor pattern, and their factors. No
//! dense matrix is formed.

use super::{Plan, Variant};
use crate::complex::C64;
use crate::error::{Error, Result};
use crate::powerflow::admittance::trafo_branch;
use crate::powerflow::sparse_lu::{PatternValues, Slot, SparseLu};

impl Plan {
    /// `V_pq = −Y_pp⁻¹·Y_ps·V_s` with the network's own taps and shunt steps,
    /// the PV nodes held at their set-points (sources like the slacks):
    /// `Y_pp` assembled as triplets (duplicates summed) and solved by faer's
    /// sparse LU (fill-reducing column order, partial pivoting), complex.
    pub(super) fn no_load_voltages(&self) -> Result<Vec<C64>> {
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
    fn bpp_stamp(&self, z: C64, ratio: f64, y_sh: C64) -> [f64; 3] {
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
}
