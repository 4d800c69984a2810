//! The exported score index: one JSON line per piece, written by `python/export_midi.py`.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::Path;

/// What the exporter learnt about one piece. Fields mirror `export_midi.py`'s records.
#[derive(Debug, Clone, Deserialize)]
pub struct PieceMeta {
    pub id: String,
    pub collection: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub rhythm: String,
    #[serde(default)]
    pub abc_meter: String,
    #[serde(default)]
    pub abc_notes: Vec<String>,
    #[serde(default)]
    pub midi: Option<String>,
    #[serde(default)]
    pub key_pitch_class: u8,
    #[serde(default)]
    pub key_mode: String,
    #[serde(default)]
    pub time_signature: String,
    /// Length of one beat in quarter notes (1.5 in 6/8).
    #[serde(default = "one")]
    pub beat_quarters: f64,
    #[serde(default = "four")]
    pub bar_quarters: f64,
    /// Where the first full bar starts, in quarters (after a pickup).
    #[serde(default)]
    pub first_full_bar_quarters: f64,
    /// Where every bar starts, in quarters (pickups and shortened bars included).
    #[serde(default)]
    pub bar_starts_quarters: Vec<f64>,
    #[serde(default)]
    pub duration_quarters: f64,
    #[serde(default)]
    pub parts: u32,
    #[serde(default)]
    pub notes: u32,
    #[serde(default)]
    pub chords: u32,
}

fn one() -> f64 {
    1.0
}
fn four() -> f64 {
    4.0
}

impl PieceMeta {
    /// What decides the split: the collection and the tune's title (letters and digits only),
    /// so alternative settings of one tune never straddle train and test.
    pub fn split_key(&self) -> String {
        let title: String = self.title.to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect();
        let title = title.strip_prefix("the").unwrap_or(&title).to_string();
        if title.is_empty() {
            self.id.clone()
        } else {
            format!("{}/{}", self.collection, title)
        }
    }

    /// A single melodic line: gets an optional generated accompaniment.
    pub fn is_monophonic(&self) -> bool {
        self.parts <= 1 && self.chords * 10 < self.notes.max(1)
    }
}

/// Read `index.jsonl`; later lines for the same id win (a re-export replaces a skip).
pub fn read_index(path: &Path) -> Result<Vec<PieceMeta>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut by_id = std::collections::BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let meta: PieceMeta = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: bad index line", path.display(), n + 1))?;
        by_id.insert(meta.id.clone(), meta);
    }
    Ok(by_id.into_values().collect())
}
