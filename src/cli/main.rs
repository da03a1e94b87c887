//! `segments`: import, export and follow segments from the command line
//! (feature `cli`). See `segments --help`; each command lives in a module
//! of its own beside this file.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod args;
mod export;
mod failure;
mod history;
mod import;
mod list;
mod migrate;
mod output;
mod pids;
mod progress;
mod records;
mod store;
mod times;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
use failure::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// Opens the store the options name and runs the command on it.
fn run(cli: Cli) -> Result<(), Failure> {
    let target = cli.target;
    match cli.command {
        Command::Migrate => migrate::run(&target),
        Command::Import(args) => import::run(&target, &args),
        Command::Export(args) => export::run(&target, &args),
        Command::List => list::run(&target),
        Command::History(args) => history::run(&target, &args),
    }
}
