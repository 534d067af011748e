//! `energy-star plugins new NAME --kind backend|summarizer`: a plugin crate that builds at
//! once. It carries its own copy of the guest SDK and of the WIT files (API 0.1.0), so it needs
//! nothing of this repository: `cargo build --release --target wasm32-wasip2` and drop the
//! `.wasm` into a plugin folder.

use std::path::{Path, PathBuf};

use energy_star_results::write_atomic;

/// The SDK and the WIT files as this binary was built with them.
const SDK_FILES: &[(&str, &str)] = &[
    ("sdk/Cargo.toml", include_str!("../../plugins/sdk/Cargo.toml")),
    ("sdk/src/lib.rs", include_str!("../../plugins/sdk/src/lib.rs")),
    ("sdk/wit/backend.wit", include_str!("../../wit/energy-star-plugin@0.1.0/backend.wit")),
    ("sdk/wit/datasets.wit", include_str!("../../wit/energy-star-plugin@0.1.0/datasets.wit")),
    ("sdk/wit/host.wit", include_str!("../../wit/energy-star-plugin@0.1.0/host.wit")),
    ("sdk/wit/inference.wit", include_str!("../../wit/energy-star-plugin@0.1.0/inference.wit")),
    ("sdk/wit/meter.wit", include_str!("../../wit/energy-star-plugin@0.1.0/meter.wit")),
    ("sdk/wit/summarizer.wit", include_str!("../../wit/energy-star-plugin@0.1.0/summarizer.wit")),
    ("sdk/wit/worlds.wit", include_str!("../../wit/energy-star-plugin@0.1.0/worlds.wit")),
];

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
members = [".", "sdk"]

[profile.release]
opt-level = "s"
strip = true
"#;

const SUMMARIZER: &str = r#"//! Summarizer `{name}`: reads the reports of a tool that writes
//! `{"tool": "{name}", "gpu_energy_j": 1234.5, "phases": {"prefill": 600.0, "decode": 634.5}}`
//! and turns them into energy-star's unified summary (GPU Wh). Change `detect` and
//! `summarize` to read your format; keep them honest: refuse what you do not recognise.

use energy_star_plugin_sdk::json::{self, Value};
use energy_star_plugin_sdk::summarizer::{Guest, PhaseEnergy, Summary, SummarizerInfo};
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
                phases.push(PhaseEnergy { name: phase.clone(), gpu_wh: Some(units::j_to_wh(j)), cpu_wh: None, ram_wh: None, counted: true });
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
//! `BENCHMARK_BACKEND={name}`. Change `run` to set your own workload.

use energy_star_plugin_sdk::backend::host::{datasets, inference, log};
use energy_star_plugin_sdk::backend::{self, BackendInfo, Guest, RunOutput, RunRequest};
use energy_star_plugin_sdk::json::{self, Value, json};
use energy_star_plugin_sdk::units;

struct Plugin;

fn text(cfg: &Value, path: &str, default: &str) -> String {
    json::get(cfg, path).and_then(Value::as_str).unwrap_or(default).to_string()
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

    fn run(req: RunRequest) -> Result<RunOutput, String> {
        let cfg: Value = serde_json::from_str(&req.config_json).map_err(|e| format!("config is not JSON: {e}"))?;
        let model = text(&cfg, "backend.model", "");
        if model.is_empty() {
            return Err("backend.model is not set".into());
        }
        let device = text(&cfg, "backend.device", "cpu");
        let num_samples = json::number(&cfg, "scenario.num_samples").filter(|n| *n > 0.0).map(|n| n as u32);
        let new_tokens = json::number(&cfg, "scenario.generate_kwargs.max_new_tokens").unwrap_or(10.0) as u32;
        let rows = datasets::load(&datasets::DatasetSpec {
            name: text(&cfg, "scenario.dataset_name", ""),
            config: String::new(),
            split: text(&cfg, "scenario.dataset_split", "train"),
            columns: vec![text(&cfg, "scenario.text_column_name", "text")],
            num_samples,
        })?;
        let prompts: Vec<String> = rows.rows.into_iter().filter_map(|r| r.into_iter().next()).collect();
        let engine = inference::open_engine(&inference::EngineSpec::Local(inference::LocalEngineSpec {
            model: model.clone(),
            device: device.clone(),
            device_ids: vec![0],
            dtype: text(&cfg, "backend.torch_dtype", "auto"),
            processor: None,
        }))
        .map_err(|e| format!("{e:?}"))?;
        let params = inference::GenerationParams {
            max_new_tokens: new_tokens,
            min_new_tokens: new_tokens,
            ignore_eos: false,
            do_sample: false,
            temperature: 1.0,
            top_p: 1.0,
            seed: None,
            truncate: true,
        };
        let (tokens, reading) = backend::metered("inference", || {
            let mut tokens = 0u64;
            for (i, p) in prompts.iter().enumerate() {
                let out = inference::generate_batch(engine, std::slice::from_ref(p), params).map_err(|e| format!("{e:?}"))?;
                tokens += out.requests.iter().map(|r| u64::from(r.output_tokens)).sum::<u64>();
                log::progress("inference", i as u64 + 1, prompts.len() as u64, "prompts");
            }
            Ok(tokens)
        })?;
        inference::close_engine(engine);
        let gpu_wh = backend::gpu_energy_j(&reading).map(units::j_to_wh);
        let of = |kind| reading.devices.iter().find(|d| d.device.kind == kind).and_then(|d| d.energy_j).map(units::j_to_wh);
        let report = json!({
            "config": {"name": "{name}", "backend": "{name}", "model": model, "num_samples": prompts.len()},
            "summary": {"total_prompts": prompts.len(), "successful_prompts": prompts.len(), "total_completion_tokens": tokens},
            "energy": {
                "gpu_energy_wh": gpu_wh,
                "cpu_energy_wh": of(energy_star_plugin_sdk::backend::host::meter::DeviceKind::Cpu),
                "ram_energy_wh": of(energy_star_plugin_sdk::backend::host::meter::DeviceKind::Ram),
                "duration_seconds": reading.end_ns.saturating_sub(reading.start_ns) as f64 / 1e9,
            },
            // The summarizer reads a missing GPU figure as an error unless the report says
            // why there is none.
            "energy_star": {"gpu_used": gpu_wh.is_some(), "gpu_absent_reason": if gpu_wh.is_none() { json!(format!("backend.device={device}: no GPU metered")) } else { Value::Null }, "warnings": reading.warnings},
        });
        Ok(RunOutput { report_json: report.to_string(), complete: true })
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
`sdk/` is the guest SDK with the WIT files of the plugin API (0.1.0); see energy-star's
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
}
