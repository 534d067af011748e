//! Finds a model's files: a local folder, or a Hugging Face id in the local hub cache
//! (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`, laid out as
//! `models--ORG--NAME/snapshots/REV`).
//!
//! Nothing is downloaded here: a run fetches its plan's models before it starts (`crates/hub`),
//! so a model missing from the cache at this point is an error that says how to fetch it.

use std::path::{Path, PathBuf};

use energy_star_hub::{cached_gguf, cached_snapshot, env_true, hub_cache, looks_like_hub_id, split_gguf_id};

/// The files of a model folder.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub generation_config: Option<PathBuf>,
    pub tokenizer: PathBuf,
    /// One file, or the shards named by `model.safetensors.index.json`.
    pub weights: Vec<PathBuf>,
}

/// Whether `model` names a GGUF file: a path ending in `.gguf`, or `ORG/NAME/FILE.gguf[@REV]`.
pub fn is_gguf(model: &str) -> bool {
    model.ends_with(".gguf") || split_gguf_id(model).is_some()
}

/// Where the GGUF file `model` names is: that path, else, for `ORG/NAME/FILE.gguf`, its copy in
/// the Hub cache (a run fetched it).
pub fn locate_gguf(model: &str, env: &impl Fn(&str) -> Option<String>) -> Result<PathBuf, String> {
    let given = Path::new(model);
    if given.exists() || split_gguf_id(model).is_none() {
        return Ok(given.to_path_buf());
    }
    hub_cache(env).and_then(|c| cached_gguf(&c, model)).ok_or_else(|| {
        format!(
            "is not a file and not in the Hugging Face cache: `energy-star fetch {model}` fetches it (a run does so before it starts)"
        )
    })
}

/// Resolves `model` (a folder, or a hub id) to its files.
pub fn resolve(model: &str, env: &impl Fn(&str) -> Option<String>) -> Result<ModelFiles, String> {
    let dir = model_dir(model, env)?;
    let need = |name: &str| -> Result<PathBuf, String> {
        let p = dir.join(name);
        if p.is_file() { Ok(p) } else { Err(format!("{} has no {name}", dir.display())) }
    };
    let config = need("config.json")?;
    let tokenizer = need("tokenizer.json")?;
    let generation_config = Some(dir.join("generation_config.json")).filter(|p| p.is_file());
    let weights = weights(&dir)?;
    Ok(ModelFiles { dir, config, generation_config, tokenizer, weights })
}

/// Checks that `model`'s folder holds what an engine reads, without opening it: config.json,
/// one processor file (a tokenizer or an image processor: the engine that opens it says which
/// it needs), and the weights unless `weights` is false (random ones for `no_weights`). The
/// same rule the Hub fetch selects files by.
pub fn check_model_folder(
    model: &str,
    weights: bool,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<PathBuf, String> {
    let dir = model_dir(model, env)?;
    if !dir.join("config.json").is_file() {
        return Err(format!("{} has no config.json", dir.display()));
    }
    let processors = energy_star_hub::select::PROCESSOR_FILES;
    if !processors.iter().any(|f| dir.join(f).is_file()) {
        return Err(format!("{} has none of {} to prepare inputs with", dir.display(), processors.join(", ")));
    }
    if weights {
        self::weights(&dir)?;
    }
    Ok(dir)
}

/// The folder of `model`: itself, the toy model's, or its snapshot in the hub cache.
pub fn model_dir(model: &str, env: &impl Fn(&str) -> Option<String>) -> Result<PathBuf, String> {
    let path = Path::new(model);
    let dir = if model == crate::toy::TOY_MODEL {
        crate::toy::ensure(env)?
    } else if path.is_dir() {
        path.to_path_buf()
    } else if path.exists() {
        return Err(format!("{model} is a file; give the model's folder (config.json, tokenizer.json, *.safetensors)"));
    } else {
        let looks_like_id = looks_like_hub_id(model);
        let offline = env_true(env("HF_HUB_OFFLINE"));
        let cache = hub_cache(env);
        match (looks_like_id, cache.as_deref().and_then(|c| cached_snapshot(c, "models", model))) {
            (true, Some(d)) => d,
            (true, None) => {
                let where_ = cache.map(|c| c.display().to_string()).unwrap_or_else(|| "(no HF_HOME or HOME)".into());
                return Err(if offline {
                    format!(
                        "{model} is not a folder and not in the Hugging Face cache at {where_}, and HF_HUB_OFFLINE=1 forbids downloading"
                    )
                } else {
                    format!(
                        "{model} is not a folder and not in the Hugging Face cache at {where_}: `energy-star fetch {model}` fetches it (a run does so before it starts), or pass its folder"
                    )
                });
            }
            (false, _) => return Err(format!("model folder {model} does not exist")),
        }
    };
    Ok(dir)
}

/// The safetensors files of a model folder: one, or the shards its index names.
pub fn weights(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let weights = if single.is_file() {
        vec![single]
    } else if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| format!("{}: {e}", index.display()))?;
        // The same rule the Hub fetch uses to pick the shards to download.
        let shards =
            energy_star_hub::select::index_shards(&text).map_err(|why| format!("{} {why}", index.display()))?;
        let mut out = Vec::new();
        for f in shards {
            let p = dir.join(&f);
            if !p.is_file() {
                return Err(format!("{} is missing shard {f} (a partial download?)", dir.display()));
            }
            out.push(p);
        }
        out
    } else {
        return Err(format!("{} has no model.safetensors or model.safetensors.index.json", dir.display()));
    };
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_cache_layout_and_errors() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path().to_str().expect("utf-8").to_string();
        let env = |k: &str| (k == "HF_HOME").then(|| home.clone());
        let snap = tmp.path().join("hub/models--org--tiny/snapshots/abc123");
        std::fs::create_dir_all(&snap).expect("mkdir");
        std::fs::create_dir_all(tmp.path().join("hub/models--org--tiny/refs")).expect("mkdir");
        std::fs::write(tmp.path().join("hub/models--org--tiny/refs/main"), "abc123\n").expect("ref");
        let err = resolve("org/tiny", &env).unwrap_err();
        assert!(err.contains("no config.json"), "{err}");
        for f in ["config.json", "tokenizer.json"] {
            std::fs::write(snap.join(f), "{}").expect("write");
        }
        assert!(resolve("org/tiny", &env).unwrap_err().contains("no model.safetensors"));
        std::fs::write(
            snap.join("model.safetensors.index.json"),
            r#"{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#,
        )
        .expect("index");
        std::fs::write(snap.join("model-00001-of-00002.safetensors"), "").expect("shard");
        let err = resolve("org/tiny", &env).unwrap_err();
        assert!(err.contains("missing shard model-00002-of-00002.safetensors"), "{err}");
        std::fs::write(snap.join("model-00002-of-00002.safetensors"), "").expect("shard");
        let files = resolve("org/tiny", &env).expect("resolved");
        assert_eq!(files.weights.len(), 2);
        assert_eq!(files.dir, snap);
        let err = resolve("org/absent", &env).unwrap_err();
        assert!(err.contains("not in the Hugging Face cache") && err.contains("energy-star fetch org/absent"), "{err}");
        let offline = |k: &str| match k {
            "HF_HOME" => Some(home.clone()),
            "HF_HUB_OFFLINE" => Some("1".to_string()),
            _ => None,
        };
        assert!(resolve("org/absent", &offline).unwrap_err().contains("HF_HUB_OFFLINE=1"));
        assert!(resolve("/no/such/folder", &env).unwrap_err().contains("does not exist"));
    }
}
