//! The neural generator behind the engine's `FrameSource` seam. With a score prior (the shipped
//! models) it runs the hierarchy: the score stage writes the tune in beats and places each
//! frame's notes on the host's grid, the performer (the codes prior conditioned on those notes)
//! writes code frames, the codec's streaming decoder turns them into 24 kHz audio, and the notes
//! come out with the audio they belong to. Without one, a knobs-only prior writes the codes.
//! Runs on the generator thread only (it allocates, and takes a few milliseconds per call).

use super::score_stage::{answer_bar_line, GivenNote, ScoreStage, StepNote, WRITE_AHEAD_BEATS};
use crate::model::prior::notes::ONSETS_AHEAD_FRAMES;
use crate::knobs::Source;
use super::silence_watch::SilenceWatch;
use super::source::{InputNote, PlayedNote};
use super::{FrameSource, KnobSnapshot};
use crate::model::codec::cpu_decoder::CpuDecoderState;
use crate::model::codec::DecoderState;
use crate::model::pair::ModelPair;
use crate::model::prior::conditioning::{GridPosition, Knobs};
use crate::model::prior::notes::NOTE_DIM;
use crate::model::prior::sampling::Sampling;
use crate::model::prior::stream::PriorStream;
use crate::model::vocab::Meter;
use candle_core::Tensor;
use std::collections::VecDeque;
use std::sync::Arc;

/// Code frames generated per `render` call: 2 frames = 26.7 ms of audio, small enough that a
/// knob change reaches the audio quickly (see the Look-ahead knob in `knobs.rs`). The hand-written
/// decoder takes a call's frames side by side, reading its weights once for both.
pub const FRAMES_PER_RENDER: usize = 2;
/// Code frames per `render` while the player's notes play: one, so the generator reads their
/// notes one 13.3 ms frame ahead of its audio instead of two (the latency of a played note
/// is the look-ahead plus the frames read ahead); the decoder then reads its weights once per
/// frame, a little slower.
pub const INPUT_FRAMES_PER_RENDER: usize = 1;

/// Playing the player's notes, the audio fades out this many frames (0.4 s) after the last note
/// ends, and back in with the next: silent between phrases, as an instrument is, while the
/// performer's texture without notes would play on.
const RELEASE_FRAMES: u64 = 30;

pub struct NeuralSource {
    model: Arc<ModelPair>,
    stream: PriorStream,
    /// The tensor decoder's state (GPU builds), or the hand-written CPU decoder's (the default).
    decoder: DecoderState,
    cpu_decoder: Option<CpuDecoderState>,
    /// Musical position of the next step, in beats (advanced by the tempo knob each frame).
    beats: f64,
    /// Position (source samples) of the last reset; turned into beats at the first render,
    /// when the tempo is known.
    reset_position: Option<u64>,
    /// Codes of the frames completed in this call (kept to reuse its allocation).
    codes: Vec<u32>,
    /// Whether the prior is told where it is in the 8-bar phrase (off only to measure what
    /// that conditioning does: `cargo xtask eval prior`).
    phrase: bool,
    /// The seed of the current piece (from `reset`), from which fresh starts derive theirs.
    piece_seed: u64,
    /// Fresh starts since the last reset: the prior fell silent and was restarted this often.
    fresh_starts: u64,
    /// Notices when the music has faded into silence and stays there.
    silence: SilenceWatch,
    /// The tune and its placement on the grid, when the prior is a performer.
    score: Option<ScoreStage>,
    /// One step's note state (`NOTE_DIM` values) and note events (reused).
    features: Vec<f32>,
    step_notes: Vec<StepNote>,
    /// Steps taken, frames decoded and samples output since the last reset: step k's notes are
    /// frame k's audio (the delay pattern completes a frame some steps after its first codes),
    /// which starts at sample k * hop of the output (the decoders' output is aligned with the
    /// codec's input: their first samples are held back, not shifted).
    steps: u64,
    frames_out: u64,
    samples_out: u64,
    /// Note events of steps whose frames are not decoded yet: (frame, event).
    waiting: VecDeque<(u64, StepNote)>,
    /// Note events of the last render's audio, for `take_notes`.
    played: Vec<PlayedNote>,
    /// The player's notes (Source: play my notes), timed in steps; the last step in which one
    /// sounded; whether each step not yet decoded is to be heard (from `heard_from` on); the
    /// level of that fade at the last sample output.
    live: ScoreStage,
    /// Whether the last step took the player's notes (a switch back to composing restarts the tune).
    was_live: bool,
    /// A prompt given up front (`continuing`): the Source is "continue", the player's notes are
    /// those in `live`, timed in beats, and nothing comes from the host.
    given_prompt: bool,
    /// How much later than the host's grid the audio is heard while the player's notes play
    /// (`FrameSource::set_input_delay`), in samples: Cantor's answers and the performer's beat
    /// grid are placed this much later, so both land on the grid after delay compensation.
    input_delay: u64,
    /// Source "continue": the player's notes since Cantor last answered, in beats (an open
    /// note's end is infinite), and the key Cantor answers in while it does.
    player_phrase: Vec<GivenNote>,
    answering: Option<(u8, u8)>,
    last_sounding: Option<u64>,
    heard: VecDeque<bool>,
    heard_from: u64,
    level: f32,
}

impl NeuralSource {
    pub fn new(model: Arc<ModelPair>) -> Result<Self, String> {
        let score = match (&model.score, model.prior.cfg.notes) {
            (Some(score), true) => Some(ScoreStage::new(score.clone())),
            (None, false) => None,
            (None, true) => return Err("The performer plays notes, and no score prior was loaded to write them.".into()),
            (Some(_), false) => return Err("A score prior was loaded with a prior that takes no notes: it needs a performer.".into()),
        };
        Self::with_stage(model, score)
    }

    /// A performer playing `notes` (a MIDI file, in host beats) instead of the score prior's tunes.
    pub fn playing(model: Arc<ModelPair>, notes: &[GivenNote]) -> Result<Self, String> {
        if !model.prior.cfg.notes {
            return Err("Only a performer (a prior trained with notes) can play given notes; this prior takes none.".into());
        }
        Self::with_stage(model, Some(ScoreStage::playing(notes)))
    }

    /// A performer playing `prompt` (a MIDI file, in host beats) as the player's notes, and the
    /// score prior continuing it from the first bar line after it ends (Source: continue).
    pub fn continuing(model: Arc<ModelPair>, prompt: &[GivenNote]) -> Result<Self, String> {
        let mut source = Self::new(model)?;
        if source.score.is_none() {
            return Err("Continuing a phrase needs a performer and a score prior; this prior takes no notes.".into());
        }
        source.live = ScoreStage::playing(prompt);
        source.given_prompt = true;
        Ok(source)
    }

    fn with_stage(model: Arc<ModelPair>, score: Option<ScoreStage>) -> Result<Self, String> {
        let stream = PriorStream::new(&model.prior, &model.device, 0).map_err(|e| e.to_string())?;
        let decoder = DecoderState::new(&model.codec.decoder);
        let cpu_decoder = model.codec.cpu_decoder.as_ref().map(|f| f.new_state());
        let silence = SilenceWatch::new(model.codec.cfg.sample_rate);
        Ok(Self {
            model,
            stream,
            decoder,
            cpu_decoder,
            beats: 0.0,
            reset_position: Some(0),
            codes: Vec::new(),
            phrase: true,
            piece_seed: 0,
            fresh_starts: 0,
            silence,
            score,
            features: vec![0.0; NOTE_DIM],
            step_notes: Vec::new(),
            steps: 0,
            frames_out: 0,
            samples_out: 0,
            waiting: VecDeque::new(),
            played: Vec::new(),
            live: ScoreStage::live(),
            was_live: false,
            given_prompt: false,
            input_delay: 0,
            player_phrase: Vec::new(),
            answering: None,
            last_sounding: None,
            heard: VecDeque::new(),
            heard_from: 0,
            level: 0.0,
        })
    }

    /// The largest delay of the performer's delay pattern, in steps: how many steps the first
    /// frame of a reset takes beyond the frames it renders.
    fn max_delay(&self) -> u64 {
        self.model.prior.cfg.delays.iter().copied().max().unwrap_or(0) as u64
    }


    /// Switch the phrase-position conditioning off (an ablation for evaluation).
    pub fn set_phrase_conditioning(&mut self, on: bool) {
        self.phrase = on;
    }

    fn knobs(snapshot: &KnobSnapshot) -> (Knobs, Sampling) {
        let k = &snapshot.knobs;
        let styles = k.styles.iter().any(|&w| w.is_finite() && w > 0.0).then_some(k.styles);
        let (instrument, key, mode) = (k.instrument.max(0) as u32, k.key.clamp(0, 11) as u32, k.mode.clamp(0, 1) as u32);
        let knobs = Knobs { styles, instrument: Some(instrument), key: Some((key, mode)), bpm: Some(snapshot.tempo_bpm) };
        let sampling = Sampling { temperature: k.temperature, top_k: k.top_k.max(0) as usize, top_p: k.top_p, guidance: k.guidance, repeat: k.repeat };
        (knobs, sampling)
    }

    /// The composed notes sounding end at this step (MIDI out must not leave them hanging), and
    /// Cantor stops answering.
    fn end_composed(&mut self) {
        self.answering = None;
        if let Some(score) = &mut self.score {
            self.step_notes.clear();
            score.cut(&mut self.step_notes);
            self.waiting.extend(self.step_notes.iter().map(|e| (self.steps, *e)));
        }
    }

    /// Source "continue", after the player's stage painted this step (its events in
    /// `step_notes`): note the player's notes in beats; a note struck while Cantor answers takes
    /// the lead back (Cantor's notes end); when the player has rested `ANSWER_REST_BEATS` before
    /// the next bar line, Cantor answers from it, in the key of the phrase; while it answers,
    /// this step's notes are its own (painted over the player's, sent as MIDI).
    /// `step` is the step's start and end on the host's grid, in beats.
    fn answer(&mut self, k: &KnobSnapshot, knobs: &Knobs, meter: Meter, step: (f64, f64), player_sounding: bool) -> Result<(), String> {
        let (beat, next) = step;
        let per_frame = next - beat;
        let mut struck = false;
        for e in &self.step_notes {
            let at = beat + e.offset as f64 / 65536.0 * per_frame;
            if e.on {
                struck = true;
                self.player_phrase.push(GivenNote { on: at, off: f64::INFINITY, key: e.key, velocity: e.velocity, channel: 0 });
            } else if let Some(n) = self.player_phrase.iter_mut().rev().find(|n| n.key == e.key && n.off == f64::INFINITY) {
                n.off = at;
            }
        }
        if struck && self.answering.is_some() {
            self.end_composed();
        }
        let Some(score) = &mut self.score else { return Ok(()) };
        let last_off = self.player_phrase.iter().map(|n| n.off).fold(f64::NEG_INFINITY, f64::max);
        if self.answering.is_none() && !player_sounding && !self.player_phrase.is_empty() && last_off.is_finite() {
            let from = answer_bar_line(last_off, beat, meter);
            if beat + WRITE_AHEAD_BEATS >= from {
                let (tonic, mode) = crate::key_finder::key_of_notes(self.player_phrase.iter().map(|n| (n.key, n.off - n.on)));
                let key = (tonic as u8, mode as u8);
                score.answer(&self.player_phrase, from, meter, knobs.styles, key.0, key.1, k.knobs.repeat)?;
                self.player_phrase.clear();
                self.answering = Some(key);
            }
        }
        if let Some((tonic, mode)) = self.answering {
            score.write_until(beat + WRITE_AHEAD_BEATS, meter, knobs.styles, tonic, mode, k.knobs.repeat)?;
            self.step_notes.clear();
            score.step(beat, next, &mut self.features, &mut self.step_notes);
            if score.sounding(beat, next) {
                self.last_sounding = Some(self.steps);
            }
            self.waiting.extend(self.step_notes.iter().map(|e| (self.steps, *e)));
        }
        Ok(())
    }
}

/// The RNG seed of a piece started at `position` with `seed`: restarting playback from the same
/// place gives the same music, and every place starts a different piece.
fn piece_seed(seed: u64, position: u64) -> u64 {
    (seed ^ 0x5DEECE66D).wrapping_mul(0x9E3779B97F4A7C15) ^ position.wrapping_mul(0xD1B54A32D192ED03)
}

impl FrameSource for NeuralSource {
    fn name(&self) -> &str {
        &self.model.name
    }

    fn sample_rate(&self) -> u32 {
        self.model.codec.cfg.sample_rate
    }

    fn reset(&mut self, seed: u64, position: u64) {
        self.piece_seed = piece_seed(seed, position);
        self.fresh_starts = 0;
        self.silence.reset();
        self.stream.reset(&self.model.prior, self.piece_seed);
        self.decoder = DecoderState::new(&self.model.codec.decoder);
        self.cpu_decoder = self.model.codec.cpu_decoder.as_ref().map(|f| f.new_state());
        self.reset_position = Some(position);
        self.steps = 0;
        self.frames_out = 0;
        self.samples_out = 0;
        self.waiting.clear();
        self.played.clear();
        self.live.reset(0, 0.0);
        self.was_live = false;
        self.player_phrase.clear();
        self.answering = None;
        self.last_sounding = None;
        self.heard.clear();
        self.heard_from = 0;
        // Every piece fades in over its first frame (the reader's reset fade covers the seam too).
        self.level = 0.0;
    }

    fn plays_input(&self, knobs: &KnobSnapshot) -> bool {
        knobs.knobs.source != Source::Compose && self.model.prior.cfg.notes && !self.given_prompt
    }

    fn input_needed(&self) -> u64 {
        // Asked only while the player's notes play: the steps the next render takes (one
        // frame; its first after a reset fills the delay pattern too), and the frames beyond
        // its last step whose onsets the performer sees.
        let steps = INPUT_FRAMES_PER_RENDER as u64 + if self.frames_out == 0 { self.max_delay() } else { 0 };
        (self.steps + steps + ONSETS_AHEAD_FRAMES) * self.model.codec.cfg.hop() as u64
    }

    fn set_input_delay(&mut self, samples: u64) {
        self.input_delay = samples;
    }

    fn input_lead(&self) -> u64 {
        (INPUT_FRAMES_PER_RENDER as u64 + self.max_delay() + ONSETS_AHEAD_FRAMES) * self.model.codec.cfg.hop() as u64
    }

    fn play_input(&mut self, events: &[InputNote]) {
        let hop = self.model.codec.cfg.hop() as f64;
        for e in events {
            self.live.play(e.at as f64 / hop, e.event, self.steps as f64);
        }
    }

    fn take_notes(&mut self, out: &mut Vec<PlayedNote>) {
        out.append(&mut self.played);
    }

    fn render(&mut self, k: &KnobSnapshot, out: &mut Vec<f32>) -> Result<(), String> {
        let (knobs, sampling) = Self::knobs(k);
        let bpm = super::shared::played_bpm(k.tempo_bpm);
        let frame_rate = self.model.prior.cfg.frame_rate;
        if let Some(pos) = self.reset_position.take() {
            self.beats = pos as f64 / self.sample_rate() as f64 * bpm / 60.0;
            if let Some(score) = &mut self.score {
                score.reset(self.piece_seed ^ 0x5C0E, self.beats);
            }
        }
        let levels = self.model.prior.cfg.n_levels;
        let meter = Meter { beats_per_bar: k.beats_per_bar.clamp(1, 32), beat_quarters: if k.beat_quarters.is_finite() && k.beat_quarters > 0.0 { k.beat_quarters as f64 } else { 1.0 } };
        self.played.clear();
        self.codes.clear();
        let mut frames = 0;
        let mut steps = 0;
        // Steps until a render's frames are out (the delay pattern's first steps give none).
        let per_render = if self.plays_input(k) { INPUT_FRAMES_PER_RENDER } else { FRAMES_PER_RENDER };
        while frames < per_render && steps < per_render + 8 {
            let next = self.beats + bpm / 60.0 / frame_rate;
            let source = if self.given_prompt { Source::Continue } else if self.plays_input(k) { k.knobs.source } else { Source::Compose };
            let live = source != Source::Compose;
            if live != self.was_live || (source != Source::Continue && self.answering.is_some()) {
                self.end_composed();
            }
            if self.was_live && !live {
                // Back to composing: a new tune from here, rather than every bar missed meanwhile
                // written at once.
                if let Some(score) = &mut self.score {
                    score.reset(self.piece_seed ^ 0x5C0E ^ self.steps, self.beats);
                }
            }
            self.was_live = live;
            // Where this step is on the host's grid: playing the player's notes, its audio is
            // heard `input_delay` late, and the host moves it back by as much.
            let delay = if live && !self.given_prompt { self.input_delay as f64 / self.sample_rate() as f64 * bpm / 60.0 } else { 0.0 };
            let grid = GridPosition { beats: self.beats - delay, beats_per_bar: k.beats_per_bar, phrase: self.phrase };
            let notes = if live {
                // The player's notes, in steps (or beats, given up front); their events are the
                // player's own, not sent.
                let (at, to) = if self.given_prompt { (self.beats, next) } else { (self.steps as f64, self.steps as f64 + 1.0) };
                self.step_notes.clear();
                self.live.step(at, to, &mut self.features, &mut self.step_notes);
                let player_sounding = self.live.sounding(at, to);
                if player_sounding {
                    self.last_sounding = Some(self.steps);
                }
                if source == Source::Continue {
                    self.answer(k, &knobs, meter, (self.beats - delay, next - delay), player_sounding)?;
                }
                Some(&self.features[..])
            } else {
                match &mut self.score {
                Some(score) => {
                    let key = (k.knobs.key.clamp(0, 11) as u8, k.knobs.mode.clamp(0, 1) as u8);
                    score.write_until(self.beats + WRITE_AHEAD_BEATS, meter, knobs.styles, key.0, key.1, k.knobs.repeat)?;
                    self.step_notes.clear();
                    score.step(self.beats, next, &mut self.features, &mut self.step_notes);
                    self.waiting.extend(self.step_notes.iter().map(|e| (self.steps, *e)));
                    Some(&self.features[..])
                }
                None => None,
                }
            };
            self.heard.push_back(!live || self.last_sounding.is_some_and(|s| self.steps <= s + RELEASE_FRAMES));
            // Answering, the performer plays in the key of the answer (the phrase's), whatever
            // the Key knob says.
            let step_knobs = match self.answering {
                Some((tonic, mode)) => Knobs { key: Some((tonic as u32, mode as u32)), ..knobs },
                None => knobs,
            };
            let frame = self.stream.step_with_notes(&self.model.prior, &step_knobs, &grid, notes, &sampling).map_err(|e| format!("the prior failed: {e}"))?;
            self.beats = next;
            self.steps += 1;
            steps += 1;
            if let Some(f) = frame {
                self.codes.extend(f);
                frames += 1;
            }
        }
        if frames == 0 {
            return Ok(());
        }
        let start = out.len();
        match (&self.model.codec.cpu_decoder, &mut self.cpu_decoder) {
            (Some(fast), Some(state)) => fast.push_frames(state, &self.codes, out).map_err(|e| format!("the decoder failed: {e}"))?,
            _ => {
                let codes = Tensor::from_slice(&self.codes, (frames, levels), &self.model.device).map_err(|e| e.to_string())?;
                let audio = self.decoder.push_codes(&self.model.codec.decoder, &self.model.codec.quantizer, &codes).map_err(|e| format!("the decoder failed: {e}"))?;
                out.extend(audio);
            }
        }
        // A last guard: the audio thread must never see NaN or a blown-up sample.
        for v in &mut out[start..] {
            *v = if v.is_finite() { v.clamp(-4.0, 4.0) } else { 0.0 };
        }
        // Playing the player's notes: silent where none has sounded for RELEASE_FRAMES, with a
        // fade of one frame either way (decoded frame j is step j's audio).
        let hop = self.model.codec.cfg.hop() as u64;
        for (i, v) in out[start..].iter_mut().enumerate() {
            let frame = (self.samples_out + i as u64) / hop;
            while self.heard_from < frame && self.heard.len() > 1 {
                self.heard.pop_front();
                self.heard_from += 1;
            }
            let target = if self.heard.front().copied().unwrap_or(true) { 1.0 } else { 0.0 };
            if self.level != target {
                self.level = if target > self.level { (self.level + 1.0 / hop as f32).min(1.0) } else { (self.level - 1.0 / hop as f32).max(0.0) };
            }
            *v *= self.level;
        }
        // The notes of the frames just decoded go out with them, timed from this call's first
        // sample (a note may fall a little past its end, in audio the next call completes).
        let before = self.samples_out;
        self.frames_out += frames as u64;
        self.samples_out += (out.len() - start) as u64;
        while let Some(&(frame, e)) = self.waiting.front().filter(|(f, _)| *f < self.frames_out) {
            self.waiting.pop_front();
            let at = (frame * hop + e.offset as u64 * hop / 65536).saturating_sub(before);
            self.played.push(PlayedNote { at, channel: e.channel, key: e.key, velocity: if e.on { e.velocity } else { 0 } });
        }
        // Silent for seconds: the prior's context holds nothing but silence, which it would
        // continue forever. Start it afresh (empty context, a seed of its own); the decoder
        // and the beat grid carry on, so the music re-enters in time.
        if self.silence.push(&out[start..]) {
            self.fresh_starts += 1;
            let seed = self.piece_seed ^ self.fresh_starts.wrapping_mul(0x9E3779B97F4A7C15);
            self.stream.reset(&self.model.prior, seed);
        }
        Ok(())
    }
}
