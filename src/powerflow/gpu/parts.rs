//! The GPU backend driven from several host threads
//! ([`SolverOptions::gpu_threads`](crate::powerflow::SolverOptions::gpu_threads)):
//! the batch in parts of consecutive copies, each a [`GpuBatch`] with its own
//! device buffers (and its own chunks), each driven by its own thread of a
//! pool. A part's thread prepares, uploads, submits, waits and unpacks its
//! solves on its own, and the control loop runs on each part to its end
//! (`ControlLoop::run`, as on the CPU backend's shards), so the parts' host
//! work runs on several cores at once and overlaps the device's work on the
//! other parts: while one part's solve is on the device, another's thread
//! prepares its next one or reads its last back.
//!
//! The batch's inputs and results live here, in whole-batch tables, as the
//! [`PowerFlow`] trait gives them: each part's thread copies its rows of the
//! inputs into its part before it works (every set-point after
//! [`PowerFlow::inputs_mut`], only taps and steps after
//! [`PowerFlow::controls_mut`]), and its part's results (the asked tables
//! of [`PowerFlow::limit_results`], or all) into its rows after. Copies are
//! independent on the device, so the results are those of one [`GpuBatch`]
//! bit for bit.

use super::GpuBatch;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::powerflow::batch::{
    even_bounds, split_rows, split_slice, BatchInputs, BatchResults, HostTime, PowerFlow,
    ResultColumns, SolveSummary,
};
use crate::powerflow::Plan;
use ndarray::{s, Array2, ArrayViewMut2};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// A batch on the GPU in parts, one host thread each.
pub struct GpuParts {
    parts: Vec<GpuBatch>,
    /// Each part's first copy, then the batch (`even_bounds`).
    bounds: Vec<usize>,
    /// The copies of each part (`bounds`' windows).
    ranges: Vec<Range<usize>>,
    pool: Arc<rayon::ThreadPool>,
    inputs: BatchInputs,
    /// Every part's results, gathered after each solve: the asked tables
    /// (`limit`) and the convergence columns current.
    results: BatchResults,
    /// The complete tables, gathered from the parts on the first call to
    /// `results` while `limit` is set.
    full: OnceLock<BatchResults>,
    /// The tables gathered after a solve ([`BatchResults::tables`] indices;
    /// `None`: every table).
    limit: Option<Vec<usize>>,
    /// Set-points other than taps and steps changed since the parts last took
    /// their rows (`inputs_mut`).
    setpoints: bool,
    /// Taps or steps changed since then (`controls_mut`).
    controls: bool,
    /// The copying of rows in and out, on the parts' threads (`prepare_s` and `unpack_s`).
    host: HostTime,
}

/// What one part's thread did besides its work: seconds copying rows in and out.
struct Copying {
    into_part: f64,
    out_of_part: f64,
}

impl GpuParts {
    /// `batch` copies in `threads` parts (at most one per copy) on `ctx`.
    pub fn on(ctx: Arc<GpuContext>, plan: Arc<Plan>, batch: usize, threads: usize) -> Result<Self> {
        if batch == 0 {
            return Err(Error::InvalidInput(
                "a batch needs at least one copy".into(),
            ));
        }
        let bounds = even_bounds(batch, threads.clamp(1, batch));
        let ranges: Vec<Range<usize>> = bounds.windows(2).map(|w| w[0]..w[1]).collect();
        let parts = (ranges.iter())
            .map(|r| GpuBatch::on(ctx.clone(), plan.clone(), r.len(), usize::MAX))
            .collect::<Result<Vec<_>>>()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(ranges.len())
            .thread_name(|i| format!("powergrid-gpu-{i}"))
            .build()
            .map_err(|e| Error::Gpu(format!("cannot start the GPU backend's threads: {e}")))?;
        Ok(GpuParts {
            inputs: BatchInputs::from_network(&plan.net, batch),
            results: BatchResults::zeros(&plan.net, batch),
            full: OnceLock::new(),
            limit: None,
            setpoints: true,
            controls: true,
            host: HostTime::default(),
            parts,
            bounds,
            ranges,
            pool: Arc::new(pool),
        })
    }

    /// The copies of each part.
    pub(crate) fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// Run `f(i, part)` for every part in parallel, each on its own thread of
    /// the pool, after the part has taken its rows of the inputs; then its
    /// results go into its rows of the whole batch's (the asked tables), and
    /// its taps and steps (which `f` may have moved) into the inputs. The
    /// inputs are checked first, for the whole batch (an error names the
    /// copy by its index in the batch); the parts' first solves do not check
    /// them again.
    pub(crate) fn run_parts<R: Send>(
        &mut self,
        f: impl Fn(usize, &mut dyn PowerFlow) -> R + Sync,
    ) -> Result<Vec<R>> {
        let (setpoints, controls) = (self.setpoints, self.controls);
        let t = super::thread_cpu_s();
        let plan = self.parts[0].plan.clone();
        (self.pool).install(|| super::check_inputs(&plan, &self.inputs, setpoints))?;
        self.host.check_s += super::thread_cpu_s() - t;
        self.setpoints = false;
        self.controls = false;
        self.full = OnceLock::new();
        let tables: Vec<usize> = match &self.limit {
            Some(t) => t.clone(),
            None => (0..15).collect(),
        };
        let mut outs = Rows::split(&mut self.results, &tables, &self.bounds);
        let inputs = &self.inputs;
        let done: Vec<(R, Copying)> = self.pool.install(|| {
            (self.parts.par_iter_mut())
                .zip(self.ranges.par_iter())
                .zip(outs.par_iter_mut())
                .enumerate()
                .map(|(i, ((part, r), out))| {
                    let t = super::thread_cpu_s();
                    if setpoints {
                        part.inputs_mut().assign_rows(inputs, r.clone());
                    } else if controls {
                        let (taps, steps) = part.controls_mut();
                        taps.assign(&inputs.trafo_tap_pos.slice(s![r.clone(), ..]));
                        steps.assign(&inputs.shunt_step.slice(s![r.clone(), ..]));
                    }
                    part.checked = true;
                    let into_part = super::thread_cpu_s() - t;
                    let value = f(i, part);
                    let t = super::thread_cpu_s();
                    out.take(part.limited_results());
                    let out_of_part = super::thread_cpu_s() - t;
                    let copying = Copying {
                        into_part,
                        out_of_part,
                    };
                    (value, copying)
                })
                .collect()
        });
        let t = super::thread_cpu_s();
        for (part, r) in self.parts.iter().zip(&self.ranges) {
            let inp = part.inputs();
            let rows = s![r.clone(), ..];
            self.inputs
                .trafo_tap_pos
                .slice_mut(rows)
                .assign(&inp.trafo_tap_pos);
            self.inputs
                .shunt_step
                .slice_mut(rows)
                .assign(&inp.shunt_step);
        }
        self.host.unpack_s += super::thread_cpu_s() - t;
        Ok((done.into_iter())
            .map(|(value, c)| {
                self.host.prepare_s += c.into_part;
                self.host.unpack_s += c.out_of_part;
                value
            })
            .collect())
    }

    /// The first error of the parts', or the whole batch's summary.
    fn solved(&self, out: Vec<Result<SolveSummary>>) -> Result<SolveSummary> {
        for r in out {
            r?;
        }
        Ok(crate::powerflow::cpu::summary(&self.results))
    }
}

/// One part's rows of the whole batch's results (the gathered tables).
struct Rows<'a> {
    converged: &'a mut [bool],
    iterations: &'a mut [u32],
    max_mismatch_pu: &'a mut [f64],
    tables: Vec<(usize, ArrayViewMut2<'a, f64>)>,
}

impl<'a> Rows<'a> {
    /// `results` cut at `bounds` (one `Rows` per part), with its `tables`.
    fn split(results: &'a mut BatchResults, tables: &[usize], bounds: &[usize]) -> Vec<Rows<'a>> {
        let (converged, iterations, mismatch, all) = results.columns_and_tables_mut();
        let mut cut: Vec<_> = (all.into_iter().enumerate())
            .filter(|(i, _)| tables.contains(i))
            .map(|(i, t)| (i, split_rows(t.view_mut(), bounds).into_iter()))
            .collect();
        (split_slice(converged, 1, bounds).into_iter())
            .zip(split_slice(iterations, 1, bounds))
            .zip(split_slice(mismatch, 1, bounds))
            .map(|((converged, iterations), max_mismatch_pu)| Rows {
                converged,
                iterations,
                max_mismatch_pu,
                tables: (cut.iter_mut())
                    .map(|(i, rows)| (*i, rows.next().expect("rows per part")))
                    .collect(),
            })
            .collect()
    }

    /// The part's results into these rows.
    fn take(&mut self, from: &BatchResults) {
        self.converged.copy_from_slice(&from.converged);
        self.iterations.copy_from_slice(&from.iterations);
        self.max_mismatch_pu.copy_from_slice(&from.max_mismatch_pu);
        let part = from.tables();
        for (i, rows) in &mut self.tables {
            rows.assign(part[*i].1);
        }
    }
}

impl PowerFlow for GpuParts {
    fn plan(&self) -> Option<&Plan> {
        self.parts[0].plan()
    }
    fn describe(&self) -> String {
        let d = self.parts[0].describe();
        let d = d.strip_suffix(')').unwrap_or(&d);
        format!("{d}, {} host threads)", self.parts.len())
    }
    fn batch(&self) -> usize {
        self.results.batch()
    }
    fn inputs(&self) -> &BatchInputs {
        &self.inputs
    }
    fn inputs_mut(&mut self) -> &mut BatchInputs {
        self.setpoints = true;
        &mut self.inputs
    }
    fn controls_mut(&mut self) -> (&mut Array2<f64>, &mut Array2<f64>) {
        self.controls = true;
        (&mut self.inputs.trafo_tap_pos, &mut self.inputs.shunt_step)
    }
    fn solve(&mut self) -> Result<SolveSummary> {
        let out = self.run_parts(|_, part| part.solve())?;
        self.solved(out)
    }
    fn solve_active(&mut self, active: &[bool]) -> Result<SolveSummary> {
        crate::powerflow::batch::check_active(active, self.batch())?;
        let ranges = self.ranges.clone();
        let out = self.run_parts(|i, part| part.solve_active(&active[ranges[i].clone()]))?;
        self.solved(out)
    }
    fn results(&self) -> &BatchResults {
        if self.limit.is_none() {
            return &self.results;
        }
        self.full.get_or_init(|| {
            let mut full = self.results.clone();
            for (part, r) in self.parts.iter().zip(&self.ranges) {
                let from = part.results();
                let (converged, iterations, mismatch, tables) = full.columns_and_tables_mut();
                converged[r.clone()].copy_from_slice(&from.converged);
                iterations[r.clone()].copy_from_slice(&from.iterations);
                mismatch[r.clone()].copy_from_slice(&from.max_mismatch_pu);
                for (to, (_, from)) in tables.into_iter().zip(from.tables()) {
                    to.slice_mut(s![r.clone(), ..]).assign(from);
                }
            }
            full
        })
    }
    fn set_tolerance(&mut self, tolerance_pu: Option<f64>) {
        for p in &mut self.parts {
            p.set_tolerance(tolerance_pu);
        }
    }
    fn limit_results(&mut self, columns: Option<ResultColumns>) {
        let names = self.results.tables().map(|(name, _)| name);
        self.limit = columns.as_ref().map(|cols| {
            (cols.tables.iter())
                .filter_map(|(name, _)| names.iter().position(|n| n == name))
                .collect()
        });
        if self.plan().is_some_and(|p| p.options.enforce_q_lims) {
            // The parts keep every table (as one batch does).
            self.limit = None;
        }
        for p in &mut self.parts {
            p.limit_results(columns.clone());
        }
        self.full = OnceLock::new();
    }
    fn limited_results(&self) -> &BatchResults {
        &self.results
    }
    fn reset_start(&mut self, copies: &[usize]) {
        for (part, r) in self.parts.iter_mut().zip(&self.ranges) {
            let local: Vec<usize> = (copies.iter())
                .filter(|c| r.contains(c))
                .map(|c| c - r.start)
                .collect();
            part.reset_start(&local);
        }
    }
    fn host_time(&self) -> Option<HostTime> {
        let mut h = self.host;
        let mut solves = 0;
        for q in self.parts.iter().filter_map(|p| p.host_time()) {
            solves = solves.max(q.solves);
            h += q;
        }
        // Solves of the batch (the parts solve side by side), and the wait of
        // the mean thread (each part's is wall time of its own thread).
        h.solves = solves;
        h.wait_s /= self.parts.len() as f64;
        Some(h)
    }
    fn threads(&self) -> usize {
        self.parts.len()
    }
    fn pool(&self) -> Option<&rayon::ThreadPool> {
        Some(&self.pool)
    }
    fn shared_pool(&self) -> Option<Arc<rayon::ThreadPool>> {
        Some(self.pool.clone())
    }
    fn as_gpu_parts_mut(&mut self) -> Option<&mut GpuParts> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powerflow::gpu::context_or_skip;

    /// Plain solves in three parts give one batch's results bit for bit:
    /// new set-points (every row into the parts), then only taps moved
    /// (`controls_mut`), a copy reset to a cold start, and the asked columns
    /// (`limit_results`) with `results` still complete. A part whose rows
    /// were not copied in (stale set-points) fails it.
    #[test]
    fn parts_solve_as_one_batch_bit_for_bit() {
        let Some(ctx) = context_or_skip("parts_solve_as_one_batch_bit_for_bit") else {
            return;
        };
        let net = crate::network::load("ieee34_ieee13").expect("shipped");
        let plan = Arc::new(Plan::new(&net, Default::default()).expect("plan"));
        let b = 10;
        let mut one = GpuBatch::on(ctx.clone(), plan.clone(), b, usize::MAX).expect("batch");
        let mut parts = GpuParts::on(ctx, plan, b, 3).expect("parts");
        assert_eq!(parts.ranges(), &[0..3, 3..6, 6..10]);
        assert!(
            parts.describe().ends_with(", 3 host threads)"),
            "{}",
            parts.describe()
        );
        let pfs: [&mut dyn PowerFlow; 2] = [&mut one, &mut parts];
        for pf in pfs {
            let inp = pf.inputs_mut();
            inp.load_scaling
                .indexed_iter_mut()
                .for_each(|((c, j), v)| *v *= 0.85 + 0.05 * ((c + j) % 5) as f64);
            inp.storage_p_mw
                .indexed_iter_mut()
                .for_each(|((c, _), v)| *v = 0.01 * c as f64 - 0.02);
            pf.solve().expect("solve");
        }
        assert!(one.results().converged.iter().all(|&x| x));
        assert_eq!(one.results(), parts.results());
        let (k, tap) = (net.trafos.iter().enumerate())
            .find_map(|(k, t)| t.tap.as_ref().map(|x| (k, x.clone())))
            .expect("a tap changer");
        let asked = ResultColumns {
            tables: vec![("vm_pu", vec![2, 40]), ("line_loading_percent", vec![0])],
        };
        let pfs: [&mut dyn PowerFlow; 2] = [&mut one, &mut parts];
        for pf in pfs {
            let (taps, _) = pf.controls_mut();
            for c in 0..b {
                taps[(c, k)] = (tap.pos + (c % 3) as f64).min(tap.max);
            }
            pf.reset_start(&[4, 9]);
            pf.limit_results(Some(asked.clone()));
            pf.solve().expect("solve");
        }
        let (a, z) = (one.limited_results(), parts.limited_results());
        assert_eq!(a.converged, z.converged);
        assert_eq!(a.iterations, z.iterations);
        for c in 0..b {
            assert_eq!(a.vm_pu[(c, 40)], z.vm_pu[(c, 40)], "copy {c}");
            assert_eq!(
                a.line_loading_percent[(c, 0)],
                z.line_loading_percent[(c, 0)]
            );
        }
        assert_eq!(one.results(), parts.results());
        assert_eq!(one.inputs(), parts.inputs());
        let h = parts.host_time().expect("counted");
        assert_eq!((h.solves, h.copy_solves), (2, 2 * b as u64));
    }

    /// An input error in one part's copies is the batch's error, and names
    /// the copy by its index in the batch (not in its part).
    #[test]
    fn a_bad_input_in_one_part_is_an_error() {
        let Some(ctx) = context_or_skip("a_bad_input_in_one_part_is_an_error") else {
            return;
        };
        let net = crate::network::load("ieee13").expect("shipped");
        let plan = Arc::new(Plan::new(&net, Default::default()).expect("plan"));
        let mut parts = GpuParts::on(ctx, plan, 4, 2).expect("parts");
        parts.inputs_mut().load_p_mw[(3, 0)] = f64::NAN;
        let e = parts.solve().expect_err("NaN load").to_string();
        assert!(e.contains("load_p_mw[copy 3][0] is NaN"), "{e}");
    }
}
