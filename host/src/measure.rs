//! `energy-star measure`: the energy of any command per device, like `perf stat` for energy,
//! with the power timeline; or idle power with `--idle` alone.
//!
//! Ctrl-C stops the command (the terminal sends it SIGINT too; a SIGINT sent to energy-star
//! alone is forwarded) and the figures up to that moment are still printed and written.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use thiserror::Error;

use energy_star_meter::gpu::{GpuSource, NvmlGpus, ReplayGpus};
use energy_star_meter::monotonic_clock;
use energy_star_meter::{self as meter, MAX_IDLE_S, Meter, MeterOptions, Sampler, WindowReading};
use energy_star_results::{ResultsError, write_atomic};

use crate::cli::MeasureArgs;

/// `energy-star measure`: prints the table; exits as the command did (130 after Ctrl-C).
pub fn command(args: &MeasureArgs) -> anyhow::Result<std::process::ExitCode> {
    let plan = MeasurePlan {
        gpus: args.gpus.clone(),
        interval: Duration::from_millis(args.interval_ms),
        idle_s: args.idle,
        output: args.output.clone(),
        rapl: !args.no_rapl,
        replay: args.replay.clone(),
        command: args.command.clone(),
    };
    let done = run(&plan)?;
    out!("{}", report(&done, &plan.command))?;
    Ok(match &done.command {
        None => std::process::ExitCode::SUCCESS,
        Some(c) if c.interrupted => std::process::ExitCode::from(130),
        Some(c) => std::process::ExitCode::from(c.exit_code.and_then(|code| u8::try_from(code).ok()).unwrap_or(1)),
    })
}

#[derive(Debug, Error)]
pub enum MeasureError {
    #[error("nothing to measure: give a command after `--`, or --idle SECONDS")]
    Nothing,
    #[error("--idle must be a positive number of seconds, at most a day, got {0}")]
    BadIdle(f64),
    #[error("--interval-ms must be between 1 and 60000, got {0}")]
    BadInterval(u64),
    #[error("cannot read the replay trace {path}: {why}")]
    Replay { path: PathBuf, why: String },
    #[error("cannot start {command:?}: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("waiting for the command failed: {0}")]
    Wait(std::io::Error),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error("the meter failed: {0}")]
    Meter(String),
}

/// What to measure.
pub struct MeasurePlan {
    pub gpus: Option<Vec<u32>>,
    pub interval: Duration,
    pub idle_s: Option<f64>,
    pub output: PathBuf,
    pub rapl: bool,
    pub replay: Option<PathBuf>,
    pub command: Vec<String>,
}

/// What was measured.
pub struct Measured {
    pub idle: Option<WindowReading>,
    pub command: Option<MeasuredCommand>,
    pub output: PathBuf,
}

/// The measured command and how it ended.
pub struct MeasuredCommand {
    pub reading: WindowReading,
    /// Its exit code; none when a signal ended it.
    pub exit_code: Option<i32>,
    /// Whether Ctrl-C stopped it.
    pub interrupted: bool,
}

/// Set by Ctrl-C.
static STOP: AtomicBool = AtomicBool::new(false);

pub fn run(plan: &MeasurePlan) -> Result<Measured, MeasureError> {
    if plan.command.is_empty() && plan.idle_s.is_none() {
        return Err(MeasureError::Nothing);
    }
    if let Some(s) = plan.idle_s
        && !(s > 0.0 && s <= MAX_IDLE_S)
    {
        return Err(MeasureError::BadIdle(s));
    }
    let ms = plan.interval.as_millis() as u64;
    if !(1..=60_000).contains(&ms) {
        return Err(MeasureError::BadInterval(ms));
    }
    let options = MeterOptions {
        interval: plan.interval,
        gpu_indices: plan.gpus.clone(),
        rapl_root: if plan.rapl { MeterOptions::default().rapl_root } else { None },
        ..Default::default()
    };
    let clock = monotonic_clock();
    let gpus: Result<Box<dyn GpuSource>, String> = match &plan.replay {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| MeasureError::Replay { path: path.clone(), why: e.to_string() })?;
            let (devices, traces) =
                ReplayGpus::parse_csv(&text).map_err(|why| MeasureError::Replay { path: path.clone(), why })?;
            Ok(Box::new(ReplayGpus::new(devices, traces, clock.clone())))
        }
        None => NvmlGpus::open(plan.gpus.as_deref()).map(|g| Box::new(g) as Box<dyn GpuSource>),
    };
    let meter = Arc::new(Mutex::new(Meter::with_sources(options, gpus, clock)));
    let lock = || meter.lock().map_err(|_| MeasureError::Meter("the meter's lock is poisoned".into()));
    for n in lock()?.notices() {
        eprintln!("energy-star: {n}");
    }
    let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst));
    let sampler = Sampler::start(meter.clone());

    let idle = match plan.idle_s {
        Some(s) => {
            let id = lock()?.begin_window("idle").map_err(|e| MeasureError::Meter(e.to_string()))?;
            let until = Instant::now() + Duration::from_secs_f64(s);
            while Instant::now() < until && !STOP.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())));
            }
            let mut m = lock()?;
            let r = m.end_window(id).map_err(|e| MeasureError::Meter(e.to_string()))?;
            m.set_idle_baseline(&r);
            Some(r)
        }
        None => None,
    };

    let command = if plan.command.is_empty() || STOP.load(Ordering::SeqCst) {
        None
    } else {
        let id = lock()?.begin_window("command").map_err(|e| MeasureError::Meter(e.to_string()))?;
        let outcome = run_command(&plan.command);
        let reading = lock()?.end_window(id).map_err(|e| MeasureError::Meter(e.to_string()))?;
        let (status, interrupted) = outcome?;
        Some(MeasuredCommand { reading, exit_code: status.code(), interrupted })
    };
    sampler.stop();

    let m = lock()?;
    meter::timeline::write(&m, &plan.output)?;
    let record = json!({
        "command": plan.command,
        "exit_code": command.as_ref().and_then(|c| c.exit_code),
        "interrupted": command.as_ref().is_some_and(|c| c.interrupted),
        "devices": m.devices().iter().map(|d| d.record()).collect::<Vec<_>>(),
        "idle": idle.as_ref().map(WindowReading::record),
        "measurement": command.as_ref().map(|c| c.reading.record()),
        "sampler": {"interval_ms": m.interval().as_secs_f64() * 1000.0, "cpu_s": m.sampler_cpu_s, "wall_s": m.sampler_wall_s},
        "notices": m.notices(),
    });
    let mut text = serde_json::to_string_pretty(&record).unwrap_or_default();
    text.push('\n');
    write_atomic(&plan.output.join("measure.json"), text.as_bytes())?;
    Ok(Measured { idle, command, output: plan.output.clone() })
}

/// Runs the command to its end or to Ctrl-C; returns its status and whether it was interrupted.
fn run_command(command: &[String]) -> Result<(ExitStatus, bool), MeasureError> {
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .spawn()
        .map_err(|source| MeasureError::Spawn { command: command.join(" "), source })?;
    let mut interrupted_at: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait().map_err(MeasureError::Wait)? {
            return Ok((status, interrupted_at.is_some()));
        }
        if STOP.load(Ordering::SeqCst) {
            match interrupted_at {
                None => {
                    // A terminal's Ctrl-C reaches the child too; a signal sent to us alone is
                    // passed on, so the command can stop cleanly.
                    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
                    interrupted_at = Some(Instant::now());
                }
                Some(t) if t.elapsed() > Duration::from_secs(10) => {
                    let _ = child.kill();
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}")).unwrap_or_else(|| "n/a".into())
}

/// The `perf stat`-like table for one window.
pub fn table(r: &WindowReading) -> String {
    let mut out = format!(
        "{:<6} {:<24} {:>12} {:>11} {:>9} {:>9}  flags\n",
        "device", "source", "energy_J", "energy_Wh", "mean_W", "peak_W"
    );
    for d in &r.devices {
        out.push_str(&format!(
            "{:<6} {:<24} {:>12} {:>11} {:>9} {:>9}  {}\n",
            d.device.label(),
            d.source.as_str(),
            fmt_opt(d.energy_j, 2),
            fmt_opt(d.energy_j.map(|j| j / 3600.0), 5),
            fmt_opt(d.mean_power_w, 1),
            fmt_opt(d.peak_power_w, 1),
            d.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(","),
        ));
        if let Some(x) = d.power_integrated_j {
            let diff = d
                .energy_j
                .filter(|e| *e > 0.0)
                .map(|e| format!(" ({:+.1} %)", (x - e) / e * 100.0))
                .unwrap_or_default();
            out.push_str(&format!("{:<6} {:<24} {:>12.2}{diff}  (cross-check: integrated power samples)\n", "", "", x));
        }
        if let (Some(idle), Some(net)) = (d.idle_power_w, d.energy_above_idle_j) {
            out.push_str(&format!(
                "{:<6} {:<24} {:>12.2} {:>11} {:>9.1}  (above idle; idle power {idle:.1} W)\n",
                "", "", net, "", idle
            ));
        }
    }
    out
}

/// Everything `measure` prints.
pub fn report(m: &Measured, command: &[String]) -> String {
    let mut out = String::new();
    if let Some(idle) = &m.idle {
        out.push_str(&format!("\nIdle power over {:.1} s:\n", idle.duration_s()));
        out.push_str(&table(idle));
    }
    if let Some(MeasuredCommand { reading: r, exit_code: code, interrupted }) = &m.command {
        out.push_str(&format!(
            "\nEnergy of `{}` ({:.3} s, {}):\n",
            command.join(" "),
            r.duration_s(),
            if *interrupted {
                "interrupted by Ctrl-C".to_string()
            } else {
                format!("exit code {}", code.map_or("none (signal)".into(), |c| c.to_string()))
            }
        ));
        out.push_str(&table(r));
        for w in &r.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
    }
    out.push_str(&format!(
        "\ntimeline: {}  windows: {}  record: {}\n",
        m.output.join(meter::timeline::TIMELINE_CSV).display(),
        m.output.join(meter::timeline::WINDOWS_CSV).display(),
        m.output.join("measure.json").display()
    ));
    out
}
