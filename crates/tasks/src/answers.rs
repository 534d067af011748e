//! Raw outputs turned into what transformers' pipelines answer (for `energy-star predict`):
//! the label and score of a classification, the span of an extractive answer, the cosine
//! similarity of two sentence embeddings, and the boxes of a detection above a threshold.

use candle_core::{DType, Tensor};
use serde_json::{Value, json};

/// sentence-transformers' mean pooling over real tokens (`clamp(min=1e-9)` on the count) and
/// L2 normalisation (`max(norm, 1e-12)`): hidden (batch, len, dim), mask (batch, len).
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let hidden = hidden.to_dtype(DType::F32)?;
    let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&m)?.sum(1)?;
    let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    mean.broadcast_div(&norm)
}

fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|v| (v - max).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// The text-classification pipeline's answer: softmax over two or more labels, sigmoid for
/// one, the best label and its score.
pub fn classification(logits: &[f32], labels: &[String]) -> Value {
    let scores: Vec<f32> = if logits.len() == 1 { vec![1.0 / (1.0 + (-logits[0]).exp())] } else { softmax(logits) };
    let best = scores.iter().enumerate().fold(0, |b, (i, s)| if *s > scores[b] { i } else { b });
    json!({"label": labels.get(best).cloned().unwrap_or_else(|| format!("LABEL_{best}")), "score": scores[best]})
}

/// The image-classification pipeline's answer: the `top_k` labels by softmax score.
pub fn top_labels(logits: &[f32], labels: &[String], top_k: usize) -> Value {
    let scores = softmax(logits);
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    Value::Array(
        order
            .into_iter()
            .take(top_k)
            .map(|i| json!({"label": labels.get(i).cloned().unwrap_or_else(|| format!("LABEL_{i}")), "score": scores[i]}))
            .collect(),
    )
}

/// Cosine similarity of two normalised embeddings (their dot product; normalised again in case).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    dot / (na * nb)
}

/// A candidate answer of the question-answering pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub answer: String,
    pub start: usize,
    pub end: usize,
    pub score: f64,
}

/// Top candidates taken per window (`top_k · 2 + 10` for top_k 1).
const CANDIDATES_PER_WINDOW: usize = 12;
const MAX_ANSWER_LEN: usize = 15;

/// One window's candidates, as transformers 4.57's `select_starts_ends` + `decode_spans` pick
/// them: context tokens and [CLS] may take part (others get -10000); each logit row is
/// soft-maxed over the window; [CLS]'s probabilities are then zeroed; spans s ≤ e ≤ s + 14 by
/// start·end probability, the best 12 whose ends are both allowed.
fn window_candidates(enc: &tokenizers::Encoding, start: &[f32], end: &[f32]) -> Vec<(usize, usize, f32)> {
    let seq = enc.get_sequence_ids();
    let mask = enc.get_attention_mask();
    let n = start.len().min(end.len()).min(seq.len());
    let allowed: Vec<bool> = (0..n).map(|i| (seq[i] == Some(1) || i == 0) && mask[i] == 1).collect();
    let masked = |x: &[f32]| -> Vec<f32> { (0..n).map(|i| if allowed[i] { x[i] } else { -10000.0 }).collect() };
    let (mut ps, mut pe) = (softmax(&masked(start)), softmax(&masked(end)));
    ps[0] = 0.0;
    pe[0] = 0.0;
    let mut spans: Vec<(usize, usize, f32)> = Vec::new();
    for (s, p_start) in ps.iter().enumerate() {
        for (e, p_end) in pe.iter().enumerate().skip(s).take(MAX_ANSWER_LEN) {
            spans.push((s, e, p_start * p_end));
        }
    }
    // Descending by score, ties in row-major order.
    spans.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    spans.truncate(CANDIDATES_PER_WINDOW);
    spans.retain(|(s, e, _)| allowed[*s] && allowed[*e]);
    spans
}

/// Character span of tokens s..=e in the context: whole pre-tokenizer words (`align_to_words`),
/// token offsets where a token has no word ([CLS]).
fn characters(enc: &tokenizers::Encoding, s: usize, e: usize) -> (usize, usize) {
    let word_span = |tok: usize| enc.get_word_ids().get(tok).copied().flatten().and_then(|w| enc.word_to_chars(w, 1));
    match (word_span(s), word_span(e)) {
        (Some(a), Some(b)) => (a.0, b.1),
        _ => (enc.get_offsets()[s].0, enc.get_offsets()[e].1),
    }
}

/// transformers 4.57's question-answering pipeline (top 1, `max_answer_len` 15, no impossible
/// answer; removed from transformers 5): each window's candidates, in window then score order,
/// summed into the first answer of the same text (case-insensitive), the highest total first.
/// `windows` and `logits` are the pipeline's windows (`TextProcessor::windows`) and each one's
/// start and end logits.
pub fn extractive_answer(windows: &[tokenizers::Encoding], logits: &[(Vec<f32>, Vec<f32>)], context: &str) -> Value {
    let mut answers: Vec<Answer> = Vec::new();
    for (enc, (start, end)) in windows.iter().zip(logits) {
        for (s, e, score) in window_candidates(enc, start, end) {
            let (a, b) = characters(enc, s, e);
            let text: String = context.chars().skip(a).take(b.saturating_sub(a)).collect();
            match answers.iter_mut().find(|x| x.answer.to_lowercase() == text.to_lowercase()) {
                Some(x) => x.score += f64::from(score),
                None => answers.push(Answer { answer: text, start: a, end: b, score: f64::from(score) }),
            }
        }
    }
    // A stable sort: the first collected wins a tie.
    answers.sort_by(|x, y| y.score.total_cmp(&x.score));
    match answers.first() {
        Some(a) => json!({"score": a.score, "start": a.start, "end": a.end, "answer": a.answer}),
        None => json!({"score": 0.0, "start": 0, "end": 0, "answer": ""}),
    }
}

/// The object-detection pipeline's answer: per query the best real class (the last logit is
/// "no object") by softmax; those above `threshold`, boxes (cx, cy, w, h) turned into corners
/// in the image's own pixels, truncated to integers.
pub fn detections(
    logits: &[Vec<f32>],
    boxes: &[[f32; 4]],
    labels: &[String],
    size: (usize, usize),
    threshold: f32,
) -> Value {
    let (h, w) = (size.0 as f32, size.1 as f32);
    let mut out = Vec::new();
    for (l, b) in logits.iter().zip(boxes) {
        let p = softmax(l);
        let real = &p[..p.len().saturating_sub(1)];
        let (label, score) =
            real.iter().enumerate().fold((0, f32::MIN), |acc, (i, s)| if *s > acc.1 { (i, *s) } else { acc });
        if score <= threshold {
            continue;
        }
        let [cx, cy, bw, bh] = *b;
        let corner = |v: f32| v as i64;
        out.push(json!({
            "score": score,
            "label": labels.get(label).cloned().unwrap_or_else(|| format!("LABEL_{label}")),
            "box": {
                "xmin": corner((cx - 0.5 * bw) * w),
                "ymin": corner((cy - 0.5 * bh) * h),
                "xmax": corner((cx + 0.5 * bw) * w),
                "ymax": corner((cy + 0.5 * bh) * h),
            },
        }));
    }
    Value::Array(out)
}
