//! `cargo xtask train score`: the score prior on the corpus's tokenised scores. Resumable
//! (checkpoints every few minutes, exact resume), metrics logged to
//! `assets/training/score-log.jsonl`, held-out NLL per token beside a smoothed n-gram's.

use super::optim::AdamW;
use anyhow::{Context, Result};
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use cantor::model::score::tokens::{PAD, VOCAB};
use cantor::model::score::{ScoreCond, ScoreConfig, ScorePrior, COND_DIM, KIND};
use cantor::model::weights;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use crate::dataset::scores::{self, ScorePiece, ScoreSet};

const CHECKPOINT_KIND: &str = "cantor-score-prior-checkpoint";

#[derive(Debug, Clone, clap::Args)]
pub struct ScoreTrainArgs {
    #[command(flatten)]
    pub run: super::RunArgs,
    /// Sequences per step.
    #[arg(long, default_value_t = 24)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Steps between held-out evaluations (the best weights are kept).
    #[arg(long, default_value_t = 200)]
    pub valid_every: u64,
    /// Share of sequences trained without style, mode and meter (classifier-free guidance).
    #[arg(long, default_value_t = 0.15)]
    pub cond_dropout: f64,
    /// A tiny model (tests).
    #[arg(long)]
    pub tiny: bool,
    /// Width, depth and window of a fresh run (a resumed run keeps its checkpoint's).
    #[arg(long)]
    pub d_model: Option<usize>,
    #[arg(long)]
    pub n_layers: Option<usize>,
    #[arg(long)]
    pub window: Option<usize>,
    /// Learning-rate warm-up in steps.
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    /// Cool down: the learning rate falls linearly to zero over this many steps from where the
    /// run resumes (the run then stops). A resumed cool-down keeps its own schedule; one that
    /// has finished gives way to a new one.
    #[arg(long, default_value_t = 0)]
    pub decay_steps: u64,
    /// Valid pieces in the periodic held-out NLL (all of them at the end of a run).
    #[arg(long, default_value_t = 80)]
    pub valid_pieces: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainState {
    step: u64,
    best_valid_nll: Option<f64>,
    config: ScoreConfig,
    /// The cool-down's (first step, length), once one has started.
    #[serde(default)]
    decay: Option<(u64, u64)>,
}

/// One training window: a crop of a piece's tokens (next-token targets) with its conditioning.
struct Crop<'a> {
    piece: &'a ScorePiece,
    start: usize,
    drop_cond: bool,
}

/// Crops of `len + 1` tokens (inputs and their next tokens), drawn from `step` alone, so a
/// resumed run draws the same batches.
fn draw_crops<'a>(pieces: &[&'a ScorePiece], step: u64, batch: usize, len: usize, dropout: f64) -> Vec<Crop<'a>> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5C0E ^ step.wrapping_mul(0x9E3779B97F4A7C15));
    (0..batch)
        .map(|_| {
            let piece = pieces[rng.random_range(0..pieces.len())];
            let room = piece.tokens.len().saturating_sub(len + 1);
            Crop { piece, start: if room == 0 { 0 } else { rng.random_range(0..=room) }, drop_cond: rng.random_bool(dropout) }
        })
        .collect()
}

/// Tensors of a batch: inputs [b, len], conditioning [b, len, COND_DIM], targets [b * len],
/// mask [b * len] (0 where the target is padding).
fn batch_tensors(crops: &[Crop], len: usize, device: &Device) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let b = crops.len();
    let (mut input, mut target, mut mask) = (vec![PAD; b * len], vec![PAD; b * len], vec![0f32; b * len]);
    let mut cond = vec![0f32; b * len * COND_DIM];
    for (r, c) in crops.iter().enumerate() {
        let request = if c.drop_cond { ScoreCond::unconditional() } else { c.piece.cond() };
        for i in 0..len {
            let at = c.start + i;
            let slot = *c.piece.slots.get(at).or(c.piece.slots.last()).unwrap_or(&0) as usize;
            cond[(r * len + i) * COND_DIM..(r * len + i + 1) * COND_DIM].copy_from_slice(&request.vector(slot));
            if at + 1 < c.piece.tokens.len() {
                input[r * len + i] = c.piece.tokens[at];
                target[r * len + i] = c.piece.tokens[at + 1];
                mask[r * len + i] = 1.0;
            }
        }
    }
    Ok((
        Tensor::from_vec(input, (b, len), device)?,
        Tensor::from_vec(cond, (b, len, COND_DIM), device)?,
        Tensor::from_vec(target, b * len, device)?,
        Tensor::from_vec(mask, b * len, device)?,
    ))
}

/// Mean NLL (nats per token) over the unmasked targets, and their count.
fn loss(model: &ScorePrior, input: &Tensor, cond: &Tensor, target: &Tensor, mask: &Tensor) -> Result<(Tensor, f64)> {
    let logits = model.forward(input, cond)?.reshape(((), VOCAB))?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let picked = logp.gather(&target.unsqueeze(1)?, 1)?.squeeze(1)?;
    let n = mask.sum_all()?.to_scalar::<f32>()? as f64;
    Ok((((picked * mask)?.sum_all()?.neg()? / n.max(1.0))?, n))
}

/// Held-out NLL per token over whole valid pieces (cut into windows of the model's length,
/// each conditioned on its piece).
fn held_out_nll(model: &ScorePrior, pieces: &[&ScorePiece], len: usize, device: &Device) -> Result<f64> {
    let (mut total, mut count) = (0f64, 0f64);
    for chunk in pieces.chunks(8) {
        let mut crops = Vec::new();
        for p in chunk {
            let mut start = 0;
            while start + 1 < p.tokens.len() {
                crops.push(Crop { piece: p, start, drop_cond: false });
                start += len;
            }
        }
        for group in crops.chunks(16) {
            let (i, c, t, m) = batch_tensors(group, len, device)?;
            let (l, n) = loss(model, &i, &c, &t, &m)?;
            total += l.to_scalar::<f32>()? as f64 * n;
            count += n;
        }
    }
    Ok(total / count.max(1.0))
}

/// A smoothed n-gram (interpolated absolute discounting over orders 1..=`order`, from the train
/// pieces): the baseline the score prior's held-out NLL is compared with.
pub struct NGram {
    order: usize,
    counts: Vec<HashMap<Vec<u32>, HashMap<u32, u32>>>,
}

impl NGram {
    pub fn fit<'a>(pieces: impl Iterator<Item = &'a ScorePiece>, order: usize) -> Self {
        let mut counts = vec![HashMap::<Vec<u32>, HashMap<u32, u32>>::new(); order];
        for p in pieces {
            for i in 1..p.tokens.len() {
                for (n, table) in counts.iter_mut().enumerate() {
                    if i >= n {
                        *table.entry(p.tokens[i - n..i].to_vec()).or_default().entry(p.tokens[i]).or_default() += 1;
                    }
                }
            }
        }
        Self { order, counts }
    }

    fn prob(&self, context: &[u32], token: u32) -> f64 {
        const DISCOUNT: f64 = 0.75;
        let mut p = 1.0 / VOCAB as f64;
        for n in 0..self.order.min(context.len() + 1) {
            let Some(next) = self.counts[n].get(&context[context.len() - n..]) else { break };
            let total: u32 = next.values().sum();
            let c = *next.get(&token).unwrap_or(&0) as f64;
            let lambda = DISCOUNT * next.len() as f64 / total as f64;
            p = (c - DISCOUNT).max(0.0) / total as f64 + lambda * p;
        }
        p
    }

    /// NLL per token (nats) over `pieces`.
    pub fn nll<'a>(&self, pieces: impl Iterator<Item = &'a ScorePiece>) -> f64 {
        let (mut total, mut count) = (0f64, 0usize);
        for p in pieces {
            for i in 1..p.tokens.len() {
                let ctx = &p.tokens[i.saturating_sub(self.order - 1)..i];
                total -= self.prob(ctx, p.tokens[i]).ln();
                count += 1;
            }
        }
        total / count.max(1) as f64
    }
}

fn save_inference(path: &Path, cfg: &ScoreConfig, vm: &VarMap) -> Result<()> {
    weights::save(path, KIND, cfg, &weights::var_tensors(vm), DType::F16)?;
    Ok(())
}

pub fn train(args: &ScoreTrainArgs) -> Result<()> {
    let device = Device::Cpu;
    let paths = super::RunPaths::new("score", args.run.out.as_deref());
    std::fs::create_dir_all(&paths.out)?;
    if args.run.publish {
        let state: TrainState = super::publish(&paths.checkpoint, CHECKPOINT_KIND, &paths.best, &paths.published_checkpoint, &paths.published_weights)?;
        println!("published step {} (best held-out NLL {:?} nats/token)", state.step, state.best_valid_nll);
        return Ok(());
    }
    let set: ScoreSet = scores::build()?;
    let train_set: Vec<&ScorePiece> = set.split("train").collect();
    let valid_set: Vec<&ScorePiece> = set.split("valid").collect();
    anyhow::ensure!(!train_set.is_empty() && !valid_set.is_empty(), "no train or valid pieces");
    let t0 = Instant::now();
    let ngram = NGram::fit(train_set.iter().copied(), 4);
    let ngram_nll = ngram.nll(valid_set.iter().copied());
    println!(
        "score corpus: {} pieces ({} train tokens, {} valid), left out {:?}; 4-gram baseline {ngram_nll:.3} nats/token on valid ({:.1} s)",
        set.pieces.len(),
        set.tokens("train"),
        set.tokens("valid"),
        set.excluded,
        t0.elapsed().as_secs_f64()
    );

    let mut cfg = if args.tiny { ScoreConfig::tiny() } else { ScoreConfig::default() };
    if let Some(d) = args.d_model {
        (cfg.d_model, cfg.d_mlp) = (d, 4 * d);
    }
    cfg.n_layers = args.n_layers.unwrap_or(cfg.n_layers);
    cfg.window = args.window.unwrap_or(cfg.window);
    cfg.validate().map_err(anyhow::Error::msg)?;
    let mut state = TrainState { step: 0, best_valid_nll: None, config: cfg, decay: None };
    let mut saved = Default::default();
    let resume_from = paths.resume_from();
    if let Some(p) = &resume_from {
        (state, saved) = super::load_checkpoint(&p, CHECKPOINT_KIND)?;
        println!("resuming from {} at step {}", p.display(), state.step);
        super::truncate_log_after(&paths.log, state.step)?;
    }
    // A new cool-down starts where none has, or where the last one has run its course (a run
    // that continues a finished one trains again from `--lr` down to zero).
    if args.decay_steps > 0 && state.decay.is_none_or(|(from, len)| state.step >= from + len) {
        state.decay = Some((state.step, args.decay_steps));
    }
    let last_step = match state.decay {
        Some((from, len)) => args.run.steps.min(from + len),
        None => args.run.steps,
    };
    let cfg = state.config.clone();
    let vm = VarMap::new();
    let model = ScorePrior::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &device))?;
    super::restore_vars(&vm, &saved)?;
    let params: Vec<_> = vm.data().lock().expect("varmap").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let n_params: usize = params.iter().map(|(_, v)| v.elem_count()).sum();
    println!("score prior: {n_params} parameters, {} layers x {}, window {} tokens", cfg.n_layers, cfg.d_model, cfg.window);
    let mut opt = AdamW::new(params)?;
    opt.load_state(&saved, state.step)?;
    drop(saved);
    if resume_from.is_none() {
        // The starting point, so that a run copied from here trains from the same weights.
        super::save_checkpoint(&paths.checkpoint, CHECKPOINT_KIND, &state, &vm, &opt, Default::default())?;
    }
    let len = cfg.window;
    let mut clock = super::RunClock::new(&args.run);
    let mut window_start = Instant::now();
    let (mut acc, mut acc_n) = (0f64, 0u64);
    while state.step < last_step {
        let crops = draw_crops(&train_set, state.step, args.batch, len, args.cond_dropout);
        let (i, c, t, m) = batch_tensors(&crops, len, &device)?;
        let (l, _) = loss(&model, &i, &c, &t, &m)?;
        let base_lr = match state.decay {
            Some((from, len)) => args.lr * (1.0 - (state.step - from) as f64 / len as f64).max(0.0),
            None => args.lr,
        };
        let (norm, lr) = opt.minimize_with_warmup(&l, base_lr, state.step, args.warmup)?;
        state.step += 1;
        acc += l.to_scalar::<f32>()? as f64;
        acc_n += 1;
        let valid_now = state.step % args.valid_every == 0 || state.step == last_step;
        if state.step % 50 == 0 || valid_now {
            let mut rec = serde_json::json!({
                "step": state.step,
                "nll": acc / acc_n as f64,
                "ngram_valid_nll": ngram_nll,
                "grad_norm": norm,
                "lr": lr,
                "s_per_step": window_start.elapsed().as_secs_f64() / acc_n as f64,
                "wall_s": clock.elapsed_s().round(),
            });
            if valid_now {
                // A fixed subset between times (a full pass over the valid split takes minutes).
                let pieces = if state.step == last_step { &valid_set[..] } else { &valid_set[..args.valid_pieces.min(valid_set.len())] };
                let nll = held_out_nll(&model, pieces, len, &device)?;
                rec["valid_pieces"] = pieces.len().into();
                rec["ngram_nll_same_pieces"] = ngram.nll(pieces.iter().copied()).into();
                rec["valid_nll"] = nll.into();
                if state.best_valid_nll.is_none_or(|b| nll < b) {
                    state.best_valid_nll = Some(nll);
                    save_inference(&paths.best, &cfg, &vm)?;
                    rec["best"] = true.into();
                }
            }
            println!("{rec}");
            super::log_line(&paths.log, &rec)?;
            (acc, acc_n) = (0.0, 0);
            window_start = Instant::now();
        }
        if clock.checkpoint_due(state.step == last_step) {
            super::save_checkpoint(&paths.checkpoint, CHECKPOINT_KIND, &state, &vm, &opt, Default::default())?;
        }
        if clock.out_of_time() {
            super::save_checkpoint(&paths.checkpoint, CHECKPOINT_KIND, &state, &vm, &opt, Default::default())?;
            println!("time limit reached at step {}", state.step);
            break;
        }
    }
    Ok(())
}

/// `cargo xtask quantize score`: write the published score prior's transformer and head weights
/// as GGML blocks (the rest f16), and measure what that changes: held-out NLL per token over the
/// whole valid split (EVAL.md). Blocks make a step about twice as fast (`cargo xtask bench score`):
/// at this width the f32 weights (4 MB) are read from memory at every token.
pub fn quantize(dtype: GgmlDType) -> Result<()> {
    let device = Device::Cpu;
    let reference = super::RunPaths::new("score", None).published_weights;
    let bytes = std::fs::read(&reference).with_context(|| format!("reading {}", reference.display()))?;
    let raw = weights::parse::<ScoreConfig>(&bytes, KIND, &device)?;
    let set = scores::build()?;
    let valid: Vec<&ScorePiece> = set.split("valid").collect();
    let f16_model = ScorePrior::from_bytes(&bytes, &device)?;
    let reference_nll = held_out_nll(&f16_model, &valid, f16_model.cfg.window, &device)?;
    let (qbytes, path) = super::write_quantized("score", KIND, &raw, &ScorePrior::is_quantizable, dtype)?;
    let q = ScorePrior::from_bytes(&qbytes, &device)?;
    let nll = held_out_nll(&q, &valid, q.cfg.window, &device)?;
    let body = format!(
        "## Score prior quantisation\n\n\
         Transformer and head linear weights as GGML blocks (the rest f16). Command: `cargo xtask quantize score`; \
         held-out NLL per token over the {} pieces of the valid split.\n\n\
         | weights | file size | held-out NLL (nats/token) | change |\n|---|---|---|---|\n\
         | f16 reference | {:.2} MB | {reference_nll:.4} | - |\n\
         | {} (`{}`) | {:.2} MB | {nll:.4} | {:+.4} |\n",
        valid.len(),
        bytes.len() as f64 / 1e6,
        weights::quant_name(dtype),
        path.strip_prefix(crate::dataset::repo_root()).unwrap_or(&path).display(),
        qbytes.len() as f64 / 1e6,
        nll - reference_nll
    );
    println!("{body}");
    crate::eval::write_section(&crate::dataset::repo_root().join("EVAL.md"), "score-quantization", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_run_resumes_exactly_and_learns() {
        let dir = std::env::temp_dir().join(format!("cantor-score-train-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let run = |out: &Path, steps| {
            let args = ScoreTrainArgs { run: crate::train::RunArgs::test(out, steps), batch: 4, lr: 3e-3, valid_every: 1000, cond_dropout: 0.15, tiny: true, d_model: None, n_layers: None, window: None, warmup: 100, decay_steps: 0, valid_pieces: 20 };
            train(&args).unwrap();
        };
        let straight = dir.join("straight");
        let resumed = dir.join("resumed");
        run(&straight, 0);
        std::fs::create_dir_all(&resumed).unwrap();
        std::fs::copy(straight.join("checkpoint.safetensors"), resumed.join("checkpoint.safetensors")).unwrap();
        run(&straight, 8);
        run(&resumed, 5);
        run(&resumed, 8);
        super::super::assert_same_checkpoint(&straight, &resumed, CHECKPOINT_KIND, 8);
        let log = std::fs::read_to_string(resumed.join("log.jsonl")).unwrap();
        let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        assert_eq!(last["step"], 8);
        assert!(last["valid_nll"].as_f64().unwrap().is_finite() && last["ngram_valid_nll"].as_f64().unwrap() < (VOCAB as f64).ln(), "{log}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
