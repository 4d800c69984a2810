//! Writing a tune bar by bar: the score prior's tokens sampled under its grammar, with
//! classifier-free guidance, the sampling knobs and a seeded RNG (the same seed and settings
//! write the same tune), and the dance-tune form: within each 16-bar unit the bars a form plan
//! measured on a real tune restates (`form`), and each 8-bar strain played twice, the second
//! playing following the first as closely as the Repeat knob asks.

use super::form::{FormPlan, FormPlans};
use super::tokens::{Grammar, Score, ScoreNote, Token, BAR, BOS, MAX_DUR_TICKS, MAX_PARTS, VOCAB};
use super::{phrase_slot, ScoreCond, ScorePrior, ScoreState, COND_DIM, PHRASE_BARS};
use crate::model::prior::sampling::{guide, sample, SampleScratch, Sampling};
use candle_core::{Device, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::borrow::Cow;
use std::ops::Deref;

/// Bars in a strain (the unit the Repeat knob repeats).
pub const STRAIN_BARS: usize = PHRASE_BARS / 2;
/// Most tokens a written bar may take: a 12/8 bar of sixteenths in four voices is about 200.
/// Past it the bar ends (an untrained or derailed model could otherwise fill one bar forever).
pub const MAX_BAR_TOKENS: usize = 256;

/// Where bar `index` of a tune stands in the form: its phrase slot (0-7 strain A, 8-15 strain
/// B), and whether it is the second playing of its strain (which answers the first playing's
/// bar of the same slot). With `repeat` 0 there are no repeats: A B; above 0, A A B B.
pub fn form_position(index: usize, repeat: f32) -> (usize, bool) {
    if repeat <= 0.0 {
        return (phrase_slot(index, 0), false);
    }
    let q = index % (2 * PHRASE_BARS);
    let strain = q / PHRASE_BARS;
    let in_strain = q % PHRASE_BARS;
    (strain * STRAIN_BARS + in_strain % STRAIN_BARS, in_strain >= STRAIN_BARS)
}

/// One bar as written.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenBar {
    /// Bars played before this one.
    pub index: usize,
    /// Its phrase slot (0-15: A strain 0-7, B strain 8-15).
    pub slot: usize,
    /// Start and length in ticks (`tokens::TICKS_PER_QUARTER`).
    pub start: u32,
    pub len: u32,
    /// Its notes, onsets in ticks from the piece's start, keys in the tonic `ScoreWriter` was
    /// made with.
    pub notes: Vec<ScoreNote>,
    /// Whether its tokens were read again from an earlier bar: a strain's repeat, or a bar
    /// its unit's form plan restates.
    pub copied: bool,
    /// Tokens the model read for it (its `Bar` included): what it cost to write.
    pub tokens: usize,
}

/// Writes one endless tune. `M` holds the model: a borrow for a tune written at once, an `Arc`
/// for the plugin's generator, which keeps a writer for as long as it plays.
pub struct ScoreWriter<M: Deref<Target = ScorePrior>> {
    model: M,
    /// The key the written notes are in (`set_tonic` moves later bars).
    tonic: u8,
    bar_ticks: u32,
    cond_state: ScoreState,
    uncond_state: ScoreState,
    rng: ChaCha8Rng,
    scratch: SampleScratch,
    guided: Vec<f32>,
    grammar: Grammar,
    /// Bars played so far, and where the next starts.
    played: usize,
    next_start: u32,
    /// The form plans units are drawn from, and the current unit's.
    forms: Cow<'static, FormPlans>,
    plan: FormPlan,
    /// The tokens (after its `Bar`) of each bar of the current unit's first playing, by slot.
    unit: Vec<Vec<u32>>,
    /// The slots of the current unit someone else played (`play_bar`), a bit each: the form
    /// plan does not restate them (an answer that opened by echoing the phrase it answers would
    /// sound like a looper); the strain's repeat does, as the Repeat knob asks.
    played_slots: u32,
}

impl<M: Deref<Target = ScorePrior>> ScoreWriter<M> {
    /// A writer in key `tonic` (pitch class) with bars of `bar_ticks`, seeded, following the
    /// built-in form plans.
    pub fn new(model: M, tonic: u8, bar_ticks: u32, seed: u64) -> Result<Self> {
        Self::build(model, Cow::Borrowed(FormPlans::builtin()), tonic, bar_ticks, seed)
    }

    /// The same with other form plans (an empty set: the model writes every bar).
    pub fn with_forms(model: M, forms: &FormPlans, tonic: u8, bar_ticks: u32, seed: u64) -> Result<Self> {
        Self::build(model, Cow::Owned(forms.clone()), tonic, bar_ticks, seed)
    }

    fn build(model: M, forms: Cow<'static, FormPlans>, tonic: u8, bar_ticks: u32, seed: u64) -> Result<Self> {
        let device = Device::Cpu;
        let (cond_state, uncond_state) = (model.new_state(&device)?, model.new_state(&device)?);
        let mut w = Self {
            model,
            tonic: tonic % 12,
            bar_ticks,
            cond_state,
            uncond_state,
            rng: ChaCha8Rng::seed_from_u64(seed),
            scratch: SampleScratch::with_capacity(VOCAB),
            guided: Vec::with_capacity(VOCAB),
            grammar: Grammar::default(),
            played: 0,
            next_start: 0,
            forms,
            plan: [None; PHRASE_BARS],
            unit: Vec::new(),
            played_slots: 0,
        };
        w.grammar.nominal = Some(bar_ticks);
        w.grammar.push(Token::Bos);
        w.read(BOS, 0, &ScoreCond::unconditional())?;
        Ok(w)
    }

    /// Write the bars from the next one on in key `tonic` (the notes are key-relative tokens, so
    /// a key change moves the tune without changing it; a strain's repeat follows too).
    pub fn set_tonic(&mut self, tonic: u8) {
        self.tonic = tonic % 12;
    }

    /// The length of a bar, in ticks (`tokens::TICKS_PER_QUARTER`).
    pub fn bar_ticks(&self) -> u32 {
        self.bar_ticks
    }

    /// Feed one token to both rows (the conditional one with `cond`, the other without); the
    /// next token's logits land in the rows' states.
    fn read(&mut self, token: u32, slot: usize, cond: &ScoreCond) -> Result<()> {
        let c: [f32; COND_DIM] = cond.vector(slot);
        let u = ScoreCond::unconditional().vector(slot);
        self.model.step_pair(&mut self.cond_state, &mut self.uncond_state, token, [&c, &u])
    }

    /// Write the next bar. `cond` and `sampling` may change from bar to bar (automation).
    pub fn write_bar(&mut self, cond: &ScoreCond, sampling: &Sampling) -> Result<WrittenBar> {
        self.bar(cond, sampling, None)
    }

    /// Read the next bar as played by someone else (a prompt the writer then continues): its
    /// notes, onsets in ticks from the bar's start (inside the bar), keys as MIDI keys, parts as
    /// given. It takes its place in the form as a written bar would: a later bar the form
    /// restates, or the strain's repeat, plays it again. Notes below the tonic's lowest octave,
    /// of a length off the grid's range or past the bar are left out (the grid cannot hold them).
    pub fn play_bar(&mut self, notes: &[ScoreNote], cond: &ScoreCond, sampling: &Sampling) -> Result<WrittenBar> {
        let mut kept: Vec<ScoreNote> = notes
            .iter()
            .filter(|n| n.start < self.bar_ticks && n.key >= self.tonic && (n.part as usize) < MAX_PARTS)
            .map(|n| ScoreNote { dur: n.dur.clamp(1, MAX_DUR_TICKS), ..*n })
            .collect();
        kept.sort();
        kept.dedup_by_key(|n| (n.start, n.part, n.key));
        let score = Score { tonic: self.tonic, bar_ticks: self.bar_ticks, bars: vec![0], notes: kept };
        let (tokens, _) = score.encode().map_err(|e| candle_core::Error::msg(format!("a played bar: {e}")))?;
        // BOS, Bar, the notes, EOS: the writer reads its own Bar.
        self.bar(cond, sampling, Some(&tokens[2..tokens.len() - 1]))
    }

    fn bar(&mut self, cond: &ScoreCond, sampling: &Sampling, played: Option<&[u32]>) -> Result<WrittenBar> {
        let index = self.played;
        let (slot, second_playing) = form_position(index, sampling.repeat);
        if !second_playing && slot == 0 {
            // A unit's first playing begins: its plan, from the style asked for now.
            self.unit.clear();
            self.played_slots = 0;
            self.plan = self.forms.sample(cond.styles.as_ref(), sampling.repeat > 0.0, &mut self.rng);
        }
        let repeat_draw = self.rng.random::<f32>();
        let source = match second_playing {
            _ if played.is_some() => None,
            true => Some(slot).filter(|&s| s < self.unit.len() && repeat_draw < sampling.repeat),
            false => self.plan[slot].map(usize::from).filter(|&r| r < self.unit.len() && self.played_slots & (1 << r) == 0),
        };
        let copy = source.is_some();
        // Open the bar.
        self.grammar.push(Token::Bar);
        self.read(BAR, slot, cond)?;
        let mut bar = WrittenBar { index, slot, start: self.next_start, len: self.bar_ticks, notes: Vec::new(), copied: copy, tokens: 1 };
        let mut bar_tokens = Vec::new();
        if let Some(given) = played.or(source.map(|s| &self.unit[s][..])) {
            bar_tokens = given.to_vec();
            for &t in &bar_tokens {
                let allowed = Token::from_id(t).is_some_and(|t| self.grammar.allows(t));
                if !allowed {
                    return Err(candle_core::Error::msg(format!("token {t} cannot stand there in a bar")));
                }
                self.take(t, cond, &mut bar)?;
            }
        } else {
            loop {
                let t = self.sample_next(sampling, index == 0)?;
                if t == BAR || bar_tokens.len() >= MAX_BAR_TOKENS && matches!(self.grammar.last(), Some(Token::Dur(_)) | Some(Token::Bar) | Some(Token::BarLen(_))) {
                    break;
                }
                self.take(t, cond, &mut bar)?;
                bar_tokens.push(t);
            }
        }
        if !second_playing && self.unit.len() == slot {
            self.unit.push(bar_tokens);
            if played.is_some() {
                self.played_slots |= 1 << slot;
            }
        }
        bar.notes.sort();
        self.played += 1;
        self.next_start = bar.start + bar.len;
        Ok(bar)
    }

    /// Read token `id` of `bar` (sampled or copied): the grammar, both rows' next logits, and the
    /// bar's length or note it completes.
    fn take(&mut self, id: u32, cond: &ScoreCond, bar: &mut WrittenBar) -> Result<()> {
        let t = Token::from_id(id).expect("a token of the vocabulary");
        self.grammar.push(t);
        bar.tokens += 1;
        self.read(id, bar.slot, cond)?;
        match t {
            Token::BarLen(l) => bar.len = l,
            Token::Dur(d) => bar.notes.push(self.grammar.note(d, bar.start, self.tonic)),
            _ => {}
        }
        Ok(())
    }

    /// Sample the next token under the grammar; an end of piece is never written (the music goes
    /// on), every bar is a full one (the corpus shortens bars for pickups and strain ends, which
    /// the trained model wrote mid-tune: 5 quarters lost in a reel's first 8 bars put its
    /// strains off the bar lines, and music played on a host's grid keeps its bars), and the
    /// first bar has at least one note (a tune that opens on a silent bar sounds like a late
    /// start).
    fn sample_next(&mut self, sampling: &Sampling, first_bar: bool) -> Result<u32> {
        guide(self.cond_state.logits(), self.uncond_state.logits(), sampling.guidance, &mut self.guided);
        let opening = first_bar && self.grammar.last() == Some(Token::Bar);
        for (id, l) in self.guided.iter_mut().enumerate() {
            let t = Token::from_id(id as u32).expect("logits cover the vocabulary");
            let allowed = self.grammar.allows(t) && t != Token::Eos && !matches!(t, Token::BarLen(_)) && !(opening && t == Token::Bar);
            if !allowed || !l.is_finite() {
                *l = f32::NEG_INFINITY;
            }
        }
        // A bar that runs past its end holds its last note (every path allows `Bar` after a note).
        if self.guided.iter().all(|l| !l.is_finite()) {
            return Ok(BAR);
        }
        Ok(sample(&self.guided, sampling, &mut self.rng, &mut self.scratch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::score::tokens::TICKS_PER_QUARTER;
    use crate::model::score::ScoreConfig;
    use candle_core::DType;
    use candle_nn::{VarBuilder, VarMap};

    fn tiny() -> ScorePrior {
        let vm = VarMap::new();
        ScorePrior::new(&ScoreConfig::tiny(), VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap()
    }

    fn write(model: &ScorePrior, seed: u64, repeat: f32) -> Vec<WrittenBar> {
        write_with(model, FormPlans::builtin(), seed, repeat)
    }

    fn write_with(model: &ScorePrior, forms: &FormPlans, seed: u64, repeat: f32) -> Vec<WrittenBar> {
        let mut w = ScoreWriter::with_forms(model, forms, 2, 2 * TICKS_PER_QUARTER, seed).unwrap();
        let cond = ScoreCond { styles: Some([0.0, 0.0, 0.0, 1.0, 0.0, 0.0]), mode: Some(0), meter: Some(0) };
        let s = Sampling { temperature: 1.0, top_k: 0, top_p: 1.0, guidance: 2.0, repeat };
        (0..18).map(|_| w.write_bar(&cond, &s).unwrap()).collect()
    }

    #[test]
    fn the_same_seed_writes_the_same_tune_and_bars_follow_each_other() {
        let model = tiny();
        let a = write(&model, 7, 0.0);
        assert_eq!(a, write(&model, 7, 0.0));
        assert_ne!(a, write(&model, 8, 0.0));
        for w in a.windows(2) {
            assert_eq!(w[1].start, w[0].start + w[0].len);
            assert_eq!(w[1].index, w[0].index + 1);
        }
        // The tune opens with a note, and every note starts inside its bar.
        assert!(!a[0].notes.is_empty());
        for b in &a {
            assert!(b.notes.iter().all(|n| n.start >= b.start && n.start < b.start + crate::model::score::tokens::MAX_BAR_TICKS));
        }
    }

    /// A bar's notes as offsets from its start.
    fn shape(b: &WrittenBar) -> Vec<(u32, u8, u32, u8)> {
        b.notes.iter().map(|n| (n.start - b.start, n.key, n.dur, n.part)).collect()
    }

    #[test]
    fn bars_the_form_plan_restates_repeat_their_source_and_the_rest_are_written() {
        let file = |plan: &str| {
            let styles = crate::model::vocab::STYLES.iter().map(|s| format!("{{\"style\":\"{s}\",\"plans\":[\"{plan} 1\"]}}")).collect::<Vec<_>>();
            FormPlans::from_json(&format!("{{\"source\":\"test\",\"styles\":[{}]}}", styles.join(","))).unwrap()
        };
        let model = tiny();
        let bars = write_with(&model, &file("....0123......45"), 5, 0.0);
        for (slot, source) in [(4, 0), (5, 1), (6, 2), (7, 3), (14, 4), (15, 5)] {
            assert!(bars[slot].copied, "slot {slot}");
            assert_eq!(shape(&bars[slot]), shape(&bars[source]), "slot {slot} restates {source}");
        }
        assert!(bars[..4].iter().chain(&bars[8..14]).all(|b| !b.copied));
        // The next unit draws its plan again (bar 16 is slot 0, written).
        assert!(!bars[16].copied);
        // With no plans every first playing is written.
        assert!(write_with(&model, &FormPlans::default(), 5, 0.0).iter().all(|b| !b.copied));
    }

    /// Played bars are read as the tune's own: their notes come back as given (those the grid
    /// cannot hold left out), the writer carries on after them, and the strain's repeat plays
    /// them again.
    #[test]
    fn played_bars_open_the_tune_and_the_repeat_restates_them() {
        let model = tiny();
        let mut w = ScoreWriter::with_forms(&model, &FormPlans::default(), 2, 2 * TICKS_PER_QUARTER, 4).unwrap();
        let cond = ScoreCond { styles: Some([0.0, 0.0, 0.0, 1.0, 0.0, 0.0]), mode: Some(0), meter: Some(0) };
        let s = Sampling { temperature: 1.0, top_k: 0, top_p: 1.0, guidance: 2.0, repeat: 1.0 };
        let n = |start, key, dur| ScoreNote { start, part: 0, key, dur };
        let q = TICKS_PER_QUARTER;
        let first = [n(0, 62, q), n(q, 66, q / 2), n(q, 69, q / 2), n(3 * q / 2, 1, q / 2), n(2 * q, 64, q), n(q / 2, 64, 10_000)];
        let a = w.play_bar(&first, &cond, &s).unwrap();
        // Key 1 is below D's lowest octave, the onset at 2q past a 2/4 bar; the long note is held
        // as long as the grid allows.
        assert_eq!(shape(&a), vec![(0, 62, q, 0), (q / 2, 64, MAX_DUR_TICKS, 0), (q, 66, q / 2, 0), (q, 69, q / 2, 0)]);
        assert!(!a.copied);
        let b = w.play_bar(&[], &cond, &s).unwrap();
        assert_eq!((b.start, b.index, b.notes.len()), (2 * q, 1, 0));
        let rest: Vec<_> = (2..STRAIN_BARS + 2).map(|_| w.write_bar(&cond, &s).unwrap()).collect();
        assert!(rest[..STRAIN_BARS - 2].iter().all(|b| !b.copied));
        // Bar 8 repeats bar 0: the played bar.
        assert_eq!(rest[STRAIN_BARS - 2].index, STRAIN_BARS);
        assert!(rest[STRAIN_BARS - 2].copied);
        assert_eq!(shape(&rest[STRAIN_BARS - 2]), shape(&a));
    }

    #[test]
    fn repeat_one_plays_each_strain_twice_note_for_note() {
        let bars = write_with(&tiny(), &FormPlans::default(), 3, 1.0);
        for i in 0..STRAIN_BARS {
            let (first, second) = (&bars[i], &bars[i + STRAIN_BARS]);
            assert!(second.copied && !first.copied);
            assert_eq!(first.slot, second.slot);
            assert_eq!(shape(first), shape(second), "bar {i}");
        }
        // The B strain starts at slot 8.
        assert_eq!(bars[2 * STRAIN_BARS].slot, STRAIN_BARS);
    }
}
