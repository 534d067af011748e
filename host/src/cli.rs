//! Command-line types (clap derive) only; `main.rs` dispatches them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "energy-star",
    version,
    about = "Measures the energy AI models use for inference, with sandboxed WebAssembly plugins",
    after_help = "Without a subcommand, arguments are those of `run`, as the AI Energy Score container takes them:\n  energy-star --config-name text_generation backend.model=ORG/NAME"
)]
pub struct Cli {
    #[command(flatten)]
    pub plugins: PluginOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// Inserts `run` before the first argument that is not a global option, unless it names a
/// subcommand: the container's entrypoint passes the arguments of `run` without it.
pub fn with_implied_run(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut i = 1;
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        if GLOBAL_OPTIONS_WITH_VALUE.contains(&arg) {
            i += 2;
        } else if GLOBAL_FLAGS.contains(&arg)
            || GLOBAL_OPTIONS_WITH_VALUE.iter().any(|o| arg.starts_with(&format!("{o}=")))
        {
            i += 1;
        } else {
            break;
        }
    }
    if let Some(first) = args.get(i).and_then(|a| a.to_str()) {
        let is_known = SUBCOMMANDS.contains(&first) || matches!(first, "-h" | "--help" | "-V" | "--version");
        if !is_known {
            args.insert(i, "run".into());
        }
    }
    args
}

/// Subcommand names; anything else as the first argument means `run`.
pub const SUBCOMMANDS: &[&str] = &[
    "run",
    "summarize",
    "plugins",
    "measure",
    "generate",
    "predict",
    "report",
    "compare",
    "bundle",
    "label",
    "rate",
    "batch",
    "fetch",
    "help",
];

/// Global options that take a value, and global flags: they may come before the subcommand.
pub const GLOBAL_OPTIONS_WITH_VALUE: &[&str] = &["--plugin-dir", "--plugin-memory-mib", "--plugin-time-limit-s"];
pub const GLOBAL_FLAGS: &[&str] = &["--no-compile-cache", "--strict-plugins"];

#[derive(Debug, Args)]
pub struct PluginOptions {
    /// Folder of drop-in plugins (*.wasm); repeatable, earlier folders win. Also
    /// ENERGY_STAR_PLUGIN_PATH (colon-separated) and /opt/energy-star/plugins.
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,

    /// Memory limit of each plugin instance, in MiB.
    #[arg(long, global = true, env = "ENERGY_STAR_PLUGIN_MEMORY_MIB", default_value_t = 1024, value_name = "MIB")]
    pub plugin_memory_mib: u64,

    /// Longest a plugin may compute without calling the host, in seconds.
    #[arg(long, global = true, env = "ENERGY_STAR_PLUGIN_TIME_LIMIT_S", default_value_t = 60.0, value_name = "S")]
    pub plugin_time_limit_s: f64,

    /// Compile plugins afresh instead of using the on-disk compile cache.
    #[arg(long, global = true)]
    pub no_compile_cache: bool,

    /// Fail when any plugin file is broken, instead of skipping it with a warning (for CI).
    #[arg(long, global = true, env = "ENERGY_STAR_STRICT_PLUGINS", value_parser = clap::builder::FalseyValueParser::new())]
    pub strict_plugins: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a benchmark: the backend named by BENCHMARK_BACKEND (default optimum) on a config.
    Run(RunArgs),
    /// Summarize a report's GPU energy into GPU_ENERGY_WH.txt and GPU_ENERGY_SUMMARY.json.
    Summarize(SummarizeArgs),
    /// List the plugins in effect.
    Plugins(PluginsArgs),
    /// Measure the energy of any command per device, like `perf stat` (or idle power with --idle).
    Measure(MeasureArgs),
    /// Generate with a model, to check it before a long run.
    Generate(GenerateArgs),
    /// Run a non-generative task's model on inputs, as transformers' pipelines answer.
    Predict(PredictArgs),
    /// Write report.html (and figures/*.svg) about a results folder.
    Report(ReportArgs),
    /// Do runs differ beyond noise? Means, 95 % intervals and Welch's difference per phase.
    Compare(CompareArgs),
    /// Zip a run's files with a manifest of their SHA-256 hashes, or check one (--verify).
    Bundle(BundleArgs),
    /// Draw AI Energy Score's label (label.svg, label.png) for a run or a table row.
    Label(LabelArgs),
    /// AI Energy Score's 1-5 stars from a results table (CSV).
    Rate(RateArgs),
    /// Run a model list into one master_results.csv, or emit it as Kubernetes Jobs or a Slurm array.
    Batch(BatchArgs),
    /// Fetch a model or dataset from the Hugging Face Hub into the shared cache, ahead of a run.
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// ORG/NAME, or ORG/NAME/FILE.gguf for one GGUF file (and the repo's tokenizer.json);
    /// optionally @REVISION (a branch, tag or commit).
    pub id: String,
    /// A dataset repo (its data files) rather than a model (what the engine reads).
    #[arg(long)]
    pub dataset: bool,
    /// Pin a branch, tag or commit.
    #[arg(long, value_name = "R")]
    pub revision: Option<String>,
    /// A dataset's config (its subfolder); default: the default config.
    #[arg(long, value_name = "NAME", requires = "dataset")]
    pub config: Option<String>,
    /// A dataset's split; default: every split.
    #[arg(long, value_name = "NAME", requires = "dataset")]
    pub split: Option<String>,
    /// Exactly these files of the repo instead (a GGUF file, say); repeatable.
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<String>,
    /// A model's config, tokenizer or image processor without its weights: what a run with
    /// backend.no_weights=true reads.
    #[arg(long, conflicts_with_all = ["dataset", "files"])]
    pub no_weights: bool,
    /// What was fetched, as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results folder (default: RESULTS_DIR, else ./results).
    pub target: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LabelArgs {
    /// A results folder, or a table such as master_results.csv (default: RESULTS_DIR, else ./results).
    pub target: Option<PathBuf>,
    /// The model: the table's row, or the name shown for a results folder.
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
    /// For a results folder: the table whose rows of the same task (and class) rate it.
    #[arg(long, value_name = "CSV")]
    pub cohort: Option<PathBuf>,
    /// For a results folder: its class (A, B, C), which also narrows the cohort.
    #[arg(long, value_name = "CLASS")]
    pub class: Option<String>,
    /// Folder for label.svg and label.png (default: the results folder, or . for a table).
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// Results folder (default: RESULTS_DIR, else ./results).
    #[arg(conflicts_with = "verify")]
    pub target: Option<PathBuf>,
    /// The zip to write (default: energy-star-bundle.zip); never replaces a file.
    #[arg(short, long, value_name = "FILE.zip", conflicts_with = "verify")]
    pub output: Option<PathBuf>,
    /// Check a bundle: every file against the manifest's SHA-256; exit 1 when any changed.
    #[arg(long, value_name = "FILE.zip")]
    pub verify: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Results folders of summarized runs with repeated measures (scenario.iterations ≥ 2), or
    /// a batch's master_results.csv (its rows' folders; FILE.csv:N for row N, from 1); every
    /// later run is compared with the first. Runs joined by commas (DIR1,DIR2,...) are a group
    /// of one config repeated: each run's figure is one sample, so the intervals include what
    /// changes between runs (then every argument is a group).
    #[arg(required = true, num_args = 1.., value_name = "RESULTS_DIR|master_results.csv[:ROW][,...]")]
    pub runs: Vec<PathBuf>,
    /// Also say whether the runs agree within this relative difference, e.g. 5% (decided by
    /// the 95 % interval, not the point).
    #[arg(long, value_name = "PERCENT")]
    pub tolerance: Option<String>,
    /// The energy compared (default: GPU when every run has GPU figures, else CPU).
    #[arg(long, value_enum)]
    pub kind: Option<CompareKind>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write an HTML page with the figures side by side.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareKind {
    Gpu,
    Cpu,
}

#[derive(Debug, Args)]
pub struct RateArgs {
    /// CSV with a model column, an energy column, and optional task and class columns (e.g. a
    /// batch's master_results.csv).
    pub table: PathBuf,
    /// The energy column (default: wh_per_1000_queries, else gpu_wh_per_1000_queries, else gpu_energy_wh, else total).
    #[arg(long, value_name = "COLUMN")]
    pub metric: Option<String>,
    /// Write the rated table here instead of stdout.
    #[arg(long, value_name = "CSV")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    K8s,
    Slurm,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Model list: AI Energy Score's CSV (`Models to Add`, `Class`, `Reasoning State`, ...) or one with a `model` column.
    pub models: PathBuf,
    #[arg(long, default_value = "batch_results", value_name = "DIR")]
    pub output_dir: PathBuf,
    #[arg(long, default_value = "text_generation", value_name = "NAME")]
    pub config_name: String,
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// BENCHMARK_BACKEND for every run (default: the environment's, else optimum).
    #[arg(long, env = "BENCHMARK_BACKEND", value_name = "NAME")]
    pub backend: Option<String>,
    /// scenario.num_samples for every run.
    #[arg(long, value_name = "N")]
    pub num_prompts: Option<u32>,
    /// Only models whose id contains this.
    #[arg(long, value_name = "TEXT")]
    pub model_name: Option<String>,
    /// Only this class (A, B or C).
    #[arg(long, value_name = "CLASS")]
    pub class: Option<String>,
    /// Build master_results.csv from the run folders already in --output-dir, running nothing.
    #[arg(long)]
    pub collect: bool,
    /// Write cluster jobs instead of running: Kubernetes Job manifests or a Slurm array script.
    #[arg(long, value_enum)]
    pub emit: Option<Emit>,
    /// Container image for --emit.
    #[arg(long, default_value = "energy_star:latest")]
    pub image: String,
    /// GPUs per job for --emit.
    #[arg(long, default_value_t = 1)]
    pub gpus: u32,
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// PersistentVolumeClaim mounted at /results (k8s).
    #[arg(long, default_value = "energy-star-results")]
    pub results_claim: String,
    /// PersistentVolumeClaim holding the Hugging Face cache (k8s).
    #[arg(long)]
    pub hf_cache_claim: Option<String>,
    /// Results root as the Slurm nodes see it (default: --output-dir).
    #[arg(long, value_name = "DIR")]
    pub results_root: Option<PathBuf>,
    /// Overrides added to every run, after `--`.
    #[arg(last = true, value_name = "OVERRIDE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model folder or Hugging Face id (from the local cache).
    #[arg(long)]
    pub model: String,
    /// text-classification, sentence-similarity, question-answering, image-classification or
    /// object-detection.
    #[arg(long)]
    pub task: String,
    /// JSONL, one input a line: `text`; `sentence1`, `sentence2`; `question`, `context`; `image`
    /// (a file path, relative to the JSONL's folder).
    #[arg(long, value_name = "FILE.jsonl")]
    pub inputs: PathBuf,
    /// Inputs per forward pass (padded together).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub batch_size: usize,
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda|cuda:N")]
    pub device: String,
    /// float32, bfloat16, float16 or auto.
    #[arg(long, default_value = "auto", value_name = "D")]
    pub dtype: String,
    /// Object detection: keep boxes scoring above this.
    #[arg(long, default_value_t = 0.5, value_name = "S")]
    pub threshold: f32,
    /// Random weights from config.json with this seed (backend.no_weights), instead of the
    /// model's.
    #[arg(long, value_name = "SEED")]
    pub random_weights: Option<u64>,
    /// One JSON line per input (answer and raw outputs); without it, a line of text each.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "prompts_file"])))]
pub struct GenerateArgs {
    /// Model folder or Hugging Face id (from the local cache).
    #[arg(long)]
    pub model: String,
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda|cuda:N")]
    pub device: String,
    /// float32, bfloat16, float16 or auto.
    #[arg(long, default_value = "auto", value_name = "D")]
    pub dtype: String,
    /// Prompts per batch (left-padded together).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub batch_size: usize,
    #[arg(long, value_name = "N")]
    pub max_new_tokens: u32,
    /// Generate exactly --max-new-tokens tokens, EOS or not.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Sample instead of greedy decoding.
    #[arg(long, requires = "seed")]
    pub sample: bool,
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// With --sample: only the K most probable tokens (after the temperature, before top-p).
    #[arg(long, value_name = "K")]
    pub top_k: Option<u32>,
    /// Cut prompts that do not fit the context (keeping their beginning).
    #[arg(long)]
    pub truncate: bool,
    #[arg(long)]
    pub prompt: Option<String>,
    /// JSONL with a `prompt` field per line (with --chat, a line may give `messages` instead:
    /// a list of `{role, content}`).
    #[arg(long, value_name = "FILE")]
    pub prompts_file: Option<PathBuf>,
    /// Apply the model's chat template: each prompt is one user message, with the generation
    /// prompt added, tokenized as transformers' apply_chat_template does.
    #[arg(long)]
    pub chat: bool,
    /// A keyword argument for the chat template (`reasoning_effort=high`, `enable_thinking=true`),
    /// typed as config overrides are; repeatable.
    #[arg(long = "template-kwarg", value_name = "K=V", requires = "chat")]
    pub template_kwargs: Vec<String>,
    /// One JSON line per prompt, in input order: prompt, input_ids, output_ids, text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// GPUs to meter, as NVML indices (default: every GPU NVML sees).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub gpus: Option<Vec<u32>>,

    /// Sampler period for the power timeline, ms.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub interval_ms: u64,

    /// Measure idle power for this many seconds first (alone: only that).
    #[arg(long, value_name = "S")]
    pub idle: Option<f64>,

    /// Folder for measure.json and the timeline.
    #[arg(long, default_value = "energy-star-measure", value_name = "DIR")]
    pub output: PathBuf,

    /// Do not read RAPL (CPU and RAM are then estimated).
    #[arg(long)]
    pub no_rapl: bool,

    /// Replay a recorded GPU trace (CSV: t_s,gpu,energy_mj,power_w) instead of reading NVML.
    #[arg(long, value_name = "CSV")]
    pub replay: Option<PathBuf>,

    /// The command to measure, after `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Folder of YAML configs; built-in configs fill in what it lacks (the container sets
    /// ENERGY_STAR_CONFIG_DIR=/opt/energy-star/configs, a folder to mount).
    #[arg(long, env = "ENERGY_STAR_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Config to run, e.g. text_generation.
    #[arg(long, value_name = "NAME")]
    pub config_name: String,

    /// Results folder (else an explicit hydra.run.dir= override, else RESULTS_DIR, else ./results).
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,

    /// Hydra-style overrides: key=value, +key=value, ++key=value, ~key. Options may come
    /// before, between or after them, as in Hydra's own command line.
    #[arg(value_name = "OVERRIDE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// Results folder or report file (default: RESULTS_DIR, else ./results).
    pub target: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// Print one JSON object per plugin instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Option<PluginsAction>,
}

#[derive(Debug, Subcommand)]
pub enum PluginsAction {
    /// Make a new plugin crate (with the guest SDK and the WIT files) that builds at once.
    New {
        /// Plugin name: lowercase letters, digits, - and _.
        name: String,
        #[arg(long, value_parser = ["backend", "summarizer"])]
        kind: String,
        /// Folder to make it in.
        #[arg(long, default_value = ".", value_name = "DIR")]
        dir: PathBuf,
    },
}
