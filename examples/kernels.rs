//! Scalar vs lane kernel, interleaved in one process (robust to a busy machine):
//! `cargo run --release --example kernels -- ieee123 1024 20`.
//! Prints the best time per power flow of each kernel over the rounds.
use powergrid::bench::perturb;
use powergrid::network;
use powergrid::powerflow::{BatchInputs, CpuBatch, CpuKernel, Plan, PowerFlow, SolverOptions};
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Instant;

fn main() -> powergrid::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or("ieee123");
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let net = network::load(name)?;
    let plan = Arc::new(Plan::new(&net, SolverOptions::default())?);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut a = CpuBatch::new(plan.clone(), batch)
        .with_kernel(CpuKernel::Scalar)
        .with_threads(1)?;
    let mut b = CpuBatch::new(plan.clone(), batch)
        .with_kernel(CpuKernel::Lanes)
        .with_threads(1)?;
    let sets: Vec<BatchInputs> = (0..8)
        .map(|_| {
            let mut inp = a.inputs().clone();
            perturb(&net, &mut inp, &mut rng, 0.03);
            inp
        })
        .collect();
    a.solve()?;
    b.solve()?;
    let (mut ta, mut tb) = (f64::INFINITY, f64::INFINITY);
    let mut worst: f64 = 0.0;
    for r in 0..rounds {
        let s = &sets[r % sets.len()];
        a.inputs_mut().assign(s);
        b.inputs_mut().assign(s);
        let t = Instant::now();
        a.solve()?;
        ta = ta.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        b.solve()?;
        tb = tb.min(t.elapsed().as_secs_f64());
        let d = (&a.results().vm_pu - &b.results().vm_pu)
            .iter()
            .fold(0.0f64, |m, x| m.max(x.abs()));
        worst = worst.max(d);
    }
    println!(
        "{name} batch {batch}: scalar {:.0} pf/s, lanes ({}) {:.0} pf/s, ratio {:.2}, max |dvm| {worst:e}",
        batch as f64 / ta,
        b.lane_isa(),
        batch as f64 / tb,
        ta / tb
    );
    Ok(())
}
