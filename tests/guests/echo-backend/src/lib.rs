//! A minimal backend: returns the report given in the required setting `ECHO_REPORT`, after
//! using the host's log, clock and results interfaces, and asking for the meter.

wit_bindgen::generate!({ path: "../../../wit/energy-star-plugin@0.1.0", world: "backend-plugin" });

use energy_star::plugin::{clock, datasets, log, meter, results};
use exports::energy_star::plugin::backend::{BackendInfo, Guest, RequiredSetting, RunOutput, RunRequest};

struct Echo;

impl Guest for Echo {
    fn info() -> BackendInfo {
        BackendInfo {
            name: "echo".into(),
            version: "0.0.1".into(),
            description: "returns ECHO_REPORT as its report".into(),
            report_format: "any".into(),
            required_settings: vec![RequiredSetting {
                name: "ECHO_REPORT".into(),
                description: "the report to return".into(),
                missing_message: "ECHO_REPORT must be set for the echo backend".into(),
            }],
        }
    }

    fn run(req: RunRequest) -> Result<RunOutput, String> {
        let t0 = clock::now_ns();
        log::log(log::Level::Info, "echo backend running");
        let report =
            req.settings.iter().find(|(k, _)| k == "ECHO_REPORT").map(|(_, v)| v.clone()).ok_or("no ECHO_REPORT")?;
        let meter = match meter::devices() {
            Ok(d) => format!("{} devices", d.len()),
            Err(e) => format!("{e:?}"),
        };
        let window = meter::begin_window("echo").map_err(|e| format!("{e:?}"))?;
        let cfg: serde_json::Value = serde_json::from_str(&req.config_json).map_err(|e| e.to_string())?;
        // Benchmark hook: N guest-to-host calls, timed on the host's clock.
        let bench_calls = serde_json::from_str::<serde_json::Value>(&report)
            .ok()
            .and_then(|r| r.get("bench_host_calls").and_then(serde_json::Value::as_u64))
            .unwrap_or(0);
        let start = clock::now_ns();
        for _ in 0..bench_calls {
            std::hint::black_box(clock::now_ns());
        }
        let bench_ns = clock::now_ns() - start;
        let note = serde_json::json!({
            "meter": meter,
            "config_name": cfg.get("name"),
            "num_samples": cfg.pointer("/scenario/num_samples"),
            "clock_advanced": clock::now_ns() >= t0,
            "bench_host_calls": bench_calls,
            "bench_host_calls_ns": bench_ns,
        });
        let reading = meter::end_window(window).map_err(|e| format!("{e:?}"))?;
        let devices: Vec<serde_json::Value> = reading
            .devices
            .iter()
            .map(|d| serde_json::json!({"kind": short(format!("{:?}", d.device.kind)), "source": short(format!("{:?}", d.source)), "energy_j": d.energy_j}))
            .collect();
        let mut note = note;
        // A plugin may read only the dataset its config names, not any file it likes.
        let probe = datasets::load(&datasets::DatasetSpec {
            name: "/etc/hostname".into(),
            config: String::new(),
            split: "train".into(),
            columns: vec!["text".into()],
            num_samples: None,
        });
        note["dataset_probe"] = serde_json::json!(match probe {
            Ok(_) => "read".to_string(),
            Err(e) => e,
        });
        note["window"] = serde_json::json!({"name": reading.name, "devices": devices, "warnings": reading.warnings});
        if meter::end_window(window).is_ok() {
            return Err("a window could be closed twice".into());
        }
        results::write_file("echo/notes.json", note.to_string().as_bytes())?;
        if results::write_file("../escape.txt", b"x").is_ok() {
            return Err("the host let a plugin write outside the results folder".into());
        }
        if report.contains("\"fail_after_write\"") {
            return Err("asked to fail after writing a file".into());
        }
        let complete = !report.contains("\"incomplete\"");
        if !complete {
            results::mark_incomplete("asked to be incomplete");
        }
        Ok(RunOutput { report_json: report, complete })
    }
}

/// `DeviceKind::Gpu` → `Gpu`.
fn short(debug: String) -> String {
    debug.rsplit("::").next().unwrap_or_default().to_string()
}

export!(Echo);
