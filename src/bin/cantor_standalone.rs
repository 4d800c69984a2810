//! Cantor as a stand-alone program: the plugin with its editor, playing through the system's
//! audio device (or `--backend dummy`). Run `cantor-standalone --help` for the options.

fn main() {
    nice_plug::nice_export_standalone::<cantor::plugin::Cantor>();
}
