//! Writing a whole tune with the score prior, as `cantor compose` does: bars in the requested
//! style, key, mode and meter, harmonised as the corpus renderings are when the tune is a single
//! line, as MIDI parts on the instrument family's General MIDI programs.

use crate::midi::{MidiNote, MidiPart};
use crate::model::prior::sampling::Sampling;
use crate::model::score::accompaniment::{accompaniment, Role};
use crate::model::score::tokens::{meter_index, METERS, TICKS_PER_QUARTER};
use crate::model::score::writer::ScoreWriter;
use crate::model::score::{ScoreCond, ScorePrior};
use crate::model::codec::Codec;
use crate::model::prior::conditioning::{GridPosition, Knobs};
use crate::model::prior::notes::{paint, played_velocity, FrameNote, Voice, NOTE_DIM};
use crate::model::prior::stream::PriorStream;
use crate::model::prior::{codec_codes_id, Prior};
use crate::model::vocab::{Meter, INSTRUMENT_FAMILIES, STYLES};
use candle_core::{Device, Tensor};

/// What to write.
#[derive(Debug, Clone)]
pub struct ComposeSettings {
    pub styles: [f32; STYLES.len()],
    /// Tonic pitch class (C = 0) and mode (0 major, 1 minor).
    pub tonic: u8,
    pub mode: u8,
    pub time_signature: (u32, u32),
    pub bars: usize,
    pub seed: u64,
    /// Index into `vocab::INSTRUMENT_FAMILIES`.
    pub instrument: usize,
    pub sampling: Sampling,
    /// Bass and chords under a single-line tune.
    pub accompaniment: bool,
}

/// Names of the accompaniment's parts (the performer plays them as accompaniment voices).
pub const CHORDS_PART: &str = "chords";
pub const BASS_PART: &str = "bass";

/// Velocities: the tune over its accompaniment, as the corpus renderer balances them.
const MELODY_VELOCITY: u8 = 84;
/// General MIDI acoustic bass, under every family's chords.
pub const BASS_PROGRAM: u8 = 32;

/// The tune's parts; `progress` hears the fraction written after every bar.
pub fn compose(model: &ScorePrior, s: &ComposeSettings, mut progress: impl FnMut(f64)) -> Result<Vec<MidiPart>, String> {
    let (n, d) = s.time_signature;
    let meter = meter_index(n, d).ok_or_else(|| {
        let known: Vec<String> = METERS.iter().map(|((n, d), _)| format!("{n}/{d}")).collect();
        format!("the score prior writes in {}, not {n}/{d}", known.join(", "))
    })?;
    if s.bars == 0 || s.bars > 10_000 {
        return Err(format!("--bars must be 1-10000, not {}", s.bars));
    }
    let family = INSTRUMENT_FAMILIES.get(s.instrument).ok_or_else(|| format!("no instrument family {}", s.instrument))?;
    let bar_ticks = METERS[meter].1;
    let cond = ScoreCond { styles: Some(s.styles), mode: Some(s.mode.min(1)), meter: Some(meter) };
    let mut writer = ScoreWriter::new(model, s.tonic, bar_ticks, s.seed).map_err(|e| format!("the score prior failed: {e}"))?;
    let (mut notes, mut end) = (Vec::new(), 0);
    for i in 0..s.bars {
        let bar = writer.write_bar(&cond, &s.sampling).map_err(|e| format!("the score prior failed: {e}"))?;
        notes.extend(bar.notes);
        end = bar.start + bar.len;
        progress((i + 1) as f64 / s.bars as f64);
    }
    let q = |t: u32| t as f64 / TICKS_PER_QUARTER as f64;
    let n_parts = notes.iter().map(|n| n.part as usize + 1).max().unwrap_or(1);
    let program = family.1.first().copied().unwrap_or(0);
    let mut parts: Vec<MidiPart> = (0..n_parts)
        .map(|p| MidiPart {
            name: if n_parts == 1 { "tune".into() } else { format!("voice {}", p + 1) },
            program,
            notes: notes.iter().filter(|n| n.part as usize == p).map(|n| MidiNote { start_q: q(n.start), dur_q: q(n.dur), key: n.key, velocity: MELODY_VELOCITY }).collect(),
        })
        .collect();
    if s.accompaniment && n_parts == 1 {
        let line: Vec<(f64, f64, u8)> = parts[0].notes.iter().map(|n| (n.start_q, n.dur_q, n.key)).collect();
        // Chords for the written bars only (a last note may ring past them).
        let mut acc = accompaniment(s.tonic as i32, s.mode == 1, q(bar_ticks), 0.0, &line);
        acc.retain(|a| a.start_q < q(end));
        for (role, name, program) in [(Role::Chord, CHORDS_PART, program), (Role::Bass, BASS_PART, BASS_PROGRAM)] {
            let notes = acc.iter().filter(|a| a.role == role).map(|a| MidiNote { start_q: a.start_q, dur_q: a.dur_q, key: a.key, velocity: a.velocity }).collect();
            parts.push(MidiPart { name: name.into(), program, notes });
        }
    }
    Ok(parts)
}

/// The notes of composed `parts` as the performer plays them: times in codec frames of
/// `frame_rate` at `bpm` beats of `meter` a minute, velocities humanised as the corpus renderer
/// does (without its random jitter), the accompaniment's parts as accompaniment voices and the
/// tune's parts on the family's first program.
pub fn frame_notes(parts: &[MidiPart], meter: Meter, bpm: f64, frame_rate: f64) -> Vec<FrameNote> {
    let frames_per_quarter = frame_rate * 60.0 / (bpm * meter.beat_quarters);
    let bar = meter.beats_per_bar as f64 * meter.beat_quarters;
    let mut notes = Vec::new();
    for part in parts {
        let voice = match part.name.as_str() {
            CHORDS_PART => Voice::Chords,
            BASS_PART => Voice::Bass,
            _ => Voice::Part { program_slot: 0 },
        };
        for n in &part.notes {
            let velocity = played_velocity(n.velocity, n.start_q.rem_euclid(bar), meter.beat_quarters, 0.0);
            notes.push(FrameNote { on: n.start_q * frames_per_quarter, off: (n.start_q + n.dur_q) * frames_per_quarter, key: n.key, velocity, voice });
        }
    }
    notes.sort_by(|a, b| a.on.total_cmp(&b.on));
    notes
}

/// How the performer plays a composed tune.
#[derive(Debug, Clone)]
pub struct PerformSettings {
    pub styles: [f32; STYLES.len()],
    pub tonic: u8,
    pub mode: u8,
    pub meter: Meter,
    pub bpm: f64,
    pub instrument: usize,
    pub sampling: Sampling,
    pub seed: u64,
}

/// Refuse a prior that is no performer, or that plays another codec's codes.
pub fn check_performer(performer: &Prior, codec: &Codec) -> Result<(), String> {
    if !performer.cfg.notes {
        return Err("this prior is not a performer: it takes no notes".into());
    }
    let id = codec_codes_id(codec).map_err(|e| e.to_string())?;
    if performer.cfg.codec_id != id {
        return Err(format!("the performer plays the codes of codec {}, not of this codec ({id})", performer.cfg.codec_id));
    }
    Ok(())
}

/// Play `notes` (from `frame_notes`) with a performer (a prior with `PriorConfig::notes`) and
/// decode its codes with `codec`: mono audio at the codec's rate, as long as the notes plus a
/// second of release. `progress` hears the fraction played.
pub fn perform(performer: &Prior, codec: &Codec, notes: &[FrameNote], s: &PerformSettings, progress: impl FnMut(f64)) -> Result<Vec<f32>, String> {
    check_performer(performer, codec)?;
    let end = notes.iter().map(|n| n.off).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let frames = (end + performer.cfg.frame_rate).ceil() as usize;
    let codes = perform_codes(performer, Some(notes), frames, 0.0, s, progress)?;
    decode(codec, codes)
}

/// The performer's code frames (`frames` of them, frame-major) from beat `start_beats` of the
/// grid: each frame's notes painted from `notes` (timed in frames, sorted by onset), or none at
/// all (the performer from its knobs alone, as guidance's unconditional row hears it).
pub fn perform_codes(performer: &Prior, notes: Option<&[FrameNote]>, frames: usize, start_beats: f64, s: &PerformSettings, mut progress: impl FnMut(f64)) -> Result<Vec<u32>, String> {
    if !(s.bpm.is_finite() && s.bpm > 0.0) {
        return Err(format!("tempo {} is not a tempo", s.bpm));
    }
    let frame_rate = performer.cfg.frame_rate;
    let knobs = Knobs { styles: Some(s.styles), instrument: Some(s.instrument as u32), key: Some((s.tonic as u32 % 12, s.mode.min(1) as u32)), bpm: Some(s.bpm as f32) };
    let mut stream = PriorStream::new(performer, &Device::Cpu, s.seed).map_err(|e| e.to_string())?;
    let mut features = vec![0.0; NOTE_DIM];
    let mut codes: Vec<u32> = Vec::with_capacity(frames * performer.cfg.n_levels);
    let mut step = 0usize;
    while codes.len() < frames * performer.cfg.n_levels {
        let row = notes.map(|notes| {
            // Only the notes near this step matter; `notes` is sorted by onset.
            let near = notes.partition_point(|n| n.on < step as f64 + 2.0);
            paint(&notes[..near], step as i64, 1, &mut features);
            &features[..]
        });
        let grid = GridPosition { beats: start_beats + step as f64 * s.bpm / 60.0 / frame_rate, beats_per_bar: s.meter.beats_per_bar, phrase: true };
        if let Some(frame) = stream.step_with_notes(performer, &knobs, &grid, row, &s.sampling).map_err(|e| format!("the performer failed: {e}"))? {
            codes.extend(frame);
        }
        step += 1;
        progress((step as f64 / frames.max(1) as f64).min(1.0));
    }
    Ok(codes)
}

/// Decode code frames (frame-major) with `codec`'s whole-clip decoder: mono audio at its rate,
/// NaN silenced and samples clamped to full scale.
pub fn decode(codec: &Codec, codes: Vec<u32>) -> Result<Vec<f32>, String> {
    let levels = codec.cfg.n_codebooks;
    let frames = codes.len() / levels.max(1);
    let codes = Tensor::from_vec(codes, (1, frames, levels), &Device::Cpu).map_err(|e| e.to_string())?;
    let audio = codec.decode(&codes).and_then(|a| a.squeeze(0)?.to_vec1::<f32>()).map_err(|e| format!("the decoder failed: {e}"))?;
    Ok(audio.into_iter().map(|v| if v.is_finite() { v.clamp(-1.0, 1.0) } else { 0.0 }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::score::ScoreConfig;
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    #[test]
    fn a_composed_tune_has_its_bars_and_the_same_seed_gives_the_same_tune() {
        let vm = VarMap::new();
        let model = ScorePrior::new(&ScoreConfig::tiny(), VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
        let settings = ComposeSettings {
            styles: [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            tonic: 9,
            mode: 1,
            time_signature: (6, 8),
            bars: 4,
            seed: 3,
            instrument: 3,
            sampling: Sampling { temperature: 1.0, top_k: 0, top_p: 0.95, guidance: 1.5, repeat: 1.0 },
            accompaniment: true,
        };
        let mut calls = 0;
        let a = compose(&model, &settings, |_| calls += 1).unwrap();
        assert_eq!(calls, 4);
        assert_eq!(a, compose(&model, &settings, |_| {}).unwrap());
        // Notes lie within the four 6/8 bars (twelve quarters), give or take a held last note.
        assert!(a.iter().flat_map(|p| &p.notes).all(|n| n.start_q < 12.0));
        assert!(compose(&model, &ComposeSettings { time_signature: (7, 8), ..settings.clone() }, |_| {}).unwrap_err().contains("7/8"));
        assert!(compose(&model, &ComposeSettings { bars: 0, ..settings }, |_| {}).is_err());
    }

    /// A composed tune's notes land on the performer's frames at the tempo asked (a 6/8 bar of
    /// two dotted quarters at 90 beats a minute lasts 4/3 s, 100 frames), with the renderer's
    /// accents; a performer plays them into audio as long as the notes, the same seed giving
    /// the same bits; a prior that takes no notes, or belongs to another codec, is refused.
    #[test]
    fn a_performer_plays_a_composed_tune_in_time() {
        use crate::model::codec::CodecConfig;
        use crate::model::pair::random_model_files;
        use crate::model::prior::PriorConfig;
        let meter = Meter::of_time_signature(6, 8).unwrap();
        let tune = MidiPart { name: "tune".into(), program: 0, notes: vec![MidiNote { start_q: 0.0, dur_q: 1.5, key: 62, velocity: 84 }, MidiNote { start_q: 3.0, dur_q: 0.5, key: 64, velocity: 84 }] };
        let bass = MidiPart { name: BASS_PART.into(), program: 32, notes: vec![MidiNote { start_q: 1.5, dur_q: 1.5, key: 38, velocity: 70 }] };
        let notes = frame_notes(&[tune, bass], meter, 90.0, 75.0);
        let on: Vec<(f64, u8, Voice)> = notes.iter().map(|n| ((n.on * 1e6).round() / 1e6, n.velocity, n.voice)).collect();
        // 75 frames/s, 2.25 quarters/s: 100/3 frames a quarter. Downbeats +10, beats +4.
        assert_eq!(on, vec![(0.0, 81, Voice::Part { program_slot: 0 }), (50.0, 64, Voice::Bass), (100.0, 81, Voice::Part { program_slot: 0 })]);
        assert!((notes[2].off - 100.0 - 50.0 / 3.0).abs() < 1e-9);

        let (c, p) = random_model_files(&CodecConfig::tiny(), &PriorConfig { notes: true, ..PriorConfig::tiny() }, None, None).unwrap();
        let codec = Codec::from_bytes(&c, &Device::Cpu).unwrap();
        let performer = Prior::from_bytes(&p, &Device::Cpu).unwrap();
        let settings = PerformSettings { styles: [0.0, 0.0, 1.0, 0.0, 0.0, 0.0], tonic: 2, mode: 0, meter, bpm: 90.0, instrument: 1, sampling: Sampling { temperature: 1.0, top_k: 0, top_p: 1.0, guidance: 3.0, repeat: 0.0 }, seed: 5 };
        let a = perform(&performer, &codec, &notes, &settings, |_| {}).unwrap();
        let frames = (notes.iter().map(|n| n.off).fold(0.0, f64::max) + 75.0).ceil() as usize;
        assert_eq!(a.len(), frames * codec.cfg.hop());
        assert!(a.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
        assert_eq!(a, perform(&performer, &codec, &notes, &settings, |_| {}).unwrap());
        let (_, plain) = random_model_files(&CodecConfig::tiny(), &PriorConfig::tiny(), None, None).unwrap();
        let err = perform(&Prior::from_bytes(&plain, &Device::Cpu).unwrap(), &codec, &notes, &settings, |_| {}).unwrap_err();
        assert!(err.contains("not a performer"), "{err}");
        let (other_codec, _) = random_model_files(&CodecConfig::tiny(), &PriorConfig::tiny(), None, None).unwrap();
        let err = perform(&performer, &Codec::from_bytes(&other_codec, &Device::Cpu).unwrap(), &notes, &settings, |_| {}).unwrap_err();
        assert!(err.contains("codec"), "{err}");
    }
}
