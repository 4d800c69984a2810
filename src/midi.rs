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

/// A note of a MIDI file to perform, in seconds from the file's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerformedNote {
    pub on_s: f64,
    pub off_s: f64,
    /// MIDI channel, 0-15 (never 9: the drums are left out).
    pub channel: u8,
    pub key: u8,
    pub velocity: u8,
}

/// What `read_performance` takes from a Standard MIDI file.
#[derive(Debug, Clone, PartialEq)]
pub struct Performance {
    /// Every pitched note, in onset order.
    pub notes: Vec<PerformedNote>,
    /// The file's first tempo in quarter notes a minute (120 if it gives none).
    pub quarters_per_minute: f64,
    /// Its first time signature (4/4 if it gives none).
    pub time_signature: (u32, u32),
    /// Notes left out: on the General MIDI drum channel (10), which the performer cannot play.
    pub drum_notes: usize,
}

/// Notes a file may hold: far more than any score (a 10-minute piano piece has about 10,000),
/// few enough that a hostile file cannot make the renderer hoard memory.
pub const MAX_PERFORMED_NOTES: usize = 200_000;

/// Read the notes of a Standard MIDI file (format 0 or 1, metrical or SMPTE timing) in seconds,
/// through its tempo map. The sustain pedal (CC 64) holds notes released under it until it
/// lifts; a note still sounding at its track's end ends there; a key struck again while it
/// sounds ends its last note first; zero-length notes are dropped. Every problem is an error
/// in plain words, never a panic.
pub fn read_performance(bytes: &[u8]) -> Result<Performance> {
    let smf = Smf::parse(bytes).context("not a Standard MIDI file")?;
    anyhow::ensure!(smf.header.format != Format::Sequential, "sequential (format 2) MIDI files hold separate songs; export one song as format 0 or 1");
    // Tempo changes from every track (format 1 keeps them in the first), in ticks.
    let mut tempos: Vec<(u64, u32)> = Vec::new();
    let mut time_signature = None;
    for track in &smf.tracks {
        let mut tick = 0u64;
        for e in track {
            tick += e.delta.as_int() as u64;
            match e.kind {
                TrackEventKind::Meta(MetaMessage::Tempo(t)) if t.as_int() > 0 => tempos.push((tick, t.as_int())),
                TrackEventKind::Meta(MetaMessage::TimeSignature(n, d, _, _)) if time_signature.is_none() && n > 0 && d < 8 => time_signature = Some((n as u32, 1u32 << d)),
                _ => {}
            }
        }
    }
    tempos.sort_by_key(|t| t.0);
    let seconds_of = |tick: u64| -> f64 {
        match smf.header.timing {
            Timing::Metrical(tpq) => {
                let tpq = tpq.as_int().max(1) as f64;
                let (mut s, mut at, mut us) = (0.0, 0u64, 500_000.0);
                for &(t, tempo) in tempos.iter().take_while(|(t, _)| *t <= tick) {
                    s += (t - at) as f64 / tpq * us / 1e6;
                    at = t;
                    us = tempo as f64;
                }
                s + (tick - at) as f64 / tpq * us / 1e6
            }
            Timing::Timecode(fps, sub) => tick as f64 / (fps.as_f32() as f64 * sub.max(1) as f64),
        }
    };
    let mut notes = Vec::new();
    let mut drum_notes = 0;
    for track in &smf.tracks {
        let mut tick = 0u64;
        // Per channel and key: the sounding note's (onset s, velocity); per channel: pedal down,
        // and the keys released under it.
        let mut sounding = [[None::<(f64, u8)>; 128]; 16];
        let mut pedal = [false; 16];
        let mut held = [[false; 128]; 16];
        let end = |c: usize, k: usize, at: f64, sounding: &mut [[Option<(f64, u8)>; 128]; 16], notes: &mut Vec<PerformedNote>| {
            if let Some((on, velocity)) = sounding[c][k].take() {
                if at > on {
                    notes.push(PerformedNote { on_s: on, off_s: at, channel: c as u8, key: k as u8, velocity });
                }
            }
        };
        for e in track {
            tick += e.delta.as_int() as u64;
            let TrackEventKind::Midi { channel, message } = e.kind else { continue };
            let c = channel.as_int() as usize;
            let at = seconds_of(tick);
            match message {
                MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                    if c == 9 {
                        drum_notes += 1;
                        continue;
                    }
                    let k = key.as_int() as usize;
                    end(c, k, at, &mut sounding, &mut notes);
                    held[c][k] = false;
                    sounding[c][k] = Some((at, vel.as_int()));
                }
                MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                    let k = key.as_int() as usize;
                    if pedal[c] && sounding[c][k].is_some() {
                        held[c][k] = true;
                    } else {
                        end(c, k, at, &mut sounding, &mut notes);
                    }
                }
                MidiMessage::Controller { controller, value } if controller.as_int() == 64 => {
                    pedal[c] = value.as_int() >= 64;
                    if !pedal[c] {
                        for k in 0..128 {
                            if std::mem::take(&mut held[c][k]) {
                                end(c, k, at, &mut sounding, &mut notes);
                            }
                        }
                    }
                }
                _ => {}
            }
            anyhow::ensure!(notes.len() <= MAX_PERFORMED_NOTES, "the file holds more than {MAX_PERFORMED_NOTES} notes");
        }
        let at = seconds_of(tick);
        for c in 0..16 {
            for k in 0..128 {
                end(c, k, at, &mut sounding, &mut notes);
            }
        }
    }
    anyhow::ensure!(notes.iter().all(|n| n.on_s.is_finite() && n.off_s.is_finite()), "the file's timing is unusable");
    notes.sort_by(|a, b| a.on_s.total_cmp(&b.on_s).then(a.channel.cmp(&b.channel)).then(a.key.cmp(&b.key)));
    let quarters_per_minute = tempos.first().filter(|t| t.0 == 0).map_or(120.0, |t| 60e6 / t.1 as f64);
    Ok(Performance { notes, quarters_per_minute, time_signature: time_signature.unwrap_or((4, 4)), drum_notes })
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

    #[test]
    fn a_performance_reads_through_the_tempo_map_with_the_pedal_and_without_drums() {
        use midly::num::u28;
        let ev = |delta: u32, kind| TrackEvent { delta: u28::new(delta), kind };
        let note = |on: bool, channel: u8, key: u8| TrackEventKind::Midi {
            channel: u4::new(channel),
            message: if on { MidiMessage::NoteOn { key: u7::new(key), vel: u7::new(90) } } else { MidiMessage::NoteOff { key: u7::new(key), vel: u7::new(0) } },
        };
        let pedal = |down: bool| TrackEventKind::Midi { channel: u4::new(0), message: MidiMessage::Controller { controller: u7::new(64), value: u7::new(if down { 127 } else { 0 }) } };
        // 480 ticks a quarter: 120 quarters a minute for the first quarter, then 60.
        let track = vec![
            ev(0, TrackEventKind::Meta(MetaMessage::Tempo(u24::new(500_000)))),
            ev(0, TrackEventKind::Meta(MetaMessage::TimeSignature(3, 2, 24, 8))),
            ev(0, note(true, 0, 60)),
            ev(0, note(true, 9, 36)),
            ev(480, TrackEventKind::Meta(MetaMessage::Tempo(u24::new(1_000_000)))),
            ev(0, note(false, 0, 60)),
            ev(0, pedal(true)),
            ev(0, note(true, 0, 64)),
            ev(480, note(false, 0, 64)),
            ev(480, pedal(false)),
            ev(0, note(true, 1, 67)),
            ev(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)),
        ];
        let smf = Smf { header: Header::new(Format::SingleTrack, Timing::Metrical(u15::new(480))), tracks: vec![track] };
        let mut bytes = Vec::new();
        smf.write_std(&mut bytes).unwrap();
        let p = read_performance(&bytes).unwrap();
        assert_eq!((p.quarters_per_minute, p.time_signature, p.drum_notes), (120.0, (3, 4), 1));
        // The pedal holds 64 from its release at 1.5 s to the pedal's lift at 2.5 s; 67 starts
        // at the track's end and is dropped, zero long.
        let got: Vec<_> = p.notes.iter().map(|n| (n.on_s, n.off_s, n.key)).collect();
        assert_eq!(got, vec![(0.0, 0.5, 60), (0.5, 2.5, 64)]);
        assert!(read_performance(b"MThd garbage").is_err());
    }
}
