//! Seccomp as the kernel enforces it. Each check runs in a helper process (this test binary
//! re-run with `LASSO_PARTS_CHILD` and `--exact`) that compiles before installing, installs,
//! then makes only raw system calls and reports with write(2) before _exit(2): nothing after
//! the filter may need a call the filter refuses.

use std::fmt::Write as _;
use std::process::Command;

use lasso::engine::seccomp;
use oci_spec::runtime::LinuxSeccomp;

mod engine_parts_support;
use engine_parts_support::{field, in_child, is_child, CHILD};

/// Result of a raw system call: "ok" or "errno N".
fn outcome(rc: libc::c_long) -> String {
    if rc >= 0 {
        "ok".into()
    } else {
        format!("errno {}", nix::Error::last() as i32)
    }
}

fn errno(e: i32) -> String {
    format!("errno {e}")
}

/// Writes `buf` to stdout and exits at once: after the filter only raw calls are safe.
fn report_and_exit(buf: &str) -> ! {
    // SAFETY: plain write(2) of a live buffer, then _exit(2).
    unsafe {
        libc::write(1, buf.as_ptr().cast(), buf.len());
        libc::_exit(0)
    }
}

fn no_new_privs() {
    // SAFETY: integer-only prctl.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
        0
    );
}

const CUSTOM: &str = r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
  "syscalls": [
    {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
    {"names": ["dup"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77,
     "args": [{"index": 0, "value": 1000, "op": "SCMP_CMP_EQ"}]},
    {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
     "args": [{"index": 0, "value": 448, "valueTwo": 448, "op": "SCMP_CMP_MASKED_EQ"}]},
    {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO"}
  ]
}"#;

#[test]
fn child_custom_policy() {
    if !is_child("child_custom_policy") {
        return;
    }
    let spec: LinuxSeccomp = serde_json::from_str(CUSTOM).unwrap();
    let filters = seccomp::compile(&spec).unwrap();
    let mut out = String::with_capacity(4096);
    out.push('\n');
    no_new_privs();
    seccomp::install(&filters).unwrap();
    // SAFETY (all below): raw system calls with integer arguments.
    unsafe {
        let r = libc::syscall(libc::SYS_getppid);
        let _ = writeln!(out, "GETPPID: {}", outcome(r));
        let r = libc::syscall(libc::SYS_dup, 1000);
        let _ = writeln!(out, "DUP1000: {}", outcome(r));
        let r = libc::syscall(libc::SYS_dup, 0);
        let _ = writeln!(out, "DUP0: {}", outcome(r));
        let r = libc::syscall(libc::SYS_umask, 0o722);
        let _ = writeln!(out, "UMASK722: {}", outcome(r));
        let r = libc::syscall(libc::SYS_umask, 0o022);
        let _ = writeln!(out, "UMASK022: {}", outcome(r));
        let r = libc::syscall(libc::SYS_getpgid, 0);
        let _ = writeln!(out, "GETPGID: {}", outcome(r));
        let r = libc::syscall(libc::SYS_getpid);
        let _ = writeln!(out, "GETPID: {}", outcome(r));
    }
    report_and_exit(&out);
}

#[test]
fn denied_calls_return_the_configured_errno_and_conditions_select_arguments() {
    let out = in_child("child_custom_policy");
    assert_eq!(field(&out, "GETPPID"), errno(42));
    assert_eq!(field(&out, "DUP1000"), errno(77)); // not EBADF: the rule matched argument 0
    assert_eq!(field(&out, "DUP0"), "ok");
    assert_eq!(field(&out, "UMASK722"), errno(13)); // masked match on 0o700
    assert_eq!(field(&out, "UMASK022"), "ok");
    assert_eq!(field(&out, "GETPGID"), errno(libc::EPERM)); // errnoRet defaults to EPERM
    assert_eq!(field(&out, "GETPID"), "ok"); // the default action
}

#[test]
fn child_default_action() {
    if !is_child("child_default_action") {
        return;
    }
    let spec: LinuxSeccomp = serde_json::from_str(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":95,
            "syscalls":[{"names":["write","exit_group","exit"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let filters = seccomp::compile(&spec).unwrap();
    let mut out = String::with_capacity(4096);
    out.push('\n');
    no_new_privs();
    seccomp::install(&filters).unwrap();
    // SAFETY: raw system call.
    let r = unsafe { libc::syscall(libc::SYS_getpid) };
    let _ = writeln!(out, "GETPID: {}", outcome(r));
    report_and_exit(&out);
}

#[test]
fn calls_no_rule_names_get_the_default_action() {
    let out = in_child("child_default_action");
    assert_eq!(field(&out, "GETPID"), errno(95));
}

#[test]
fn child_kill_process() {
    if !is_child("child_kill_process") {
        return;
    }
    let spec: LinuxSeccomp = serde_json::from_str(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"},
                        {"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":5}]}"#,
    )
    .unwrap();
    let filters = seccomp::compile(&spec).unwrap();
    no_new_privs();
    seccomp::install(&filters).unwrap();
    // SAFETY: raw system calls.
    unsafe {
        libc::syscall(libc::SYS_getppid);
        libc::_exit(0)
    }
}

#[test]
fn most_restrictive_action_wins_when_rules_overlap() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_kill_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "child_kill_process")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{:?}", out.status);
}

/// What the built-in agent policy refuses, probed with raw calls that would succeed as root
/// without it (or at least fail with another errno).
#[test]
fn child_builtin_policy() {
    if !is_child("child_builtin_policy") {
        return;
    }
    let filters = seccomp::default_filters().unwrap();
    let mut out = String::with_capacity(8192);
    out.push('\n');
    no_new_privs();
    seccomp::install(filters).unwrap();
    let mut probe = |name: &str, rc: libc::c_long| {
        let _ = writeln!(out, "{name}: {}", outcome(rc));
    };
    // SAFETY (all below): raw system calls; pointers are null or point at live locals, and
    // every call that could succeed is harmless for this short-lived process.
    unsafe {
        use libc::*;
        probe("PTRACE", syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0));
        probe("UNSHARE_USER", syscall(SYS_unshare, CLONE_NEWUSER));
        probe("UNSHARE_NET", syscall(SYS_unshare, CLONE_NEWNET));
        probe(
            "CLONE_NEWUSER",
            syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
        );
        probe("CLONE3", syscall(SYS_clone3, std::ptr::null::<u8>(), 0));
        probe("SETNS", syscall(SYS_setns, 0, 0));
        probe("KEYCTL", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
        probe("ADD_KEY", syscall(SYS_add_key, 0, 0, 0, 0, 0));
        probe("BPF", syscall(SYS_bpf, 0, 0, 0));
        probe("PERF", syscall(SYS_perf_event_open, 0, 0, 0, 0, 0));
        probe("MOUNT", syscall(SYS_mount, 0, 0, 0, 0, 0));
        probe("UMOUNT2", syscall(SYS_umount2, 0, 0));
        probe("PIVOT_ROOT", syscall(SYS_pivot_root, 0, 0));
        probe("INIT_MODULE", syscall(SYS_finit_module, -1, 0, 0));
        probe("KEXEC", syscall(SYS_kexec_file_load, -1, -1, 0, 0, 0));
        probe("REBOOT", syscall(SYS_reboot, 0, 0, 0, 0));
        probe("SWAPON", syscall(SYS_swapon, 0, 0));
        probe("ACCT", syscall(SYS_acct, 0));
        probe("USERFAULTFD", syscall(SYS_userfaultfd, 0));
        probe("OPEN_BY_HANDLE", syscall(SYS_open_by_handle_at, -1, 0, 0));
        probe(
            "PROCESS_VM_READV",
            syscall(SYS_process_vm_readv, getpid(), 0, 0, 0, 0, 0),
        );
        probe("TIOCSTI", syscall(SYS_ioctl, 0, 0x5412, 0));
        probe(
            "TIOCSTI_HIGH_BITS",
            syscall(SYS_ioctl, 0, 0x1_0000_5412u64, 0),
        );
        probe("IOCTL_FIONREAD", {
            let mut n: c_int = 0;
            let mut fds = [0; 2];
            pipe(fds.as_mut_ptr());
            syscall(SYS_ioctl, fds[0], FIONREAD, &mut n)
        });
        probe("AF_PACKET", syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0));
        probe(
            "RAW_IP",
            syscall(SYS_socket, AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP),
        );
        probe(
            "UDP",
            syscall(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0),
        );
        probe("TCP6", syscall(SYS_socket, AF_INET6, SOCK_STREAM, 0));
        probe("NETLINK", syscall(SYS_socket, AF_NETLINK, SOCK_RAW, 0));
        probe("GETPID", syscall(SYS_getpid));
        // fork through plain clone(SIGCHLD) still works.
        let pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if pid == 0 {
            _exit(7);
        }
        let mut status = 0;
        wait4(pid as pid_t, &mut status, 0, std::ptr::null_mut());
        let _ = writeln!(
            out,
            "FORK: {}",
            if WIFEXITED(status) {
                WEXITSTATUS(status)
            } else {
                -1
            }
        );
    }
    // Ordinary programs still work: threads (glibc falls back from clone3 to clone) and
    // spawning a program (posix_spawn, same fallback).
    let t = std::thread::spawn(|| 7).join().unwrap_or(-1);
    let _ = writeln!(out, "THREAD: {t}");
    let st = std::process::Command::new("/bin/sh")
        .args(["-c", "exit 5"])
        .status();
    let _ = writeln!(out, "SPAWN: {:?}", st.ok().and_then(|s| s.code()));
    report_and_exit(&out);
}

#[test]
fn builtin_policy_blocks_what_agents_never_need() {
    let out = in_child("child_builtin_policy");
    let eperm = errno(libc::EPERM);
    for key in [
        "PTRACE",
        "UNSHARE_USER",
        "UNSHARE_NET",
        "CLONE_NEWUSER",
        "SETNS",
        "KEYCTL",
        "ADD_KEY",
        "BPF",
        "PERF",
        "MOUNT",
        "UMOUNT2",
        "PIVOT_ROOT",
        "INIT_MODULE",
        "KEXEC",
        "REBOOT",
        "SWAPON",
        "ACCT",
        "USERFAULTFD",
        "OPEN_BY_HANDLE",
        "PROCESS_VM_READV",
        "TIOCSTI",
        "TIOCSTI_HIGH_BITS",
        "AF_PACKET",
        "RAW_IP",
    ] {
        assert_eq!(field(&out, key), eperm.as_str(), "{key}");
    }
    assert_eq!(field(&out, "CLONE3"), errno(libc::ENOSYS));
    for key in ["IOCTL_FIONREAD", "UDP", "TCP6", "NETLINK", "GETPID"] {
        assert_eq!(field(&out, key), "ok", "{key}");
    }
    assert_eq!(field(&out, "FORK"), "7");
    assert_eq!(field(&out, "THREAD"), "7");
    assert_eq!(field(&out, "SPAWN"), "Some(5)");
}

/// The profile Podman ships (containers-common) is what `lasso-runc` will be handed most often:
/// it must parse and compile within the kernel's 4096-instruction limit, and every name it lists
/// that this architecture lacks must be reported as skipped, not fail the container.
#[test]
fn podman_default_profile_compiles_within_the_kernel_limit() {
    let Ok(text) = std::fs::read_to_string("/usr/share/containers/seccomp.json") else {
        return;
    };
    let spec: LinuxSeccomp = serde_json::from_str(&text).unwrap();
    let f = seccomp::compile(&spec).unwrap();
    assert!(
        !f.program().is_empty() && f.program().len() <= 4096,
        "{}",
        f.program().len()
    );
    #[cfg(target_arch = "x86_64")]
    {
        assert!(
            f.skipped.iter().any(|n| n == "socketcall"),
            "{:?}",
            f.skipped
        );
        assert!(
            !f.skipped.iter().any(|n| n == "read" || n == "openat"),
            "{:?}",
            f.skipped
        );
    }
}
