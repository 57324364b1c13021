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

impl Plan {
    /// Try XB and BX over a grid of ψ and keep the pair with the lowest score
    /// (see `cpu::score_variant`: mostly warm-start iterations; ties: smaller ψ, XB first).
    /// The plan is scored in place behind an `Arc` (each scoring kernel holds a
    /// reference and is dropped before the next variant is set), never cloned.
    pub(super) fn choose_variant(plan: Plan) -> Result<Plan> {
        const UNIQUE: &str = "the scoring kernel has been dropped";
        let mut plan = std::sync::Arc::new(plan);
        let mut best: Option<(f64, Variant, f64)> = None;
        for variant in [Variant::XB, Variant::BX] {
            for step in 0..=12 {
                let psi = step as f64 * 0.1;
                let p = std::sync::Arc::get_mut(&mut plan).expect(UNIQUE);
                if p.set_variant(variant, psi).is_err() {
                    continue;
                }
                if let Some(score) = crate::powerflow::cpu::score_variant(&plan) {
                    if best.is_none_or(|(b, _, _)| score < b - 1e-9) {
                        best = Some((score, variant, psi));
                    }
                }
            }
        }
        let (_, v, psi) = best.unwrap_or((0.0, Variant::XB, 0.0));
        let mut plan = std::sync::Arc::try_unwrap(plan).expect(UNIQUE);
        plan.set_variant(v, psi)?;
        Ok(plan)
    }
}
