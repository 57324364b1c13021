//! Sparse LU factors of B' and B'' for the FDPF half-steps.
//!
//! A static no-pivot pattern is computed once per network (symbolic elimination
//! in the plan's fill-reducing order: on a radial feeder ordered leaves-first
//! there is no fill), so that a copy whose taps change B'' can refactor it in
//! O(nnz) without allocating. The matrices are diagonally dominant, so no
//! pivoting is needed; every factorisation is checked against the assembled
//! matrix, and a test checks the solves against faer's dense LU.
//!
//! Factor values are kept in the classic row-wise form (`l_val`, `u_val`,
//! `u_diag_inv`, which the GPU shader mirrors) and, for the CPU, in a flat form
//! where U is scaled by its inverse diagonal (`U' = D⁻¹U`, unit upper), so that
//! `x = U'⁻¹·(D⁻¹·L⁻¹·b)` is two flat loops over the non-zeros.

use crate::error::{Error, Result};

/// Where a matrix entry `(i, j)` lives in a [`SparseLu`]'s static pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Strictly lower: index into the lower values.
    L(usize),
    /// Diagonal: row index.
    D(usize),
    /// Strictly upper: index into the upper values.
    U(usize),
}

/// Values laid out on a [`SparseLu`]'s pattern: either a matrix (`l`, `d`, `u`
/// its entries) or its factors (`l` of L, `d = 1/U_ii`, `u` of U).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PatternValues {
    /// Strictly lower entries.
    pub(crate) l: Vec<f64>,
    /// Diagonal entries (matrix) or inverse pivots (factors).
    pub(crate) d: Vec<f64>,
    /// Strictly upper entries.
    pub(crate) u: Vec<f64>,
}

/// A static sparsity pattern with its row-wise (CSR) and flat (row, col) forms,
/// plus the factor values of the network's own matrix.
#[derive(Debug, Clone, Default)]
pub(crate) struct SparseLu {
    /// Dimension.
    pub(crate) n: usize,
    /// CSR row pointers of the strictly lower part.
    pub(crate) l_ptr: Vec<u32>,
    /// Columns of the strictly lower part (ascending within a row).
    pub(crate) l_col: Vec<u32>,
    /// Row of each strictly lower entry.
    pub(crate) l_row: Vec<u32>,
    /// CSR row pointers of the strictly upper part.
    pub(crate) u_ptr: Vec<u32>,
    /// Columns of the strictly upper part.
    pub(crate) u_col: Vec<u32>,
    /// Row of each strictly upper entry.
    pub(crate) u_row: Vec<u32>,
    /// L values of the network's own matrix.
    pub(crate) l_val: Vec<f64>,
    /// U values (unscaled) of the network's own matrix.
    pub(crate) u_val: Vec<f64>,
    /// `1/U_ii` of the network's own matrix.
    pub(crate) u_diag_inv: Vec<f64>,
    /// `D⁻¹U` of the network's own matrix (flat CPU solve).
    pub(crate) u_scaled: Vec<f64>,
}

impl SparseLu {
    /// Symbolic no-pivot LU of an `n×n` matrix whose off-diagonal entries are
    /// `entries` (mirrored: the pattern is structurally symmetric), fill included.
    pub(crate) fn symbolic(n: usize, entries: &[(usize, usize)]) -> SparseLu {
        use std::collections::BTreeSet;
        let mut rows: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        for &(i, j) in entries {
            if i != j {
                rows[i].insert(j);
                rows[j].insert(i);
            }
        }
        let mut out = SparseLu {
            n,
            l_ptr: vec![0],
            u_ptr: vec![0],
            ..Default::default()
        };
        let mut upper: Vec<Vec<usize>> = Vec::with_capacity(n);
        for (i, row) in rows.iter().enumerate() {
            let mut s = row.clone();
            let mut cur = 0;
            while let Some(&j) = s.range(cur..i).next() {
                for &c in &upper[j] {
                    if c != i {
                        s.insert(c);
                    }
                }
                cur = j + 1;
            }
            for &j in s.range(..i) {
                out.l_col.push(j as u32);
                out.l_row.push(i as u32);
            }
            out.l_ptr.push(out.l_col.len() as u32);
            let up: Vec<usize> = s.range(i + 1..).copied().collect();
            for &j in &up {
                out.u_col.push(j as u32);
                out.u_row.push(i as u32);
            }
            out.u_ptr.push(out.u_col.len() as u32);
            upper.push(up);
        }
        out.l_val = vec![0.0; out.l_col.len()];
        out.u_val = vec![0.0; out.u_col.len()];
        out.u_scaled = vec![0.0; out.u_col.len()];
        out.u_diag_inv = vec![0.0; n];
        out
    }

    /// Factor a dense row-major matrix on the pattern of its non-zeros (tests).
    #[cfg(test)]
    pub(crate) fn factor_dense(n: usize, a: &[f64]) -> Result<SparseLu> {
        let entries: Vec<(usize, usize)> = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .filter(|&(i, j)| i != j && a[i * n + j] != 0.0)
            .collect();
        let mut lu = SparseLu::symbolic(n, &entries);
        let mut m = lu.zero_values();
        for i in 0..n {
            m.d[i] = a[i * n + i];
            for k in lu.l_ptr[i] as usize..lu.l_ptr[i + 1] as usize {
                m.l[k] = a[i * n + lu.l_col[k] as usize];
            }
            for k in lu.u_ptr[i] as usize..lu.u_ptr[i + 1] as usize {
                m.u[k] = a[i * n + lu.u_col[k] as usize];
            }
        }
        lu.factor_own(&m)?;
        Ok(lu)
    }

    /// Factor the matrix `m` (on this pattern) as this factor's own values and
    /// check the factors against `m`: the solve of `m·x = b` for a fixed `b`
    /// must leave a relative residual below 1e-8.
    pub(crate) fn factor_own(&mut self, m: &PatternValues) -> Result<()> {
        let mut f = self.zero_values();
        let mut work = vec![0.0; self.n];
        if !self.factor_values(m, &mut f, &mut work) {
            return Err(Error::InvalidNetwork(
                "a fast-decoupled matrix is singular (a part of the network has no impedance path to a slack bus?)".into(),
            ));
        }
        let mut us = vec![0.0; f.u.len()];
        scale_upper(self, &f, &mut us);
        self.u_scaled = us;
        self.l_val = f.l;
        self.u_val = f.u;
        self.u_diag_inv = f.d;
        if self.n > 0 && self.residual(m) > 1e-8 {
            return Err(Error::InvalidNetwork(
                "LU factorisation check failed".into(),
            ));
        }
        Ok(())
    }

    /// The slot of entry `(i, j)`, if it is in the pattern.
    pub(crate) fn slot(&self, i: usize, j: usize) -> Option<Slot> {
        use std::cmp::Ordering::*;
        match j.cmp(&i) {
            Equal => Some(Slot::D(i)),
            Less => (self.l_ptr[i] as usize..self.l_ptr[i + 1] as usize)
                .find(|&k| self.l_col[k] as usize == j)
                .map(Slot::L),
            Greater => (self.u_ptr[i] as usize..self.u_ptr[i + 1] as usize)
                .find(|&k| self.u_col[k] as usize == j)
                .map(Slot::U),
        }
    }

    /// Zero values on this pattern.
    pub(crate) fn zero_values(&self) -> PatternValues {
        PatternValues {
            l: vec![0.0; self.l_col.len()],
            d: vec![0.0; self.n],
            u: vec![0.0; self.u_col.len()],
        }
    }

    /// Number of stored non-zeros of L and U (diagonal included).
    pub(crate) fn nnz(&self) -> usize {
        self.l_col.len() + self.u_col.len() + self.n
    }

    /// Numeric no-pivot LU (up-looking, row by row) of matrix `a` into factor
    /// values `out`. `work` has length `n`. Allocates nothing. Returns false if
    /// a pivot is zero or not finite.
    pub(crate) fn factor_values(
        &self,
        a: &PatternValues,
        out: &mut PatternValues,
        work: &mut [f64],
    ) -> bool {
        for i in 0..self.n {
            let (l0, l1) = (self.l_ptr[i] as usize, self.l_ptr[i + 1] as usize);
            let (u0, u1) = (self.u_ptr[i] as usize, self.u_ptr[i + 1] as usize);
            for k in l0..l1 {
                work[self.l_col[k] as usize] = a.l[k];
            }
            work[i] = a.d[i];
            for k in u0..u1 {
                work[self.u_col[k] as usize] = a.u[k];
            }
            for k in l0..l1 {
                let j = self.l_col[k] as usize;
                let lij = work[j] * out.d[j];
                out.l[k] = lij;
                for m in self.u_ptr[j] as usize..self.u_ptr[j + 1] as usize {
                    work[self.u_col[m] as usize] -= lij * out.u[m];
                }
            }
            let d = work[i];
            if !(d.is_finite() && d.abs() > 1e-300) {
                return false;
            }
            out.d[i] = 1.0 / d;
            for k in u0..u1 {
                out.u[k] = work[self.u_col[k] as usize];
            }
        }
        true
    }

    /// Solve `A x = b` in place with this factor's own values.
    #[inline]
    pub(crate) fn solve_in_place(&self, x: &mut [f64]) {
        self.solve_flat(&self.l_val, &self.u_scaled, &self.u_diag_inv, x);
    }

    /// Solve `A x = b` in place with flat factor values: `l` of L, `u_scaled`
    /// of `D⁻¹U` (see [`scale_upper`]), `d` = `1/U_ii`.
    ///
    /// Crate-internal: the unchecked indexing relies on the pattern's rows and
    /// columns being `< n`, which holds because only [`SparseLu::symbolic`]
    /// writes them (the fields are not visible outside the crate).
    ///
    /// `x_r −= v·x_c` is one fused multiply-add (`(−v)·x_c + x_r`, rounded
    /// once), as in the CPU lanes' solve; inlined so that the kernels'
    /// instruction set makes it one instruction.
    #[inline(always)]
    pub(crate) fn solve_flat(&self, l: &[f64], u_scaled: &[f64], d: &[f64], x: &mut [f64]) {
        let n = self.n;
        assert!(
            x.len() >= n
                && l.len() == self.l_col.len()
                && u_scaled.len() == self.u_col.len()
                && d.len() == n
        );
        // Forward, unit L, in row order: x_r −= L_rc·x_c with c < r already final.
        for ((val, &r), &c) in l.iter().zip(&self.l_row).zip(&self.l_col) {
            // SAFETY: rows and columns of the pattern are < n <= x.len() (built by `symbolic`).
            unsafe {
                let xc = *x.get_unchecked(c as usize);
                let xr = x.get_unchecked_mut(r as usize);
                *xr = (-val).mul_add(xc, *xr);
            }
        }
        for (xi, d) in x[..n].iter_mut().zip(d) {
            *xi *= d;
        }
        // Backward, unit U' = D⁻¹U, rows descending: x_r −= U'_rc·x_c with c > r final.
        for ((val, &r), &c) in u_scaled.iter().zip(&self.u_row).zip(&self.u_col).rev() {
            // SAFETY: as above.
            unsafe {
                let xc = *x.get_unchecked(c as usize);
                let xr = x.get_unchecked_mut(r as usize);
                *xr = (-val).mul_add(xc, *xr);
            }
        }
    }

    /// Worst relative residual of solving `A x = b` for a fixed `b`, where `A` is
    /// the matrix `a` on this pattern: `max_i |(A·x − b)_i| / |b_i|`, in O(nnz).
    pub(crate) fn residual(&self, a: &PatternValues) -> f64 {
        let n = self.n;
        let b: Vec<f64> = (0..n).map(|i| 1.0 + (i % 7) as f64 * 0.1).collect();
        let mut x = b.clone();
        self.solve_in_place(&mut x);
        let mut ax: Vec<f64> = (0..n).map(|i| a.d[i] * x[i]).collect();
        for ((v, &r), &c) in a.l.iter().zip(&self.l_row).zip(&self.l_col) {
            ax[r as usize] += v * x[c as usize];
        }
        for ((v, &r), &c) in a.u.iter().zip(&self.u_row).zip(&self.u_col) {
            ax[r as usize] += v * x[c as usize];
        }
        let worst = (0..n)
            .map(|i| (ax[i] - b[i]).abs() / b[i].abs())
            // NaN-propagating max: a NaN solution fails the check.
            .fold(0.0, |w, e| if e.is_nan() || e > w { e } else { w });
        if worst.is_nan() {
            f64::INFINITY
        } else {
            worst
        }
    }
}

/// `D⁻¹U` of factor values `f` on `lu`'s pattern, written to `out`; returns `out`.
pub(crate) fn scale_upper<'a>(lu: &SparseLu, f: &PatternValues, out: &'a mut [f64]) -> &'a [f64] {
    for ((o, u), &r) in out.iter_mut().zip(&f.u).zip(&lu.u_row) {
        *o = u * f.d[r as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The static-pattern LU solves like faer's dense LU, with and without fill.
    #[test]
    fn matches_faer_dense_lu() {
        use faer::linalg::solvers::Solve;
        let n = 9;
        // A meshed, diagonally dominant matrix (fill appears).
        let mut a = vec![0.0; n * n];
        let edges = [
            (0, 1),
            (1, 2),
            (2, 3),
            (3, 0),
            (4, 5),
            (5, 6),
            (6, 7),
            (7, 8),
            (8, 4),
            (2, 6),
            (1, 8),
        ];
        for (k, &(i, j)) in edges.iter().enumerate() {
            let b = 1.0 + k as f64 * 0.37;
            a[i * n + i] += b;
            a[j * n + j] += b;
            a[i * n + j] -= b;
            a[j * n + i] -= b;
        }
        a[0] += 2.0; // a path to "ground"
        a[5 * n + 5] += 0.5;
        let lu = SparseLu::factor_dense(n, &a).unwrap();
        let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin() + 0.1).collect();
        let mut x = b.clone();
        lu.solve_in_place(&mut x);
        let m = faer::Mat::<f64>::from_fn(n, n, |i, j| a[i * n + j]);
        let rhs = faer::Mat::<f64>::from_fn(n, 1, |i, _| b[i]);
        let y = m.partial_piv_lu().solve(&rhs);
        for i in 0..n {
            assert!(
                (x[i] - y[(i, 0)]).abs() < 1e-12,
                "x[{i}] = {} vs faer {}",
                x[i],
                y[(i, 0)]
            );
        }
        assert!(
            lu.nnz() > n + 2 * edges.len(),
            "fill expected on a meshed pattern"
        );
    }
}
