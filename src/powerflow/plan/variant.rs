//! The FDPF variant (XB or BX) and the rotation ψ: chosen per network by the
//! fewest iterations, scoring the plan in place.

use super::Plan;
use crate::error::Result;

/// Which half-step uses the reactance-only matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Variant {
    /// B' from `1/x`, B'' from `−Im(1/z)` (Stott–Alsac).
    XB,
    /// B' from `−Im(1/z)`, B'' from `1/x` (van Amerongen).
    BX,
}

/// The ψ tried for each variant: `0, 0.1, …, 1.2` rad.
pub(crate) const PSI_GRID: [f64; 13] = {
    let mut g = [0.0; 13];
    let mut step = 0;
    while step < 13 {
        g[step] = step as f64 * 0.1;
        step += 1;
    }
    g
};

/// What the variant search picked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct VariantChoice {
    /// The variant kept.
    pub(crate) variant: Variant,
    /// The rotation kept (radians).
    pub(crate) psi: f64,
    /// Its score (`None`: no pair converged, XB with ψ = 0 kept).
    pub(crate) score: Option<f64>,
    /// Pairs whose matrices factored and whose base case converged.
    pub(crate) scored: usize,
}

impl Plan {
    /// Try XB and BX over [`PSI_GRID`] and keep the pair with the lowest score
    /// (see `cpu::score_variant`: mostly warm-start iterations; ties: smaller ψ, XB first).
    /// The plan is scored in place behind an `Arc` (each scoring kernel holds a
    /// reference and is dropped before the next variant is set), never cloned.
    pub(crate) fn choose_variant(plan: Plan) -> Result<(Plan, VariantChoice)> {
        const UNIQUE: &str = "the scoring kernel has been dropped";
        let mut plan = std::sync::Arc::new(plan);
        let mut best: Option<(f64, Variant, f64)> = None;
        let mut scored = 0;
        for variant in [Variant::XB, Variant::BX] {
            for psi in PSI_GRID {
                let p = std::sync::Arc::get_mut(&mut plan).expect(UNIQUE);
                if p.set_variant(variant, psi).is_err() {
                    continue;
                }
                if let Some(score) = crate::powerflow::cpu::score_variant(&plan) {
                    scored += 1;
                    if best.is_none_or(|(b, _, _)| score < b - 1e-9) {
                        best = Some((score, variant, psi));
                    }
                }
            }
        }
        let (score, v, psi) = best.unwrap_or((f64::NAN, Variant::XB, 0.0));
        let mut plan = std::sync::Arc::try_unwrap(plan).expect(UNIQUE);
        plan.set_variant(v, psi)?;
        let choice = VariantChoice {
            variant: v,
            psi,
            score: best.map(|_| score),
            scored,
        };
        Ok((plan, choice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powerflow::plan::SolverOptions;
    use std::sync::Arc;

    #[test]
    fn the_search_reports_the_best_pair_and_keeps_its_factors() {
        let net = crate::network::load("ieee13").expect("ieee13 ships");
        let fixed = |v: Variant, psi: f64| {
            let o = SolverOptions {
                variant: Some((v, psi)),
                ..SolverOptions::default()
            };
            Plan::new(&net, o).expect("plan")
        };
        // Score every pair on a plan of its own (ties: the first, XB before BX).
        let mut best: Option<(f64, Variant, f64)> = None;
        let mut scored = 0;
        for v in [Variant::XB, Variant::BX] {
            for psi in PSI_GRID {
                if let Some(s) = crate::powerflow::cpu::score_variant(&Arc::new(fixed(v, psi))) {
                    scored += 1;
                    if best.is_none_or(|(b, _, _)| s < b - 1e-9) {
                        best = Some((s, v, psi));
                    }
                }
            }
        }
        let (score, v, psi) = best.expect("some pair converges on ieee13");
        // The search starts from a plan set to another pair.
        let other = if v == Variant::XB {
            Variant::BX
        } else {
            Variant::XB
        };
        let (plan, choice) = Plan::choose_variant(fixed(other, 1.2)).expect("search");
        assert_eq!(choice.variant, v);
        assert_eq!(choice.psi, psi);
        assert_eq!(choice.score, Some(score));
        assert_eq!(choice.scored, scored);
        assert_eq!((plan.variant, plan.psi), (v, psi));
        // Its factors are those of a plan built for that pair from the start.
        let direct = fixed(v, psi);
        assert_eq!(format!("{:?}", plan.bp), format!("{:?}", direct.bp));
        assert_eq!(format!("{:?}", plan.bpp), format!("{:?}", direct.bpp));
        assert_eq!(plan.bpp_a0, direct.bpp_a0);
        assert_eq!(plan.rot, direct.rot);
    }
}
