//! Notes of an exported MIDI file, in quarter notes, ready to be re-timed and re-voiced.

use anyhow::{bail, Context, Result};
use midly::{MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};

/// One note, with time in quarter notes so tempo is applied only when rendering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Note {
    pub start_q: f64,
    pub dur_q: f64,
    pub key: u8,
    pub velocity: u8,
    /// Index of the part (MIDI track that holds notes) it belongs to.
    pub part: u8,
}

/// Parse a Standard MIDI File into notes sorted by start, then key.
pub fn parse_midi(bytes: &[u8]) -> Result<Vec<Note>> {
    let smf = Smf::parse(bytes).context("not a Standard MIDI File")?;
    let tpq = match smf.header.timing {
        Timing::Metrical(t) => t.as_int() as f64,
        Timing::Timecode(..) => bail!("SMPTE timing is not supported"),
    };
    let mut notes = Vec::new();
    let mut part = 0u8;
    for track in &smf.tracks {
        let mut tick: u64 = 0;
        // (channel, key) -> (start tick, velocity)
        let mut open: std::collections::HashMap<(u8, u8), (u64, u8)> = Default::default();
        let mut any = false;
        for ev in track {
            tick += ev.delta.as_int() as u64;
            match ev.kind {
                TrackEventKind::Midi { channel, message } => {
                    let ch = channel.as_int();
                    match message {
                        MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                            // A retrigger of a sounding key ends the previous note.
                            if let Some((s, v)) = open.insert((ch, key.as_int()), (tick, vel.as_int())) {
                                push(&mut notes, s, tick, key.as_int(), v, part, tpq);
                            }
                            any = true;
                        }
                        MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                            if let Some((s, v)) = open.remove(&(ch, key.as_int())) {
                                push(&mut notes, s, tick, key.as_int(), v, part, tpq);
                            }
                        }
                        _ => {}
                    }
                }
                TrackEventKind::Meta(MetaMessage::EndOfTrack) => break,
                _ => {}
            }
        }
        for ((_, key), (s, v)) in open {
            push(&mut notes, s, tick, key, v, part, tpq);
        }
        if any {
            part = part.saturating_add(1);
        }
    }
    if notes.is_empty() {
        bail!("no notes");
    }
    notes.sort_by(|a, b| a.start_q.total_cmp(&b.start_q).then(a.key.cmp(&b.key)));
    Ok(notes)
}

fn push(notes: &mut Vec<Note>, start: u64, end: u64, key: u8, velocity: u8, part: u8, tpq: f64) {
    if end > start {
        notes.push(Note {
            start_q: start as f64 / tpq,
            dur_q: (end - start) as f64 / tpq,
            key,
            velocity,
            part,
        });
    }
}
