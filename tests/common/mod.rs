//! Helpers shared by integration tests: small random-initialised model files.

use cantor::model::codec::CodecConfig;
use cantor::model::pair::random_model_files;
use cantor::model::prior::PriorConfig;

/// Model files of a tiny codec and a tiny prior; `matching` decides whether the prior says it
/// was trained on this codec's codes.
#[allow(dead_code)]
pub fn tiny_model_files(matching: bool) -> (Vec<u8>, Vec<u8>) {
    random_model_files(&CodecConfig::tiny(), &PriorConfig::tiny(), (!matching).then_some("0123456789abcdef"), None).unwrap()
}

/// A tiny random score prior's model file.
#[allow(dead_code)] // each test binary uses what it needs
pub fn tiny_score_file() -> Vec<u8> {
    use cantor::model::score::{ScoreConfig, ScorePrior, KIND};
    let vm = candle_nn::VarMap::new();
    let cfg = ScoreConfig::tiny();
    ScorePrior::new(&cfg, candle_nn::VarBuilder::from_varmap(&vm, candle_core::DType::F32, &candle_core::Device::Cpu)).unwrap();
    cantor::model::weights::to_bytes(KIND, &cfg, &cantor::model::weights::var_tensors(&vm), candle_core::DType::F16).unwrap()
}

/// Model files of a tiny codec, a tiny performer (a prior that takes notes) trained on its
/// codes, and a tiny score prior: the hierarchy the plugin plays.
#[allow(dead_code)]
pub fn tiny_hierarchy_files() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (codec, performer) = random_model_files(&CodecConfig::tiny(), &PriorConfig { notes: true, ..PriorConfig::tiny() }, None, None).unwrap();
    (codec, performer, tiny_score_file())
}
