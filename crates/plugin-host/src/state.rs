//! Per-store state: the deny-all WASI context, the resource limiter, the compute budget, and
//! the host services a backend reaches through its imports.

use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::error::StopReason;
use super::host::HostServices;

/// How much of the guest's stdout/stderr is kept (for error messages); the rest is dropped.
pub const CAPTURED_OUTPUT_BYTES: usize = 64 * 1024;

/// State of one plugin instance. A store (and so an instance) is used for one top-level call
/// and dropped, so a trapped instance is never entered again.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) stderr: MemoryOutputPipe,
    pub(crate) memory_limit_bytes: u64,
    /// All linear memories of the instance together: the limit is per instance, not per memory.
    memory_total_bytes: u64,
    pub(crate) stop: StopReason,
    /// When the guest last got control back from the host (call start or a host import's
    /// return). The epoch callback measures the guest's uninterrupted compute from here.
    pub(crate) last_host_return: Instant,
    pub(crate) time_limit: Duration,
    /// The host capabilities a backend imports; `None` for summarizers, which import nothing.
    pub(crate) services: Option<HostServices>,
}

impl PluginState {
    pub(crate) fn new(memory_limit_bytes: u64, time_limit: Duration, services: Option<HostServices>) -> Self {
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
            services,
        }
    }

    /// Called at the end of every host import: the guest's compute budget starts again.
    pub(crate) fn host_returned(&mut self) {
        self.last_host_return = Instant::now();
    }
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
