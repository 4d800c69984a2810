//! `cargo xtask train`: resumable model training (checkpoints, exact resume, committed logs).

pub mod codebooks;
pub mod codec;
pub mod optim;
pub mod prior;
pub mod score;
pub mod score_forms;

use anyhow::{Context, Result};
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use cantor::model::weights::{self, var_tensors};
use optim::AdamW;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options every trainer takes.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Stop at this total step count.
    #[arg(long, default_value_t = 200_000)]
    pub steps: u64,
    /// Stop after this many minutes (a checkpoint is written first).
    #[arg(long, default_value_t = 0.0)]
    pub minutes: f64,
    /// Minutes between checkpoints.
    #[arg(long, default_value_t = 4.0)]
    pub checkpoint_minutes: f64,
    /// Checkpoint folder (default: cache/train/<model>); a custom folder also keeps its own log.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Copy the latest checkpoint and best weights into assets/ (to commit) and exit.
    #[arg(long)]
    pub publish: bool,
}

impl RunArgs {
    /// Tests: `steps` steps into `out`, no time limit, no checkpoint but the last.
    #[cfg(test)]
    pub fn test(out: &Path, steps: u64) -> Self {
        Self { steps, minutes: 0.0, checkpoint_minutes: 1e9, out: Some(out.to_path_buf()), publish: false }
    }
}

/// Where one model's training files live: the run folder in the cache, and the committed copies
/// (the resume point, the shipped weights and the metrics log).
#[derive(Debug, Clone)]
pub struct RunPaths {
    pub out: PathBuf,
    pub checkpoint: PathBuf,
    pub best: PathBuf,
    pub log: PathBuf,
    pub published_checkpoint: PathBuf,
    pub published_weights: PathBuf,
    custom: bool,
}

impl RunPaths {
    /// `model` is "codec" or "prior".
    pub fn new(model: &str, out: Option<&Path>) -> Self {
        let root = crate::dataset::repo_root();
        let custom = out.is_some();
        let out = out.map(Path::to_path_buf).unwrap_or_else(|| crate::dataset::cache_dir().join("train").join(model));
        Self {
            checkpoint: out.join("checkpoint.safetensors"),
            best: out.join("best.safetensors"),
            log: if custom { out.join("log.jsonl") } else { root.join(format!("assets/training/{model}-log.jsonl")) },
            published_checkpoint: root.join(format!("assets/training/{model}-checkpoint.safetensors")),
            published_weights: root.join(format!("assets/models/{model}.safetensors")),
            out,
            custom,
        }
    }

    /// A side run of the same model (e.g. a learning-rate cool-down): its own folder beside this
    /// run's and its own log beside this run's log; it ships to the same weights file.
    pub fn branch(&self, name: &str) -> Self {
        let sibling = |p: &Path, suffix: &str| {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("run");
            p.with_file_name(format!("{stem}-{name}{suffix}"))
        };
        let out = sibling(&self.out, "");
        Self {
            checkpoint: out.join("checkpoint.safetensors"),
            best: out.join("best.safetensors"),
            log: if self.custom { out.join("log.jsonl") } else { sibling(&self.log, ".jsonl") },
            published_checkpoint: sibling(&self.published_checkpoint, ".safetensors"),
            published_weights: self.published_weights.clone(),
            out,
            custom: self.custom,
        }
    }

    /// The checkpoint to resume from: the cache's (bit-exact), else for the real run the
    /// committed one, else none (a fresh start).
    pub fn resume_from(&self) -> Option<PathBuf> {
        std::iter::once(self.checkpoint.clone()).chain((!self.custom).then(|| self.published_checkpoint.clone())).find(|p| p.exists())
    }
}

/// Decides when a run checkpoints (every few minutes, at its last step) and when it stops.
pub struct RunClock {
    started: Instant,
    last_checkpoint: Instant,
    minutes: f64,
    checkpoint_minutes: f64,
}

impl RunClock {
    pub fn new(args: &RunArgs) -> Self {
        Self { started: Instant::now(), last_checkpoint: Instant::now(), minutes: args.minutes, checkpoint_minutes: args.checkpoint_minutes }
    }

    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Whether the run's time limit has passed.
    pub fn out_of_time(&self) -> bool {
        self.minutes > 0.0 && self.elapsed_s() > self.minutes * 60.0
    }

    /// Whether to checkpoint now (`last`: the run ends after this step); restarts the interval.
    pub fn checkpoint_due(&mut self, last: bool) -> bool {
        let due = last || self.out_of_time() || self.last_checkpoint.elapsed().as_secs_f64() > self.checkpoint_minutes * 60.0;
        if due {
            self.last_checkpoint = Instant::now();
        }
        due
    }
}

/// Set every variable that `saved` has a tensor of the same shape for (a resume, or a warm
/// start from a checkpoint of an older architecture). Returns the names left as initialised.
pub fn restore_vars(vm: &VarMap, saved: &HashMap<String, Tensor>) -> Result<Vec<String>> {
    let data = vm.data().lock().expect("varmap");
    let mut fresh = Vec::new();
    for (name, var) in data.iter() {
        match saved.get(name) {
            Some(t) if t.dims() == var.dims() => var.set(&t.to_dtype(DType::F32)?)?,
            _ => fresh.push(name.clone()),
        }
    }
    fresh.sort();
    Ok(fresh)
}

/// Write a resumable checkpoint: weights, AdamW moments, `extra` tensors (e.g. EMA state) and
/// the training state as the file's config; plus the state as JSON beside it, for people.
pub fn save_checkpoint<S: Serialize>(path: &Path, kind: &str, state: &S, vm: &VarMap, opt: &AdamW, extra: HashMap<String, Tensor>) -> Result<()> {
    let mut t = var_tensors(vm);
    t.extend(opt.state());
    t.extend(extra);
    weights::save(path, kind, state, &t, DType::F32)?;
    std::fs::write(path.with_extension("json"), serde_json::to_string_pretty(state)?)?;
    Ok(())
}

/// Read a checkpoint written by `save_checkpoint`: the training state and every tensor.
pub fn load_checkpoint<S: DeserializeOwned>(path: &Path, kind: &str) -> Result<(S, HashMap<String, Tensor>)> {
    let bytes = std::fs::read(path)?;
    let raw = weights::parse::<S>(&bytes, kind, &Device::Cpu).with_context(|| format!("reading checkpoint {}", path.display()))?;
    Ok((raw.config, raw.tensors))
}

/// Copy a cache checkpoint into assets/ to commit (moments as bf16, halving the file) and the
/// best inference weights beside it. Returns the checkpoint's training state.
///
/// bf16, not f16: Adam's second moments are squared gradients, often below f16's smallest
/// normal value (6e-5). Published as f16 they underflowed to zero, and a run resumed from them
/// divided first moments by eps: huge updates for its first ~100 steps.
pub fn publish<S: Serialize + DeserializeOwned>(ckpt: &Path, kind: &str, best: &Path, ckpt_dest: &Path, weights_dest: &Path) -> Result<S> {
    let (state, mut tensors) = load_checkpoint::<S>(ckpt, kind).with_context(|| format!("no checkpoint at {}", ckpt.display()))?;
    for (name, t) in tensors.iter_mut() {
        if name.starts_with("adam.") {
            *t = t.to_dtype(DType::BF16)?;
        }
    }
    let out = weights::to_bytes_quantized(kind, &state, &tensors, None, None)?;
    for dest in [ckpt_dest, weights_dest] {
        std::fs::create_dir_all(dest.parent().expect("has parent"))?;
    }
    std::fs::write(ckpt_dest, out)?;
    if best.exists() {
        std::fs::copy(best, weights_dest)?;
    } else {
        // This run never beat the best validation score it resumed with: the shipped weights stay.
        println!("no better weights in {}; {} is kept", best.display(), weights_dest.display());
    }
    Ok(state)
}

/// Share of a codebook's codes used, and the perplexity of their use, from per-code counts
/// (the codec trainer's log and the codebook re-fit report both).
pub fn code_use(counts: &[u64]) -> (f64, f64) {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    let h: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.ln()
        })
        .sum();
    (counts.iter().filter(|&&c| c > 0).count() as f64 / counts.len() as f64, h.exp())
}

/// A model's quantised file for a block format (`assets/models/{model}-q8_0.safetensors`; build.rs
/// embeds the q8_0 ones).
pub fn quantized_path(model: &str, dtype: GgmlDType) -> PathBuf {
    crate::dataset::repo_root().join(format!("assets/models/{model}-{}.safetensors", weights::quant_name(dtype)))
}

/// `cargo xtask quantize`: write published weights with the `is_quantizable` tensors as `dtype`
/// blocks (the rest f16) to `model`'s quantised file; its bytes and path, to measure.
pub fn write_quantized<C: Serialize>(
    model: &str,
    kind: &str,
    raw: &weights::RawModelFile<C>,
    is_quantizable: &dyn Fn(&str) -> bool,
    dtype: GgmlDType,
) -> Result<(Vec<u8>, PathBuf)> {
    let bytes = weights::to_bytes_quantized(kind, &raw.config, &raw.tensors, Some(DType::F16), Some((is_quantizable, dtype)))?;
    let path = quantized_path(model, dtype);
    std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok((bytes, path))
}

/// Append one JSON line to a metrics log (committed, so progress survives the machine).
pub fn log_line<T: Serialize>(path: &Path, record: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{}", serde_json::to_string(record)?)?;
    Ok(())
}

/// On resume: drop log lines from steps after the checkpoint (written by a run that stopped
/// before it could checkpoint them), so the log has each step once.
pub fn truncate_log_after(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64()).is_none_or(|s| s <= step))
        .collect();
    if kept.len() != text.lines().count() {
        let body: String = kept.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(path, body)?;
    }
    Ok(())
}

/// Tests: both checkpoints are at `step` and every tensor (weights, moments, EMA state) is
/// bit-identical. Used by the trainers' resume tests.
#[cfg(test)]
pub fn assert_same_checkpoint(a: &Path, b: &Path, kind: &str, step: u64) {
    let load = |p: &Path| load_checkpoint::<serde_json::Value>(&p.join("checkpoint.safetensors"), kind).unwrap();
    let ((sa, ta), (sb, tb)) = (load(a), load(b));
    assert_eq!((sa["step"].as_u64(), sb["step"].as_u64()), (Some(step), Some(step)));
    let mut names: Vec<_> = ta.keys().collect();
    names.sort();
    assert!(names.iter().any(|n| n.starts_with("adam.m.")), "no optimiser moments in the checkpoint");
    for name in names {
        let x = ta[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let y = tb[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(x == y, "{name} differs after resuming");
    }
}
