//! `cargo xtask eval perform`: how faithfully the performer plays a score, as a listener hears
//! it. Held-out test clips, spread over the instrument families and soundfonts, are played by
//! the performer from their own notes (the renderer's schedule, `render::frame_notes`, in codec
//! frames) and their labels (style, instrument, key, tempo, the beat grid); its codes are decoded
//! by the codec and the audio transcribed by basic-pitch, then scored against the score's notes
//! (onset-only note F1, 50 ms). Read against two ceilings on the same clips: the real render's
//! transcription, and that render's codec round trip (what any performer playing these codes
//! could reach at best). A last column plays the same clips with the notes withheld (the
//! performer as a codes prior from the knobs alone): the chance level.
//!
//! Then the whole hierarchy as the plugin plays it: takes in every style at a typical tempo and
//! metre rendered through the plugin's offline path (the score prior writing, the performer
//! playing, MIDI out sending the notes), and the audio transcribed: note F1 against the notes its
//! MIDI out sent, onsets on the beat grid and the key's profile in the transcribed notes
//! (`music::grid_score`, `music::key_correlation`), beside the same measures on the real renders
//! above.

use super::notes::{NoteJudge, Pair, Reference};
use super::write_section;
use crate::dataset::recipe::{ClipRecipe, DatasetConfig};
use crate::dataset::tokens::clip_labels;
use crate::dataset::{render, repo_root, ClipSource, Dataset};
use anyhow::Result;
use candle_core::{Device, Tensor};
use cantor::audio::Wav;
use cantor::knobs::KnobValues;
use cantor::model::codec::Codec;
use cantor::model::prior::notes::FrameNote;
use cantor::model::prior::sampling::Sampling;
use cantor::model::prior::Prior;
use cantor::model::vocab::{INSTRUMENT_FAMILIES, STYLES};
use super::music::{grid_score, key_correlation};
use super::prior::{STYLE_BPM, STYLE_TIME_SIGNATURE};
use cantor::compose::{check_performer, decode, perform_codes, PerformSettings};
use cantor::midi::PlayedEvent;
use cantor::model::pair::ModelPair;
use cantor::plugin::neural_factory;
use cantor::plugin::render::{render_with_notes, RenderSettings};
use cantor::model::vocab::Meter;
use std::path::Path;

/// Seconds of each generated take (16 bars of a reel at 100 beats a minute are 19 s).
const TAKE_SECONDS: f64 = 20.0;

/// What each clip is heard as, in the table's column order.
const COLUMNS: [&str; 4] = ["real render (ceiling)", "codec round trip (ceiling)", "performer", "notes withheld"];

/// How the performer plays `clip`: its labels as the knobs, its beat grid.
fn clip_settings(clip: &ClipRecipe, sampling: &Sampling, seed: u64) -> Result<(PerformSettings, f64)> {
    let (style, instrument, key, mode, beats_per_bar, start_beats) = clip_labels(clip)?;
    let mut styles = [0.0; STYLES.len()];
    styles[style as usize] = 1.0;
    let meter = Meter { beats_per_bar, beat_quarters: clip.beat_quarters };
    Ok((PerformSettings { styles, tonic: key as u8, mode: mode as u8, meter, bpm: clip.bpm, instrument: instrument as usize, sampling: *sampling, seed }, start_beats))
}

/// What each generated take asks: `takes` per style at its typical tempo and metre, the keys,
/// modes and instrument families rotating with the take, every other knob at its default
/// (the performer's guidance as given).
fn take_settings(takes: usize, guidance: f32, seconds: f64) -> Vec<RenderSettings> {
    (0..takes * STYLES.len())
        .map(|t| {
            let style = t % STYLES.len();
            let mut knobs = KnobValues::default();
            knobs.styles = [0.0; STYLES.len()];
            knobs.styles[style] = 1.0;
            (knobs.key, knobs.mode, knobs.instrument) = ((t * 5 % 12) as i32, (t / STYLES.len() % 2) as i32, (t % INSTRUMENT_FAMILIES.len()) as i32);
            (knobs.tempo, knobs.seed, knobs.guidance) = (STYLE_BPM[style], 1000 + t as i32, guidance);
            RenderSettings { seconds, sample_rate: 48_000, time_signature: STYLE_TIME_SIGNATURE[style], knobs }
        })
        .collect()
}

/// The notes a render's MIDI out sent, as (onset s, offset s, key), ended at `end_s` if still sounding.
fn sent_notes(events: &[PlayedEvent], rate: u32, end_s: f64) -> Vec<(f64, f64, u8)> {
    // Quarter notes at 60 a minute are seconds.
    let parts = cantor::midi::played_parts(events, rate, 60.0, (end_s * rate as f64) as u64, |_| (String::new(), 0));
    let mut notes: Vec<(f64, f64, u8)> = parts.iter().flat_map(|(_, p)| p.notes.iter().map(|n| (n.start_q, n.start_q + n.dur_q, n.key))).collect();
    notes.sort_by(|a, b| a.0.total_cmp(&b.0));
    notes
}

/// The evaluation; writes EVAL.md's perform section and returns it.
pub fn eval_perform(performer: &Path, codec_path: &Path, score: &Path, clips: usize, takes: usize, guidance: f32) -> Result<String> {
    let device = Device::Cpu;
    let codec = Codec::from_bytes(&std::fs::read(codec_path)?, &device)?;
    let prior = Prior::from_bytes(&std::fs::read(performer)?, &device)?;
    check_performer(&prior, &codec).map_err(|e| anyhow::anyhow!("{}: {e}", performer.display()))?;
    let defaults = KnobValues::default();
    let sampling = Sampling { temperature: defaults.temperature, top_k: defaults.top_k.max(0) as usize, top_p: defaults.top_p, guidance, repeat: 0.0 };
    let ds = Dataset::build(&DatasetConfig::default())?;
    let chosen = super::codec::stratified(ds.split("test").collect(), clips);
    let mut source = ClipSource::new(codec.cfg.sample_rate);
    let hop = codec.cfg.hop();
    let work = crate::dataset::cache_dir().join("eval-perform");
    std::fs::create_dir_all(&work)?;
    let mut pairs = Vec::new();
    let pb = crate::dataset::progress(chosen.len() as u64, "performing");
    for (i, clip) in chosen.iter().enumerate() {
        pb.inc(1);
        let mut x = source.render(clip)?;
        let frames = x.len() / hop;
        x.truncate(frames * hop);
        let seconds = x.len() as f64 / codec.cfg.sample_rate as f64;
        let score = source.notes(clip)?;
        let played: Vec<(f64, f64, u8)> =
            render::played_notes(clip, &score, 0.0, clip.seconds).iter().filter(|n| n.on_s < seconds).map(|n| (n.on_s, n.off_s.min(seconds), n.key)).collect();
        let mut notes = render::frame_notes(clip, &score, 0.0, clip.seconds, codec.cfg.frame_rate());
        notes.sort_by(|a, b| a.on.total_cmp(&b.on));
        let round_trip = codec.decode(&codec.encode(&Tensor::from_slice(&x, (1, x.len()), &device)?)?)?.squeeze(0)?.to_vec1::<f32>()?;
        let (settings, start_beats) = clip_settings(clip, &sampling, 0x9E7F ^ i as u64)?;
        let play = |notes: Option<&[FrameNote]>| -> Result<Vec<f32>> {
            let codes = perform_codes(&prior, notes, frames, start_beats, &settings, |_| {}).map_err(anyhow::Error::msg)?;
            decode(&codec, codes).map_err(anyhow::Error::msg)
        };
        let (performed, withheld) = (play(Some(&notes))?, play(None)?);
        for (k, audio) in [&x, &round_trip, &performed, &withheld].into_iter().enumerate() {
            let path = work.join(format!("{i}-{k}.wav"));
            Wav::write_mono(&path, audio, codec.cfg.sample_rate, 1)?;
            pairs.push(Pair { id: format!("{i}/{k}"), reference: Reference::Notes(played.clone()), estimate: path });
        }
    }
    pb.finish();
    let real_pairs = pairs.len();
    // The plugin as a user hears it: the score prior writes, the performer plays, the MIDI out
    // sends the notes; its audio is judged against what it sent.
    let pair = ModelPair::from_bytes(&std::fs::read(codec_path)?, &std::fs::read(performer)?).map_err(anyhow::Error::msg)?;
    let pair = std::sync::Arc::new(pair.with_score(&std::fs::read(score)?).map_err(anyhow::Error::msg)?);
    let settings = take_settings(takes, guidance, TAKE_SECONDS);
    let pb = crate::dataset::progress(settings.len() as u64, "generating takes in the plugin");
    for (t, s) in settings.iter().enumerate() {
        pb.inc(1);
        let (audio, events) = render_with_notes(s, neural_factory(pair.clone()), |_| {}).map_err(anyhow::Error::msg)?;
        let mono: Vec<f32> = audio.chunks(2).map(|f| 0.5 * (f[0] + f[1])).collect();
        let path = work.join(format!("take-{t}.wav"));
        Wav::write_mono(&path, &mono, s.sample_rate, 1)?;
        pairs.push(Pair { id: format!("take{t}"), reference: Reference::Notes(sent_notes(&events, s.sample_rate, s.seconds)), estimate: path });
    }
    pb.finish();
    println!("transcribing {} recordings with basic-pitch", pairs.len());
    let scores = NoteJudge::new()?.score(&pairs, &work)?;
    // F1 per family and column.
    let mut table = String::new();
    let mut all = [(0.0, 0usize); COLUMNS.len()];
    for (family, _) in INSTRUMENT_FAMILIES {
        let mut sums = [(0.0, 0usize); COLUMNS.len()];
        for (i, _) in chosen.iter().enumerate().filter(|(_, c)| c.instrument == family) {
            for k in 0..COLUMNS.len() {
                let f1 = scores[i * COLUMNS.len() + k].f1;
                sums[k] = (sums[k].0 + f1, sums[k].1 + 1);
                all[k] = (all[k].0 + f1, all[k].1 + 1);
            }
        }
        if sums[0].1 == 0 {
            continue;
        }
        let cells: Vec<String> = sums.iter().map(|(s, n)| format!("{:.2}", s / *n as f64)).collect();
        let share = sums[2].0 / sums[1].0.max(1e-9);
        table.push_str(&format!("| {family} | {} | {} | {:.0}% |\n", sums[0].1, cells.join(" | "), 100.0 * share));
    }
    let cells: Vec<String> = all.iter().map(|(s, n)| format!("**{:.2}**", s / (*n).max(1) as f64)).collect();
    table.push_str(&format!("| **all** | {} | {} | **{:.0}%** |\n", all[0].1, cells.join(" | "), 100.0 * all[2].0 / all[1].0.max(1e-9)));
    // The music as heard: grid and key of the transcriptions, real renders against composed takes.
    let measures = |score: &super::notes::NoteScore, quarter_s: f64, tonic: u8, minor: bool| {
        let onsets: Vec<f64> = score.transcription.iter().map(|n| n.0).collect();
        (grid_score(&onsets, quarter_s), key_correlation(&score.transcription, tonic, minor))
    };
    let mut heard: Vec<(&str, Vec<(Option<f64>, Option<f64>, f64)>)> = COLUMNS.iter().map(|c| (*c, Vec::new())).collect();
    for (i, clip) in chosen.iter().enumerate() {
        let quarter_s = 60.0 / (clip.bpm * clip.beat_quarters);
        for (k, (_, rows)) in heard.iter_mut().enumerate() {
            let s = &scores[i * COLUMNS.len() + k];
            let (g, key) = measures(s, quarter_s, clip.key_pitch_class, clip.key_mode == "minor");
            rows.push((g, key, s.f1));
        }
    }
    let mut composed = Vec::new();
    for (t, r) in settings.iter().enumerate() {
        let s = &scores[real_pairs + t];
        let beat_quarters = Meter::of_time_signature(r.time_signature.0, r.time_signature.1).expect("the styles' metres").beat_quarters;
        let (g, key) = measures(s, 60.0 / (r.knobs.tempo as f64 * beat_quarters), r.knobs.key as u8, r.knobs.mode == 1);
        composed.push((g, key, s.f1));
    }
    heard.push(("generated in the plugin (score prior, performer; F1 against its MIDI out)", composed));
    let mean = |v: Vec<Option<f64>>| {
        let v: Vec<f64> = v.into_iter().flatten().collect();
        if v.is_empty() { "-".to_string() } else { format!("{:.2}", v.iter().sum::<f64>() / v.len() as f64) }
    };
    let mut heard_table = String::new();
    for (name, rows) in &heard {
        heard_table.push_str(&format!(
            "| {name} | {} | {} | {} | {} |\n",
            rows.len(),
            mean(rows.iter().map(|r| Some(r.2)).collect()),
            mean(rows.iter().map(|r| r.0).collect()),
            mean(rows.iter().map(|r| r.1).collect())
        ));
    }
    let name = |p: &Path| p.strip_prefix(repo_root()).unwrap_or(p).display().to_string();
    let body = format!(
        "## Performer: does it play the score?\n\n\
         Command: `cargo xtask eval perform --clips {clips}` (performer `{}`, guidance {guidance}, the other sampling knobs at their defaults). \
         Held-out test clips spread over the instrument families and both soundfonts; the performer plays each clip's own notes with its labels \
         (style, instrument, key, tempo, beat grid), one seed per clip. Note F1 of basic-pitch's transcription against the score's notes \
         (onsets within 50 ms), per family; the last column is the performer's share of the round trip's F1 (target: at least 90% in every family, \
         and F1 at least 0.6 on piano and plucked).\n\n\
         | family | clips | {} | performer / round trip |\n|---|---|---|---|---|---|---|\n{table}\n\
         The music as heard (basic-pitch's transcriptions): note F1 against the notes played; onsets on the grid (fraction within 12% of a \
         period of the best-phase eighth, triplet or sixteenth grid at the tempo asked; random onsets about 0.34; target for generated takes \
         at least 0.60); key correlation (Krumhansl's profile of the key asked against the transcribed notes' duration-weighted pitch classes; \
         target at least 0.70). The generated takes: {takes} per style, {TAKE_SECONDS} s each through the plugin's offline path (`cantor render --midi-out`'s), \
         at the style's typical tempo and metre (the prior evaluation's), keys, modes and instrument families rotating, every knob at its default but guidance.\n\n\
         | audio | takes | note F1 | on the grid | key correlation |\n|---|---|---|---|---|\n{heard_table}",
        name(performer),
        COLUMNS.join(" | "),
    );
    println!("{body}");
    write_section(&repo_root().join("EVAL.md"), "perform", &body)?;
    Ok(body)
}
