//! Bad input gives a clear error, no panic, and leaves every copy's state as it was.
#![allow(clippy::needless_range_loop)]

mod env_util;
use env_util::*;
use ndarray::Array2;
use powergrid::env::{EnvOptions, VecEnv};
use powergrid::Error;

#[test]
fn nan_or_misshaped_actions_are_rejected_without_changing_state() {
    let mut env = env("ieee34_ieee13", 3);
    env.reset(0).unwrap();
    let a = const_actions(&env, 0.4);
    step(&mut env, &a).unwrap();
    let before = snapshot(&env);
    let steps = env.steps_in_episode().to_vec();

    let mut nan = const_actions(&env, 0.1);
    nan[1][[2, 3]] = f32::NAN;
    let e = step(&mut env, &nan).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)));
    assert!(
        e.to_string().contains("MG2") && e.to_string().contains("NaN"),
        "{e}"
    );
    let mut inf = const_actions(&env, 0.1);
    inf[0][[0, 0]] = f32::INFINITY;
    assert!(step(&mut env, &inf).is_err());

    let mut bad = const_actions(&env, 0.1);
    bad[2] = Array2::zeros((3, 4));
    let e = step(&mut env, &bad).unwrap_err();
    assert!(
        e.to_string().contains("shape") && e.to_string().contains("MG3"),
        "{e}"
    );
    let e = step(&mut env, &bad[..2]).unwrap_err();
    assert!(e.to_string().contains("3 agents"), "{e}");
    let wrong_b: Vec<Array2<f32>> = env
        .action_dims()
        .iter()
        .map(|&d| Array2::zeros((2, d)))
        .collect();
    assert!(step(&mut env, &wrong_b).is_err());
    // f64 actions are checked the same way.
    let mut nan64: Vec<Array2<f64>> = const_actions(&env, 0.1)
        .iter()
        .map(|a| a.mapv(|x| x as f64))
        .collect();
    nan64[0][[1, 1]] = f64::NAN;
    let views: Vec<_> = nan64.iter().map(|a| a.view()).collect();
    let e = env.step(&views).unwrap_err();
    assert!(e.to_string().contains("MG1"), "{e}");

    assert_eq!(snapshot(&env), before);
    assert_eq!(env.steps_in_episode(), &steps[..]);
    // And it still steps afterwards.
    step(&mut env, &a).unwrap();
}

#[test]
fn unknown_setup_is_an_error() {
    let e = VecEnv::from_name("no_such_setup", &EnvOptions::default())
        .err()
        .unwrap();
    assert!(matches!(e, Error::InvalidSetup(_)));
    assert!(e.to_string().contains("no_such_setup"));
}

#[test]
fn misspelt_config_key_names_key_and_file() {
    let cfg = edited_setup("ieee34_ieee13", "misspelt", |s| {
        s.replace("penalty: 10.0", "penalti: 10.0")
    });
    let e = VecEnv::from_name(cfg.to_str().unwrap(), &EnvOptions::default())
        .err()
        .unwrap();
    let m = e.to_string();
    assert!(matches!(e, Error::Parse { .. }));
    assert!(m.contains("penalti") && m.contains("config.yml"), "{m}");

    let cfg = edited_setup("ieee34_ieee13", "misspelt_dev", |s| {
        s.replacen("e_mwh: 0.5", "e_mwhh: 0.5", 1)
    });
    let m = VecEnv::from_name(cfg.to_str().unwrap(), &EnvOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(m.contains("e_mwhh") && m.contains("config.yml"), "{m}");

    let cfg = edited_setup("ieee34_ieee13", "badname", |s| {
        s.replace("\"MG1 ess_1\"", "\"MG1 ess_9\"")
    });
    let m = VecEnv::from_name(cfg.to_str().unwrap(), &EnvOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(m.contains("MG1 ess_9") && m.contains("agents[0]"), "{m}");
}

#[test]
fn csv_missing_a_column_names_the_column_and_file() {
    let dir = scratch("csvcol");
    let csv = dir.join("short.csv");
    let mut text = String::from("timestamp,price:0096WD_7_N001,load:BANC\n");
    for h in 0..200 {
        text += &format!("t{h},50.0,0.5\n");
    }
    std::fs::write(&csv, text).unwrap();
    let csv_s = csv.display().to_string();
    let cfg = edited_setup("ieee34_ieee13", "csvmissing", |s| {
        s.lines()
            .map(|l| {
                if l.starts_with("train_data:") {
                    format!("train_data: {csv_s:?}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    let e = VecEnv::from_name(cfg.to_str().unwrap(), &EnvOptions::default())
        .err()
        .unwrap();
    let m = e.to_string();
    assert!(m.contains("short.csv") && m.contains("load:AVA"), "{m}");

    // A value that is not a number names the line.
    std::fs::write(&csv, "timestamp,price:0096WD_7_N001\nt0,abc\n").unwrap();
    let m = powergrid::setup::TimeSeries::read(&csv, &["price:0096WD_7_N001".to_string()])
        .unwrap_err()
        .to_string();
    assert!(m.contains("line 2"), "{m}");
}

/// `step` takes f64 actions as well as f32 (no copy for numpy float64):
/// the same values give the same trajectory.
#[test]
fn f64_actions_step_like_f32_actions() {
    let mut a32 = env("ieee34_ieee13", 2);
    let mut a64 = env("ieee34_ieee13", 2);
    a32.reset(3).unwrap();
    a64.reset(3).unwrap();
    for v in [0.5f32, -0.25, 0.75] {
        let x = const_actions(&a32, v);
        step(&mut a32, &x).unwrap();
        let y: Vec<Array2<f64>> = x.iter().map(|a| a.mapv(|x| x as f64)).collect();
        let views: Vec<_> = y.iter().map(|a| a.view()).collect();
        a64.step(&views).unwrap();
        assert_eq!(snapshot(&a32), snapshot(&a64));
    }
}

/// Bad automatic controllers in a setup are rejected when it loads, naming
/// the controller and its element: a transformer without a tap changer, a band
/// with lower >= upper, an unknown controller type, an element that is also an
/// agent's device.
#[test]
fn bad_controllers_are_rejected_naming_the_element() {
    let reg1 = r#"- { type: discrete_tap, trafo: "DSO Regulator 1", side: lv, vm_lower_pu: 1.008333, vm_upper_pu: 1.025,"#;
    let cases: [(&str, String, &[&str]); 4] = [
        (
            "notap",
            reg1.replace("DSO Regulator 1", "DSO Transformer 1"),
            &["DSO Transformer 1", "no tap changer", "controllers[0]"],
        ),
        (
            "band",
            reg1.replace("vm_upper_pu: 1.025", "vm_upper_pu: 1.0"),
            &[
                "DSO Regulator 1",
                "vm_lower_pu < vm_upper_pu",
                "controllers[0]",
            ],
        ),
        (
            "type",
            reg1.replace("type: discrete_tap", "type: continuous_tap"),
            &["continuous_tap", "config.yml"],
        ),
        (
            "twice",
            reg1.replace("DSO Regulator 1", "DSO Regulator 2"),
            &["DSO Regulator 2", "second automatic controller"],
        ),
    ];
    for (tag, line, words) in cases {
        let cfg = edited_setup("ieee34_ieee13", &format!("ctrl_{tag}"), |s| {
            assert!(s.contains(reg1));
            s.replace(reg1, &line)
        });
        let e = match VecEnv::from_name(cfg.to_str().unwrap(), &EnvOptions::default()) {
            Ok(_) => panic!("{tag}: accepted"),
            Err(e) => e,
        };
        let m = e.to_string();
        for w in words {
            assert!(m.contains(w), "{tag}: {m:?} should contain {w:?}");
        }
    }
    // An automatic controller on a trafo an agent drives.
    let cfg = edited_setup("ieee34_ieee13_dso", "ctrl_driven", |s| {
        s.replace(
            "system_operator:",
            "controllers:\n  - { type: discrete_shunt, shunt: \"SCB 1\", vm_set_pu: 1.0, tol: 0.02 }\nsystem_operator:",
        )
    });
    let m = VecEnv::from_name(cfg.to_str().unwrap(), &EnvOptions::default())
        .err()
        .expect("accepted")
        .to_string();
    assert!(m.contains("SCB 1") && m.contains("agent's device"), "{m}");
}

/// A shipped setup folder copied elsewhere still loads: its network is named,
/// its CSVs are its own.
#[test]
fn a_copied_setup_folder_loads() {
    for name in ["ieee34_ieee13", "ieee34_ieee13_dso", "ieee34_voltvar"] {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("setups")
            .join(name);
        let dst =
            std::env::temp_dir().join(format!("powergrid-copied-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
        let copied = powergrid::setup::Setup::load(dst.to_str().unwrap())
            .unwrap_or_else(|e| panic!("{name} copied to {}: {e}", dst.display()));
        let shipped = powergrid::setup::Setup::load(name).unwrap();
        assert_eq!(copied.network, shipped.network, "{name}");
        assert_eq!(copied.train.hours, shipped.train.hours, "{name}");
        std::fs::remove_dir_all(&dst).ok();
    }
}
