//! Idmapped bind mounts (OCI `mounts[].uidMappings/gidMappings`, options `idmap`/`ridmap`).
//! The kernel lets only a holder of CAP_SYS_ADMIN over the filesystem's user namespace (the
//! host's, for host directories) attach an ID mapping to a mount, and only to a detached one.
//! Init already lives in the container's user namespace, so the runtime does this part on the
//! host before clone3: `open_tree(OPEN_TREE_CLONE)` of the source, a throwaway user namespace
//! carrying the mount's mapping, `mount_setattr(MOUNT_ATTR_IDMAP)`. The detached trees are kept
//! in this process's memory, which init inherits as a fork, and init attaches each one with
//! `move_mount` onto its destination resolved inside the rootfs (see `mounts::apply`). It owns
//! those descriptors and the throwaway namespace process; it touches no mount of the host.

use super::namespaces;
use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

#[derive(Debug, thiserror::Error)]
pub enum IdmapError {
    #[error("config.json: field `mounts[{index}].{field}`: {message}")]
    Field {
        index: usize,
        field: &'static str,
        message: String,
    },
    #[error("idmapped mount of {source_path} (mounts[{index}]): {what}: {errno}{hint}")]
    Sys {
        index: usize,
        source_path: PathBuf,
        what: &'static str,
        errno: nix::Error,
        hint: &'static str,
    },
    #[error("idmapped mount on {0}: the runtime did not prepare it (idmapped mounts are made only by create/run)")]
    NotPrepared(PathBuf),
    #[error("attach idmapped mount on {dest}: move_mount: {errno}")]
    Attach { dest: PathBuf, errno: nix::Error },
}

/// How a mount entry asks for an ID mapping, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idmap {
    /// `idmap` (or mappings without an option): the top mount only.
    Top,
    /// `ridmap`: every mount of a recursive bind.
    Recursive,
}

/// The ID-mapping request of one mount entry: the `ridmap`/`idmap` option, or mappings given
/// without an option (they mean `idmap`, as with runc).
pub fn requested(m: &Mount) -> Option<Idmap> {
    let opts = m.options().as_deref().unwrap_or_default();
    if opts.iter().any(|o| o == "ridmap") {
        Some(Idmap::Recursive)
    } else if opts.iter().any(|o| o == "idmap")
        || m.uid_mappings().is_some()
        || m.gid_mappings().is_some()
    {
        Some(Idmap::Top)
    } else {
        None
    }
}

/// Detached, idmapped trees waiting for init, by destination in spec order. A plain static is
/// enough: the runtime is single-threaded here and init receives a copy of it through clone3.
static PREPARED: Mutex<Vec<(PathBuf, OwnedFd)>> = Mutex::new(Vec::new());

/// Runs in the runtime before clone3: makes every idmapped mount the spec asks for.
/// `bundle` resolves relative sources, as init does by running in the bundle directory.
pub fn prepare(spec: &Spec, bundle: &Path) -> Result<(), IdmapError> {
    let linux = spec.linux().as_ref();
    let mut users: Vec<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>, OwnedFd)> = Vec::new();
    let mut made = Vec::new();
    for (index, m) in spec.mounts().iter().flatten().enumerate() {
        let Some(kind) = requested(m) else { continue };
        let field = |field, message: &str| IdmapError::Field {
            index,
            field,
            message: message.to_string(),
        };
        let opts = m.options().as_deref().unwrap_or_default();
        let rbind = opts.iter().any(|o| o == "rbind");
        let bind = rbind || opts.iter().any(|o| o == "bind") || m.typ().as_deref() == Some("bind");
        if !bind {
            return Err(field(
                "options",
                "idmapped mounts must be bind mounts: add \"bind\" or \"rbind\" to options",
            ));
        }
        // Without mappings of its own, the mount takes the container's (runc does the same).
        let (uids, gids) = match (m.uid_mappings(), m.gid_mappings()) {
            (Some(u), Some(g)) => (u.clone(), g.clone()),
            (Some(_), None) => {
                return Err(field(
                    "gidMappings",
                    "missing: uidMappings and gidMappings go together",
                ))
            }
            (None, Some(_)) => {
                return Err(field(
                    "uidMappings",
                    "missing: uidMappings and gidMappings go together",
                ))
            }
            (None, None) => {
                let u = linux.and_then(|l| l.uid_mappings().clone());
                let g = linux.and_then(|l| l.gid_mappings().clone());
                match (u, g) {
                    (Some(u), Some(g)) if !u.is_empty() && !g.is_empty() => (u, g),
                    _ => return Err(field(
                        "uidMappings",
                        "idmap without mappings needs linux.uidMappings/gidMappings to borrow, or give mounts[].uidMappings and gidMappings",
                    )),
                }
            }
        };
        if uids.is_empty() || gids.is_empty() {
            return Err(field(
                "uidMappings",
                "an idmapped mount needs at least one uid and one gid mapping",
            ));
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(field(
                "options",
                "idmapped mounts of host directories need lasso-runc to run as root (the kernel requires CAP_SYS_ADMIN over the filesystem)",
            ));
        }
        let source = m.source().clone().unwrap_or_default();
        let source = if source.is_absolute() {
            source
        } else {
            bundle.join(source)
        };
        let sys = |what, errno, hint| IdmapError::Sys {
            index,
            source_path: source.clone(),
            what,
            errno,
            hint,
        };
        let ns = match users.iter().find(|(u, g, _)| *u == uids && *g == gids) {
            Some((_, _, fd)) => fd.try_clone().map_err(|e| {
                sys(
                    "dup user namespace",
                    nix::Error::from_raw(e.raw_os_error().unwrap_or(0)),
                    "",
                )
            })?,
            None => {
                let fd = user_namespace(&uids, &gids).map_err(|e| {
                    sys(
                        "user namespace for the mapping",
                        e,
                        " (check mounts[].uidMappings/gidMappings)",
                    )
                })?;
                users.push((
                    uids.clone(),
                    gids.clone(),
                    fd.try_clone().map_err(|e| {
                        sys(
                            "dup user namespace",
                            nix::Error::from_raw(e.raw_os_error().unwrap_or(0)),
                            "",
                        )
                    })?,
                ));
                fd
            }
        };
        let tree = open_tree(&source, rbind)
            .map_err(|e| sys("open_tree", e, " (does the source exist?)"))?;
        set_idmap(&tree, &ns, kind == Idmap::Recursive).map_err(|e| {
            sys(
                "mount_setattr(MOUNT_ATTR_IDMAP)",
                e,
                " (the filesystem must support idmapped mounts, e.g. ext4, xfs, btrfs, tmpfs)",
            )
        })?;
        made.push((m.destination().clone(), tree));
    }
    PREPARED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(made);
    Ok(())
}

/// Takes the prepared tree for `dest` (the first one, in spec order).
pub fn take(dest: &Path) -> Result<OwnedFd, IdmapError> {
    let mut list = PREPARED.lock().unwrap_or_else(|p| p.into_inner());
    let i = list
        .iter()
        .position(|(d, _)| d == dest)
        .ok_or_else(|| IdmapError::NotPrepared(dest.to_path_buf()))?;
    Ok(list.remove(i).1)
}

/// Attaches a detached tree onto `target` (an O_PATH descriptor resolved inside the rootfs).
pub fn attach(tree: OwnedFd, target: BorrowedFd<'_>, dest: &Path) -> Result<(), IdmapError> {
    // SAFETY: move_mount with two descriptors we hold and empty C strings (the *_EMPTY_PATH
    // flags make the kernel use the descriptors themselves).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(IdmapError::Attach {
            dest: dest.to_path_buf(),
            errno: nix::Error::last(),
        });
    }
    Ok(())
}

/// Whether this kernel has mount_setattr (and so idmapped mounts): probed with a call that
/// fails on its bad descriptor when the system call exists.
pub fn kernel_supports_idmap() -> bool {
    // SAFETY: mount_setattr with an invalid descriptor and no attribute buffer does nothing.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            0,
            std::ptr::null::<u8>(),
            0,
        )
    };
    !(rc < 0 && nix::Error::last() == nix::Error::ENOSYS)
}

fn open_tree(source: &Path, recursive: bool) -> Result<OwnedFd, nix::Error> {
    let path = std::ffi::CString::new(source.as_os_str().as_encoded_bytes())
        .map_err(|_| nix::Error::EINVAL)?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree reads a NUL-terminated path and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn set_idmap(tree: &OwnedFd, userns: &OwnedFd, recursive: bool) -> Result<(), nix::Error> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: mount_setattr reads `size` bytes from an initialised MountAttr; the empty path
    // with AT_EMPTY_PATH names the detached tree we own.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

/// A user namespace carrying `uids`/`gids`, held by descriptor: a child is cloned into it,
/// the maps are written from here, the namespace is opened, and the child is let go.
///
/// The child shares this process's memory (`CLONE_VM`, as `posix_spawn` does): a child with
/// its own copy of the address space cost a page-table copy at the clone and its teardown at
/// the exit (~0.5 ms per sandbox, twice with the plan's probe). It runs only `hold_namespace`
/// on a stack of its own, with every signal blocked, and touches no memory but its argument.
fn user_namespace(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<OwnedFd, nix::Error> {
    let (r, w) = nix::unistd::pipe()?;
    let fds = [r.as_raw_fd(), w.as_raw_fd()];
    let mut stack = vec![0u8; 16 * 1024];
    let pid = {
        let all = nix::sys::signal::SigSet::all();
        let mut old = nix::sys::signal::SigSet::empty();
        nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&all),
            Some(&mut old),
        )?;
        // The stack grows down from its end, 16-byte aligned as the ABI asks.
        let top = ((stack.as_mut_ptr() as usize + stack.len()) & !15) as *mut libc::c_void;
        // SAFETY: the child runs `hold_namespace` on `stack`, which outlives it (freed only after
        // the waitpid below), reads `fds` (alive as long), and makes raw system calls only.
        let pid = unsafe {
            libc::clone(
                hold_namespace,
                top,
                libc::CLONE_NEWUSER | libc::CLONE_VM | libc::SIGCHLD,
                fds.as_ptr() as *mut libc::c_void,
            )
        };
        let cloned = if pid < 0 {
            Err(nix::Error::last())
        } else {
            Ok(pid)
        };
        nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&old),
            None,
        )?;
        cloned?
    };
    drop(r);
    let result = (|| {
        let map_err = |e: namespaces::NamespaceError| match e {
            namespaces::NamespaceError::Map { .. } => nix::Error::EINVAL,
            _ => nix::Error::EIO,
        };
        namespaces::write_map(pid, "uid_map", uids).map_err(map_err)?;
        namespaces::write_map(pid, "gid_map", gids).map_err(map_err)?;
        let f = std::fs::File::open(format!("/proc/{}/ns/user", pid))
            .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        Ok(OwnedFd::from(f))
    })();
    // Let the child go on every path, and reap it.
    drop(w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    drop(stack);
    result
}

/// The child of `user_namespace`: closes its copy of the pipe's write end and waits until the
/// runtime closes its own, then returns (the C library's clone ends the child). It shares the
/// runtime's memory, so it uses raw system calls and nothing of the runtime's state.
extern "C" fn hold_namespace(arg: *mut libc::c_void) -> libc::c_int {
    let fds = arg as *const libc::c_int;
    let mut b = 0u8;
    // SAFETY: `arg` points to the runtime's two pipe descriptors, alive until this child was
    // reaped; close and read take plain integers and a one-byte buffer on this stack.
    unsafe {
        libc::syscall(libc::SYS_close, *fds.add(1));
        libc::syscall(libc::SYS_read, *fds, &mut b as *mut u8, 1);
    }
    0
}

/// Whether `path` can be the source of an idmapped bind mount here (kernel, filesystem, and
/// this process's privilege): a detached clone of it is idmapped with a throwaway single-ID
/// mapping, then both are dropped. Nothing is attached anywhere.
pub fn probe(path: &Path) -> Result<(), nix::Error> {
    if !kernel_supports_idmap() {
        return Err(nix::Error::ENOSYS);
    }
    let one = oci_spec::runtime::LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(65534u32)
        .size(1u32)
        .build()
        .map_err(|_| nix::Error::EINVAL)?;
    let ns = user_namespace(std::slice::from_ref(&one), std::slice::from_ref(&one))?;
    let tree = open_tree(path, false)?;
    set_idmap(&tree, &ns, false)
}
