//! Cantor's developer tasks: `cargo xtask <command>`.
//!
//! - `bundle cantor --release`: build the CLAP and VST3 bundles (nice-plug-xtask).
//! - `install`: copy them into the user's plugin folders.
//! - `dataset export|build|render`: the training corpus.
//! - `dataset tokenize`: the corpus as codes of the published codec, for the prior.
//! - `train codec`, `train prior`: train the models (resumable).

mod dataset;
mod eval;
mod install;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Cantor's build, dataset and training tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Copy target/bundled/Cantor.{clap,vst3} into the user's plugin folders.
    Install,
    /// The training corpus.
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
    /// Train a model.
    Train {
        #[command(subcommand)]
        model: TrainCommand,
    },
    /// Measure quality against baselines; writes EVAL.md.
    Eval {
        #[command(subcommand)]
        model: EvalCommand,
    },
    /// Write quantised model files and measure what quantisation changes (EVAL.md).
    Quantize {
        #[command(subcommand)]
        model: QuantizeCommand,
    },
    /// Measure speed; writes BENCHMARKS.md.
    Bench {
        #[command(subcommand)]
        model: BenchCommand,
    },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// How the score prior continues a phrase (the first bars of held-out tunes): key kept,
    /// style recognised, against tunes composed from nothing.
    Continue {
        /// Score prior file (default: assets/models/score-q8_0.safetensors, what ships).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        /// Phrases (held-out tunes) per style.
        #[arg(long, default_value_t = 20)]
        phrases: usize,
        /// Bars of each phrase.
        #[arg(long, default_value_t = 8)]
        prompt_bars: usize,
        /// Bars written after it.
        #[arg(long, default_value_t = 16)]
        bars: usize,
    },
    /// The score prior's tunes against held-out real tunes: key, rhythm, melody, form, novelty.
    Score {
        /// Score prior file (default: assets/models/score-q8_0.safetensors, what ships).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        /// Tunes per style.
        #[arg(long, default_value_t = 10)]
        seeds: u64,
        /// Bars per tune.
        #[arg(long, default_value_t = 32)]
        bars: usize,
        /// Classifier-free guidance of the tunes written (default: what `cantor compose` uses).
        #[arg(long, default_value_t = cantor::model::score::DEFAULT_GUIDANCE)]
        guidance: f32,
    },
    /// The performer playing held-out scores: its audio transcribed (basic-pitch) against the
    /// score's notes, per instrument family, beside the real render and its codec round trip.
    Perform {
        /// Performer file (default: assets/models/performer.safetensors).
        #[arg(long)]
        performer: Option<std::path::PathBuf>,
        /// Codec file (default: assets/models/codec.safetensors).
        #[arg(long)]
        codec: Option<std::path::PathBuf>,
        /// Test clips, spread over the instrument families and soundfonts.
        #[arg(long, default_value_t = 16)]
        clips: usize,
        /// Score prior file for the composed takes (default: assets/models/score-q8_0.safetensors).
        #[arg(long)]
        score: Option<std::path::PathBuf>,
        /// Composed takes per style.
        #[arg(long, default_value_t = 2)]
        takes: usize,
        /// Classifier-free guidance (default: the Guidance knob's default).
        #[arg(long, default_value_t = cantor::knobs::KNOBS.guidance.default)]
        guidance: f32,
    },
    /// The prior's generated audio: style, tempo and key adherence, diversity, stability.
    Prior {
        /// Prior and codec files (default: assets/models/prior.safetensors and codec.safetensors).
        /// A performer as the prior is measured as the plugin plays it: with the score prior
        /// writing its notes (`--score`, default assets/models/score-q8_0.safetensors).
        #[arg(long)]
        prior: Option<std::path::PathBuf>,
        #[arg(long)]
        codec: Option<std::path::PathBuf>,
        #[arg(long)]
        score: Option<std::path::PathBuf>,
        /// Takes per style.
        #[arg(long, default_value_t = 5)]
        seeds: u32,
        /// Seconds per take.
        #[arg(long, default_value_t = 12.0)]
        seconds: f64,
        /// Length of the stability take.
        #[arg(long, default_value_t = 600.0)]
        stability_seconds: f64,
        /// Instead of the full evaluation, measure adherence at each of these guidance strengths
        /// (comma-separated, e.g. 0,1.5,3) into EVAL.md's guidance section.
        #[arg(long, value_delimiter = ',')]
        guidance_sweep: Vec<f32>,
        /// With --guidance-sweep: ask every style in this time signature (e.g. 4/4, a DAW's
        /// default) instead of the one its tunes were mostly written in.
        #[arg(long, value_parser = cantor::model::vocab::Meter::parse)]
        time_signature: Option<(u32, u32)>,
        /// Instead of the full evaluation, measure the phrase structure of generated reels at
        /// each of these repeat strengths (comma-separated, e.g. 0,0.5,1) into EVAL.md's
        /// strain repetition section.
        #[arg(long, value_delimiter = ',')]
        repeat_sweep: Vec<f32>,
    },
    /// The tempo and key estimators (used to judge the prior) on real test clips.
    Estimators {
        #[arg(long, default_value_t = 60)]
        clips: usize,
        /// Codec weights of the round trip (default: assets/models/codec.safetensors).
        #[arg(long)]
        weights: Option<std::path::PathBuf>,
    },
    /// Write the style classifier's real clips, after the codec's round trip, for study.
    StyleSet {
        /// Clips per style and split.
        #[arg(long, default_value_t = 40)]
        per_style: usize,
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// The codec against Opus 6 and 12 kbit/s on the test split.
    Codec {
        /// Weights file (default: assets/models/codec.safetensors).
        #[arg(long)]
        weights: Option<std::path::PathBuf>,
        /// A second codec measured on the same clips, in columns of its own (e.g. a fine-tuning
        /// run's best weights, before the corpus is re-tokenised for it).
        #[arg(long)]
        candidate: Option<std::path::PathBuf>,
        /// Also measure the codec's decoder on its encoder's latents unquantised: what the
        /// quantiser costs.
        #[arg(long)]
        latents: bool,
        /// Also measure the codec's decoded magnitudes with the input's own phases (on the
        /// decoder's STFT grid): what its magnitudes alone keep, with its phase ruled out.
        #[arg(long)]
        magnitudes: bool,
        /// Number of test clips (spread evenly over the 8 instrument families and 2 soundfonts).
        #[arg(long, default_value_t = 48)]
        clips: usize,
        /// Keep the measured audio here (`{clip}-input.wav`, `{clip}-{column}.wav`, and
        /// `columns.txt` naming the columns), to listen to or analyse what was scored.
        #[arg(long)]
        keep_audio: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum QuantizeCommand {
    /// The codec decoder's linear layers, as q8_0 (int8) and q4_0 (4-bit).
    Codec {
        #[arg(long, default_value_t = 12)]
        clips: usize,
    },
    /// The prior's transformer and head, as q8_0 (the file the plugin embeds) and q4_0.
    Prior {
        /// The performer instead (`assets/models/performer-q8_0.safetensors`, embedded beside
        /// the score prior).
        #[arg(long)]
        performer: bool,
    },
    /// The score prior's transformer and head, as q8_0 (the file `cantor compose` embeds).
    Score,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The streaming codec decoder on one thread.
    Codec {
        #[arg(long)]
        weights: Option<std::path::PathBuf>,
        /// Frames per chunk (3 frames = 40 ms at 75 frames/s).
        #[arg(long, default_value_t = 3)]
        chunk_frames: usize,
        /// Seconds of audio decoded per run.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// The score prior writing bars on one thread, against the generator's time for the same music.
    Score {
        /// Score prior file (default: assets/models/score.safetensors).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        /// Bars written per style and run.
        #[arg(long, default_value_t = 32)]
        bars: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Export the licence-clean music21 scores to MIDI (assets/corpus; resumes).
    Export {
        /// Comma-separated collections (default: all allowed ones).
        #[arg(long)]
        collections: Option<String>,
        /// At most this many pieces per collection.
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// Write the clip manifest (recipes and labels) and print hours per label.
    Build {
        #[command(flatten)]
        opts: DatasetOpts,
    },
    /// Build, then render clips to WAV in the cache (resumes; skips clips already rendered).
    Render {
        #[command(flatten)]
        opts: DatasetOpts,
        /// Only this split (train, valid, test).
        #[arg(long)]
        split: Option<String>,
        /// At most this many clips (0: all), taken evenly across the manifest.
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// Render and encode the corpus with a frozen codec, for the prior (cache/tokens/<codec id>).
    Tokenize {
        /// Codec weights (default: assets/models/codec.safetensors).
        #[arg(long)]
        weights: Option<std::path::PathBuf>,
        /// The one-minute corpus used by tests.
        #[arg(long)]
        quick: bool,
        /// Hours of training clips to encode (a seeded shuffle of the split).
        #[arg(long, default_value_t = 30.0)]
        hours: f64,
        /// Hours of validation clips.
        #[arg(long, default_value_t = 1.0)]
        valid_hours: f64,
    },
    /// Render and encode clips with their codes for decoder training on a lent GPU
    /// (`xtask/gpu/decoder_twin.py`): `<out>/<split>.{json,audio,codes}`.
    DecoderSet {
        /// Codec weights (default: assets/models/codec.safetensors).
        #[arg(long)]
        weights: Option<std::path::PathBuf>,
        #[arg(long)]
        out: std::path::PathBuf,
        /// Minutes of training clips.
        #[arg(long, default_value_t = 25.0)]
        minutes: f64,
        /// Minutes of validation clips.
        #[arg(long, default_value_t = 2.0)]
        valid_minutes: f64,
    },
}

#[derive(clap::Args)]
struct DatasetOpts {
    /// The one-minute corpus used by tests.
    #[arg(long)]
    quick: bool,
    /// Seed of every random choice (instrument, tempo, key, split...).
    #[arg(long)]
    seed: Option<u64>,
}

impl DatasetOpts {
    fn config(&self) -> dataset::recipe::DatasetConfig {
        let mut cfg = if self.quick { dataset::recipe::DatasetConfig::quick() } else { Default::default() };
        if let Some(s) = self.seed {
            cfg.seed = s;
            cfg.name = format!("{}-seed{s}", cfg.name);
        }
        cfg
    }
}

#[derive(Subcommand)]
enum TrainCommand {
    /// The audio codec.
    Codec(train::codec::CodecTrainArgs),
    /// The transformer prior, on the corpus tokenised by the published codec.
    Prior(train::prior::PriorTrainArgs),
    /// Re-fit the codec's codebooks by k-means on its latents and re-map the tokenised corpus.
    Codebooks(train::codebooks::CodebookArgs),
    /// The score prior, on the corpus's scores (notes, not audio).
    Score(train::score::ScoreTrainArgs),
    /// Measure the form plans the score writer follows (which bars restate earlier ones) on the
    /// training split's tunes; writes assets/models/score-forms.json.
    ScoreForms,
}

/// The score prior in `path` (default: the shipped q8_0 file) and its name as EVAL.md quotes it.
fn score_prior(path: Option<std::path::PathBuf>) -> anyhow::Result<(cantor::model::score::ScorePrior, String)> {
    let path = path.unwrap_or_else(|| train::quantized_path("score", candle_core::quantized::GgmlDType::Q8_0));
    let prior = cantor::model::score::ScorePrior::from_bytes(&std::fs::read(&path)?, &candle_core::Device::Cpu)?;
    let name = path.strip_prefix(dataset::repo_root()).unwrap_or(&path).display().to_string();
    Ok((prior, name))
}

/// `path` as the repository names it (the commands EVAL.md quotes).
fn relative(path: &std::path::Path) -> &std::path::Path {
    path.strip_prefix(dataset::repo_root()).unwrap_or(path)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Bundling is nice-plug-xtask's job.
    if matches!(args.first().map(String::as_str), Some("bundle" | "bundle-universal" | "known-packages")) {
        return nice_plug_xtask::main_with_args("cargo xtask", args);
    }
    match Cli::parse().command {
        Command::Install => install::install(),
        Command::Dataset { command } => match command {
            DatasetCommand::Export { collections, limit } => dataset::export(collections.as_deref(), limit),
            DatasetCommand::Build { opts } => dataset::build_and_render(&opts.config(), None, 0).map(|_| ()),
            DatasetCommand::Render { opts, split, limit } => {
                dataset::build_and_render(&opts.config(), Some(split.as_deref()), limit).map(|_| ())
            }
            DatasetCommand::Tokenize { weights, quick, hours, valid_hours } => {
                let weights = weights.unwrap_or_else(train::codec::published_weights);
                dataset::tokens::tokenize(&weights, quick, hours, valid_hours).map(|_| ())
            }
            DatasetCommand::DecoderSet { weights, out, minutes, valid_minutes } => {
                let weights = weights.unwrap_or_else(train::codec::published_weights);
                dataset::decoder_set::export(&weights, &out, minutes, valid_minutes)
            }
        },
        Command::Train { model: TrainCommand::Codec(args) } => train::codec::train(&args),
        Command::Train { model: TrainCommand::Prior(args) } => train::prior::train(&args),
        Command::Train { model: TrainCommand::Codebooks(args) } => train::codebooks::refit(&args),
        Command::Train { model: TrainCommand::Score(args) } => train::score::train(&args),
        Command::Train { model: TrainCommand::ScoreForms } => train::score_forms::forms(),
        Command::Eval { model: EvalCommand::Codec { weights, candidate, latents, magnitudes, clips, keep_audio } } => eval::codec::eval(&weights, &candidate, latents, magnitudes, clips, keep_audio.as_deref()),
        Command::Eval { model: EvalCommand::Continue { model, phrases, prompt_bars, bars } } => {
            let (prior, name) = score_prior(model)?;
            let body = eval::score::eval_continuation(&prior, &name, phrases, prompt_bars, bars)?;
            println!("{body}");
            eval::write_section(&dataset::repo_root().join("EVAL.md"), "continue", &body)
        }
        Command::Eval { model: EvalCommand::Score { model, seeds, bars, guidance } } => {
            let (prior, name) = score_prior(model)?;
            let body = eval::score::eval(&prior, &name, seeds, bars, guidance)?;
            println!("{body}");
            eval::write_section(&dataset::repo_root().join("EVAL.md"), "score", &body)
        }
        Command::Eval { model: EvalCommand::Perform { performer, codec, clips, score, takes, guidance } } => {
            let performer = performer.unwrap_or_else(|| train::RunPaths::new("performer", None).published_weights);
            let codec = codec.unwrap_or_else(train::codec::published_weights);
            let score = score.unwrap_or_else(|| train::quantized_path("score", candle_core::quantized::GgmlDType::Q8_0));
            eval::perform::eval_perform(&performer, &codec, &score, clips, takes, guidance).map(|_| ())
        }
        Command::Eval { model: EvalCommand::StyleSet { per_style, out } } => {
            let codec = cantor::model::codec::Codec::from_bytes(&std::fs::read(train::codec::published_weights())?, &candle_core::Device::Cpu)?;
            eval::prior::dump_style_set(per_style, &codec, &out)
        }
        Command::Eval { model: EvalCommand::Estimators { clips, weights } } => {
            eval::estimators::eval_estimators(clips, &weights.unwrap_or_else(train::codec::published_weights))
        }
        Command::Eval { model: EvalCommand::Prior { prior, codec, score, seeds, seconds, stability_seconds, guidance_sweep, time_signature, repeat_sweep } } => {
            let prior = prior.unwrap_or_else(|| train::RunPaths::new("prior", None).published_weights);
            let codec = codec.unwrap_or_else(train::codec::published_weights);
            let mut pair = cantor::model::pair::ModelPair::from_bytes(&std::fs::read(&codec)?, &std::fs::read(&prior)?).map_err(anyhow::Error::msg)?;
            if pair.prior.cfg.notes {
                let score = score.unwrap_or_else(|| train::quantized_path("score", candle_core::quantized::GgmlDType::Q8_0));
                pair = pair.with_score(&std::fs::read(&score)?).map_err(anyhow::Error::msg)?;
            }
            let pair = std::sync::Arc::new(pair);
            if !guidance_sweep.is_empty() {
                let body = eval::prior::eval_guidance(|| cantor::plugin::neural_factory(pair.clone()), &pair.codec, seeds, seconds, &guidance_sweep, 40, time_signature)?;
                println!("{body}");
                return eval::write_section(&dataset::repo_root().join("EVAL.md"), "prior-guidance", &body);
            }
            let ablated = eval::prior::phrase_factory(pair.clone());
            if !repeat_sweep.is_empty() {
                let body = eval::prior::eval_repeat(&ablated, &repeat_sweep, 16)?;
                println!("{body}");
                return eval::write_section(&dataset::repo_root().join("EVAL.md"), "prior-repeat", &body);
            }
            let body = eval::prior::eval_prior(|| cantor::plugin::neural_factory(pair.clone()), &pair.codec, &ablated, seeds, seconds, stability_seconds, 40)?;
            // The hierarchy keeps its own section beside the knobs-only prior's.
            let (body, section) = match pair.score {
                Some(_) => (
                    body.replacen("## Prior: what it plays", "## The hierarchy (score prior, performer, codec): what the plugin plays", 1)
                        .replacen("`cargo xtask eval prior", &format!("`cargo xtask eval prior --prior {} --codec {}", relative(&prior).display(), relative(&codec).display()), 1),
                    "hierarchy",
                ),
                None => (body, "prior"),
            };
            println!("{body}");
            eval::write_section(&dataset::repo_root().join("EVAL.md"), section, &body)
        }
        Command::Quantize { model: QuantizeCommand::Score } => train::score::quantize(candle_core::quantized::GgmlDType::Q8_0),
        Command::Quantize { model: QuantizeCommand::Codec { clips } } => {
            eval::codec::quantize(&[candle_core::quantized::GgmlDType::Q8_0, candle_core::quantized::GgmlDType::Q4_0], clips)
        }
        Command::Quantize { model: QuantizeCommand::Prior { performer } } => {
            use candle_core::quantized::GgmlDType::{Q4_0, Q8_0};
            train::prior::quantize(if performer { &[Q8_0] } else { &[Q8_0, Q4_0] }, performer)
        }
        Command::Bench { model: BenchCommand::Codec { weights, chunk_frames, seconds, runs } } => {
            eval::codec::bench(&weights, chunk_frames, seconds, runs)
        }
        Command::Bench { model: BenchCommand::Score { model, bars, runs } } => {
            let path = model.unwrap_or_else(|| train::RunPaths::new("score", None).published_weights);
            eval::score::bench(&path, bars, runs)
        }
    }
}
