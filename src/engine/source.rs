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
    /// Move the notes of the frames the last `render` completed into `out`, timed in samples
    /// from that render's first sample, in time order (a note may fall just past its audio's
    /// end, in samples the next render completes; sources that play no notes have none).
    fn take_notes(&mut self, _out: &mut Vec<PlayedNote>) {}
}

/// A note starting or ending in the audio, as MIDI out sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayedNote {
    /// When. From a `FrameSource`: samples at its rate from the start of its last render's
    /// audio. In the engine's note ring: the stereo frame of the output it belongs to, counted
    /// as the audio ring counts them (`AudioReader`'s popped frames).
    pub at: u64,
    /// MIDI channel, 0-15.
    pub channel: u8,
    pub key: u8,
    /// 1-127 starts the note, 0 ends it.
    pub velocity: u8,
}
