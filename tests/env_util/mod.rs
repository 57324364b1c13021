//! Helpers shared by the environment tests.
#![allow(dead_code)]

use ndarray::Array2;
use powergrid::env::{EnvOptions, VecEnv};
use std::path::PathBuf;

/// Crate root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An environment of a shipped setup.
pub fn env(name: &str, batch: usize) -> VecEnv {
    VecEnv::from_name(
        name,
        &EnvOptions {
            batch,
            ..Default::default()
        },
    )
    .unwrap()
}

/// A GPU environment, or `None` (the test then skips, saying why) where no
/// wgpu adapter exists; a failure under `POWERGRID_REQUIRE_GPU`.
pub fn gpu_env_or_skip(made: powergrid::Result<VecEnv>) -> Option<VecEnv> {
    match made {
        Ok(e) => Some(e),
        Err(e) => {
            assert!(
                std::env::var_os("POWERGRID_REQUIRE_GPU").is_none(),
                "POWERGRID_REQUIRE_GPU is set but there is no GPU backend: {e}"
            );
            eprintln!("skipped: no GPU backend here ({e})");
            None
        }
    }
}

/// Constant actions `v` for every agent.
pub fn const_actions(env: &VecEnv, v: f32) -> Vec<Array2<f32>> {
    env.action_dims()
        .iter()
        .map(|&d| Array2::from_elem((env.batch(), d), v))
        .collect()
}

/// Step with owned arrays.
pub fn step(env: &mut VecEnv, a: &[Array2<f32>]) -> powergrid::Result<()> {
    let v: Vec<_> = a.iter().map(|x| x.view()).collect();
    env.step(&v)
}

/// A scratch folder for a test.
pub fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("powergrid_env_{tag}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Copy a shipped setup into a scratch folder with its config edited by `edit`
/// (network and data paths made absolute); returns the config path.
pub fn edited_setup(name: &str, tag: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let src = root().join("setups").join(name);
    let text = std::fs::read_to_string(src.join("config.yml")).unwrap();
    let abs = |s: &str| src.join(s).display().to_string();
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        for key in ["network", "train_data", "test_data"] {
            if let Some(v) = line.strip_prefix(&format!("{key}: ")) {
                let v = v.split('#').next().unwrap_or("").trim();
                // A shipped network's name stays a name; paths become absolute.
                if v.contains('.') || v.contains('/') {
                    l = format!("{key}: {:?}", abs(v));
                }
            }
        }
        out += &l;
        out.push('\n');
    }
    let dir = scratch(tag);
    let p = dir.join("config.yml");
    std::fs::write(&p, edit(out)).unwrap();
    p
}

/// Every output of the last call, flattened, for bitwise comparison.
pub fn snapshot(env: &VecEnv) -> Vec<f64> {
    let mut v = Vec::new();
    for o in env.observations() {
        v.extend(o.iter().map(|x| *x as f64));
    }
    v.extend(env.rewards().iter().map(|x| *x as f64));
    let i = env.info();
    v.extend(i.cost.iter());
    v.extend(i.safety.iter());
    v.extend(i.pcc_import_mw.iter());
    v.extend(i.hour.iter().map(|h| *h as f64));
    v.extend(env.truncated().iter().map(|b| *b as u8 as f64));
    let d = env.devices();
    v.extend(d.storages.soc.iter());
    v.extend(d.generators.p_mw.iter());
    v.extend(d.renewables.p_mw.iter());
    v.extend(d.taps.pos.iter());
    v.extend(d.capacitors.step.iter());
    v.extend(env.power_flow().vm_pu.iter());
    v
}

/// `ieee34_ieee13` with 3 copies, reset with seed 11, after one step of uniform
/// random actions drawn from copy stream `(5, 0)`: the step both
/// `a_step_matches_an_independent_solve_of_its_scenario` and the pandapower
/// comparison use.
pub fn ieee34_ieee13_after_a_random_step() -> VecEnv {
    use rand::RngExt;
    let mut env = env("ieee34_ieee13", 3);
    env.reset(11).unwrap();
    let mut a = const_actions(&env, 0.0);
    let mut rng = powergrid::env::vec_env::copy_rng(5, 0);
    for x in a.iter_mut() {
        x.iter_mut()
            .for_each(|v| *v = rng.random_range(-1.0f32..=1.0));
    }
    step(&mut env, &a).unwrap();
    env
}
