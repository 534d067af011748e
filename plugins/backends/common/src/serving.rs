//! Serving metrics with `vllm bench serve`'s names and definitions, and ML.ENERGY's
//! steady-state window. Pure functions over request records, so they are tested natively.
//!
//! Definitions (stated in every report, since tools differ):
//! - TTFT: send to the first chunk with a choice.
//! - TPOT: (E2E − TTFT) / (output tokens − 1), per request, requests with more than one token
//!   (vLLM's; GuideLLM's TPOT includes the first token).
//! - ITL: every gap between chunks of all requests, pooled; a chunk carrying k tokens counts
//!   its gap then k−1 zeros.
//! - E2EL: send to the last chunk with a choice.
//! - Percentiles: linear interpolation between closest ranks (numpy's default).

use serde_json::{Map, Value, json};

/// A request as the host reported it (its times in ns on the host clock).
pub use energy_star_plugin_sdk::backend::host::inference::RequestOutcome as Req;

/// What the metrics need of a request's record.
pub trait Timed {
    /// Whether it succeeded.
    fn ok(&self) -> bool;
    /// Time of each chunk (ns): the first at TTFT, then by ITL, each weighted by its share of
    /// the request's output tokens.
    fn token_times(&self) -> Vec<(u64, f64)>;
    fn first_token_at(&self) -> Option<u64>;
    fn end_at(&self) -> u64;
}

impl Timed for Req {
    fn ok(&self) -> bool {
        self.error.is_none()
    }

    fn token_times(&self) -> Vec<(u64, f64)> {
        let Some(ttft) = self.ttft_ns else { return Vec::new() };
        let mut t = self.start_ns + ttft;
        let mut times = vec![t];
        for gap in &self.itl_ns {
            t += gap;
            times.push(t);
        }
        // Chunks are not tokens: several tokens in one chunk (usage only at the end), or a
        // chat stream's role-only first chunk with none. The timestamps share the count.
        let weight = f64::from(self.output_tokens) / times.len() as f64;
        times.into_iter().map(|t| (t, weight)).collect()
    }

    fn first_token_at(&self) -> Option<u64> {
        self.ttft_ns.map(|t| self.start_ns + t)
    }

    fn end_at(&self) -> u64 {
        self.start_ns + self.e2e_ns
    }
}

/// numpy's default percentile (linear); `sorted` ascending and non-empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.len() == 1 {
        return sorted[0];
    }
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// mean, median, std, p90 and p99 of a sample, ms; none for an empty one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub mean: f64,
    pub median: f64,
    pub std: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Stats {
    /// Over the finite values; none when there are none.
    pub fn of(values_ms: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values_ms.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        Some(Self { mean, median: percentile(&v, 50.0), std, p90: percentile(&v, 90.0), p99: percentile(&v, 99.0) })
    }

    /// The `{stat}_{name}_ms` fields of `vllm bench serve` (null when there is no sample).
    fn insert(stats: Option<Self>, out: &mut Map<String, Value>, name: &str) {
        let values = stats.map(|s| [s.mean, s.median, s.std, s.p90, s.p99]);
        for (i, k) in ["mean", "median", "std", "p90", "p99"].iter().enumerate() {
            out.insert(format!("{k}_{name}_ms"), json!(values.map(|v| v[i])));
        }
    }
}

/// `vllm bench serve`'s result fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingMetrics {
    pub duration_s: f64,
    pub completed: u64,
    pub failed: u64,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    /// Per second of the run; none for a run of no duration.
    pub request_throughput: Option<f64>,
    pub output_throughput: Option<f64>,
    pub total_token_throughput: Option<f64>,
    pub max_output_tokens_per_s: f64,
    pub max_concurrent_requests: u32,
    pub ttft: Option<Stats>,
    pub tpot: Option<Stats>,
    pub itl: Option<Stats>,
    pub e2el: Option<Stats>,
    pub client_queue: Option<Stats>,
}

impl ServingMetrics {
    /// The metrics as `vllm bench serve` names them.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("duration".into(), json!(self.duration_s));
        m.insert("completed".into(), json!(self.completed));
        m.insert("failed".into(), json!(self.failed));
        m.insert("total_input_tokens".into(), json!(self.total_input_tokens));
        m.insert("total_output_tokens".into(), json!(self.total_output_tokens));
        m.insert("request_throughput".into(), json!(self.request_throughput));
        m.insert("output_throughput".into(), json!(self.output_throughput));
        m.insert("total_token_throughput".into(), json!(self.total_token_throughput));
        m.insert("max_output_tokens_per_s".into(), json!(self.max_output_tokens_per_s));
        m.insert("max_concurrent_requests".into(), json!(self.max_concurrent_requests));
        for (name, stats) in [
            ("ttft", self.ttft),
            ("tpot", self.tpot),
            ("itl", self.itl),
            ("e2el", self.e2el),
            ("client_queue", self.client_queue),
        ] {
            Stats::insert(stats, &mut m, name);
        }
        m
    }
}

/// `vllm bench serve`'s metrics over `reqs` and a run of `duration_s`.
pub fn metrics(reqs: &[Req], duration_s: f64, peak_concurrency: u32) -> ServingMetrics {
    let ok: Vec<&Req> = reqs.iter().filter(|r| r.ok()).collect();
    let total_in: u64 = ok.iter().map(|r| u64::from(r.input_tokens)).sum();
    let total_out: u64 = ok.iter().map(|r| u64::from(r.output_tokens)).sum();
    let per_s = |x: f64| (duration_s > 0.0).then(|| x / duration_s);
    let ms = |ns: u64| ns as f64 / 1e6;
    let ttft: Vec<f64> = ok.iter().filter_map(|r| r.ttft_ns.map(ms)).collect();
    let tpot: Vec<f64> = ok
        .iter()
        .filter(|r| r.output_tokens > 1)
        .filter_map(|r| r.ttft_ns.map(|t| ms(r.e2e_ns.saturating_sub(t)) / f64::from(r.output_tokens - 1)))
        .collect();
    let itl: Vec<f64> = ok.iter().flat_map(|r| r.itl_ns.iter().map(|g| ms(*g))).collect();
    let e2el: Vec<f64> = ok.iter().map(|r| ms(r.e2e_ns)).collect();
    let queue: Vec<f64> = ok.iter().map(|r| ms(r.queue_ns.unwrap_or(0))).collect();
    ServingMetrics {
        duration_s,
        completed: ok.len() as u64,
        failed: (reqs.len() - ok.len()) as u64,
        total_input_tokens: total_in,
        total_output_tokens: total_out,
        request_throughput: per_s(ok.len() as f64),
        output_throughput: per_s(total_out as f64),
        total_token_throughput: per_s((total_in + total_out) as f64),
        max_output_tokens_per_s: max_tokens_per_s(&ok),
        max_concurrent_requests: peak_concurrency,
        ttft: Stats::of(&ttft),
        tpot: Stats::of(&tpot),
        itl: Stats::of(&itl),
        e2el: Stats::of(&e2el),
        client_queue: Stats::of(&queue),
    }
}

/// Output tokens in the busiest whole second since the first request (vLLM's 1 s buckets).
pub fn max_tokens_per_s(reqs: &[&Req]) -> f64 {
    let Some(t0) = reqs.iter().map(|r| r.start_ns).min() else { return 0.0 };
    let mut buckets: std::collections::BTreeMap<u64, f64> = Default::default();
    for r in reqs {
        for (t, w) in r.token_times() {
            *buckets.entry((t - t0.min(t)) / 1_000_000_000).or_default() += w;
        }
    }
    buckets.values().copied().fold(0.0, f64::max)
}

/// Failures by kind.
pub fn failures_by_kind(reqs: &[Req]) -> Map<String, Value> {
    let mut m: std::collections::BTreeMap<String, u64> = Default::default();
    for e in reqs.iter().filter_map(|r| r.error.as_ref()) {
        *m.entry(energy_star_plugin_sdk::types::FailureKind::from(e.kind).as_str().to_string()).or_default() += 1;
    }
    m.into_iter().map(|(k, v)| (k, json!(v))).collect()
}

/// ML.ENERGY's steady state for `k` concurrent requests: from the moment `k` requests have
/// their first token to the moment `n − k − 1` requests have finished. None when the run is
/// too short for one (then the reason).
pub fn steady_state(reqs: &[Req], k: usize) -> Result<(u64, u64), String> {
    let ok: Vec<&Req> = reqs.iter().filter(|r| r.ok()).collect();
    let n = ok.len();
    if k == 0 {
        return Err("steady-state concurrency is 0".into());
    }
    if n < 2 * k + 2 {
        return Err(format!(
            "{n} completed requests are too few for a steady state at concurrency {k} (needs at least {})",
            2 * k + 2
        ));
    }
    let mut firsts: Vec<u64> = ok.iter().filter_map(|r| r.first_token_at()).collect();
    firsts.sort_unstable();
    let mut ends: Vec<u64> = ok.iter().map(|r| r.end_at()).collect();
    ends.sort_unstable();
    let start = *firsts.get(k - 1).ok_or("too few requests produced a first token")?;
    let end = ends[n - k - 2];
    if end <= start {
        return Err(format!("no steady state: the {}th request finished before the {k}th first token", n - k - 1));
    }
    Ok((start, end))
}

/// Output tokens generated inside [start, end].
pub fn tokens_between(reqs: &[Req], start: u64, end: u64) -> f64 {
    reqs.iter().flat_map(|r| r.token_times()).filter(|(t, _)| *t >= start && *t <= end).map(|(_, w)| w).sum()
}

/// How a serving backend sends its load: the `serving` section of the config.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingConfig {
    pub api: String,
    /// "sequential", "concurrency" or "rate".
    pub profile: String,
    pub concurrency: u32,
    /// Requests per second; infinite sends all at once.
    pub request_rate: f64,
    pub burstiness: f64,
    pub max_concurrency: Option<u32>,
    pub seed: u64,
    pub warmup_requests: u32,
    /// 0: no time bound.
    pub max_duration_s: f64,
    pub request_timeout_s: f64,
    /// 0: never stop sending for failures.
    pub max_consecutive_failures: u32,
    /// Above this share of failed requests the report is marked incomplete.
    pub max_failed_fraction: f64,
    pub drain_timeout_s: f64,
    /// ML.ENERGY's `max_num_seqs` for the steady state; None: the profile's cap, else the
    /// observed peak concurrency.
    pub steady_state_concurrency: Option<u32>,
    /// Ask for token usage in the stream (`stream_options`); off for servers that refuse it.
    pub stream_usage: bool,
}

fn num(cfg: &Value, path: &str, default: f64) -> Result<f64, String> {
    match crate::get(cfg, path) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| format!("{path} = {n} is not a number")),
        Some(Value::String(s)) if matches!(s.trim(), "inf" | "+inf" | "infinity" | "Infinity" | ".inf") => {
            Ok(f64::INFINITY)
        }
        Some(v) => Err(format!("{path} = {v} must be a number")),
    }
}

fn count(cfg: &Value, path: &str, default: Option<u32>) -> Result<Option<u32>, String> {
    match crate::int_at(cfg, path).map_err(|e| e.message)? {
        None => Ok(default),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| format!("{path} = {n} must be between 0 and {}", u32::MAX)),
    }
}

impl ServingConfig {
    /// Reads and checks the `serving` section; a refusal names the key at fault.
    pub fn read(cfg: &Value) -> Result<Self, crate::ConfigError> {
        Self::read_checked(cfg).map_err(|message| {
            // Every message here starts with the key it is about.
            let key = message.split([' ', '=']).next().unwrap_or("serving").trim_end_matches(':').to_string();
            crate::ConfigError { key: Some(key), message }
        })
    }

    fn read_checked(cfg: &Value) -> Result<Self, String> {
        let p = "serving";
        let api = crate::str_at(cfg, &format!("{p}.api")).unwrap_or_else(|| "completions".into());
        if !matches!(api.as_str(), "completions" | "chat") {
            return Err(format!("{p}.api = {api:?} must be completions or chat"));
        }
        let profile = crate::str_at(cfg, &format!("{p}.profile")).unwrap_or_else(|| "sequential".into());
        if !matches!(profile.as_str(), "sequential" | "concurrency" | "rate") {
            return Err(format!("{p}.profile = {profile:?} must be sequential, concurrency or rate"));
        }
        let concurrency = count(cfg, &format!("{p}.concurrency"), Some(1))?.unwrap_or(1);
        if profile == "concurrency" && concurrency == 0 {
            return Err(format!("{p}.concurrency must be at least 1"));
        }
        let request_rate = num(cfg, &format!("{p}.request_rate"), f64::INFINITY)?;
        if request_rate.is_nan() || request_rate <= 0.0 {
            return Err(format!("{p}.request_rate = {request_rate} must be above 0, or inf"));
        }
        let burstiness = num(cfg, &format!("{p}.burstiness"), 1.0)?;
        if burstiness.is_nan() || burstiness <= 0.0 {
            return Err(format!("{p}.burstiness = {burstiness} must be above 0 (1 is Poisson)"));
        }
        let max_concurrency = count(cfg, &format!("{p}.max_concurrency"), None)?;
        if max_concurrency == Some(0) {
            return Err(format!("{p}.max_concurrency must be at least 1, or null"));
        }
        let seed = match crate::int_at(cfg, &format!("{p}.seed")).map_err(|e| e.message)? {
            Some(s) => s as u64,
            None => crate::int_at(cfg, "backend.seed").map_err(|e| e.message)?.unwrap_or(42) as u64,
        };
        let secs = |k: &str, d: f64| -> Result<f64, String> {
            let v = num(cfg, &format!("{p}.{k}"), d)?;
            if v.is_nan() || v < 0.0 || v.is_infinite() {
                return Err(format!("{p}.{k} = {v} must be a finite number of seconds, 0 or more"));
            }
            Ok(v)
        };
        let max_failed_fraction = num(cfg, &format!("{p}.max_failed_fraction"), 0.01)?;
        if !(0.0..=1.0).contains(&max_failed_fraction) {
            return Err(format!("{p}.max_failed_fraction = {max_failed_fraction} must be between 0 and 1"));
        }
        let request_timeout_s = secs("request_timeout_s", 600.0)?;
        if request_timeout_s == 0.0 {
            return Err(format!("{p}.request_timeout_s must be above 0"));
        }
        Ok(Self {
            api,
            profile,
            concurrency,
            request_rate,
            burstiness,
            max_concurrency,
            seed,
            warmup_requests: count(cfg, &format!("{p}.warmup_requests"), Some(0))?.unwrap_or(0),
            max_duration_s: secs("max_duration_s", 0.0)?,
            request_timeout_s,
            max_consecutive_failures: count(cfg, &format!("{p}.max_consecutive_failures"), Some(20))?.unwrap_or(20),
            max_failed_fraction,
            drain_timeout_s: secs("drain_timeout_s", 30.0)?,
            steady_state_concurrency: count(cfg, &format!("{p}.steady_state_concurrency"), None)?.filter(|n| *n > 0),
            stream_usage: match crate::get(cfg, &format!("{p}.stream_usage")) {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(v) => return Err(format!("{p}.stream_usage = {v} must be true or false")),
            },
        })
    }

    /// Requests in flight at once, when the profile caps it.
    pub fn cap(&self) -> Option<u32> {
        match self.profile.as_str() {
            "sequential" => Some(1),
            "concurrency" => Some(self.concurrency),
            _ => self.max_concurrency,
        }
    }

    /// The profile for the report (infinite rates as "inf", as vLLM writes them).
    pub fn to_json(&self) -> Value {
        let rate = if self.request_rate.is_infinite() { json!("inf") } else { json!(self.request_rate) };
        let burst = if self.burstiness.is_infinite() { json!("inf") } else { json!(self.burstiness) };
        json!({
            "api": self.api,
            "profile": self.profile,
            "concurrency": (self.profile == "concurrency").then_some(self.concurrency),
            "request_rate": (self.profile == "rate").then_some(rate),
            "burstiness": (self.profile == "rate").then_some(burst),
            "max_concurrency": self.cap(),
            "seed": self.seed,
            "warmup_requests": self.warmup_requests,
            "max_duration_s": self.max_duration_s,
            "request_timeout_s": self.request_timeout_s,
            "max_consecutive_failures": self.max_consecutive_failures,
            "max_failed_fraction": self.max_failed_fraction,
            "drain_timeout_s": self.drain_timeout_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use energy_star_plugin_sdk::backend::host::inference::{FailureKind, RequestError};
    use energy_star_plugin_sdk::backend::host::types::TokenCountSource;

    fn req(index: u32, start_ms: u64, ttft_ms: u64, itl_ms: &[u64], out: u32) -> Req {
        let itl_ns: Vec<u64> = itl_ms.iter().map(|x| x * 1_000_000).collect();
        Req {
            prompt_index: index,
            request_id: None,
            input_tokens: 10,
            output_tokens: out,
            token_source: TokenCountSource::ServerUsage,
            start_ns: start_ms * 1_000_000,
            queue_ns: Some(0),
            ttft_ns: Some(ttft_ms * 1_000_000),
            e2e_ns: (ttft_ms + itl_ms.iter().sum::<u64>()) * 1_000_000,
            itl_ns,
            output_ids: Vec::new(),
            text: String::new(),
            finish_reason: None,
            error: None,
        }
    }

    fn failed(index: u32, kind: FailureKind) -> Req {
        let error = Some(RequestError { kind, message: "mock".into(), http_status: Some(500) });
        Req {
            ttft_ns: None,
            e2e_ns: 0,
            itl_ns: Vec::new(),
            output_tokens: 0,
            input_tokens: 0,
            error,
            ..req(index, 0, 0, &[], 0)
        }
    }

    #[test]
    fn serving_config_defaults_and_refusals() {
        let c = ServingConfig::read(&json!({})).expect("defaults");
        assert_eq!(
            (c.profile.as_str(), c.cap(), c.request_rate.is_infinite(), c.max_consecutive_failures),
            ("sequential", Some(1), true, 20)
        );
        let c = ServingConfig::read(
            &json!({"serving": {"profile": "rate", "request_rate": 12.5, "burstiness": "inf", "max_concurrency": 8}}),
        )
        .expect("rate");
        assert_eq!((c.request_rate, c.burstiness.is_infinite(), c.cap()), (12.5, true, Some(8)));
        assert_eq!(c.to_json()["burstiness"], "inf");
        for (bad, says) in [
            (json!({"serving": {"profile": "burst"}}), "must be sequential"),
            (json!({"serving": {"profile": "concurrency", "concurrency": 0}}), "at least 1"),
            (json!({"serving": {"request_rate": -1}}), "above 0"),
            (json!({"serving": {"burstiness": 0}}), "above 0"),
            (json!({"serving": {"api": "responses"}}), "completions or chat"),
            (json!({"serving": {"request_timeout_s": 0}}), "above 0"),
            (json!({"serving": {"max_failed_fraction": 2}}), "between 0 and 1"),
            (json!({"serving": {"max_duration_s": "soon"}}), "must be a number"),
        ] {
            let e = ServingConfig::read(&bad).unwrap_err();
            assert!(e.message.contains(says), "{bad}: {}", e.message);
            assert!(
                e.key.as_deref().is_some_and(|k| k.starts_with("serving.") && bad.to_string().contains(&k[8..])),
                "{bad}: {:?}",
                e.key
            );
        }
    }

    #[test]
    fn percentiles_match_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        // numpy.percentile([1,2,3,4], [50, 90, 99]) = 2.5, 3.7, 3.97
        assert!((percentile(&v, 50.0) - 2.5).abs() < 1e-12);
        assert!((percentile(&v, 90.0) - 3.7).abs() < 1e-12);
        assert!((percentile(&v, 99.0) - 3.97).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn vllm_metrics_by_hand() {
        // Two requests over a 1 s run: TTFT 100 and 300 ms; gaps 10, 20 and 30 ms.
        let mut reqs = vec![req(0, 0, 100, &[10, 20], 3), req(1, 0, 300, &[30], 2)];
        reqs.push(failed(2, FailureKind::HttpServerError));
        let m = metrics(&reqs, 1.0, 2).to_json();
        assert_eq!(m["completed"], 2);
        assert_eq!(m["failed"], 1);
        assert_eq!(m["total_output_tokens"], 5);
        assert_eq!(m["request_throughput"], 2.0);
        assert_eq!(m["output_throughput"], 5.0);
        assert_eq!(m["total_token_throughput"], 25.0);
        assert_eq!(m["mean_ttft_ms"], 200.0);
        // TPOT: (130 − 100) / 2 = 15 and (330 − 300) / 1 = 30.
        assert_eq!(m["mean_tpot_ms"], 22.5);
        // ITL pooled: 10, 20, 30.
        assert_eq!(m["median_itl_ms"], 20.0);
        assert_eq!(m["mean_e2el_ms"], (130.0 + 330.0) / 2.0);
        assert_eq!(m["max_concurrent_requests"], 2);
        assert_eq!(m["max_output_tokens_per_s"], 5.0);
        assert_eq!(failures_by_kind(&reqs)["http-5xx"], 1);
    }

    #[test]
    fn a_chunk_of_k_tokens_counts_k_tokens_in_windows() {
        // Final usage says 6 tokens but only 3 chunks arrived: each chunk stands for 2.
        let r = Req { output_tokens: 6, ..req(0, 0, 100, &[100, 100], 6) };
        assert_eq!(tokens_between(std::slice::from_ref(&r), 0, 150_000_000), 2.0);
        assert_eq!(tokens_between(&[r], 0, u64::MAX), 6.0);
    }

    #[test]
    fn a_role_only_first_chunk_does_not_count_as_a_token() {
        // A chat stream: role chunk, then 4 token chunks; usage says 4 tokens.
        let r = req(0, 0, 100, &[10, 10, 10, 10], 4);
        assert!((tokens_between(std::slice::from_ref(&r), 0, u64::MAX) - 4.0).abs() < 1e-9);
    }

    #[test]
    fn steady_state_follows_ml_energy() {
        // Eight requests, two at a time, 100 ms apart: first tokens at 10, 10, 110, 110, ...
        let reqs: Vec<Req> = (0..8).map(|i| req(i, (i as u64 / 2) * 100, 10, &[40, 40], 3)).collect();
        let (s, e) = steady_state(&reqs, 2).expect("steady state");
        // Starts when 2 requests have their first token (10 ms), ends when 8 − 2 − 1 = 5 have
        // finished: the 5th end is request 4's at 200 + 90 ms.
        assert_eq!(s, 10_000_000);
        assert_eq!(e, 290_000_000);
        assert!(steady_state(&reqs[..5], 2).unwrap_err().contains("too few"));
        assert!(steady_state(&reqs, 0).is_err());
    }
}
