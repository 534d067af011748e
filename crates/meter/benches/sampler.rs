//! The background sampler's own cost: CPU time per hour of sampling at 10 Hz, and the
//! timeline's memory, printed as Markdown rows for docs/benchmarks.md.
//!
//! Run: `cargo bench -p energy-star-meter --bench sampler` (about 1 minute).
//!
//! On this machine there is no NVML and no RAPL, so the "this machine" row reads the CPU
//! estimate (`/proc/stat`) and the RAM estimate; the replay rows add 1 and 8 GPUs read from a
//! recorded trace (no driver cost). NVML's own read cost can only be measured on a GPU host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use energy_star_meter::gpu::{GpuDevice, GpuReading, GpuSource, ReplayGpus};
use energy_star_meter::meter::{Meter, Sample, monotonic_clock};
use energy_star_meter::{Clock, MeterOptions, Sampler};

const SECONDS: u64 = 30;

fn run(label: &str, gpus: Result<Box<dyn GpuSource>, String>, clock: Clock) {
    let options = MeterOptions { interval: Duration::from_millis(100), ..Default::default() };
    let meter = Arc::new(Mutex::new(Meter::with_sources(options, gpus, clock)));
    let t = Instant::now();
    let s = Sampler::start(meter.clone());
    std::thread::sleep(Duration::from_secs(SECONDS));
    s.stop();
    let wall = t.elapsed().as_secs_f64();
    let m = meter.lock().expect("meter");
    let per_hour = m.sampler_cpu_s / m.sampler_wall_s * 3600.0;
    let busy_per_hour = m.sampler_busy_s / m.sampler_wall_s * 3600.0;
    let per_read_us = m.sampler_busy_s / (m.timeline().len() as f64) * 1e6;
    let rows = m.timeline().len() as f64 / wall * 3600.0;
    let mib = rows * std::mem::size_of::<Sample>() as f64 / (1024.0 * 1024.0);
    println!(
        "| {label} | {} | {:.1} | {:.2} s ({:.3} % of a core) | {:.2} s | {:.1} µs | {:.0} | {:.1} MiB |",
        m.devices().len(),
        m.timeline().len() as f64 / wall,
        busy_per_hour,
        busy_per_hour / 36.0,
        per_hour,
        per_read_us,
        rows,
        mib
    );
}

fn replay(n: u32) -> (Result<Box<dyn GpuSource>, String>, Clock) {
    let t = Arc::new(AtomicU64::new(0));
    let origin = Instant::now();
    let c = t.clone();
    let clock: Clock = Arc::new(move || {
        let ns = origin.elapsed().as_nanos() as u64;
        c.store(ns, Ordering::Relaxed);
        ns
    });
    let devices: Vec<GpuDevice> = (0..n)
        .map(|index| GpuDevice { index, name: "replayed".into(), has_energy_counter: true, mig_enabled: false })
        .collect();
    let traces = (0..n)
        .map(|_| {
            (0..=SECONDS * 10 + 10)
                .map(|i| {
                    (
                        i * 100_000_000,
                        Ok(GpuReading {
                            energy_mj: Some(i * 30_000),
                            power_mw: Some(300_000),
                            temperature_c: Some(60),
                            utilization_pct: Some(99),
                            sm_clock_mhz: Some(1980),
                            memory_used_mib: Some(70_000),
                        }),
                    )
                })
                .collect()
        })
        .collect();
    (Ok(Box::new(ReplayGpus::new(devices, traces, clock.clone()))), clock)
}

fn main() {
    println!(
        "| sampler at 10 Hz, {SECONDS} s | devices | readings/s (all devices) | time in readings per hour | thread CPU per hour (10 ms ticks) | per reading | timeline rows per hour | timeline memory per hour |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    run("this machine (no NVML, no RAPL: /proc estimates)", Err("no GPU in this benchmark".into()), monotonic_clock());
    let (g, c) = replay(1);
    run("1 replayed GPU + CPU + RAM", g, c);
    let (g, c) = replay(8);
    run("8 replayed GPUs + CPU + RAM", g, c);
}
