//! The `lasso` binary: parse arguments, set up logging, run, map the result to an exit status.

use lasso::cli::{init_logging, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    lasso::phases::mark("main");
    let cli = Cli::from_env();
    lasso::phases::mark("args");
    if let Err(err) = init_logging(cli.verbose, cli.log_level.as_deref()) {
        eprintln!("{err}");
        return ExitCode::from(err.code);
    }
    lasso::phases::mark("logging");
    match cli.run() {
        Ok(code) => {
            lasso::phases::mark("main-end");
            ExitCode::from(code)
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(err.code)
        }
    }
}
