//! `cargo xtask train score-forms`: measure the form plans the score writer follows (which bars
//! of each 16-bar unit restate an earlier bar, `cantor::model::score::form`) on the training
//! split's real tunes, style by style, and write them to `assets/models/score-forms.json`.

use crate::dataset::scores::{self, ScorePiece};
use anyhow::Result;
use cantor::model::score::form::{bar_melodies, is_written_out_repeat, plan_of, CountedPlan, FormPlan, FormPlans};
use cantor::model::score::PHRASE_BARS;
use cantor::model::vocab::STYLES;
use std::collections::BTreeMap;

/// The plans of a piece's complete 16-bar units, counted from its first full bar.
pub fn piece_plans(p: &ScorePiece) -> Vec<FormPlan> {
    let bars = bar_melodies(&p.score);
    bars[p.first_full.min(bars.len())..].chunks_exact(PHRASE_BARS).map(plan_of).collect()
}

pub fn forms() -> Result<()> {
    let set = scores::build()?;
    let mut styles = Vec::new();
    println!("| style | tunes | 16-bar units | bars restated a unit | written-out repeats | distinct plans | restated at distance 1 / 2 / 4 / 8 |");
    println!("|---|---|---|---|---|---|---|");
    for (s, name) in STYLES.iter().enumerate() {
        let pieces: Vec<&ScorePiece> = set.split("train").filter(|p| p.style == s).collect();
        let mut counts: BTreeMap<FormPlan, u32> = BTreeMap::new();
        let (mut units, mut restated, mut repeats, mut at) = (0usize, 0usize, 0usize, [0usize; 4]);
        for p in &pieces {
            for plan in piece_plans(p) {
                units += 1;
                restated += plan.iter().flatten().count();
                repeats += is_written_out_repeat(&plan) as usize;
                for (slot, r) in plan.iter().enumerate() {
                    if let Some(r) = r {
                        if let Some(k) = [1, 2, 4, 8].iter().position(|&d| slot - *r as usize == d) {
                            at[k] += 1;
                        }
                    }
                }
                *counts.entry(plan).or_default() += 1;
            }
        }
        let mut plans: Vec<CountedPlan> = counts.into_iter().map(|(plan, count)| CountedPlan { plan, count, written_out_repeat: is_written_out_repeat(&plan) }).collect();
        plans.sort_by(|a, b| b.count.cmp(&a.count).then(a.plan.cmp(&b.plan)));
        let per = |x: usize| x as f64 / units.max(1) as f64;
        println!(
            "| {name} | {} | {units} | {:.2} | {:.0}% | {} | {:.2} / {:.2} / {:.2} / {:.2} |",
            pieces.len(),
            per(restated),
            100.0 * per(repeats),
            plans.len(),
            per(at[0]),
            per(at[1]),
            per(at[2]),
            per(at[3])
        );
        styles.push(plans);
    }
    let plans = FormPlans {
        source: format!("cargo xtask train score-forms: the complete 16-bar units (from the first full bar) of the corpus's {} training-split tunes", set.split("train").count()),
        styles,
    };
    let path = crate::dataset::repo_root().join("assets/models/score-forms.json");
    std::fs::write(&path, plans.to_json())?;
    println!("wrote {}", path.display());
    Ok(())
}
