//! `datasets`: rows from files and the hub cache, of the datasets the plan declared.

use energy_star_datasets as datasets;

use crate::wit::latest::backend::energy_star::plugin::datasets::{DatasetRows, DatasetSpec, Host};
use crate::wit::latest::backend::energy_star::plugin::types::Error;

use super::{DatasetsView, check_interrupted};

impl Host for DatasetsView<'_> {
    fn load(&mut self, spec: DatasetSpec) -> Result<DatasetRows, Error> {
        check_interrupted()?;
        if let Some(grant) = self.grant {
            grant.dataset(&spec.name)?;
        }
        let spec = datasets::DatasetSpec {
            name: spec.name,
            config: spec.config.unwrap_or_default(),
            split: spec.split.filter(|s| !s.is_empty()).unwrap_or_else(|| "train".into()),
            columns: spec.columns,
            num_samples: spec.num_samples.map(|n| n as usize),
        };
        let env = self.env.clone();
        let rows = datasets::load(&spec, &|k: &str| env(k)).map_err(|e| match e {
            datasets::DatasetError::NoColumn { .. } | datasets::DatasetError::TooFew { .. } => {
                Error::Invalid(e.to_string())
            }
            other => Error::Failed(other.to_string()),
        })?;
        Ok(DatasetRows { source: rows.source, columns: rows.columns, rows: rows.rows })
    }
}
