//! Codec training: multi-resolution STFT + log-mel losses, EMA codebooks with dead-code restarts,
//! AdamW, checkpoints every few minutes with exact resume (weights, moments, EMA state, step; the
//! data order is a pure function of the step).

use super::optim::AdamW;
use crate::dataset::recipe::{ClipRecipe, DatasetConfig};
use crate::dataset::{repo_root, ClipSource, Dataset};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use cantor::model::codec::{Codec, CodecConfig, KIND};
use cantor::model::spectral::SpectralDistances;
use cantor::model::weights;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, clap::Args)]
pub struct CodecTrainArgs {
    /// Stop at this total step count.
    #[arg(long, default_value_t = 200_000)]
    pub steps: u64,
    /// Stop after this many minutes (a checkpoint is written first).
    #[arg(long, default_value_t = 0.0)]
    pub minutes: f64,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Crop length in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 4e-4)]
    pub lr: f64,
    /// Minutes between checkpoints.
    #[arg(long, default_value_t = 4.0)]
    pub checkpoint_minutes: f64,
    /// Steps between validations.
    #[arg(long, default_value_t = 500)]
    pub valid_every: u64,
    /// Checkpoint folder (default: cache/train/codec).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Use the quick corpus (tests, smoke runs).
    #[arg(long)]
    pub quick: bool,
    /// Tiny model (tests, smoke runs).
    #[arg(long)]
    pub tiny: bool,
    /// Steps trained as a plain autoencoder before quantisation is switched on.
    #[arg(long, default_value_t = 400)]
    pub ae_warmup_steps: u64,
    /// Copy the latest checkpoint and best weights into assets/ (to commit) and exit.
    #[arg(long)]
    pub publish: bool,
    /// Resume with fresh quantiser projections (calibrated on the first batch), keeping the
    /// encoder and decoder.
    #[arg(long)]
    pub reset_quantizer: bool,
}

/// The committed resume point and shipped weights.
pub fn published_checkpoint() -> PathBuf {
    repo_root().join("assets/training/codec-checkpoint.safetensors")
}
pub fn published_weights() -> PathBuf {
    repo_root().join("assets/models/codec.safetensors")
}
pub fn log_path() -> PathBuf {
    repo_root().join("assets/training/codec-log.jsonl")
}

const WARMUP_STEPS: u64 = 500;
/// Standard deviation of each quantiser projection's output after calibration: tanh(1) spans
/// about 6 of a dimension's 8 values, the tails reach the other two.
const FSQ_INIT_STD: f64 = 1.0;
const GRAD_CLIP: f64 = 1.0;
const SEED: u64 = 7;
/// Model kind of codec checkpoint files.
const CHECKPOINT_KIND: &str = "cantor-codec-checkpoint";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainState {
    step: u64,
    /// Best validation log-mel distance so far (None before the first validation).
    best_valid_mel: Option<f64>,
    config: CodecConfig,
}

/// Code use per level since the last log line (FSQ has no codebook state to train or save).
struct CodeUsage {
    counts: Vec<Vec<u64>>,
}

impl CodeUsage {
    fn new(cfg: &CodecConfig) -> Self {
        Self { counts: vec![vec![0; cfg.codebook_size]; cfg.n_codebooks] }
    }

    /// Count the codes [n, levels] of one step.
    fn add(&mut self, codes: &[Vec<u32>]) {
        for frame in codes {
            for (level, &c) in frame.iter().enumerate() {
                self.counts[level][c as usize] += 1;
            }
        }
    }

    /// Per level: fraction of codes used in the window, and perplexity of their use; resets.
    fn take(&mut self) -> Vec<(f64, f64)> {
        let out = self
            .counts
            .iter()
            .map(|counts| {
                let total: u64 = counts.iter().sum();
                let used = counts.iter().filter(|&&c| c > 0).count() as f64 / counts.len() as f64;
                let h: f64 = counts
                    .iter()
                    .filter(|&&c| c > 0)
                    .map(|&c| {
                        let p = c as f64 / total.max(1) as f64;
                        -p * p.ln()
                    })
                    .sum();
                (used, h.exp())
            })
            .collect();
        self.counts.iter_mut().for_each(|c| c.iter_mut().for_each(|v| *v = 0));
        out
    }
}

/// A batch of crops [batch, samples] for `step`: a pure function of (seed, step).
fn make_batch(source: &mut ClipSource, clips: &[&ClipRecipe], step: u64, batch: usize, seconds: f64, sr: u32) -> Result<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ step.wrapping_mul(0x9E3779B97F4A7C15));
    let n = (seconds * sr as f64) as usize;
    let mut out = Vec::with_capacity(batch * n);
    let mut got = 0;
    let mut tries = 0;
    while got < batch {
        tries += 1;
        let clip = clips[rng.random_range(0..clips.len())];
        let max_off = (clip.seconds - seconds).max(0.0);
        let offset = rng.random_range(0.0..=max_off);
        // Half a second of warm-up so notes already sounding are not re-attacked inside the crop.
        let warm = offset.min(0.5);
        let gain = 10f32.powf(rng.random_range(-8.0..2.0) / 20.0);
        let audio = source.render_span(clip, offset - warm, seconds + warm)?;
        let skip = audio.len() - n;
        let crop = &audio[skip..];
        let rms = (crop.iter().map(|v| v * v).sum::<f32>() / n as f32).sqrt();
        if rms < 1e-3 && tries < batch * 4 {
            continue; // a rest: draw again (deterministically)
        }
        out.extend(crop.iter().map(|v| v * gain));
        got += 1;
    }
    Ok(out)
}

pub fn train(args: &CodecTrainArgs) -> Result<()> {
    let device = Device::Cpu;
    let out = args.out.clone().unwrap_or_else(|| crate::dataset::cache_dir().join("train/codec"));
    std::fs::create_dir_all(&out)?;
    let ckpt_path = out.join("checkpoint.safetensors");
    // Runs into a custom folder (tests, experiments) log there; the real run logs to assets/.
    let log = if args.out.is_some() { out.join("log.jsonl") } else { log_path() };
    let best_path = out.join("best.safetensors");
    if args.publish {
        let state: TrainState = super::publish(&ckpt_path, CHECKPOINT_KIND, &best_path, &published_checkpoint(), &published_weights())?;
        println!(
            "published step {} (best validation log-mel {:?}) to {} and {}",
            state.step,
            state.best_valid_mel,
            published_checkpoint().display(),
            published_weights().display()
        );
        return Ok(());
    }

    let ds_cfg = if args.quick { DatasetConfig::quick() } else { DatasetConfig::default() };
    let dataset = Dataset::build(&ds_cfg)?;
    let train_clips: Vec<ClipRecipe> = dataset.split("train").cloned().collect();
    let valid_clips: Vec<ClipRecipe> = dataset.split("valid").cloned().collect();
    anyhow::ensure!(!train_clips.is_empty() && !valid_clips.is_empty(), "the corpus has no train or valid clips");

    // Resume: the cache checkpoint (bit-exact), else (for the real run) the committed one, else
    // a fresh start.
    let mut candidates = vec![ckpt_path.clone()];
    if args.out.is_none() {
        candidates.push(published_checkpoint());
    }
    let resume_from = candidates.into_iter().find(|p| p.exists());
    let mut state = TrainState {
        step: 0,
        best_valid_mel: None,
        config: if args.tiny { CodecConfig::tiny() } else { CodecConfig::default() },
    };
    let mut saved: HashMap<String, Tensor> = HashMap::new();
    if let Some(p) = &resume_from {
        (state, saved) = super::load_checkpoint(p, CHECKPOINT_KIND)?;
        println!("resuming from {} at step {}", p.display(), state.step);
        super::truncate_log_after(&log, state.step)?;
    }
    let cfg = state.config.clone();
    let vm = VarMap::new();
    let codec = Codec::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &device))?;
    if args.reset_quantizer {
        saved.retain(|name, _| !name.starts_with("quantizer.") && !name.starts_with("adam.m.quantizer.") && !name.starts_with("adam.v.quantizer."));
    }
    let fresh = super::restore_vars(&vm, &saved)?;
    // Fresh quantiser projections on a trained encoder (a warm start) are calibrated on the
    // first batch; a fresh run calibrates when its autoencoder warm-up ends.
    let mut calibrate_at = if fresh.iter().any(|n| n.starts_with("quantizer.")) && state.step >= args.ae_warmup_steps { Some(state.step) } else { None };
    if resume_from.is_none() {
        calibrate_at = Some(args.ae_warmup_steps);
    }
    if resume_from.is_some() && !fresh.is_empty() {
        // A warm start across architectures: earlier validation scores measured another model.
        println!("warm start: {} tensors start fresh ({})", fresh.len(), fresh.join(", "));
        state.best_valid_mel = None;
    }
    let params: Vec<(String, Var)> = vm.data().lock().expect("varmap").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let n_params: usize = params.iter().map(|(_, v)| v.elem_count()).sum();
    println!(
        "codec: {n_params} trainable parameters, {} Hz, hop {}, {} x {} codes, {:.0} bit/s",
        cfg.sample_rate,
        cfg.hop(),
        cfg.n_codebooks,
        cfg.codebook_size,
        cfg.bitrate()
    );
    let mut opt = AdamW::new(params)?;
    opt.load_state(&saved, state.step)?;
    let mut usage = CodeUsage::new(&cfg);
    drop(saved);

    let spectral = SpectralDistances::new(cfg.sample_rate, &device)?;
    let crop = ((args.seconds * cfg.sample_rate as f64) as usize / cfg.hop()) * cfg.hop();
    let crop_s = crop as f64 / cfg.sample_rate as f64;

    // Fixed validation crops.
    let mut source = ClipSource::new(cfg.sample_rate);
    let vrefs: Vec<&ClipRecipe> = valid_clips.iter().collect();
    let valid = make_batch(&mut source, &vrefs, u64::MAX, 16, crop_s, cfg.sample_rate)?;
    let valid = Tensor::from_vec(valid, (16, crop), &device)?;

    // Batches are rendered on a second thread while the model trains.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(u64, Vec<f32>)>>(2);
    {
        let clips = train_clips.clone();
        let (batch, sr, start) = (args.batch, cfg.sample_rate, state.step);
        std::thread::spawn(move || {
            let mut source = ClipSource::new(sr);
            let refs: Vec<&ClipRecipe> = clips.iter().collect();
            for step in start.. {
                let b = make_batch(&mut source, &refs, step, batch, crop_s, sr).map(|b| (step, b));
                if tx.send(b).is_err() {
                    break;
                }
            }
        });
    }

    if resume_from.is_none() {
        // The initial weights are random (candle's CPU initialiser takes no seed): keep them, so
        // this run can be replayed exactly from its start.
        super::save_checkpoint(&ckpt_path, CHECKPOINT_KIND, &state, &vm, &opt, Default::default())?;
    }
    let started = Instant::now();
    let mut last_ckpt = Instant::now();
    let mut acc = (0f64, 0f64, 0f64, 0u64);
    let mut window_start = Instant::now();
    while state.step < args.steps {
        let (step, batch) = rx.recv().context("batch thread stopped")??;
        debug_assert_eq!(step, state.step);
        let x = Tensor::from_vec(batch, (args.batch, crop), &device)?;
        if calibrate_at == Some(state.step) {
            let z = codec.encoder.forward(&x)?.detach();
            let data = vm.data().lock().expect("varmap");
            for (l, (w, b)) in codec.quantizer.calibrated_projections(&z, FSQ_INIT_STD)?.into_iter().enumerate() {
                data[&format!("quantizer.level{l}.down.weight")].set(&w)?;
                data[&format!("quantizer.level{l}.down.bias")].set(&b)?;
            }
            println!("step {}: quantiser projections calibrated on the batch", state.step);
        }
        let z = codec.encoder.forward(&x)?;
        let vq = codec.quantizer.forward_train(&z)?;
        // Plain autoencoder first (session 1: quantising from step 0 collapsed its learned
        // codebooks; kept for fresh starts, so the latents find a useful scale first).
        let quantizing = state.step >= args.ae_warmup_steps;
        let decoder_in = if quantizing { &vq.quantized } else { &z };
        let y = codec.decoder.forward(decoder_in)?;
        let (stft, mel) = spectral.both(&y, &x)?;
        let loss = (&stft + &mel)?;
        let grads = loss.backward()?;
        let norm = opt.grad_norm(&grads)?;
        let scale = if norm.is_finite() && norm > GRAD_CLIP { GRAD_CLIP / norm } else { 1.0 };
        let lr = args.lr * ((state.step + 1) as f64 / WARMUP_STEPS as f64).min(1.0);
        if norm.is_finite() {
            opt.step(&grads, lr, scale)?;
        } else {
            println!("step {}: non-finite gradient norm, update skipped", state.step);
        }
        usage.add(&vq.codes.flatten_to(1)?.to_vec2::<u32>()?);
        state.step += 1;
        acc.0 += stft.to_scalar::<f32>()? as f64;
        acc.1 += mel.to_scalar::<f32>()? as f64;
        acc.3 += 1;

        let log_now = state.step % 50 == 0;
        let valid_now = state.step % args.valid_every == 0;
        if log_now || valid_now {
            let usage = usage.take();
            let mut rec = serde_json::json!({
                "step": state.step,
                "stft": acc.0 / acc.3 as f64,
                "mel": acc.1 / acc.3 as f64,
                "grad_norm": norm,
                "lr": lr,
                "s_per_step": window_start.elapsed().as_secs_f64() / acc.3 as f64,
                "code_use": usage.iter().map(|u| (u.0 * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
                "perplexity": usage.iter().map(|u| u.1.round()).collect::<Vec<_>>(),
                "wall_s": started.elapsed().as_secs_f64().round(),
            });
            if valid_now {
                let (vm_mel, vm_stft) = validate(&codec, &spectral, &valid)?;
                rec["valid_mel"] = vm_mel.into();
                rec["valid_stft"] = vm_stft.into();
                if state.best_valid_mel.is_none_or(|b| vm_mel < b) {
                    state.best_valid_mel = Some(vm_mel);
                    save_inference(&best_path, &cfg, &vm)?;
                    rec["best"] = true.into();
                }
            }
            println!("{rec}");
            super::log_line(&log, &rec)?;
            acc = (0.0, 0.0, 0.0, 0);
            window_start = Instant::now();
        }
        let out_of_time = args.minutes > 0.0 && started.elapsed().as_secs_f64() > args.minutes * 60.0;
        if last_ckpt.elapsed().as_secs_f64() > args.checkpoint_minutes * 60.0 || out_of_time || state.step == args.steps {
            super::save_checkpoint(&ckpt_path, CHECKPOINT_KIND, &state, &vm, &opt, Default::default())?;
            last_ckpt = Instant::now();
        }
        if out_of_time {
            println!("time limit reached at step {}", state.step);
            break;
        }
    }
    Ok(())
}

fn validate(codec: &Codec, spectral: &SpectralDistances, x: &Tensor) -> Result<(f64, f64)> {
    let y = codec.decode(&codec.encode(x)?)?;
    let (stft, mel) = spectral.both(&y, x)?;
    Ok((mel.to_scalar::<f32>()? as f64, stft.to_scalar::<f32>()? as f64))
}

fn save_inference(path: &Path, cfg: &CodecConfig, vm: &VarMap) -> Result<()> {
    weights::save(path, KIND, cfg, &super::var_tensors(vm), DType::F16)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(out: &Path, steps: u64) -> CodecTrainArgs {
        CodecTrainArgs {
            steps,
            minutes: 0.0,
            batch: 2,
            seconds: 0.2,
            lr: 1e-3,
            checkpoint_minutes: 1e9,
            valid_every: 1000,
            out: Some(out.to_path_buf()),
            quick: true,
            tiny: true,
            publish: false,
            reset_quantizer: false,
            ae_warmup_steps: 2,
        }
    }

    #[test]
    fn a_resumed_run_ends_bit_identical_to_an_uninterrupted_one() {
        let base = std::env::temp_dir().join(format!("cantor-resume-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        // candle's CPU initialiser cannot be seeded: both runs start from one initial checkpoint.
        train(&args(&a, 0)).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::copy(a.join("checkpoint.safetensors"), b.join("checkpoint.safetensors")).unwrap();
        train(&args(&a, 6)).unwrap();
        train(&args(&b, 3)).unwrap();
        train(&args(&b, 6)).unwrap();
        super::super::assert_same_checkpoint(&a, &b, CHECKPOINT_KIND, 6);
        let _ = std::fs::remove_dir_all(&base);
    }
}
