//! The plugin's process() driven directly, as a host would: real-time safety (no allocation on
//! the audio thread, counted by a global allocator), silence without a model, gating, offline
//! determinism, and bad host behaviour; MIDI out in real time.

mod common;

use cantor::engine::test_sources::CountingSource;
use cantor::plugin::{Cantor, DirectHost, SourceFactory, NO_MODEL};
use nice_plug::midi::{Channel, Key, VoiceID};
use nice_plug::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

/// Counts allocations made on threads that opted in (the "audio thread" of a test).
struct CountingAlloc;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                COUNT.with(|n| n.set(n.get() + 1));
            }
        });
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                COUNT.with(|n| n.set(n.get() + 1));
            }
        });
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn counting_factory() -> SourceFactory {
    Arc::new(|| Ok(Box::new(CountingSource::new(24_000, 240)) as Box<dyn cantor::engine::FrameSource>))
}

/// A host around a plugin with the counting source, transport playing from 0 at 120 BPM.
fn host_with(factory: Option<SourceFactory>, rate: f32, max_block: usize, mode: ProcessMode) -> DirectHost {
    let mut host = DirectHost::new(Cantor::with_source_factory(factory));
    assert!(host.activate(rate, max_block, mode));
    play(&mut host);
    host
}

fn play(host: &mut DirectHost) {
    let t = host.transport_mut();
    t.playing = true;
    t.tempo = Some(120.0);
    t.pos_samples = Some(0);
}

/// Held by a test while it plays a take paced at the audio clock: two such takes at once on the
/// two cores of CI make a generator fall behind (an underrun) that alone it never does.
static REAL_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A factory of the tiny hierarchy (score prior, performer, codec), one for each take.
fn tiny_hierarchy() -> impl Fn() -> SourceFactory {
    use cantor::model::pair::ModelPair;
    let (codec, performer, score) = common::tiny_hierarchy_files();
    move || cantor::plugin::neural_factory(Arc::new(ModelPair::from_bytes(&codec, &performer).unwrap().with_score(&score).unwrap()))
}

/// The player's key `key` struck (velocity 0.8) or released on MIDI channel 1, `timing` frames
/// into the block.
fn note_on(timing: u32, key: u8) -> PluginNoteEvent<Cantor> {
    NoteEvent::NoteOn { timing, voice_id: VoiceID::Wildcard, channel: Channel::Number(0), key: Key::Number(key), velocity: 0.8 }
}

fn note_off(timing: u32, key: u8) -> PluginNoteEvent<Cantor> {
    NoteEvent::NoteOff { timing, voice_id: VoiceID::Wildcard, channel: Channel::Number(0), key: Key::Number(key), velocity: 0.0 }
}

/// Held while a test's offline work runs the tiny hierarchy flat out, so that it never shares
/// the two cores with a paced take (which then underruns: seen in CI, three takes in a row).
fn alone() -> std::sync::MutexGuard<'static, ()> {
    REAL_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A real-time take (returning its underrun count last), alone and played again, up to three
/// times, while another process on this shared machine makes it underrun: an underrun fades the
/// audio, so a take with one cannot be compared with a bounce, and says nothing about the code.
fn real_time_take<T>(mut take: impl FnMut() -> (T, u64)) -> (T, u64) {
    let _alone = alone();
    let mut result = take();
    for _ in 1..3 {
        if result.1 == 0 {
            break;
        }
        println!("a real-time take underran {} times; playing it again", result.1);
        result = take();
    }
    result
}

/// Process one block, counting the allocations made inside the plugin's process() alone;
/// returns the count and the output.
fn process_counted(host: &mut DirectHost, n: usize) -> (u64, [&[f32]; 2]) {
    host.process_with(n, |process| {
        COUNT.with(|c| c.set(0));
        COUNTING.with(|c| c.set(true));
        process();
        COUNTING.with(|c| c.set(false));
        COUNT.with(|c| c.get())
    })
}

/// Process one block, counting the allocations made inside the plugin's process() alone.
fn process_counting(host: &mut DirectHost, n: usize) -> u64 {
    process_counted(host, n).0
}

#[test]
fn process_never_allocates_for_any_block_size_or_sample_rate() {
    for rate in [22_050.0, 44_100.0, 48_000.0, 96_000.0, 192_000.0] {
        let mut host = host_with(Some(counting_factory()), rate, 8192, ProcessMode::Realtime);
        let sizes = [1usize, 7, 64, 512, 4096, 8192, 3, 100, 2048, 1, 333];
        for (i, &n) in sizes.iter().cycle().take(60).enumerate() {
            host.transport_mut().playing = i % 20 != 19; // stop and restart the transport now and then
            // Automation and MIDI arrive with the blocks, as in a session.
            host.set_param("width", (i % 3) as f32 * 0.7).unwrap();
            host.set_param("gain", 0.5 + (i % 2) as f32 * 0.3).unwrap();
            if i % 7 == 0 {
                host.push_event(NoteEvent::NoteOn { timing: 0, voice_id: VoiceID::Wildcard, channel: Channel::Number(0), key: Key::Number(60), velocity: 0.8 });
            }
            let allocs = process_counting(&mut host, n);
            assert_eq!(allocs, 0, "{n}-frame block at {rate} Hz allocated {allocs} times");
            if i % 10 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5)); // let the generator run
            }
        }
        assert!(host.process(64)[0].iter().all(|v| v.is_finite()));
    }
}

#[test]
fn blocks_larger_than_8192_frames_play_without_allocating() {
    let mut host = host_with(Some(counting_factory()), 48_000.0, 20_000, ProcessMode::Offline);
    for n in [20_000, 9_000, 1] {
        assert_eq!(process_counting(&mut host, n), 0, "{n}-frame block allocated");
    }
    assert!(host.process(20_000)[0][..].iter().any(|&v| v != 0.0), "a 20,000-frame block stayed silent");
}

/// The prior counts beats as the corpus does: a host's 6/8 at 174 quarter notes a minute is a
/// jig at 116 in two, cut time counts halves; a signature no score writes changes nothing.
#[test]
fn the_host_time_signature_sets_the_beat_the_prior_counts() {
    let mut host = host_with(Some(counting_factory()), 48_000.0, 512, ProcessMode::Realtime);
    let mut at = |tempo: f64, n: i32, d: i32| {
        let t = host.transport_mut();
        (t.tempo, t.time_sig_numerator, t.time_sig_denominator) = (Some(tempo), Some(n), Some(d));
        host.process(64);
        let shared = host.plugin.shared();
        shared.time()
    };
    assert_eq!(at(120.0, 4, 4), (120.0, 4));
    assert_eq!(at(174.0, 6, 8), (116.0, 2));
    assert_eq!(at(232.0, 2, 2), (116.0, 2));
    assert_eq!(at(90.0, 3, 4), (90.0, 3));
    assert_eq!(at(180.0, 9, 8), (120.0, 3));
    // Nonsense keeps the last good signature (9/8).
    assert_eq!(at(174.0, 0, 8), (116.0, 3));
    assert_eq!(at(174.0, 6, 7), (116.0, 3));
}

#[test]
fn without_a_model_the_plugin_is_silent_and_says_why() {
    let mut host = DirectHost::new(Cantor::with_source_factory(None));
    play(&mut host);
    // Processing before activation is tolerated.
    assert!(host.process(256).iter().all(|c| c.iter().all(|&v| v == 0.0)));
    assert!(host.activate(48_000.0, 512, ProcessMode::Realtime));
    play(&mut host);
    assert!(host.process(256).iter().all(|c| c.iter().all(|&v| v == 0.0)));
    assert_eq!(host.plugin.shared().error().as_deref(), Some(NO_MODEL));
    // Zero-length blocks, absurd rates and absurd parameter values do not panic.
    host.process(0);
    assert!(host.set_param("gain", f32::NAN).is_err());
    assert!(host.set_param("no_such_parameter", 1.0).is_err());
    host.set_param("tempo", 1e30).unwrap();
    host.activate(f32::NAN, 512, ProcessMode::Realtime);
    host.process(64);
    assert!(host.plugin.shared().error().unwrap().contains("sample rate"));
}

fn offline_render(blocks: usize) -> Vec<f32> {
    let mut host = host_with(Some(counting_factory()), 44_100.0, 1024, ProcessMode::Offline);
    host.set_param("width", 1.3).unwrap();
    let mut all = Vec::new();
    for i in 0..blocks {
        let n = [1024, 17, 512, 999][i % 4];
        // Automation every block (the counting source ignores the knob; the engine still reads it).
        host.set_param("temperature", (i % 5) as f32 * 0.4).unwrap();
        let [l, r] = host.process(n);
        all.extend(l.iter().zip(r).flat_map(|(a, b)| [*a, *b]));
    }
    all
}

#[test]
fn offline_bounces_are_bit_identical_and_gapless() {
    let a = offline_render(40);
    let b = offline_render(40);
    assert!(a == b, "two offline bounces differ");
    // The counting source resampled to 44.1 kHz rises steadily once faded in: the mid channel
    // (left + right, where the width's side cancels) has no gap and no repeat anywhere.
    let mid: Vec<f32> = a.chunks(2).map(|f| f[0] + f[1]).collect();
    assert!(mid[2_000..].windows(2).all(|w| w[1] > w[0]), "the bounce has a gap or a repeat");
}

#[test]
fn while_note_held_mode_gates_the_output() {
    let mut host = host_with(Some(counting_factory()), 48_000.0, 512, ProcessMode::Offline);
    host.set_param("run_mode", 2.0).unwrap(); // RunMode::NoteHeld
    assert!(host.process(512)[0].iter().all(|&v| v == 0.0), "sound without a note");
    host.push_event(NoteEvent::NoteOn { timing: 0, voice_id: VoiceID::Wildcard, channel: Channel::Number(0), key: Key::Number(62), velocity: 1.0 });
    for _ in 0..3 {
        host.process(512);
    }
    assert!(host.process(512)[0].iter().any(|&v| v != 0.0), "silence while a note is held");
    host.push_event(NoteEvent::NoteOff { timing: 0, voice_id: VoiceID::Wildcard, channel: Channel::Number(0), key: Key::Number(62), velocity: 0.0 });
    host.process(512);
    assert!(host.process(512)[0].iter().all(|&v| v == 0.0), "sound after the note was released");
}

#[test]
fn the_allocation_counter_sees_allocations() {
    // Guards the no-allocation test above against a counter that counts nothing.
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    let v = std::hint::black_box(vec![1u8; 100]);
    COUNTING.with(|c| c.set(false));
    drop(v);
    assert!(COUNT.with(|c| c.get()) >= 1);
}

fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Threads:")).and_then(|l| l[8..].trim().parse().ok()))
        .unwrap_or(0)
}

#[test]
fn a_hundred_activate_cycles_and_rate_changes_leak_no_thread() {
    let before = thread_count();
    let mut host = DirectHost::new(Cantor::with_source_factory(Some(counting_factory())));
    for i in 0..100 {
        // The host changes the sample rate mid-session now and then, and sometimes
        // reactivates without deactivating first.
        let rate = [48_000.0, 44_100.0, 96_000.0][i % 3];
        assert!(host.activate(rate, 512, ProcessMode::Realtime));
        play(&mut host);
        for _ in 0..3 {
            assert!(host.process(512)[0].iter().all(|v| v.is_finite()));
        }
        if i % 4 != 0 {
            host.deactivate();
        }
    }
    host.deactivate();
    // Other tests run alongside in this process; allow for theirs, not for 100 leaked generators.
    assert!(thread_count() < before + 12, "threads before {before}, after {}", thread_count());
    // Processing after deactivation is tolerated and silent.
    assert!(host.process(512)[0].iter().all(|&v| v == 0.0));
}

#[test]
fn capture_writes_a_wav_equal_to_what_was_played() {
    let dir = std::env::temp_dir().join(format!("cantor-capture-{}", std::process::id()));
    let mut host = host_with(Some(counting_factory()), 48_000.0, 512, ProcessMode::Offline);
    // Capture copies inside process(): still no allocation on the audio thread.
    for _ in 0..20 {
        assert_eq!(process_counting(&mut host, 512), 0);
    }
    let mut played = Vec::new();
    for _ in 0..100 {
        let [l, r] = host.process(480);
        played.extend(l.iter().zip(r).flat_map(|(a, b)| [*a, *b]));
    }
    let capture = host.plugin.shared().capture().clone();
    let save = |request: cantor::engine::capture::CaptureRequest| -> Vec<f32> {
        let before = capture.answered();
        capture.request(request).unwrap();
        let t0 = std::time::Instant::now();
        while capture.answered() == before && t0.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let path = capture.last_result().expect("a capture result").expect("the capture was written");
        let mut reader = hound::WavReader::open(&path).unwrap();
        let spec = reader.spec();
        assert_eq!((spec.channels, spec.sample_rate, spec.sample_format), (2, 48_000, hound::SampleFormat::Float));
        reader.samples::<f32>().map(|s| s.unwrap()).collect()
    };
    assert_eq!(capture.dropped_blocks(), 0, "the capture ring overflowed");
    let samples = save(cantor::engine::capture::CaptureRequest::Save { seconds: 0.5, dir: dir.clone() });
    assert_eq!(samples.len(), 48_000, "0.5 s of stereo");
    assert!(samples == played[played.len() - samples.len()..], "the capture differs from the output");
    assert!(samples.iter().any(|&v| v != 0.0));
    // "Since play started": every block since the transport started (20 x 512 + 100 x 480 frames).
    let since = save(cantor::engine::capture::CaptureRequest::SinceStart { dir: dir.clone() });
    assert_eq!(since.len(), 2 * (20 * 512 + 100 * 480), "since-start capture length");
    assert!(since[since.len() - played.len()..] == played[..], "the since-start capture differs from the output");
    // The same thread analysed the output for the editor's spectrogram.
    let spectrogram = capture.spectrogram().unwrap();
    assert!(spectrogram.added > 50, "{} spectrogram columns for 1.2 s", spectrogram.added);
    assert!(spectrogram.columns.back().unwrap().iter().any(|&v| v > 0), "the spectrogram is dark while audio plays");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The hierarchy (tiny models) in real time at 24 kHz (no resampler): sending its notes costs
/// the audio thread no allocation, and the notes come out on the same frames of the audio as in
/// an offline bounce of the same seed (the real-time take starts later, after the generator's
/// first frames: both audio and notes are shifted by that start).
#[test]
fn midi_out_in_real_time_allocates_nothing_and_keeps_the_bounce_timing() {
    let factory = tiny_hierarchy();
    let take = |mode: ProcessMode| {
        let mut host = DirectHost::new(Cantor::with_source_factory(Some(factory())));
        assert!(host.activate(24_000.0, 480, mode));
        host.set_param("seed", 9.0).unwrap();
        host.set_param("guidance", 3.0).unwrap();
        // A second ahead: this machine's other work must not make the take underrun.
        host.set_param("ahead", 1.0).unwrap();
        play(&mut host);
        host.transport_mut().tempo = Some(100.0);
        let (mut audio, mut sent, mut ons) = (Vec::new(), Vec::new(), Vec::new());
        let started = std::time::Instant::now();
        for i in 0..200u32 {
            if mode == ProcessMode::Realtime {
                // Paced as a host's audio clock: a 480-frame block every 20 ms.
                let due = std::time::Duration::from_millis(20) * i;
                std::thread::sleep(due.saturating_sub(started.elapsed()));
            }
            let (allocs, out) = process_counted(&mut host, 480);
            assert_eq!(allocs, 0, "a block allocated {allocs} times in {mode:?} mode");
            audio.extend_from_slice(out[0]);
            host.drain_sent_events(&mut sent);
            ons.extend(sent.drain(..).filter_map(|(frame, e)| match e {
                NoteEvent::NoteOn { key, .. } => Some((frame, key.number().unwrap())),
                _ => None,
            }));
        }
        (audio, ons, host.plugin.shared().underruns())
    };
    let (bounce, bounce_ons, _) = {
        let _alone = alone();
        take(ProcessMode::Offline)
    };
    let ((live, live_ons), underruns) = real_time_take(|| {
        let (audio, ons, underruns) = take(ProcessMode::Realtime);
        ((audio, ons), underruns)
    });
    assert_eq!(underruns, 0, "the tiny generator fell behind real time");
    assert!(!bounce_ons.is_empty());
    let start = |a: &[f32]| a.iter().position(|v| *v != 0.0).unwrap() as u64;
    let shift = start(&live) - start(&bounce);
    let end = 200 * 480 - shift;
    let expected: Vec<_> = bounce_ons.iter().filter(|(f, _)| *f < end).map(|&(f, k)| (f + shift, k)).collect();
    assert_eq!(live_ons, expected);
}

/// The editor's piano roll is told, without an allocation on the audio thread: Cantor's notes
/// at the frames MIDI out sends them, the player's at their arrival (whatever the Source knob),
/// and the take's bar lines a bar apart at the tempo, from the bar the play position falls in.
#[test]
fn the_piano_roll_is_told_the_notes_and_bar_lines_heard() {
    let _alone = alone();
    use cantor::engine::{Shown, ShownEvent};
    let factory = tiny_hierarchy()();
    let mut host = DirectHost::new(Cantor::with_source_factory(Some(factory)));
    assert!(host.activate(24_000.0, 480, ProcessMode::Offline));
    host.set_param("seed", 9.0).unwrap();
    host.set_param("guidance", 3.0).unwrap();
    play(&mut host);
    // 100 bpm in 4/4 at 24 kHz: a bar is 57,600 samples. Playing from 30,000 starts mid-bar.
    host.transport_mut().tempo = Some(100.0);
    host.transport_mut().pos_samples = Some(30_000);
    let (mut sent, mut shown) = (Vec::new(), Vec::new());
    for i in 0..200u64 {
        if i == 10 {
            host.push_event(NoteEvent::NoteOn { timing: 100, voice_id: VoiceID::Wildcard, channel: Channel::Number(0), key: Key::Number(67), velocity: 0.5 });
        }
        if i == 20 {
            host.push_event(NoteEvent::NoteOff { timing: 0, voice_id: VoiceID::Wildcard, channel: Channel::Number(0), key: Key::Number(67), velocity: 0.0 });
        }
        let (allocs, _) = process_counted(&mut host, 480);
        assert_eq!(allocs, 0, "block {i} allocated");
        host.drain_sent_events(&mut sent);
        host.plugin.shared().drain_shown(&mut shown).unwrap();
    }
    let ev = |at: u64, what: Shown| ShownEvent { at, what };
    let player: Vec<_> = shown.iter().copied().filter(|e| matches!(e.what, Shown::Note { player: true, .. })).collect();
    assert_eq!(player, [ev(4900, Shown::Note { key: 67, velocity: 64, channel: 0, player: true }), ev(9600, Shown::Note { key: 67, velocity: 0, channel: 0, player: true })]);
    let bars: Vec<_> = shown.iter().copied().filter(|e| matches!(e.what, Shown::Bar { .. })).collect();
    assert_eq!(bars, [ev(0, Shown::Bar { index: 0, line: false }), ev(27_600, Shown::Bar { index: 1, line: true }), ev(85_200, Shown::Bar { index: 2, line: true })]);
    let cantor: Vec<_> = shown.iter().filter_map(|e| match e.what {
        Shown::Note { key, velocity, channel, player: false } => Some((e.at, channel, key, velocity > 0)),
        _ => None,
    })
    .collect();
    let midi_out: Vec<_> = sent.iter().filter_map(|(at, e)| match e {
        NoteEvent::NoteOn { channel, key, .. } => Some((*at, channel.number().unwrap(), key.number().unwrap(), true)),
        NoteEvent::NoteOff { channel, key, .. } => Some((*at, channel.number().unwrap(), key.number().unwrap(), false)),
        _ => None,
    })
    .collect();
    assert!(cantor.iter().any(|n| n.3), "the bounce played no note");
    assert_eq!(cantor, midi_out);
}

/// Source "play my notes": the player's notes reach the generator without an allocation on the
/// audio thread and are heard the latency the plugin reports after they arrive, the same in
/// real time as in a bounce (shifted by the real-time take's later start), silent before them
/// and again after their release; a flood of notes, keys out of range, a wildcard note-off and
/// all-notes-off neither allocate nor stop it.
#[test]
fn the_players_notes_play_at_the_reported_latency_without_allocating() {
    let factory = tiny_hierarchy();
    let take = |mode: ProcessMode, flood: bool| {
        let mut host = DirectHost::new(Cantor::with_source_factory(Some(factory())));
        assert!(host.activate(24_000.0, 480, mode));
        host.set_param("seed", 9.0).unwrap();
        host.set_param("guidance", 3.0).unwrap();
        host.set_param("ahead", 1.0).unwrap();
        host.set_param("source", 1.0).unwrap();
        // Mono: the stereo widener's decorrelation would ring on after the source falls silent.
        host.set_param("width", 0.0).unwrap();
        play(&mut host);
        let mut audio = Vec::new();
        let started = std::time::Instant::now();
        for i in 0..240u32 {
            if mode == ProcessMode::Realtime {
                let due = std::time::Duration::from_millis(20) * i;
                std::thread::sleep(due.saturating_sub(started.elapsed()));
            }
            match i {
                10 => host.push_event(note_on(100, 60)),
                14 => host.push_event(note_off(200, 60)),
                16 if flood => {
                    for k in 0..3000u32 {
                        host.push_event(note_on(k % 480, (k % 128) as u8));
                        host.push_event(note_off(k % 480, (k % 128) as u8));
                    }
                    host.push_event(NoteEvent::MidiCC { timing: 3, channel: 0, cc: 64, value: 1.0 });
                    host.push_event(NoteEvent::MidiPitchBend { timing: 4, channel: 0, value: 0.9 });
                }
                20 => {
                    host.push_event(NoteEvent::MidiCC { timing: 0, channel: 0, cc: 123, value: 0.0 });
                    host.push_event(NoteEvent::NoteOff { timing: 1, voice_id: VoiceID::Wildcard, channel: Channel::Wildcard, key: Key::Wildcard, velocity: 0.0 });
                }
                _ => {}
            }
            let (allocs, out) = process_counted(&mut host, 480);
            assert_eq!(allocs, 0, "block {i} allocated {allocs} times in {mode:?} mode");
            audio.extend_from_slice(out[0]);
        }
        (audio, host.latency(), host.plugin.shared().input_latency(), host.plugin.shared().underruns())
    };
    let (bounce, reported, latency, _) = {
        let _alone = alone();
        take(ProcessMode::Offline, false)
    };
    assert!(latency > 24_000 && reported == latency, "reported {reported}, generator {latency}");
    // The note arrives at frame 4,900 and is heard from its frame on (one 320-sample frame of
    // fade); before it, nothing.
    let heard = 10 * 480 + 100 + latency as usize;
    assert!(bounce[..heard - 320].iter().all(|v| *v == 0.0));
    assert!(bounce[heard - 320..heard + 640].iter().any(|v| *v != 0.0));
    // Released at frame 6,920, faded out 0.4 s (30 frames) later over one more frame: silent
    // again from there on.
    let released = 14 * 480 + 200 + latency as usize + 32 * 320;
    assert!(released + 480 < bounce.len() && bounce[released..].iter().all(|v| *v == 0.0));
    let (live, underruns) = real_time_take(|| {
        let (audio, _, _, underruns) = take(ProcessMode::Realtime, false);
        (audio, underruns)
    });
    assert_eq!(underruns, 0, "the tiny generator fell behind real time");
    let start = |a: &[f32]| a.iter().position(|v| *v != 0.0).unwrap();
    let shift = start(&live) - start(&bounce);
    assert_eq!(live[shift..], bounce[..bounce.len() - shift]);
    let (flooded, _) = real_time_take(|| {
        let (audio, _, _, underruns) = take(ProcessMode::Realtime, true);
        (audio, underruns)
    });
    assert!(flooded[flooded.len() - 480..].iter().all(|v| *v == 0.0), "all-notes-off leaves no note sounding");
}

/// Source "continue": the player's phrase is performed; a beat's rest before a bar line hands
/// Cantor the lead from that bar line (its notes come out as MIDI, none before it); a note the
/// player strikes takes the lead back (Cantor's notes end as it is heard, and it stays silent
/// until the player rests again); the bounce is repeatable, and real time answers alike, without
/// an allocation.
#[test]
fn continue_answers_the_players_phrase_at_the_next_bar_line_and_yields_to_them() {
    let factory = tiny_hierarchy();
    let take = |mode: ProcessMode| {
        let mut host = DirectHost::new(Cantor::with_source_factory(Some(factory())));
        assert!(host.activate(24_000.0, 480, mode));
        host.set_param("seed", 5.0).unwrap();
        // Offline the smallest look-ahead; in real time a second (this machine's other work
        // must not make the take underrun).
        host.set_param("ahead", if mode == ProcessMode::Offline { 0.1 } else { 1.0 }).unwrap();
        host.set_param("source", 2.0).unwrap();
        play(&mut host);
        let (mut audio, mut sent) = (Vec::new(), Vec::new());
        // 120 BPM in 4/4: a beat is 25 blocks of 20 ms, a bar 100. The phrase: D E F# A from
        // beat 0.4, each a fifth of a beat long, the last ending at beat 2.4; later a note at beat 8.
        let phrase = [(10u32, 62u8), (20, 64), (30, 66), (40, 69), (50, 74)];
        let started = std::time::Instant::now();
        for i in 0..400u32 {
            if mode == ProcessMode::Realtime {
                let due = std::time::Duration::from_millis(20) * i;
                std::thread::sleep(due.saturating_sub(started.elapsed()));
            }
            if let Some(&(_, key)) = phrase.iter().find(|(b, _)| *b == i) {
                host.push_event(note_on(0, key));
            }
            if let Some(&(_, key)) = phrase.iter().find(|(b, _)| b + 10 == i) {
                host.push_event(note_off(0, key));
            }
            match i {
                200 => host.push_event(note_on(0, 67)),
                210 => host.push_event(note_off(0, 67)),
                _ => {}
            }
            let (allocs, out) = process_counted(&mut host, 480);
            assert_eq!(allocs, 0, "block {i} allocated {allocs} times");
            audio.extend_from_slice(out[0]);
            host.drain_sent_events(&mut sent);
        }
        let notes: Vec<(u64, bool, u8)> = sent
            .iter()
            .filter_map(|(frame, e)| match e {
                NoteEvent::NoteOn { key, .. } => Some((*frame, true, key.number().unwrap())),
                NoteEvent::NoteOff { key, .. } => Some((*frame, false, key.number().unwrap())),
                _ => None,
            })
            .collect();
        (audio, notes, host.latency() as u64, host.plugin.shared().underruns())
    };
    let (audio, notes, latency, _) = {
        let _alone = alone();
        take(ProcessMode::Offline)
    };
    assert!(latency > 0 && latency < 12_000, "latency {latency}");
    // The phrase ends at beat 2.4 (block 60): Cantor answers from bar line 4 (2 s), heard at
    // 48,000 + latency, and none of its notes sound before.
    let answer = 48_000 + latency;
    let back = 200 * 480 + latency;
    let again = 144_000 + latency;
    assert!(notes.iter().all(|&(f, _, _)| f + 1 >= answer), "Cantor played before its cue: {notes:?}");
    assert!(notes.iter().any(|&(f, on, _)| on && f < back), "Cantor did not answer: {notes:?}");
    // The player's note at block 200 takes the lead back: every note of Cantor's has ended when
    // it is heard, and Cantor strikes none until its next cue (bar line 12, 6 s: the note ends at
    // beat 8.4).
    let mut sounding = std::collections::BTreeSet::new();
    for &(f, on, key) in notes.iter().filter(|(f, _, _)| *f <= back + 320) {
        assert!(f <= back + 320);
        if on {
            sounding.insert(key);
        } else {
            sounding.remove(&key);
        }
    }
    assert!(sounding.is_empty(), "Cantor's notes {sounding:?} still sound over the player's");
    assert!(notes.iter().all(|&(f, on, _)| !on || f < back || f + 1 >= again), "Cantor struck a note over the player: {notes:?}");
    assert!(notes.iter().any(|&(f, on, _)| on && f >= again), "Cantor did not answer the second phrase");
    // The player's own notes are heard too: sound from the first note on.
    assert!(audio[10 * 480 + latency as usize..][..4800].iter().any(|v| *v != 0.0));
    let (again_audio, again_notes, ..) = {
        let _alone = alone();
        take(ProcessMode::Offline)
    };
    assert!(again_audio == audio && again_notes == notes, "a bounce of the same notes differs");
    // In real time (paced at the audio clock, the score prior writing on the generator thread):
    // no allocation (checked in the take), no underrun, and the answer comes as in the bounce,
    // from its bar line on (the real-time take's audio starts a little later, never earlier).
    let ((live_notes, live_latency), underruns) = real_time_take(|| {
        let (_, notes, latency, underruns) = take(ProcessMode::Realtime);
        ((notes, latency), underruns)
    });
    assert_eq!(underruns, 0, "the tiny generator fell behind real time");
    let live_answer = 48_000 + live_latency;
    assert!(live_notes.iter().any(|&(f, on, _)| on && f >= live_answer), "no answer in real time: {live_notes:?}");
    assert!(live_notes.iter().all(|&(f, _, _)| f + 1 >= live_answer), "Cantor played before its cue in real time: {live_notes:?}");
}

/// What a player can do wrong, on both Sources that take their notes: a stuck note (never
/// released), keys out of range, pitch bend, then the host stops and plays again elsewhere, and
/// later jumps while playing (a loop). Nothing allocates on the audio thread, every sample is
/// finite, the plugin plays on, and playing again ends the stuck note (a new take starts from
/// the new position): silent after it, the keys never released notwithstanding.
#[test]
fn stuck_notes_and_transport_jumps_neither_allocate_nor_stop_it() {
    let _alone = alone();
    let factory = tiny_hierarchy();
    for source in [1.0, 2.0] {
        let mut host = DirectHost::new(Cantor::with_source_factory(Some(factory())));
        assert!(host.activate(24_000.0, 480, ProcessMode::Offline));
        host.set_param("ahead", 0.1).unwrap();
        host.set_param("source", source).unwrap();
        host.set_param("width", 0.0).unwrap();
        play(&mut host);
        let mut audio = Vec::new();
        for i in 0..300u32 {
            match i {
                10 => {
                    host.push_event(NoteEvent::NoteOn { timing: 5, voice_id: VoiceID::Wildcard, channel: Channel::Number(0), key: Key::Number(64), velocity: 0.9 });
                    host.push_event(NoteEvent::NoteOn { timing: 6, voice_id: VoiceID::Wildcard, channel: Channel::Number(3), key: Key::Number(127), velocity: 1.0 });
                    host.push_event(NoteEvent::NoteOn { timing: 7, voice_id: VoiceID::Wildcard, channel: Channel::Number(3), key: Key::Number(0), velocity: 0.01 });
                    host.push_event(NoteEvent::MidiPitchBend { timing: 8, channel: 0, value: 0.0 });
                }
                // The host stops with the keys still down, and plays again from 10 s.
                100 => host.transport_mut().playing = false,
                105 => {
                    host.transport_mut().playing = true;
                    host.transport_mut().pos_samples = Some(240_000);
                }
                // A jump while playing (a loop's end).
                200 => host.transport_mut().pos_samples = Some(0),
                _ => {}
            }
            let (allocs, out) = process_counted(&mut host, 480);
            assert_eq!(allocs, 0, "source {source}: block {i} allocated {allocs} times");
            audio.extend_from_slice(out[0]);
        }
        assert!(audio.iter().all(|v| v.is_finite()));
        let peak = |from: usize, to: usize| audio[from * 480..to * 480].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(peak(20, 100) > 0.0, "source {source}: the stuck note is not heard");
        // Played again elsewhere: the notes held over the stop are gone (the take restarts
        // there), silent from the new take on, through the loop's jump too.
        assert_eq!(peak(110, 300), 0.0, "source {source}: a note held over a restart sounds on");
    }
}
