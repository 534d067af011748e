//! The decoder: one implementation for the Llama family, Qwen2, Qwen3 and gpt-oss, with
//! per-sequence attention masks and positions, so that left-padded prompts in a batch give
//! exactly the tokens they give alone, and a KV cache. gpt-oss adds attention sinks, layers
//! that alternate between a sliding window and full attention, and a mixture of experts
//! (`moe.rs`) in place of the MLP.
//!
//! Written on candle's tensor ops rather than candle-transformers' models because those take no
//! attention mask: a padded batch would attend to its padding.

use candle_core::quantized::{QMatMul, QTensor, gguf_file};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use super::config::{Family, ModelConfig};
use super::moe::Experts;

/// RMSNorm with its weight.
#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(Self { weight: vb.get(size, "weight")?, eps })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::rms_norm(x, &self.weight, self.eps as f32)
    }
}

/// A projection: dense (safetensors) or quantized (GGUF, kept quantized in memory).
#[derive(Debug, Clone)]
enum Proj {
    Dense(Linear),
    Quant(QMatMul),
}

impl Proj {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Proj::Dense(l) => l.forward(x),
            Proj::Quant(q) => q.forward(x),
        }
    }
}

fn linear(vb: VarBuilder, inp: usize, out: usize, bias: bool) -> candle_core::Result<Proj> {
    let w = vb.get((out, inp), "weight")?;
    let b = if bias { Some(vb.get(out, "bias")?) } else { None };
    Ok(Proj::Dense(Linear::new(w, b)))
}

#[derive(Debug, Clone)]
struct Attention {
    q: Proj,
    k: Proj,
    v: Proj,
    o: Proj,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    /// gpt-oss: one logit per head, (heads,), joining each softmax as a column of its own.
    sinks: Option<Tensor>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

/// The feed-forward half of a layer.
#[derive(Debug, Clone)]
enum Mlp {
    /// SiLU-gated: down(silu(gate(x)) · up(x)).
    Gated {
        gate: Proj,
        up: Proj,
        down: Proj,
    },
    Experts(Experts),
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Mlp::Gated { gate, up, down } => {
                down.forward(&(candle_nn::ops::silu(&gate.forward(x)?)? * up.forward(x)?)?)
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
    input_norm: RmsNorm,
    post_norm: RmsNorm,
}

/// A loaded decoder.
pub struct Decoder {
    pub config: ModelConfig,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Proj,
    /// GGUF files store q and k rows permuted for interleaved rotary pairs (llama.cpp's
    /// convention); Hugging Face weights rotate halves.
    rope_interleaved: bool,
    /// cos and sin of every position × frequency: (max_positions, head_dim / 2).
    cos: Tensor,
    sin: Tensor,
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

impl Decoder {
    /// Builds the decoder from `vb` (weights named as transformers names them).
    pub fn load(config: ModelConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let c = &config;
        let device = vb.device().clone();
        let dtype = vb.dtype();
        let m = vb.pp("model");
        let embed_w = m.pp("embed_tokens").get((c.vocab_size, c.hidden_size), "weight")?;
        let embed = Embedding::new(embed_w.clone(), c.hidden_size);
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let l = m.pp(format!("layers.{i}"));
            let a = l.pp("self_attn");
            let (q_norm, k_norm) = if c.family == Family::Qwen3 {
                (
                    Some(RmsNorm::load(a.pp("q_norm"), c.head_dim, c.rms_norm_eps)?),
                    Some(RmsNorm::load(a.pp("k_norm"), c.head_dim, c.rms_norm_eps)?),
                )
            } else {
                (None, None)
            };
            let attn = Attention {
                q: linear(a.pp("q_proj"), c.hidden_size, c.num_heads * c.head_dim, c.attention_bias)?,
                k: linear(a.pp("k_proj"), c.hidden_size, c.num_kv_heads * c.head_dim, c.attention_bias)?,
                v: linear(a.pp("v_proj"), c.hidden_size, c.num_kv_heads * c.head_dim, c.attention_bias)?,
                // Qwen2's output projection has no bias even though q, k and v do.
                o: linear(
                    a.pp("o_proj"),
                    c.num_heads * c.head_dim,
                    c.hidden_size,
                    c.attention_bias && c.family != Family::Qwen2,
                )?,
                q_norm,
                k_norm,
                sinks: if c.attention_sinks { Some(a.get(c.num_heads, "sinks")?) } else { None },
                heads: c.num_heads,
                kv_heads: c.num_kv_heads,
                head_dim: c.head_dim,
            };
            let mlp = l.pp("mlp");
            let mlp = match &c.moe {
                Some(moe) => Mlp::Experts(Experts::load(c, moe, mlp)?),
                None => Mlp::Gated {
                    gate: linear(mlp.pp("gate_proj"), c.hidden_size, c.intermediate_size, c.mlp_bias)?,
                    up: linear(mlp.pp("up_proj"), c.hidden_size, c.intermediate_size, c.mlp_bias)?,
                    down: linear(mlp.pp("down_proj"), c.intermediate_size, c.hidden_size, c.mlp_bias)?,
                },
            };
            layers.push(Layer {
                attn,
                mlp,
                sliding: c.sliding_layers[i],
                input_norm: RmsNorm::load(l.pp("input_layernorm"), c.hidden_size, c.rms_norm_eps)?,
                post_norm: RmsNorm::load(l.pp("post_attention_layernorm"), c.hidden_size, c.rms_norm_eps)?,
            });
        }
        let norm = RmsNorm::load(m.pp("norm"), c.hidden_size, c.rms_norm_eps)?;
        let lm_head = if vb.contains_tensor("lm_head.weight") {
            linear(vb.pp("lm_head"), c.hidden_size, c.vocab_size, false)?
        } else if c.tie_word_embeddings {
            Proj::Dense(Linear::new(embed_w, None))
        } else {
            candle_core::bail!("lm_head.weight is missing and tie_word_embeddings is false")
        };
        let (cos, sin) = rope_tables(&config, &device, dtype)?;
        Ok(Self { cos, sin, config, embed, layers, norm, lm_head, rope_interleaved: false, device, dtype })
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
        let embed_w = dense(get("token_embd.weight")?)?;
        let embed = Embedding::new(embed_w.clone(), c.hidden_size);
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let mut q = |n: &str| -> candle_core::Result<Proj> {
                Ok(Proj::Quant(QMatMul::from_qtensor(get(&format!("blk.{i}.{n}.weight"))?)?))
            };
            let attn = Attention {
                q: q("attn_q")?,
                k: q("attn_k")?,
                v: q("attn_v")?,
                o: q("attn_output")?,
                q_norm: None,
                k_norm: None,
                sinks: None,
                heads: c.num_heads,
                kv_heads: c.num_kv_heads,
                head_dim: c.head_dim,
            };
            let mlp = Mlp::Gated { gate: q("ffn_gate")?, up: q("ffn_up")?, down: q("ffn_down")? };
            let mut norm = |n: &str| -> candle_core::Result<RmsNorm> {
                Ok(RmsNorm { weight: dense(get(&format!("blk.{i}.{n}.weight"))?)?, eps: c.rms_norm_eps })
            };
            layers.push(Layer {
                attn,
                mlp,
                sliding: false,
                input_norm: norm("attn_norm")?,
                post_norm: norm("ffn_norm")?,
            });
        }
        let norm = RmsNorm { weight: dense(get("output_norm.weight")?)?, eps: c.rms_norm_eps };
        let lm_head = if content.tensor_infos.contains_key("output.weight") {
            Proj::Quant(QMatMul::from_qtensor(get("output.weight")?)?)
        } else {
            Proj::Dense(Linear::new(embed_w, None))
        };
        let (cos, sin) = rope_tables(&config, device, DType::F32)?;
        Ok(Self {
            cos,
            sin,
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

    /// Runs `ids` (batch, new_len) through the model, appending to `cache`.
    ///
    /// `positions` (batch, new_len) are each token's position in its own sequence; `mask`
    /// (batch, total_len) marks real tokens (1) and padding (0) over the cache and the new
    /// tokens. Returns the logits of the last new position of each sequence: (batch, vocab).
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
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
        let flat_pos = positions.flatten_all()?;
        let cos = self.cos.index_select(&flat_pos, 0)?.reshape((b, t, self.config.head_dim / 2))?;
        let sin = self.sin.index_select(&flat_pos, 0)?.reshape((b, t, self.config.head_dim / 2))?;
        let mut x = self.embed.forward(ids)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.input_norm.forward(&x)?;
            let bias = match (&windowed, layer.sliding) {
                (Some(w), true) => w,
                _ => &full,
            };
            let a = self.attend(&layer.attn, &h, &cos, &sin, bias, &mut cache.layers[i])?;
            x = (x + a)?;
            let m = layer.mlp.forward(&layer.post_norm.forward(&x)?)?;
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

    fn attend(
        &self,
        a: &Attention,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        bias: &Tensor,
        cache: &mut Option<(Tensor, Tensor)>,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = h.dims3()?;
        let q = a.q.forward(h)?.reshape((b, t, a.heads, a.head_dim))?;
        let k = a.k.forward(h)?.reshape((b, t, a.kv_heads, a.head_dim))?;
        let v = a.v.forward(h)?.reshape((b, t, a.kv_heads, a.head_dim))?;
        let (q, k) = match (&a.q_norm, &a.k_norm) {
            (Some(qn), Some(kn)) => (qn.forward(&q)?, kn.forward(&k)?),
            _ => (q, k),
        };
        let q = q.transpose(1, 2)?.contiguous()?;
        let k = k.transpose(1, 2)?.contiguous()?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let (q, k) = if self.rope_interleaved {
            (candle_nn::rotary_emb::rope_i(&q, cos, sin)?, candle_nn::rotary_emb::rope_i(&k, cos, sin)?)
        } else {
            (candle_nn::rotary_emb::rope(&q, cos, sin)?, candle_nn::rotary_emb::rope(&k, cos, sin)?)
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
        let scale = 1.0 / (a.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(bias)?;
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

/// Longest context the rotary tables cover.
pub const MAX_POSITIONS: usize = 131_072;

/// cos and sin of every position × frequency: (max_positions, head_dim / 2).
fn rope_tables(c: &ModelConfig, device: &Device, dtype: DType) -> candle_core::Result<(Tensor, Tensor)> {
    let inv: Vec<f32> = c.inv_freq().into_iter().map(|f| f as f32).collect();
    // Capped so that a config claiming an absurd context cannot allocate gigabytes; prompts
    // longer than the table are refused by the engine, which checks against the same cap.
    let positions = c.max_position_embeddings.clamp(1, MAX_POSITIONS);
    let inv = Tensor::from_vec(inv, (1, c.head_dim / 2), device)?;
    let t = Tensor::arange(0u32, positions as u32, device)?.to_dtype(DType::F32)?.reshape((positions, 1))?;
    let freqs = t.matmul(&inv)?;
    // YaRN scales cos and sin, hence q·k, by its attention factor (1 otherwise).
    let factor = c.rope_attention_factor();
    Ok(((freqs.cos()? * factor)?.to_dtype(dtype)?, (freqs.sin()? * factor)?.to_dtype(dtype)?))
}

/// Logits as rows of f32, for sampling.
pub fn rows(logits: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    logits.to_vec2()
}
