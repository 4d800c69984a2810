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
