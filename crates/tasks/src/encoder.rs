//! Transformer encoders of the text tasks: BERT (and MiniLM, a small BERT), DistilBERT and
//! ELECTRA, with their heads. Post-norm layers, exact-erf GELU, absolute positions, an
//! additive mask that hides padding keys (transformers' `finfo.min`), as transformers 5 runs
//! them.

use candle_core::{D, DType, Module, Tensor};
use candle_nn::{Embedding, VarBuilder};

use super::config::{Architecture, Fields};
use super::layers::{LayerNorm, Linear, gelu_erf, linear};

/// Which parameter names the family uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Bert,
    DistilBert,
    Electra,
}

#[derive(Debug, Clone)]
struct Layer {
    /// Query, key and value projections as one.
    qkv: Linear,
    o: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

/// The head on top of the encoder.
#[derive(Debug, Clone)]
enum Head {
    /// BERT: the pooler (dense + tanh on [CLS]), then the classifier.
    PooledClassifier { pooler: Linear, classifier: Linear },
    /// DistilBERT: [CLS] → pre_classifier → ReLU → classifier.
    PreClassifier { pre: Linear, classifier: Linear },
    /// Start and end logits from every token (`qa_outputs`).
    Span { qa: Linear },
    /// The bare model: hidden states (and the pooler's output, which nothing here reads).
    Hidden,
}

/// What the encoder gives for a batch.
#[derive(Debug, Clone)]
pub enum EncoderOutput {
    Logits(Tensor),
    Span { start: Tensor, end: Tensor },
    Hidden(Tensor),
}

#[derive(Debug, Clone)]
pub struct Encoder {
    family: Family,
    words: Embedding,
    positions: Embedding,
    token_types: Option<Embedding>,
    embed_norm: LayerNorm,
    /// ELECTRA: embedding_size → hidden_size when they differ.
    project: Option<Linear>,
    layers: Vec<Layer>,
    head: Head,
    heads: usize,
    pub max_positions: usize,
}

/// The prefix the encoder's weights carry: the family's (`bert.`) in task checkpoints, none in
/// a bare model's (sentence-transformers).
fn prefix<'a>(vb: &VarBuilder<'a>, family: &str, probe: &str) -> VarBuilder<'a> {
    if vb.contains_tensor(&format!("{family}.{probe}")) { vb.pp(family) } else { vb.clone() }
}

impl Encoder {
    pub fn load(arch: Architecture, f: &Fields, labels: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let family = match arch {
            Architecture::DistilBertForSequenceClassification => Family::DistilBert,
            Architecture::ElectraForQuestionAnswering => Family::Electra,
            _ => Family::Bert,
        };
        let cfg = |k: &str| f.usize(k).map_err(|e| candle_core::Error::Msg(e.to_string()));
        let (hidden, layers_n, heads, inter) = match family {
            Family::DistilBert => (cfg("dim")?, cfg("n_layers")?, cfg("n_heads")?, cfg("hidden_dim")?),
            _ => {
                (cfg("hidden_size")?, cfg("num_hidden_layers")?, cfg("num_attention_heads")?, cfg("intermediate_size")?)
            }
        };
        let act = match family {
            Family::DistilBert => f.str_or("activation", "gelu"),
            _ => f.str_or("hidden_act", "gelu"),
        };
        if act != "gelu" {
            candle_core::bail!("activation {act:?} is not supported (gelu is)");
        }
        if f.bool_or("sinusoidal_pos_embds", false) {
            candle_core::bail!("sinusoidal_pos_embds is not supported (learned positions are)");
        }
        if f.str_or("position_embedding_type", "absolute") != "absolute" {
            candle_core::bail!(
                "position_embedding_type {:?} is not supported (absolute is)",
                f.str_or("position_embedding_type", "")
            );
        }
        let eps = match family {
            Family::DistilBert => 1e-12,
            _ => f.f64_or("layer_norm_eps", 1e-12),
        };
        let vocab = cfg("vocab_size")?;
        let max_positions = cfg("max_position_embeddings")?;
        let (name, probe) = match family {
            Family::Bert => ("bert", "embeddings.word_embeddings.weight"),
            Family::DistilBert => ("distilbert", "embeddings.word_embeddings.weight"),
            Family::Electra => ("electra", "embeddings.word_embeddings.weight"),
        };
        let base = prefix(&vb, name, probe);
        let e = base.pp("embeddings");
        let embed_dim = if family == Family::Electra { cfg("embedding_size")? } else { hidden };
        let table = |name: &str, rows: usize| -> candle_core::Result<Embedding> {
            Ok(Embedding::new(e.pp(name).get((rows, embed_dim), "weight")?, embed_dim))
        };
        let words = table("word_embeddings", vocab)?;
        let positions = table("position_embeddings", max_positions)?;
        let token_types = match family {
            Family::DistilBert => None,
            _ => Some(table("token_type_embeddings", cfg("type_vocab_size")?)?),
        };
        let embed_norm = LayerNorm::load(e.pp("LayerNorm"), embed_dim, eps)?;
        let project = match (family, embed_dim == hidden) {
            (Family::Electra, false) => Some(linear(base.pp("embeddings_project"), embed_dim, hidden)?),
            _ => None,
        };
        let mut layers = Vec::with_capacity(layers_n);
        for i in 0..layers_n {
            layers.push(match family {
                Family::DistilBert => {
                    let l = base.pp(format!("transformer.layer.{i}"));
                    let a = l.pp("attention");
                    Layer {
                        qkv: Linear::fused(&[
                            linear(a.pp("q_lin"), hidden, hidden)?,
                            linear(a.pp("k_lin"), hidden, hidden)?,
                            linear(a.pp("v_lin"), hidden, hidden)?,
                        ])?,
                        o: linear(a.pp("out_lin"), hidden, hidden)?,
                        attn_norm: LayerNorm::load(l.pp("sa_layer_norm"), hidden, eps)?,
                        up: linear(l.pp("ffn.lin1"), hidden, inter)?,
                        down: linear(l.pp("ffn.lin2"), inter, hidden)?,
                        out_norm: LayerNorm::load(l.pp("output_layer_norm"), hidden, eps)?,
                    }
                }
                _ => {
                    let l = base.pp(format!("encoder.layer.{i}"));
                    let s = l.pp("attention.self");
                    Layer {
                        qkv: Linear::fused(&[
                            linear(s.pp("query"), hidden, hidden)?,
                            linear(s.pp("key"), hidden, hidden)?,
                            linear(s.pp("value"), hidden, hidden)?,
                        ])?,
                        o: linear(l.pp("attention.output.dense"), hidden, hidden)?,
                        attn_norm: LayerNorm::load(l.pp("attention.output.LayerNorm"), hidden, eps)?,
                        up: linear(l.pp("intermediate.dense"), hidden, inter)?,
                        down: linear(l.pp("output.dense"), inter, hidden)?,
                        out_norm: LayerNorm::load(l.pp("output.LayerNorm"), hidden, eps)?,
                    }
                }
            });
        }
        let head = match arch {
            Architecture::BertForSequenceClassification => Head::PooledClassifier {
                pooler: linear(base.pp("pooler.dense"), hidden, hidden)?,
                classifier: linear(vb.pp("classifier"), hidden, labels)?,
            },
            Architecture::DistilBertForSequenceClassification => Head::PreClassifier {
                pre: linear(vb.pp("pre_classifier"), hidden, hidden)?,
                classifier: linear(vb.pp("classifier"), hidden, labels)?,
            },
            Architecture::BertForQuestionAnswering | Architecture::ElectraForQuestionAnswering => {
                Head::Span { qa: linear(vb.pp("qa_outputs"), hidden, 2)? }
            }
            _ => Head::Hidden,
        };
        if hidden % heads != 0 {
            candle_core::bail!("hidden size {hidden} is not a multiple of {heads} attention heads");
        }
        Ok(Self { family, words, positions, token_types, embed_norm, project, layers, head, heads, max_positions })
    }

    /// `ids`, `types`, `mask`: (batch, len) u32, right-padded (mask 0 on padding).
    pub fn forward(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> candle_core::Result<EncoderOutput> {
        let (b, t) = ids.dims2()?;
        if t > self.max_positions {
            candle_core::bail!("{t} tokens exceed the model's {} positions", self.max_positions);
        }
        let device = ids.device();
        let positions = Tensor::arange(0u32, t as u32, device)?.unsqueeze(0)?.broadcast_as((b, t))?.contiguous()?;
        let mut x = self.words.forward(ids)?;
        // transformers adds positions to words first, then token types (DistilBERT has none).
        x = (x + self.positions.forward(&positions)?)?;
        if let Some(tt) = &self.token_types {
            x = (x + tt.forward(types)?)?;
        }
        x = self.embed_norm.forward(&x)?;
        if let Some(p) = &self.project {
            x = p.forward(&x)?;
        }
        // Padding keys get the dtype's lowest value, as transformers' eager/SDPA masks.
        let min = match x.dtype() {
            DType::F16 => f64::from(half_min()),
            DType::BF16 => -3.389_531_389_251_535e38,
            _ => f64::from(f32::MIN),
        };
        let bias = ((mask.to_dtype(x.dtype())?.affine(-1.0, 1.0))? * min)?.reshape((b, 1, 1, t))?;
        for l in &self.layers {
            x = self.layer(l, &x, &bias)?;
        }
        Ok(match &self.head {
            Head::PooledClassifier { pooler, classifier } => {
                let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
                EncoderOutput::Logits(classifier.forward(&pooler.forward(&cls)?.tanh()?)?)
            }
            Head::PreClassifier { pre, classifier } => {
                let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
                EncoderOutput::Logits(classifier.forward(&pre.forward(&cls)?.relu()?)?)
            }
            Head::Span { qa } => {
                let both = qa.forward(&x)?;
                EncoderOutput::Span {
                    start: both.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?,
                    end: both.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?,
                }
            }
            Head::Hidden => EncoderOutput::Hidden(x),
        })
    }

    fn layer(&self, l: &Layer, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let d = h / self.heads;
        let split = |y: Tensor| -> candle_core::Result<Tensor> {
            y.reshape((b, t, self.heads, d))?.transpose(1, 2)?.contiguous()
        };
        let qkv = l.qkv.forward(x)?;
        let q = split(qkv.narrow(D::Minus1, 0, h)?)?;
        let k = split(qkv.narrow(D::Minus1, h, h)?)?;
        let v = split(qkv.narrow(D::Minus1, 2 * h, h)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? / (d as f64).sqrt())?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        let a = l.attn_norm.forward(&(l.o.forward(&ctx)? + x)?)?;
        let f = l.down.forward(&gelu_erf(&l.up.forward(&a)?)?)?;
        l.out_norm.forward(&(f + a)?)
    }

    /// Whether the model takes token type ids (all but DistilBERT).
    pub fn uses_token_types(&self) -> bool {
        self.family != Family::DistilBert
    }
}

/// float16's lowest finite value.
fn half_min() -> f32 {
    -65504.0
}
