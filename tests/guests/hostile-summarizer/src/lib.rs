//! A summarizer that misbehaves on request, to test the sandbox. It claims any report with a
//! `hostile` key and does what that key says: trap, spin, hog memory, return malformed data,
//! or probe the sandbox (filesystem, environment, network) and report what it could reach.

wit_bindgen::generate!({ path: "../../../wit/energy-star-plugin@0.1.0", world: "summarizer-plugin" });

use exports::energy_star::plugin::summarizer::{Guest, PhaseEnergy, SummarizerInfo, Summary};
use serde_json::Value;

struct Hostile;

fn mode(report: &str) -> Option<String> {
    serde_json::from_str::<Value>(report).ok()?.get("hostile")?.as_str().map(str::to_string)
}

fn summary(total: f64, phase: f64) -> Summary {
    Summary {
        format: "hostile".into(),
        total_wh: Some(total),
        gpu_absent_reason: None,
        cpu_wh: None,
        ram_wh: None,
        phases: vec![PhaseEnergy {
            name: "decode".into(),
            gpu_wh: Some(phase),
            cpu_wh: None,
            ram_wh: None,
            counted: true,
        }],
        warnings: vec![],
    }
}

impl Guest for Hostile {
    fn info() -> SummarizerInfo {
        SummarizerInfo {
            name: "hostile".into(),
            version: "6.6.6".into(),
            description: "misbehaves".into(),
            formats: vec!["hostile".into()],
        }
    }

    fn detect(report: String) -> f32 {
        match mode(&report).as_deref() {
            None => 0.0,
            Some("trap-in-detect") => panic!("detect was asked to panic"),
            Some("bad-confidence") => 7.0,
            Some(_) => 1.0,
        }
    }

    fn summarize(report: String) -> Result<Summary, String> {
        match mode(&report).as_deref() {
            Some("trap") => panic!("summarize was asked to panic"),
            Some("spin") => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            Some("hog") => {
                let mut chunks = Vec::new();
                loop {
                    chunks.push(vec![1u8; 64 << 20]);
                    std::hint::black_box(&chunks);
                }
            }
            Some("sleep") => {
                // Blocking in the host would escape the compute limit; the host refuses it.
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Err("slept for an hour".into())
            }
            Some("nan") => Ok(summary(f64::NAN, f64::NAN)),
            Some("lie") => Ok(summary(100.0, 1.0)),
            Some("probe") => {
                let fs = match std::fs::read_to_string("/etc/hostname") {
                    Ok(_) => "fs:open".to_string(),
                    Err(e) => format!("fs:denied({:?})", e.kind()),
                };
                let env = format!("env:{}", std::env::vars().count());
                let net = match std::net::TcpStream::connect("127.0.0.1:9") {
                    Ok(_) => "net:open".to_string(),
                    Err(e) => format!("net:denied({:?})", e.kind()),
                };
                Err(format!("probe {fs} {env} {net}"))
            }
            Some("ok") => Ok(summary(1.5, 1.5)),
            other => Err(format!("unknown hostile mode {other:?}")),
        }
    }
}

export!(Hostile);
