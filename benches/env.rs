//! Vector-environment throughput: `ieee34_ieee13` (automatic DSO regulators and
//! capacitors on) with 1,024 copies on the CPU power-flow backend, under the
//! zero policy (hold) and the random policy (actions drawn inside the timed
//! loop); criterion reports time per batched step, and the throughput line
//! gives env-steps per second (1,024 per iteration). Before measuring, each
//! case prints its mean control iterations per step.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use powergrid::env::{EnvOptions, Policy, PolicyRunner, VecEnv};
use powergrid::powerflow::BackendKind;

fn bench_env(c: &mut Criterion) {
    let batch = 1024;
    let mut g = c.benchmark_group("env");
    g.throughput(Throughput::Elements(batch as u64));
    g.sample_size(20);
    for policy in [Policy::Zero, Policy::Random] {
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
        let mut pol = PolicyRunner::new(policy, batch, 0);
        let mut actions = PolicyRunner::zero_actions(&env);
        // Mean control iterations over a warm-up of 50 steps.
        let mut iters = 0u64;
        for _ in 0..50 {
            pol.fill(&env, &mut actions).expect("policy");
            let views: Vec<_> = actions.iter().map(|a| a.view()).collect();
            env.step(&views).expect("step");
            iters += env
                .info()
                .control_iterations
                .iter()
                .map(|&x| x as u64)
                .sum::<u64>();
        }
        eprintln!(
            "ieee34_ieee13, {policy} policy: mean control iterations {:.3} per env-step",
            iters as f64 / (50 * batch) as f64
        );
        g.bench_function(format!("ieee34_ieee13_cpu_1024_step_{policy}"), |b| {
            b.iter(|| {
                pol.fill(&env, &mut actions).expect("policy");
                let views: Vec<_> = actions.iter().map(|a| a.view()).collect();
                env.step(&views).expect("step")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_env);
criterion_main!(benches);
