//! Per-store state: the deny-all WASI context, the resource limiter, the compute budget, the
//! run's host services, and the narrow views each interface is implemented on.

use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;
use wasmtime::component::{HasData, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::error::StopReason;
use crate::host::{
    CarbonView, ClockView, DatasetsView, HostServices, InferenceView, LogView, MachineView, MeterView, ResultsView,
    TasksView,
};
use crate::wit::v0_1_0::LegacyHandles;

/// How much of the guest's stdout/stderr is kept (for error messages); the rest is dropped.
pub const CAPTURED_OUTPUT_BYTES: usize = 64 * 1024;

/// State of one plugin instance. A store (and so an instance) is used for one top-level call
/// and dropped, so a trapped instance is never entered again.
pub struct PluginState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) stderr: MemoryOutputPipe,
    pub(crate) memory_limit_bytes: u64,
    /// All linear memories of the instance together: the limit is per instance, not per memory.
    memory_total_bytes: u64,
    pub(crate) stop: StopReason,
    /// When the guest last got control back from the host (call start or a host call's
    /// return, by the store's call hook). The epoch callback measures the guest's
    /// uninterrupted compute from here.
    pub(crate) last_host_return: Instant,
    pub(crate) time_limit: Duration,
    /// Set when a call into one of the host's own interfaces begins (its view is taken), so
    /// that only those calls restart the compute budget when they return: wasmtime's call
    /// hook fires for its own libcalls too (the epoch check itself, memory growth), which must
    /// not reset the budget, or a looping plugin would never be stopped.
    pub(crate) in_host_import: bool,
    /// The run's capabilities (empty for summarizers, which import nothing).
    pub(crate) services: HostServices,
    /// Handles of API 0.1.0 plugins (engines and windows by number).
    pub(crate) legacy: LegacyHandles,
}

impl PluginState {
    pub(crate) fn new(memory_limit_bytes: u64, time_limit: Duration, services: HostServices) -> Self {
        let stderr = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        // Deny-all: no preopened folders, no environment, no arguments, no sockets or name
        // lookup. Output goes to bounded in-memory pipes, read back only for error messages.
        let wasi = WasiCtx::builder()
            .stdout(MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory_limit_bytes,
            memory_total_bytes: 0,
            stop: StopReason::None,
            last_host_return: Instant::now(),
            time_limit,
            in_host_import: false,
            services,
            legacy: LegacyHandles::default(),
        }
    }

    pub(crate) fn into_services(self) -> HostServices {
        self.services
    }

    pub(crate) fn log_view(&mut self) -> LogView<'_> {
        self.in_host_import = true;
        let s = &mut self.services;
        LogView { plugin: &s.plugin, progress: &mut s.progress, meter: s.meter.as_ref() }
    }

    pub(crate) fn clock_view(&mut self) -> ClockView {
        self.in_host_import = true;
        ClockView { clock: self.services.clock() }
    }

    pub(crate) fn meter_view(&mut self) -> MeterView<'_> {
        self.in_host_import = true;
        let s = &mut self.services;
        MeterView { meter: s.meter.as_ref(), readings: &mut s.readings, table: &mut self.table }
    }

    pub(crate) fn inference_view(&mut self) -> InferenceView<'_> {
        self.in_host_import = true;
        let clock = self.services.clock();
        let s = &mut self.services;
        InferenceView {
            grant: s.grant.as_ref(),
            env: &s.env,
            clock,
            table: &mut self.table,
            request_latencies_ms: &mut s.request_latencies_ms,
            chat_templates: &mut s.chat_templates,
        }
    }

    pub(crate) fn datasets_view(&mut self) -> DatasetsView<'_> {
        self.in_host_import = true;
        DatasetsView { grant: self.services.grant.as_ref(), env: &self.services.env, table: &mut self.table }
    }

    pub(crate) fn tasks_view(&mut self) -> TasksView<'_> {
        self.in_host_import = true;
        let clock = self.services.clock();
        TasksView { grant: self.services.grant.as_ref(), env: &self.services.env, clock, table: &mut self.table }
    }

    pub(crate) fn results_view(&mut self) -> ResultsView<'_> {
        self.in_host_import = true;
        ResultsView { results: &mut self.services.results }
    }

    pub(crate) fn carbon_view(&mut self) -> CarbonView<'_> {
        self.in_host_import = true;
        CarbonView { settings: &self.services.carbon }
    }

    pub(crate) fn machine_view(&mut self) -> MachineView<'_> {
        self.in_host_import = true;
        MachineView { machine: &self.services.machine }
    }
}

/// [`HasData`] markers: the view each interface's host functions get.
pub(crate) struct Log;
impl HasData for Log {
    type Data<'a> = LogView<'a>;
}
pub(crate) struct Clock;
impl HasData for Clock {
    type Data<'a> = ClockView;
}
pub(crate) struct Meter;
impl HasData for Meter {
    type Data<'a> = MeterView<'a>;
}
pub(crate) struct Inference;
impl HasData for Inference {
    type Data<'a> = InferenceView<'a>;
}
pub(crate) struct Datasets;
impl HasData for Datasets {
    type Data<'a> = DatasetsView<'a>;
}
pub(crate) struct Tasks;
impl HasData for Tasks {
    type Data<'a> = TasksView<'a>;
}
pub(crate) struct Results;
impl HasData for Results {
    type Data<'a> = ResultsView<'a>;
}
pub(crate) struct Carbon;
impl HasData for Carbon {
    type Data<'a> = CarbonView<'a>;
}
pub(crate) struct Machine;
impl HasData for Machine {
    type Data<'a> = MachineView<'a>;
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Bounds memories and tables; a refused growth traps at once (never a silent allocation
/// failure inside the guest) and is remembered so the error can say so.
impl ResourceLimiter for PluginState {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_total_bytes.saturating_add((desired.saturating_sub(current)) as u64);
        if total > self.memory_limit_bytes {
            self.stop = StopReason::Memory { requested_bytes: total };
            return Err(wasmtime::Error::msg(format!(
                "memory limit: growing to {total} bytes in all exceeds {} bytes",
                self.memory_limit_bytes
            )));
        }
        self.memory_total_bytes = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        // A component holds a few core instances (its module, the WASI adapter, shims).
        64
    }

    fn memories(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        64
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any honest plugin.
        Ok(desired <= 1_000_000)
    }
}
