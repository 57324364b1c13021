//! The batched control loop against pandapower's `runpp(run_control=True)`:
//! ieee34, ieee123 and ieee34_ieee13 with a DiscreteTapControl on every
//! tap-changing trafo and a DiscreteShuntController on every shunt, and the
//! small `features` network with the directions the feeders leave out (HV-side
//! tap, negative tap step, a controller measuring the slack bus), imported from
//! the pandapower JSON (`tests/data/control/make_reference.py`), every scenario
//! one copy of a batch, on the CPU and on the GPU.

mod common;
use common::*;
use powergrid::control::{ControlLoop, ControlOptions};
use powergrid::network::{self, Controller, Network};
use powergrid::powerflow::gpu::GpuBatch;
use powergrid::powerflow::scenarios::ScenarioFile;
use powergrid::powerflow::{CpuBatch, Plan, PowerFlow, SolverOptions};
use std::sync::Arc;

const NETS: [&str; 4] = ["ieee34", "ieee123", "ieee34_ieee13", "features"];

fn load(name: &str) -> (Network, ScenarioFile) {
    let net = network::load(path(&format!("tests/data/control/{name}.json"))).unwrap();
    let reference =
        ScenarioFile::read(&path(&format!("tests/data/control/{name}_reference.json"))).unwrap();
    (net, reference)
}

fn expect_f64s(s: &powergrid::powerflow::scenarios::Scenario, key: &str) -> Vec<f64> {
    s.extra["results"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// Figures of one network on one backend.
#[derive(Default, Debug)]
struct Figures {
    scenarios: usize,
    settled: usize,
    unsettled: usize,
    max_dvm: f64,
    iterations: f64,
    /// Copy power flows skipped on predicted voltages.
    skipped: u64,
}

/// Runs the control loop on `pf` for every scenario and checks it against
/// pandapower: same settled taps and steps, same number of control iterations,
/// |Δvm| ≤ `vm_tol`; where pandapower raised `ControllerNotConverged`, the copy
/// is reported unsettled.
fn check(
    name: &str,
    net: &Network,
    reference: &ScenarioFile,
    pf: &mut dyn PowerFlow,
    vm_tol: f64,
) -> Figures {
    check_with(name, net, reference, pf, vm_tol, ControlOptions::default())
}

/// [`check`] with the control loop's `options`.
fn check_with(
    name: &str,
    net: &Network,
    reference: &ScenarioFile,
    pf: &mut dyn PowerFlow,
    vm_tol: f64,
    options: ControlOptions,
) -> Figures {
    let b = reference.scenarios.len();
    *pf.inputs_mut() = reference.to_inputs(net).unwrap();
    let mut ctl = ControlLoop::new(net, &net.controllers, b, options).unwrap();
    let summary = ctl.run(pf).unwrap();
    assert_eq!(summary.batch, b);
    let (r, inp) = (pf.results(), pf.inputs());
    let mut f = Figures {
        scenarios: b,
        ..Default::default()
    };
    for (c, s) in reference.scenarios.iter().enumerate() {
        let settled = s.extra["converged"].as_bool().unwrap();
        let error = s.extra["error"].as_str().unwrap_or("");
        assert!(!ctl.failed()[c], "{name} scenario {c}: power flow failed");
        if !settled {
            assert_eq!(error, "ControllerNotConverged", "{name} scenario {c}");
            assert!(
                !ctl.settled()[c],
                "{name} scenario {c}: pandapower does not settle, we did after {} iterations",
                ctl.iterations()[c]
            );
            assert_eq!(
                ctl.iterations()[c],
                30,
                "{name} scenario {c}: iterations at the cap"
            );
            f.unsettled += 1;
            continue;
        }
        assert!(
            ctl.settled()[c],
            "{name} scenario {c}: not settled after {} iterations",
            ctl.iterations()[c]
        );
        assert!(r.converged[c]);
        let taps = inp.trafo_tap_pos.row(c).to_vec();
        let steps = inp.shunt_step.row(c).to_vec();
        assert_eq!(
            taps,
            expect_f64s(s, "trafo_tap_pos"),
            "{name} scenario {c}: taps"
        );
        assert_eq!(
            steps,
            expect_f64s(s, "shunt_step"),
            "{name} scenario {c}: shunt steps"
        );
        let want_it = s.extra["control_iterations"].as_u64().unwrap() as u32;
        assert_eq!(
            ctl.iterations()[c],
            want_it,
            "{name} scenario {c}: control iterations"
        );
        // Moves add up to the distance travelled at least.
        let start = s.inputs.trafo_tap_pos.as_ref().unwrap();
        let travelled: f64 = taps.iter().zip(start).map(|(a, b)| (a - b).abs()).sum();
        let tap_moves: u32 = net
            .controllers
            .iter()
            .enumerate()
            .filter(|(_, k)| matches!(k, Controller::DiscreteTap(_)))
            .map(|(j, _)| ctl.moves()[(c, j)])
            .sum();
        assert!(
            tap_moves as f64 >= travelled,
            "{name} scenario {c}: moves {tap_moves} < {travelled}"
        );
        let dvm = max_abs_diff(r.vm_pu.row(c).as_slice().unwrap(), &expect_f64s(s, "vm_pu"));
        assert!(dvm <= vm_tol, "{name} scenario {c}: max |Δvm| = {dvm:e}");
        f.max_dvm = f.max_dvm.max(dvm);
        f.settled += 1;
        f.iterations += ctl.iterations()[c] as f64;
    }
    f.iterations /= f.settled.max(1) as f64;
    f.skipped = ctl.skipped_power_flows();
    eprintln!("{name} on {}: {f:?}", pf.describe());
    f
}

fn controllers_of(net: &Network) -> (usize, usize) {
    let taps = net.trafos.iter().filter(|t| t.tap.is_some()).count();
    (taps, net.shunts.len())
}

#[test]
fn cpu_settles_like_pandapower() {
    let mut total = Figures::default();
    for name in NETS {
        let (net, reference) = load(name);
        let (taps, shunts) = controllers_of(&net);
        assert!(taps > 0 && shunts > 0);
        if name == "features" {
            // Two on the HV-side tap (one measuring the slack bus), one on the
            // negative-step tap, one on the capacitor.
            assert_eq!(net.controllers.len(), 4);
        } else {
            assert_eq!(
                net.controllers.len(),
                taps + shunts,
                "{name}: one controller per tap trafo and shunt"
            );
        }
        let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
        let mut cpu = CpuBatch::new(plan, reference.scenarios.len());
        let f = check(name, &net, &reference, &mut cpu, 1e-6);
        assert!(
            f.settled >= 12,
            "{name}: only {} settled scenarios",
            f.settled
        );
        total.scenarios += f.scenarios;
        total.settled += f.settled;
        total.unsettled += f.unsettled;
        total.max_dvm = total.max_dvm.max(f.max_dvm);
        total.iterations += f.iterations * f.settled as f64;
    }
    total.iterations /= total.settled as f64;
    eprintln!("all networks, CPU: {total:?}");
}

/// A batch of several hundred copies (the reference scenarios repeated), so
/// that the loop reads the measured voltages in parallel on the backend's pool:
/// the same settled taps, steps and iterations as pandapower, copy by copy.
#[test]
fn cpu_settles_like_pandapower_in_a_batch_read_in_parallel() {
    let (net, mut reference) = load("ieee34_ieee13");
    let one = reference.scenarios.clone();
    while reference.scenarios.len() < 300 {
        reference.scenarios.extend(one.iter().cloned());
    }
    let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    let mut cpu = CpuBatch::new(plan, reference.scenarios.len());
    let f = check("ieee34_ieee13, repeated", &net, &reference, &mut cpu, 1e-6);
    assert!(f.scenarios >= 300 && f.settled >= 3 * 12);
}

/// Moves on predicted voltages (`ControlOptions::predict_margin_pu` at the
/// shipped setups' 3e-3 p.u., alone and with their 1e-3 screening): the same
/// settled taps, steps and control iterations as pandapower on every
/// reference scenario, with power flows really skipped (on both backends).
#[test]
fn predicted_moves_settle_like_pandapower() {
    let combos = [(None, 3e-3), (Some(1e-3), 3e-3)];
    let gpu = gpu_or_skip("predicted_moves_settle_like_pandapower (GPU part)");
    for (screening, margin) in combos {
        let options = ControlOptions {
            screening_tolerance_pu: screening,
            predict_margin_pu: Some(margin),
            ..Default::default()
        };
        let mut skipped = 0;
        for name in NETS {
            let (net, reference) = load(name);
            let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
            let b = reference.scenarios.len();
            let mut cpu = CpuBatch::new(plan.clone(), b);
            let f = check_with(name, &net, &reference, &mut cpu, 1e-6, options);
            skipped += f.skipped;
            if gpu {
                let mut gpu = GpuBatch::new(plan, b).unwrap();
                let g = check_with(name, &net, &reference, &mut gpu, 1e-6, options);
                assert_eq!(
                    g.skipped > 0,
                    f.skipped > 0,
                    "{name}: GPU and CPU skip alike"
                );
            }
        }
        println!("screening {screening:?}, margin {margin:e}: {skipped} power flows skipped");
        assert!(skipped >= 20, "only {skipped} power flows skipped");
    }
}

#[test]
fn yaml_round_trip_keeps_controllers() {
    for name in NETS {
        let (net, _) = load(name);
        let text = network::yaml::to_string(&net).unwrap();
        assert!(text.contains("controllers:") && text.contains("type: discrete_tap"));
        let back = network::yaml::from_str(&text).unwrap();
        assert_eq!(back, net, "{name}: YAML round trip");
        back.validate().unwrap();
    }
}

/// A backend that solves every copy every time (the trait's default
/// `solve_active`), to check that skipping settled copies changes nothing.
struct AllCopies(CpuBatch);

impl PowerFlow for AllCopies {
    fn describe(&self) -> String {
        "cpu, every copy".into()
    }
    fn batch(&self) -> usize {
        self.0.batch()
    }
    fn inputs(&self) -> &powergrid::powerflow::BatchInputs {
        self.0.inputs()
    }
    fn inputs_mut(&mut self) -> &mut powergrid::powerflow::BatchInputs {
        self.0.inputs_mut()
    }
    fn solve(&mut self) -> powergrid::Result<powergrid::powerflow::SolveSummary> {
        self.0.solve()
    }
    fn results(&self) -> &powergrid::powerflow::BatchResults {
        self.0.results()
    }
    fn reset_start(&mut self, copies: &[usize]) {
        self.0.reset_start(copies)
    }
}

#[test]
fn skipping_settled_copies_changes_nothing() {
    let (net, reference) = load("ieee123");
    let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    let b = reference.scenarios.len();
    let mut skip = CpuBatch::new(plan.clone(), b);
    let mut all = AllCopies(CpuBatch::new(plan, b));
    let a = check("ieee123", &net, &reference, &mut skip, 1e-6);
    let c = check("ieee123", &net, &reference, &mut all, 1e-6);
    assert_eq!(skip.inputs(), all.inputs());
    let d = max_abs_diff(
        skip.results().vm_pu.as_slice().unwrap(),
        all.results().vm_pu.as_slice().unwrap(),
    );
    assert!(d <= 1e-9, "vm differs by {d:e}");
    assert_eq!(a.iterations, c.iterations);
}

#[test]
fn gpu_settles_like_pandapower() {
    if !gpu_or_skip("gpu_settles_like_pandapower") {
        return;
    }
    for name in NETS {
        let (net, reference) = load(name);
        let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
        let mut gpu = GpuBatch::new(plan, reference.scenarios.len()).unwrap();
        check(name, &net, &reference, &mut gpu, 1e-6);
    }
}

/// Screening solves (`ControlOptions::screening_tolerance_pu`): every copy
/// still ends settled on fully converged results (each controlled voltage in
/// its band or its tap at a limit, each shunt in `vm_set ± tol` or at a limit),
/// and on these reference scenarios on the same taps and steps as pandapower.
#[test]
fn screening_solves_settle_on_fully_converged_results() {
    // 1e-3 is what the shipped setups use.
    for (name, tol) in NETS.iter().flat_map(|n| [(n, 1e-4), (n, 1e-3)]) {
        let (net, reference) = load(name);
        let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
        let b = reference.scenarios.len();
        let mut pf = CpuBatch::new(plan.clone(), b);
        *pf.inputs_mut() = reference.to_inputs(&net).unwrap();
        let opts = ControlOptions {
            screening_tolerance_pu: Some(tol),
            ..Default::default()
        };
        let mut ctl = ControlLoop::new(&net, &net.controllers, b, opts).unwrap();
        ctl.run(&mut pf).unwrap();
        // The final results are converged to the plan's tolerance.
        let res = pf.results();
        let mut same = 0;
        for (c, s) in reference.scenarios.iter().enumerate() {
            if !res.converged[c] {
                continue;
            }
            assert!(
                res.max_mismatch_pu[c] <= plan.options.tolerance_pu,
                "{name} copy {c}: final mismatch {:e}",
                res.max_mismatch_pu[c]
            );
            let taps = expect_f64s(s, "trafo_tap_pos");
            let steps = expect_f64s(s, "shunt_step");
            let settled_in_pp = s.extra["converged"].as_bool().unwrap();
            if !settled_in_pp {
                continue;
            }
            assert!(ctl.settled()[c], "{name} copy {c} did not settle");
            let tp: Vec<f64> = pf.inputs().trafo_tap_pos.row(c).to_vec();
            let st: Vec<f64> = pf.inputs().shunt_step.row(c).to_vec();
            same += (tp == taps && st == steps) as usize;
        }
        // The settled-state conditions themselves: one more full-tolerance
        // control pass moves nothing.
        let mut again =
            ControlLoop::new(&net, &net.controllers, b, ControlOptions::default()).unwrap();
        let before = pf.inputs().clone();
        again.run(&mut pf).unwrap();
        for c in 0..b {
            if ctl.settled()[c] {
                assert_eq!(again.iterations()[c], 0, "{name} copy {c} was not settled");
                assert_eq!(
                    pf.inputs().trafo_tap_pos.row(c),
                    before.trafo_tap_pos.row(c),
                    "{name} copy {c}"
                );
            }
        }
        println!("{name}: screening at {tol:e} p.u. settles {same} scenarios on pandapower's taps and steps");
        let settled_pp = reference
            .scenarios
            .iter()
            .filter(|s| s.extra["converged"].as_bool().unwrap())
            .count();
        assert_eq!(
            same, settled_pp,
            "{name}: screening at {tol:e} changed a settled position"
        );
    }
}
