//! A bass line and block chords under a single-line tune, as the corpus renderer plays them
//! (`xtask dataset`'s renders use this function): one diatonic triad per bar (per half bar in
//! bars of four quarters or more), the triad that covers most of the melody's sounding time
//! there, preferring the tonic, subdominant and dominant on ties. The score prior writes the
//! melody; this harmonises it the way the audio the performer learns from was harmonised.

/// Diatonic triads (root offset from the tonic, quality third) for major and minor keys.
const MAJOR_TRIADS: [(i32, i32); 6] = [(0, 4), (5, 4), (7, 4), (9, 3), (2, 3), (4, 3)];
const MINOR_TRIADS: [(i32, i32); 6] = [(0, 3), (5, 3), (7, 4), (3, 4), (8, 4), (10, 4)];

/// Which accompaniment part a note belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Block chords around C3-B3.
    Chord,
    /// The chord's root around C2-B2.
    Bass,
}

/// One accompaniment note, in quarter notes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccompanimentNote {
    pub start_q: f64,
    pub dur_q: f64,
    pub key: u8,
    pub velocity: u8,
    pub role: Role,
}

/// Harmonise `melody` ((start, length) in quarter notes, MIDI key) in the key of `tonic` (pitch
/// class) and mode, with bars of `bar_quarters` from `first_full_bar_q` on (a pickup stays
/// unaccompanied).
pub fn accompaniment(tonic: i32, minor: bool, bar_quarters: f64, first_full_bar_q: f64, melody: &[(f64, f64, u8)]) -> Vec<AccompanimentNote> {
    let tonic = tonic.rem_euclid(12);
    let triads = if minor { &MINOR_TRIADS } else { &MAJOR_TRIADS };
    let span = if bar_quarters >= 4.0 { bar_quarters / 2.0 } else { bar_quarters };
    let end = melody.iter().map(|n| n.0 + n.1).fold(0.0, f64::max);
    let mut out = Vec::new();
    if !(span > 0.0) {
        return out;
    }
    let mut t = first_full_bar_q;
    while t + 1e-9 < end {
        let t_end = t + span;
        let mut best = (f64::MIN, 0usize);
        for (i, &(root, third)) in triads.iter().enumerate() {
            let pcs = [(tonic + root) % 12, (tonic + root + third) % 12, (tonic + root + 7) % 12];
            let mut score = 0.0;
            for &(start, dur, key) in melody {
                let overlap = (start + dur).min(t_end) - start.max(t);
                if overlap > 0.0 {
                    let pc = key as i32 % 12;
                    if pcs.contains(&pc) {
                        score += overlap * if pc == pcs[0] { 1.2 } else { 1.0 };
                    }
                }
            }
            score -= i as f64 * 0.01; // prefer I, IV, V on ties
            if score > best.0 {
                best = (score, i);
            }
        }
        let (root, third) = triads[best.1];
        let root_pc = (tonic + root) % 12;
        let chord_root = 48 + root_pc;
        for k in [chord_root, chord_root + third, chord_root + 7] {
            out.push(AccompanimentNote { start_q: t, dur_q: span * 0.95, key: k as u8, velocity: 52, role: Role::Chord });
        }
        out.push(AccompanimentNote { start_q: t, dur_q: span * 0.9, key: (36 + root_pc) as u8, velocity: 70, role: Role::Bass });
        t = t_end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tonic_arpeggio_gets_the_tonic_triad_and_a_dominant_one_the_dominant() {
        // D major, 2/4: bar 1 arpeggiates D-F#-A, bar 2 A-C#-E.
        let melody = [(0.0, 0.5, 62), (0.5, 0.5, 66), (1.0, 1.0, 69), (2.0, 0.5, 69), (2.5, 0.5, 73), (3.0, 1.0, 76)];
        let acc = accompaniment(2, false, 2.0, 0.0, &melody);
        let bass: Vec<u8> = acc.iter().filter(|n| n.role == Role::Bass).map(|n| n.key).collect();
        assert_eq!(bass, vec![38, 45]);
        assert_eq!(acc.iter().filter(|n| n.role == Role::Chord).count(), 6);
    }
}
