//! Small layers the task models share.

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};

/// A dense layer with its bias, `weight` (out, in).
pub fn linear(vb: VarBuilder, inp: usize, out: usize) -> candle_core::Result<Linear> {
    Ok(Linear::new(vb.get((out, inp), "weight")?, Some(vb.get(out, "bias")?)))
}

/// LayerNorm with weight and bias; older BERT checkpoints name them `gamma` and `beta`.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    inner: candle_nn::LayerNorm,
}

impl LayerNorm {
    pub fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        let (w, b) = if !vb.contains_tensor("weight") && vb.contains_tensor("gamma") {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        Ok(Self { inner: candle_nn::LayerNorm::new(vb.get(size, w)?, vb.get(size, b)?, eps) })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.inner.forward(x)
    }
}
