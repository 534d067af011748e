//! The background sampler: a thread that reads the meter every interval, and what it costs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::meter::Meter;

/// The background sampler: reads the meter every interval until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// CPU time of the calling thread, seconds (`/proc/thread-self/stat`, clock ticks).
fn thread_cpu_s() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

impl Sampler {
    pub fn start(meter: Arc<Mutex<Meter>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("energy-star-sampler".into())
            .spawn(move || {
                let interval = meter.lock().map(|m| m.interval()).unwrap_or(Duration::from_millis(100));
                let cpu0 = thread_cpu_s();
                let wall0 = Instant::now();
                let mut next = Instant::now() + interval;
                while !flag.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    next += interval;
                    if let Ok(mut m) = meter.lock() {
                        let t = Instant::now();
                        m.sample();
                        m.sampler_busy_s += t.elapsed().as_secs_f64();
                    }
                }
                if let Ok(mut m) = meter.lock() {
                    m.sampler_cpu_s += thread_cpu_s().zip(cpu0).map(|(a, b)| a - b).unwrap_or(0.0);
                    m.sampler_wall_s += wall0.elapsed().as_secs_f64();
                }
            })
            .ok();
        Self { stop, handle }
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceKind, MeterOptions};

    #[test]
    fn background_sampler_records_a_timeline_and_its_cost() {
        let m = Arc::new(Mutex::new(Meter::open(MeterOptions {
            interval: Duration::from_millis(10),
            rapl_root: None,
            ..Default::default()
        })));
        let s = Sampler::start(m.clone());
        std::thread::sleep(Duration::from_millis(200));
        s.stop();
        let m = m.lock().expect("lock");
        let cpu_rows = m
            .timeline()
            .iter()
            .filter(|r| r.device == m.devices().iter().position(|d| d.kind == DeviceKind::Cpu).expect("cpu"))
            .count();
        assert!(cpu_rows >= 5, "only {cpu_rows} rows");
        assert!(m.sampler_wall_s > 0.1);
    }
}
