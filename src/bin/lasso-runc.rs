//! The `lasso-runc` binary: a runc-compatible OCI runtime. Parses arguments and hands over to
//! `lasso::runc`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = lasso::runc::Cli::parse();
    ExitCode::from(cli.run())
}
