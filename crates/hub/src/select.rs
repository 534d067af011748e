//! Which files of a repo energy-star needs: for a model, what the engine reads; for a dataset,
//! the data files of a split. One rule for files on the Hub and files on disk.

use crate::HubError;

/// Data files a dataset split can be read from.
pub const DATA_EXTENSIONS: &[&str] = &["jsonl", "json", "csv", "parquet"];

/// The small files the engines and the tools read beside the weights: config, generation
/// defaults, the tokenizer (a fast tokenizer, or BERT's WordPiece vocabulary), chat templates,
/// image processors, sentence-transformers' pooling.
pub const MODEL_METADATA: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
];

/// Files a model's inputs can be prepared from; a model needs one: a fast tokenizer, a
/// WordPiece vocabulary (the task engine builds BERT's tokenizer from it, as transformers
/// does), or an image processor.
pub const PROCESSOR_FILES: &[&str] = &["tokenizer.json", "vocab.txt", "preprocessor_config.json"];

pub const SAFETENSORS: &str = "model.safetensors";
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";

fn is_data_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext_ok = name.rsplit_once('.').is_some_and(|(_, e)| DATA_EXTENSIONS.contains(&e));
    // Metadata that shares an extension with data.
    ext_ok && !name.starts_with('.') && !name.starts_with("dataset_info") && !name.starts_with("dataset_dict")
}

/// Whether `rest` (a path below a root) belongs to `split`: its first part is the split
/// (`train.jsonl`, `train-00000-of-00002.parquet`, `train/0000.parquet`).
fn of_split(rest: &str, split: &str) -> bool {
    let first = rest.split('/').next().unwrap_or(rest);
    first == split || first.strip_prefix(split).is_some_and(|tail| tail.starts_with(['-', '_', '.']))
}

/// The data files of `split` among `paths` ('/'-separated, relative to the dataset's root), in
/// name order. Searched below the config's folder, the root and `data/`, in that order; the
/// first of these with files of the split wins, and one holding a single data file gives it.
pub fn split_data_files<'a>(paths: &[&'a str], config: &str, split: &str) -> Vec<&'a str> {
    let mut roots: Vec<String> = vec![String::new(), "data/".into()];
    if !config.is_empty() && config != "default" {
        roots.insert(0, format!("{config}/"));
    }
    for root in &roots {
        let mut below: Vec<(&'a str, &'a str)> = paths
            .iter()
            .filter(|p| is_data_file(p))
            .filter_map(|p| p.strip_prefix(root.as_str()).map(|rest| (*p, rest)))
            .filter(|(_, rest)| rest.split('/').count() <= 2)
            .collect();
        below.sort();
        let matching: Vec<&str> = below.iter().filter(|(_, rest)| of_split(rest, split)).map(|(p, _)| *p).collect();
        if !matching.is_empty() {
            return matching;
        }
        let direct: Vec<&str> = below.iter().filter(|(_, rest)| !rest.contains('/')).map(|(p, _)| *p).collect();
        if direct.len() == 1 {
            return direct;
        }
    }
    Vec::new()
}

/// Every data file of a dataset (all splits), for a run whose plan names the dataset only.
pub fn all_data_files<'a>(paths: &[&'a str], config: &str) -> Vec<&'a str> {
    let mut out: Vec<&str> = paths.iter().copied().filter(|p| is_data_file(p)).collect();
    if !config.is_empty() && config != "default" {
        let own: Vec<&str> = out.iter().copied().filter(|p| p.starts_with(&format!("{config}/"))).collect();
        if !own.is_empty() {
            out = own;
        }
    }
    out.sort();
    out
}

/// How a model's weights are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weights {
    Single,
    /// Shards named by the index's `weight_map`, known once the index is fetched.
    Sharded,
}

/// The model files to fetch first (all but the shards), and how its weights are stored, or
/// none when `weights` is false (`backend.no_weights` builds random ones from the config). A
/// repo without what the engines read is refused by name, before a byte is fetched.
pub fn model_files(
    paths: &[&str],
    repo: &str,
    commit: &str,
    weights: bool,
) -> Result<(Vec<String>, Option<Weights>), HubError> {
    let has = |f: &str| paths.contains(&f);
    let missing = |file: &str, hint: String| HubError::FileNotFound {
        repo: repo.into(),
        commit: commit.into(),
        file: file.into(),
        hint,
    };
    if !has("config.json") {
        return Err(missing("config.json", " (energy-star's engine reads a transformers config.json)".into()));
    }
    if !PROCESSOR_FILES.iter().any(|f| has(f)) {
        let others: Vec<&str> =
            ["tokenizer.model", "vocab.json", "spiece.model"].into_iter().filter(|f| has(f)).collect();
        return Err(missing(
            "tokenizer.json",
            format!(
                " (the engines read a fast tokenizer's tokenizer.json, a WordPiece vocab.txt or an image processor's preprocessor_config.json{}; set backend.processor= to a repo or folder that has one)",
                if others.is_empty() { String::new() } else { format!(", the repo has only {}", others.join(", ")) }
            ),
        ));
    }
    let mut files: Vec<String> = MODEL_METADATA.iter().filter(|f| has(f)).map(|f| f.to_string()).collect();
    if !weights {
        return Ok((files, None));
    }
    let stored = if has(SAFETENSORS) {
        Weights::Single
    } else if has(SAFETENSORS_INDEX) {
        Weights::Sharded
    } else {
        let other: Vec<&str> = paths
            .iter()
            .copied()
            .filter(|p| {
                !p.contains('/')
                    && [".bin", ".pth", ".pt", ".h5", ".msgpack", ".gguf", ".safetensors"]
                        .iter()
                        .any(|e| p.ends_with(e))
            })
            .collect();
        return Err(missing(
            "model.safetensors",
            format!(
                " or {SAFETENSORS_INDEX} (energy-star reads safetensors weights; {}; backend.no_weights=true needs none)",
                if other.is_empty() {
                    "the repo has no weights at its top level".to_string()
                } else {
                    format!("the repo has {}", other.join(", "))
                }
            ),
        ));
    };
    files.push(if stored == Weights::Single { SAFETENSORS } else { SAFETENSORS_INDEX }.to_string());
    Ok((files, Some(stored)))
}

/// The shard files an index names, each a plain file name beside the index.
pub fn index_shards(index_json: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value = serde_json::from_str(index_json).map_err(|e| format!("is not valid JSON: {e}"))?;
    let map = v.get("weight_map").and_then(serde_json::Value::as_object).ok_or("has no weight_map")?;
    let mut files: Vec<String> = map.values().filter_map(|f| f.as_str().map(str::to_string)).collect();
    files.sort();
    files.dedup();
    if let Some(bad) = files.iter().find(|f| f.contains('/') || f.contains('\\') || f.contains("..")) {
        return Err(format!("names a shard outside the folder: {bad}"));
    }
    if files.is_empty() {
        return Err("lists no shards".into());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_is_found_where_the_hub_layouts_put_it() {
        let repo = [
            "README.md",
            "dataset_infos.json",
            "data/train-00000-of-00002.parquet",
            "data/train-00001-of-00002.parquet",
            "data/test-00000-of-00001.parquet",
            "data/training_notes.json",
        ];
        assert_eq!(
            split_data_files(&repo, "", "train"),
            ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
        );
        assert_eq!(split_data_files(&repo, "", "test"), ["data/test-00000-of-00001.parquet"]);
        let converted = ["default/train/0000.parquet", "default/train/0001.parquet", "en/train/0000.parquet"];
        assert_eq!(split_data_files(&converted, "en", "train"), ["en/train/0000.parquet"]);
        assert_eq!(split_data_files(&["prompts.jsonl"], "", "train"), ["prompts.jsonl"]);
        assert!(split_data_files(&["a.jsonl", "b.jsonl"], "", "train").is_empty());
        assert_eq!(all_data_files(&repo, "").len(), 4);
    }

    #[test]
    fn a_model_needs_what_the_engine_reads_and_nothing_more() {
        let repo = [
            "config.json",
            "tokenizer.json",
            "generation_config.json",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
            "pytorch_model.bin",
            "original/model.safetensors",
            "README.md",
        ];
        let (files, w) = model_files(&repo, "o/m", "c", true).expect("selects");
        assert_eq!(w, Some(Weights::Sharded));
        assert_eq!(files, ["config.json", "generation_config.json", "tokenizer.json", SAFETENSORS_INDEX]);
        let err = model_files(&["config.json", "tokenizer.model"], "o/m", "c", true).unwrap_err().to_string();
        assert!(err.contains("no tokenizer.json") && err.contains("tokenizer.model"), "{err}");
        let old = ["config.json", "vocab.txt", "tokenizer_config.json", "pytorch_model.bin"];
        let err = model_files(&old, "o/m", "c", true).unwrap_err().to_string();
        assert!(err.contains("pytorch_model.bin") && err.contains("no_weights"), "{err}");
        // Random weights need the config and the processor only: an old BERT repo (a WordPiece
        // vocabulary, pickled weights) or a ViT one (an image processor) is enough.
        assert_eq!(
            model_files(&old, "o/m", "c", false).expect("no weights"),
            (vec!["config.json".to_string(), "tokenizer_config.json".into(), "vocab.txt".into()], None)
        );
        let vit = ["config.json", "preprocessor_config.json", "pytorch_model.bin", "tf_model.h5"];
        assert_eq!(model_files(&vit, "o/m", "c", false).expect("vit").0, ["config.json", "preprocessor_config.json"]);
        let st = ["config.json", "tokenizer.json", "modules.json", "1_Pooling/config.json", "model.safetensors"];
        assert_eq!(
            model_files(&st, "o/m", "c", true).expect("sentence-transformers").0,
            ["config.json", "tokenizer.json", "modules.json", "1_Pooling/config.json", SAFETENSORS]
        );
        assert_eq!(
            index_shards(r#"{"weight_map": {"a": "s2.safetensors", "b": "s1.safetensors", "c": "s1.safetensors"}}"#),
            Ok(vec!["s1.safetensors".to_string(), "s2.safetensors".to_string()])
        );
        assert!(index_shards(r#"{"weight_map": {"a": "../x"}}"#).is_err());
    }
}
