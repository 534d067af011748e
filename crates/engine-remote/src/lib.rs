//! The OpenAI-compatible remote engine (vLLM and others): an HTTP client on its own tokio
//! runtime, a streaming parser ([`sse`]), one request's timing ([`request`]) and a load
//! generator ([`load`]) that sends prompts on a precomputed schedule.
//!
//! Opening an engine checks the server before anything is metered: it must answer
//! `/v1/models` and serve the model asked for (or, when none is asked for, the first one it
//! lists is taken and the notes say so).

pub mod load;
pub mod request;
pub mod sse;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use energy_star_engine::InferenceError;

/// Which OpenAI endpoint the prompts go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Completions,
    ChatCompletions,
}

impl Api {
    pub fn path(self) -> &'static str {
        match self {
            Api::Completions => "completions",
            Api::ChatCompletions => "chat/completions",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RemoteSpec {
    /// As the user gave it: with or without `/v1`, a trailing slash, or a scheme.
    pub endpoint: String,
    pub model: Option<String>,
    pub api: Api,
    pub request_timeout: Duration,
    /// Bearer token, when the server wants one (`VLLM_API_KEY` / `OPENAI_API_KEY`).
    pub api_key: Option<String>,
    /// Usage in the stream, and fields added to every body.
    pub body: request::BodyOptions,
}

/// A connected server.
pub struct RemoteEngine {
    /// The base URL ending in `/v1`.
    pub base_url: String,
    pub model: String,
    pub api: Api,
    pub served_models: Vec<String>,
    /// `max_model_len` from `/v1/models`, when the server says (vLLM does).
    pub max_model_len: Option<u32>,
    pub request_timeout: Duration,
    /// A tokenizer for the model, when one is at hand locally, to count tokens for servers
    /// that send no usage.
    pub tokenizer: Option<Arc<tokenizers::Tokenizer>>,
    pub notes: Vec<String>,
    pub(crate) client: reqwest::Client,
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) api_key: Option<String>,
    pub body: request::BodyOptions,
}

/// `localhost:8000`, `http://h:8000/`, `http://h:8000/v1/` → `http://h:8000/v1`.
pub fn normalize_endpoint(raw: &str) -> Result<(String, Vec<String>), String> {
    let mut notes = Vec::new();
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("the endpoint is empty".into());
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        notes.push(format!("endpoint {trimmed:?} has no scheme; using http://"));
        format!("http://{trimmed}")
    };
    let url = reqwest::Url::parse(&with_scheme).map_err(|e| format!("endpoint {raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("endpoint {raw:?}: only http and https are supported, not {}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("endpoint {raw:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("endpoint {raw:?} has a query or fragment; give the server's base URL"));
    }
    let mut base = url.as_str().trim_end_matches('/').to_string();
    // Users paste the completions URL itself as often as the base.
    for suffix in ["/chat/completions", "/completions"] {
        if let Some(b) = base.strip_suffix(suffix) {
            notes.push(format!("endpoint ends in {suffix}; using its base"));
            base = b.to_string();
        }
    }
    if !base.ends_with("/v1") {
        base.push_str("/v1");
    }
    Ok((base, notes))
}

impl RemoteEngine {
    /// Connects: checks the server answers and serves the model. `tokenizer_for` finds a
    /// local tokenizer for a model name, when there is one.
    pub fn open(
        spec: &RemoteSpec,
        tokenizer_for: &dyn Fn(&str) -> Option<tokenizers::Tokenizer>,
    ) -> Result<Self, InferenceError> {
        let (base_url, mut notes) = normalize_endpoint(&spec.endpoint).map_err(InferenceError::Invalid)?;
        if let Some(k) = spec.body.extra.keys().find(|k| request::HOST_BODY_FIELDS.contains(&k.as_str())) {
            return Err(InferenceError::Invalid(format!(
                "extra request field {k:?} is one the host sets itself ({}); it cannot be replaced",
                request::HOST_BODY_FIELDS.join(", ")
            )));
        }
        if spec.request_timeout.is_zero() {
            return Err(InferenceError::Invalid("the request timeout must be above zero".into()));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| InferenceError::Compute(format!("cannot start the HTTP client's runtime: {e}")))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| InferenceError::Compute(format!("cannot build the HTTP client: {e}")))?;
        let models_url = format!("{base_url}/models");
        let api_key = spec.api_key.clone();
        let fetched = runtime.block_on(async {
            let mut req = client.get(&models_url).timeout(Duration::from_secs(30));
            if let Some(k) = &api_key {
                req = req.bearer_auth(k);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| format!("cannot reach the server at {base_url}: {}", request::describe_reqwest(&e)))?;
            let status = resp.status();
            let text = resp.text().await.map_err(|e| format!("GET {models_url}: the answer broke off: {e}"))?;
            if !status.is_success() {
                return Err(format!("GET {models_url} answered HTTP {status}: {}", request::excerpt(&text)));
            }
            serde_json::from_str::<Value>(&text)
                .map_err(|e| format!("GET {models_url} did not answer JSON ({e}): {}", request::excerpt(&text)))
        });
        let listing = fetched.map_err(InferenceError::Unreachable)?;
        let entries = listing.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        let served: Vec<String> =
            entries.iter().filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string)).collect();
        let model = match &spec.model {
            Some(m) if served.iter().any(|s| s == m) => m.clone(),
            Some(m) if served.is_empty() => {
                notes.push(format!("the server lists no models; sending requests for {m} anyway"));
                m.clone()
            }
            Some(m) => {
                return Err(InferenceError::Unreachable(format!(
                    "the server at {base_url} does not serve model {m:?}; it serves: {}. Set backend.model to one of them",
                    served.join(", ")
                )));
            }
            None => {
                let first = served.first().cloned().ok_or_else(|| {
                    InferenceError::Unreachable(format!("the server at {base_url} lists no models at {models_url}"))
                })?;
                notes.push(format!("model {first} taken from {models_url} (none was given)"));
                first
            }
        };
        let max_model_len = entries
            .iter()
            .find(|m| m.get("id").and_then(Value::as_str) == Some(model.as_str()))
            .and_then(|m| m.get("max_model_len"))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok());
        let tokenizer = tokenizer_for(&model).map(Arc::new);
        notes.push(match &tokenizer {
            Some(_) => format!("a local tokenizer for {model} counts tokens where the server sends no usage"),
            None => format!("no local tokenizer for {model}: where the server sends no usage, output tokens are counted as stream chunks"),
        });
        Ok(Self {
            base_url,
            model,
            api: spec.api,
            served_models: served,
            max_model_len,
            request_timeout: spec.request_timeout,
            tokenizer,
            notes,
            client,
            runtime,
            api_key,
            body: spec.body.clone(),
        })
    }

    /// Tokens of `text` by the local tokenizer, when there is one.
    pub fn count_tokens(&self, text: &str, add_special_tokens: bool) -> Option<u32> {
        request::count_tokens(self.tokenizer.as_deref(), text, add_special_tokens)
    }

    pub fn sender(&self, id_seed: u64) -> request::Sender {
        request::Sender {
            client: self.client.clone(),
            api_key: self.api_key.clone(),
            request_timeout: self.request_timeout,
            id_seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_accepted_with_or_without_v1_and_with_any_port() {
        let n = |s: &str| normalize_endpoint(s).map(|(b, _)| b);
        assert_eq!(n("http://localhost:8000/v1").unwrap(), "http://localhost:8000/v1");
        assert_eq!(n("http://localhost:8000/v1/").unwrap(), "http://localhost:8000/v1");
        assert_eq!(n("http://localhost:8000").unwrap(), "http://localhost:8000/v1");
        assert_eq!(n("http://host.docker.internal:31337/").unwrap(), "http://host.docker.internal:31337/v1");
        assert_eq!(n("https://api.example.com/openai/v1").unwrap(), "https://api.example.com/openai/v1");
        assert_eq!(n("localhost:8000").unwrap(), "http://localhost:8000/v1");
        assert_eq!(n(" http://10.0.0.2:8000/v1/chat/completions ").unwrap(), "http://10.0.0.2:8000/v1");
        assert_eq!(n("http://h/v1/completions").unwrap(), "http://h/v1");
        assert!(n("").unwrap_err().contains("empty"));
        assert!(n("ftp://h:21").unwrap_err().contains("only http and https"));
        assert!(n("http://h:8000/v1?x=1").unwrap_err().contains("query"));
        assert!(n("http://:8000").is_err());
    }
}
