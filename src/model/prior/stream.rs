//! Endless generation: one prior step per call, guided and sampled, frames reassembled from the
//! delay pattern. Owned by the generator thread; a reset re-seeds it.

use super::conditioning::{write_features, GridPosition, Knobs, COND_DIM};
use super::pattern::{bos, FrameAssembler};
use super::sampling::{guide, sample, Sampling};
use super::{Prior, PriorState};
use candle_core::{Device, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Classifier-free guidance needs a second, unconditional pass. It runs as its own single-row
/// stream, and only while guidance is not exactly 1; on the fast path both rows share one pass
/// over the weights (`Prior::step_pair`).
/// When guidance leaves 1, the unconditional stream starts from an empty context and catches
/// up over the attention window (guidance fades in over a few seconds).
pub struct PriorStream {
    conditional: PriorState,
    unconditional: PriorState,
    /// Whether the unconditional stream has run every step since it was last cleared.
    unconditional_live: bool,
    /// Steps since the last reset (the delay pattern's clock).
    steps: u64,
    assembler: FrameAssembler,
    /// Codes the last step wrote (the next step's input), BOS after a reset.
    last: Vec<u32>,
    rng: ChaCha8Rng,
    cond: Vec<f32>,
    uncond: Vec<f32>,
    guided: Vec<f32>,
    scratch: Vec<(f32, u32)>,
}

impl PriorStream {
    pub fn new(prior: &Prior, device: &Device, seed: u64) -> Result<Self> {
        Ok(Self {
            conditional: prior.new_state(1, device)?,
            unconditional: prior.new_state(1, device)?,
            unconditional_live: false,
            steps: 0,
            assembler: FrameAssembler::new(&prior.cfg.delays),
            last: vec![bos(prior.cfg.codebook_size); prior.cfg.n_levels],
            rng: ChaCha8Rng::seed_from_u64(seed),
            cond: vec![0.0; COND_DIM],
            uncond: vec![0.0; COND_DIM],
            guided: Vec::with_capacity(prior.cfg.codebook_size),
            scratch: Vec::with_capacity(prior.cfg.codebook_size),
        })
    }

    /// Start a new piece: empty context, BOS input, RNG seeded with `seed`.
    pub fn reset(&mut self, prior: &Prior, seed: u64) {
        self.conditional.clear();
        self.unconditional.clear();
        self.unconditional_live = false;
        self.steps = 0;
        self.assembler.reset();
        self.last.fill(bos(prior.cfg.codebook_size));
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// One step: returns the frame (one code per level) it completed, if any.
    pub fn step(&mut self, prior: &Prior, knobs: &Knobs, grid: &GridPosition, sampling: &Sampling) -> Result<Option<Vec<u32>>> {
        let (levels, k) = (prior.cfg.n_levels, prior.cfg.codebook_size);
        write_features(knobs, grid, &mut self.cond);
        let guided = sampling.guidance.is_finite() && sampling.guidance != 1.0;
        let (cond_logits, uncond_logits) = if guided {
            if !self.unconditional_live {
                self.unconditional.clear();
                self.unconditional_live = true;
            }
            write_features(&Knobs::unconditional(), grid, &mut self.uncond);
            let (c, u) = prior.step_pair(&mut self.conditional, &mut self.unconditional, [(&self.last, &self.cond), (&self.last, &self.uncond)])?;
            (c, Some(u))
        } else {
            self.unconditional_live = false;
            (prior.step(&mut self.conditional, &self.last, &self.cond)?, None)
        };
        for level in 0..levels {
            let span = level * k..(level + 1) * k;
            let logits = match &uncond_logits {
                Some(u) => {
                    guide(&cond_logits[span.clone()], &u[span], sampling.guidance, &mut self.guided);
                    &self.guided[..]
                }
                None => &cond_logits[span],
            };
            self.last[level] = sample(logits, sampling, &mut self.rng, &mut self.scratch);
            // A delayed level has no frame yet in its first steps: training fed BOS there.
            if self.steps < prior.cfg.delays[level] as u64 {
                self.last[level] = bos(k);
            }
        }
        self.steps += 1;
        Ok(self.assembler.push(&self.last))
    }
}
