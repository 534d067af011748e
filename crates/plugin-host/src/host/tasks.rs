//! `tasks`: the non-generative tasks' processors, prepared rows and models as resources; the
//! host reads the table's cells, prepares them and times each forward pass.

use energy_star_tasks::{self as tasks, PrepareOptions as HostOptions, TaskInput};
use wasmtime::component::Resource;

use crate::wit::latest::backend::energy_star::plugin::tasks::{
    ForwardOutcome, Host, HostModel, HostPrepared, HostProcessor, ModelInfo, ModelSpec, PrepareOptions, ProcessorSpec,
    Task, TaskColumns,
};
use crate::wit::latest::backend::energy_star::plugin::types::{Device, Error};

use super::datasets::Table;
use super::{TasksView, check_interrupted};

/// A model's processor.
pub struct TaskProcessor(Box<tasks::Processor>);

/// Rows prepared for a model.
pub struct PreparedRows(tasks::Prepared);

/// A loaded task model.
pub struct TaskModel {
    model: Box<tasks::TaskModel>,
    name: String,
}

fn host_task(t: Task) -> tasks::Task {
    match t {
        Task::TextClassification => tasks::Task::TextClassification,
        Task::SentenceSimilarity => tasks::Task::SentenceSimilarity,
        Task::QuestionAnswering => tasks::Task::QuestionAnswering,
        Task::ImageClassification => tasks::Task::ImageClassification,
        Task::ObjectDetection => tasks::Task::ObjectDetection,
    }
}

fn task_error(e: tasks::TaskError) -> Error {
    match e {
        tasks::TaskError::Model { .. } | tasks::TaskError::Compute(_) => Error::Failed(e.to_string()),
        other => Error::Invalid(other.to_string()),
    }
}

/// The cells of `rows` as task inputs.
fn inputs(table: &energy_star_datasets::Table, columns: &TaskColumns, rows: &[u32]) -> Result<Vec<TaskInput>, Error> {
    let col = |name: &str| {
        table.columns.iter().position(|c| c == name).ok_or_else(|| {
            Error::Invalid(format!("the table has no column {name:?}; it holds {}", table.columns.join(", ")))
        })
    };
    let cell = |row: u32, at: usize| {
        table
            .rows
            .get(row as usize)
            .map(|r| &r[at])
            .ok_or_else(|| Error::Invalid(format!("row {row} is past the table's {} rows", table.rows.len())))
    };
    match columns {
        TaskColumns::Text(c) => {
            let at = col(c)?;
            rows.iter().map(|&r| Ok(TaskInput::Text(cell(r, at)?.text()))).collect()
        }
        TaskColumns::Pair((a, b)) => {
            let (ia, ib) = (col(a)?, col(b)?);
            rows.iter().map(|&r| Ok(TaskInput::Pair(cell(r, ia)?.text(), cell(r, ib)?.text()))).collect()
        }
        TaskColumns::Image(c) => {
            let at = col(c)?;
            rows.iter()
                .map(|&r| {
                    let bytes = cell(r, at)?
                        .file_bytes()
                        .map_err(|why| Error::Invalid(format!("row {r}: column {c:?}: {why}")))?;
                    Ok(TaskInput::Image(bytes.into_owned()))
                })
                .collect()
        }
    }
}

impl TasksView<'_> {
    fn granted(&self, model: &str) -> Result<(), Error> {
        check_interrupted()?;
        match self.grant {
            Some(grant) => grant.model(model),
            None => Ok(()),
        }
    }
}

impl Host for TasksView<'_> {
    fn open_processor(&mut self, spec: ProcessorSpec) -> Result<Resource<TaskProcessor>, Error> {
        self.granted(&spec.model)?;
        if let Some(p) = &spec.processor {
            self.granted(p)?;
        }
        let env = self.env.clone();
        let p = tasks::Processor::open(&spec.model, spec.processor.as_deref(), host_task(spec.task), &|k: &str| env(k))
            .map_err(task_error)?;
        self.table.push(TaskProcessor(Box::new(p))).map_err(|e| Error::Failed(format!("processor: {e}")))
    }

    fn open_model(&mut self, spec: ModelSpec) -> Result<Resource<TaskModel>, Error> {
        self.granted(&spec.model)?;
        let device = match &spec.device {
            Device::Cpu => "cpu".to_string(),
            Device::Cuda(ids) => ids.first().map_or_else(|| "cuda".to_string(), |id| format!("cuda:{id}")),
        };
        let host_spec = tasks::TaskModelSpec {
            model: spec.model.clone(),
            task: host_task(spec.task),
            device,
            dtype: super::inference::dtype_name(spec.dtype).to_string(),
            random_weights: spec.random_weights,
        };
        let env = self.env.clone();
        let model = tasks::TaskModel::open(&host_spec, &|k: &str| env(k)).map_err(task_error)?;
        self.table
            .push(TaskModel { model: Box::new(model), name: spec.model })
            .map_err(|e| Error::Failed(format!("model: {e}")))
    }
}

impl HostProcessor for TasksView<'_> {
    fn prepare(
        &mut self,
        p: Resource<TaskProcessor>,
        data: Resource<Table>,
        columns: TaskColumns,
        rows: Vec<u32>,
        options: PrepareOptions,
    ) -> Result<Resource<PreparedRows>, Error> {
        check_interrupted()?;
        let table = &self.table.get(&data).map_err(|e| Error::Invalid(format!("table: {e}")))?.0;
        let inputs = inputs(table, &columns, &rows)?;
        let processor = &self.table.get(&p).map_err(|e| Error::Invalid(format!("processor: {e}")))?.0;
        let options = HostOptions {
            truncation: options.truncation,
            pad_group: options.pad_group.map(|g| g as usize),
            max_length: None,
        };
        let prepared = processor.prepare(&inputs, options, 0).map_err(|e| match e {
            // Name the table's row, not the position in the request.
            tasks::TaskError::Input { row, why } => {
                Error::Invalid(format!("row {}: {why}", rows.get(row).copied().unwrap_or(row as u32)))
            }
            other => task_error(other),
        })?;
        self.table.push(PreparedRows(prepared)).map_err(|e| Error::Failed(format!("prepared: {e}")))
    }

    fn drop(&mut self, p: Resource<TaskProcessor>) -> wasmtime::Result<()> {
        self.table.delete(p)?;
        Ok(())
    }
}

impl HostPrepared for TasksView<'_> {
    fn len(&mut self, p: Resource<PreparedRows>) -> u32 {
        self.table.get(&p).map_or(0, |p| p.0.len() as u32)
    }

    fn tokens(&mut self, p: Resource<PreparedRows>) -> Option<u64> {
        self.table.get(&p).ok().and_then(|p| p.0.tokens())
    }

    fn drop(&mut self, p: Resource<PreparedRows>) -> wasmtime::Result<()> {
        self.table.delete(p)?;
        Ok(())
    }
}

impl HostModel for TasksView<'_> {
    fn describe(&mut self, m: Resource<TaskModel>) -> ModelInfo {
        match self.table.get(&m) {
            Ok(t) => ModelInfo {
                model: t.name.clone(),
                architecture: t.model.architecture.name().to_string(),
                labels: t.model.labels.clone(),
                random_weights: t.model.random_weights,
                notes: vec![
                    format!("device {:?}, dtype {:?}", t.model.device, t.model.dtype),
                    format!("loaded in {:.3} s", t.model.load_s),
                ],
            },
            Err(e) => ModelInfo {
                model: String::new(),
                architecture: String::new(),
                labels: Vec::new(),
                random_weights: None,
                notes: vec![format!("{e}")],
            },
        }
    }

    fn forward(
        &mut self,
        m: Resource<TaskModel>,
        inputs: Resource<PreparedRows>,
        first: u32,
        count: u32,
    ) -> Result<ForwardOutcome, Error> {
        check_interrupted()?;
        let model = &self.table.get(&m).map_err(|e| Error::Invalid(format!("model: {e}")))?.model;
        let prepared = &self.table.get(&inputs).map_err(|e| Error::Invalid(format!("prepared: {e}")))?.0;
        let (first, count) = (first as usize, count as usize);
        let start = self.clock.now_ns();
        model.run(prepared, first..first + count).map_err(task_error)?;
        model.synchronize().map_err(task_error)?;
        let end = self.clock.now_ns();
        Ok(ForwardOutcome { forward_ns: end.saturating_sub(start), rows: count as u32 })
    }

    fn drop(&mut self, m: Resource<TaskModel>) -> wasmtime::Result<()> {
        self.table.delete(m)?;
        Ok(())
    }
}
