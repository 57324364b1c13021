//! `powergrid bench pf`: power flows per second on a warm batch.

use crate::error::Result;
use crate::network::Network;
use crate::powerflow::{
    new_backend, BackendKind, BatchInputs, CpuBatch, CpuKernel, Plan, PowerFlow, SolverOptions,
};
use rand::{RngExt, SeedableRng};
use std::sync::Arc;
use std::time::Instant;

/// What `bench pf` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PfBench {
    /// Backend description.
    pub backend: String,
    /// Copies per batch.
    pub batch: usize,
    /// Threads (CPU backend: rayon threads).
    pub threads: usize,
    /// Batches solved while measuring.
    pub steps: usize,
    /// Wall time measured in seconds.
    pub seconds: f64,
    /// Power flows per second (batch × steps / wall time).
    pub power_flows_per_s: f64,
    /// The same divided by the number of threads.
    pub power_flows_per_s_per_thread: f64,
    /// Mean iterations per power flow.
    pub mean_iterations: f64,
    /// Share of power flows that converged.
    pub converged_fraction: f64,
    /// Host time of the measured solves per copy (µs) by phase, the host's
    /// own work (`host`) first and the wait on the device last; `None` where the
    /// backend does not count it (the GPU backend does).
    pub host_us_per_copy: Option<std::collections::BTreeMap<String, f64>>,
    /// Bytes of results read back from the device per copy and solve (the
    /// GPU backend; `None` elsewhere).
    pub readback_bytes_per_copy: Option<f64>,
}

/// Every injection of the network's own set-points times `1 + u`, `u` uniform in ±`spread`.
pub fn perturb(net: &Network, inp: &mut BatchInputs, rng: &mut impl rand::Rng, spread: f64) {
    let base = BatchInputs::from_network(net, 1);
    let mut jitter = |dst: &mut ndarray::Array2<f64>, src: &ndarray::Array2<f64>| {
        for ((_, j), v) in dst.indexed_iter_mut() {
            *v = src[(0, j)] * (1.0 + rng.random_range(-spread..=spread));
        }
    };
    jitter(&mut inp.load_p_mw, &base.load_p_mw);
    jitter(&mut inp.load_q_mvar, &base.load_q_mvar);
    jitter(&mut inp.sgen_p_mw, &base.sgen_p_mw);
    jitter(&mut inp.sgen_q_mvar, &base.sgen_q_mvar);
    jitter(&mut inp.storage_p_mw, &base.storage_p_mw);
}

/// Solve `batch` copies repeatedly, each step perturbing every injection by up to
/// ±3 % around the base case (as consecutive RL steps do), for at least `seconds`.
/// The first (cold) solve is not measured.
pub fn bench_pf(
    net: &Network,
    batch: usize,
    backend: BackendKind,
    seconds: f64,
) -> Result<PfBench> {
    let plan = Arc::new(Plan::new(net, SolverOptions::default())?);
    bench_plan(plan, batch, backend, seconds)
}

/// [`bench_pf`] on a plan already built.
pub fn bench_plan(
    plan: Arc<Plan>,
    batch: usize,
    backend: BackendKind,
    seconds: f64,
) -> Result<PfBench> {
    bench_plan_with(plan, batch, backend, seconds, None)
}

/// [`bench_plan`]; with the CPU backend, `cpu_kernel` picks the kernel
/// (`None`: the default, [`CpuKernel::Lanes`]).
pub fn bench_plan_with(
    plan: Arc<Plan>,
    batch: usize,
    backend: BackendKind,
    seconds: f64,
    cpu_kernel: Option<CpuKernel>,
) -> Result<PfBench> {
    let (mut pf, desc): (Box<dyn PowerFlow>, String) = match (backend, cpu_kernel) {
        (BackendKind::Cpu, Some(kind)) => {
            crate::powerflow::memory::check(&plan, batch, backend)?;
            let b = CpuBatch::new(plan.clone(), batch).with_kernel(kind);
            let d = b.describe();
            (Box::new(b), d)
        }
        _ => new_backend(backend, plan.clone(), batch)?,
    };
    let net = &plan.net;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    // Pre-generate a few perturbed input sets so that RNG cost is not measured.
    let sets: Vec<BatchInputs> = (0..8)
        .map(|_| {
            let mut inp = pf.inputs().clone();
            perturb(net, &mut inp, &mut rng, 0.03);
            inp
        })
        .collect();
    *pf.inputs_mut() = sets[0].clone();
    pf.solve()?;
    let (mut steps, mut iters, mut conv) = (0usize, 0.0, 0usize);
    let host0 = pf.host_time();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || steps < 3 {
        pf.inputs_mut().assign(&sets[(steps + 1) % sets.len()]);
        let s = pf.solve()?;
        iters += s.mean_iterations;
        conv += s.converged;
        steps += 1;
    }
    let dt = start.elapsed().as_secs_f64();
    let threads = pf.threads();
    let readback_bytes_per_copy = (pf.host_time().zip(host0))
        .map(|(h, h0)| h.since(&h0))
        .map(|h| h.read_bytes as f64 / h.copy_solves.max(1) as f64);
    let host_us_per_copy = pf.host_time().zip(host0).map(|(h, h0)| {
        h.since(&h0)
            .per_copy_us()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    });
    let rate = (batch * steps) as f64 / dt;
    Ok(PfBench {
        backend: desc,
        batch,
        threads,
        steps,
        seconds: dt,
        power_flows_per_s: rate,
        power_flows_per_s_per_thread: rate / threads as f64,
        mean_iterations: iters / steps as f64,
        converged_fraction: conv as f64 / (batch * steps) as f64,
        host_us_per_copy,
        readback_bytes_per_copy,
    })
}
