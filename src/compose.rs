//! Writing a whole tune with the score prior, as `cantor compose` does: bars in the requested
//! style, key, mode and meter, harmonised as the corpus renderings are when the tune is a single
//! line, as MIDI parts on the instrument family's General MIDI programs.

use crate::midi::{MidiNote, MidiPart};
use crate::model::prior::sampling::Sampling;
use crate::model::score::accompaniment::{accompaniment, Role};
use crate::model::score::tokens::{meter_index, METERS, TICKS_PER_QUARTER};
use crate::model::score::writer::ScoreWriter;
use crate::model::score::{ScoreCond, ScorePrior};
use crate::model::vocab::{INSTRUMENT_FAMILIES, STYLES};

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

/// Velocities: the tune over its accompaniment, as the corpus renderer balances them.
const MELODY_VELOCITY: u8 = 84;
/// General MIDI acoustic bass, under every family's chords.
const BASS_PROGRAM: u8 = 32;

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
        for (role, name, program) in [(Role::Chord, "chords", program), (Role::Bass, "bass", BASS_PROGRAM)] {
            let notes = acc.iter().filter(|a| a.role == role).map(|a| MidiNote { start_q: a.start_q, dur_q: a.dur_q, key: a.key, velocity: a.velocity }).collect();
            parts.push(MidiPart { name: name.into(), program, notes });
        }
    }
    Ok(parts)
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
}
