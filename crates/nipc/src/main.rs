//! `nipc`: named pipes and shared memory from the command line.
//!
//! Exit status: 0 success (also when stdout is closed early), 1 runtime error,
//! 2 usage error. Errors go to stderr and name the object they are about.

mod cli;
mod cmd;
mod out;

use std::process::ExitCode;

use clap::Parser;

/// A usage error found after parsing (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns a usage error (exit status 2) from the current function.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::UsageError(format!($($arg)*))))
    };
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(u) = e.downcast_ref::<UsageError>() {
                eprintln!("nipc: usage error: {u}");
                eprintln!("Try 'nipc --help' for more information.");
                return ExitCode::from(2);
            }
            if is_stdout_closed(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("nipc: error: {}", describe(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each cause shown only if the text so far does not
/// already say it (named-ipc errors include their OS error).
pub fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Whether the error is our stdout being closed by the reader (`| head`).
fn is_stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<out::StdoutClosed>())
}
