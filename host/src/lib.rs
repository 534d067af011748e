//! energy-star: measures the energy AI models use for inference.
//!
//! The host owns the machine and exposes it to sandboxed WebAssembly plugins through the WIT
//! package in `wit/`. Rooms:
//! - [`plugins`]: discovery, sandbox, compile cache, typed calls; the host side of the WIT imports.
//! - [`config`]: YAML configs composed through `defaults:` lists, Hydra-style overrides.
//! - [`run`]: `energy-star run`, backend selection and the run's life cycle.
//! - [`summary`]: `energy-star summarize`, report → `GPU_ENERGY_WH.txt` + `GPU_ENERGY_SUMMARY.json`.
//! - [`results`]: the results folder, atomic writes.
//! - [`meter`]: energy metering (NVML, RAPL, estimates), windows, the timeline.
//! - [`measure`]: `energy-star measure`, the energy of any command.
//! - [`inference`]: the local engine (candle) and the OpenAI-compatible remote engine.
//! - [`datasets`]: prompts from local files and the hub cache.
//! - [`report`]: `energy-star report`, an HTML page with SVG figures about a results folder.
//! - [`rate`]: `energy-star rate`, AI Energy Score's stars from a results table.
//! - [`batch`]: `energy-star batch`, model lists run locally or emitted for Kubernetes and Slurm.
//! - [`cli`]: the command-line types.
//!
//! ```no_run
//! use energy_star::plugins::{PluginRuntime, PluginSet, RuntimeOptions};
//! let rt = PluginRuntime::new(RuntimeOptions::default()).unwrap();
//! let plugins = PluginSet::discover(&rt, &[]).unwrap();
//! let done = energy_star::summary::summarize(&rt, &plugins, "results".as_ref()).unwrap();
//! match done.total_wh_rounded {
//!     Some(wh) => println!("{wh:.2} Wh"),
//!     None => println!("no GPU energy: {:?}", done.summary.gpu_absent_reason),
//! }
//! ```

pub mod batch;
pub mod cli;
pub mod config;
pub mod datasets;
pub mod inference;
pub mod measure;
pub mod meter;
pub mod plugins;
pub mod rate;
pub mod report;
pub mod results;
pub mod run;
pub mod summary;
