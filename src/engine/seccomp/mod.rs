//! `linux.seccomp`: compiles an OCI seccomp policy into one classic-BPF program with
//! `seccompiler`, and installs it on the calling thread.
//!
//! `seccompiler` builds filters with a single match action. We build one such filter per
//! distinct action (errno values count as distinct actions) and chain them into one program:
//! each filter's "no match" return is rewritten into a jump to the next filter, and the chain
//! ends in the default action. Filters are chained in the kernel's action precedence (kill
//! process, kill thread, trap, errno, trace, log, allow), so a call matching rules of several
//! actions gets the most restrictive one, as it would with stacked filters; one program means
//! one `seccomp(2)` call and no risk that an earlier filter forbids installing the next.
//! Each action's unconditional calls come first, as ranges of numbers (`ranges`), so the
//! program stays short: the kernel compiles it at install time, in init's critical path.
//!
//! Where this differs from libseccomp (runc, crun):
//! - only the native architecture is filtered: calls through another ABI (i386 `int 0x80` on
//!   x86_64) kill the process whatever `architectures` lists, and x32 calls on x86_64 get
//!   ENOSYS — rules cannot be checked for them, so they are never allowed;
//! - argument comparisons are always on 64 bits (libseccomp also does this for 64-bit ABIs);
//! - rules whose action equals the default action are dropped, as runc does;
//! - `SCMP_ACT_NOTIFY` is refused until the user-notification gate exists.
//!
//! It owns nothing but the program; `install` is allocation-free so init can call it after
//! clone. It must be called last in init, after no_new_privs, or while still holding
//! CAP_SYS_ADMIN (then the policy must allow every call init makes afterwards).

pub mod builtin;
mod policy;
mod ranges;
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
mod table_aarch64;
#[cfg_attr(not(target_arch = "riscv64"), allow(dead_code))]
mod table_riscv64;
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod table_x86_64;

use std::collections::BTreeMap;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use seccompiler::{
    sock_filter, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

pub use policy::{compile_or_builtin, default_filters, default_policy};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("linux.seccomp: {what} is SCMP_ACT_NOTIFY, which lasso-runc does not support yet; use SCMP_ACT_ERRNO or SCMP_ACT_KILL_PROCESS")]
    NotifyUnsupported { what: String },
    #[error("linux.seccomp: {what} has errnoRet {errno}; an errno must be at most 4095")]
    BadErrno { what: String, errno: u32 },
    #[error("linux.seccomp: syscall {name:?}: argument index {index} is out of range (0-5)")]
    BadArgIndex { name: String, index: usize },
    #[error("linux.seccomp.flags: {0} is only meaningful with SCMP_ACT_NOTIFY, which is not supported yet")]
    BadFlag(String),
    #[error("seccomp filters cannot be built for this architecture ({0}); lasso supports x86_64, aarch64 and riscv64")]
    Arch(String),
    #[error("linux.seccomp: the compiled program has {0} instructions, above the kernel's limit of 4096; merge rules or use argument-free rules")]
    TooLarge(usize),
    #[error("linux.seccomp: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("installing the seccomp filter failed with EACCES: set process.noNewPrivileges, or install it while the process still holds CAP_SYS_ADMIN")]
    NeedNoNewPrivs,
    #[error("installing the seccomp filter failed: {0}")]
    Install(nix::Error),
}

/// What `compile` accepts, for `lasso-runc features` (which must be truthful).
pub const SUPPORTED_ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];
pub const SUPPORTED_OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];
pub const SUPPORTED_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
];

/// The one architecture filtered (the native one), as OCI names it.
pub fn supported_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("SCMP_ARCH_X86_64"),
        "aarch64" => Some("SCMP_ARCH_AARCH64"),
        "riscv64" => Some("SCMP_ARCH_RISCV64"),
        _ => None,
    }
}

/// A compiled policy, ready for `install`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    program: Vec<sock_filter>,
    flags: libc::c_ulong,
    /// Syscall names the policy lists that this architecture does not have (skipped, as runc
    /// skips them).
    pub skipped: Vec<String>,
}

impl Filters {
    /// The BPF program (empty when the policy is "allow everything").
    pub fn program(&self) -> &[sock_filter] {
        &self.program
    }
}

/// The number of `name` on the running architecture.
pub fn syscall_number(name: &str) -> Option<i64> {
    let table: &[(&str, i64)] = if cfg!(target_arch = "x86_64") {
        table_x86_64::TABLE
    } else if cfg!(target_arch = "aarch64") {
        table_aarch64::TABLE
    } else if cfg!(target_arch = "riscv64") {
        table_riscv64::TABLE
    } else {
        &[]
    };
    table
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| table[i].1)
}

fn native_arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SeccompError::Arch(std::env::consts::ARCH.into()))
}

fn action(
    a: LinuxSeccompAction,
    errno: Option<u32>,
    what: &str,
) -> Result<SeccompAction, SeccompError> {
    let errno = errno.unwrap_or(libc::EPERM as u32);
    if errno > 4095 {
        return Err(SeccompError::BadErrno {
            what: what.into(),
            errno,
        });
    }
    use LinuxSeccompAction::*;
    Ok(match a {
        ScmpActKill | ScmpActKillThread => SeccompAction::KillThread,
        ScmpActKillProcess => SeccompAction::KillProcess,
        ScmpActTrap => SeccompAction::Trap,
        ScmpActErrno => SeccompAction::Errno(errno),
        ScmpActTrace => SeccompAction::Trace(errno),
        ScmpActLog => SeccompAction::Log,
        ScmpActAllow => SeccompAction::Allow,
        ScmpActNotify => return Err(SeccompError::NotifyUnsupported { what: what.into() }),
    })
}

/// The kernel's precedence of actions (seccomp(2)): lower runs first in the chain.
fn precedence(a: &SeccompAction) -> u8 {
    match a {
        SeccompAction::KillProcess => 0,
        SeccompAction::KillThread => 1,
        SeccompAction::Trap => 2,
        SeccompAction::Errno(_) => 3,
        SeccompAction::Trace(_) => 4,
        SeccompAction::Log => 5,
        SeccompAction::Allow => 6,
    }
}

fn condition(name: &str, arg: &LinuxSeccompArg) -> Result<SeccompCondition, SeccompError> {
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i <= 5)
        .ok_or_else(|| SeccompError::BadArgIndex {
            name: name.into(),
            index: arg.index(),
        })?;
    use LinuxSeccompOperator::*;
    let (op, value) = match arg.op() {
        ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        // OCI: `value` is the mask, `valueTwo` the expected result.
        ScmpCmpMaskedEq => (
            SeccompCmpOp::MaskedEq(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(SeccompCondition::new(
        index,
        SeccompCmpArgLen::Qword,
        op,
        value,
    )?)
}

/// Rules of one action: syscall number -> `None` (unconditional) or the alternatives.
type Group = BTreeMap<i64, Option<Vec<SeccompRule>>>;

/// Compiles an OCI seccomp policy for the running architecture.
pub fn compile(spec: &LinuxSeccomp) -> Result<Filters, SeccompError> {
    let arch = native_arch()?;
    let default = action(
        spec.default_action(),
        spec.default_errno_ret(),
        "defaultAction",
    )?;
    let mut flags: libc::c_ulong = 0;
    for f in spec.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(SeccompError::BadFlag(f.to_string()))
            }
        };
    }
    let mut groups: Vec<(SeccompAction, Group)> = Vec::new();
    let mut skipped = Vec::new();
    for (i, sc) in spec.syscalls().iter().flatten().enumerate() {
        let what = format!("syscalls[{i}] ({})", sc.names().join(","));
        let act = action(sc.action(), sc.errno_ret(), &what)?;
        if act == default {
            continue;
        }
        let pos = match groups.iter().position(|(a, _)| *a == act) {
            Some(p) => p,
            None => {
                groups.push((act.clone(), Group::new()));
                groups.len() - 1
            }
        };
        for name in sc.names() {
            let Some(nr) = syscall_number(name) else {
                if !skipped.contains(name) {
                    skipped.push(name.clone());
                }
                continue;
            };
            let rule = match sc.args().as_ref().filter(|a| !a.is_empty()) {
                None => None,
                Some(args) => Some(SeccompRule::new(
                    args.iter()
                        .map(|a| condition(name, a))
                        .collect::<Result<_, _>>()?,
                )?),
            };
            let entry = groups[pos].1.entry(nr).or_insert(Some(Vec::new()));
            match (entry.as_mut(), rule) {
                (Some(alts), Some(r)) => alts.push(r),
                // An unconditional rule covers every conditional one.
                (_, None) => *entry = None,
                (None, Some(_)) => {}
            }
        }
    }
    groups.sort_by_key(|(a, _)| precedence(a));

    let mut program = x32_guard();
    for (act, group) in groups {
        // Unconditional numbers go into a compact range block (see `ranges`); a number with
        // an unconditional rule has no conditional ones (it covers them), so the two sets are
        // disjoint and their order within the action does not matter.
        let (always, group): (Group, Group) = group.into_iter().partition(|(_, r)| r.is_none());
        if !always.is_empty() {
            let numbers = always.keys().map(|nr| *nr as u32);
            program.extend(ranges::block(numbers, u32::from(act.clone()), arch));
        }
        if group.is_empty() {
            continue;
        }
        let sentinel = if act == SeccompAction::Trace(0xffff) {
            SeccompAction::Trace(0xfffe)
        } else {
            SeccompAction::Trace(0xffff)
        };
        let rules = group
            .into_iter()
            .map(|(nr, r)| (nr, r.unwrap_or_default()))
            .collect();
        let filter = SeccompFilter::new(rules, sentinel.clone(), act, arch)?;
        let mut bpf: Vec<sock_filter> = filter.try_into()?;
        let miss = u32::from(sentinel);
        let len = bpf.len();
        for (idx, ins) in bpf.iter_mut().enumerate() {
            if ins.code == BPF_RET_K && ins.k == miss {
                // Fall through to the first instruction after this filter.
                *ins = sock_filter {
                    code: BPF_JA,
                    jt: 0,
                    jf: 0,
                    k: (len - idx - 1) as u32,
                };
            }
        }
        program.extend(bpf);
    }
    let other = if default == SeccompAction::Allow {
        SeccompAction::Log
    } else {
        SeccompAction::Allow
    };
    let tail: Vec<sock_filter> =
        SeccompFilter::new(BTreeMap::new(), default, other, arch)?.try_into()?;
    program.extend(tail);
    if program.len() > 4096 {
        return Err(SeccompError::TooLarge(program.len()));
    }
    Ok(Filters {
        program,
        flags,
        skipped,
    })
}

const BPF_RET_K: u16 = 0x06;
const BPF_JA: u16 = 0x05;

/// On x86_64, x32 calls carry the same audit arch with bit 30 set in the number: no rule can
/// match them, so they get ENOSYS (as on kernels built without x32) instead of slipping past.
fn x32_guard() -> Vec<sock_filter> {
    if !cfg!(target_arch = "x86_64") {
        return Vec::new();
    }
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let ins = |code: u16, jt: u8, jf: u8, k: u32| sock_filter { code, jt, jf, k };
    vec![
        ins(0x20, 0, 0, 4),                                      // A = arch
        ins(0x15, 0, 3, AUDIT_ARCH_X86_64),                      // not x86_64: skip the guard
        ins(0x20, 0, 0, 0),                                      // A = nr
        ins(0x35, 0, 1, 0x4000_0000),                            // nr >= x32 bit?
        ins(BPF_RET_K, 0, 0, 0x0005_0000 | libc::ENOSYS as u32), // ERRNO(ENOSYS)
    ]
}

#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const sock_filter,
}

/// Installs `filters` on the calling thread (all threads with the TSYNC flag). System calls
/// only: no allocation.
pub fn install(filters: &Filters) -> Result<(), SeccompError> {
    if filters.program.is_empty() {
        return Ok(());
    }
    let prog = SockFprog {
        len: filters.program.len() as libc::c_ushort,
        filter: filters.program.as_ptr(),
    };
    // SAFETY: `prog` points at a live program of `len` instructions; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            filters.flags,
            &prog as *const SockFprog,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // With TSYNC, a positive result is the id of a thread that could not be synchronised.
    let err = if rc > 0 {
        nix::Error::EBUSY
    } else {
        nix::Error::last()
    };
    match err {
        nix::Error::EACCES => Err(SeccompError::NeedNoNewPrivs),
        e => Err(SeccompError::Install(e)),
    }
}

#[cfg(test)]
mod tests;
