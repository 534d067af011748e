//! DETR for object detection (facebook/detr-resnet-50), as transformers runs it: the ResNet
//! backbone's last feature map, a 1×1 projection to `d_model`, sine position embeddings of the
//! (downsampled) pixel mask, a post-norm encoder whose self-attention adds the positions to
//! queries and keys, a post-norm decoder over `num_queries` zero queries with learned query
//! positions (self-attention: added to queries and keys; cross-attention: query positions to
//! queries, pixel positions to keys), its final norm, and the class (labels + "no object") and
//! box heads (a 3-layer MLP, sigmoid: cx, cy, w, h relative to the image).

use candle_core::{DType, Module, Tensor};
use candle_nn::{Embedding, VarBuilder};

use super::config::Fields;
use super::layers::{Conv, LayerNorm, Linear, linear};
use super::resnet::{ResNet, ResNetShape};

#[derive(Debug, Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
}

impl Attention {
    fn load(vb: VarBuilder, d: usize, heads: usize) -> candle_core::Result<Self> {
        // transformers 5 names the output `o_proj`; the Hub's checkpoints `out_proj`.
        let o = if vb.contains_tensor("o_proj.weight") { "o_proj" } else { "out_proj" };
        Ok(Self {
            q: linear(vb.pp("q_proj"), d, d)?,
            k: linear(vb.pp("k_proj"), d, d)?,
            v: linear(vb.pp("v_proj"), d, d)?,
            o: linear(vb.pp(o), d, d)?,
            heads,
        })
    }

    /// `q_in`, `k_in` (positions already added), `v_in`: (b, n, d); `bias` (b, 1, 1, m) or none.
    fn forward(
        &self,
        q_in: &Tensor,
        k_in: &Tensor,
        v_in: &Tensor,
        bias: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (b, n, d) = q_in.dims3()?;
        let m = k_in.dim(1)?;
        let hd = d / self.heads;
        let split = |x: Tensor, len: usize| -> candle_core::Result<Tensor> {
            x.reshape((b, len, self.heads, hd))?.transpose(1, 2)?.contiguous()
        };
        let q = split(self.q.forward(q_in)?, n)?;
        let k = split(self.k.forward(k_in)?, m)?;
        let v = split(self.v.forward(v_in)?, m)?;
        let mut scores = (q.matmul(&k.t()?.contiguous()?)? * (hd as f64).powf(-0.5))?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        self.o.forward(&probs.matmul(&v)?.transpose(1, 2)?.reshape((b, n, d))?)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn load(vb: VarBuilder, d: usize, ffn: usize) -> candle_core::Result<Self> {
        // transformers 5: `mlp.fc1`; the Hub: `fc1` on the layer.
        let m = if vb.contains_tensor("mlp.fc1.weight") { vb.pp("mlp") } else { vb };
        Ok(Self { fc1: linear(m.pp("fc1"), d, ffn)?, fc2: linear(m.pp("fc2"), ffn, d)? })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    attn: Attention,
    attn_norm: LayerNorm,
    mlp: Mlp,
    norm: LayerNorm,
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    self_attn: Attention,
    self_norm: LayerNorm,
    cross: Attention,
    cross_norm: LayerNorm,
    mlp: Mlp,
    norm: LayerNorm,
}

#[derive(Debug, Clone)]
pub struct Detr {
    backbone: ResNet,
    projection: Conv,
    queries: Embedding,
    encoder: Vec<EncoderLayer>,
    decoder: Vec<DecoderLayer>,
    decoder_norm: LayerNorm,
    classifier: Linear,
    boxes: Vec<Linear>,
    d: usize,
    num_queries: usize,
}

/// The backbone's shape when there are no weights to read it from: timm's by name
/// (`backbone: resnet50`), or transformers' ResNet from `backbone_config` (`embedding_size`,
/// `hidden_sizes`, `depths`).
fn configured_backbone_shape(f: &Fields, model_dir: &std::path::Path) -> candle_core::Result<ResNetShape> {
    let timm_name =
        f.v.get("backbone_config").filter(|b| b.get("model_type").and_then(|t| t.as_str()) == Some("timm_backbone"));
    if let Some(bc) = f.v.get("backbone_config").filter(|b| b.is_object() && timm_name.is_none()) {
        let list = |k: &str| -> Vec<usize> {
            bc.get(k)
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_u64()).map(|x| x as usize).collect())
                .unwrap_or_default()
        };
        let (depths, hidden) = (list("depths"), list("hidden_sizes"));
        if bc.get("layer_type").and_then(|v| v.as_str()).is_some_and(|t| t != "bottleneck") {
            candle_core::bail!(
                "backbone_config.layer_type {:?} is not supported (bottleneck is)",
                bc.get("layer_type")
            );
        }
        if bc.get("downsample_in_bottleneck").and_then(|v| v.as_bool()) == Some(true) {
            candle_core::bail!(
                "backbone_config.downsample_in_bottleneck true is not supported (the stride sits in the 3x3)"
            );
        }
        if depths.is_empty() || depths.len() != hidden.len() || hidden.iter().any(|h| h % 4 != 0) {
            candle_core::bail!("backbone_config needs depths and hidden_sizes of one length, widths divisible by 4");
        }
        let stem = bc.get("embedding_size").and_then(|v| v.as_u64()).unwrap_or(64) as usize;
        return Ok(ResNetShape { stem, depths, widths: hidden.iter().map(|h| h / 4).collect() });
    }
    let name = match timm_name.and_then(|b| b.get("backbone")).and_then(|n| n.as_str()) {
        Some(n) => n,
        None => f.str_or("backbone", "resnet50"),
    };
    if let Some(folder) = name.strip_prefix("local-dir:") {
        return timm_folder_shape(&model_dir.join(folder));
    }
    ResNetShape::timm(name).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "backbone {name:?}: random weights need a backbone named resnet50 or resnet101, a timm folder (local-dir:), or a transformers backbone_config"
        ))
    })
}

/// A timm backbone kept in a folder beside the model (`backbone: local-dir:NAME`, how a config
/// names a shrunk timm ResNet): its `config.json` names the architecture and `model_args`
/// (`layers`: blocks per stage, `channels`: bottleneck widths, `stem_width`).
fn timm_folder_shape(folder: &std::path::Path) -> candle_core::Result<ResNetShape> {
    let path = folder.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| candle_core::Error::Msg(format!("timm backbone {}: {e}", path.display())))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| candle_core::Error::Msg(format!("timm backbone {} is not JSON: {e}", path.display())))?;
    let arch = v.get("architecture").and_then(|a| a.as_str()).unwrap_or("");
    let mut shape = ResNetShape::timm(arch).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "timm backbone {}: architecture {arch:?} (resnet50, resnet101 are read)",
            path.display()
        ))
    })?;
    let args = v.get("model_args");
    let list = |k: &str| -> Option<Vec<usize>> {
        args?.get(k)?.as_array()?.iter().map(|x| x.as_u64().map(|x| x as usize)).collect()
    };
    if let Some(layers) = list("layers") {
        shape.depths = layers;
    }
    if let Some(channels) = list("channels") {
        shape.widths = channels;
    }
    if let Some(stem) = args.and_then(|a| a.get("stem_width")).and_then(|s| s.as_u64()) {
        shape.stem = stem as usize;
    }
    if shape.depths.len() != shape.widths.len() {
        candle_core::bail!("timm backbone {}: model_args layers and channels differ in length", path.display());
    }
    Ok(shape)
}

impl Detr {
    /// `random_in`: the model's folder when the weights are drawn (no_weights), so the
    /// backbone's shape comes from the config (and a timm folder beside it); otherwise from the
    /// weights themselves.
    pub fn load(
        f: &Fields,
        labels: usize,
        vb: VarBuilder,
        random_in: Option<&std::path::Path>,
    ) -> candle_core::Result<Self> {
        let cfg = |k: &str| f.usize(k).map_err(|e| candle_core::Error::Msg(e.to_string()));
        let d = cfg("d_model")?;
        let num_queries = cfg("num_queries")?;
        if f.str_or("position_embedding_type", "sine") != "sine" {
            candle_core::bail!(
                "position_embedding_type {:?} is not supported (sine is)",
                f.str_or("position_embedding_type", "")
            );
        }
        if f.bool_or("dilation", false) {
            candle_core::bail!("dilation (DC5 backbones) is not supported");
        }
        if f.str_or("activation_function", "relu") != "relu" {
            candle_core::bail!(
                "activation_function {:?} is not supported (relu is)",
                f.str_or("activation_function", "")
            );
        }
        let m = vb.pp("model");
        let backbone_vb = ["backbone.conv_encoder.model", "backbone.model", "backbone.conv_encoder", "backbone"]
            .into_iter()
            .map(|p| m.pp(p))
            .find(|b| b.contains_tensor("conv1.weight") || b.contains_tensor("embedder.embedder.convolution.weight"))
            .unwrap_or_else(|| m.pp("backbone.conv_encoder.model"));
        let shape = match random_in {
            Some(dir) => configured_backbone_shape(f, dir)?,
            None => ResNetShape::from_weights(&backbone_vb)?,
        };
        let backbone = ResNet::load(&shape, backbone_vb)?;
        let p = m.pp("input_projection");
        let projection = Conv::new(p.get((d, shape.out_channels(), 1, 1), "weight")?, Some(p.get(d, "bias")?), 1, 0)?;
        let queries = Embedding::new(m.pp("query_position_embeddings").get((num_queries, d), "weight")?, d);
        let (enc_heads, dec_heads) = (cfg("encoder_attention_heads")?, cfg("decoder_attention_heads")?);
        let (enc_ffn, dec_ffn) = (cfg("encoder_ffn_dim")?, cfg("decoder_ffn_dim")?);
        let eps = 1e-5;
        let encoder = (0..cfg("encoder_layers")?)
            .map(|i| {
                let l = m.pp(format!("encoder.layers.{i}"));
                Ok(EncoderLayer {
                    attn: Attention::load(l.pp("self_attn"), d, enc_heads)?,
                    attn_norm: LayerNorm::load(l.pp("self_attn_layer_norm"), d, eps)?,
                    mlp: Mlp::load(l.clone(), d, enc_ffn)?,
                    norm: LayerNorm::load(l.pp("final_layer_norm"), d, eps)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let decoder = (0..cfg("decoder_layers")?)
            .map(|i| {
                let l = m.pp(format!("decoder.layers.{i}"));
                Ok(DecoderLayer {
                    self_attn: Attention::load(l.pp("self_attn"), d, dec_heads)?,
                    self_norm: LayerNorm::load(l.pp("self_attn_layer_norm"), d, eps)?,
                    cross: Attention::load(l.pp("encoder_attn"), d, dec_heads)?,
                    cross_norm: LayerNorm::load(l.pp("encoder_attn_layer_norm"), d, eps)?,
                    mlp: Mlp::load(l.clone(), d, dec_ffn)?,
                    norm: LayerNorm::load(l.pp("final_layer_norm"), d, eps)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        if d % enc_heads != 0 || d % dec_heads != 0 || d % 2 != 0 {
            candle_core::bail!("d_model {d} must be even and divisible by the attention heads");
        }
        Ok(Self {
            backbone,
            projection,
            queries,
            encoder,
            decoder,
            decoder_norm: LayerNorm::load(m.pp("decoder.layernorm"), d, eps)?,
            classifier: linear(vb.pp("class_labels_classifier"), d, labels + 1)?,
            boxes: vec![
                linear(vb.pp("bbox_predictor.layers.0"), d, d)?,
                linear(vb.pp("bbox_predictor.layers.1"), d, d)?,
                linear(vb.pp("bbox_predictor.layers.2"), d, 4)?,
            ],
            d,
            num_queries,
        })
    }

    /// `pixels` (b, 3, H, W), `mask` (b, H, W) u8 1 on real pixels → (logits (b, queries,
    /// labels + 1), boxes (b, queries, 4)).
    pub fn forward(&self, pixels: &Tensor, mask: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, _, h, w) = pixels.dims4()?;
        let features = self.backbone.forward(pixels)?;
        let (_, _, fh, fw) = features.dims4()?;
        let small = nearest_mask(mask, h, w, fh, fw)?;
        let pos = sine_positions(&small, b, fh, fw, self.d, pixels.dtype())?;
        let x = self.projection.forward(&features)?.flatten_from(2)?.transpose(1, 2)?.contiguous()?;
        let min = match pixels.dtype() {
            DType::F16 => -65504.0,
            DType::BF16 => -3.389_531_389_251_535e38,
            _ => f64::from(f32::MIN),
        };
        let bias = (small.to_dtype(pixels.dtype())?.affine(-1.0, 1.0)? * min)?.reshape((b, 1, 1, fh * fw))?;
        let mut memory = x;
        for l in &self.encoder {
            let qk = (&memory + &pos)?;
            let a = l.attn.forward(&qk, &qk, &memory, Some(&bias))?;
            memory = l.attn_norm.forward(&(&memory + a)?)?;
            memory = l.norm.forward(&(&memory + l.mlp.forward(&memory)?)?)?;
        }
        let query_pos =
            self.queries.embeddings().unsqueeze(0)?.broadcast_as((b, self.num_queries, self.d))?.contiguous()?;
        let mut q = query_pos.zeros_like()?;
        let keys = (&memory + &pos)?;
        for l in &self.decoder {
            let qk = (&q + &query_pos)?;
            let a = l.self_attn.forward(&qk, &qk, &q, None)?;
            q = l.self_norm.forward(&(&q + a)?)?;
            let c = l.cross.forward(&(&q + &query_pos)?, &keys, &memory, Some(&bias))?;
            q = l.cross_norm.forward(&(&q + c)?)?;
            q = l.norm.forward(&(&q + l.mlp.forward(&q)?)?)?;
        }
        let q = self.decoder_norm.forward(&q)?;
        let logits = self.classifier.forward(&q)?;
        let mut y = q;
        for (i, layer) in self.boxes.iter().enumerate() {
            y = layer.forward(&y)?;
            if i + 1 < self.boxes.len() {
                y = y.relu()?;
            }
        }
        Ok((logits, candle_nn::ops::sigmoid(&y)?))
    }
}

/// The pixel mask at the feature map's size, as torch's `interpolate(mode="nearest")` samples
/// it: output (i, j) reads input (⌊i·H/h⌋, ⌊j·W/w⌋). Returns (b, h, w) u8.
fn nearest_mask(mask: &Tensor, h: usize, w: usize, fh: usize, fw: usize) -> candle_core::Result<Tensor> {
    let rows: Vec<u32> =
        (0..fh).map(|i| ((i as f64 * (h as f64 / fh as f64)).floor() as usize).min(h - 1) as u32).collect();
    let cols: Vec<u32> =
        (0..fw).map(|j| ((j as f64 * (w as f64 / fw as f64)).floor() as usize).min(w - 1) as u32).collect();
    let dev = mask.device();
    mask.index_select(&Tensor::from_vec(rows, fh, dev)?, 1)?.index_select(&Tensor::from_vec(cols, fw, dev)?, 2)
}

/// DETR's sine position embedding of a mask (b, h, w): cumulative sums of the mask down and
/// across, normalised to [0, 2π] by the last row/column (+1e-6), divided by 10000^(2⌊i/2⌋/n)
/// for n = d/2 features each, sin on even and cos on odd features, y's then x's. → (b, h·w, d).
fn sine_positions(mask: &Tensor, b: usize, h: usize, w: usize, d: usize, dtype: DType) -> candle_core::Result<Tensor> {
    let n = d / 2;
    let m: Vec<Vec<Vec<u8>>> = mask.to_vec3()?;
    let dim_t: Vec<f32> = (0..n).map(|i| 10000f32.powf(2.0 * (i / 2) as f32 / n as f32)).collect();
    let scale = 2.0 * std::f32::consts::PI;
    let mut out = vec![0f32; b * h * w * d];
    for (bi, mb) in m.iter().enumerate() {
        // Cumulative sums in float32, as torch computes them.
        let mut y = vec![0f32; h * w];
        let mut x = vec![0f32; h * w];
        for i in 0..h {
            for j in 0..w {
                let v = f32::from(mb[i][j]);
                y[i * w + j] = v + if i > 0 { y[(i - 1) * w + j] } else { 0.0 };
                x[i * w + j] = v + if j > 0 { x[i * w + j - 1] } else { 0.0 };
            }
        }
        for i in 0..h {
            for j in 0..w {
                let ye = y[i * w + j] / (y[(h - 1) * w + j] + 1e-6) * scale;
                let xe = x[i * w + j] / (x[i * w + w - 1] + 1e-6) * scale;
                let cell = &mut out[((bi * h + i) * w + j) * d..((bi * h + i) * w + j + 1) * d];
                for k in 0..n {
                    let (py, px) = (ye / dim_t[k], xe / dim_t[k]);
                    cell[k] = if k % 2 == 0 { py.sin() } else { py.cos() };
                    cell[n + k] = if k % 2 == 0 { px.sin() } else { px.cos() };
                }
            }
        }
    }
    Tensor::from_vec(out, (b, h * w, d), mask.device())?.to_dtype(dtype)
}
