//! The seam where a model plugs into the engine.

use super::score_stage::LiveEvent;
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
    /// Whether the next render plays the player's notes (the Source knob in `knobs`): the
    /// generator then hands them over with `play_input` and renders only what they are known for.
    fn plays_input(&self, _knobs: &KnobSnapshot) -> bool {
        false
    }
    /// How far the player's notes must be known before the next render, in samples at the
    /// source's rate since the last reset.
    fn input_needed(&self) -> u64 {
        0
    }
    /// How far ahead of its audio output the source reads the player's notes, in its samples:
    /// with the look-ahead, the latency of playing them.
    fn input_lead(&self) -> u64 {
        0
    }
    /// The player's note events, each at a sample position since the last reset, in time order.
    fn play_input(&mut self, _events: &[InputNote]) {}
    /// How much later than the host's grid the source's audio is heard while it plays the
    /// player's notes, in its samples (the latency the host compensates, less the resampler's
    /// delay): notes it writes itself then fall this much later, to land on the grid once the
    /// host has moved the track earlier. Told after each reset.
    fn set_input_delay(&mut self, _samples: u64) {}
}

/// A note event of the player's, as the engine carries it: when, and what. From the audio
/// thread: `at` counts host frames since the reset `epoch` was asked for (so a bounce and
/// real-time playback, which starts its audio a little later, place it alike); handed to a
/// `FrameSource`: its samples since its last reset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputNote {
    pub epoch: u64,
    pub at: u64,
    pub event: LiveEvent,
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
