//! Codec evaluation against Opus on the test split, and the streaming decoder benchmark.

use super::notes::{NoteJudge, NoteScore, Pair, Reference};
use super::{median_p99, write_section};
use crate::dataset::render;
use crate::dataset::recipe::{ClipRecipe, DatasetConfig};
use crate::dataset::{repo_root, wav_name, ClipSource, Dataset};
use cantor::audio::Wav;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use cantor::model::codec::Codec;
use cantor::model::spectral::{si_sdr, SpectralDistances};
use cantor::model::weights;
use candle_core::quantized::GgmlDType;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The weights to measure: an explicit file, else the committed ones.
fn load(weights: &Option<PathBuf>) -> Result<(Codec, PathBuf)> {
    let path = weights.clone().unwrap_or_else(crate::train::codec::published_weights);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((Codec::from_bytes(&bytes, &Device::Cpu)?, path))
}

/// Round trip through opusenc/opusdec (Debian's opus-tools) at `kbps`.
fn opus_roundtrip(x: &[f32], sr: u32, kbps: u32, tmp: &Path) -> Result<Vec<f32>> {
    let wav = tmp.join("in.wav");
    let opus = tmp.join("x.opus");
    let out = tmp.join("out.wav");
    Wav::write_mono(&wav, x, sr, 1)?;
    let run = |cmd: &mut std::process::Command| -> Result<()> {
        let o = cmd.output().with_context(|| format!("running {cmd:?}: install opus-tools (apt-get install opus-tools)"))?;
        if !o.status.success() {
            bail!("{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
        }
        Ok(())
    };
    run(std::process::Command::new("opusenc").args(["--quiet", "--bitrate", &kbps.to_string()]).arg(&wav).arg(&opus))?;
    run(std::process::Command::new("opusdec").args(["--quiet", "--rate", &sr.to_string()]).arg(&opus).arg(&out))?;
    Ok(Wav::read(&out)?.mono())
}

/// Bands of the spectral balance measurement, in Hz: where the codec's dullness shows.
const BANDS: [(f64, f64); 3] = [(0.0, 2000.0), (2000.0, 6000.0), (6000.0, 12000.0)];

/// Energy of `x` in each of `BANDS` (one real FFT of the whole clip).
fn band_energies(x: &[f32], sr: u32) -> [f64; BANDS.len()] {
    let n = x.len();
    let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(n);
    let mut input = x.to_vec();
    let mut spectrum = fft.make_output_vec();
    let mut out = [0f64; BANDS.len()];
    if fft.process(&mut input, &mut spectrum).is_err() {
        return out;
    }
    for (i, c) in spectrum.iter().enumerate() {
        let hz = i as f64 * sr as f64 / n as f64;
        if let Some(b) = BANDS.iter().position(|&(lo, hi)| hz >= lo && hz < hi) {
            out[b] += c.norm_sqr() as f64;
        }
    }
    out
}

#[derive(Default, Clone, Copy)]
struct Scores {
    mel: f64,
    stft: f64,
    pitch: f64,
    sisdr: f64,
    /// Summed level change (output against input, dB) per band of `BANDS`.
    balance: [f64; BANDS.len()],
    n: usize,
}

impl Scores {
    fn add(&mut self, spectral: &SpectralDistances, y: &[f32], x: &[f32], sr: u32) -> Result<()> {
        let n = x.len().min(y.len());
        let xt = Tensor::from_slice(&x[..n], (1, n), &Device::Cpu)?;
        let yt = Tensor::from_slice(&y[..n], (1, n), &Device::Cpu)?;
        let (stft, mel) = spectral.both(&yt, &xt)?;
        self.mel += mel.to_scalar::<f32>()? as f64;
        self.stft += stft.to_scalar::<f32>()? as f64;
        self.pitch += spectral.pitch(&yt, &xt)?.to_scalar::<f32>()? as f64;
        self.sisdr += si_sdr(&y[..n], &x[..n]);
        let (ey, ex) = (band_energies(&y[..n], sr), band_energies(&x[..n], sr));
        for b in 0..BANDS.len() {
            self.balance[b] += 10.0 * ((ey[b] + 1e-12) / (ex[b] + 1e-12)).log10();
        }
        self.n += 1;
        Ok(())
    }

    fn mean_mel(&self) -> f64 {
        self.mel / self.n.max(1) as f64
    }

    fn mean_stft(&self) -> f64 {
        self.stft / self.n.max(1) as f64
    }

    fn mean_pitch(&self) -> f64 {
        self.pitch / self.n.max(1) as f64
    }

    /// A table row; `kbps` NaN for a column with no bit stream (unquantised latents).
    fn row(&self, name: &str, kbps: f64) -> String {
        let n = self.n.max(1) as f64;
        let balance: Vec<String> = self.balance.iter().map(|b| format!("{:+.1}", b / n)).collect();
        let kbps = if kbps.is_nan() { "-".to_string() } else { format!("{kbps:.1}") };
        format!("| {name} | {kbps} | {:.3} | {:.3} | {:.3} | {:.2} | {} |", self.mean_mel(), self.mean_stft(), self.mean_pitch(), self.sisdr / n, balance.join(" | "))
    }
}

/// `n` clips spread evenly over every (instrument family, soundfont) pair, each pair's clips
/// taken at an even stride through the split: per-family and per-soundfont rows then rest on as
/// many clips each (a plain stride gave one strings clip against ten piano ones).
pub(crate) fn stratified<'a>(clips: Vec<&'a ClipRecipe>, n: usize) -> Vec<&'a ClipRecipe> {
    let mut cells: Vec<((&str, &str), Vec<&ClipRecipe>)> = Vec::new();
    for c in clips {
        match cells.iter_mut().find(|(k, _)| *k == (c.instrument.as_str(), c.soundfont.as_str())) {
            Some((_, v)) => v.push(c),
            None => cells.push(((c.instrument.as_str(), c.soundfont.as_str()), vec![c])),
        }
    }
    cells.sort_by(|a, b| a.0.cmp(&b.0));
    // How many from each cell: round robin, skipping cells that run out.
    let mut take = vec![0usize; cells.len()];
    let mut left = n;
    while left > 0 && take.iter().zip(&cells).any(|(t, c)| *t < c.1.len()) {
        for (t, c) in take.iter_mut().zip(&cells) {
            if left > 0 && *t < c.1.len() {
                *t += 1;
                left -= 1;
            }
        }
    }
    let mut chosen = Vec::new();
    for (t, (_, cell)) in take.iter().zip(&cells) {
        let stride = cell.len() as f64 / (*t).max(1) as f64;
        chosen.extend((0..*t).map(|i| cell[(i as f64 * stride) as usize]));
    }
    chosen
}

/// A General MIDI soundfont no training clip was rendered with (Debian's timgm6mb-soundfont).
const OUT_OF_DOMAIN_SOUNDFONT: &str = "TimGM6mb.sf2";

/// One way from a clip to the audio the eval measures.
enum Trip {
    /// The measured codec's round trip (`--weights`, by default the shipped one).
    Main,
    /// A second codec's round trip (`--candidate`).
    Candidate(Codec),
    /// The measured codec's decoder on its encoder's latents unquantised: what the quantiser costs.
    Latents,
    /// The measured codec's decoded magnitudes with the input's phases: its magnitudes alone.
    InputPhases,
    Opus(u32),
}

/// A column of the eval's tables.
struct Column {
    name: String,
    kbps: f64,
    trip: Trip,
}

/// Note F1 per instrument family and soundfont: the ceiling (input transcription against the
/// score) and each column's round trip against the input, for the clips of each group.
/// `groups[i]` is clip i's (in domain, family, soundfont); `scores` holds 1 + `columns.len()`
/// entries a clip in `eval`'s order (the ceiling first).
fn note_f1_table(groups: &[(bool, String, String)], scores: &[NoteScore], columns: &[&str]) -> String {
    let stride = 1 + columns.len();
    let f1 = |i: usize, k: usize| scores[stride * i + k].f1;
    let row = |label: &str, clips: &[usize]| {
        let mean = |f: &dyn Fn(&NoteScore) -> f64, k: usize| clips.iter().map(|&i| f(&scores[stride * i + k])).sum::<f64>() / clips.len().max(1) as f64;
        let (p, r, f) = (|s: &NoteScore| s.precision, |s: &NoteScore| s.recall, |s: &NoteScore| s.f1);
        let rest: String = (2..stride).map(|k| format!(" {:.2} |", mean(&f, k))).collect();
        format!("| {label} | {} | {:.2} | {:.2} ({:.2} / {:.2}) |{rest}\n", clips.len(), mean(&f, 0), mean(&f, 1), mean(&p, 1), mean(&r, 1))
    };
    let mut table = format!(
        "| clips | count | ceiling: input vs score | {} (precision / recall) |{}\n|---|---|---|{}\n",
        columns[0],
        columns[1..].iter().map(|c| format!(" {c} |")).collect::<String>(),
        "---|".repeat(columns.len())
    );
    let in_domain: Vec<usize> = (0..groups.len()).filter(|&i| groups[i].0).collect();
    // The in-domain clips of each family (`field` 1) or soundfont (`field` 2), by name.
    let by = |field: fn(&(bool, String, String)) -> &str| {
        let mut names: Vec<&str> = in_domain.iter().map(|&i| field(&groups[i])).collect();
        names.sort();
        names.dedup();
        names.into_iter().map(|name| (name, in_domain.iter().copied().filter(|&i| field(&groups[i]) == name).collect::<Vec<_>>())).collect::<Vec<_>>()
    };
    let families = by(|g| g.1.as_str());
    for (fam, clips) in &families {
        table += &row(fam, clips);
    }
    for (font, clips) in by(|g| g.2.as_str()) {
        table += &row(&format!("soundfont {font}"), &clips);
    }
    table += &row("**all held-out clips**", &in_domain);
    // The target's average: each family counts once, whatever its number of clips.
    let family_mean = |k: usize| {
        families.iter().map(|(_, c)| c.iter().map(|&i| f1(i, k)).sum::<f64>() / c.len() as f64).sum::<f64>() / families.len().max(1) as f64
    };
    let means: String = (0..stride).map(|k| format!(" {:.2} |", family_mean(k))).collect();
    table += &format!("| **mean of the {} families** | {} |{means}\n", families.len(), in_domain.len());
    let ood: Vec<usize> = (0..groups.len()).filter(|&i| !groups[i].0).collect();
    if !ood.is_empty() {
        table += &row(&format!("out of domain: {OUT_OF_DOMAIN_SOUNDFONT}"), &ood);
    }
    table
}

/// `cargo xtask eval codec`: mel / multi-resolution STFT / pitch distance / SI-SDR of our codec
/// (and a candidate, and its unquantised latents when asked) and Opus 6 and 12 kbit/s on the
/// same test clips, plus codebook use and notes kept; writes EVAL.md's codec section.
pub fn eval(weights: &Option<PathBuf>, candidate: &Option<PathBuf>, latents: bool, magnitudes: bool, clips: usize, keep_audio: Option<&Path>) -> Result<()> {
    let (codec, path) = load(weights)?;
    let cfg = codec.cfg.clone();
    let mut columns = vec![Column { name: "Cantor codec".into(), kbps: cfg.bitrate() / 1000.0, trip: Trip::Main }];
    if let Some(c) = candidate {
        let (cand, cpath) = load(&Some(c.clone()))?;
        anyhow::ensure!(cand.cfg.sample_rate == cfg.sample_rate && cand.cfg.hop() == cfg.hop(), "the candidate's sample rate or hop differs from the codec's");
        let name = format!("candidate `{}`", cpath.strip_prefix(repo_root()).unwrap_or(&cpath).display());
        columns.push(Column { name, kbps: cand.cfg.bitrate() / 1000.0, trip: Trip::Candidate(cand) });
    }
    if latents {
        columns.push(Column { name: "Cantor codec, latents unquantised".into(), kbps: f64::NAN, trip: Trip::Latents });
    }
    if magnitudes {
        columns.push(Column { name: "Cantor codec's magnitudes, the input's phases".into(), kbps: f64::NAN, trip: Trip::InputPhases });
    }
    columns.push(Column { name: "Opus 6 kbit/s".into(), kbps: 6.0, trip: Trip::Opus(6) });
    columns.push(Column { name: "Opus 12 kbit/s".into(), kbps: 12.0, trip: Trip::Opus(12) });
    let ds = Dataset::build(&DatasetConfig::default())?;
    let chosen = stratified(ds.split("test").collect(), clips);
    let spectral = SpectralDistances::new(cfg.sample_rate, &Device::Cpu)?;
    let tmp = std::env::temp_dir().join(format!("cantor-eval-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut source = ClipSource::new(cfg.sample_rate);
    // The same held-out clips through a General MIDI soundfont no training clip used.
    let ood_font = render::soundfont_dir().join(OUT_OF_DOMAIN_SOUNDFONT);
    let ood = ood_font.exists();
    if !ood {
        println!("{} is missing (apt-get install timgm6mb-soundfont): no out-of-domain row", ood_font.display());
    }
    // Distances per column, in domain and out of it.
    let (mut scores, mut ood_scores) = (vec![Scores::default(); columns.len()], vec![Scores::default(); columns.len()]);
    // Codes seen per level, for each column that is a codec (the shipped one is column 0).
    let mut used: Vec<Vec<Vec<bool>>> = columns
        .iter()
        .map(|c| {
            let cfg = match &c.trip {
                Trip::Main => &cfg,
                Trip::Candidate(k) => &k.cfg,
                _ => return Vec::new(),
            };
            vec![vec![false; cfg.codebook_size]; cfg.n_codebooks]
        })
        .collect();
    let mut pairs = Vec::new();
    let mut groups = Vec::new();
    let wav_dir = tmp.join("notes");
    std::fs::create_dir_all(&wav_dir)?;
    // Each clip as the corpus renders it, then (when installed) through the unseen soundfont.
    let runs: Vec<(&ClipRecipe, bool)> = chosen.iter().map(|&c| (c, true)).chain(chosen.iter().filter(|_| ood).map(|&c| (c, false))).collect();
    let pb = crate::dataset::progress(runs.len() as u64, "eval");
    let started = Instant::now();
    for (i, &(clip, in_domain)) in runs.iter().enumerate() {
        pb.inc(1);
        let mut ood_clip;
        let clip = if in_domain {
            clip
        } else {
            ood_clip = clip.clone();
            ood_clip.soundfont = OUT_OF_DOMAIN_SOUNDFONT.to_string();
            &ood_clip
        };
        let cached = ds.dir().join("audio").join(wav_name(clip));
        let mut x = match Wav::read(&cached).ok().filter(|_| in_domain) {
            Some(w) => w.mono(),
            None => source.render(clip)?,
        };
        x.truncate(x.len() / cfg.hop() * cfg.hop());
        let xt = Tensor::from_slice(&x, (1, x.len()), &Device::Cpu)?;
        // The notes: the score as rendered (the ceiling), and each round trip against the input.
        let seconds = x.len() as f64 / cfg.sample_rate as f64;
        let played: Vec<(f64, f64, u8)> =
            render::played_notes(clip, &source.notes(clip)?, 0.0, clip.seconds).iter().filter(|n| n.on_s < seconds).map(|n| (n.on_s, n.off_s.min(seconds), n.key)).collect();
        let wav = |name: &str, audio: &[f32]| -> Result<PathBuf> {
            let path = wav_dir.join(format!("{i}-{name}.wav"));
            Wav::write_mono(&path, audio, cfg.sample_rate, 1)?;
            Ok(path)
        };
        let input = wav("input", &x)?;
        pairs.push(Pair { id: format!("{i}/ceiling"), reference: Reference::Notes(played), estimate: input.clone() });
        for (k, column) in columns.iter().enumerate() {
            let round_trip = |c: &Codec, used: &mut Vec<Vec<bool>>| -> Result<Vec<f32>> {
                let codes = c.encode(&xt)?;
                if in_domain {
                    for (level, row) in used.iter_mut().enumerate() {
                        for code in codes.narrow(2, level, 1)?.flatten_all()?.to_vec1::<u32>()? {
                            row[code as usize] = true;
                        }
                    }
                }
                Ok(c.decode(&codes)?.squeeze(0)?.to_vec1::<f32>()?)
            };
            let y = match &column.trip {
                Trip::Main => round_trip(&codec, &mut used[k])?,
                Trip::Candidate(c) => round_trip(c, &mut used[k])?,
                Trip::Latents => codec.decoder.forward(&codec.encoder.forward(&xt)?)?.squeeze(0)?.to_vec1::<f32>()?,
                Trip::InputPhases => codec.decoder.forward_with_phases_of(&codec.quantizer.decode(&codec.encode(&xt)?)?, &xt)?.squeeze(0)?.to_vec1::<f32>()?,
                Trip::Opus(kbps) => opus_roundtrip(&x, cfg.sample_rate, *kbps, &tmp)?,
            };
            let s = if in_domain { &mut scores[k] } else { &mut ood_scores[k] };
            s.add(&spectral, &y, &x, cfg.sample_rate)?;
            pairs.push(Pair { id: format!("{i}/{k}"), reference: Reference::Wav(input.clone()), estimate: wav(&k.to_string(), &y)? });
        }
        groups.push((in_domain, clip.instrument.clone(), clip.soundfont.clone()));
    }
    pb.finish();
    println!("transcribing {} recordings with basic-pitch", pairs.len());
    let judge = NoteJudge::new()?;
    let notes = judge.score(&pairs, &tmp)?;
    if let Some(dir) = keep_audio {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(&wav_dir)? {
            let entry = entry?;
            std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
        }
        let names: String = columns.iter().enumerate().map(|(k, c)| format!("{k}\t{}\n", c.name)).collect();
        std::fs::write(dir.join("columns.txt"), names)?;
        println!("kept the measured audio in {}", dir.display());
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let note_table = note_f1_table(&groups, &notes, &names);
    let usage: Vec<String> = columns
        .iter()
        .zip(&used)
        .filter(|(_, u)| !u.is_empty())
        .map(|(c, u)| {
            let levels: Vec<String> = u.iter().map(|l| format!("{:.0}%", 100.0 * l.iter().filter(|&&b| b).count() as f64 / l.len() as f64)).collect();
            format!("{} ({} codes a book): {}", c.name, u[0].len(), levels.join(", "))
        })
        .collect();
    let seconds: f64 = chosen.iter().map(|c| c.seconds).sum();
    // Where the shipped weights come from: the last best validation of a run's log. When a
    // decoder-only run's log is there, its decoder ships on the main run's encoder and codes.
    let best_step = |log: &str| {
        std::fs::read_to_string(repo_root().join("assets/training").join(log))
            .ok()
            .and_then(|s| s.lines().rev().find(|l| l.contains("\"best\":true")).map(|l| l.to_string()))
            .and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .and_then(|v| v["step"].as_u64())
    };
    let provenance = if path != crate::train::codec::published_weights() {
        String::new() // another file: no claim about where it came from
    } else {
        // Codebooks re-fitted after training (`xtask train codebooks`) are logged with their id.
        let id = cantor::model::prior::codec_codes_id(&codec)?;
        let refit = std::fs::read_to_string(repo_root().join("assets/training/codec-log-codebooks.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|rec| rec["new_id"] == id.as_str());
        let refit = if refit { "; codebooks: re-fitted by k-means afterwards (`cargo xtask train codebooks`, log `codec-log-codebooks.jsonl`)" } else { "" };
        let decoder_log = ["codec-log-decoder.jsonl", "codec-log-decoder-v1.jsonl"].into_iter().find(|l| repo_root().join("assets/training").join(l).exists());
        match (best_step("codec-log.jsonl"), decoder_log.and_then(best_step)) {
            (Some(m), Some(d)) => format!(" (encoder: best validation of the main run, step {m}; decoder: best validation of the decoder-only run, step {d}, `{}`{refit})", decoder_log.unwrap_or_default()),
            (Some(m), None) => format!(" (best validation at training step {m}{refit})"),
            _ => String::new(),
        }
    };
    let rows: Vec<String> = columns.iter().zip(&scores).map(|(c, s)| s.row(&c.name, c.kbps)).collect();
    let ood_line = if ood {
        let each: Vec<String> = columns.iter().zip(&ood_scores).map(|(c, s)| format!("{} {:.3} / {:.3} / {:.3}", c.name, s.mean_mel(), s.mean_stft(), s.mean_pitch())).collect();
        format!("Out of domain (the same clips through {OUT_OF_DOMAIN_SOUNDFONT}), log-mel L1 / multi-res STFT / pitch distance: {}.", each.join(", "))
    } else {
        format!("No out-of-domain row: {OUT_OF_DOMAIN_SOUNDFONT} was not installed.")
    };
    let command = format!(
        "cargo xtask eval codec --clips {clips}{}{}",
        candidate.as_ref().map(|c| format!(" --candidate {}", c.strip_prefix(repo_root()).unwrap_or(c).display())).unwrap_or_default(),
        if latents { " --latents" } else { "" }
    );
    let body = format!(
        "## Codec against Opus (test split)\n\n\
         {} test clips ({:.1} min, every clip of a tune unseen in training, as many of each instrument family and soundfont), 24 kHz mono. \
         Lower is better for the three distances, higher for SI-SDR. The pitch distance is the mean absolute difference of log spectrograms in half-semitone bands from C2 to C8 (`spectral::PITCH`).\n\
         Weights: `{}`{}. Command: `{command}` ({:.0} s).\n\n\
         | codec | kbit/s | log-mel L1 | multi-res STFT | pitch distance | SI-SDR (dB) | level below 2 kHz (dB) | 2-6 kHz | above 6 kHz |\n|---|---|---|---|---|---|---|---|---|\n{}\n\n\
         The level columns are the mean change of each band's energy from input to output (0 is the input's spectral balance).\n\n\
         Codebook use on these clips (target: at least 90% of each codebook's codes): {}.\n\n\
         {ood_line}\n\n\
         ### Notes kept (transcribed)\n\n\
         The input and each round trip transcribed by basic-pitch (0.4.0, its ONNX model) and compared with mir_eval's onset-only note matching (onsets within 50 ms, pitches within 50 cents; `xtask/python/note_f1.py`): each round trip's notes against the input's. \
         The ceiling column compares the input's transcription with the notes it was rendered from (the renderer's own schedule, accompaniment included): how much of a clip's music basic-pitch can see at all, lower for organ and bowed strings than for piano and plucked, so read each family's row against its own ceiling. \
         Out of domain: the same held-out clips rendered through `{OUT_OF_DOMAIN_SOUNDFONT}` (Debian's timgm6mb-soundfont), a General MIDI soundfont no training clip used.\n\n{note_table}\n{}\n",
        chosen.len(),
        seconds / 60.0,
        path.strip_prefix(repo_root()).unwrap_or(&path).display(),
        provenance,
        started.elapsed().as_secs_f64(),
        rows.join("\n"),
        usage.join("; "),
        super::provenance(),
    );
    println!("{body}");
    write_section(&repo_root().join("EVAL.md"), "codec", &body)
}

/// `cargo xtask bench codec`: the streaming decoder's speed on one thread, in chunks of
/// `chunk_frames`, over `seconds` of codes from a test clip; writes BENCHMARKS.md's codec section.
pub fn bench(weights: &Option<PathBuf>, chunk_frames: usize, seconds: f64, runs: usize) -> Result<()> {
    if std::env::var("RAYON_NUM_THREADS").ok().as_deref() != Some("1") {
        bail!("run the benchmark on one thread: RAYON_NUM_THREADS=1 cargo xtask bench codec");
    }
    let (codec, path) = load(weights)?;
    let cfg = codec.cfg.clone();
    let ds = Dataset::build(&DatasetConfig::default())?;
    let mut source = ClipSource::new(cfg.sample_rate);
    // Codes of real music (several test clips end to end).
    let mut audio = Vec::new();
    for clip in ds.split("test").step_by(97) {
        if audio.len() as f64 >= seconds * cfg.sample_rate as f64 {
            break;
        }
        audio.extend(source.render(clip)?);
    }
    audio.truncate(audio.len() / cfg.hop() * cfg.hop());
    let codes = codec.encode(&Tensor::from_slice(&audio, (1, audio.len()), &Device::Cpu)?)?.squeeze(0)?;
    let frames = codes.dim(0)?;
    let audio_s = frames as f64 / cfg.frame_rate();
    let mut rtf = Vec::new();
    let mut chunk_ms = Vec::new();
    let mut whole_rtf = Vec::new();
    for _ in 0..runs {
        let mut stream = codec.stream();
        let t0 = Instant::now();
        let mut t = 0;
        while t < frames {
            let n = chunk_frames.min(frames - t);
            let c0 = Instant::now();
            std::hint::black_box(stream.push_codes(&codes.narrow(0, t, n)?)?);
            chunk_ms.push(c0.elapsed().as_secs_f64() * 1e3);
            t += n;
        }
        rtf.push(audio_s / t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        std::hint::black_box(codec.decode(&codes.unsqueeze(0)?)?);
        whole_rtf.push(audio_s / t0.elapsed().as_secs_f64());
    }
    // The plugin's decoder: the hand-written frame-at-a-time path (`codec::cpu_decoder`).
    let fast = codec.cpu_decoder.as_ref().ok_or_else(|| anyhow::anyhow!("the codec loaded without its CPU decoder"))?;
    let flat: Vec<u32> = codes.flatten_all()?.to_vec1()?;
    let (mut fast_rtf, mut fast_chunk_ms, mut out) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut state = fast.new_state();
        let t0 = Instant::now();
        for chunk in flat.chunks(chunk_frames * cfg.n_codebooks) {
            let c0 = Instant::now();
            out.clear();
            fast.push_frames(&mut state, chunk, &mut out)?;
            std::hint::black_box(&out);
            fast_chunk_ms.push(c0.elapsed().as_secs_f64() * 1e3);
        }
        fast_rtf.push(audio_s / t0.elapsed().as_secs_f64());
    }
    let (rtf_med, _) = median_p99(&rtf);
    let (whole_med, _) = median_p99(&whole_rtf);
    let (c_med, c_p99) = median_p99(&chunk_ms);
    let (fast_med, _) = median_p99(&fast_rtf);
    let (f_med, f_p99) = median_p99(&fast_chunk_ms);
    let chunk_audio_ms = chunk_frames as f64 / cfg.frame_rate() * 1e3;
    let body = format!(
        "## Codec decoder speed (one thread)\n\n\
         Command: `RAYON_NUM_THREADS=1 cargo xtask bench codec --chunk-frames {chunk_frames} --seconds {seconds} --runs {runs}{}`; \
         {audio_s:.1} s of codes from test clips; medians over {runs} runs on this shared 2-core machine.\n\n\
         | mode | real-time factor (median) | per chunk, median / p99 |\n|---|---|---|\n\
         | streaming, hand-written CPU decoder (what the plugin runs), chunks of {chunk_frames} frames ({chunk_audio_ms:.1} ms of audio) | {fast_med:.1}x | {f_med:.2} ms / {f_p99:.2} ms |\n\
         | streaming, candle tensors, chunks of {chunk_frames} frames | {rtf_med:.1}x | {c_med:.2} ms / {c_p99:.2} ms |\n\
         | whole clip, candle tensors | {whole_med:.1}x | - |\n\n\
         Target: at least 40x real time streaming in chunks of 50 ms or less.\n\n{}\n",
        weights.as_ref().map(|_| format!(" --weights {}", path.strip_prefix(repo_root()).unwrap_or(&path).display())).unwrap_or_default(),
        super::provenance(),
    );
    println!("{body}");
    write_section(&repo_root().join("BENCHMARKS.md"), "codec", &body)
}

/// `cargo xtask quantize codec`: write the decoder's linear weights as GGML blocks next to the
/// f16 reference weights, and measure what quantisation changes on test clips (EVAL.md).
pub fn quantize(dtypes: &[GgmlDType], clips: usize) -> Result<()> {
    let reference = crate::train::codec::published_weights();
    let bytes = std::fs::read(&reference).with_context(|| format!("reading {}", reference.display()))?;
    let raw = weights::parse::<cantor::model::codec::CodecConfig>(&bytes, cantor::model::codec::KIND, &Device::Cpu)?;
    let f32_codec = Codec::from_bytes(&bytes, &Device::Cpu)?;
    let cfg = f32_codec.cfg.clone();
    let ds = Dataset::build(&DatasetConfig::default())?;
    let test: Vec<_> = ds.split("test").step_by(53).take(clips).collect();
    let mut source = ClipSource::new(cfg.sample_rate);
    let spectral = SpectralDistances::new(cfg.sample_rate, &Device::Cpu)?;
    let mut rows = vec![format!("| f16 reference | {:.2} MB | - | - |", bytes.len() as f64 / 1e6)];
    let mut audio = Vec::new();
    for clip in &test {
        let mut x = source.render(clip)?;
        x.truncate(x.len() / cfg.hop() * cfg.hop());
        audio.push(x);
    }
    let codes: Vec<Tensor> =
        audio.iter().map(|x| f32_codec.encode(&Tensor::from_slice(x, (1, x.len()), &Device::Cpu)?)).collect::<candle_core::Result<_>>()?;
    let reference_out: Vec<Vec<f32>> =
        codes.iter().map(|c| f32_codec.decode(c)?.flatten_all()?.to_vec1::<f32>()).collect::<candle_core::Result<_>>()?;
    for &dtype in dtypes {
        let (qbytes, path) = crate::train::write_quantized("codec", cantor::model::codec::KIND, &raw, &Codec::is_quantizable, dtype)?;
        let q = Codec::from_bytes(&qbytes, &Device::Cpu)?;
        let (mut snr, mut dmel) = (0.0, 0.0);
        for ((c, r), x) in codes.iter().zip(&reference_out).zip(&audio) {
            let y = q.decode(c)?.flatten_all()?.to_vec1::<f32>()?;
            let err: f64 = y.iter().zip(r).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
            let sig: f64 = r.iter().map(|a| (*a as f64).powi(2)).sum();
            snr += 10.0 * (sig / err.max(1e-20)).log10();
            let n = x.len();
            let xt = Tensor::from_slice(x, (1, n), &Device::Cpu)?;
            let (_, mq) = spectral.both(&Tensor::from_slice(&y, (1, n), &Device::Cpu)?, &xt)?;
            let (_, mr) = spectral.both(&Tensor::from_slice(r, (1, n), &Device::Cpu)?, &xt)?;
            dmel += (mq.to_scalar::<f32>()? - mr.to_scalar::<f32>()?) as f64;
        }
        let k = codes.len().max(1) as f64;
        rows.push(format!(
            "| {} (`{}`) | {:.2} MB | {:.1} dB | {:+.4} |",
            weights::quant_name(dtype),
            path.strip_prefix(repo_root()).unwrap_or(&path).display(),
            qbytes.len() as f64 / 1e6,
            snr / k,
            dmel / k
        ));
    }
    let body = format!(
        "## Codec quantisation\n\n\
         Decoder linear weights as GGML blocks (the rest f16). Command: `cargo xtask quantize codec --clips {clips}`; \
         {} test clips, same codes decoded by the f16 reference and by each quantised file.\n\n\
         | weights | file size | output SNR against f16 | change in log-mel L1 against the original |\n|---|---|---|---|\n{}\n",
        codes.len(),
        rows.join("\n")
    );
    println!("{body}");
    write_section(&repo_root().join("EVAL.md"), "codec-quantization", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_clips_cover_every_family_and_soundfont_alike() {
        let ds = Dataset::build(&DatasetConfig::default()).unwrap();
        let chosen = stratified(ds.split("test").collect(), 48);
        assert_eq!(chosen.len(), 48);
        let mut cells: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
        for c in &chosen {
            assert_eq!(c.split, "test");
            *cells.entry((c.instrument.as_str(), c.soundfont.as_str())).or_default() += 1;
        }
        assert_eq!(cells.len(), 16, "{cells:?}");
        assert!(cells.values().all(|&n| n == 3), "{cells:?}");
        // No clip twice.
        let mut ids: Vec<&str> = chosen.iter().map(|c| c.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 48);
    }

    #[test]
    fn the_note_table_has_a_cell_for_every_column_and_means_each_family_once() {
        // Clips 0-2 in domain (piano twice, organ once), clip 3 out of domain; three columns.
        let groups: Vec<(bool, String, String)> = [(true, "piano", "A"), (true, "piano", "B"), (true, "organ", "A"), (false, "piano", "T")]
            .iter()
            .map(|&(d, f, s)| (d, f.to_string(), s.to_string()))
            .collect();
        let columns = ["ours", "candidate", "opus"];
        let scores: Vec<NoteScore> = (0..groups.len() * 4)
            .map(|j| {
                let f1 = (j % 4) as f64 * 0.1 + if j / 4 == 2 { 0.5 } else { 0.0 };
                NoteScore { id: j.to_string(), precision: f1, recall: f1, f1, transcription: Vec::new() }
            })
            .collect();
        let table = note_f1_table(&groups, &scores, &columns);
        let lines: Vec<&str> = table.lines().collect();
        let cells = |l: &str| l.matches('|').count();
        assert!(lines.iter().all(|l| cells(l) == cells(lines[0])), "{table}");
        assert!(lines[0].contains("ours (precision / recall)") && lines[0].contains("| opus |"), "{table}");
        // Family mean of the candidate (k = 2): piano 0.2, organ 0.7 -> 0.45, not the clip mean 0.37.
        let mean = lines.iter().find(|l| l.contains("mean of the 2 families")).unwrap();
        assert!(mean.contains("| 0.45 |"), "{mean}");
        assert!(lines.last().unwrap().contains("out of domain") && lines.len() == 2 + 2 + 2 + 1 + 1 + 1, "{table}");
    }
}
