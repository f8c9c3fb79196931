//! `lasso-runc kill ID [SIGNAL]`: a signal by number or name (9, KILL, SIGKILL); default TERM.

use super::{Globals, RuncError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Send the signal to every process of the container, not only init.
    #[arg(short, long)]
    pub all: bool,
    pub id: String,
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

/// Parses a signal as runc does: a number, or a name with or without the SIG prefix.
pub fn parse_signal(s: &str) -> Result<i32, RuncError> {
    if let Ok(n) = s.parse::<i32>() {
        if n > 0 && n <= libc::SIGRTMAX() {
            return Ok(n);
        }
        return Err(RuncError::Usage(format!("invalid signal number {n}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| {
            RuncError::Usage(format!(
                "unknown signal {s:?}: use a number or a name like KILL or SIGTERM"
            ))
        })
}

pub fn run(args: Args, g: &Globals) -> Result<u8, RuncError> {
    let sig = parse_signal(&args.signal)?;
    g.runtime.kill(&args.id, sig, args.all)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_number_and_name() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGKILL").unwrap(), 9);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
