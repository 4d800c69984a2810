//! The seam where a model plugs into the engine.

use super::KnobSnapshot;

/// Something that produces mono audio on request, deterministically from (seed, position).
/// Implemented by the neural generator; tests use simple sources behind the same trait.
pub trait FrameSource: Send {
    /// A short name for the editor ("Cantor prior + codec v1").
    fn name(&self) -> &str;
    /// Native sample rate of what `render` produces.
    fn sample_rate(&self) -> u32;
    /// Restart from `position` (samples at the native rate since the musical origin) with `seed`:
    /// the same (seed, position) and the same knobs must give the same audio.
    fn reset(&mut self, seed: u64, position: u64);
    /// Append the next block of samples (at least one) to `out`.
    fn render(&mut self, knobs: &KnobSnapshot, out: &mut Vec<f32>) -> Result<(), String>;
}

/// A source that counts: sample i is `(position + i) as f32`, exactly representable below 2^24.
/// Lets tests check that no frame is lost, duplicated or reordered between the threads.
pub struct CountingSource {
    pub rate: u32,
    pub block: usize,
    next: u64,
}

impl CountingSource {
    pub fn new(rate: u32, block: usize) -> Self {
        Self { rate, block, next: 0 }
    }
}

impl FrameSource for CountingSource {
    fn name(&self) -> &str {
        "counting test source"
    }
    fn sample_rate(&self) -> u32 {
        self.rate
    }
    fn reset(&mut self, _seed: u64, position: u64) {
        self.next = position;
    }
    fn render(&mut self, _knobs: &KnobSnapshot, out: &mut Vec<f32>) -> Result<(), String> {
        out.extend((0..self.block as u64).map(|i| (self.next + i) as f32));
        self.next += self.block as u64;
        Ok(())
    }
}
