//! The `gazette` binary: parse the command line, run it, exit with its code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    gazette::cli::run(gazette::cli::Cli::parse())
}
