//! Form plans: which bars of a 16-bar unit (an A and a B strain, or a chorale's phrase pair)
//! restate an earlier bar of the same unit, as the real tunes of each style do.
//!
//! The score prior sees about 7 bars of a reel (256 tokens with its accompaniment), and its
//! tunes repeated themselves within a strain far less than real ones: melody bars 4 apart had
//! a Jaccard similarity of 0.06 against real tunes' 0.21, the strongest tell of a classifier
//! that told 8-bar excerpts apart 71% of the time. Dance tunes are built from restated bars
//! (bars 5-6 answering 1-2, a B strain closing on the A strain's cadence), so the writer takes
//! a plan measured on a real training tune of the requested style (`cargo xtask train
//! score-forms`) and, where the plan restates a bar, reads the earlier bar's tokens again
//! instead of sampling; everything else the model writes. The model keeps reading every token,
//! so what follows a restated bar follows it musically.

use super::tokens::{Score, ScoreNote};
use super::PHRASE_BARS;
use crate::model::vocab::STYLES;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// For each slot of a unit, the earlier slot whose bar it restates (melody note for note).
pub type FormPlan = [Option<u8>; PHRASE_BARS];

/// A plan and how many real units followed it.
#[derive(Debug, Clone, PartialEq)]
pub struct CountedPlan {
    pub plan: FormPlan,
    pub count: u32,
    /// Whether the unit's second strain restates most of its first one (a repeat written out):
    /// left out when the writer plays repeats itself (Repeat above 0), which would make A A A A.
    pub written_out_repeat: bool,
}

/// Plans per style (`STYLES` order), as measured on the training split.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FormPlans {
    /// What the plans were measured on (a line for people reading the file).
    pub source: String,
    pub styles: Vec<Vec<CountedPlan>>,
}

/// The file: per style, a line a plan, `PLAN COUNT`. A plan is 16 characters, one a slot: `.`
/// for a bar of its own, else the hex digit of the slot it restates (`....01.......... 12`:
/// bars 4 and 5 restate bars 0 and 1, in 12 real units).
#[derive(Serialize, Deserialize)]
struct PlansFile {
    source: String,
    styles: Vec<StyleFile>,
}

#[derive(Serialize, Deserialize)]
struct StyleFile {
    style: String,
    plans: Vec<String>,
}

/// The plans measured on the corpus's training split (`assets/models/score-forms.json`).
const BUILTIN: &str = include_str!("../../../assets/models/score-forms.json");

/// Second-strain bars restating first-strain bars that make a unit a written-out repeat. In
/// the training tunes the count is bimodal: a B strain of its own restates 0 to 4 of A's bars
/// (often its cadence), a repeat written out (A A', with second endings, sometimes a bar off
/// after a pickup) 6 to 8.
pub const WRITTEN_OUT_REPEAT_BARS: usize = 6;

impl FormPlans {
    /// The plans Cantor ships.
    pub fn builtin() -> &'static FormPlans {
        static PLANS: OnceLock<FormPlans> = OnceLock::new();
        PLANS.get_or_init(|| FormPlans::from_json(BUILTIN).expect("the embedded form plans are checked by a test"))
    }

    /// Read and check plans: one list per style, in `STYLES` order, every source earlier than
    /// its slot.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let file: PlansFile = serde_json::from_str(text).map_err(|e| format!("form plans: {e}"))?;
        let names: Vec<&str> = file.styles.iter().map(|s| s.style.as_str()).collect();
        if names != STYLES {
            return Err(format!("form plans for styles {names:?}; Cantor's are {STYLES:?}"));
        }
        let mut styles = Vec::new();
        for style in &file.styles {
            let mut plans = Vec::new();
            for line in &style.plans {
                let (text, count) = line.split_once(' ').ok_or_else(|| format!("form plan {line:?} is not PLAN COUNT"))?;
                let count: u32 = count.parse().map_err(|_| format!("form plan {line:?}: the count is not a number"))?;
                let plan = plan_from_text(text)?;
                plans.push(CountedPlan { plan, count, written_out_repeat: is_written_out_repeat(&plan) });
            }
            styles.push(plans);
        }
        Ok(FormPlans { source: file.source, styles })
    }

    /// The file `from_json` reads.
    pub fn to_json(&self) -> String {
        let styles = STYLES
            .iter()
            .zip(&self.styles)
            .map(|(name, plans)| StyleFile { style: name.to_string(), plans: plans.iter().map(|p| format!("{} {}", plan_to_text(&p.plan), p.count)).collect() })
            .collect();
        serde_json::to_string_pretty(&PlansFile { source: self.source.clone(), styles }).expect("plans serialise") + "\n"
    }

    /// A plan for a unit: a style drawn by the blend's weights (any style with none), then one
    /// of its plans by how often real units followed it. No plan (nothing restated) where a
    /// style has none.
    pub fn sample(&self, styles: Option<&[f32; STYLES.len()]>, repeats_played: bool, rng: &mut impl Rng) -> FormPlan {
        let usable = |p: &&CountedPlan| !(repeats_played && p.written_out_repeat);
        let has_plans = |s: usize| self.styles.get(s).is_some_and(|plans| plans.iter().any(|p| usable(&p))) as u8 as f32;
        // A blend weight that is not a finite positive number counts as 0, as in `ScoreCond::vector`.
        let weight_of = |s: usize| match styles {
            Some(w) if w[s].is_finite() => w[s].max(0.0) * has_plans(s),
            Some(_) => 0.0,
            None => has_plans(s),
        };
        let total: f32 = (0..STYLES.len()).map(weight_of).sum();
        // Drawn even when unused, so a request's other choices see the same random stream.
        let (u, v) = (rng.random::<f32>(), rng.random::<f64>());
        if !(total > 0.0) {
            return [None; PHRASE_BARS];
        }
        let mut x = u * total;
        let style = (0..STYLES.len()).find(|&s| {
            let w = weight_of(s);
            x -= w;
            x < 0.0 && w > 0.0
        });
        let style = style.unwrap_or_else(|| (0..STYLES.len()).rev().find(|&s| weight_of(s) > 0.0).expect("a style has weight"));
        let plans: Vec<&CountedPlan> = self.styles[style].iter().filter(usable).collect();
        let count: u64 = plans.iter().map(|p| p.count as u64).sum();
        let mut y = (v * count as f64) as u64;
        for p in &plans {
            if y < p.count as u64 {
                return p.plan;
            }
            y -= p.count as u64;
        }
        plans.last().map(|p| p.plan).unwrap_or([None; PHRASE_BARS])
    }
}

fn plan_to_text(plan: &FormPlan) -> String {
    plan.iter().map(|r| r.map_or('.', |r| char::from_digit(r as u32, 16).unwrap_or('?'))).collect()
}

fn plan_from_text(text: &str) -> Result<FormPlan, String> {
    if text.chars().count() != PHRASE_BARS {
        return Err(format!("a form plan of {} slots, not {PHRASE_BARS}: {text:?}", text.chars().count()));
    }
    let mut plan = [None; PHRASE_BARS];
    for (s, (slot, c)) in plan.iter_mut().zip(text.chars()).enumerate() {
        *slot = match c {
            '.' => None,
            c => match c.to_digit(16) {
                Some(r) if (r as usize) < s => Some(r as u8),
                Some(_) => return Err(format!("form plan {text:?} restates a bar that comes later")),
                None => return Err(format!("{c:?} in form plan {text:?}")),
            },
        };
    }
    Ok(plan)
}

/// The melody: part 0, its highest note at each onset.
pub fn melody(notes: &[ScoreNote]) -> Vec<ScoreNote> {
    let mut m: Vec<ScoreNote> = Vec::new();
    for n in notes.iter().filter(|n| n.part == 0) {
        match m.last_mut() {
            Some(last) if last.start == n.start => {
                if n.key > last.key {
                    *last = *n;
                }
            }
            _ => m.push(*n),
        }
    }
    m
}

/// One bar's melody as (onset in the bar, key above the tonic's pitch class, length): what
/// restating a bar means, the same in every key.
pub type BarMelody = Vec<(u32, u8, u32)>;

/// Each bar's melody (`melody`) of a score, bar by bar.
pub fn bar_melodies(score: &Score) -> Vec<BarMelody> {
    let m = melody(&score.notes);
    (0..score.bars.len())
        .map(|i| {
            let (a, b) = (score.bars[i], score.bars.get(i + 1).copied().unwrap_or(u32::MAX));
            m.iter().filter(|n| n.start >= a && n.start < b).map(|n| (n.start - a, n.key.wrapping_sub(score.tonic), n.dur)).collect()
        })
        .collect()
}

/// The plan a unit of 16 bars follows, from each bar's melody (an empty bar restates nothing):
/// each bar restates the first earlier bar equal to it.
pub fn plan_of(bars: &[BarMelody]) -> FormPlan {
    let mut plan = [None; PHRASE_BARS];
    for (s, bar) in bars.iter().enumerate().take(PHRASE_BARS) {
        if !bar.is_empty() {
            plan[s] = bars[..s].iter().position(|b| b == bar).map(|r| r as u8);
        }
    }
    plan
}

/// Whether a plan writes out a repeat: its second strain mostly its first one again (restated
/// bars, wherever in the first strain they come from), or a strain whose second half restates
/// its first half bar for bar (a 4-bar phrase played twice: with the Repeat knob's A A B B it
/// would sound four times running).
pub fn is_written_out_repeat(plan: &FormPlan) -> bool {
    let half = PHRASE_BARS / 2;
    let strain_repeated = plan[half..].iter().filter(|r| r.is_some_and(|r| (r as usize) < half)).count() >= WRITTEN_OUT_REPEAT_BARS;
    let phrase_repeated = |strain: usize| (0..half / 2).all(|i| plan[strain + half / 2 + i] == Some((strain + i) as u8));
    strain_repeated || phrase_repeated(0) || phrase_repeated(half)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn the_builtin_plans_load_and_restate_bars() {
        let plans = FormPlans::builtin();
        let reel = STYLES.iter().position(|s| *s == "reel").unwrap();
        assert!(plans.styles[reel].len() > 10, "{} reel plans", plans.styles[reel].len());
        let mut styles = [0.0; STYLES.len()];
        styles[reel] = 1.0;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let restated: usize = (0..200).map(|_| plans.sample(Some(&styles), false, &mut rng).iter().flatten().count()).sum();
        assert!(restated > 200, "reels restate bars: {restated} in 200 plans");
        for _ in 0..200 {
            assert!(!is_written_out_repeat(&plans.sample(Some(&styles), true, &mut rng)));
        }
    }

    #[test]
    fn a_plan_names_the_first_earlier_equal_bar() {
        let a = vec![(0, 62, 240)];
        let b = vec![(0, 64, 240)];
        let mut bars = vec![a.clone(), b.clone(), a.clone(), vec![], b.clone()];
        bars.extend((0..11).map(|i| vec![(0, 70 + i, 240)]));
        let plan = plan_of(&bars);
        assert_eq!(&plan[..5], &[None, None, Some(0), None, Some(1)]);
        assert!(plan[5..].iter().all(Option::is_none));
        let mut repeat = [None; PHRASE_BARS];
        for s in 8..16 {
            repeat[s] = Some(s as u8 - 8);
        }
        // A repeat a bar off (after a pickup) with a second ending is a repeat too; a B strain
        // closing on A's last two bars is not.
        let mut shifted = [None; PHRASE_BARS];
        for s in 9..15 {
            shifted[s] = Some(s as u8 - 9);
        }
        let mut own = [None; PHRASE_BARS];
        (own[14], own[15]) = (Some(6), Some(7));
        // A B strain of one 4-bar phrase played twice.
        let mut doubled = [None; PHRASE_BARS];
        for s in 12..16 {
            doubled[s] = Some(s as u8 - 4);
        }
        assert!(is_written_out_repeat(&repeat) && is_written_out_repeat(&shifted) && is_written_out_repeat(&doubled));
        assert!(!is_written_out_repeat(&plan) && !is_written_out_repeat(&own));
    }

    #[test]
    fn bad_plans_are_refused_and_good_ones_read_back() {
        let file = |plans: &str| format!("{{\"source\":\"\",\"styles\":[{}]}}", STYLES.iter().map(|s| format!("{{\"style\":\"{s}\",\"plans\":[{plans}]}}")).collect::<Vec<_>>().join(","));
        assert!(FormPlans::from_json("{\"source\":\"\",\"styles\":[]}").unwrap_err().contains("styles"));
        assert!(FormPlans::from_json(&file("\"..0 1\"")).unwrap_err().contains("slots"));
        assert!(FormPlans::from_json(&file("\"..5............. 1\"")).unwrap_err().contains("later"));
        assert!(FormPlans::from_json(&file("\"..0.............\"")).unwrap_err().contains("PLAN COUNT"));
        let good = FormPlans::from_json(&file("\"..0.1........... 3\"")).unwrap();
        assert_eq!(good.styles[0][0].plan[..5], [None, None, Some(0), None, Some(1)]);
        assert_eq!(FormPlans::from_json(&good.to_json()).unwrap(), good);
    }
}
