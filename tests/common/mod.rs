//! Helpers shared by integration tests: small random-initialised model files.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use cantor::model::codec::{self, Codec, CodecConfig};
use cantor::model::prior::{self, codec_codes_id, Prior, PriorConfig};
use cantor::model::weights;
use std::collections::HashMap;

fn tensors(vm: &VarMap) -> HashMap<String, Tensor> {
    vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect()
}

/// Model files of a tiny codec and a tiny prior; `matching` decides whether the prior says it
/// was trained on this codec's codes.
pub fn tiny_model_files(matching: bool) -> (Vec<u8>, Vec<u8>) {
    let (cvm, pvm) = (VarMap::new(), VarMap::new());
    let ccfg = CodecConfig::tiny();
    let codec = Codec::new(&ccfg, VarBuilder::from_varmap(&cvm, DType::F32, &Device::Cpu)).unwrap();
    let mut pcfg = PriorConfig::tiny();
    pcfg.codec_id = if matching { codec_codes_id(&codec).unwrap() } else { "0123456789abcdef".into() };
    Prior::new(&pcfg, VarBuilder::from_varmap(&pvm, DType::F32, &Device::Cpu)).unwrap();
    let c = weights::to_bytes(codec::KIND, &ccfg, &tensors(&cvm), DType::F16).unwrap();
    let p = weights::to_bytes(prior::KIND, &pcfg, &tensors(&pvm), DType::F16).unwrap();
    (c, p)
}

