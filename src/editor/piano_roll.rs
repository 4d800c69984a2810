//! The piano roll: the notes sounding over the last few seconds, newest at the right edge, yours
//! and Cantor's in two colours, with the bar lines of the take and where it stands in its
//! 8-bar strains. The audio thread sends what is heard (`engine::shown`); this keeps the notes
//! of the window and draws them.

use crate::engine::{EngineShared, Shown, ShownEvent};
use std::collections::VecDeque;

/// Height of the view in points.
pub const HEIGHT: f32 = 100.0;
/// Seconds shown.
pub const WINDOW_S: f64 = 8.0;
/// Notes kept at most (a flood of notes drops its oldest; a dense texture has a few hundred).
const MAX_NOTES: usize = 4096;
/// The pitch range drawn: the notes in view, at least two octaves, within C1-C8.
const LOWEST: u8 = 24;
const HIGHEST: u8 = 108;
const MIN_SPAN: u8 = 24;
/// Bars in a strain (the score writer's form: strains A and B, each 8 bars).
const STRAIN_BARS: u32 = crate::model::score::writer::STRAIN_BARS as u32;
const CANTOR: egui::Color32 = egui::Color32::from_rgb(240, 150, 50);
const YOURS: egui::Color32 = egui::Color32::from_rgb(90, 200, 240);

/// One note, in output samples: `off` is `None` while it sounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollNote {
    pub key: u8,
    pub velocity: u8,
    pub channel: u8,
    /// The player's (drawn in `YOURS`), else Cantor's (`CANTOR`).
    pub player: bool,
    pub on: u64,
    pub off: Option<u64>,
}

/// The notes and bar lines of the last `WINDOW_S`, kept between frames.
#[derive(Default)]
pub struct PianoRollView {
    /// The engine whose events these are, and the rate of their samples.
    engine: Option<u64>,
    rate: u32,
    /// The latest output sample heard: the right edge.
    now: u64,
    /// Samples by which the player's notes and the bar lines are heard later than they are
    /// timed (`show`'s `delay`).
    delay: u64,
    /// In onset order.
    notes: VecDeque<RollNote>,
    /// Bar lines heard: sample, bar of the take.
    bars: VecDeque<(u64, u32)>,
    /// The bar heard now, and when it began (the take started, or its line was heard).
    bar: Option<(u64, u32)>,
    /// Your notes were playing since the take began: coming back to composing, the score
    /// writer started a new tune at a bar the audio thread does not know, so the strain
    /// position is left out until the next take (or new time signature) starts counting again.
    strain_unknown: bool,
    /// The player's sustain pedal, and the keys released under it (they sound on until it lifts).
    pedal: bool,
    pedal_held: u128,
    /// Events drained this frame (reused).
    scratch: Vec<ShownEvent>,
}

/// Where bar `index` of a take stands in the score writer's form (`writer::form_position`):
/// strain letter, whether it is the strain's second playing (with Repeat above 0 each strain is
/// played twice: A A B B), and the bar in the strain (1-8).
pub fn strain_of(index: u32, repeat: bool) -> (char, bool, u32) {
    let (slot, again) = crate::model::score::writer::form_position(index as usize, if repeat { 1.0 } else { 0.0 });
    (if slot < STRAIN_BARS as usize { 'A' } else { 'B' }, again, (slot % STRAIN_BARS as usize) as u32 + 1)
}

/// "A 3/8", or "A 3/8 again" in a strain's second playing.
pub fn strain_label(index: u32, repeat: bool) -> String {
    let (letter, again, bar) = strain_of(index, repeat);
    format!("{letter} {bar}/{STRAIN_BARS}{}", if again { " again" } else { "" })
}

impl PianoRollView {
    fn window(&self) -> u64 {
        (WINDOW_S * self.rate.max(1) as f64) as u64
    }

    /// End the sounding notes that `which` picks at `at`.
    fn end(&mut self, at: u64, which: impl Fn(&RollNote) -> bool) {
        for n in self.notes.iter_mut().filter(|n| n.off.is_none() && which(n)) {
            n.off = Some(at.max(n.on));
        }
    }

    /// Take one event from the audio thread.
    pub fn apply(&mut self, e: ShownEvent) {
        self.now = self.now.max(e.at);
        match e.what {
            Shown::Note { key, velocity, channel, player } => {
                let key = key & 127;
                let bit = 1u128 << key;
                if velocity == 0 && player && self.pedal {
                    self.pedal_held |= bit;
                    return;
                }
                // A key struck again while it sounds ends its last note first.
                self.end(e.at, |n| n.player == player && n.channel == channel && n.key == key);
                if player {
                    self.pedal_held &= !bit;
                }
                if velocity > 0 {
                    self.notes.push_back(RollNote { key, velocity, channel, player, on: e.at, off: None });
                    if self.notes.len() > MAX_NOTES {
                        self.notes.pop_front();
                    }
                }
            }
            Shown::Pedal { down } => {
                self.pedal = down;
                if !down {
                    let held = std::mem::take(&mut self.pedal_held);
                    self.end(e.at, |n| n.player && held & (1u128 << n.key) != 0);
                }
            }
            Shown::PlayerAllOff => {
                self.end(e.at, |n| n.player);
                (self.pedal, self.pedal_held) = (false, 0);
            }
            Shown::Bar { index, line } => {
                if line {
                    self.bars.push_back((e.at, index));
                }
                self.bar = Some((e.at, index));
                if index == 0 {
                    self.strain_unknown = false;
                }
            }
            Shown::Lost => {
                // Some ends were missed: nothing is known to sound any more.
                self.end(e.at, |_| true);
                (self.pedal, self.pedal_held) = (false, 0);
            }
        }
    }

    /// The right edge moves to output sample `now` (never back); what has scrolled out of view
    /// is forgotten.
    pub fn advance(&mut self, now: u64) {
        self.now = self.now.max(now);
        let from = self.now.saturating_sub(self.window() + self.delay);
        self.notes.retain(|n| n.off.is_none_or(|off| off >= from));
        while self.bars.front().is_some_and(|&(at, _)| at < from) {
            self.bars.pop_front();
        }
    }

    /// The notes kept, in onset order.
    #[cfg(test)]
    pub fn notes(&self) -> impl Iterator<Item = &RollNote> {
        self.notes.iter()
    }

    /// The keys drawn, lowest and highest: those of the notes in view, widened to two octaves
    /// around their middle, within C1-C8 (C3-C5 with none).
    pub fn key_range(&self) -> (u8, u8) {
        let (lo, hi) = self.notes.iter().fold((u8::MAX, 0), |(lo, hi), n| (lo.min(n.key), hi.max(n.key)));
        let (lo, hi) = if lo > hi { (48, 72) } else { (lo.max(LOWEST), hi.min(HIGHEST).max(lo.max(LOWEST))) };
        if hi - lo >= MIN_SPAN {
            return (lo, hi);
        }
        let lo = (((lo as i32 + hi as i32) / 2 - MIN_SPAN as i32 / 2).clamp(LOWEST as i32, (HIGHEST - MIN_SPAN) as i32)) as u8;
        (lo, lo + MIN_SPAN)
    }

    /// The bar heard now, while the take plays: a bar line or a note of Cantor's in view.
    fn current_bar(&self) -> Option<u32> {
        let (at, index) = self.bar.filter(|_| !self.strain_unknown)?;
        let from = self.now.saturating_sub(self.window());
        let cantor = self.notes.iter().any(|n| !n.player && n.off.is_none_or(|off| off >= from));
        (at >= from || cantor).then_some(index)
    }

    /// Drain what was heard since the last frame and draw the roll. `strain`: Some(whether
    /// Repeat plays each strain twice) to label the strain position (Cantor composing), None to
    /// leave it out (your notes have no strains). `delay`: output samples by which the player's
    /// notes and the bar lines are heard after they are timed: playing your notes, Cantor
    /// performs them, and places its beat grid, the latency it reports later (the host moves
    /// the track back by as much), while its own notes are timed as heard.
    pub fn show(&mut self, ui: &mut egui::Ui, shared: &EngineShared, strain: Option<bool>, delay: u64) {
        self.scratch.clear();
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(source) = shared.drain_shown(&mut scratch) {
            if self.engine != Some(source.engine) {
                // A new engine (the plugin was reactivated): its clock starts at 0.
                *self = Self { engine: Some(source.engine), ..Default::default() };
            }
            self.rate = source.rate;
            self.delay = delay;
            if strain.is_none() {
                self.strain_unknown = true;
            }
            for &e in &scratch {
                self.apply(e);
            }
            self.advance(shared.shown_clock());
        }
        self.scratch = scratch;
        self.draw(ui, strain);
        ui.ctx().request_repaint_after(std::time::Duration::from_millis(33));
    }

    fn draw(&self, ui: &mut egui::Ui, strain: Option<bool>) {
        let size = egui::vec2(ui.available_width().max(100.0), HEIGHT);
        let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
        let painter = ui.painter_at(rect);
        let visuals = ui.visuals();
        painter.rect_filled(rect, 2.0, visuals.extreme_bg_color);
        let (lo, hi) = self.key_range();
        let row = rect.height() / (hi - lo + 1) as f32;
        let y_of = |key: u8| rect.bottom() - (key - lo + 1) as f32 * row;
        let rate = self.rate.max(1) as f64;
        let x_of = |t: u64| rect.right() - (self.now as f64 - t as f64) as f32 / (rate * WINDOW_S) as f32 * rect.width();
        let heard = |t: u64| x_of(t + self.delay);
        let faint = visuals.weak_text_color().gamma_multiply(0.35);
        let small = egui::FontId::proportional(10.0);
        // The C of each octave, named at the left.
        for c in (lo..=hi).filter(|k| k % 12 == 0) {
            let y = y_of(c) + row;
            painter.hline(rect.x_range(), y, egui::Stroke::new(1.0, faint));
            painter.text(egui::pos2(rect.left() + 2.0, y), egui::Align2::LEFT_BOTTOM, format!("C{}", c / 12 - 1), small.clone(), visuals.weak_text_color());
        }
        // Bar lines, stronger where a strain begins, with its letter.
        for &(at, index) in &self.bars {
            let x = heard(at);
            if index % STRAIN_BARS == 0 {
                painter.vline(x, rect.y_range(), egui::Stroke::new(1.5, visuals.text_color().gamma_multiply(0.6)));
                if let Some(repeat) = strain {
                    let (letter, again, _) = strain_of(index, repeat);
                    let name = if again { format!("{letter}'") } else { letter.to_string() };
                    painter.text(egui::pos2(x + 3.0, rect.top() + 1.0), egui::Align2::LEFT_TOP, name, small.clone(), visuals.text_color());
                }
            } else {
                painter.vline(x, rect.y_range(), egui::Stroke::new(1.0, faint));
            }
        }
        // The notes, brighter the louder; Cantor's under yours.
        for player in [false, true] {
            for n in self.notes.iter().filter(|n| n.player == player && (lo..=hi).contains(&n.key)) {
                let x_of = |t: u64| if player { heard(t) } else { x_of(t) };
                let x0 = x_of(n.on);
                let x1 = n.off.map_or(rect.right(), x_of).max(x0 + 2.0);
                let colour = if player { YOURS } else { CANTOR }.gamma_multiply(0.35 + 0.65 * n.velocity as f32 / 127.0);
                let y = y_of(n.key);
                painter.rect_filled(egui::Rect::from_min_max(egui::pos2(x0, y + 0.5), egui::pos2(x1, (y + row - 0.5).max(y + 1.5))), 1.0, colour);
            }
        }
        // The legend at the top right, the strain position at the top left, each on a backdrop
        // so the notes under them do not hide them.
        let font = egui::FontId::proportional(11.0);
        let backdrop = visuals.extreme_bg_color.gamma_multiply(0.8);
        let label = |pos: egui::Pos2, align: egui::Align2, text: String, colour: egui::Color32| {
            let galley = painter.layout_no_wrap(text, font.clone(), colour);
            let at = align.anchor_size(pos, galley.size());
            painter.rect_filled(at.expand(2.0), 2.0, backdrop);
            painter.galley(at.min, galley, colour);
            at
        };
        let mut x = rect.right() - 4.0;
        for (name, colour) in [("Cantor", CANTOR), ("yours", YOURS)] {
            let text = label(egui::pos2(x, rect.top() + 3.0), egui::Align2::RIGHT_TOP, name.into(), visuals.text_color());
            let swatch = egui::Rect::from_center_size(egui::pos2(text.left() - 8.0, text.center().y), egui::vec2(8.0, 8.0));
            painter.rect_filled(swatch.expand(3.0), 2.0, backdrop);
            painter.rect_filled(swatch, 1.0, colour);
            x = swatch.left() - 12.0;
        }
        if let (Some(repeat), Some(index)) = (strain, self.current_bar()) {
            label(egui::pos2(rect.left() + 26.0, rect.top() + 3.0), egui::Align2::LEFT_TOP, strain_label(index, repeat), visuals.strong_text_color());
        }
        ui.painter().rect_stroke(rect, 2.0, visuals.widgets.noninteractive.bg_stroke, egui::StrokeKind::Outside);
        response.on_hover_text(format!(
            "The notes sounding over the last {WINDOW_S:.0} s, newest on the right: Cantor's in orange, yours in blue (as they arrive, or when Cantor plays them after its latency with Source on your notes). Lines mark the bars, stronger where an 8-bar strain begins; top left, the strain and bar playing now (A, B; with Repeat above 0 each strain twice)."
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> PianoRollView {
        PianoRollView { rate: 1000, engine: Some(1), ..Default::default() }
    }

    fn note(at: u64, key: u8, velocity: u8, player: bool) -> ShownEvent {
        ShownEvent { at, what: Shown::Note { key, velocity, channel: 0, player } }
    }

    fn spans(v: &PianoRollView) -> Vec<(u8, bool, u64, Option<u64>)> {
        v.notes().map(|n| (n.key, n.player, n.on, n.off)).collect()
    }

    #[test]
    fn ons_and_offs_pair_by_owner_and_key() {
        let mut v = view();
        for e in [note(0, 60, 100, false), note(10, 60, 90, true), note(20, 60, 0, true), note(30, 60, 0, false), note(40, 62, 0, false)] {
            v.apply(e);
        }
        // Cantor's C and yours overlap; each off ends its owner's; an off without an on is ignored.
        assert_eq!(spans(&v), [(60, false, 0, Some(30)), (60, true, 10, Some(20))]);
        // Two voices of Cantor's on one key end separately; a key struck again ends its last note.
        v.apply(ShownEvent { at: 50, what: Shown::Note { key: 64, velocity: 80, channel: 0, player: false } });
        v.apply(ShownEvent { at: 55, what: Shown::Note { key: 64, velocity: 80, channel: 4, player: false } });
        v.apply(ShownEvent { at: 60, what: Shown::Note { key: 64, velocity: 0, channel: 4, player: false } });
        v.apply(note(70, 64, 70, false));
        let e: Vec<_> = v.notes().filter(|n| n.key == 64).map(|n| (n.channel, n.on, n.off)).collect();
        assert_eq!(e, [(0, 50, Some(70)), (4, 55, Some(60)), (0, 70, None)]);
    }

    #[test]
    fn the_pedal_all_off_and_lost_events_end_notes() {
        let mut v = view();
        v.apply(note(0, 60, 100, true));
        v.apply(ShownEvent { at: 5, what: Shown::Pedal { down: true } });
        v.apply(note(10, 60, 0, true));
        v.apply(note(12, 50, 100, false));
        assert_eq!(v.notes().filter(|n| n.off.is_none()).count(), 2, "the pedal holds the released key");
        v.apply(ShownEvent { at: 20, what: Shown::Pedal { down: false } });
        v.apply(note(30, 62, 100, true));
        v.apply(note(31, 64, 100, true));
        v.apply(ShownEvent { at: 40, what: Shown::PlayerAllOff });
        assert_eq!(spans(&v), [(60, true, 0, Some(20)), (50, false, 12, None), (62, true, 30, Some(40)), (64, true, 31, Some(40))]);
        // Events were lost: Cantor's note too is no longer known to sound.
        v.apply(ShownEvent { at: 50, what: Shown::Lost });
        assert!(v.notes().all(|n| n.off.is_some()));
    }

    #[test]
    fn notes_and_bars_out_of_view_are_forgotten_but_sounding_ones_kept() {
        let mut v = view();
        v.apply(note(0, 40, 100, false));
        v.apply(note(100, 70, 100, true));
        v.apply(note(200, 70, 0, true));
        v.apply(ShownEvent { at: 300, what: Shown::Bar { index: 0, line: true } });
        v.apply(ShownEvent { at: 2300, what: Shown::Bar { index: 1, line: true } });
        v.advance(8199);
        assert_eq!(v.notes().count(), 2);
        assert_eq!(v.bars.len(), 2);
        v.advance(8250);
        // The ended note scrolled out; the one still sounding stays.
        assert_eq!(spans(&v), [(40, false, 0, None)]);
        v.advance(8400);
        assert_eq!(v.bars.iter().copied().collect::<Vec<_>>(), [(2300, 1)]);
        // The range covers the notes in view, at least two octaves, within C1-C8.
        assert_eq!(v.key_range(), (28, 52));
        v.apply(note(8400, 100, 100, true));
        v.apply(note(8400, 10, 100, true));
        assert_eq!(v.key_range(), (24, 100));
        assert_eq!(view().key_range(), (48, 72));
    }

    #[test]
    fn the_strain_position_follows_the_writers_form() {
        assert_eq!(strain_label(0, false), "A 1/8");
        assert_eq!(strain_label(10, false), "B 3/8");
        assert_eq!(strain_label(16, false), "A 1/8");
        assert_eq!(strain_label(2, true), "A 3/8");
        assert_eq!(strain_label(9, true), "A 2/8 again");
        assert_eq!(strain_label(16, true), "B 1/8");
        assert_eq!(strain_label(31, true), "B 8/8 again");
        assert_eq!(strain_label(32, true), "A 1/8");
    }
}
