//! `results`: files a backend writes beside its report, and its incompleteness.

use energy_star_results::{resolve_inside, write_atomic};

use crate::wit::latest::backend::energy_star::plugin::results::Host;
use crate::wit::latest::backend::energy_star::plugin::types::Error;

use super::ResultsView;

impl Host for ResultsView<'_> {
    fn write_file(&mut self, name: String, contents: Vec<u8>) -> Result<(), Error> {
        let path = resolve_inside(&self.results.dir, &name).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(&path, &contents).map_err(|e| Error::Failed(e.to_string()))?;
        self.results.written.push(name);
        Ok(())
    }

    fn mark_incomplete(&mut self, reason: String) {
        self.results.incomplete.push(reason);
    }
}
