//! AI Energy Score's non-generative tasks on the local engine: text classification, sentence
//! similarity, extractive question answering, image classification and object detection.
//!
//! Two halves, as optimum-benchmark splits them into phases: a [`Processor`] (the model's
//! tokenizer or image processor, no weights) turns dataset rows into [`Prepared`] inputs held
//! on the host (`preprocess_dataset`), and a [`TaskModel`] (the weights, or random ones for
//! `no_weights`) runs forward passes over slices of them (`forward`), timed by the caller.
//! [`answers`] turns raw outputs into what transformers' pipelines answer, for `predict`.
//!
//! Rooms: [`config`] (config.json with each class's defaults), [`text`] (tokenization),
//! [`pixels`] (decoding, Pillow's resize, normalisation, padding), [`encoder`] (BERT,
//! DistilBERT, ELECTRA), [`vit`], [`detr`] (with [`resnet`]), [`random`] (no_weights),
//! [`answers`].

pub mod answers;
pub mod config;
pub mod detr;
pub mod encoder;
mod layers;
pub mod pixels;
pub mod random;
pub mod resnet;
pub mod text;
pub mod vit;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use thiserror::Error;

use self::config::{Architecture, ModelConfig};
use self::encoder::{Encoder, EncoderOutput};
use self::pixels::{ImageProcessor, Rgb};
use self::text::TextProcessor;

/// A task, by the name configs give it (`backend.task`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    TextClassification,
    SentenceSimilarity,
    QuestionAnswering,
    ImageClassification,
    ObjectDetection,
}

impl Task {
    pub const ALL: [Task; 5] = [
        Task::TextClassification,
        Task::SentenceSimilarity,
        Task::QuestionAnswering,
        Task::ImageClassification,
        Task::ObjectDetection,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Task::TextClassification => "text-classification",
            Task::SentenceSimilarity => "sentence-similarity",
            Task::QuestionAnswering => "question-answering",
            Task::ImageClassification => "image-classification",
            Task::ObjectDetection => "object-detection",
        }
    }

    pub fn from_name(name: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether its inputs are images.
    pub fn is_vision(self) -> bool {
        matches!(self, Task::ImageClassification | Task::ObjectDetection)
    }
}

#[derive(Debug, Error)]
pub enum TaskError {
    #[error("config: {0}")]
    Config(String),
    #[error("model {model}: {found} has no {task} model in the task engine; {task} runs {supported}")]
    NoModel { model: String, found: String, task: &'static str, supported: String },
    #[error("processor: {0}")]
    Processor(String),
    #[error("row {row}: {why}")]
    Input { row: usize, why: String },
    #[error("model {model}: {why}")]
    Model { model: String, why: String },
    #[error("{0}")]
    Compute(String),
}

fn compute(e: candle_core::Error) -> TaskError {
    let text = e.to_string();
    TaskError::Compute(text.split("\n   0:").next().unwrap_or(&text).trim().to_string())
}

/// One row's input.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskInput {
    Text(String),
    /// Two texts tokenized as a pair: (question, context), (sentence1, sentence2).
    Pair(String, String),
    /// An encoded image (PNG, JPEG, WebP).
    Image(Vec<u8>),
}

/// How rows are prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareOptions {
    /// Cut texts to the model's length (`scenario.truncation`); without it a text that does not
    /// fit is an error.
    pub truncation: bool,
    /// Pad each group of this many rows to its longest (optimum-benchmark pads every
    /// `datasets.map` batch of 1000 rows when its batch size is above 1); none pads nothing.
    pub pad_group: Option<usize>,
    /// The length texts are cut to; none for the model's `max_position_embeddings`, as
    /// optimum-benchmark cuts (pipelines cut to the tokenizer's `model_max_length`).
    pub max_length: Option<usize>,
}

/// Rows ready for the model, on the host.
#[derive(Debug, Clone)]
pub enum Prepared {
    Text(Vec<tokenizers::Encoding>),
    Images(Vec<PreparedImage>),
}

impl Prepared {
    pub fn len(&self) -> usize {
        match self {
            Prepared::Text(r) => r.len(),
            Prepared::Images(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens held (text), for volumes and reports.
    pub fn tokens(&self) -> Option<u64> {
        match self {
            Prepared::Text(r) => {
                Some(r.iter().map(|e| e.get_attention_mask().iter().map(|&m| u64::from(m)).sum::<u64>()).sum())
            }
            Prepared::Images(_) => None,
        }
    }
}

/// One prepared image: channels-first float32 pixels, its valid region and original size.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedImage {
    pub pixels: Vec<f32>,
    pub height: usize,
    pub width: usize,
    /// DETR: the resized image's own height and width inside the padded ones.
    pub valid: (usize, usize),
    /// The decoded image's (height, width), for boxes in its coordinates.
    pub original: (usize, usize),
}

/// A model's processor: its tokenizer or image processor.
pub struct Processor {
    pub task: Task,
    kind: ProcessorKind,
    /// The model's `max_position_embeddings` (text), the truncation length optimum-benchmark
    /// uses.
    max_length: Option<usize>,
}

enum ProcessorKind {
    Text(Box<TextProcessor>),
    Image(ImageProcessor),
}

/// A model's folder, resolved.
fn folder(model: &str, env: &impl Fn(&str) -> Option<String>) -> Result<PathBuf, TaskError> {
    energy_star_engine_local::resolve::model_dir(model, env)
        .map_err(|why| TaskError::Model { model: model.to_string(), why })
}

fn read(path: &Path) -> Result<String, TaskError> {
    std::fs::read_to_string(path).map_err(|e| TaskError::Model {
        model: path.parent().map(|p| p.display().to_string()).unwrap_or_default(),
        why: format!("{}: {e}", path.display()),
    })
}

/// The config of `dir`, read for `task`.
fn checked_config(model: &str, dir: &Path, task: Task) -> Result<ModelConfig, TaskError> {
    ModelConfig::parse(&read(&dir.join("config.json"))?, task, model)
}

impl Processor {
    /// Opens the processor of `model` (or of `processor`, when given) for `task`.
    pub fn open(
        model: &str,
        processor: Option<&str>,
        task: Task,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TaskError> {
        let dir = folder(model, env)?;
        let config = checked_config(model, &dir, task)?;
        let pdir = match processor {
            Some(p) if p != model => folder(p, env)?,
            _ => dir,
        };
        let kind = if task.is_vision() {
            let path = pdir.join("preprocessor_config.json");
            ProcessorKind::Image(ImageProcessor::parse(&read(&path)?)?)
        } else {
            ProcessorKind::Text(Box::new(TextProcessor::load(&pdir)?))
        };
        let max_length = (!task.is_vision()).then(|| config.fields.usize("max_position_embeddings").unwrap_or(512));
        Ok(Self { task, kind, max_length })
    }

    /// The tokenizer, for text tasks.
    pub fn text(&self) -> Option<&TextProcessor> {
        match &self.kind {
            ProcessorKind::Text(t) => Some(t),
            ProcessorKind::Image(_) => None,
        }
    }

    /// Prepares `inputs` (row numbers in errors count from `first_row`).
    pub fn prepare(
        &self,
        inputs: &[TaskInput],
        options: PrepareOptions,
        first_row: usize,
    ) -> Result<Prepared, TaskError> {
        match &self.kind {
            ProcessorKind::Text(t) => {
                let limit = options.max_length.or(self.max_length);
                let max = if options.truncation { limit } else { None };
                let mut rows = Vec::with_capacity(inputs.len());
                for (i, input) in inputs.iter().enumerate() {
                    let row = first_row + i;
                    let enc = match (input, self.task) {
                        (TaskInput::Text(s), Task::TextClassification) => t.encode(s, None, max)?,
                        (
                            TaskInput::Pair(a, b),
                            Task::TextClassification | Task::QuestionAnswering | Task::SentenceSimilarity,
                        ) => t.encode(a, Some(b), max)?,
                        // A single sentence embeds alone (predict's sentence similarity).
                        (TaskInput::Text(s), Task::SentenceSimilarity) => t.encode(s, None, max)?,
                        (other, task) => {
                            return Err(TaskError::Input { row, why: format!("{} takes no {other:?}", task.name()) });
                        }
                    };
                    if let Some(limit) = limit
                        && enc.get_ids().len() > limit
                    {
                        return Err(TaskError::Input {
                            row,
                            why: format!(
                                "{} tokens do not fit the model's {limit} positions (set scenario.truncation=true to cut them)",
                                enc.get_ids().len()
                            ),
                        });
                    }
                    rows.push(enc);
                }
                if let Some(group) = options.pad_group {
                    t.pad_groups(&mut rows, group)?;
                }
                Ok(Prepared::Text(rows))
            }
            ProcessorKind::Image(p) => {
                let mut rows = Vec::with_capacity(inputs.len());
                for (i, input) in inputs.iter().enumerate() {
                    let row = first_row + i;
                    let TaskInput::Image(bytes) = input else {
                        return Err(TaskError::Input { row, why: format!("{} takes images", self.task.name()) });
                    };
                    let img = Rgb::decode(bytes).map_err(|why| TaskError::Input { row, why })?;
                    let original = (img.height, img.width);
                    let (pixels, height, width) = p.pixels(&img);
                    rows.push(PreparedImage { pixels, height, width, valid: (height, width), original });
                }
                if p.pad {
                    for chunk in rows.chunks_mut(options.pad_group.unwrap_or(usize::MAX).max(1)) {
                        pad_images(chunk);
                    }
                }
                Ok(Prepared::Images(rows))
            }
        }
    }
}

/// Pads every image of `rows` at the bottom and right to the largest height and width among
/// them, with zeros (DETR's `pad`).
fn pad_images(rows: &mut [PreparedImage]) {
    let h = rows.iter().map(|r| r.height).max().unwrap_or(0);
    let w = rows.iter().map(|r| r.width).max().unwrap_or(0);
    for r in rows.iter_mut() {
        if (r.height, r.width) == (h, w) {
            continue;
        }
        let mut out = vec![0f32; 3 * h * w];
        for c in 0..3 {
            for y in 0..r.height {
                let src = &r.pixels[(c * r.height + y) * r.width..(c * r.height + y + 1) * r.width];
                out[(c * h + y) * w..(c * h + y) * w + r.width].copy_from_slice(src);
            }
        }
        (r.pixels, r.height, r.width) = (out, h, w);
    }
}

/// What to load.
#[derive(Debug, Clone)]
pub struct TaskModelSpec {
    pub model: String,
    pub task: Task,
    /// "cpu", "cuda" or "cuda:N".
    pub device: String,
    /// "float32", "bfloat16", "float16" or "auto".
    pub dtype: String,
    /// `backend.no_weights`: random weights from config.json with this seed.
    pub random_weights: Option<u64>,
}

enum Model {
    Encoder(Encoder),
    Vit(vit::Vit),
    Detr(Box<detr::Detr>),
}

/// A loaded task model.
pub struct TaskModel {
    pub task: Task,
    pub architecture: Architecture,
    pub labels: Vec<String>,
    pub random_weights: Option<u64>,
    pub device: Device,
    pub dtype: DType,
    pub load_s: f64,
    model: Model,
    /// sentence-transformers' pooling: mean over the mask, then L2 normalisation.
    pub mean_pooling: bool,
}

/// A forward pass's outputs as the model gives them, on its device.
pub enum RawOutputs {
    /// With the batch's attention mask (for pooling).
    Encoder(EncoderOutput, Tensor),
    Logits(Tensor),
    /// Class logits and boxes.
    Detections(Tensor, Tensor),
}

fn unreachable_kind<T>() -> Result<T, TaskError> {
    Err(TaskError::Compute("outputs of one kind of model for another's inputs".into()))
}

/// A forward pass's raw outputs, float32 on the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Outputs {
    /// (batch, labels).
    Logits(Vec<Vec<f32>>),
    /// Per row, start and end logits over its tokens.
    Span { start: Vec<Vec<f32>>, end: Vec<Vec<f32>> },
    /// Per row, its pooled sentence embedding (normalised where the model says so).
    Embeddings(Vec<Vec<f32>>),
    /// Per row: per query the class logits (labels + "no object") and the box (cx, cy, w, h),
    /// relative to the padded image.
    Detections { logits: Vec<Vec<Vec<f32>>>, boxes: Vec<Vec<[f32; 4]>> },
}

impl TaskModel {
    pub fn open(spec: &TaskModelSpec, env: &impl Fn(&str) -> Option<String>) -> Result<Self, TaskError> {
        let t0 = std::time::Instant::now();
        let merr = |why: String| TaskError::Model { model: spec.model.clone(), why };
        let dir = folder(&spec.model, env)?;
        let config = checked_config(&spec.model, &dir, spec.task)?;
        let device = energy_star_engine_local::open_device(&spec.device).map_err(|e| merr(e.to_string()))?;
        let dtype = match spec.dtype.as_str() {
            "auto" | "" | "null" | "float32" | "fp32" => DType::F32,
            "bfloat16" | "bf16" => DType::BF16,
            "float16" | "fp16" | "half" => DType::F16,
            other => {
                return Err(TaskError::Config(format!(
                    "torch_dtype {other:?} is not one of float32, bfloat16, float16, auto"
                )));
            }
        };
        let vb = match spec.random_weights {
            Some(seed) => VarBuilder::from_backend(Box::new(random::RandomWeights { seed }), dtype, device.clone()),
            None => {
                let files = energy_star_engine_local::resolve::weights(&dir).map_err(merr)?;
                // SAFETY: the weight files are memory-mapped read-only; they must not change while
                // the model loads (as with every mmap-based loader, transformers' included).
                #[allow(unsafe_code)]
                unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, &device) }
                    .map_err(|e| merr(format!("weights do not load (corrupt or truncated safetensors?): {e}")))?
            }
        };
        let labels = config.labels.len();
        // A model's own checks of its config are messages; anything else is the weights.
        let wrap = |e: candle_core::Error| match e {
            candle_core::Error::Msg(m) => merr(format!("config.json: {}", m.trim_start_matches("config: "))),
            other => merr(format!("weights do not match config.json: {other}")),
        };
        let model = match config.architecture {
            Architecture::ViTForImageClassification => {
                Model::Vit(vit::Vit::load(&config.fields, labels, vb).map_err(wrap)?)
            }
            Architecture::DetrForObjectDetection => Model::Detr(Box::new(
                detr::Detr::load(&config.fields, labels, vb, spec.random_weights.map(|_| dir.as_path()))
                    .map_err(wrap)?,
            )),
            arch => Model::Encoder(Encoder::load(arch, &config.fields, labels, vb).map_err(wrap)?),
        };
        Ok(Self {
            task: spec.task,
            architecture: config.architecture,
            labels: config.labels,
            random_weights: spec.random_weights,
            device,
            dtype,
            load_s: t0.elapsed().as_secs_f64(),
            model,
            mean_pooling: spec.task == Task::SentenceSimilarity,
        })
    }

    /// One forward pass over `rows` of `inputs` as one batch, its outputs left on the device
    /// (what a benchmark's `forward` phase runs; [`TaskModel::synchronize`] waits for it). Rows
    /// of different lengths or sizes are padded to the batch's largest (as the preparation pads
    /// groups, this only happens when a batch spans two groups, or when nothing was padded).
    pub fn run(&self, inputs: &Prepared, rows: std::ops::Range<usize>) -> Result<RawOutputs, TaskError> {
        if rows.end > inputs.len() || rows.is_empty() {
            return Err(TaskError::Compute(format!("rows {rows:?} of {} prepared", inputs.len())));
        }
        match (&self.model, inputs) {
            (Model::Encoder(e), Prepared::Text(encs)) => {
                let (ids, types, mask) = self.text_batch(&encs[rows])?;
                Ok(RawOutputs::Encoder(e.forward(&ids, &types, &mask).map_err(compute)?, mask))
            }
            (Model::Vit(v), Prepared::Images(imgs)) => {
                let pixels = self.stack(&imgs[rows])?.0;
                Ok(RawOutputs::Logits(v.forward(&pixels).map_err(compute)?))
            }
            (Model::Detr(d), Prepared::Images(imgs)) => {
                let (pixels, mask) = self.stack(&imgs[rows])?;
                let (logits, boxes) = d.forward(&pixels, &mask).map_err(compute)?;
                Ok(RawOutputs::Detections(logits, boxes))
            }
            _ => Err(TaskError::Compute("the prepared inputs are not this model's kind".into())),
        }
    }

    /// Waits until the device has finished what was queued (a no-op on the CPU).
    pub fn synchronize(&self) -> Result<(), TaskError> {
        self.device.synchronize().map_err(compute)
    }

    /// [`TaskModel::run`], its outputs brought to the host as float32.
    pub fn forward(&self, inputs: &Prepared, rows: std::ops::Range<usize>) -> Result<Outputs, TaskError> {
        let raw = self.run(inputs, rows.clone())?;
        let rows_of = |x: &Tensor| -> Result<Vec<Vec<f32>>, TaskError> {
            x.to_dtype(DType::F32).and_then(|x| x.to_vec2()).map_err(compute)
        };
        Ok(match raw {
            RawOutputs::Logits(l) | RawOutputs::Encoder(EncoderOutput::Logits(l), _) => Outputs::Logits(rows_of(&l)?),
            RawOutputs::Encoder(EncoderOutput::Span { start, end }, _) => {
                let Prepared::Text(encs) = inputs else { return unreachable_kind() };
                let lens: Vec<usize> = encs[rows].iter().map(|r| r.get_ids().len()).collect();
                let cut = |m: Vec<Vec<f32>>| -> Vec<Vec<f32>> {
                    m.into_iter()
                        .zip(&lens)
                        .map(|(mut v, n)| {
                            v.truncate(*n);
                            v
                        })
                        .collect()
                };
                Outputs::Span { start: cut(rows_of(&start)?), end: cut(rows_of(&end)?) }
            }
            RawOutputs::Encoder(EncoderOutput::Hidden(h), mask) => {
                Outputs::Embeddings(rows_of(&answers::mean_pool(&h, &mask).map_err(compute)?)?)
            }
            RawOutputs::Detections(logits, boxes) => {
                let logits: Vec<Vec<Vec<f32>>> =
                    logits.to_dtype(DType::F32).and_then(|l| l.to_vec3()).map_err(compute)?;
                let boxes: Vec<Vec<Vec<f32>>> =
                    boxes.to_dtype(DType::F32).and_then(|b| b.to_vec3()).map_err(compute)?;
                Outputs::Detections {
                    logits,
                    boxes: boxes
                        .into_iter()
                        .map(|r| r.into_iter().map(|b| [b[0], b[1], b[2], b[3]]).collect())
                        .collect(),
                }
            }
        })
    }

    /// Token ids, types and mask of `rows`, right-padded to the longest: (batch, len) each.
    fn text_batch(&self, rows: &[tokenizers::Encoding]) -> Result<(Tensor, Tensor, Tensor), TaskError> {
        let t = rows.iter().map(|r| r.get_ids().len()).max().unwrap_or(0);
        let b = rows.len();
        let (mut ids, mut types, mut mask) =
            (Vec::with_capacity(b * t), Vec::with_capacity(b * t), Vec::with_capacity(b * t));
        for r in rows {
            let pad = t - r.get_ids().len();
            ids.extend(r.get_ids().iter().copied().chain(std::iter::repeat_n(0, pad)));
            types.extend(r.get_type_ids().iter().copied().chain(std::iter::repeat_n(0, pad)));
            mask.extend(r.get_attention_mask().iter().copied().chain(std::iter::repeat_n(0, pad)));
        }
        let tensor = |v: Vec<u32>| Tensor::from_vec(v, (b, t), &self.device).map_err(compute);
        Ok((tensor(ids)?, tensor(types)?, tensor(mask)?))
    }

    /// Stacks images into (batch, 3, H, W) with the mask of valid pixels (batch, H, W), padding
    /// to the batch's largest.
    fn stack(&self, imgs: &[PreparedImage]) -> Result<(Tensor, Tensor), TaskError> {
        let mut imgs = imgs.to_vec();
        pad_images(&mut imgs);
        let (h, w) = (imgs[0].height, imgs[0].width);
        let mut pixels = Vec::with_capacity(imgs.len() * 3 * h * w);
        let mut mask = Vec::with_capacity(imgs.len() * h * w);
        for im in &imgs {
            pixels.extend_from_slice(&im.pixels);
            for y in 0..h {
                for x in 0..w {
                    mask.push(u8::from(y < im.valid.0 && x < im.valid.1));
                }
            }
        }
        let p = Tensor::from_vec(pixels, (imgs.len(), 3, h, w), &self.device)
            .and_then(|t| t.to_dtype(self.dtype))
            .map_err(compute)?;
        let m = Tensor::from_vec(mask, (imgs.len(), h, w), &self.device).map_err(compute)?;
        Ok((p, m))
    }
}
