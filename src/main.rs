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

/// C's `pow`, for the one caller the binary has (the progress bars of `lasso image pull`, through
/// `f64::powf`), in pure Rust: defined here, it leaves the binary no use for `libm.so.6`, so the
/// linker's `--as-needed` drops it and every start maps and relocates one shared library fewer
/// (~0.06 ms). The binary's own definitions come before any library on the link line, so this
/// is the `pow` its code calls; it is not exported to the shared libraries.
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

#[cfg(test)]
mod tests {
    use super::pow;

    #[test]
    fn pow_gives_cs_answers_including_the_special_cases() {
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(pow(10.0, -2.0), 0.01);
        assert_eq!(pow(9.0, 0.5), 3.0);
        assert_eq!(pow(-2.0, 3.0), -8.0);
        assert!(pow(-8.0, 1.0 / 3.0).is_nan());
        assert_eq!(pow(0.0, -1.0), f64::INFINITY);
        assert_eq!(pow(f64::NAN, 0.0), 1.0);
        assert_eq!(pow(1.0, f64::NAN), 1.0);
        assert_eq!(pow(0.5, f64::INFINITY), 0.0);
        // The exponential weights of a progress bar's rate and ETA.
        let w = pow(0.1, 1.0 / 15.0);
        assert!((w - 0.857_695_898_590_894).abs() < 1e-15, "{w}");
    }
}
