//! The decoder: one implementation for every architecture the engine runs (`config.rs` lists
//! them), with per-sequence attention masks and positions, so that left-padded prompts in a
//! batch give exactly the tokens they give alone, and a KV cache. What differs between
//! architectures is described feature by feature in [`ModelConfig`] (norm style, sandwich
//! norms, q/k norms, which layers rotate or slide, fused projections, experts) and read here;
//! weight names follow the family (and, for image-text models, where the text tower sits).
//!
//! Written on candle's tensor ops rather than candle-transformers' models because those take no
//! attention mask: a padded batch would attend to its padding.

use candle_core::quantized::{QMatMul, QTensor, gguf_file};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use super::config::{Activation, Family, ModelConfig};
use super::moe::Experts;
use super::quant::QuantLinear;
use super::rope::RopeTables;

pub use super::rope::MAX_POSITIONS;

/// RMSNorm with its weight; Gemma's scales by (1 + w) and computes in float32.
#[derive(Debug, Clone)]
struct RmsNorm {
    /// The factor itself: `w`, or `1 + w` in float32 for Gemma.
    weight: Tensor,
    eps: f64,
    in_f32: bool,
}

impl RmsNorm {
    fn load(vb: VarBuilder, size: usize, c: &ModelConfig) -> candle_core::Result<Self> {
        let w = vb.get(size, "weight")?;
        if c.norm_adds_one {
            Ok(Self { weight: (w.to_dtype(DType::F32)? + 1.0)?, eps: c.rms_norm_eps, in_f32: true })
        } else {
            Ok(Self { weight: w, eps: c.rms_norm_eps, in_f32: false })
        }
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.in_f32 && x.dtype() != DType::F32 {
            let y = candle_nn::ops::rms_norm(&x.to_dtype(DType::F32)?, &self.weight, self.eps as f32)?;
            return y.to_dtype(x.dtype());
        }
        candle_nn::ops::rms_norm(x, &self.weight, self.eps as f32)
    }
}

/// A projection: dense (safetensors) or quantized (GGUF, kept quantized in memory: candle's
/// kernels, or energy-star's for the types candle multiplies with a scalar loop).
#[derive(Debug, Clone)]
enum Proj {
    Dense(Linear),
    Quant(QMatMul),
    Kernels(QuantLinear),
}

impl Proj {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Proj::Dense(l) => l.forward(x),
            Proj::Quant(q) => q.forward(x),
            Proj::Kernels(q) => q.forward(x),
        }
    }

    /// A GGUF weight as stored, multiplied by the fastest kernel this device has for its type.
    fn quantized(q: QTensor, device: &Device) -> candle_core::Result<Self> {
        if device.is_cpu()
            && let Some(l) = QuantLinear::from_qtensor(&q)?
        {
            return Ok(Proj::Kernels(l));
        }
        Ok(Proj::Quant(QMatMul::from_qtensor(q)?))
    }
}

/// The token embedding: a dense table, or a GGUF table kept quantized (rows dequantized as they
/// are looked up), which a tied output projection then shares.
#[derive(Debug, Clone)]
enum TokenEmbedding {
    Dense(Embedding),
    Quant(QMatMul),
}

impl TokenEmbedding {
    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            TokenEmbedding::Dense(e) => e.forward(ids),
            TokenEmbedding::Quant(q) => q.embedding(ids),
        }
    }
}

fn linear(vb: VarBuilder, inp: usize, out: usize, bias: bool) -> candle_core::Result<Proj> {
    let w = vb.get((out, inp), "weight")?;
    let b = if bias { Some(vb.get(out, "bias")?) } else { None };
    Ok(Proj::Dense(Linear::new(w, b)))
}

/// Queries, keys and values: three projections, or Phi-3's one (q rows, then k, then v).
#[derive(Debug, Clone)]
enum Qkv {
    Separate { q: Proj, k: Proj, v: Proj },
    Fused(Proj),
}

impl Qkv {
    /// Three projections, stacked into one where energy-star's kernels hold them (one product,
    /// one quantization of the activations).
    fn of(q: Proj, k: Proj, v: Proj) -> Self {
        if let (Proj::Kernels(a), Proj::Kernels(b), Proj::Kernels(c)) = (&q, &k, &v)
            && let Some(all) = QuantLinear::stack(&[a, b, c])
        {
            return Qkv::Fused(Proj::Kernels(all));
        }
        Qkv::Separate { q, k, v }
    }
}

#[derive(Debug, Clone)]
struct Attention {
    qkv: Qkv,
    o: Proj,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    /// gpt-oss: one logit per head, (heads,), joining each softmax as a column of its own.
    sinks: Option<Tensor>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Which of the decoder's rope tables this layer rotates with; none for NoPE layers.
    rope: Option<usize>,
}

/// Gate and up: two projections, or Phi-3's one (gate rows, then up).
#[derive(Debug, Clone)]
enum GateUp {
    Separate { gate: Proj, up: Proj },
    Fused(Proj),
}

impl GateUp {
    /// Gate and up, stacked into one where energy-star's kernels hold them.
    fn of(gate: Proj, up: Proj) -> Self {
        if let (Proj::Kernels(g), Proj::Kernels(u)) = (&gate, &up)
            && let Some(both) = QuantLinear::stack(&[g, u])
        {
            return GateUp::Fused(Proj::Kernels(both));
        }
        GateUp::Separate { gate, up }
    }
}

/// The feed-forward half of a layer.
#[derive(Debug, Clone)]
enum Mlp {
    /// down(act(gate(x)) · up(x)).
    Gated {
        gate_up: GateUp,
        down: Proj,
        act: Activation,
    },
    Experts(Experts),
}

fn activate(x: &Tensor, act: Activation) -> candle_core::Result<Tensor> {
    match act {
        Activation::Silu => candle_nn::ops::silu(x),
        Activation::GeluTanh => x.gelu(),
    }
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Mlp::Gated { gate_up, down, act } => {
                let (gate, up) = match gate_up {
                    GateUp::Separate { gate, up } => (gate.forward(x)?, up.forward(x)?),
                    GateUp::Fused(p) => {
                        let both = p.forward(x)?;
                        let half = both.dim(candle_core::D::Minus1)? / 2;
                        (
                            both.narrow(candle_core::D::Minus1, 0, half)?,
                            both.narrow(candle_core::D::Minus1, half, half)?,
                        )
                    }
                };
                down.forward(&(activate(&gate, *act)? * up)?)
            }
            Mlp::Experts(e) => e.forward(x),
        }
    }
}

#[derive(Debug, Clone)]
struct Layer {
    attn: Attention,
    mlp: Mlp,
    /// Attends within the sliding window rather than to the whole sequence.
    sliding: bool,
    /// Before attention (`input_layernorm`).
    attn_norm: RmsNorm,
    /// Gemma: on the attention's output, before the residual (`post_attention_layernorm`).
    attn_out_norm: Option<RmsNorm>,
    /// Before the MLP (`post_attention_layernorm`; Gemma's `pre_feedforward_layernorm`).
    mlp_norm: RmsNorm,
    /// Gemma: on the MLP's output, before the residual (`post_feedforward_layernorm`).
    mlp_out_norm: Option<RmsNorm>,
}

/// A loaded decoder.
pub struct Decoder {
    pub config: ModelConfig,
    embed: TokenEmbedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Proj,
    /// GGUF files store q and k rows permuted for interleaved rotary pairs (llama.cpp's
    /// convention); Hugging Face weights rotate halves.
    rope_interleaved: bool,
    /// The full layers' tables, then (Gemma 3) the sliding layers'.
    ropes: Vec<RopeTables>,
    pub device: Device,
    pub dtype: DType,
}

/// Per-layer keys and values of the sequences generated so far: (batch, kv_heads, len, head_dim).
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn new(layers: usize) -> Self {
        Self { layers: vec![None; layers] }
    }
}

/// Where the text model's weights sit: `model.` for a causal LM; an image-text checkpoint's
/// text tower under `language_model.model.` (as the Hub's Gemma 3 files name it) or
/// `model.language_model.` (as transformers 5 saves it).
fn text_tower<'a>(vb: &VarBuilder<'a>) -> candle_core::Result<(VarBuilder<'a>, &'static str)> {
    for (model, head) in
        [("model", "lm_head"), ("language_model.model", "language_model.lm_head"), ("model.language_model", "lm_head")]
    {
        if vb.contains_tensor(&format!("{model}.embed_tokens.weight")) {
            return Ok((vb.pp(model), head));
        }
    }
    candle_core::bail!(
        "no embed_tokens.weight under model., language_model.model. or model.language_model.: not a checkpoint of this architecture"
    )
}

impl Decoder {
    /// Builds the decoder from `vb` (weights named as transformers and the Hub name them).
    pub fn load(config: ModelConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let c = &config;
        let device = vb.device().clone();
        let dtype = vb.dtype();
        let (m, head_name) = text_tower(&vb)?;
        let embed_w = m.pp("embed_tokens").get((c.vocab_size, c.hidden_size), "weight")?;
        let embed = TokenEmbedding::Dense(Embedding::new(embed_w.clone(), c.hidden_size));
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            layers.push(Self::load_layer(c, i, m.pp(format!("layers.{i}")))?);
        }
        let norm = RmsNorm::load(m.pp("norm"), c.hidden_size, c)?;
        let lm_head = if vb.contains_tensor(&format!("{head_name}.weight")) {
            linear(vb.pp(head_name), c.hidden_size, c.vocab_size, false)?
        } else if c.tie_word_embeddings {
            Proj::Dense(Linear::new(embed_w, None))
        } else {
            candle_core::bail!("{head_name}.weight is missing and tie_word_embeddings is false")
        };
        let ropes = rope_tables(c, &device, dtype)?;
        Ok(Self { ropes, config, embed, layers, norm, lm_head, rope_interleaved: false, device, dtype })
    }

    fn load_layer(c: &ModelConfig, i: usize, l: VarBuilder) -> candle_core::Result<Layer> {
        let a = l.pp("self_attn");
        let (q_out, kv_out) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        let qkv = match c.family {
            Family::Phi3 => Qkv::Fused(linear(a.pp("qkv_proj"), c.hidden_size, q_out + 2 * kv_out, c.qkv_bias)?),
            _ => Qkv::Separate {
                q: linear(a.pp("q_proj"), c.hidden_size, q_out, c.qkv_bias)?,
                k: linear(a.pp("k_proj"), c.hidden_size, kv_out, c.qkv_bias)?,
                v: linear(a.pp("v_proj"), c.hidden_size, kv_out, c.qkv_bias)?,
            },
        };
        let (q_norm, k_norm) = if c.qk_norm {
            (Some(RmsNorm::load(a.pp("q_norm"), c.head_dim, c)?), Some(RmsNorm::load(a.pp("k_norm"), c.head_dim, c)?))
        } else {
            (None, None)
        };
        let sliding = c.sliding_layers[i];
        let rope = match (c.rope_layers[i], sliding && c.sliding_rope.is_some()) {
            (false, _) => None,
            (true, false) => Some(0),
            (true, true) => Some(1),
        };
        let attn = Attention {
            qkv,
            o: linear(a.pp("o_proj"), q_out, c.hidden_size, c.o_bias)?,
            q_norm,
            k_norm,
            sinks: if c.attention_sinks { Some(a.get(c.num_heads, "sinks")?) } else { None },
            heads: c.num_heads,
            kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
            rope,
        };
        let mlp = match (&c.moe, c.moe_layers[i]) {
            (Some(moe), true) => {
                // Mixtral's checkpoints name the block `block_sparse_moe`; transformers 5 saves `mlp`.
                let block = if c.family == Family::Mixtral && l.contains_tensor("block_sparse_moe.gate.weight") {
                    l.pp("block_sparse_moe")
                } else {
                    l.pp("mlp")
                };
                Mlp::Experts(Experts::load(c, moe, block)?)
            }
            _ => {
                let m = l.pp("mlp");
                let (h, inter) = (c.hidden_size, c.intermediate_size);
                let gate_up = match c.family {
                    Family::Phi3 => GateUp::Fused(linear(m.pp("gate_up_proj"), h, 2 * inter, c.mlp_bias)?),
                    _ => GateUp::Separate {
                        gate: linear(m.pp("gate_proj"), h, inter, c.mlp_bias)?,
                        up: linear(m.pp("up_proj"), h, inter, c.mlp_bias)?,
                    },
                };
                Mlp::Gated { gate_up, down: linear(m.pp("down_proj"), inter, h, c.mlp_bias)?, act: c.activation }
            }
        };
        let h = c.hidden_size;
        let (mlp_norm_name, sandwich) = match c.sandwich_norms {
            true => ("pre_feedforward_layernorm", true),
            false => ("post_attention_layernorm", false),
        };
        Ok(Layer {
            attn,
            mlp,
            sliding,
            attn_norm: RmsNorm::load(l.pp("input_layernorm"), h, c)?,
            attn_out_norm: if sandwich { Some(RmsNorm::load(l.pp("post_attention_layernorm"), h, c)?) } else { None },
            mlp_norm: RmsNorm::load(l.pp(mlp_norm_name), h, c)?,
            mlp_out_norm: if sandwich { Some(RmsNorm::load(l.pp("post_feedforward_layernorm"), h, c)?) } else { None },
        })
    }

    /// Builds the decoder from a GGUF file's tensors (llama.cpp names); projections stay
    /// quantized, norms and the embedding are dequantized to float32.
    pub fn load_gguf<R: std::io::Read + std::io::Seek>(
        config: ModelConfig,
        content: &gguf_file::Content,
        r: &mut R,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let c = &config;
        let mut get = |name: &str| -> candle_core::Result<QTensor> { content.tensor(r, name, device) };
        let dense = |q: QTensor| q.dequantize(device);
        // As llama.cpp: the table stays quantized, and a tied output projection multiplies by it.
        let embed_table = QMatMul::from_qtensor(get("token_embd.weight")?)?;
        let embed = TokenEmbedding::Quant(embed_table.clone());
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let mut q = |n: &str| -> candle_core::Result<Proj> {
                Proj::quantized(get(&format!("blk.{i}.{n}.weight"))?, device)
            };
            let attn = Attention {
                qkv: Qkv::of(q("attn_q")?, q("attn_k")?, q("attn_v")?),
                o: q("attn_output")?,
                q_norm: None,
                k_norm: None,
                sinks: None,
                heads: c.num_heads,
                kv_heads: c.num_kv_heads,
                head_dim: c.head_dim,
                rope: Some(0),
            };
            let mlp = Mlp::Gated {
                gate_up: GateUp::of(q("ffn_gate")?, q("ffn_up")?),
                down: q("ffn_down")?,
                act: Activation::Silu,
            };
            let mut norm = |n: &str| -> candle_core::Result<RmsNorm> {
                Ok(RmsNorm { weight: dense(get(&format!("blk.{i}.{n}.weight"))?)?, eps: c.rms_norm_eps, in_f32: false })
            };
            layers.push(Layer {
                attn,
                mlp,
                sliding: false,
                attn_norm: norm("attn_norm")?,
                attn_out_norm: None,
                mlp_norm: norm("ffn_norm")?,
                mlp_out_norm: None,
            });
        }
        let norm = RmsNorm { weight: dense(get("output_norm.weight")?)?, eps: c.rms_norm_eps, in_f32: false };
        // The tied head stays with candle's kernel on the shared table: through energy-star's
        // (a copy of the blocks) batch-1 decoding measured slower, batch 8 faster.
        let lm_head = if content.tensor_infos.contains_key("output.weight") {
            Proj::quantized(get("output.weight")?, device)?
        } else {
            Proj::Quant(embed_table)
        };
        let ropes = rope_tables(c, device, DType::F32)?;
        Ok(Self {
            ropes,
            config,
            embed,
            layers,
            norm,
            lm_head,
            rope_interleaved: true,
            device: device.clone(),
            dtype: DType::F32,
        })
    }

    /// Whether a decode step at `positions` (one per sequence) takes some sequence past
    /// LongRoPE's original context: its cached keys were rotated with the short factors, and
    /// transformers then recomputes the whole sequence with the long ones.
    pub fn crosses_rope_switch(&self, positions: &[Vec<u32>]) -> bool {
        self.ropes
            .iter()
            .filter_map(RopeTables::long_after)
            .any(|limit| positions.iter().flatten().any(|&p| p as usize == limit))
    }

    /// Runs `ids` (batch, new_len) through the model, appending to `cache`.
    ///
    /// `positions` (batch × new_len) are each token's position in its own sequence; `mask`
    /// (batch × total_len) marks real tokens (1) and padding (0) over the cache and the new
    /// tokens. Returns the logits of the last new position of each sequence: (batch, vocab).
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &[Vec<u32>],
        mask: &[Vec<u8>],
        cache: &mut KvCache,
    ) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let total = mask.first().map(Vec::len).unwrap_or(0);
        let past = total - t;
        let full = self.attention_bias(mask, b, t, past, None)?;
        let windowed = match self.config.sliding_window {
            Some(w) if self.layers.iter().any(|l| l.sliding) => Some(self.attention_bias(mask, b, t, past, Some(w))?),
            _ => None,
        };
        let rotations =
            self.ropes.iter().map(|r| r.gather(positions, &self.device)).collect::<candle_core::Result<Vec<_>>>()?;
        let mut x = self.embed.forward(ids)?;
        if let Some(scale) = self.config.embedding_scale {
            // transformers scales by a float32 √hidden cast to the weights' dtype.
            x = x.affine(f64::from(scale as f32), 0.0)?;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.attn_norm.forward(&x)?;
            let bias = match (&windowed, layer.sliding) {
                (Some(w), true) => w,
                _ => &full,
            };
            let rotation = layer.attn.rope.map(|r| &rotations[r]);
            let mut a = self.attend(&layer.attn, &h, rotation, bias, &mut cache.layers[i])?;
            if let Some(n) = &layer.attn_out_norm {
                a = n.forward(&a)?;
            }
            x = (x + a)?;
            let mut m = layer.mlp.forward(&layer.mlp_norm.forward(&x)?)?;
            if let Some(n) = &layer.mlp_out_norm {
                m = n.forward(&m)?;
            }
            x = (x + m)?;
        }
        let last = x.narrow(1, t - 1, 1)?.squeeze(1)?.contiguous()?;
        let logits = self.lm_head.forward(&self.norm.forward(&last)?)?;
        logits.to_dtype(DType::F32)
    }

    /// Additive attention bias (batch, 1, new_len, total_len): 0 where a query may look,
    /// -inf elsewhere (future tokens, padding, beyond the sliding `window`: a query sees keys
    /// fewer than `window` real tokens back, itself included). A padding query may look at
    /// itself, so that its row is never empty (an empty row's NaN would reach real tokens
    /// through 0 × NaN in the value product).
    fn attention_bias(
        &self,
        mask: &[Vec<u8>],
        b: usize,
        t: usize,
        past: usize,
        window: Option<usize>,
    ) -> candle_core::Result<Tensor> {
        let total = past + t;
        let mut data = vec![0f32; b * t * total];
        for (bi, row) in mask.iter().enumerate() {
            // real[i] = real tokens before slot i, for the sliding window's distance.
            let mut real = vec![0usize; total + 1];
            for i in 0..total {
                real[i + 1] = real[i] + row[i] as usize;
            }
            for qi in 0..t {
                let qpos = past + qi;
                for kj in 0..total {
                    let mut allowed = kj <= qpos && row[kj] == 1;
                    if let Some(w) = window
                        && allowed
                    {
                        // Distance in real tokens, not slots: padding does not count.
                        allowed = real[qpos] - real[kj] < w;
                    }
                    if row[qpos] == 0 {
                        allowed = kj == qpos;
                    }
                    data[(bi * t + qi) * total + kj] = if allowed { 0.0 } else { f32::NEG_INFINITY };
                }
            }
        }
        Tensor::from_vec(data, (b, 1, t, total), &self.device)?.to_dtype(self.dtype)
    }

    /// Rotates the leading `rotary_dim` dimensions of each head of `x` (b, heads, t, head_dim).
    fn rotate(&self, x: &Tensor, (cos, sin): &(Tensor, Tensor)) -> candle_core::Result<Tensor> {
        let head_dim = x.dim(3)?;
        let rotary_dim = 2 * cos.dim(2)?;
        let rope = |x: &Tensor| {
            if self.rope_interleaved {
                candle_nn::rotary_emb::rope_i(x, cos, sin)
            } else {
                candle_nn::rotary_emb::rope(x, cos, sin)
            }
        };
        if rotary_dim == head_dim {
            return rope(x);
        }
        let turned = rope(&x.narrow(3, 0, rotary_dim)?.contiguous()?)?;
        Tensor::cat(&[&turned, &x.narrow(3, rotary_dim, head_dim - rotary_dim)?], 3)?.contiguous()
    }

    fn attend(
        &self,
        a: &Attention,
        h: &Tensor,
        rotation: Option<&(Tensor, Tensor)>,
        bias: &Tensor,
        cache: &mut Option<(Tensor, Tensor)>,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = h.dims3()?;
        let (q, k, v) = match &a.qkv {
            Qkv::Separate { q, k, v } => (q.forward(h)?, k.forward(h)?, v.forward(h)?),
            Qkv::Fused(p) => {
                let all = p.forward(h)?;
                let (q_out, kv_out) = (a.heads * a.head_dim, a.kv_heads * a.head_dim);
                (all.narrow(2, 0, q_out)?, all.narrow(2, q_out, kv_out)?, all.narrow(2, q_out + kv_out, kv_out)?)
            }
        };
        let q = q.reshape((b, t, a.heads, a.head_dim))?;
        let k = k.reshape((b, t, a.kv_heads, a.head_dim))?;
        let v = v.reshape((b, t, a.kv_heads, a.head_dim))?;
        let (q, k) = match (&a.q_norm, &a.k_norm) {
            (Some(qn), Some(kn)) => (qn.forward(&q)?, kn.forward(&k)?),
            _ => (q, k),
        };
        let q = q.transpose(1, 2)?.contiguous()?;
        let k = k.transpose(1, 2)?.contiguous()?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let (q, k) = match rotation {
            Some(r) => (self.rotate(&q, r)?, self.rotate(&k, r)?),
            None => (q, k),
        };
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        *cache = Some((k.clone(), v.clone()));
        let rep = a.heads / a.kv_heads;
        let (k, v) = if rep > 1 {
            let total = k.dim(2)?;
            let expand = |x: &Tensor| -> candle_core::Result<Tensor> {
                x.unsqueeze(2)?
                    .expand((b, a.kv_heads, rep, total, a.head_dim))?
                    .reshape((b, a.heads, total, a.head_dim))
            };
            (expand(&k)?, expand(&v)?)
        } else {
            (k, v)
        };
        let scores = (q.matmul(&k.t()?.contiguous()?)? * self.config.attention_scale)?.broadcast_add(bias)?;
        let probs = match &a.sinks {
            None => candle_nn::ops::softmax_last_dim(&scores)?,
            Some(sinks) => {
                // The sink takes its share of each row's softmax and is dropped: the keys' weights
                // sum to less than one.
                let (_, _, _, total) = scores.dims4()?;
                let column = sinks.reshape((1, a.heads, 1, 1))?.broadcast_as((b, a.heads, t, 1))?.contiguous()?;
                let with_sink = Tensor::cat(&[&scores, &column.to_dtype(scores.dtype())?], 3)?;
                candle_nn::ops::softmax_last_dim(&with_sink)?.narrow(3, 0, total)?.contiguous()?
            }
        };
        let out = probs.matmul(&v.contiguous()?)?;
        let out = out.transpose(1, 2)?.reshape((b, t, a.heads * a.head_dim))?;
        a.o.forward(&out)
    }
}

/// The full layers' tables and, where the config has them, the sliding layers'.
fn rope_tables(c: &ModelConfig, device: &Device, dtype: DType) -> candle_core::Result<Vec<RopeTables>> {
    std::iter::once(&c.rope)
        .chain(c.sliding_rope.as_ref())
        .map(|r| RopeTables::new(r, c.max_position_embeddings, device, dtype))
        .collect()
}

/// Logits as rows of f32, for sampling.
pub fn rows(logits: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    logits.to_vec2()
}
