//! `process.capabilities`: the five capability sets of the container's first process.
//!
//! The spec is turned into bit masks first (`CapSets::from_spec`, may allocate, run it in the
//! runtime before clone); `CapSets::apply` then only makes system calls, so init can call it
//! after clone in a process that was multithreaded. It owns the calling thread's capability
//! state and touches nothing else.
//!
//! Order in init (as root in the container's user namespace):
//! 1. `prepare_for_setuid()` — PR_SET_KEEPCAPS, so the permitted set survives a switch to a
//!    non-zero uid;
//! 2. `setgroups`, `setgid`, `setuid` (L's code);
//! 3. `apply(&caps)` — raises effective from the kept permitted set to regain CAP_SETPCAP, drops
//!    the bounding set, sets inheritable/permitted/effective with capset(2), then ambient last
//!    (an ambient capability must already be permitted and inheritable);
//! 4. no_new_privs and seccomp, then execve.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

/// Which of the five sets an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Set {
    Bounding,
    Effective,
    Permitted,
    Inheritable,
    Ambient,
}

impl std::fmt::Display for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Set::Bounding => "bounding",
            Set::Effective => "effective",
            Set::Permitted => "permitted",
            Set::Inheritable => "inheritable",
            Set::Ambient => "ambient",
        })
    }
}

/// Names of the capabilities in `mask`, for messages.
pub struct Names(pub u64);

impl std::fmt::Display for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for bit in 0..64u8 {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                match caps::all().into_iter().find(|c| c.index() == bit) {
                    Some(c) => write!(f, "{c}")?,
                    None => write!(f, "capability {bit}")?,
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("process.capabilities names {0}, which this runtime does not know")]
    Unknown(String),
    #[error("cannot read /proc/sys/kernel/cap_last_cap: {0}")]
    LastCap(std::io::Error),
    #[error("process.capabilities.{set} asks for {} which the runtime does not hold (the host's bounding set lacks them); remove them from config.json", Names(*.missing))]
    NotHeld { set: Set, missing: u64 },
    #[error("process.capabilities.{set} has {} which {} not in {within}; the kernel requires {set} to be a subset of {within}", Names(*.extra), if extra.count_ones() == 1 { "is" } else { "are" })]
    NotSubset { set: Set, within: Set, extra: u64 },
    #[error("{op} failed: {source}")]
    Syscall {
        op: &'static str,
        source: nix::Error,
    },
}

/// The five sets as masks, ready to apply. `bounding: None` leaves the bounding set alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: Option<u64>,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    /// Highest capability number the running kernel knows.
    pub last_cap: u8,
}

fn bit(c: &Capability) -> Result<u64, CapsError> {
    // oci-spec prints "CHOWN"; the kernel numbering lives in the caps crate's "CAP_CHOWN".
    let name = format!("CAP_{c}");
    let cap: caps::Capability = name.parse().map_err(|_| CapsError::Unknown(name))?;
    Ok(1u64 << cap.index())
}

fn mask(set: &Option<Capabilities>, last_cap: u8) -> Result<u64, CapsError> {
    let mut m = 0;
    for c in set.iter().flatten() {
        m |= bit(c)?;
    }
    // Capabilities newer than the running kernel cannot exist here; runc ignores them too.
    Ok(m & kernel_mask(last_cap))
}

fn kernel_mask(last_cap: u8) -> u64 {
    if last_cap >= 63 {
        u64::MAX
    } else {
        (1u64 << (last_cap + 1)) - 1
    }
}

/// The running kernel's highest capability number (read once per process).
pub fn last_cap() -> Result<u8, CapsError> {
    static LAST: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    if let Some(l) = LAST.get() {
        return Ok(*l);
    }
    let l = read_last_cap()?;
    Ok(*LAST.get_or_init(|| l))
}

fn read_last_cap() -> Result<u8, CapsError> {
    let s = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").map_err(CapsError::LastCap)?;
    s.trim().parse().map_err(|_| {
        CapsError::LastCap(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected content {s:?}"),
        ))
    })
}

impl CapSets {
    pub fn from_spec(caps: &LinuxCapabilities) -> Result<CapSets, CapsError> {
        let last = last_cap()?;
        let sets = CapSets {
            bounding: match caps.bounding() {
                Some(_) => Some(mask(caps.bounding(), last)?),
                None => None,
            },
            effective: mask(caps.effective(), last)?,
            permitted: mask(caps.permitted(), last)?,
            inheritable: mask(caps.inheritable(), last)?,
            ambient: mask(caps.ambient(), last)?,
            last_cap: last,
        };
        let subset = |set, m: u64, within, w: u64| {
            if m & !w != 0 {
                Err(CapsError::NotSubset {
                    set,
                    within,
                    extra: m & !w,
                })
            } else {
                Ok(())
            }
        };
        subset(
            Set::Effective,
            sets.effective,
            Set::Permitted,
            sets.permitted,
        )?;
        subset(Set::Ambient, sets.ambient, Set::Permitted, sets.permitted)?;
        subset(
            Set::Ambient,
            sets.ambient,
            Set::Inheritable,
            sets.inheritable,
        )?;
        Ok(sets)
    }

    /// Applies the sets to the calling thread. System calls only: no allocation on success.
    pub fn apply(&self) -> Result<(), CapsError> {
        let (_, cur_prm, cur_inh) = capget()?;
        if self.permitted & !cur_prm != 0 {
            return Err(CapsError::NotHeld {
                set: Set::Permitted,
                missing: self.permitted & !cur_prm,
            });
        }
        // After setuid with KEEPCAPS the effective set is empty: raise it from permitted so
        // CAP_SETPCAP is in force for the bounding drops and the inheritable change.
        capset(cur_prm, cur_prm, cur_inh)?;
        if let Some(keep) = self.bounding {
            for cap in 0..=self.last_cap {
                if keep & (1 << cap) != 0 {
                    continue;
                }
                nix_prctl(libc::PR_CAPBSET_DROP, cap.into(), "prctl(PR_CAPBSET_DROP)")?;
            }
        }
        capset(self.effective, self.permitted, self.inheritable)?;
        nix_prctl5(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            "prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
        )?;
        for cap in 0..=self.last_cap {
            if self.ambient & (1 << cap) != 0 {
                nix_prctl5(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap.into(),
                    "prctl(PR_CAP_AMBIENT_RAISE)",
                )?;
            }
        }
        Ok(())
    }
}

/// Converts and applies `caps` in one step (allocates: see the module note).
pub fn apply(caps: &LinuxCapabilities) -> Result<(), CapsError> {
    CapSets::from_spec(caps)?.apply()
}

/// PR_SET_KEEPCAPS: keep the permitted set across setuid from 0 to non-zero. Call before
/// setuid; execve clears the flag again.
pub fn prepare_for_setuid() -> Result<(), CapsError> {
    nix_prctl(libc::PR_SET_KEEPCAPS, 1, "prctl(PR_SET_KEEPCAPS)")
}

fn nix_prctl(op: libc::c_int, arg: libc::c_ulong, name: &'static str) -> Result<(), CapsError> {
    // SAFETY: these prctl operations take integer arguments only.
    let rc = unsafe { libc::prctl(op, arg, 0, 0, 0) };
    if rc != 0 {
        return Err(CapsError::Syscall {
            op: name,
            source: nix::Error::last(),
        });
    }
    Ok(())
}

fn nix_prctl5(
    op: libc::c_int,
    a: libc::c_ulong,
    b: libc::c_ulong,
    name: &'static str,
) -> Result<(), CapsError> {
    // SAFETY: PR_CAP_AMBIENT takes integer arguments only.
    let rc = unsafe { libc::prctl(op, a, b, 0, 0) };
    if rc != 0 {
        return Err(CapsError::Syscall {
            op: name,
            source: nix::Error::last(),
        });
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// (effective, permitted, inheritable) of the calling thread.
fn capget() -> Result<(u64, u64, u64), CapsError> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: header and a two-element data array as capget(2) requires for version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, d.as_mut_ptr()) };
    if rc != 0 {
        return Err(CapsError::Syscall {
            op: "capget",
            source: nix::Error::last(),
        });
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(d[0].effective, d[1].effective),
        join(d[0].permitted, d[1].permitted),
        join(d[0].inheritable, d[1].inheritable),
    ))
}

fn capset(eff: u64, prm: u64, inh: u64) -> Result<(), CapsError> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let d = [
        CapData {
            effective: eff as u32,
            permitted: prm as u32,
            inheritable: inh as u32,
        },
        CapData {
            effective: (eff >> 32) as u32,
            permitted: (prm >> 32) as u32,
            inheritable: (inh >> 32) as u32,
        },
    ];
    // SAFETY: header and a two-element data array as capset(2) requires for version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, d.as_ptr()) };
    if rc != 0 {
        return Err(CapsError::Syscall {
            op: "capset",
            source: nix::Error::last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_oci_capability_maps_to_a_kernel_number() {
        // Round trip through serde names: all of oci-spec's capabilities must be known.
        for c in caps::all() {
            let json = format!("\"{c}\"");
            let oci: Capability = serde_json::from_str(&json).unwrap();
            assert_eq!(bit(&oci).unwrap(), 1 << c.index(), "{c}");
        }
    }

    #[test]
    fn effective_outside_permitted_is_refused_with_names() {
        let mut caps = LinuxCapabilities::default();
        caps.set_permitted(Some(HashSet::from([Capability::Chown])));
        caps.set_effective(Some(HashSet::from([Capability::Chown, Capability::Kill])));
        let err = CapSets::from_spec(&caps).unwrap_err().to_string();
        assert!(
            err.contains("CAP_KILL") && err.contains("effective"),
            "{err}"
        );
    }
}
