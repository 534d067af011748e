//! Where and how to reach the Hub, read from the same environment variables as
//! `huggingface_hub`: `HF_ENDPOINT`, `HF_TOKEN` / `HF_TOKEN_PATH` / the token file in `HF_HOME`,
//! `HF_HUB_OFFLINE`, and the cache folders.

use std::path::PathBuf;

use crate::{HubError, hf_home, hub_cache};

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// An access token and where it came from; its value never reaches a log or an error.
#[derive(Clone)]
pub struct Token {
    pub(crate) value: String,
    /// `HF_TOKEN`, or the file it was read from.
    pub source: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(from {})", self.source)
    }
}

#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Without a trailing `/`.
    pub endpoint: String,
    pub token: Option<Token>,
    /// `HF_HUB_OFFLINE`: never touch the network.
    pub offline: bool,
    pub cache: PathBuf,
    /// Files downloaded at once (huggingface_hub's `snapshot_download` uses 8 workers).
    pub parallel_files: usize,
    /// Attempts per file after a dropped connection or a 5xx, each resuming where the last stopped.
    pub retries: u32,
}

/// huggingface_hub's truth test for its boolean variables.
pub fn env_true(v: Option<String>) -> bool {
    v.is_some_and(|v| matches!(v.trim().to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE"))
}

impl HubSettings {
    pub fn from_env(env: &impl Fn(&str) -> Option<String>) -> Result<Self, HubError> {
        let cache = hub_cache(env).ok_or_else(|| {
            HubError::Invalid("no Hugging Face cache folder: set HF_HUB_CACHE, HF_HOME or HOME".into())
        })?;
        let endpoint = env("HF_ENDPOINT")
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(HubError::Invalid(format!("HF_ENDPOINT={endpoint} is not an http:// or https:// URL")));
        }
        Ok(Self {
            endpoint,
            token: token(env)?,
            offline: env_true(env("HF_HUB_OFFLINE")),
            cache,
            parallel_files: 8,
            retries: 5,
        })
    }
}

/// `HF_TOKEN`, else the older `HUGGING_FACE_HUB_TOKEN`, else the file at `HF_TOKEN_PATH`, else
/// `HF_HOME/token` (where `hf auth login` writes it).
fn token(env: &impl Fn(&str) -> Option<String>) -> Result<Option<Token>, HubError> {
    for var in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
        if let Some(v) = env(var).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
            return Ok(Some(Token { value: v, source: var.to_string() }));
        }
    }
    let explicit = env("HF_TOKEN_PATH").filter(|p| !p.trim().is_empty()).map(PathBuf::from);
    let Some(path) = explicit.clone().or_else(|| hf_home(env).map(|h| h.join("token"))) else { return Ok(None) };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(|value| Token { value, source: path.display().to_string() })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => Ok(None),
        Err(e) => Err(HubError::Invalid(format!("HF_TOKEN_PATH={} cannot be read: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_token_and_offline_come_from_the_environment() {
        let home = tempfile::tempdir().expect("tmp");
        let h = home.path().to_str().expect("utf-8").to_string();
        std::fs::write(home.path().join("token"), "hf_file\n").expect("token");
        let env = |vars: Vec<(&'static str, String)>| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let s = HubSettings::from_env(&env(vec![("HF_HOME", h.clone())])).expect("settings");
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(s.cache, home.path().join("hub"));
        assert_eq!(s.token.as_ref().map(|t| t.value.as_str()), Some("hf_file"));
        assert!(!format!("{:?}", s.token).contains("hf_file"), "a token's value is never printed");
        let s = HubSettings::from_env(&env(vec![
            ("HF_HOME", h.clone()),
            ("HF_TOKEN", "hf_env".into()),
            ("HF_ENDPOINT", "http://mirror.local/".into()),
            ("HF_HUB_OFFLINE", "True".into()),
        ]))
        .expect("settings");
        assert_eq!((s.endpoint.as_str(), s.offline), ("http://mirror.local", true));
        assert_eq!(s.token.map(|t| t.source), Some("HF_TOKEN".to_string()));
        let missing = env(vec![("HF_HOME", h.clone()), ("HF_TOKEN_PATH", format!("{h}/nope"))]);
        assert!(HubSettings::from_env(&missing).unwrap_err().to_string().contains("HF_TOKEN_PATH"));
        let bad = env(vec![("HF_HOME", h), ("HF_ENDPOINT", "mirror.local".into())]);
        assert!(HubSettings::from_env(&bad).unwrap_err().to_string().contains("not an http"));
    }
}
