//! One test per bug of the original system (design/environment.md), each
//! showing that ours does not have it.
#![allow(clippy::needless_range_loop)]

mod env_util;
use approx::assert_abs_diff_eq;
use env_util::*;
use powergrid::env::{EnvOptions, VecEnv};
use powergrid::setup::config::ObservationMode;

#[test]
fn bug1_time_index_advances_every_step() {
    let mut env = env("ieee34_ieee13", 2);
    env.reset(0).unwrap();
    let h0 = env.info().hour[0];
    let tf = env.layout(0).field("sin(2pi hour/24)").unwrap().offset;
    let mut seen = vec![env.observations()[0][[0, tf]]];
    for k in 1..=5 {
        let a = const_actions(&env, 0.0);
        step(&mut env, &a).unwrap();
        assert_eq!(env.info().hour[0], h0 + k);
        seen.push(env.observations()[0][[0, tf]]);
    }
    assert!(
        seen.windows(2).all(|w| w[0] != w[1]),
        "time features change: {seen:?}"
    );
}

#[test]
fn bug2_centralized_mode_steps() {
    let mut env = VecEnv::from_name(
        "ieee34_ieee13",
        &EnvOptions {
            batch: 2,
            observation: Some(ObservationMode::Centralized),
            ..Default::default()
        },
    )
    .unwrap();
    env.reset(0).unwrap();
    for _ in 0..4 {
        let a = const_actions(&env, 0.7);
        step(&mut env, &a).unwrap();
    }
    assert!(env.observations()[0].iter().all(|x| x.is_finite()));
}

#[test]
fn bug3_ess_acts_reaches_the_power_flow_and_is_counted() {
    let mut env = env("ieee34_ieee13", 2);
    env.reset(0).unwrap();
    let mut a = const_actions(&env, 0.0);
    a[0][[0, 2]] = 1.0; // copy 0: MG1 ESS charges at p_max
    a[0][[1, 2]] = 0.0; // copy 1: idle
    step(&mut env, &a).unwrap();
    let d = env.devices();
    assert_abs_diff_eq!(d.storages.p_mw[[0, 0]], 0.1);
    assert_eq!(d.storages.p_mw[[1, 0]], 0.0);
    // It reaches the power flow as storage_p_mw …
    let s = env.scenario(0).inputs.storage_p_mw.unwrap();
    assert_abs_diff_eq!(s[d.storages.element[0]], 0.1);
    // … and shows in the microgrid's import and cost (degradation 1 $/MWh).
    let cost_idle =
        env.info().cost[[1, 0]] - env.info().pcc_import_mw[[1, 0]] * env.info().price[1];
    let cost_ch = env.info().cost[[0, 0]] - env.info().pcc_import_mw[[0, 0]] * env.info().price[0];
    assert_abs_diff_eq!(cost_ch - cost_idle, 0.1, epsilon = 1e-9);
    // Its safety term is counted: the agent's device violations (what the
    // environment adds to safety) include an SOC outside its limits.
    assert_eq!(env.agents()[0].device_violation(env.devices(), 0), 0.0);
    let mut devs = env.devices().clone();
    devs.storages.soc[[0, 0]] = 0.95;
    assert_abs_diff_eq!(
        env.agents()[0].device_violation(&devs, 0),
        0.05,
        epsilon = 1e-12
    );
}

#[test]
fn bug4_discharge_cost_uses_p() {
    let mut env = env("ieee34_ieee13", 1);
    env.reset(0).unwrap();
    let mut a = const_actions(&env, 0.0);
    a[1][[0, 2]] = -0.5; // MG2 ESS discharges 0.06 MW, Q of the solar set to its maximum
    a[1][[0, 4]] = 1.0;
    step(&mut env, &a).unwrap();
    let d = env.devices();
    assert_abs_diff_eq!(d.storages.p_mw[[0, 1]], -0.06);
    assert_abs_diff_eq!(d.storages.cost(0, 1, 1.0), 0.06, epsilon = 1e-12);
}

#[test]
fn bug5_price_is_used_for_trading() {
    let mut env = env("ieee34_ieee13", 2);
    env.reset(0).unwrap();
    let a = const_actions(&env, -1.0); // diesel off, ESS discharging, solar curtailed: the microgrids import
    step(&mut env, &a).unwrap();
    let i = env.info();
    for c in 0..2 {
        for k in 0..3 {
            let import = i.pcc_import_mw[[c, k]];
            assert!(import > 0.0);
            let device = env.agents()[k].device_cost(env.devices(), c, 1.0);
            assert_abs_diff_eq!(i.cost[[c, k]] - device, import * i.price[c], epsilon = 1e-9);
            assert!(i.price[c] != 0.0);
        }
    }
}

#[test]
fn bug6_voltage_features_follow_the_power_flow() {
    let mut env = env("ieee34_ieee13", 1);
    env.reset(0).unwrap();
    let f = env.layout(0).field("bus (vm_pu-1)/0.05").unwrap().clone();
    let v0: Vec<f32> = env.observations()[0].row(0).to_vec()[f.offset..f.offset + f.len].to_vec();
    let a = const_actions(&env, 1.0);
    step(&mut env, &a).unwrap();
    let v1: Vec<f32> = env.observations()[0].row(0).to_vec()[f.offset..f.offset + f.len].to_vec();
    assert_ne!(v0, v1);
    let b = env.agents()[0].buses[3];
    assert_abs_diff_eq!(
        v1[3],
        ((env.power_flow().vm_pu[[0, b]] - 1.0) / 0.05) as f32,
        epsilon = 1e-5
    );
}

#[test]
fn bug7_shipped_config_has_generation_cost() {
    let mut env = env("ieee34_ieee13", 1);
    env.reset(0).unwrap();
    let a = const_actions(&env, 0.5); // diesels at half output
    step(&mut env, &a).unwrap();
    for k in 0..3 {
        assert!(env.devices().generators.params[k].cost[1] > 0.0);
        assert!(env.devices().generators.cost(0, k, 1.0) > 1.0);
    }
}

#[test]
fn bug8_dso_voltage_violations_are_visible() {
    // The DSO setup's regulators are not automatic (its agent drives them), so
    // at reset they sit at the network's peak-load taps and the feeder is high.
    let mut env = env("ieee34_ieee13_dso", 2);
    env.reset(0).unwrap();
    let net = env.network().clone();
    let vm = env.power_flow().vm_pu.clone();
    for c in 0..2 {
        let dso: f64 = (0..net.buses.len())
            .filter(|&b| net.buses[b].name.starts_with("DSO "))
            .map(|b| (vm[[c, b]] - 1.05).max(0.0) + (0.95 - vm[[c, b]]).max(0.0))
            .sum();
        assert!(
            dso > 0.0,
            "the DSO feeder is outside the band in this state"
        );
        assert_abs_diff_eq!(env.info().operator_safety[c], dso, epsilon = 1e-9);
        assert!(env.info().network_voltage_safety[c] >= dso);
        assert!(env.info().voltage_violation[c]);
    }
}
