//! Best-first branch and bound over the tap positions and capacitor steps.
//!
//! Each node is the conic relaxation of `Model::build` with integer bounds
//! `lo ≤ n ≤ hi`; its optimum is a lower bound for every integer point in the
//! box. The open node with the lowest bound is expanded first (best first);
//! a node whose bound is not below the incumbent by more than the gap
//! tolerance is pruned. Branching: the most fractional integer variable,
//! `n ≤ ⌊v⌋` and `n ≥ ⌈v⌉`. Incumbents: every integral relaxation, and the
//! relaxation rounded (taps to the position whose ratio is nearest the
//! relaxed one) with all integers fixed (one conic solve) at the root and
//! every `ROUND_EVERY` nodes, and the schedule that holds every tap and step
//! at its initial value. Clarabel is an
//! interior-point method and cannot be warm-started from a primal point; a
//! child starts from its parent's bound (for pruning and ordering) and the
//! rounding heuristic gives an incumbent before the search, which is what
//! makes pruning work.
//!
//! Status: `optimal` when the tree is exhausted or the relative gap
//! `(incumbent − bound)/max(|incumbent|, 1)` is at most 1e-6; `gap` when the
//! caller's larger gap tolerance stopped it; `time_limit` when time ran out
//! (the best plan so far and its proven gap are reported); `infeasible` when
//! the root relaxation is infeasible (then every integer choice is).

use super::conic::ConicStatus;
use super::model::{Layout, Model};
use crate::error::{Error, Result};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

const INT_TOL: f64 = 1e-5;
const ROUND_EVERY: usize = 10;
/// Relative gap below which a search counts as optimal.
pub const OPTIMAL_GAP: f64 = 1e-6;

/// How a solve ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Proven optimal (relative gap ≤ 1e-6).
    Optimal,
    /// Stopped at the requested relative gap.
    Gap,
    /// Time limit reached with a feasible plan; the gap is what was proven.
    TimeLimit,
    /// No plan satisfies the constraints.
    Infeasible,
    /// Only the continuous relaxation was solved (integers not enforced).
    Relaxation,
}

/// A solved node.
#[derive(Debug, Clone)]
pub(crate) struct Sol {
    pub x: Vec<f64>,
    pub obj: f64,
    pub reg: f64,
    pub lay: Layout,
}

/// The outcome of a search.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub status: Status,
    pub best: Sol,
    pub bound: f64,
    pub root_obj: f64,
    pub nodes: usize,
}

/// Solve one node. `Ok(None)`: infeasible.
pub(crate) fn solve_node(m: &Model, lo: &[f64], hi: &[f64], time_left: f64) -> Result<Option<Sol>> {
    let (c, lay) = m.build(lo, hi);
    let (st, x, obj) = c.solve(time_left);
    match st {
        ConicStatus::Solved => {
            let reg = lay.reg.iter().map(|&(j, w)| w * x[j]).sum();
            Ok(Some(Sol { x, obj, reg, lay }))
        }
        ConicStatus::Infeasible => Ok(None),
        ConicStatus::Failed => Err(Error::InvalidInput(format!(
            "the conic solver (Clarabel) did not converge on a node ({} variables, {} cones); time left {time_left:.1} s",
            c.n,
            c.soc.len()
        ))),
    }
}

/// Integer values of a node's solution, hour-major.
pub(crate) fn int_values(m: &Model, s: &Sol) -> Vec<f64> {
    let mut v = vec![];
    for h in 0..m.hours() {
        v.extend(s.lay.tap_pos[h].iter().map(|&j| s.x[j]));
        v.extend(s.lay.cap_step[h].iter().map(|&j| s.x[j]));
    }
    v
}

const PRODUCT_TOL: f64 = 1e-7;

/// The rounding heuristic's integers: for a tap, the position whose `K(n)`
/// is nearest the relaxed `K` (the voltages follow `K`, not `n`); for a
/// capacitor, the nearest step.
pub(crate) fn rounded(m: &Model, s: &Sol) -> Vec<f64> {
    let x = &s.x;
    let mut v = vec![];
    for h in 0..m.hours() {
        for (j, tm) in m.taps.iter().enumerate() {
            let k = x[s.lay.tap_mc[h][j].0];
            let n = (tm.min..=tm.max)
                .min_by(|&a, &b| (tm.k_at(a) - k).abs().total_cmp(&(tm.k_at(b) - k).abs()))
                .unwrap_or(tm.min);
            v.push(n as f64);
        }
        v.extend(s.lay.cap_step[h].iter().map(|&j| x[j].round()));
    }
    v
}

/// Per integer variable (hour-major): how far the relaxation is from the
/// exact model there: `|K − K(round n)| + |u − K·w|` for a tap,
/// `|u − s·w|` for a capacitor. Zero (with `n` integral) means the relaxed
/// point is a point of the mixed-integer model.
pub(crate) fn inconsistency(m: &Model, s: &Sol) -> Vec<f64> {
    let x = &s.x;
    let mut d = vec![];
    for h in 0..m.hours() {
        for (j, tm) in m.taps.iter().enumerate() {
            let (k, w, u) = s.lay.tap_mc[h][j];
            let n = x[s.lay.tap_pos[h][j]]
                .round()
                .clamp(tm.min as f64, tm.max as f64) as i64;
            d.push((x[k] - tm.k_at(n)).abs() + (x[u] - x[k] * x[w]).abs());
        }
        for &(a, w, u) in &s.lay.cap_mc[h] {
            d.push((x[u] - x[a] * x[w]).abs());
        }
    }
    d
}

struct Open {
    bound: f64,
    lo: Vec<f64>,
    hi: Vec<f64>,
}
impl PartialEq for Open {
    fn eq(&self, o: &Self) -> bool {
        self.bound == o.bound
    }
}
impl Eq for Open {}
impl PartialOrd for Open {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Open {
    // BinaryHeap is a max-heap: the lowest bound first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.bound.total_cmp(&self.bound)
    }
}

fn rel_gap(inc: f64, bound: f64) -> f64 {
    ((inc - bound) / inc.abs().max(1.0)).max(0.0)
}

/// Best-first branch and bound. `gap_tol`: relative gap at which to stop.
pub(crate) fn branch_and_bound(
    m: &Model,
    time_limit_s: f64,
    gap_tol: f64,
    relax_only: bool,
) -> Result<Outcome> {
    let t0 = Instant::now();
    let left = || (time_limit_s - t0.elapsed().as_secs_f64()).max(0.0);
    let (lo0, hi0) = m.int_bounds();
    // The root is solved whatever the time left (a plan needs it).
    let Some(root) = solve_node(m, &lo0, &hi0, left().max(600.0))? else {
        return Err(Error::InvalidInput(
            "infeasible: no schedule satisfies the constraints (the root relaxation is infeasible; with --band hard, the voltage band cannot be held)".into(),
        ));
    };
    let root_obj = root.obj;
    if relax_only || lo0.is_empty() {
        return Ok(Outcome {
            status: if lo0.is_empty() {
                Status::Optimal
            } else {
                Status::Relaxation
            },
            bound: root.obj,
            best: root,
            root_obj,
            nodes: 1,
        });
    }
    let mut nodes = 1;
    let mut failed = 0;
    let mut best: Option<Sol> = None;
    let try_round = |s: &Sol, best: &mut Option<Sol>, nodes: &mut usize| -> Result<()> {
        let v = rounded(m, s);
        *nodes += 1;
        // An incumbent is needed before anything else: give it the time it takes.
        let t = if best.is_none() {
            left().max(600.0)
        } else {
            left().max(1e-3)
        };
        if let Some(r) = solve_node(m, &v, &v, t).ok().flatten() {
            if best.as_ref().is_none_or(|b| r.obj < b.obj) {
                *best = Some(r);
            }
        }
        Ok(())
    };
    let mut heap = BinaryHeap::new();
    let process = |s: Sol,
                   lo: Vec<f64>,
                   hi: Vec<f64>,
                   best: &mut Option<Sol>,
                   heap: &mut BinaryHeap<Open>| {
        let v = int_values(m, &s);
        let d = inconsistency(m, &s);
        // Most fractional variable; failing that, the integral one whose
        // relaxed product (K·w, s·w) or K(n) is furthest from exact.
        let mut pick: Option<(usize, f64)> = None;
        for (i, &x) in v.iter().enumerate() {
            let f = (x - x.round()).abs();
            if f > INT_TOL && pick.is_none_or(|(_, pf)| f > pf) {
                pick = Some((i, f));
            }
        }
        if pick.is_none() {
            for (i, &e) in d.iter().enumerate() {
                if e > PRODUCT_TOL && pick.is_none_or(|(_, pe)| e > pe) {
                    pick = Some((i, e));
                }
            }
        }
        match pick {
            None => {
                if best.as_ref().is_none_or(|b| s.obj < b.obj) {
                    *best = Some(s);
                }
            }
            Some((i, _)) => {
                let x = v[i];
                let (fl, ce) = if (x - x.round()).abs() > INT_TOL {
                    (x.floor(), x.ceil())
                } else if x.round() < hi[i] {
                    (x.round(), x.round() + 1.0)
                } else {
                    (x.round() - 1.0, x.round())
                };
                let mut hi_l = hi.clone();
                hi_l[i] = fl;
                let mut lo_r = lo.clone();
                lo_r[i] = ce;
                heap.push(Open {
                    bound: s.obj,
                    lo: lo.clone(),
                    hi: hi_l,
                });
                heap.push(Open {
                    bound: s.obj,
                    lo: lo_r,
                    hi,
                });
            }
        }
    };
    try_round(&root, &mut best, &mut nodes)?;
    // Also the schedule that holds every tap and step where it starts.
    let hold: Vec<f64> = (0..m.hours())
        .flat_map(|_| {
            m.taps
                .iter()
                .map(|t| t.init)
                .chain(m.caps.iter().map(|c| c.init))
                .collect::<Vec<_>>()
        })
        .collect();
    nodes += 1;
    if let Some(r) = solve_node(m, &hold, &hold, left().max(1e-3)).ok().flatten() {
        if best.as_ref().is_none_or(|b| r.obj < b.obj) {
            best = Some(r);
        }
    }
    process(root, lo0, hi0, &mut best, &mut heap);
    let mut status = Status::Optimal;
    let mut since_round = 0;
    while let Some(open) = heap.pop() {
        let inc = best.as_ref().map_or(f64::INFINITY, |b| b.obj);
        let g = rel_gap(inc, open.bound);
        if g <= gap_tol.max(OPTIMAL_GAP) {
            // Every open node is at least this bound: done.
            if gap_tol > OPTIMAL_GAP && g > OPTIMAL_GAP {
                status = Status::Gap;
            }
            heap.push(open);
            break;
        }
        if left() <= 0.0 {
            status = Status::TimeLimit;
            heap.push(open);
            break;
        }
        nodes += 1;
        match solve_node(m, &open.lo, &open.hi, left().max(1e-3)) {
            Ok(Some(s)) => {
                if s.obj < inc {
                    since_round += 1;
                    if since_round >= ROUND_EVERY {
                        since_round = 0;
                        try_round(&s, &mut best, &mut nodes)?;
                    }
                    process(s, open.lo, open.hi, &mut best, &mut heap);
                }
            }
            Ok(None) => {}
            Err(_) if left() <= 0.0 => {
                status = Status::TimeLimit;
                heap.push(open);
                break;
            }
            Err(_) => {
                // A node the solver could not settle cannot be pruned on a bound:
                // keep its parent's bound in the final bound and go on.
                failed += 1;
                heap.push(Open {
                    bound: open.bound,
                    lo: open.lo,
                    hi: open.hi,
                });
                if failed > 3 {
                    status = Status::TimeLimit;
                    break;
                }
            }
        }
    }
    let Some(best) = best else {
        return Err(Error::InvalidInput(if status == Status::TimeLimit {
            format!("time limit ({time_limit_s} s) reached before any integer-feasible schedule was found; raise --time-limit")
        } else {
            "infeasible: no integer choice of taps and capacitor steps satisfies the constraints"
                .into()
        }));
    };
    let bound = heap.iter().map(|o| o.bound).fold(best.obj, f64::min);
    if status == Status::Optimal && failed > 0 {
        status = Status::Gap;
    }
    Ok(Outcome {
        status,
        bound,
        best,
        root_obj,
        nodes,
    })
}
