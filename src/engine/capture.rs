//! Capture: "save what Cantor just played" as a WAV file, ready to drag onto a track.
//!
//! The audio thread copies its final output into a pre-allocated ring (a wait-free push, no
//! allocation; if the ring is full the block is dropped and counted, never waited for). A capture
//! thread drains it into a rolling buffer of the last `MAX_SECONDS` and writes files on request,
//! so no disk access ever happens on the audio thread. The same thread analyses the output for
//! the editor's spectrogram.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::spectrogram::{SpectrogramAnalyser, SpectrogramColumns};

/// Longest capture kept, in seconds.
pub const MAX_SECONDS: f64 = 120.0;
/// Frames the audio thread interleaves at a time (a stack buffer).
const CHUNK: usize = 256;

/// A request from the editor (or a test).
#[derive(Debug, Clone)]
pub enum CaptureRequest {
    /// Write the last `seconds` (at most `MAX_SECONDS`) into `dir` (created if missing).
    Save { seconds: f64, dir: PathBuf },
    /// Write everything played since the transport last started (at most `MAX_SECONDS`).
    SinceStart { dir: PathBuf },
}

/// State shared by the editor and the capture thread; lives as long as the plugin instance.
pub struct CaptureShared {
    requests: Sender<CaptureRequest>,
    receiver: Receiver<CaptureRequest>,
    /// The last file written, or why writing failed (plain words for the editor).
    result: Mutex<Option<Result<PathBuf, String>>>,
    /// Files written so far (lets a caller wait for its request).
    saved: AtomicU64,
    /// Output blocks the capture ring had no room for.
    dropped_blocks: AtomicU64,
    /// Frames the audio thread has offered the tap (captured or dropped), and that count when
    /// the transport last started: "since start" captures are measured from it.
    offered_frames: AtomicU64,
    start_frame: AtomicU64,
    /// The live spectrogram (capture thread writes, editor reads; never the audio thread).
    spectrogram: Mutex<SpectrogramColumns>,
}

impl Default for CaptureShared {
    fn default() -> Self {
        let (requests, receiver) = crossbeam_channel::bounded(8);
        Self {
            requests,
            receiver,
            result: Mutex::new(None),
            saved: AtomicU64::new(0),
            dropped_blocks: AtomicU64::new(0),
            offered_frames: AtomicU64::new(0),
            start_frame: AtomicU64::new(0),
            spectrogram: Mutex::new(SpectrogramColumns::default()),
        }
    }
}

impl CaptureShared {
    /// Ask for a file (never blocks; a full queue refuses with a reason, which also becomes the
    /// last result the editor shows).
    pub fn request(&self, request: CaptureRequest) -> Result<(), String> {
        let sent = self.requests.try_send(request).map_err(|_| "the capture is busy; try again in a moment".to_string());
        if let Err(e) = &sent {
            self.set_result(Err(e.clone()));
        }
        sent
    }

    /// The last file written, or why the last request failed.
    pub fn last_result(&self) -> Option<Result<PathBuf, String>> {
        self.result.lock().ok().and_then(|r| r.clone())
    }

    fn set_result(&self, result: Result<PathBuf, String>) {
        if let Ok(mut r) = self.result.lock() {
            *r = Some(result);
        }
    }

    /// Requests answered so far (a caller waits for its own by watching this rise).
    pub fn answered(&self) -> u64 {
        self.saved.load(Relaxed)
    }

    /// Output blocks the capture ring had no room for.
    pub fn dropped_blocks(&self) -> u64 {
        self.dropped_blocks.load(Relaxed)
    }

    /// The live spectrogram, locked for reading (None if a panicking writer poisoned it).
    pub fn spectrogram(&self) -> Option<std::sync::MutexGuard<'_, SpectrogramColumns>> {
        self.spectrogram.lock().ok()
    }
}

/// The folder captures go to: `$CANTOR_CAPTURE_DIR`, else the user's Music folder.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CANTOR_CAPTURE_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE")).map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join("Music").join("Cantor")
}

/// The audio thread's end: copies output blocks into the ring.
pub struct CaptureTap {
    producer: HeapProd<f32>,
    shared: Arc<CaptureShared>,
}

impl CaptureTap {
    /// Copy one block of output (wait-free; drops the block if the ring is full).
    pub fn push(&mut self, left: &[f32], right: &[f32]) {
        let n = left.len().min(right.len());
        self.shared.offered_frames.fetch_add(n as u64, Relaxed);
        if self.producer.vacant_len() < 2 * n {
            self.shared.dropped_blocks.fetch_add(1, Relaxed);
            return;
        }
        let mut buf = [0f32; 2 * CHUNK];
        for start in (0..n).step_by(CHUNK) {
            let k = CHUNK.min(n - start);
            for j in 0..k {
                buf[2 * j] = left[start + j];
                buf[2 * j + 1] = right[start + j];
            }
            self.producer.push_slice(&buf[..2 * k]);
        }
    }

    /// The transport started: later "since start" captures begin with the next block.
    pub fn mark_start(&self) {
        self.shared.start_frame.store(self.shared.offered_frames.load(Relaxed), Relaxed);
    }
}

/// The capture thread; dropping it stops and joins the thread (never on the audio thread).
pub struct Capture {
    handle: Option<JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Capture {
    /// Start capturing output at `rate` Hz: returns the audio thread's tap and the thread.
    pub fn start(shared: Arc<CaptureShared>, rate: u32) -> std::io::Result<(CaptureTap, Capture)> {
        // Four seconds of stereo room. The capture thread drains it every few milliseconds, but
        // an offline bounce runs many times faster than real time and a loaded machine can keep
        // the thread waiting (half a second dropped blocks in CI).
        let (producer, consumer) = HeapRb::<f32>::new(8 * (rate as usize).max(8_000)).split();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let worker = Worker {
            consumer,
            shared: shared.clone(),
            rate,
            kept: VecDeque::new(),
            analyser: SpectrogramAnalyser::new(rate),
            stop: stop.clone(),
        };
        let handle = std::thread::Builder::new().name("cantor-capture".into()).spawn(move || worker.run())?;
        Ok((CaptureTap { producer, shared }, Capture { handle: Some(handle), stop }))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct Worker {
    consumer: HeapCons<f32>,
    shared: Arc<CaptureShared>,
    rate: u32,
    /// The last MAX_SECONDS of output, interleaved stereo.
    kept: VecDeque<f32>,
    analyser: SpectrogramAnalyser,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Worker {
    fn run(mut self) {
        let mut buf = vec![0f32; 8192];
        let cap = (MAX_SECONDS * self.rate as f64) as usize * 2;
        while !self.stop.load(Relaxed) {
            let request = match self.shared.receiver.recv_timeout(Duration::from_millis(5)) {
                Ok(r) => Some(r),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Drain first, so a file holds everything played before it was asked for.
            loop {
                let n = self.consumer.pop_slice(&mut buf);
                if n == 0 {
                    break;
                }
                self.kept.extend(&buf[..n]);
                let excess = self.kept.len().saturating_sub(cap);
                self.kept.drain(..excess);
                if let Ok(mut columns) = self.shared.spectrogram.lock() {
                    self.analyser.feed(&buf[..n], &mut columns);
                }
            }
            if let Some(request) = request {
                let (seconds, dir) = match request {
                    CaptureRequest::Save { seconds, dir } => (seconds, dir),
                    CaptureRequest::SinceStart { dir } => {
                        // Frames played so far, counted as `offered_frames` counts them (dropped
                        // blocks included), less what still waits in the ring.
                        let played = self.shared.offered_frames.load(Relaxed).saturating_sub((self.consumer.occupied_len() / 2) as u64);
                        let start = self.shared.start_frame.load(Relaxed);
                        (played.saturating_sub(start) as f64 / self.rate as f64, dir)
                    }
                };
                let result = self.save(seconds, &dir);
                self.shared.set_result(result);
                self.shared.saved.fetch_add(1, Relaxed);
            }
        }
    }

    fn save(&self, seconds: f64, dir: &std::path::Path) -> Result<PathBuf, String> {
        let seconds = if seconds.is_finite() { seconds.clamp(0.0, MAX_SECONDS) } else { MAX_SECONDS };
        let want = ((seconds * self.rate as f64) as usize * 2).min(self.kept.len());
        if want == 0 {
            return Err("nothing has been played yet".into());
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let path = dir.join(format!("cantor-capture-{stamp}.wav"));
        let samples: Vec<f32> = self.kept.iter().skip(self.kept.len() - want).copied().collect();
        crate::audio::write_stereo_f32(&path, &samples, self.rate).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}
