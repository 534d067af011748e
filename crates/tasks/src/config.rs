//! `config.json` of the task models, read as transformers' config classes read it: a key the
//! file leaves out takes the class's default; the architecture decides the model and its head.

use serde_json::Value;

use super::{Task, TaskError};

/// The models the task engine runs. As optimum-benchmark builds them (`AutoModelFor<Task>`
/// from the config), the task and the config's `model_type` choose the class, whatever
/// `architectures` names: a BERT checkpoint runs question answering as
/// `BertForQuestionAnswering`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    BertForSequenceClassification,
    DistilBertForSequenceClassification,
    /// The bare encoder, as sentence-transformers uses it (all-MiniLM-L6-v2).
    BertModel,
    BertForQuestionAnswering,
    ElectraForQuestionAnswering,
    ViTForImageClassification,
    DetrForObjectDetection,
}

impl Architecture {
    /// Class names, their `model_type` and the task each serves.
    pub const ALL: &[(Architecture, &'static str, &'static str, Task)] = &[
        (
            Architecture::BertForSequenceClassification,
            "BertForSequenceClassification",
            "bert",
            Task::TextClassification,
        ),
        (
            Architecture::DistilBertForSequenceClassification,
            "DistilBertForSequenceClassification",
            "distilbert",
            Task::TextClassification,
        ),
        (Architecture::BertModel, "BertModel", "bert", Task::SentenceSimilarity),
        (Architecture::BertForQuestionAnswering, "BertForQuestionAnswering", "bert", Task::QuestionAnswering),
        (Architecture::ElectraForQuestionAnswering, "ElectraForQuestionAnswering", "electra", Task::QuestionAnswering),
        (Architecture::ViTForImageClassification, "ViTForImageClassification", "vit", Task::ImageClassification),
        (Architecture::DetrForObjectDetection, "DetrForObjectDetection", "detr", Task::ObjectDetection),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(a, ..)| *a == self).map_or("?", |(_, n, ..)| n)
    }

    pub fn task(self) -> Task {
        Self::ALL.iter().find(|(a, ..)| *a == self).map_or(Task::TextClassification, |(.., t)| *t)
    }

    /// Those that serve `task`, as `model_type (Class)`, for errors.
    pub fn for_task(task: Task) -> Vec<String> {
        Self::ALL.iter().filter(|(.., t)| *t == task).map(|(_, n, m, _)| format!("{m} ({n})")).collect()
    }

    /// The class `AutoModelFor<task>` builds for `model_type`.
    pub fn of(model_type: &str, task: Task) -> Option<Architecture> {
        Self::ALL.iter().find(|(_, _, m, t)| *m == model_type && *t == task).map(|(a, ..)| *a)
    }
}

/// transformers' defaults of the fields read, per config class.
fn defaults(model_type: &str) -> Value {
    let text = match model_type {
        "distilbert" => {
            r#"{"vocab_size":30522,"max_position_embeddings":512,"n_layers":6,"n_heads":12,"dim":768,"hidden_dim":3072,
            "activation":"gelu","pad_token_id":0,"sinusoidal_pos_embds":false}"#
        }
        "electra" => {
            r#"{"vocab_size":30522,"embedding_size":128,"hidden_size":256,"num_hidden_layers":12,"num_attention_heads":4,
            "intermediate_size":1024,"hidden_act":"gelu","max_position_embeddings":512,"type_vocab_size":2,
            "layer_norm_eps":1e-12,"pad_token_id":0,"position_embedding_type":"absolute"}"#
        }
        "vit" => {
            r#"{"hidden_size":768,"num_hidden_layers":12,"num_attention_heads":12,"intermediate_size":3072,"hidden_act":"gelu",
            "layer_norm_eps":1e-12,"image_size":224,"patch_size":16,"num_channels":3,"qkv_bias":true}"#
        }
        "detr" => {
            r#"{"num_queries":100,"d_model":256,"encoder_layers":6,"decoder_layers":6,"encoder_attention_heads":8,
            "decoder_attention_heads":8,"encoder_ffn_dim":2048,"decoder_ffn_dim":2048,"activation_function":"relu",
            "backbone":"resnet50","use_timm_backbone":true,"dilation":false,"position_embedding_type":"sine"}"#
        }
        _ => {
            r#"{"vocab_size":30522,"hidden_size":768,"num_hidden_layers":12,"num_attention_heads":12,"intermediate_size":3072,
            "hidden_act":"gelu","max_position_embeddings":512,"type_vocab_size":2,"layer_norm_eps":1e-12,"pad_token_id":0,
            "position_embedding_type":"absolute"}"#
        }
    };
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// A config object with its class's defaults.
pub struct Fields {
    pub v: Value,
    defaults: Value,
}

impl Fields {
    fn get(&self, key: &str) -> Option<&Value> {
        self.v.get(key).or_else(|| self.defaults.get(key)).filter(|x| !x.is_null())
    }

    pub fn usize(&self, key: &str) -> Result<usize, TaskError> {
        match self.get(key) {
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| TaskError::Config(format!("`{key}` = {n} is not a non-negative integer"))),
            Some(other) => Err(TaskError::Config(format!("`{key}` = {other} is not a number"))),
            None => Err(TaskError::Config(format!("`{key}` is missing"))),
        }
    }

    pub fn f64_or(&self, key: &str, default: f64) -> f64 {
        self.get(key).and_then(Value::as_f64).unwrap_or(default)
    }

    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).and_then(Value::as_str).unwrap_or(default)
    }

    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        self.get(key).and_then(Value::as_bool).unwrap_or(default)
    }
}

/// A model's config: its architecture, fields and labels.
pub struct ModelConfig {
    pub architecture: Architecture,
    pub fields: Fields,
    /// `id2label`, in id order; `LABEL_N` where the config names none.
    pub labels: Vec<String>,
}

impl ModelConfig {
    /// Reads `text` for `task`; `model` names the model in errors.
    pub fn parse(text: &str, task: Task, model: &str) -> Result<Self, TaskError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| TaskError::Config(format!("config.json is not valid JSON: {e}")))?;
        let class = v.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str);
        // A config without `model_type` (rare, old) is known by its class.
        let model_type = match v.get("model_type").and_then(Value::as_str) {
            Some(m) => m.to_string(),
            None => class
                .and_then(|c| Architecture::ALL.iter().find(|(_, n, ..)| *n == c))
                .map(|(_, _, m, _)| m.to_string())
                .unwrap_or_default(),
        };
        let architecture = Architecture::of(&model_type, task).ok_or_else(|| TaskError::NoModel {
            model: model.to_string(),
            found: match (model_type.as_str(), class) {
                ("", None) => "config.json names no model_type or architectures".to_string(),
                ("", Some(c)) => format!("{c} (no model_type)"),
                (m, Some(c)) => format!("model_type {m:?} ({c})"),
                (m, None) => format!("model_type {m:?}"),
            },
            task: task.name(),
            supported: Architecture::for_task(task).join(", "),
        })?;
        let labels = labels(&v);
        Ok(Self { architecture, fields: Fields { defaults: defaults(&model_type), v }, labels })
    }
}

/// `id2label` as a list in id order (its keys are strings of ids), or `num_labels` of `LABEL_N`.
fn labels(v: &Value) -> Vec<String> {
    if let Some(map) = v.get("id2label").and_then(Value::as_object) {
        let mut pairs: Vec<(usize, String)> = map
            .iter()
            .filter_map(|(k, l)| Some((k.parse().ok()?, l.as_str().unwrap_or_default().to_string())))
            .collect();
        pairs.sort();
        return pairs.into_iter().map(|(_, l)| l).collect();
    }
    let n = v.get("num_labels").and_then(Value::as_u64).unwrap_or(2) as usize;
    (0..n).map(|i| format!("LABEL_{i}")).collect()
}
