//! Control-loop throughput: `ieee34_ieee13` with its five tap controllers and
//! two shunt controllers (`tests/data/control/ieee34_ieee13.json`), 1024 copies
//! on the CPU. Each step changes every copy's load level a little (a slow
//! per-copy sinusoid, as hourly profiles do) and runs the controllers to
//! settlement from the taps and steps the previous step left; criterion reports
//! the time per batched step (1024 controlled power flows), and the mean
//! control iterations per step are printed.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use powergrid::control::{ControlLoop, ControlOptions};
use powergrid::powerflow::{CpuBatch, Plan, PowerFlow, SolverOptions};
use std::sync::Arc;

fn bench_control(c: &mut Criterion) {
    let batch = 1024;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/control/ieee34_ieee13.json"
    );
    let net = powergrid::network::load(path).expect("ieee34_ieee13 with controllers");
    let plan = Arc::new(Plan::new(&net, SolverOptions::default()).expect("plan"));
    let mut pf = CpuBatch::new(plan, batch);
    let base = pf.inputs().load_scaling.clone();
    let mut ctl =
        ControlLoop::new(&net, &net.controllers, batch, ControlOptions::default()).expect("loop");
    // (step, sum of mean iterations, runs)
    let mut stats = (0usize, 0.0f64, 0usize);
    // `ctl = None`: the same load changes with the taps and steps frozen (plain power flows).
    let advance =
        |pf: &mut CpuBatch, ctl: Option<&mut ControlLoop>, stats: &mut (usize, f64, usize)| {
            stats.0 += 1;
            let inp = pf.inputs_mut();
            for copy in 0..batch {
                let level = 0.6 + 0.35 * ((stats.0 as f64) * 0.26 + copy as f64 * 0.37).sin();
                for (s, b) in inp
                    .load_scaling
                    .row_mut(copy)
                    .iter_mut()
                    .zip(base.row(copy))
                {
                    *s = b * level;
                }
            }
            match ctl {
                Some(ctl) => {
                    let s = ctl.run(pf).expect("control");
                    stats.1 += s.mean_iterations;
                    stats.2 += 1;
                }
                None => {
                    pf.solve().expect("power flow");
                }
            }
        };
    // Warm-up: taps and steps settle into their daily range.
    for _ in 0..24 {
        advance(&mut pf, Some(&mut ctl), &mut stats);
    }
    stats.1 = 0.0;
    stats.2 = 0;
    let mut g = c.benchmark_group("control");
    g.throughput(Throughput::Elements(batch as u64));
    g.sample_size(10);
    g.bench_function("ieee34_ieee13_cpu_1024_step", |b| {
        b.iter(|| advance(&mut pf, Some(&mut ctl), &mut stats))
    });
    let mut frozen = (0usize, 0.0, 0usize);
    g.bench_function("ieee34_ieee13_cpu_1024_step_frozen_taps", |b| {
        b.iter(|| advance(&mut pf, None, &mut frozen))
    });
    g.finish();
    eprintln!(
        "mean control iterations per step: {:.3} over {} steps",
        stats.1 / stats.2.max(1) as f64,
        stats.2
    );
}

criterion_group!(benches, bench_control);
criterion_main!(benches);
