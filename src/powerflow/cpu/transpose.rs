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

/// 8×8 blocks: `dst[64q + 8j + l] = src[l][8q + j]` for blocks `q < blocks`
/// (eight copies' runs of eight `f64` into eight lane vectors).
///
/// # Safety
/// The CPU has AVX-512F; `dst` holds `64·blocks` values, 64-byte aligned, and
/// every `src[l]` at least `8·blocks`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gather_blocks(dst: &mut [f64], src: &[&[f64]; LANES], blocks: usize) {
    use std::arch::x86_64::*;
    assert!(dst.len() >= 64 * blocks && src.iter().all(|s| s.len() >= 8 * blocks));
    for q in 0..blocks {
        // SAFETY: in bounds (asserted).
        let rows = std::array::from_fn(|l| unsafe { _mm512_loadu_pd(src[l].as_ptr().add(8 * q)) });
        for (j, c) in x86::transpose(rows).into_iter().enumerate() {
            // SAFETY: in bounds (asserted), aligned (the caller).
            unsafe { _mm512_store_pd(dst.as_mut_ptr().add(64 * q + 8 * j), c) };
        }
    }
}

/// The inverse of [`gather_blocks`]: `dst[l][8q + j] = src[64q + 8j + l]`.
///
/// # Safety
/// As [`gather_blocks`], with `src` and `dst` in each other's place.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scatter_blocks(src: &[f64], dst: &mut [&mut [f64]; LANES], blocks: usize) {
    use std::arch::x86_64::*;
    assert!(src.len() >= 64 * blocks && dst.iter().all(|d| d.len() >= 8 * blocks));
    for q in 0..blocks {
        // SAFETY: in bounds (asserted), aligned (the caller).
        let cols =
            std::array::from_fn(|j| unsafe { _mm512_load_pd(src.as_ptr().add(64 * q + 8 * j)) });
        for (d, r) in dst.iter_mut().zip(x86::transpose(cols)) {
            // SAFETY: in bounds (asserted).
            unsafe { _mm512_storeu_pd(d.as_mut_ptr().add(8 * q), r) };
        }
    }
}

/// The lane vectors' values as one run of `f64` (both are `repr(C)` runs of f64).
#[cfg(target_arch = "x86_64")]
fn flat<T>(x: &[T], per: usize) -> &[f64] {
    debug_assert_eq!(std::mem::size_of::<T>(), per * 8);
    // SAFETY: `T` (C8 or F8) is `per` f64 and nothing else, 64-byte aligned.
    unsafe { std::slice::from_raw_parts(x.as_ptr() as *const f64, x.len() * per) }
}

#[cfg(target_arch = "x86_64")]
fn flat_mut<T>(x: &mut [T], per: usize) -> &mut [f64] {
    debug_assert_eq!(std::mem::size_of::<T>(), per * 8);
    // SAFETY: as `flat`.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut f64, x.len() * per) }
}

/// `dst[i]` lane `l` ← `src[l][i]` for the whole blocks of four (every
/// `src[l]` has at least `dst.len()` values); returns how many values were
/// done (the rest is the caller's).
///
/// # Safety
/// The CPU has AVX-512F ([`blocked`]).
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn gather(dst: &mut [C8], src: &[&[C64]; LANES]) -> usize {
    let blocks = dst.len() / 4;
    let src = src.map(bytemuck::cast_slice::<C64, f64>);
    // SAFETY: AVX-512F (the caller); C8 is 16 aligned f64.
    unsafe { gather_blocks(flat_mut(dst, 16), &src, blocks) };
    4 * blocks
}

/// `dst[l][i]` ← `src[i]` lane `l` for the whole blocks of four (the inverse
/// of [`gather`]); returns how many values were done.
///
/// # Safety
/// As [`gather`].
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn scatter(src: &[C8], dst: &mut [&mut [C64]; LANES]) -> usize {
    let blocks = src.len() / 4;
    let mut it = dst.iter_mut();
    let mut d: [&mut [f64]; LANES] =
        std::array::from_fn(|_| bytemuck::cast_slice_mut(it.next().expect("LANES")));
    // SAFETY: as above.
    unsafe { scatter_blocks(flat(src, 16), &mut d, blocks) };
    4 * blocks
}

/// `dst[i]` lane `l` ← `src[l][i]` for whole blocks of eight real values;
/// returns how many were done.
///
/// # Safety
/// As [`gather`].
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn gather_real(dst: &mut [F8], src: &[&[f64]; LANES]) -> usize {
    let blocks = dst.len() / 8;
    // SAFETY: as above (F8 is 8 aligned f64).
    unsafe { gather_blocks(flat_mut(dst, 8), src, blocks) };
    8 * blocks
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn gather(_: &mut [C8], _: &[&[C64]; LANES]) -> usize {
    0
}
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn gather_real(_: &mut [F8], _: &[&[f64]; LANES]) -> usize {
    0
}
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn scatter(_: &[C8], _: &mut [&mut [C64]; LANES]) -> usize {
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
            let src: Vec<Vec<f64>> = (0..LANES)
                .map(|l| (0..len + 2).map(|i| (10 * i + l) as f64).collect())
                .collect();
            let refs: [&[f64]; LANES] = std::array::from_fn(|l| &src[l][..]);
            let mut lanes = vec![F8::default(); len];
            let done = if on {
                unsafe { gather_real(&mut lanes, &refs) }
            } else {
                0
            };
            assert_eq!(done, if on { len / 8 * 8 } else { 0 });
            for (i, z) in lanes[..done].iter().enumerate() {
                assert_eq!(z.0, std::array::from_fn(|l| (10 * i + l) as f64));
            }
        }
        eprintln!("blocked transposes on this CPU: {on}");
    }
}
