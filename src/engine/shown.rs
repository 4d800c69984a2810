//! What the editor's piano roll is told: the notes heard (Cantor's at the sample they are
//! output, the player's at their arrival), the bar lines of the music heard and which bar of
//! the take each is. The audio thread pushes small `Copy` events into a pre-allocated SPSC
//! ring (`ShownTap`, owned by the reader); the editor drains it through `EngineShared`. A full
//! ring drops events and the next one that fits is `Shown::Lost`, so the editor never keeps a
//! note whose end it missed (the ring fills while no editor is open).

use ringbuf::traits::Producer;
use ringbuf::HeapProd;

/// Events the ring holds: about 40 note events a second in a dense texture, plus bar lines,
/// so minutes of music between two editor frames (the editor drains it about 30 times a second).
pub const SHOWN_RING: usize = 8192;

/// One event for the piano roll, at output sample `at` of its engine (samples the reader has
/// output since the engine started, gate closed or not; the editor turns them into seconds
/// with the feed's rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShownEvent {
    pub at: u64,
    pub what: Shown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// A note starts (velocity 1-127) or ends (0). Cantor's on their MIDI channel (two voices may
    /// play one key); the player's (`player`) on channel 0.
    Note { key: u8, velocity: u8, channel: u8, player: bool },
    /// The player's sustain pedal: while it is down a released key sounds on.
    Pedal { down: bool },
    /// Every note of the player's ends (all-notes-off, a wildcard note-off).
    PlayerAllOff,
    /// Bar `index` of the take begins (0 is the bar the take started in, as the score writer
    /// counts bars for its 8-bar strains). `line` is false when the take started inside it:
    /// no bar line was heard there.
    Bar { index: u32, line: bool },
    /// Events before this one were dropped (the ring was full): what sounds is not known.
    Lost,
}

/// Tempo or meter changes not yet heard that the tap keeps (more within one look-ahead merge
/// into the latest).
const TEMPO_CHANGES: usize = 32;

/// The audio thread's side: the producer and the musical clock of the audio heard. The clock
/// follows the generator's: a take starts at the beat of its reset position (as the generator
/// reckons it, position / rate x tempo) and each output frame advances it by the tempo the
/// generator wrote that frame with. Tempo and meter are read when the plugin sets them, but
/// the generator renders with them from the end of what is already buffered (its next
/// render), so a change is applied from that ring frame on, not from the frame heard now:
/// otherwise every change would shift all later bar lines by (change x look-ahead). The
/// resampler's delay (a few milliseconds, when the host rate is not the model's) is left out:
/// it moves a bar line by less than a pixel of the roll.
pub struct ShownTap {
    events: HeapProd<ShownEvent>,
    rate: f64,
    /// Output samples before the current block, and the next block's start.
    block_start: u64,
    clock: u64,
    /// An event was dropped; `Lost` goes first when there is room again.
    lost: bool,
    /// Tempo (beats per ring frame) and beats per bar from the ring frame each names on, in
    /// order; the last values seen, to log only changes.
    pending: [(u64, f64, u32); TEMPO_CHANGES],
    pending_head: usize,
    pending_len: usize,
    last_time: (f32, u32),
    /// Beats per ring frame and per bar of the frame being heard.
    per_frame: f64,
    bar_beats: u32,
    /// The beat the next take starts at (set with its reset; 0 for a new engine, which the
    /// generator starts at position 0).
    next_take: f64,
    /// The heard take: the beat of the next frame output, the beat of its next bar line, that
    /// bar's index, and the bar length the take's bars are counted in.
    take: Option<Take>,
}

#[derive(Debug, Clone, Copy)]
struct Take {
    beat: f64,
    next_bar: f64,
    index: u32,
    bar_beats: u32,
}

/// Beats a second at tempo setting `bpm`, as the generator plays it.
fn beats_per_second(bpm: f32) -> f64 {
    super::shared::played_bpm(bpm) / 60.0
}

impl ShownTap {
    pub fn new(events: HeapProd<ShownEvent>, host_rate: u32, (bpm, beats_per_bar): (f32, u32)) -> Self {
        let rate = host_rate.max(1) as f64;
        Self {
            events,
            rate,
            block_start: 0,
            clock: 0,
            lost: false,
            pending: [(0, 0.0, 0); TEMPO_CHANGES],
            pending_head: 0,
            pending_len: 0,
            last_time: (bpm, beats_per_bar),
            per_frame: beats_per_second(bpm) / rate,
            bar_beats: beats_per_bar.max(1),
            next_take: 0.0,
            take: None,
        }
    }

    /// Output samples since the engine started, up to the end of the current block.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Push `what` at `at`; never waits. A full ring drops it, and `Lost` goes before the next.
    fn push(&mut self, at: u64, what: Shown) {
        if self.lost {
            if self.events.try_push(ShownEvent { at, what: Shown::Lost }).is_err() {
                return;
            }
            self.lost = false;
        }
        if self.events.try_push(ShownEvent { at, what }).is_err() {
            self.lost = true;
        }
    }

    /// A block of `n` samples begins. `frontier` is the ring frame the generator renders next
    /// (popped + buffered), `time` the tempo and beats per bar the plugin set for this block.
    pub fn begin_block(&mut self, n: usize, frontier: u64, time: (f32, u32)) {
        self.block_start = self.clock;
        self.clock += n as u64;
        if time != self.last_time {
            self.last_time = time;
            let change = (frontier, beats_per_second(time.0) / self.rate, time.1.max(1));
            if self.pending_len == TEMPO_CHANGES {
                // Changes faster than the look-ahead plays them: the latest stands for the last.
                let newest = (self.pending_head + TEMPO_CHANGES - 1) % TEMPO_CHANGES;
                self.pending[newest] = (self.pending[newest].0, change.1, change.2);
            } else {
                self.pending[(self.pending_head + self.pending_len) % TEMPO_CHANGES] = change;
                self.pending_len += 1;
            }
        }
    }

    /// The player's event, `timing` samples into the block about to be processed (before
    /// `begin_block`: the host's events come first).
    pub fn player(&mut self, timing: u32, what: Shown) {
        self.push(self.clock + timing as u64, what);
    }

    /// One of Cantor's note events, `offset` samples into the current block.
    pub fn note(&mut self, offset: u64, key: u8, velocity: u8, channel: u8) {
        self.push(self.block_start + offset, Shown::Note { key, velocity, channel, player: false });
    }

    /// The next take starts at host sample `position` (a reset), heard when its audio begins.
    /// `bpm` is the tempo the plugin has just set: the generator turns the position into beats
    /// with it (at its first render after the reset).
    pub fn take_at(&mut self, position: u64, bpm: f32) {
        self.next_take = position as f64 * beats_per_second(bpm) / self.rate;
    }

    /// Apply the tempo and meter changes due by ring frame `frame`.
    fn catch_up(&mut self, frame: u64) {
        while self.pending_len > 0 && self.pending[self.pending_head].0 <= frame {
            let (_, per_frame, bar_beats) = self.pending[self.pending_head];
            (self.per_frame, self.bar_beats) = (per_frame, bar_beats);
            self.pending_head = (self.pending_head + 1) % TEMPO_CHANGES;
            self.pending_len -= 1;
        }
    }

    /// The take's audio begins with ring frame `frame`, `offset` samples into the block: its
    /// first bar is the one its beat falls in, on bar lines at multiples of the bar from beat 0
    /// (where the score writer starts its form).
    pub fn take_begins(&mut self, frame: u64, offset: usize) {
        self.catch_up(frame);
        let (beat, bar) = (self.next_take, self.bar_beats as f64);
        let first = (beat / bar + 1e-9).floor() * bar;
        let line = beat - first < 1e-6;
        self.take = Some(Take { beat, next_bar: first + bar, index: 1, bar_beats: self.bar_beats });
        self.push(self.block_start + offset as u64, Shown::Bar { index: 0, line });
    }

    /// `got` frames from ring frame `frame` on were output `offset` samples into the block:
    /// the bar lines among them.
    pub fn heard(&mut self, frame: u64, got: usize, offset: usize) {
        self.catch_up(frame);
        let Some(mut take) = self.take else { return };
        let per_frame = self.per_frame;
        loop {
            // The first frame at or past the bar line.
            let j = ((take.next_bar - take.beat) / per_frame - 1e-6).ceil().max(0.0);
            if j >= got as f64 {
                break;
            }
            if self.bar_beats != take.bar_beats {
                // A new time signature: the score writer starts a new tune at a bar line.
                (take.index, take.bar_beats) = (0, self.bar_beats);
            }
            self.push(self.block_start + offset as u64 + j as u64, Shown::Bar { index: take.index, line: true });
            take.index += 1;
            take.next_bar += take.bar_beats as f64;
        }
        take.beat += got as f64 * per_frame;
        self.take = Some(take);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbuf::traits::{Consumer, Split};
    use ringbuf::{HeapCons, HeapRb};

    fn tap(capacity: usize, rate: u32, time: (f32, u32)) -> (ShownTap, HeapCons<ShownEvent>) {
        let (p, c) = HeapRb::new(capacity).split();
        (ShownTap::new(p, rate, time), c)
    }

    /// Output `frames` in blocks of `block` from ring frame `frame`, all heard.
    fn play(t: &mut ShownTap, frame: &mut u64, frames: usize, block: usize, time: (f32, u32)) {
        let mut done = 0;
        while done < frames {
            let n = block.min(frames - done);
            t.begin_block(n, *frame, time);
            t.heard(*frame, n, 0);
            *frame += n as u64;
            done += n;
        }
    }

    fn bars(c: &mut HeapCons<ShownEvent>) -> Vec<(u64, u32, bool)> {
        c.pop_iter().filter_map(|e| match e.what {
            Shown::Bar { index, line } => Some((e.at, index, line)),
            _ => None,
        })
        .collect()
    }

    #[test]
    fn bar_lines_fall_where_the_take_reaches_them() {
        // 120 bpm at 1000 Hz: a beat every 500 samples, a 4/4 bar every 2000.
        let (mut t, mut c) = tap(64, 1000, (120.0, 4));
        let mut frame = 0;
        t.begin_block(10, 0, (120.0, 4));
        // The take starts at sample 2500: beat 5, inside bar 1 of the host (from beat 4).
        t.take_at(2500, 120.0);
        t.take_begins(0, 3);
        t.heard(0, 7, 3);
        frame += 7;
        play(&mut t, &mut frame, 5000, 333, (120.0, 4));
        // Its first bar has no line; the next lines at beats 8 and 12: 1500 and 3500 samples in.
        assert_eq!(bars(&mut c), [(3, 0, false), (3 + 1500, 1, true), (3 + 3500, 2, true)]);
    }

    #[test]
    fn a_tempo_change_applies_from_the_frame_the_generator_renders_it_at() {
        let (mut t, mut c) = tap(64, 1000, (120.0, 4));
        t.begin_block(500, 0, (120.0, 4));
        t.take_begins(0, 0);
        t.heard(0, 500, 0);
        // The tempo doubles with 500 frames buffered: those were rendered at 120 bpm.
        t.begin_block(500, 1000, (240.0, 4));
        t.heard(500, 500, 0);
        let mut frame = 1000;
        play(&mut t, &mut frame, 2500, 100, (240.0, 4));
        // Beat 2 at frame 1000, then 250 frames a beat: beat 4 at 1500, beat 8 at 2500.
        assert_eq!(bars(&mut c), [(0, 0, true), (1500, 1, true), (2500, 2, true)]);
    }

    #[test]
    fn a_new_meter_counts_bars_from_zero_again() {
        let (mut t, mut c) = tap(64, 1000, (120.0, 4));
        t.begin_block(1, 0, (120.0, 4));
        t.take_begins(0, 0);
        t.heard(0, 1, 0);
        let mut frame = 1;
        play(&mut t, &mut frame, 2500, 100, (120.0, 4));
        play(&mut t, &mut frame, 4000, 100, (120.0, 3));
        let b = bars(&mut c);
        // Bars of 4 beats to beat 8, then of 3: the first 3-beat bar starts the count anew.
        assert_eq!(b, [(0, 0, true), (2000, 1, true), (4000, 0, true), (5500, 1, true)]);
    }

    #[test]
    fn a_full_ring_drops_and_the_next_event_says_so() {
        let (mut t, mut c) = tap(2, 1000, (120.0, 4));
        t.begin_block(100, 0, (120.0, 4));
        for key in 60..65 {
            t.note(key as u64, key, 100, 0);
        }
        let first: Vec<_> = c.pop_iter().collect();
        assert_eq!(first.len(), 2);
        t.player(5, Shown::PlayerAllOff);
        // The block is over: the player's event is timed in the next one.
        let next: Vec<_> = c.pop_iter().map(|e| (e.at, e.what)).collect();
        assert_eq!(next, [(105, Shown::Lost), (105, Shown::PlayerAllOff)]);
    }
}
