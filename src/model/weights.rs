//! Model files: safetensors with a header naming the model kind, the format version and the
//! model's config, checked tensor by tensor on load so a bad file gets an error that names the
//! problem (truncated, wrong kind, unknown version, missing/extra/wrong-shaped/non-finite tensor).

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Version of the file layout; bumped when a change makes old files unreadable.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("the model file is not valid safetensors (truncated or corrupt?): {0}")]
    Corrupt(String),
    #[error("the model file has no Cantor header (metadata key '{0}' missing)")]
    MissingHeader(&'static str),
    #[error("the model file holds a '{found}' model, expected '{expected}'")]
    WrongKind { expected: String, found: String },
    #[error("the model file has format version {found}; this build reads version {supported}")]
    UnsupportedVersion { found: String, supported: u32 },
    #[error("the model file's config is invalid: {0}")]
    BadConfig(String),
    #[error("tensor '{0}' is missing from the model file")]
    MissingTensor(String),
    #[error("tensor '{0}' in the model file is not part of this model")]
    UnexpectedTensor(String),
    #[error("tensor '{name}' has shape {found:?}, expected {expected:?}")]
    WrongShape { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("tensor '{0}' contains NaN or infinite values")]
    NonFinite(String),
    #[error("the model file uses quantisation '{0}', which this build does not know")]
    UnknownQuantization(String),
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Names of the GGML block formats a model file may use.
pub fn quant_name(dtype: GgmlDType) -> &'static str {
    match dtype {
        GgmlDType::Q8_0 => "q8_0",
        GgmlDType::Q4_0 => "q4_0",
        GgmlDType::Q4K => "q4k",
        GgmlDType::Q6K => "q6k",
        _ => "other",
    }
}

pub fn quant_from_name(name: &str) -> Option<GgmlDType> {
    match name {
        "q8_0" => Some(GgmlDType::Q8_0),
        "q4_0" => Some(GgmlDType::Q4_0),
        "q4k" => Some(GgmlDType::Q4K),
        "q6k" => Some(GgmlDType::Q6K),
        _ => None,
    }
}

/// candle reads GGML blocks in place and asserts their alignment, but bytes inside a model file
/// (or embedded in the binary) have none: copy them into 8-byte-aligned words first.
fn aligned_words(data: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; data.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..data.len()].copy_from_slice(data);
    words
}

/// Serialise `tensors` with the Cantor header. Tensors are stored in `dtype` (F16 halves the size).
pub fn to_bytes<C: Serialize>(
    kind: &str,
    config: &C,
    tensors: &HashMap<String, Tensor>,
    dtype: DType,
) -> Result<Vec<u8>, WeightsError> {
    to_bytes_quantized(kind, config, tensors, Some(dtype), None)
}

/// Like `to_bytes` (`dtype` None keeps each tensor's own dtype), but the tensors `quantize.0`
/// selects are stored as GGML blocks of `quantize.1` (raw bytes; their format and shape in the
/// `cantor.quant` header entry).
#[allow(clippy::type_complexity)]
pub fn to_bytes_quantized<C: Serialize>(
    kind: &str,
    config: &C,
    tensors: &HashMap<String, Tensor>,
    dtype: Option<DType>,
    quantize: Option<(&dyn Fn(&str) -> bool, GgmlDType)>,
) -> Result<Vec<u8>, WeightsError> {
    let config = serde_json::to_string(config).map_err(|e| WeightsError::BadConfig(e.to_string()))?;
    let mut meta: HashMap<String, String> = [
        ("cantor.kind".to_string(), kind.to_string()),
        ("cantor.version".to_string(), FORMAT_VERSION.to_string()),
        ("cantor.config".to_string(), config),
    ]
    .into_iter()
    .collect();
    let mut quant_meta = serde_json::Map::new();
    let mut converted: Vec<(String, Tensor)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        match quantize {
            Some((select, q)) if select(name) => {
                let qt = QTensor::quantize(&t.to_dtype(DType::F32)?, q)?;
                let bytes = qt.data()?.to_vec();
                let n = bytes.len();
                converted.push((name.clone(), Tensor::from_vec(bytes, n, &Device::Cpu)?));
                quant_meta.insert(name.clone(), serde_json::json!({"format": quant_name(q), "shape": t.dims()}));
            }
            _ => converted.push((name.clone(), t.to_dtype(dtype.unwrap_or(t.dtype()))?.contiguous()?)),
        }
    }
    if !quant_meta.is_empty() {
        meta.insert("cantor.quant".to_string(), serde_json::Value::Object(quant_meta).to_string());
    }
    converted.sort_by(|a, b| a.0.cmp(&b.0));
    safetensors::serialize(converted.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))
        .map_err(|e| WeightsError::Corrupt(e.to_string()))
}

/// A model's variables by name (what `to_bytes` and the trainers' checkpoints store).
pub fn var_tensors(vm: &VarMap) -> HashMap<String, Tensor> {
    vm.data().lock().expect("varmap lock").iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect()
}

/// Write atomically (temporary file, then rename) so an interrupted save never leaves a torn file.
pub fn save<C: Serialize>(
    path: &std::path::Path,
    kind: &str,
    config: &C,
    tensors: &HashMap<String, Tensor>,
    dtype: DType,
) -> Result<(), WeightsError> {
    let bytes = to_bytes(kind, config, tensors, dtype)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A parsed, not yet validated model file.
pub struct RawModelFile<C> {
    pub config: C,
    /// All tensors as f32 (quantised ones dequantised, so they are validated like the others).
    pub tensors: HashMap<String, Tensor>,
    /// The block format of the quantised tensors, if any: inference should quantise the same
    /// layers again (re-quantising dequantised blocks reproduces them exactly).
    pub quantized: Option<GgmlDType>,
}

/// Parse the header and tensors of a model file of `kind` (all tensors converted to f32).
pub fn parse<C: DeserializeOwned>(bytes: &[u8], kind: &str, device: &Device) -> Result<RawModelFile<C>, WeightsError> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| WeightsError::Corrupt(e.to_string()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let found_kind = meta.get("cantor.kind").ok_or(WeightsError::MissingHeader("cantor.kind"))?;
    if found_kind != kind {
        return Err(WeightsError::WrongKind { expected: kind.into(), found: found_kind.clone() });
    }
    let version = meta.get("cantor.version").ok_or(WeightsError::MissingHeader("cantor.version"))?;
    if version.parse::<u32>().ok() != Some(FORMAT_VERSION) {
        return Err(WeightsError::UnsupportedVersion { found: version.clone(), supported: FORMAT_VERSION });
    }
    let config = meta.get("cantor.config").ok_or(WeightsError::MissingHeader("cantor.config"))?;
    let config: C = serde_json::from_str(config).map_err(|e| WeightsError::BadConfig(e.to_string()))?;
    let quant: serde_json::Map<String, serde_json::Value> = match meta.get("cantor.quant") {
        Some(q) => serde_json::from_str(q).map_err(|e| WeightsError::BadConfig(format!("cantor.quant: {e}")))?,
        None => Default::default(),
    };
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Corrupt(e.to_string()))?;
    let mut tensors = HashMap::new();
    let mut quantized = None;
    for (name, view) in st.tensors() {
        let t = match quant.get(&name) {
            Some(q) => {
                let format = q["format"].as_str().unwrap_or_default();
                let dtype = quant_from_name(format).ok_or_else(|| WeightsError::UnknownQuantization(format.to_string()))?;
                let shape: Vec<usize> = serde_json::from_value(q["shape"].clone())
                    .map_err(|e| WeightsError::BadConfig(format!("shape of {name}: {e}")))?;
                let elems: usize = shape.iter().product();
                let expected = elems / dtype.block_size() * dtype.type_size();
                if view.data().len() != expected || elems % dtype.block_size() != 0 {
                    return Err(WeightsError::WrongShape { name, expected: vec![expected], found: vec![view.data().len()] });
                }
                quantized = Some(dtype);
                let words = aligned_words(view.data());
                let bytes: &[u8] = &bytemuck::cast_slice(&words)[..expected];
                let storage = QStorage::from_data(std::borrow::Cow::Borrowed(bytes), device, dtype)?;
                QTensor::new(storage, shape)?.dequantize(device)?
            }
            None => candle_core::safetensors::Load::load(&view, device)?.to_dtype(DType::F32)?,
        };
        tensors.insert(name.to_string(), t);
    }
    Ok(RawModelFile { config, tensors, quantized })
}

/// A `VarBuilder` backend that notes the name and shape of every tensor a model asks for and
/// hands it zeros: `build_checked` learns what a model expects without drawing random weights,
/// which was about half the time of loading the models (plugin activation).
struct ShapeRecorder(Arc<Mutex<HashMap<String, Vec<usize>>>>);

impl SimpleBackend for ShapeRecorder {
    fn get(&self, shape: Shape, name: &str, _: Init, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), shape.dims().to_vec());
        Tensor::zeros(shape, dtype, device)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("model construction asked for '{name}' without its shape")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        false
    }
}

/// Check `tensors` against what `build` creates (names and shapes) and that all are finite,
/// then build the model from them.
pub fn build_checked<C, M>(
    config: &C,
    tensors: HashMap<String, Tensor>,
    device: &Device,
    build: impl Fn(&C, VarBuilder) -> candle_core::Result<M>,
) -> Result<M, WeightsError> {
    let shapes = Arc::new(Mutex::new(HashMap::new()));
    build(config, VarBuilder::from_backend(Box::new(ShapeRecorder(shapes.clone())), DType::F32, device.clone()))?;
    let expected: HashMap<String, Vec<usize>> = std::mem::take(&mut *shapes.lock().unwrap_or_else(|e| e.into_inner()));
    let mut names: Vec<&String> = expected.keys().collect();
    names.sort();
    for name in names {
        let t = tensors.get(name).ok_or_else(|| WeightsError::MissingTensor(name.clone()))?;
        if t.dims() != expected[name].as_slice() {
            return Err(WeightsError::WrongShape { name: name.clone(), expected: expected[name].clone(), found: t.dims().to_vec() });
        }
        let finite = t.flatten_all()?.to_vec1::<f32>()?.iter().all(|v| v.is_finite());
        if !finite {
            return Err(WeightsError::NonFinite(name.clone()));
        }
    }
    if let Some(extra) = tensors.keys().find(|k| !expected.contains_key(*k)) {
        return Err(WeightsError::UnexpectedTensor(extra.clone()));
    }
    Ok(build(config, VarBuilder::from_tensors(tensors, DType::F32, device))?)
}
