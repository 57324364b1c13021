//! The optimiser: relaxation exactness against our AC power flow, branch and
//! bound against brute-force enumeration, and bad input.

use powergrid::env::vec_env::Split;
use powergrid::opf::{self, Band, OptimizeOptions, Problem, Status};
use powergrid::setup::Setup;
use std::path::PathBuf;

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn small() -> Setup {
    Setup::load(path("tests/data/opf/small").to_str().unwrap()).unwrap()
}

fn opts(hours: usize) -> OptimizeOptions {
    OptimizeOptions {
        hours: Some(hours),
        ..Default::default()
    }
}

/// A copy of the small setup in a temporary folder, with `edit` applied to
/// its config text and `net_edit` to its network text.
fn edited_small(
    tag: &str,
    edit: impl Fn(String) -> String,
    net_edit: impl Fn(String) -> String,
) -> Setup {
    let dir = std::env::temp_dir().join(format!("powergrid_opf_{tag}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = path("tests/data/opf/small");
    let cfg = std::fs::read_to_string(src.join("config.yml")).unwrap();
    std::fs::write(dir.join("config.yml"), edit(cfg)).unwrap();
    let net = std::fs::read_to_string(src.join("network.yml")).unwrap();
    std::fs::write(dir.join("network.yml"), net_edit(net)).unwrap();
    std::fs::copy(src.join("data.csv"), dir.join("data.csv")).unwrap();
    Setup::load(dir.to_str().unwrap()).unwrap()
}

#[test]
fn small_case_is_exact_and_optimal() {
    let s = small();
    for day in 0..2 {
        let plan = opf::optimize(&s, day, &opts(24)).unwrap();
        assert_eq!(plan.status, Status::Optimal, "day {day}");
        assert_eq!(plan.hours.len(), 24);
        assert_eq!(plan.hours[0].hour, 24 * day + 1);
        let c = opf::check_plan(&s, &plan).unwrap();
        assert_eq!(c.converged, 24);
        assert!(c.max_vm_diff_pu < 2e-3, "day {day}: {c:?}");
        // In fact the cone is tight to the solver's tolerance.
        assert!(c.max_vm_diff_pu < 1e-6, "day {day}: {c:?}");
        assert!(c.max_pcc_diff_mw < 1e-5, "day {day}: {c:?}");
        // Storage stays within its SOC limits and the plan's inputs are in element order.
        for h in &plan.hours {
            assert!(h
                .soc
                .iter()
                .all(|&x| (0.1 - 1e-7..=0.9 + 1e-7).contains(&x)));
            assert_eq!(h.vm_pu.len(), s.network.buses.len());
            assert_eq!(
                h.inputs.sgen_p_mw.as_ref().unwrap().len(),
                s.network.sgens.len()
            );
        }
        assert!(plan.gap <= 1e-6);
        assert!(plan.objective.is_finite() && plan.regularizer >= 0.0);
    }
}

#[test]
fn ieee34_ieee13_day_is_exact() {
    let s = Setup::load("ieee34_ieee13").unwrap();
    // The automatic regulators and capacitor banks are integers of the
    // optimiser: the search may stop at its time limit, and its plan is exact all the same.
    let o = OptimizeOptions {
        split: Split::Test,
        hours: Some(24),
        time_limit_s: 10.0,
        ..Default::default()
    };
    for day in [0, 100] {
        let plan = opf::optimize(&s, day, &o).unwrap();
        assert!(
            matches!(plan.status, Status::Optimal | Status::TimeLimit),
            "{:?}",
            plan.status
        );
        assert!(plan.gap < 0.05, "day {day}: gap {}", plan.gap);
        let c = opf::check_plan(&s, &plan).unwrap();
        assert_eq!(c.converged, 24);
        assert!(c.max_vm_diff_pu < 2e-3, "day {day}: {c:?}");
        assert!(c.max_pcc_diff_mw < 1e-4, "day {day}: {c:?}");
    }
}

#[test]
fn branch_and_bound_matches_enumeration() {
    // 2 hours × (tap −2..2 × capacitor 0..3) = 20² = 400 integer schedules.
    let s = small();
    for day in [0, 2] {
        let p = Problem::new(&s, day, &opts(2)).unwrap();
        let (lo, hi) = p.int_bounds();
        assert_eq!(lo.len(), 4);
        let (status, obj, ints, nodes) = p.branch_and_bound(60.0, 1e-9).unwrap();
        assert_eq!(status, Status::Optimal);
        let mut best = f64::INFINITY;
        let mut arg = vec![];
        let mut count = 0;
        let mut v = lo.clone();
        loop {
            count += 1;
            if let Some(o) = p.solve_fixed(&v).unwrap() {
                if o < best {
                    best = o;
                    arg = v.clone();
                }
            }
            // Next point of the box (odometer).
            let mut i = 0;
            while i < v.len() {
                if v[i] < hi[i] {
                    v[i] += 1.0;
                    break;
                }
                v[i] = lo[i];
                i += 1;
            }
            if i == v.len() {
                break;
            }
        }
        assert_eq!(count, 400);
        let rel = (obj - best).abs() / best.abs().max(1.0);
        assert!(
            rel < 1e-6,
            "day {day}: B&B {obj} ({ints:?}, {nodes} nodes) vs enumeration {best} ({arg:?})"
        );
        // Its integers give its objective.
        let again = p.solve_fixed(&ints).unwrap().unwrap();
        assert!((again - obj).abs() / obj.abs().max(1.0) < 1e-6);
    }
}

#[test]
fn meshed_network_is_a_clear_error() {
    // Close a loop: a line from bus 8 (671) back to bus 3 (632) besides the existing path.
    let s = edited_small(
        "meshed",
        |c| c,
        |n| {
            n.replacen(
                "lines:\n",
                "lines:\n- name: LOOP\n  from_bus: 8\n  to_bus: 3\n  length_km: 0.5\n  r_ohm_per_km: 0.3\n  x_ohm_per_km: 0.3\n  c_nf_per_km: 0.0\n  max_i_ka: 0.4\n",
                1,
            )
        },
    );
    let e = opf::optimize(&s, 0, &opts(2)).unwrap_err().to_string();
    assert!(e.contains("meshed") && e.contains("radial"), "{e}");
    assert!(e.contains("closes a loop"), "{e}");
}

#[test]
fn infeasible_hard_band_is_a_clear_error() {
    let s = edited_small(
        "band",
        |c| c.replace("voltage_band: [0.95, 1.05]", "voltage_band: [1.10, 1.11]"),
        |n| n,
    );
    let o = OptimizeOptions {
        hours: Some(2),
        band: Band::Hard,
        ..Default::default()
    };
    let e = opf::optimize(&s, 0, &o).unwrap_err().to_string();
    assert!(e.contains("infeasible"), "{e}");
    // The same band as a soft penalty is feasible, and pays for the violation.
    let p = opf::optimize(&s, 0, &opts(2)).unwrap();
    assert!(p.objective > 2.0 * 10.0 * 0.05 * 12.0, "{}", p.objective);
}

#[test]
fn day_outside_the_data_is_a_clear_error() {
    let s = small();
    let e = opf::optimize(&s, 10, &opts(24)).unwrap_err().to_string();
    assert!(e.contains("day 10") && e.contains("last start day"), "{e}");
    // The last hour of the data is never available as a step.
    let e = opf::optimize(&s, 3, &opts(24)).unwrap_err().to_string();
    assert!(e.contains("day 3"), "{e}");
    assert!(opf::optimize(&s, 2, &opts(24)).is_ok());
    let e = opf::optimize(&s, 0, &opts(0)).unwrap_err().to_string();
    assert!(e.contains("at least one hour"), "{e}");
}

#[test]
fn days_run_in_parallel_and_agree_with_single_runs() {
    let s = small();
    let all = opf::optimize_days(&s, &[0, 1, 2], &opts(6));
    for (d, r) in all.into_iter().enumerate() {
        let p = r.unwrap();
        let q = opf::optimize(&s, d, &opts(6)).unwrap();
        assert_eq!(p.day, d);
        assert!((p.objective - q.objective).abs() < 1e-9 * q.objective.abs().max(1.0));
    }
}

#[test]
fn replay_through_the_environment_beats_the_baselines() {
    let setup = path("tests/data/opf/small");
    let r = opf::replay::rollout_opf(
        setup.to_str().unwrap(),
        2,
        Split::Test,
        0,
        &OptimizeOptions::default(),
    )
    .unwrap();
    let opf_r = r["mean_reward"].as_f64().unwrap();
    let predicted = r["opf_predicted_mean_reward"].as_f64().unwrap();
    assert_eq!(r["convergence_rate"].as_f64().unwrap(), 1.0);
    // The environment's reward of the replayed plan is the optimiser's to within 1 %.
    assert!(
        (opf_r - predicted).abs() <= 0.01 * predicted.abs(),
        "replay {opf_r} vs plan {predicted}"
    );
    for p in ["zero", "heuristic"] {
        let o = r["others"][p]["mean_reward"].as_f64().unwrap();
        assert!(opf_r >= o, "opf {opf_r} < {p} {o}");
        assert!(r["others"][p]["optimality_gap"].as_f64().unwrap() >= 0.0);
    }
}
