//! Reads YAML files and composes them through their `defaults:` lists.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::overrides::{self, Override, OverrideOp};
use super::{Config, ConfigError};

/// Configs built into the binary: (relative path without `.yaml`, text).
const EMBEDDED: &[(&str, &str)] = &[
    ("_base_", include_str!("../../../configs/_base_.yaml")),
    ("benchmark", include_str!("../../../configs/benchmark.yaml")),
    ("backend/pytorch", include_str!("../../../configs/backend/pytorch.yaml")),
    ("launcher/process", include_str!("../../../configs/launcher/process.yaml")),
    ("scenario/energy_star", include_str!("../../../configs/scenario/energy_star.yaml")),
    ("text_generation", include_str!("../../../configs/text_generation.yaml")),
    ("automatic_speech_recognition", include_str!("../../../configs/automatic_speech_recognition.yaml")),
    ("image_classification", include_str!("../../../configs/image_classification.yaml")),
    ("image_to_text", include_str!("../../../configs/image_to_text.yaml")),
    ("object_detection", include_str!("../../../configs/object_detection.yaml")),
    ("question_answering", include_str!("../../../configs/question_answering.yaml")),
    ("sentence_similarity", include_str!("../../../configs/sentence_similarity.yaml")),
    ("summarization", include_str!("../../../configs/summarization.yaml")),
    ("t5_question_answering", include_str!("../../../configs/t5_question_answering.yaml")),
    ("t5_summarization", include_str!("../../../configs/t5_summarization.yaml")),
    ("t5_text_classification", include_str!("../../../configs/t5_text_classification.yaml")),
    ("t5_text_generation", include_str!("../../../configs/t5_text_generation.yaml")),
    ("text_classification", include_str!("../../../configs/text_classification.yaml")),
    ("text_to_image", include_str!("../../../configs/text_to_image.yaml")),
    ("text_generation_offline", include_str!("../../../configs/text_generation_offline.yaml")),
];

/// Names of the task configs built into the binary.
pub fn embedded_names() -> Vec<&'static str> {
    EMBEDDED.iter().map(|(n, _)| *n).filter(|n| !n.contains('/') && !n.starts_with('_') && *n != "benchmark").collect()
}

/// Where configs are looked up: a folder first (when given), then the built-in copies.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub dir: Option<PathBuf>,
}

impl ConfigSource {
    /// A folder the user named (`--config-dir` or `ENERGY_STAR_CONFIG_DIR`): it must be a
    /// folder, never silently replaced by the built-ins alone.
    pub fn new(dir: Option<PathBuf>) -> Result<Self, ConfigError> {
        if let Some(d) = &dir {
            let why = match std::fs::metadata(d) {
                Ok(m) if m.is_dir() => None,
                Ok(_) => Some("it is a file".to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = why {
                return Err(ConfigError::NoConfigDir {
                    which: "--config-dir (or ENERGY_STAR_CONFIG_DIR)",
                    path: d.clone(),
                    why,
                });
            }
        }
        Ok(Self { dir })
    }

    /// Reads config `name` (a path relative to the folder, without `.yaml`).
    fn read(&self, name: &str) -> Result<Option<(Value, String)>, ConfigError> {
        if let Some(dir) = &self.dir {
            for candidate in [dir.join(format!("{name}.yaml")), dir.join(format!("{name}.yml")), dir.join(name)] {
                if candidate.is_file() {
                    let text = std::fs::read_to_string(&candidate)
                        .map_err(|source| ConfigError::Read { path: candidate.clone(), source })?;
                    let origin = candidate.display().to_string();
                    return parse_yaml(&text, &origin).map(|v| Some((v, origin)));
                }
            }
        }
        match EMBEDDED.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => {
                let origin = format!("built-in configs/{n}.yaml");
                parse_yaml(text, &origin).map(|v| Some((v, origin)))
            }
            None => Ok(None),
        }
    }

    fn options(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = EMBEDDED
            .iter()
            .filter_map(|(n, _)| n.strip_prefix(group).and_then(|r| r.strip_prefix('/')).map(str::to_string))
            .collect();
        if let Some(dir) = &self.dir
            && let Ok(entries) = std::fs::read_dir(dir.join(group))
        {
            for e in entries.flatten() {
                if let Some(stem) = e.path().file_stem().and_then(|s| s.to_str()) {
                    out.push(stem.to_string());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn task_names(&self) -> Vec<String> {
        let mut out: Vec<String> = embedded_names().into_iter().map(str::to_string).collect();
        if let Some(dir) = &self.dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                    && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                    && !stem.starts_with('_')
                {
                    out.push(stem.to_string());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn parse_yaml(text: &str, origin: &str) -> Result<Value, ConfigError> {
    let v: Value = serde_norway::from_str(text)
        .map_err(|e| ConfigError::Yaml { path: origin.to_string(), message: e.to_string() })?;
    match v {
        Value::Null => Ok(Value::Object(Map::new())),
        Value::Object(_) => Ok(v),
        other => Err(ConfigError::Invalid {
            path: origin.to_string(),
            why: format!("top level must be a map, found {other}"),
        }),
    }
}

/// Composes config `name` from `source`, applies `args` overrides and resolves interpolations.
pub fn compose(source: &ConfigSource, name: &str, args: &[String]) -> Result<Config, ConfigError> {
    let parsed: Vec<Override> = args.iter().map(|a| overrides::parse(a)).collect::<Result<_, _>>()?;
    // `group=option` (no dots) on a group of the defaults list picks another option.
    let mut group_choices = Vec::new();
    let mut value_overrides = Vec::new();
    for o in parsed {
        if o.op == OverrideOp::Set && o.path.len() == 1 && matches!(o.value, Some(Value::String(_))) {
            group_choices.push(o);
        } else {
            value_overrides.push(o);
        }
    }
    let (primary, origin) = source.read(name)?.ok_or_else(|| ConfigError::NotFound {
        name: name.to_string(),
        searched: match &source.dir {
            Some(d) => format!("{} and the built-in configs", d.display()),
            None => "the built-in configs".into(),
        },
        available: source.task_names().join(", "),
    })?;
    let mut used_groups = Vec::new();
    let mut tree = compose_node(source, primary, &origin, None, &group_choices, &mut used_groups, 0)?;
    // Group choices that named no group are ordinary top-level overrides.
    for o in group_choices.into_iter().filter(|o| !used_groups.contains(&o.path[0])) {
        value_overrides.insert(0, o);
    }
    for o in &value_overrides {
        overrides::apply(&mut tree, o)?;
    }
    resolve_interpolations(&mut tree);
    Ok(Config { name: name.to_string(), tree, source: origin })
}

/// Composes one file: its defaults in order, `_self_` where listed (else last).
fn compose_node(
    source: &ConfigSource,
    mut node: Value,
    origin: &str,
    package: Option<&str>,
    choices: &[Override],
    used_groups: &mut Vec<String>,
    depth: usize,
) -> Result<Value, ConfigError> {
    if depth > 16 {
        return Err(ConfigError::Cycle { name: origin.to_string() });
    }
    let defaults = match node.as_object_mut().and_then(|m| m.shift_remove("defaults")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(ConfigError::Invalid {
                path: origin.to_string(),
                why: format!("`defaults` must be a list, found {other}"),
            });
        }
    };
    let mut result = Value::Object(Map::new());
    let mut self_merged = false;
    for entry in defaults {
        let (group, option, optional) = match &entry {
            Value::String(s) if s == "_self_" => {
                merge(&mut result, wrap(package, node.clone()));
                self_merged = true;
                continue;
            }
            Value::String(s) => (None, s.clone(), false),
            Value::Object(m) if m.len() == 1 => {
                let (k, v) = m.iter().next().expect("len 1");
                let (key, optional) = match k.strip_prefix("optional ") {
                    Some(rest) => (rest.trim().to_string(), true),
                    None => (k.strip_prefix("override ").unwrap_or(k).trim().to_string(), false),
                };
                match v {
                    Value::String(opt) => (Some(key), opt.clone(), optional),
                    Value::Null => continue, // `group: null` selects nothing
                    other => {
                        return Err(ConfigError::Invalid {
                            path: origin.to_string(),
                            why: format!("defaults entry {key}: {other} is not an option name"),
                        });
                    }
                }
            }
            other => {
                return Err(ConfigError::Invalid {
                    path: origin.to_string(),
                    why: format!("unsupported defaults entry {other}"),
                });
            }
        };
        let child = match &group {
            Some(g) => {
                let option = match choices.iter().find(|o| &o.path[0] == g) {
                    Some(o) => {
                        used_groups.push(g.clone());
                        o.value.as_ref().and_then(Value::as_str).unwrap_or(&option).to_string()
                    }
                    None => option,
                };
                match source.read(&format!("{g}/{option}"))? {
                    Some((v, o)) => {
                        let pkg = match package {
                            Some(p) => format!("{p}.{g}"),
                            None => g.clone(),
                        };
                        Some(compose_node(source, v, &o, Some(&pkg), choices, used_groups, depth + 1)?)
                    }
                    None if optional => None,
                    None => {
                        return Err(ConfigError::NoSuchOption {
                            group: g.clone(),
                            option,
                            available: source.options(g).join(", "),
                        });
                    }
                }
            }
            None => match source.read(&option)? {
                Some((v, o)) => Some(compose_node(source, v, &o, package, choices, used_groups, depth + 1)?),
                None => {
                    return Err(ConfigError::Invalid {
                        path: origin.to_string(),
                        why: format!("defaults entry {option:?}: no such config"),
                    });
                }
            },
        };
        if let Some(child) = child {
            merge(&mut result, child);
        }
    }
    if !self_merged {
        merge(&mut result, wrap(package, node));
    }
    Ok(result)
}

/// Places a group file's content under its package (`backend.` for `backend: pytorch`).
fn wrap(package: Option<&str>, node: Value) -> Value {
    match package {
        None => node,
        Some(p) => p.split('.').rev().fold(node, |inner, key| {
            let mut m = Map::new();
            m.insert(key.to_string(), inner);
            Value::Object(m)
        }),
    }
}

/// Deep-merges `over` into `base`: maps merge key by key, anything else replaces.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Resolves `${a.b}` in strings against the whole tree (OmegaConf's absolute interpolation).
/// A reference that names no key (such as Hydra's runtime `${hydra.job.override_dirname}`) is
/// left as written.
fn resolve_interpolations(tree: &mut Value) {
    let snapshot = tree.clone();
    for _ in 0..8 {
        if !resolve_in(tree, &snapshot) {
            break;
        }
    }
}

fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, k| v.get(k.trim()))
}

fn resolve_in(node: &mut Value, root: &Value) -> bool {
    match node {
        Value::Object(m) => m.values_mut().fold(false, |changed, v| resolve_in(v, root) | changed),
        Value::Array(a) => a.iter_mut().fold(false, |changed, v| resolve_in(v, root) | changed),
        Value::String(s) if s.contains("${") => {
            // A string that is exactly one interpolation takes the referenced value's type.
            if let Some(inner) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
                && !inner.contains('$')
                && !inner.contains(':')
            {
                if let Some(v) = lookup(root, inner) {
                    *node = v.clone();
                    return true;
                }
                return false;
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            let mut changed = false;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                match after.find('}') {
                    Some(end) => {
                        let key = &after[..end];
                        match lookup(root, key).filter(|v| !v.is_object() && !v.is_array()) {
                            Some(Value::String(v)) => {
                                out.push_str(v);
                                changed = true;
                            }
                            Some(v) => {
                                out.push_str(&v.to_string());
                                changed = true;
                            }
                            None => out.push_str(&rest[start..start + 3 + end]),
                        }
                        rest = &after[end + 1..];
                    }
                    None => {
                        out.push_str(&rest[start..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            if changed {
                *s = out;
            }
            changed
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn builtin() -> ConfigSource {
        ConfigSource { dir: None }
    }

    #[test]
    fn every_builtin_task_config_composes() {
        for name in embedded_names() {
            let cfg = compose(&builtin(), name, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(cfg.get("scenario.num_samples").is_some(), "{name} has no scenario.num_samples");
            assert_eq!(cfg.get("backend.name"), Some(&json!("pytorch")), "{name}");
            assert_eq!(cfg.get("launcher.name"), Some(&json!("process")), "{name}");
            assert!(cfg.get("defaults").is_none());
        }
    }

    #[test]
    fn self_comes_last_and_overrides_apply() {
        let cfg =
            compose(&builtin(), "text_generation", &["scenario.num_samples=3".into(), "backend.device=cpu".into()])
                .expect("compose");
        assert_eq!(cfg.get("scenario.num_samples"), Some(&json!(3)));
        assert_eq!(cfg.get("backend.device"), Some(&json!("cpu")));
        // The scenario group's defaults are there under the task's values.
        assert_eq!(cfg.get("scenario.warmup_runs"), Some(&json!(10)));
        assert_eq!(cfg.get("hydra.run.dir"), Some(&json!("runs/text_generation")), "interpolation of ${{name}}");
    }

    #[test]
    fn missing_config_and_group_option_are_named() {
        let err = compose(&builtin(), "no_such_task", &[]).unwrap_err().to_string();
        assert!(err.contains("no_such_task") && err.contains("text_generation"), "{err}");
        let err = compose(&builtin(), "text_generation", &["backend=onnx".into()]).unwrap_err().to_string();
        assert!(err.contains("onnx") && err.contains("pytorch"), "{err}");
    }

    #[test]
    fn bad_yaml_is_an_error_with_the_path() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("broken.yaml"), "name: [unclosed\n").expect("write");
        let src = ConfigSource { dir: Some(dir.path().to_path_buf()) };
        let err = compose(&src, "broken", &[]).unwrap_err().to_string();
        assert!(err.contains("broken.yaml") && err.contains("not valid YAML"), "{err}");
    }

    #[test]
    fn merge_is_deep() {
        let mut a = json!({"x": {"a": 1, "b": 2}, "y": 1});
        merge(&mut a, json!({"x": {"b": 3}, "y": {"z": 1}}));
        assert_eq!(a, json!({"x": {"a": 1, "b": 3}, "y": {"z": 1}}));
    }
}
