//! `enforce_q_lims` on the GPU backend: pandapower's loop
//! ([`crate::powerflow::qlims`], the CPU's `cpu/qlims.rs`) driven from the
//! host. After a solve, every converged copy's gen Q is split as `pfsoln`
//! does with the held gens at their limits; the violators of every copy are
//! held at once; a copy that holds new gens gets, in its own rows, its
//! released PV nodes marked (`PV_RELEASED` in the PV set-point row: the shader
//! treats the node as PQ), the gens' Q in their `p_pvq` rows (the shader's
//! `injections` adds it to the node's injection) and B'' with the released
//! rows real; then the whole batch solves again (copies with no
//! change converge at once) until no copy has a violator. The next solve
//! starts from every gen PV again, as every `runpp` does.

use super::{put_bpp, GpuBatch, Put, PV_RELEASED};
use crate::error::Result;
use crate::powerflow::batch::PowerFlow;
use crate::powerflow::qlims::{bpp_factor, split_q_limited};

/// Per-copy `enforce_q_lims` state of a GPU batch.
#[derive(Debug, Default)]
pub(super) struct GpuQ {
    /// Per copy and gen: held at a limit.
    held: Vec<bool>,
    /// Per copy and gen, MVar: a held gen's limit, another gen's last split Q.
    gen_q: Vec<f64>,
    /// Per copy: its released PV nodes (PQ-numbered).
    released: Vec<Vec<usize>>,
    /// Copies whose rows must be written before the next dispatch (released
    /// nodes changed, or back to every gen PV).
    pending: Vec<usize>,
}

impl GpuBatch {
    /// Which gens copy `c` holds at a Q limit after its last solve
    /// (`enforce_q_lims`; all false with the option off).
    pub fn gens_at_q_limit(&self, c: usize) -> Vec<bool> {
        let n_gen = self.plan.gen_node.len();
        (self.q.held.get(c * n_gen..(c + 1) * n_gen))
            .map_or_else(|| vec![false; n_gen], <[bool]>::to_vec)
    }

    /// Before a solve with `enforce_q_lims`: copies that released nodes in the
    /// last solve go back to every gen PV.
    pub(super) fn q_reset(&mut self) {
        let b = self.batch();
        let q = &mut self.q;
        if q.released.len() != b {
            let n_gen = self.plan.gen_node.len();
            q.held = vec![false; b * n_gen];
            q.gen_q = vec![0.0; b * n_gen];
            q.released = vec![Vec::new(); b];
        }
        q.held.fill(false);
        for (c, r) in q.released.iter_mut().enumerate() {
            if !r.is_empty() {
                r.clear();
                q.pending.push(c);
            }
        }
    }

    /// pandapower's rounds after the first solve (see the module docs).
    pub(super) fn q_rounds(&mut self) -> Result<()> {
        let p = self.plan.clone();
        let n_gen = p.gen_node.len();
        let b = self.batch();
        if n_gen == 0 {
            return Ok(());
        }
        let mut iterations = self.results.iterations.clone();
        loop {
            self.q_split();
            let mut any = false;
            for c in 0..b {
                if !self.results.converged[c] {
                    continue;
                }
                let mut found = false;
                for (g, node) in p.gen_node.iter().enumerate() {
                    let k = c * n_gen + g;
                    if node.is_none() || self.q.held[k] {
                        continue;
                    }
                    let (lo, hi) = p.net.gens[g].q_range();
                    let q = self.results.gen_q_mvar[(c, g)];
                    let limit = if q > hi {
                        hi
                    } else if q < lo {
                        lo
                    } else {
                        continue;
                    };
                    self.q.held[k] = true;
                    self.q.gen_q[k] = limit;
                    found = true;
                }
                if !found {
                    continue;
                }
                any = true;
                // The other gens keep their last split Q in the injection.
                for g in 0..n_gen {
                    let k = c * n_gen + g;
                    if !self.q.held[k] {
                        self.q.gen_q[k] = self.results.gen_q_mvar[(c, g)];
                    }
                }
                for (g, node) in p.gen_node.iter().enumerate() {
                    let Some(i) = *node else { continue };
                    let r = &mut self.q.released[c];
                    if self.q.held[c * n_gen + g] && i < p.n_pq && p.is_pv[i] && !r.contains(&i) {
                        r.push(i);
                    }
                }
                self.q.pending.push(c);
            }
            if !any {
                break;
            }
            self.run()?;
            for (t, &i) in iterations.iter_mut().zip(&self.results.iterations) {
                *t += i;
            }
        }
        self.results.iterations = iterations;
        Ok(())
    }

    /// The gen and ext_grid Q of every copy that holds gens, split as
    /// `pfsoln` with the held gens at their limits (the unpack split it with
    /// every gen free, which sums to the node's balance less the Q the host
    /// put into a released node's injection).
    fn q_split(&mut self) {
        let p = &*self.plan;
        let n_gen = p.gen_node.len();
        for c in 0..self.batch() {
            let held = &self.q.held[c * n_gen..(c + 1) * n_gen];
            let n_held = held.iter().filter(|&&h| h).count();
            if n_held == 0 {
                continue;
            }
            let fixed = &self.q.gen_q[c * n_gen..(c + 1) * n_gen];
            let r = &mut self.results;
            let mut eq = r.ext_grid_q_mvar.row(c).to_vec();
            let mut gq = r.gen_q_mvar.row(c).to_vec();
            for site in &self.gen_sites.sites {
                let mut q_bus: f64 = site.gens.iter().map(|&g| gq[g]).sum::<f64>()
                    + site.ext_grids.iter().map(|&e| eq[e]).sum::<f64>();
                if self.q.released[c].contains(&site.node) {
                    q_bus += site.gens.iter().map(|&g| fixed[g]).sum::<f64>();
                }
                split_q_limited(
                    p,
                    &self.gen_sites,
                    site,
                    q_bus,
                    held,
                    fixed,
                    n_held,
                    &mut eq,
                    &mut gq,
                );
            }
            for (e, v) in eq.into_iter().enumerate() {
                r.ext_grid_q_mvar[(c, e)] = v;
            }
            for (g, v) in gq.into_iter().enumerate() {
                r.gen_q_mvar[(c, g)] = v;
            }
        }
    }

    /// The rows of chunk `ci`'s pending copies in its upload mirrors: PV
    /// set-points (released: `PV_RELEASED`), the released nodes' held Q and
    /// B'' values (released rows real).
    pub(super) fn q_write(&mut self, ci: usize) {
        if self.q.pending.is_empty() {
            return;
        }
        let p = self.plan.clone();
        let n = p.n_pq;
        let n_gen = p.gen_node.len();
        let n_tap = p.tap_trafos.len();
        let sn = p.net.sn_mva;
        // This chunk's pending copies (the others wait for their chunk).
        let ch = &mut self.chunks[ci];
        let (mut pending, rest): (Vec<usize>, Vec<usize>) =
            (self.q.pending.iter()).partition(|&&c| c >= ch.c0 && c < ch.c0 + ch.len);
        self.q.pending = rest;
        pending.sort_unstable();
        pending.dedup();
        for c in pending {
            let lc = c - ch.c0;
            let released = &self.q.released[c];
            // A released node: PQ, with its held gens' Q in the injection
            // (the shader's `injections` adds the `p_pvq` row there).
            let (r_pv, r_q) = (
                self.layout.params.p_pv as usize,
                self.layout.params.p_pvq as usize,
            );
            for (j, &i) in p.pv_nodes.iter().enumerate() {
                let (v, q) = if released.contains(&i) {
                    let q: f64 = (self.gen_sites.sites.iter())
                        .filter(|site| site.node == i)
                        .flat_map(|site| site.gens.iter())
                        .map(|&g| self.q.gen_q[c * n_gen + g])
                        .sum();
                    (PV_RELEASED, q / sn)
                } else {
                    (p.pv_vm(j, &self.inputs, c) - 1.0, 0.0)
                };
                ch.pc.put(r_pv + j, lc, v);
                ch.pc.put(r_q + j, lc, q);
            }
            let mut pv = p.is_pv.clone();
            for &i in released {
                pv[i] = false;
            }
            let taps: Vec<f64> = (p.tap_trafos.iter())
                .map(|&(k, _)| self.inputs.trafo_tap_pos[(c, k)])
                .collect();
            debug_assert_eq!(taps.len(), n_tap);
            if bpp_factor(
                &p,
                &taps,
                &pv,
                &mut self.bpp_a,
                &mut self.bpp_f,
                &mut self.bpp_work,
            ) {
                let f = &self.bpp_f;
                let values = || f.l.iter().chain(&f.u).chain(&f.d[..n]).copied().collect();
                // A set of its own (the released rows are the copy's).
                put_bpp(
                    &self.layout,
                    &mut ch.sets,
                    (lc, None),
                    values,
                    &mut ch.pc,
                    &mut ch.bpp,
                );
            }
        }
    }
}
