//! The preset picker: applies a factory preset as ordinary parameter changes (the host records
//! them, so they automate and undo like any other edit).

use crate::params::CantorParams;
use crate::presets::FACTORY;
use nice_plug::context::gui::GuiContext;
use nice_plug::prelude::Params;

pub fn show(ui: &mut egui::Ui, params: &CantorParams, gui: &GuiContext) {
    ui.horizontal(|ui| {
        ui.label("Preset");
        egui::ComboBox::from_id_salt("cantor-preset").selected_text("Choose a starting point").show_ui(ui, |ui| {
            for preset in FACTORY {
                if ui.selectable_label(false, preset.name).on_hover_text("Sets style, instrument, free tempo, key, temperature and guidance").clicked() {
                    apply(params, gui, preset);
                }
            }
        });
    });
}

fn apply(params: &CantorParams, gui: &GuiContext, preset: &crate::presets::Preset) {
    let map = params.param_map();
    for (id, value) in preset.values() {
        if let Some((_, ptr, _)) = map.iter().find(|(i, _, _)| *i == id) {
            // SAFETY: the pointers come from the plugin's own parameters, which outlive the editor.
            unsafe {
                let normalized = ptr.preview_normalized(value);
                gui.raw_begin_set_parameter(*ptr);
                gui.raw_set_parameter_normalized(*ptr, normalized);
                gui.raw_end_set_parameter(*ptr);
            }
        }
    }
}
