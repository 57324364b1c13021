//! Copies' arrays to lane groups and back in 8×8 blocks: eight copies' runs
//! of four complex values (eight `f64` each) are turned into four lane
//! vectors ([`C8`]) with AVX-512 shuffles in registers, instead of 64 scalar
//! stores to strided places. Pure data movement (no arithmetic), so the
//! results are those of the lane-by-lane copy; where AVX-512 is missing, and
//! for the last values of an array (fewer than four), the callers copy lane
//! by lane.

use super::lanes::{C8, F8, LANES};
use crate::complex::C64;

/// Whether `arch` runs the blocked transposes (AVX-512).
#[inline]
pub(crate) fn blocked(arch: pulp::Arch) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let pulp::Arch::V4(_) = arch {
        return true;
    }
    let _ = arch;
    false
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The 8×8 transpose of `r` (row `i` of the result is column `i` of `r`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn transpose(r: [__m512d; 8]) -> [__m512d; 8] {
        let t = [
            _mm512_unpacklo_pd(r[0], r[1]),
            _mm512_unpackhi_pd(r[0], r[1]),
            _mm512_unpacklo_pd(r[2], r[3]),
            _mm512_unpackhi_pd(r[2], r[3]),
            _mm512_unpacklo_pd(r[4], r[5]),
            _mm512_unpackhi_pd(r[4], r[5]),
            _mm512_unpacklo_pd(r[6], r[7]),
            _mm512_unpackhi_pd(r[6], r[7]),
        ];
        // 128-bit lanes 0 and 2 (0x88) or 1 and 3 (0xdd) of each operand.
        let u = [
            _mm512_shuffle_f64x2::<0x88>(t[0], t[2]),
            _mm512_shuffle_f64x2::<0x88>(t[1], t[3]),
            _mm512_shuffle_f64x2::<0xdd>(t[0], t[2]),
            _mm512_shuffle_f64x2::<0xdd>(t[1], t[3]),
            _mm512_shuffle_f64x2::<0x88>(t[4], t[6]),
            _mm512_shuffle_f64x2::<0x88>(t[5], t[7]),
            _mm512_shuffle_f64x2::<0xdd>(t[4], t[6]),
            _mm512_shuffle_f64x2::<0xdd>(t[5], t[7]),
        ];
        [
            _mm512_shuffle_f64x2::<0x88>(u[0], u[4]),
            _mm512_shuffle_f64x2::<0x88>(u[1], u[5]),
            _mm512_shuffle_f64x2::<0x88>(u[2], u[6]),
            _mm512_shuffle_f64x2::<0x88>(u[3], u[7]),
            _mm512_shuffle_f64x2::<0xdd>(u[0], u[4]),
            _mm512_shuffle_f64x2::<0xdd>(u[1], u[5]),
            _mm512_shuffle_f64x2::<0xdd>(u[2], u[6]),
            _mm512_shuffle_f64x2::<0xdd>(u[3], u[7]),
        ]
    }
}

/// `dst[i]` lane `l` ← `src[l][i]` for the whole blocks of four (every
/// `src[l]` has at least `dst.len()` values); returns how many values were
/// done (the rest is the caller's).
///
/// # Safety
/// The CPU has AVX-512F ([`blocked`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gather(dst: &mut [C8], src: &[&[C64]; LANES]) -> usize {
    use std::arch::x86_64::*;
    let whole = dst.len() / 4 * 4;
    assert!(src.iter().all(|s| s.len() >= whole));
    for b in (0..whole).step_by(4) {
        // SAFETY: values b..b + 4 of every source (8 f64 each) are in bounds
        // (asserted); C64 is two f64 (repr C).
        let rows = std::array::from_fn(|l| unsafe {
            _mm512_loadu_pd(src[l].as_ptr().add(b) as *const f64)
        });
        let cols = x86::transpose(rows);
        // Four C8 = [re (8), im (8)] × 4: the columns in order.
        let out = dst[b..b + 4].as_mut_ptr() as *mut f64;
        for (j, c) in cols.into_iter().enumerate() {
            // SAFETY: 64 f64 of dst[b..b + 4] (C8 is repr C, 64-byte aligned).
            unsafe { _mm512_store_pd(out.add(8 * j), c) };
        }
    }
    whole
}

/// `dst[l][i]` ← `src[i]` lane `l` for the whole blocks of four (the inverse
/// of [`gather`]); returns how many values were done.
///
/// # Safety
/// As [`gather`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn scatter(src: &[C8], dst: &mut [&mut [C64]; LANES]) -> usize {
    use std::arch::x86_64::*;
    let whole = src.len() / 4 * 4;
    assert!(dst.iter().all(|d| d.len() >= whole));
    for b in (0..whole).step_by(4) {
        let inp = src[b..b + 4].as_ptr() as *const f64;
        // SAFETY: 64 f64 of src[b..b + 4], aligned.
        let cols = std::array::from_fn(|j| unsafe { _mm512_load_pd(inp.add(8 * j)) });
        let rows = x86::transpose(cols);
        for (d, r) in dst.iter_mut().zip(rows) {
            // SAFETY: values b..b + 4 of every destination are in bounds (asserted).
            unsafe { _mm512_storeu_pd(d.as_mut_ptr().add(b) as *mut f64, r) };
        }
    }
    whole
}

/// `dst[l][i]` ← `src[i]` lane `l` for whole blocks of eight real values;
/// returns how many were done.
///
/// # Safety
/// As [`gather`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn scatter_real(src: &[F8], dst: &mut [&mut [f64]; LANES]) -> usize {
    use std::arch::x86_64::*;
    let whole = src.len() / 8 * 8;
    assert!(dst.iter().all(|d| d.len() >= whole));
    for b in (0..whole).step_by(8) {
        // SAFETY: src[b..b + 8] are 8 aligned F8.
        let cols = std::array::from_fn(|j| unsafe { _mm512_load_pd(src[b + j].0.as_ptr()) });
        let rows = x86::transpose(cols);
        for (d, r) in dst.iter_mut().zip(rows) {
            // SAFETY: values b..b + 8 of every destination are in bounds (asserted).
            unsafe { _mm512_storeu_pd(d.as_mut_ptr().add(b), r) };
        }
    }
    whole
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn gather(_: &mut [C8], _: &[&[C64]; LANES]) -> usize {
    0
}
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn scatter(_: &[C8], _: &mut [&mut [C64]; LANES]) -> usize {
    0
}
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn scatter_real(_: &[F8], _: &mut [&mut [f64]; LANES]) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blocked copies move every value to its lane and back, for array
    /// lengths around the block sizes (tails included), on this CPU's path.
    #[test]
    fn blocks_match_lane_by_lane() {
        let on = blocked(pulp::Arch::new());
        let val =
            |l: usize, i: usize| C64::new((100 * l + i) as f64, -((100 * l + i) as f64) - 0.5);
        for len in [0, 1, 3, 4, 5, 8, 9, 12, 17] {
            let src: Vec<Vec<C64>> = (0..LANES)
                .map(|l| (0..len + 2).map(|i| val(l, i)).collect())
                .collect();
            let refs: [&[C64]; LANES] = std::array::from_fn(|l| &src[l][..]);
            let mut lanes = vec![C8::default(); len];
            // SAFETY: only where the CPU has AVX-512.
            let done = if on {
                unsafe { gather(&mut lanes, &refs) }
            } else {
                0
            };
            assert_eq!(done, if on { len / 4 * 4 } else { 0 });
            for (i, z) in lanes[..done].iter().enumerate() {
                let (re, im) = z.parts();
                for l in 0..LANES {
                    assert_eq!(
                        C64::new(re.0[l], im.0[l]),
                        val(l, i),
                        "len {len} lane {l} value {i}"
                    );
                }
            }
            let mut back: Vec<Vec<C64>> = vec![vec![C64::default(); len]; LANES];
            let mut it = back.iter_mut();
            let mut dst: [&mut [C64]; LANES] = std::array::from_fn(|_| &mut it.next().unwrap()[..]);
            let done = if on {
                unsafe { scatter(&lanes, &mut dst) }
            } else {
                0
            };
            for (l, row) in back.iter().enumerate() {
                for (i, x) in row[..done].iter().enumerate() {
                    assert_eq!(*x, val(l, i), "len {len} lane {l} value {i}");
                }
            }
            let reals: Vec<F8> = (0..len)
                .map(|i| F8(std::array::from_fn(|l| (10 * i + l) as f64)))
                .collect();
            let mut back: Vec<Vec<f64>> = vec![vec![0.0; len]; LANES];
            let mut it = back.iter_mut();
            let mut dst: [&mut [f64]; LANES] = std::array::from_fn(|_| &mut it.next().unwrap()[..]);
            let done = if on {
                unsafe { scatter_real(&reals, &mut dst) }
            } else {
                0
            };
            assert_eq!(done, if on { len / 8 * 8 } else { 0 });
            for (l, row) in back.iter().enumerate() {
                for (i, x) in row[..done].iter().enumerate() {
                    assert_eq!(*x, (10 * i + l) as f64);
                }
            }
        }
        eprintln!("blocked transposes on this CPU: {on}");
    }
}
