//! Writes the meter's timeline and windows as CSV, and the windows' figures as JSON, into the
//! results folder (atomically, like every result file).

use std::fmt::Write as _;
use std::path::Path;

use super::meter::Meter;
use energy_star_results::{ResultsError, write_atomic};

/// File names in the results folder.
pub const TIMELINE_CSV: &str = "energy_timeline.csv";
pub const WINDOWS_CSV: &str = "energy_windows.csv";

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The timeline: one row per device reading.
pub fn timeline_csv(m: &Meter) -> String {
    let mut out = String::from(
        "t_s,device,source,power_w,energy_counter_j,temperature_c,utilization_pct,sm_clock_mhz,memory_used_mib\n",
    );
    for s in m.timeline() {
        let d = &m.devices()[s.device];
        let _ = writeln!(
            out,
            "{:.6},{},{},{},{},{},{},{},{}",
            s.t_ns as f64 / 1e9,
            d.label(),
            d.source.as_str(),
            opt(s.power_w.map(|w| format!("{w:.3}"))),
            opt(s.counter_j.map(|j| format!("{j:.3}"))),
            opt(s.temperature_c),
            opt(s.utilization_pct),
            opt(s.sm_clock_mhz),
            opt(s.memory_used_mib),
        );
    }
    out
}

/// The window boundaries, on the same clock as the timeline.
pub fn windows_csv(m: &Meter) -> String {
    let mut out = String::from("id,name,start_s,end_s,duration_s\n");
    for w in m.closed_windows() {
        let name = w.name.replace([',', '\n', '"'], "_");
        let _ = writeln!(
            out,
            "{},{name},{:.6},{:.6},{:.6}",
            w.id,
            w.start_ns as f64 / 1e9,
            w.end_ns as f64 / 1e9,
            (w.end_ns - w.start_ns) as f64 / 1e9
        );
    }
    for (id, name) in m.open_windows() {
        let _ = writeln!(out, "{id},{} (never closed),,,", name.replace([',', '\n', '"'], "_"));
    }
    out
}

/// Writes both CSV files into `dir`.
pub fn write(m: &Meter, dir: &Path) -> Result<(), ResultsError> {
    write_atomic(&dir.join(TIMELINE_CSV), timeline_csv(m).as_bytes())?;
    write_atomic(&dir.join(WINDOWS_CSV), windows_csv(m).as_bytes())
}
