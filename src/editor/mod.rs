//! The first editor: every parameter, and what the engine is doing. Reads atomics and sets
//! parameters, nothing else.

mod capture;
mod controls;
mod presets;
mod spectrogram;
mod status;
mod style_pad;

use crate::engine::EngineShared;
use crate::params::CantorParams;
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
}

impl CantorEditor {
    pub fn new(params: Arc<CantorParams>, shared: Arc<EngineShared>) -> Self {
        Self { params, shared, gui: None, spectrogram: Default::default() }
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
            // What it is doing on the left, the style pad beside it: at the default size every
            // control below fits without scrolling.
            ui.horizontal_top(|ui| {
                let left = (ui.available_width() - style_pad::SIZE.x - 12.0).max(200.0);
                ui.vertical(|ui| {
                    ui.set_width(left);
                    ui.heading("Cantor");
                    status::show(ui, &self.shared);
                    self.spectrogram.show(ui, &self.shared);
                    capture::show(ui, &self.shared);
                    presets::show(ui, &self.params, gui);
                });
                style_pad::show(ui, &self.params, &setter);
            });
            ui.separator();
            egui::ScrollArea::vertical().show(ui, |ui| {
                controls::show(ui, &self.params, &setter);
            });
        });
    }
}
