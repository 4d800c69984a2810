//! A transformer's one-step forward written out for the CPU: what the generator thread runs,
//! frame after frame, forever (the codes prior), and what writes the score a token at a time
//! (the score prior, `model::score`). Both models are the same stack (token embeddings plus a
//! conditioning projection, `transformer::Block`s, a norm and a head), so one step serves both.
//!
//! Why not candle's ops: a step is one row of 256 values through 4 layers, about 40 small tensor
//! ops, and at that size candle spends more time creating tensors and dispatching than
//! multiplying (0.53 ms a step measured, for ~5 M multiply-adds). Here every buffer is made
//! once per stream, the int8 weights are read once for both guidance rows (conditional and
//! unconditional), the key/value cache is f16 (reading it was most of a step's memory traffic),
//! and the loops are compiled twice: for AVX2 when the CPU has it, and plain.
//!
//! One model definition still: the weights are copied out of the same model that training
//! builds (`CpuStep::new`), and the models' tests check both forwards give the same logits
//! (within the f16 cache's rounding), in f32 and q8_0, within and past the attention window.
//!
//! The kernels (q8_0 and f32 dense layers, layer norm, GELU, exp) live in `model::kernels`, shared
//! with the codec decoder's hand-written path.

use super::transformer::Block;
use crate::model::kernels::{self, dot_transposed8, exp8_nonpositive, exp_nonpositive, widen8, gelu, hsum8, Dense, Norm, Q8};
use crate::model::nn::{LayerNorm, Linear};
use candle_core::Result;
use candle_nn::Embedding;
use half::f16;

struct CpuBlock {
    ln1: Norm,
    qkv: Dense,
    out: Dense,
    ln2: Norm,
    up: Dense,
    down: Dense,
}

impl CpuBlock {
    fn new(b: &Block) -> Result<Self> {
        Ok(Self {
            ln1: Norm::new(&b.ln1)?,
            qkv: Dense::new(&b.attn.qkv)?,
            out: Dense::new(&b.attn.out)?,
            ln2: Norm::new(&b.ln2)?,
            up: Dense::new(&b.up)?,
            down: Dense::new(&b.down)?,
        })
    }
}

/// The parts of a model `CpuStep` copies: one embedding table per token level (a step reads one
/// token of each and sums their rows), the conditioning projection, the blocks, the final norm
/// and the head (its outputs are a step's logits).
pub struct StackParts<'a> {
    pub embeds: &'a [Embedding],
    pub cond: &'a Linear,
    pub blocks: &'a [Block],
    pub norm: &'a LayerNorm,
    pub head: &'a Linear,
    pub n_heads: usize,
    pub window: usize,
}

/// A copy of a model's weights laid out for one-step CPU inference.
pub struct CpuStep {
    d: usize,
    heads: usize,
    head_dim: usize,
    window: usize,
    mlp: usize,
    /// Rows of each embedding table: a token must be below it.
    embed_rows: usize,
    /// Per level, the embedding table [embed_rows * d].
    embeds: Vec<Vec<f32>>,
    cond: Dense,
    blocks: Vec<CpuBlock>,
    norm: Norm,
    head: Dense,
    slopes: Vec<f32>,
    /// Whether this CPU runs the AVX2 build of the loops (checked once, at load).
    avx2: bool,
}

/// What one stream (one guidance row) keeps between steps: the rolling key/value cache, which
/// step each slot holds, and its working buffers (allocated once).
pub struct CpuStepState {
    /// Keys, in blocks of 8 slots stored transposed: [layers][heads][window / 8][head_dim][8]
    /// (the window rounded up to 8), so 8 scores are computed side by side. In f16, as the
    /// values: reading the cache is most of a step's memory traffic (3 MB a row in f32).
    k: Vec<f16>,
    /// Values: [layers][heads][window][head_dim].
    v: Vec<f16>,
    slot_steps: Vec<Option<u64>>,
    /// Per slot, how many steps ago it was written (NaN while empty): shared by every head and
    /// layer of a step.
    dists: Vec<f32>,
    step: u64,
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    hidden: Vec<f32>,
    scores: Vec<f32>,
    /// The logits of the last step (the head's outputs).
    pub logits: Vec<f32>,
    xq: Q8,
}

impl CpuStepState {
    pub fn clear(&mut self) {
        self.slot_steps.fill(None);
        self.step = 0;
    }
}

impl CpuStep {
    pub fn new(parts: StackParts) -> Result<Self> {
        let embeds = parts.embeds.iter().map(|e| e.embeddings().flatten_all()?.to_vec1::<f32>()).collect::<Result<Vec<_>>>()?;
        let (embed_rows, d) = parts.embeds.first().map(|e| e.embeddings().dims2()).transpose()?.unwrap_or((0, 0));
        if parts.n_heads == 0 || d % parts.n_heads != 0 || parts.window == 0 || parts.blocks.is_empty() {
            candle_core::bail!("fast step: width {d}, {} heads, window {}, {} blocks", parts.n_heads, parts.window, parts.blocks.len());
        }
        let blocks = parts.blocks.iter().map(CpuBlock::new).collect::<Result<Vec<_>>>()?;
        let mlp = blocks[0].up.bias.len();
        Ok(Self {
            d,
            heads: parts.n_heads,
            head_dim: d / parts.n_heads,
            window: parts.window,
            mlp,
            embed_rows,
            embeds,
            cond: Dense::new(parts.cond)?,
            blocks,
            norm: Norm::new(parts.norm)?,
            head: Dense::new(parts.head)?,
            slopes: super::transformer::alibi_slopes(parts.n_heads),
            avx2: kernels::has_avx2_fma(),
        })
    }

    /// Run the plain build of the loops even where AVX2 is available (tests compare the two).
    #[cfg(test)]
    fn force_plain_loops(&mut self) {
        self.avx2 = false;
    }

    pub fn new_state(&self) -> CpuStepState {
        let cache = self.blocks.len() * self.heads * self.window * self.head_dim;
        CpuStepState {
            k: vec![f16::ZERO; self.blocks.len() * self.heads * self.window.next_multiple_of(8) * self.head_dim],
            v: vec![f16::ZERO; cache],
            slot_steps: vec![None; self.window],
            dists: vec![f32::NAN; self.window],
            step: 0,
            x: vec![0.0; self.d],
            h: vec![0.0; self.d],
            qkv: vec![0.0; 3 * self.d],
            att: vec![0.0; self.d],
            hidden: vec![0.0; self.mlp],
            scores: vec![0.0; self.window],
            logits: vec![0.0; self.head.bias.len()],
            xq: Q8::zeros(self.d.max(self.mlp)),
        }
    }

    /// One step of one or two streams (the guidance rows), each with its own tokens (one per
    /// embedding table) and conditioning; the logits land in each state's `logits`.
    pub fn step(&self, states: &mut [&mut CpuStepState], tokens: &[&[u32]], conds: &[&[f32]]) -> Result<()> {
        if states.is_empty() || states.len() > 2 || tokens.len() != states.len() || conds.len() != states.len() {
            candle_core::bail!("fast step: {} states, {} token rows, {} conditioning rows", states.len(), tokens.len(), conds.len());
        }
        for (t, c) in tokens.iter().zip(conds) {
            if t.len() != self.embeds.len() || c.len() != self.cond.inputs {
                candle_core::bail!("fast step: {} tokens and {} conditioning values", t.len(), c.len());
            }
            if let Some(bad) = t.iter().find(|&&t| t as usize >= self.embed_rows) {
                candle_core::bail!("fast step: token {bad} outside the embedding table");
            }
        }
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: the CPU was checked for AVX2 and FMA in `new`.
            unsafe { self.step_avx2(states, tokens, conds) };
            return Ok(());
        }
        self.step_body::<false>(states, tokens, conds);
        Ok(())
    }

    /// The same loops compiled for AVX2 and FMA, with the int8 kernels in intrinsics.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn step_avx2(&self, states: &mut [&mut CpuStepState], tokens: &[&[u32]], conds: &[&[f32]]) {
        self.step_body::<true>(states, tokens, conds)
    }

    /// `dst = layer(src)` for every row (the weights are read once for both guidance rows).
    #[inline(always)]
    fn dense<const AVX2: bool>(layer: &Dense, states: &mut [&mut CpuStepState], src: impl Fn(&CpuStepState) -> &[f32], dst: impl Fn(&mut CpuStepState) -> &mut Vec<f32>) {
        layer.apply_rows::<CpuStepState, AVX2>(states, src, |s| &mut s.xq, dst);
    }

    /// One head's attention for one row: store this step's key and value in `slot`, score
    /// every filled slot (scaled dot product minus the ALiBi distance penalty), softmax, and
    /// mix the values into `att`. `HD` is the head size when known at compile time, else 0.
    #[inline(always)]
    fn attend<const HD: usize, const AVX2: bool>(&self, st: &mut CpuStepState, layer: usize, head: usize, slot: usize) {
        let (d, w) = (self.d, self.window);
        let hd = if HD > 0 { HD } else { self.head_dim };
        let scale = 1.0 / (hd as f32).sqrt();
        let kbase = (layer * self.heads + head) * w.next_multiple_of(8) * hd;
        let vbase = (layer * self.heads + head) * w * hd;
        let key_block = kbase + slot / 8 * hd * 8;
        for (i, &k) in st.qkv[d + head * hd..d + (head + 1) * hd].iter().enumerate() {
            st.k[key_block + i * 8 + slot % 8] = f16::from_f32(k);
        }
        let at = vbase + slot * hd;
        for (v, &x) in st.v[at..at + hd].iter_mut().zip(&st.qkv[2 * d + head * hd..2 * d + (head + 1) * hd]) {
            *v = f16::from_f32(x);
        }
        let q = &st.qkv[head * hd..(head + 1) * hd];
        let slope = self.slopes[head];
        // Scores 8 slots at a time, branch-free: empty slots (NaN distance) score -inf; each
        // lane keeps its own running maximum (the maximum of the lanes is the same number
        // whatever the order).
        let mut lane_max = [f32::NEG_INFINITY; 8];
        for (b, (scores, dists)) in st.scores.chunks_mut(8).zip(st.dists.chunks(8)).enumerate() {
            let dots = dot_transposed8::<HD, AVX2>(q, &st.k[kbase + b * hd * 8..kbase + (b + 1) * hd * 8]);
            for (i, ((score, &dist), dot)) in scores.iter_mut().zip(dists).zip(dots).enumerate() {
                let v = dot * scale - slope * dist;
                *score = if dist.is_nan() { f32::NEG_INFINITY } else { v };
                lane_max[i] = if *score > lane_max[i] { *score } else { lane_max[i] };
            }
        }
        let max = lane_max.into_iter().fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
        // Empty slots hold -inf: their weight is exactly 0.
        let mut lanes = [0f32; 8];
        for c in st.scores.chunks_exact_mut(8) {
            let e = exp8_nonpositive::<AVX2>(std::array::from_fn(|i| c[i] - max));
            c.copy_from_slice(&e);
            for i in 0..8 {
                lanes[i] += e[i];
            }
        }
        let mut total = hsum8(lanes);
        for p in st.scores.chunks_exact_mut(8).into_remainder() {
            *p = exp_nonpositive(*p - max);
            total += *p;
        }
        // Normalised here, in one pass that compiles to vector divisions (a weight is 0 after
        // the division exactly when it was before: the smallest non-zero weight, e^-87, over a
        // total of at most the window, stays above f32's smallest subnormal).
        for p in st.scores.iter_mut() {
            *p /= total;
        }
        let values = &st.v[vbase..vbase + w * hd];
        let out = &mut st.att[head * hd..(head + 1) * hd];
        if HD > 0 {
            // Summed in registers, in the same order as the general loop below (HD is 64 or 32:
            // whole groups of 8).
            let mut acc = [0f32; HD];
            for (&p, v) in st.scores.iter().zip(values.chunks_exact(HD)) {
                if p == 0.0 {
                    continue;
                }
                for (a, v) in acc.chunks_exact_mut(8).zip(v.chunks_exact(8)) {
                    let v = widen8::<AVX2>(v);
                    for i in 0..8 {
                        a[i] += p * v[i];
                    }
                }
            }
            out.copy_from_slice(&acc);
        } else {
            out.fill(0.0);
            for (&p, v) in st.scores.iter().zip(values.chunks_exact(hd)) {
                if p == 0.0 {
                    continue;
                }
                for i in 0..hd {
                    out[i] += p * v[i].to_f32();
                }
            }
        }
    }

    #[inline(always)]
    fn step_body<const AVX2: bool>(&self, states: &mut [&mut CpuStepState], tokens: &[&[u32]], conds: &[&[f32]]) {
        let (d, w, hd) = (self.d, self.window, self.head_dim);
        // Input: conditioning projection plus one embedding per level.
        for ((st, toks), cond) in states.iter_mut().zip(tokens).zip(conds) {
            let slot = (st.step % w as u64) as usize;
            st.slot_steps[slot] = Some(st.step);
            for (dist, s) in st.dists.iter_mut().zip(&st.slot_steps) {
                *dist = match s {
                    Some(s) => (st.step - s) as f32,
                    None => f32::NAN,
                };
            }
            self.cond.apply_one::<AVX2>(cond, &mut st.xq, &mut st.x);
            for (table, &t) in self.embeds.iter().zip(toks.iter()) {
                let e = &table[t as usize * d..(t as usize + 1) * d];
                for o in 0..d {
                    st.x[o] += e[o];
                }
            }
        }
        for (li, blk) in self.blocks.iter().enumerate() {
            for st in states.iter_mut() {
                let CpuStepState { x, h, .. } = &mut **st;
                blk.ln1.apply(x, h);
            }
            Self::dense::<AVX2>(&blk.qkv, states, |s| &s.h, |s| &mut s.qkv);
            for st in states.iter_mut() {
                let st = &mut **st;
                let slot = (st.step % w as u64) as usize;
                for head in 0..self.heads {
                    // The shipped head size gets loops of constant length (unrolled, kept in
                    // registers); other sizes (tests' tiny models) take the general one.
                    match hd {
                        64 => self.attend::<64, AVX2>(st, li, head, slot),
                        32 => self.attend::<32, AVX2>(st, li, head, slot),
                        _ => self.attend::<0, AVX2>(st, li, head, slot),
                    }
                }
            }
            Self::dense::<AVX2>(&blk.out, states, |s| &s.att, |s| &mut s.h);
            for st in states.iter_mut() {
                let CpuStepState { x, h, .. } = &mut **st;
                for i in 0..d {
                    x[i] += h[i];
                }
                blk.ln2.apply(x, h);
            }
            Self::dense::<AVX2>(&blk.up, states, |s| &s.h, |s| &mut s.hidden);
            for st in states.iter_mut() {
                gelu(&mut st.hidden);
            }
            Self::dense::<AVX2>(&blk.down, states, |s| &s.hidden, |s| &mut s.h);
            for st in states.iter_mut() {
                let CpuStepState { x, h, .. } = &mut **st;
                for i in 0..d {
                    x[i] += h[i];
                }
            }
        }
        for st in states.iter_mut() {
            let CpuStepState { x, h, .. } = &mut **st;
            self.norm.apply(x, h);
        }
        Self::dense::<AVX2>(&self.head, states, |s| &s.h, |s| &mut s.logits);
        for st in states.iter_mut() {
            st.step += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{conditioning, Prior, PriorConfig, KIND};
    use crate::model::weights;
    use candle_core::quantized::GgmlDType;
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    /// The AVX2 build (where this CPU has it) and the plain build give the same logits, bit for
    /// bit: a bounce repeats exactly whichever build a machine runs.
    #[test]
    fn the_avx2_and_plain_builds_agree_bit_for_bit() {
        let cfg = PriorConfig { d_model: 64, n_heads: 2, mlp: 96, ..PriorConfig::tiny() };
        let vm = VarMap::new();
        Prior::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
        let bytes = weights::to_bytes_quantized(KIND, &cfg, &weights::var_tensors(&vm), Some(DType::F32), Some((&Prior::is_quantizable, GgmlDType::Q8_0))).unwrap();
        let prior = Prior::from_bytes(&bytes, &Device::Cpu).unwrap();
        let mut plain = super::CpuStep::new(prior.stack_parts()).unwrap();
        plain.force_plain_loops();
        let fast = prior.fast.as_ref().unwrap();
        let (mut a, mut b) = (fast.new_state(), fast.new_state());
        let (mut pa, mut pb) = (plain.new_state(), plain.new_state());
        let cond = conditioning::features(&conditioning::Knobs::unconditional(), &conditioning::GridPosition { beats: 1.5, beats_per_bar: 4, phrase: true });
        for step in 0..cfg.window * 2 {
            let t: Vec<u32> = (0..cfg.n_levels).map(|l| ((step * 7 + l * 3) % (cfg.codebook_size + 1)) as u32).collect();
            fast.step(&mut [&mut a, &mut b], &[&t, &t], &[&cond, &cond]).unwrap();
            plain.step(&mut [&mut pa, &mut pb], &[&t, &t], &[&cond, &cond]).unwrap();
            let same = |x: &super::CpuStepState, y: &super::CpuStepState| x.logits.iter().zip(&y.logits).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same(&a, &pa) && same(&b, &pb), "step {step}");
        }
    }
}
