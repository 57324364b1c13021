//! The lane kernel (8 copies per SIMD group) against the scalar kernel: the
//! same arithmetic per lane, so the same results bit for bit — on every
//! reference scenario of the five networks (taps differing per copy, so per-lane
//! B'' factors), on batches that are not a multiple of 8, on active subsets
//! (the control loop's re-solves), warm and cold, and with deferred results.

mod common;
use common::*;
use powergrid::network;
use powergrid::powerflow::{BatchResults, CpuBatch, CpuKernel, Plan, PowerFlow, SolverOptions};
use std::sync::Arc;

const NETWORKS: [&str; 5] = ["ieee13", "ieee34", "ieee123", "cigre_lv", "ieee34_ieee13"];

/// Every table and column of two result sets, exactly.
fn assert_same(what: &str, a: &BatchResults, b: &BatchResults) {
    assert_eq!(a.converged, b.converged, "{what}: converged");
    assert_eq!(a.iterations, b.iterations, "{what}: iterations");
    for (c, (x, y)) in a.max_mismatch_pu.iter().zip(&b.max_mismatch_pu).enumerate() {
        assert!(
            x == y || (x.is_nan() && y.is_nan()),
            "{what}: mismatch of copy {c}: {x:e} vs {y:e}"
        );
    }
    for ((name, ta), (_, tb)) in a.tables().into_iter().zip(b.tables()) {
        for ((idx, x), y) in ta.indexed_iter().zip(tb.iter()) {
            assert!(
                x.to_bits() == y.to_bits() || (x - y).abs() <= 1e-12,
                "{what}: {name}{idx:?} = {x:e} (scalar) vs {y:e} (lanes)"
            );
        }
    }
}

fn pair(plan: &Arc<Plan>, batch: usize) -> (CpuBatch, CpuBatch) {
    (
        CpuBatch::new(plan.clone(), batch).with_kernel(CpuKernel::Scalar),
        CpuBatch::new(plan.clone(), batch).with_kernel(CpuKernel::Lanes),
    )
}

#[test]
fn lanes_equal_scalar_on_every_reference_scenario() {
    for name in NETWORKS {
        let net = network::load(network_yaml(name)).unwrap();
        let reference = reference(name);
        let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
        let n = reference.scenarios.len();
        let (mut s, mut l) = pair(&plan, n);
        assert_eq!(l.kernel(), CpuKernel::Lanes);
        let inputs = reference.to_inputs(&net).unwrap();
        *s.inputs_mut() = inputs.clone();
        *l.inputs_mut() = inputs.clone();
        s.solve().unwrap();
        l.solve().unwrap();
        assert_same(&format!("{name} cold"), s.results(), l.results());
        // Warm: every injection 2 % up, taps as in the scenarios.
        for pf in [&mut s, &mut l] {
            let inp = pf.inputs_mut();
            inp.load_p_mw *= 1.02;
            inp.sgen_p_mw *= 0.98;
        }
        s.solve().unwrap();
        l.solve().unwrap();
        assert_same(&format!("{name} warm"), s.results(), l.results());
        println!(
            "{name}: {n} scenarios, {} converged, lanes = scalar bit for bit",
            l.results().converged.iter().filter(|&&c| c).count()
        );
    }
}

#[test]
fn odd_batches_subsets_and_deferred_results() {
    let net = network::load(network_yaml("ieee34")).unwrap();
    let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    let tap_trafo = net
        .trafos
        .iter()
        .position(|t| t.tap.is_some())
        .expect("ieee34 has regulators");
    let tap = net.trafos[tap_trafo].tap.clone().unwrap();
    for batch in [1, 7, 9, 13, 17] {
        let (mut s, mut l) = pair(&plan, batch);
        for pf in [&mut s, &mut l] {
            let inp = pf.inputs_mut();
            for c in 0..batch {
                // Taps differ per copy (per-lane B''), loads too.
                let pos = (tap.min + (c as f64 * 3.0) % (tap.max - tap.min)).round();
                inp.trafo_tap_pos[(c, tap_trafo)] = pos;
                inp.load_scaling.row_mut(c).fill(0.6 + 0.05 * c as f64);
            }
        }
        s.solve().unwrap();
        l.solve().unwrap();
        assert_same(&format!("batch {batch}"), s.results(), l.results());
        // Only every other copy active (tap moved by one), results deferred and
        // completed afterwards.
        let active: Vec<bool> = (0..batch).map(|c| c % 2 == 0).collect();
        for pf in [&mut s, &mut l] {
            let inp = pf.inputs_mut();
            for c in (0..batch).step_by(2) {
                let p = inp.trafo_tap_pos[(c, tap_trafo)];
                inp.trafo_tap_pos[(c, tap_trafo)] = if p < tap.max { p + 1.0 } else { p - 1.0 };
            }
            pf.defer_results(&[0, 1]);
            pf.solve_active(&active).unwrap();
        }
        // While deferred, vm_pu is complete.
        assert_eq!(
            s.results().vm_pu,
            l.results().vm_pu,
            "batch {batch}: deferred vm"
        );
        s.finish_results();
        l.finish_results();
        assert_same(&format!("batch {batch} active"), s.results(), l.results());
        // Deferred then finished equals a full solve from the same state.
        let mut full = CpuBatch::new(plan.clone(), batch).with_kernel(CpuKernel::Lanes);
        *full.inputs_mut() = l.inputs().clone();
        full.solve().unwrap();
        for c in 0..batch {
            let row = |r: &BatchResults| r.vm_pu.row(c).to_vec();
            let d = max_abs_diff(&row(full.results()), &row(l.results()));
            assert!(
                d < 1e-7,
                "batch {batch} copy {c}: |Δvm| {d:e} vs a fresh solve"
            );
        }
    }
}

#[test]
fn diverging_copies_are_masked_without_touching_their_neighbours() {
    // One copy in a group is pushed far past collapse; the others must still
    // equal the scalar kernel (masking), and the failed one report failure alike.
    let net = network::load(network_yaml("ieee34")).unwrap();
    let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    let (mut s, mut l) = pair(&plan, 8);
    for pf in [&mut s, &mut l] {
        pf.inputs_mut().load_scaling.row_mut(3).fill(40.0);
        pf.solve().unwrap();
    }
    assert!(!l.results().converged[3], "40× load should not converge");
    assert_same("one diverging lane", s.results(), l.results());
}

/// Voltage-dependent (ZIP) loads: the lanes add `S_i·|V|` and `S_z·|V|²` to the
/// mismatch in the scalar kernel's order. ieee34 (taps per copy) with ZIP
/// shares on its loads, and the handcrafted pandapower ZIP net.
#[test]
fn lanes_equal_scalar_with_zip_loads() {
    let mut ieee34 = network::load(network_yaml("ieee34")).unwrap();
    for (k, l) in ieee34.loads.iter_mut().enumerate() {
        l.const_z_p_percent = [30.0, 0.0, 100.0, 10.0][k % 4];
        l.const_i_p_percent = [20.0, 50.0, 0.0, 0.0][k % 4];
        l.const_z_q_percent = [30.0, 70.0, 0.0, 40.0][k % 4];
        l.const_i_q_percent = [20.0, 0.0, 100.0, 0.0][k % 4];
    }
    let zip_ref = powergrid::powerflow::scenarios::ScenarioFile::read(&path(
        "tests/data/pandapower_zip/zip_mixed.reference.json",
    ))
    .unwrap();
    let nets = [
        ("ieee34 ZIP", ieee34, reference("ieee34")),
        (
            "zip_mixed",
            network::load(path("tests/data/pandapower_zip/zip_mixed.json")).unwrap(),
            zip_ref,
        ),
    ];
    for (name, net, reference) in nets {
        let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
        assert!(plan.has_zip, "{name}");
        let n = reference.scenarios.len();
        let (mut s, mut l) = pair(&plan, n);
        let inputs = reference.to_inputs(&net).unwrap();
        *s.inputs_mut() = inputs.clone();
        *l.inputs_mut() = inputs;
        s.solve().unwrap();
        l.solve().unwrap();
        assert!(s.results().converged.iter().any(|&c| c), "{name}");
        assert_same(&format!("{name} cold"), s.results(), l.results());
        for pf in [&mut s, &mut l] {
            let inp = pf.inputs_mut();
            inp.load_p_mw *= 1.02;
            inp.load_q_mvar *= 0.97;
        }
        s.solve().unwrap();
        l.solve().unwrap();
        assert_same(&format!("{name} warm"), s.results(), l.results());
        assert_eq!(
            s.results().vm_pu,
            l.results().vm_pu,
            "{name}: vm bit for bit"
        );
    }
}
