//! One integration binary (ripgrep's and wasmtime's layout). Every test runs the real
//! `energy-star` binary in a temporary folder, or the library where a test needs one process
//! to survive a plugin's failure.

mod bundle; // zip + manifest of hashes, verify, one byte changed
mod carbon; // emissions: the factor's sources in order, the table, PUE, bad settings
mod cli; // closed pipes, options anywhere, bounds and wording of errors
mod compare; // repeated measures, intervals, Welch differences, bad input
mod compat; // plugins of API 0.1.0 (the built-ins as built at 0.1.0, a guest of its frozen WIT) on this host
mod configs; // configs compose, overrides and YAML errors through `run`
mod container; // the Dockerfile's entrypoint and environment, the seed's commands against the binary
mod fetch; // `energy-star fetch` and runs on an empty cache, against the mock Hub
mod generate; // `energy-star generate`: the fixture token for token, sampling, chat templates, bad input
mod label; // AI Energy Score's label as SVG and PNG, stars from a cohort
mod measure; // `energy-star measure`: replayed GPU, exit codes, idle, Ctrl-C
mod plugins; // discovery, drop-ins, replacement, versions, bad files, compile cache
mod real_server; // the vllm backend against llama-cpp-python's server (ignored unless .ci/run installs it)
mod reasoning; // scenario.reasoning on the optimum backend: the model's chat template, recorded in the run record
mod reports; // report (HTML + SVG, headless Chromium), rate (stars), batch (resume, k8s, Slurm)
mod run; // backend selection, required settings, the run's results folder
mod sandbox; // traps, endless loops, memory, malformed data, no ambient access
mod serving; // the vllm backend against the mock OpenAI server: metrics, faults, Ctrl-C
mod summarize; // every shared sample, units, wrappers, bad reports
mod tasks; // the five forward tasks' configs end to end offline, their bad inputs, `predict`
mod upstream; // optimum-benchmark's own classes and AI Energy Score's fields on energy-star's files (ignored unless .ci/run installs them)
