//! `powergrid rollout` and `powergrid setups` from the command line.

use std::process::Command;

fn powergrid(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_powergrid"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn setups_lists_every_setup_one_line_each() {
    let (ok, out, _) = powergrid(&["setups"]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    let names = [
        "ieee34_ieee13",
        "ieee34_ieee13_delayed",
        "ieee34_ieee13_dso",
        "ieee34_ieee13_hierarchical",
        "ieee34_voltvar",
    ];
    assert_eq!(lines.len(), names.len(), "{out}");
    for (l, name) in lines.iter().zip(names) {
        assert!(l.starts_with(name), "{l}");
        assert!(l.len() > name.len() + 10, "a description: {l}");
    }
}

#[test]
fn unknown_setup_lists_the_setups_that_exist() {
    let (ok, _, err) = powergrid(&[
        "rollout",
        "--setup",
        "ieee_nope",
        "--envs",
        "2",
        "--steps",
        "2",
    ]);
    assert!(!ok);
    assert!(
        err.contains("ieee_nope")
            && err.contains("ieee34_ieee13_dso")
            && err.contains("ieee34_voltvar"),
        "{err}"
    );
}

fn rollout(policy: &str, split: &str) -> serde_json::Value {
    let (ok, out, err) = powergrid(&[
        "rollout",
        "--setup",
        "ieee34_ieee13",
        "--envs",
        "3",
        "--steps",
        "30",
        "--policy",
        policy,
        "--split",
        split,
        "--backend",
        "cpu",
        "--seed",
        "4",
        "--json",
    ]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// JSON counts are integers; reset steps are not counted; every reward term
/// is reported; the split reaches the environment.
#[test]
fn rollout_json_split_and_counts() {
    let v = rollout("heuristic", "test");
    assert_eq!(v["split"], "test");
    assert_eq!(v["policy"], "heuristic");
    for k in [
        "envs",
        "steps",
        "env_steps",
        "counted_steps",
        "non_converged",
        "seed",
    ] {
        assert!(v[k].is_u64(), "{k} = {} is not an integer", v[k]);
    }
    assert_eq!(v["env_steps"], 90);
    // 3 copies x 30 steps, no episode ends within 30 hourly steps of 96: no reset steps.
    assert_eq!(v["counted_steps"], 90);
    for t in powergrid::env::reward::TERMS {
        assert!(v["mean_terms"][t].is_f64(), "{t}");
    }
    assert!(v["mean_control_iterations"].as_f64().unwrap() >= 0.0);
    let train = rollout("heuristic", "train");
    assert_eq!(train["split"], "train");
    assert_ne!(train["mean_reward"], v["mean_reward"]);
    let (ok, _, err) = powergrid(&[
        "rollout",
        "--split",
        "validation",
        "--envs",
        "1",
        "--steps",
        "1",
    ]);
    assert!(!ok && err.contains("validation"), "{err}");
}
