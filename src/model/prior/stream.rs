//! Endless generation: one prior step per call, guided and sampled, frames reassembled from the
//! delay pattern. Owned by the generator thread; a reset re-seeds it.

use super::conditioning::{write_features, GridPosition, Knobs, COND_DIM};
use super::notes::NOTE_DIM;
use super::pattern::{bos, FrameAssembler};
use super::sampling::{guide, sample, SampleScratch, Sampling, REPEAT_MAX_BIAS};
use super::{Prior, PriorState};
use candle_core::{Device, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Classifier-free guidance needs a second, unconditional pass. It runs as its own single-row
/// stream, and only while guidance is not exactly 1; on the fast path both rows share one pass
/// over the weights (`Prior::step_pair`).
/// When guidance leaves 1, the unconditional stream starts from an empty context and catches
/// up over the attention window (guidance fades in over a few seconds).
///
/// Repeated strains (long-range structure beyond the 5 s attention window): the stream keeps
/// the codes of its last `ECHO_SECONDS`; in the second strain of each pair
/// (`GridPosition::strain_echo_frames`) every level's logit of the code written one strain
/// earlier at the same place gets a bonus (`Sampling::repeat`), so the strain comes back as a
/// variation of the first, which the model can follow or leave where its context disagrees.
/// Only codes written under the same knobs (style, instrument, key, tempo) are echoed, so a
/// knob change is heard at once instead of being pulled back toward the old strain.
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
    scratch: SampleScratch,
    /// The codes of the last `history_steps` steps (`[step % history_steps][level]`), for the
    /// strain echo. Only steps since the last reset are read.
    history: Vec<u32>,
    /// The knobs each of those steps was written under: only codes written under the knobs of
    /// the current step are echoed.
    history_knobs: Vec<Knobs>,
    history_steps: usize,
    /// Frames per second of the codes (to turn a strain's length into steps).
    frame_rate: f64,
}

/// Longest strain the echo reaches back over: 8 bars of 4/4 at 60 BPM are 32 s, 8 bars of 7/4
/// at 60 BPM 56 s. Longer strains play without an echo.
pub const ECHO_SECONDS: f64 = 64.0;

impl PriorStream {
    pub fn new(prior: &Prior, device: &Device, seed: u64) -> Result<Self> {
        let history_steps = (ECHO_SECONDS * prior.cfg.frame_rate).ceil() as usize;
        Ok(Self {
            conditional: prior.new_state(1, device)?,
            unconditional: prior.new_state(1, device)?,
            unconditional_live: false,
            steps: 0,
            assembler: FrameAssembler::new(&prior.cfg.delays),
            last: vec![bos(prior.cfg.codebook_size); prior.cfg.n_levels],
            rng: ChaCha8Rng::seed_from_u64(seed),
            cond: vec![0.0; prior.cfg.cond_dim()],
            uncond: vec![0.0; prior.cfg.cond_dim()],
            guided: Vec::with_capacity(prior.cfg.codebook_size),
            scratch: SampleScratch::with_capacity(prior.cfg.codebook_size),
            history: vec![bos(prior.cfg.codebook_size); history_steps * prior.cfg.n_levels],
            history_knobs: vec![Knobs::unconditional(); history_steps],
            history_steps,
            frame_rate: prior.cfg.frame_rate,
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
        self.step_with_notes(prior, knobs, grid, None, sampling)
    }

    /// One step of a performer (`PriorConfig::notes`): `notes` are this step's note features
    /// (`notes::paint`, `NOTE_DIM` values), or `None` for none given. The unconditional guidance
    /// row goes without notes as without knobs, so guidance imposes both. A prior without note
    /// conditioning ignores them.
    pub fn step_with_notes(&mut self, prior: &Prior, knobs: &Knobs, grid: &GridPosition, notes: Option<&[f32]>, sampling: &Sampling) -> Result<Option<Vec<u32>>> {
        let (levels, k) = (prior.cfg.n_levels, prior.cfg.codebook_size);
        write_features(knobs, grid, &mut self.cond[..COND_DIM]);
        if prior.cfg.notes {
            let row = &mut self.cond[COND_DIM..];
            match notes {
                Some(n) if n.len() == NOTE_DIM => row.copy_from_slice(n),
                Some(n) => candle_core::bail!("{} note features for a performer that takes {NOTE_DIM}", n.len()),
                None => row.fill(0.0),
            }
        }
        let guided = sampling.guidance.is_finite() && sampling.guidance != 1.0;
        let (mut cond_logits, uncond_logits) = if guided {
            if !self.unconditional_live {
                self.unconditional.clear();
                self.unconditional_live = true;
            }
            write_features(&Knobs::unconditional(), grid, &mut self.uncond[..COND_DIM]);
            let (c, u) = prior.step_pair(&mut self.conditional, &mut self.unconditional, [(&self.last, &self.cond), (&self.last, &self.uncond)])?;
            (c, Some(u))
        } else {
            self.unconditional_live = false;
            (prior.step(&mut self.conditional, &self.last, &self.cond)?, None)
        };
        // The step one strain back, if this step is in an echoing strain and that step was
        // written since the last reset, under the same knobs.
        let echo_from = (sampling.repeat.is_finite() && sampling.repeat > 0.0)
            .then(|| grid.strain_echo_frames(knobs.bpm, self.frame_rate))
            .flatten()
            .filter(|&d| d > 0 && d <= self.history_steps && d as u64 <= self.steps)
            .map(|d| (self.steps as usize - d) % self.history_steps)
            .filter(|&slot| self.history_knobs[slot] == *knobs);
        let bonus = sampling.repeat.clamp(0.0, 1.0) * REPEAT_MAX_BIAS;
        for level in 0..levels {
            let span = level * k..(level + 1) * k;
            // BOS (a delayed level's first steps) is not a code to echo.
            let echoed = echo_from.map(|slot| self.history[slot * levels + level]).filter(|&c| (c as usize) < k);
            let logits = match &uncond_logits {
                Some(u) => {
                    guide(&cond_logits[span.clone()], &u[span], sampling.guidance, &mut self.guided);
                    &mut self.guided[..]
                }
                None => &mut cond_logits[span],
            };
            if let Some(code) = echoed {
                logits[code as usize] += bonus;
            }
            self.last[level] = sample(logits, sampling, &mut self.rng, &mut self.scratch);
            // A delayed level has no frame yet in its first steps: training fed BOS there.
            if self.steps < prior.cfg.delays[level] as u64 {
                self.last[level] = bos(k);
            }
        }
        let slot = (self.steps % self.history_steps as u64) as usize;
        self.history[slot * levels..(slot + 1) * levels].copy_from_slice(&self.last);
        self.history_knobs[slot] = *knobs;
        self.steps += 1;
        Ok(self.assembler.push(&self.last))
    }
}
