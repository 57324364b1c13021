//! GPU and CPU power flows side by side: throughput in power flows per second
//! over ieee13 / ieee123 / ieee34_ieee13 and batch sizes 1 … 65536.
//!
//! Each timed solve alternates between two input sets (every injection ±10 %), so
//! every solve is a warm start that really iterates. On a CPU-emulated adapter
//! (lavapipe) batches above 16384 are skipped unless `POWERGRID_BENCH_MAX_BATCH`
//! says otherwise. GPU time from timestamp queries is printed where supported.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use powergrid::network;
use powergrid::powerflow::gpu::GpuBatch;
use powergrid::powerflow::{BatchInputs, CpuBatch, Plan, PowerFlow, SolverOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const NETWORKS: [&str; 3] = ["ieee13", "ieee123", "ieee34_ieee13"];
const BATCHES: [usize; 4] = [1, 1024, 16384, 65536];

fn inputs(net: &network::Network, batch: usize, k: f64) -> BatchInputs {
    let mut i = BatchInputs::from_network(net, batch);
    for a in [
        &mut i.load_p_mw,
        &mut i.load_q_mvar,
        &mut i.sgen_p_mw,
        &mut i.sgen_q_mvar,
    ] {
        a.indexed_iter_mut()
            .for_each(|((c, j), v)| *v *= 1.0 + k * (((c * 7 + j * 13) % 21) as f64 / 10.0 - 1.0));
    }
    i
}

fn bench(c: &mut Criterion) {
    let gpu_ok = match powergrid::gpu::GpuContext::shared() {
        Ok(ctx) => {
            eprintln!("GPU: {} (timestamp queries: {})", ctx.info, ctx.timestamps);
            true
        }
        Err(e) => {
            eprintln!("GPU benches skipped: {e}");
            false
        }
    };
    let emulated = powergrid::gpu::GpuContext::shared()
        .map(|c| c.info.is_cpu_emulated())
        .unwrap_or(true);
    let max_batch: usize = std::env::var("POWERGRID_BENCH_MAX_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if emulated { 16384 } else { usize::MAX });
    for name in NETWORKS {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/data/pandapower/{name}.json"));
        let net = network::load(&path).unwrap();
        let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
        let mut g = c.benchmark_group(format!("powerflow/{name}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for batch in BATCHES.into_iter().filter(|&b| b <= max_batch) {
            g.throughput(Throughput::Elements(batch as u64));
            let sets = [inputs(&net, batch, 0.1), inputs(&net, batch, -0.1)];
            let mut cpu = CpuBatch::new(plan.clone(), batch);
            let mut t = 0;
            g.bench_function(BenchmarkId::new("cpu", batch), |b| {
                b.iter(|| {
                    t ^= 1;
                    cpu.inputs_mut().clone_from(&sets[t]);
                    cpu.solve().unwrap()
                })
            });
            if !gpu_ok {
                continue;
            }
            let mut gpu = match GpuBatch::new(plan.clone(), batch) {
                Ok(g) => g,
                Err(e) => {
                    eprintln!("{name} batch {batch}: GPU batch not made: {e}");
                    continue;
                }
            };
            g.bench_function(BenchmarkId::new("gpu", batch), |b| {
                b.iter(|| {
                    t ^= 1;
                    gpu.inputs_mut().clone_from(&sets[t]);
                    gpu.solve().unwrap()
                })
            });
            if let Some(s) = gpu.last_gpu_seconds() {
                eprintln!("{name} batch {batch}: GPU compute time {:.3} ms per solve ({:.0} power flows/s on the device)", s * 1e3, batch as f64 / s);
            }
        }
        g.finish();
    }
}

/// Host time of the GPU backend per solve (waits on the device excluded).
fn bench_host(c: &mut Criterion) {
    if powergrid::gpu::GpuContext::shared().is_err() {
        eprintln!("GPU host benches skipped: no adapter");
        return;
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/pandapower/ieee123.json");
    let net = network::load(&path).unwrap();
    let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    let mut g = c.benchmark_group("gpu_host/ieee123");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    for batch in [1024, 4096] {
        let Ok(mut gpu) = GpuBatch::new(plan.clone(), batch) else {
            continue;
        };
        let sets = [inputs(&net, batch, 0.1), inputs(&net, batch, -0.1)];
        let mut t = 0;
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(BenchmarkId::new("host_per_solve", batch), |b| {
            b.iter_custom(|iters| {
                let h0 = gpu.host_time().unwrap_or_default();
                for _ in 0..iters {
                    t ^= 1;
                    gpu.inputs_mut().clone_from(&sets[t]);
                    gpu.solve().unwrap();
                }
                let h = gpu.host_time().unwrap_or_default().since(&h0);
                Duration::from_secs_f64(h.host_s())
            })
        });
        if let Some(h) = gpu.host_time() {
            let parts: Vec<String> = h
                .per_copy_us()
                .iter()
                .map(|(k, v)| format!("{k} {v:.3}"))
                .collect();
            eprintln!(
                "ieee123 batch {batch}: µs per copy and solve over the run: {}",
                parts.join(", ")
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench, bench_host);
criterion_main!(benches);
