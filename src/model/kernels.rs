//! Hand-written CPU kernels for the models' inference paths (`prior::cpu_step`, `codec::cpu_decoder`):
//! dense layers on f32 or q8_0 weights, layer norm, GELU and a vectorisable exp.
//!
//! Why: at one frame at a time, candle spends more time creating tensors and dispatching ops
//! than multiplying. These loops work on buffers made once per stream.
//!
//! Arithmetic follows candle's: activations are quantised to q8_0 blocks exactly as candle's
//! `quantize_row_q8_0` does (scale stored as f16) before the int8 dot products; GELU is the tanh
//! approximation; layer norm uses eps 1e-5. Float sums use explicit lanes in a fixed order, so
//! the AVX2 build (`#[target_feature]` callers, intrinsics for the int8 dots) and the plain
//! build give bit-identical results (nothing is left to reassociation).

use crate::model::nn::{LayerNorm, Linear, LinearWeight};
use candle_core::Result;
use half::f16;

/// Whether this CPU can run the AVX2 builds of the loops (AVX2, FMA, and F16C, which every
/// AVX2 CPU has).
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    return is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Values per int8 block (GGML's q8_0).
pub(crate) const QK: usize = 32;

/// Values in q8_0 form: int8 values, and one scale per block of 32 (GGML's q8_0, with the f16
/// scales widened to f32 and kept apart from the values so both stream through the loops).
#[derive(Clone, Default)]
pub(crate) struct Q8 {
    pub(crate) qs: Vec<i8>,
    pub(crate) d: Vec<f32>,
}

impl Q8 {
    pub(crate) fn zeros(values: usize) -> Self {
        Self { qs: vec![0; values.next_multiple_of(QK)], d: vec![0.0; values.div_ceil(QK)] }
    }

    /// Quantise `x` (a multiple of 32 values) as candle's `quantize_row_q8_0` does: per block,
    /// scale amax/127 (stored rounded to f16), values rounded half away from zero.
    #[inline(always)]
    pub(crate) fn quantize(&mut self, x: &[f32]) {
        for ((c, q), d) in x.chunks_exact(QK).zip(self.qs.chunks_exact_mut(QK)).zip(self.d.iter_mut()) {
            let amax = c.iter().fold(0f32, |a, &v| a.max(v.abs()));
            let scale = amax / 127.0;
            let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
            for (q, &v) in q.iter_mut().zip(c) {
                // |v * id| <= 127: adding 0.5 and truncating rounds half away from zero, with
                // no call to libm's roundf (which does not vectorise).
                let r = ((v * id).abs() + 0.5) as i32;
                *q = if v < 0.0 { -r } else { r } as i8;
            }
            *d = f16::from_f32(scale).to_f32();
        }
    }
}

/// A weight matrix [out, in] in one of the two formats the fast path multiplies.
pub(crate) enum Weights {
    F32(Vec<f32>),
    /// Row-major: row o holds values `o * in ..`, scales `o * in / 32 ..`.
    Q8(Q8),
}

/// `y = W x + b`.
pub(crate) struct Dense {
    pub(crate) weights: Weights,
    pub(crate) bias: Vec<f32>,
    pub(crate) inputs: usize,
}

impl Dense {
    pub(crate) fn new(linear: &Linear) -> Result<Self> {
        let (weight, bias) = linear.export()?;
        let bias = bias.to_vec1::<f32>()?;
        let outputs = bias.len();
        let (weights, inputs) = match weight {
            LinearWeight::Q8_0 { bytes, inputs } => {
                // GGML q8_0 layout: f16 scale (little endian), then 32 int8 values: 34 bytes.
                let blocks = bytes.chunks_exact(2 + QK);
                if inputs % QK != 0 || blocks.len() != outputs * inputs / QK {
                    candle_core::bail!("a q8_0 weight of {} blocks for {outputs} x {inputs}", blocks.len());
                }
                let mut q = Q8 { qs: Vec::with_capacity(outputs * inputs), d: Vec::with_capacity(blocks.len()) };
                for b in blocks {
                    q.d.push(f16::from_le_bytes([b[0], b[1]]).to_f32());
                    q.qs.extend(b[2..].iter().map(|&v| v as i8));
                }
                (Weights::Q8(q), inputs)
            }
            LinearWeight::F32(w) => {
                let (o, i) = w.dims2()?;
                if o != outputs {
                    candle_core::bail!("weight rows {o} != bias {outputs}");
                }
                (Weights::F32(w.flatten_all()?.to_vec1::<f32>()?), i)
            }
        };
        Ok(Self { weights, bias, inputs })
    }

    /// `y = W x + b` for one row, quantising `x` into `xq` first when the weights are q8_0.
    #[inline(always)]
    pub(crate) fn apply_one<const AVX2: bool>(&self, x: &[f32], xq: &mut Q8, y: &mut [f32]) {
        if matches!(self.weights, Weights::Q8(_)) {
            xq.quantize(&x[..self.inputs]);
        }
        self.apply::<AVX2>(&[x], &[xq], &mut [y]);
    }

    /// `ys[r] = W xs[r] + b` for every row r; `xq[r]` is `xs[r]` in q8_0 (unused for f32
    /// weights). Each weight row is read once for all rows.
    #[inline(always)]
    pub(crate) fn apply<const AVX2: bool>(&self, xs: &[&[f32]], xq: &[&Q8], ys: &mut [&mut [f32]]) {
        let n = self.inputs;
        match &self.weights {
            Weights::F32(w) => {
                for (o, row) in w.chunks_exact(n).enumerate() {
                    for (x, y) in xs.iter().zip(ys.iter_mut()) {
                        y[o] = self.bias[o] + dot(row, x);
                    }
                }
            }
            Weights::Q8(w) => {
                let nb = n / QK;
                let rows = w.qs.chunks_exact(n).zip(w.d.chunks_exact(nb));
                match (xq, ys) {
                    ([x], [y]) => {
                        for (o, (wq, wd)) in rows.enumerate() {
                            #[cfg(target_arch = "x86_64")]
                            if AVX2 {
                                // SAFETY: callers pass AVX2 = true only on CPUs where
                                // `has_avx2_fma()` held.
                                y[o] = self.bias[o] + unsafe { avx2::dot_q8(wq, wd, x) };
                                continue;
                            }
                            y[o] = self.bias[o] + dot_q8(wq, wd, x);
                        }
                    }
                    ([x0, x1], [y0, y1]) => {
                        for (o, (wq, wd)) in rows.enumerate() {
                            #[cfg(target_arch = "x86_64")]
                            // SAFETY: as above.
                            let (a, b) = if AVX2 { unsafe { avx2::dot_q8_pair(wq, wd, x0, x1) } } else { dot_q8_pair(wq, wd, x0, x1) };
                            #[cfg(not(target_arch = "x86_64"))]
                            let (a, b) = dot_q8_pair(wq, wd, x0, x1);
                            y0[o] = self.bias[o] + a;
                            y1[o] = self.bias[o] + b;
                        }
                    }
                    _ => unreachable!("one or two rows"),
                }
            }
        }
    }

    /// `dst(row) = W src(row) + b` for one or two rows of a stream's state (the prior's two
    /// guidance rows, or two code frames through the decoder), reading each weight row once.
    /// `xq(row)` is that row's q8_0 scratch. The output and scratch buffers are taken out of
    /// their rows for the call (an empty Vec takes no memory, so nothing is allocated), so the
    /// rows can be read while the outputs are written; `src` must not be `dst`.
    #[inline(always)]
    pub(crate) fn apply_rows<R, const AVX2: bool>(
        &self,
        rows: &mut [&mut R],
        src: impl Fn(&R) -> &[f32],
        xq: impl Fn(&mut R) -> &mut Q8,
        dst: impl Fn(&mut R) -> &mut Vec<f32>,
    ) {
        assert!(rows.len() <= 2, "one or two rows");
        let n = rows.len();
        let q8 = matches!(self.weights, Weights::Q8(_));
        let mut outs: [Vec<f32>; 2] = [Vec::new(), Vec::new()];
        let mut quantised: [Q8; 2] = [Q8::default(), Q8::default()];
        for ((row, out), q) in rows.iter_mut().zip(outs.iter_mut()).zip(quantised.iter_mut()) {
            if q8 {
                *q = std::mem::take(xq(row));
                q.quantize(&src(row)[..self.inputs]);
            }
            *out = std::mem::take(dst(row));
        }
        {
            let mut xs: [&[f32]; 2] = [&[], &[]];
            for (x, row) in xs.iter_mut().zip(rows.iter()) {
                *x = src(row);
            }
            let [q0, q1] = &quantised;
            let [a, b] = &mut outs;
            let mut ys: [&mut [f32]; 2] = [&mut a[..], &mut b[..]];
            self.apply::<AVX2>(&xs[..n], &[q0, q1][..n], &mut ys[..n]);
        }
        for ((row, out), q) in rows.iter_mut().zip(outs).zip(quantised) {
            if q8 {
                *xq(row) = q;
            }
            *dst(row) = out;
        }
    }
}

/// Float dot product with 16 independent lanes (vectorises, keeps two accumulators in flight,
/// and sums in a fixed order whatever the instruction set).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..16 {
            lanes[i] += x[i] * y[i];
        }
    }
    let mut s = reduce16(&lanes);
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// `dot(q, key)` for the 8 keys of a block stored transposed (`kt[i * 8 + s]` is value i of
/// key s). Each key's products are summed in `dot`'s lanes and order, so every result is
/// bit-identical to `dot`'s over the same (f16-rounded) keys; the keys sit in the vector lanes,
/// so nothing is summed across a vector. `N` is the head size when known at compile time (the
/// loops then unroll), else 0. `AVX2` widens the f16 keys with F16C (see `widen8`).
#[inline(always)]
pub(crate) fn dot_transposed8<const N: usize, const AVX2: bool>(q: &[f32], kt: &[f16]) -> [f32; 8] {
    let n = if N > 0 { N } else { q.len() };
    let full = n / 16 * 16;
    let (q, kt) = (&q[..n], &kt[..n * 8]);
    let mut lanes = [[0f32; 8]; 16];
    // Lane i sums values i, i + 16, ... in that order, as in `dot`; the keys are read in
    // memory order.
    for (qc, kc) in q[..full].chunks_exact(16).zip(kt.chunks_exact(128)) {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let (qv, k) = (qc[i], widen8::<AVX2>(&kc[i * 8..i * 8 + 8]));
            for s in 0..8 {
                lane[s] += qv * k[s];
            }
        }
    }
    let add = |a: [f32; 8], b: [f32; 8]| -> [f32; 8] { std::array::from_fn(|s| a[s] + b[s]) };
    // `reduce16`, then `hsum8`, key by key.
    let h: [[f32; 8]; 8] = std::array::from_fn(|i| add(lanes[i], lanes[i + 8]));
    let q4 = [add(h[0], h[4]), add(h[1], h[5]), add(h[2], h[6]), add(h[3], h[7])];
    let mut s = add(add(q4[0], q4[2]), add(q4[1], q4[3]));
    for r in full..n {
        for (t, v) in s.iter_mut().enumerate() {
            *v += q[r] * kt[r * 8 + t].to_f32();
        }
    }
    s
}

/// Eight f16 values widened to f32 (exactly): one F16C instruction in the AVX2 build.
#[inline(always)]
pub(crate) fn widen8<const AVX2: bool>(h: &[f16]) -> [f32; 8] {
    let h = &h[..8];
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        use std::arch::x86_64::*;
        // SAFETY: the AVX2 builds run only where `has_avx2_fma()` (F16C included) held; `h`
        // holds 8 values (16 bytes); __m256 and [f32; 8] have the same size and layout.
        return unsafe { std::mem::transmute::<__m256, [f32; 8]>(_mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr() as *const __m128i))) };
    }
    std::array::from_fn(|s| h[s].to_f32())
}

#[inline(always)]
fn reduce16(l: &[f32; 16]) -> f32 {
    let mut h = [0f32; 8];
    for i in 0..8 {
        h[i] = l[i] + l[i + 8];
    }
    hsum8(h)
}

/// The int32 sums of a block's 32 products in 8 lanes of 4 (lane l: products 4l..4l+4): the
/// grouping AVX2's `maddubs` + `madd` produce, so both builds compute the same numbers.
#[inline(always)]
fn block_lanes(a: &[i8], b: &[i8]) -> [i32; 8] {
    let mut lanes = [0i32; 8];
    for l in 0..8 {
        for i in 4 * l..4 * l + 4 {
            lanes[l] += a[i] as i32 * b[i] as i32;
        }
    }
    lanes
}

/// Sum of 8 lanes in the order the AVX2 build's horizontal sum uses.
#[inline(always)]
pub(crate) fn hsum8(l: [f32; 8]) -> f32 {
    let q = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    let p = [q[0] + q[2], q[1] + q[3]];
    p[0] + p[1]
}

/// One q8_0 weight row times one quantised input: per block, each lane's int32 sum is scaled
/// and accumulated with a fused multiply-add, as the AVX2 kernel does.
#[inline(always)]
fn dot_q8(wq: &[i8], wd: &[f32], x: &Q8) -> f32 {
    let mut acc = [0f32; 8];
    for ((w, q), (&wd, &xd)) in wq.chunks_exact(QK).zip(x.qs.chunks_exact(QK)).zip(wd.iter().zip(&x.d)) {
        let s = block_lanes(w, q);
        let d = wd * xd;
        for l in 0..8 {
            acc[l] = d.mul_add(s[l] as f32, acc[l]);
        }
    }
    hsum8(acc)
}

/// `dot_q8` for two inputs, reading the weight row once.
#[inline(always)]
fn dot_q8_pair(wq: &[i8], wd: &[f32], x0: &Q8, x1: &Q8) -> (f32, f32) {
    (dot_q8(wq, wd, x0), dot_q8(wq, wd, x1))
}

/// The same two kernels with AVX2 instructions (GGML's q8_0 method: `sign` makes the first
/// operand unsigned for `maddubs`, `madd` pairs the 16-bit sums into 8 int32 lanes).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Q8, QK};
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn lanes(w: *const i8, x: *const i8) -> __m256 {
        let w = _mm256_loadu_si256(w as *const __m256i);
        let x = _mm256_loadu_si256(x as *const __m256i);
        let products = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
        _mm256_cvtepi32_ps(_mm256_madd_epi16(products, _mm256_set1_epi16(1)))
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let p = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(p, _mm_movehdup_ps(p)))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q8(wq: &[i8], wd: &[f32], x: &Q8) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for b in 0..wd.len() {
            let s = lanes(wq.as_ptr().add(b * QK), x.qs.as_ptr().add(b * QK));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(wd[b] * x.d[b]), s, acc);
        }
        hsum(acc)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q8_pair(wq: &[i8], wd: &[f32], x0: &Q8, x1: &Q8) -> (f32, f32) {
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for b in 0..wd.len() {
            let w = _mm256_loadu_si256(wq.as_ptr().add(b * QK) as *const __m256i);
            let aw = _mm256_sign_epi8(w, w);
            let ones = _mm256_set1_epi16(1);
            for (x, acc) in [(x0, &mut a0), (x1, &mut a1)] {
                let q = _mm256_loadu_si256(x.qs.as_ptr().add(b * QK) as *const __m256i);
                let s = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(q, w)), ones));
                *acc = _mm256_fmadd_ps(_mm256_set1_ps(wd[b] * x.d[b]), s, *acc);
            }
        }
        (hsum(a0), hsum(a1))
    }
}

/// e^x for x <= 0 (softmax weights), in plain float operations, so the AVX2 and plain builds
/// agree bit for bit: x = n ln2 + r with n an integer (put into the exponent bits) and
/// |r| <= ln2 / 2 (Cody and Waite's two-part ln2 keeps r exact), then a degree-6 Taylor
/// polynomial for e^r (relative error about 2e-7). Below -87 it returns 0.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    let xc = x.max(-87.0);
    let shifted = xc * std::f32::consts::LOG2_E + EXP_MAGIC;
    let n = shifted - EXP_MAGIC;
    let r = (xc - n * EXP_LN2_HI) - n * EXP_LN2_LO;
    let p = exp_taylor6(r);
    // n's integer value read from the shifted float's bits (it sits in the low bits of the
    // fraction, within EXP_MAGIC's binade since -126 <= n <= 0): the same integer as
    // `n as i32`, without Rust's saturating float-to-int conversion (a compare and select per
    // value).
    let n_int = (shifted.to_bits() as i32).wrapping_sub(EXP_MAGIC.to_bits() as i32);
    let pow = f32::from_bits(((n_int + 127) as u32) << 23);
    if x < -87.0 { 0.0 } else { p * pow }
}

/// `exp_nonpositive` of 8 values at once: in AVX2 instructions where the build has them (the
/// compiler leaves the scalar form unvectorised, and the prior's softmax takes 3,000 of these
/// per step), the same operations in the same order, so the same bits as the scalar form.
#[inline(always)]
pub(crate) fn exp8_nonpositive<const AVX2: bool>(x: [f32; 8]) -> [f32; 8] {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        use std::arch::x86_64::*;
        // SAFETY: the AVX2 builds run only where `has_avx2_fma()` held; __m256 and [f32; 8]
        // have the same size and layout.
        return unsafe {
            let set = _mm256_set1_ps;
            let x = std::mem::transmute::<[f32; 8], __m256>(x);
            let xc = _mm256_max_ps(x, set(-87.0));
            let shifted = _mm256_add_ps(_mm256_mul_ps(xc, set(std::f32::consts::LOG2_E)), set(EXP_MAGIC));
            let n = _mm256_sub_ps(shifted, set(EXP_MAGIC));
            let r = _mm256_sub_ps(_mm256_sub_ps(xc, _mm256_mul_ps(n, set(EXP_LN2_HI))), _mm256_mul_ps(n, set(EXP_LN2_LO)));
            // `exp_taylor6`, innermost term first.
            let mut p = _mm256_mul_ps(r, set(EXP_TAYLOR[6]));
            for c in EXP_TAYLOR[1..6].iter().rev() {
                p = _mm256_mul_ps(r, _mm256_add_ps(set(*c), p));
            }
            p = _mm256_add_ps(set(EXP_TAYLOR[0]), p);
            let n_int = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(EXP_MAGIC.to_bits() as i32));
            let pow = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n_int, _mm256_set1_epi32(127))));
            let below = _mm256_cmp_ps::<_CMP_LT_OQ>(x, set(-87.0));
            std::mem::transmute::<__m256, [f32; 8]>(_mm256_andnot_ps(below, _mm256_mul_ps(p, pow)))
        };
    }
    x.map(exp_nonpositive)
}

/// ln 2 in two parts (Cody and Waite) for `exp_nonpositive`'s range reduction.
const EXP_LN2_HI: f32 = 0.693_359_4;
const EXP_LN2_LO: f32 = -2.121_944_4e-4;
/// Round to nearest by the float trick (no floor call): 1.5 * 2^23 shifts the fraction out.
const EXP_MAGIC: f32 = 12_582_912.0;

/// e^r for |r| <= ln2 / 2: the degree-6 Taylor polynomial, in Horner's order.
#[inline(always)]
fn exp_taylor6(r: f32) -> f32 {
    let c = EXP_TAYLOR;
    c[0] + r * (c[1] + r * (c[2] + r * (c[3] + r * (c[4] + r * (c[5] + r * c[6])))))
}

/// The Taylor coefficients 1/k! of e^r, k = 0..=6.
const EXP_TAYLOR: [f32; 7] = [1.0, 1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0];

pub(crate) struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    pub(crate) fn new(ln: &LayerNorm) -> Result<Self> {
        let (w, b, eps) = ln.parts();
        Ok(Self { weight: w.to_vec1()?, bias: b.to_vec1()?, eps: eps as f32 })
    }

    #[inline(always)]
    pub(crate) fn apply(&self, x: &[f32], y: &mut [f32]) {
        let n = x.len() as f32;
        let mean = sum(x) / n;
        let mut lanes = [0f32; 8];
        for c in x.chunks_exact(8) {
            for i in 0..8 {
                let v = c[i] - mean;
                lanes[i] += v * v;
            }
        }
        let mut var = lanes.iter().sum::<f32>();
        for &v in x.chunks_exact(8).remainder() {
            var += (v - mean) * (v - mean);
        }
        let inv = 1.0 / (var / n + self.eps).sqrt();
        for i in 0..x.len() {
            y[i] = (x[i] - mean) * inv * self.weight[i] + self.bias[i];
        }
    }
}

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    for c in x.chunks_exact(8) {
        for i in 0..8 {
            lanes[i] += c[i];
        }
    }
    lanes.iter().sum::<f32>() + x.chunks_exact(8).remainder().iter().sum::<f32>()
}

/// candle's GELU (the tanh approximation), in place; tanh(u) = 1 - 2 / (e^(2u) + 1), with
/// the exponent taken on -|2u| so that it stays in `exp_nonpositive`'s range.
#[inline(always)]
pub(crate) fn gelu(x: &mut [f32]) {
    const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
    for v in x {
        let u = SQRT_TWO_OVER_PI * *v * (1.0 + 0.044715 * *v * *v);
        let e = exp_nonpositive(-2.0 * u.abs());
        let t = (1.0 - e) / (1.0 + e);
        let tanh = if u < 0.0 { -t } else { t };
        *v = 0.5 * *v * (1.0 + tanh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vectorisable_exp_and_gelu_match_the_library_ones() {
        let mut worst = 0f32;
        for i in 0..=20_000 {
            let x = -90.0 * i as f32 / 20_000.0;
            let (a, b) = (exp_nonpositive(x), x.exp());
            worst = worst.max((a - b).abs() / b.max(1e-30));
        }
        assert!(worst < 1e-6, "exp relative error {worst}");
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        // The exponent read from the float's bits gives exactly what `n as i32` gave (the
        // earlier form): bounces rendered before the change repeat bit for bit.
        let earlier = |x: f32| {
            let xc = x.max(-87.0);
            let n = (xc * std::f32::consts::LOG2_E + EXP_MAGIC) - EXP_MAGIC;
            let p = exp_taylor6((xc - n * EXP_LN2_HI) - n * EXP_LN2_LO);
            if x < -87.0 { 0.0 } else { p * f32::from_bits(((n as i32 + 127) as u32) << 23) }
        };
        for i in 0..=200_000 {
            let x = -100.0 * i as f32 / 200_000.0;
            assert_eq!(exp_nonpositive(x).to_bits(), earlier(x).to_bits(), "e^{x}");
        }
        // The 8-lane form gives the scalar form's bits, in the AVX2 build and the plain one,
        // edge cases included.
        let mut xs: Vec<f32> = (0..=200_007).map(|i| -100.0 * i as f32 / 200_000.0).collect();
        xs.extend([f32::NEG_INFINITY, -87.0, -86.99999, -87.00001, -0.0, 0.0, f32::NAN, -1e-30]);
        for build in [false, has_avx2_fma()] {
            for c in xs.chunks_exact(8) {
                let x: [f32; 8] = c.try_into().unwrap();
                let y = if build { exp8_nonpositive::<true>(x) } else { exp8_nonpositive::<false>(x) };
                for (x, y) in x.iter().zip(y) {
                    assert_eq!(y.to_bits(), exp_nonpositive(*x).to_bits(), "e^{x}, AVX2 build {build}");
                }
            }
        }
        let xs: Vec<f32> = (-400..=400).map(|i| i as f32 / 40.0).collect();
        let mut ys = xs.clone();
        gelu(&mut ys);
        for (x, y) in xs.iter().zip(ys) {
            let reference = 0.5 * x * (1.0 + (0.797_884_6 * x * (1.0 + 0.044715 * x * x)).tanh());
            assert!((y - reference).abs() < 1e-6, "gelu({x}) = {y}, expected {reference}");
        }
    }

    #[test]
    fn transposed_key_dots_equal_dot_bit_for_bit() {
        for n in [8, 16, 32, 40, 64] {
            let q: Vec<f32> = (0..n).map(|i| ((i * 29 % 17) as f32 - 8.1) * 0.37).collect();
            let keys: Vec<Vec<f32>> = (0..8).map(|s| (0..n).map(|i| ((i * 13 + s * 7) % 23) as f32 * 0.11 - 1.2).collect()).collect();
            let keys: Vec<Vec<f32>> = keys.iter().map(|k| k.iter().map(|&v| f16::from_f32(v).to_f32()).collect()).collect();
            let kt: Vec<f16> = (0..n * 8).map(|x| f16::from_f32(keys[x % 8][x / 8])).collect();
            let dots = dot_transposed8::<0, false>(&q, &kt);
            if n == 64 {
                assert_eq!(dots, dot_transposed8::<64, false>(&q, &kt));
                if has_avx2_fma() {
                    assert_eq!(dots, dot_transposed8::<64, true>(&q, &kt));
                }
            }
            for (s, key) in keys.iter().enumerate() {
                assert_eq!(dots[s].to_bits(), dot(&q, key).to_bits(), "head size {n}, key {s}");
            }
        }
    }

    #[test]
    fn activations_quantise_as_candle_does() {
        use candle_core::quantized::{GgmlDType, QTensor};
        let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 23) as f32 - 11.3) * 0.173).collect();
        let mut q = Q8::zeros(64);
        q.quantize(&x);
        let t = candle_core::Tensor::from_slice(&x, (1, 64), &candle_core::Device::Cpu).unwrap();
        let bytes = QTensor::quantize(&t, GgmlDType::Q8_0).unwrap().data().unwrap().into_owned();
        for (b, block) in bytes.chunks_exact(2 + QK).enumerate() {
            assert_eq!(q.d[b], f16::from_le_bytes([block[0], block[1]]).to_f32());
            assert!(block[2..].iter().zip(&q.qs[b * QK..]).all(|(&c, &m)| c as i8 == m));
        }
    }
}
