//! Where lasso keeps its files. Unprivileged users get the XDG base directories; root gets the
//! system locations (`/etc/lasso`, `/var/lib/lasso`, `/var/log/lasso`, `/run/lasso`), so that a
//! sandbox started with sudo does not scatter state into root's home.

use std::path::PathBuf;

/// The directories lasso uses for one user (or for the system, when run as root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// Configuration: user profiles, the audit key ring.
    pub config: PathBuf,
    /// Long-lived state: audit logs.
    pub state: PathBuf,
    /// Bulk data: the image store.
    pub data: PathBuf,
    /// Runtime state that dies with the machine: sandbox records, sockets.
    pub runtime: PathBuf,
    /// Where audit logs are written.
    pub audit_logs: PathBuf,
}

impl Dirs {
    /// The directories for the current process: system paths for euid 0, XDG otherwise.
    pub fn current() -> Dirs {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid == 0 {
            Dirs::system()
        } else {
            Dirs::for_user(&|key| std::env::var_os(key).map(PathBuf::from), euid)
        }
    }

    /// The system-wide locations used when lasso runs as root.
    pub fn system() -> Dirs {
        Dirs {
            config: PathBuf::from("/etc/lasso"),
            state: PathBuf::from("/var/lib/lasso"),
            data: PathBuf::from("/var/lib/lasso"),
            runtime: PathBuf::from("/run/lasso"),
            audit_logs: PathBuf::from("/var/log/lasso/audit"),
        }
    }

    /// XDG base directories, resolved through `env` (injectable for tests). Relative XDG values
    /// are ignored, as the XDG specification requires.
    pub fn for_user(env: &dyn Fn(&str) -> Option<PathBuf>, uid: u32) -> Dirs {
        let home = env("HOME").unwrap_or_else(|| PathBuf::from("/"));
        let xdg = |key: &str, fallback: &str| -> PathBuf {
            env(key)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| home.join(fallback))
        };
        let config = xdg("XDG_CONFIG_HOME", ".config").join("lasso");
        let state = xdg("XDG_STATE_HOME", ".local/state").join("lasso");
        let data = xdg("XDG_DATA_HOME", ".local/share").join("lasso");
        let runtime = env("XDG_RUNTIME_DIR")
            .filter(|p| p.is_absolute())
            .map(|p| p.join("lasso"))
            .unwrap_or_else(|| std::env::temp_dir().join(format!("lasso-{uid}")));
        let audit_logs = state.join("audit");
        Dirs {
            config,
            state,
            data,
            runtime,
            audit_logs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_variables_win_over_home() {
        let env = |k: &str| match k {
            "HOME" => Some(PathBuf::from("/home/u")),
            "XDG_CONFIG_HOME" => Some(PathBuf::from("/cfg")),
            "XDG_STATE_HOME" => Some(PathBuf::from("relative/ignored")),
            "XDG_RUNTIME_DIR" => Some(PathBuf::from("/run/user/1000")),
            _ => None,
        };
        let d = Dirs::for_user(&env, 1000);
        assert_eq!(d.config, PathBuf::from("/cfg/lasso"));
        assert_eq!(d.state, PathBuf::from("/home/u/.local/state/lasso"));
        assert_eq!(
            d.audit_logs,
            PathBuf::from("/home/u/.local/state/lasso/audit")
        );
        assert_eq!(d.data, PathBuf::from("/home/u/.local/share/lasso"));
        assert_eq!(d.runtime, PathBuf::from("/run/user/1000/lasso"));
    }
}
