//! The first editor: every parameter, and what the engine is doing. Reads atomics and sets
//! parameters, nothing else.

mod capture;
mod controls;
mod piano_roll;
mod presets;
mod spectrogram;
mod status;
mod style_pad;

use crate::engine::EngineShared;
use crate::knobs::KNOBS;
use crate::params::{CantorParams, Source};
use nice_plug::context::gui::GuiContext;
use nice_plug_egui::NiceEguiApp;
use std::sync::Arc;

pub struct CantorEditor {
    params: Arc<CantorParams>,
    shared: Arc<EngineShared>,
    /// Set by `build` each time the window opens; gives the parameter setter.
    gui: Option<GuiContext>,
    /// The spectrogram's texture, reused between frames.
    spectrogram: spectrogram::SpectrogramView,
    /// The notes of the last seconds, kept between frames.
    piano_roll: piano_roll::PianoRollView,
}

impl CantorEditor {
    pub fn new(params: Arc<CantorParams>, shared: Arc<EngineShared>) -> Self {
        Self { params, shared, gui: None, spectrogram: Default::default(), piano_roll: Default::default() }
    }
}

impl NiceEguiApp for CantorEditor {
    fn build(
        &mut self,
        _egui_ctx: egui::Context,
        gui: GuiContext,
        _frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        self.gui = Some(gui);
        Ok(())
    }

    /// The host resized the window: remember the size in the project (a persisted field).
    fn resized(&mut self, new_size: nice_plug_egui::baseview::WindowSize) {
        if let Ok(mut size) = self.params.editor_size.write() {
            *size = crate::params::EditorSize { width: new_size.logical.width as f32, height: new_size.logical.height as f32 }.sanitized();
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut nice_plug_egui::Frame) {
        let Some(gui) = self.gui.as_ref() else { return };
        let setter = gui.param_setter();
        egui::Frame::new().inner_margin(10.0).show(ui, |ui| {
            // What it is doing on the left (status, what it sounds like, the notes sounding);
            // the style pad beside it, with where the notes come from and where they go, a
            // preset and the capture buttons below it: the two columns about as tall, so the
            // controls below keep most of the window at the default size.
            ui.horizontal_top(|ui| {
                let left = (ui.available_width() - style_pad::SIZE.x - 12.0).max(200.0);
                ui.vertical(|ui| {
                    ui.set_width(left);
                    ui.heading("Cantor");
                    status::show(ui, &self.shared);
                    self.spectrogram.show(ui, &self.shared);
                    // Strains are the score prior's form: labelled only while Cantor composes.
                    // Playing your notes, it reports a latency (the plugin's `process`).
                    let composing = self.params.source.value() == Source::Compose;
                    let strain = composing.then(|| self.params.repeat.value() > 0.0);
                    let delay = if composing { 0 } else { self.shared.input_latency() as u64 };
                    self.piano_roll.show(ui, &self.shared, strain, delay);
                });
                ui.vertical(|ui| {
                    ui.set_width(style_pad::SIZE.x);
                    style_pad::show(ui, &self.params, &setter);
                    controls::sized_row(ui, &self.params.source, &setter, KNOBS.source.help, 60.0, 100.0);
                    controls::sized_row(ui, &self.params.midi_out, &setter, KNOBS.midi_out.help, 60.0, 100.0);
                    presets::show(ui, &self.params, gui);
                    capture::show(ui, &self.shared);
                });
            });
            ui.separator();
            egui::ScrollArea::vertical().show(ui, |ui| {
                controls::show(ui, &self.params, &setter);
            });
        });
    }
}
