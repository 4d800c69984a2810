//! Turning logits into codes: classifier-free guidance, temperature, top-k, top-p, and a seeded
//! RNG so that the same seed and the same knob automation give the same codes.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The sampling knobs, as the plugin exposes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 (or below 1e-3) is greedy argmax; 1 samples the model's distribution.
    pub temperature: f32,
    /// Keep only the k likeliest codes; 0 = off.
    pub top_k: usize,
    /// Keep the smallest set of codes whose probability reaches p; 1 = off.
    pub top_p: f32,
    /// Classifier-free guidance: 0 = unconditional, 1 = conditional, above 1 exaggerates.
    pub guidance: f32,
    /// How closely the second playing of each strain follows the first: 0 = off, 1 = the
    /// strongest echo (see `stream::PriorStream` and `REPEAT_MAX_BIAS`).
    pub repeat: f32,
}

/// Logit bonus (nats) that repeat 1 gives the code one strain earlier: e^6, a 400-fold boost,
/// makes a code the model found fairly plausible near certain, while a code it rules out stays
/// out, so the echo bends to the new context instead of copying blindly.
pub const REPEAT_MAX_BIAS: f32 = 6.0;

impl Default for Sampling {
    fn default() -> Self {
        Self { temperature: 1.0, top_k: 0, top_p: 1.0, guidance: 1.0, repeat: 0.0 }
    }
}

/// Guided logits: `uncond + g * (cond - uncond)` (exactly `cond` at g = 1, `uncond` at g = 0).
pub fn guide(cond: &[f32], uncond: &[f32], guidance: f32, out: &mut Vec<f32>) {
    out.clear();
    let g = if guidance.is_finite() { guidance } else { 1.0 };
    if g == 1.0 {
        out.extend_from_slice(cond);
    } else if g == 0.0 {
        out.extend_from_slice(uncond);
    } else {
        out.extend(cond.iter().zip(uncond).map(|(c, u)| u + g * (c - u)));
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// Working memory for `sample`, kept between calls so that drawing never allocates.
#[derive(Default)]
pub struct SampleScratch {
    /// The candidate codes as sort keys (see `sort_key`).
    keys: Vec<u64>,
    /// e^(logit - max) of each candidate, in `keys`' order.
    weights: Vec<f32>,
}

impl SampleScratch {
    pub fn with_capacity(codes: usize) -> Self {
        Self { keys: Vec::with_capacity(codes), weights: Vec::with_capacity(codes) }
    }
}

/// A candidate as one integer whose ascending order is: likeliest first (`f32::total_cmp`'s
/// order, reversed), ties by code. Sorting plain integers took half the time of
/// sorting (logit, code) pairs with a comparison closure (profiled), in the same order.
fn sort_key(scaled_logit: f32, code: u32) -> u64 {
    let b = scaled_logit.to_bits() as i32;
    let ordered = (b ^ ((((b >> 31) as u32) >> 1) as i32)) as u32 ^ 0x8000_0000;
    ((!ordered as u64) << 32) | code as u64
}

/// Draw one code from `logits`.
pub fn sample(logits: &[f32], s: &Sampling, rng: &mut ChaCha8Rng, scratch: &mut SampleScratch) -> u32 {
    let t = if s.temperature.is_finite() { s.temperature } else { 1.0 };
    if t < 1e-3 || s.top_k == 1 {
        return argmax(logits);
    }
    let max = logits.iter().copied().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, f32::max) / t;
    if !max.is_finite() {
        return argmax(logits);
    }
    let SampleScratch { keys, weights } = scratch;
    // Codes more than e^24 less likely than the best carry no probability a f32 sum can see:
    // dropping them first keeps the sort below short (a trained model's rows are peaked).
    keys.clear();
    keys.extend(logits.iter().enumerate().filter(|(_, v)| v.is_finite() && *v / t - max > -24.0).map(|(i, &v)| sort_key(v / t, i as u32)));
    let truncate = s.top_k > 0 || (s.top_p.is_finite() && s.top_p < 1.0);
    if truncate {
        if s.top_k > 0 && s.top_k < keys.len() {
            // Likeliest k first (ties by code, so the draw is deterministic), then only those sorted.
            keys.select_nth_unstable(s.top_k - 1);
            keys.truncate(s.top_k);
        }
        keys.sort_unstable();
    }
    let code = |key: u64| key as u32;
    weights.clear();
    let mut total = 0.0f32;
    for &key in keys.iter() {
        let w = (logits[code(key) as usize] / t - max).exp();
        weights.push(w);
        total += w;
    }
    let p = if s.top_p.is_finite() { s.top_p.clamp(0.0, 1.0) } else { 1.0 };
    if p < 1.0 {
        let mut acc = 0.0;
        let mut keep = weights.len();
        for (i, w) in weights.iter().enumerate() {
            acc += w / total;
            if acc >= p {
                keep = i + 1;
                break;
            }
        }
        keys.truncate(keep);
        weights.truncate(keep);
        total = weights.iter().sum();
    }
    let mut r = rng.random::<f32>() * total;
    for (&key, w) in keys.iter().zip(weights.iter()) {
        r -= w;
        if r <= 0.0 {
            return code(key);
        }
    }
    code(keys[keys.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn temperature_zero_and_top_k_one_are_argmax() {
        let logits = [0.1, 2.0, 1.9, -3.0];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut scratch = SampleScratch::default();
        for s in [Sampling { temperature: 0.0, ..Default::default() }, Sampling { top_k: 1, temperature: 5.0, ..Default::default() }] {
            for _ in 0..20 {
                assert_eq!(sample(&logits, &s, &mut rng, &mut scratch), 1);
            }
        }
    }

    #[test]
    fn top_p_and_top_k_cut_the_tail_and_the_seed_fixes_the_draws() {
        let logits = [3.0, 2.9, 0.0, -1.0, -2.0];
        let mut scratch = SampleScratch::default();
        let draw = |seed, s: Sampling, scratch: &mut SampleScratch| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..200).map(|_| sample(&logits, &s, &mut rng, scratch)).collect::<Vec<_>>()
        };
        let top_p = draw(3, Sampling { top_p: 0.8, ..Default::default() }, &mut scratch);
        assert!(top_p.iter().all(|&c| c < 2), "top-p 0.8 keeps the two likeliest codes");
        let top_k = draw(3, Sampling { top_k: 3, temperature: 3.0, ..Default::default() }, &mut scratch);
        assert!(top_k.iter().all(|&c| c < 3) && top_k.contains(&2));
        assert_eq!(top_k, draw(3, Sampling { top_k: 3, temperature: 3.0, ..Default::default() }, &mut scratch));
        assert_ne!(top_k, draw(4, Sampling { top_k: 3, temperature: 3.0, ..Default::default() }, &mut scratch));
    }

    #[test]
    fn sort_keys_order_candidates_likeliest_first_then_by_code() {
        let values = [3.0f32, -1.5, 0.0, -0.0, 3.0, 1e-30, -1e30, 2.5, -1.5, 7.25];
        let mut by_keys: Vec<u32> = {
            let mut keys: Vec<u64> = values.iter().enumerate().map(|(i, &v)| sort_key(v, i as u32)).collect();
            keys.sort_unstable();
            keys.iter().map(|&k| k as u32).collect()
        };
        let mut pairs: Vec<(f32, u32)> = values.iter().enumerate().map(|(i, &v)| (v, i as u32)).collect();
        pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        assert_eq!(by_keys, pairs.iter().map(|p| p.1).collect::<Vec<_>>());
        by_keys.dedup();
        assert_eq!(by_keys.len(), values.len());
    }

    #[test]
    fn guidance_mixes_conditional_and_unconditional_logits() {
        let (c, u) = ([1.0, 3.0], [2.0, 2.0]);
        let mut out = Vec::new();
        guide(&c, &u, 0.0, &mut out);
        assert_eq!(out, u);
        guide(&c, &u, 1.0, &mut out);
        assert_eq!(out, c);
        guide(&c, &u, 2.0, &mut out);
        assert_eq!(out, vec![0.0, 4.0]);
    }
}
