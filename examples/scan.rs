use powergrid::powerflow::scenarios::ScenarioFile;
use powergrid::powerflow::{CpuBatch, Plan, PowerFlow, SolverOptions, Variant};
use std::sync::Arc;
fn main() {
    let name = std::env::args().nth(1).unwrap();
    let net = powergrid::network::load(format!("tests/data/pandapower/{name}.json")).unwrap();
    let rf = ScenarioFile::read(std::path::Path::new(&format!(
        "tests/data/reference/{name}.json"
    )))
    .unwrap();
    for v in [Variant::XB, Variant::BX] {
        for s in 0..=12 {
            let psi = s as f64 * 0.1;
            let opts = SolverOptions {
                variant: Some((v, psi)),
                ..Default::default()
            };
            let plan = Arc::new(Plan::new(&net, opts).unwrap());
            let mut b = CpuBatch::new(plan, rf.scenarios.len());
            *b.inputs_mut() = rf.to_inputs(&net).unwrap();
            b.solve().unwrap();
            let r = b.results();
            let its: Vec<String> = (0..r.batch())
                .map(|c| {
                    if r.converged[c] {
                        r.iterations[c].to_string()
                    } else {
                        "X".into()
                    }
                })
                .collect();
            println!("{v:?} {psi:.1}: {}", its.join(" "));
        }
    }
}
