//! Benchmark configuration: optimum-benchmark `energy_star` YAML files composed through their
//! `defaults:` list, then Hydra-style overrides, then `${a.b}` interpolations resolved.
//!
//! The task configs of the original (AI Energy Score's and optimum-benchmark's) load unedited:
//! the schema groups they name (`benchmark`, `backend: pytorch`, `launcher: process`,
//! `scenario: energy_star`, `_base_`) come from the config folder when it has them, else from
//! copies built into the binary (`configs/` in the source tree).

mod load;
pub mod overrides;

use std::path::PathBuf;

use serde_json::Value;
use thiserror::Error;

pub use load::{ConfigSource, compose, embedded_names};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config {name:?} not found in {searched}; available: {available}")]
    NotFound { name: String, searched: String, available: String },

    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("config {path} is not valid YAML: {message}")]
    Yaml { path: String, message: String },

    #[error("config {path}: {why}")]
    Invalid { path: String, why: String },

    #[error("override {text:?}: {why}")]
    BadOverride { text: String, why: String },

    #[error("override {text:?}: the config has no key {key}; to add it, use +{text}")]
    NoSuchKey { text: String, key: String },

    #[error("override {text:?}: the config has no key {key}, so there is nothing to delete")]
    NothingToDelete { text: String, key: String },

    #[error("{which} {path} is not a folder: {why}")]
    NoConfigDir { which: &'static str, path: PathBuf, why: String },

    #[error("override: {key} is not a map, so it has no keys to set")]
    NotAMap { key: String },

    #[error("config group {group}: no option {option:?} (available: {available})")]
    NoSuchOption { group: String, option: String, available: String },

    #[error("config defaults nest too deeply (a cycle?) at {name:?}")]
    Cycle { name: String },
}

/// A composed configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub tree: Value,
    /// Where the primary file came from.
    pub source: String,
}

impl Config {
    /// Looks up a dotted key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        key.split('.').try_fold(&self.tree, |v, k| v.get(k))
    }

    /// The effective configuration as YAML, as saved in the results folder.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(&self.tree).unwrap_or_else(|e| format!("# cannot render config as YAML: {e}\n"))
    }
}
