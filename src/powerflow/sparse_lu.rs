//! Sparse LU factors of B' and B'' for the FDPF half-steps.
//!
//! The matrix is factored once per network with faer (dense LU with partial
//! pivoting, rows and columns already in a fill-reducing elimination order), then
//! the factors' non-zeros are kept in CSR form: on a radial feeder ordered
//! leaves-first there is no fill, and each solve is one sweep up and down the tree.

use crate::error::{Error, Result};
use faer::Mat;

/// `P·A = L·U` with `L` unit lower triangular, stored sparse.
#[derive(Debug, Clone)]
pub struct SparseLu {
    /// Dimension.
    pub n: usize,
    /// Row permutation: `(P·b)[i] = b[perm[i]]`; `None` when it is the identity.
    pub perm: Option<Vec<u32>>,
    /// Strictly lower part of L, CSR.
    pub l_ptr: Vec<u32>,
    /// Column indices of L.
    pub l_col: Vec<u32>,
    /// Values of L.
    pub l_val: Vec<f64>,
    /// Strictly upper part of U, CSR.
    pub u_ptr: Vec<u32>,
    /// Column indices of U.
    pub u_col: Vec<u32>,
    /// Values of U.
    pub u_val: Vec<f64>,
    /// `1/U[i][i]`.
    pub u_diag_inv: Vec<f64>,
}

impl SparseLu {
    /// Factor a dense row-major `n×n` matrix.
    pub fn factor(n: usize, a: &[f64]) -> Result<SparseLu> {
        let m = Mat::<f64>::from_fn(n, n, |i, j| a[i * n + j]);
        let lu = m.partial_piv_lu();
        let (l, u) = (lu.L(), lu.U());
        let fwd: Vec<u32> = lu.P().arrays().0.iter().map(|&i| i as u32).collect();
        let mut out = SparseLu {
            n,
            perm: None,
            l_ptr: vec![0],
            l_col: vec![],
            l_val: vec![],
            u_ptr: vec![0],
            u_col: vec![],
            u_val: vec![],
            u_diag_inv: Vec::with_capacity(n),
        };
        for i in 0..n {
            for j in 0..i {
                let v = l[(i, j)];
                if v != 0.0 {
                    out.l_col.push(j as u32);
                    out.l_val.push(v);
                }
            }
            out.l_ptr.push(out.l_col.len() as u32);
            let d = u[(i, i)];
            if !(d.is_finite() && d.abs() > 1e-300) {
                return Err(Error::InvalidNetwork(
                    "the fast-decoupled matrix is singular (a part of the network has no impedance path to a slack bus?)".into(),
                ));
            }
            out.u_diag_inv.push(1.0 / d);
            for j in i + 1..n {
                let v = u[(i, j)];
                if v != 0.0 {
                    out.u_col.push(j as u32);
                    out.u_val.push(v);
                }
            }
            out.u_ptr.push(out.u_col.len() as u32);
        }
        // Pick the permutation convention that reproduces A (checked, not assumed).
        let identity = fwd.iter().enumerate().all(|(i, &p)| p as usize == i);
        if !identity {
            let inv = {
                let mut inv = vec![0u32; n];
                for (i, &p) in fwd.iter().enumerate() {
                    inv[p as usize] = i as u32;
                }
                inv
            };
            let mut best = None;
            for cand in [fwd, inv] {
                out.perm = Some(cand.clone());
                if out.residual(a) < 1e-8 {
                    best = Some(cand);
                    break;
                }
            }
            out.perm = best;
            if out.perm.is_none() {
                return Err(Error::InvalidNetwork("LU factorisation check failed".into()));
            }
        } else if out.residual(a) > 1e-8 {
            return Err(Error::InvalidNetwork("LU factorisation check failed".into()));
        }
        Ok(out)
    }

    /// Relative residual of solving `A x = b` for a fixed `b`.
    fn residual(&self, a: &[f64]) -> f64 {
        let n = self.n;
        let b: Vec<f64> = (0..n).map(|i| 1.0 + (i % 7) as f64 * 0.1).collect();
        let mut x = b.clone();
        let mut tmp = vec![0.0; n];
        self.solve_in_place(&mut x, &mut tmp);
        let mut worst: f64 = 0.0;
        for i in 0..n {
            let mut s = 0.0;
            for j in 0..n {
                s += a[i * n + j] * x[j];
            }
            worst = worst.max((s - b[i]).abs() / b[i].abs());
        }
        worst
    }

    /// Number of stored non-zeros of L and U (diagonal included).
    pub fn nnz(&self) -> usize {
        self.l_val.len() + self.u_val.len() + self.n
    }

    /// Solve `A x = b` in place; `tmp` (length `n`) is used only if there is a permutation.
    #[inline]
    pub fn solve_in_place(&self, x: &mut [f64], tmp: &mut [f64]) {
        let n = self.n;
        if let Some(p) = &self.perm {
            tmp[..n].copy_from_slice(&x[..n]);
            for i in 0..n {
                x[i] = tmp[p[i] as usize];
            }
        }
        // Forward: L y = P b (unit diagonal).
        for i in 0..n {
            let (a, b) = (self.l_ptr[i] as usize, self.l_ptr[i + 1] as usize);
            let mut s = x[i];
            for k in a..b {
                s -= self.l_val[k] * x[self.l_col[k] as usize];
            }
            x[i] = s;
        }
        // Backward: U x = y.
        for i in (0..n).rev() {
            let (a, b) = (self.u_ptr[i] as usize, self.u_ptr[i + 1] as usize);
            let mut s = x[i];
            for k in a..b {
                s -= self.u_val[k] * x[self.u_col[k] as usize];
            }
            x[i] = s * self.u_diag_inv[i];
        }
    }
}
