//! The escape corpus: real sandboxes started by the `lasso` binary (as root and as the
//! unprivileged user nobody), each attack run inside by `probes.py` and judged by what the
//! kernel let it do. Positive controls (writing the workspace, /tmp, the agent's credentials)
//! make sure a broken probe cannot pass by failing for an unrelated reason.

mod sandbox_support;

use sandbox_support::*;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::process::CommandExt;

const LEAKED_FD: i32 = 9;

/// Every attack the corpus makes; each must come back `blocked`.
const ATTACKS: &[&str] = &[
    "read_etc_shadow",
    "read_etc_gshadow",
    "list_root_home",
    "list_other_homes",
    "read_host_ssh_key_by_host_path",
    "read_ssh_key_in_agent_home",
    "read_other_users_file",
    "read_audit_key",
    "read_kcore",
    "read_proc_keys",
    "read_ssh_host_key",
    "write_usr",
    "write_etc_passwd",
    "write_root_dir",
    "write_workspace_host_path",
    "write_claude_settings",
    "add_claude_hook",
    "replace_claude_hooks_dir",
    "write_proc_sys",
    "write_sysfs",
    "sysrq_trigger",
    "chown_to_root",
    "mknod_block_device",
    "reach_lasso_state",
    "reach_host_run",
    "mount_tmpfs",
    "remount_usr_rw",
    "unshare_user_ns",
    "unshare_mount_ns",
    "setuid_su_gains_root",
    "setuid_zero",
    "chroot",
    "sethostname",
    "ptrace_attach",
    "process_vm_readv",
    "keyctl_join_session",
    "add_key",
    "bpf_map_create",
    "perf_event_open",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "open_by_handle_at",
    "iopl",
    "reboot",
    "syslog_read_kernel_log",
    "userfaultfd",
    "swapon",
    "settimeofday",
    "raw_socket",
    "packet_socket",
    "change_network_link",
    "connect_host_abstract_socket",
    "inherited_host_fd",
    "see_host_processes",
    "signal_host_process",
];

/// Runs the corpus in a sandbox of `who`; returns the probes' report.
fn corpus(who: As) {
    let w = world(who);
    // The audit key ring of this lasso user (root: /etc/lasso; a user: ~/.config/lasso).
    let key_dir = match who {
        As::Root => std::path::PathBuf::from("/etc/lasso"),
        As::Nobody => w.home.join(".config/lasso"),
    };
    let made_key_dir = !key_dir.exists();
    std::fs::create_dir_all(&key_dir).unwrap();
    let key = key_dir.join(format!("lasso-test-audit-{}.key", std::process::id()));
    std::fs::write(&key, "audit key\n").unwrap();
    struct Remove(std::path::PathBuf, std::path::PathBuf, bool);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
            if self.2 {
                let _ = std::fs::remove_dir(&self.1);
            }
        }
    }
    let _key_guard = Remove(key.clone(), key_dir.clone(), made_key_dir);

    let abstract_name = format!("lasso-test-{}-{who:?}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name).unwrap();
    let _host_listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let secret = std::fs::File::open(&key).unwrap();
    let secret_fd = secret.as_raw_fd();

    let host_pid = std::process::id().to_string();
    let envs = [
        format!("HOST_HOME={}", w.home.display()),
        format!("VICTIM_FILE={}", w.victim.join("secret").display()),
        format!("AUDIT_KEY={}", key.display()),
        format!("HOST_WS={}", w.ws.display()),
        format!("LASSO_RUNTIME={}", w.runtime().display()),
        format!("HOST_ABSTRACT={abstract_name}"),
        format!("LEAKED_FD={LEAKED_FD}"),
        format!("HOST_PID={host_pid}"),
    ];
    // As root the agent maps to the workspace owner, a test uid without a home: its settings
    // have nowhere to come from, so root's corpus runs the shell agent (the Claude Code
    // settings attacks are then aimed at files that do not exist; the unprivileged corpus
    // covers them with real settings).
    let agent = match who {
        As::Root => "shell",
        As::Nobody => "claude-code",
    };
    let mut args: Vec<&str> = vec!["run", "--agent", agent];
    for e in &envs {
        args.extend(["--env", e]);
    }
    args.extend([
        "--",
        "/bin/sh",
        "-c",
        "/usr/bin/python3 /workspace/probes.py; echo ok > /workspace/made-inside && echo write_ws=ok; \
         echo x > /tmp/x && echo write_tmp=ok; \
         if [ -d /home/agent/.claude ]; then echo '{}' > /home/agent/.claude/.credentials.json && echo write_credentials=ok; fi",
    ]);
    let mut cmd = w.lasso(&args);
    // A host descriptor left open without close-on-exec, as a careless caller would.
    // SAFETY: dup2 between the fork and exec of the child; only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(secret_fd, LEAKED_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run(&mut cmd);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let r = report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r.get("probes_done").map(String::as_str), Some("1"), "{all}");
    let mut escaped = Vec::new();
    for a in ATTACKS {
        match r.get(*a) {
            Some(v) if v.starts_with("blocked") => {}
            other => escaped.push(format!("{a}: {other:?}")),
        }
    }
    assert!(escaped.is_empty(), "escapes: {escaped:#?}\n{all}");
    assert!(ATTACKS.len() >= 40);
    let mut controls = vec!["write_ws", "write_tmp"];
    if who == As::Nobody {
        controls.push("write_credentials");
    }
    for ok in controls {
        assert_eq!(r.get(ok).map(String::as_str), Some("ok"), "{ok}\n{all}");
    }
    // What the host sees afterwards: settings intact, workspace file owned by the user.
    let settings = std::fs::read_to_string(w.home.join(".claude/settings.json")).unwrap();
    assert_eq!(settings, "{}");
    assert!(!w.home.join(".claude/hooks/evil.sh").exists());
    assert!(w.home.join(".claude/hooks").is_dir());
    use std::os::unix::fs::MetadataExt;
    let owner = match who {
        As::Root => OWNER,
        As::Nobody => NOBODY,
    };
    assert_eq!(
        std::fs::metadata(w.ws.join("made-inside")).unwrap().uid(),
        owner
    );
    assert_eq!(std::fs::metadata(&w.ws).unwrap().uid(), owner);
    assert!(w.leftovers().is_empty(), "sandbox dir left behind");
}

/// The leak the corpus relies on is real: without lasso, a child does read the descriptor.
#[test]
fn leaked_descriptor_witness_reads_the_secret_outside_a_sandbox() {
    let f = std::fs::File::open("/etc/hostname").unwrap();
    let fd = f.as_raw_fd();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "head -c1 <&9 >/dev/null"]);
    // SAFETY: as in `corpus`.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, LEAKED_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert!(cmd.status().unwrap().success());
}

#[test]
fn escape_corpus_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root (the unprivileged corpus runs either way)");
        return;
    }
    corpus(As::Root);
}

#[test]
fn escape_corpus_as_unprivileged_user() {
    if !is_root() {
        eprintln!("skipped: needs root to become nobody through setpriv");
        return;
    }
    corpus(As::Nobody);
}

/// TIOCSTI pushes bytes into the terminal's input queue: typed commands for the user's shell
/// once the sandbox exits. lasso's stdin here is a real terminal (`script`).
#[test]
fn tiocsti_cannot_type_into_the_users_terminal() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let w = world(As::Root);
    let inner = format!(
        "{LASSO} run -- /usr/bin/python3 -c 'import fcntl,termios,os,sys; print(\"tty=%d\" % os.isatty(0)); fcntl.ioctl(0, termios.TIOCSTI, b\"x\"); print(\"tiocsti=escaped\")'"
    );
    let out = run(std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .current_dir(&w.ws)
        .env("HOME", &w.home));
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(s.contains("tty=1"), "no terminal inside: {}", text(&out));
    assert!(!s.contains("tiocsti=escaped"), "{}", text(&out));
    assert!(s.contains("Operation not permitted"), "{}", text(&out));
}

fn limited(args: &[&str], script: &str) -> (std::process::Output, String) {
    let w = world(As::Root);
    let mut all: Vec<&str> = vec!["run"];
    all.extend(args);
    all.extend(["--", "/usr/bin/python3", "-c", script]);
    let out = run(&mut w.lasso(&all));
    let t = text(&out);
    assert!(w.leftovers().is_empty(), "left behind\n{t}");
    (out, t)
}

#[test]
fn fork_bomb_stops_at_the_pids_limit() {
    if !is_root() {
        eprintln!("skipped: cgroup limits need root here");
        return;
    }
    let (out, t) = limited(
        &["--pids", "32"],
        "import os,time\nn=0\ntry:\n  for i in range(300):\n    if os.fork()==0:\n      time.sleep(30); os._exit(0)\n    n+=1\nexcept OSError as e: print('fork_error', e.errno)\nprint('forked', n)\nos.killpg(0, 9) if False else None\n",
    );
    let s = String::from_utf8_lossy(&out.stdout);
    let n: u32 = s
        .lines()
        .find_map(|l| l.strip_prefix("forked "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{t}"));
    assert!(n < 32, "forked {n} processes under pids=32\n{t}");
    assert!(s.contains("fork_error 11"), "{t}");
}

#[test]
fn memory_bomb_is_oom_killed_inside() {
    if !is_root() {
        eprintln!("skipped: cgroup limits need root here");
        return;
    }
    let (out, t) = limited(
        &["--memory-mib", "64"],
        "b=[]\nfor i in range(64):\n  b.append(bytearray(16<<20))\nprint('allocated 1 GiB')\n",
    );
    assert_eq!(out.status.code(), Some(128 + 9), "{t}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("allocated"),
        "{t}"
    );
}

#[test]
fn filling_tmp_stops_at_its_size() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (out, t) = limited(
        &["--tmp-mib", "8"],
        "import errno\ntry:\n  f=open('/tmp/fill','wb')\n  for i in range(64): f.write(b'x'*(1<<20)); f.flush()\n  print('filled 64 MiB')\nexcept OSError as e: print('fill_error', e.errno)\n",
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("fill_error 28"), "ENOSPC expected\n{t}");
}
