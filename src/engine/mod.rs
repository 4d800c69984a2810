//! The real-time bridge between a generator thread (which owns the model) and the audio callback.
//!
//! ```text
//!  audio thread                         generator thread
//!  ────────────                         ────────────────
//!  AudioReader::process ──try_send──►  Command channel (bounded)
//!        ▲                                   │
//!        │ pop frames                        ▼
//!  ringbuf SPSC (interleaved stereo, ◄── push ── FrameSource::render → resample → stereo
//!  pre-allocated, host rate)
//!        │
//!  EngineShared atomics (knobs in, buffer fill / underruns / epochs out) shared by all three
//!  a second SPSC ring carries the note events of the audio (MIDI out), timed in ring frames;
//!  a third the player's note events (Source: play my notes) the other way, with the input
//!  horizon (how far the audio thread has read the host's events) in `EngineShared`;
//!  a fourth what is heard (notes, the player's notes, bar lines) to the editor's piano roll
//! ```
//!
//! The audio side never allocates, locks or waits in real-time mode: it reads atomics, pops
//! from the ring, applies smoothed gain and fades, and counts underruns. In offline mode it may
//! wait (bounded) for the generator so a bounce has no gaps.

pub mod capture;
pub mod generator;
pub mod neural_source;
pub mod reader;
pub mod score_stage;
pub mod shared;
pub mod shown;
pub mod silence_watch;
pub mod source;
#[cfg(any(test, feature = "test-support"))]
pub mod test_sources;
pub mod spectrogram;
pub mod stereo;

pub use generator::{Command, Generator, GeneratorConfig};
pub use reader::{AudioReader, ProcessMode};
pub use shared::{EngineShared, KnobSnapshot, ShownSource};
pub use shown::{Shown, ShownEvent};
pub use source::{FrameSource, InputNote, PlayedNote};

/// A note event on its way to the audio thread: the reset epoch whose audio it belongs to (the
/// reader drops those of an epoch it has left), and the note timed in ring frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingNote {
    pub epoch: u64,
    pub note: PlayedNote,
}

/// Note events the ring holds: far more than a ring of audio can carry (a dense 16th-note
/// texture in four voices with chords is about 40 events a second).
const NOTE_RING: usize = 8192;

/// The player's note events the input ring holds between two generator steps: a flood far
/// beyond any keyboard or clip (events past it are dropped and counted, never waited for).
const INPUT_RING: usize = 4096;

use ringbuf::traits::Split;
use ringbuf::HeapRb;
use std::sync::Arc;

/// Everything one plugin instance needs while active: the generator thread and the audio-side
/// reader, created together so they share one ring buffer and one set of atomics.
pub struct Engine {
    pub generator: Generator,
    pub reader: AudioReader,
    pub shared: Arc<EngineShared>,
    /// The audio thread's copy of its output, for capture to WAV.
    pub capture_tap: capture::CaptureTap,
    /// The thread that keeps the last minutes of output and writes capture files.
    pub capture: capture::Capture,
}

impl Engine {
    /// Start a generator thread for `source` producing stereo at `host_rate`, with room for
    /// `max_ahead_s` seconds of audio in the ring (allocated here, never on the audio thread).
    pub fn start(
        source: Box<dyn FrameSource>,
        shared: Arc<EngineShared>,
        config: GeneratorConfig,
    ) -> std::io::Result<Self> {
        let capacity = (config.host_rate as f64 * config.max_ahead_s).ceil() as usize * 2;
        let (producer, consumer) = HeapRb::<f32>::new(capacity.max(1024)).split();
        let (note_producer, note_consumer) = HeapRb::<RingNote>::new(NOTE_RING).split();
        let (input_producer, input_consumer) = HeapRb::<InputNote>::new(INPUT_RING).split();
        let (shown_producer, shown_consumer) = HeapRb::<ShownEvent>::new(shown::SHOWN_RING).split();
        shared.set_shown_feed(shown_consumer, config.host_rate);
        let (tx, rx) = crossbeam_channel::bounded(64);
        let reader = AudioReader::new(consumer, note_consumer, input_producer, shown_producer, tx.clone(), shared.clone(), config.host_rate);
        let generator = Generator::spawn(source, producer, note_producer, input_consumer, rx, tx, shared.clone(), config)?;
        let (capture_tap, capture) = capture::Capture::start(shared.capture().clone(), config.host_rate)?;
        Ok(Self { generator, reader, shared, capture_tap, capture })
    }
}

#[cfg(test)]
mod tests;
