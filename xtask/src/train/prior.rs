//! Prior training on the tokenised corpus: next-code cross-entropy over the delay pattern, with
//! conditioning dropout (so guidance strength is a knob), AdamW, checkpoints every few minutes
//! and exact resume (the data order is a pure function of the step), held-out negative
//! log-likelihood per code against the unigram baseline.

use super::optim::AdamW;
use crate::dataset::tokens::{tokens_dir, TokenClip, TokenSet};
use anyhow::{Context, Result};
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use cantor::model::prior::conditioning::{write_features, GridPosition, Knobs, COND_DIM};
use cantor::model::prior::notes::{paint, NOTE_DIM};
use cantor::model::prior::pattern::training_pairs;
use cantor::model::prior::{Prior, PriorConfig, KIND};
use cantor::model::vocab::STYLES;
use cantor::model::weights;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, clap::Args)]
pub struct PriorTrainArgs {
    #[command(flatten)]
    pub run: super::RunArgs,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    /// Steps between validations.
    #[arg(long, default_value_t = 250)]
    pub valid_every: u64,
    /// The tokenised corpus (default: the one of the published codec, cache/tokens/<id>).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// Tiny model (tests, smoke runs).
    #[arg(long)]
    pub tiny: bool,
    /// Cool down instead of training on: branch from the main run's checkpoint into
    /// cache/train/prior-anneal and decay the learning rate linearly to zero over this many
    /// steps (warmup-stable-decay). The main run stays resumable at its constant rate; with
    /// `--publish`, only the branch's best weights are shipped.
    #[arg(long, default_value_t = 0)]
    pub anneal_steps: u64,
    /// Restart the main run from prior weights trained elsewhere (the PyTorch twin on a lent
    /// GPU, `xtask/gpu/`): writes the main checkpoint at `--adopt-step` with these weights and a
    /// fresh optimiser, makes them the best weights, and logs their held-out NLL. Then
    /// `--publish` ships them and later runs resume from them.
    #[arg(long)]
    pub adopt: Option<PathBuf>,
    /// The step count the adopted weights stand for (the log's step axis continues from it).
    #[arg(long, default_value_t = 0)]
    pub adopt_step: u64,
    /// Train the performer instead (cache/train/performer, log
    /// `assets/training/performer-log.jsonl`, ships `assets/models/performer.safetensors`): the
    /// prior conditioned on each frame's notes (`PriorConfig::notes`; the tokens need their notes,
    /// written by `dataset tokenize`). A new run starts from the shipped prior's weights, the
    /// note features' projection zero, so it begins as that prior and learns to play the notes.
    #[arg(long)]
    pub performer: bool,
}


const CHECKPOINT_KIND: &str = "cantor-prior-checkpoint";
const SEED: u64 = 11;
/// Each knob condition is dropped on its own with this probability...
const DROP_EACH: f64 = 0.1;
/// ...and all of them together with this one (the unconditional model guidance needs).
const DROP_ALL: f64 = 0.15;
/// The phrase position is dropped this often, so the model works without it and its effect
/// can be measured by switching it off.
const DROP_PHRASE: f64 = 0.3;
/// A performer's notes are dropped together with the knobs (`DROP_ALL`: the unconditional model
/// guidance needs), and on their own this often, so guidance imposes the notes too.
const DROP_NOTES: f64 = 0.1;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainState {
    step: u64,
    /// Best held-out negative log-likelihood per code (nats) so far.
    best_valid_nll: Option<f64>,
    config: PriorConfig,
    /// Set on a cool-down branch: the main run's step it branched from.
    #[serde(default)]
    anneal_from: Option<u64>,
}

/// One training crop: clip (and its index in the set), first frame, and which conditions were
/// dropped.
struct Crop<'a> {
    clip: &'a TokenClip,
    index: usize,
    start: usize,
    knobs: Knobs,
    phrase: bool,
    notes: bool,
}

fn clip_knobs(clip: &TokenClip) -> Knobs {
    let mut styles = [0.0; STYLES.len()];
    styles[clip.style as usize] = 1.0;
    Knobs { styles: Some(styles), instrument: Some(clip.instrument), key: Some((clip.key, clip.mode)), bpm: Some(clip.bpm) }
}

/// Draw the crops of a batch for `step` (a pure function of the seed and the step).
fn draw_crops<'a>(set: &'a TokenSet, step: u64, batch: usize, len: usize, dropout: bool) -> Vec<Crop<'a>> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ step.wrapping_mul(0x9E3779B97F4A7C15));
    (0..batch)
        .map(|_| {
            let index = rng.random_range(0..set.clips.len());
            let clip = &set.clips[index];
            let start = rng.random_range(0..=clip.frames.saturating_sub(len / 2));
            let mut knobs = clip_knobs(clip);
            let mut phrase = true;
            let mut notes = true;
            if dropout {
                if rng.random_bool(DROP_ALL) {
                    knobs = Knobs::unconditional();
                    notes = false;
                } else {
                    if rng.random_bool(DROP_EACH) {
                        knobs.styles = None;
                    }
                    if rng.random_bool(DROP_EACH) {
                        knobs.instrument = None;
                    }
                    if rng.random_bool(DROP_EACH) {
                        knobs.key = None;
                    }
                    if rng.random_bool(DROP_EACH) {
                        knobs.bpm = None;
                    }
                }
                phrase = !rng.random_bool(DROP_PHRASE);
                // Drawn whether or not the model takes notes, so a prior and a performer see the same crops.
                notes &= !rng.random_bool(DROP_NOTES);
            }
            Crop { clip, index, start, knobs, phrase, notes }
        })
        .collect()
}

/// Input tokens [b, len, levels], conditioning [b, len, cond_dim], flat target indices into the
/// [b * len * levels] rows of the logits, and the targets there.
fn batch_tensors(set: &TokenSet, crops: &[Crop], cfg: &PriorConfig, device: &Device) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let (len, levels, width) = (cfg.window, cfg.n_levels, cfg.cond_dim());
    anyhow::ensure!(!cfg.notes || set.notes.len() == set.clips.len(), "a performer trains on tokens with their notes: run `cargo xtask dataset tokenize` to write them");
    let mut tokens = Vec::with_capacity(crops.len() * len * levels);
    let mut cond = vec![0f32; crops.len() * len * width];
    let mut notes = vec![0f32; if cfg.notes { len * NOTE_DIM } else { 0 }];
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (b, crop) in crops.iter().enumerate() {
        let codes = set.clip_codes(crop.clip);
        let (inputs, outs) = training_pairs(&codes, crop.start, len, &cfg.delays, cfg.codebook_size);
        let per_frame = crop.clip.beats_per_frame(set.frame_rate);
        let with_notes = cfg.notes && crop.notes;
        if with_notes {
            paint(&set.notes[crop.index], crop.start as i64, len, &mut notes);
        }
        for s in 0..len {
            tokens.extend_from_slice(&inputs[s]);
            let grid = GridPosition { beats: crop.clip.start_beats + (crop.start + s) as f64 * per_frame, beats_per_bar: crop.clip.beats_per_bar, phrase: crop.phrase };
            let at = (b * len + s) * width;
            write_features(&crop.knobs, &grid, &mut cond[at..at + COND_DIM]);
            if with_notes {
                cond[at + COND_DIM..at + width].copy_from_slice(&notes[s * NOTE_DIM..(s + 1) * NOTE_DIM]);
            }
            for (k, t) in outs[s].iter().enumerate() {
                if let Some(t) = t {
                    rows.push(((b * len + s) * levels + k) as u32);
                    targets.push(*t);
                }
            }
        }
    }
    let b = crops.len();
    Ok((
        Tensor::from_vec(tokens, (b, len, levels), device)?,
        Tensor::from_vec(cond, (b, len, width), device)?,
        Tensor::from_vec(rows.clone(), rows.len(), device)?,
        Tensor::from_vec(targets, rows.len(), device)?,
    ))
}

/// Mean cross-entropy (nats per code) of the scored positions.
fn loss(prior: &Prior, tokens: &Tensor, cond: &Tensor, rows: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logits = prior.forward(tokens, cond)?;
    let k = prior.cfg.codebook_size;
    let flat = logits.reshape(((), k))?.index_select(rows, 0)?;
    let logp = candle_nn::ops::log_softmax(&flat, D::Minus1)?;
    Ok(logp.gather(&targets.unsqueeze(1)?, 1)?.neg()?.mean_all()?)
}

fn save_inference(path: &Path, cfg: &PriorConfig, vm: &VarMap) -> Result<()> {
    weights::save(path, KIND, cfg, &weights::var_tensors(vm), DType::F16)?;
    Ok(())
}

/// The tokenised corpus of the published codec.
pub fn default_tokens_dir() -> Result<PathBuf> {
    let bytes = std::fs::read(super::codec::published_weights())?;
    let codec = cantor::model::codec::Codec::from_bytes(&bytes, &Device::Cpu)?;
    Ok(tokens_dir(&cantor::model::prior::codec_codes_id(&codec)?, false))
}

pub fn train(args: &PriorTrainArgs) -> Result<()> {
    let device = Device::Cpu;
    let main_run = super::RunPaths::new(if args.performer { "performer" } else { "prior" }, args.run.out.as_deref());
    let annealing = args.anneal_steps > 0;
    let paths = if annealing { main_run.branch("anneal") } else { main_run.clone() };
    std::fs::create_dir_all(&paths.out)?;
    let (ckpt_path, best_path, log) = (&paths.checkpoint, &paths.best, &paths.log);
    if args.run.publish && annealing {
        anyhow::ensure!(best_path.exists(), "no cool-down weights at {}: run with --anneal-steps first", best_path.display());
        std::fs::copy(best_path, &paths.published_weights)?;
        let (state, _): (TrainState, _) = super::load_checkpoint(ckpt_path, CHECKPOINT_KIND)?;
        println!("published the cool-down branch's best weights (step {}, best held-out NLL {:?} nats/code); the main checkpoint is unchanged", state.step, state.best_valid_nll);
        return Ok(());
    }
    if args.run.publish {
        let state: TrainState = super::publish(ckpt_path, CHECKPOINT_KIND, best_path, &paths.published_checkpoint, &paths.published_weights)?;
        println!("published step {} (best held-out NLL {:?} nats/code)", state.step, state.best_valid_nll);
        return Ok(());
    }
    let tokens = match &args.tokens {
        Some(t) => t.clone(),
        None => default_tokens_dir()?,
    };
    let train_set = TokenSet::load(&tokens, "train")?;
    let valid_set = TokenSet::load(&tokens, "valid")?;
    let unigram = train_set.unigram_entropy();
    if let Some(file) = &args.adopt {
        anyhow::ensure!(!annealing, "--adopt starts the main run: leave out --anneal-steps");
        return adopt(file, args.adopt_step, &train_set, &valid_set, unigram, &paths);
    }

    // A cool-down branch resumes itself, or starts from wherever the main run would resume.
    let resume_from = if annealing { Some(ckpt_path.clone()).filter(|p| p.exists()).or_else(|| main_run.resume_from()) } else { paths.resume_from() };
    let mut cfg = if args.tiny { PriorConfig::tiny() } else { PriorConfig::default() };
    cfg.n_levels = train_set.levels;
    cfg.codebook_size = train_set.codebook_size;
    cfg.frame_rate = train_set.frame_rate;
    cfg.codec_id = train_set.codec_id.clone();
    if cfg.delays.len() != cfg.n_levels {
        cfg.delays = (0..cfg.n_levels).map(|k| k.min(1)).collect();
    }
    cfg.notes = args.performer;
    // A new performer starts as the shipped prior (its config and weights), playing no notes yet.
    let mut start_weights = HashMap::new();
    if args.performer && !args.tiny && resume_from.is_none() {
        (cfg, start_weights) = performer_start(&super::RunPaths::new("prior", None).published_weights, &train_set)?;
    }
    let mut state = TrainState { step: 0, best_valid_nll: None, config: cfg, anneal_from: None };
    let mut saved = Default::default();
    if let Some(p) = &resume_from {
        (state, saved) = super::load_checkpoint(p, CHECKPOINT_KIND)?;
        anyhow::ensure!(
            state.config.codec_id == train_set.codec_id,
            "the checkpoint models codec {} but the tokens come from codec {}: retokenise or start afresh",
            state.config.codec_id,
            train_set.codec_id
        );
        anyhow::ensure!(state.config.notes == args.performer, "{} is a {} run: {} --performer", p.display(), if state.config.notes { "performer" } else { "prior" }, if state.config.notes { "add" } else { "leave out" });
        println!("resuming from {} at step {}", p.display(), state.step);
        super::truncate_log_after(log, state.step)?;
    }
    match (annealing, state.anneal_from) {
        (true, None) => state.anneal_from = Some(state.step),
        (false, Some(from)) => anyhow::bail!("{} is a cool-down branch (from step {from}): resume the main run's checkpoint instead", resume_from.as_deref().unwrap_or(ckpt_path).display()),
        _ => {}
    }
    // The branch ends when its rate reaches zero.
    let last_step = match state.anneal_from {
        Some(from) => args.run.steps.min(from + args.anneal_steps),
        None => args.run.steps,
    };
    let cfg = state.config.clone();
    let vm = VarMap::new();
    let prior = Prior::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &device))?;
    if !start_weights.is_empty() {
        let fresh = super::restore_vars(&vm, &start_weights)?;
        anyhow::ensure!(fresh.is_empty(), "the shipped prior lacks {fresh:?}");
    }
    super::restore_vars(&vm, &saved)?;
    let params: Vec<_> = vm.data().lock().expect("varmap").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let n_params: usize = params.iter().map(|(_, v)| v.elem_count()).sum();
    println!(
        "prior: {n_params} parameters, {} layers x {}, window {} frames ({:.1} s); {} train clips, unigram baseline {unigram:.3} nats/code",
        cfg.n_layers,
        cfg.d_model,
        cfg.window,
        cfg.window as f64 / cfg.frame_rate,
        train_set.clips.len()
    );
    let mut opt = AdamW::new(params)?;
    opt.load_state(&saved, state.step)?;
    drop(saved);
    if resume_from.is_none() {
        super::save_checkpoint(ckpt_path, CHECKPOINT_KIND, &state, &vm, &opt, Default::default())?;
    }
    // Fixed held-out batches, all conditions given.
    let valid = held_out_batches(&valid_set, &cfg, true, &device)?;
    // A performer is also scored without its notes: how much the notes tell it.
    let valid_without_notes = if cfg.notes { Some(held_out_batches(&valid_set, &cfg, false, &device)?) } else { None };

    let mut clock = super::RunClock::new(&args.run);
    let mut window_start = Instant::now();
    let (mut acc, mut acc_n) = (0f64, 0u64);
    while state.step < last_step {
        let crops = draw_crops(&train_set, state.step, args.batch, cfg.window, true);
        let (tokens, cond, rows, targets) = batch_tensors(&train_set, &crops, &cfg, &device)?;
        let l = loss(&prior, &tokens, &cond, &rows, &targets)?;
        let base_lr = match state.anneal_from {
            Some(from) => args.lr * (1.0 - (state.step - from) as f64 / args.anneal_steps as f64).max(0.0),
            None => args.lr,
        };
        let (norm, lr) = opt.minimize(&l, base_lr, state.step)?;
        state.step += 1;
        acc += l.to_scalar::<f32>()? as f64;
        acc_n += 1;
        let log_now = state.step % 50 == 0;
        let valid_now = state.step % args.valid_every == 0;
        if log_now || valid_now {
            let mut rec = serde_json::json!({
                "step": state.step,
                "nll": acc / acc_n as f64,
                "unigram": unigram,
                "grad_norm": norm,
                "lr": lr,
                "s_per_step": window_start.elapsed().as_secs_f64() / acc_n as f64,
                "wall_s": clock.elapsed_s().round(),
            });
            if valid_now {
                let nll = held_out_nll(&prior, &valid)?;
                rec["valid_nll"] = nll.into();
                if let Some(v) = &valid_without_notes {
                    rec["valid_nll_without_notes"] = held_out_nll(&prior, v)?.into();
                }
                if state.best_valid_nll.is_none_or(|b| nll < b) {
                    state.best_valid_nll = Some(nll);
                    save_inference(best_path, &cfg, &vm)?;
                    rec["best"] = true.into();
                }
            }
            println!("{rec}");
            super::log_line(log, &rec)?;
            (acc, acc_n) = (0.0, 0);
            window_start = Instant::now();
        }
        if clock.checkpoint_due(state.step == last_step) {
            super::save_checkpoint(ckpt_path, CHECKPOINT_KIND, &state, &vm, &opt, Default::default())?;
        }
        if clock.out_of_time() {
            println!("time limit reached at step {}", state.step);
            break;
        }
    }
    Ok(())
}

/// A new performer's config and weights: the prior in `file`, with note conditioning added and the
/// note features' columns of the conditioning projection zero (so it computes what the prior
/// did until training moves them).
fn performer_start(file: &Path, train_set: &TokenSet) -> Result<(PriorConfig, HashMap<String, Tensor>)> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let raw = weights::parse::<PriorConfig>(&bytes, KIND, &Device::Cpu).with_context(|| format!("reading {}", file.display()))?;
    anyhow::ensure!(raw.quantized.is_none() && !raw.config.notes, "{}: a performer starts from an f16 or f32 prior without notes", file.display());
    anyhow::ensure!(raw.config.codec_id == train_set.codec_id, "{} models codec {} but the tokens come from codec {}", file.display(), raw.config.codec_id, train_set.codec_id);
    let mut cfg = raw.config;
    cfg.notes = true;
    let mut tensors = raw.tensors;
    let w = tensors.get("cond.weight").context("the prior has no cond.weight")?.to_dtype(DType::F32)?;
    let zeros = Tensor::zeros((w.dim(0)?, NOTE_DIM), DType::F32, w.device())?;
    tensors.insert("cond.weight".into(), Tensor::cat(&[&w, &zeros], 1)?);
    Ok((cfg, tensors))
}

/// `--adopt`: the main run's checkpoint from weights trained elsewhere, with a fresh optimiser
/// (its bias correction restarts, see `AdamW::load_state`).
fn adopt(file: &Path, step: u64, train_set: &TokenSet, valid_set: &TokenSet, unigram: f64, paths: &super::RunPaths) -> Result<()> {
    let device = Device::Cpu;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let raw = weights::parse::<PriorConfig>(&bytes, KIND, &device).with_context(|| format!("reading {}", file.display()))?;
    anyhow::ensure!(raw.quantized.is_none(), "{}: quantised weights cannot be trained on", file.display());
    let cfg = raw.config;
    cfg.validate().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        cfg.codec_id == train_set.codec_id && cfg.n_levels == train_set.levels && cfg.codebook_size == train_set.codebook_size,
        "{} models codec {} but the tokens come from codec {}",
        file.display(),
        cfg.codec_id,
        train_set.codec_id
    );
    let vm = VarMap::new();
    let prior = Prior::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &device))?;
    let missing = super::restore_vars(&vm, &raw.tensors)?;
    anyhow::ensure!(missing.is_empty(), "{} lacks (or has wrongly shaped) {missing:?}", file.display());
    let nll = held_out_nll(&prior, &held_out_batches(valid_set, &cfg, true, &device)?)?;
    let params: Vec<_> = vm.data().lock().expect("varmap").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let state = TrainState { step, best_valid_nll: Some(nll), config: cfg.clone(), anneal_from: None };
    super::save_checkpoint(&paths.checkpoint, CHECKPOINT_KIND, &state, &vm, &AdamW::new(params)?, Default::default())?;
    save_inference(&paths.best, &cfg, &vm)?;
    super::truncate_log_after(&paths.log, step)?;
    let rec = serde_json::json!({"step": step, "adopted": file.file_name().map(|n| n.to_string_lossy().into_owned()), "valid_nll": nll, "unigram": unigram, "best": true});
    super::log_line(&paths.log, &rec)?;
    println!("adopted {} as the main run's step {step}: held-out NLL {nll:.4} nats/code (fresh optimiser); `--publish` ships it", file.display());
    Ok(())
}

/// The fixed held-out batches (all knobs given, and the notes if `notes`) the trainer validates on.
fn held_out_batches(set: &TokenSet, cfg: &PriorConfig, notes: bool, device: &Device) -> Result<Vec<(Tensor, Tensor, Tensor, Tensor)>> {
    (0..4)
        .map(|i| {
            let mut crops = draw_crops(set, u64::MAX - i, 8, cfg.window, false);
            crops.iter_mut().for_each(|c| c.notes = notes);
            batch_tensors(set, &crops, cfg, device)
        })
        .collect()
}

/// Mean held-out NLL (nats per code) of `prior` on `batches`.
fn held_out_nll(prior: &Prior, batches: &[(Tensor, Tensor, Tensor, Tensor)]) -> Result<f64> {
    let mut total = 0.0;
    for (t, c, r, y) in batches {
        total += loss(prior, t, c, r, y)?.to_scalar::<f32>()? as f64;
    }
    Ok(total / batches.len().max(1) as f64)
}

/// `cargo xtask quantize prior`: write the published prior's transformer and head weights as
/// GGML blocks (the rest f16), and measure what that changes: held-out NLL of each file on the
/// trainer's validation batches (EVAL.md).
pub fn quantize(dtypes: &[GgmlDType], performer: bool) -> Result<()> {
    let device = Device::Cpu;
    let model = if performer { "performer" } else { "prior" };
    let reference = super::RunPaths::new(model, None).published_weights;
    let bytes = std::fs::read(&reference).with_context(|| format!("reading {}", reference.display()))?;
    let raw = weights::parse::<PriorConfig>(&bytes, KIND, &device)?;
    let f16_prior = Prior::from_bytes(&bytes, &device)?;
    let valid_set = TokenSet::load(&default_tokens_dir()?, "valid")?;
    // A performer is scored as it plays: with its notes.
    let batches = held_out_batches(&valid_set, &f16_prior.cfg, true, &device)?;
    let unigram = valid_set.unigram_entropy();
    let reference_nll = held_out_nll(&f16_prior, &batches)?;
    let mut rows = vec![format!("| f16 reference | {:.2} MB | {reference_nll:.4} | - |", bytes.len() as f64 / 1e6)];
    for &dtype in dtypes {
        let (qbytes, path) = super::write_quantized(model, KIND, &raw, &Prior::is_quantizable, dtype)?;
        let q = Prior::from_bytes(&qbytes, &device)?;
        let nll = held_out_nll(&q, &batches)?;
        rows.push(format!(
            "| {} (`{}`) | {:.2} MB | {nll:.4} | {:+.4} |",
            weights::quant_name(dtype),
            path.strip_prefix(crate::dataset::repo_root()).unwrap_or(&path).display(),
            qbytes.len() as f64 / 1e6,
            nll - reference_nll
        ));
    }
    let (title, command) = if performer { ("Performer", "prior --performer") } else { ("Prior", "prior") };
    let body = format!(
        "## {title} quantisation\n\n\
         Transformer and head linear weights as GGML blocks (the rest f16). Command: `cargo xtask quantize {command}`; \
         held-out NLL per code on the trainer's 4 validation batches (unigram baseline {unigram:.3} nats/code).\n\n\
         | weights | file size | held-out NLL (nats/code) | change |\n|---|---|---|---|\n{}\n",
        rows.join("\n")
    );
    println!("{body}");
    crate::eval::write_section(&crate::dataset::repo_root().join("EVAL.md"), &format!("{model}-quantization"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cantor::model::prior::notes::{FrameNote, Voice};

    /// A small synthetic tokenised corpus: random codes with a little structure.
    fn write_tokens(dir: &Path) {
        let cfg = PriorConfig::tiny();
        for (split, clips) in [("train", 6), ("valid", 2)] {
            let mut set = TokenSet { codec_id: "test-codec".into(), levels: cfg.n_levels, codebook_size: cfg.codebook_size, frame_rate: 75.0, clips: Vec::new(), codes: Vec::new(), notes: Vec::new() };
            let mut rng = ChaCha8Rng::seed_from_u64(clips);
            for c in 0..clips {
                let frames = 40;
                set.clips.push(TokenClip { id: format!("{split}{c}"), style: c as u32 % 6, instrument: 1, key: 2, mode: 0, bpm: 100.0, beats_per_bar: 4, start_beats: 0.5, offset: set.codes.len() / cfg.n_levels, frames });
                for f in 0..frames * cfg.n_levels {
                    set.codes.push(if f % 3 == 0 { (f % cfg.codebook_size) as u16 } else { rng.random_range(0..cfg.codebook_size as u16) });
                }
                set.notes.push((0..8).map(|n| FrameNote { on: n as f64 * 5.0, off: n as f64 * 5.0 + 4.0, key: 48 + 2 * n, velocity: 80, voice: Voice::Part { program_slot: 0 } }).collect());
            }
            set.save(dir, split).unwrap();
        }
    }

    fn args(tokens: &Path, out: &Path, steps: u64) -> PriorTrainArgs {
        PriorTrainArgs { run: super::super::RunArgs::test(out, steps), batch: 2, lr: 1e-3, valid_every: 4, tokens: Some(tokens.to_path_buf()), tiny: true, anneal_steps: 0, adopt: None, adopt_step: 0, performer: false }
    }

    #[test]
    fn a_resumed_run_ends_bit_identical_and_logs_held_out_nll() {
        let base = std::env::temp_dir().join(format!("cantor-prior-resume-{}", std::process::id()));
        let (tokens, a, b) = (base.join("tokens"), base.join("a"), base.join("b"));
        write_tokens(&tokens);
        train(&args(&tokens, &a, 0)).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::copy(a.join("checkpoint.safetensors"), b.join("checkpoint.safetensors")).unwrap();
        train(&args(&tokens, &a, 8)).unwrap();
        train(&args(&tokens, &b, 5)).unwrap();
        train(&args(&tokens, &b, 8)).unwrap();
        super::super::assert_same_checkpoint(&a, &b, CHECKPOINT_KIND, 8);
        // Held-out NLL was logged and is finite; the best weights load as a prior.
        let log = std::fs::read_to_string(a.join("log.jsonl")).unwrap();
        assert!(log.lines().any(|l| l.contains("valid_nll")));
        let prior = Prior::from_bytes(&std::fs::read(a.join("best.safetensors")).unwrap(), &Device::Cpu).unwrap();
        assert_eq!(prior.cfg.codec_id, "test-codec");
        let _ = std::fs::remove_dir_all(&base);
    }

    /// A performer run trains on the tokens' notes, resumes bit for bit, and logs how it does
    /// with its notes withheld; a prior's checkpoint is not resumed as a performer.
    #[test]
    fn a_performer_run_resumes_bit_identical_and_is_scored_without_its_notes() {
        let base = std::env::temp_dir().join(format!("cantor-performer-resume-{}", std::process::id()));
        let (tokens, a, b) = (base.join("tokens"), base.join("a"), base.join("b"));
        write_tokens(&tokens);
        let performer = |out: &Path, steps| PriorTrainArgs { performer: true, ..args(&tokens, out, steps) };
        train(&performer(&a, 0)).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::copy(a.join("checkpoint.safetensors"), b.join("checkpoint.safetensors")).unwrap();
        train(&performer(&a, 8)).unwrap();
        train(&performer(&b, 5)).unwrap();
        train(&performer(&b, 8)).unwrap();
        super::super::assert_same_checkpoint(&a, &b, CHECKPOINT_KIND, 8);
        let log = std::fs::read_to_string(a.join("log.jsonl")).unwrap();
        assert!(log.lines().any(|l| l.contains("valid_nll_without_notes")), "{log}");
        let prior = Prior::from_bytes(&std::fs::read(a.join("best.safetensors")).unwrap(), &Device::Cpu).unwrap();
        assert!(prior.cfg.notes);
        let err = train(&args(&tokens, &a, 9)).unwrap_err().to_string();
        assert!(err.contains("performer"), "{err}");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn adopted_weights_become_the_main_run_with_a_fresh_optimiser() {
        let base = std::env::temp_dir().join(format!("cantor-prior-adopt-{}", std::process::id()));
        let (tokens, elsewhere, main) = (base.join("tokens"), base.join("elsewhere"), base.join("main"));
        write_tokens(&tokens);
        train(&args(&tokens, &elsewhere, 4)).unwrap();
        let file = elsewhere.join("best.safetensors");
        train(&PriorTrainArgs { adopt: Some(file.clone()), adopt_step: 100, ..args(&tokens, &main, 0) }).unwrap();
        let (state, saved): (TrainState, _) = super::super::load_checkpoint(&main.join("checkpoint.safetensors"), CHECKPOINT_KIND).unwrap();
        assert_eq!(state.step, 100);
        assert!(state.best_valid_nll.is_some_and(|n| n.is_finite()));
        let adopted = weights::parse::<PriorConfig>(&std::fs::read(&file).unwrap(), KIND, &Device::Cpu).unwrap();
        let w = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(w(&saved["head.weight"]), w(&adopted.tensors["head.weight"]), "the checkpoint holds the adopted weights");
        // Training on: the optimiser's own count restarts (bias correction), the run's goes on.
        train(&args(&tokens, &main, 103)).unwrap();
        let (state, saved): (TrainState, _) = super::super::load_checkpoint(&main.join("checkpoint.safetensors"), CHECKPOINT_KIND).unwrap();
        assert_eq!((state.step, w(&saved["optim.step"])), (103, vec![3.0]));
        // Quantised weights are refused.
        let q = weights::to_bytes_quantized(KIND, &adopted.config, &adopted.tensors, Some(DType::F32), Some((&Prior::is_quantizable, GgmlDType::Q8_0))).unwrap();
        std::fs::write(base.join("q.safetensors"), q).unwrap();
        let err = train(&PriorTrainArgs { adopt: Some(base.join("q.safetensors")), adopt_step: 100, ..args(&tokens, &main, 0) }).unwrap_err().to_string();
        assert!(err.contains("quantised"), "{err}");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_cool_down_branch_decays_to_zero_and_leaves_the_main_run_resumable() {
        let base = std::env::temp_dir().join(format!("cantor-prior-anneal-{}", std::process::id()));
        let (tokens, main) = (base.join("tokens"), base.join("main"));
        write_tokens(&tokens);
        train(&args(&tokens, &main, 6)).unwrap();
        let main_ckpt = std::fs::read(main.join("checkpoint.safetensors")).unwrap();
        train(&PriorTrainArgs { anneal_steps: 4, ..args(&tokens, &main, 100) }).unwrap();
        let branch = base.join("main-anneal");
        let (state, _): (TrainState, _) = super::super::load_checkpoint(&branch.join("checkpoint.safetensors"), CHECKPOINT_KIND).unwrap();
        assert_eq!((state.step, state.anneal_from), (10, Some(6)), "the branch runs exactly its steps");
        // Logged at step 8: the update from step 7, a quarter of the way down (and still warming up).
        let logged: Vec<serde_json::Value> = std::fs::read_to_string(branch.join("log.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let at8 = logged.iter().find(|r| r["step"] == 8).expect("step 8 logged");
        let expected = 1e-3 * 0.75 * 8.0 / super::super::optim::WARMUP_STEPS as f64;
        assert!((at8["lr"].as_f64().unwrap() - expected).abs() < 1e-12, "{at8}");
        assert_eq!(std::fs::read(main.join("checkpoint.safetensors")).unwrap(), main_ckpt, "the main run is untouched");
        // The branch cannot be mistaken for the main run.
        std::fs::copy(branch.join("checkpoint.safetensors"), main.join("checkpoint.safetensors")).unwrap();
        let err = train(&args(&tokens, &main, 12)).unwrap_err().to_string();
        assert!(err.contains("cool-down branch"), "{err}");
        let _ = std::fs::remove_dir_all(&base);
    }
}
