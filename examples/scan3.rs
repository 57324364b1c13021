use powergrid::powerflow::{CpuBatch, Plan, PowerFlow, SolverOptions, Variant};
use rand::SeedableRng;
use std::sync::Arc;
fn main() {
    let name = std::env::args().nth(1).unwrap();
    let net = powergrid::network::load(format!("networks/{name}.yml")).unwrap();
    for v in [Variant::XB, Variant::BX] {
        for s in 0..=12 {
            let psi = s as f64 * 0.1;
            let opts = SolverOptions {
                variant: Some((v, psi)),
                ..Default::default()
            };
            let plan = Arc::new(Plan::new(&net, opts).unwrap());
            let mut b = CpuBatch::new(plan, 64);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
            b.solve().unwrap();
            let mut tot = 0.0;
            for _ in 0..10 {
                powergrid::bench::perturb(&net, b.inputs_mut(), &mut rng, 0.03);
                tot += b.solve().unwrap().mean_iterations;
            }
            println!("{v:?} {psi:.1}: warm {:.2}", tot / 10.0);
        }
    }
}
