//! `process.rlimits`: sets each POSIX resource limit of the calling process with setrlimit(2).
//! It owns nothing else. Allocation-free on success, so init may call it after clone.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error("process.rlimits: {name} has soft limit {soft} above its hard limit {hard}; the soft limit must not exceed the hard one")]
    SoftAboveHard {
        name: &'static str,
        soft: u64,
        hard: u64,
    },
    #[error("process.rlimits: {name} is listed twice; keep one entry per type")]
    Duplicate { name: &'static str },
    #[error("process.rlimits: cannot raise {name} to hard limit {hard}: the runtime's own hard limit is {current_hard} and it lacks CAP_SYS_RESOURCE; lower the hard limit in config.json to at most {current_hard}")]
    AboveHard {
        name: &'static str,
        hard: u64,
        current_hard: u64,
    },
    #[error("process.rlimits: setrlimit({name}, soft {soft}, hard {hard}) failed: {source}")]
    Set {
        name: &'static str,
        soft: u64,
        hard: u64,
        source: std::io::Error,
    },
}

/// The kernel's resource number and the OCI name of a limit type.
pub fn resource(t: PosixRlimitType) -> (libc::__rlimit_resource_t, &'static str) {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => (libc::RLIMIT_CPU, "RLIMIT_CPU"),
        RlimitFsize => (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        RlimitData => (libc::RLIMIT_DATA, "RLIMIT_DATA"),
        RlimitStack => (libc::RLIMIT_STACK, "RLIMIT_STACK"),
        RlimitCore => (libc::RLIMIT_CORE, "RLIMIT_CORE"),
        RlimitRss => (libc::RLIMIT_RSS, "RLIMIT_RSS"),
        RlimitNproc => (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
        RlimitNofile => (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        RlimitMemlock => (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        RlimitAs => (libc::RLIMIT_AS, "RLIMIT_AS"),
        RlimitLocks => (libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        RlimitSigpending => (libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        RlimitMsgqueue => (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        RlimitNice => (libc::RLIMIT_NICE, "RLIMIT_NICE"),
        RlimitRtprio => (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        RlimitRttime => (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

/// Checks a list without applying it (duplicates, soft above hard): callers validate the spec
/// in the runtime before creating anything.
pub fn validate(limits: &[PosixRlimit]) -> Result<(), RlimitError> {
    for (i, l) in limits.iter().enumerate() {
        let (_, name) = resource(l.typ());
        if l.soft() > l.hard() {
            return Err(RlimitError::SoftAboveHard {
                name,
                soft: l.soft(),
                hard: l.hard(),
            });
        }
        if limits[..i].iter().any(|o| o.typ() == l.typ()) {
            return Err(RlimitError::Duplicate { name });
        }
    }
    Ok(())
}

/// Sets every limit of `limits` on the calling process.
pub fn apply(limits: &[PosixRlimit]) -> Result<(), RlimitError> {
    validate(limits)?;
    for l in limits {
        let (res, name) = resource(l.typ());
        let want = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: `want` is a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(res, &want) } == 0 {
            continue;
        }
        let source = std::io::Error::last_os_error();
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `cur` is a valid out-pointer.
        let got = unsafe { libc::getrlimit(res, &mut cur) } == 0;
        if source.raw_os_error() == Some(libc::EPERM) && got && l.hard() > cur.rlim_max {
            return Err(RlimitError::AboveHard {
                name,
                hard: l.hard(),
                current_hard: cur.rlim_max,
            });
        }
        return Err(RlimitError::Set {
            name,
            soft: l.soft(),
            hard: l.hard(),
            source,
        });
    }
    Ok(())
}
