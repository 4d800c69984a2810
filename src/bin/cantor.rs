//! `cantor`: Cantor's command line. `cantor codec roundtrip IN.wav OUT.wav` lets anyone hear the codec.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use cantor::audio::{resample, Wav};
use cantor::model::codec::Codec;
use cantor::model::codes::CodeFile;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "cantor", version, about = "Cantor: real-time neural music generation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The neural audio codec.
    Codec {
        #[command(subcommand)]
        command: CodecCommand,
        /// Codec weights file (default: the model built into this program).
        #[arg(long, global = true)]
        weights: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CodecCommand {
    /// Encode and decode a WAV file (any rate, any channels); OUT has IN's rate and channel count.
    Roundtrip { input: PathBuf, output: PathBuf },
    /// WAV → code file.
    Encode { input: PathBuf, output: PathBuf },
    /// Code file → WAV.
    Decode {
        input: PathBuf,
        output: PathBuf,
        /// Output sample rate (default: the codec's).
        #[arg(long)]
        rate: Option<u32>,
    },
}

fn load_codec(weights: &Option<PathBuf>) -> Result<Codec> {
    let bytes = match weights {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => cantor::model::embedded::CODEC.to_vec(),
    };
    Codec::from_bytes(&bytes, &Device::Cpu).context("loading the codec")
}

/// Read a WAV as mono at the codec's rate, padded to whole frames; also returns the source rate,
/// channel count and original length at the codec's rate.
fn read_for_codec(codec: &Codec, path: &PathBuf) -> Result<(Tensor, u32, u16, usize)> {
    let wav = Wav::read(path)?;
    let x = resample(&wav.mono(), wav.sample_rate, codec.cfg.sample_rate)?;
    anyhow::ensure!(!x.is_empty(), "{} has no samples", path.display());
    let len = x.len();
    let hop = codec.cfg.hop();
    let mut padded = x;
    padded.resize(len.div_ceil(hop) * hop, 0.0);
    let n = padded.len();
    Ok((Tensor::from_vec(padded, (1, n), &Device::Cpu)?, wav.sample_rate, wav.channels.len() as u16, len))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Codec { command, weights } => {
            let codec = load_codec(&weights)?;
            let cfg = codec.cfg.clone();
            match command {
                CodecCommand::Roundtrip { input, output } => {
                    let (x, rate, channels, len) = read_for_codec(&codec, &input)?;
                    let started = std::time::Instant::now();
                    let y = codec.decode(&codec.encode(&x)?)?.squeeze(0)?.to_vec1::<f32>()?;
                    let y = resample(&y[..len], cfg.sample_rate, rate)?;
                    Wav::write_mono(&output, &y, rate, channels)?;
                    eprintln!(
                        "{} -> {} ({:.1} s of audio at {:.0} bit/s, {:.1} s)",
                        input.display(),
                        output.display(),
                        len as f64 / cfg.sample_rate as f64,
                        cfg.bitrate(),
                        started.elapsed().as_secs_f64()
                    );
                }
                CodecCommand::Encode { input, output } => {
                    let (x, _, _, _) = read_for_codec(&codec, &input)?;
                    let codes = codec.encode(&x)?.squeeze(0)?.flatten_all()?.to_vec1::<u32>()?;
                    let file = CodeFile {
                        sample_rate: cfg.sample_rate,
                        hop: cfg.hop() as u32,
                        levels: cfg.n_codebooks as u32,
                        codebook_size: cfg.codebook_size as u32,
                        codes: codes.into_iter().map(|c| c as u16).collect(),
                    };
                    std::fs::write(&output, file.to_bytes())?;
                    eprintln!("{} frames -> {}", file.frames(), output.display());
                }
                CodecCommand::Decode { input, output, rate } => {
                    let file = CodeFile::from_bytes(&std::fs::read(&input)?)
                        .with_context(|| format!("reading {}", input.display()))?;
                    file.check_matches(&cfg)?;
                    let codes: Vec<u32> = file.codes.iter().map(|&c| c as u32).collect();
                    let t = Tensor::from_vec(codes, (1, file.frames(), cfg.n_codebooks), &Device::Cpu)?;
                    let y = codec.decode(&t)?.squeeze(0)?.to_vec1::<f32>()?;
                    let rate = rate.unwrap_or(cfg.sample_rate);
                    Wav::write_mono(&output, &resample(&y, cfg.sample_rate, rate)?, rate, 1)?;
                    eprintln!("{} frames -> {}", file.frames(), output.display());
                }
            }
        }
    }
    Ok(())
}
