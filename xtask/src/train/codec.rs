//! Codec training: multi-resolution STFT + log-mel losses, EMA codebooks with dead-code restarts,
//! AdamW, checkpoints every few minutes with exact resume (weights, moments, EMA state, step; the
//! data order is a pure function of the step).

use super::optim::AdamW;
use crate::dataset::recipe::{ClipRecipe, DatasetConfig};
use crate::dataset::{ClipSource, Dataset};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use cantor::model::codec::{Codec, CodecConfig, PhaseMode, KIND};
use cantor::model::prior::codec_codes_id;
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
    #[command(flatten)]
    pub run: super::RunArgs,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Crop length in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 4e-4)]
    pub lr: f64,
    /// Steps between validations.
    #[arg(long, default_value_t = 500)]
    pub valid_every: u64,
    /// Use the quick corpus (tests, smoke runs).
    #[arg(long)]
    pub quick: bool,
    /// Tiny model (tests, smoke runs).
    #[arg(long)]
    pub tiny: bool,
    /// Steps trained as a plain autoencoder before quantisation is switched on.
    #[arg(long, default_value_t = 400)]
    pub ae_warmup_steps: u64,
    /// Train the decoder only: the encoder and codebooks stay as they are, so the codes (and a
    /// prior trained on them) stay valid while the sound improves. This is a side run of its own
    /// (cache/train/codec-decoder, log assets/training/codec-log-decoder.jsonl) that starts from
    /// `--from` and ships to the same weights file.
    #[arg(long)]
    pub freeze_codes: bool,
    /// Where a decoder-only run starts when it has no checkpoint yet: codec weights or a codec
    /// checkpoint (default: the shipped weights, whose codes the tokenised corpus and the prior use).
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Decay the learning rate linearly to zero over the last this many steps before `--steps`
    /// (0: a constant rate after warm-up). A pure function of the step, so resumes stay exact.
    #[arg(long, default_value_t = 0)]
    pub cooldown_steps: u64,
    /// Fine-tune everything (encoder, codebooks, decoder) from `--from` (default: the shipped
    /// weights) in a side run of its own (cache/train/codec-tune, log
    /// assets/training/codec-log-tune.jsonl). The codes change: a tuned codec needs the corpus
    /// re-tokenised and the prior retrained before it can ship.
    #[arg(long, conflicts_with = "freeze_codes")]
    pub tune: bool,
    /// With `--tune`: the decoder stays as it is and only the encoder and codebooks learn, i.e.
    /// codes that the shipped decoder renders better.
    #[arg(long, requires = "tune")]
    pub freeze_decoder: bool,
    /// With `--tune`: the codebooks stay as they are (no moving averages, no restarts); the
    /// commitment term holds the encoder to them while encoder and decoder learn.
    #[arg(long, requires = "tune")]
    pub keep_codebooks: bool,
    /// Weight of the pitch-resolved log-spectrogram distance (`spectral::PITCH`) in the loss and
    /// in checkpoint selection. Fixed when a run starts; a resume keeps the run's own.
    #[arg(long, default_value_t = 0.0)]
    pub pitch_weight: f64,
    /// With `--freeze-codes`: the decoder's phase becomes integrated from predicted frequencies
    /// (`PhaseMode::Integrated`); the start's head gains a frequency output, zero at first. A
    /// side run of its own (cache/train/codec-decoder-phase, log
    /// assets/training/codec-log-decoder-phase.jsonl); the codes stay, so it can ship as is.
    #[arg(long, requires = "freeze_codes")]
    pub integrated_phase: bool,
    /// Weight of the frequency term for an integrated-phase decoder: its predicted frequency
    /// deviations held (L1, weighted by magnitude) to the input's own, measured by a phase
    /// vocoder on the decoder's STFT grid (`frequency_targets`). Learned through the phase alone,
    /// the deviations stayed near zero and every bin sang at its centre: steady ghost tones.
    /// A loss weight like the rate: it may change when a run resumes.
    #[arg(long, default_value_t = 0.0)]
    pub frequency_weight: f64,
}

/// The shipped weights (what evaluation, quantisation and the tokeniser read).
pub fn published_weights() -> PathBuf {
    super::RunPaths::new("codec", None).published_weights
}

const EMA_DECAY: f64 = 0.99;
/// A code not chosen for this many steps (about 60k assignments) is restarted from a recent
/// encoder output: Jukebox's fix for codebook collapse, in a form that reacts within a few
/// minutes at our small batches (an EMA-use threshold took ~300 steps to notice a dead code).
const RESTART_IDLE_STEPS: u32 = 100;
const COMMITMENT_WEIGHT: f64 = 0.1;
const SEED: u64 = 7;
/// Model kind of codec checkpoint files.
const CHECKPOINT_KIND: &str = "cantor-codec-checkpoint";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainState {
    step: u64,
    /// Best validation score so far, lower is better: log-mel distance + pitch_weight x pitch
    /// distance (None before the first validation).
    #[serde(alias = "best_valid_mel")]
    best_valid: Option<f64>,
    /// Weight of the pitch distance (0 in runs from before it existed).
    #[serde(default)]
    pitch_weight: f64,
    /// A fine-tuning run that keeps the decoder (`--freeze-decoder`), checked at every resume.
    #[serde(default)]
    decoder_frozen: bool,
    /// A fine-tuning run that keeps the codebooks (`--keep-codebooks`), checked at every resume.
    #[serde(default)]
    codebooks_kept: bool,
    config: CodecConfig,
    /// A decoder-only run: the codes' identity (`codec_codes_id`) it must keep, checked at every
    /// resume so a checkpoint whose codes moved can never pass for one that the prior still fits.
    #[serde(default)]
    frozen_codes_id: Option<String>,
}

/// EMA codebook statistics, per level: cluster sizes [K] and vector sums [K * D].
struct EmaCodebooks {
    size: Vec<Vec<f32>>,
    sum: Vec<Vec<f32>>,
    /// Code use counts since the last log line.
    window_counts: Vec<Vec<u64>>,
    /// Steps since each code was last chosen.
    idle: Vec<Vec<u32>>,
    restarts: u64,
}

impl EmaCodebooks {
    fn new(cfg: &CodecConfig) -> Self {
        let (l, k, d) = (cfg.n_codebooks, cfg.codebook_size, cfg.latent_dim);
        Self { size: vec![vec![0.0; k]; l], sum: vec![vec![0.0; k * d]; l], window_counts: vec![vec![0; k]; l], idle: vec![vec![RESTART_IDLE_STEPS; k]; l], restarts: 0 }
    }

    /// Averages that reproduce `books` with every code used `even` times a step, none idle.
    fn seed(&mut self, books: &[Var], even: f32) -> Result<()> {
        for (l, book) in books.iter().enumerate() {
            let b = book.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            self.size[l].iter_mut().for_each(|s| *s = even);
            self.sum[l] = b.iter().map(|v| v * even).collect();
            self.idle[l].iter_mut().for_each(|i| *i = 0);
        }
        Ok(())
    }

    /// Count code use without updating the codebook (frozen codes).
    fn count(&mut self, level: usize, codes: &[u32]) {
        for &c in codes {
            self.window_counts[level][c as usize] += 1;
        }
    }

    /// Update level `level` from its inputs [n, d] and chosen codes [n]; write the codebook.
    fn update(&mut self, level: usize, inputs: &Tensor, codes: &[u32], codebook: &Var, rng: &mut ChaCha8Rng) -> Result<()> {
        let (n, d) = inputs.dims2()?;
        let x = inputs.flatten_all()?.to_vec1::<f32>()?;
        let k = self.size[level].len();
        let mut count = vec![0f32; k];
        let mut sum = vec![0f32; k * d];
        for (i, &c) in codes.iter().enumerate() {
            let c = c as usize;
            count[c] += 1.0;
            self.window_counts[level][c] += 1;
            for j in 0..d {
                sum[c * d + j] += x[i * d + j];
            }
        }
        let decay = EMA_DECAY as f32;
        let size = &mut self.size[level];
        let esum = &mut self.sum[level];
        for c in 0..k {
            size[c] = decay * size[c] + (1.0 - decay) * count[c];
            for j in 0..d {
                esum[c * d + j] = decay * esum[c * d + j] + (1.0 - decay) * sum[c * d + j];
            }
        }
        let mut book = vec![0f32; k * d];
        // EMA use of a code that gets its even share of the n inputs every step.
        let even = n as f32 / k as f32;
        let idle = &mut self.idle[level];
        for c in 0..k {
            idle[c] = if count[c] > 0.0 { 0 } else { idle[c].saturating_add(1) };
            if idle[c] >= RESTART_IDLE_STEPS {
                idle[c] = 0;
                // Restart from a random recent input, weighted as an evenly used code.
                let i = rng.random_range(0..n);
                size[c] = even;
                for j in 0..d {
                    esum[c * d + j] = x[i * d + j] * size[c];
                }
                self.restarts += 1;
            }
            for j in 0..d {
                book[c * d + j] = esum[c * d + j] / size[c];
            }
        }
        codebook.set(&Tensor::from_vec(book, (k, d), inputs.device())?)?;
        Ok(())
    }

    fn tensors(&self, device: &Device) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for l in 0..self.size.len() {
            out.insert(format!("ema.size.{l}"), Tensor::new(self.size[l].as_slice(), device)?);
            out.insert(format!("ema.sum.{l}"), Tensor::new(self.sum[l].as_slice(), device)?);
            let idle: Vec<f32> = self.idle[l].iter().map(|&v| v as f32).collect();
            out.insert(format!("ema.idle.{l}"), Tensor::new(idle.as_slice(), device)?);
        }
        Ok(out)
    }

    fn load(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
        for l in 0..self.size.len() {
            if let (Some(s), Some(m)) = (t.get(&format!("ema.size.{l}")), t.get(&format!("ema.sum.{l}"))) {
                self.size[l] = s.to_dtype(DType::F32)?.to_vec1()?;
                self.sum[l] = m.to_dtype(DType::F32)?.to_vec1()?;
            }
            if let Some(i) = t.get(&format!("ema.idle.{l}")) {
                self.idle[l] = i.to_dtype(DType::F32)?.to_vec1::<f32>()?.iter().map(|&v| v as u32).collect();
            }
        }
        Ok(())
    }

    /// Per level: fraction of codes used in the window, and perplexity of their use.
    fn usage(&mut self) -> Vec<(f64, f64)> {
        let out = self.window_counts.iter().map(|counts| super::code_use(counts)).collect();
        self.window_counts.iter_mut().for_each(|c| c.iter_mut().for_each(|v| *v = 0));
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

/// The input's frequency in each bin of each decoder frame, as a deviation from the bin's centre
/// in bins, and its weight (the bin's magnitude, geometric mean over the two frames): a phase
/// vocoder on the decoder's own STFT grid (Hann window of `n_fft`, frame t starting
/// `(n_fft - hop) / 2` samples before sample t * hop, as `Decoder::forward` places its frames).
/// The phase advance beyond the bin centre's, wrapped to (-pi, pi], gives deviations within +-2
/// bins when hop = n_fft / 4: the Hann main lobe, so a partial's bins all agree on its frequency.
/// `x` is [batch * n]; both outputs are [batch, n / hop, n_fft / 2 + 1], frame 0 weighted 0.
fn frequency_targets(x: &[f32], batch: usize, hop: usize, n_fft: usize) -> (Vec<f32>, Vec<f32>) {
    use realfft::num_complex::Complex;
    let n = x.len() / batch;
    let (frames, bins, delay) = (n / hop, n_fft / 2 + 1, (n_fft - hop) / 2);
    let tau = std::f64::consts::TAU;
    let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
    let window: Vec<f64> = (0..n_fft).map(|i| 0.5 - 0.5 * (tau * i as f64 / n_fft as f64).cos()).collect();
    let (mut targets, mut weights) = (vec![0f32; batch * frames * bins], vec![0f32; batch * frames * bins]);
    let (mut input, mut now, mut before) = (fft.make_input_vec(), fft.make_output_vec(), vec![Complex::<f64>::default(); bins]);
    let per_bin = tau * hop as f64 / n_fft as f64;
    for b in 0..batch {
        let xb = &x[b * n..(b + 1) * n];
        for t in 0..frames {
            for (i, v) in input.iter_mut().enumerate() {
                let at = (t * hop + i).checked_sub(delay).filter(|&s| s < n);
                *v = at.map_or(0.0, |s| xb[s] as f64 * window[i]);
            }
            // Cannot fail: the buffers come from the plan.
            let _ = fft.process(&mut input, &mut now);
            if t > 0 {
                for k in 0..bins {
                    let advance: f64 = now[k].arg() - before[k].arg() - per_bin * k as f64;
                    let wrapped = advance - tau * (advance / tau).round();
                    let at = (b * frames + t) * bins + k;
                    targets[at] = (wrapped / per_bin) as f32;
                    weights[at] = (now[k].norm() * before[k].norm()).sqrt() as f32;
                }
            }
            before.copy_from_slice(&now);
        }
    }
    (targets, weights)
}

/// Learning rate before warm-up: constant, or falling linearly to zero over the last
/// `cooldown` steps before `last`.
fn scheduled_lr(base: f64, step: u64, last: u64, cooldown: u64) -> f64 {
    if cooldown == 0 {
        return base;
    }
    base * ((last.saturating_sub(step)) as f64 / cooldown as f64).min(1.0)
}

/// Turn a direct-phase decoder into an integrated-phase one: the head gains a frequency
/// deviation per bin, zero at first (each bin's phase then turns at the bin's centre frequency).
fn integrate_phase(cfg: &mut CodecConfig, tensors: &mut HashMap<String, Tensor>) -> Result<()> {
    let bins = cfg.n_fft / 2 + 1;
    let w = tensors.get("decoder.head.weight").context("the start has no decoder head")?;
    let b = tensors.get("decoder.head.bias").context("the start has no decoder head bias")?;
    let (rows, dim) = w.dims2()?;
    anyhow::ensure!(rows == 2 * bins, "the start's head has {rows} outputs, expected {}", 2 * bins);
    let w = Tensor::cat(&[w, &Tensor::zeros((bins, dim), w.dtype(), w.device())?], 0)?;
    let b = Tensor::cat(&[b, &Tensor::zeros(bins, b.dtype(), b.device())?], 0)?;
    tensors.insert("decoder.head.weight".into(), w);
    tensors.insert("decoder.head.bias".into(), b);
    cfg.decoder_phase = PhaseMode::Integrated;
    println!("decoder phase: integrated from predicted frequencies (head {rows} -> {} outputs)", 3 * bins);
    Ok(())
}

/// The start of a decoder-only run: the weights (or checkpoint) whose codes must be kept.
fn load_start(path: &Path) -> Result<(CodecConfig, HashMap<String, Tensor>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the decoder run's start {}", path.display()))?;
    if let Ok(ckpt) = weights::parse::<TrainState>(&bytes, CHECKPOINT_KIND, &Device::Cpu) {
        // The start's weights only: the decoder run's optimiser starts fresh.
        let model = ckpt.tensors.into_iter().filter(|(k, _)| !k.starts_with("adam.") && !k.starts_with("optim.")).collect();
        return Ok((ckpt.config.config, model));
    }
    let raw = weights::parse::<CodecConfig>(&bytes, KIND, &Device::Cpu).with_context(|| format!("{} is neither codec weights nor a codec checkpoint", path.display()))?;
    Ok((raw.config, raw.tensors))
}

pub fn train(args: &CodecTrainArgs) -> Result<()> {
    let device = Device::Cpu;
    let main_run = super::RunPaths::new("codec", args.run.out.as_deref());
    let paths = if args.integrated_phase {
        main_run.branch("decoder-phase")
    } else if args.freeze_codes {
        main_run.branch("decoder")
    } else if args.tune {
        // A tuned codec's codes are not the corpus's: its weights wait beside its checkpoint, not
        // in the shipped file, until the corpus is re-tokenised and the prior retrained for them.
        let mut tune = main_run.branch("tune");
        tune.published_weights = tune.published_checkpoint.with_file_name("codec-tune-best.safetensors");
        tune
    } else {
        main_run.clone()
    };
    std::fs::create_dir_all(&paths.out)?;
    let (ckpt_path, best_path, log) = (&paths.checkpoint, &paths.best, &paths.log);
    if args.run.publish {
        let state: TrainState = super::publish(ckpt_path, CHECKPOINT_KIND, best_path, &paths.published_checkpoint, &paths.published_weights)?;
        println!(
            "published step {} (best validation score {:?}) to {} and {}",
            state.step,
            state.best_valid,
            paths.published_checkpoint.display(),
            paths.published_weights.display()
        );
        return Ok(());
    }

    let ds_cfg = if args.quick { DatasetConfig::quick() } else { DatasetConfig::default() };
    let dataset = Dataset::build(&ds_cfg)?;
    let train_clips: Vec<ClipRecipe> = dataset.split("train").cloned().collect();
    let valid_clips: Vec<ClipRecipe> = dataset.split("valid").cloned().collect();
    anyhow::ensure!(!train_clips.is_empty() && !valid_clips.is_empty(), "the corpus has no train or valid clips");

    let resume_from = paths.resume_from();
    let mut state = TrainState {
        step: 0,
        best_valid: None,
        pitch_weight: args.pitch_weight,
        decoder_frozen: args.freeze_decoder,
        codebooks_kept: args.keep_codebooks,
        config: if args.tiny { CodecConfig::tiny() } else { CodecConfig::default() },
        frozen_codes_id: None,
    };
    let mut saved: HashMap<String, Tensor> = HashMap::new();
    if let Some(p) = &resume_from {
        (state, saved) = super::load_checkpoint(p, CHECKPOINT_KIND)?;
        println!("resuming from {} at step {}", p.display(), state.step);
        super::truncate_log_after(log, state.step)?;
    } else if args.freeze_codes || args.tune {
        let start = args.from.clone().unwrap_or_else(|| main_run.published_weights.clone());
        (state.config, saved) = load_start(&start)?;
        println!("{} run starts from {}", if args.tune { "fine-tuning" } else { "decoder-only" }, start.display());
        if args.integrated_phase && state.config.decoder_phase == PhaseMode::Direct {
            integrate_phase(&mut state.config, &mut saved)?;
        }
    }
    anyhow::ensure!(
        (state.config.decoder_phase == PhaseMode::Integrated) == args.integrated_phase || resume_from.is_none(),
        "this run's decoder phase is {:?}: resume it {} --integrated-phase",
        state.config.decoder_phase,
        if args.integrated_phase { "without" } else { "with" }
    );
    let cfg = state.config.clone();
    let vm = VarMap::new();
    let codec = Codec::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &device))?;
    let fresh = super::restore_vars(&vm, &saved)?;
    if args.freeze_codes {
        anyhow::ensure!(fresh.iter().all(|n| n.starts_with("decoder.")), "the decoder run's start lacks encoder or codebook weights: {fresh:?}");
        let id = codec_codes_id(&codec)?;
        match &state.frozen_codes_id {
            Some(kept) => anyhow::ensure!(*kept == id, "this decoder-only checkpoint's codes ({id}) are not the ones it froze ({kept})"),
            None => state.frozen_codes_id = Some(id),
        }
        println!("codes frozen: codec codes id {}", state.frozen_codes_id.as_deref().unwrap_or_default());
    } else {
        anyhow::ensure!(!args.tune || fresh.is_empty(), "the fine-tuning run's start lacks weights: {fresh:?}");
        for (started, now, flag) in [(state.decoder_frozen, args.freeze_decoder, "--freeze-decoder"), (state.codebooks_kept, args.keep_codebooks, "--keep-codebooks")] {
            anyhow::ensure!(started == now, "this run was started {} {flag}: resume it the same way", if started { "with" } else { "without" });
        }
        anyhow::ensure!(state.frozen_codes_id.is_none(), "{} is a decoder-only run: resume it with --freeze-codes", paths.checkpoint.display());
    }
    let params: Vec<(String, Var)> = vm
        .data()
        .lock()
        .expect("varmap")
        .iter()
        .filter(|(k, _)| !k.contains("codebook") && (!args.freeze_codes || k.starts_with("decoder.")) && !(args.freeze_decoder && k.starts_with("decoder.")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let codebook_vars: Vec<Var> = (0..cfg.n_codebooks)
        .map(|l| vm.data().lock().expect("varmap")[&format!("quantizer.level{l}.codebook")].clone())
        .collect();
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
    let crop = ((args.seconds * cfg.sample_rate as f64) as usize / cfg.hop()) * cfg.hop();
    let mut ema = EmaCodebooks::new(&cfg);
    if args.tune && resume_from.is_none() {
        // The start's codebooks seed the averages, each code as if evenly used (else every code
        // would count as idle and be restarted at the first step).
        let even = (args.batch * crop / cfg.hop()) as f32 / cfg.codebook_size as f32;
        ema.seed(&codebook_vars, even)?;
    }
    ema.load(&saved)?;
    drop(saved);

    let spectral = SpectralDistances::new(cfg.sample_rate, &device)?;
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

    if resume_from.is_none() && args.tune {
        // The start's own score, logged at step 0: a fine-tuning run's weights are only kept
        // (best.safetensors) where they beat what it started from.
        let v = validate(&codec, &spectral, &valid)?;
        state.best_valid = Some(v.mel + state.pitch_weight * v.pitch);
        let rec = serde_json::json!({ "step": 0, "valid_mel": v.mel, "valid_stft": v.stft, "valid_pitch": v.pitch });
        println!("{rec}");
        super::log_line(log, &rec)?;
    }
    if resume_from.is_none() {
        // The initial weights are random (candle's CPU initialiser takes no seed): keep them, so
        // this run can be replayed exactly from its start.
        super::save_checkpoint(ckpt_path, CHECKPOINT_KIND, &state, &vm, &opt, ema.tensors(&Device::Cpu)?)?;
    }
    let mut clock = super::RunClock::new(&args.run);
    let mut acc = (0f64, 0f64, 0f64, 0u64, 0f64);
    let mut frequency_acc = 0f64;
    let mut window_start = Instant::now();
    while state.step < args.run.steps {
        let (step, batch) = rx.recv().context("batch thread stopped")??;
        debug_assert_eq!(step, state.step);
        let x = Tensor::from_vec(batch, (args.batch, crop), &device)?;
        let z = codec.encoder.forward(&x)?;
        let z = if args.freeze_codes { z.detach() } else { z };
        let vq = codec.quantizer.forward_train(&z)?;
        // Plain autoencoder first: early reconstruction gradients all push the same way (more
        // energy) and collapsed the codebooks when quantising from step 0. The EMA codebooks
        // follow the latents meanwhile, so quantisation starts from a codebook that fits them.
        let quantizing = state.step >= args.ae_warmup_steps || args.freeze_codes || args.tune;
        let decoder_in = if quantizing { &vq.quantized } else { &z };
        let (y, deviation) = codec.decoder.forward_with_frequencies(decoder_in)?;
        let (stft, mel) = spectral.both(&y, &x)?;
        let frequency = match (&deviation, args.frequency_weight > 0.0) {
            (Some(d), true) => {
                let (b, t, bins) = d.dims3()?;
                let (target, weight) = frequency_targets(&x.flatten_all()?.to_vec1::<f32>()?, b, cfg.hop(), cfg.n_fft);
                let target = Tensor::from_vec(target, (b, t, bins), &device)?;
                let weight = Tensor::from_vec(weight, (b, t, bins), &device)?;
                ((d - target)?.abs()? * &weight)?.sum_all()?.broadcast_div(&(weight.sum_all()? + 1e-6)?)?
            }
            _ => Tensor::zeros((), DType::F32, &device)?,
        };
        let pitch = if state.pitch_weight > 0.0 { spectral.pitch(&y, &x)? } else { Tensor::zeros((), DType::F32, &device)? };
        let commitment_weight = if quantizing && !args.freeze_codes { COMMITMENT_WEIGHT } else { 0.0 };
        let loss = ((((&stft + &mel)? + (&pitch * state.pitch_weight)?)? + (&vq.commitment * commitment_weight)?)? + (&frequency * args.frequency_weight)?)?;
        let (norm, lr) = opt.minimize(&loss, scheduled_lr(args.lr, state.step, args.run.steps, args.cooldown_steps), state.step)?;
        // Dead-code restarts draw from an RNG of the step, so a resumed run draws the same.
        let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ 0xC0DEC ^ state.step.wrapping_mul(0x9E3779B97F4A7C15));
        let codes = vq.codes.flatten_to(1)?; // [b*f, levels]
        for l in 0..cfg.n_codebooks {
            let idx = codes.narrow(1, l, 1)?.flatten_all()?.to_vec1::<u32>()?;
            if args.freeze_codes || args.keep_codebooks {
                ema.count(l, &idx); // usage is still logged; the codebook stays put
            } else {
                ema.update(l, &vq.level_inputs[l], &idx, &codebook_vars[l], &mut rng)?;
            }
        }
        state.step += 1;
        acc.0 += stft.to_scalar::<f32>()? as f64;
        acc.1 += mel.to_scalar::<f32>()? as f64;
        acc.2 += vq.commitment.to_scalar::<f32>()? as f64;
        acc.3 += 1;
        acc.4 += pitch.to_scalar::<f32>()? as f64;
        frequency_acc += frequency.to_scalar::<f32>()? as f64;

        let log_now = state.step % 50 == 0;
        let valid_now = state.step % args.valid_every == 0;
        if log_now || valid_now {
            let usage = ema.usage();
            let mut rec = serde_json::json!({
                "step": state.step,
                "stft": acc.0 / acc.3 as f64,
                "mel": acc.1 / acc.3 as f64,
                "commit": acc.2 / acc.3 as f64,
                "pitch": acc.4 / acc.3 as f64,
                "frequency": frequency_acc / acc.3 as f64,
                "frequency_weight": args.frequency_weight,
                "grad_norm": norm,
                "lr": lr,
                "s_per_step": window_start.elapsed().as_secs_f64() / acc.3 as f64,
                "code_use": usage.iter().map(|u| (u.0 * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
                "perplexity": usage.iter().map(|u| u.1.round()).collect::<Vec<_>>(),
                "restarts": ema.restarts,
                "wall_s": clock.elapsed_s().round(),
            });
            if valid_now {
                let v = validate(&codec, &spectral, &valid)?;
                rec["valid_mel"] = v.mel.into();
                rec["valid_stft"] = v.stft.into();
                rec["valid_pitch"] = v.pitch.into();
                let score = v.mel + state.pitch_weight * v.pitch;
                if state.best_valid.is_none_or(|b| score < b) {
                    state.best_valid = Some(score);
                    save_inference(best_path, &cfg, &vm)?;
                    rec["best"] = true.into();
                }
            }
            println!("{rec}");
            super::log_line(log, &rec)?;
            acc = (0.0, 0.0, 0.0, 0, 0.0);
            frequency_acc = 0.0;
            window_start = Instant::now();
        }
        if clock.checkpoint_due(state.step == args.run.steps) {
            super::save_checkpoint(ckpt_path, CHECKPOINT_KIND, &state, &vm, &opt, ema.tensors(&Device::Cpu)?)?;
        }
        if clock.out_of_time() {
            println!("time limit reached at step {}", state.step);
            break;
        }
    }
    Ok(())
}

/// Validation distances of the round trip (lower is better).
struct Validation {
    mel: f64,
    stft: f64,
    pitch: f64,
}

fn validate(codec: &Codec, spectral: &SpectralDistances, x: &Tensor) -> Result<Validation> {
    let y = codec.decode(&codec.encode(x)?)?;
    let (stft, mel) = spectral.both(&y, x)?;
    let pitch = spectral.pitch(&y, x)?;
    Ok(Validation { mel: mel.to_scalar::<f32>()? as f64, stft: stft.to_scalar::<f32>()? as f64, pitch: pitch.to_scalar::<f32>()? as f64 })
}

fn save_inference(path: &Path, cfg: &CodecConfig, vm: &VarMap) -> Result<()> {
    weights::save(path, KIND, cfg, &weights::var_tensors(vm), DType::F16)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(out: &Path, steps: u64) -> CodecTrainArgs {
        CodecTrainArgs { run: super::super::RunArgs::test(out, steps), batch: 2, seconds: 0.2, lr: 1e-3, valid_every: 1000, quick: true, tiny: true, ae_warmup_steps: 2, freeze_codes: false, from: None, cooldown_steps: 0, tune: false, freeze_decoder: false, keep_codebooks: false, pitch_weight: 0.0, integrated_phase: false, frequency_weight: 0.0 }
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
        // Decoder-only training leaves the codes alone: encoder and codebooks bit-identical.
        // It is a side run (b-decoder) that starts from b's checkpoint and runs its own steps.
        let frozen = CodecTrainArgs { freeze_codes: true, from: Some(b.join("checkpoint.safetensors")), ..args(&b, 3) };
        train(&frozen).unwrap();
        let (_, before) = super::super::load_checkpoint::<TrainState>(&a.join("checkpoint.safetensors"), CHECKPOINT_KIND).unwrap();
        let (state, after) = super::super::load_checkpoint::<TrainState>(&base.join("b-decoder").join("checkpoint.safetensors"), CHECKPOINT_KIND).unwrap();
        assert_eq!(state.step, 3, "the decoder run counts its own steps");
        assert!(state.frozen_codes_id.is_some(), "the decoder run records the codes it keeps");
        for (name, t) in before.iter().filter(|(n, _)| !n.starts_with("adam.")) {
            let same = t.flatten_all().unwrap().to_vec1::<f32>().unwrap() == after[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let code_side = name.starts_with("encoder.") || name.starts_with("quantizer.");
            assert!(!code_side || same, "{name} changed while the codes were frozen");
            if name == "decoder.head.weight" {
                assert!(!same, "the decoder did not train");
            }
        }
        // Its checkpoint cannot be resumed as a run that moves the codes.
        std::fs::copy(base.join("b-decoder").join("checkpoint.safetensors"), b.join("checkpoint.safetensors")).unwrap();
        let err = train(&args(&b, 12)).unwrap_err().to_string();
        assert!(err.contains("--freeze-codes"), "{err}");
        // Fine-tuning with the decoder kept (a side run, a-tune, from a's checkpoint): the
        // encoder moves, the decoder does not, the codebooks only drift (seeded averages: an
        // unseeded one would restart every code at the first step), the start is scored first.
        // It starts from weights (no averages in them), as from the shipped file.
        let (a_state, a_tensors) = super::super::load_checkpoint::<TrainState>(&a.join("checkpoint.safetensors"), CHECKPOINT_KIND).unwrap();
        let model: HashMap<String, Tensor> = a_tensors.into_iter().filter(|(k, _)| !k.starts_with("adam.") && !k.starts_with("ema.") && !k.starts_with("optim.")).collect();
        weights::save(&base.join("a.safetensors"), KIND, &a_state.config, &model, DType::F32).unwrap();
        let tuned = CodecTrainArgs { tune: true, freeze_decoder: true, pitch_weight: 1.0, from: Some(base.join("a.safetensors")), ..args(&a, 2) };
        train(&tuned).unwrap();
        let (state, after) = super::super::load_checkpoint::<TrainState>(&base.join("a-tune").join("checkpoint.safetensors"), CHECKPOINT_KIND).unwrap();
        assert!(state.step == 2 && state.decoder_frozen && state.pitch_weight == 1.0 && state.best_valid.is_some());
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut encoder_moved = false;
        for (name, t) in before.iter().filter(|(n, _)| n.starts_with("encoder.") || n.starts_with("decoder.") || n.contains("codebook")) {
            let (x, y) = (values(t), values(&after[name]));
            if name.starts_with("decoder.") {
                assert_eq!(x, y, "{name} changed with the decoder frozen");
            } else if name.contains("codebook") {
                let drift: f32 = x.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt() / x.iter().map(|a| a * a).sum::<f32>().sqrt();
                assert!(drift < 0.2, "{name} moved by {drift:.2} of its norm");
            } else {
                encoder_moved |= x != y;
            }
        }
        assert!(encoder_moved, "the encoder did not train");
        let err = train(&CodecTrainArgs { freeze_decoder: false, ..tuned.clone() }).unwrap_err().to_string();
        assert!(err.contains("--freeze-decoder"), "{err}");
        // Kept codebooks (b-tune, from the same weights): bit-identical, while the decoder learns.
        train(&CodecTrainArgs { freeze_decoder: false, keep_codebooks: true, run: super::super::RunArgs::test(&b, 2), ..tuned.clone() }).unwrap();
        let (state, kept) = super::super::load_checkpoint::<TrainState>(&base.join("b-tune").join("checkpoint.safetensors"), CHECKPOINT_KIND).unwrap();
        assert!(state.codebooks_kept && !state.decoder_frozen);
        for (name, t) in before.iter().filter(|(n, _)| n.contains("codebook") || n.as_str() == "decoder.head.weight") {
            let same = values(t) == values(&kept[name]);
            assert_eq!(same, name.contains("codebook"), "{name}: unchanged {same}");
        }
        // A decoder-only run that integrates phase (b-decoder-phase, from the same weights): the
        // head gains a frequency output and the codes stay.
        let phased = CodecTrainArgs { freeze_codes: true, integrated_phase: true, frequency_weight: 1.0, from: Some(base.join("a.safetensors")), ..args(&b, 2) };
        train(&phased).unwrap();
        let (state, after) = super::super::load_checkpoint::<TrainState>(&base.join("b-decoder-phase").join("checkpoint.safetensors"), CHECKPOINT_KIND).unwrap();
        assert_eq!(state.config.decoder_phase, PhaseMode::Integrated);
        let bins = state.config.n_fft / 2 + 1;
        assert_eq!(after["decoder.head.weight"].dim(0).unwrap(), 3 * bins);
        for name in before.keys().filter(|n| n.starts_with("encoder.") || n.contains("codebook")) {
            assert_eq!(values(&before[name]), values(&after[name]), "{name} changed while the codes were frozen");
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    /// A steady tone a third of a bin above bin 40: every bin of its main lobe reads +1/3, and
    /// the loud ones weigh most.
    #[test]
    fn frequency_targets_read_a_tones_offset_from_each_bin() {
        let (hop, n_fft, sr) = (320, 1280, 24_000.0);
        let hz = (40.0 + 1.0 / 3.0) * sr / n_fft as f64;
        let x: Vec<f32> = (0..20 * hop).map(|i| (std::f64::consts::TAU * hz * i as f64 / sr).sin() as f32 * 0.5).collect();
        let (targets, weights) = frequency_targets(&x, 1, hop, n_fft);
        let bins = n_fft / 2 + 1;
        let frame = 10 * bins;
        for k in 39..=42 {
            let expected = 40.0 + 1.0 / 3.0 - k as f32;
            assert!((targets[frame + k] - expected).abs() < 0.01, "bin {k}: {} against {expected}", targets[frame + k]);
        }
        assert!(weights[frame + 40] > 10.0 * weights[frame + 45], "the main lobe outweighs the rest");
        assert!(weights[..bins].iter().all(|&w| w == 0.0), "frame 0 has no earlier frame to measure from");
    }

    #[test]
    fn the_cooldown_falls_linearly_to_zero_at_the_last_step() {
        assert_eq!(scheduled_lr(1.0, 50, 100, 0), 1.0);
        assert_eq!(scheduled_lr(1.0, 50, 100, 40), 1.0);
        assert_eq!(scheduled_lr(1.0, 80, 100, 40), 0.5);
        assert_eq!(scheduled_lr(1.0, 100, 100, 40), 0.0);
    }
}
