//! ViT for image classification (google/vit-base-patch16-224): patches by a strided convolution,
//! a [CLS] token and learned positions, pre-norm encoder layers, the final norm, and a linear
//! classifier on [CLS]. Weights as the Hub's checkpoints name them (`encoder.layer.N.attention.
//! attention.query`, ...) or as transformers 5 names them (`layers.N.attention.q_proj`, `mlp.fc1`).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::config::Fields;
use super::layers::{Conv, LayerNorm, Linear, gelu_erf, linear};

#[derive(Debug, Clone)]
struct Layer {
    norm1: LayerNorm,
    /// Query, key and value projections as one.
    qkv: Linear,
    o: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

#[derive(Debug, Clone)]
pub struct Vit {
    patch: Conv,
    cls: Tensor,
    positions: Tensor,
    layers: Vec<Layer>,
    norm: LayerNorm,
    classifier: Linear,
    heads: usize,
    pub image_size: usize,
}

impl Vit {
    pub fn load(f: &Fields, labels: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let cfg = |k: &str| f.usize(k).map_err(|e| candle_core::Error::Msg(e.to_string()));
        let (h, n, heads, inter) =
            (cfg("hidden_size")?, cfg("num_hidden_layers")?, cfg("num_attention_heads")?, cfg("intermediate_size")?);
        let (image, patch, channels) = (cfg("image_size")?, cfg("patch_size")?, cfg("num_channels")?);
        if f.str_or("hidden_act", "gelu") != "gelu" {
            candle_core::bail!("hidden_act {:?} is not supported (gelu is)", f.str_or("hidden_act", ""));
        }
        if !f.bool_or("qkv_bias", true) {
            candle_core::bail!("qkv_bias false is not supported");
        }
        let eps = f.f64_or("layer_norm_eps", 1e-12);
        let vit = vb.pp("vit");
        let e = vit.pp("embeddings");
        let patches = (image / patch) * (image / patch);
        let p = e.pp("patch_embeddings.projection");
        let patch_conv = Conv::new(p.get((h, channels, patch, patch), "weight")?, Some(p.get(h, "bias")?), patch, 0)?;
        let new_names = vit.contains_tensor("layers.0.layernorm_before.weight");
        let mut layers = Vec::with_capacity(n);
        for i in 0..n {
            layers.push(if new_names {
                let l = vit.pp(format!("layers.{i}"));
                Layer {
                    norm1: LayerNorm::load(l.pp("layernorm_before"), h, eps)?,
                    qkv: Linear::fused(&[
                        linear(l.pp("attention.q_proj"), h, h)?,
                        linear(l.pp("attention.k_proj"), h, h)?,
                        linear(l.pp("attention.v_proj"), h, h)?,
                    ])?,
                    o: linear(l.pp("attention.o_proj"), h, h)?,
                    norm2: LayerNorm::load(l.pp("layernorm_after"), h, eps)?,
                    fc1: linear(l.pp("mlp.fc1"), h, inter)?,
                    fc2: linear(l.pp("mlp.fc2"), inter, h)?,
                }
            } else {
                let l = vit.pp(format!("encoder.layer.{i}"));
                Layer {
                    norm1: LayerNorm::load(l.pp("layernorm_before"), h, eps)?,
                    qkv: Linear::fused(&[
                        linear(l.pp("attention.attention.query"), h, h)?,
                        linear(l.pp("attention.attention.key"), h, h)?,
                        linear(l.pp("attention.attention.value"), h, h)?,
                    ])?,
                    o: linear(l.pp("attention.output.dense"), h, h)?,
                    norm2: LayerNorm::load(l.pp("layernorm_after"), h, eps)?,
                    fc1: linear(l.pp("intermediate.dense"), h, inter)?,
                    fc2: linear(l.pp("output.dense"), inter, h)?,
                }
            });
        }
        if h % heads != 0 {
            candle_core::bail!("hidden size {h} is not a multiple of {heads} attention heads");
        }
        Ok(Self {
            patch: patch_conv,
            cls: e.get((1, 1, h), "cls_token")?,
            positions: e.get((1, patches + 1, h), "position_embeddings")?,
            layers,
            norm: LayerNorm::load(vit.pp("layernorm"), h, eps)?,
            classifier: linear(vb.pp("classifier"), h, labels)?,
            heads,
            image_size: image,
        })
    }

    /// `pixels`: (batch, 3, size, size) → logits (batch, labels).
    pub fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let (b, _, hh, ww) = pixels.dims4()?;
        if hh != self.image_size || ww != self.image_size {
            candle_core::bail!("input image size ({hh}*{ww}) doesn't match the model ({0}*{0})", self.image_size);
        }
        let x = self.patch.forward(pixels)?.flatten_from(2)?.transpose(1, 2)?;
        let h = x.dim(2)?;
        let cls = self.cls.broadcast_as((b, 1, h))?;
        let mut x = Tensor::cat(&[&cls, &x], 1)?.broadcast_add(&self.positions)?;
        for l in &self.layers {
            x = self.layer(l, &x)?;
        }
        let cls = self.norm.forward(&x)?.narrow(1, 0, 1)?.squeeze(1)?;
        self.classifier.forward(&cls)
    }

    fn layer(&self, l: &Layer, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let d = h / self.heads;
        let y = l.norm1.forward(x)?;
        let split = |z: Tensor| -> candle_core::Result<Tensor> {
            z.reshape((b, t, self.heads, d))?.transpose(1, 2)?.contiguous()
        };
        let qkv = l.qkv.forward(&y)?;
        let part = |i: usize| split(qkv.narrow(2, i * h, h)?);
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let probs = candle_nn::ops::softmax_last_dim(&(q.matmul(&k.t()?.contiguous()?)? / (d as f64).sqrt())?)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        let x = (l.o.forward(&ctx)? + x)?;
        let y = l.fc2.forward(&gelu_erf(&l.fc1.forward(&l.norm2.forward(&x)?)?)?)?;
        y + x
    }
}
