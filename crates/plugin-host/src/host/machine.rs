//! `machine`: the machine as the host described it before the run (`energy_star_machine`).

use crate::wit::latest::backend::energy_star::plugin::machine::{GpuDescription, Host, MachineDescription};

use super::MachineView;

impl Host for MachineView<'_> {
    fn describe(&mut self) -> MachineDescription {
        let m = self.machine;
        MachineDescription {
            system: m.system.clone(),
            kernel_release: m.kernel_release.clone(),
            machine: m.machine.clone(),
            processor: m.processor.clone(),
            libc: m.libc.clone(),
            platform: m.platform.clone(),
            cpu_model: m.cpu_model.clone(),
            cpu_count: m.cpu_count,
            ram_bytes: m.ram_bytes,
            gpus: m
                .gpus
                .iter()
                .map(|g| GpuDescription { index: g.index, name: g.name.clone(), memory_bytes: g.memory_bytes })
                .collect(),
            gpu_driver_version: m.gpu_driver_version.clone(),
            cuda_driver_version: m.cuda_driver_version.clone(),
            gpu_absent_reason: m.gpu_absent_reason.clone(),
        }
    }
}
