//! The load generator: prompts sent to a remote engine under a profile, on a schedule computed
//! before the first request from a seed, so two runs with one seed send at the same offsets.
//!
//! Profiles: sequential (one at a time, as ai_energy_benchmarks), a fixed concurrency N
//! (closed loop), or a request rate with Poisson or gamma arrivals and an optional concurrency
//! cap (as `vllm bench serve`; the wait for a slot is recorded as client queue time).
//! Dispatch stops at the time bound, after too many consecutive failures, or on Ctrl-C; what
//! is in flight then finishes (on Ctrl-C within the drain time, after which it is cancelled
//! and recorded so). Nothing sent goes unrecorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::SeedableRng;
use rand_distr::{Distribution, Gamma};
use tokio::sync::{Semaphore, watch};

use crate::RemoteEngine;
use crate::request::{self, RequestOutcome, TokenSource};
use energy_star_engine::{GenerationParams, InferenceError};

#[derive(Debug, Clone, PartialEq)]
pub enum LoadProfile {
    Sequential,
    Concurrency(u32),
    Rate {
        /// Requests per second; infinite sends every request at once.
        requests_per_s: f64,
        /// Gamma shape: 1 is Poisson, below 1 burstier, above 1 more even, infinite constant gaps.
        burstiness: f64,
        seed: u64,
        max_concurrency: Option<u32>,
    },
}

impl LoadProfile {
    /// Requests allowed in flight at once (None: no cap).
    pub fn concurrency_cap(&self) -> Option<u32> {
        match self {
            LoadProfile::Sequential => Some(1),
            LoadProfile::Concurrency(n) => Some(*n),
            LoadProfile::Rate { max_concurrency, .. } => *max_concurrency,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            LoadProfile::Sequential => Ok(()),
            LoadProfile::Concurrency(0) => Err("the concurrency must be at least 1".into()),
            LoadProfile::Concurrency(_) => Ok(()),
            LoadProfile::Rate { requests_per_s, burstiness, max_concurrency, .. } => {
                if requests_per_s.is_nan() || *requests_per_s <= 0.0 {
                    return Err(format!("the request rate must be above 0 (or inf), not {requests_per_s}"));
                }
                if burstiness.is_nan() || *burstiness <= 0.0 {
                    return Err(format!("burstiness must be above 0 (1 is Poisson), not {burstiness}"));
                }
                if *max_concurrency == Some(0) {
                    return Err("max_concurrency must be at least 1 when given".into());
                }
                Ok(())
            }
        }
    }
}

/// When to stop sending.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadLimits {
    /// No request is sent after this long (in-flight ones finish).
    pub max_duration: Option<Duration>,
    /// Stop sending after this many failures in a row (the server is likely down).
    pub max_consecutive_failures: Option<u32>,
    /// After Ctrl-C, how long in-flight requests may take to finish before they are cancelled.
    pub drain_timeout: Duration,
}

impl Default for LoadLimits {
    fn default() -> Self {
        Self { max_duration: None, max_consecutive_failures: None, drain_timeout: Duration::from_secs(30) }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadOutcome {
    /// The requests sent, by prompt index.
    pub requests: Vec<RequestOutcome>,
    /// Prompts never sent, because dispatch stopped early.
    pub not_sent: u32,
    /// Why dispatch stopped early.
    pub stopped: Option<StopReason>,
    /// Ctrl-C came while the load was stopping for another reason (or draining after it).
    pub then_interrupted: bool,
    /// First dispatch and last completion, ns since the clock origin.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Most requests in flight at once (exact).
    pub peak_concurrency: u32,
}

/// Arrival offsets (s from the start) of `n` requests at `rate` with gamma(`burstiness`)
/// gaps, rescaled so the last lands at n/rate as vLLM does (removes the seed's drift in the
/// achieved rate). Deterministic for a seed.
pub fn arrival_offsets_s(n: usize, rate: f64, burstiness: f64, seed: u64) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    if rate.is_infinite() {
        return vec![0.0; n];
    }
    let mean_gap = 1.0 / rate;
    let gaps: Vec<f64> = if burstiness.is_infinite() {
        vec![mean_gap; n]
    } else {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        match Gamma::new(burstiness, mean_gap / burstiness) {
            Ok(g) => (0..n).map(|_| g.sample(&mut rng)).collect(),
            Err(_) => vec![mean_gap; n],
        }
    };
    let mut acc = 0.0;
    let mut offsets: Vec<f64> = gaps
        .iter()
        .map(|g| {
            acc += g;
            acc
        })
        .collect();
    let last = offsets[n - 1];
    if last > 0.0 {
        let scale = n as f64 / rate / last;
        offsets.iter_mut().for_each(|o| *o *= scale);
    }
    offsets
}

struct Tally {
    in_flight: AtomicU32,
    peak: AtomicU32,
    consecutive_failures: AtomicU32,
}

/// Why the dispatcher stops: set once by the watcher.
#[derive(Debug, Clone, PartialEq)]
enum Stop {
    Running,
    Stopped(StopReason),
}

/// Why a load stopped sending before every prompt was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `max_duration` passed.
    TimeBound,
    /// This many requests failed in a row.
    ConsecutiveFailures(u32),
    /// The user stopped the run (Ctrl-C).
    Interrupted,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::TimeBound => f.write_str("the time bound was reached"),
            StopReason::ConsecutiveFailures(m) => {
                write!(f, "{m} requests failed in a row; the server looks unable to serve")
            }
            StopReason::Interrupted => f.write_str("interrupted by the user (Ctrl-C)"),
        }
    }
}

impl LoadOutcome {
    /// Why sending stopped, in words, Ctrl-C after another reason included.
    pub fn stopped_text(&self) -> Option<String> {
        self.stopped.map(|why| {
            if self.then_interrupted && why != StopReason::Interrupted {
                format!("{why}; then interrupted by the user (Ctrl-C)")
            } else {
                why.to_string()
            }
        })
    }
}

impl RemoteEngine {
    /// Sends `prompts` under `profile`. `stop` is polled (Ctrl-C). Times in the outcome are ns
    /// since `origin`.
    pub fn run_load(
        &self,
        prompts: &[String],
        params: &GenerationParams,
        profile: &LoadProfile,
        limits: &LoadLimits,
        origin: Instant,
        stop: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> Result<LoadOutcome, InferenceError> {
        profile.validate().map_err(InferenceError::Invalid)?;
        if params.max_new_tokens == 0 {
            return Err(InferenceError::Invalid("max_new_tokens must be at least 1".into()));
        }
        if params.min_new_tokens > params.max_new_tokens {
            return Err(InferenceError::Invalid(format!(
                "min_new_tokens {} is above max_new_tokens {}",
                params.min_new_tokens, params.max_new_tokens
            )));
        }
        let offsets = match profile {
            LoadProfile::Rate { requests_per_s, burstiness, seed, .. } => {
                arrival_offsets_s(prompts.len(), *requests_per_s, *burstiness, *seed)
            }
            _ => Vec::new(),
        };
        // A schedule a run could not finish (a rate of 1e-20 req/s) is refused, not slept on.
        if let Some(last) = offsets.last()
            && !(last.is_finite() && *last < 1e9)
        {
            return Err(InferenceError::Invalid(format!(
                "the request rate gives a schedule of {last} s for {} requests; raise it",
                prompts.len()
            )));
        }
        // Bodies are serialised before the clock starts: none of that cost is in the timings.
        let bodies: Vec<Bytes> = prompts
            .iter()
            .map(|p| Bytes::from(request::body(self.api, &self.model, p, params, &self.body).to_string()))
            .collect();
        let url = format!("{}/{}", self.base_url, self.api.path());
        let transport = Arc::new(request::HttpTransport { sender: self.sender(params.seed.unwrap_or(0)), url });
        let mut out = self.runtime.block_on(dispatch(transport, bodies, &offsets, profile, limits, origin, stop));
        // Servers that sent no usage: tokens by the local tokenizer when there is one, counted
        // now that the clock has stopped.
        for r in &mut out.requests {
            if r.token_source != TokenSource::ServerUsage
                && let Some(n) = self.count_tokens(&r.text, false)
            {
                r.output_tokens = n;
                r.token_source = TokenSource::Tokenizer;
                if let Some(i) = prompts.get(r.index as usize).and_then(|p| self.count_tokens(p, true)) {
                    r.input_tokens = i;
                }
            }
        }
        Ok(out)
    }
}

/// Sends one request and follows it to its end: what the dispatcher needs of a server. The
/// HTTP client is one; a fake with fixed delays lets the scheduling be tested without a server
/// (as inference-benchmarker's executors are).
pub trait Transport: Send + Sync + 'static {
    /// Sends request `index` with `body`; `abort` turning true cancels it (recorded so).
    fn send(
        &self,
        index: u32,
        body: Bytes,
        origin: Instant,
        scheduled_ns: u64,
        abort: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = RequestOutcome> + Send;
}

/// Dispatches `bodies` on the schedule (`offsets` in s from the start, for open loops; none
/// for closed loops), within the profile's concurrency cap and the limits, and drains what is
/// in flight. `stop` is polled (Ctrl-C). Times are ns since `origin`.
pub async fn dispatch<T: Transport>(
    transport: Arc<T>,
    bodies: Vec<Bytes>,
    offsets: &[f64],
    profile: &LoadProfile,
    limits: &LoadLimits,
    origin: Instant,
    stop: Arc<dyn Fn() -> bool + Send + Sync>,
) -> LoadOutcome {
    let n = bodies.len();
    let cap =
        profile.concurrency_cap().map(|c| c as usize).unwrap_or(Semaphore::MAX_PERMITS).min(Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(cap));
    let tally = Arc::new(Tally {
        in_flight: AtomicU32::new(0),
        peak: AtomicU32::new(0),
        consecutive_failures: AtomicU32::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(Stop::Running);
    let (abort_tx, abort_rx) = watch::channel(false);
    let start = Instant::now();
    let start_ns = energy_star_types::ns_since(origin, start);
    // The watcher turns the stop conditions into one signal the dispatcher waits on.
    let watcher = {
        let stop = stop.clone();
        let tally = tally.clone();
        let max_failures = limits.max_consecutive_failures;
        let deadline = limits.max_duration.map(|d| start + d);
        tokio::spawn(async move {
            loop {
                let why =
                    if stop() { Some(StopReason::Interrupted) } else { limit_reached(deadline, max_failures, &tally) };
                if let Some(why) = why {
                    let _ = stop_tx.send(Stop::Stopped(why));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0usize;
    let mut stop_wait = stop_rx.clone();
    let deadline = limits.max_duration.map(|d| start + d);
    let mut stopped_here: Option<StopReason> = None;
    // Checked before each send as well as by the watcher, so fast failures cannot race
    // past the limit between two of the watcher's polls.
    let check = |tally: &Tally| limit_reached(deadline, limits.max_consecutive_failures, tally);
    for (i, body) in bodies.into_iter().enumerate() {
        if *stop_rx.borrow() != Stop::Running {
            break;
        }
        if let Some(why) = check(&tally) {
            stopped_here = Some(why);
            break;
        }
        // Open loop (rate): each request has its time, and waiting for a slot after it is
        // client queue time. Closed loop: a request is due when a slot frees.
        let due = offsets.get(i).map(|o| start + Duration::from_secs_f64(*o));
        if let Some(due) = due.filter(|d| *d > Instant::now()) {
            tokio::select! {
                biased;
                _ = stop_wait.wait_for(|s| *s != Stop::Running) => break,
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(due)) => {}
            }
        }
        let permit = tokio::select! {
            biased;
            _ = stop_wait.wait_for(|s| *s != Stop::Running) => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let scheduled = due.unwrap_or_else(Instant::now);
        if let Some(why) = check(&tally) {
            stopped_here = Some(why);
            break;
        }
        let scheduled_ns = energy_star_types::ns_since(origin, scheduled);
        let now_in_flight = tally.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        tally.peak.fetch_max(now_in_flight, Ordering::SeqCst);
        let engine_tally = tally.clone();
        let abort = abort_rx.clone();
        let transport = transport.clone();
        tasks.spawn(async move {
            let rec = transport.send(i as u32, body, origin, scheduled_ns, abort).await;
            // Counters first, then the slot: the dispatcher must see both before it sends
            // the next request.
            engine_tally.in_flight.fetch_sub(1, Ordering::SeqCst);
            if rec.failure.is_some() {
                engine_tally.consecutive_failures.fetch_add(1, Ordering::SeqCst);
            } else {
                engine_tally.consecutive_failures.store(0, Ordering::SeqCst);
            }
            drop(permit);
            rec
        });
        sent += 1;
    }
    let stopped = stopped_here.or_else(|| match &*stop_rx.borrow() {
        Stop::Stopped(why) => Some(*why),
        Stop::Running => None,
    });
    // Drain: everything sent finishes (each request has its own timeout). A Ctrl-C, before
    // or during the drain, gives what is in flight the drain time, then cancels it; the
    // cancelled requests are recorded as such.
    let mut requests = Vec::with_capacity(sent);
    let mut drain_deadline = stop().then(|| tokio::time::Instant::now() + limits.drain_timeout);
    let mut aborted = false;
    loop {
        if drain_deadline.is_none() && stop() {
            drain_deadline = Some(tokio::time::Instant::now() + limits.drain_timeout);
        }
        let next = match drain_deadline {
            Some(d) if !aborted => tokio::select! {
                r = tasks.join_next() => r,
                _ = tokio::time::sleep_until(d) => {
                    let _ = abort_tx.send(true);
                    aborted = true;
                    continue;
                }
            },
            Some(_) => tasks.join_next().await,
            None => tokio::select! {
                r = tasks.join_next() => r,
                _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
            },
        };
        match next {
            Some(Ok(rec)) => requests.push(rec),
            Some(Err(e)) => log_join_error(&e),
            None => break,
        }
    }
    let interrupted = drain_deadline.is_some();
    watcher.abort();
    requests.sort_by_key(|r| r.index);
    let end_ns = energy_star_types::ns_since(origin, Instant::now());
    let (stopped, then_interrupted) = match (stopped, interrupted) {
        (Some(why), true) => (Some(why), why != StopReason::Interrupted),
        (None, true) => (Some(StopReason::Interrupted), false),
        (why, false) => (why, false),
    };
    LoadOutcome {
        requests,
        not_sent: (n - sent) as u32,
        stopped,
        then_interrupted,
        start_ns,
        end_ns,
        peak_concurrency: tally.peak.load(Ordering::SeqCst),
    }
}
/// Why sending must stop, if a limit is reached: the time bound, or failures in a row.
fn limit_reached(deadline: Option<Instant>, max_failures: Option<u32>, tally: &Tally) -> Option<StopReason> {
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Some(StopReason::TimeBound);
    }
    max_failures
        .filter(|m| tally.consecutive_failures.load(Ordering::SeqCst) >= *m)
        .map(StopReason::ConsecutiveFailures)
}

fn log_join_error(e: &tokio::task::JoinError) {
    eprintln!("energy-star: a request task ended abnormally: {e}");
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use energy_star_mock_openai::{MockConfig, MockServer, UsageMode};

    use super::*;
    use crate::request::FailureKind;
    use crate::{Api, RemoteSpec};

    /// A server stand-in for the dispatcher: each request takes `delay` (cancelled by
    /// `abort`), and fails when `fails` says so; it counts requests in flight itself.
    struct Fake {
        delay: Duration,
        fails: fn(u32) -> bool,
        in_flight: AtomicU32,
        peak: AtomicU32,
    }

    impl Fake {
        fn new(delay_ms: u64, fails: fn(u32) -> bool) -> Arc<Self> {
            Arc::new(Self {
                delay: Duration::from_millis(delay_ms),
                fails,
                in_flight: AtomicU32::new(0),
                peak: AtomicU32::new(0),
            })
        }
    }

    impl Transport for Fake {
        async fn send(
            &self,
            index: u32,
            _body: Bytes,
            origin: Instant,
            scheduled_ns: u64,
            mut abort: watch::Receiver<bool>,
        ) -> RequestOutcome {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let start_ns = energy_star_types::ns_since(origin, Instant::now());
            let mut r = RequestOutcome {
                scheduled_ns: Some(scheduled_ns),
                start_ns,
                ..RequestOutcome::new(index, TokenSource::ServerUsage)
            };
            let cancelled = tokio::select! {
                _ = tokio::time::sleep(self.delay) => false,
                _ = abort.wait_for(|a| *a) => true,
            };
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            r.e2e_ns = energy_star_types::ns_since(origin, Instant::now()) - start_ns;
            let kind = if cancelled {
                Some(FailureKind::Cancelled)
            } else if (self.fails)(index) {
                Some(FailureKind::HttpServerError)
            } else {
                r.ttft_ns = Some(r.e2e_ns);
                r.output_tokens = 1;
                None
            };
            r.failure = kind.map(|kind| crate::request::Failure { kind, message: "fake".into(), http_status: None });
            r
        }
    }

    fn run(
        fake: &Arc<Fake>,
        n: usize,
        profile: LoadProfile,
        limits: LoadLimits,
        stop: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> LoadOutcome {
        let offsets = match profile {
            LoadProfile::Rate { requests_per_s, burstiness, seed, .. } => {
                arrival_offsets_s(n, requests_per_s, burstiness, seed)
            }
            _ => Vec::new(),
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let bodies = vec![Bytes::from_static(b"{}"); n];
        rt.block_on(dispatch(fake.clone(), bodies, &offsets, &profile, &limits, Instant::now(), stop))
    }

    /// The dispatcher alone, against a fake server: closed loops hold their concurrency, an
    /// open loop with a cap records client queue time, failures in a row stop sending, and a
    /// stop cancels what outlives the drain time.
    #[test]
    fn the_dispatcher_keeps_its_schedule_without_a_server() {
        let ok = |_: u32| false;
        let fake = Fake::new(30, ok);
        let out = run(&fake, 12, LoadProfile::Concurrency(3), LoadLimits::default(), never());
        assert_eq!((out.requests.len(), out.not_sent, out.stopped), (12, 0, None));
        assert_eq!((fake.peak.load(Ordering::SeqCst), out.peak_concurrency), (3, 3), "a closed loop of 3");
        assert!(out.requests.iter().all(|r| r.queue_ns() == Some(0) || r.queue_ns().is_some_and(|q| q < 5_000_000)));
        let fake = Fake::new(5, ok);
        let out = run(&fake, 5, LoadProfile::Sequential, LoadLimits::default(), never());
        assert_eq!(fake.peak.load(Ordering::SeqCst), 1);
        assert!(out.requests.windows(2).all(|w| w[1].start_ns >= w[0].start_ns + w[0].e2e_ns), "one after another");
        // All at once, capped at 2: the others wait, and that wait is client queue time.
        let fake = Fake::new(40, ok);
        let rate =
            LoadProfile::Rate { requests_per_s: f64::INFINITY, burstiness: 1.0, seed: 1, max_concurrency: Some(2) };
        let out = run(&fake, 6, rate, LoadLimits::default(), never());
        assert_eq!(fake.peak.load(Ordering::SeqCst), 2);
        let mut waits: Vec<u64> = out.requests.iter().map(|r| r.queue_ns().expect("scheduled")).collect();
        waits.sort_unstable();
        assert!(waits[0] < 10_000_000 && waits[5] >= 70_000_000, "the last two waited two rounds: {waits:?}");
        // Every request fails: sending stops after 4 in a row.
        let fake = Fake::new(1, |_| true);
        let limits = LoadLimits { max_consecutive_failures: Some(4), ..LoadLimits::default() };
        let out = run(&fake, 20, LoadProfile::Sequential, limits, never());
        assert_eq!(out.stopped, Some(StopReason::ConsecutiveFailures(4)));
        assert_eq!((out.requests.len(), out.not_sent), (4, 16));
        // A stop while requests are in flight, no drain time: they are cancelled and recorded.
        let fake = Fake::new(5_000, ok);
        let asked = Arc::new(AtomicBool::new(false));
        let flag = asked.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            flag.store(true, Ordering::SeqCst);
        });
        let limits = LoadLimits { drain_timeout: Duration::ZERO, ..LoadLimits::default() };
        let t = Instant::now();
        let out = run(&fake, 10, LoadProfile::Concurrency(2), limits, Arc::new(move || asked.load(Ordering::SeqCst)));
        assert!(t.elapsed() < Duration::from_secs(4), "cancelled, not waited for");
        assert_eq!(out.stopped, Some(StopReason::Interrupted));
        assert_eq!((out.requests.len(), out.not_sent), (2, 8));
        assert!(out.requests.iter().all(|r| r.failure.as_ref().is_some_and(|f| f.kind == FailureKind::Cancelled)));
    }

    fn engine(server: &MockServer, api: Api, timeout: Duration) -> RemoteEngine {
        let spec = RemoteSpec {
            endpoint: server.url(),
            model: None,
            api,
            request_timeout: timeout,
            api_key: None,
            body: request::BodyOptions { stream_usage: true, ..Default::default() },
        };
        RemoteEngine::open(&spec, &|_: &str| None).expect("open")
    }

    fn never() -> Arc<dyn Fn() -> bool + Send + Sync> {
        Arc::new(|| false)
    }

    fn fixed(n: u32) -> GenerationParams {
        GenerationParams { max_new_tokens: n, min_new_tokens: n, ignore_eos: true, ..GenerationParams::default() }
    }

    fn prompts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("prompt number {i}")).collect()
    }

    #[test]
    fn schedules_are_seeded_and_end_at_n_over_rate() {
        let a = arrival_offsets_s(200, 10.0, 1.0, 7);
        assert_eq!(a, arrival_offsets_s(200, 10.0, 1.0, 7), "same seed, same schedule");
        assert_ne!(a, arrival_offsets_s(200, 10.0, 1.0, 8));
        assert!((a[199] - 20.0).abs() < 1e-9, "last arrival at n/rate");
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        // Constant gaps at infinite burstiness; everything at 0 at an infinite rate.
        let c = arrival_offsets_s(4, 2.0, f64::INFINITY, 1);
        assert_eq!(c, vec![0.5, 1.0, 1.5, 2.0]);
        assert_eq!(arrival_offsets_s(3, f64::INFINITY, 1.0, 1), vec![0.0; 3]);
        // Burstier arrivals have more spread gaps (coefficient of variation ≈ 1/sqrt(k)).
        let cv = |k: f64| {
            let o = arrival_offsets_s(4000, 100.0, k, 3);
            let gaps: Vec<f64> = std::iter::once(o[0]).chain(o.windows(2).map(|w| w[1] - w[0])).collect();
            let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
            (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt() / mean
        };
        assert!((cv(1.0) - 1.0).abs() < 0.1, "Poisson: {}", cv(1.0));
        assert!((cv(0.25) - 2.0).abs() < 0.25, "k = 0.25: {}", cv(0.25));
        assert!((cv(4.0) - 0.5).abs() < 0.1, "k = 4: {}", cv(4.0));
    }

    #[test]
    fn bad_profiles_are_refused() {
        for (p, says) in [
            (LoadProfile::Concurrency(0), "at least 1"),
            (LoadProfile::Rate { requests_per_s: 0.0, burstiness: 1.0, seed: 0, max_concurrency: None }, "above 0"),
            (
                LoadProfile::Rate { requests_per_s: 1.0, burstiness: f64::NAN, seed: 0, max_concurrency: None },
                "burstiness",
            ),
            (
                LoadProfile::Rate { requests_per_s: 1.0, burstiness: 1.0, seed: 0, max_concurrency: Some(0) },
                "max_concurrency",
            ),
        ] {
            assert!(p.validate().unwrap_err().contains(says), "{p:?}");
        }
    }

    #[test]
    fn multi_token_chunks_add_zero_gaps_and_usage_counts_tokens() {
        let server = MockServer::start(MockConfig {
            tokens_per_chunk: 4,
            itl: Duration::from_millis(2),
            ..MockConfig::default()
        })
        .expect("mock");
        let e = engine(&server, Api::Completions, Duration::from_secs(10));
        let out = e
            .run_load(
                &prompts(2),
                &fixed(10),
                &LoadProfile::Sequential,
                &LoadLimits::default(),
                Instant::now(),
                never(),
            )
            .expect("load");
        for r in &out.requests {
            assert!(r.failure.is_none(), "{r:?}");
            assert_eq!((r.output_tokens, r.token_source), (10, TokenSource::ServerUsage));
            // Chunks of 4, 4, 2 tokens: gaps [g, 0, 0, 0, g, 0] after the first chunk's 3 zeros.
            assert_eq!(r.itl_ns.len(), 9);
            assert_eq!(r.itl_ns.iter().filter(|g| **g == 0).count(), 7, "{:?}", r.itl_ns);
            assert_eq!(r.finish_reason.as_deref(), Some("length"));
            assert!(r.text.starts_with(" t0 t1 t2 t3"));
        }
        assert_eq!(out.peak_concurrency, 1);
    }

    #[test]
    fn chat_completions_and_usage_only_at_the_end() {
        let server = MockServer::start(MockConfig::default()).expect("mock");
        let e = engine(&server, Api::ChatCompletions, Duration::from_secs(10));
        assert_eq!(e.model, "mock/model", "taken from /v1/models");
        assert!(e.notes.iter().any(|n| n.contains("taken from")));
        let out = e
            .run_load(
                &prompts(3),
                &fixed(5),
                &LoadProfile::Concurrency(3),
                &LoadLimits::default(),
                Instant::now(),
                never(),
            )
            .expect("load");
        assert_eq!(out.requests.len(), 3);
        // vLLM's role-only first chunk: it sets TTFT (as `vllm bench serve` times it) but is
        // no token; usage says 5.
        assert!(
            out.requests
                .iter()
                .all(|r| r.failure.is_none() && r.output_tokens == 5 && r.input_tokens == 3 && r.itl_ns.len() == 5),
            "{:?}",
            out.requests[0]
        );
        let body = server.last_body().expect("body");
        assert_eq!(body["max_completion_tokens"], 5);
        assert_eq!(body["messages"][0]["role"], "user");
    }

    #[test]
    fn without_usage_and_tokenizer_chunks_are_counted() {
        let server =
            MockServer::start(MockConfig { usage: UsageMode::Never, tokens_per_chunk: 2, ..MockConfig::default() })
                .expect("mock");
        let e = engine(&server, Api::Completions, Duration::from_secs(10));
        let out = e
            .run_load(&prompts(1), &fixed(6), &LoadProfile::Sequential, &LoadLimits::default(), Instant::now(), never())
            .expect("load");
        let r = &out.requests[0];
        // Three chunks of two tokens: counted as three, and labelled as chunk counts.
        assert_eq!((r.output_tokens, r.token_source), (3, TokenSource::StreamChunks));
    }

    #[test]
    fn usage_first_seen_at_the_end_adds_no_zero_gaps() {
        // Only the final usage-only chunk has usage (no continuous stats): one gap per chunk.
        let server = MockServer::start(MockConfig::default()).expect("mock");
        let e = engine(&server, Api::Completions, Duration::from_secs(10));
        let prompts = prompts(1);
        let url = format!("{}/{}", e.base_url, e.api.path());
        let mut body = request::body(e.api, &e.model, &prompts[0], &fixed(6), &e.body);
        body["stream_options"] = serde_json::json!({"include_usage": true});
        let (_tx, rx) = watch::channel(false);
        let rec = e.runtime.block_on(e.sender(0).send(&url, 0, Bytes::from(body.to_string()), Instant::now(), 0, rx));
        assert!(rec.failure.is_none(), "{rec:?}");
        assert_eq!((rec.output_tokens, rec.itl_ns.len(), rec.token_source), (6, 5, TokenSource::ServerUsage));
    }

    #[test]
    fn a_rate_with_a_concurrency_cap_records_client_queue_time() {
        let server =
            MockServer::start(MockConfig { ttft: Duration::from_millis(30), ..MockConfig::default() }).expect("mock");
        let e = engine(&server, Api::Completions, Duration::from_secs(10));
        let profile =
            LoadProfile::Rate { requests_per_s: f64::INFINITY, burstiness: 1.0, seed: 1, max_concurrency: Some(2) };
        let out = e
            .run_load(&prompts(6), &fixed(2), &profile, &LoadLimits::default(), Instant::now(), never())
            .expect("load");
        assert_eq!(out.peak_concurrency, 2);
        // All six were due at once; the last pair waited for two rounds of ≥ 30 ms.
        let waits: Vec<u64> = out.requests.iter().map(|r| r.queue_ns().unwrap_or(0)).collect();
        assert!(waits[..2].iter().all(|w| *w < 20_000_000), "{waits:?}");
        assert!(waits[4..].iter().all(|w| *w >= 55_000_000), "{waits:?}");
        // A closed loop has no queue: a request is due when its slot frees.
        let out = e
            .run_load(&prompts(4), &fixed(2), &LoadProfile::Sequential, &LoadLimits::default(), Instant::now(), never())
            .expect("load");
        assert!(
            out.requests.iter().all(|r| r.queue_ns().unwrap_or(0) < 5_000_000),
            "{:?}",
            out.requests.iter().map(|r| r.queue_ns().unwrap_or(0)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn sending_stops_at_the_time_bound_and_after_consecutive_failures() {
        let server =
            MockServer::start(MockConfig { ttft: Duration::from_millis(40), ..MockConfig::default() }).expect("mock");
        let e = engine(&server, Api::Completions, Duration::from_secs(10));
        let limits = LoadLimits { max_duration: Some(Duration::from_millis(100)), ..LoadLimits::default() };
        let out = e
            .run_load(&prompts(50), &fixed(1), &LoadProfile::Sequential, &limits, Instant::now(), never())
            .expect("load");
        assert!(out.stopped == Some(StopReason::TimeBound), "{:?}", out.stopped);
        assert!((2..=4).contains(&out.requests.len()), "{}", out.requests.len());
        assert_eq!(out.requests.len() as u32 + out.not_sent, 50);
        assert!(out.requests.iter().all(|r| r.failure.is_none()), "in-flight requests finished");

        let failing: Vec<String> = (0..30).map(|i| format!("p{i} [mock:status=500]")).collect();
        let limits = LoadLimits { max_consecutive_failures: Some(5), ..LoadLimits::default() };
        let out =
            e.run_load(&failing, &fixed(1), &LoadProfile::Sequential, &limits, Instant::now(), never()).expect("load");
        assert!(out.stopped == Some(StopReason::ConsecutiveFailures(5)), "{:?}", out.stopped);
        assert!(
            out.requests.len() < 30
                && out.requests.iter().all(|r| r
                    .failure
                    .as_ref()
                    .is_some_and(|f| f.kind == FailureKind::HttpServerError && f.http_status == Some(500)))
        );
    }

    #[test]
    fn a_stop_cancels_what_outlives_the_drain_time_and_records_it() {
        let server =
            MockServer::start(MockConfig { itl: Duration::from_millis(100), ..MockConfig::default() }).expect("mock");
        let e = engine(&server, Api::Completions, Duration::from_secs(30));
        let flag = Arc::new(AtomicBool::new(false));
        let f2 = flag.clone();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(250));
            f2.store(true, Ordering::SeqCst);
        });
        let limits = LoadLimits { drain_timeout: Duration::from_millis(100), ..LoadLimits::default() };
        let out = e
            .run_load(
                &prompts(4),
                &fixed(50),
                &LoadProfile::Concurrency(2),
                &limits,
                Instant::now(),
                Arc::new(move || flag.load(Ordering::SeqCst)),
            )
            .expect("load");
        stopper.join().expect("stopper");
        assert_eq!((out.requests.len(), out.not_sent), (2, 2));
        for r in &out.requests {
            let f = r.failure.as_ref().expect("cancelled");
            assert_eq!(f.kind, FailureKind::Cancelled);
            assert!(r.output_tokens >= 2 && r.ttft_ns.is_some(), "what arrived is kept: {r:?}");
        }
        assert!(
            out.stopped == Some(StopReason::Interrupted)
                && out.stopped_text().is_some_and(|s| s.contains("interrupted"))
        );
    }

    #[test]
    fn opening_checks_the_server_and_the_model() {
        let server =
            MockServer::start(MockConfig { models: vec!["a/b".into()], ..MockConfig::default() }).expect("mock");
        let spec = |model: Option<&str>| RemoteSpec {
            endpoint: format!("{}/", server.url()),
            model: model.map(str::to_string),
            api: Api::Completions,
            request_timeout: Duration::from_secs(5),
            api_key: None,
            body: request::BodyOptions { stream_usage: true, ..Default::default() },
        };
        let e = RemoteEngine::open(&spec(Some("a/b")), &|_: &str| None).expect("served");
        assert_eq!((e.max_model_len, e.base_url.as_str()), (Some(4096), server.url().as_str()));
        let err = RemoteEngine::open(&spec(Some("c/d")), &|_: &str| None).err().expect("unserved").to_string();
        assert!(err.contains("does not serve model \"c/d\"") && err.contains("a/b"), "{err}");
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let spec = RemoteSpec { endpoint: format!("http://{dead}"), ..spec(None) };
        let err = RemoteEngine::open(&spec, &|_: &str| None).err().expect("unreachable").to_string();
        assert!(err.contains(&format!("cannot reach the server at http://{dead}/v1")), "{err}");
    }
}
