//! Standard MIDI files of scores: what `cantor compose` writes, so a musician can drag a tune
//! into any DAW, and what `cantor render --midi-out` writes of the notes a take played. One
//! track per part, each on its own channel with its General MIDI program.

use anyhow::{Context, Result};
use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
use std::path::Path;

/// MIDI ticks per quarter note: a multiple of the score grid's 24 (`model::score::tokens`).
pub const TICKS_PER_QUARTER: u16 = 480;

/// One note of a part, in quarter notes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MidiNote {
    pub start_q: f64,
    pub dur_q: f64,
    pub key: u8,
    pub velocity: u8,
}

/// One track.
#[derive(Debug, Clone, PartialEq)]
pub struct MidiPart {
    pub name: String,
    /// General MIDI program (0-127).
    pub program: u8,
    pub notes: Vec<MidiNote>,
}

/// Write `parts` as a type-1 file at `quarters_per_minute` in `time_signature`: a tempo
/// track, then one track per part on channels 0, 1, ... (skipping 9, the drums).
pub fn write(path: &Path, parts: &[MidiPart], quarters_per_minute: f64, time_signature: (u32, u32)) -> Result<()> {
    let bytes = to_bytes(parts, quarters_per_minute, time_signature)?;
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The file's bytes (see `write`).
pub fn to_bytes(parts: &[MidiPart], quarters_per_minute: f64, time_signature: (u32, u32)) -> Result<Vec<u8>> {
    anyhow::ensure!(parts.len() <= 15, "{} parts: a MIDI file holds 15 melodic channels", parts.len());
    let channels: Vec<u8> = (0..parts.len() as u8).map(|i| if i >= 9 { i + 1 } else { i }).collect();
    to_bytes_on(&channels, parts, quarters_per_minute, time_signature)
}

/// The file's bytes with part `i` on MIDI channel `channels[i]` (0-15).
pub fn to_bytes_on(channels: &[u8], parts: &[MidiPart], quarters_per_minute: f64, time_signature: (u32, u32)) -> Result<Vec<u8>> {
    anyhow::ensure!(channels.len() == parts.len() && channels.iter().all(|&c| c < 16), "a channel (0-15) for each part");
    anyhow::ensure!(quarters_per_minute.is_finite() && quarters_per_minute > 0.0, "tempo {quarters_per_minute} is not a tempo");
    let tpq = TICKS_PER_QUARTER as f64;
    let mut tracks = Vec::new();
    let (n, d) = time_signature;
    let micros = (60_000_000.0 / quarters_per_minute).round().clamp(1.0, 16_777_215.0) as u32;
    tracks.push(vec![
        TrackEvent { delta: u28::new(0), kind: TrackEventKind::Meta(MetaMessage::Tempo(u24::new(micros))) },
        TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::TimeSignature(n.min(255) as u8, d.max(1).trailing_zeros() as u8, 24, 8)),
        },
        TrackEvent { delta: u28::new(0), kind: TrackEventKind::Meta(MetaMessage::EndOfTrack) },
    ]);
    let names: Vec<String> = parts.iter().map(|p| p.name.clone()).collect();
    for (i, part) in parts.iter().enumerate() {
        let channel = u4::new(channels[i]);
        // (tick, off before on at the same tick, key, velocity)
        let mut events: Vec<(u64, bool, u8, u8)> = Vec::new();
        for note in &part.notes {
            let on = (note.start_q * tpq).round().max(0.0) as u64;
            let off = ((note.start_q + note.dur_q) * tpq).round().max(on as f64 + 1.0) as u64;
            events.push((on, true, note.key.min(127), note.velocity.clamp(1, 127)));
            events.push((off, false, note.key.min(127), 0));
        }
        // Note-offs first at a tick, so a repeated key is released before it sounds again.
        events.sort_by_key(|&(t, on, key, _)| (t, on, key));
        let mut track = vec![
            TrackEvent { delta: u28::new(0), kind: TrackEventKind::Meta(MetaMessage::TrackName(names[i].as_bytes())) },
            TrackEvent { delta: u28::new(0), kind: TrackEventKind::Midi { channel, message: MidiMessage::ProgramChange { program: u7::new(part.program.min(127)) } } },
        ];
        let mut now = 0u64;
        for (t, on, key, vel) in events {
            let delta = u28::new((t - now).min(u28::max_value().as_int() as u64) as u32);
            now = t;
            let message = if on { MidiMessage::NoteOn { key: u7::new(key), vel: u7::new(vel) } } else { MidiMessage::NoteOff { key: u7::new(key), vel: u7::new(0) } };
            track.push(TrackEvent { delta, kind: TrackEventKind::Midi { channel, message } });
        }
        track.push(TrackEvent { delta: u28::new(0), kind: TrackEventKind::Meta(MetaMessage::EndOfTrack) });
        tracks.push(track);
    }
    let smf = Smf { header: Header::new(Format::Parallel, Timing::Metrical(u15::new(TICKS_PER_QUARTER))), tracks };
    let mut out = Vec::new();
    smf.write_std(&mut out).context("encoding the MIDI file")?;
    Ok(out)
}

/// A note start or end as a take played it: the output frame it falls on (0 is the first
/// sample), its channel and key, and its velocity (0 ends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayedEvent {
    pub frame: u64,
    pub channel: u8,
    pub key: u8,
    pub velocity: u8,
}

/// The notes a take played as parts, one per channel used (in channel order, with the channel),
/// times in quarter notes at `quarters_per_minute` from the frames at `sample_rate`. A note
/// still sounding at `end_frame` ends there; an end with no start is ignored.
pub fn played_parts(events: &[PlayedEvent], sample_rate: u32, quarters_per_minute: f64, end_frame: u64, program_of: impl Fn(u8) -> (String, u8)) -> Vec<(u8, MidiPart)> {
    let q = |frame: u64| frame as f64 / sample_rate as f64 * quarters_per_minute / 60.0;
    let mut started: [[Option<(u64, u8)>; 128]; 16] = [[None; 128]; 16];
    let mut notes: [Vec<MidiNote>; 16] = Default::default();
    let mut end = |c: usize, k: usize, at: u64, started: &mut [[Option<(u64, u8)>; 128]; 16]| {
        if let Some((on, velocity)) = started[c][k].take() {
            notes[c].push(MidiNote { start_q: q(on), dur_q: q(at.max(on)) - q(on), key: k as u8, velocity });
        }
    };
    for e in events {
        let (c, k) = (e.channel as usize & 15, e.key as usize & 127);
        // A key struck again while it sounds ends its last note first.
        end(c, k, e.frame, &mut started);
        if e.velocity > 0 {
            started[c][k] = Some((e.frame, e.velocity));
        }
    }
    for c in 0..16 {
        for k in 0..128 {
            end(c, k, end_frame, &mut started);
        }
    }
    let mut parts = Vec::new();
    for (c, mut n) in notes.into_iter().enumerate() {
        if !n.is_empty() {
            n.sort_by(|a, b| a.start_q.total_cmp(&b.start_q));
            let (name, program) = program_of(c as u8);
            parts.push((c as u8, MidiPart { name, program, notes: n }));
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_with_its_notes_tempo_and_programs() {
        let part = |name: &str, program, keys: &[u8]| MidiPart {
            name: name.into(),
            program,
            notes: keys.iter().enumerate().map(|(i, &key)| MidiNote { start_q: i as f64 * 0.5, dur_q: 0.5, key, velocity: 80 }).collect(),
        };
        let bytes = to_bytes(&[part("melody", 40, &[62, 62, 66]), part("bass", 32, &[38])], 165.0, (6, 8)).unwrap();
        let smf = Smf::parse(&bytes).unwrap();
        assert_eq!(smf.tracks.len(), 3);
        let ons = |t: &Vec<TrackEvent>| t.iter().filter(|e| matches!(e.kind, TrackEventKind::Midi { message: MidiMessage::NoteOn { .. }, .. })).count();
        assert_eq!((ons(&smf.tracks[1]), ons(&smf.tracks[2])), (3, 1));
        assert!(smf.tracks[0].iter().any(|e| matches!(e.kind, TrackEventKind::Meta(MetaMessage::Tempo(t)) if t.as_int() == 363_636)));
        assert!(smf.tracks[0].iter().any(|e| matches!(e.kind, TrackEventKind::Meta(MetaMessage::TimeSignature(6, 3, _, _)))));
        assert!(smf.tracks[2].iter().any(|e| matches!(e.kind, TrackEventKind::Midi { message: MidiMessage::ProgramChange { program }, .. } if program.as_int() == 32)));
        assert!(to_bytes(&[], f64::NAN, (4, 4)).is_err());
    }
}
