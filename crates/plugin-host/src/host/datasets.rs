//! `datasets`: rows from files and the hub cache, of the datasets the plan declared; and
//! tables of typed rows held on the host for the task processors.

use energy_star_datasets as datasets;
use wasmtime::component::Resource;

use crate::wit::latest::backend::energy_star::plugin::datasets::{DatasetRows, DatasetSpec, Host, HostTable};
use crate::wit::latest::backend::energy_star::plugin::types::Error;

use super::{DatasetsView, check_interrupted};

/// A dataset read into the host.
pub struct Table(pub datasets::Table);

fn host_spec(spec: DatasetSpec) -> datasets::DatasetSpec {
    datasets::DatasetSpec {
        name: spec.name,
        config: spec.config.unwrap_or_default(),
        split: spec.split.filter(|s| !s.is_empty()).unwrap_or_else(|| "train".into()),
        columns: spec.columns,
        num_samples: spec.num_samples.map(|n| n as usize),
    }
}

fn dataset_error(e: datasets::DatasetError) -> Error {
    match e {
        datasets::DatasetError::NoColumn { .. } | datasets::DatasetError::TooFew { .. } => {
            Error::Invalid(e.to_string())
        }
        other => Error::Failed(other.to_string()),
    }
}

impl DatasetsView<'_> {
    fn granted(&self, name: &str) -> Result<(), Error> {
        check_interrupted()?;
        match self.grant {
            Some(grant) => grant.dataset(name),
            None => Ok(()),
        }
    }

    fn table_of(&self, t: &Resource<Table>) -> Result<&datasets::Table, Error> {
        self.table.get(t).map(|t| &t.0).map_err(|e| Error::Invalid(format!("table: {e}")))
    }
}

impl Host for DatasetsView<'_> {
    fn load(&mut self, spec: DatasetSpec) -> Result<DatasetRows, Error> {
        self.granted(&spec.name)?;
        let env = self.env.clone();
        let rows = datasets::load(&host_spec(spec), &|k: &str| env(k)).map_err(dataset_error)?;
        Ok(DatasetRows { source: rows.source, columns: rows.columns, rows: rows.rows })
    }

    fn open_table(&mut self, spec: DatasetSpec) -> Result<Resource<Table>, Error> {
        self.granted(&spec.name)?;
        let env = self.env.clone();
        let table = datasets::load_table(&host_spec(spec), &|k: &str| env(k)).map_err(dataset_error)?;
        self.table.push(Table(table)).map_err(|e| Error::Failed(format!("table: {e}")))
    }
}

impl HostTable for DatasetsView<'_> {
    fn len(&mut self, t: Resource<Table>) -> u32 {
        self.table_of(&t).map_or(0, |t| t.rows.len() as u32)
    }

    fn columns(&mut self, t: Resource<Table>) -> Vec<String> {
        self.table_of(&t).map(|t| t.columns.clone()).unwrap_or_default()
    }

    fn non_empty_rows(&mut self, t: Resource<Table>, columns: Vec<String>) -> Result<Vec<u32>, Error> {
        let table = self.table_of(&t)?;
        let at = columns
            .iter()
            .map(|c| {
                table.columns.iter().position(|x| x == c).ok_or_else(|| {
                    Error::Invalid(format!("the table has no column {c:?}; it holds {}", table.columns.join(", ")))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(table
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| at.iter().all(|&i| !r[i].is_empty()))
            .map(|(i, _)| i as u32)
            .collect())
    }

    fn drop(&mut self, t: Resource<Table>) -> wasmtime::Result<()> {
        self.table.delete(t)?;
        Ok(())
    }
}
