//! Vector-environment throughput: `ieee34_ieee13` with 1024 copies on the CPU
//! power-flow backend, zero actions; criterion reports time per batched step,
//! and the throughput line gives env-steps per second (1024 per iteration).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array2;
use powergrid::env::{EnvOptions, VecEnv};
use powergrid::powerflow::BackendKind;

fn bench_env(c: &mut Criterion) {
    let batch = 1024;
    let mut env = VecEnv::from_name(
        "ieee34_ieee13",
        &EnvOptions {
            batch,
            backend: BackendKind::Cpu,
            ..Default::default()
        },
    )
    .expect("setup ieee34_ieee13");
    env.reset(0).expect("reset");
    let actions: Vec<Array2<f32>> = env
        .action_dims()
        .iter()
        .map(|&d| Array2::zeros((batch, d)))
        .collect();
    let views: Vec<_> = actions.iter().map(|a| a.view()).collect();
    let mut g = c.benchmark_group("env");
    g.throughput(Throughput::Elements(batch as u64));
    g.sample_size(20);
    g.bench_function("ieee34_ieee13_cpu_1024_step", |b| {
        b.iter(|| env.step(&views).expect("step"))
    });
    g.finish();
}

criterion_group!(benches, bench_env);
criterion_main!(benches);
