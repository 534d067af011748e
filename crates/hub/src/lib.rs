//! The Hugging Face Hub for energy-star: its cache on this machine, laid out as
//! `huggingface_hub` lays it out so that the Python tools and energy-star share one cache both
//! ways, and downloads into it over the Hub's HTTP protocol (resumable, verified, written
//! whole), with `huggingface_hub`'s environment: `HF_HUB_CACHE` / `HF_HOME`, `HF_ENDPOINT`,
//! `HF_TOKEN` / `HF_TOKEN_PATH`, `HF_HUB_OFFLINE`.
//!
//! Why not the `hf-hub` crate: see `docs/hub.md`.

mod cache;
mod error;
mod fetch;
mod http;
mod repo;
pub mod select;
mod settings;

pub use cache::{cached_gguf, cached_snapshot, hf_home, hub_cache, looks_like_hub_id, split_gguf_id};
pub use error::HubError;
pub use fetch::{FetchProgress, Fetched, FetchedFile, PlannedFile, Selection, Silent, fetch, list_files};
pub use repo::{RepoKind, RepoRef};
pub use settings::{DEFAULT_ENDPOINT, HubSettings, Token, env_true};
