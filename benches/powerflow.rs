//! CPU power flows per second over the five shipped networks and several batch
//! sizes, warm-started: each timed solve switches to another of eight input sets
//! in which every injection is perturbed by up to ±3 % (as consecutive RL steps do),
//! the same workload as `powergrid bench pf`. Each network and batch size is
//! measured with the scalar kernel (one copy at a time) and the lane kernel
//! (eight copies per SIMD group), on one thread so that the two compare per core.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use powergrid::bench::perturb;
use powergrid::network;
use powergrid::powerflow::{BatchInputs, CpuBatch, CpuKernel, Plan, PowerFlow, SolverOptions};
use rand::SeedableRng;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const NETWORKS: [&str; 5] = ["ieee13", "ieee34", "ieee123", "cigre_lv", "ieee34_ieee13"];
const BATCHES: [usize; 3] = [1, 256, 4096];

fn bench(c: &mut Criterion) {
    for name in NETWORKS {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("networks/{name}.yml"));
        let net = network::load(&path).expect("shipped network");
        let plan = Arc::new(Plan::new(&net, SolverOptions::default()).expect("plan"));
        let mut g = c.benchmark_group(format!("cpu_pf/{name}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        for (batch, kernel) in BATCHES
            .into_iter()
            .flat_map(|b| [(b, CpuKernel::Scalar), (b, CpuKernel::Lanes)])
        {
            let mut pf = CpuBatch::new(plan.clone(), batch)
                .with_kernel(kernel)
                .with_threads(1)
                .expect("a pool of one thread");
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let sets: Vec<BatchInputs> = (0..8)
                .map(|_| {
                    let mut inp = pf.inputs().clone();
                    perturb(&net, &mut inp, &mut rng, 0.03);
                    inp
                })
                .collect();
            pf.solve().expect("cold solve");
            let mut k = 0;
            g.throughput(Throughput::Elements(batch as u64));
            let id = match kernel {
                CpuKernel::Scalar => "scalar",
                CpuKernel::Lanes => "lanes",
            };
            g.bench_function(BenchmarkId::new(id, batch), |b| {
                b.iter(|| {
                    k = (k + 1) % sets.len();
                    pf.inputs_mut().assign(&sets[k]);
                    pf.solve().expect("solve")
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
