//! What a newcomer meets on the command line: nonsense arguments are refused
//! with a message that says what is allowed, a closed pipe is not a panic, a
//! batch that cannot fit is refused with its memory estimate, and the library's
//! `Auto` backend prints nothing.

use std::io::Read;
use std::process::{Command, Output, Stdio};

fn powergrid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_powergrid"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn nonsense_numbers_are_refused_with_what_is_allowed() {
    let cases: [(&[&str], &str); 9] = [
        (
            &["bench", "pf", "--network", "ieee13", "--batch", "0"],
            "--batch",
        ),
        (
            &["bench", "pf", "--network", "ieee13", "--batch", "-1"],
            "--batch",
        ),
        (
            &["bench", "pf", "--network", "ieee13", "--batch", "many"],
            "--batch",
        ),
        (
            &["bench", "pf", "--network", "ieee13", "--seconds", "nan"],
            "--seconds",
        ),
        (
            &["bench", "pf", "--network", "ieee13", "--seconds", "-2"],
            "--seconds",
        ),
        (
            &["bench", "pf", "--network", "ieee13", "--seconds", "inf"],
            "--seconds",
        ),
        (&["rollout", "--envs", "0"], "--envs"),
        (&["rollout", "--steps", "-5"], "--steps"),
        (&["rollout", "--seed", "-1"], "--seed"),
    ];
    for (args, flag) in cases {
        let o = powergrid(args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?} was accepted: {e}");
        assert!(e.contains(flag), "{args:?}: {e}");
        assert!(
            e.contains("must be"),
            "{args:?} does not say what is allowed: {e}"
        );
        assert!(!e.contains("unexpected argument"), "{args:?}: {e}");
    }
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_powergrid"))
        .args(["pf", "--network", "ieee34_ieee13"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the results are written (like `| head -c 0`).
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let st = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(
            st.success() || st.signal() == Some(13),
            "exit {st:?}, stderr: {err}"
        );
    }
    #[cfg(not(unix))]
    assert!(st.success(), "{err}");
}

#[test]
fn a_batch_that_cannot_fit_is_refused_with_its_estimate() {
    for args in [
        &["rollout", "--envs", "100000000", "--backend", "cpu"][..],
        &[
            "bench",
            "pf",
            "--network",
            "ieee123",
            "--batch",
            "100000000",
        ][..],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_powergrid"))
            .args(args)
            .env("POWERGRID_MEMORY_LIMIT_GB", "8")
            .output()
            .unwrap();
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains("not enough memory"), "{args:?}: {e}");
        assert!(e.contains("100000000 copies need about"), "{args:?}: {e}");
        assert!(e.contains("8.0 GB available"), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{args:?}: {e}");
    }
}

#[test]
fn verbose_prints_the_memory_estimate() {
    let o = powergrid(&["pf", "--network", "ieee13", "--verbose"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 copies need about"), "{}", stderr(&o));
}

#[test]
fn import_to_stdout_and_networks_by_name() {
    let json = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pandapower/ieee13.json"
    );
    let o = powergrid(&["import", json, "-o", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let net = powergrid::network::yaml::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert_eq!(net, powergrid::network::load("ieee13").unwrap());
    // A shipped network by name, from another working directory.
    let o = Command::new(env!("CARGO_BIN_EXE_powergrid"))
        .args(["pf", "--network", "networks/ieee13.yml"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = powergrid(&["pf", "--network", "no_such_net"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("shipped: cigre_lv, ieee123, ieee13"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bench_json_names_the_network() {
    let o = powergrid(&[
        "bench",
        "pf",
        "--network",
        "ieee13",
        "--batch",
        "8",
        "--seconds",
        "0.05",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["network"], "IEEE13");
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_misspelt_wgpu_backend_is_named() {
    let o = Command::new(env!("CARGO_BIN_EXE_powergrid"))
        .args(["pf", "--network", "ieee13", "--backend", "gpu"])
        .env("WGPU_BACKEND", "bogus")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("\"bogus\" is not a backend name"),
        "{}",
        stderr(&o)
    );
}

/// Runs in a child process (see the next test): the library's `Auto` backend,
/// as a user's program calls it, with no `XDG_RUNTIME_DIR`.
#[test]
fn child_auto_backend() {
    if std::env::var_os("POWERGRID_CLI_CHILD").is_none() {
        return; // only meaningful in the child process started below
    }
    use powergrid::prelude::*;
    let net = network::load("ieee13").unwrap();
    let plan = std::sync::Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    let (mut pf, _) = new_backend(BackendKind::Auto, plan.clone(), 4).unwrap();
    pf.solve().unwrap();
    // And the GPU backend where there is an adapter (lavapipe in CI).
    if let Ok((mut g, _)) = new_backend(BackendKind::Gpu, plan, 4) {
        g.solve().unwrap();
    }
}

#[test]
fn library_auto_backend_prints_nothing_to_stderr() {
    let o = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_auto_backend",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("POWERGRID_CLI_CHILD", "1")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 passed"),
        "the child test did not run: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(stderr(&o), "", "the library printed to stderr");
}

#[test]
fn a_gpu_batch_that_cannot_fit_on_lavapipe_is_refused() {
    use powergrid::prelude::*;
    let net = network::load("ieee123").unwrap();
    let plan = std::sync::Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
    let ctx = match powergrid::gpu::GpuContext::shared() {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("POWERGRID_REQUIRE_GPU").is_none(),
                "no GPU adapter: {e}"
            );
            eprintln!("no GPU adapter ({e}); nothing to check");
            return;
        }
    };
    if !ctx.info.is_cpu_emulated() {
        return; // a real GPU's memory is not known to wgpu
    }
    // 50 million copies of ieee123 are far more than any host has: refused
    // with the estimate, before any buffer exists.
    let e = powergrid::powerflow::gpu::GpuBatch::new(plan, 50_000_000)
        .err()
        .expect("refused");
    let msg = e.to_string();
    assert!(msg.contains("not enough memory"), "{msg}");
    assert!(msg.contains("CPU-emulated"), "{msg}");
}

/// Options that apply to one backend are refused on the other, saying so
/// (exit 1 with the message, before any work): `--cpu-kernel` on the GPU,
/// `--gpu-chunks` / `--gpu-threads` on the CPU; `auto` takes the GPU's.
#[test]
fn options_of_the_other_backend_are_refused() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "bench",
                "pf",
                "--network",
                "ieee13",
                "--backend",
                "gpu",
                "--cpu-kernel",
                "scalar",
            ],
            "--cpu-kernel applies to --backend cpu only",
        ),
        (
            &["bench", "pf", "--network", "ieee13", "--gpu-threads", "2"],
            "--gpu-chunks and --gpu-threads apply to --backend gpu or auto",
        ),
        (
            &["rollout", "--backend", "cpu", "--gpu-chunks", "2"],
            "--gpu-chunks and --gpu-threads apply to --backend gpu or auto",
        ),
        (
            &["rollout", "--backend", "cpu", "--gpu-threads", "4"],
            "--gpu-chunks and --gpu-threads apply to --backend gpu or auto",
        ),
    ];
    for (args, want) in cases {
        let o = powergrid(args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains(want), "{args:?}: {e}");
    }
    // `auto` takes them (the CPU where there is no GPU, which ignores them).
    let o = powergrid(&[
        "rollout",
        "--envs",
        "4",
        "--steps",
        "2",
        "--gpu-threads",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}
