//! The machine a run runs on, described once at the start: operating system, CPU, memory, GPUs
//! and their driver. The run record keeps it (what a bundle attests to), and backends get it
//! through the plugin API's `machine` interface to fill their formats' machine fields.
//!
//! Each fact is read where optimum-benchmark's `environment` reads it, so that energy-star's
//! `benchmark_config.json` says what optimum-benchmark would write on the same machine:
//! `/proc/cpuinfo`'s first `model name`, the online CPUs (what `os.cpu_count()` counts),
//! `MemTotal` (psutil's total), `uname` and the C library's version (Python's
//! `platform.platform()`), and NVML for the GPUs (pynvml). A fact that cannot be read is `None`
//! with nothing guessed in its place.

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use serde::{Deserialize, Serialize};

/// One GPU of the machine, as NVML lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuDescription {
    /// NVML index (all of the machine's GPUs, not only those a run uses).
    pub index: u32,
    pub name: String,
    /// Total memory, bytes.
    pub memory_bytes: Option<u64>,
}

/// The machine, described once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineDescription {
    /// `uname` system name, e.g. `Linux`.
    pub system: String,
    /// `uname` release (the kernel's), e.g. `5.15.0-1048-aws`.
    pub kernel_release: String,
    /// `uname` machine, e.g. `x86_64`.
    pub machine: String,
    /// `uname -p`, blank where it says `unknown` (as Python's `platform.processor()`).
    pub processor: String,
    /// The C library and its version, e.g. `glibc 2.31`.
    pub libc: Option<String>,
    /// One line in the shape of Python's `platform.platform()`, e.g.
    /// `Linux-5.15.0-1048-aws-x86_64-with-glibc2.31`.
    pub platform: String,
    /// `/proc/cpuinfo`'s first `model name`, trimmed.
    pub cpu_model: Option<String>,
    /// Online logical CPUs.
    pub cpu_count: Option<u32>,
    /// Installed memory (`MemTotal`), bytes.
    pub ram_bytes: Option<u64>,
    pub gpus: Vec<GpuDescription>,
    /// The NVIDIA driver's version, e.g. `550.54.15`.
    pub gpu_driver_version: Option<String>,
    /// The CUDA version the driver supports, e.g. `12.4`.
    pub cuda_driver_version: Option<String>,
    /// Why no GPU is listed (no driver, NVML found none), when none is.
    pub gpu_absent_reason: Option<String>,
}

/// What [`describe_from`] reads: the texts and answers of the machine's interfaces.
#[derive(Debug, Clone)]
pub struct MachineSources {
    pub cpuinfo: Option<String>,
    pub meminfo: Option<String>,
    /// `/sys/devices/system/cpu/online`, e.g. `0-3,8-11`.
    pub cpus_online: Option<String>,
    pub system: String,
    pub kernel_release: String,
    pub machine: String,
    /// `uname -p`'s answer.
    pub processor: Option<String>,
    /// `getconf GNU_LIBC_VERSION`'s answer, e.g. `glibc 2.36`.
    pub libc: Option<String>,
    pub gpus: Result<NvmlFacts, String>,
}

/// What NVML says about the machine's GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NvmlFacts {
    pub gpus: Vec<GpuDescription>,
    pub driver_version: Option<String>,
    pub cuda_driver_version: Option<String>,
}

impl Default for MachineSources {
    /// Nothing read.
    fn default() -> Self {
        Self {
            cpuinfo: None,
            meminfo: None,
            cpus_online: None,
            system: String::new(),
            kernel_release: String::new(),
            machine: String::new(),
            processor: None,
            libc: None,
            gpus: Err("the machine was not described".into()),
        }
    }
}

impl Default for MachineDescription {
    /// A machine of which nothing is known (library use, where no run described one).
    fn default() -> Self {
        describe_from(MachineSources::default())
    }
}

/// Describes this machine.
pub fn describe() -> MachineDescription {
    describe_from(read_sources())
}

/// Reads the machine's interfaces. Two answers come from commands (`uname -p`, `getconf`):
/// they are what Python itself asks, and no Rust interface gives them without `unsafe`.
pub fn read_sources() -> MachineSources {
    let uname = rustix::system::uname();
    let text = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
    MachineSources {
        cpuinfo: std::fs::read_to_string("/proc/cpuinfo").ok(),
        meminfo: std::fs::read_to_string("/proc/meminfo").ok(),
        cpus_online: std::fs::read_to_string("/sys/devices/system/cpu/online").ok(),
        system: text(uname.sysname()),
        kernel_release: text(uname.release()),
        machine: text(uname.machine()),
        processor: command_output("uname", &["-p"]),
        libc: command_output("getconf", &["GNU_LIBC_VERSION"]),
        gpus: nvml_facts(),
    }
}

/// Builds the description from what was read; pure, so every parse is tested on real texts.
pub fn describe_from(s: MachineSources) -> MachineDescription {
    let processor = s.processor.map(|p| p.trim().to_string()).filter(|p| p != "unknown").unwrap_or_default();
    let libc = s.libc.map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
    let platform = platform_line(&s.system, &s.kernel_release, &s.machine, &processor, libc.as_deref());
    let (gpus, gpu_driver_version, cuda_driver_version, gpu_absent_reason) = match s.gpus {
        Ok(f) if f.gpus.is_empty() => {
            (Vec::new(), f.driver_version, f.cuda_driver_version, Some("NVML found no GPU".into()))
        }
        Ok(f) => (f.gpus, f.driver_version, f.cuda_driver_version, None),
        Err(why) => (Vec::new(), None, None, Some(why)),
    };
    MachineDescription {
        cpu_model: s.cpuinfo.as_deref().and_then(cpu_model),
        cpu_count: s.cpus_online.as_deref().and_then(count_cpu_list),
        ram_bytes: s.meminfo.as_deref().and_then(mem_total_bytes),
        system: s.system,
        kernel_release: s.kernel_release,
        machine: s.machine,
        processor,
        libc,
        platform,
        gpus,
        gpu_driver_version,
        cuda_driver_version,
        gpu_absent_reason,
    }
}

impl MachineDescription {
    /// The GPUs' memory together, bytes; none without GPUs or when one's is unknown.
    pub fn gpu_memory_total_bytes(&self) -> Option<u64> {
        if self.gpus.is_empty() {
            return None;
        }
        self.gpus.iter().map(|g| g.memory_bytes).sum()
    }
}

/// The model name of `/proc/cpuinfo`'s first processor. optimum-benchmark strips the line up to
/// its last colon; so does this, then trims (upstream keeps the leading space).
fn cpu_model(cpuinfo: &str) -> Option<String> {
    let line = cpuinfo.lines().find(|l| l.contains("model name"))?;
    let model = line.rsplit_once(':').map(|(_, m)| m.trim())?;
    (!model.is_empty()).then(|| model.to_string())
}

/// The number of CPUs in a kernel CPU list (`0-3,8,10-11`).
fn count_cpu_list(list: &str) -> Option<u32> {
    let mut count = 0u32;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.parse::<u32>().ok()?, hi.parse::<u32>().ok()?),
            None => {
                let n = part.parse::<u32>().ok()?;
                (n, n)
            }
        };
        count = count.checked_add(hi.checked_sub(lo)?.checked_add(1)?)?;
    }
    (count > 0).then_some(count)
}

/// `MemTotal` of `/proc/meminfo`, bytes (the kernel writes kB meaning KiB).
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => kib.checked_mul(1024),
        _ => None,
    }
}

/// The platform in the shape Python's `platform.platform()` gives on Linux: system, release,
/// machine, the processor where it differs from the machine, `with`, and the C library's name
/// and version run together; blanks dropped, characters that are awkward in file names turned
/// into `-` (spaces into `_`), `unknown` removed, runs of `-` folded.
fn platform_line(system: &str, release: &str, machine: &str, processor: &str, libc: Option<&str>) -> String {
    let processor = if processor == machine { "" } else { processor };
    let libc = libc.map(|l| l.split_whitespace().collect::<String>()).unwrap_or_default();
    let parts = [system, release, machine, processor, "with", libc.as_str()];
    let joined = parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
    let mut line: String = joined
        .chars()
        .map(|c| match c {
            ' ' => '_',
            '/' | '\\' | ':' | ';' | '"' | '(' | ')' => '-',
            c => c,
        })
        .collect();
    line = line.replace("unknown", "");
    while line.contains("--") {
        line = line.replace("--", "-");
    }
    line.trim_end_matches('-').to_string()
}

/// The trimmed standard output of a command that succeeded.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program).args(args).stderr(std::process::Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Opens NVML, with a message that says what is missing when it cannot be.
pub fn init_nvml() -> Result<Nvml, String> {
    Nvml::init().map_err(|e| match e {
        NvmlError::LibloadingError(_) => {
            "NVML could not be loaded (libnvidia-ml.so.1 not found): no NVIDIA driver on this machine".to_string()
        }
        NvmlError::DriverNotLoaded => "NVML is installed but the NVIDIA driver is not loaded".to_string(),
        other => format!("NVML could not be initialised: {other}"),
    })
}

/// The machine's GPUs, driver and CUDA version through NVML.
fn nvml_facts() -> Result<NvmlFacts, String> {
    let nvml = init_nvml()?;
    let count = nvml.device_count().map_err(|e| format!("NVML could not count GPUs: {e}"))?;
    let mut gpus = Vec::new();
    for index in 0..count {
        let d = nvml.device_by_index(index).map_err(|e| format!("GPU {index}: {e}"))?;
        gpus.push(GpuDescription {
            index,
            name: d.name().unwrap_or_else(|_| "unknown NVIDIA GPU".into()),
            memory_bytes: d.memory_info().ok().map(|m| m.total),
        });
    }
    let cuda = nvml.sys_cuda_driver_version().ok().map(|v| {
        format!("{}.{}", nvml_wrapper::cuda_driver_version_major(v), nvml_wrapper::cuda_driver_version_minor(v))
    });
    Ok(NvmlFacts { gpus, driver_version: nvml.sys_driver_version().ok(), cuda_driver_version: cuda })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of a real `/proc/cpuinfo` (an AWS c5 host) and of a real `/proc/meminfo`.
    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz\nstepping\t: 7\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz\n";
    const MEMINFO: &str = "MemTotal:       32387588 kB\nMemFree:        30054428 kB\nMemAvailable:   31192932 kB\n";

    fn sources() -> MachineSources {
        MachineSources {
            cpuinfo: Some(CPUINFO.into()),
            meminfo: Some(MEMINFO.into()),
            cpus_online: Some("0-7\n".into()),
            system: "Linux".into(),
            kernel_release: "5.15.0-1064-aws".into(),
            machine: "x86_64".into(),
            processor: Some("x86_64".into()),
            libc: Some("glibc 2.31".into()),
            gpus: Ok(NvmlFacts {
                gpus: vec![GpuDescription { index: 0, name: "Tesla T4".into(), memory_bytes: Some(16_106_127_360) }],
                driver_version: Some("535.183.01".into()),
                cuda_driver_version: Some("12.2".into()),
            }),
        }
    }

    #[test]
    fn a_machine_reads_as_optimum_benchmark_recorded_it() {
        // optbench-83c4c9f5-benchmark.json (tests/fixtures/samples/optimum) was written on an
        // 8-CPU Xeon 8259CL with a T4: cpu, cpu_count, platform and gpu_vram_mb as recorded.
        let m = describe_from(sources());
        assert_eq!(m.cpu_model.as_deref(), Some("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz"));
        assert_eq!(m.cpu_count, Some(8));
        assert_eq!(m.ram_bytes, Some(32_387_588 * 1024));
        assert_eq!(m.platform, "Linux-5.15.0-1064-aws-x86_64-with-glibc2.31");
        assert_eq!(m.processor, "x86_64");
        assert_eq!(m.gpu_memory_total_bytes(), Some(16_106_127_360));
        assert_eq!(m.gpu_driver_version.as_deref(), Some("535.183.01"));
        assert_eq!(m.gpu_absent_reason, None);
        let back: MachineDescription = serde_json::from_str(&serde_json::to_string(&m).expect("json")).expect("read");
        assert_eq!(back, m);
    }

    #[test]
    fn what_cannot_be_read_stays_unknown_and_says_why_for_gpus() {
        let m = describe_from(MachineSources {
            cpuinfo: Some("processor\t: 0\nCPU part\t: 0xd0c\n".into()),
            meminfo: Some("MemTotal: lots\n".into()),
            cpus_online: Some("garbage".into()),
            processor: Some("unknown".into()),
            libc: None,
            gpus: Err("NVML could not be loaded (libnvidia-ml.so.1 not found): no NVIDIA driver on this machine".into()),
            ..sources()
        });
        assert_eq!((m.cpu_model.as_deref(), m.cpu_count, m.ram_bytes), (None, None, None));
        assert_eq!(m.processor, "");
        // Python writes a bare "with" when it cannot name the C library.
        assert_eq!(m.platform, "Linux-5.15.0-1064-aws-x86_64-with");
        assert!(m.gpus.is_empty() && m.gpu_memory_total_bytes().is_none());
        assert!(m.gpu_absent_reason.as_deref().is_some_and(|r| r.contains("no NVIDIA driver")));
    }

    #[test]
    fn cpu_lists_count_ranges_and_singles() {
        assert_eq!(count_cpu_list("0-3,8,10-11\n"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list(""), None);
    }

    #[test]
    fn the_platform_line_follows_pythons_cleanup() {
        // A processor that differs from the machine is kept; awkward characters become dashes.
        assert_eq!(
            platform_line("Linux", "6.1 (x)", "aarch64", "arm/v8", Some("glibc 2.36")),
            "Linux-6.1_-x-aarch64-arm-v8-with-glibc2.36"
        );
        assert_eq!(
            platform_line("Linux", "6.18.44-fc-v1045", "x86_64", "", Some("glibc 2.36")),
            "Linux-6.18.44-fc-v1045-x86_64-with-glibc2.36"
        );
    }

    #[test]
    fn this_machine_describes_itself_without_panicking() {
        let m = describe();
        assert!(!m.system.is_empty() && !m.platform.is_empty(), "{m:?}");
        // No GPU here (CI): the reason says so; on a GPU machine the list is not empty.
        assert_eq!(m.gpus.is_empty(), m.gpu_absent_reason.is_some(), "{m:?}");
    }
}
