//! `cantor`: Cantor's command line. `cantor render` plays the generator offline, through the same
//! plugin code path as a DAW's bounce; `cantor codec roundtrip IN.wav OUT.wav` lets anyone hear
//! the codec.

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
    /// Generate music offline (the plugin's offline bounce, without a DAW) into a WAV file.
    Render(RenderArgs),
    /// Write a tune with the score prior into a Standard MIDI file (one track per part).
    Compose(ComposeArgs),
    /// The neural audio codec.
    Codec {
        #[command(subcommand)]
        command: CodecCommand,
        /// Codec weights file (default: the model built into this program).
        #[arg(long, global = true)]
        weights: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RenderArgs {
    /// Length in seconds [default: 30; with --midi-in the file's length plus 2 s; with
    /// --continue the file, the rest before Cantor's first bar, --bars bars and 1.5 s].
    #[arg(long)]
    seconds: Option<f64>,
    /// Style, or a blend of styles with weights 0-1: "reel" or "reel=1,jig=0.5".
    /// Styles: chorale, air, jig, reel, hornpipe, march/polka.
    #[arg(long, default_value = "reel")]
    style: String,
    /// Time signature, e.g. 4/4, 3/4, 2/2, 2/4, 6/8; --bpm counts its beats (dotted quarters in
    /// 6/8, 9/8 and 12/8, half notes in 2/2). The tunes Cantor learned from were mostly written
    /// in: chorales 4/4, airs 3/4, jigs 6/8, reels and hornpipes 2/2, marches and polkas 2/4.
    #[arg(long, default_value = "4/4", value_parser = cantor::model::vocab::Meter::parse)]
    time_signature: (u32, u32),
    /// Every knob of the plugin that shapes a render (the table in `knobs.rs`).
    #[command(flatten)]
    knobs: cantor::knobs::KnobArgs,
    /// Output sample rate in Hz.
    #[arg(long, default_value_t = 48_000)]
    sample_rate: u32,
    /// Output WAV file (stereo, 32-bit float).
    #[arg(long, default_value = "take.wav")]
    out: PathBuf,
    /// Also write the notes played as a Standard MIDI file, aligned to the WAV (time zero is
    /// its first sample): what the plugin's MIDI out sends in a bounce.
    #[arg(long)]
    midi_out: Option<PathBuf>,
    /// Prior and codec model files (default: the models built into this program). A performer
    /// (a prior trained with notes) plays the tunes of the score prior (`--score`, default the
    /// one built in).
    #[arg(long, requires = "codec")]
    prior: Option<PathBuf>,
    #[arg(long, requires = "prior")]
    codec: Option<PathBuf>,
    #[arg(long, requires = "prior")]
    score: Option<PathBuf>,
    /// Perform this Standard MIDI file instead of composing: the performer plays its notes (every
    /// channel but the drums, keys outside C1-C8 moved by octaves into it) at the file's own
    /// timing, tempo and time signature, in the key its notes are in unless --key (and --mode)
    /// is given. --style still steers the playing.
    #[arg(long, conflicts_with = "score")]
    midi_in: Option<PathBuf>,
    /// Continue this Standard MIDI file: the performer plays it (as --midi-in does), and from
    /// the first bar line a beat or more after its last note the score prior carries on from
    /// its last bars (up to 8), in their key, for --bars bars. The MIDI out holds Cantor's notes.
    #[arg(long = "continue", conflicts_with = "midi_in")]
    continue_from: Option<PathBuf>,
    /// Bars Cantor plays after the phrase it continues.
    #[arg(long, default_value_t = 16, requires = "continue_from")]
    bars: usize,
}

#[derive(clap::Args)]
struct ComposeArgs {
    /// Style, or a blend of styles with weights 0-1: "reel" or "reel=1,jig=0.5".
    /// Styles: chorale, air, jig, reel, hornpipe, march/polka.
    #[arg(long, default_value = "reel")]
    style: String,
    /// Key tonic: C, C#, D, Eb, E, F, F#, G, Ab, A, Bb, B.
    #[arg(long, default_value = "D")]
    key: String,
    /// Mode: major or minor.
    #[arg(long, default_value = "major")]
    mode: String,
    /// Time signature: 2/4, 3/4, 4/4, 6/8, 9/8, 2/2, 3/8, 12/8, 6/4 or 3/2.
    #[arg(long, default_value = "4/4", value_parser = cantor::model::vocab::Meter::parse)]
    time_signature: (u32, u32),
    /// Bars to write (each 8-bar strain counts twice when --repeat is above 0: A A B B).
    #[arg(long, default_value_t = 32)]
    bars: usize,
    /// Tempo written into the file, in beats of the time signature (dotted quarters in 6/8).
    #[arg(long, default_value_t = 120.0)]
    bpm: f64,
    /// Instrument family, whose General MIDI program every part gets (the bass excepted):
    /// piano, strings, organ, winds, brass, plucked, choir/pads, mallets.
    #[arg(long, default_value = "piano")]
    instrument: String,
    /// Seed: the same seed and settings write the same tune.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sampling temperature (0 = always the likeliest token).
    #[arg(long, default_value_t = cantor::knobs::KNOBS.temperature.default)]
    temperature: f32,
    /// Sample only among the k likeliest tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Sample only among the likeliest tokens that make up this probability (1 = off).
    #[arg(long, default_value_t = cantor::knobs::KNOBS.top_p.default)]
    top_p: f32,
    /// How strongly style, mode and meter are imposed (classifier-free guidance; 1 = the
    /// conditional model alone).
    #[arg(long, default_value_t = cantor::model::score::DEFAULT_GUIDANCE)]
    guidance: f32,
    /// How closely each strain's repeat follows its first playing (0 = no repeats, 1 = note for note).
    #[arg(long, default_value_t = cantor::knobs::KNOBS.repeat.default)]
    repeat: f32,
    /// Leave a single-line tune without its bass and chords.
    #[arg(long)]
    no_accompaniment: bool,
    /// Score prior model file (default: the one built into this program).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output MIDI file.
    #[arg(long, default_value = "tune.mid")]
    out: PathBuf,
    /// Also have a performer play the tune into this WAV (mono, 24 kHz): the codes prior
    /// conditioned on the tune's notes, decoded by the codec. Needs --performer.
    #[arg(long, requires = "performer")]
    audio: Option<PathBuf>,
    /// Performer model file (e.g. assets/models/performer.safetensors).
    #[arg(long)]
    performer: Option<PathBuf>,
    /// Codec model file (default: the one built into this program).
    #[arg(long)]
    codec: Option<PathBuf>,
    /// How strongly the performer is held to the notes and the instrument (classifier-free
    /// guidance; 1 = the conditional model alone).
    #[arg(long, default_value_t = cantor::knobs::KNOBS.guidance.default)]
    performer_guidance: f32,
}

fn compose(args: ComposeArgs) -> Result<()> {
    use cantor::knobs::{KnobInfo, KNOBS};
    use cantor::model::vocab;
    let mut errors = Vec::new();
    let styles = cantor::plugin::render::parse_styles(&args.style).map_err(|e| errors.push(e)).ok();
    // Key, mode and instrument read as the plugin's knobs read text (any spelling of a tonic).
    let mut choice = |knob: &dyn KnobInfo, text: &str| knob.parse_plain(text).map_err(|e| errors.push(e)).ok().map(|v| v as usize);
    let (tonic, mode, instrument) = (choice(&KNOBS.key, &args.key), choice(&KNOBS.mode, &args.mode), choice(&KNOBS.instrument, &args.instrument));
    if !(args.bpm.is_finite() && (20.0..=400.0).contains(&args.bpm)) {
        errors.push(format!("--bpm must be between 20 and 400, not {}", args.bpm));
    }
    let ranges = [("temperature", args.temperature, &KNOBS.temperature), ("top-p", args.top_p, &KNOBS.top_p), ("guidance", args.guidance, &KNOBS.guidance), ("repeat", args.repeat, &KNOBS.repeat), ("performer-guidance", args.performer_guidance, &KNOBS.guidance)];
    for (name, v, knob) in ranges {
        let (lo, hi) = knob.plain_range();
        if !(v.is_finite() && v >= lo && v <= hi) {
            errors.push(format!("--{name} must be between {lo} and {hi}, not {v}"));
        }
    }
    let (Some(styles), Some(tonic), Some(mode), Some(instrument), true) = (styles, tonic, mode, instrument, errors.is_empty()) else {
        anyhow::bail!(errors.join("\n"));
    };
    let bytes = match &args.model {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => cantor::model::embedded::SCORE.context("this build has no trained score prior built in: pass --model FILE, or train one (cargo xtask train score)")?.to_vec(),
    };
    let model = cantor::model::score::ScorePrior::from_bytes(&bytes, &Device::Cpu).context("loading the score prior")?;
    let settings = cantor::compose::ComposeSettings {
        styles,
        tonic: tonic as u8,
        mode: mode as u8,
        time_signature: args.time_signature,
        bars: args.bars,
        seed: args.seed,
        instrument,
        sampling: cantor::model::prior::sampling::Sampling { temperature: args.temperature, top_k: args.top_k, top_p: args.top_p, guidance: args.guidance, repeat: args.repeat },
        accompaniment: !args.no_accompaniment,
    };
    let bar = indicatif::ProgressBar::new(args.bars as u64);
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:40} bar {pos}/{len} {elapsed_precise} eta {eta}").expect("valid template"));
    let started = std::time::Instant::now();
    let parts = cantor::compose::compose(&model, &settings, |f| bar.set_position((f * args.bars as f64).round() as u64)).map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    let (n, d) = args.time_signature;
    let meter = vocab::Meter::of_time_signature(n, d).context("not a time signature")?;
    cantor::midi::write(&args.out, &parts, args.bpm * meter.beat_quarters, args.time_signature)?;
    let notes: usize = parts.iter().map(|p| p.notes.len()).sum();
    eprintln!("{} bars, {} parts, {notes} notes -> {} in {:.1} s", args.bars, parts.len(), args.out.display(), started.elapsed().as_secs_f64());
    if let (Some(audio), Some(performer)) = (&args.audio, &args.performer) {
        let prior = cantor::model::prior::Prior::from_bytes(&std::fs::read(performer).with_context(|| format!("reading {}", performer.display()))?, &Device::Cpu)
            .with_context(|| format!("loading the performer {}", performer.display()))?;
        let codec = load_codec(&args.codec)?;
        let perform = cantor::compose::PerformSettings {
            styles,
            tonic: tonic as u8,
            mode: mode as u8,
            meter,
            bpm: args.bpm,
            instrument,
            sampling: cantor::model::prior::sampling::Sampling { temperature: KNOBS.temperature.default, top_k: 0, top_p: KNOBS.top_p.default, guidance: args.performer_guidance, repeat: 0.0 },
            seed: args.seed,
        };
        let notes = cantor::compose::frame_notes(&parts, meter, args.bpm, prior.cfg.frame_rate);
        let bar = indicatif::ProgressBar::new(100);
        let started = std::time::Instant::now();
        let y = cantor::compose::perform(&prior, &codec, &notes, &perform, |f| bar.set_position((f * 100.0) as u64)).map_err(anyhow::Error::msg)?;
        bar.finish_and_clear();
        Wav::write_mono(audio, &y, codec.cfg.sample_rate, 1)?;
        eprintln!("performed {:.1} s -> {} in {:.1} s", y.len() as f64 / codec.cfg.sample_rate as f64, audio.display(), started.elapsed().as_secs_f64());
    }
    Ok(())
}

fn render(args: RenderArgs) -> Result<()> {
    use cantor::plugin::render::{parse_styles, render_with_notes, RenderSettings};
    let styles = parse_styles(&args.style);
    let knobs = args.knobs.values();
    let mut errors: Vec<String> = styles.as_ref().err().into_iter().cloned().collect();
    errors.extend(knobs.as_ref().err().into_iter().flatten().cloned());
    let (Ok(styles), Ok(mut knobs), true) = (styles, knobs, errors.is_empty()) else {
        anyhow::bail!(errors.join("\n"));
    };
    knobs.styles = styles;
    let mut settings = RenderSettings { seconds: args.seconds.unwrap_or(30.0), sample_rate: args.sample_rate, time_signature: args.time_signature, knobs };
    let performance = match args.midi_in.as_ref().or(args.continue_from.as_ref()) {
        Some(path) => Some(performance(path, &args, &mut settings)?),
        None => None,
    };
    if let (Some(notes), None) = (&performance, args.seconds) {
        if args.continue_from.is_some() {
            // The phrase, the rest before the bar line Cantor answers from, its bars, a release.
            let (n, d) = settings.time_signature;
            let meter = cantor::model::vocab::Meter::of_time_signature(n, d).context("a known time signature")?;
            let last_off = notes.iter().map(|n| n.off).fold(0.0, f64::max);
            let from = cantor::engine::score_stage::answer_bar_line(last_off, 0.0, meter);
            let bar_beats = cantor::engine::score_stage::score_bar_beats(meter);
            settings.seconds = (from + args.bars as f64 * bar_beats) * 60.0 / settings.knobs.tempo as f64 + 1.5;
        }
    }
    settings.validate().map_err(anyhow::Error::msg)?;
    let read = |path: &PathBuf| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let files = match (&args.prior, &args.codec) {
        (Some(p), Some(c)) => Some(cantor::model::pair::ModelPair::from_bytes(&read(c)?, &read(p)?).map_err(anyhow::Error::msg)?),
        _ => None,
    };
    let factory = match (performance, files) {
        // A prior that takes no notes is refused when the plugin activates, with the reason.
        (Some(notes), files) => {
            let pair = match files {
                // Continuing needs the score prior too.
                Some(pair) if args.continue_from.is_some() && pair.prior.cfg.notes => with_score(pair, &args.score)?,
                Some(pair) => pair,
                None => cantor::model::pair::ModelPair::embedded().map_err(anyhow::Error::msg)?,
            };
            let pair = std::sync::Arc::new(pair);
            let continuing = args.continue_from.is_some();
            std::sync::Arc::new(move || {
                let source = match continuing {
                    true => cantor::engine::neural_source::NeuralSource::continuing(pair.clone(), &notes)?,
                    false => cantor::engine::neural_source::NeuralSource::playing(pair.clone(), &notes)?,
                };
                Ok(Box::new(source) as Box<dyn cantor::engine::FrameSource>)
            }) as cantor::plugin::SourceFactory
        }
        (None, Some(mut pair)) => {
            if pair.prior.cfg.notes {
                pair = with_score(pair, &args.score)?;
            } else {
                anyhow::ensure!(args.score.is_none(), "--score needs a performer as --prior (a prior trained with notes)");
            }
            cantor::plugin::neural_factory(std::sync::Arc::new(pair))
        }
        (None, None) => cantor::plugin::embedded_factory()
            .context("this build has no trained prior built in: pass --prior and --codec model files, or train one (cargo xtask train prior)")?,
    };
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {elapsed_precise} eta {eta}").expect("valid template"));
    let started = std::time::Instant::now();
    let (audio, notes) = render_with_notes(&settings, factory, |f| bar.set_position((f * 1000.0) as u64)).map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    cantor::audio::write_stereo_f32(&args.out, &audio, settings.sample_rate)?;
    if let Some(path) = &args.midi_out {
        let bytes = played_midi(&notes, &settings, (audio.len() / 2) as u64, args.midi_in.is_some())?;
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("{} note events -> {}", notes.len(), path.display());
    }
    let took = started.elapsed().as_secs_f64();
    eprintln!("{} s -> {} in {took:.1} s ({:.1}x real time)", settings.seconds, args.out.display(), settings.seconds / took);
    Ok(())
}

/// `pair` (a performer) with the score prior in `path`, or the one built in.
fn with_score(pair: cantor::model::pair::ModelPair, path: &Option<PathBuf>) -> Result<cantor::model::pair::ModelPair> {
    let score = match path {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => cantor::model::embedded::SCORE.context("this build has no score prior built in: pass --score")?.to_vec(),
    };
    pair.with_score(&score).map_err(anyhow::Error::msg)
}

/// The notes a render played as a MIDI file at its tempo and time signature, one track per
/// channel: the tune's parts on the instrument's program, chords too, the bass on acoustic bass
/// (a performed file's channels are its parts, all on the instrument's program).
fn played_midi(notes: &[cantor::midi::PlayedEvent], settings: &cantor::plugin::render::RenderSettings, frames: u64, performed: bool) -> Result<Vec<u8>> {
    use cantor::engine::score_stage::{BASS_CHANNEL, CHORDS_CHANNEL};
    let (n, d) = settings.time_signature;
    let meter = cantor::model::vocab::Meter::of_time_signature(n, d).context("validated time signature")?;
    let qpm = settings.knobs.tempo as f64 * meter.beat_quarters;
    let family = cantor::model::vocab::INSTRUMENT_FAMILIES.get(settings.knobs.instrument.max(0) as usize);
    let program = family.and_then(|f| f.1.first().copied()).unwrap_or(0);
    let parts = cantor::midi::played_parts(notes, settings.sample_rate, qpm, frames, |c| match c {
        c if performed => (format!("part {}", c + 1), program),
        CHORDS_CHANNEL => ("chords".into(), program),
        BASS_CHANNEL => ("bass".into(), cantor::compose::BASS_PROGRAM),
        c => (format!("tune {}", c + 1), program),
    });
    let (channels, parts): (Vec<u8>, Vec<_>) = parts.into_iter().unzip();
    cantor::midi::to_bytes_on(&channels, &parts, qpm, settings.time_signature)
}

/// The notes of the MIDI file `path` as the performer plays them, in beats of the render, whose
/// time signature, tempo, key (unless given), and length (unless given) become the file's.
fn performance(path: &PathBuf, args: &RenderArgs, settings: &mut cantor::plugin::render::RenderSettings) -> Result<Vec<cantor::engine::score_stage::GivenNote>> {
    use cantor::knobs::{KnobInfo, KNOBS};
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = cantor::midi::read_performance(&bytes).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(!file.notes.is_empty(), "{} has no notes to play (drum notes, on channel 10, are left out: {})", path.display(), file.drum_notes);
    let (n, d) = file.time_signature;
    settings.time_signature = if cantor::model::vocab::Meter::of_time_signature(n, d).is_some() { (n, d) } else { (4, 4) };
    let meter = cantor::model::vocab::Meter::of_time_signature(settings.time_signature.0, settings.time_signature.1).context("a known time signature")?;
    // The file's tempo in beats of its signature, within the Tempo knob's range; the notes keep
    // the file's timing in seconds whatever tempo the performer is told.
    let (lo, hi) = KNOBS.tempo.plain_range();
    settings.knobs.tempo = ((file.quarters_per_minute / meter.beat_quarters) as f32).clamp(lo, hi);
    let beats_per_second = settings.knobs.tempo as f64 / 60.0;
    if !args.knobs.is_given(KNOBS.key.id()) {
        let (tonic, mode) = cantor::key_finder::key_of_notes(file.notes.iter().map(|n| (n.key, n.off_s - n.on_s)));
        settings.knobs.key = tonic as i32;
        if !args.knobs.is_given(KNOBS.mode.id()) {
            settings.knobs.mode = mode as i32;
        }
    }
    let end = file.notes.iter().map(|n| n.off_s).fold(0.0, f64::max);
    if args.seconds.is_none() {
        settings.seconds = end + 2.0;
    }
    let (lowest, highest) = (cantor::model::prior::notes::LOWEST_KEY, cantor::model::prior::notes::HIGHEST_KEY);
    let moved = file.notes.iter().filter(|n| !(lowest..=highest).contains(&n.key)).count();
    eprintln!(
        "{}: {} notes in {:.1} s at {:.1} quarters a minute in {n}/{d}, played in {} {}{}{}",
        path.display(),
        file.notes.len(),
        end,
        file.quarters_per_minute,
        KNOBS.key.format(settings.knobs.key),
        KNOBS.mode.format(settings.knobs.mode),
        if file.drum_notes > 0 { format!("; {} drum notes left out", file.drum_notes) } else { String::new() },
        if moved > 0 { format!("; {moved} notes moved by octaves into C1-C8") } else { String::new() },
    );
    Ok(file
        .notes
        .iter()
        .map(|n| cantor::engine::score_stage::GivenNote { on: n.on_s * beats_per_second, off: n.off_s * beats_per_second, key: n.key, velocity: n.velocity, channel: n.channel })
        .collect())
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
        Command::Render(args) => render(args)?,
        Command::Compose(args) => compose(args)?,
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
