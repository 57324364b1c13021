//! The documented observation layouts, in both modes.
#![allow(clippy::needless_range_loop)]

mod env_util;
use approx::assert_abs_diff_eq;
use env_util::*;
use powergrid::env::{EnvOptions, ObsSource, VecEnv};
use powergrid::setup::config::ObservationMode;

fn make(mode: ObservationMode, batch: usize) -> VecEnv {
    VecEnv::from_name(
        "ieee34_ieee13",
        &EnvOptions {
            batch,
            observation: Some(mode),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn distributed_layout() {
    let mut env = make(ObservationMode::Distributed, 2);
    env.reset(5).unwrap();
    {
        let a = const_actions(&env, 0.5);
        step(&mut env, &a)
    }
    .unwrap();
    let net = env.network().clone();
    for (i, agent) in env.agents().iter().enumerate() {
        let l = env.layout(i);
        let f = l.field("bus (vm_pu-1)/0.05").unwrap().clone();
        // 3 devices (2 + 2 + 3) + buses + load + pcc + price + sin + cos.
        assert_eq!(l.dim(), 7 + f.len + 5);
        assert_eq!(l.columns.len(), l.dim(), "a name for every column");
        assert_eq!(env.observations()[i].ncols(), l.dim());
        assert_eq!(agent.buses.len(), 13, "an IEEE 13 microgrid has 13 buses");
        // Bus 671 and Bus 692 are joined by a closed switch: one node, one column.
        assert_eq!(f.len, 12);
        assert!(l.column(&format!("{} Bus 671 vm", agent.name)).is_some());
        assert!(l.column(&format!("{} Bus 692 vm", agent.name)).is_none());
        let o = env.observations()[i].row(1);
        // generator [P/p_max, Q/s_rated]; storage [soc, P/p_max]; solar [avail, P, Q].
        let d = env.devices();
        assert_abs_diff_eq!(
            o[0],
            (d.generators.p_mw[[1, i]] / d.generators.params[i].p_max_mw) as f32
        );
        assert_abs_diff_eq!(o[2], d.storages.soc[[1, i]] as f32);
        assert_abs_diff_eq!(
            o[3],
            (d.storages.p_mw[[1, i]] / d.storages.params[i].p_max_mw) as f32
        );
        assert_abs_diff_eq!(
            o[5],
            (d.renewables.p_mw[[1, i]] / d.renewables.params[i].capacity_mw) as f32
        );
        assert_eq!(f.offset, 7);
        for j in 0..f.len {
            let ObsSource::BusVm(b) = l.sources[f.offset + j] else {
                panic!("bus column {j} has source {:?}", l.sources[f.offset + j])
            };
            assert!(net.buses[b].name.starts_with(&agent.name));
            assert_eq!(l.columns[f.offset + j], format!("{} vm", net.buses[b].name));
            let vm = env.power_flow().vm_pu[[1, b]];
            assert_abs_diff_eq!(o[f.offset + j], ((vm - 1.0) / 0.05) as f32, epsilon = 1e-5);
        }
        let p = l.field("pcc import/base_power").unwrap().offset;
        assert_abs_diff_eq!(o[p], env.info().pcc_import_mw[[1, i]] as f32);
        // Price and time of day of the hour the next action applies to.
        let price = l.field("tanh(price/price_scale)").unwrap().offset;
        let next = env.info().hour[1] + 1;
        assert_abs_diff_eq!(
            o[price],
            (env.next_price(1) / 100.0).tanh() as f32,
            epsilon = 1e-6
        );
        let h = (next % 24) as f64 * std::f64::consts::TAU / 24.0;
        assert_abs_diff_eq!(o[price + 1], h.sin() as f32, epsilon = 1e-6);
        assert_abs_diff_eq!(o[price + 2], h.cos() as f32, epsilon = 1e-6);
        assert_eq!(price + 3, l.dim());
    }
}

#[test]
fn centralized_layout_is_global_and_identical_for_every_agent() {
    let mut env = make(ObservationMode::Centralized, 2);
    env.reset(5).unwrap();
    // Centralized mode steps (the original crashed on the first step).
    for _ in 0..3 {
        {
            let a = const_actions(&env, -0.2);
            step(&mut env, &a)
        }
        .unwrap();
    }
    let net = env.network().clone();
    let l = env.layout(0);
    // One column per solved non-slack node: the closed 671–692 switch of each
    // microgrid fuses 3 pairs, and the slack bus (fixed voltage) is left out.
    let n_bus = net.buses.len();
    assert_eq!(net.switches.len(), 3);
    assert_eq!(l.field("bus (vm_pu-1)/0.05").unwrap().len, n_bus - 4);
    // 4 load groups (DSO, MG1, MG2, MG3).
    assert_eq!(l.dim(), n_bus - 4 + 3 * 7 + 4 + 3 + 3);
    let obs = env.observations();
    for i in 1..3 {
        assert_eq!(obs[i], obs[0]);
        assert_eq!(env.layout(i), l);
    }
    let o = obs[0].row(0);
    let loads = l.field("load group P/base_power").unwrap();
    assert_eq!(loads.len, 4);
    let s = env.scenario(0).inputs;
    for (j, prefix) in ["DSO ", "MG1 ", "MG2 ", "MG3 "].iter().enumerate() {
        assert!(matches!(
            l.sources[loads.offset + j],
            ObsSource::LoadGroup(_)
        ));
        assert_eq!(l.columns[loads.offset + j], format!("loads {prefix:?} P"));
        let p: f64 = (0..net.loads.len())
            .filter(|&k| net.loads[k].name.starts_with(prefix))
            .map(|k| s.load_p_mw.as_ref().unwrap()[k] * s.load_scaling.as_ref().unwrap()[k])
            .sum();
        assert_abs_diff_eq!(o[loads.offset + j], p as f32, epsilon = 1e-6);
    }
    // MG2's storage SOC sits in MG2's device block.
    let mg2 = l
        .fields
        .iter()
        .find(|f| f.name.starts_with("MG2.device[1]"))
        .unwrap();
    assert_abs_diff_eq!(o[mg2.offset], env.devices().storages.soc[[0, 1]] as f32);
}

/// Under random actions, no observation column is constant and no two columns
/// are equal over a whole rollout, in every shipped setup and both modes.
#[test]
fn no_constant_or_duplicate_columns() {
    use powergrid::env::{Policy, PolicyRunner};
    for name in ["ieee34_ieee13", "ieee34_ieee13_dso", "ieee34_voltvar"] {
        for mode in [ObservationMode::Distributed, ObservationMode::Centralized] {
            let mut env = VecEnv::from_name(
                name,
                &EnvOptions {
                    batch: 8,
                    observation: Some(mode),
                    ..Default::default()
                },
            )
            .unwrap();
            env.reset(1).unwrap();
            let mut pol = PolicyRunner::new(Policy::Random, 8, 2);
            let mut a = PolicyRunner::zero_actions(&env);
            let mut rows: Vec<Vec<Vec<f32>>> = vec![Vec::new(); env.agent_names().len()];
            for _ in 0..30 {
                pol.fill(&env, &mut a).unwrap();
                let v: Vec<_> = a.iter().map(|x| x.view()).collect();
                env.step(&v).unwrap();
                for (i, o) in env.observations().iter().enumerate() {
                    rows[i].extend(o.rows().into_iter().map(|r| r.to_vec()));
                }
            }
            for (i, r) in rows.iter().enumerate() {
                let l = env.layout(i);
                let col = |j: usize| r.iter().map(|x| x[j]).collect::<Vec<f32>>();
                let cols: Vec<Vec<f32>> = (0..l.dim()).map(col).collect();
                for (j, c) in cols.iter().enumerate() {
                    assert!(
                        c.iter().any(|x| *x != c[0]),
                        "{name} {mode:?} agent {i}: column {j} ({}) is constant",
                        l.columns[j]
                    );
                    for k in 0..j {
                        assert_ne!(
                            &cols[k], c,
                            "{name} {mode:?} agent {i}: columns {k} ({}) and {j} ({}) are equal",
                            l.columns[k], l.columns[j]
                        );
                    }
                }
                // A name for every column, all different.
                let mut names = l.columns.clone();
                names.sort();
                names.dedup();
                assert_eq!(names.len(), l.dim());
            }
        }
    }
}

/// The price an agent sees is the price its next action settles at: the
/// observation after step k shows `tanh(price/price_scale)` of the hour that
/// step k + 1 is charged, and prices stay inside (−1, 1) whatever the market does.
#[test]
fn observed_price_is_the_price_of_the_next_step() {
    let mut env = env("ieee34_ieee13", 4);
    env.reset(3).unwrap();
    let price_col = env.layout(0).column("next-hour price").unwrap();
    let a = const_actions(&env, 0.0);
    let mut checked = 0;
    for _ in 0..100 {
        let seen: Vec<f32> = (0..4)
            .map(|c| env.observations()[0][[c, price_col]])
            .collect();
        step(&mut env, &a).unwrap();
        for c in 0..4 {
            if env.info().reset[c] {
                continue;
            }
            let charged = env.info().price[c];
            assert_abs_diff_eq!(seen[c], (charged / 100.0).tanh() as f32, epsilon = 1e-6);
            assert!(seen[c].abs() < 1.0);
            checked += 1;
        }
    }
    assert!(checked > 300);
}
