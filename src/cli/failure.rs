//! How a command fails: a usage error (exit status 2) or any other failure
//! (exit status 1), each with the message the user reads.

use std::fmt;
use std::process::ExitCode;

/// Why a command stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The command line asks for something impossible: exit status 2.
    Usage(String),
    /// The command could not do its work (input, storage, output): exit
    /// status 1. The message names the file and the line when there is one.
    Failed(String),
    /// The reader of the output went away (a closed pipe, as in
    /// `segments export … | head`): stop quietly, exit status 0, as for a
    /// reader that took what it wanted.
    Closed,
}

impl Failure {
    /// A usage error.
    pub(crate) fn usage(message: impl fmt::Display) -> Self {
        Self::Usage(message.to_string())
    }

    /// Any other failure.
    pub(crate) fn failed(message: impl fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }

    /// Prints the message on stderr, as clap prints its own usage errors,
    /// and returns the exit status.
    pub(crate) fn report(self) -> ExitCode {
        match self {
            Self::Usage(message) => {
                eprintln!("error: {message}\n\nFor more information, try '--help'.");
                ExitCode::from(2)
            }
            Self::Failed(message) => {
                eprintln!("error: {message}");
                ExitCode::from(1)
            }
            Self::Closed => ExitCode::SUCCESS,
        }
    }
}

/// A failure of the library: `Invalid` input is the user's to fix on the
/// command line (a segment name, an org id, a key), so it is a usage error;
/// anything else is a failure.
pub(crate) fn library(context: impl fmt::Display, error: segments_engine::Error) -> Failure {
    match error {
        segments_engine::Error::Invalid(e) => Failure::usage(format!("{context}: {e}")),
        other => Failure::failed(format!("{context}: {}", chain(&other))),
    }
}

/// An error and its sources, joined by `: `.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}
