//! Text inputs tokenized as optimum-benchmark's energy_star preprocessing tokenizes them (and
//! transformers' pipelines): one text, or two as a pair (question and context; sentence1 and
//! sentence2) with `[CLS] A [SEP] B [SEP]` and token types, truncated longest-first to the
//! model's `max_position_embeddings`, and padded on the right to the longest row of each group
//! of rows tokenized together (`datasets.map`'s batches), or not at all.
//!
//! The tokenizer is the model's `tokenizer.json`, or, for checkpoints that ship only
//! `vocab.txt` (deepset/electra-base-squad2), the WordPiece tokenizer transformers builds from it
//! and `tokenizer_config.json` (BERT's normaliser, pre-tokenizer and `[CLS]`/`[SEP]` template).

use std::path::Path;

use serde_json::Value;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    Encoding, PaddingDirection, PaddingParams, PaddingStrategy, PostProcessor, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use super::TaskError;

/// A text task's tokenizer.
pub struct TextProcessor {
    tokenizer: Tokenizer,
    pad_id: u32,
    pad_token: String,
    /// `tokenizer_config.json`'s `model_max_length` (what pipelines truncate to).
    pub model_max_length: Option<usize>,
    /// sentence-transformers' `max_seq_length` (`sentence_bert_config.json`), when the folder is
    /// one of its models.
    pub max_seq_length: Option<usize>,
}

fn perr(path: &Path, e: impl std::fmt::Display) -> TaskError {
    TaskError::Processor(format!("{}: {e}", path.display()))
}

/// BERT's WordPiece tokenizer from `vocab.txt`, as transformers' `BertTokenizerFast` converts it.
fn from_vocab(dir: &Path, config: &Value) -> Result<Tokenizer, TaskError> {
    let vocab = dir.join("vocab.txt");
    let lower = config.get("do_lower_case").and_then(Value::as_bool).unwrap_or(true);
    let strip_accents = config.get("strip_accents").and_then(Value::as_bool);
    let chinese = config.get("tokenize_chinese_chars").and_then(Value::as_bool).unwrap_or(true);
    let token = |k: &str, d: &str| config.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
    let (cls, sep, unk) = (token("cls_token", "[CLS]"), token("sep_token", "[SEP]"), token("unk_token", "[UNK]"));
    let model =
        WordPiece::from_file(&vocab.display().to_string()).unk_token(unk).build().map_err(|e| perr(&vocab, e))?;
    let mut t = Tokenizer::new(model);
    t.with_normalizer(Some(BertNormalizer::new(true, chinese, strip_accents, lower))).map_err(|e| perr(&vocab, e))?;
    t.with_pre_tokenizer(Some(BertPreTokenizer));
    let id = |tok: &str| t.token_to_id(tok).ok_or_else(|| perr(&vocab, format!("has no {tok} token")));
    let (cls_id, sep_id) = (id(&cls)?, id(&sep)?);
    let post = TemplateProcessing::builder()
        .try_single(format!("{cls}:0 $A:0 {sep}:0"))
        .and_then(|b| b.try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")))
        .map_err(|e| perr(&vocab, e))?
        .special_tokens(vec![(cls, cls_id), (sep, sep_id)])
        .build()
        .map_err(|e| perr(&vocab, e))?;
    t.with_post_processor(Some(post));
    Ok(t)
}

/// transformers' BERT-family fast tokenizers rebuild `tokenizer.json`'s BERT normaliser from
/// `tokenizer_config.json` (`do_lower_case`, default true; `strip_accents`, default none;
/// `tokenize_chinese_chars`, default true) whenever they differ: lvwerra/distilbert-imdb's config
/// turns lowercasing off whatever its tokenizer.json says.
fn bert_normalizer_as_configured(t: &mut Tokenizer, config: &Value) -> tokenizers::Result<()> {
    let class = config.get("tokenizer_class").and_then(Value::as_str).unwrap_or("");
    if !["BertTokenizer", "DistilBertTokenizer", "ElectraTokenizer"].iter().any(|c| class.starts_with(c)) {
        return Ok(());
    }
    let Some(tokenizers::NormalizerWrapper::BertNormalizer(n)) = t.get_normalizer() else { return Ok(()) };
    let lowercase = config.get("do_lower_case").and_then(Value::as_bool).unwrap_or(true);
    let strip_accents = config.get("strip_accents").and_then(Value::as_bool);
    let chinese = config.get("tokenize_chinese_chars").and_then(Value::as_bool).unwrap_or(true);
    if (n.lowercase, n.strip_accents, n.handle_chinese_chars) != (lowercase, strip_accents, chinese) {
        let rebuilt = BertNormalizer::new(n.clean_text, chinese, strip_accents, lowercase);
        t.with_normalizer(Some(rebuilt))?;
    }
    Ok(())
}

impl TextProcessor {
    /// The tokenizer of the folder `dir`.
    pub fn load(dir: &Path) -> Result<Self, TaskError> {
        let config: Value = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let json = dir.join("tokenizer.json");
        let mut tokenizer = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| perr(&json, format!("does not load: {e}")))?
        } else if dir.join("vocab.txt").is_file() {
            from_vocab(dir, &config)?
        } else {
            return Err(TaskError::Processor(format!("{} has no tokenizer.json or vocab.txt", dir.display())));
        };
        bert_normalizer_as_configured(&mut tokenizer, &config).map_err(|e| perr(&json, e))?;
        // Settings saved in tokenizer.json would pad or cut behind our back.
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| perr(&json, e))?;
        let pad_token = config
            .get("pad_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| ["[PAD]", "<pad>"].into_iter().find(|t| tokenizer.token_to_id(t).is_some()).map(str::to_string))
            .unwrap_or_else(|| "[PAD]".into());
        let pad_id = tokenizer.token_to_id(&pad_token).unwrap_or(0);
        // transformers' "no limit" is a huge number.
        let model_max_length =
            config.get("model_max_length").and_then(Value::as_u64).filter(|n| *n < 1_000_000).map(|n| n as usize);
        let max_seq_length = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.get("max_seq_length").and_then(Value::as_u64))
            .map(|n| n as usize);
        Ok(Self { tokenizer, pad_id, pad_token, model_max_length, max_seq_length })
    }

    fn with_truncation(&self, params: Option<TruncationParams>) -> Result<Tokenizer, TaskError> {
        let mut t = self.tokenizer.clone();
        t.with_truncation(params).map_err(|e| TaskError::Processor(format!("truncation: {e}")))?;
        Ok(t)
    }

    /// Tokenizes one text or a pair; `max_length` cuts longest-first when given.
    pub fn encode(&self, first: &str, second: Option<&str>, max_length: Option<usize>) -> Result<Encoding, TaskError> {
        let t = self.with_truncation(max_length.map(|max_length| TruncationParams {
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))?;
        let enc = match second {
            Some(b) => t.encode((first, b), true),
            None => t.encode(first, true),
        };
        enc.map_err(|e| TaskError::Processor(format!("tokenizing {first:?}: {e}")))
    }

    /// The question-answering pipeline's windows: the pair cut `only_second` to `max_length`,
    /// the context continuing in windows that start `stride` tokens before the previous one
    /// ended; offsets in characters (code points), as Python's. Built piece by piece (the
    /// context cut on its own, each piece post-processed with the question), because the
    /// `tokenizers` crate's template merge keeps only one overflowing window of a pair.
    pub fn windows(
        &self,
        question: &str,
        context: &str,
        max_length: usize,
        stride: usize,
    ) -> Result<Vec<Encoding>, TaskError> {
        let err = |e: tokenizers::Error| TaskError::Processor(format!("tokenizing {question:?}: {e}"));
        let q = self.tokenizer.encode_char_offsets(question, false).map_err(err)?;
        let mut c = self.tokenizer.encode_char_offsets(context, false).map_err(err)?;
        let added = self.tokenizer.get_post_processor().map_or(0, |p| p.added_tokens(true));
        let room = max_length.checked_sub(q.len() + added).filter(|r| *r > stride).ok_or_else(|| {
            TaskError::Processor(format!(
                "the question takes {} of {max_length} tokens: no room for a context window of more than {stride}",
                q.len() + added
            ))
        })?;
        c.truncate(room, stride, TruncationDirection::Right);
        let rest = c.take_overflowing();
        std::iter::once(c)
            .chain(rest)
            .map(|piece| self.tokenizer.post_process(q.clone(), Some(piece), true).map_err(err))
            .collect()
    }

    /// Pads `rows` on the right to the longest of each group of `group` rows.
    pub fn pad_groups(&self, rows: &mut [Encoding], group: usize) -> Result<(), TaskError> {
        let params = PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id: self.pad_id,
            pad_type_id: 0,
            pad_token: self.pad_token.clone(),
        };
        for chunk in rows.chunks_mut(group.max(1)) {
            tokenizers::pad_encodings(chunk, &params).map_err(|e| TaskError::Processor(format!("padding: {e}")))?;
        }
        Ok(())
    }
}
