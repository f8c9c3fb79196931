//! Compilation checks that need no kernel; what the kernel enforces is tested in
//! tests/engine_parts_seccomp.rs.

use super::*;

fn spec(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).unwrap()
}

#[test]
fn syscall_table_is_sorted_and_knows_the_usual_calls() {
    for t in [
        table_x86_64::TABLE,
        table_aarch64::TABLE,
        table_riscv64::TABLE,
    ] {
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0), "table not sorted");
    }
    assert!(syscall_number("read").is_some());
    assert!(syscall_number("no_such_call").is_none());
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(syscall_number("ptrace"), Some(libc::SYS_ptrace));
        assert_eq!(syscall_number("clone3"), Some(libc::SYS_clone3));
        assert_eq!(syscall_number("openat2"), Some(libc::SYS_openat2));
    }
}

#[test]
fn notify_is_refused_with_a_clear_message() {
    let s = spec(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    let err = compile(&s).unwrap_err().to_string();
    assert!(
        err.contains("SCMP_ACT_NOTIFY") && err.contains("not support"),
        "{err}"
    );
}

#[test]
fn unknown_names_are_skipped_and_reported() {
    let s = spec(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid","socketcall_of_other_arch"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let f = compile(&s).unwrap();
    assert_eq!(f.skipped, vec!["socketcall_of_other_arch".to_string()]);
}

#[test]
fn argument_index_past_five_is_refused() {
    let s = spec(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["dup"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let err = compile(&s).unwrap_err().to_string();
    assert!(err.contains("\"dup\"") && err.contains("index 6"), "{err}");
}

#[test]
fn errno_above_4095_is_refused() {
    let s = spec(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}"#);
    assert!(compile(&s).unwrap_err().to_string().contains("70000"));
}

#[test]
fn builtin_policy_compiles_within_the_kernel_limit() {
    let f = default_filters().unwrap();
    assert!(!f.program().is_empty() && f.program().len() <= 4096);
    // Every name in the built-in policy exists on x86_64 (other arches may lack a few).
    #[cfg(target_arch = "x86_64")]
    assert!(
        f.skipped.is_empty(),
        "unknown names in seccomp/default.json: {:?}",
        f.skipped
    );
}
