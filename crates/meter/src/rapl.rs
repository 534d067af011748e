//! RAPL energy counters from `/sys/class/powercap` (Linux powercap, Intel and AMD).
//!
//! Package zones (`package-N`) are summed as the CPU; `dram` sub-zones are reported apart as
//! RAM. Counters are µJ and wrap at `max_energy_range_uj`; each read adds the increase since
//! the previous one, adding the range when the counter wrapped, so the meter sees one
//! monotonic total. The sampler reads at 10 Hz, far more often than a counter can wrap (about
//! every 20 minutes at 200 W for a 262 kJ range).

use std::path::{Path, PathBuf};

/// One RAPL zone.
#[derive(Debug, Clone)]
struct Zone {
    name: String,
    energy_path: PathBuf,
    max_range_uj: u64,
    last_uj: u64,
    total_uj: u128,
}

/// Which zones a reader sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaplDomain {
    Package,
    Dram,
}

/// Reads and accumulates a set of RAPL zones.
#[derive(Debug)]
pub struct RaplReader {
    zones: Vec<Zone>,
    pub domain: RaplDomain,
}

fn read_u64(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim().parse().map_err(|_| format!("{}: not a number: {:?}", path.display(), text.trim()))
}

impl RaplReader {
    /// Finds the zones of `domain` under `root` (normally `/sys/class/powercap`). Errors say why
    /// RAPL is unusable (absent, or not readable without root).
    pub fn open(root: &Path, domain: RaplDomain) -> Result<Self, String> {
        let entries = std::fs::read_dir(root).map_err(|e| format!("RAPL not available ({}: {e})", root.display()))?;
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        let mut zones = Vec::new();
        for dir in dirs {
            let Some(file) = dir.file_name().and_then(|n| n.to_str()) else { continue };
            // Top-level zones are `intel-rapl:N` (AMD kernels use the same name); sub-zones
            // `intel-rapl:N:M`. `intel-rapl-mmio:*` duplicates package zones on some Intel parts.
            if !file.starts_with("intel-rapl:") {
                continue;
            }
            let Ok(name) = std::fs::read_to_string(dir.join("name")) else { continue };
            let name = name.trim().to_string();
            let is_package = name.starts_with("package");
            let wanted = match domain {
                RaplDomain::Package => is_package && file.matches(':').count() == 1,
                RaplDomain::Dram => name == "dram",
            };
            if !wanted {
                continue;
            }
            let energy_path = dir.join("energy_uj");
            let last_uj = read_u64(&energy_path)
                .map_err(|e| format!("RAPL zone {name} is not readable ({e}); reading RAPL needs root"))?;
            let max_range_uj = read_u64(&dir.join("max_energy_range_uj")).unwrap_or(0);
            zones.push(Zone { name, energy_path, max_range_uj, last_uj, total_uj: 0 });
        }
        if zones.is_empty() {
            return Err(format!(
                "RAPL has no {} zone under {}",
                if domain == RaplDomain::Package { "package" } else { "dram" },
                root.display()
            ));
        }
        Ok(Self { zones, domain })
    }

    /// Zone names, for the device name.
    pub fn zone_names(&self) -> Vec<String> {
        self.zones.iter().map(|z| z.name.clone()).collect()
    }

    /// Reads every zone and returns the accumulated energy since `open`, in joules.
    pub fn read_total_j(&mut self) -> Result<f64, String> {
        let mut total: u128 = 0;
        for z in &mut self.zones {
            let now = read_u64(&z.energy_path)?;
            let delta = if now >= z.last_uj {
                now - z.last_uj
            } else if z.max_range_uj > 0 {
                // Wrapped: the counter ran to max_energy_range_uj and started again from 0.
                (z.max_range_uj - z.last_uj) + now
            } else {
                0
            };
            z.last_uj = now;
            z.total_uj += u128::from(delta);
            total += z.total_uj;
        }
        Ok(total as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(root: &Path, dir: &str, name: &str, energy: u64, max: u64) {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("name"), format!("{name}\n")).expect("name");
        std::fs::write(d.join("energy_uj"), format!("{energy}\n")).expect("energy");
        std::fs::write(d.join("max_energy_range_uj"), format!("{max}\n")).expect("max");
    }

    fn set(root: &Path, dir: &str, energy: u64) {
        std::fs::write(root.join(dir).join("energy_uj"), format!("{energy}\n")).expect("energy");
    }

    #[test]
    fn packages_are_summed_dram_apart_and_wraps_counted() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        zone(root, "intel-rapl:0", "package-0", 1_000_000, 10_000_000);
        zone(root, "intel-rapl:1", "package-1", 5_000_000, 10_000_000);
        zone(root, "intel-rapl:0:0", "dram", 100, 10_000_000);
        zone(root, "intel-rapl:0:1", "core", 42, 10_000_000);
        let mut cpu = RaplReader::open(root, RaplDomain::Package).expect("package");
        let mut ram = RaplReader::open(root, RaplDomain::Dram).expect("dram");
        assert_eq!(cpu.zone_names(), vec!["package-0", "package-1"]);
        set(root, "intel-rapl:0", 3_000_000);
        set(root, "intel-rapl:1", 6_000_000);
        assert_eq!(cpu.read_total_j().expect("read"), 3.0);
        // Package 0 wraps: 3.0 J -> max 10.0 J -> 0.5 J is 7.5 J more.
        set(root, "intel-rapl:0", 500_000);
        assert_eq!(cpu.read_total_j().expect("read"), 10.5);
        set(root, "intel-rapl:0:0", 2_000_100);
        assert_eq!(ram.read_total_j().expect("read"), 2.0);
    }

    #[test]
    fn missing_rapl_says_why() {
        let tmp = tempfile::tempdir().expect("tmp");
        let err = RaplReader::open(&tmp.path().join("absent"), RaplDomain::Package).unwrap_err();
        assert!(err.contains("RAPL not available"), "{err}");
        let err = RaplReader::open(tmp.path(), RaplDomain::Package).unwrap_err();
        assert!(err.contains("no package zone"), "{err}");
    }
}
