//! A small builder for conic programs in Clarabel's form
//!
//! `min ½·xᵀPx + qᵀx + c  s.t.  A·x + s = b,  s ∈ K`,
//!
//! with `K` = zero cone (equalities) × non-negative orthant (`≤` rows) × a
//! product of second-order cones `{(t, u): ‖u‖₂ ≤ t}`. Rows are collected by
//! kind and emitted in that order.

use clarabel::algebra::CscMatrix;
use clarabel::solver::{DefaultSettings, DefaultSolver, IPSolver, SolverStatus, SupportedConeT};

/// A sparse linear expression `Σ a_j·x_j + c`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expr {
    pub terms: Vec<(usize, f64)>,
    pub c: f64,
}

impl Expr {
    /// `a·x_j`.
    pub fn var(j: usize, a: f64) -> Expr {
        Expr {
            terms: vec![(j, a)],
            c: 0.0,
        }
    }
    /// A constant.
    pub fn constant(c: f64) -> Expr {
        Expr { terms: vec![], c }
    }
    /// `self + a·x_j`.
    pub fn add(mut self, j: usize, a: f64) -> Expr {
        self.terms.push((j, a));
        self
    }
    /// `self + k·other`.
    pub fn add_scaled(mut self, other: &Expr, k: f64) -> Expr {
        self.terms
            .extend(other.terms.iter().map(|&(j, a)| (j, a * k)));
        self.c += k * other.c;
        self
    }
    /// Value at `x`.
    pub fn eval(&self, x: &[f64]) -> f64 {
        self.c + self.terms.iter().map(|&(j, a)| a * x[j]).sum::<f64>()
    }
}

/// Outcome of one conic solve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConicStatus {
    /// Solved (full or reduced accuracy).
    Solved,
    /// Primal infeasible.
    Infeasible,
    /// Anything else (iteration/time limit, numerical trouble, unbounded).
    Failed,
}

/// A conic program under construction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conic {
    pub n: usize,
    pub q: Vec<f64>,
    /// Upper-triangular entries of `P` (objective `½xᵀPx`).
    pub p: Vec<(usize, usize, f64)>,
    pub constant: f64,
    pub eq: Vec<Expr>,
    pub le: Vec<Expr>,
    pub soc: Vec<Vec<Expr>>,
}

impl Conic {
    /// A new variable with optional bounds; returns its index.
    pub fn var(&mut self, lo: Option<f64>, hi: Option<f64>) -> usize {
        let j = self.n;
        self.n += 1;
        self.q.push(0.0);
        if let Some(l) = lo {
            self.le
                .push(Expr::var(j, -1.0).add_scaled(&Expr::constant(l), 1.0));
        }
        if let Some(h) = hi {
            self.le
                .push(Expr::var(j, 1.0).add_scaled(&Expr::constant(-h), 1.0));
        }
        j
    }
    /// `e = 0`.
    pub fn eq0(&mut self, e: Expr) {
        self.eq.push(e);
    }
    /// `e ≤ 0`.
    pub fn le0(&mut self, e: Expr) {
        self.le.push(e);
    }
    /// `‖(u_1, …)‖₂ ≤ t`.
    pub fn soc(&mut self, t: Expr, u: Vec<Expr>) {
        let mut v = vec![t];
        v.extend(u);
        self.soc.push(v);
    }
    /// Objective `+ a·x_j`.
    pub fn cost(&mut self, j: usize, a: f64) {
        self.q[j] += a;
    }
    /// Objective `+ a·e`.
    pub fn cost_expr(&mut self, e: &Expr, a: f64) {
        for &(j, k) in &e.terms {
            self.q[j] += a * k;
        }
        self.constant += a * e.c;
    }
    /// Objective `+ a·x_j²` (`a ≥ 0`).
    pub fn cost_sq(&mut self, j: usize, a: f64) {
        self.p.push((j, j, 2.0 * a));
    }

    /// Objective value at `x`.
    pub fn objective(&self, x: &[f64]) -> f64 {
        let quad: f64 = self.p.iter().map(|&(i, j, v)| 0.5 * v * x[i] * x[j]).sum();
        self.constant + quad + self.q.iter().zip(x).map(|(a, b)| a * b).sum::<f64>()
    }

    /// Rows and cones in Clarabel's form: `(A triplets, b, cones)`.
    #[allow(clippy::type_complexity)]
    pub fn standard_form(
        &self,
    ) -> (
        Vec<usize>,
        Vec<usize>,
        Vec<f64>,
        Vec<f64>,
        Vec<SupportedConeT<f64>>,
    ) {
        let (mut ri, mut ci, mut vv, mut b) = (vec![], vec![], vec![], vec![]);
        let mut row = 0;
        // A·x + s = b with s = b − A·x: for `e ≤ 0` / `e = 0`, s = −e → A = e's terms, b = −e.c;
        // for a cone component s = e → A = −terms, b = e.c.
        let mut push = |e: &Expr, sign: f64, row: usize, b: &mut Vec<f64>| {
            for &(j, a) in &e.terms {
                ri.push(row);
                ci.push(j);
                vv.push(sign * a);
            }
            b.push(-sign * e.c);
        };
        for e in &self.eq {
            push(e, 1.0, row, &mut b);
            row += 1;
        }
        for e in &self.le {
            push(e, 1.0, row, &mut b);
            row += 1;
        }
        for c in &self.soc {
            for e in c {
                push(e, -1.0, row, &mut b);
                row += 1;
            }
        }
        let mut cones = vec![];
        if !self.eq.is_empty() {
            cones.push(SupportedConeT::ZeroConeT(self.eq.len()));
        }
        if !self.le.is_empty() {
            cones.push(SupportedConeT::NonnegativeConeT(self.le.len()));
        }
        for c in &self.soc {
            cones.push(SupportedConeT::SecondOrderConeT(c.len()));
        }
        (ri, ci, vv, b, cones)
    }

    /// Solve with Clarabel. Returns status, `x` and the objective (with the constant).
    pub fn solve(&self, time_limit_s: f64) -> (ConicStatus, Vec<f64>, f64) {
        let (ri, ci, vv, b, cones) = self.standard_form();
        let m = b.len();
        let a = CscMatrix::new_from_triplets(m, self.n, ri, ci, vv);
        let (pi, pj, pv) = (
            self.p.iter().map(|t| t.0).collect(),
            self.p.iter().map(|t| t.1).collect(),
            self.p.iter().map(|t| t.2).collect(),
        );
        let p = CscMatrix::new_from_triplets(self.n, self.n, pi, pj, pv);
        let settings = DefaultSettings {
            verbose: false,
            time_limit: time_limit_s.max(1e-3),
            max_iter: 300,
            tol_gap_abs: 1e-9,
            tol_gap_rel: 1e-9,
            tol_feas: 1e-9,
            ..DefaultSettings::default()
        };
        let mut solver = match DefaultSolver::new(&p, &self.q, &a, &b, &cones, settings) {
            Ok(s) => s,
            Err(_) => return (ConicStatus::Failed, vec![0.0; self.n], f64::NAN),
        };
        solver.solve();
        let sol = &solver.solution;
        let status = match sol.status {
            SolverStatus::Solved | SolverStatus::AlmostSolved => ConicStatus::Solved,
            SolverStatus::PrimalInfeasible | SolverStatus::AlmostPrimalInfeasible => {
                ConicStatus::Infeasible
            }
            _ => ConicStatus::Failed,
        };
        let x = sol.x.clone();
        let obj = self.objective(&x);
        (status, x, obj)
    }
}
