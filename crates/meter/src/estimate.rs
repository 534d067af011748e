//! Estimates for machines without RAPL, in CodeCarbon's manner, so that energy-star's CPU and
//! RAM figures agree with what optimum-benchmark and ai_energy_benchmarks report there. Every
//! constant lives here, and every figure made from them is labelled `estimate-tdp` or
//! `estimate-dimm`: an estimate, never a measurement. Configs override them with
//! `metering.cpu_tdp_w`, `metering.ram_watts_per_dimm` and `metering.ram_power_w`.

/// CPU TDP assumed when the model is unknown (CodeCarbon's `POWER_CONSTANT`), W.
pub const DEFAULT_CPU_TDP_W: f64 = 85.0;
/// Power of one x86 DIMM (CodeCarbon 3's `RAM_SLOT_POWER_X86`), W.
pub const X86_WATTS_PER_DIMM: f64 = 5.0;
/// Power of one ARM DIMM (CodeCarbon 3), W.
pub const ARM_WATTS_PER_DIMM: f64 = 1.5;
/// Share of TDP drawn at zero load in CodeCarbon's load curve.
pub const CPU_IDLE_SHARE: f64 = 0.1;

/// The estimate's settings, with CodeCarbon's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimateConstants {
    pub cpu_tdp_w: f64,
    pub watts_per_dimm: f64,
    /// A fixed RAM power that replaces the DIMM rule (CodeCarbon's `force_ram_power`).
    pub ram_power_w: Option<f64>,
    pub arm: bool,
}

impl Default for EstimateConstants {
    fn default() -> Self {
        let arm = cfg!(any(target_arch = "aarch64", target_arch = "arm"));
        Self {
            cpu_tdp_w: DEFAULT_CPU_TDP_W,
            watts_per_dimm: if arm { ARM_WATTS_PER_DIMM } else { X86_WATTS_PER_DIMM },
            ram_power_w: None,
            arm,
        }
    }
}

/// CPU power at `load` (0..=1) in CodeCarbon's machine mode: TDP × (0.1 + 0.9 × load³).
pub fn cpu_power_w(tdp_w: f64, load: f64) -> f64 {
    let load = load.clamp(0.0, 1.0);
    tdp_w * (CPU_IDLE_SHARE + (1.0 - CPU_IDLE_SHARE) * load.powi(3))
}

/// CodeCarbon 3's guess of the DIMM count from the installed memory in GiB.
pub fn dimm_count(total_gib: f64) -> u32 {
    match total_gib {
        g if g <= 2.0 => 1,
        g if g <= 16.0 => 2,
        g if g <= 32.0 => 4,
        g if g <= 64.0 => 4,
        g if g <= 128.0 => 8,
        g => {
            // Large servers: the largest common DIMM size that still gives at least 8 DIMMs.
            for size in [128.0, 64.0, 32.0, 16.0, 8.0, 4.0] {
                if size <= g / 8.0 {
                    return ((g / size).ceil() as u32).min(32);
                }
            }
            8
        }
    }
}

/// RAM power from the DIMM count: full power for the first 4 DIMMs, 0.9 for the next 4, 0.8
/// for the next 8, 0.7 beyond; at least two DIMMs' worth (x86) or 3 W (ARM).
pub fn ram_power_w(total_gib: f64, c: &EstimateConstants) -> f64 {
    if let Some(p) = c.ram_power_w {
        return p;
    }
    let n = f64::from(dimm_count(total_gib));
    let w = c.watts_per_dimm;
    let tiers = [(4.0, 1.0), (4.0, 0.9), (8.0, 0.8), (f64::INFINITY, 0.7)];
    let mut left = n;
    let mut total = 0.0;
    for (count, factor) in tiers {
        let take = left.min(count);
        total += take * w * factor;
        left -= take;
        if left <= 0.0 {
            break;
        }
    }
    let floor = if c.arm { 3.0 } else { 2.0 * w };
    total.max(floor)
}

/// Total memory from `/proc/meminfo`, GiB.
pub fn total_memory_gib() -> Result<f64, String> {
    let text = std::fs::read_to_string("/proc/meminfo").map_err(|e| format!("/proc/meminfo: {e}"))?;
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("/proc/meminfo has no MemTotal")?;
    Ok(kib / (1024.0 * 1024.0))
}

/// CPU time counters from `/proc/stat` (busy, total) in clock ticks, for load between samples.
pub fn cpu_ticks() -> Result<(u64, u64), String> {
    let text = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let line = text.lines().next().filter(|l| l.starts_with("cpu ")).ok_or("/proc/stat has no cpu line")?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 4 {
        return Err("/proc/stat cpu line is too short".into());
    }
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// The CPU model name from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_load_curve() {
        assert_eq!(cpu_power_w(100.0, 0.0), 10.0);
        assert_eq!(cpu_power_w(100.0, 1.0), 100.0);
        assert!((cpu_power_w(100.0, 0.5) - 21.25).abs() < 1e-9);
        assert_eq!(cpu_power_w(100.0, 7.0), 100.0);
    }

    #[test]
    fn dimm_rule_matches_codecarbon_3() {
        let x86 = EstimateConstants { arm: false, watts_per_dimm: X86_WATTS_PER_DIMM, ..Default::default() };
        assert_eq!(dimm_count(8.0), 2);
        assert_eq!(dimm_count(24.0), 4);
        assert_eq!(dimm_count(128.0), 8);
        assert_eq!(dimm_count(1024.0), 8); // 8 × 128 GiB
        assert_eq!(dimm_count(512.0), 8); // 8 × 64 GiB
        assert_eq!(dimm_count(200.0), 13); // 16 GiB DIMMs
        assert_eq!(ram_power_w(16.0, &x86), 10.0);
        assert_eq!(ram_power_w(128.0, &x86), 38.0); // CodeCarbon's docs: 128 GB ≈ 40 W
        assert_eq!(ram_power_w(1024.0, &x86), 38.0); // and 1 TB ≈ 40 W
        assert!((ram_power_w(200.0, &x86) - (20.0 + 18.0 + 5.0 * 5.0 * 0.8)).abs() < 1e-9); // 13 DIMMs
        let arm = EstimateConstants { arm: true, watts_per_dimm: ARM_WATTS_PER_DIMM, ..Default::default() };
        assert_eq!(ram_power_w(4.0, &arm), 3.0);
        let forced = EstimateConstants { ram_power_w: Some(7.0), ..x86 };
        assert_eq!(ram_power_w(512.0, &forced), 7.0);
    }
}
