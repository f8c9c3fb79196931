//! The built-in seccomp policy's checked-in program (`engine::seccomp::builtin`) against the
//! policy: a sandbox that installs the checked-in program must get exactly what compiling
//! `seccomp/default.json` gives, and a policy that differs in any rule must be compiled from
//! its rules, never answered by the checked-in program.
//! `LASSO_REGENERATE=1 cargo test --test engine_seccomp_builtin` rewrites the program.

use lasso::engine::seccomp::{self, builtin};
use oci_spec::runtime::{LinuxSeccompAction, LinuxSyscallBuilder};
use std::path::Path;

const POLICY_TEXT: &str = include_str!("../seccomp/default.json");

#[test]
fn checked_in_program_is_what_the_policy_compiles_to() {
    let Some(file) = builtin::generated_file() else {
        // No checked-in program here: every process compiles the policy (tested elsewhere).
        assert!(builtin::checked_in(POLICY_TEXT).is_none());
        return;
    };
    let compiled = seccomp::compile(seccomp::default_policy()).unwrap();
    if std::env::var_os("LASSO_REGENERATE").is_some() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/engine/seccomp")
            .join(file);
        std::fs::write(&path, builtin::render(&compiled, POLICY_TEXT)).unwrap();
        return;
    }
    let checked_in = builtin::checked_in(POLICY_TEXT).unwrap_or_else(|| {
        panic!("src/engine/seccomp/{file} was generated from another seccomp/default.json: run LASSO_REGENERATE=1 cargo test --test engine_seccomp_builtin, then cargo fmt")
    });
    assert!(
        checked_in == compiled,
        "src/engine/seccomp/{file} differs from what seccomp::compile makes of the policy (the compiler or a syscall table changed): run LASSO_REGENERATE=1 cargo test --test engine_seccomp_builtin, then cargo fmt"
    );
    // What a sandbox installs (the baseline, and the planned Spec's copy of the policy).
    assert!(seccomp::default_filters().unwrap() == &compiled);
    assert!(seccomp::compile_or_builtin(seccomp::default_policy()).unwrap() == compiled);
}

#[test]
fn edited_policy_text_does_not_get_the_checked_in_program() {
    let edited = POLICY_TEXT.replacen("\"read\",", "", 1);
    assert_ne!(edited, POLICY_TEXT, "the test's edit must apply");
    assert!(builtin::checked_in(&edited).is_none());
}

#[test]
fn a_spec_whose_rules_differ_from_the_builtin_is_compiled_from_its_rules() {
    let builtin = seccomp::default_policy();
    // One more allowed call, another errno for the default, one rule less: each must change
    // the program a Spec gets.
    let mut more = builtin.clone();
    let mut rules = more.syscalls().clone().unwrap_or_default();
    rules.push(
        LinuxSyscallBuilder::default()
            .names(vec!["kexec_load".to_string()])
            .action(LinuxSeccompAction::ScmpActAllow)
            .build()
            .unwrap(),
    );
    more.set_syscalls(Some(rules));
    let mut errno = builtin.clone();
    errno.set_default_errno_ret(Some(38));
    let mut fewer = builtin.clone();
    let mut rules = fewer.syscalls().clone().unwrap_or_default();
    rules.remove(0);
    fewer.set_syscalls(Some(rules));
    let baseline = seccomp::default_filters().unwrap();
    for changed in [more, errno, fewer] {
        let got = seccomp::compile_or_builtin(&changed).unwrap();
        assert!(got == seccomp::compile(&changed).unwrap());
        assert!(
            &got != baseline,
            "a changed policy got the built-in program"
        );
    }
}
