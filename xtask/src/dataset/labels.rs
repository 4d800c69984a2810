//! Style labels from the exporter's raw fields (collection, ABC `R:` rhythm, metre, tempo words).
//!
//! The rules, in order:
//! 1. Bach → "chorale".
//! 2. A dance word in the `R:` field or the title (Ryan's writes "7th Regiment -- Reel").
//! 3. O'Neill's 1850 numbers 1-625 are its "Airs and Songs" section → "air".
//! 4. A slow tempo word in the notes ("Slow", "Tenderly", "Plaintive"...) → "air".
//! 5. The metre: 6/8, 9/8 and 12/8 jig (slip jigs are too few to stand alone); 3/4, 3/8, 3/2 air (waltzes and slow 3-time
//!    songs merged: too few to stand alone); 2/4 march/polka; common and cut time reel.

use super::index::PieceMeta;

const DANCE_WORDS: [(&str, &str); 17] = [
    ("slip jig", "jig"),
    ("slide", "jig"),
    ("jig", "jig"),
    ("strathspey", "reel"),
    ("reel", "reel"),
    ("hornpipe", "hornpipe"),
    ("clog", "hornpipe"),
    ("march", "march/polka"),
    ("polka", "march/polka"),
    ("quickstep", "march/polka"),
    ("quick step", "march/polka"),
    ("schottische", "march/polka"),
    ("galop", "march/polka"),
    ("waltz", "air"),
    ("air", "air"),
    ("lament", "air"),
    ("song", "air"),
];

const SLOW_WORDS: [&str; 9] =
    ["slow", "tender", "plaintive", "mournful", "feeling", "expression", "andante", "adagio", "largo"];

/// The number after the last '-' of an ABC piece id ("oneills1850/0001-0050-26" → 26).
pub fn tune_number(id: &str) -> Option<u32> {
    id.rsplit('-').next()?.trim().parse().ok()
}

/// The style label (an entry of `STYLES`) of a piece.
pub fn style_of(meta: &PieceMeta) -> &'static str {
    if meta.collection == "bach" {
        return "chorale";
    }
    let rhythm = meta.rhythm.to_lowercase();
    let title = meta.title.to_lowercase();
    for (word, style) in DANCE_WORDS {
        if rhythm.contains(word) {
            return style;
        }
    }
    // Only whole dance words in titles: "air" inside "Fair Maid" must not count.
    let words: Vec<&str> = title.split(|c: char| !c.is_alphanumeric()).collect();
    for (word, style) in DANCE_WORDS {
        let found = if word.contains(' ') { title.contains(word) } else { words.contains(&word) };
        if found {
            return style;
        }
    }
    if meta.collection == "oneills1850" && tune_number(&meta.id).is_some_and(|n| n <= 625) {
        return "air";
    }
    let notes = meta.abc_notes.join(" ").to_lowercase();
    if SLOW_WORDS.iter().any(|w| notes.contains(w)) {
        return "air";
    }
    let metre = if meta.time_signature.is_empty() { meta.abc_meter.as_str() } else { meta.time_signature.as_str() };
    match metre.trim() {
        "6/8" | "9/8" | "12/8" => "jig",
        "3/4" | "3/8" | "3/2" => "air",
        "2/4" => "march/polka",
        _ => "reel",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cantor::model::vocab::STYLES;

    /// Every label this module can return is in the vocabulary.
    fn all_styles_known() -> bool {
        DANCE_WORDS.iter().all(|(_, s)| STYLES.contains(s))
            && ["chorale", "air", "jig", "march/polka", "reel"].iter().all(|s| STYLES.contains(s))
    }

    fn meta(collection: &str, id: &str, rhythm: &str, title: &str, ts: &str, notes: &[&str]) -> PieceMeta {
        serde_json::from_value(serde_json::json!({
            "id": id, "collection": collection, "status": "ok", "rhythm": rhythm, "title": title,
            "time_signature": ts, "abc_notes": notes,
        }))
        .unwrap()
    }

    #[test]
    fn styles_follow_the_rules() {
        assert!(all_styles_known());
        assert_eq!(style_of(&meta("bach", "bach/bwv1.6", "", "", "4/4", &[])), "chorale");
        assert_eq!(style_of(&meta("ryansMammoth", "r/x-1", "reel", "", "2/4", &[])), "reel");
        assert_eq!(style_of(&meta("ryansMammoth", "r/x-1", "", "Boys of Bluehill -- Hornpipe", "4/4", &[])), "hornpipe");
        assert_eq!(style_of(&meta("ryansMammoth", "r/x-1", "", "The Fair Maid", "6/8", &[])), "jig");
        assert_eq!(style_of(&meta("oneills1850", "oneills1850/0001-0050-26", "", "", "6/8", &[])), "air");
        assert_eq!(style_of(&meta("oneills1850", "oneills1850/0626-0700-672", "", "", "6/8", &["\"Lively\""])), "jig");
        assert_eq!(style_of(&meta("airdsAirs", "a/book1-0002", "", "", "9/8", &[])), "jig");
        assert_eq!(style_of(&meta("airdsAirs", "a/book1-0002", "", "", "4/4", &["Slow"])), "air");
    }
}
