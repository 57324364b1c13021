//! Buses cut off from every slack are reported (and given 0), not solved as garbage;
//! out-of-service elements and open switches take their branch out.

mod common;
use common::*;
use powergrid::network::{self, Switch, SwitchElement};
use powergrid::powerflow::{CpuBatch, Plan, PowerFlow, SolverOptions};
use std::sync::Arc;

fn solve(net: &powergrid::network::Network) -> (Arc<Plan>, powergrid::powerflow::BatchResults) {
    let plan = Arc::new(Plan::new(net, SolverOptions::default()).unwrap());
    let mut b = CpuBatch::new(plan.clone(), 1);
    b.solve().unwrap();
    (plan, b.results().clone())
}

/// The line that feeds a radial branch, and the buses beyond it.
fn leaf_line(net: &powergrid::network::Network) -> usize {
    // ieee13: take the last line whose to-bus feeds nothing else.
    (0..net.lines.len())
        .rev()
        .find(|&k| {
            let t = net.lines[k].to_bus;
            net.lines
                .iter()
                .filter(|l| l.from_bus == t || l.to_bus == t)
                .count()
                == 1
                && !net.trafos.iter().any(|x| x.hv_bus == t || x.lv_bus == t)
                && !net.switches.iter().any(|s| s.bus == t || s.element == t)
        })
        .unwrap()
}

#[test]
fn cut_off_buses_are_reported_not_solved() {
    let mut net = network::load(network_yaml("ieee13")).unwrap();
    let k = leaf_line(&net);
    let cut = net.lines[k].to_bus;
    net.lines[k].in_service = false;
    let (plan, r) = solve(&net);
    assert_eq!(plan.isolated_buses, vec![cut]);
    assert!(r.converged[0]);
    assert_eq!(r.vm_pu[(0, cut)], 0.0);
    assert_eq!(r.line_loading_percent[(0, k)], 0.0);
    assert!(r
        .vm_pu
        .row(0)
        .iter()
        .enumerate()
        .all(|(b, &v)| b == cut || v > 0.8));

    // The same cut made by an open line switch.
    let mut net2 = network::load(network_yaml("ieee13")).unwrap();
    net2.switches.push(Switch {
        name: "open".into(),
        bus: cut,
        element: k,
        et: SwitchElement::Line,
        closed: false,
        z_ohm: 0.0,
    });
    let (plan2, r2) = solve(&net2);
    assert_eq!(plan2.isolated_buses, vec![cut]);
    assert_eq!(r2.vm_pu[(0, cut)], 0.0);
    // As in pandapower, the line open at one end keeps its charging at the other:
    // it draws the charging current of the whole line at the closed end,
    // `|I| ≈ |V|·B` for a short line (both halves of the pi; tested against
    // pandapower in `pandapower_networks`).
    assert!(net2.lines[k].c_nf_per_km > 0.0);
    let i_ka = r2.line_i_ka[(0, k)];
    assert!(i_ka > 0.0, "no charging current on the open-ended line");
    let b_us = 2.0
        * std::f64::consts::PI
        * net2.f_hz
        * net2.lines[k].c_nf_per_km
        * 1e-3
        * net2.lines[k].length_km;
    let from = net2.lines[k].from_bus;
    let kv = net2.buses[from].vn_kv * r2.vm_pu[(0, from)];
    let i_expected_ka = kv / 3f64.sqrt() * b_us * 1e-6;
    assert!(
        (i_ka - i_expected_ka).abs() <= 0.05 * i_expected_ka,
        "{i_ka} kA vs {i_expected_ka} kA"
    );
}

#[test]
fn a_network_without_slack_is_an_error() {
    let mut net = network::load(network_yaml("ieee13")).unwrap();
    net.ext_grids[0].in_service = false;
    let e = Plan::new(&net, SolverOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no in-service ext_grid"), "{e}");
}

#[test]
fn several_slacks_share_the_work() {
    // ieee34_ieee13 has four ext_grids, one in service: the others report 0.
    let net = network::load(network_yaml("ieee34_ieee13")).unwrap();
    let (_, r) = solve(&net);
    let p = r.ext_grid_p_mw.row(0);
    assert!(p[0] > 0.1);
    assert!(p.iter().skip(1).all(|&x| x == 0.0));
}
