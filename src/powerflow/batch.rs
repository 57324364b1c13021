//! Per-copy inputs and results of a batch, shared by the CPU and GPU backends.

use crate::error::{Error, Result};
use crate::network::Network;
use ndarray::{Array2, ArrayView1};

/// Set-points of every copy, `[B, n_element]` each, in element order.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchInputs {
    /// Load active power in MW (before scaling).
    pub load_p_mw: Array2<f64>,
    /// Load reactive power in Mvar (before scaling).
    pub load_q_mvar: Array2<f64>,
    /// Load scaling factor.
    pub load_scaling: Array2<f64>,
    /// Static generator active power in MW (injection).
    pub sgen_p_mw: Array2<f64>,
    /// Static generator reactive power in Mvar (injection).
    pub sgen_q_mvar: Array2<f64>,
    /// Storage active power in MW (positive = charging = consumption).
    pub storage_p_mw: Array2<f64>,
    /// Trafo tap positions (ignored for trafos without a tap changer).
    pub trafo_tap_pos: Array2<f64>,
    /// Shunt steps.
    pub shunt_step: Array2<f64>,
    /// Gen active power in MW (injection, before the gen's `scaling`).
    pub gen_p_mw: Array2<f64>,
    /// Gen voltage set-point in p.u. (positive; gens at one bus must agree).
    pub gen_vm_pu: Array2<f64>,
}

fn rows(batch: usize, v: impl Iterator<Item = f64>) -> Array2<f64> {
    let row: Vec<f64> = v.collect();
    let n = row.len();
    Array2::from_shape_fn((batch, n), |(_, j)| row[j])
}

impl BatchInputs {
    /// Every copy at the network's own set-points.
    pub fn from_network(net: &Network, batch: usize) -> Self {
        BatchInputs {
            load_p_mw: rows(batch, net.loads.iter().map(|l| l.p_mw)),
            load_q_mvar: rows(batch, net.loads.iter().map(|l| l.q_mvar)),
            load_scaling: rows(batch, net.loads.iter().map(|l| l.scaling)),
            sgen_p_mw: rows(batch, net.sgens.iter().map(|s| s.p_mw)),
            sgen_q_mvar: rows(batch, net.sgens.iter().map(|s| s.q_mvar)),
            storage_p_mw: rows(batch, net.storages.iter().map(|s| s.p_mw)),
            trafo_tap_pos: rows(
                batch,
                net.trafos
                    .iter()
                    .map(|t| t.tap.as_ref().map_or(0.0, |x| x.pos)),
            ),
            shunt_step: rows(batch, net.shunts.iter().map(|s| s.step)),
            gen_p_mw: rows(batch, net.gens.iter().map(|g| g.p_mw)),
            gen_vm_pu: rows(batch, net.gens.iter().map(|g| g.vm_pu)),
        }
    }

    /// Number of copies.
    pub fn batch(&self) -> usize {
        self.load_p_mw.nrows()
    }

    /// `f(mine, other's)` for each of the ten arrays, in field order.
    fn each_pair(
        &mut self,
        other: &BatchInputs,
        mut f: impl FnMut(&mut Array2<f64>, &Array2<f64>),
    ) {
        f(&mut self.load_p_mw, &other.load_p_mw);
        f(&mut self.load_q_mvar, &other.load_q_mvar);
        f(&mut self.load_scaling, &other.load_scaling);
        f(&mut self.sgen_p_mw, &other.sgen_p_mw);
        f(&mut self.sgen_q_mvar, &other.sgen_q_mvar);
        f(&mut self.storage_p_mw, &other.storage_p_mw);
        f(&mut self.trafo_tap_pos, &other.trafo_tap_pos);
        f(&mut self.shunt_step, &other.shunt_step);
        f(&mut self.gen_p_mw, &other.gen_p_mw);
        f(&mut self.gen_vm_pu, &other.gen_vm_pu);
    }

    /// Set copy `dst`'s values to copy `src` of `other` (same network).
    pub fn copy_row_from(&mut self, dst: usize, other: &BatchInputs, src: usize) {
        self.each_pair(other, |a, b| a.row_mut(dst).assign(&b.row(src)));
    }

    /// Copy `other`'s values into these arrays without reallocating (shapes must match).
    pub fn assign(&mut self, other: &BatchInputs) {
        self.each_pair(other, |a, b| a.assign(b));
    }

    /// Set every copy to `other`'s copies `rows` (as many; same network).
    pub(crate) fn assign_rows(&mut self, other: &BatchInputs, rows: std::ops::Range<usize>) {
        self.each_pair(other, |a, b| {
            a.assign(&b.slice(ndarray::s![rows.clone(), ..]))
        });
    }

    /// Named arrays, for messages and generic code.
    pub fn fields(&self) -> [(&'static str, &Array2<f64>); 10] {
        [
            ("load_p_mw", &self.load_p_mw),
            ("load_q_mvar", &self.load_q_mvar),
            ("load_scaling", &self.load_scaling),
            ("sgen_p_mw", &self.sgen_p_mw),
            ("sgen_q_mvar", &self.sgen_q_mvar),
            ("storage_p_mw", &self.storage_p_mw),
            ("gen_p_mw", &self.gen_p_mw),
            ("gen_vm_pu", &self.gen_vm_pu),
            // The controls (automatic controllers move them) last.
            ("trafo_tap_pos", &self.trafo_tap_pos),
            ("shunt_step", &self.shunt_step),
        ]
    }

    /// Every value finite and every tap and step within its range, checked
    /// copy by copy in parallel (on the current rayon pool). Shapes must
    /// already match the network. Copies for which `checked` holds have only
    /// their taps and steps checked (their other set-points are known good).
    fn rows_ok(
        &self,
        net: &Network,
        active: Option<&[bool]>,
        checked: &(dyn Fn(usize) -> bool + Sync),
    ) -> bool {
        use rayon::prelude::*;
        let finite = |a: &Array2<f64>, c: usize| {
            a.row(c).as_slice().map_or_else(
                || a.row(c).iter().all(|v| v.is_finite()),
                |s| s.iter().fold(true, |ok, v| ok & v.is_finite()),
            )
        };
        let fields = self.fields();
        let (set_points, controls) = fields.split_at(fields.len() - 2);
        (0..self.batch()).into_par_iter().all(|c| {
            active.is_some_and(|a| !a[c])
                || (checked(c)
                    || set_points.iter().all(|(_, a)| finite(a, c))
                        && self.gen_vm_pu.row(c).iter().all(|&v| v > 0.0))
                    && controls.iter().all(|(_, a)| finite(a, c))
                    && net.trafos.iter().enumerate().all(|(k, t)| {
                        let v = self.trafo_tap_pos[(c, k)];
                        t.tap
                            .as_ref()
                            .is_none_or(|tap| v >= tap.min && v <= tap.max)
                    })
                    && net.shunts.iter().enumerate().all(|(k, s)| {
                        let v = self.shunt_step[(c, k)];
                        v >= 0.0 && v <= s.max_step as f64
                    })
        })
    }

    /// Shapes, finiteness and ranges (taps within `[min, max]`, shunt steps within `[0, max_step]`).
    /// The value checks run in parallel on the current rayon pool.
    pub fn validate(&self, net: &Network) -> Result<()> {
        self.validate_active(net, None)
    }

    /// [`validate`](BatchInputs::validate), with the value checks only on the
    /// copies `active` marks (`None`: all); the error, if any, names the first
    /// bad value of any copy.
    pub fn validate_active(&self, net: &Network, active: Option<&[bool]>) -> Result<()> {
        self.validate_unchecked(net, active, &|_| false)
    }

    /// [`validate_active`](BatchInputs::validate_active) where the set-points
    /// other than taps and steps of the copies for which `checked` holds are
    /// known good (validated when last written): only their taps and steps
    /// are checked.
    pub(crate) fn validate_unchecked(
        &self,
        net: &Network,
        active: Option<&[bool]>,
        checked: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<()> {
        let b = self.batch();
        let expect = [
            net.loads.len(),
            net.loads.len(),
            net.loads.len(),
            net.sgens.len(),
            net.sgens.len(),
            net.storages.len(),
            net.gens.len(),
            net.gens.len(),
            net.trafos.len(),
            net.shunts.len(),
        ];
        for ((name, a), n) in self.fields().into_iter().zip(expect) {
            if a.nrows() != b || a.ncols() != n {
                return Err(Error::InvalidInput(format!(
                    "{name} has shape [{}, {}], expected [{b}, {n}]",
                    a.nrows(),
                    a.ncols()
                )));
            }
        }
        // Fast pass, copies in parallel (rows are contiguous); on failure the
        // sequential passes below find the first bad value and name it.
        if self.rows_ok(net, active.filter(|a| a.len() == b), checked) {
            return Ok(());
        }
        for (name, a) in self.fields() {
            if let Some(((c, j), v)) = a.indexed_iter().find(|(_, v)| !v.is_finite()) {
                return Err(Error::InvalidInput(format!("{name}[copy {c}][{j}] is {v}")));
            }
        }
        for (k, t) in net.trafos.iter().enumerate() {
            if let Some(tap) = &t.tap {
                if let Some((c, v)) = self
                    .trafo_tap_pos
                    .column(k)
                    .iter()
                    .enumerate()
                    .find(|(_, v)| **v < tap.min || **v > tap.max)
                {
                    return Err(Error::InvalidInput(format!(
                        "trafo_tap_pos[copy {c}][{k}] = {v} is outside trafo {k} ({:?})'s range [{}, {}]",
                        t.name, tap.min, tap.max
                    )));
                }
            }
        }
        for (k, s) in net.shunts.iter().enumerate() {
            if let Some((c, v)) = self
                .shunt_step
                .column(k)
                .iter()
                .enumerate()
                .find(|(_, v)| **v < 0.0 || **v > s.max_step as f64)
            {
                return Err(Error::InvalidInput(format!(
                    "shunt_step[copy {c}][{k}] = {v} is outside shunt {k} ({:?})'s range [0, {}]",
                    s.name, s.max_step
                )));
            }
        }
        for (k, g) in net.gens.iter().enumerate() {
            if let Some((c, v)) = self
                .gen_vm_pu
                .column(k)
                .iter()
                .enumerate()
                .find(|(_, v)| **v <= 0.0)
            {
                return Err(Error::InvalidInput(format!(
                    "gen_vm_pu[copy {c}][{k}] = {v}: gen {k} ({:?})'s voltage set-point must be positive",
                    g.name
                )));
            }
        }
        Ok(())
    }
}

/// Results of every copy, `[B, n_element]` each, in element order. Values of
/// isolated or out-of-service elements are 0.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResults {
    /// Whether the copy converged.
    pub converged: Vec<bool>,
    /// Iterations used (P and Q half-step pairs).
    pub iterations: Vec<u32>,
    /// Final max of `|ΔP|` (PQ and PV nodes) and `|ΔQ|` (PQ nodes) in p.u.
    pub max_mismatch_pu: Vec<f64>,
    /// Bus voltage magnitude.
    pub vm_pu: Array2<f64>,
    /// Bus voltage angle.
    pub va_degree: Array2<f64>,
    /// Line active power at the from end.
    pub line_p_from_mw: Array2<f64>,
    /// Line reactive power at the from end.
    pub line_q_from_mvar: Array2<f64>,
    /// Line current (max of both ends).
    pub line_i_ka: Array2<f64>,
    /// Line loading.
    pub line_loading_percent: Array2<f64>,
    /// Trafo loading.
    pub trafo_loading_percent: Array2<f64>,
    /// Trafo active power into the trafo at its HV bus (pandapower's `p_hv_mw`).
    pub trafo_p_hv_mw: Array2<f64>,
    /// Trafo reactive power into the trafo at its HV bus (`q_hv_mvar`).
    pub trafo_q_hv_mvar: Array2<f64>,
    /// Trafo active power into the trafo at its LV bus (`p_lv_mw`: negative
    /// when power flows from HV to LV).
    pub trafo_p_lv_mw: Array2<f64>,
    /// Trafo reactive power into the trafo at its LV bus (`q_lv_mvar`).
    pub trafo_q_lv_mvar: Array2<f64>,
    /// Ext-grid active power.
    pub ext_grid_p_mw: Array2<f64>,
    /// Ext-grid reactive power.
    pub ext_grid_q_mvar: Array2<f64>,
    /// Gen active power (its set-point `p_mw · scaling`; 0 where not solved).
    pub gen_p_mw: Array2<f64>,
    /// Gen reactive power: the bus's balance, split among its gens and
    /// ext_grids as pandapower's `pfsoln` does.
    pub gen_q_mvar: Array2<f64>,
}

impl BatchResults {
    /// Zeros for `batch` copies of `net`.
    pub fn zeros(net: &Network, batch: usize) -> Self {
        let z = |n: usize| Array2::zeros((batch, n));
        BatchResults {
            converged: vec![false; batch],
            iterations: vec![0; batch],
            max_mismatch_pu: vec![f64::NAN; batch],
            vm_pu: z(net.buses.len()),
            va_degree: z(net.buses.len()),
            line_p_from_mw: z(net.lines.len()),
            line_q_from_mvar: z(net.lines.len()),
            line_i_ka: z(net.lines.len()),
            line_loading_percent: z(net.lines.len()),
            trafo_loading_percent: z(net.trafos.len()),
            trafo_p_hv_mw: z(net.trafos.len()),
            trafo_q_hv_mvar: z(net.trafos.len()),
            trafo_p_lv_mw: z(net.trafos.len()),
            trafo_q_lv_mvar: z(net.trafos.len()),
            ext_grid_p_mw: z(net.ext_grids.len()),
            ext_grid_q_mvar: z(net.ext_grids.len()),
            gen_p_mw: z(net.gens.len()),
            gen_q_mvar: z(net.gens.len()),
        }
    }

    /// Number of copies.
    pub fn batch(&self) -> usize {
        self.converged.len()
    }

    /// Named result tables (the `pf` output keys).
    pub fn tables(&self) -> [(&'static str, &Array2<f64>); 15] {
        [
            ("vm_pu", &self.vm_pu),
            ("va_degree", &self.va_degree),
            ("line_p_from_mw", &self.line_p_from_mw),
            ("line_q_from_mvar", &self.line_q_from_mvar),
            ("line_i_ka", &self.line_i_ka),
            ("line_loading_percent", &self.line_loading_percent),
            ("trafo_loading_percent", &self.trafo_loading_percent),
            ("trafo_p_hv_mw", &self.trafo_p_hv_mw),
            ("trafo_q_hv_mvar", &self.trafo_q_hv_mvar),
            ("trafo_p_lv_mw", &self.trafo_p_lv_mw),
            ("trafo_q_lv_mvar", &self.trafo_q_lv_mvar),
            ("ext_grid_p_mw", &self.ext_grid_p_mw),
            ("ext_grid_q_mvar", &self.ext_grid_q_mvar),
            ("gen_p_mw", &self.gen_p_mw),
            ("gen_q_mvar", &self.gen_q_mvar),
        ]
    }

    /// [`tables`](BatchResults::tables), mutable (same order, without the names).
    pub(crate) fn tables_mut(&mut self) -> [&mut Array2<f64>; 15] {
        self.columns_and_tables_mut().3
    }

    /// `converged`, `iterations`, `max_mismatch_pu` and
    /// [`tables_mut`](BatchResults::tables_mut), at once.
    #[allow(clippy::type_complexity)]
    pub(crate) fn columns_and_tables_mut(
        &mut self,
    ) -> (&mut [bool], &mut [u32], &mut [f64], [&mut Array2<f64>; 15]) {
        let tables = [
            &mut self.vm_pu,
            &mut self.va_degree,
            &mut self.line_p_from_mw,
            &mut self.line_q_from_mvar,
            &mut self.line_i_ka,
            &mut self.line_loading_percent,
            &mut self.trafo_loading_percent,
            &mut self.trafo_p_hv_mw,
            &mut self.trafo_q_hv_mvar,
            &mut self.trafo_p_lv_mw,
            &mut self.trafo_q_lv_mvar,
            &mut self.ext_grid_p_mw,
            &mut self.ext_grid_q_mvar,
            &mut self.gen_p_mw,
            &mut self.gen_q_mvar,
        ];
        (
            &mut self.converged,
            &mut self.iterations,
            &mut self.max_mismatch_pu,
            tables,
        )
    }

    /// One copy's row of a table.
    pub fn row<'a>(a: &'a Array2<f64>, copy: usize) -> ArrayView1<'a, f64> {
        a.row(copy)
    }
}

/// The result columns a caller reads ([`PowerFlow::limit_results`]): per
/// table, by its [`BatchResults::tables`] name, the columns. Tables not named
/// (and unknown names) are not read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultColumns {
    /// `(table name, columns)`.
    pub tables: Vec<(&'static str, Vec<usize>)>,
}

/// What one `solve` call did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolveSummary {
    /// Copies that converged.
    pub converged: usize,
    /// Copies in the batch.
    pub batch: usize,
    /// Mean iterations over copies.
    pub mean_iterations: f64,
}

/// What a loop over copies (the control loop) reads of them, by local copy
/// index `0..`.
pub(crate) trait CopyReadings {
    fn converged(&self, c: usize) -> bool;
    fn vm_pu(&self, c: usize, bus: usize) -> f64;
    /// Complex voltage (p.u.) of `bus` in copy `c` (0 where it is not solved).
    fn voltage(&self, c: usize, bus: usize) -> crate::complex::C64;
    fn tap_pos(&self, c: usize, trafo: usize) -> f64;
}

/// Copies a loop solves and drives one by one (local indices `0..`): a whole
/// backend, or a shard of the CPU backend's batch that one thread drives
/// while others drive theirs (`CpuBatch::run_shards`).
pub(crate) trait CopyControl: CopyReadings {
    /// Solve the copies marked in `active` (`None`: every copy).
    fn solve(&mut self, active: Option<&[bool]>) -> Result<()>;
    /// Solve to `tolerance_pu` from now on (`None`: the plan's).
    fn set_tolerance(&mut self, tolerance_pu: Option<f64>);
    fn set_tap_pos(&mut self, c: usize, trafo: usize, pos: f64);
    fn shunt_step(&self, c: usize, shunt: usize) -> f64;
    fn set_shunt_step(&mut self, c: usize, shunt: usize, step: f64);
}

/// Power-flow work done so far by a backend (for diagnostics: where the time
/// of a control loop or an environment step goes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SolveWork {
    /// Copies solved, summed over every solve.
    pub copy_solves: u64,
    /// FDPF iterations, summed over those copy solves.
    pub iterations: u64,
}

/// Host time a backend spent in its solves, by phase, summed over every solve
/// since it was made (the GPU backend counts it). Every phase but `wait_s` is
/// the host's own work, in CPU time of the solving thread (on unix; time it was
/// descheduled does not count); `wait_s` is wall time blocked on the device
/// (waiting for results, and inside a submission that waits for the device's
/// earlier work: wall less CPU time there).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct HostTime {
    /// Solves counted.
    pub solves: u64,
    /// Copies solved, summed over those solves.
    pub copy_solves: u64,
    /// Checking the inputs (s).
    pub check_s: f64,
    /// Per-copy preparation of the device's inputs (s).
    pub prepare_s: f64,
    /// Writing the inputs into the device's queue (s).
    pub upload_s: f64,
    /// Recording and submitting the commands (s).
    pub submit_s: f64,
    /// Blocked waiting on the device (s): not host work. Includes the wall time
    /// a submission spends blocked (beyond its CPU time), as lavapipe's does
    /// while the device works on the previous chunk.
    pub wait_s: f64,
    /// Reading the results back into the result tables (s).
    pub unpack_s: f64,
    /// Bytes of results read back from the device (complete tables formed
    /// on request by `results` not counted).
    pub read_bytes: u64,
    /// Not host time: the device's time in the solves' compute passes (s),
    /// from timestamp queries where the adapter has them (0 where not; with
    /// several host threads, summed over their parts). The rest of `wait_s`
    /// is transfers, scheduling and the device's idle time.
    pub kernel_s: f64,
}

impl HostTime {
    /// The host's own work (s): every phase but the wait.
    pub fn host_s(&self) -> f64 {
        self.check_s + self.prepare_s + self.upload_s + self.submit_s + self.unpack_s
    }
    /// What was counted since `earlier` (a reading of the same backend).
    pub fn since(&self, earlier: &HostTime) -> HostTime {
        HostTime {
            solves: self.solves - earlier.solves,
            copy_solves: self.copy_solves - earlier.copy_solves,
            check_s: self.check_s - earlier.check_s,
            prepare_s: self.prepare_s - earlier.prepare_s,
            upload_s: self.upload_s - earlier.upload_s,
            submit_s: self.submit_s - earlier.submit_s,
            wait_s: self.wait_s - earlier.wait_s,
            unpack_s: self.unpack_s - earlier.unpack_s,
            read_bytes: self.read_bytes - earlier.read_bytes,
            kernel_s: self.kernel_s - earlier.kernel_s,
        }
    }
    /// Microseconds per copy solve of each phase: `(name, µs)`, the host total
    /// (`host`) first, then the phases, the wait and the device's `kernel`.
    pub fn per_copy_us(&self) -> Vec<(&'static str, f64)> {
        let k = 1e6 / self.copy_solves.max(1) as f64;
        vec![
            ("host", self.host_s() * k),
            ("check", self.check_s * k),
            ("prepare", self.prepare_s * k),
            ("upload", self.upload_s * k),
            ("submit", self.submit_s * k),
            ("unpack", self.unpack_s * k),
            ("wait", self.wait_s * k),
            ("kernel", self.kernel_s * k),
        ]
    }
}

impl std::ops::AddAssign for HostTime {
    /// Every count and phase summed (two backends' time, or two threads').
    fn add_assign(&mut self, o: HostTime) {
        self.solves += o.solves;
        self.copy_solves += o.copy_solves;
        self.check_s += o.check_s;
        self.prepare_s += o.prepare_s;
        self.upload_s += o.upload_s;
        self.submit_s += o.submit_s;
        self.wait_s += o.wait_s;
        self.unpack_s += o.unpack_s;
        self.read_bytes += o.read_bytes;
        self.kernel_s += o.kernel_s;
    }
}

/// A batched power-flow backend (CPU or GPU): set inputs, solve, read results.
pub trait PowerFlow: Send {
    /// Backend name, with the device where it applies.
    fn describe(&self) -> String;
    /// Number of copies.
    fn batch(&self) -> usize;
    /// The inputs the next `solve` uses.
    fn inputs(&self) -> &BatchInputs;
    /// Mutable inputs. Calling it marks every set-point as changed: a backend
    /// that keeps per-copy work between solves (the CPU's prepared injections)
    /// forms it again at the next solve, so inputs written any other way (in
    /// place through a raw view) must be followed by a call to it.
    fn inputs_mut(&mut self) -> &mut BatchInputs;
    /// The inputs automatic controllers move, mutable: tap positions
    /// (`trafo_tap_pos`) and shunt steps (`shunt_step`). Unlike
    /// [`inputs_mut`](PowerFlow::inputs_mut), this leaves every other set-point
    /// as the last solve used it, so a backend may keep the copies' prepared
    /// injections (the CPU backend does; the control loop's re-solves change
    /// only taps and steps).
    fn controls_mut(&mut self) -> (&mut Array2<f64>, &mut Array2<f64>) {
        let inp = self.inputs_mut();
        (&mut inp.trafo_tap_pos, &mut inp.shunt_step)
    }
    /// Validate the inputs and solve every copy, warm-started from its last
    /// converged voltages (the no-load solution the first time and after a failure).
    fn solve(&mut self) -> Result<SolveSummary>;
    /// Like [`solve`](PowerFlow::solve), but only copies with `active[c]` need
    /// solving: the others keep their state and last results (the control
    /// loop's settled copies). The default solves every copy; the CPU and GPU
    /// backends skip the inactive ones (the GPU dispatches only the active
    /// copies, with `enforce_q_lims` every copy). The summary covers every copy.
    fn solve_active(&mut self, active: &[bool]) -> Result<SolveSummary> {
        check_active(active, self.batch())?;
        self.solve()
    }
    /// Results of the last solve.
    fn results(&self) -> &BatchResults;
    /// Solve the following calls to `tolerance_pu` instead of the plan's
    /// (`None`: back to the plan's). Used by the control loop for screening
    /// solves; backends that keep a tolerance of their own (the GPU's f32
    /// rule) ignore it.
    fn set_tolerance(&mut self, tolerance_pu: Option<f64>) {
        let _ = tolerance_pu;
    }
    /// Until [`finish_results`](PowerFlow::finish_results), solves need only
    /// fill `vm_pu` (every bus) and `va_degree` at `va_buses`, besides the
    /// convergence columns: the other result rows of the copies solved may be
    /// stale. For loops that read a few voltages between solves (the control
    /// loop). The default ignores it (every table is always complete).
    fn defer_results(&mut self, va_buses: &[usize]) {
        let _ = va_buses;
    }
    /// [`defer_results`](PowerFlow::defer_results) where the caller reads
    /// `vm_pu` only at `vm_buses` too: until
    /// [`finish_results`](PowerFlow::finish_results) the other voltage
    /// magnitudes of the copies solved may be stale as well. The default is
    /// `defer_results(va_buses)` (`vm_pu` at every bus); the GPU backend reads
    /// back only the buses asked for.
    fn defer_results_at(&mut self, vm_buses: &[usize], va_buses: &[usize]) {
        let _ = vm_buses;
        self.defer_results(va_buses);
    }
    /// Complete the result tables of every copy solved since
    /// [`defer_results`](PowerFlow::defer_results), and compute complete tables
    /// again from the next solve on.
    fn finish_results(&mut self) {}
    /// Name the result columns the caller reads through
    /// [`limited_results`](PowerFlow::limited_results) (`None`: every
    /// table): a backend may then fill only those after each solve (the GPU
    /// backend unpacks only them from its readback) and complete the rest
    /// when [`results`](PowerFlow::results) is called, which stays complete.
    /// The default ignores it.
    fn limit_results(&mut self, columns: Option<ResultColumns>) {
        let _ = columns;
    }
    /// The results of the last solve with at least the convergence columns
    /// and the columns of [`limit_results`](PowerFlow::limit_results)
    /// current; other values may be stale. For loops that read a few columns
    /// per solve (the environment's step). The default is
    /// [`results`](PowerFlow::results).
    fn limited_results(&self) -> &BatchResults {
        self.results()
    }
    /// Start the given copies from the no-load voltages at the next solve.
    fn reset_start(&mut self, copies: &[usize]);
    /// Work counted since the backend was made (`None` where it is not counted).
    fn work(&self) -> Option<SolveWork> {
        None
    }
    /// Host time spent in solves so far, by phase (`None` where the backend
    /// does not count it; the GPU backend does).
    fn host_time(&self) -> Option<HostTime> {
        None
    }
    /// CPU threads the backend solves on (1 for the GPU, which drives it from one).
    fn threads(&self) -> usize {
        1
    }
    /// The backend's thread pool, where it has one (the CPU backend), so that
    /// per-copy work around the solves (the environment's rewards and
    /// observations) runs on the same threads instead of a second pool.
    fn pool(&self) -> Option<&rayon::ThreadPool> {
        None
    }
    /// The CPU backend itself, where this is it (the control loop then runs
    /// on shards of its batch, one per thread).
    fn as_cpu_mut(&mut self) -> Option<&mut super::CpuBatch> {
        None
    }
    /// The GPU backend in parts driven by several threads, where this is it
    /// (the control loop then runs on each part, one per thread).
    fn as_gpu_parts_mut(&mut self) -> Option<&mut super::gpu::GpuParts> {
        None
    }
    /// [`as_cpu_mut`](PowerFlow::as_cpu_mut), shared.
    fn as_cpu(&self) -> Option<&super::CpuBatch> {
        None
    }
    /// [`pool`](PowerFlow::pool), shared (the CPU backend's pool lives in an `Arc`).
    fn shared_pool(&self) -> Option<std::sync::Arc<rayon::ThreadPool>> {
        None
    }
    /// The plan the backend solves, where it gives it (both backends do): the
    /// control loop reads the network's topology from it to predict voltages
    /// after tap moves ([`crate::control::ControlOptions::predict_margin_pu`]).
    fn plan(&self) -> Option<&super::Plan> {
        None
    }
}

/// An active mask of [`PowerFlow::solve_active`] has one entry per copy.
/// Bounds of `n` parts of consecutive rows covering `0..len`, as even as can
/// be (`n + 1` values from 0 to `len`), for [`split_rows`] and [`split_slice`].
pub(crate) fn even_bounds(len: usize, n: usize) -> Vec<usize> {
    (0..=n).map(|i| i * len / n).collect()
}

/// `v` cut along its first axis at `bounds` (`bounds[0] = 0`, ascending,
/// last = the length): one view per consecutive pair.
pub(crate) fn split_rows<'a, A, D: ndarray::RemoveAxis>(
    mut v: ndarray::ArrayViewMut<'a, A, D>,
    bounds: &[usize],
) -> Vec<ndarray::ArrayViewMut<'a, A, D>> {
    let mut out = Vec::with_capacity(bounds.len());
    let mut at = 0;
    for w in bounds.windows(2) {
        let (head, tail) = v.split_at(ndarray::Axis(0), w[1] - at);
        out.push(head);
        v = tail;
        at = w[1];
    }
    out
}

/// `s` (rows of `row_len` values) cut at the row `bounds`.
pub(crate) fn split_slice<'a, T>(
    mut s: &'a mut [T],
    row_len: usize,
    bounds: &[usize],
) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(bounds.len());
    let mut at = 0;
    for w in bounds.windows(2) {
        let (head, tail) = std::mem::take(&mut s).split_at_mut((w[1] - at) * row_len);
        out.push(head);
        s = tail;
        at = w[1];
    }
    out
}

pub(crate) fn check_active(active: &[bool], batch: usize) -> Result<()> {
    if active.len() != batch {
        return Err(Error::InvalidInput(format!(
            "active mask has {} entries for {batch} copies",
            active.len()
        )));
    }
    Ok(())
}
