//! Plans of synthetic networks of 1,000 and 10,000 buses, radial and meshed:
//! they build (sparse assembly, fill-reducing order), and the CPU solution
//! satisfies the power balance recomputed independently. The build time is
//! printed (`cargo test --release --test plan_scale -- --nocapture`), not
//! asserted.

mod common;
use common::*;
use powergrid::network::{Bus, ExtGrid, Line, Load, Network};
use powergrid::powerflow::{BatchInputs, CpuBatch, Plan, PowerFlow, SolverOptions};
use std::sync::Arc;
use std::time::Instant;

/// A 20 kV network of `n` buses: every bus has a 0.5 MW / 0.15 Mvar load, bus 0
/// is the slack. `meshed = false`: a random tree (each bus hangs on one of the
/// 200 buses before it). `meshed = true`: a √n × √n grid of lines.
pub fn synthetic(n: usize, meshed: bool) -> Network {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let line = |f: usize, t: usize, len: f64| Line {
        name: format!("{f}-{t}"),
        from_bus: f,
        to_bus: t,
        length_km: len,
        r_ohm_per_km: 0.12,
        x_ohm_per_km: 0.11,
        c_nf_per_km: 250.0,
        g_us_per_km: 0.0,
        max_i_ka: 0.4,
        parallel: 1,
        df: 1.0,
        in_service: true,
    };
    let mut lines = vec![];
    if meshed {
        let w = (n as f64).sqrt().round() as usize;
        for b in 0..n {
            if (b + 1) % w != 0 && b + 1 < n {
                lines.push(line(b, b + 1, 0.3 + (rand() % 100) as f64 * 0.01));
            }
            if b + w < n {
                lines.push(line(b, b + w, 0.3 + (rand() % 100) as f64 * 0.01));
            }
        }
    } else {
        for b in 1..n {
            let parent = b - 1 - (rand() as usize % b.min(200));
            lines.push(line(parent, b, 0.02 + (rand() % 100) as f64 * 0.001));
        }
    }
    let load_mw = if meshed { 0.5 } else { 5.0 / n as f64 * 10.0 };
    Network {
        name: format!("synthetic {} {n}", if meshed { "meshed" } else { "radial" }),
        f_hz: 50.0,
        sn_mva: 1.0,
        buses: (0..n)
            .map(|b| Bus {
                name: format!("b{b}"),
                vn_kv: if meshed { 110.0 } else { 20.0 },
                in_service: true,
                zone: String::new(),
            })
            .collect(),
        lines,
        trafos: vec![],
        loads: (1..n)
            .map(|b| Load {
                name: format!("l{b}"),
                bus: b,
                p_mw: load_mw,
                q_mvar: 0.3 * load_mw,
                scaling: 1.0,
                const_z_p_percent: 0.0,
                const_z_q_percent: 0.0,
                const_i_p_percent: 0.0,
                const_i_q_percent: 0.0,
                in_service: true,
            })
            .collect(),
        sgens: vec![],
        storages: vec![],
        shunts: vec![],
        ext_grids: vec![ExtGrid {
            name: "slack".into(),
            bus: 0,
            vm_pu: 1.0,
            va_degree: 0.0,
            in_service: true,
        }],
        switches: vec![],
        trafo3ws: vec![],
        impedances: vec![],
        wards: vec![],
        gens: vec![],
        xwards: vec![],
        controllers: vec![],
    }
}

#[test]
fn large_synthetic_networks_build_and_solve() {
    for n in [1_000, 10_000] {
        for meshed in [false, true] {
            let net = synthetic(n, meshed);
            let t0 = Instant::now();
            let plan = Arc::new(Plan::new(&net, SolverOptions::default()).unwrap());
            let build = t0.elapsed();
            let mut batch = CpuBatch::new(plan.clone(), 1);
            batch.solve().unwrap();
            let r = batch.results();
            assert!(r.converged[0], "{}: did not converge", net.name);
            let inp = BatchInputs::from_network(&net, 1);
            let m = recomputed_mismatch(
                &net,
                &plan,
                &inp,
                0,
                r.vm_pu.row(0).as_slice().unwrap(),
                r.va_degree.row(0).as_slice().unwrap(),
            );
            assert!(m <= 1e-7, "{}: recomputed mismatch {m:e}", net.name);
            let pq_pq = plan
                .branches
                .iter()
                .filter(|b| b.f < plan.n_pq && b.t < plan.n_pq && b.f != b.t)
                .count();
            if !meshed {
                // The fill-reducing order eliminates a tree without fill.
                assert_eq!(
                    plan.factor_nnz(),
                    plan.n_pq + 2 * pq_pq,
                    "{}: fill",
                    net.name
                );
            }
            let vmin = r.vm_pu.row(0).iter().cloned().fold(f64::INFINITY, f64::min);
            eprintln!(
                "{}: plan built in {:.3} s ({:?} ψ {:.1}), nnz(B') {}, nnz(L+U) {}, min vm {vmin:.4}, {} iterations",
                net.name,
                build.as_secs_f64(),
                plan.variant,
                plan.psi,
                plan.n_pq + 2 * pq_pq,
                plan.factor_nnz(),
                r.iterations[0]
            );
        }
    }
}

/// Plan-build time of the five shipped networks (printed, best of 5).
#[test]
fn shipped_networks_plan_build_time() {
    for name in NETWORKS {
        let net = powergrid::network::load(network_yaml(name)).unwrap();
        // Best of 5 (the machine is shared).
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t0 = Instant::now();
            let plan = Plan::new(&net, SolverOptions::default()).unwrap();
            best = best.min(t0.elapsed().as_secs_f64());
            assert!(plan.n_pq > 0, "{name}: no PQ node");
        }
        eprintln!(
            "{name}: {} buses, plan built in {:.4} s (best of 5)",
            net.buses.len(),
            best
        );
    }
}
