//! The `cantor` command line as a user runs it: help, clear errors with a non-zero exit for bad
//! arguments, and a render that writes the same WAV twice for the same seed.

mod common;

use std::process::Command;

fn cantor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cantor"))
}

#[test]
fn help_documents_every_render_option() {
    let out = cantor().args(["render", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in ["--seconds", "--style", "--instrument", "--bpm", "--key", "--mode", "--seed", "--time-signature", "--temperature", "--top-k", "--top-p", "--guidance", "--repeat", "--width", "--out"] {
        assert!(help.contains(option), "render --help does not mention {option}");
    }
}

#[test]
fn bad_arguments_get_clear_messages_and_a_failing_exit() {
    let out = cantor().args(["render", "--bpm", "999", "--style", "tango", "--key", "H", "--repeat", "3", "--out", "/nonexistent/x.wav"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--bpm must be between 60 and 180"), "{err}");
    assert!(err.contains("unknown style \"tango\""), "{err}");
    assert!(err.contains("unknown key \"H\""), "{err}");
    assert!(err.contains("--repeat must be between 0 and 1, not 3"), "{err}");
    let out = cantor().args(["render", "--time-signature", "7/5"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a time signature"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cantor().args(["render", "--temperature", "warm"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn render_writes_the_same_wav_for_the_same_seed() {
    let dir = std::env::temp_dir().join(format!("cantor-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (codec, prior) = common::tiny_model_files(true);
    std::fs::write(dir.join("codec.safetensors"), codec).unwrap();
    std::fs::write(dir.join("prior.safetensors"), prior).unwrap();
    let run = |name: &str, seed: &str| {
        let out = dir.join(name);
        let status = cantor()
            .args(["render", "--seconds", "1.5", "--style", "jig=1,reel=0.5", "--bpm", "120", "--time-signature", "6/8", "--key", "G", "--mode", "minor", "--seed", seed])
            .arg("--prior")
            .arg(dir.join("prior.safetensors"))
            .arg("--codec")
            .arg(dir.join("codec.safetensors"))
            .arg("--out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read(out).unwrap()
    };
    let a = run("a.wav", "7");
    assert_eq!(a, run("b.wav", "7"), "the same seed rendered different files");
    assert_ne!(a, run("c.wav", "8"));
    // 1.5 s of 48 kHz stereo 32-bit float, plus the header.
    assert!(a.len() >= 72_000 * 2 * 4, "{} bytes", a.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compose_writes_a_midi_tune_the_same_for_the_same_seed_and_refuses_bad_arguments() {
    let dir = std::env::temp_dir().join(format!("cantor-compose-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("score.safetensors");
    std::fs::write(&model, common::tiny_score_file()).unwrap();
    let run = |name: &str, seed: &str| {
        let out = dir.join(name);
        let status = cantor()
            .args(["compose", "--style", "jig", "--key", "A", "--mode", "minor", "--time-signature", "6/8", "--bars", "4", "--bpm", "116", "--instrument", "winds", "--seed", seed])
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read(out).unwrap()
    };
    let a = run("a.mid", "7");
    assert_eq!(&a[..4], b"MThd");
    assert_eq!(a, run("b.mid", "7"), "the same seed wrote different files");
    assert_ne!(a, run("c.mid", "8"));
    let out = cantor().args(["compose", "--time-signature", "7/8", "--key", "H", "--bars", "0"]).arg("--model").arg(&model).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key \"H\""), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The note-ons of a MIDI file written by `cantor`: (tick, channel, key, velocity), sorted.
fn note_ons(path: &std::path::Path) -> Vec<(u64, u8, u8, u8)> {
    use midly::{MidiMessage, Smf, TrackEventKind};
    let bytes = std::fs::read(path).unwrap();
    let smf = Smf::parse(&bytes).unwrap();
    let mut ons = Vec::new();
    for track in &smf.tracks {
        let mut tick = 0u64;
        for e in track {
            tick += e.delta.as_int() as u64;
            if let TrackEventKind::Midi { channel, message: MidiMessage::NoteOn { key, vel } } = e.kind {
                if vel.as_int() > 0 {
                    ons.push((tick, channel.as_int(), key.as_int(), vel.as_int()));
                }
            }
        }
    }
    ons.sort();
    ons
}

/// `cantor render --midi-out` writes the notes the plugin sent in the bounce, on the WAV's clock:
/// every note-on of the file is a note-on the bounce sent, at the same moment (to the file's
/// 1/480-quarter tick), channel, key and velocity, and none is missing.
#[test]
fn render_midi_out_writes_the_notes_the_bounce_sent() {
    use cantor::plugin::render::{parse_styles, render_with_notes, RenderSettings};
    let dir = std::env::temp_dir().join(format!("cantor-midi-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (codec, performer, score) = common::tiny_hierarchy_files();
    for (name, bytes) in [("codec", &codec), ("performer", &performer), ("score", &score)] {
        std::fs::write(dir.join(format!("{name}.safetensors")), bytes).unwrap();
    }
    let status = cantor()
        .args(["render", "--seconds", "3", "--style", "reel", "--bpm", "100", "--seed", "4", "--guidance", "3"])
        .args(["--prior", "performer.safetensors", "--codec", "codec.safetensors", "--score", "score.safetensors", "--out", "take.wav", "--midi-out", "take.mid"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let from_file = note_ons(&dir.join("take.mid"));
    let mut knobs = cantor::knobs::KnobValues::default();
    (knobs.styles, knobs.tempo, knobs.seed, knobs.guidance) = (parse_styles("reel").unwrap(), 100.0, 4, 3.0);
    let settings = RenderSettings { seconds: 3.0, sample_rate: 48_000, time_signature: (4, 4), knobs };
    let pair = cantor::model::pair::ModelPair::from_bytes(&codec, &performer).unwrap().with_score(&score).unwrap();
    let (_, sent) = render_with_notes(&settings, cantor::plugin::neural_factory(std::sync::Arc::new(pair)), |_| {}).unwrap();
    // 100 quarters a minute: 480 ticks are 0.6 s, 28,800 frames.
    let mut expected: Vec<_> = sent.iter().filter(|n| n.velocity > 0).map(|n| ((n.frame as f64 * 480.0 / 28_800.0).round() as u64, n.channel, n.key, n.velocity)).collect();
    expected.sort();
    assert!(!expected.is_empty());
    assert_eq!(from_file, expected);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `cantor render --midi-in` performs a MIDI file through the plugin's bounce: the notes it
/// plays (its MIDI out) are the file's, at the file's tempo and times, a key out of range moved
/// into it by octaves; the take lasts the file plus 2 s. A file that is not MIDI, or a prior that
/// takes no notes, is refused in plain words.
#[test]
fn render_midi_in_performs_a_midi_file_and_refuses_bad_ones() {
    use cantor::midi::{MidiNote, MidiPart};
    let dir = std::env::temp_dir().join(format!("cantor-midi-in-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (codec, performer, _) = common::tiny_hierarchy_files();
    for (name, bytes) in [("codec", &codec), ("performer", &performer)] {
        std::fs::write(dir.join(format!("{name}.safetensors")), bytes).unwrap();
    }
    let note = |start_q, dur_q, key| MidiNote { start_q, dur_q, key, velocity: 90 };
    let melody = MidiPart { name: "melody".into(), program: 0, notes: vec![note(0.0, 1.0, 62), note(1.0, 1.0, 66), note(2.0, 2.0, 69), note(2.0, 2.0, 10)] };
    // 150 quarters a minute in 3/4: the last note ends at 1.6 s.
    std::fs::write(dir.join("melody.mid"), cantor::midi::to_bytes(&[melody], 150.0, (3, 4)).unwrap()).unwrap();
    let render = |input: &str, prior: &str| {
        cantor()
            .args(["render", "--midi-in", input, "--prior", prior, "--codec", "codec.safetensors", "--out", "take.wav", "--midi-out", "take.mid"])
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let out = render("melody.mid", "performer.safetensors");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(hound::WavReader::open(dir.join("take.wav")).unwrap().duration(), (3.6 * 48_000.0) as u32);
    let ons: Vec<_> = note_ons(&dir.join("take.mid")).into_iter().map(|(tick, _, key, _)| (tick, key)).collect();
    // MIDI out follows the audio, which the resampler to 48 kHz delays by 6.7 ms (8 ticks).
    let delay = ons[0].0;
    assert!(delay <= 10, "{ons:?}");
    let low = cantor::model::prior::notes::fold_key(10);
    let mut expected = vec![(delay, 62), (480 + delay, 66), (960 + delay, 69), (960 + delay, low)];
    expected.sort();
    assert_eq!(ons, expected);
    std::fs::write(dir.join("noise.mid"), b"MThd\x00\x00\x00\x06 not really").unwrap();
    let out = render("noise.mid", "performer.safetensors");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a Standard MIDI file"));
    let (plain_codec, plain) = cantor::model::pair::random_model_files(&cantor::model::codec::CodecConfig::tiny(), &cantor::model::prior::PriorConfig::tiny(), None, None).unwrap();
    std::fs::write(dir.join("codec.safetensors"), plain_codec).unwrap();
    std::fs::write(dir.join("plain.safetensors"), plain).unwrap();
    let out = render("melody.mid", "plain.safetensors");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Only a performer"), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `cantor render --continue` plays the file and then continues it: Cantor's notes (its MIDI
/// out) start on the first bar line a beat or more after the file's last note, none before; the
/// take lasts that bar line, --bars bars and 1.5 s; the same seed writes the same continuation.
#[test]
fn render_continue_answers_a_midi_file_from_the_next_bar_line() {
    use cantor::midi::{MidiNote, MidiPart};
    let dir = std::env::temp_dir().join(format!("cantor-continue-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (codec, performer, score) = common::tiny_hierarchy_files();
    for (name, bytes) in [("codec", &codec), ("performer", &performer), ("score", &score)] {
        std::fs::write(dir.join(format!("{name}.safetensors")), bytes).unwrap();
    }
    let note = |start_q, dur_q, key| MidiNote { start_q, dur_q, key, velocity: 90 };
    // 120 quarters a minute in 4/4: the phrase ends at beat 3.5, so the answer starts at beat 8
    // (4 s) and 2 bars last 4 s more.
    let phrase = MidiPart { name: "phrase".into(), program: 0, notes: vec![note(0.0, 1.0, 67), note(1.0, 1.0, 71), note(2.0, 1.5, 74)] };
    std::fs::write(dir.join("phrase.mid"), cantor::midi::to_bytes(&[phrase], 120.0, (4, 4)).unwrap()).unwrap();
    let render = |out: &str| {
        let o = cantor()
            .args(["render", "--continue", "phrase.mid", "--bars", "2", "--prior", "performer.safetensors", "--codec", "codec.safetensors", "--score", "score.safetensors"])
            .args(["--out", &format!("{out}.wav"), "--midi-out", &format!("{out}.mid")])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        note_ons(&dir.join(format!("{out}.mid")))
    };
    let ons = render("a");
    assert_eq!(hound::WavReader::open(dir.join("a.wav")).unwrap().duration(), (9.5 * 48_000.0) as u32);
    // Beat 8 is tick 3,840; MIDI out follows the audio, a few ticks later at 48 kHz.
    assert!(!ons.is_empty() && ons.iter().all(|&(tick, ..)| tick >= 3_840), "{ons:?}");
    assert_eq!(ons, render("b"));
    let _ = std::fs::remove_dir_all(&dir);
}
