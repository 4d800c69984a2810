//! `cargo xtask eval perform`: how faithfully the performer plays a score, as a listener hears
//! it. Held-out test clips, spread over the instrument families and soundfonts, are played by
//! the performer from their own notes (the renderer's schedule, `render::frame_notes`, in codec
//! frames) and their labels (style, instrument, key, tempo, the beat grid); its codes are decoded
//! by the codec and the audio transcribed by basic-pitch, then scored against the score's notes
//! (onset-only note F1, 50 ms). Read against two ceilings on the same clips: the real render's
//! transcription, and that render's codec round trip (what any performer playing these codes
//! could reach at best). A last column plays the same clips with the notes withheld (the
//! performer as a codes prior from the knobs alone): the chance level.

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

/// The evaluation; writes EVAL.md's perform section and returns it.
pub fn eval_perform(performer: &Path, codec: &Path, clips: usize, guidance: f32) -> Result<String> {
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
    let name = |p: &Path| p.strip_prefix(repo_root()).unwrap_or(p).display().to_string();
    let body = format!(
        "## Performer: does it play the score?\n\n\
         Command: `cargo xtask eval perform --clips {clips}` (performer `{}`, guidance {guidance}, the other sampling knobs at their defaults). \
         Held-out test clips spread over the instrument families and both soundfonts; the performer plays each clip's own notes with its labels \
         (style, instrument, key, tempo, beat grid), one seed per clip. Note F1 of basic-pitch's transcription against the score's notes \
         (onsets within 50 ms), per family; the last column is the performer's share of the round trip's F1 (target: at least 90% in every family, \
         and F1 at least 0.6 on piano and plucked).\n\n\
         | family | clips | {} | performer / round trip |\n|---|---|---|---|---|---|---|\n{table}",
        name(performer),
        COLUMNS.join(" | "),
    );
    println!("{body}");
    write_section(&repo_root().join("EVAL.md"), "perform", &body)?;
    Ok(body)
}
