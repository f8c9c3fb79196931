//! `linux.sysctl`: writes kernel parameters under `/proc/sys` from inside the container (init,
//! after the container's own /proc is mounted). It owns nothing; it must never write a
//! parameter that is not namespaced with the container, since that would change the host:
//! `validate` refuses those before anything starts.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("linux.sysctl: {key:?} is not a valid parameter name ({why})")]
    BadName { key: String, why: &'static str },
    #[error("linux.sysctl: {key:?} is not namespaced with the container and would change the host; only kernel.{{msg,sem,shm}}*, fs.mqueue.*, net.* (with a network namespace) and kernel.hostname/domainname (with a UTS namespace) are allowed")]
    NotNamespaced { key: String },
    #[error("linux.sysctl: {key:?} needs the container to have its own {ns} namespace (add it to linux.namespaces)")]
    NeedsNamespace { key: String, ns: &'static str },
    #[error("linux.sysctl: cannot write {value:?} to /proc/sys/{path}: {source}")]
    Write {
        path: String,
        value: String,
        source: std::io::Error,
    },
}

/// The namespaces the container has of its own, for `validate`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Namespaces {
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
}

/// `/proc/sys`-relative path of `key`. Dotted names map dots to slashes; a name that already
/// uses slashes is taken as is (so "net/ipv4/conf/eth0.100/forwarding" can name a VLAN).
pub fn path_of(key: &str) -> Result<PathBuf, SysctlError> {
    let bad = |why| SysctlError::BadName {
        key: key.to_owned(),
        why,
    };
    if key.is_empty() {
        return Err(bad("empty"));
    }
    if key.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let rel = if key.contains('/') {
        PathBuf::from(key)
    } else {
        PathBuf::from(key.replace('.', "/"))
    };
    for c in rel.components() {
        match c {
            Component::Normal(_) => {}
            _ => {
                return Err(bad(
                    "it must be a relative name without \".\" or \"..\" parts",
                ))
            }
        }
    }
    if key.split(['.', '/']).any(str::is_empty) && !key.contains('/') {
        return Err(bad("it has an empty part"));
    }
    Ok(rel)
}

/// Refuses parameters the container does not own (runc's rules).
pub fn validate(sysctl: &HashMap<String, String>, ns: Namespaces) -> Result<(), SysctlError> {
    for key in sysctl.keys() {
        let rel = path_of(key)?;
        let dotted = rel.to_string_lossy().replace('/', ".");
        let need = |ok: bool, name| {
            if ok {
                Ok(())
            } else {
                Err(SysctlError::NeedsNamespace {
                    key: key.clone(),
                    ns: name,
                })
            }
        };
        let ipc = [
            "kernel.msgmax",
            "kernel.msgmnb",
            "kernel.msgmni",
            "kernel.sem",
            "kernel.shmall",
            "kernel.shmmax",
            "kernel.shmmni",
            "kernel.shm_rmid_forced",
        ];
        if ipc.contains(&dotted.as_str()) || dotted.starts_with("fs.mqueue.") {
            need(ns.ipc, "ipc")?;
        } else if dotted.starts_with("net.") {
            need(ns.net, "network")?;
        } else if dotted == "kernel.hostname" || dotted == "kernel.domainname" {
            need(ns.uts, "uts")?;
        } else {
            return Err(SysctlError::NotNamespaced { key: key.clone() });
        }
    }
    Ok(())
}

/// Parameters checked and encoded in the runtime, ready for init to write after clone with
/// system calls only.
#[derive(Clone, Debug, Default)]
pub struct PreparedSysctl {
    /// (path relative to /proc/sys, value)
    entries: Vec<(CString, Vec<u8>)>,
}

/// Checks every name and encodes it; `validate` is the separate namespace check.
pub fn prepare(sysctl: &HashMap<String, String>) -> Result<PreparedSysctl, SysctlError> {
    let mut entries = Vec::with_capacity(sysctl.len());
    for (key, value) in sysctl {
        let rel = path_of(key)?;
        let c = CString::new(rel.as_os_str().as_bytes()).map_err(|_| SysctlError::BadName {
            key: key.clone(),
            why: "contains a NUL byte",
        })?;
        entries.push((c, value.as_bytes().to_vec()));
    }
    Ok(PreparedSysctl { entries })
}

impl PreparedSysctl {
    /// Writes every parameter under `/proc/sys` (the container's, once its /proc is mounted).
    pub fn apply(&self) -> Result<(), SysctlError> {
        self.apply_in(c"/proc/sys")
    }

    /// The same against another tree (tests).
    pub fn apply_under(&self, root: &Path) -> Result<(), SysctlError> {
        let c = CString::new(root.as_os_str().as_bytes()).expect("a path has no NUL byte");
        self.apply_in(&c)
    }

    /// Each file is opened beneath the root with symlinks, magic links and mount crossings
    /// refused, so a crafted name or a planted link cannot reach another file.
    fn apply_in(&self, root: &CStr) -> Result<(), SysctlError> {
        for (rel, value) in &self.entries {
            let err = |source: std::io::Error| SysctlError::Write {
                path: rel.to_string_lossy().into_owned(),
                value: String::from_utf8_lossy(value).into_owned(),
                source,
            };
            let dir = rustix::fs::open(
                root,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| err(e.into()))?;
            let fd = rustix::fs::openat2(
                &dir,
                rel.as_c_str(),
                OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH
                    | ResolveFlags::NO_SYMLINKS
                    | ResolveFlags::NO_MAGICLINKS
                    | ResolveFlags::NO_XDEV,
            )
            .map_err(|e| err(e.into()))?;
            // A sysctl takes its value in one write; a short write is an error, not a retry.
            let n = rustix::io::write(&fd, value).map_err(|e| err(e.into()))?;
            if n != value.len() {
                return Err(err(std::io::Error::from(std::io::ErrorKind::WriteZero)));
            }
        }
        Ok(())
    }
}

/// Checks and writes every parameter (`prepare` then `apply`; allocates).
pub fn apply(sysctl: &HashMap<String, String>) -> Result<(), SysctlError> {
    prepare(sysctl)?.apply()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(k: &str) -> HashMap<String, String> {
        HashMap::from([(k.to_owned(), "1".to_owned())])
    }

    #[test]
    fn names_that_climb_out_of_proc_sys_are_refused() {
        for k in [
            "../../etc/passwd",
            "net/../../x",
            "/etc/shadow",
            "net..ipv4",
            ".net",
            "",
        ] {
            assert!(path_of(k).is_err(), "{k:?} accepted");
        }
        assert_eq!(
            path_of("net.ipv4.ip_forward").unwrap(),
            Path::new("net/ipv4/ip_forward")
        );
        assert_eq!(
            path_of("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            Path::new("net/ipv4/conf/eth0.100/forwarding")
        );
    }

    #[test]
    fn host_wide_parameters_are_refused() {
        let all = Namespaces {
            net: true,
            ipc: true,
            uts: true,
        };
        let err = validate(&one("kernel.core_pattern"), all)
            .unwrap_err()
            .to_string();
        assert!(err.contains("would change the host"), "{err}");
        assert!(validate(&one("vm.overcommit_memory"), all).is_err());
        assert!(validate(&one("net.ipv4.ip_forward"), all).is_ok());
        let none = Namespaces::default();
        let err = validate(&one("net.ipv4.ip_forward"), none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("network namespace"), "{err}");
        assert!(validate(&one("kernel.shmmax"), none).is_err());
        assert!(validate(&one("fs.mqueue.msg_max"), all).is_ok());
    }
}
