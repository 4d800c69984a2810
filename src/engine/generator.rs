//! The generator thread: owns the frame source (the model), resamples to the host rate,
//! and keeps the ring buffer filled `ahead_s` seconds ahead of the audio thread.

use super::source::{InputNote, PlayedNote};
use super::stereo::StereoWidener;
use super::{EngineShared, FrameSource, ProcessMode, RingNote};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ringbuf::traits::{Consumer, Observer, Producer};
use ringbuf::{HeapCons, HeapProd};
use rubato::{FftFixedIn, Resampler};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Messages to the generator. Sent with `try_send` from the audio thread (bounded channel,
/// no allocation); `Shutdown` from the main thread when the engine stops.
pub enum Command {
    /// Restart generation for reset epoch `epoch` from `position` host samples with `seed`.
    Reset { epoch: u64, seed: u64, position: u64 },
    /// Offline: the reader raised `EngineShared::demand_frames`; wake up and render.
    Wake,
    Shutdown,
}

#[derive(Debug, Clone, Copy)]
pub struct GeneratorConfig {
    pub host_rate: u32,
    /// Ring capacity in seconds (the largest responsiveness setting).
    pub max_ahead_s: f64,
    pub seed: u64,
    /// Real time: keep `ahead_s` seconds buffered. Offline: render only what the reader demands.
    pub mode: ProcessMode,
}

/// Handle to the thread; dropping it stops and joins the thread (never on the audio thread).
pub struct Generator {
    handle: Option<JoinHandle<()>>,
    commands: Sender<Command>,
}

impl Generator {
    pub(super) fn spawn(
        source: Box<dyn FrameSource>,
        producer: HeapProd<f32>,
        notes: HeapProd<RingNote>,
        input: HeapCons<InputNote>,
        rx: Receiver<Command>,
        tx: Sender<Command>,
        shared: Arc<EngineShared>,
        config: GeneratorConfig,
    ) -> std::io::Result<Self> {
        let handle = std::thread::Builder::new()
            .name("cantor-generator".into())
            .spawn(move || Worker::new(source, producer, notes, input, rx, shared, config).run())?;
        Ok(Self { handle: Some(handle), commands: tx })
    }

    /// Stop the thread and wait for it.
    pub fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self.commands.send(Command::Shutdown);
            let _ = h.join();
        }
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Input samples per resampler chunk.
const RESAMPLER_CHUNK: usize = 320;

/// Streaming mono resampler from the source rate to the host rate (pass-through when equal).
struct StreamResampler {
    inner: Option<FftFixedIn<f32>>,
    input: Vec<f32>,
    output: Vec<Vec<f32>>,
}

impl StreamResampler {
    fn new(from: u32, to: u32) -> Result<Self, String> {
        let inner = if from == to {
            None
        } else {
            // Chunks of 320 input samples: one codec frame at 24 kHz, so a render of whole
            // frames leaves nothing waiting in the resampler (a 512-sample chunk held up to
            // 21 ms of audio back, which the knob latency paid).
            Some(FftFixedIn::<f32>::new(from as usize, to as usize, RESAMPLER_CHUNK, 1, 1).map_err(|e| format!("resampler: {e}"))?)
        };
        let output = vec![vec![0f32; inner.as_ref().map_or(0, |r| r.output_frames_max())]];
        Ok(Self { inner, input: Vec::new(), output })
    }

    fn reset(&mut self) {
        if let Some(r) = &mut self.inner {
            r.reset();
        }
        self.input.clear();
    }

    /// Output samples by which the resampler delays its input (0 when passing through).
    fn delay(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| r.output_delay())
    }

    /// Resample `x`, appending whatever is complete to `out`.
    fn process(&mut self, x: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        let Some(r) = &mut self.inner else {
            out.extend_from_slice(x);
            return Ok(());
        };
        self.input.extend_from_slice(x);
        let mut used = 0;
        loop {
            let need = r.input_frames_next();
            if self.input.len() - used < need {
                break;
            }
            let (_, n) = r
                .process_into_buffer(&[&self.input[used..used + need]], &mut self.output, None)
                .map_err(|e| format!("resampling: {e}"))?;
            out.extend_from_slice(&self.output[0][..n]);
            used += need;
        }
        self.input.drain(..used);
        Ok(())
    }
}

struct Worker {
    source: Box<dyn FrameSource>,
    producer: HeapProd<f32>,
    /// The note events of the audio, timed in ring frames, for MIDI out.
    notes: HeapProd<RingNote>,
    /// Note events made but not yet in their ring (it was full).
    pending_notes: std::collections::VecDeque<RingNote>,
    source_notes: Vec<PlayedNote>,
    /// The player's note events from the audio thread (ring frames), and the same handed to the
    /// source (its samples since the reset).
    input: HeapCons<InputNote>,
    source_input: Vec<InputNote>,
    /// Events of a reset the generator has not received yet (the command follows the ring).
    early_input: std::collections::VecDeque<InputNote>,
    /// Host frames between a player's event arriving and its sound: the look-ahead plus how far
    /// ahead of its audio the source reads the notes, plus the resampler's delay. Fixed at each
    /// reset from the Look-ahead knob, so a bounce and real-time playback place notes alike.
    input_latency: u64,
    /// The current reset epoch, the ring frame where its audio starts, and the source samples
    /// rendered since: what places a source's note events on the ring's frames.
    epoch: u64,
    epoch_start: u64,
    epoch_source_samples: u64,
    rx: Receiver<Command>,
    shared: Arc<EngineShared>,
    config: GeneratorConfig,
    resampler: StreamResampler,
    widener: StereoWidener,
    /// Interleaved stereo frames generated but not yet in the ring.
    pending: Vec<f32>,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    /// Stereo frames pushed into the ring since the engine started.
    pushed_frames: u64,
    failed: bool,
}

impl Worker {
    fn new(
        source: Box<dyn FrameSource>,
        producer: HeapProd<f32>,
        notes: HeapProd<RingNote>,
        input: HeapCons<InputNote>,
        rx: Receiver<Command>,
        shared: Arc<EngineShared>,
        config: GeneratorConfig,
    ) -> Self {
        let (resampler, failed) = match StreamResampler::new(source.sample_rate(), config.host_rate) {
            Ok(r) => (r, false),
            Err(e) => {
                shared.set_error(e);
                (StreamResampler { inner: None, input: Vec::new(), output: Vec::new() }, true)
            }
        };
        Self {
            source,
            producer,
            notes,
            pending_notes: std::collections::VecDeque::new(),
            source_notes: Vec::new(),
            input,
            source_input: Vec::new(),
            early_input: std::collections::VecDeque::new(),
            input_latency: 0,
            epoch: 0,
            epoch_start: 0,
            epoch_source_samples: 0,
            rx,
            shared,
            config,
            resampler,
            widener: StereoWidener::new(config.host_rate),
            pending: Vec::new(),
            mono: Vec::new(),
            resampled: Vec::new(),
            pushed_frames: 0,
            failed,
        }
    }

    fn run(mut self) {
        self.shared.set_running(true);
        self.reset(0, self.config.seed, 0);
        loop {
            // Hand over what the last render made before deciding to wait: otherwise an offline
            // reader waiting for exactly that audio would wait out the idle timeout every call.
            self.push_pending();
            // Commands first; when there is nothing to do, wait on the channel so a command wakes us.
            let idle = self.failed || !self.needs_audio();
            let cmd = if idle {
                match self.rx.recv_timeout(Duration::from_millis(2)) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                self.rx.try_recv().ok()
            };
            match cmd {
                Some(Command::Shutdown) => break,
                Some(Command::Reset { epoch, seed, position }) => self.reset(epoch, seed, position),
                Some(Command::Wake) => {}
                None => {}
            }
            self.push_pending();
            if !self.failed && self.needs_audio() && self.pending.is_empty() {
                self.generate();
            }
        }
        self.shared.set_running(false);
    }

    /// Discard queued audio, restart the source, and publish where the new epoch starts.
    fn reset(&mut self, epoch: u64, seed: u64, position: u64) {
        self.pending.clear();
        // Notes of the old epoch still waiting are dropped; the reader ends those it started.
        self.pending_notes.clear();
        self.epoch = epoch;
        self.epoch_start = self.pushed_frames;
        self.epoch_source_samples = 0;
        self.resampler.reset();
        self.widener.reset(self.shared.width());
        let src_pos = (position as f64 * self.source.sample_rate() as f64 / self.config.host_rate as f64).round() as u64;
        self.source.reset(seed, src_pos);
        let lead = (self.source.input_lead() as f64 * self.host_per_source()).ceil() as u64;
        self.input_latency = self.ahead_frames().ceil() as u64 + lead + self.resampler.delay() as u64;
        self.shared.set_input_latency(self.input_latency.min(u32::MAX as u64) as u32);
        let delay = (self.input_latency - self.resampler.delay() as u64) as f64 / self.host_per_source();
        self.source.set_input_delay(delay.round() as u64);
        self.shared.publish_epoch(epoch, self.pushed_frames);
    }

    /// Host frames per source sample.
    fn host_per_source(&self) -> f64 {
        self.config.host_rate as f64 / self.source.sample_rate() as f64
    }

    /// The Look-ahead knob in host frames: what real time keeps buffered.
    fn ahead_frames(&self) -> f64 {
        self.shared.look_ahead_s(self.config.max_ahead_s as f32) as f64 * self.config.host_rate as f64
    }

    /// A host frame of this epoch as the source's samples since its reset: where a player's
    /// event arriving at host frame `frame` is played, `input_latency` later.
    fn input_position(&self, frame: u64) -> u64 {
        ((frame + self.input_latency).saturating_sub(self.resampler.delay() as u64) as f64 / self.host_per_source()) as u64
    }

    /// Whether the player's events are known as far as the next render reads them (always,
    /// when the source is not playing them).
    fn input_ready(&self) -> bool {
        let knobs = self.shared.knobs();
        !self.source.plays_input(&knobs) || self.shared.input_horizon(self.epoch).is_some_and(|h| self.input_position(h) >= self.source.input_needed())
    }

    /// Hand the player's events of this epoch that have arrived to the source; those of earlier
    /// epochs are dropped, and so are all when it is not playing them (a note played while
    /// composing is not saved for later).
    fn hand_over_input(&mut self, playing: bool) {
        self.source_input.clear();
        while let Some(e) = self.input.try_pop() {
            self.early_input.push_back(e);
        }
        while let Some(&e) = self.early_input.front().filter(|e| e.epoch <= self.epoch) {
            self.early_input.pop_front();
            if playing && e.epoch == self.epoch {
                let at = self.input_position(e.at);
                self.source_input.push(InputNote { at, ..e });
            }
        }
        if !self.source_input.is_empty() {
            self.source.play_input(&self.source_input);
        }
    }

    fn needs_audio(&self) -> bool {
        let wanted = if self.config.mode == ProcessMode::Offline {
            // Acquire: the knobs the reader stored before raising the demand are visible.
            let queued = self.pushed_frames + (self.pending.len() / 2) as u64;
            queued < self.shared.demanded_frames()
        } else {
            (self.producer.occupied_len() + self.pending.len()) / 2 < self.ahead_frames() as usize
        };
        wanted && self.input_ready()
    }

    fn push_pending(&mut self) {
        // Notes first: a note must be in its ring before the audio it belongs to can be played.
        while let Some(&n) = self.pending_notes.front() {
            if self.notes.try_push(n).is_err() {
                break;
            }
            self.pending_notes.pop_front();
        }
        if self.pending.is_empty() {
            return;
        }
        // Whole frames only, so the interleaving never slips.
        let room = self.producer.vacant_len() / 2 * 2;
        let n = self.producer.push_slice(&self.pending[..room.min(self.pending.len())]);
        self.pushed_frames += n as u64 / 2;
        self.pending.drain(..n);
    }

    fn generate(&mut self) {
        let knobs = self.shared.knobs();
        self.hand_over_input(self.source.plays_input(&knobs));
        self.mono.clear();
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.source.render(&knobs, &mut self.mono)));
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(format!("the generator ({}) crashed", self.source.name())),
        };
        if let Err(e) = result {
            self.shared.set_error(e);
            self.failed = true;
            return;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let audio_s = self.mono.len() as f64 / self.source.sample_rate() as f64;
        let load = (audio_s > 0.0).then(|| (1000.0 * elapsed / audio_s) as u32);
        self.resampled.clear();
        if let Err(e) = self.resampler.process(&self.mono, &mut self.resampled) {
            self.shared.set_error(e);
            self.failed = true;
            return;
        }
        self.widener.process(&self.resampled, knobs.knobs.width, &mut self.pending);
        self.shared.count_generated(self.resampled.len() as u64, load);
        self.place_notes();
    }

    /// Put the notes of the audio just rendered on the ring's frames: the source times them in
    /// its own samples; the resampler stretches them to the host rate and delays them by its
    /// latency.
    fn place_notes(&mut self) {
        self.source_notes.clear();
        self.source.take_notes(&mut self.source_notes);
        let ratio = self.host_per_source();
        let delay = self.resampler.delay() as u64;
        for n in &self.source_notes {
            let at = self.epoch_start + ((self.epoch_source_samples + n.at) as f64 * ratio).round() as u64 + delay;
            self.pending_notes.push_back(RingNote { epoch: self.epoch, note: PlayedNote { at, ..*n } });
        }
        self.epoch_source_samples += self.mono.len() as u64;
    }
}
