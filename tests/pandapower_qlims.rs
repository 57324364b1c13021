//! `SolverOptions::enforce_q_lims` (pandapower's `runpp(enforce_q_lims=True)`)
//! against pandapower at `tolerance_mva = 1e-10`: `case118` as shipped,
//! `case300` with its binding limits eased (runpp does not converge with them
//! as they are), and a handcrafted net (two gens at one bus, a gen at the
//! ext_grid's bus with limits, one with only an upper limit, one with both
//! limits 0, one without limits, one behind a trafo) whose copies hold
//! different gens (data and script in `tests/data/pandapower_qlims/`).
//! Both CPU kernels and the GPU (f32 and f64), warm starts, the option off,
//! the CLI flag, bad input.

mod common;
use common::*;
use powergrid::network::Network;
use powergrid::powerflow::gpu::GpuBatch;
use powergrid::powerflow::scenarios::ScenarioFile;
use powergrid::powerflow::{
    BatchResults, CpuBatch, CpuKernel, GpuPrecision, Plan, PowerFlow, SolverOptions,
};
use std::sync::Arc;

const NETS: [&str; 3] = ["qlims", "case118", "case300"];

fn load(name: &str) -> (Network, ScenarioFile) {
    reference_case("pandapower_qlims", name)
}

fn options(enforce_q_lims: bool) -> SolverOptions {
    SolverOptions {
        tolerance_pu: 1e-10,
        enforce_q_lims,
        ..SolverOptions::default()
    }
}

fn plan(net: &Network, enforce_q_lims: bool) -> Arc<Plan> {
    Arc::new(Plan::new(net, options(enforce_q_lims)).unwrap())
}

/// The reference's held gens (1: pandapower's Q at a limit) of scenario `c`.
fn ref_held(reference: &ScenarioFile, c: usize) -> Vec<bool> {
    ref_table(reference, c, "gen_held")
        .iter()
        .map(|&x| x == 1.0)
        .collect()
}

/// Worst `[|Δvm| p.u., |Δva| °, |Δline%|, |Δtrafo%|, |ΔP_ext| MW, |ΔQ_ext|
/// Mvar, |ΔQ_gen| Mvar]` over the scenarios, and every copy's held gens
/// checked against pandapower's.
fn check(name: &str, what: &str, reference: &ScenarioFile, batch: &CpuBatch) -> [f64; 7] {
    let held = |c| batch.gens_at_q_limit(c);
    check_with(
        name,
        what,
        reference,
        batch.results(),
        &held,
        [1e-8, 1e-6, 1e-5, 1e-6],
    )
}

/// [`check`] of any backend's results and held gens, within `[vm p.u., va °,
/// loading pp, MW/Mvar]`.
fn check_with(
    name: &str,
    what: &str,
    reference: &ScenarioFile,
    r: &BatchResults,
    held: &dyn Fn(usize) -> Vec<bool>,
    tol: [f64; 4],
) -> [f64; 7] {
    let six = worst_all_converged(name, reference, r);
    let mut w = [six[0], six[1], six[2], six[3], six[4], six[5], 0.0];
    for c in 0..reference.scenarios.len() {
        w[6] = w[6].max(table_diff(r, reference, c, "gen_q_mvar"));
        assert_eq!(
            held(c),
            ref_held(reference, c),
            "{name} {what} scenario {c}: held gens"
        );
    }
    eprintln!(
        "{name} ({what}): worst |Δvm| {:.2e} p.u., |Δva| {:.2e}°, |Δline%| {:.2e}, |Δtrafo%| {:.2e}, \
         |ΔP_ext| {:.2e} MW, |ΔQ_ext| {:.2e} Mvar, |ΔQ_gen| {:.2e} Mvar",
        w[0], w[1], w[2], w[3], w[4], w[5], w[6]
    );
    assert_worst(name, what, &w, tol[0], tol[1], Some(tol[2]));
    assert!(
        w[4] <= tol[3],
        "{name} {what}: max |Δext_grid P| = {:e} MW",
        w[4]
    );
    assert!(
        w[5] <= tol[3],
        "{name} {what}: max |Δext_grid Q| = {:e} Mvar",
        w[5]
    );
    assert!(
        w[6] <= tol[3],
        "{name} {what}: max |Δgen Q| = {:e} Mvar",
        w[6]
    );
    w
}

fn solve(net: &Network, reference: &ScenarioFile, kernel: CpuKernel) -> CpuBatch {
    let mut batch = CpuBatch::new(plan(net, true), reference.scenarios.len()).with_kernel(kernel);
    solve_scenarios(&mut batch, net, reference);
    batch
}

#[test]
fn cpu_kernels_match_pandapower_enforce_q_lims() {
    for name in NETS {
        let (net, reference) = load(name);
        // Every reference holds some gen, on both sides somewhere.
        let held: usize = (0..reference.scenarios.len())
            .map(|c| ref_held(&reference, c).iter().filter(|&&x| x).count())
            .sum();
        assert!(held > 0, "{name}: no gen held in the reference");
        let scalar = solve(&net, &reference, CpuKernel::Scalar);
        check(name, "CPU scalar", &reference, &scalar);
        let lanes = solve(&net, &reference, CpuKernel::Lanes);
        check(name, "CPU lanes", &reference, &lanes);
        // The lanes solve the first round, the scalar kernel the rest: the
        // scalar kernel's results bit for bit.
        for ((key, a), (_, b)) in scalar
            .results()
            .tables()
            .into_iter()
            .zip(lanes.results().tables())
        {
            assert_eq!(a, b, "{name}: {key}, scalar vs lanes");
        }
        assert_eq!(
            scalar.results().iterations,
            lanes.results().iterations,
            "{name}"
        );
    }
}

/// The handcrafted net's copies hold different sets of gens (so the per-copy
/// PV masks and B'' factors are really per copy), on both sides of the limits.
#[test]
fn copies_hold_different_gens() {
    let (net, reference) = load("qlims");
    let sets: std::collections::BTreeSet<Vec<bool>> = (0..reference.scenarios.len())
        .map(|c| ref_held(&reference, c))
        .collect();
    assert!(sets.len() >= 4, "{} distinct held sets", sets.len());
    let batch = solve(&net, &reference, CpuKernel::Lanes);
    let r = batch.results();
    let (mut at_min, mut at_max) = (0, 0);
    for c in 0..reference.scenarios.len() {
        for (g, held) in batch.gens_at_q_limit(c).into_iter().enumerate() {
            let (lo, hi) = net.gens[g].q_range();
            let q = r.gen_q_mvar[(c, g)];
            if held {
                // A held gen's Q is its limit exactly.
                assert!(
                    q == lo || q == hi,
                    "copy {c} gen {g}: Q {q} not at [{lo}, {hi}]"
                );
                at_min += (q == lo) as usize;
                at_max += (q == hi && lo != hi) as usize;
            } else {
                assert!(
                    lo <= q && q <= hi,
                    "copy {c} gen {g}: Q {q} outside [{lo}, {hi}]"
                );
            }
        }
    }
    assert!(
        at_min > 0 && at_max > 0,
        "held at min {at_min}, at max {at_max}"
    );
}

/// Warm starts: every copy solved at the heaviest scenario first (most gens
/// held), then at its own: each solve starts from every gen's node PV again,
/// and the answers are pandapower's.
#[test]
fn warm_start_releases_and_holds_again() {
    for name in NETS {
        let (net, reference) = load(name);
        let b = reference.scenarios.len();
        let heaviest = (0..b)
            .max_by_key(|&c| ref_held(&reference, c).iter().filter(|&&x| x).count())
            .unwrap();
        for kernel in [CpuKernel::Scalar, CpuKernel::Lanes] {
            let mut batch = CpuBatch::new(plan(&net, true), b).with_kernel(kernel);
            let target = reference.to_inputs(&net).unwrap();
            {
                let inp = batch.inputs_mut();
                for c in 0..b {
                    inp.copy_row_from(c, &target, heaviest);
                }
            }
            batch.solve().unwrap();
            assert!(batch.results().converged.iter().all(|&x| x), "{name}");
            batch.inputs_mut().assign(&target);
            batch.solve().unwrap();
            check(name, &format!("{kernel:?} warm"), &reference, &batch);
            // Solved again as it is (nothing changed): every gen's node PV
            // again, the same gens held, the same answer (to rounding: the
            // rounds start from the converged state).
            let before = batch.results().clone();
            batch.solve().unwrap();
            check(name, &format!("{kernel:?} again"), &reference, &batch);
            let d = max_abs_diff(
                before.vm_pu.as_slice().unwrap(),
                batch.results().vm_pu.as_slice().unwrap(),
            );
            assert!(d <= 1e-10, "{name}: solved again, |Δvm| {d:e}");
        }
    }
}

/// With the option off the limits only split Q (gens outside them), and a
/// network whose gens stay within their limits solves bit for bit alike
/// with the option on and off.
#[test]
fn option_off_or_not_binding_changes_nothing() {
    let (net, reference) = load("qlims");
    let b = reference.scenarios.len();
    let mut off = CpuBatch::new(plan(&net, false), b);
    let r_off = solve_scenarios(&mut off, &net, &reference);
    let outside = (0..b).any(|c| {
        (0..net.gens.len()).any(|g| {
            let (lo, hi) = net.gens[g].q_range();
            let q = r_off.gen_q_mvar[(c, g)];
            q < lo - 1e-6 || q > hi + 1e-6
        })
    });
    assert!(outside, "option off: some gen outside its limits");
    assert!((0..b).all(|c| off.gens_at_q_limit(c).iter().all(|&x| !x)));
    // Limits wide enough never to bind: on and off agree bit for bit.
    let mut wide = net.clone();
    for g in &mut wide.gens {
        g.min_q_mvar = Some(-1e4);
        g.max_q_mvar = Some(1e4);
    }
    let results = |enforce: bool, kernel: CpuKernel| -> BatchResults {
        let mut batch = CpuBatch::new(plan(&wide, enforce), b).with_kernel(kernel);
        solve_scenarios(&mut batch, &wide, &reference)
    };
    for kernel in [CpuKernel::Scalar, CpuKernel::Lanes] {
        let (a, on) = (results(false, kernel), results(true, kernel));
        for ((key, x), (_, y)) in a.tables().into_iter().zip(on.tables()) {
            assert_eq!(
                x, y,
                "{kernel:?} {key}: option on vs off without binding limits"
            );
        }
        assert_eq!(a.iterations, on.iterations);
    }
}

/// A NaN limit is pandapower's "no limit" (±1e9, `q_lim_default`): the same
/// answer as a missing one.
#[test]
fn nan_limit_is_no_limit() {
    let (net, reference) = load("qlims");
    let g = net
        .gens
        .iter()
        .position(|g| g.min_q_mvar.is_none() && g.max_q_mvar.is_some())
        .expect("a gen with only max_q_mvar");
    let mut nan = net.clone();
    nan.gens[g].min_q_mvar = Some(f64::NAN);
    let b = reference.scenarios.len();
    let mut a = CpuBatch::new(plan(&net, true), b);
    let mut n = CpuBatch::new(plan(&nan, true), b);
    let ra = solve_scenarios(&mut a, &net, &reference);
    let rn = solve_scenarios(&mut n, &nan, &reference);
    assert_eq!(ra.vm_pu, rn.vm_pu);
    assert_eq!(ra.gen_q_mvar, rn.gen_q_mvar);
}

/// Bad input, with the option on: inverted limits, and a gen at a bus with
/// voltage-dependent loads (not offered), each refused naming the gen; the
/// option off accepts both (the limits only split Q).
#[test]
fn bad_limits_are_refused_naming_the_gen() {
    let (net, _) = load("qlims");
    let g = 2;
    let mut inverted = net.clone();
    inverted.gens[g].min_q_mvar = Some(3.0);
    inverted.gens[g].max_q_mvar = Some(-3.0);
    let e = Plan::new(&inverted, options(true)).unwrap_err().to_string();
    assert!(
        e.contains(&format!("gen {g}"))
            && e.contains(&net.gens[g].name)
            && e.contains("min_q_mvar"),
        "{e}"
    );
    assert!(Plan::new(&inverted, options(false)).is_ok());

    let mut zip = net.clone();
    let bus = zip.gens[g].bus;
    let load = zip
        .loads
        .iter()
        .position(|l| l.bus == bus)
        .expect("a load at the gen's bus");
    zip.loads[load].const_z_p_percent = 30.0;
    let e = Plan::new(&zip, options(true)).unwrap_err().to_string();
    assert!(e.contains("gen 1") && e.contains("ZIP"), "{e}");
    assert!(Plan::new(&zip, options(false)).is_ok());
}

/// The GPU backend runs pandapower's rounds from the host (the shader treats a
/// released PV node as PQ in that copy): the same held gens as pandapower in
/// every scenario; f32 within the GPU's tolerances, f64 within the CPU's.
/// A second solve starts from every gen PV again (the same answer).
#[test]
fn gpu_matches_pandapower_enforce_q_lims() {
    if !gpu_or_skip("gpu_matches_pandapower_enforce_q_lims") {
        return;
    }
    let f64_ok = powergrid::gpu::GpuContext::shared().unwrap().shader_f64;
    for name in NETS {
        let (net, reference) = load(name);
        for precision in [GpuPrecision::F32, GpuPrecision::F64] {
            if precision == GpuPrecision::F64 && !f64_ok {
                continue;
            }
            let options = SolverOptions {
                gpu_precision: precision,
                ..options(true)
            };
            let plan = Arc::new(Plan::new(&net, options).unwrap());
            let mut gpu = GpuBatch::new(plan, reference.scenarios.len()).unwrap();
            let tol = match precision {
                GpuPrecision::F32 => [1e-5, 1e-3, 1e-2, 1e-2],
                GpuPrecision::F64 => [1e-8, 1e-6, 1e-5, 1e-6],
            };
            let what = format!("GPU {precision}");
            let r = solve_scenarios(&mut gpu, &net, &reference);
            check_with(
                name,
                &what,
                &reference,
                &r,
                &|c| gpu.gens_at_q_limit(c),
                tol,
            );
            // In two chunks (each prepared, with its copies' Q-limit rows,
            // submitted and unpacked on its own): the same bits and held gens.
            let chunked = Arc::new(
                Plan::new(
                    &net,
                    SolverOptions {
                        gpu_chunks: 2,
                        ..gpu.plan().unwrap().options.clone()
                    },
                )
                .unwrap(),
            );
            let mut two = GpuBatch::new(chunked, reference.scenarios.len()).unwrap();
            assert_eq!(two.chunks(), 2.min(reference.scenarios.len()));
            assert_eq!(
                &solve_scenarios(&mut two, &net, &reference),
                &r,
                "{name} {what} in two chunks"
            );
            for c in 0..reference.scenarios.len() {
                assert_eq!(two.gens_at_q_limit(c), gpu.gens_at_q_limit(c), "{name} {c}");
            }
            // From two host threads (two parts, each with its own rounds):
            // the same bits.
            let threaded = Arc::new(
                Plan::new(
                    &net,
                    SolverOptions {
                        gpu_threads: 2,
                        ..gpu.plan().unwrap().options.clone()
                    },
                )
                .unwrap(),
            );
            let mut parts =
                powergrid::powerflow::gpu::new_batch(threaded, reference.scenarios.len()).unwrap();
            assert!(
                parts.describe().ends_with(", 2 host threads)"),
                "{}",
                parts.describe()
            );
            assert_eq!(
                &solve_scenarios(parts.as_mut(), &net, &reference),
                &r,
                "{name} {what} from two host threads"
            );
            gpu.solve().unwrap();
            let again = gpu.results().clone();
            let what = format!("{what}, again");
            check_with(
                name,
                &what,
                &reference,
                &again,
                &|c| gpu.gens_at_q_limit(c),
                tol,
            );
        }
    }
}

/// `pf --enforce-q-lims` solves the reference's scenarios as pandapower does;
/// without the flag the gens' Q leave their limits.
#[test]
fn cli_flag() {
    let dir = std::env::temp_dir().join(format!("pg_qlims_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_, reference) = load("qlims");
    let run = |flag: bool| -> serde_json::Value {
        let out = dir.join(format!("out_{flag}.json"));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_powergrid"));
        cmd.args(["pf", "--network"])
            .arg(path("tests/data/pandapower_qlims/qlims.json"))
            .arg("--scenarios")
            .arg(path("tests/data/pandapower_qlims/qlims.reference.json"))
            .arg("--output")
            .arg(&out);
        if flag {
            cmd.arg("--enforce-q-lims");
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
    };
    let worst_q = |v: &serde_json::Value| -> f64 {
        let mut w = 0.0f64;
        for (c, s) in v["scenarios"].as_array().unwrap().iter().enumerate() {
            let q: Vec<f64> = s["results"]["gen_q_mvar"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            w = w.max(max_abs_diff(&q, &ref_table(&reference, c, "gen_q_mvar")));
        }
        w
    };
    let on = worst_q(&run(true));
    let off = worst_q(&run(false));
    eprintln!("pf --enforce-q-lims: worst |ΔQ_gen| {on:.2e} Mvar (without the flag {off:.2e})");
    // The CLI runs at the default tolerance (1e-8 p.u. of 10 MVA).
    assert!(on <= 1e-5, "{on}");
    assert!(off > 1.0, "{off}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The setup key `solver_enforce_q_lims` (config.yml): read, off by default,
/// on both backends.
#[test]
fn setup_key() {
    let name = "ieee34_ieee13";
    let src = path(&format!("setups/{name}"));
    let dst = std::env::temp_dir().join(format!("pg-qlims-setup-{}", std::process::id()));
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let cfg = dst.join("config.yml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}\nsolver_enforce_q_lims: true\n")).unwrap();
    let shipped = powergrid::setup::Setup::load(name).unwrap();
    assert!(!shipped.config.solver_enforce_q_lims);
    let setup = powergrid::setup::Setup::load(dst.to_str().unwrap()).unwrap();
    assert!(setup.config.solver_enforce_q_lims);
    let cpu = powergrid::env::VecEnv::new(setup.clone(), &Default::default());
    assert!(cpu.is_ok(), "{:?}", cpu.err());
    if gpu_or_skip("setup_key") {
        let options = powergrid::env::EnvOptions {
            backend: powergrid::powerflow::BackendKind::Gpu,
            ..Default::default()
        };
        let gpu = powergrid::env::VecEnv::new(setup, &options);
        assert!(gpu.is_ok(), "{:?}", gpu.err());
    }
    std::fs::remove_dir_all(&dst).ok();
}
