//! The score as tokens: what the score prior reads and writes.
//!
//! A score is notes on a grid of `TICKS_PER_QUARTER` ticks, grouped in bars, with pitches
//! relative to the tonic (so a tune in any key is the same tokens, and any key is exact by
//! transposition) and time in quarter notes (so any tempo is exact). A piece reads:
//!
//! ```text
//! BOS  Bar [BarLen] Pos Part Pitch Dur Pitch Dur Pos Pitch Dur ...  Bar ...  EOS
//! ```
//!
//! - `Bar` opens every bar. `BarLen(t)` follows when the bar is not the meter's nominal length
//!   (a pickup, a shortened bar before a repeat).
//! - `Pos(t)`: the ticks from the bar line where the following notes start; written whenever the
//!   onset moves on (positions rise within a bar).
//! - `Part(p)`: the voice of the following notes (0 the melody or soprano; chorales have four
//!   or more); written first in every bar and whenever the voice changes.
//! - `Pitch(k)`: semitones above the tonic's lowest octave (MIDI key minus the tonic's pitch
//!   class), then `Dur(t)` its length in ticks (may cross bar lines).
//!
//! Style, mode, meter and the bar's place in the phrase are not tokens: they condition every
//! position (`ScoreCond`), so they never fall out of the model's attention window, and
//! classifier-free guidance can drop them.
//!
//! Notes are ordered by onset, then part, then pitch, then length: `decode(encode(s)) == s`
//! for every score the grid holds (tested on the corpus by the xtask dataset tests).

/// Ticks per quarter note. 24 holds every onset and length the corpus notates (sixteenths,
/// thirty-seconds and triplets of both: note times there have denominators 1, 2, 3, 4, 6, 8 and
/// 12 quarters); the few quintuplets are not on the grid and their pieces are left out.
pub const TICKS_PER_QUARTER: u32 = 24;
/// Longest bar: six quarter notes (12/8, 6/4, 3/2).
pub const MAX_BAR_TICKS: u32 = 6 * TICKS_PER_QUARTER;
/// Longest note: eight 4/4 bars. Airs and chorales hold notes across several bars (the
/// corpus has 576-tick notes in dozens of pieces); the few longer ones leave their pieces out.
pub const MAX_DUR_TICKS: u32 = 32 * TICKS_PER_QUARTER;
/// Voices a score may have.
pub const MAX_PARTS: usize = 8;
/// Pitches above the tonic's lowest octave (MIDI keys 0-127, less up to 11).
pub const PITCHES: usize = 128;

/// Token ids, range by range.
pub const PAD: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;
pub const BAR: u32 = 3;
const BAR_LEN_BASE: u32 = 4;
const POS_BASE: u32 = BAR_LEN_BASE + MAX_BAR_TICKS;
const PART_BASE: u32 = POS_BASE + MAX_BAR_TICKS;
const PITCH_BASE: u32 = PART_BASE + MAX_PARTS as u32;
const DUR_BASE: u32 = PITCH_BASE + PITCHES as u32;
/// Vocabulary size.
pub const VOCAB: usize = (DUR_BASE + MAX_DUR_TICKS) as usize;

/// What a token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Pad,
    Bos,
    Eos,
    Bar,
    /// This bar's length in ticks (1..=MAX_BAR_TICKS), when it is not the meter's.
    BarLen(u32),
    /// Onset within the bar, in ticks (0..MAX_BAR_TICKS).
    Pos(u32),
    Part(u8),
    /// Semitones above the tonic's lowest octave.
    Pitch(u8),
    /// Length in ticks (1..=MAX_DUR_TICKS).
    Dur(u32),
}

impl Token {
    pub fn id(self) -> u32 {
        match self {
            Token::Pad => PAD,
            Token::Bos => BOS,
            Token::Eos => EOS,
            Token::Bar => BAR,
            Token::BarLen(t) => BAR_LEN_BASE + t - 1,
            Token::Pos(t) => POS_BASE + t,
            Token::Part(p) => PART_BASE + p as u32,
            Token::Pitch(k) => PITCH_BASE + k as u32,
            Token::Dur(t) => DUR_BASE + t - 1,
        }
    }

    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            PAD => Token::Pad,
            BOS => Token::Bos,
            EOS => Token::Eos,
            BAR => Token::Bar,
            i if i < POS_BASE => Token::BarLen(i - BAR_LEN_BASE + 1),
            i if i < PART_BASE => Token::Pos(i - POS_BASE),
            i if i < PITCH_BASE => Token::Part((i - PART_BASE) as u8),
            i if i < DUR_BASE => Token::Pitch((i - PITCH_BASE) as u8),
            i if (i as usize) < VOCAB => Token::Dur(i - DUR_BASE + 1),
            _ => return None,
        })
    }
}

/// Time signatures the score prior knows, with their bar length. Index = the meter condition.
pub const METERS: [((u32, u32), u32); 10] = [
    ((2, 4), 2 * TICKS_PER_QUARTER),
    ((3, 4), 3 * TICKS_PER_QUARTER),
    ((4, 4), 4 * TICKS_PER_QUARTER),
    ((6, 8), 3 * TICKS_PER_QUARTER),
    ((9, 8), 9 * TICKS_PER_QUARTER / 2),
    ((2, 2), 4 * TICKS_PER_QUARTER),
    ((3, 8), 3 * TICKS_PER_QUARTER / 2),
    ((12, 8), 6 * TICKS_PER_QUARTER),
    ((6, 4), 6 * TICKS_PER_QUARTER),
    ((3, 2), 6 * TICKS_PER_QUARTER),
];

/// The meter condition of a time signature.
pub fn meter_index(numerator: u32, denominator: u32) -> Option<usize> {
    METERS.iter().position(|(ts, _)| *ts == (numerator, denominator))
}

/// One note of a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScoreNote {
    /// Onset in ticks from the piece's start.
    pub start: u32,
    /// Part (voice), 0 the melody.
    pub part: u8,
    /// MIDI key.
    pub key: u8,
    /// Length in ticks.
    pub dur: u32,
}

/// A piece as notes and bars, in the tonic's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Score {
    /// Tonic pitch class (C = 0): pitches are tokenised relative to it.
    pub tonic: u8,
    /// The meter's nominal bar length in ticks (`METERS`).
    pub bar_ticks: u32,
    /// Bar starts in ticks, rising, the first at 0.
    pub bars: Vec<u32>,
    /// Notes sorted as `ScoreNote`'s order (onset, part, key, length).
    pub notes: Vec<ScoreNote>,
}

/// Why a score cannot be tokenised.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    #[error("no bars, or bars that do not start at 0 and rise")]
    Bars,
    #[error("a bar of {0} ticks (at most {MAX_BAR_TICKS})")]
    LongBar(u32),
    #[error("a note of {0} ticks (1 to {MAX_DUR_TICKS})")]
    Length(u32),
    #[error("part {0} (at most {MAX_PARTS} parts)")]
    Part(u8),
    #[error("key {0} is below the tonic's lowest octave")]
    Pitch(u8),
    #[error("a note starts at tick {0}, before the first bar or at or after the last bar's end")]
    Outside(u32),
    #[error("token {0} where it cannot stand")]
    Grammar(u32),
}

impl Score {
    /// The tokens of this score (BOS ... EOS) and, for each token, the index of the bar it
    /// belongs to (the phrase-position condition; BOS counts as bar 0).
    pub fn encode(&self) -> Result<(Vec<u32>, Vec<u32>), ScoreError> {
        if self.bars.first() != Some(&0) || self.bars.windows(2).any(|w| w[1] <= w[0]) {
            return Err(ScoreError::Bars);
        }
        let mut tokens = vec![BOS];
        let mut bar_of = vec![0];
        let mut notes = self.notes.iter().peekable();
        for (i, &start) in self.bars.iter().enumerate() {
            let end = self.bars.get(i + 1).copied().unwrap_or(start + self.bar_ticks.max(MAX_BAR_TICKS));
            let len = end - start;
            let mut push = |t: Token| {
                tokens.push(t.id());
                bar_of.push(i as u32);
            };
            push(Token::Bar);
            if i + 1 < self.bars.len() && len != self.bar_ticks {
                if len > MAX_BAR_TICKS {
                    return Err(ScoreError::LongBar(len));
                }
                push(Token::BarLen(len));
            }
            let (mut pos, mut part) = (None, None);
            while let Some(n) = notes.next_if(|n| n.start < end) {
                let at = n.start.checked_sub(start).ok_or(ScoreError::Outside(n.start))?;
                if at >= MAX_BAR_TICKS {
                    return Err(ScoreError::Outside(n.start));
                }
                if !(1..=MAX_DUR_TICKS).contains(&n.dur) {
                    return Err(ScoreError::Length(n.dur));
                }
                if n.part as usize >= MAX_PARTS {
                    return Err(ScoreError::Part(n.part));
                }
                let pitch = n.key.checked_sub(self.tonic % 12).ok_or(ScoreError::Pitch(n.key))?;
                if pos != Some(at) {
                    push(Token::Pos(at));
                    pos = Some(at);
                }
                if part != Some(n.part) {
                    push(Token::Part(n.part));
                    part = Some(n.part);
                }
                push(Token::Pitch(pitch));
                push(Token::Dur(n.dur));
            }
        }
        if let Some(n) = notes.next() {
            return Err(ScoreError::Outside(n.start));
        }
        tokens.push(EOS);
        bar_of.push(self.bars.len().saturating_sub(1) as u32);
        Ok((tokens, bar_of))
    }

    /// The score `tokens` spell, in key `tonic` with bars of `bar_ticks` unless a `BarLen`
    /// says otherwise. Stops at EOS; tokens out of grammar are an error.
    pub fn decode(tokens: &[u32], tonic: u8, bar_ticks: u32) -> Result<Self, ScoreError> {
        let mut score = Score { tonic: tonic % 12, bar_ticks, bars: Vec::new(), notes: Vec::new() };
        let mut reader = Grammar::default();
        let mut bar_start = 0u32;
        let mut next_bar = 0u32;
        for &id in tokens {
            let t = Token::from_id(id).ok_or(ScoreError::Grammar(id))?;
            if !reader.allows(t) {
                return Err(ScoreError::Grammar(id));
            }
            reader.push(t);
            match t {
                Token::Bar => {
                    bar_start = next_bar;
                    score.bars.push(bar_start);
                    next_bar = bar_start + bar_ticks;
                }
                Token::BarLen(len) => next_bar = bar_start + len,
                Token::Dur(d) => score.notes.push(reader.note(d, bar_start, score.tonic)),
                Token::Eos => break,
                _ => {}
            }
        }
        score.notes.sort();
        Ok(score)
    }
}

/// Which tokens may come next: the score prior's sampler masks the others, so whatever it
/// writes decodes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Grammar {
    last: Option<Token>,
    /// The onset, part and pitch in force in the current bar.
    pub pos: Option<u32>,
    pub part: Option<u8>,
    pub pitch: Option<u8>,
    /// The current bar's length, when a `BarLen` set it.
    pub bar_len: Option<u32>,
    /// The meter's bar length, when onsets must stay inside it (a writer's grammar; reading
    /// the corpus allows its last bar's notes past it).
    pub nominal: Option<u32>,
    /// Bars opened so far.
    pub bars: u32,
}

impl Grammar {
    /// Whether `t` may follow what has been read.
    pub fn allows(&self, t: Token) -> bool {
        use Token::*;
        let after_note = matches!(self.last, Some(Dur(_)));
        let new_pos_ok = |p: u32| self.pos.is_none_or(|q| p > q) && p < self.bar_len.or(self.nominal).unwrap_or(MAX_BAR_TICKS).min(MAX_BAR_TICKS);
        match (self.last, t) {
            (None, Bos) => true,
            (None, _) => false,
            (Some(Eos), _) => false,
            (Some(Bos), Bar) => true,
            (Some(Bos), _) => false,
            // A writer shortens bars (pickups, bars before a repeat) but never stretches them.
            (Some(Bar), BarLen(l)) => self.nominal.is_none_or(|n| l < n),
            (Some(Bar) | Some(BarLen(_)), Pos(p)) => new_pos_ok(p),
            (Some(Bar) | Some(BarLen(_)), Bar | Eos) => true,
            (Some(Bar) | Some(BarLen(_)), _) => false,
            (Some(Pos(_)), Part(_)) => true,
            (Some(Pos(_)), Pitch(_)) => self.part.is_some(),
            (Some(Pos(_)), _) => false,
            (Some(Part(_)), Pitch(_)) => true,
            (Some(Part(_)), _) => false,
            (Some(Pitch(_)), Dur(_)) => true,
            (Some(Pitch(_)), _) => false,
            // After a note: another at the same onset (same part, or a new one), a later onset,
            // the next bar, or the end.
            // Within one onset and part, pitches rise (the notes' order).
            (_, Pitch(k)) => after_note && self.pitch.is_none_or(|q| k >= q),
            (_, Part(p)) => after_note && self.part.is_none_or(|q| p > q),
            (_, Pos(p)) => after_note && new_pos_ok(p),
            (_, Bar | Eos) => after_note,
            _ => false,
        }
    }

    /// Read `t` (which `allows` accepted).
    pub fn push(&mut self, t: Token) {
        match t {
            Token::Bar => {
                self.bars += 1;
                (self.pos, self.part, self.pitch, self.bar_len) = (None, None, None, None);
            }
            Token::BarLen(l) => self.bar_len = Some(l),
            Token::Pos(p) => (self.pos, self.pitch) = (Some(p), None),
            Token::Part(p) => (self.part, self.pitch) = (Some(p), None),
            Token::Pitch(k) => self.pitch = Some(k),
            _ => {}
        }
        self.last = Some(t);
    }

    /// The note that a `Dur(dur)` just read completes, in a bar starting at tick `bar_start`,
    /// in key `tonic`: the onset, part and pitch in force.
    pub fn note(&self, dur: u32, bar_start: u32, tonic: u8) -> ScoreNote {
        let key = (self.pitch.unwrap_or(0) as u32 + (tonic % 12) as u32).min(127) as u8;
        ScoreNote { start: bar_start + self.pos.unwrap_or(0), part: self.part.unwrap_or(0), key, dur }
    }

    /// The last token read.
    pub fn last(&self) -> Option<Token> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chorale_bit() -> Score {
        // A pickup of one quarter, then a 4/4 bar with two voices, a tied note over the bar line.
        let q = TICKS_PER_QUARTER;
        let n = |start, part, key, dur| ScoreNote { start, part, key, dur };
        let mut notes = vec![n(0, 0, 67, q), n(0, 1, 62, q), n(q, 0, 71, 2 * q), n(q, 1, 67, 4 * q), n(3 * q, 0, 69, q / 3), n(3 * q + q / 3, 0, 67, 2 * q / 3), n(5 * q, 0, 67, q)];
        notes.sort();
        Score { tonic: 7, bar_ticks: 4 * q, bars: vec![0, q, 5 * q], notes }
    }

    #[test]
    fn a_score_round_trips_through_its_tokens() {
        let s = chorale_bit();
        let (tokens, bars) = s.encode().unwrap();
        assert_eq!(tokens.len(), bars.len());
        assert_eq!(Score::decode(&tokens, 7, 4 * TICKS_PER_QUARTER).unwrap(), s);
        // The pickup bar says its length; the full bar does not.
        assert_eq!(Token::from_id(tokens[2]), Some(Token::BarLen(TICKS_PER_QUARTER)));
        // Transposed to A: the same tokens.
        let mut a = s.clone();
        a.tonic = 9;
        a.notes.iter_mut().for_each(|n| n.key += 2);
        assert_eq!(a.encode().unwrap().0, tokens);
    }

    #[test]
    fn every_id_is_one_token_and_bad_scores_are_refused() {
        for id in 0..VOCAB as u32 {
            assert_eq!(Token::from_id(id).map(Token::id), Some(id));
        }
        assert!(Token::from_id(VOCAB as u32).is_none());
        let mut s = chorale_bit();
        s.notes[0].dur = MAX_DUR_TICKS + 1;
        assert_eq!(s.encode(), Err(ScoreError::Length(MAX_DUR_TICKS + 1)));
        let mut s = chorale_bit();
        s.bars = vec![0, 0];
        assert_eq!(s.encode(), Err(ScoreError::Bars));
        // Out of grammar: a pitch without a place.
        assert!(Score::decode(&[BOS, BAR, Token::Pitch(3).id()], 0, 96).is_err());
    }
}
