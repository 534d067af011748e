//! `energy-star plugins new NAME --kind backend|summarizer`: a plugin crate that builds at
//! once. It carries its own copy of the guest SDK, of the shared names (`energy-star-types`)
//! and of the WIT files (the SDK's: API 0.2.5), so it needs nothing of this repository: `cargo build
//! --release --target wasm32-wasip2` and drop the `.wasm` into a plugin folder.

use std::path::{Path, PathBuf};

use energy_star_results::write_atomic;

/// The SDK, the shared names and the WIT files as this binary was built with them.
const SDK_FILES: &[(&str, &str)] = &[
    ("sdk/src/lib.rs", include_str!("../../plugins/sdk/src/lib.rs")),
    ("types/Cargo.toml", include_str!("../../crates/types/Cargo.toml")),
    ("types/src/lib.rs", include_str!("../../crates/types/src/lib.rs")),
    ("sdk/wit/backend.wit", include_str!("../../plugins/sdk/wit/backend.wit")),
    ("sdk/wit/carbon.wit", include_str!("../../plugins/sdk/wit/carbon.wit")),
    ("sdk/wit/datasets.wit", include_str!("../../plugins/sdk/wit/datasets.wit")),
    ("sdk/wit/host.wit", include_str!("../../plugins/sdk/wit/host.wit")),
    ("sdk/wit/inference.wit", include_str!("../../plugins/sdk/wit/inference.wit")),
    ("sdk/wit/machine.wit", include_str!("../../plugins/sdk/wit/machine.wit")),
    ("sdk/wit/meter.wit", include_str!("../../plugins/sdk/wit/meter.wit")),
    ("sdk/wit/summarizer.wit", include_str!("../../plugins/sdk/wit/summarizer.wit")),
    ("sdk/wit/tasks.wit", include_str!("../../plugins/sdk/wit/tasks.wit")),
    ("sdk/wit/types.wit", include_str!("../../plugins/sdk/wit/types.wit")),
    ("sdk/wit/worlds.wit", include_str!("../../plugins/sdk/wit/worlds.wit")),
];

/// The SDK's manifest, with its dependency on the shared names pointed at the copy beside it.
fn sdk_manifest() -> String {
    include_str!("../../plugins/sdk/Cargo.toml").replace(r#"path = "../../crates/types""#, r#"path = "../types""#)
}

const CARGO_TOML: &str = r#"[package]
name = "{crate}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
energy-star-plugin-sdk = { path = "sdk" }
serde_json = "1"

# A plugin is its own workspace, whatever folder it is made in.
[workspace]
members = [".", "sdk", "types"]

[profile.release]
opt-level = "s"
strip = true
"#;

const SUMMARIZER: &str = r#"//! Summarizer `{name}`: reads the reports of a tool that writes
//! `{"tool": "{name}", "gpu_energy_j": 1234.5, "phases": {"prefill": 600.0, "decode": 634.5}}`
//! and turns them into energy-star's unified summary (GPU Wh). Change `detect` and
//! `summarize` to read your format; keep them honest: refuse what you do not recognise.

use energy_star_plugin_sdk::json::{self, Value};
use energy_star_plugin_sdk::summarizer::{Guest, LeaderboardPhase, PhaseEnergy, Summary, SummarizerInfo};
use energy_star_plugin_sdk::units;

struct Plugin;

impl Guest for Plugin {
    fn info() -> SummarizerInfo {
        SummarizerInfo {
            name: "{name}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Reports of the {name} tool (GPU joules per phase)".into(),
            formats: vec!["{name}".into()],
        }
    }

    /// How sure this plugin is that `report` is its format: 0.0 to 1.0.
    fn detect(report: String) -> f32 {
        match serde_json::from_str::<Value>(&report) {
            Ok(v) if json::get(&v, "tool").and_then(Value::as_str) == Some("{name}") => 1.0,
            _ => 0.0,
        }
    }

    fn summarize(report: String) -> Result<Summary, String> {
        let v: Value = serde_json::from_str(&report).map_err(|e| format!("not JSON: {e}"))?;
        let total_j = json::number(&v, "gpu_energy_j").ok_or("gpu_energy_j is missing or not a number")?;
        if total_j < 0.0 {
            return Err(format!("gpu_energy_j = {total_j} is negative"));
        }
        let mut phases = Vec::new();
        if let Some(p) = v.get("phases").and_then(Value::as_object) {
            for (phase, j) in p {
                let j = j.as_f64().ok_or_else(|| format!("phases.{phase} is not a number"))?;
                // Which of AI Energy Score's phases it is, if one (GPU_ENERGY_SUMMARY.json names them).
                let leaderboard_phase = match phase.as_str() {
                    "prefill" => Some(LeaderboardPhase::Prefill),
                    "decode" => Some(LeaderboardPhase::Decode),
                    _ => None,
                };
                phases.push(PhaseEnergy { name: phase.clone(), leaderboard_phase, gpu_wh: Some(units::j_to_wh(j)), cpu_wh: None, ram_wh: None, counted: true });
            }
        }
        Ok(Summary {
            format: "{name}".into(),
            total_wh: Some(units::j_to_wh(total_j)),
            gpu_absent_reason: None,
            cpu_wh: None,
            ram_wh: None,
            phases,
            warnings: Vec::new(),
        })
    }
}

energy_star_plugin_sdk::export_summarizer!(Plugin);
"#;

const BACKEND: &str = r#"//! Backend `{name}`: runs the config's model on the host's local engine over the config's
//! dataset, one metered window around the prompts, and writes a report in the
//! ai_energy_benchmarks format (so the built-in summarizer reads it). Select it with
//! `BENCHMARK_BACKEND={name}`. Change `run` to set your own workload, and `prepare` to say
//! what it needs: the host checks that before anything is touched, and lets `run` open only
//! what `prepare` named.

use energy_star_plugin_sdk::backend::host::inference::{self, GenerationParams, LocalEngineSpec};
use energy_star_plugin_sdk::backend::host::types::{Device, DeviceKind, Dtype, GpuUse, TokenCountSource};
use energy_star_plugin_sdk::backend::host::{datasets, log};
use energy_star_plugin_sdk::backend::{
    self, BackendInfo, ConfigError, Guest, PhaseDerivation, PhaseFact, PrepareRequest, RequestCounts, RunFacts,
    RunOutput, RunPlan, RunRequest, TokenCounts,
};
use energy_star_plugin_sdk::json::{self, Value, json};
use energy_star_plugin_sdk::units;

struct Plugin;

/// What the config asks for.
struct Asked {
    model: String,
    dataset: String,
    split: String,
    column: String,
    num_samples: Option<u32>,
    new_tokens: u32,
    device: String,
}

fn text(cfg: &Value, path: &str, default: &str) -> String {
    json::get(cfg, path).and_then(Value::as_str).unwrap_or(default).to_string()
}

fn read(config_json: &str) -> Result<Asked, ConfigError> {
    let cfg: Value = serde_json::from_str(config_json)
        .map_err(|e| ConfigError { key: None, message: format!("config is not JSON: {e}") })?;
    let model = text(&cfg, "backend.model", "");
    if model.is_empty() {
        return Err(ConfigError { key: Some("backend.model".into()), message: "backend.model is not set".into() });
    }
    let dataset = text(&cfg, "scenario.dataset_name", "");
    if dataset.is_empty() {
        return Err(ConfigError { key: Some("scenario.dataset_name".into()), message: "scenario.dataset_name is not set".into() });
    }
    Ok(Asked {
        model,
        dataset,
        split: text(&cfg, "scenario.dataset_split", "train"),
        column: text(&cfg, "scenario.text_column_name", "text"),
        num_samples: json::number(&cfg, "scenario.num_samples").filter(|n| *n > 0.0).map(|n| n as u32),
        new_tokens: json::number(&cfg, "scenario.generate_kwargs.max_new_tokens").unwrap_or(10.0) as u32,
        device: text(&cfg, "backend.device", "cpu"),
    })
}

impl Guest for Plugin {
    fn info() -> BackendInfo {
        BackendInfo {
            name: "{name}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The config's model on the local engine, one metered window".into(),
            report_format: "ai_energy_benchmarks".into(),
            required_settings: Vec::new(),
        }
    }

    fn prepare(req: PrepareRequest) -> Result<RunPlan, ConfigError> {
        let a = read(&req.config_json)?;
        Ok(RunPlan {
            models: vec![a.model],
            datasets: vec![a.dataset],
            endpoints: Vec::new(),
            gpus: if a.device.starts_with("cuda") { GpuUse::Gpus(vec![0]) } else { GpuUse::None(format!("backend.device={}", a.device)) },
            report_format: "ai_energy_benchmarks".into(),
            notes: Vec::new(),
        })
    }

    fn run(req: RunRequest) -> Result<RunOutput, String> {
        let a = read(&req.config_json).map_err(|e| e.message)?;
        let err = |e: energy_star_plugin_sdk::backend::host::types::Error| backend::describe(&e);
        let rows = datasets::load(&datasets::DatasetSpec {
            name: a.dataset.clone(),
            config: None,
            split: Some(a.split.clone()),
            columns: vec![a.column.clone()],
            num_samples: a.num_samples,
        })
        .map_err(err)?;
        let prompts: Vec<String> = rows.rows.into_iter().filter_map(|r| r.into_iter().next()).collect();
        let engine = inference::open_local_engine(&LocalEngineSpec {
            model: a.model.clone(),
            device: if a.device.starts_with("cuda") { Device::Cuda(vec![0]) } else { Device::Cpu },
            dtype: Dtype::Auto,
            processor: None,
        })
        .map_err(err)?;
        let params = GenerationParams {
            max_new_tokens: a.new_tokens,
            min_new_tokens: a.new_tokens,
            ignore_eos: false,
            do_sample: false,
            temperature: 1.0,
            top_p: 1.0,
            seed: None,
            truncate: true,
        };
        let m = backend::metered("inference", || {
            let (mut input, mut output) = (0u64, 0u64);
            for (i, p) in prompts.iter().enumerate() {
                let out = engine.generate_batch(std::slice::from_ref(p), params)?;
                input += out.requests.iter().map(|r| u64::from(r.input_tokens)).sum::<u64>();
                output += out.requests.iter().map(|r| u64::from(r.output_tokens)).sum::<u64>();
                log::progress("inference", i as u64 + 1, Some(prompts.len() as u64), "prompts");
            }
            Ok::<_, energy_star_plugin_sdk::backend::host::types::Error>((input, output))
        })
        .map_err(err)?;
        let (input, output) = m.result.map_err(err)?;
        let reading = m.reading;
        let gpu_wh = backend::gpu_energy_j(&reading).map(units::j_to_wh);
        let of = |kind| backend::energy_j(&reading, kind).map(units::j_to_wh);
        let report = json!({
            "config": {"name": "{name}", "backend": "{name}", "model": a.model, "num_samples": prompts.len()},
            "summary": {"total_prompts": prompts.len(), "successful_prompts": prompts.len(), "total_completion_tokens": output},
            "energy": {
                "gpu_energy_wh": gpu_wh,
                "cpu_energy_wh": of(DeviceKind::Cpu),
                "ram_energy_wh": of(DeviceKind::Ram),
                "duration_seconds": backend::duration_s(&reading),
            },
        });
        // What the run did, typed: the host keeps it in run_record.json.
        let n = prompts.len() as u64;
        let facts = RunFacts {
            gpus: if a.device.starts_with("cuda") { GpuUse::Gpus(vec![0]) } else { GpuUse::None(format!("backend.device={}", a.device)) },
            phases: vec![PhaseFact {
                name: "inference".into(),
                windows: vec![reading.id],
                derivation: PhaseDerivation::Measured,
                definition: None,
                volume: None,
                complete: true,
            }],
            requests: Some(RequestCounts { total: n, succeeded: n, failed: 0, not_sent: 0 }),
            tokens: Some(TokenCounts { input, output, source: TokenCountSource::Engine }),
            workload_ns: Some(reading.end_ns.saturating_sub(reading.start_ns)),
            mean_e2e_ns: None,
            mean_ttft_ns: None,
            figures: Vec::new(),
            request_gpu_energy_j: Vec::new(),
            incomplete_reasons: Vec::new(),
            warnings: reading.warnings,
        };
        Ok(RunOutput { report_json: report.to_string(), facts })
    }
}

energy_star_plugin_sdk::export_backend!(Plugin);
"#;

const README: &str = r#"# {name}: an energy-star {kind} plugin

Made by `energy-star plugins new {name} --kind {kind}`. Build and try it:

```sh
rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2
energy-star --plugin-dir target/wasm32-wasip2/release plugins
```

Then drop `target/wasm32-wasip2/release/{crate_file}.wasm` into a plugin folder
(`--plugin-dir DIR`, `ENERGY_STAR_PLUGIN_PATH`, or `/opt/energy-star/plugins` in the container).
`sdk/` is the guest SDK with the WIT files of the plugin API (0.2.1), `types/` the names it
shares with the host; see energy-star's
docs/plugins.md for the API, the sandbox and versioning.
"#;

/// A plugin name: lowercase letters, digits, `-` and `_`, starting with a letter.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "plugin name {name:?}: use lowercase letters, digits, - and _, starting with a letter (at most 64)"
        ))
    }
}

/// Writes the crate into `dir/NAME`; refuses a folder that exists.
pub fn scaffold(dir: &Path, name: &str, kind: &str) -> Result<PathBuf, String> {
    check_name(name)?;
    let source = match kind {
        "summarizer" => SUMMARIZER,
        "backend" => BACKEND,
        other => return Err(format!("--kind {other}: backend or summarizer")),
    };
    let root = dir.join(name);
    if root.exists() {
        return Err(format!("{} exists already; pick another name or folder", root.display()));
    }
    let crate_name = format!("energy-star-{kind}-{name}").replace('_', "-");
    let fill = |t: &str| {
        t.replace("{name}", name)
            .replace("{kind}", kind)
            .replace("{crate}", &crate_name)
            .replace("{crate_file}", &crate_name.replace('-', "_"))
    };
    let mut files: Vec<(String, String)> = vec![
        ("Cargo.toml".into(), fill(CARGO_TOML)),
        ("src/lib.rs".into(), fill(source)),
        ("README.md".into(), fill(README)),
        (".gitignore".into(), "/target\n".into()),
    ];
    files.push(("sdk/Cargo.toml".into(), sdk_manifest()));
    files.extend(SDK_FILES.iter().map(|(p, c)| (p.to_string(), c.to_string())));
    for (rel, content) in files {
        let path = root.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        write_atomic(&path, content.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_kinds_are_checked_and_nothing_is_overwritten() {
        let d = tempfile::tempdir().expect("tmp");
        assert!(scaffold(d.path(), "Bad Name", "summarizer").unwrap_err().contains("lowercase"));
        assert!(scaffold(d.path(), "ok", "exporter").unwrap_err().contains("backend or summarizer"));
        let root = scaffold(d.path(), "my_tool", "summarizer").expect("scaffold");
        let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("lib");
        assert!(lib.contains("\"my_tool\"") && !lib.contains("{name}"));
        assert!(
            std::fs::read_to_string(root.join("Cargo.toml"))
                .expect("toml")
                .contains("name = \"energy-star-summarizer-my-tool\"")
        );
        assert!(root.join("sdk/wit/worlds.wit").exists());
        assert!(scaffold(d.path(), "my_tool", "summarizer").unwrap_err().contains("exists already"));
    }

    #[test]
    fn every_wit_file_of_the_sdk_is_copied() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk/wit");
        let mut files: Vec<String> = std::fs::read_dir(&sdk)
            .expect("sdk wit")
            .map(|e| format!("sdk/wit/{}", e.expect("entry").file_name().to_string_lossy()))
            .collect();
        files.sort();
        let mut copied: Vec<String> =
            SDK_FILES.iter().map(|(p, _)| p.to_string()).filter(|p| p.starts_with("sdk/wit/")).collect();
        copied.sort();
        assert_eq!(copied, files, "a new interface of the API must be in SDK_FILES");
    }
}
