//! Lock-free state shared by the editor/host parameters, the audio thread and the generator.

use atomic_float::AtomicF32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Number of style weights (the model vocabulary's styles).
pub const N_STYLES: usize = crate::model::vocab::STYLES.len();

/// Default look-ahead (the plugin's Look-ahead parameter). A knob change reaches the output
/// after at most this buffer, one 27 ms render step (`neural_source::FRAMES_PER_RENDER`), the
/// resampler's few milliseconds, and one 13 ms frame of the prior's delay pattern: about 140 ms,
/// under the 150 ms target (`cargo bench --bench generator` measures it), while a CPU spike of
/// up to 90 ms is absorbed.
pub const DEFAULT_LOOK_AHEAD_S: f32 = 0.09;

/// Knob values as the generator reads them, once per generated block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnobSnapshot {
    /// Style blend weights (not normalised; all zero means unconditional).
    pub styles: [f32; N_STYLES],
    /// Instrument family index into `vocab::INSTRUMENT_FAMILIES`.
    pub instrument: u32,
    /// Key tonic as a pitch class (C = 0) and mode (0 major, 1 minor).
    pub key: u32,
    pub mode: u32,
    /// Stereo width, 0 (mono) to 2.
    pub width: f32,
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub guidance: f32,
    /// How closely each strain's second playing follows its first (0-1).
    pub repeat: f32,
    pub tempo_bpm: f32,
    pub beats_per_bar: u32,
    /// Seconds of audio the generator keeps ready (responsiveness against safety).
    pub ahead_s: f32,
}

/// Atomics shared by one engine's three sides. Written by one side each (noted per field).
pub struct EngineShared {
    // Knobs: written by the plugin's parameter sync, read by the generator.
    pub styles: [AtomicF32; N_STYLES],
    pub instrument: AtomicU32,
    pub key: AtomicU32,
    pub mode: AtomicU32,
    pub width: AtomicF32,
    pub temperature: AtomicF32,
    pub top_k: AtomicU32,
    pub top_p: AtomicF32,
    pub guidance: AtomicF32,
    pub repeat: AtomicF32,
    pub tempo_bpm: AtomicF32,
    /// Beats per bar of the host's time signature (4 when the host does not say).
    pub beats_per_bar: AtomicU32,
    pub ahead_s: AtomicF32,
    /// Output gain (linear), read by the audio thread.
    pub gain: AtomicF32,
    // Status: written by the audio thread, read by the editor.
    /// Frames waiting in the ring at the last process call.
    pub buffered_frames: AtomicU32,
    /// Peak absolute sample of the last block (the editor's level meter).
    pub output_peak: AtomicF32,
    pub underruns: AtomicU64,
    /// Offline waits that hit their limit (each logged by the generator side).
    pub offline_timeouts: AtomicU64,
    // Reset handshake: the audio thread sends a numbered Reset command; the generator answers by
    // storing the ring position where that epoch's audio starts, then `produced_epoch`.
    pub produced_epoch: AtomicU64,
    pub epoch_start_frame: AtomicU64,
    /// Offline only: stereo frames the reader needs pushed in total (the ring position it waits
    /// for). The generator renders on this demand alone, with the knobs of the block that asked,
    /// so a bounce with automation comes out the same every time.
    pub demand_frames: AtomicU64,
    // Generator status: written by the generator, read by the editor.
    pub generated_frames: AtomicU64,
    /// Generator compute time per second of audio, in per mille (real-time factor = 1000 / this).
    pub load_permille: AtomicU32,
    pub running: AtomicBool,
    /// Why the generator stopped or is silent, in plain words (never touched by the audio thread).
    pub error: Mutex<Option<String>>,
    /// The model playing, for the editor (set on activation, main thread).
    pub model_name: Mutex<Option<String>>,
    /// Capture requests and results (editor and capture thread; the audio thread only pushes
    /// into the capture ring, see `capture`).
    pub capture: std::sync::Arc<super::capture::CaptureShared>,
}

impl Default for EngineShared {
    fn default() -> Self {
        Self {
            styles: std::array::from_fn(|_| AtomicF32::new(0.0)),
            instrument: AtomicU32::new(0),
            key: AtomicU32::new(0),
            mode: AtomicU32::new(0),
            width: AtomicF32::new(1.0),
            temperature: AtomicF32::new(1.0),
            top_k: AtomicU32::new(0),
            top_p: AtomicF32::new(1.0),
            guidance: AtomicF32::new(1.0),
            repeat: AtomicF32::new(0.0),
            tempo_bpm: AtomicF32::new(120.0),
            beats_per_bar: AtomicU32::new(4),
            ahead_s: AtomicF32::new(DEFAULT_LOOK_AHEAD_S),
            gain: AtomicF32::new(1.0),
            buffered_frames: AtomicU32::new(0),
            output_peak: AtomicF32::new(0.0),
            underruns: AtomicU64::new(0),
            offline_timeouts: AtomicU64::new(0),
            produced_epoch: AtomicU64::new(0),
            epoch_start_frame: AtomicU64::new(0),
            demand_frames: AtomicU64::new(0),
            generated_frames: AtomicU64::new(0),
            load_permille: AtomicU32::new(0),
            running: AtomicBool::new(false),
            error: Mutex::new(None),
            model_name: Mutex::new(None),
            capture: Default::default(),
        }
    }
}

impl EngineShared {
    pub fn knobs(&self) -> KnobSnapshot {
        KnobSnapshot {
            styles: std::array::from_fn(|i| self.styles[i].load(Relaxed)),
            instrument: self.instrument.load(Relaxed),
            key: self.key.load(Relaxed),
            mode: self.mode.load(Relaxed),
            width: self.width.load(Relaxed),
            temperature: self.temperature.load(Relaxed),
            top_k: self.top_k.load(Relaxed),
            top_p: self.top_p.load(Relaxed),
            guidance: self.guidance.load(Relaxed),
            repeat: self.repeat.load(Relaxed),
            tempo_bpm: self.tempo_bpm.load(Relaxed),
            beats_per_bar: self.beats_per_bar.load(Relaxed),
            ahead_s: self.ahead_s.load(Relaxed),
        }
    }

    /// Record why the generator is silent (generator and plugin threads only).
    pub fn set_error(&self, message: impl Into<String>) {
        if let Ok(mut e) = self.error.lock() {
            *e = Some(message.into());
        }
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
}
