# Escape attempts run inside a lasso sandbox. Each prints NAME=escaped when the attack worked
# and NAME=blocked:<why> when the kernel stopped it. Arguments come as KEY=VALUE in the
# environment (host paths to aim at). Kept dependency-free: the host's python3 standard library.
import ctypes, errno, os, socket, subprocess, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
ENV = os.environ
BLOCKING = {errno.EPERM, errno.EACCES, errno.ENOSYS, errno.EROFS, errno.ENOENT, errno.ESRCH,
            errno.ENOSPC, errno.EAGAIN, errno.EBADF, errno.ECONNREFUSED, errno.EAFNOSUPPORT,
            errno.EBUSY}


def report(name, escaped, why=""):
    print(f"{name}={'escaped' if escaped else 'blocked:' + why}", flush=True)


def attempt(name, fn):
    try:
        out = fn()
        report(name, out is not False, "returned false" if out is False else "")
    except OSError as e:
        report(name, e.errno not in BLOCKING, errno.errorcode.get(e.errno, str(e.errno)))
    except Exception as e:  # any other failure is a refusal we did not expect: show it
        report(name, False, type(e).__name__ + ":" + str(e).replace("\n", " ")[:60])


def syscall(name, nr, *args):
    """The raw system call; blocked when it fails with EPERM/EACCES/ENOSYS."""
    def go():
        r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
        e = ctypes.get_errno()
        if r >= 0:
            return True
        raise OSError(e, os.strerror(e))
    attempt(name, go)


def cmd(name, *argv):
    """A program; blocked when it exits non-zero."""
    def go():
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
        return p.returncode == 0
    attempt(name, go)


def read(path):
    def go():
        with open(path, "rb") as f:
            return len(f.read(64)) > 0
    return go


def write(path):
    def go():
        with open(path, "ab") as f:
            f.write(b"lasso-escape\n")
        return True
    return go


# --- secrets ---
attempt("read_etc_shadow", read("/etc/shadow"))
attempt("read_etc_gshadow", read("/etc/gshadow"))
attempt("list_root_home", lambda: len(os.listdir("/root")) >= 0)
attempt("list_other_homes", lambda: [h for h in os.listdir("/home") if h != "agent"] != [])
attempt("read_host_ssh_key_by_host_path", read(ENV["HOST_HOME"] + "/.ssh/id_ed25519"))
attempt("read_ssh_key_in_agent_home", read("/home/agent/.ssh/id_ed25519"))
attempt("read_other_users_file", read(ENV["VICTIM_FILE"]))
attempt("read_audit_key", read(ENV["AUDIT_KEY"]))
attempt("read_kcore", read("/proc/kcore"))
attempt("read_proc_keys", read("/proc/keys"))
attempt("read_ssh_host_key", read("/etc/ssh/ssh_host_ed25519_key"))
# --- writes outside the writable set ---
attempt("write_usr", write("/usr/lasso-escape"))
attempt("write_etc_passwd", write("/etc/passwd"))
attempt("write_root_dir", write("/lasso-escape"))
attempt("write_workspace_host_path", write(ENV["HOST_WS"] + "/via-host-path"))
attempt("write_claude_settings", write("/home/agent/.claude/settings.json"))
attempt("add_claude_hook", write("/home/agent/.claude/hooks/evil.sh"))
attempt("replace_claude_hooks_dir", lambda: os.rename("/home/agent/.claude/hooks", "/home/agent/.claude/h2") or True)
attempt("write_proc_sys", write("/proc/sys/kernel/ns_last_pid"))
attempt("write_sysfs", write("/sys/kernel/uevent_helper"))
attempt("sysrq_trigger", write("/proc/sysrq-trigger"))
def effect(name, action, worked):
    """An attack judged by its effect, whatever error the call gave."""
    try:
        action()
    except OSError:
        pass
    report(name, worked(), "no effect")
effect("chown_to_root", lambda: os.chown("/workspace", 0, 0), lambda: os.stat("/workspace").st_uid != os.getuid())
attempt("mknod_block_device", lambda: os.mknod("/tmp/disk", 0o600 | 0o060000, os.makedev(8, 0)) or True)
attempt("reach_lasso_state", lambda: len(os.listdir(ENV["LASSO_RUNTIME"])) >= 0)
attempt("reach_host_run", lambda: os.path.exists("/run/lasso/engine") or False)
# --- privilege ---
cmd("mount_tmpfs", "/usr/bin/mount", "-t", "tmpfs", "none", "/tmp")
cmd("remount_usr_rw", "/usr/bin/mount", "-o", "remount,rw", "/usr")
cmd("unshare_user_ns", "/usr/bin/unshare", "-U", "true")
cmd("unshare_mount_ns", "/usr/bin/unshare", "-m", "true")
cmd("setuid_su_gains_root", "/usr/bin/su", "-c", "true", "root")
effect("setuid_zero", lambda: os.setuid(0), lambda: os.geteuid() == 0)
attempt("chroot", lambda: os.chroot("/tmp") or True)
attempt("sethostname", lambda: socket.sethostname("evil") or True)
SYS = {"ptrace": 101, "process_vm_readv": 310, "keyctl": 250, "add_key": 248, "bpf": 321,
       "perf_event_open": 298, "init_module": 175, "finit_module": 313, "delete_module": 176,
       "kexec_load": 246, "open_by_handle_at": 304, "iopl": 172, "reboot": 169, "syslog": 103,
       "userfaultfd": 323, "swapon": 167, "acct": 163, "settimeofday": 164}
pid = os.fork()
if pid == 0:
    os.execv("/bin/sleep", ["sleep", "5"])
syscall("ptrace_attach", SYS["ptrace"], 16, pid, 0, 0)
buf = ctypes.create_string_buffer(8)
local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
syscall("process_vm_readv", SYS["process_vm_readv"], pid, ctypes.addressof(local), 1, ctypes.addressof(local), 1, 0)
os.kill(pid, 9); os.waitpid(pid, 0)
syscall("keyctl_join_session", SYS["keyctl"], 1, 0)
syscall("add_key", SYS["add_key"], ctypes.addressof(ctypes.create_string_buffer(b"user")), ctypes.addressof(ctypes.create_string_buffer(b"k")), 0, 0, -3)
syscall("bpf_map_create", SYS["bpf"], 0, ctypes.addressof(ctypes.create_string_buffer(72)), 72)
attr = ctypes.create_string_buffer(128)
ctypes.c_uint32.from_buffer(attr, 4).value = 128
syscall("perf_event_open", SYS["perf_event_open"], ctypes.addressof(attr), 0, -1, -1, 0)
syscall("init_module", SYS["init_module"], 0, 0, ctypes.addressof(ctypes.create_string_buffer(b"")))
syscall("finit_module", SYS["finit_module"], 0, ctypes.addressof(ctypes.create_string_buffer(b"")), 0)
syscall("delete_module", SYS["delete_module"], ctypes.addressof(ctypes.create_string_buffer(b"loop")), 0)
syscall("kexec_load", SYS["kexec_load"], 0, 0, 0, 0)
syscall("open_by_handle_at", SYS["open_by_handle_at"], 3, ctypes.addressof(ctypes.create_string_buffer(16)), 0)
syscall("iopl", SYS["iopl"], 3)
syscall("reboot", SYS["reboot"], 0xfee1dead, 672274793, 0xCDEF0123)
syscall("syslog_read_kernel_log", SYS["syslog"], 3, ctypes.addressof(ctypes.create_string_buffer(64)), 64)
syscall("userfaultfd", SYS["userfaultfd"], 0)
syscall("swapon", SYS["swapon"], ctypes.addressof(ctypes.create_string_buffer(b"/tmp/x")), 0)
syscall("settimeofday", SYS["settimeofday"], ctypes.addressof(ctypes.create_string_buffer(16)), 0)
# --- sockets and the terminal ---
attempt("raw_socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1) and True)
attempt("packet_socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) and True)
cmd("change_network_link", "/usr/sbin/ip", "link", "set", "lo", "mtu", "1280")
def abstract():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0" + ENV["HOST_ABSTRACT"])
    return True
attempt("connect_host_abstract_socket", abstract)
def tiocsti():
    import fcntl, termios
    fcntl.ioctl(0, termios.TIOCSTI, b"x")
    return True
attempt("tiocsti_into_terminal", tiocsti if os.isatty(0) else (lambda: False))
attempt("inherited_host_fd", lambda: os.read(int(ENV["LEAKED_FD"]), 64) != b"")
def host_procs():
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    return len(pids) > 20 or os.path.exists(f"/proc/{ENV['HOST_PID']}/cmdline") and b"lasso" in open(f"/proc/{ENV['HOST_PID']}/cmdline", "rb").read()
attempt("see_host_processes", host_procs)
attempt("signal_host_process", lambda: os.kill(int(ENV["HOST_PID"]), 0) or True)
print("probes_done=1", flush=True)
