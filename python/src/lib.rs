//! `powergrid._powergrid`: the native half of the Python package.
//!
//! The Python half (`python/powergrid/*.py`) builds dicts, spaces and the
//! Gymnasium / PettingZoo wrappers on top of three classes:
//!
//! - [`Env`] owns a [`VecEnv`]. Its output buffers (observations, rewards,
//!   flags, info) are handed to numpy as *borrowed* arrays whose base object is
//!   the `Env` itself: no copy, and the same memory every step, because
//!   `VecEnv` allocates them once and overwrites them in place. Every call
//!   checks that the buffers did not move (they never do; if a future change
//!   made them reallocate, the call reports it and Python takes fresh views
//!   instead of reading freed memory).
//! - [`PowerFlowCore`] owns a batched power-flow backend; its inputs are
//!   writable numpy views, its results read-only views.
//! - [`PolicyCore`] runs the library's baseline policies (zero, random,
//!   heuristic) into borrowed action buffers.
//!
//! Actions: float32 or float64 arrays, C-contiguous or any strided layout,
//! are read in place through `ArrayView2`s (`VecEnv::step` is generic over
//! both); only a call that mixes the two converts its float64 arrays.
//! Library errors on user input (`InvalidInput`, bad setups) become
//! `ValueError`; I/O errors `OSError`.

use ndarray::{Array2, ArrayView2};
use numpy::{PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray2};
use powergrid::env::reward::TERMS;
use powergrid::env::{EnvOptions, Policy, PolicyRunner, Split, VecEnv};
use powergrid::error::Error;
use powergrid::powerflow::{new_backend, BackendKind, Plan, PowerFlow, SolverOptions};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::Arc;

fn to_py(e: Error) -> PyErr {
    match e {
        Error::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// A count argument (`gpu_chunks`, `gpu_threads`) as given, refused below 1.
fn at_least_one(name: &str, n: usize) -> PyResult<usize> {
    if n == 0 {
        return Err(PyValueError::new_err(format!("{name} must be at least 1")));
    }
    Ok(n)
}

fn backend_kind(s: &str) -> PyResult<BackendKind> {
    match s {
        "cpu" => Ok(BackendKind::Cpu),
        "gpu" => Ok(BackendKind::Gpu),
        "auto" => Ok(BackendKind::Auto),
        _ => Err(PyValueError::new_err(format!(
            "backend must be \"cpu\", \"gpu\" or \"auto\", got {s:?}"
        ))),
    }
}

fn split_kind(s: &str) -> PyResult<Split> {
    match s {
        "train" => Ok(Split::Train),
        "test" => Ok(Split::Test),
        _ => Err(PyValueError::new_err(format!(
            "split must be \"train\" or \"test\", got {s:?}"
        ))),
    }
}

/// Base addresses of every buffer handed out as a view, to detect a move.
fn buffer_addresses(env: &VecEnv) -> Vec<usize> {
    let mut v: Vec<usize> = env
        .observations()
        .iter()
        .map(|o| o.as_ptr() as usize)
        .collect();
    let i = env.info();
    v.extend([
        env.rewards().as_ptr() as usize,
        env.terminated().as_ptr() as usize,
        env.truncated().as_ptr() as usize,
        i.cost.as_ptr() as usize,
        i.safety.as_ptr() as usize,
        i.converged.as_ptr() as usize,
        i.reset.as_ptr() as usize,
        i.pcc_import_mw.as_ptr() as usize,
        i.price.as_ptr() as usize,
        i.voltage_violation.as_ptr() as usize,
        i.network_voltage_safety.as_ptr() as usize,
        i.operator_safety.as_ptr() as usize,
        i.hour.as_ptr() as usize,
        i.terms.as_ptr() as usize,
        i.control_iterations.as_ptr() as usize,
        i.controller_moves.as_ptr() as usize,
        i.controller_wear_cost.as_ptr() as usize,
        i.acts_next.as_ptr() as usize,
    ]);
    v
}

/// The batched multi-agent environment (native core of `powergrid.VecEnv`).
#[pyclass(module = "powergrid._powergrid", unsendable)]
pub struct Env {
    env: VecEnv,
    /// Buffer addresses when the views were last handed out.
    viewed: Vec<usize>,
}

#[pymethods]
impl Env {
    #[new]
    #[pyo3(signature = (setup, num_envs, backend="cpu", split="train", gpu_chunks=1, gpu_threads=1))]
    fn new(
        setup: &str,
        num_envs: usize,
        backend: &str,
        split: &str,
        gpu_chunks: usize,
        gpu_threads: usize,
    ) -> PyResult<Self> {
        let options = EnvOptions {
            batch: num_envs,
            backend: backend_kind(backend)?,
            split: split_kind(split)?,
            gpu_chunks: at_least_one("gpu_chunks", gpu_chunks)?,
            gpu_threads: at_least_one("gpu_threads", gpu_threads)?,
            ..Default::default()
        };
        let env = VecEnv::from_name(setup, &options).map_err(to_py)?;
        Ok(Env {
            env,
            viewed: Vec::new(),
        })
    }

    /// Number of copies.
    #[getter]
    fn num_envs(&self) -> usize {
        self.env.batch()
    }
    /// Agent names in action order.
    #[getter]
    fn agent_names(&self) -> Vec<String> {
        self.env.agent_names().to_vec()
    }
    /// Each agent's parent (a device agent's coordinator, e.g. `MG1` for
    /// `MG1/ESS1`), None for top-level agents.
    #[getter]
    fn agent_parents(&self) -> Vec<Option<String>> {
        self.env.agent_parents().to_vec()
    }
    /// Each agent's grid agent index (column of `pcc_import_mw`), None for the operator.
    #[getter]
    fn agent_grid(&self) -> Vec<Option<usize>> {
        self.env.agent_grid()
    }
    /// Each agent's `(tick_every, obs_delay, act_delay)` in steps.
    #[getter]
    fn agent_timing(&self) -> Vec<(usize, usize, usize)> {
        self.env
            .agent_timing()
            .iter()
            .map(|t| (t.tick_every, t.obs_delay, t.act_delay))
            .collect()
    }
    /// Action length per agent.
    #[getter]
    fn action_dims(&self) -> Vec<usize> {
        self.env.action_dims().to_vec()
    }
    /// Observation length per agent.
    #[getter]
    fn obs_dims(&self) -> Vec<usize> {
        self.env.obs_dims()
    }
    /// Which backend solves the power flow, and why.
    #[getter]
    fn backend(&self) -> String {
        self.env.backend().to_string()
    }
    /// Whether every agent gets the mean reward.
    #[getter]
    fn share_reward(&self) -> bool {
        self.env.setup().config.share_reward
    }
    /// Setup name.
    #[getter]
    fn setup_name(&self) -> String {
        self.env.setup().config.name.clone()
    }
    /// Steps until a copy is truncated.
    #[getter]
    fn max_episode_steps(&self) -> usize {
        self.env.setup().config.max_episode_steps
    }
    /// Names of the reward terms in `info["terms"][:, :, k]`.
    #[getter]
    fn reward_terms(&self) -> Vec<String> {
        TERMS.iter().map(|t| t.to_string()).collect()
    }
    /// Names of the automatic controllers (columns of `controller_moves`).
    #[getter]
    fn controller_names(&self) -> Vec<String> {
        self.env.controller_names()
    }
    /// Observation mode ("distributed" or "centralized").
    #[getter]
    fn observation_mode(&self) -> String {
        format!("{:?}", self.env.observation_mode()).to_lowercase()
    }

    /// Layout of agent `i`: a list of `(field name, offset, length)` and
    /// the name of every column.
    #[allow(clippy::type_complexity)]
    fn layout(&self, i: usize) -> PyResult<(Vec<(String, usize, usize)>, Vec<String>)> {
        if i >= self.env.agent_names().len() {
            return Err(PyValueError::new_err(format!(
                "agent index {i} out of range (there are {} agents)",
                self.env.agent_names().len()
            )));
        }
        let l = self.env.layout(i);
        Ok((
            l.fields
                .iter()
                .map(|f| (f.name.clone(), f.offset, f.len))
                .collect(),
            l.columns.clone(),
        ))
    }

    /// Reset every copy from `seed`.
    fn reset(&mut self, py: Python<'_>, seed: u64) -> PyResult<bool> {
        let env = &mut self.env;
        py.detach(|| env.reset(seed)).map_err(to_py)?;
        Ok(self.moved())
    }

    /// Step with one `[B, action_dim]` float32 or float64 array per agent (in
    /// agent order). Returns whether the output buffers moved (never, today).
    fn step(&mut self, py: Python<'_>, actions: Vec<Bound<'_, PyAny>>) -> PyResult<bool> {
        let names = self.env.agent_names().to_vec();
        if actions.len() != names.len() {
            return Err(PyValueError::new_err(format!(
                "expected actions for {} agents {:?}, got {}",
                names.len(),
                names,
                actions.len()
            )));
        }
        // Borrow every array in place; float32 and float64 are both read
        // without a copy (a call mixing them converts its float64 arrays).
        let mut f32s = Vec::with_capacity(names.len());
        let mut f64s = Vec::with_capacity(names.len());
        for (a, name) in actions.iter().zip(&names) {
            if let Ok(x) = a.extract::<PyReadonlyArray2<'_, f32>>() {
                f32s.push(Some(x));
                f64s.push(None);
            } else if let Ok(x) = a.extract::<PyReadonlyArray2<'_, f64>>() {
                f32s.push(None);
                f64s.push(Some(x));
            } else {
                return Err(PyValueError::new_err(format!(
                    "actions of agent {name} must be a 2-D float32 or float64 numpy array"
                )));
            }
        }
        let env = &mut self.env;
        if f64s.iter().all(|x| x.is_some()) {
            let views: Vec<ArrayView2<'_, f64>> =
                f64s.iter().flatten().map(|a| a.as_array()).collect();
            py.detach(|| env.step(&views)).map_err(to_py)?;
        } else {
            let converted: Vec<Option<Array2<f32>>> = f64s
                .iter()
                .map(|x| x.as_ref().map(|a| a.as_array().mapv(|v| v as f32)))
                .collect();
            let views: Vec<ArrayView2<'_, f32>> = f32s
                .iter()
                .zip(&converted)
                .filter_map(|(a, c)| match (a, c) {
                    (Some(a), _) => Some(a.as_array()),
                    (None, c) => c.as_ref().map(|c| c.view()),
                })
                .collect();
            py.detach(|| env.step(&views)).map_err(to_py)?;
        }
        Ok(self.moved())
    }

    /// Observations: one borrowed `[B, obs_dim]` float32 array per agent.
    fn observation_views<'py>(slf: Bound<'py, Self>) -> Vec<Bound<'py, PyArray2<f32>>> {
        let mut me = slf.borrow_mut();
        me.viewed = buffer_addresses(&me.env);
        drop(me);
        let me = slf.borrow();
        me.env
            .observations()
            .iter()
            // SAFETY: the arrays live inside this object (the views' base) and
            // are never reallocated while it lives (checked by `moved`).
            .map(|o| unsafe { PyArray2::borrow_from_array(o, slf.clone().into_any()) })
            .collect()
    }

    /// Rewards `[B, n_agents]` float32 (borrowed).
    fn reward_view<'py>(slf: Bound<'py, Self>) -> Bound<'py, PyArray2<f32>> {
        let me = slf.borrow();
        // SAFETY: as in `observation_views`.
        unsafe { PyArray2::borrow_from_array(me.env.rewards(), slf.clone().into_any()) }
    }

    /// Terminated and truncated flags `[B]` (borrowed).
    fn flag_views<'py>(
        slf: Bound<'py, Self>,
    ) -> (Bound<'py, PyArray1<bool>>, Bound<'py, PyArray1<bool>>) {
        let me = slf.borrow();
        // SAFETY: as in `observation_views`.
        unsafe {
            (
                PyArray1::borrow_from_array(me.env.terminated(), slf.clone().into_any()),
                PyArray1::borrow_from_array(me.env.truncated(), slf.clone().into_any()),
            )
        }
    }

    /// The step info as a dict of borrowed arrays.
    fn info_views<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let me = slf.borrow();
        let i = me.env.info();
        let d = PyDict::new(py);
        let c = || slf.clone().into_any();
        // SAFETY: as in `observation_views`.
        unsafe {
            d.set_item("cost", PyArray2::borrow_from_array(&i.cost, c()))?;
            d.set_item("safety", PyArray2::borrow_from_array(&i.safety, c()))?;
            d.set_item("converged", PyArray1::borrow_from_array(&i.converged, c()))?;
            d.set_item("reset", PyArray1::borrow_from_array(&i.reset, c()))?;
            d.set_item(
                "pcc_import_mw",
                PyArray2::borrow_from_array(&i.pcc_import_mw, c()),
            )?;
            d.set_item("price", PyArray1::borrow_from_array(&i.price, c()))?;
            d.set_item(
                "voltage_violation",
                PyArray1::borrow_from_array(&i.voltage_violation, c()),
            )?;
            d.set_item(
                "network_voltage_safety",
                PyArray1::borrow_from_array(&i.network_voltage_safety, c()),
            )?;
            d.set_item(
                "operator_safety",
                PyArray1::borrow_from_array(&i.operator_safety, c()),
            )?;
            d.set_item("hour", PyArray1::borrow_from_array(&i.hour, c()))?;
            d.set_item("terms", PyArray3::borrow_from_array(&i.terms, c()))?;
            d.set_item(
                "control_iterations",
                PyArray1::borrow_from_array(&i.control_iterations, c()),
            )?;
            d.set_item(
                "controller_moves",
                PyArray2::borrow_from_array(&i.controller_moves, c()),
            )?;
            d.set_item(
                "controller_wear_cost",
                PyArray1::borrow_from_array(&i.controller_wear_cost, c()),
            )?;
            d.set_item("acts_next", PyArray2::borrow_from_array(&i.acts_next, c()))?;
        }
        Ok(d)
    }
}

impl Env {
    fn moved(&self) -> bool {
        !self.viewed.is_empty() && self.viewed != buffer_addresses(&self.env)
    }
}

/// Per-copy convergence, iterations and final mismatch.
type SolveArrays<'py> = (
    Bound<'py, PyArray1<bool>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<f64>>,
);

/// A batched power flow (native core of `powergrid.PowerFlow`).
#[pyclass(module = "powergrid._powergrid", unsendable)]
pub struct PowerFlowCore {
    pf: Box<dyn PowerFlow>,
    description: String,
    n: [usize; 6],
    bus_names: Vec<String>,
}

#[pymethods]
impl PowerFlowCore {
    /// `source` is a path (`.yml` project format or `.json` pandapower) or,
    /// with `is_json=True`, the text of a pandapower JSON network.
    #[new]
    #[pyo3(signature = (source, num_copies, backend="cpu", is_json=false, tolerance_pu=None, gpu_precision="f32", enforce_q_lims=false, gpu_chunks=1, gpu_threads=1))]
    // Python's keyword arguments, one parameter each.
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        source: &str,
        num_copies: usize,
        backend: &str,
        is_json: bool,
        tolerance_pu: Option<f64>,
        gpu_precision: &str,
        enforce_q_lims: bool,
        gpu_chunks: usize,
        gpu_threads: usize,
    ) -> PyResult<Self> {
        let gpu_chunks = at_least_one("gpu_chunks", gpu_chunks)?;
        let gpu_threads = at_least_one("gpu_threads", gpu_threads)?;
        if num_copies == 0 {
            return Err(PyValueError::new_err("num_copies must be at least 1"));
        }
        let kind = backend_kind(backend)?;
        let gpu_precision: powergrid::powerflow::GpuPrecision =
            gpu_precision.parse().map_err(to_py)?;
        let source = source.to_string();
        py.detach(move || {
            let net = if is_json {
                powergrid::network::pandapower::from_str(&source)?
            } else {
                powergrid::network::load(&source)?
            };
            let mut opts = SolverOptions {
                gpu_precision,
                gpu_chunks,
                gpu_threads,
                ..SolverOptions::default()
            };
            if let Some(t) = tolerance_pu {
                opts.tolerance_pu = t;
            }
            opts.enforce_q_lims = enforce_q_lims;
            let n = [
                net.buses.len(),
                net.lines.len(),
                net.trafos.len(),
                net.loads.len(),
                net.sgens.len(),
                net.ext_grids.len(),
            ];
            let bus_names = net.buses.iter().map(|b| b.name.clone()).collect();
            let plan = Arc::new(Plan::new(&net, opts)?);
            let (pf, description) = new_backend(kind, plan, num_copies)?;
            Ok(PowerFlowCore {
                pf,
                description,
                n,
                bus_names,
            })
        })
        .map_err(to_py)
    }

    #[getter]
    fn description(&self) -> String {
        self.description.clone()
    }
    #[getter]
    fn num_copies(&self) -> usize {
        self.pf.batch()
    }
    /// Element counts: buses, lines, trafos, loads, sgens, ext_grids.
    #[getter]
    fn sizes(&self) -> (usize, usize, usize, usize, usize, usize) {
        let n = self.n;
        (n[0], n[1], n[2], n[3], n[4], n[5])
    }
    #[getter]
    fn bus_names(&self) -> Vec<String> {
        self.bus_names.clone()
    }

    /// Inputs as writable borrowed `[B, n]` float64 arrays.
    fn input_views<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let me = slf.borrow();
        let i = me.pf.inputs();
        let d = PyDict::new(py);
        for (name, a) in [
            ("load_p_mw", &i.load_p_mw),
            ("load_q_mvar", &i.load_q_mvar),
            ("load_scaling", &i.load_scaling),
            ("sgen_p_mw", &i.sgen_p_mw),
            ("sgen_q_mvar", &i.sgen_q_mvar),
            ("storage_p_mw", &i.storage_p_mw),
            ("trafo_tap_pos", &i.trafo_tap_pos),
            ("shunt_step", &i.shunt_step),
            ("gen_p_mw", &i.gen_p_mw),
            ("gen_vm_pu", &i.gen_vm_pu),
        ] {
            // SAFETY: the input arrays are owned by the backend inside this
            // object and only ever written in place (never reallocated).
            d.set_item(name, unsafe {
                PyArray2::borrow_from_array(a, slf.clone().into_any())
            })?;
        }
        Ok(d)
    }

    /// Results as read-only borrowed `[B, n]` float64 arrays.
    fn result_views<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let me = slf.borrow();
        let r = me.pf.results();
        let d = PyDict::new(py);
        for (name, a) in [
            ("vm_pu", &r.vm_pu),
            ("va_degree", &r.va_degree),
            ("line_p_from_mw", &r.line_p_from_mw),
            ("line_q_from_mvar", &r.line_q_from_mvar),
            ("line_i_ka", &r.line_i_ka),
            ("line_loading_percent", &r.line_loading_percent),
            ("trafo_loading_percent", &r.trafo_loading_percent),
            ("trafo_p_hv_mw", &r.trafo_p_hv_mw),
            ("trafo_q_hv_mvar", &r.trafo_q_hv_mvar),
            ("trafo_p_lv_mw", &r.trafo_p_lv_mw),
            ("trafo_q_lv_mvar", &r.trafo_q_lv_mvar),
            ("ext_grid_p_mw", &r.ext_grid_p_mw),
            ("ext_grid_q_mvar", &r.ext_grid_q_mvar),
            ("gen_p_mw", &r.gen_p_mw),
            ("gen_q_mvar", &r.gen_q_mvar),
        ] {
            // SAFETY: results are overwritten in place by each solve.
            let v = unsafe { PyArray2::borrow_from_array(a, slf.clone().into_any()) };
            v.readwrite().make_nonwriteable();
            d.set_item(name, v)?;
        }
        Ok(d)
    }

    /// Solve every copy; returns `(converged, iterations, max_mismatch_pu)`
    /// per copy (copied: three short vectors).
    fn solve<'py>(&mut self, py: Python<'py>) -> PyResult<SolveArrays<'py>> {
        let pf = &mut self.pf;
        // Python writes the set-points in place through the input views, past
        // `inputs_mut`: mark them changed so the backend forms every copy's
        // injections again (the CPU keeps them between solves otherwise).
        pf.inputs_mut();
        py.detach(|| pf.solve()).map_err(to_py)?;
        let r = self.pf.results();
        Ok((
            PyArray1::from_slice(py, &r.converged),
            PyArray1::from_slice(py, &r.iterations),
            PyArray1::from_slice(py, &r.max_mismatch_pu),
        ))
    }
}

/// A baseline policy of the library with its per-copy random streams
/// (native core of `powergrid.Policy`): fills one `[B, action_dim]` float32
/// array per agent, which Python reads as borrowed views.
#[pyclass(module = "powergrid._powergrid", unsendable)]
pub struct PolicyCore {
    runner: PolicyRunner,
    actions: Vec<Array2<f32>>,
}

#[pymethods]
impl PolicyCore {
    #[new]
    fn new(name: &str, env: PyRef<'_, Env>, seed: u64) -> PyResult<Self> {
        let policy: Policy = name.parse().map_err(to_py)?;
        Ok(PolicyCore {
            // The same streams as `powergrid rollout --policy NAME --seed SEED`.
            runner: PolicyRunner::new(policy, env.env.batch(), seed),
            actions: PolicyRunner::zero_actions(&env.env),
        })
    }

    /// The action buffers (borrowed; overwritten by `fill`).
    fn action_views<'py>(slf: Bound<'py, Self>) -> Vec<Bound<'py, PyArray2<f32>>> {
        let me = slf.borrow();
        me.actions
            .iter()
            // SAFETY: the buffers live in this object and are never reallocated.
            .map(|a| unsafe { PyArray2::borrow_from_array(a, slf.clone().into_any()) })
            .collect()
    }

    /// Fill the actions for `env`'s current state.
    fn fill(&mut self, env: PyRef<'_, Env>) -> PyResult<()> {
        self.runner.fill(&env.env, &mut self.actions).map_err(to_py)
    }
}

/// Names of the setups shipped in the source tree this package was built from.
#[pyfunction]
fn setup_names() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../setups");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("config.yml").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[pymodule]
fn _powergrid(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Env>()?;
    m.add_class::<PowerFlowCore>()?;
    m.add_class::<PolicyCore>()?;
    m.add_function(wrap_pyfunction!(setup_names, m)?)?;
    m.add(
        "policies",
        PyList::new(m.py(), ["zero", "random", "heuristic"])?,
    )?;
    Ok(())
}
