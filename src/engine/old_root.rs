//! The host's old root, detached from init's mount namespace after `pivot_root(".", ".")` by
//! a short-lived child, while init goes on hardening its new root.
//!
//! Why a child: `umount2(MNT_DETACH)` unhashes the old tree at once but then waits, in the
//! same call, for an expedited RCU grace period before it returns (the kernel's
//! `namespace_unlock`): 0.1 to 3 ms here, during which init did nothing. The child makes the
//! call; init builds its masks and read-only paths meanwhile (absolute paths resolve from
//! init's root, the new root, whether or not the old one is still stacked on it) and waits
//! for the child before it reports ready, so the old root is gone before anything of the
//! container runs, as before.
//!
//! The child shares init's memory (`CLONE_VM`, as `idmap`'s namespace holder does: no copy of
//! the address space), runs only `detach_old_root` on a stack of its own with every signal
//! blocked, and makes one raw system call. It has its own copy of init's working directory
//! (no `CLONE_FS`), the old root stacked on the new one, so init may change directory at once.
//! It owns that child and its stack only.

use std::os::raw::{c_int, c_void};

/// A detach in progress; `finish` waits for it. Dropped unfinished (an error path), it still
/// waits: the child runs on memory this value owns.
pub struct Detach {
    pid: i32,
    /// The child's stack: it must outlive the child.
    _stack: Vec<u8>,
    done: bool,
}

impl Detach {
    /// Starts detaching the mount stacked on the caller's working directory.
    pub fn start() -> Result<Detach, nix::Error> {
        use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
        let mut stack = vec![0u8; 16 * 1024];
        let mut old = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::all()),
            Some(&mut old),
        )?;
        // The stack grows down from its end, 16-byte aligned as the ABI asks.
        let top = ((stack.as_mut_ptr() as usize + stack.len()) & !15) as *mut c_void;
        // SAFETY: the child runs `detach_old_root` on `stack`, which this value keeps until
        // the child was reaped (`wait`, also on drop); it reads no memory of ours and makes
        // one raw system call.
        let pid = unsafe {
            libc::clone(
                detach_old_root,
                top,
                libc::CLONE_VM | libc::SIGCHLD,
                std::ptr::null_mut(),
            )
        };
        let cloned = if pid < 0 {
            Err(nix::Error::last())
        } else {
            Ok(pid)
        };
        pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None)?;
        Ok(Detach {
            pid: cloned?,
            _stack: stack,
            done: false,
        })
    }

    /// Waits until the old root is detached; the umount's error if it failed.
    pub fn finish(mut self) -> Result<(), nix::Error> {
        self.wait()
    }

    fn wait(&mut self) -> Result<(), nix::Error> {
        if self.done {
            return Ok(());
        }
        use nix::sys::wait::{waitpid, WaitStatus};
        let status = loop {
            match waitpid(nix::unistd::Pid::from_raw(self.pid), None) {
                Err(nix::Error::EINTR) => continue,
                other => break other,
            }
        };
        self.done = true;
        match status? {
            WaitStatus::Exited(_, 0) => Ok(()),
            WaitStatus::Exited(_, errno) => Err(nix::Error::from_raw(errno)),
            _ => Err(nix::Error::EINTR),
        }
    }
}

impl Drop for Detach {
    fn drop(&mut self) {
        // The stack (a field) is freed only after this, once the child is gone.
        let _ = self.wait();
    }
}

/// The child: `umount2(".", MNT_DETACH)` by the raw system call (rustix's own, which touches
/// no errno: this child shares init's memory and thread-local storage). Its exit status is
/// the errno, 0 on success (the C library's clone ends the child with the returned value).
extern "C" fn detach_old_root(_arg: *mut c_void) -> c_int {
    match rustix::mount::unmount(c".", rustix::mount::UnmountFlags::DETACH) {
        Ok(()) => 0,
        Err(e) => e.raw_os_error(),
    }
}
