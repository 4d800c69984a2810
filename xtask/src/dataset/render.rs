//! Rendering a clip recipe to mono audio with `rustysynth`, deterministically.

use super::recipe::ClipRecipe;
use super::score::Note;
use anyhow::{anyhow, Context, Result};
use cantor::model::prior::notes::{fold_key, played_velocity, FrameNote, Voice};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where Debian's soundfont packages put their files.
pub const DEFAULT_SOUNDFONT_DIR: &str = "/usr/share/sounds/sf2";

/// Loudness every clip is normalised to (RMS, dBFS), with peaks kept under -1 dBFS.
const TARGET_RMS_DB: f32 = -20.0;
const PEAK_LIMIT: f32 = 0.891;

/// Renders recipes; keeps each soundfont loaded once.
pub struct Renderer {
    dir: PathBuf,
    sample_rate: u32,
    fonts: HashMap<String, Arc<SoundFont>>,
}

impl Renderer {
    pub fn new(dir: impl Into<PathBuf>, sample_rate: u32) -> Self {
        Self { dir: dir.into(), sample_rate, fonts: HashMap::new() }
    }

    fn font(&mut self, name: &str) -> Result<Arc<SoundFont>> {
        if let Some(f) = self.fonts.get(name) {
            return Ok(f.clone());
        }
        let path = self.dir.join(name);
        let mut file = std::fs::File::open(&path).with_context(|| {
            format!(
                "soundfont {} is missing: install it with `apt-get install fluid-soundfont-gm musescore-general-soundfont-lossless`",
                path.display()
            )
        })?;
        let font = Arc::new(SoundFont::new(&mut file).map_err(|e| anyhow!("{}: {e:?}", path.display()))?);
        self.fonts.insert(name.to_string(), font.clone());
        Ok(font)
    }

    /// Render `recipe` from the piece's `notes`: `recipe.seconds` of mono audio.
    pub fn render(&mut self, recipe: &ClipRecipe, notes: &[Note]) -> Result<Vec<f32>> {
        self.render_span(recipe, notes, 0.0, recipe.seconds)
    }

    /// Render `seconds` of the clip starting `offset` seconds into it (training crops).
    pub fn render_span(&mut self, recipe: &ClipRecipe, notes: &[Note], offset: f64, seconds: f64) -> Result<Vec<f32>> {
        let font = self.font(&recipe.soundfont)?;
        let settings = SynthesizerSettings::new(self.sample_rate as i32);
        let mut synth = Synthesizer::new(&font, &settings).map_err(|e| anyhow!("synthesizer: {e:?}"))?;
        let events = schedule(recipe, notes, offset, seconds);
        let channels = channel_programs(recipe);
        for (ch, program) in channels.iter().enumerate() {
            synth.process_midi_message(ch as i32, 0xC0, *program as i32, 0);
        }
        let sr = self.sample_rate as f64;
        let total = (seconds * sr).round() as usize;
        let mut left = vec![0f32; total];
        let mut right = vec![0f32; total];
        let mut pos = 0usize;
        for ev in events.iter().chain(std::iter::once(&Event { at_s: seconds, channel: 0, key: 0, velocity: 0 })) {
            let until = ((ev.at_s * sr).round() as usize).min(total);
            if until > pos {
                synth.render(&mut left[pos..until], &mut right[pos..until]);
                pos = until;
            }
            if ev.velocity > 0 {
                synth.note_on(ev.channel as i32, ev.key as i32, ev.velocity as i32);
            } else if ev.key > 0 {
                synth.note_off(ev.channel as i32, ev.key as i32);
            }
        }
        let mut mono: Vec<f32> = left.iter().zip(&right).map(|(l, r)| 0.5 * (l + r)).collect();
        normalise(&mut mono);
        Ok(mono)
    }
}

/// Program of every MIDI channel: score parts first (channel 9, the drum channel, skipped),
/// then the accompaniment's chords and bass on channels of their own.
fn channel_programs(recipe: &ClipRecipe) -> [u8; 16] {
    let mut programs = [0u8; 16];
    for (part, &p) in recipe.programs.iter().enumerate() {
        programs[part_channel(part.min(255) as u8) as usize] = p;
    }
    programs[CHORD_CHANNEL as usize] = recipe.accompaniment_programs.0;
    programs[BASS_CHANNEL as usize] = recipe.accompaniment_programs.1;
    programs
}

/// Channel of a score part: parts 0-8 have their own, the rest share channel 10.
fn part_channel(part: u8) -> u8 {
    if part < 9 {
        part
    } else {
        10
    }
}
const CHORD_CHANNEL: u8 = 11;
const BASS_CHANNEL: u8 = 12;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Event {
    at_s: f64,
    channel: u8,
    key: u8,
    /// 0 = note off.
    velocity: u8,
}

/// A note as the renderer plays it: seconds from the span's start, the sounding key (after
/// transposition), channel and velocity. What the audio of a clip carries, exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayedNote {
    pub on_s: f64,
    pub off_s: f64,
    pub channel: u8,
    pub key: u8,
    pub velocity: u8,
}

/// The notes sounding in the span [offset, offset+seconds) of the clip (accompaniment included),
/// in onset order.
pub fn played_notes(recipe: &ClipRecipe, notes: &[Note], offset: f64, seconds: f64) -> Vec<PlayedNote> {
    let qps = recipe.quarters_per_second();
    let span_start_q = recipe.start_quarters + offset * qps;
    let span_end_q = span_start_q + seconds * qps;
    let mut rng = ChaCha8Rng::seed_from_u64(recipe.velocity_seed);
    let mut all: Vec<(Note, u8)> = notes.iter().map(|n| (*n, part_channel(n.part))).collect();
    if recipe.accompaniment {
        all.extend(accompaniment(recipe, notes));
    }
    let mut played = Vec::new();
    // Velocity humanisation: a per-note random offset plus metric accents. The RNG is drawn for
    // every note of the piece in order, so a span's velocities do not depend on where it starts.
    all.sort_by(|a, b| a.0.start_q.total_cmp(&b.0.start_q).then(a.1.cmp(&b.1)).then(a.0.key.cmp(&b.0.key)));
    for (n, ch) in all {
        let jitter: f64 = rng.random_range(-10.0..10.0);
        let end_q = n.start_q + n.dur_q;
        if end_q <= span_start_q || n.start_q >= span_end_q {
            continue;
        }
        let key = n.key as i32 + recipe.transpose as i32;
        let key = fold_key(key);
        let bar_pos = (n.start_q - recipe.first_full_bar_quarters).rem_euclid(recipe.bar_quarters);
        let velocity = played_velocity(n.velocity, bar_pos, recipe.beat_quarters, jitter);
        let on_s = ((n.start_q - span_start_q) / qps).max(0.0);
        let off_s = ((end_q - span_start_q) / qps).min(seconds);
        played.push(PlayedNote { on_s, off_s, channel: ch, key, velocity });
    }
    played
}

/// The notes of the span [offset, offset+seconds) as the performer is conditioned on them: times
/// in codec frames of `frame_rate` from the span's start, voices from the renderer's channels
/// (a score part's program slot in its instrument family, or the accompaniment's chords or bass).
/// Exactly the notes and times the audio was rendered from.
pub fn frame_notes(recipe: &ClipRecipe, notes: &[Note], offset: f64, seconds: f64, frame_rate: f64) -> Vec<FrameNote> {
    let family = cantor::model::vocab::instrument_index(&recipe.instrument).map(|f| cantor::model::vocab::INSTRUMENT_FAMILIES[f].1).unwrap_or(&[]);
    let slot = |part: usize| {
        let program = recipe.programs.get(part).or(recipe.programs.last()).copied().unwrap_or(0);
        family.iter().position(|&p| p == program).unwrap_or(0) as u8
    };
    played_notes(recipe, notes, offset, seconds)
        .into_iter()
        .map(|n| FrameNote {
            on: n.on_s * frame_rate,
            off: n.off_s * frame_rate,
            key: n.key,
            velocity: n.velocity,
            voice: match n.channel {
                CHORD_CHANNEL => Voice::Chords,
                BASS_CHANNEL => Voice::Bass,
                10 => Voice::Part { program_slot: slot(9) },
                c => Voice::Part { program_slot: slot(c as usize) },
            },
        })
        .collect()
}

/// Note on/off events of the span [offset, offset+seconds) of the clip, in seconds from the span start.
fn schedule(recipe: &ClipRecipe, notes: &[Note], offset: f64, seconds: f64) -> Vec<Event> {
    let mut events = Vec::new();
    for n in played_notes(recipe, notes, offset, seconds) {
        events.push(Event { at_s: n.on_s, channel: n.channel, key: n.key, velocity: n.velocity });
        events.push(Event { at_s: n.off_s, channel: n.channel, key: n.key, velocity: 0 });
    }
    // Offs before ons at the same instant, so repeated notes retrigger.
    events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s).then((a.velocity > 0).cmp(&(b.velocity > 0))));
    events
}

/// The corpus's accompaniment of a single-line tune (`model::score::accompaniment`, which the
/// score prior's tunes get too), on its own channels. Pitches are in the score's key (before
/// transposition).
pub fn accompaniment(recipe: &ClipRecipe, melody: &[Note]) -> Vec<(Note, u8)> {
    use cantor::model::score::accompaniment::{accompaniment, Role};
    let tonic = recipe.key_pitch_class as i32 - recipe.transpose as i32;
    let line: Vec<(f64, f64, u8)> = melody.iter().map(|n| (n.start_q, n.dur_q, n.key)).collect();
    accompaniment(tonic, recipe.key_mode == "minor", recipe.bar_quarters, recipe.first_full_bar_quarters, &line)
        .into_iter()
        .map(|a| {
            let channel = if a.role == Role::Chord { CHORD_CHANNEL } else { BASS_CHANNEL };
            (Note { start_q: a.start_q, dur_q: a.dur_q, key: a.key, velocity: a.velocity, part: 0 }, channel)
        })
        .collect()
}

/// Scale to the target RMS, keeping peaks under the limit. Silence stays silence.
fn normalise(x: &mut [f32]) {
    let rms = (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt() as f32;
    let peak = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if rms < 1e-6 {
        return;
    }
    let gain = (10f32.powf(TARGET_RMS_DB / 20.0) / rms).min(PEAK_LIMIT / peak);
    x.iter_mut().for_each(|v| *v *= gain);
}

/// The soundfont folder: $CANTOR_SOUNDFONTS or Debian's.
pub fn soundfont_dir() -> PathBuf {
    std::env::var_os("CANTOR_SOUNDFONTS").map(PathBuf::from).unwrap_or_else(|| Path::new(DEFAULT_SOUNDFONT_DIR).to_path_buf())
}
