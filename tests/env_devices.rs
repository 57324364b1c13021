//! Each device's dynamics and limits.

use approx::assert_abs_diff_eq;
use powergrid::devices::{
    centred, centred_inverse, scale_action, CapacitorParams, Capacitors, GeneratorParams,
    Generators, RenewableParams, Renewables, StorageParams, Storages, TapChangers, TapParams,
};

fn diesel() -> GeneratorParams {
    GeneratorParams {
        p_min_mw: 0.1,
        p_max_mw: 0.66,
        q_min_mvar: -0.33,
        q_max_mvar: 0.33,
        s_rated_mva: 0.7,
        pf_min: 0.8,
        cost: [100.0, 72.4, 0.5011],
    }
}

#[test]
fn action_scaling_clips_to_range() {
    assert_eq!(scale_action(-1.0, 2.0, 4.0), 2.0);
    assert_eq!(scale_action(1.0, 2.0, 4.0), 4.0);
    assert_eq!(scale_action(0.0, 2.0, 4.0), 3.0);
    assert_eq!(scale_action(7.0, 2.0, 4.0), 4.0);
    assert_eq!(scale_action(-7.0, 2.0, 4.0), 2.0);
    // Centred: 0 maps to 0 whatever the bounds.
    assert_eq!(centred(0.0, -0.3, 0.5), 0.0);
    assert_eq!(centred(1.0, -0.3, 0.5), 0.5);
    assert_eq!(centred(-1.0, -0.3, 0.5), -0.3);
    assert_eq!(centred(-0.5, -0.3, 0.5), -0.15);
    assert_eq!(centred_inverse(-0.15, -0.3, 0.5), -0.5);
    assert_eq!(centred_inverse(0.25, -0.3, 0.5), 0.5);
}

#[test]
fn generator_p_first_then_q_box_circle_wedge() {
    let g = diesel();
    // P clipped into [p_min, p_max].
    assert_eq!(g.project(2.0, 0.0).0, 0.66);
    assert_eq!(g.project(-1.0, 0.0).0, 0.1);
    // Wedge: |Q| <= P·tan(acos 0.8) = 0.75·P.
    let (p, q) = g.project(0.2, 0.33);
    assert_abs_diff_eq!(p, 0.2);
    assert_abs_diff_eq!(q, 0.15, epsilon = 1e-12);
    // Circle: at P = 0.66, |Q| <= √(0.49 − 0.4356) = 0.2332.
    let (p, q) = g.project(0.66, -0.33);
    assert_abs_diff_eq!(p, 0.66);
    assert_abs_diff_eq!(q, -(0.49f64 - 0.4356).sqrt(), epsilon = 1e-12);
    // Box: at P = 0.5, wedge 0.375, circle 0.4899, box 0.33.
    assert_abs_diff_eq!(g.project(0.5, 1.0).1, 0.33);
    // The action maps before the projection: P = p_min + max(a, 0)·(p_max − p_min).
    let (p, q) = g.from_action(1.0, 0.0);
    assert_abs_diff_eq!(p, 0.66);
    assert_abs_diff_eq!(q, 0.0);
    let (p, _) = g.from_action(-1.0, 0.0);
    assert_abs_diff_eq!(p, 0.1);
    // Zero holds: the minimum, no reactive power.
    assert_eq!(g.from_action(0.0, 0.0), (0.1, 0.0));
    let (p, _) = g.from_action(0.5, 0.0);
    assert_abs_diff_eq!(p, 0.38, epsilon = 1e-12);
    // The inverse mapping replays feasible set-points.
    for &(p, q) in &[(0.1, 0.0), (0.38, 0.2), (0.6, -0.2), (0.66, 0.1)] {
        let (pp, qq) = g.project(p, q);
        let [ap, aq] = g.action_for(pp, qq);
        let (p2, q2) = g.from_action(ap, aq);
        assert_abs_diff_eq!(p2, pp, epsilon = 1e-12);
        assert_abs_diff_eq!(q2, qq, epsilon = 1e-12);
    }
}

#[test]
fn generator_cost_is_quadratic_times_dt() {
    let mut gens = Generators::new(vec![diesel()], vec![0], 2);
    gens.apply(1, 0, 1.0, 0.0);
    assert_abs_diff_eq!(
        gens.cost(1, 0, 0.5),
        (100.0 * 0.66 * 0.66 + 72.4 * 0.66 + 0.5011) * 0.5,
        epsilon = 1e-12
    );
    // Copy 0 is untouched: p_min at reset.
    assert_abs_diff_eq!(gens.p_mw[[0, 0]], 0.1);
    assert_eq!(gens.violation(1, 0), 0.0);
    gens.p_mw[[1, 0]] = 0.8; // forced outside the rating
    assert_abs_diff_eq!(gens.violation(1, 0), 0.1, epsilon = 1e-12);
}

fn ess() -> StorageParams {
    StorageParams {
        e_mwh: 0.5,
        p_max_mw: 0.1,
        soc_min: 0.1,
        soc_max: 0.9,
        soc_init: 0.5,
        eta_ch: 0.95,
        eta_dis: 0.9,
        degradation_cost_per_mwh: 2.0,
    }
}

#[test]
fn storage_soc_dynamics_and_efficiencies() {
    let mut s = Storages::new(vec![ess()], vec![0], 1);
    s.apply(0, 0, 1.0, 1.0);
    assert_abs_diff_eq!(s.p_mw[[0, 0]], 0.1);
    assert_abs_diff_eq!(s.soc[[0, 0]], 0.5 + 0.1 * 0.95 / 0.5, epsilon = 1e-12);
    assert_abs_diff_eq!(s.cost(0, 0, 1.0), 0.2, epsilon = 1e-12);
    s.apply(0, 0, -0.5, 1.0);
    assert_abs_diff_eq!(s.p_mw[[0, 0]], -0.05);
    assert_abs_diff_eq!(s.soc[[0, 0]], 0.69 - 0.05 / 0.9 / 0.5, epsilon = 1e-12);
    // Discharge cost uses P (not Q): 2 $/MWh · 0.05 MW · 1 h.
    assert_abs_diff_eq!(s.cost(0, 0, 1.0), 0.1, epsilon = 1e-12);
}

#[test]
fn storage_power_is_clipped_to_soc_headroom() {
    let mut s = Storages::new(vec![ess()], vec![0], 1);
    s.soc[[0, 0]] = 0.88;
    s.apply(0, 0, 1.0, 1.0);
    // At most (0.9 − 0.88)·0.5/0.95 MW.
    assert_abs_diff_eq!(s.p_mw[[0, 0]], 0.02 * 0.5 / 0.95, epsilon = 1e-12);
    assert_abs_diff_eq!(s.soc[[0, 0]], 0.9, epsilon = 1e-12);
    assert_eq!(s.violation(0, 0), 0.0);
    s.soc[[0, 0]] = 0.11;
    s.apply(0, 0, -1.0, 1.0);
    assert_abs_diff_eq!(s.p_mw[[0, 0]], -0.01 * 0.5 * 0.9, epsilon = 1e-12);
    assert_abs_diff_eq!(s.soc[[0, 0]], 0.1, epsilon = 1e-12);
    // Many steps never leave the limits.
    for i in 0..200 {
        s.apply(0, 0, if i % 37 < 20 { 1.0 } else { -1.0 }, 1.0);
        assert!(s.soc[[0, 0]] >= 0.1 - 1e-12 && s.soc[[0, 0]] <= 0.9 + 1e-12);
    }
    s.soc[[0, 0]] = 0.95;
    assert_abs_diff_eq!(s.violation(0, 0), 0.05, epsilon = 1e-12);
}

#[test]
fn renewable_available_curtailment_and_inverter_limit() {
    let prm = RenewableParams {
        capacity_mw: 0.2,
        q_max_mvar: 0.1,
        s_rated_mva: 0.25,
        profile_column: 0,
    };
    let mut r = Renewables::new(vec![prm.clone()], vec![0], 1);
    r.apply(0, 0, 1.0, 0.0, 0.5);
    assert_abs_diff_eq!(r.available_mw[[0, 0]], 0.1);
    assert_abs_diff_eq!(r.p_mw[[0, 0]], 0.1);
    // Zero holds: uncurtailed, no Q.
    r.apply(0, 0, 0.0, 0.0, 0.5);
    assert_abs_diff_eq!(r.p_mw[[0, 0]], 0.1);
    assert_eq!(r.q_mvar[[0, 0]], 0.0);
    r.apply(0, 0, -0.5, 1.0, 0.5);
    assert_abs_diff_eq!(r.p_mw[[0, 0]], 0.05);
    assert_abs_diff_eq!(r.q_mvar[[0, 0]], 0.1);
    r.apply(0, 0, -1.0, 0.0, 0.5);
    assert_eq!(r.p_mw[[0, 0]], 0.0);
    // Inverse mapping.
    let [ap, aq] = prm.action_for(0.1, 0.03, -0.05);
    let (p, q) = prm.set_point(0.1, ap, aq);
    assert_abs_diff_eq!(p, 0.03, epsilon = 1e-12);
    assert_abs_diff_eq!(q, -0.05, epsilon = 1e-12);
    // Full sun: P = 0.2, |Q| <= √(0.0625 − 0.04) = 0.15 > q_max, so Q = −q_max.
    r.apply(0, 0, 1.0, -1.0, 1.0);
    assert_abs_diff_eq!(r.q_mvar[[0, 0]], -0.1);
    // A rating below capacity: P limited to s, Q to 0.
    let prm = RenewableParams {
        capacity_mw: 0.3,
        q_max_mvar: 0.1,
        s_rated_mva: 0.25,
        profile_column: 0,
    };
    let mut r = Renewables::new(vec![prm], vec![0], 1);
    r.apply(0, 0, 1.0, 1.0, 1.0);
    assert_abs_diff_eq!(r.p_mw[[0, 0]], 0.25);
    assert_abs_diff_eq!(r.q_mvar[[0, 0]], 0.0, epsilon = 1e-12);
    assert_eq!(r.violation(0, 0), 0.0);
    // Negative profile values give nothing.
    r.apply(0, 0, 1.0, 0.0, -0.1);
    assert_eq!(r.p_mw[[0, 0]], 0.0);
}

#[test]
fn tap_changer_relative_moves_within_range_and_wear() {
    let prm = TapParams {
        tap_min: -16.0,
        tap_max: 16.0,
        tap_init: 12.0,
        max_move: 3.0,
        wear_cost: 0.5,
    };
    let mut t = TapChangers::new(vec![0], vec![prm], 2);
    assert_eq!(t.pos[[1, 0]], 12.0);
    t.apply(1, 0, 0.0); // zero holds
    assert_eq!(t.pos[[1, 0]], 12.0);
    assert_eq!(t.cost(1, 0), 0.0);
    t.apply(1, 0, -1.0); // −3 steps
    assert_eq!(t.pos[[1, 0]], 9.0);
    assert_eq!(t.cost(1, 0), 1.5);
    t.apply(1, 0, 0.16); // 0.48 rounds to 0
    assert_eq!(t.pos[[1, 0]], 9.0);
    t.apply(1, 0, 0.22); // 0.66 rounds to 1
    assert_eq!(t.pos[[1, 0]], 10.0);
    for _ in 0..5 {
        t.apply(1, 0, 5.0); // clipped to +3 per step, then to the range
    }
    assert_eq!(t.pos[[1, 0]], 16.0);
    assert_eq!(t.pos[[0, 0]], 12.0);
    // Inverse mapping.
    let a = t.action_for(0, 16.0, 14.0);
    assert_eq!(t.position(0, 16.0, a), 14.0);
}

#[test]
fn capacitor_integer_steps_and_wear() {
    let prm = CapacitorParams {
        max_step: 4.0,
        step_init: 0.0,
        max_move: 4.0,
        wear_cost: 0.25,
    };
    let mut c = Capacitors::new(vec![0], vec![prm], 1);
    c.apply(0, 0, 1.0);
    assert_eq!(c.step[[0, 0]], 4.0);
    assert_eq!(c.cost(0, 0), 1.0);
    c.apply(0, 0, 0.0); // zero holds
    assert_eq!(c.step[[0, 0]], 4.0);
    c.apply(0, 0, -0.65); // −2.6 → −3
    assert_eq!(c.step[[0, 0]], 1.0);
    c.apply(0, 0, -2.0);
    assert_eq!(c.step[[0, 0]], 0.0);
    assert_eq!(c.action_for(0, 0.0, 2.0), 0.5);
}
