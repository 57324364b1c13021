//! Per-copy queues of the agents' timing (see [`crate::setup::agents`]):
//! delay lines for actions and coordinator messages, and the observation ring
//! that gives delayed and stacked observations. Each copy has its own slots;
//! a reset of the copy clears them. Made once per batch; nothing allocates
//! while stepping.

use crate::powerflow::batch::split_slice;

/// A delay of `d` whole steps for rows of `dim` values, per copy.
///
/// On step `t` (1-based within the episode) [`DelayLine::shift`] returns the
/// row pushed on step `t − d`, and zeros while `t ≤ d` (zero is "hold").
#[derive(Debug, Clone)]
pub(crate) struct DelayLine {
    d: usize,
    dim: usize,
    /// `[B, d, dim]`: slot `t mod d` holds the row of the last step ≡ t.
    buf: Vec<f64>,
}

impl DelayLine {
    pub fn new(batch: usize, d: usize, dim: usize) -> DelayLine {
        DelayLine {
            d,
            dim,
            buf: vec![0.0; batch * d * dim],
        }
    }

    /// The queues of the copies `bounds[k] .. bounds[k + 1]`, one part per
    /// consecutive pair of `bounds` (ascending from 0 to the batch).
    pub fn split_rows(&mut self, bounds: &[usize]) -> Vec<DelayRows<'_>> {
        let (d, dim) = (self.d, self.dim);
        (split_slice(&mut self.buf, d * dim, bounds).into_iter())
            .map(|buf| DelayRows { d, dim, buf })
            .collect()
    }
}

/// Some copies' queues of a [`DelayLine`] (local copy indices from 0).
pub(crate) struct DelayRows<'a> {
    d: usize,
    dim: usize,
    buf: &'a mut [f64],
}

impl DelayRows<'_> {
    /// Forget copy `c`'s queued rows (autoreset).
    pub fn clear(&mut self, c: usize) {
        let n = self.d * self.dim;
        self.buf[c * n..(c + 1) * n].fill(0.0);
    }

    /// `io` holds the row given on step `t`; on return it holds the row of
    /// step `t − d` (zeros before the episode's step `d + 1`).
    #[inline]
    pub fn shift(&mut self, c: usize, t: usize, io: &mut [f64]) {
        if self.d == 0 {
            return;
        }
        let at = (c * self.d + t % self.d) * self.dim;
        io.swap_with_slice(&mut self.buf[at..at + self.dim]);
    }
}

/// The last `delay + history` observations of one agent, per copy, and the
/// stacked view `[o(t−d), o(t−d−1), …, o(t−d−k+1)]` (newest first).
#[derive(Debug, Clone)]
pub(crate) struct ObsHistory {
    delay: usize,
    history: usize,
    /// Base observation length.
    dim: usize,
    /// `[B, delay + history, dim]`: slot `t mod R` holds step `t`'s observation.
    ring: Vec<f32>,
}

impl ObsHistory {
    pub fn new(batch: usize, delay: usize, history: usize, dim: usize) -> ObsHistory {
        ObsHistory {
            delay,
            history,
            dim,
            ring: vec![0.0; batch * (delay + history) * dim],
        }
    }

    fn slots(&self) -> usize {
        self.delay + self.history
    }

    /// The rings of the copies `bounds[k] .. bounds[k + 1]`, one part per
    /// consecutive pair of `bounds` (ascending from 0 to the batch).
    pub fn split_rows(&mut self, bounds: &[usize]) -> Vec<HistRows<'_>> {
        let row = self.slots() * self.dim;
        let (delay, history, dim) = (self.delay, self.history, self.dim);
        split_slice(&mut self.ring, row, bounds)
            .into_iter()
            .map(|ring| HistRows {
                delay,
                history,
                dim,
                ring,
            })
            .collect()
    }
}

/// The rings of a range of copies (copy 0 = the range's first).
#[derive(Debug)]
pub(crate) struct HistRows<'a> {
    delay: usize,
    history: usize,
    dim: usize,
    ring: &'a mut [f32],
}

impl HistRows<'_> {
    fn slots(&self) -> usize {
        self.delay + self.history
    }

    /// Record copy `c`'s observation of step `t` (0 = the episode's first,
    /// which fills every slot: older steps show it).
    ///
    /// Slots `(t − j) mod R` for `j < R` are the last `R` steps; before the
    /// episode start they were never overwritten since the reset filled them.
    pub fn record(&mut self, c: usize, t: usize, obs: &[f32]) {
        let r = self.slots();
        let base = c * r * self.dim;
        if t == 0 {
            for s in 0..r {
                self.ring[base + s * self.dim..base + (s + 1) * self.dim].copy_from_slice(obs);
            }
        } else {
            let s = t % r;
            self.ring[base + s * self.dim..base + (s + 1) * self.dim].copy_from_slice(obs);
        }
    }

    /// Write copy `c`'s stacked, delayed observation at step `t` into `out`
    /// (`history · dim` values).
    pub fn assemble(&self, c: usize, t: usize, out: &mut [f32]) {
        let r = self.slots();
        let base = c * r * self.dim;
        for j in 0..self.history {
            // (t − delay − j) mod R, kept non-negative.
            let s = (t + r * (1 + (self.delay + j) / r) - self.delay - j) % r;
            out[j * self.dim..(j + 1) * self.dim]
                .copy_from_slice(&self.ring[base + s * self.dim..base + (s + 1) * self.dim]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_line_shifts_by_d_and_clears() {
        let mut line = DelayLine::new(3, 3, 1);
        // Copy 1, the first of the second part (local index 0).
        let mut parts = line.split_rows(&[0, 1, 3]);
        let q = &mut parts[1];
        let mut got = Vec::new();
        for t in 1..=8 {
            let mut io = [t as f64];
            q.shift(0, t, &mut io);
            got.push(io[0]);
        }
        assert_eq!(got, [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        q.clear(0);
        let mut io = [9.0];
        q.shift(0, 9, &mut io);
        assert_eq!(io[0], 0.0);
        // The other copies' queues were not touched.
        assert!(line.buf[..3]
            .iter()
            .chain(&line.buf[6..])
            .all(|&x| x == 0.0));
    }

    #[test]
    fn history_stacks_newest_first_after_the_delay() {
        let mut ring = ObsHistory::new(1, 2, 3, 1);
        let mut parts = ring.split_rows(&[0, 1]);
        let h = &mut parts[0];
        let mut out = [0.0f32; 3];
        for t in 0..7 {
            h.record(0, t, &[10.0 + t as f32]);
            h.assemble(0, t, &mut out);
            let want: Vec<f32> = (0..3)
                .map(|j| 10.0 + (t as i64 - 2 - j).max(0) as f32)
                .collect();
            assert_eq!(out.to_vec(), want, "t = {t}");
        }
    }
}
