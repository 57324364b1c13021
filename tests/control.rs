//! The control loop beyond the pandapower comparison: line-drop compensation
//! against a hand computation, failed and independent copies, persistence, and
//! bad controller input (typed errors naming the element).

mod common;
use common::*;
use powergrid::complex::C64;
use powergrid::control::{ControlLoop, ControlOptions};
use powergrid::network::{self, pandapower, yaml, Controller, LineDrop, Network};
use powergrid::powerflow::{CpuBatch, Plan, PowerFlow, SolverOptions};
use std::sync::Arc;

/// A 24.9 kV regulator (tap on LV, ±16 × 0.625 %) feeding one 10 km line to a
/// 2 MW, 1 Mvar load.
const FEEDER: &str = r#"
name: regulated feeder
sn_mva: 1.0
buses:
- {name: source, vn_kv: 24.9}
- {name: regulator out, vn_kv: 24.9}
- {name: load, vn_kv: 24.9}
ext_grids:
- {bus: 0, vm_pu: 1.0}
trafos:
- name: reg
  hv_bus: 0
  lv_bus: 1
  sn_mva: 10.0
  vn_hv_kv: 24.9
  vn_lv_kv: 24.9
  vk_percent: 1.0
  vkr_percent: 0.1
  tap: {side: lv, step_percent: 0.625, min: -16, max: 16, pos: 0}
lines:
- {from_bus: 1, to_bus: 2, length_km: 10.0, r_ohm_per_km: 0.3, x_ohm_per_km: 0.4, c_nf_per_km: 0.0, max_i_ka: 0.4}
loads:
- {bus: 2, p_mw: 2.0, q_mvar: 1.0}
controllers:
- type: discrete_tap
  name: reg control
  trafo: 0
  vm_lower_pu: 0.995
  vm_upper_pu: 1.005
"#;

fn feeder(line_drop: Option<LineDrop>) -> Network {
    let mut net = yaml::from_str(FEEDER).unwrap();
    if let Controller::DiscreteTap(t) = &mut net.controllers[0] {
        t.line_drop = line_drop;
    }
    net.validate().unwrap();
    net
}

fn cpu(net: &Network, batch: usize) -> CpuBatch {
    let plan = Arc::new(Plan::new(net, SolverOptions::default()).unwrap());
    CpuBatch::new(plan, batch)
}

#[test]
fn line_drop_compensation_regulates_the_load_centre() {
    // IEEE 34 regulator 1's settings.
    let ld = LineDrop {
        r_volt: 2.7,
        x_volt: 1.6,
        pt_ratio: 120.0,
        ct_primary_a: 100.0,
    };
    let net = feeder(Some(ld));
    let mut pf = cpu(&net, 1);
    let mut ctl = ControlLoop::new(&net, &net.controllers, 1, ControlOptions::default()).unwrap();
    ctl.run(&mut pf).unwrap();
    assert!(ctl.settled()[0] && ctl.iterations()[0] > 0);
    let r = pf.results();
    // By hand: the current leaving the regulator is the line's from-end current
    // (the regulator's LV bus has nothing else), I = conj(S/V) in p.u.
    let v = C64::from_polar(r.vm_pu[(0, 1)], r.va_degree[(0, 1)].to_radians());
    let s = C64::new(r.line_p_from_mw[(0, 0)], r.line_q_from_mvar[(0, 0)]).scale(1.0 / net.sn_mva);
    let i = (s / v).conj();
    // Z_c = (2.7 + j1.6)·120/100 Ω = 3.24 + j1.92 Ω; Z_b = 24.9²/1 Ω.
    let z = C64::new(3.24, 1.92).scale(1.0 / (24.9 * 24.9));
    let v_reg = (v - i * z).abs();
    let seen = ctl.measured_vm()[(0, 0)];
    assert!(
        (seen - v_reg).abs() < 1e-9,
        "controller saw {seen}, hand {v_reg}"
    );
    assert!(
        0.995 < v_reg && v_reg < 1.005,
        "compensated voltage {v_reg} outside the band"
    );
    // The drop it compensates is real: the regulator's own bus sits above the band.
    assert!(r.vm_pu[(0, 1)] > 1.005, "regulator bus {}", r.vm_pu[(0, 1)]);
    let tap_ldc = pf.inputs().trafo_tap_pos[(0, 0)];

    // Without compensation the regulator holds its own bus in the band, at a lower voltage.
    let net = feeder(None);
    let mut pf = cpu(&net, 1);
    let mut ctl = ControlLoop::new(&net, &net.controllers, 1, ControlOptions::default()).unwrap();
    ctl.run(&mut pf).unwrap();
    assert!(ctl.settled()[0]);
    let vm = pf.results().vm_pu[(0, 1)];
    assert!(0.995 < vm && vm < 1.005, "{vm}");
    // Tap on LV, LV measured: a higher tap raises the voltage.
    assert!(pf.inputs().trafo_tap_pos[(0, 0)] < tap_ldc);
}

#[test]
fn copies_are_independent_and_failures_reported() {
    let net = network::load(path("tests/data/control/ieee34.json")).unwrap();
    let mut pf = cpu(&net, 3);
    // Copy 1 carries an impossible load: its power flow fails.
    for (c, scale) in [(0, 0.3), (1, 60.0), (2, 1.1)] {
        pf.inputs_mut().load_scaling.row_mut(c).fill(scale);
    }
    let start = pf.inputs().trafo_tap_pos.clone();
    let mut ctl = ControlLoop::new(&net, &net.controllers, 3, ControlOptions::default()).unwrap();
    let summary = ctl.run(&mut pf).unwrap();
    assert_eq!((summary.settled, summary.failed), (2, 1));
    assert_eq!(ctl.failed(), &[false, true, false]);
    assert_eq!(ctl.settled(), &[true, false, true]);
    // The failed copy stopped at once: nothing moved.
    assert_eq!(ctl.iterations()[1], 0);
    assert!(ctl.moves().row(1).iter().all(|&m| m == 0));
    assert_eq!(pf.inputs().trafo_tap_pos.row(1), start.row(1));
    // Different loads, different paths.
    assert_ne!(ctl.iterations()[0], ctl.iterations()[2]);
    assert_eq!(
        summary.max_iterations,
        *ctl.iterations().iter().max().unwrap()
    );
    // The settled taps persist: a second run finds every copy settled at once.
    pf.inputs_mut().load_scaling.row_mut(1).fill(1.0);
    let taps = pf.inputs().trafo_tap_pos.clone();
    ctl.run(&mut pf).unwrap();
    assert_eq!(ctl.iterations()[0], 0);
    assert_eq!(ctl.iterations()[2], 0);
    assert_eq!(pf.inputs().trafo_tap_pos.row(0), taps.row(0));
    assert!(ctl.settled()[1] && ctl.iterations()[1] > 0);
}

#[test]
fn iteration_cap_leaves_copies_unsettled() {
    let net = network::load(path("tests/data/control/ieee34.json")).unwrap();
    let mut pf = cpu(&net, 1);
    pf.inputs_mut().trafo_tap_pos[(0, 0)] = 16.0;
    let opts = ControlOptions {
        max_iterations: 2,
        ..Default::default()
    };
    let mut ctl = ControlLoop::new(&net, &net.controllers, 1, opts).unwrap();
    let s = ctl.run(&mut pf).unwrap();
    assert_eq!((s.settled, s.failed, s.max_iterations), (0, 0, 2));
    assert_eq!(ctl.iterations()[0], 2);
    // Two moves of regulator 1, no third after the cap.
    assert_eq!(pf.inputs().trafo_tap_pos[(0, 0)], 14.0);
    assert_eq!(ControlOptions::default().max_iterations, 30);
}

#[test]
fn run_rejects_a_mismatched_backend() {
    let net = feeder(None);
    let mut pf = cpu(&net, 2);
    let before = pf.inputs().clone();
    let mut ctl = ControlLoop::new(&net, &net.controllers, 3, ControlOptions::default()).unwrap();
    let e = ctl.run(&mut pf).unwrap_err().to_string();
    assert!(e.contains("3 copies") && e.contains("2"), "{e}");
    assert_eq!(pf.inputs(), &before);
}

fn ieee34_with(controllers: &str) -> String {
    let text = std::fs::read_to_string(network_yaml("ieee34")).unwrap();
    format!("{text}controllers:\n{controllers}")
}

#[test]
fn bad_controllers_are_named() {
    let cases = [
        // IEEE34 Transformer 1 has no tap changer.
        (
            "- {type: discrete_tap, name: t, trafo: 2, vm_lower_pu: 0.99, vm_upper_pu: 1.01}\n",
            &["controller 0", "\"t\"", "trafo 2", "IEEE34 Transformer 1", "no tap changer"][..],
        ),
        (
            "- {type: discrete_tap, trafo: 0, vm_lower_pu: 1.01, vm_upper_pu: 1.01}\n",
            &["controller 0", "vm_lower_pu (1.01) must be below vm_upper_pu (1.01)"],
        ),
        (
            "- {type: discrete_tap, trafo: 0, vm_lower_pu: 0.99, vm_upper_pu: 1.01, tol: -0.1}\n",
            &["controller 0", "tol must be finite and ≥ 0"],
        ),
        (
            "- {type: discrete_tap, trafo: 7, vm_lower_pu: 0.99, vm_upper_pu: 1.01}\n",
            &["trafo 7 does not exist", "3 trafos"],
        ),
        (
            "- {type: discrete_shunt, shunt: 0, vm_set_pu: 1.0}\n- {type: discrete_shunt, name: s, shunt: 5, vm_set_pu: 1.0}\n",
            &["controller 1", "\"s\"", "shunt 5 does not exist", "2 shunts"],
        ),
        (
            "- {type: discrete_shunt, shunt: 0, bus: 99, vm_set_pu: 1.0}\n",
            &["bus 99 does not exist"],
        ),
        (
            "- {type: discrete_shunt, shunt: 0, vm_set_pu: 1.0, tol: -1}\n",
            &["tol must be finite and ≥ 0"],
        ),
        (
            "- {type: discrete_tap, trafo: 0, vm_lower_pu: 0.99, vm_upper_pu: 1.01, line_drop: {r_volt: 2.7, x_volt: 1.6, pt_ratio: 0, ct_primary_a: 100}}\n",
            &["pt_ratio (0) and ct_primary_a (100) must be positive"],
        ),
        (
            "- {type: continuous_tap, trafo: 0, vm_set_pu: 1.0}\n",
            &["unknown variant `continuous_tap`", "discrete_tap", "discrete_shunt"],
        ),
        (
            "- {type: discrete_tap, trafo: 0, vm_lower_pu: 0.99, vm_upper_pu: 1.01, deadband: 1}\n",
            &["unknown field `deadband`"],
        ),
    ];
    for (ctrl, want) in cases {
        let e = yaml_err(&ieee34_with(ctrl));
        for w in want {
            assert!(e.contains(w), "{ctrl}: {e:?} lacks {w:?}");
        }
    }
    // A shunt with max_step 0 has nothing to switch.
    let text = ieee34_with("- {type: discrete_shunt, shunt: 1, vm_set_pu: 1.0}\n").replacen(
        "max_step: 4",
        "max_step: 0",
        2,
    );
    let e = yaml_err(&text);
    assert!(
        e.contains("controller 0")
            && e.contains("shunt 1")
            && e.contains("SCB 2")
            && e.contains("max_step 0"),
        "{e}"
    );
    // ControlLoop::new checks the same, against the network it is given.
    let net = yaml::from_str(&ieee34_with(
        "- {type: discrete_shunt, shunt: 0, vm_set_pu: 1.0}\n",
    ))
    .unwrap();
    let mut bad = net.controllers.clone();
    if let Controller::DiscreteShunt(s) = &mut bad[0] {
        s.increment = 0;
    }
    let e = ControlLoop::new(&net, &bad, 4, ControlOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("controller 0") && e.contains("increment"), "{e}");
}

#[test]
fn unsupported_pandapower_controller_is_named() {
    let text = std::fs::read_to_string(path("tests/data/control/ieee34.json")).unwrap();
    let edited = text.replace("DiscreteShuntController", "ConstControl");
    let e = pandapower::from_str(&edited).unwrap_err().to_string();
    assert!(
        e.contains("controller row 2") && e.contains("ConstControl"),
        "{e}"
    );
    // A DiscreteTapControl of a three-winding trafo is not one we can run.
    let edited = text.replace(
        r#"\\\"element\\\": \\\"trafo\\\""#,
        r#"\\\"element\\\": \\\"trafo3w\\\""#,
    );
    assert_ne!(edited, text, "the pattern must match the file");
    let e = pandapower::from_str(&edited).unwrap_err().to_string();
    assert!(
        e.contains("controller row 0") && e.contains("trafo3w"),
        "{e}"
    );
}

#[test]
fn pandapower_controllers_import_with_their_parameters() {
    let net = network::load(path("tests/data/control/ieee34_ieee13.json")).unwrap();
    let taps: Vec<_> = net
        .controllers
        .iter()
        .filter_map(|c| match c {
            Controller::DiscreteTap(t) => Some(t),
            _ => None,
        })
        .collect();
    // Regulators: band 1 ± 0.8 steps; MG substations: set-point mode 1 ± (2.5/200 + 0.002).
    assert_eq!(taps.len(), 5);
    assert!((taps[0].vm_lower_pu - (1.0 - 0.8 * 0.00625)).abs() < 1e-12);
    assert!((taps[4].vm_upper_pu - 1.0145).abs() < 1e-12 && taps[4].tol == 0.002);
    let from_set =
        network::DiscreteTapControl::from_set_point(&net, taps[4].trafo, 1.0, 0.002).unwrap();
    assert!((from_set.vm_lower_pu - taps[4].vm_lower_pu).abs() < 1e-12);
    let Controller::DiscreteShunt(s) = &net.controllers[5] else {
        panic!("controller 5 is a shunt controller")
    };
    assert_eq!(
        (s.shunt, s.bus, s.vm_set_pu, s.tol, s.increment),
        (0, Some(net.shunts[0].bus), 1.0, 0.02, 1)
    );
}

/// `powergrid import` carries the controllers into YAML, and `pf --control`
/// on that YAML settles every scenario where pandapower does, on its taps and steps.
#[test]
fn cli_import_then_pf_control() {
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("powergrid-control-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let yml = dir.join("ieee123.yml");
    let json = path("tests/data/control/ieee123.json");
    let st = Command::new(env!("CARGO_BIN_EXE_powergrid"))
        .args([
            "import",
            json.to_str().unwrap(),
            "-o",
            yml.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(network::load(&yml).unwrap(), network::load(&json).unwrap());
    let reference = path("tests/data/control/ieee123_reference.json");
    let run = |control: bool| -> serde_json::Value {
        let out = dir.join(format!("out-{control}.json"));
        let mut args = vec![
            "pf",
            "--network",
            yml.to_str().unwrap(),
            "--scenarios",
            reference.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        if control {
            args.push("--control");
        }
        let st = Command::new(env!("CARGO_BIN_EXE_powergrid"))
            .args(&args)
            .status()
            .unwrap();
        assert!(st.success());
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
    };
    let plain = run(false);
    assert!(plain["scenarios"][0].get("control_iterations").is_none());
    let ctl = run(true);
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&reference).unwrap()).unwrap();
    let want = want["scenarios"].as_array().unwrap();
    let got = ctl["scenarios"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (c, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g["control_settled"], w["converged"], "scenario {c}");
        if w["converged"].as_bool().unwrap() {
            assert_eq!(
                g["trafo_tap_pos"], w["results"]["trafo_tap_pos"],
                "scenario {c}"
            );
            assert_eq!(g["shunt_step"], w["results"]["shunt_step"], "scenario {c}");
            assert_eq!(
                g["control_iterations"], w["control_iterations"],
                "scenario {c}"
            );
        }
    }
    // Networks without controllers are refused, naming the file.
    let st = Command::new(env!("CARGO_BIN_EXE_powergrid"))
        .args([
            "pf",
            "--network",
            network_yaml("ieee13").to_str().unwrap(),
            "--control",
        ])
        .output()
        .unwrap();
    assert!(!st.status.success());
    let e = String::from_utf8_lossy(&st.stderr);
    assert!(e.contains("ieee13.yml has no controllers"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A tap move between solves warm-starts the voltages behind the regulator at
/// the new ratio (taps on either side): the re-solve lands on the same
/// solution as a cold solve at the new taps, and a screening re-solve (to
/// 1e-3 p.u., as the control loop makes them) needs at most three iterations (measured: 2 with the tap on LV, 3 on HV; 4 and 4 without the scaling).
#[test]
fn tap_move_warm_start_keeps_the_solution() {
    for side in ["lv", "hv"] {
        let net = yaml::from_str(&FEEDER.replace("side: lv", &format!("side: {side}"))).unwrap();
        let mut warm = cpu(&net, 1);
        warm.solve().unwrap();
        warm.inputs_mut().trafo_tap_pos[(0, 0)] = 6.0;
        warm.set_tolerance(Some(1e-3));
        warm.solve().unwrap();
        let screening = warm.results().iterations[0];
        warm.set_tolerance(None);
        warm.solve().unwrap();
        let mut cold = cpu(&net, 1);
        cold.inputs_mut().trafo_tap_pos[(0, 0)] = 6.0;
        cold.solve().unwrap();
        let (w, c) = (warm.results(), cold.results());
        assert!(w.converged[0] && c.converged[0]);
        for b in 0..3 {
            assert!(
                (w.vm_pu[(0, b)] - c.vm_pu[(0, b)]).abs() < 1e-8,
                "{side} bus {b}"
            );
            assert!(
                (w.va_degree[(0, b)] - c.va_degree[(0, b)]).abs() < 1e-6,
                "{side} bus {b}"
            );
        }
        println!("tap on {side}: screening re-solve after +6 taps: {screening} iterations");
        assert!(
            screening <= 3,
            "{side}: {screening} iterations after the move"
        );
    }
}
