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

#[test]
fn advertised_actions_and_operators_all_compile() {
    for a in SUPPORTED_ACTIONS {
        let s = spec(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{{"names":["getpid"],"action":"{a}"}}]}}"#
        ));
        compile(&s).unwrap_or_else(|e| panic!("{a}: {e}"));
    }
    for op in SUPPORTED_OPERATORS {
        let s = spec(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["dup"],"action":"SCMP_ACT_ERRNO","args":[{{"index":0,"value":7,"valueTwo":7,"op":"{op}"}}]}}]}}"#
        ));
        compile(&s).unwrap_or_else(|e| panic!("{op}: {e}"));
    }
    for f in SUPPORTED_FLAGS {
        let s = spec(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","flags":["{f}"]}}"#
        ));
        compile(&s).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn program_starts_with_the_x32_guard() {
    let f = compile(&spec(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#)).unwrap();
    let p = f.program();
    assert_eq!(
        (p[3].code, p[3].k),
        (0x35, 0x4000_0000),
        "x32 guard missing"
    );
    assert_eq!(p[4].k, 0x0005_0000 | libc::ENOSYS as u32);
}

mod chained {
    use super::*;
    use proptest::prelude::*;

    const NAMES: &[&str] = &[
        "read", "write", "dup", "getpid", "ioctl", "socket", "clone", "umask",
    ];
    const ACTIONS: &[&str] = &[
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_LOG",
        "SCMP_ACT_TRACE",
    ];
    const OPS: &[&str] = &[
        "SCMP_CMP_EQ",
        "SCMP_CMP_NE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ];

    fn rule() -> impl Strategy<Value = String> {
        (
            prop::sample::subsequence(NAMES, 1..4),
            0..ACTIONS.len(),
            0u32..200,
            prop::collection::vec((0usize..6, any::<u64>(), any::<u64>(), 0..OPS.len()), 0..3),
        )
            .prop_map(|(names, a, errno, args)| {
                let args: Vec<String> = args
                    .iter()
                    .map(|(i, v, r, o)| {
                        // For MASKED_EQ: value is the mask, valueTwo a result the mask can give.
                        let v2 = v & r;
                        format!(
                            r#"{{"index":{i},"value":{v},"valueTwo":{v2},"op":"{}"}}"#,
                            OPS[*o]
                        )
                    })
                    .collect();
                format!(
                    r#"{{"names":{:?},"action":"{}","errnoRet":{errno},"args":[{}]}}"#,
                    names,
                    ACTIONS[a],
                    args.join(",")
                )
            })
    }

    /// A classic-BPF interpreter for the instructions the compiler emits, over seccomp_data as
    /// 16 little-endian words: nr, arch, ip (2), args (2 each).
    fn run(p: &[sock_filter], data: &[u32; 16]) -> u32 {
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = &p[pc];
            let jump = |c: bool| 1 + if c { i.jt as usize } else { i.jf as usize };
            pc += match i.code {
                0x20 => {
                    a = data[(i.k / 4) as usize];
                    1
                }
                0x54 => {
                    a &= i.k;
                    1
                }
                0x05 => 1 + i.k as usize,
                0x15 => jump(a == i.k),
                0x25 => jump(a > i.k),
                0x35 => jump(a >= i.k),
                0x45 => jump(a & i.k != 0),
                0x06 => return i.k,
                c => panic!("unexpected opcode {c:#x}"),
            };
        }
    }

    /// The documented semantics: among the rules that match, the action of highest kernel
    /// precedence wins (ties: the action that appears first in the spec); else the default.
    fn expected(s: &LinuxSeccomp, name: &str, args: &[u64; 6]) -> u32 {
        let default = action(s.default_action(), s.default_errno_ret(), "").unwrap();
        let mut order: Vec<SeccompAction> = Vec::new();
        let mut best: Option<SeccompAction> = None;
        for r in s.syscalls().iter().flatten() {
            let act = action(r.action(), r.errno_ret(), "").unwrap();
            if act == default {
                continue;
            }
            if !order.contains(&act) {
                order.push(act.clone());
            }
            let hit = r.names().iter().any(|n| n == name)
                && r.args().iter().flatten().all(|c| {
                    let x = args[c.index()];
                    use LinuxSeccompOperator::*;
                    match c.op() {
                        ScmpCmpNe => x != c.value(),
                        ScmpCmpLt => x < c.value(),
                        ScmpCmpLe => x <= c.value(),
                        ScmpCmpEq => x == c.value(),
                        ScmpCmpGe => x >= c.value(),
                        ScmpCmpGt => x > c.value(),
                        ScmpCmpMaskedEq => x & c.value() == c.value_two().unwrap_or(0),
                    }
                });
            if hit {
                let rank = |a: &SeccompAction| (precedence(a), order.iter().position(|o| o == a));
                if best.as_ref().is_none_or(|b| rank(&act) < rank(b)) {
                    best = Some(act);
                }
            }
        }
        u32::from(best.unwrap_or(default))
    }

    fn probe(nr: u32, args: &[u64; 6]) -> [u32; 16] {
        let mut data = [0u32; 16];
        data[0] = nr;
        data[1] = if cfg!(target_arch = "x86_64") {
            0xc000_003e
        } else if cfg!(target_arch = "aarch64") {
            0xc000_00b7
        } else {
            0xc000_00f3
        };
        for (i, a) in args.iter().enumerate() {
            data[4 + 2 * i] = *a as u32;
            data[5 + 2 * i] = (*a >> 32) as u32;
        }
        data
    }

    /// The built-in baseline (its unconditional calls compiled as ranges) decides every call
    /// of the architecture as the policy's rules say: each known call with each argument at
    /// each value the rules compare against (and its neighbours), and every number the table
    /// does not know (the default action).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn builtin_policy_decides_every_call_as_its_rules_say() {
        let s = default_policy();
        let f = default_filters().unwrap();
        let mut pool: Vec<u64> = vec![0, 1, u64::MAX, 0x7fff_ffff, 0x8000_0000];
        for c in s
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.args().clone().unwrap_or_default())
        {
            pool.extend([
                c.value(),
                c.value().wrapping_add(1),
                c.value().wrapping_sub(1),
                c.value_two().unwrap_or(0),
            ]);
        }
        pool.sort_unstable();
        pool.dedup();
        let table = super::super::table_x86_64::TABLE;
        for (name, nr) in table {
            let mut cases = vec![[0u64; 6]];
            for i in 0..6 {
                for v in &pool {
                    let mut a = [0u64; 6];
                    a[i] = *v;
                    cases.push(a);
                }
            }
            for args in cases {
                assert_eq!(
                    run(f.program(), &probe(*nr as u32, &args)),
                    expected(s, name, &args),
                    "{name} ({nr}) {args:x?}"
                );
            }
        }
        let default = u32::from(action(s.default_action(), s.default_errno_ret(), "").unwrap());
        for nr in 0u32..1024 {
            if table.iter().all(|(_, n)| *n as u32 != nr) {
                assert_eq!(
                    run(f.program(), &probe(nr, &[0; 6])),
                    default,
                    "unknown number {nr}"
                );
            }
        }
        // Another architecture's call (same number) is killed, never allowed.
        let mut foreign = probe(0, &[0; 6]);
        foreign[1] = 0x4000_0003; // i386
        assert_eq!(run(f.program(), &foreign), libc::SECCOMP_RET_KILL_PROCESS);
        // The point of the ranges: a program the kernel compiles quickly at install time.
        assert!(
            f.program().len() < 600,
            "{} instructions",
            f.program().len()
        );
    }

    proptest! {
        /// Rewriting each filter's no-match return into a jump must keep every jump inside the
        /// program and leave no placeholder return behind.
        #[test]
        fn every_jump_stays_inside_the_program(rules in prop::collection::vec(rule(), 0..12), def in 0..ACTIONS.len()) {
            let json = format!(r#"{{"defaultAction":"{}","defaultErrnoRet":1,"syscalls":[{}]}}"#, ACTIONS[def], rules.join(","));
            let f = compile(&spec(&json)).unwrap();
            let p = f.program();
            let n = p.len();
            prop_assert!(n > 0 && n <= 4096);
            prop_assert_eq!(p[n - 1].code, 0x06, "the program must end in a return");
            for (i, ins) in p.iter().enumerate() {
                prop_assert!(!(ins.code == 0x06 && ins.k == u32::from(SeccompAction::Trace(0xffff))), "placeholder left at {}", i);
                if ins.code & 0x07 == 0x05 {
                    if ins.code == 0x05 {
                        prop_assert!(i + 1 + (ins.k as usize) < n, "JA out of range at {}", i);
                    } else {
                        prop_assert!(i + 1 + (ins.jt as usize) < n && i + 1 + (ins.jf as usize) < n, "jump out of range at {}", i);
                    }
                }
            }
        }

        /// The chained program decides every probe as the OCI rules say.
        #[test]
        fn chained_program_agrees_with_the_rules(
            rules in prop::collection::vec(rule(), 0..10),
            def in 0..ACTIONS.len(),
            probes in prop::collection::vec((0..NAMES.len(), prop::collection::vec(any::<u64>(), 6), any::<u64>()), 1..40),
        ) {
            let json = format!(r#"{{"defaultAction":"{}","defaultErrnoRet":1,"syscalls":[{}]}}"#, ACTIONS[def], rules.join(","));
            let s = spec(&json);
            let f = compile(&s).unwrap();
            // Probe arguments drawn from the rules' own values (and neighbours), where the
            // comparisons change their answer, mixed with random ones.
            let mut pool: Vec<u64> = s.syscalls().iter().flatten().flat_map(|r| r.args().clone().unwrap_or_default()).flat_map(|c| [c.value(), c.value().wrapping_add(1), c.value().wrapping_sub(1), c.value_two().unwrap_or(0)]).collect();
            pool.push(0);
            for (name, random, pick) in probes {
                let name = NAMES[name];
                let mut args = [0u64; 6];
                for (i, a) in args.iter_mut().enumerate() {
                    let choose = (pick >> (i * 8)) as usize;
                    *a = if choose % 3 == 0 { random[i] } else { pool[choose % pool.len()] };
                }
                let nr = syscall_number(name).unwrap() as u32;
                let mut data = [0u32; 16];
                data[0] = nr;
                data[1] = if cfg!(target_arch = "x86_64") { 0xc000_003e } else if cfg!(target_arch = "aarch64") { 0xc000_00b7 } else { 0xc000_00f3 };
                for (i, a) in args.iter().enumerate() {
                    data[4 + 2 * i] = *a as u32;
                    data[5 + 2 * i] = (*a >> 32) as u32;
                }
                prop_assert_eq!(run(f.program(), &data), expected(&s, name, &args), "{} {:x?}\n{}", name, args, json);
            }
        }
    }
}
