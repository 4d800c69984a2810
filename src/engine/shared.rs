//! Lock-free state shared by the plugin (parameters, transport), the audio thread, the
//! generator and the editor. Every field is private: the methods below are the only way in, so
//! memory orderings and locking are decided here, once, and each atomic has one writer (named
//! on the method that writes it).

use super::shown::ShownEvent;
use crate::knobs::{KnobAtomics, KnobValues};
use crate::model::vocab::Meter;
use atomic_float::AtomicF32;
use ringbuf::traits::Consumer;
use ringbuf::HeapCons;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};

pub use crate::knobs::N_STYLES;

/// What the generator reads once per generated block: every knob, and the musical time the
/// plugin derives from the host (or the free Tempo knob).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnobSnapshot {
    pub knobs: KnobValues,
    /// Tempo in beats of the time signature (dotted quarters in 6/8), as the prior counts them.
    pub tempo_bpm: f32,
    /// Beats per bar of the host's time signature, counted the same way (4 until it says).
    pub beats_per_bar: u32,
    /// Quarter notes in one of those beats (1.5 in 6/8): with `beats_per_bar`, the meter the
    /// score prior writes in.
    pub beat_quarters: f32,
}

impl Default for KnobSnapshot {
    fn default() -> Self {
        let knobs = KnobValues::default();
        Self { knobs, tempo_bpm: knobs.tempo, beats_per_bar: 4, beat_quarters: 1.0 }
    }
}

/// The tempo the generator plays a tempo setting at, in beats a minute: within 20-400, 120 when
/// it is not a number. The editor's bar lines count beats at the same tempo.
pub fn played_bpm(bpm: f32) -> f64 {
    if bpm.is_finite() { bpm.clamp(20.0, 400.0) as f64 } else { 120.0 }
}

/// Atomics shared by one engine's sides.
pub struct EngineShared {
    /// Knobs: written by the plugin (`publish_knobs`), read by the generator and the reader.
    knobs: KnobAtomics,
    /// Musical time: written by the plugin (`set_time`), read by the generator.
    tempo_bpm: AtomicF32,
    beats_per_bar: AtomicU32,
    beat_quarters: AtomicF32,
    /// Audio-thread status, read by the editor: frames waiting in the ring at the last process
    /// call, peak absolute sample of the last block, underruns, offline waits that hit their limit.
    buffered_frames: AtomicU32,
    output_peak: AtomicF32,
    underruns: AtomicU64,
    offline_timeouts: AtomicU64,
    /// Reset handshake: the audio thread sends a numbered Reset command; the generator answers by
    /// storing the ring position where that epoch's audio starts, then the epoch (`publish_epoch`).
    produced_epoch: AtomicU64,
    epoch_start_frame: AtomicU64,
    /// Offline only: stereo frames the reader needs pushed in total (the ring position it waits
    /// for). The generator renders on this demand alone, with the knobs of the block that asked,
    /// so a bounce with automation comes out the same every time.
    demand_frames: AtomicU64,
    /// The player's notes (Source: play my notes): the host frame of the current reset epoch up
    /// to which the reader has passed on every host event (the generator renders nothing that
    /// later events could still change), and the latency the generator plays them with, in host
    /// frames.
    input_horizon: AtomicU64,
    input_latency: AtomicU32,
    /// Player's events the input ring was too full to take.
    input_dropped: AtomicU64,
    /// Generator status, read by the editor: frames made, compute time per second of audio in
    /// per mille (real-time factor = 1000 / this), whether its thread runs.
    generated_frames: AtomicU64,
    load_permille: AtomicU32,
    running: AtomicBool,
    /// Why the generator stopped or is silent, in plain words (never touched by the audio thread).
    error: Mutex<Option<String>>,
    /// The model playing, for the editor (set on activation, main thread).
    model_name: Mutex<Option<String>>,
    /// Capture requests and results (editor and capture thread; the audio thread only pushes
    /// into the capture ring, see `capture`).
    capture: Arc<super::capture::CaptureShared>,
    /// The piano roll: output samples the reader has played up to the end of its last block
    /// (the roll's "now"; the events' `at` count the same samples), and the running engine's
    /// event ring. Only the editor drains the ring and only the main thread replaces it (a new
    /// engine); the audio thread holds the other end and never locks.
    shown_clock: AtomicU64,
    shown_feed: Mutex<ShownFeed>,
}

/// The running engine's piano-roll events, the host rate that times them, and which engine it
/// is (counted from 1; the editor starts its roll afresh when it changes).
#[derive(Default)]
struct ShownFeed {
    events: Option<HeapCons<ShownEvent>>,
    rate: u32,
    engine: u64,
}

/// Which engine's events the editor drained, and the rate of their samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShownSource {
    pub engine: u64,
    pub rate: u32,
}

impl Default for EngineShared {
    fn default() -> Self {
        let time = KnobSnapshot::default();
        Self {
            knobs: KnobAtomics::new(&time.knobs),
            tempo_bpm: AtomicF32::new(time.tempo_bpm),
            beats_per_bar: AtomicU32::new(time.beats_per_bar),
            beat_quarters: AtomicF32::new(time.beat_quarters),
            buffered_frames: AtomicU32::new(0),
            output_peak: AtomicF32::new(0.0),
            underruns: AtomicU64::new(0),
            offline_timeouts: AtomicU64::new(0),
            produced_epoch: AtomicU64::new(0),
            epoch_start_frame: AtomicU64::new(0),
            demand_frames: AtomicU64::new(0),
            input_horizon: AtomicU64::new(0),
            input_latency: AtomicU32::new(0),
            input_dropped: AtomicU64::new(0),
            generated_frames: AtomicU64::new(0),
            load_permille: AtomicU32::new(0),
            running: AtomicBool::new(false),
            error: Mutex::new(None),
            model_name: Mutex::new(None),
            capture: Default::default(),
            shown_clock: AtomicU64::new(0),
            shown_feed: Mutex::new(ShownFeed::default()),
        }
    }
}

impl EngineShared {
    // Knobs and musical time. Relaxed: each value stands alone; the offline demand's
    // Release/Acquire pair (`demand`) orders them for bounces.

    /// Plugin (audio thread, atomic stores only): the knobs the generator will read next.
    pub fn publish_knobs(&self, knobs: &KnobValues) {
        self.knobs.store(knobs, Relaxed);
    }

    /// Plugin: tempo and meter, beats counted as the prior counts them.
    pub fn set_time(&self, tempo_bpm: f32, meter: Meter) {
        self.tempo_bpm.store(tempo_bpm, Relaxed);
        self.beats_per_bar.store(meter.beats_per_bar, Relaxed);
        self.beat_quarters.store(meter.beat_quarters as f32, Relaxed);
    }

    /// Generator: everything it steers by, read once per block.
    pub fn knobs(&self) -> KnobSnapshot {
        KnobSnapshot {
            knobs: self.knobs.load(Relaxed),
            tempo_bpm: self.tempo_bpm.load(Relaxed),
            beats_per_bar: self.beats_per_bar.load(Relaxed),
            beat_quarters: self.beat_quarters.load(Relaxed),
        }
    }

    /// Reader: the output gain (linear), NaN and absurd values made safe.
    pub fn output_gain(&self) -> f32 {
        let g = self.knobs.gain();
        if g.is_finite() {
            g.clamp(0.0, 16.0)
        } else {
            0.0
        }
    }

    /// Generator: seconds of audio to keep ready, within what the ring holds.
    pub fn look_ahead_s(&self, max_s: f32) -> f32 {
        let a = self.knobs.ahead();
        if a.is_finite() {
            a.clamp(0.01, max_s)
        } else {
            max_s
        }
    }

    /// Generator: the stereo width knob (its widener starts from it after a reset).
    pub fn width(&self) -> f32 {
        self.knobs.width()
    }

    /// Plugin: the tempo and beats per bar last set (tests read them back).
    pub fn time(&self) -> (f32, u32) {
        (self.tempo_bpm.load(Relaxed), self.beats_per_bar.load(Relaxed))
    }

    // Audio-thread status (written by the reader or the plugin's process, read by the editor).

    /// Reader: frames left in the ring after a block.
    pub fn set_buffered_frames(&self, frames: u32) {
        self.buffered_frames.store(frames, Relaxed);
    }
    pub fn buffered_frames(&self) -> u32 {
        self.buffered_frames.load(Relaxed)
    }
    /// Reader: the peak absolute sample of the block just played.
    pub fn set_output_peak(&self, peak: f32) {
        self.output_peak.store(peak, Relaxed);
    }
    pub fn output_peak(&self) -> f32 {
        self.output_peak.load(Relaxed)
    }
    /// Reader: the ring ran dry in real time.
    pub fn count_underrun(&self) {
        self.underruns.fetch_add(1, Relaxed);
    }
    pub fn underruns(&self) -> u64 {
        self.underruns.load(Relaxed)
    }
    /// Reader: an offline block waited `OFFLINE_WAIT_LIMIT` for the generator and gave up.
    pub fn count_offline_timeout(&self) {
        self.offline_timeouts.fetch_add(1, Relaxed);
    }
    pub fn offline_timeouts(&self) -> u64 {
        self.offline_timeouts.load(Relaxed)
    }

    // The reset handshake and the offline demand.

    /// Generator: audio of reset `epoch` starts at ring frame `start_frame`. Release: a reader
    /// that sees the epoch sees its start.
    pub fn publish_epoch(&self, epoch: u64, start_frame: u64) {
        self.epoch_start_frame.store(start_frame, Relaxed);
        self.produced_epoch.store(epoch, Release);
    }
    /// Reader: where `epoch`'s audio starts, once the generator has begun it.
    pub fn epoch_start(&self, epoch: u64) -> Option<u64> {
        (self.produced_epoch.load(Acquire) == epoch).then(|| self.epoch_start_frame.load(Relaxed))
    }
    /// Generator: the epoch it plays now.
    pub fn produced_epoch(&self) -> u64 {
        self.produced_epoch.load(Relaxed)
    }
    /// Reader (offline): the ring position it waits for. Release: the knobs it published before
    /// are what the generator renders this demand with.
    pub fn demand(&self, frames: u64) {
        self.demand_frames.store(frames, Release);
    }
    /// Generator (offline): the ring position to render up to.
    pub fn demanded_frames(&self) -> u64 {
        self.demand_frames.load(Acquire)
    }

    /// Reader: every host event of reset epoch `epoch` before host frame `frame` of it is in the
    /// input ring. One atomic (the epoch's low 16 bits above 48 bits of frames, 186 years at
    /// 48 kHz), so the two are never read torn; Release: the events pushed before are visible to
    /// the generator that reads this.
    pub fn set_input_horizon(&self, epoch: u64, frame: u64) {
        self.input_horizon.store((epoch & 0xFFFF) << 48 | frame.min((1 << 48) - 1), Release);
    }
    /// Generator: how far the player's events of `epoch` are known (none, for another epoch).
    pub fn input_horizon(&self, epoch: u64) -> Option<u64> {
        let h = self.input_horizon.load(Acquire);
        (h >> 48 == epoch & 0xFFFF).then_some(h & ((1 << 48) - 1))
    }
    /// Generator: the latency of playing the player's notes, host frames (reported to the host).
    pub fn set_input_latency(&self, frames: u32) {
        self.input_latency.store(frames, Relaxed);
    }
    pub fn input_latency(&self) -> u32 {
        self.input_latency.load(Relaxed)
    }
    /// Reader: a player's event was dropped (the input ring was full).
    pub fn count_input_dropped(&self) {
        self.input_dropped.fetch_add(1, Relaxed);
    }
    pub fn input_dropped(&self) -> u64 {
        self.input_dropped.load(Relaxed)
    }

    // Generator status.

    /// Generator: it made `frames` more host-rate frames at `load_permille` of real time.
    pub fn count_generated(&self, frames: u64, load_permille: Option<u32>) {
        self.generated_frames.fetch_add(frames, Relaxed);
        if let Some(l) = load_permille {
            self.load_permille.store(l, Relaxed);
        }
    }
    pub fn generated_frames(&self) -> u64 {
        self.generated_frames.load(Relaxed)
    }
    /// Compute time per second of audio, in per mille (the editor shows 1000 / this).
    pub fn load_permille(&self) -> u32 {
        self.load_permille.load(Relaxed)
    }
    /// Generator: its thread started or stopped.
    pub fn set_running(&self, running: bool) {
        self.running.store(running, Relaxed);
    }
    pub fn running(&self) -> bool {
        self.running.load(Relaxed)
    }

    // Words for the editor (main, generator and editor threads; never the audio thread).

    /// Record why the generator is silent.
    pub fn set_error(&self, message: impl Into<String>) {
        if let Ok(mut e) = self.error.lock() {
            *e = Some(message.into());
        }
    }
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
    /// Main thread, on activation: the model that plays.
    pub fn set_model_name(&self, name: &str) {
        if let Ok(mut n) = self.model_name.lock() {
            *n = Some(name.to_string());
        }
    }
    pub fn model_name(&self) -> Option<String> {
        self.model_name.lock().ok().and_then(|n| n.clone())
    }
    /// Capture requests and results.
    pub fn capture(&self) -> &Arc<super::capture::CaptureShared> {
        &self.capture
    }

    // The piano roll.

    /// Main thread (a new engine, before its reader runs): the roll's events from now on, timed
    /// in samples at `rate` from 0.
    pub(super) fn set_shown_feed(&self, events: HeapCons<ShownEvent>, rate: u32) {
        if let Ok(mut feed) = self.shown_feed.lock() {
            self.shown_clock.store(0, Relaxed);
            feed.events = Some(events);
            feed.rate = rate;
            feed.engine += 1;
        }
    }
    /// Reader: the output samples played by the end of this block (an atomic store).
    pub fn set_shown_clock(&self, samples: u64) {
        self.shown_clock.store(samples, Relaxed);
    }
    /// Editor: the roll's "now", in the drained events' samples (read after draining).
    pub fn shown_clock(&self) -> u64 {
        self.shown_clock.load(Relaxed)
    }
    /// Editor: move the events waiting into `out`; `None` while no engine has run.
    pub fn drain_shown(&self, out: &mut Vec<ShownEvent>) -> Option<ShownSource> {
        let mut feed = self.shown_feed.lock().ok()?;
        let (engine, rate) = (feed.engine, feed.rate);
        out.extend(feed.events.as_mut()?.pop_iter());
        Some(ShownSource { engine, rate })
    }
}
