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
//! Then the whole hierarchy offline: the score prior composes tunes in every style at a typical
//! tempo and metre (`cantor compose`'s code), the performer plays them, and the audio is
//! transcribed: note F1 against the composed notes, onsets on the beat grid and the key's
//! profile in the transcribed notes (`music::grid_score`, `music::key_correlation`), beside the
//! same measures on the real renders above.

use super::notes::{NoteJudge, Pair, Reference};
use super::write_section;
use crate::dataset::recipe::{ClipRecipe, DatasetConfig};
use crate::dataset::tokens::clip_labels;
use crate::dataset::{render, repo_root, ClipSource, Dataset};
use anyhow::{ensure, Result};
use candle_core::{Device, Tensor};
use cantor::audio::Wav;
use cantor::knobs::KnobValues;
use cantor::model::codec::Codec;
use cantor::model::prior::conditioning::{GridPosition, Knobs};
use cantor::model::prior::notes::{paint, NOTE_DIM};
use cantor::model::prior::sampling::Sampling;
use cantor::model::prior::stream::PriorStream;
use cantor::model::prior::{codec_codes_id, Prior};
use cantor::model::vocab::{INSTRUMENT_FAMILIES, STYLES};
use super::music::{grid_score, key_correlation};
use super::prior::{STYLE_BPM, STYLE_TIME_SIGNATURE};
use cantor::compose::{compose, frame_notes, perform as perform_tune, ComposeSettings, PerformSettings};
use cantor::model::score::ScorePrior;
use cantor::model::vocab::Meter;
use std::path::Path;

/// What each clip is heard as, in the table's column order.
const COLUMNS: [&str; 4] = ["real render (ceiling)", "codec round trip (ceiling)", "performer", "notes withheld"];

/// Play `notes` (painted features, `frames + 1` rows) or none, with the clip's knobs and grid:
/// `frames` code frames.
fn perform(prior: &Prior, clip: &ClipRecipe, notes: Option<&[f32]>, frames: usize, sampling: &Sampling, seed: u64) -> Result<Vec<Vec<u32>>> {
    let (style, instrument, key, mode, beats_per_bar, start_beats) = clip_labels(clip)?;
    let mut styles = [0.0; STYLES.len()];
    styles[style as usize] = 1.0;
    let knobs = Knobs { styles: Some(styles), instrument: Some(instrument), key: Some((key, mode)), bpm: Some(clip.bpm as f32) };
    let per_frame = clip.bpm / 60.0 / prior.cfg.frame_rate;
    let mut stream = PriorStream::new(prior, &Device::Cpu, seed)?;
    let mut out = Vec::with_capacity(frames);
    let mut step = 0;
    while out.len() < frames {
        let grid = GridPosition { beats: start_beats + step as f64 * per_frame, beats_per_bar, phrase: true };
        let row = notes.map(|n| &n[step * NOTE_DIM..(step + 1) * NOTE_DIM]);
        out.extend(stream.step_with_notes(prior, &knobs, &grid, row, sampling)?);
        step += 1;
    }
    Ok(out)
}

/// What each composed take asks: `takes` per style at its typical tempo and metre, the keys,
/// modes and instrument families rotating with the take.
fn take_settings(takes: usize, performing: Sampling) -> Vec<(ComposeSettings, PerformSettings)> {
    let defaults = KnobValues::default();
    (0..takes * STYLES.len())
        .map(|t| {
            let style = t % STYLES.len();
            let mut styles = [0.0; STYLES.len()];
            styles[style] = 1.0;
            let (n, d) = STYLE_TIME_SIGNATURE[style];
            let meter = Meter::of_time_signature(n, d).expect("the styles' metres are metres");
            let (tonic, mode, instrument) = ((t * 5 % 12) as u8, (t / STYLES.len() % 2) as u8, t % INSTRUMENT_FAMILIES.len());
            let compose = ComposeSettings {
                styles,
                tonic,
                mode,
                time_signature: (n, d),
                bars: 16,
                seed: 1000 + t as u64,
                instrument,
                sampling: Sampling { temperature: defaults.temperature, top_k: 0, top_p: defaults.top_p, guidance: cantor::model::score::DEFAULT_GUIDANCE, repeat: defaults.repeat },
                accompaniment: true,
            };
            let perform = PerformSettings { styles, tonic, mode, meter, bpm: STYLE_BPM[style] as f64, instrument, sampling: performing, seed: 2000 + t as u64 };
            (compose, perform)
        })
        .collect()
}

/// The evaluation; writes EVAL.md's perform section and returns it.
pub fn eval_perform(performer: &Path, codec: &Path, score: &Path, clips: usize, takes: usize, guidance: f32) -> Result<String> {
    let device = Device::Cpu;
    let codec = Codec::from_bytes(&std::fs::read(codec)?, &device)?;
    let prior = Prior::from_bytes(&std::fs::read(performer)?, &device)?;
    ensure!(prior.cfg.notes, "{} is a prior without note conditioning, not a performer", performer.display());
    ensure!(prior.cfg.codec_id == codec_codes_id(&codec)?, "the performer models codec {}, not this one", prior.cfg.codec_id);
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
        let mut features = vec![0.0; (frames + 1) * NOTE_DIM];
        paint(&render::frame_notes(clip, &score, 0.0, clip.seconds, codec.cfg.frame_rate()), 0, frames + 1, &mut features);
        let decode = |codes: &[Vec<u32>]| -> Result<Vec<f32>> {
            let flat: Vec<u32> = codes.iter().flatten().copied().collect();
            Ok(codec.decode(&Tensor::from_vec(flat, (1, codes.len(), codec.cfg.n_codebooks), &device)?)?.squeeze(0)?.to_vec1::<f32>()?)
        };
        let round_trip = codec.decode(&codec.encode(&Tensor::from_slice(&x, (1, x.len()), &device)?)?)?.squeeze(0)?.to_vec1::<f32>()?;
        let seed = 0x9E7F ^ i as u64;
        let performed = decode(&perform(&prior, clip, Some(&features), frames, &sampling, seed)?)?;
        let withheld = decode(&perform(&prior, clip, None, frames, &sampling, seed)?)?;
        for (k, audio) in [&x, &round_trip, &performed, &withheld].into_iter().enumerate() {
            let path = work.join(format!("{i}-{k}.wav"));
            Wav::write_mono(&path, audio, codec.cfg.sample_rate, 1)?;
            pairs.push(Pair { id: format!("{i}/{k}"), reference: Reference::Notes(played.clone()), estimate: path });
        }
    }
    pb.finish();
    let real_pairs = pairs.len();
    let composer = ScorePrior::from_bytes(&std::fs::read(score)?, &device)?;
    let settings = take_settings(takes, sampling);
    let pb = crate::dataset::progress(settings.len() as u64, "composing and performing");
    for (t, (compose_settings, perform_settings)) in settings.iter().enumerate() {
        pb.inc(1);
        let parts = compose(&composer, compose_settings, |_| {}).map_err(anyhow::Error::msg)?;
        let notes = frame_notes(&parts, perform_settings.meter, perform_settings.bpm, prior.cfg.frame_rate);
        let audio = perform_tune(&prior, &codec, &notes, perform_settings, |_| {}).map_err(anyhow::Error::msg)?;
        let path = work.join(format!("take-{t}.wav"));
        Wav::write_mono(&path, &audio, codec.cfg.sample_rate, 1)?;
        let fr = prior.cfg.frame_rate;
        let reference = notes.iter().map(|n| (n.on / fr, n.off / fr, n.key)).collect();
        pairs.push(Pair { id: format!("take{t}"), reference: Reference::Notes(reference), estimate: path });
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
    for (t, (c, p)) in settings.iter().enumerate() {
        let s = &scores[real_pairs + t];
        let (g, key) = measures(s, 60.0 / (p.bpm * p.meter.beat_quarters), c.tonic, c.mode == 1);
        composed.push((g, key, s.f1));
    }
    heard.push(("composed by the score prior, played by the performer", composed));
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
         target at least 0.70). The composed takes: {takes} per style at the style's typical tempo and metre (the prior evaluation's), 16 bars, \
         keys, modes and instrument families rotating, the score prior's default sampling (`cantor compose`), the performer's as above.\n\n\
         | audio | takes | note F1 | on the grid | key correlation |\n|---|---|---|---|---|\n{heard_table}",
        name(performer),
        COLUMNS.join(" | "),
    );
    println!("{body}");
    write_section(&repo_root().join("EVAL.md"), "perform", &body)?;
    Ok(body)
}
