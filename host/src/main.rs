//! The `energy-star` binary: parse, dispatch one command, print errors, set the exit code.
//! The only place where errors become text on stderr; each command's module has a `command`
//! entry point that returns the exit code.
//!
//! The capabilities are crates (`crates/`): the meter, the engines, datasets, configs, the
//! results folder's records and the plugin host. The commands here are the tools built on them.

use std::process::ExitCode;

use clap::Parser;

/// `print!` that returns the write's error instead of panicking: a closed stdout (`| head`)
/// then ends the command quietly in [`main`], as coreutils and ripgrep do.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `println!` with the write's error returned, as [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod batch;
mod bundle;
mod cli;
mod compare;
mod fetch;
mod generate;
mod label;
mod measure;
mod plugins;
mod predict;
mod rate;
mod report;
mod run;
mod scaffold;
mod summarize;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse_from(cli::with_implied_run(std::env::args_os().collect()));
    let outcome = match cli.command {
        Command::Run(args) => run::command(&cli.plugins, args),
        Command::Summarize(args) => summarize::command(&cli.plugins, args),
        Command::Plugins(args) => plugins::command(&cli.plugins, args),
        Command::Measure(args) => measure::command(&args),
        Command::Generate(args) => generate::command(&args),
        Command::Predict(args) => predict::command(&args),
        Command::Report(args) => report::command(&args),
        Command::Compare(args) => compare::command(&args),
        Command::Bundle(args) => bundle::command(&args),
        Command::Label(args) => label::command(&args),
        Command::Rate(args) => rate::command(&args),
        Command::Batch(args) => batch::command(&args),
        Command::Fetch(args) => fetch::command(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Whether an error is stdout closed by its reader.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// An environment variable as a path, when set and not empty.
fn env_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(std::path::PathBuf::from)
}

/// The results folder a command reads: the one given, else `RESULTS_DIR`, else `./results`.
fn results_target(given: Option<std::path::PathBuf>) -> std::path::PathBuf {
    given.or_else(|| env_path("RESULTS_DIR")).unwrap_or_else(|| std::path::PathBuf::from("results"))
}
