//! Helpers shared by the integration tests.
#![allow(dead_code)]

use powergrid::network::Network;
use powergrid::powerflow::scenarios::ScenarioFile;
use powergrid::powerflow::{BatchResults, CpuBatch, CpuKernel, Plan, PowerFlow, SolverOptions};
use std::path::PathBuf;
use std::sync::Arc;

/// The five reference networks.
pub const NETWORKS: [&str; 5] = ["ieee13", "ieee34", "ieee123", "cigre_lv", "ieee34_ieee13"];

/// Path under the crate root.
pub fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The pandapower JSON of a network.
pub fn pandapower_json(name: &str) -> PathBuf {
    path(&format!("tests/data/pandapower/{name}.json"))
}

/// The shipped YAML of a network.
pub fn network_yaml(name: &str) -> PathBuf {
    path(&format!("networks/{name}.yml"))
}

/// The error a network in the YAML format gives: the parser's, or else
/// validation's (the network must be invalid).
pub fn yaml_err(text: &str) -> String {
    match powergrid::network::yaml::from_str(text) {
        Ok(net) => net.validate().unwrap_err().to_string(),
        Err(e) => e.to_string(),
    }
}

/// pandapower's reference solutions of a network.
pub fn reference(name: &str) -> ScenarioFile {
    ScenarioFile::read(&path(&format!("tests/data/reference/{name}.json"))).unwrap()
}

/// A pandapower network of `tests/data/DIR/NAME.json` and its reference
/// solutions `NAME.reference.json` (made by the script in that folder).
pub fn reference_case(dir: &str, name: &str) -> (powergrid::network::Network, ScenarioFile) {
    let net = powergrid::network::load(path(&format!("tests/data/{dir}/{name}.json")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let reference =
        ScenarioFile::read(&path(&format!("tests/data/{dir}/{name}.reference.json"))).unwrap();
    (net, reference)
}

/// `reference`'s scenarios, one copy each, solved on `pf`: its results.
pub fn solve_scenarios(
    pf: &mut dyn PowerFlow,
    net: &Network,
    reference: &ScenarioFile,
) -> BatchResults {
    *pf.inputs_mut() = reference.to_inputs(net).unwrap();
    pf.solve().unwrap();
    pf.results().clone()
}

/// `net`'s plan with the default solver options.
pub fn default_plan(net: &Network) -> Arc<Plan> {
    Arc::new(Plan::new(net, SolverOptions::default()).unwrap())
}

/// `reference`'s scenarios on a fresh CPU batch with `kernel`: the plan and the results.
pub fn cpu_solve(
    net: &Network,
    reference: &ScenarioFile,
    kernel: CpuKernel,
) -> (Arc<Plan>, BatchResults) {
    let plan = default_plan(net);
    let mut batch = CpuBatch::new(plan.clone(), reference.scenarios.len()).with_kernel(kernel);
    let r = solve_scenarios(&mut batch, net, reference);
    (plan, r)
}

/// `reference`'s scenarios on a fresh GPU batch (call [`gpu_or_skip`] first):
/// the plan and the results.
pub fn gpu_solve(net: &Network, reference: &ScenarioFile) -> (Arc<Plan>, BatchResults) {
    gpu_solve_with(net, reference, powergrid::powerflow::GpuPrecision::F32)
}

/// [`gpu_solve`] at `precision`.
pub fn gpu_solve_with(
    net: &Network,
    reference: &ScenarioFile,
    precision: powergrid::powerflow::GpuPrecision,
) -> (Arc<Plan>, BatchResults) {
    let plan = precision_plan(net, precision);
    let mut gpu =
        powergrid::powerflow::gpu::GpuBatch::new(plan.clone(), reference.scenarios.len()).unwrap();
    let r = solve_scenarios(&mut gpu, net, reference);
    (plan, r)
}

/// The default plan of `net` with the GPU at `precision`.
pub fn precision_plan(net: &Network, precision: powergrid::powerflow::GpuPrecision) -> Arc<Plan> {
    let options = SolverOptions {
        gpu_precision: precision,
        ..SolverOptions::default()
    };
    Arc::new(Plan::new(net, options).unwrap())
}

/// Build `net`'s default plan and print how long it took (variant/ψ search
/// included) with its size; printed, not asserted.
pub fn print_plan_build_time(name: &str, net: &Network) {
    let t = std::time::Instant::now();
    let plan = default_plan(net);
    eprintln!(
        "{name}: plan built in {:.3} s ({} buses, {} nodes, {} PV, {:?} psi {:.1}, {} factor non-zeros)",
        t.elapsed().as_secs_f64(),
        net.buses.len(),
        plan.n_node,
        plan.pv_nodes.len(),
        plan.variant,
        plan.psi,
        plan.factor_nnz()
    );
}

/// The tables [`worst_all_converged`] compares, in its order.
pub const COMPARED_TABLES: [&str; 6] = [
    "vm_pu",
    "va_degree",
    "line_loading_percent",
    "trafo_loading_percent",
    "ext_grid_p_mw",
    "ext_grid_q_mvar",
];

/// Worst |Δ| per table of [`COMPARED_TABLES`] over every scenario, each of
/// which must have converged in pandapower and in `r`.
pub fn worst_all_converged(
    name: &str,
    reference: &ScenarioFile,
    r: &powergrid::powerflow::BatchResults,
) -> [f64; 6] {
    let mut worst = [0.0f64; 6];
    for c in 0..reference.scenarios.len() {
        assert!(ref_converged(reference, c), "{name} {c}: reference");
        assert!(
            r.converged[c],
            "{name} scenario {c}: did not converge (mismatch {:e})",
            r.max_mismatch_pu[c]
        );
        for (w, key) in worst.iter_mut().zip(COMPARED_TABLES) {
            *w = w.max(table_diff(r, reference, c, key));
        }
    }
    worst
}

/// pandapower's trafo flows (`res_trafo` p_hv_mw, q_hv_mvar, p_lv_mw, q_lv_mvar).
pub const TRAFO_FLOW_TABLES: [&str; 4] = [
    "trafo_p_hv_mw",
    "trafo_q_hv_mvar",
    "trafo_p_lv_mw",
    "trafo_q_lv_mvar",
];

/// Worst |Δ| of the trafo flows ([`TRAFO_FLOW_TABLES`], MW and Mvar) over the
/// scenarios that converged in pandapower and in `r`.
pub fn worst_trafo_flows(reference: &ScenarioFile, r: &BatchResults) -> f64 {
    let mut worst = 0.0f64;
    for c in 0..reference.scenarios.len() {
        if !ref_converged(reference, c) || !r.converged[c] {
            continue;
        }
        for key in TRAFO_FLOW_TABLES {
            worst = worst.max(table_diff(r, reference, c, key));
        }
    }
    worst
}

/// [`worst_trafo_flows`] printed and asserted at `bound_pu`·`sn_mva` (MW, Mvar).
pub fn check_trafo_flows(
    name: &str,
    what: &str,
    net: &Network,
    reference: &ScenarioFile,
    r: &BatchResults,
    bound_pu: f64,
) {
    let w = worst_trafo_flows(reference, r);
    eprintln!("{name} ({what}): worst |Δ trafo P/Q (HV and LV)| {w:.2e} MW/Mvar");
    assert!(
        w <= bound_pu * net.sn_mva,
        "{name} ({what}): max |Δ trafo P/Q| = {w:e} MW/Mvar"
    );
}

/// A reference scenario's converged flag.
pub fn ref_converged(f: &ScenarioFile, c: usize) -> bool {
    f.scenarios[c]
        .extra
        .get("converged")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// A reference scenario's result table.
pub fn ref_table(f: &ScenarioFile, c: usize, key: &str) -> Vec<f64> {
    f.scenarios[c].extra["results"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap_or(0.0))
        .collect()
}

/// Max |Δ| between copy `c`'s result table `key` (a `pf` output key) and
/// reference scenario `c`'s.
pub fn table_diff(
    r: &powergrid::powerflow::BatchResults,
    f: &ScenarioFile,
    c: usize,
    key: &str,
) -> f64 {
    let (_, a) = r
        .tables()
        .into_iter()
        .find(|(k, _)| *k == key)
        .unwrap_or_else(|| panic!("no result table {key}"));
    max_abs_diff(&a.row(c).to_vec(), &ref_table(f, c, key))
}

/// Max |a − b|.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Power balance at every solved node recomputed from the reported voltages with
/// a plain per-branch loop (independent of the solver's gather kernel and state).
pub fn recomputed_mismatch(
    net: &powergrid::network::Network,
    plan: &powergrid::powerflow::Plan,
    inp: &powergrid::powerflow::BatchInputs,
    c: usize,
    vm: &[f64],
    va: &[f64],
) -> f64 {
    use powergrid::complex::C64;
    use powergrid::powerflow::admittance::{
        line_branch, shunt_y_per_step, switch_branch, trafo_branch,
    };
    let v = |b: usize| C64::from_polar(vm[b], va[b].to_radians());
    let mut s_calc = vec![C64::ZERO; plan.n_node];
    let mut s_spec = vec![C64::ZERO; plan.n_node];
    let flow =
        |pi: powergrid::powerflow::admittance::PiBranch, f: usize, t: usize, s: &mut Vec<C64>| {
            let (Some(nf), Some(nt)) = (plan.bus_node[f], plan.bus_node[t]) else {
                return;
            };
            let a = pi.admittance();
            s[nf] += v(f) * (a.yff * v(f) + a.yft * v(t)).conj();
            s[nt] += v(t) * (a.ytf * v(f) + a.ytt * v(t)).conj();
        };
    for l in net.lines.iter().filter(|l| l.in_service) {
        flow(line_branch(net, l), l.from_bus, l.to_bus, &mut s_calc);
    }
    for (k, t) in net.trafos.iter().enumerate().filter(|(_, t)| t.in_service) {
        flow(
            trafo_branch(net, t, inp.trafo_tap_pos[(c, k)]),
            t.hv_bus,
            t.lv_bus,
            &mut s_calc,
        );
    }
    for s in net
        .switches
        .iter()
        .filter(|s| s.closed && s.z_ohm > 0.0 && s.et == powergrid::network::SwitchElement::Bus)
    {
        flow(
            switch_branch(net, s.bus, s.z_ohm),
            s.bus,
            s.element,
            &mut s_calc,
        );
    }
    for (k, sh) in net.shunts.iter().enumerate() {
        if let Some(n) = plan.bus_node[sh.bus] {
            s_calc[n] += (shunt_y_per_step(net, k).scale(inp.shunt_step[(c, k)])
                * v(sh.bus)
                * v(sh.bus).conj())
            .conj();
        }
    }
    let sn = net.sn_mva;
    for (k, l) in net.loads.iter().enumerate() {
        if let Some(n) = plan.bus_node[l.bus] {
            s_spec[n] -= C64::new(inp.load_p_mw[(c, k)], inp.load_q_mvar[(c, k)])
                .scale(inp.load_scaling[(c, k)] / sn);
        }
    }
    for (k, g) in net.sgens.iter().enumerate() {
        if let Some(n) = plan.bus_node[g.bus] {
            s_spec[n] +=
                C64::new(inp.sgen_p_mw[(c, k)], inp.sgen_q_mvar[(c, k)]).scale(g.scaling / sn);
        }
    }
    for (k, s) in net.storages.iter().enumerate() {
        if let Some(n) = plan.bus_node[s.bus] {
            s_spec[n] -= C64::new(inp.storage_p_mw[(c, k)], s.q_mvar).scale(s.scaling / sn);
        }
    }
    (0..plan.n_pq)
        .map(|n| {
            let d = s_spec[n] - s_calc[n];
            d.re.abs().max(d.im.abs())
        })
        .fold(0.0, f64::max)
}

/// Whether a GPU adapter is there: prints which, or prints a notice and returns
/// false — unless `POWERGRID_REQUIRE_GPU=1` (set by `.ci/run`), which makes a
/// missing adapter a failure.
pub fn gpu_or_skip(test: &str) -> bool {
    match powergrid::gpu::GpuContext::shared() {
        Ok(ctx) => {
            eprintln!("{test}: running on {}", ctx.info);
            true
        }
        Err(e) => {
            if std::env::var("POWERGRID_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("{test}: POWERGRID_REQUIRE_GPU=1 but {e}");
            }
            eprintln!("{test}: skipped, {e}");
            false
        }
    }
}

/// Worst differences `w` (`[|Δvm| p.u., |Δva| °, |Δline loading| pp,
/// |Δtrafo loading| pp, …]`, as [`worst_all_converged`] gives them) within
/// `vm`, `va` and, where given, `loading` (lines and trafos); the message
/// names the network and the backend.
pub fn assert_worst(name: &str, backend: &str, w: &[f64], vm: f64, va: f64, loading: Option<f64>) {
    assert!(w[0] <= vm, "{name}: {backend} max |Δvm| = {:e} p.u.", w[0]);
    assert!(w[1] <= va, "{name}: {backend} max |Δva| = {:e}°", w[1]);
    if let Some(pp) = loading {
        assert!(
            w[2] <= pp,
            "{name}: {backend} max |Δline loading| = {:e} pp",
            w[2]
        );
        assert!(
            w[3] <= pp,
            "{name}: {backend} max |Δtrafo loading| = {:e} pp",
            w[3]
        );
    }
}

/// The network written as YAML and read back is the same network, and both
/// solve the reference's scenarios alike on the CPU: their results, in that order.
pub fn yaml_round_trip(
    name: &str,
    net: &Network,
    reference: &ScenarioFile,
) -> (String, BatchResults, BatchResults) {
    let text = powergrid::network::yaml::to_string(net).unwrap();
    let back = powergrid::network::yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(*net, back, "{name}: YAML round trip");
    let (_, a) = cpu_solve(net, reference, CpuKernel::Lanes);
    let (_, b) = cpu_solve(&back, reference, CpuKernel::Lanes);
    assert_eq!(a.vm_pu, b.vm_pu, "{name}");
    (text, a, b)
}
