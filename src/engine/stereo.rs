//! Stereo from a mono model: mid/side with a decorrelated side signal.
//!
//! The codec and prior are mono (half the cost of stereo models). The width knob spreads that
//! mono signal into a stereo image: the side channel is the mid passed through a short chain of
//! Schroeder all-pass filters (flat magnitude, scrambled phase), so `L + R` is always exactly
//! `2 · mid · norm`: the image folds back to mono without comb filtering of the sum.
//! Runs on the generator thread, after resampling to the host rate.

/// All-pass delays in milliseconds: mutually prime sample counts at any common rate, short
/// enough not to be heard as echoes.
const DELAYS_MS: [f32; 3] = [3.1, 7.3, 11.9];
/// All-pass feedback coefficient: strong decorrelation without ringing.
const ALLPASS_GAIN: f32 = 0.5;
/// Side level at width 1 ("natural"), relative to the mid.
const SIDE_AT_UNIT_WIDTH: f32 = 0.5;

/// One Schroeder all-pass section: y[n] = -g x[n] + x[n-d] + g y[n-d].
struct AllPass {
    buffer: Vec<f32>,
    pos: usize,
}

impl AllPass {
    fn new(delay: usize) -> Self {
        Self { buffer: vec![0.0; delay.max(1)], pos: 0 }
    }

    #[inline]
    fn process(&mut self, x: f32) -> f32 {
        // The buffer holds v[n] = x[n] + g v[n-d]; y[n] = -g v[n] + v[n-d] (canonical form).
        let delayed = self.buffer[self.pos];
        let v = x + ALLPASS_GAIN * delayed;
        self.buffer[self.pos] = v;
        self.pos = (self.pos + 1) % self.buffer.len();
        delayed - ALLPASS_GAIN * v
    }

    fn reset(&mut self) {
        self.buffer.fill(0.0);
        self.pos = 0;
    }
}

/// Mono → interleaved stereo with a width control (0 mono, 1 natural, 2 wide).
pub struct StereoWidener {
    chain: Vec<AllPass>,
    /// Width applied at the end of the previous block; each block ramps from it to the new one.
    width: f32,
}

impl StereoWidener {
    pub fn new(rate: u32) -> Self {
        let chain = DELAYS_MS.iter().map(|ms| AllPass::new((ms * 1e-3 * rate as f32).round() as usize)).collect();
        Self { chain, width: 1.0 }
    }

    /// Forget the filter history (after a reset, so a restart renders the same audio).
    pub fn reset(&mut self, width: f32) {
        self.chain.iter_mut().for_each(AllPass::reset);
        self.width = sanitize(width);
    }

    /// Append `mono` to `out` as interleaved stereo, ramping the width to `width` over the block.
    pub fn process(&mut self, mono: &[f32], width: f32, out: &mut Vec<f32>) {
        let target = sanitize(width);
        let n = mono.len().max(1) as f32;
        out.reserve(mono.len() * 2);
        for (i, &m) in mono.iter().enumerate() {
            let w = self.width + (target - self.width) * (i + 1) as f32 / n;
            let decorrelated = self.chain.iter_mut().fold(m, |x, ap| ap.process(x));
            let side_gain = w * SIDE_AT_UNIT_WIDTH;
            // Constant power: the side's energy is taken back from both channels.
            let norm = 1.0 / (1.0 + side_gain * side_gain).sqrt();
            let s = decorrelated * side_gain;
            out.push((m + s) * norm);
            out.push((m - s) * norm);
        }
        if !mono.is_empty() {
            self.width = target;
        }
    }
}

fn sanitize(width: f32) -> f32 {
    if width.is_finite() { width.clamp(0.0, 2.0) } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize) -> Vec<f32> {
        let mut s = 1u32;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn correlation(x: &[f32]) -> f32 {
        let (mut lr, mut ll, mut rr) = (0f64, 0f64, 0f64);
        for f in x.chunks(2) {
            lr += (f[0] * f[1]) as f64;
            ll += (f[0] * f[0]) as f64;
            rr += (f[1] * f[1]) as f64;
        }
        (lr / (ll * rr).sqrt()) as f32
    }

    #[test]
    fn width_zero_is_mono_and_width_widens() {
        let x = noise(48_000);
        let mut corr = Vec::new();
        for width in [0.0, 1.0, 2.0] {
            let mut w = StereoWidener::new(48_000);
            w.reset(width);
            let mut out = Vec::new();
            w.process(&x, width, &mut out);
            if width == 0.0 {
                assert!(out.chunks(2).zip(&x).all(|(f, m)| f[0] == *m && f[1] == *m));
            }
            // The sum folds back to the mono signal (scaled): no comb filter in mono.
            let side_gain = width * SIDE_AT_UNIT_WIDTH;
            let norm = 1.0 / (1.0 + side_gain * side_gain).sqrt();
            for (f, m) in out.chunks(2).zip(&x) {
                assert!(((f[0] + f[1]) - 2.0 * m * norm).abs() < 1e-5);
            }
            corr.push(correlation(&out));
        }
        assert!(corr[0] > 0.999 && corr[1] < 0.7 && corr[2] < corr[1], "L/R correlation by width: {corr:?}");
    }

    #[test]
    fn block_size_does_not_change_the_output_for_a_constant_width() {
        let x = noise(5_000);
        let mut whole = Vec::new();
        let mut a = StereoWidener::new(44_100);
        a.reset(1.3);
        a.process(&x, 1.3, &mut whole);
        let mut chunked = Vec::new();
        let mut b = StereoWidener::new(44_100);
        b.reset(1.3);
        for c in x.chunks(37) {
            b.process(c, 1.3, &mut chunked);
        }
        assert_eq!(whole, chunked);
    }

    #[test]
    fn absurd_width_is_clamped() {
        let mut w = StereoWidener::new(48_000);
        let mut out = Vec::new();
        w.process(&[0.5; 64], f32::NAN, &mut out);
        w.process(&[0.5; 64], 1e9, &mut out);
        assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    }
}
