//! The top of the hierarchy in the generator: the score prior writes the tune bar by bar, a
//! little ahead of the performer, in beats; each performer step places the notes near it on the
//! host's grid at the tempo of that moment (so a tempo change moves the notes from the next
//! frame on, never the ones already played), paints that frame's note state for the performer,
//! and reports the notes starting and ending in the frame for MIDI out.
//!
//! Knobs that act on the music take effect at a bar line: each bar is written with the style,
//! key, mode and Repeat of the moment it is written, which is at most `WRITE_AHEAD_BEATS` before
//! it plays. A key change transposes the tune (its tokens are key-relative) from the next bar
//! written; a new time signature starts a new tune at the next bar line.

use crate::model::prior::notes::{fold_key, paint, played_velocity, FrameNote, Voice};
use crate::model::prior::sampling::Sampling;
use crate::model::score::accompaniment::{accompaniment, Role};
use crate::model::score::tokens::{meter_index, ScoreNote, METERS, TICKS_PER_QUARTER};
use crate::model::score::writer::ScoreWriter;
use crate::model::score::{ScoreCond, ScorePrior, DEFAULT_GUIDANCE};
use crate::model::vocab::Meter;
use std::sync::Arc;

/// How far ahead of the performer the writer keeps the tune written, in beats: more than one
/// frame's worth (the performer sees onsets a frame early), little enough that a style or key
/// change waits at most a bar. Writing a bar takes a few milliseconds (`cargo xtask bench score`).
pub const WRITE_AHEAD_BEATS: f64 = 0.5;

/// Frames past a step whose notes `ScoreStage::step` places: the performer sees onsets a frame
/// early (`ONSETS_AHEAD_FRAMES`), and one more covers an onset on that frame's edge (a note's
/// beat turned into frames may round either way). The player's notes, timed in frames, need
/// only `ONSETS_AHEAD_FRAMES`: painting skips the later ones.
pub const PLACED_AHEAD_FRAMES: u64 = crate::model::prior::notes::ONSETS_AHEAD_FRAMES + 1;

/// MIDI channels (0-based) of what Cantor plays: the tune's parts on 0-3, the chords on 4 and
/// the bass on 5, so a DAW can split them onto tracks (channel 9, General MIDI drums, is avoided).
pub const CHORDS_CHANNEL: u8 = 4;
pub const BASS_CHANNEL: u8 = 5;
/// The tune's parts past the fourth share its last channel.
const MAX_TUNE_CHANNEL: u8 = 3;

/// Bars of the player's phrase the score prior reads before it answers (Source: continue): its
/// 256-token window holds about 8 bars of a reel, so the phrase it answers stays in view.
pub const PROMPT_BARS: usize = 8;
/// Beats of rest before a bar line that hand Cantor the lead: a phrase is over when every key
/// is up a beat before the next bar line (a rest inside a phrase is rarely a whole beat just
/// before a bar line; a longer wait would sound like a missed cue).
pub const ANSWER_REST_BEATS: f64 = 1.0;
/// The grid the player's notes are read on before the score prior sees them, in ticks: a
/// sixteenth (players are never on the 1/24-quarter grid, and the corpus is mostly sixteenths
/// and coarser).
const PROMPT_GRID_TICKS: u32 = TICKS_PER_QUARTER / 4;

/// The tune's loudness before the accents, as `cantor compose` writes it.
const MELODY_VELOCITY: u8 = 84;

/// A note of the written tune, in beats of the host's grid.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BeatNote {
    on: f64,
    off: f64,
    /// MIDI key, folded into the performer's range (what it plays is what MIDI out sends).
    key: u8,
    velocity: u8,
    voice: Voice,
    channel: u8,
}

/// A note starting or ending within a performer step: where in the step's frame (0..1), and
/// which note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepNote {
    /// Position within the step's frame, in frames (0 at the frame's start).
    pub offset: FrameOffset,
    pub on: bool,
    pub channel: u8,
    pub key: u8,
    pub velocity: u8,
}

/// A fraction of a frame in 1/65536ths (an integer so events sort and compare exactly).
pub type FrameOffset = u16;

/// A note given to play (`ScoreStage::playing`: a MIDI file), in beats of the host's grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GivenNote {
    pub on: f64,
    pub off: f64,
    pub key: u8,
    pub velocity: u8,
    /// MIDI channel, kept for MIDI out.
    pub channel: u8,
}

/// Where the notes come from: the score prior writing, notes given up front, or the player's
/// notes as they arrive (`ScoreStage::live`, timed in performer frames rather than beats).
enum Tune {
    Written(Arc<ScorePrior>),
    Given(Arc<[BeatNote]>),
    Live(LiveState),
}

/// The player's sustain pedal, and the keys released under it (folded keys).
#[derive(Default)]
struct LiveState {
    pedal: bool,
    held: u128,
}

/// The end of a note whose key is still down.
const OPEN_END: f64 = f64::MAX;

/// A note event of the player's, at a position in the performer's steps (fractional frames).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LiveEvent {
    On { key: u8, velocity: u8 },
    Off { key: u8 },
    /// The sustain pedal (CC 64) down or up.
    Pedal(bool),
    /// Every note ends (all-notes-off, or a wildcard note-off).
    AllOff,
}

/// The writer and the notes it has written that still sound or are still to come.
pub struct ScoreStage {
    tune: Tune,
    writer: Option<ScoreWriter<Arc<ScorePrior>>>,
    /// The seed of the current tune; a new tune (a new time signature) derives its own.
    seed: u64,
    tunes: u64,
    /// The meter the writer writes in, and where its next bar starts (a host beat).
    meter: Meter,
    written_to: f64,
    /// Notes with an onset before this beat are not played (a restart mid-bar starts with the
    /// notes that begin after it, not with half-heard ones).
    from_beat: f64,
    /// The written notes not yet over, in onset order.
    notes: Vec<BeatNote>,
    /// The melody of the last bar written (its last note may ring into the next bar, whose
    /// chord then counts it).
    last_line: Vec<(f64, f64, u8)>,
    /// The note state painted for one step (reused).
    frame_notes: Vec<FrameNote>,
    /// Where the last step ended: the notes starting before it have been sent.
    stepped_to: f64,
}

impl ScoreStage {
    pub fn new(model: Arc<ScorePrior>) -> Self {
        Self::with_tune(Tune::Written(model))
    }

    /// A stage that plays `notes` instead of writing a tune: every key folded into the
    /// performer's range (an octave at a time), each played as a part of the tune.
    pub fn playing(notes: &[GivenNote]) -> Self {
        let mut beat_notes = Vec::with_capacity(notes.len());
        for n in notes {
            let note = BeatNote { on: n.on, off: n.off, key: fold_key(n.key as i32), velocity: n.velocity.clamp(1, 127), voice: Voice::Part { program_slot: 0 }, channel: n.channel & 15 };
            insert_note(&mut beat_notes, f64::NEG_INFINITY, note);
        }
        Self::with_tune(Tune::Given(beat_notes.into()))
    }

    /// A stage that plays the player's notes as `play` hands them over, in frames (its `step`
    /// takes frame numbers, not beats).
    pub fn live() -> Self {
        Self::with_tune(Tune::Live(LiveState::default()))
    }

    /// The player's event `event` at frame `at` (a note-on before the step being played starts
    /// at that step, so no onset is lost). Keys fold into the performer's range; a key struck
    /// again while it sounds ends its last note first; with the pedal down a released key sounds
    /// on until the pedal lifts.
    pub fn play(&mut self, at: f64, event: LiveEvent, now: f64) {
        let Tune::Live(live) = &mut self.tune else { return };
        let at = if at.is_finite() { at.max(now) } else { now };
        // End the open notes whose keys `keys` holds (a bit per key).
        let end = |notes: &mut Vec<BeatNote>, keys: u128| {
            for n in notes.iter_mut().filter(|n| n.off == OPEN_END && keys & (1u128 << n.key) != 0) {
                n.off = at.max(n.on + 1e-6);
            }
        };
        match event {
            LiveEvent::On { key, velocity } => {
                let key = fold_key(key as i32);
                end(&mut self.notes, 1u128 << key);
                live.held &= !(1u128 << key);
                let note = BeatNote { on: at, off: OPEN_END, key, velocity: velocity.clamp(1, 127), voice: Voice::Part { program_slot: 0 }, channel: 0 };
                insert_note(&mut self.notes, f64::NEG_INFINITY, note);
            }
            LiveEvent::Off { key } => {
                let key = fold_key(key as i32);
                if live.pedal {
                    live.held |= 1u128 << key;
                } else {
                    end(&mut self.notes, 1u128 << key);
                }
            }
            LiveEvent::Pedal(down) => {
                live.pedal = down;
                if !down {
                    end(&mut self.notes, live.held);
                    live.held = 0;
                }
            }
            LiveEvent::AllOff => {
                end(&mut self.notes, u128::MAX);
                (live.pedal, live.held) = (false, 0);
            }
        }
    }

    /// Stop the tune after the last step played: the notes sounding end at the next step's
    /// start (`events`), the rest are dropped (the Source knob turned to the player's notes, or
    /// the player took the lead back; a later `reset` or `answer` starts anew).
    pub fn cut(&mut self, events: &mut Vec<StepNote>) {
        let beat = self.stepped_to;
        for n in self.notes.iter().filter(|n| n.on < beat && n.off >= beat) {
            events.push(StepNote { offset: 0, on: false, channel: n.channel, key: n.key, velocity: 0 });
        }
        self.notes.clear();
    }

    /// Whether a note sounds at any point of the step from `at` to `next`.
    pub fn sounding(&self, at: f64, next: f64) -> bool {
        self.notes.iter().take_while(|n| n.on < next).any(|n| n.off > at)
    }

    fn with_tune(tune: Tune) -> Self {
        Self { tune, writer: None, seed: 0, tunes: 0, meter: Meter::COMMON_TIME, written_to: 0.0, from_beat: 0.0, notes: Vec::new(), last_line: Vec::new(), frame_notes: Vec::new(), stepped_to: f64::NEG_INFINITY }
    }

    /// Start a new tune with `seed` at host beat `beat`: its first bar is the one `beat` falls in.
    pub fn reset(&mut self, seed: u64, beat: f64) {
        self.writer = None;
        self.seed = seed;
        self.tunes = 0;
        self.from_beat = beat;
        self.written_to = f64::NAN;
        self.stepped_to = f64::NEG_INFINITY;
        self.notes.clear();
        self.last_line.clear();
        match &mut self.tune {
            Tune::Given(notes) => self.notes.extend(notes.iter().filter(|n| n.on >= beat)),
            Tune::Live(live) => *live = LiveState::default(),
            Tune::Written(_) => {}
        }
    }

    /// Answer the player (Source: continue): a new tune from host bar line `from` on that the
    /// score prior writes after reading `phrase` (the player's notes in host beats, those of
    /// the last `PROMPT_BARS` bars before `from` read on a sixteenth grid) as its opening bars,
    /// in key `tonic` (pitch class) and `mode`; later bars come from `write_until`, in that key.
    /// A stage that does not write (given notes, the player's) does nothing.
    pub fn answer(&mut self, phrase: &[GivenNote], from: f64, meter: Meter, styles: Option<[f32; crate::model::vocab::STYLES.len()]>, tonic: u8, mode: u8, repeat: f32) -> Result<(), String> {
        let Tune::Written(model) = &self.tune else {
            return Ok(());
        };
        let model = model.clone();
        let (index, meter) = score_meter(meter);
        let bar_ticks = METERS[index].1;
        let played = prompt_bars(phrase, from, meter);
        let seed = next_seed(self.seed, &mut self.tunes);
        let mut writer = ScoreWriter::new(model, tonic, bar_ticks, seed).map_err(|e| format!("the score prior failed: {e}"))?;
        let cond = ScoreCond { styles, mode: Some(mode.min(1)), meter: Some(index) };
        let sampling = Self::sampling(repeat);
        for notes in &played {
            writer.play_bar(notes, &cond, &sampling).map_err(|e| format!("the score prior failed: {e}"))?;
        }
        self.writer = Some(writer);
        self.meter = meter;
        self.written_to = from;
        self.from_beat = from;
        self.notes.clear();
        // The phrase's melody ringing into the answer's first bar counts in its chord.
        self.last_line = phrase.iter().filter(|n| n.off > from).map(|n| (n.on * meter.beat_quarters, (n.off - n.on) * meter.beat_quarters, n.key)).collect();
        Ok(())
    }

    /// The tune's own sampling: the Temperature, Top-p and Guidance knobs act on the sound (the
    /// performer); the tune is written as `cantor compose` writes it by default.
    fn sampling(repeat: f32) -> Sampling {
        Sampling { temperature: 1.0, top_k: 0, top_p: 0.95, guidance: DEFAULT_GUIDANCE, repeat: repeat.clamp(0.0, 1.0) }
    }

    /// Write bars until the tune reaches `until` (a host beat), with the music knobs of now.
    /// `key` is the tonic's pitch class, `mode` 0 major or 1 minor.
    /// A stage playing given notes writes nothing.
    pub fn write_until(&mut self, until: f64, meter: Meter, styles: Option<[f32; crate::model::vocab::STYLES.len()]>, key: u8, mode: u8, repeat: f32) -> Result<(), String> {
        let Tune::Written(model) = &self.tune else {
            return Ok(());
        };
        let (index, meter) = score_meter(meter);
        let bar_beats = bar_beats(index, meter);
        if self.writer.is_some() && meter != self.meter {
            // A new time signature: a new tune from the next bar line on.
            self.writer = None;
        }
        if self.writer.is_none() {
            if self.written_to.is_nan() {
                // The bar the restart falls in, on the host's bar lines (beat 0 is a bar line).
                self.written_to = (self.from_beat / bar_beats).floor() * bar_beats;
            }
            let seed = next_seed(self.seed, &mut self.tunes);
            self.meter = meter;
            self.last_line.clear();
            self.writer = Some(ScoreWriter::new(model.clone(), key, METERS[index].1, seed).map_err(|e| format!("the score prior failed: {e}"))?);
        }
        let (writer, notes, from_beat) = (self.writer.as_mut().expect("made above"), &mut self.notes, self.from_beat);
        let mut push = |n: BeatNote| insert_note(notes, from_beat, n);
        let cond = ScoreCond { styles, mode: Some(mode.min(1)), meter: Some(index) };
        let sampling = Self::sampling(repeat);
        while self.written_to < until {
            writer.set_tonic(key);
            let bar = writer.write_bar(&cond, &sampling).map_err(|e| format!("the score prior failed: {e}"))?;
            let start = self.written_to;
            let beat_of = |tick: u32| start + (tick as f64 - bar.start as f64) / TICKS_PER_QUARTER as f64 / meter.beat_quarters;
            let bar_end = beat_of(bar.start + bar.len);
            let quarters_in_bar = |beat: f64| (beat - start) * meter.beat_quarters;
            let single_line = bar.notes.iter().all(|n| n.part == 0);
            let mut line = std::mem::take(&mut self.last_line);
            line.retain(|&(on, dur, _)| on + dur > start * meter.beat_quarters);
            for n in &bar.notes {
                let (on, off) = (beat_of(n.start), beat_of(n.start + n.dur));
                let velocity = played_velocity(MELODY_VELOCITY, quarters_in_bar(on), meter.beat_quarters, 0.0);
                push(BeatNote { on, off, key: fold_key(n.key as i32), velocity, voice: Voice::Part { program_slot: 0 }, channel: n.part.min(MAX_TUNE_CHANNEL) });
                if n.part == 0 {
                    line.push((on * meter.beat_quarters, (off - on) * meter.beat_quarters, n.key));
                }
            }
            if single_line {
                // Bass and chords as the corpus renders harmonised single lines (`compose`).
                let bar_q = (bar_end - start) * meter.beat_quarters;
                for a in accompaniment(key as i32, mode == 1, bar_q, start * meter.beat_quarters, &line) {
                    if a.start_q >= bar_end * meter.beat_quarters - 1e-9 {
                        continue;
                    }
                    let (on, off) = (a.start_q / meter.beat_quarters, (a.start_q + a.dur_q) / meter.beat_quarters);
                    let (voice, channel) = match a.role {
                        Role::Chord => (Voice::Chords, CHORDS_CHANNEL),
                        Role::Bass => (Voice::Bass, BASS_CHANNEL),
                    };
                    let velocity = played_velocity(a.velocity, quarters_in_bar(on), meter.beat_quarters, 0.0);
                    push(BeatNote { on, off, key: fold_key(a.key as i32), velocity, voice, channel });
                }
            }
            self.last_line = line;
            self.written_to = bar_end;
        }
        Ok(())
    }


    /// The performer step from host beat `beat` to `next` (one frame): paint its note state into
    /// `features` (`notes::NOTE_DIM` values) and append the notes starting or ending in it to
    /// `events` (note-offs before note-ons at the same moment). Notes over before `beat` are
    /// forgotten.
    pub fn step(&mut self, beat: f64, next: f64, features: &mut [f32], events: &mut Vec<StepNote>) {
        let per_frame = next - beat;
        self.stepped_to = next;
        self.notes.retain(|n| n.off >= beat);
        if !(per_frame > 0.0) {
            paint(&[], 0, 1, features);
            return;
        }
        // Frame positions relative to this step (frame 0); notes up to PLACED_AHEAD_FRAMES
        // ahead are placed.
        let frame_of = |b: f64| (b - beat) / per_frame;
        self.frame_notes.clear();
        for n in self.notes.iter().take_while(|n| n.on < next + PLACED_AHEAD_FRAMES as f64 * per_frame) {
            self.frame_notes.push(FrameNote { on: frame_of(n.on), off: frame_of(n.off), key: n.key, velocity: n.velocity, voice: n.voice });
        }
        paint(&self.frame_notes, 0, 1, features);
        let offset = |b: f64| (frame_of(b) * 65536.0).clamp(0.0, 65535.0) as FrameOffset;
        let first = events.len();
        for n in self.notes.iter().take_while(|n| n.on < next) {
            if n.off >= beat && n.off < next {
                events.push(StepNote { offset: offset(n.off), on: false, channel: n.channel, key: n.key, velocity: 0 });
            }
            if n.on >= beat {
                events.push(StepNote { offset: offset(n.on), on: true, channel: n.channel, key: n.key, velocity: n.velocity.max(1) });
            }
        }
        events[first..].sort_by_key(|e| (e.offset, e.on));
    }
}

/// Add `n` to `notes`, kept in onset order: notes before `from_beat` (a restart) are not
/// played, and a key struck twice at once on one channel sounds once (MIDI cannot tell the two
/// apart), for the longer.
fn insert_note(notes: &mut Vec<BeatNote>, from_beat: f64, n: BeatNote) {
    if !(n.on >= from_beat && n.off > n.on && n.on.is_finite() && n.off.is_finite()) {
        return;
    }
    let at = notes.partition_point(|m| m.on <= n.on);
    let first = notes[..at].partition_point(|m| m.on < n.on);
    if let Some(same) = notes[first..at].iter_mut().find(|m| m.key == n.key && m.channel == n.channel) {
        same.off = same.off.max(n.off);
        return;
    }
    notes.insert(first, n);
}

/// How the score prior reads a player's `phrase` (notes in host beats) that Cantor answers from
/// host bar line `from`: the bars of the meter it writes in from the one the phrase starts in
/// (at most `PROMPT_BARS` before `from`) to `from`, each bar's notes with onsets in ticks from
/// its start, onsets and lengths on a sixteenth grid, one part.
pub fn prompt_bars(phrase: &[GivenNote], from: f64, meter: Meter) -> Vec<Vec<ScoreNote>> {
    let (index, meter) = score_meter(meter);
    let bar_ticks = METERS[index].1;
    let bar_beats = bar_beats(index, meter);
    let first_note = phrase.iter().map(|n| n.on).fold(f64::INFINITY, f64::min);
    let to_bar = (from / bar_beats).round();
    let from_bar = (first_note / bar_beats).floor().max(to_bar - PROMPT_BARS as f64).min(to_bar);
    let bars = (to_bar - from_bar).max(0.0) as usize;
    let mut played = vec![Vec::new(); bars];
    let ticks_per_beat = TICKS_PER_QUARTER as f64 * meter.beat_quarters;
    let grid = |beats: f64| ((beats * ticks_per_beat / PROMPT_GRID_TICKS as f64).round().max(0.0) as u32) * PROMPT_GRID_TICKS;
    for n in phrase {
        let at = grid(n.on - from_bar * bar_beats);
        let bar = (at / bar_ticks) as usize;
        if n.on < from_bar * bar_beats - 1e-9 || bar >= bars {
            continue;
        }
        let dur = grid(n.off.min(from) - n.on).max(PROMPT_GRID_TICKS);
        played[bar].push(ScoreNote { start: at % bar_ticks, part: 0, key: n.key, dur });
    }
    played
}

/// The host bar line from which Cantor answers a phrase whose last note ended at beat
/// `last_off`, at beat `now` or later: the first with `ANSWER_REST_BEATS` of rest before it
/// (bar lines of the meter the score prior writes in, from beat 0).
pub fn answer_bar_line(last_off: f64, now: f64, meter: Meter) -> f64 {
    let bar_beats = score_bar_beats(meter);
    ((last_off + ANSWER_REST_BEATS).max(now) / bar_beats - 1e-9).ceil() * bar_beats
}

/// The seed of the next tune a stage with `seed` starts after `tunes` tunes.
fn next_seed(seed: u64, tunes: &mut u64) -> u64 {
    *tunes += 1;
    seed ^ (*tunes - 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The length in host beats of the bars the score prior writes when the host plays in `meter`.
pub fn score_bar_beats(meter: Meter) -> f64 {
    let (index, meter) = score_meter(meter);
    bar_beats(index, meter)
}

/// The length in host beats of a bar of score meter `index` played in `meter`.
fn bar_beats(index: usize, meter: Meter) -> f64 {
    METERS[index].1 as f64 / TICKS_PER_QUARTER as f64 / meter.beat_quarters
}

/// The score prior's meter for the host's: the same when it writes in it, else 4/4 beats
/// grouped as the host's bar (the plugin plays on, in the nearest time it knows).
fn score_meter(meter: Meter) -> (usize, Meter) {
    let known = METERS.iter().position(|((n, d), _)| Meter::of_time_signature(*n, *d) == Some(meter));
    match known {
        Some(i) => (i, meter),
        None => {
            let i = meter_index(4, 4).expect("4/4 is a score meter");
            (i, Meter::COMMON_TIME)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::prior::notes::{NOTE_DIM, ONSET_AT};
    use crate::model::score::ScoreConfig;
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    fn stage() -> ScoreStage {
        let vm = VarMap::new();
        ScoreStage::new(Arc::new(ScorePrior::new(&ScoreConfig::tiny(), VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap()))
    }

    /// Step through `beats` at `per_frame` beats a frame (changing to `after` at beat 8),
    /// returning every note event with its absolute frame, and the frames with onsets painted.
    fn play(s: &mut ScoreStage, start: f64, per_frame: f64, after: f64) -> (Vec<(f64, StepNote)>, Vec<usize>, f64) {
        let meter = Meter::of_time_signature(6, 8).unwrap();
        let (mut beat, mut events, mut all, mut onsets) = (start, Vec::new(), Vec::new(), Vec::new());
        let mut features = vec![0.0; NOTE_DIM];
        for f in 0..400 {
            let step = if beat >= 8.0 { after } else { per_frame };
            s.write_until(beat + WRITE_AHEAD_BEATS, meter, Some([0.0, 0.0, 1.0, 0.0, 0.0, 0.0]), 7, 0, 1.0).unwrap();
            events.clear();
            s.step(beat, beat + step, &mut features, &mut events);
            all.extend(events.iter().map(|e| (beat + e.offset as f64 / 65536.0 * step, *e)));
            if features[ONSET_AT..ONSET_AT + crate::model::prior::notes::KEYS].iter().any(|&v| v > 0.0) {
                onsets.push(f);
            }
            beat += step;
        }
        (all, onsets, beat)
    }

    /// The tune comes out as balanced note-ons and offs at their beats; restarting at the same
    /// beat with the same seed plays the same notes; the frames painted with onsets are those
    /// where note-ons fall; a tempo change keeps later notes on the beat grid (at their beats).
    #[test]
    fn notes_are_placed_on_the_grid_at_the_tempo_of_the_moment() {
        let mut s = stage();
        s.reset(3, 0.0);
        let (a, onsets, end) = play(&mut s, 0.0, 0.04, 0.06);
        let ons: Vec<_> = a.iter().filter(|(_, e)| e.on).collect();
        assert!(!ons.is_empty());
        // Every note-off ends a note that started; the notes left sounding are those the stage
        // still holds that started and have not ended by the last step's end (it keeps a note
        // ending within its last step until the next one; the untrained model writes long notes).
        let mut sounding: Vec<(u8, u8)> = Vec::new();
        for (_, e) in &a {
            if e.on {
                sounding.push((e.channel, e.key));
            } else {
                let i = sounding.iter().position(|&n| n == (e.channel, e.key)).expect("a note-off ends a note that started");
                sounding.remove(i);
            }
        }
        assert_eq!(sounding.len(), s.notes.iter().filter(|n| n.on < end && n.off >= end).count());
        // Onset frames: the frame each note-on falls in.
        let mut on_frames: Vec<usize> = Vec::new();
        let mut beat = 0.0;
        for f in 0..400 {
            let step = if beat >= 8.0 { 0.06 } else { 0.04 };
            if ons.iter().any(|(b, _)| *b >= beat - 1e-9 && *b < beat + step - 1e-9) {
                on_frames.push(f);
            }
            beat += step;
        }
        assert_eq!(onsets, on_frames);
        // The tiny untrained model writes onsets on its tick grid: whole 1/24ths of a quarter,
        // before and after the tempo change alike.
        for (b, _) in &ons {
            let ticks = b * 1.5 * TICKS_PER_QUARTER as f64;
            assert!((ticks - ticks.round()).abs() < 1e-3, "{b}");
        }
        let Tune::Written(model) = &s.tune else { unreachable!() };
        let mut again = ScoreStage::new(model.clone());
        again.reset(3, 0.0);
        assert_eq!(play(&mut again, 0.0, 0.04, 0.06).0, a);
        // Restarting mid-bar plays the tune from that bar's notes after the restart.
        s.reset(3, 1.3);
        let (late, ..) = play(&mut s, 1.3, 0.04, 0.06);
        assert!(late.iter().all(|(b, _)| *b >= 1.3 - 1e-9));
    }

    /// Given notes (a MIDI file) play as they are: folded into range, on their channels, from
    /// the restart on, with nothing written.
    #[test]
    fn a_stage_playing_given_notes_sends_them_and_writes_nothing() {
        let given = [
            GivenNote { on: 0.5, off: 1.0, key: 62, velocity: 90, channel: 0 },
            GivenNote { on: 1.0, off: 3.0, key: 120, velocity: 70, channel: 2 },
            GivenNote { on: 2.0, off: 2.0, key: 64, velocity: 70, channel: 0 },
        ];
        let mut s = ScoreStage::playing(&given);
        s.reset(1, 0.0);
        let (events, onsets, _) = play(&mut s, 0.0, 0.04, 0.04);
        let ons: Vec<_> = events.iter().filter(|(_, e)| e.on).map(|(b, e)| ((b * 100.0).round() / 100.0, e.key, e.channel)).collect();
        assert_eq!(ons, vec![(0.5, 62, 0), (1.0, fold_key(120), 2)]);
        assert_eq!(events.iter().filter(|(_, e)| !e.on).count(), 2);
        assert_eq!(onsets.len(), 2);
        s.reset(1, 0.75);
        let (late, ..) = play(&mut s, 0.75, 0.04, 0.04);
        assert_eq!(late.iter().filter(|(_, e)| e.on).count(), 1);
        // Cut while the first note sounds: it ends there, and nothing else is left to play.
        s.reset(1, 0.0);
        let (mut features, mut events) = (vec![0.0; NOTE_DIM], Vec::new());
        s.step(0.5, 0.6, &mut features, &mut events);
        events.clear();
        s.cut(&mut events);
        assert_eq!(events.iter().map(|e| (e.on, e.key)).collect::<Vec<_>>(), vec![(false, 62)]);
        events.clear();
        s.step(0.6, 2.0, &mut features, &mut events);
        assert!(events.is_empty());
    }

    /// An answer starts on its bar line, after a beat's rest, with nothing before it; the same
    /// phrase and seed answer alike, and another phrase otherwise (the prompt is read).
    #[test]
    fn an_answer_starts_at_its_bar_line_and_follows_the_phrase() {
        let common = Meter::COMMON_TIME;
        let jig = Meter::of_time_signature(6, 8).unwrap();
        assert_eq!(answer_bar_line(2.4, 0.0, common), 4.0);
        assert_eq!(answer_bar_line(3.0, 0.0, common), 4.0);
        assert_eq!(answer_bar_line(3.2, 0.0, common), 8.0);
        assert_eq!(answer_bar_line(2.4, 9.0, common), 12.0);
        // 6/8: bars of two dotted-quarter beats.
        assert_eq!(answer_bar_line(0.5, 0.0, jig), 2.0);
        let model = stage();
        let Tune::Written(model) = &model.tune else { unreachable!() };
        let answer = |keys: &[u8]| {
            let mut s = ScoreStage::new(model.clone());
            s.reset(4, 0.0);
            let phrase: Vec<GivenNote> = keys.iter().enumerate().map(|(i, &key)| GivenNote { on: 0.5 * i as f64, off: 0.5 * i as f64 + 0.4, key, velocity: 90, channel: 0 }).collect();
            s.answer(&phrase, 8.0, common, Some([0.0, 0.0, 0.0, 1.0, 0.0, 0.0]), 2, 0, 0.0).unwrap();
            let mut features = vec![0.0; NOTE_DIM];
            let (mut events, mut all) = (Vec::new(), Vec::new());
            let mut beat = 7.0;
            while beat < 24.0 {
                s.write_until(beat + WRITE_AHEAD_BEATS, common, Some([0.0, 0.0, 0.0, 1.0, 0.0, 0.0]), 2, 0, 0.0).unwrap();
                events.clear();
                s.step(beat, beat + 0.05, &mut features, &mut events);
                all.extend(events.iter().filter(|e| e.on).map(|e| ((beat * 100.0).round() as i64, e.key)));
                beat += 0.05;
            }
            all
        };
        let a = answer(&[62, 64, 66, 67, 69, 71, 73, 74, 76, 78]);
        assert!(!a.is_empty() && a.iter().all(|(b, _)| *b >= 800), "{a:?}");
        // The phrase's two bars are not echoed: the answer's first bar's melody (above the chords
        // and bass) is not the phrase's first bar.
        let bar = |from: i64| a.iter().filter(|(b, k)| (from..from + 400).contains(b) && *k >= 60).map(|&(b, k)| (b - from, k)).collect::<Vec<_>>();
        assert_ne!(bar(800), vec![(0, 62), (45, 64), (95, 66), (145, 67), (195, 69), (245, 71), (295, 73), (345, 74)]);
        assert_eq!(a, answer(&[62, 64, 66, 67, 69, 71, 73, 74, 76, 78]));
        assert_ne!(a, answer(&[50, 52, 53, 55, 57, 58, 60, 62, 64, 65]));
    }

    /// The player's notes sound from the frame they arrive at to their release, the pedal holding
    /// released keys; a late event starts at the step being played; all-notes-off ends them all.
    #[test]
    fn the_players_notes_sound_from_their_frame_with_the_pedal() {
        let mut s = ScoreStage::live();
        s.reset(0, 0.0);
        s.play(2.5, LiveEvent::On { key: 60, velocity: 100 }, 0.0);
        s.play(4.2, LiveEvent::Pedal(true), 0.0);
        s.play(5.0, LiveEvent::Off { key: 60 }, 0.0);
        s.play(6.0, LiveEvent::On { key: 127, velocity: 50 }, 0.0);
        s.play(8.0, LiveEvent::Pedal(false), 0.0);
        let mut features = vec![0.0; NOTE_DIM];
        let (mut events, mut all, mut sounding) = (Vec::new(), Vec::new(), Vec::new());
        for f in 0..12 {
            events.clear();
            s.step(f as f64, f as f64 + 1.0, &mut features, &mut events);
            all.extend(events.iter().map(|e| (f, e.on, e.key)));
            sounding.push(s.sounding(f as f64, f as f64 + 1.0));
        }
        let high = fold_key(127);
        assert_eq!(all, vec![(2, true, 60), (6, true, high), (8, false, 60)]);
        assert_eq!(sounding, [false, false, true, true, true, true, true, true, true, true, true, true]);
        s.play(3.0, LiveEvent::On { key: 64, velocity: 80 }, 12.0);
        s.play(13.5, LiveEvent::AllOff, 12.0);
        events.clear();
        s.step(12.0, 13.0, &mut features, &mut events);
        assert_eq!(events.iter().map(|e| (e.on, e.key)).collect::<Vec<_>>(), vec![(true, 64)]);
        events.clear();
        s.step(13.0, 14.0, &mut features, &mut events);
        assert_eq!(events.iter().filter(|e| !e.on).count(), 2);
        assert!(!s.sounding(14.0, 15.0));
    }
}
