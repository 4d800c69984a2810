//! Helpers shared by integration tests: small random-initialised model files.

use cantor::model::codec::CodecConfig;
use cantor::model::pair::random_model_files;
use cantor::model::prior::PriorConfig;

/// Model files of a tiny codec and a tiny prior; `matching` decides whether the prior says it
/// was trained on this codec's codes.
pub fn tiny_model_files(matching: bool) -> (Vec<u8>, Vec<u8>) {
    random_model_files(&CodecConfig::tiny(), &PriorConfig::tiny(), (!matching).then_some("0123456789abcdef"), None).unwrap()
}
