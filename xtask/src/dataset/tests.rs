//! Corpus tests. They read the committed MIDI corpus and need FluidR3_GM.sf2 installed
//! (the README's test command installs it).

use super::*;
use sha2::{Digest, Sha256};

fn quick() -> Dataset {
    Dataset::build(&DatasetConfig::quick()).expect("corpus index readable")
}

fn audio_hash(samples: &[f32]) -> String {
    let mut h = Sha256::new();
    for s in samples {
        h.update(s.to_le_bytes());
    }
    format!("{:x}", h.finalize())
}

#[test]
fn quick_build_is_deterministic() {
    let a = quick();
    let b = quick();
    assert!(a.clips.len() >= 8, "quick corpus has {} clips", a.clips.len());
    assert_eq!(a.clips, b.clips);
    let seconds: f64 = a.clips.iter().map(|c| c.seconds).sum();
    assert!((30.0..200.0).contains(&seconds), "quick corpus is {seconds} s");
    // Two independent renderers give the same bytes.
    let mut s1 = ClipSource::new(24_000);
    let mut s2 = ClipSource::new(24_000);
    for clip in a.clips.iter().take(4) {
        let x = s1.render(clip).unwrap();
        let y = s2.render(clip).unwrap();
        assert_eq!(x.len(), (clip.seconds * 24_000.0).round() as usize);
        assert!(x.iter().map(|v| v.abs()).fold(0.0, f32::max) > 0.05, "{} is silent", clip.id);
        assert_eq!(audio_hash(&x), audio_hash(&y), "{}", clip.id);
    }
    // A different seed changes the corpus.
    let other = Dataset::build(&DatasetConfig { seed: 1, ..DatasetConfig::quick() }).unwrap();
    assert_ne!(a.clips, other.clips);
}

fn estimate_key(hist: &[f64; 12]) -> (u8, &'static str) {
    use crate::eval::music::{profile_correlation as corr_of, KRUMHANSL_MAJOR as MAJOR, KRUMHANSL_MINOR as MINOR};
    let corr = |profile: &[f64; 12], tonic: usize| corr_of(hist, profile, tonic);
    let mut best = (f64::MIN, 0u8, "major");
    for t in 0..12 {
        for (profile, mode) in [(&MAJOR, "major"), (&MINOR, "minor")] {
            let c = corr(profile, t);
            if c > best.0 {
                best = (c, t as u8, mode);
            }
        }
    }
    (best.1, best.2)
}

#[test]
fn transposed_key_labels_match_the_transposed_notes() {
    let cfg = DatasetConfig { variants: 2, max_pieces_per_collection: 25, ..DatasetConfig::quick() };
    let ds = Dataset::build(&cfg).unwrap();
    let pieces: HashMap<String, index::PieceMeta> =
        index::read_index(&corpus_dir().join("index.jsonl")).unwrap().into_iter().map(|p| (p.id.clone(), p)).collect();
    let mut source = ClipSource::new(24_000);
    let (mut agree, mut total) = (0, 0);
    let mut transposes = std::collections::BTreeSet::new();
    for clip in ds.clips.iter().filter(|c| c.id.ends_with("c0")) {
        let piece = &pieces[&clip.piece];
        // The label is the piece's key moved by the transposition...
        assert_eq!(clip.key_pitch_class as i32, (piece.key_pitch_class as i32 + clip.transpose as i32).rem_euclid(12));
        transposes.insert(clip.transpose);
        // ...and the transposed notes themselves sound in that key.
        let mut hist = [0.0; 12];
        for n in source.notes(clip).unwrap().iter() {
            hist[((n.key as i32 + clip.transpose as i32).rem_euclid(12)) as usize] += n.dur_q;
        }
        let (tonic, mode) = estimate_key(&hist);
        total += 1;
        if tonic == clip.key_pitch_class && mode == clip.key_mode {
            agree += 1;
        }
    }
    assert!(total >= 20, "{total}");
    assert!(transposes.len() >= 6, "transpositions seen: {transposes:?}");
    assert!(agree as f64 >= 0.7 * total as f64, "key estimate agrees on {agree}/{total}");
}

/// Onset times (seconds) of rendered audio: peaks of the rise in high-passed log-energy (5 ms frames) above 30%
/// of the largest, at least 60 ms apart.
fn onsets(x: &[f32], sr: f64) -> Vec<f64> {
    let hop = (sr * 0.005) as usize;
    // Energy of the first difference: attacks are broadband, sustained notes mostly low.
    let diff: Vec<f64> = x.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
    let env: Vec<f64> = diff.chunks(hop).map(|c| (c.iter().map(|v| v * v).sum::<f64>() / c.len() as f64 + 1e-12).ln()).collect();
    // Rise over 15 ms, so an attack stands out from the ripple of decaying, chorused notes.
    let flux: Vec<f64> = env.windows(4).map(|w| (w[3] - w[0]).max(0.0)).collect();
    let max = flux.iter().cloned().fold(0.0, f64::max);
    let mut out: Vec<f64> = Vec::new();
    for i in 1..flux.len() - 1 {
        if flux[i] > 0.3 * max && flux[i] >= flux[i - 1] && flux[i] >= flux[i + 1] {
            let t = (i + 2) as f64 * 0.005;
            if out.last().is_none_or(|&l| t - l > 0.06) {
                out.push(t);
            }
        }
    }
    out
}

/// Fraction of onsets within 25 ms of the sixteenth-note grid a tempo of `bpm` predicts
/// (best latency 0-40 ms, for the synthesiser's attack).
fn grid_fit(onsets: &[f64], clip: &ClipRecipe, bpm: f64) -> f64 {
    let qps = bpm * clip.beat_quarters / 60.0;
    let step = 0.25 / qps;
    let phase = -(clip.start_quarters / 0.25).fract() * step;
    (0..=8)
        .map(|l| {
            let lat = l as f64 * 0.005;
            let hits = onsets
                .iter()
                .filter(|&&t| {
                    let r = (t - lat - phase).rem_euclid(step);
                    r.min(step - r) < 0.025
                })
                .count();
            hits as f64 / onsets.len().max(1) as f64
        })
        .fold(0.0, f64::max)
}

#[test]
fn tempo_labels_match_the_onset_spacing_of_the_audio() {
    let ds = Dataset::build(&DatasetConfig { clip_seconds: 12.0, ..DatasetConfig::quick() }).unwrap();
    let mut source = ClipSource::new(24_000);
    let mut checked = 0;
    for clip in ds.clips.iter().filter(|c| c.seconds >= 10.0 && c.style == "chorale").take(2).chain(
        ds.clips.iter().filter(|c| c.seconds >= 10.0 && c.style != "chorale").take(2),
    ) {
        // Piano, so onsets are sharp; the tempo label is what is under test.
        let clip = ClipRecipe { programs: vec![0; clip.programs.len()], accompaniment: false, ..clip.clone() };
        let x = source.render(&clip).unwrap();
        let on = onsets(&x, 24_000.0);
        assert!(on.len() >= 10, "{}: only {} onsets", clip.id, on.len());
        let right = grid_fit(&on, &clip, clip.bpm);
        let wrong = [0.9, 0.95, 1.05, 1.1].map(|m| grid_fit(&on, &clip, clip.bpm * m));
        assert!(right >= 0.8, "{}: only {:.0}% of onsets on the {} bpm grid", clip.id, right * 100.0, clip.bpm);
        for w in wrong {
            assert!(right > w + 0.15, "{}: label grid fits {right:.2}, a 5-10% different tempo fits {w:.2}", clip.id);
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} clips checked");
}

#[test]
fn splits_are_disjoint_by_piece_and_tune_and_all_present() {
    let ds = Dataset::build(&DatasetConfig::default()).unwrap();
    let pieces: HashMap<String, index::PieceMeta> =
        index::read_index(&corpus_dir().join("index.jsonl")).unwrap().into_iter().map(|p| (p.id.clone(), p)).collect();
    let mut by_piece: HashMap<&str, &str> = HashMap::new();
    let mut by_tune: HashMap<String, &str> = HashMap::new();
    for c in &ds.clips {
        let s = by_piece.entry(c.piece.as_str()).or_insert(c.split.as_str());
        assert_eq!(*s, c.split, "piece {} is in two splits", c.piece);
        let s = by_tune.entry(pieces[&c.piece].split_key()).or_insert(c.split.as_str());
        assert_eq!(*s, c.split, "tune of {} is in two splits", c.piece);
    }
    for split in ["train", "valid", "test"] {
        assert!(ds.split(split).count() > 0, "no {split} clips");
    }
    let hours: f64 = ds.clips.iter().map(|c| c.seconds).sum::<f64>() / 3600.0;
    assert!(hours >= 40.0, "the default corpus has {hours:.1} h, the target is 40 h");
}

/// The performer's note features (`render::frame_notes`, painted by `notes::paint`) put each
/// onset in the codec frame where the rendered audio's attack is: spectral flux on the codec's
/// own grid (hop 320 at 24 kHz, 75 frames/s), averaged over the frames the features mark as
/// onsets, peaks at a lag of 0 or 1 frame (an attack that starts late in a frame rises into the
/// next) and is well above the clip's average there, and far from it the peak is gone.
#[test]
fn note_feature_onsets_coincide_with_the_rendered_attacks() {
    use cantor::model::prior::notes::{onsets, paint, NOTE_DIM};
    use candle_core::{Device, Tensor};
    let ds = quick();
    let mut source = ClipSource::new(24_000);
    let hop = 320;
    let stft = cantor::model::spectral::Stft::new(hop, hop, &Device::Cpu).unwrap();
    let lags: Vec<i64> = (-4..=6).collect();
    let (mut at_lag, mut counted) = (vec![0.0; lags.len()], vec![0usize; lags.len()]);
    let mut clips = 0;
    for clip in ds.clips.iter().take(10) {
        let audio = source.render(clip).unwrap();
        let frames = audio.len() / hop;
        let mag = stft.magnitude(&Tensor::from_slice(&audio[..frames * hop], (1, frames * hop), &Device::Cpu).unwrap()).unwrap();
        let mag = mag.squeeze(0).unwrap().t().unwrap().to_vec2::<f32>().unwrap(); // [frames][bins]
        let flux: Vec<f64> = (0..mag.len())
            .map(|j| if j == 0 { 0.0 } else { mag[j].iter().zip(&mag[j - 1]).map(|(a, b)| ((a + 1e-4).ln() - (b + 1e-4).ln()).max(0.0) as f64).sum() })
            .collect();
        let notes = source.notes(clip).unwrap();
        let played = render::frame_notes(clip, &notes, 0.0, clip.seconds, 24_000.0 / hop as f64);
        let mut features = vec![0.0; frames * NOTE_DIM];
        paint(&played, 0, frames, &mut features);
        let mut onset_frames: Vec<usize> = onsets(&features).into_iter().map(|(f, _)| f).collect();
        onset_frames.dedup();
        if onset_frames.is_empty() {
            continue;
        }
        clips += 1;
        let clip_mean = flux.iter().sum::<f64>() / flux.len() as f64;
        for (i, lag) in lags.iter().enumerate() {
            let vals: Vec<f64> = onset_frames.iter().filter_map(|&f| flux.get((f as i64 + lag).max(0) as usize).copied()).collect();
            at_lag[i] += vals.iter().sum::<f64>() / vals.len().max(1) as f64 / clip_mean.max(1e-9);
            counted[i] += 1;
        }
    }
    assert!(clips >= 6, "only {clips} clips with notes");
    let ratio: Vec<f64> = at_lag.iter().zip(&counted).map(|(s, n)| s / *n as f64).collect();
    let best = (0..lags.len()).max_by(|&a, &b| ratio[a].total_cmp(&ratio[b])).unwrap();
    let report = lags.iter().zip(&ratio).map(|(l, r)| format!("{l:+}: {r:.2}")).collect::<Vec<_>>().join(", ");
    println!("flux at the feature onsets / clip mean, by lag: {report}");
    assert!(lags[best] == 0 || lags[best] == 1, "flux at the feature onsets, relative to the clip's mean, by lag in frames: {report}");
    assert!(ratio[best] > 2.0, "the attacks barely stand out: {report}");
    for far in [-4, 6] {
        let r = ratio[lags.iter().position(|&l| l == far).unwrap()];
        assert!(r < 0.6 * ratio[best], "lag {far} scores as well as the onsets themselves: {report}");
    }
}
