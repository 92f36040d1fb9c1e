//! The `gazette` binary: parse the command line, run it, exit with its code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match gazette::cli::Cli::try_parse() {
        Ok(cli) => gazette::cli::run(cli),
        // --help and --version are not errors; anything else clap refuses is a usage
        // error, with its own exit code (clap would exit 2, which means "finished, but
        // part of the input failed" here).
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(gazette::cli::EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
