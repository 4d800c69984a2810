//! Endless generation: one prior step per call, guided and sampled, frames reassembled from the
//! delay pattern. Owned by the generator thread; a reset re-seeds it.

use super::conditioning::{write_features, GridPosition, Knobs, COND_DIM};
use super::pattern::{bos, FrameAssembler};
use super::sampling::{guide, sample, Sampling};
use super::{Prior, PriorState};
use candle_core::{Device, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Row 0 of the batch is conditioned on the knobs, row 1 is the unconditional pass of
/// classifier-free guidance. Both rows always run (at batch 1 the per-step cost is mostly fixed
/// overhead, so the second row costs little), so guidance can move freely without a restart.
const ROWS: usize = 2;

pub struct PriorStream {
    state: PriorState,
    assembler: FrameAssembler,
    /// Codes the last step wrote (the next step's input), BOS after a reset.
    last: Vec<u32>,
    rng: ChaCha8Rng,
    tokens: Vec<u32>,
    cond: Vec<f32>,
    guided: Vec<f32>,
    scratch: Vec<(f32, u32)>,
}

impl PriorStream {
    pub fn new(prior: &Prior, device: &Device, seed: u64) -> Result<Self> {
        let levels = prior.cfg.n_levels;
        Ok(Self {
            state: prior.new_state(ROWS, device)?,
            assembler: FrameAssembler::new(&prior.cfg.delays),
            last: vec![bos(prior.cfg.codebook_size); levels],
            rng: ChaCha8Rng::seed_from_u64(seed),
            tokens: vec![0; ROWS * levels],
            cond: vec![0.0; ROWS * COND_DIM],
            guided: Vec::with_capacity(prior.cfg.codebook_size),
            scratch: Vec::with_capacity(prior.cfg.codebook_size),
        })
    }

    /// Start a new piece: empty context, BOS input, RNG seeded with `seed`.
    pub fn reset(&mut self, prior: &Prior, seed: u64) {
        self.state.clear();
        self.assembler.reset();
        self.last.fill(bos(prior.cfg.codebook_size));
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// Frames of latency the delay pattern adds (steps before the first frame comes out).
    pub fn latency(&self) -> usize {
        self.assembler.latency()
    }

    /// Steps taken since the last reset.
    pub fn steps(&self) -> u64 {
        self.state.steps()
    }

    /// One step: returns the frame (one code per level) it completed, if any.
    pub fn step(&mut self, prior: &Prior, knobs: &Knobs, grid: &GridPosition, sampling: &Sampling) -> Result<Option<Vec<u32>>> {
        let (levels, k) = (prior.cfg.n_levels, prior.cfg.codebook_size);
        let step = self.state.steps();
        for row in 0..ROWS {
            self.tokens[row * levels..(row + 1) * levels].copy_from_slice(&self.last);
        }
        write_features(knobs, grid, &mut self.cond[..COND_DIM]);
        write_features(&Knobs::unconditional(), grid, &mut self.cond[COND_DIM..]);
        let logits = prior.step(&mut self.state, &self.tokens, &self.cond)?;
        let (cond_rows, uncond_rows) = logits.split_at(levels * k);
        for level in 0..levels {
            let span = level * k..(level + 1) * k;
            guide(&cond_rows[span.clone()], &uncond_rows[span], sampling.guidance, &mut self.guided);
            self.last[level] = sample(&self.guided, sampling, &mut self.rng, &mut self.scratch);
            // A delayed level has no frame yet in its first steps: training fed BOS there.
            if step < prior.cfg.delays[level] as u64 {
                self.last[level] = bos(k);
            }
        }
        Ok(self.assembler.push(&self.last))
    }
}
