use powergrid::powerflow::scenarios::ScenarioFile;
use powergrid::powerflow::{CpuBatch, Plan, PowerFlow, SolverOptions, Variant};
use std::sync::Arc;
fn main() {
    let name = std::env::args().nth(1).unwrap();
    let net0 = powergrid::network::load(format!("tests/data/pandapower/{name}.json")).unwrap();
    let rf = ScenarioFile::read(std::path::Path::new(&format!(
        "tests/data/reference/{name}.json"
    )))
    .unwrap();
    for v in [Variant::XB, Variant::BX] {
        for s in [0, 3, 5, 8, 10] {
            let psi = s as f64 * 0.1;
            let mut its = vec![];
            for c in 0..rf.scenarios.len() {
                let mut net = net0.clone();
                let taps = rf.scenarios[c].inputs.trafo_tap_pos.clone().unwrap();
                for (t, p) in net.trafos.iter_mut().zip(&taps) {
                    if let Some(x) = &mut t.tap {
                        x.pos = *p;
                    }
                }
                let steps = rf.scenarios[c].inputs.shunt_step.clone().unwrap();
                for (t, p) in net.shunts.iter_mut().zip(&steps) {
                    t.step = *p;
                }
                let opts = SolverOptions {
                    variant: Some((v, psi)),
                    ..Default::default()
                };
                let plan = Arc::new(Plan::new(&net, opts).unwrap());
                let mut b = CpuBatch::new(plan, 1);
                let mut one = rf.clone();
                one.scenarios = vec![rf.scenarios[c].clone()];
                *b.inputs_mut() = one.to_inputs(&net).unwrap();
                b.solve().unwrap();
                let r = b.results();
                its.push(if r.converged[0] {
                    r.iterations[0].to_string()
                } else {
                    "X".into()
                });
            }
            println!("{v:?} {psi:.1}: {}", its.join(" "));
        }
    }
}
