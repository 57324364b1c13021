//! One environment step of three copies against pandapower itself.
//!
//! `tests/data/env_step/` holds the network exactly as the `ieee34_ieee13`
//! environment solves it (setup devices included), the step's set-points in the
//! `pf` scenario format, and pandapower 3.5.6's solution of them, made by
//! `solve_with_pandapower.py` there (pandapower is not needed to run the test).
//! The test replays the same step, checks that the environment's network and
//! set-points are exactly the committed ones, and compares the bus voltages and
//! the trafo flows (the grid agents' PCC imports).
//! After a deliberate change of the setup: `POWERGRID_WRITE_ENV_STEP=1 cargo test
//! --test env_vs_pandapower`, then run the script again.

mod env_util;
use env_util::*;
use powergrid::powerflow::scenarios::ScenarioFile;

#[test]
fn env_step_matches_pandapower() {
    let env = ieee34_ieee13_after_a_random_step();
    let dir = root().join("tests/data/env_step");
    let file = ScenarioFile {
        scenarios: (0..3).map(|c| env.scenario(c)).collect(),
        extra: Default::default(),
    };
    if std::env::var_os("POWERGRID_WRITE_ENV_STEP").is_some() {
        powergrid::network::yaml::write(env.network(), &dir.join("network.yml")).unwrap();
        std::fs::write(
            dir.join("scenario.json"),
            serde_json::to_string_pretty(&file).unwrap(),
        )
        .unwrap();
    }
    let committed_net = powergrid::network::load(dir.join("network.yml")).unwrap();
    assert_eq!(
        &committed_net,
        env.network(),
        "the environment's network changed: regenerate tests/data/env_step"
    );
    let committed = ScenarioFile::read(&dir.join("scenario.json")).unwrap();
    // serde_json's float parsing may be 1 ulp off; 1e-12 is far below anything that matters.
    let as_json = |f: &ScenarioFile| {
        serde_json::to_value(f.scenarios.iter().map(|s| &s.inputs).collect::<Vec<_>>()).unwrap()
    };
    let (a, b) = (as_json(&committed), as_json(&file));
    let mut diffs = 0;
    for (sa, sb) in a.as_array().unwrap().iter().zip(b.as_array().unwrap()) {
        for (key, va) in sa.as_object().unwrap() {
            let (xa, xb) = (va.as_array().unwrap(), sb[key].as_array().unwrap());
            assert_eq!(xa.len(), xb.len(), "{key}: length changed");
            diffs += xa
                .iter()
                .zip(xb)
                .filter(|(x, y)| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() > 1e-12)
                .count();
        }
    }
    assert_eq!(
        diffs, 0,
        "the step's set-points changed: regenerate tests/data/env_step"
    );

    let text = std::fs::read_to_string(dir.join("pandapower_solution.json")).unwrap();
    let pp: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut worst: f64 = 0.0;
    for c in 0..3 {
        let sol = &pp["scenarios"][c];
        assert_eq!(
            sol["converged"], true,
            "pandapower did not converge on copy {c}"
        );
        assert!(env.info().converged[c]);
        let vm: Vec<f64> = sol["vm_pu"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let ours = env.power_flow().vm_pu.row(c);
        assert_eq!(vm.len(), ours.len());
        for (b, (x, y)) in ours.iter().zip(&vm).enumerate() {
            assert!(
                (x - y).abs() <= 1e-6,
                "copy {c} bus {b}: environment {x} vs pandapower {y}"
            );
            worst = worst.max((x - y).abs());
        }
    }
    eprintln!("environment step vs pandapower: worst |Δvm| {worst:.2e} p.u. over 3 copies");

    // Trafo flows, and each grid agent's PCC import (its trafo's `trafo_p_hv_mw`).
    let mut worst_p: f64 = 0.0;
    let mut pccs = 0;
    for c in 0..3 {
        let p_hv: Vec<f64> = pp["scenarios"][c]["trafo_p_hv_mw"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let ours = env.power_flow().trafo_p_hv_mw.row(c);
        assert_eq!(p_hv.len(), ours.len());
        for (t, (x, y)) in ours.iter().zip(&p_hv).enumerate() {
            assert!(
                (x - y).abs() <= 1e-6,
                "copy {c} trafo {t}: environment P_hv {x} MW vs pandapower {y} MW"
            );
            worst_p = worst_p.max((x - y).abs());
        }
        for (k, a) in env.agents().iter().enumerate() {
            if let Some(powergrid::agents::grid_agent::Pcc::Trafo(t)) = a.pcc {
                let import = env.info().pcc_import_mw[[c, k]];
                assert_eq!(import, ours[t], "copy {c} agent {k}: PCC import");
                assert!((import - p_hv[t]).abs() <= 1e-6, "copy {c} agent {k}");
                pccs += 1;
            }
        }
    }
    assert_eq!(pccs, 9, "three trafo PCCs per copy");
    eprintln!(
        "environment step vs pandapower: worst |ΔP_hv| {worst_p:.2e} MW (trafos, PCC imports)"
    );
}
