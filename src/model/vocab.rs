//! The conditioning vocabulary: the labels the corpus carries and the prior is steered by.
//!
//! One definition shared by the dataset builder (which writes the labels), the prior (which
//! embeds them) and the plugin (whose style / instrument / key parameters map onto them).
//! Indices are part of the trained model: append new entries, never reorder.

/// Musical styles with real weight in the corpus (rare dance types are merged into a neighbour:
/// slip jigs, under an hour, into jigs; waltzes into airs; strathspeys into reels).
pub const STYLES: [&str; 6] = ["chorale", "air", "jig", "reel", "hornpipe", "march/polka"];

/// General MIDI instrument families the corpus is rendered with, and their GM programs (0-based).
/// The first program of each family is its most typical voice.
pub const INSTRUMENT_FAMILIES: [(&str, &[u8]); 8] = [
    ("piano", &[0, 1, 4]),           // acoustic grand, bright, electric piano
    ("strings", &[40, 48, 42, 49]),  // violin, string ensemble, cello, slow strings
    ("organ", &[19, 16, 21]),        // church organ, drawbar organ, accordion
    ("winds", &[73, 71, 68, 74]),    // flute, clarinet, oboe, recorder
    ("brass", &[61, 56, 60]),        // brass section, trumpet, french horn
    ("plucked", &[24, 46, 25, 105]), // nylon guitar, harp, steel guitar, banjo
    ("choir/pads", &[52, 53, 89]),   // choir aahs, voice oohs, warm pad
    ("mallets", &[11, 12, 8]),       // vibraphone, marimba, celesta
];

/// Pitch-class names, index = semitones above C.
pub const KEY_NAMES: [&str; 12] = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];

/// Modes the corpus labels (church modes in the ABC books are folded onto the nearer of the two).
pub const MODES: [&str; 2] = ["major", "minor"];

/// Tempo range (beats per minute) the corpus covers and the prior is conditioned over.
pub const BPM_RANGE: (f32, f32) = (60.0, 180.0);

/// Index of a style name, case-insensitive.
pub fn style_index(name: &str) -> Option<usize> {
    STYLES.iter().position(|s| s.eq_ignore_ascii_case(name))
}

/// Index of an instrument family name, case-insensitive.
pub fn instrument_index(name: &str) -> Option<usize> {
    INSTRUMENT_FAMILIES.iter().position(|(s, _)| s.eq_ignore_ascii_case(name))
}

/// Pitch class of a tonic name such as "D", "f#", "Bb", "E-" (music21 spells flats with '-').
pub fn pitch_class(name: &str) -> Option<u8> {
    let mut chars = name.trim().chars();
    let letter = chars.next()?.to_ascii_uppercase();
    let base: i32 = match letter {
        'C' => 0,
        'D' => 2,
        'E' => 4,
        'F' => 5,
        'G' => 7,
        'A' => 9,
        'B' => 11,
        _ => return None,
    };
    let mut pc = base;
    for c in chars {
        match c {
            '#' | 's' => pc += 1,
            'b' | '-' => pc -= 1,
            _ => return None,
        }
    }
    Some(pc.rem_euclid(12) as u8)
}

/// Index of a mode name ("major"/"minor", and church modes folded onto them).
pub fn mode_index(name: &str) -> Option<usize> {
    match name.trim().to_ascii_lowercase().as_str() {
        "major" | "maj" | "ionian" | "mixolydian" | "lydian" => Some(0),
        "minor" | "min" | "m" | "aeolian" | "dorian" | "phrygian" | "locrian" => Some(1),
        _ => None,
    }
}

/// How the corpus counts the beats of a time signature (music21's beat, which the prior's tempo
/// and bar-position conditioning were trained on): simple metres count the denominator's note
/// (3/4: three quarters), compound metres its dotted note (6/8: two dotted quarters, 9/8 three,
/// 3/8 one), and cut time its half notes (2/2: two). Hosts report tempo in quarter notes per
/// minute, so a jig in 6/8 that the host plays at 174 is, to the prior, 116 beats per minute
/// in two.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Meter {
    /// Beats in a bar, as the prior's bar position counts them.
    pub beats_per_bar: u32,
    /// Length of one beat in quarter notes (1.5 for the dotted quarter of 6/8).
    pub beat_quarters: f64,
}

impl Meter {
    /// Plain 4/4, what the plugin assumes until a host says otherwise.
    pub const COMMON_TIME: Meter = Meter { beats_per_bar: 4, beat_quarters: 1.0 };

    /// The meter of `numerator`/`denominator`, or `None` for a signature no score writes
    /// (a zero, a denominator that is not a power of two up to 64, more than 32 beats).
    pub fn of_time_signature(numerator: u32, denominator: u32) -> Option<Meter> {
        if numerator == 0 || !denominator.is_power_of_two() || denominator > 64 {
            return None;
        }
        let note = 4.0 / denominator as f64;
        let compound = numerator % 3 == 0 && (numerator > 3 || denominator >= 8);
        let meter = if compound {
            Meter { beats_per_bar: numerator / 3, beat_quarters: 3.0 * note }
        } else {
            Meter { beats_per_bar: numerator, beat_quarters: note }
        };
        (meter.beats_per_bar <= 32).then_some(meter)
    }

    /// Parse "6/8" as typed on a command line, into (numerator, denominator), or say why not.
    pub fn parse(text: &str) -> Result<(u32, u32), String> {
        let sig = text.trim().split_once('/').and_then(|(n, d)| Some((n.trim().parse().ok()?, d.trim().parse().ok()?)));
        match sig {
            Some((n, d)) if Self::of_time_signature(n, d).is_some() => Ok((n, d)),
            _ => Err(format!("{text:?} is not a time signature; use e.g. 4/4, 3/4, 6/8, 2/2")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_count_beats_as_the_corpus_does() {
        // The corpus index's (beat, bar) in quarter notes for each signature it holds.
        for (sig, beat, bar) in [((2, 2), 2.0, 4.0), ((2, 4), 1.0, 2.0), ((3, 2), 2.0, 6.0), ((3, 4), 1.0, 3.0), ((3, 8), 1.5, 1.5), ((4, 4), 1.0, 4.0), ((5, 4), 1.0, 5.0), ((6, 4), 3.0, 6.0), ((6, 8), 1.5, 3.0), ((9, 8), 1.5, 4.5), ((12, 8), 1.5, 6.0)] {
            let m = Meter::of_time_signature(sig.0, sig.1).unwrap();
            assert_eq!((m.beat_quarters, m.beats_per_bar as f64 * m.beat_quarters), (beat, bar), "{sig:?}");
        }
        for (n, d) in [(0, 4), (4, 0), (4, 3), (4, 128), (99, 4), (99, 8)] {
            assert_eq!(Meter::of_time_signature(n, d), None, "{n}/{d}");
        }
        assert_eq!(Meter::parse(" 6/8"), Ok((6, 8)));
        assert!(Meter::parse("6-8").unwrap_err().contains("not a time signature"));
        assert!(Meter::parse("7/5").is_err());
    }

    #[test]
    fn pitch_classes_parse_both_spellings() {
        assert_eq!(pitch_class("C"), Some(0));
        assert_eq!(pitch_class("F#"), Some(6));
        assert_eq!(pitch_class("B-"), Some(10));
        assert_eq!(pitch_class("Bb"), Some(10));
        assert_eq!(pitch_class("c-"), Some(11));
        assert_eq!(pitch_class("H"), None);
    }

    #[test]
    fn names_resolve_to_indices() {
        assert_eq!(style_index("Reel"), Some(3));
        assert_eq!(instrument_index("mallets"), Some(7));
        assert_eq!(mode_index("dorian"), Some(1));
        assert_eq!(mode_index("weird"), None);
    }
}
