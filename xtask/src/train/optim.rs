//! AdamW with its moments in plain tensors, so a checkpoint can save and restore them and a
//! resumed run continues exactly (candle-nn's AdamW keeps its state private).

use anyhow::Result;
use candle_core::{Tensor, Var};
use std::collections::HashMap;

/// Checkpoint tensor holding the optimiser's own step count.
const OPTIM_STEP: &str = "optim.step";

pub struct AdamW {
    /// (name, parameter) in a fixed order.
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub step: u64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamW {
    pub fn new(mut params: Vec<(String, Var)>) -> Result<Self> {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect::<candle_core::Result<Vec<_>>>()?;
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { params, m, v, step: 0, beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 1e-4 })
    }

    /// One update with learning rate `lr`; gradients are scaled by `grad_scale` (clipping).
    pub fn step(&mut self, grads: &candle_core::backprop::GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.step += 1;
        let bc1 = 1.0 - self.beta1.powi(self.step as i32);
        let bc2 = 1.0 - self.beta2.powi(self.step as i32);
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.as_tensor()) else { continue };
            // Detached: gradient tensors can carry the forward graph, which would then live on in the moments.
            let g = (g.detach() * grad_scale)?;
            self.m[i] = ((&self.m[i] * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            self.v[i] = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&self.m[i] / bc1)? / ((&self.v[i] / bc2)?.sqrt()? + self.eps)?)?;
            let decayed = (p.as_tensor() * (1.0 - lr * self.weight_decay))?;
            p.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// Global L2 norm of the gradients.
    pub fn grad_norm(&self, grads: &candle_core::backprop::GradStore) -> Result<f64> {
        let mut total = 0f64;
        for (_, p) in &self.params {
            if let Some(g) = grads.get(p.as_tensor()) {
                total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        Ok(total.sqrt())
    }

    /// Moments as named tensors (`adam.m.<param>`, `adam.v.<param>`) for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.insert(format!("adam.m.{name}"), self.m[i].clone());
            out.insert(format!("adam.v.{name}"), self.v[i].clone());
        }
        // Its own step count (bias correction), which differs from the run's after an adoption.
        // Not `adam.`-prefixed: publishing stores those as bf16, which would round it.
        if let Ok(step) = Tensor::new(&[self.step as f32], &candle_core::Device::Cpu) {
            out.insert(OPTIM_STEP.to_string(), step);
        }
        out
    }

    /// Restore moments saved by `state` (missing or reshaped ones stay zero, e.g. after adding a layer).
    /// The optimiser's own step count (bias correction) comes from the checkpoint; older ones
    /// lack it and use the run's step, unless they hold no moments at all (a fresh optimiser,
    /// e.g. adopted weights): then it restarts from 0, since with a step count in the thousands
    /// zero-started moments would make the first ~100 updates up to twice the rate in size.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        let mut any_moments = false;
        for (i, (name, p)) in self.params.iter().enumerate() {
            // Moments of a different shape (a warm start across architectures) stay zero.
            if let Some(m) = tensors.get(&format!("adam.m.{name}")).filter(|m| m.dims() == p.dims()) {
                self.m[i] = m.to_dtype(p.dtype())?;
            }
            if let Some(v) = tensors.get(&format!("adam.v.{name}")).filter(|v| v.dims() == p.dims()) {
                self.v[i] = v.to_dtype(p.dtype())?;
                // Second moments that underflowed to zero in an f16 file (`publish` writes bf16
                // for this reason) would divide first moments by eps: restart those parameters'
                // moments from zero.
                let zeros = self.v[i].eq(0f32)?.to_dtype(p.dtype())?.sum_all()?.to_scalar::<f32>()?;
                any_moments |= zeros < self.v[i].elem_count() as f32;
                if zeros > 0.0 {
                    let keep = self.v[i].ne(0f32)?.to_dtype(p.dtype())?;
                    self.m[i] = (&self.m[i] * &keep)?;
                }
            }
        }
        self.step = match tensors.get(OPTIM_STEP) {
            Some(t) => t.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?.first().copied().unwrap_or(0.0) as u64,
            None if any_moments => step,
            None => 0,
        };
        Ok(())
    }
}

/// Gradients above this global norm are scaled down to it.
pub const GRAD_CLIP: f64 = 1.0;
/// Steps of linear learning-rate warm-up.
pub const WARMUP_STEPS: u64 = 500;

impl AdamW {
    /// Backpropagate `loss` and update, with gradient clipping and learning-rate warm-up; a
    /// non-finite gradient skips the update (and says so). Returns (gradient norm, rate used).
    pub fn minimize(&mut self, loss: &Tensor, base_lr: f64, step: u64) -> Result<(f64, f64)> {
        self.minimize_with_warmup(loss, base_lr, step, WARMUP_STEPS)
    }

    /// `minimize` with a warm-up of `warmup` steps.
    pub fn minimize_with_warmup(&mut self, loss: &Tensor, base_lr: f64, step: u64, warmup: u64) -> Result<(f64, f64)> {
        let grads = loss.backward()?;
        let norm = self.grad_norm(&grads)?;
        let scale = if norm.is_finite() && norm > GRAD_CLIP { GRAD_CLIP / norm } else { 1.0 };
        let lr = base_lr * ((step + 1) as f64 / warmup.max(1) as f64).min(1.0);
        if norm.is_finite() {
            self.step(&grads, lr, scale)?;
        } else {
            println!("step {step}: non-finite gradient norm, update skipped");
        }
        Ok((norm, lr))
    }
}
