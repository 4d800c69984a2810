//! The audio-thread side: pop frames, apply smoothed gain and every fade (reset, underrun,
//! recovery, and the gate that opens and closes with the transport or held notes), count
//! underruns, and hand out the note events of the frames it outputs (MIDI out), ending the
//! notes it started when their audio is cut off; tell the editor's piano roll what is heard
//! (`shown`). Nothing here allocates, locks, or (in real-time mode) waits.

use super::score_stage::LiveEvent;
use super::shown::{Shown, ShownEvent, ShownTap};
use super::{Command, EngineShared, InputNote, PlayedNote, RingNote};
use crossbeam_channel::Sender;
use ringbuf::traits::{Consumer, Observer, Producer};
use ringbuf::{HeapCons, HeapProd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the host runs us: real time (never wait) or offline bounce (wait for the generator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessMode {
    Realtime,
    Offline,
}

/// Length of fades after a reset, on underrun and on recovery.
pub const FADE_SECONDS: f32 = 0.005;
/// Length of the gate's fade when the transport stops or starts, or the last held note is
/// released: longer than the reset fade, as it ends a phrase rather than covering a seam.
pub const GATE_FADE_SECONDS: f32 = 0.01;
/// Time constant of the output gain smoother.
const GAIN_SMOOTHING_SECONDS: f32 = 0.01;
/// Longest an offline block waits for the generator before giving up (and counting it).
pub const OFFLINE_WAIT_LIMIT: Duration = Duration::from_secs(30);
/// How long an offline block yields (rather than sleeps) while it waits for the generator: a
/// render step is 1-3 ms of compute, and a 100 us sleep overshoots by a timer slice each time.
const OFFLINE_SPIN: Duration = Duration::from_millis(5);
/// Frames popped per inner step (a stack buffer; no allocation).
const CHUNK: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Playing,
    /// Fading the old audio out before a reset takes effect.
    ResetFadeOut,
    /// Waiting for the generator's first frame of the requested epoch (silence meanwhile).
    WaitEpoch,
    /// Ran dry; silent until enough audio is buffered again.
    Underrun,
}

pub struct AudioReader {
    consumer: HeapCons<f32>,
    /// The note events of the audio, timed in the frames `popped` counts.
    notes: HeapCons<RingNote>,
    /// The player's note events, on their way to the generator (Source: play my notes).
    input: HeapProd<InputNote>,
    /// Notes handed out and not yet ended, a bit per key and channel: ended at once when their
    /// audio is cut (a reset, the gate closing), so no note hangs in a DAW.
    sounding: [u128; 16],
    /// A reset cut the audio: end every sounding note at the next block's start.
    end_sounding: bool,
    /// The piano roll's feed: the notes heard, the player's, the bar lines of the take.
    shown: ShownTap,
    commands: Sender<Command>,
    shared: Arc<EngineShared>,
    phase: Phase,
    /// Reset epoch this reader is waiting for / playing.
    epoch: u64,
    /// A reset the channel was too full to take; retried on the next block.
    unsent_reset: Option<(u64, u64)>,
    /// Stereo frames popped since start (matches the generator's pushed count).
    popped: u64,
    /// Host frames processed since the last reset was asked for: the clock of the player's events.
    input_frames: u64,
    /// Offline: the last demand published to the generator (see `EngineShared::demand_frames`).
    demanded: u64,
    level: f32,
    fade_step: f32,
    gain: f32,
    gain_coef: f32,
    resume_frames: usize,
    /// The gate's level (0..1) and per-sample step (`GATE_FADE_SECONDS`).
    gate: f32,
    gate_step: f32,
}

impl AudioReader {
    pub(super) fn new(
        consumer: HeapCons<f32>,
        notes: HeapCons<RingNote>,
        input: HeapProd<InputNote>,
        shown: HeapProd<ShownEvent>,
        commands: Sender<Command>,
        shared: Arc<EngineShared>,
        host_rate: u32,
    ) -> Self {
        let fade_len = (FADE_SECONDS * host_rate as f32).max(1.0);
        let capacity = consumer.capacity().get() / 2;
        // A new engine's ring starts at frame 0: no player's event is known yet.
        shared.set_input_horizon(0, 0);
        Self {
            consumer,
            notes,
            input,
            sounding: [0; 16],
            end_sounding: false,
            shown: ShownTap::new(shown, host_rate, shared.time()),
            commands,
            gain: shared.output_gain(),
            shared,
            phase: Phase::WaitEpoch,
            epoch: 0,
            unsent_reset: None,
            popped: 0,
            input_frames: 0,
            demanded: 0,
            level: 0.0,
            fade_step: 1.0 / fade_len,
            gain_coef: 1.0 - (-1.0 / (GAIN_SMOOTHING_SECONDS * host_rate as f32)).exp(),
            // After an underrun, wait for 4 fades' worth of audio (or a quarter ring) before resuming.
            resume_frames: ((fade_len as usize) * 4).min(capacity / 4).max(1),
            // Open: the engine alone plays what it is given; the plugin closes the gate when it
            // starts an engine, so a new instance fades in with the transport.
            gate: 1.0,
            gate_step: 1.0 / (GATE_FADE_SECONDS * host_rate as f32).max(1.0),
        }
    }

    /// Restart generation from `position` (host samples) with `seed`: fades out, then waits for
    /// the generator's new audio and fades it in. Safe on the audio thread (try_send only).
    pub fn request_reset(&mut self, seed: u64, position: u64) {
        self.epoch += 1;
        self.input_frames = 0;
        self.end_sounding = true;
        self.shown.take_at(position, self.shared.time().0);
        self.unsent_reset = Some((seed, position));
        self.send_reset();
        self.phase = if self.level > 0.0 { Phase::ResetFadeOut } else { Phase::WaitEpoch };
    }

    /// Send the pending reset; one the channel is too full to take waits for the next block.
    fn send_reset(&mut self) {
        if let Some((seed, position)) = self.unsent_reset {
            if self.commands.try_send(Command::Reset { epoch: self.epoch, seed, position }).is_ok() {
                self.unsent_reset = None;
            }
        }
    }

    /// Close the gate at once (the host reset the plugin: the next block starts silent).
    pub fn close_gate(&mut self) {
        self.gate = 0.0;
    }

    /// Fill `left` and `right` (equal lengths; the shorter one bounds the block). With the gate
    /// closed and faded out, the ring is left as it is (nothing is consumed) and the block is
    /// silent; opening and closing fade over `GATE_FADE_SECONDS`. Publishes the block's peak.
    pub fn process(&mut self, left: &mut [f32], right: &mut [f32], mode: ProcessMode, gate_open: bool) {
        self.process_with_notes(left, right, mode, gate_open, &mut |_, _| {});
    }

    /// `process`, handing `emit` the note events of the frames output in this block with their
    /// sample offset in it (`PlayedNote::at` is then the ring frame), in time order.
    pub fn process_with_notes(&mut self, left: &mut [f32], right: &mut [f32], mode: ProcessMode, gate_open: bool, emit: &mut dyn FnMut(u32, PlayedNote)) {
        let n = left.len().min(right.len());
        // The generator renders the tempo and meter set for this block from the end of what is
        // buffered on.
        self.shown.begin_block(n, self.popped + (self.consumer.occupied_len() / 2) as u64, self.shared.time());
        self.shared.set_shown_clock(self.shown.clock());
        // Every host event of this block has been pushed (`push_input`): the generator may play
        // up to its end.
        self.input_frames += n as u64;
        self.shared.set_input_horizon(self.epoch, self.input_frames);
        let (left, right) = (&mut left[..n], &mut right[..n]);
        if self.end_sounding {
            self.end_sounding = false;
            self.end_all(emit);
        }
        if !gate_open && self.gate <= 0.0 {
            // The gate has closed: what was sounding is over.
            self.end_all(emit);
            silence(left, right);
            self.shared.set_output_peak(0.0);
            return;
        }
        self.play(left, right, mode, emit);
        let target = if gate_open { 1.0 } else { 0.0 };
        if self.gate != target || target < 1.0 {
            for (l, r) in left.iter_mut().zip(right.iter_mut()) {
                self.gate = if target > self.gate { (self.gate + self.gate_step).min(1.0) } else { (self.gate - self.gate_step).max(0.0) };
                *l *= self.gate;
                *r *= self.gate;
            }
        }
        let peak = left.iter().chain(right.iter()).fold(0.0f32, |m, v| m.max(v.abs()));
        self.shared.set_output_peak(peak);
    }

    /// The player's note event `timing` frames into the block about to be processed: on its
    /// way to the generator, timed in host frames since the last reset. A full ring drops it
    /// (and counts it): the audio thread never waits.
    pub fn push_input(&mut self, timing: u32, event: LiveEvent) {
        if self.input.try_push(InputNote { epoch: self.epoch, at: self.input_frames + timing as u64, event }).is_err() {
            self.shared.count_input_dropped();
        }
    }

    /// The player's note event `timing` frames into the block about to be processed, for the
    /// piano roll (whatever the Source knob: the roll shows what you play either way).
    pub fn show_input(&mut self, timing: u32, event: LiveEvent) {
        let what = match event {
            LiveEvent::On { key, velocity } => Shown::Note { key: key & 127, velocity: velocity.max(1), channel: 0, player: true },
            LiveEvent::Off { key } => Shown::Note { key: key & 127, velocity: 0, channel: 0, player: true },
            LiveEvent::Pedal(down) => Shown::Pedal { down },
            LiveEvent::AllOff => Shown::PlayerAllOff,
        };
        self.shown.player(timing, what);
    }

    /// Pop the block from the ring with gain and the reset/underrun fades.
    fn play(&mut self, left: &mut [f32], right: &mut [f32], mode: ProcessMode, emit: &mut dyn FnMut(u32, PlayedNote)) {
        let n = left.len();
        self.send_reset();
        let target_gain = self.shared.output_gain();
        let mut deadline = None;
        let mut buf = [0f32; 2 * CHUNK];
        let mut i = 0;
        while i < n {
            let avail = self.consumer.occupied_len() / 2;
            match self.phase {
                Phase::WaitEpoch => {
                    if let Some(start) = self.shared.epoch_start(self.epoch) {
                        // Drop the audio generated before the reset.
                        let stale = (start.saturating_sub(self.popped) as usize).min(avail).min(CHUNK);
                        if stale > 0 {
                            self.popped += self.consumer.pop_slice(&mut buf[..2 * stale]) as u64 / 2;
                            continue;
                        }
                        // The take starts with its first audio: waiting for it is not an
                        // underrun (a cold generator's first render can take longer than a block).
                        if self.popped >= start && avail > 0 {
                            self.phase = Phase::Playing;
                            self.level = 0.0;
                            self.shown.take_begins(self.popped, i);
                            continue;
                        }
                    }
                    if !self.wait(mode, &mut deadline, n - i) {
                        silence(&mut left[i..n], &mut right[i..n]);
                        break;
                    }
                }
                Phase::Underrun => {
                    if avail >= self.resume_frames || (mode == ProcessMode::Offline && avail > 0) {
                        self.phase = Phase::Playing;
                        continue;
                    }
                    if !self.wait(mode, &mut deadline, n - i) {
                        silence(&mut left[i..n], &mut right[i..n]);
                        break;
                    }
                }
                Phase::Playing | Phase::ResetFadeOut => {
                    if avail == 0 {
                        if self.phase == Phase::ResetFadeOut {
                            self.phase = Phase::WaitEpoch;
                            self.level = 0.0;
                            continue;
                        }
                        if mode == ProcessMode::Offline {
                            if !self.wait(mode, &mut deadline, n - i) {
                                silence(&mut left[i..n], &mut right[i..n]);
                                break;
                            }
                            continue;
                        }
                        self.shared.count_underrun();
                        self.phase = Phase::Underrun;
                        self.level = 0.0;
                        continue;
                    }
                    let k = CHUNK.min(n - i).min(avail);
                    // The last fade's worth of buffered audio is a reserve: dipping into it means
                    // the generator is behind, so fade out over what is left instead of clicking.
                    let fading_out = self.phase == Phase::ResetFadeOut
                        || (mode == ProcessMode::Realtime && (avail as f32) * self.fade_step <= 1.0);
                    let step = if fading_out {
                        if self.phase == Phase::ResetFadeOut { -self.fade_step } else { -self.level / avail as f32 }
                    } else {
                        self.fade_step
                    };
                    let got = self.consumer.pop_slice(&mut buf[..2 * k]) / 2;
                    self.hand_out_notes(self.popped + got as u64, i, emit);
                    self.shown.heard(self.popped, got, i);
                    self.popped += got as u64;
                    for j in 0..got {
                        self.gain += (target_gain - self.gain) * self.gain_coef;
                        self.level = (self.level + step).clamp(0.0, 1.0);
                        let g = self.gain * self.level;
                        left[i + j] = buf[2 * j] * g;
                        right[i + j] = buf[2 * j + 1] * g;
                    }
                    i += got;
                    if self.phase == Phase::ResetFadeOut && self.level <= 0.0 {
                        self.phase = Phase::WaitEpoch;
                    }
                }
            }
        }
        self.shared.set_buffered_frames((self.consumer.occupied_len() / 2) as u32);
    }

    /// Hand out the notes of this epoch before ring frame `until`, the frame `popped` playing at
    /// block offset `offset`; notes of an epoch left behind are dropped.
    fn hand_out_notes(&mut self, until: u64, offset: usize, emit: &mut dyn FnMut(u32, PlayedNote)) {
        while let Some(&RingNote { epoch, note }) = self.notes.try_peek() {
            if epoch == self.epoch && note.at >= until {
                break;
            }
            self.notes.try_pop();
            if epoch != self.epoch {
                continue;
            }
            let (channel, key) = (note.channel as usize & 15, note.key & 127);
            let bit = 1u128 << key;
            if note.velocity > 0 {
                self.sounding[channel] |= bit;
            } else if self.sounding[channel] & bit == 0 {
                continue; // its start was cut off: nothing to end
            } else {
                self.sounding[channel] &= !bit;
            }
            let at = offset as u64 + note.at.saturating_sub(self.popped);
            self.shown.note(at, key, note.velocity, channel as u8);
            emit(at as u32, PlayedNote { channel: channel as u8, key, ..note });
        }
    }

    /// End every note handed out and still sounding, at the block's start.
    fn end_all(&mut self, emit: &mut dyn FnMut(u32, PlayedNote)) {
        for channel in 0..16 {
            while self.sounding[channel] != 0 {
                let key = self.sounding[channel].trailing_zeros() as u8;
                self.sounding[channel] &= !(1u128 << key);
                self.shown.note(0, key, 0, channel as u8);
                emit(0, PlayedNote { at: self.popped, channel: channel as u8, key, velocity: 0 });
            }
        }
    }

    /// Offline: ask the generator for the `needed` frames still missing from this block, wait
    /// briefly, and report whether to keep waiting. Real time: never wait.
    fn wait(&mut self, mode: ProcessMode, deadline: &mut Option<Instant>, needed: usize) -> bool {
        if mode == ProcessMode::Realtime {
            return false;
        }
        // Count from what has been popped, not from what is queued: the queue's fill depends on
        // thread timing, and a demand that did would make the generator read the knobs for
        // later blocks early, so two bounces of the same automation would differ.
        // Frames before this epoch's start are stale: the reader drops them, so count them in.
        let mut base = self.popped;
        if let Some(start) = self.shared.epoch_start(self.epoch) {
            base = base.max(start);
        }
        let demand = base + needed as u64;
        if demand > self.demanded {
            self.demanded = demand;
            self.shared.demand(demand);
            let _ = self.commands.try_send(Command::Wake);
        }
        let now = Instant::now();
        let limit = *deadline.get_or_insert(now + OFFLINE_WAIT_LIMIT);
        if now >= limit {
            self.shared.count_offline_timeout();
            return false;
        }
        // Yield first, so the block goes on as soon as its audio is ready; sleep after that.
        if limit - now > OFFLINE_WAIT_LIMIT - OFFLINE_SPIN {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
        true
    }
}

fn silence(left: &mut [f32], right: &mut [f32]) {
    left.fill(0.0);
    right.fill(0.0);
}
