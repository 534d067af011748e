use crate::bindings::backend::energy_star::plugin::datasets::{DatasetRows, DatasetSpec, Host};
use crate::state::PluginState;
use energy_star_datasets as datasets;

use super::interrupted;

impl Host for PluginState {
    fn load(&mut self, spec: DatasetSpec) -> Result<DatasetRows, String> {
        let env = self.services().env.clone();
        let allowed = self.services().check_allowed("dataset", &spec.name);
        let out = if interrupted() {
            Err("interrupted by the user (Ctrl-C)".to_string())
        } else if let Err(e) = allowed {
            Err(e)
        } else {
            let spec = datasets::DatasetSpec {
                name: spec.name,
                config: spec.config,
                split: if spec.split.is_empty() { "train".into() } else { spec.split },
                columns: spec.columns,
                num_samples: spec.num_samples.map(|n| n as usize),
            };
            datasets::load(&spec, &|k: &str| env(k))
                .map(|r| DatasetRows { source: r.source, columns: r.columns, rows: r.rows })
                .map_err(|e| e.to_string())
        };
        self.host_returned();
        out
    }
}
