//! The memory a sandbox's monitor keeps while the agent runs. The monitor (`lasso run` itself,
//! or `up`'s detached monitor) is the lasso binary, and what it has resident once the sandbox
//! runs is mostly that binary's code, run once by planning and creating. This module hands
//! such pages back; it owns nothing else and changes no behaviour (the pages fault back in
//! when run again).

/// How long after its sandbox started a monitor sheds its start-up pages: pages the sandbox's
/// own start-up still needs (its first execs through the gate, the audit log's first flush)
/// would only fault back in right away, and a short command is over before then (shedding
/// would only lengthen its run).
const SHED_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Sheds the start-up pages once, `SHED_AFTER` after it was made, for a monitor's poll loop.
pub struct ShedTimer {
    at: Option<std::time::Instant>,
}

impl ShedTimer {
    pub fn start() -> ShedTimer {
        ShedTimer {
            at: Some(std::time::Instant::now() + SHED_AFTER),
        }
    }

    /// The poll timeout until the shedding (-1, none, once it is done).
    pub fn timeout_ms(&self) -> i32 {
        match self.at {
            Some(at) => {
                let left = at.saturating_duration_since(std::time::Instant::now());
                left.as_millis().min(i32::MAX as u128) as i32
            }
            None => -1,
        }
    }

    /// Sheds if it is time; call after each poll.
    pub fn tick(&mut self) {
        if self.at.is_some_and(|at| std::time::Instant::now() >= at) {
            self.at = None;
            shed_startup_pages();
        }
    }
}

/// Gives back the memory that only start-up needed, once the sandbox runs: the monitor lives as
/// long as the agent, and most of what it has resident then is code of the (15 MB) lasso binary
/// that planning and creating ran once. Free heap goes back with `malloc_trim`; read-only
/// file-backed mappings with no private (copied-on-write) page are dropped with MADV_DONTNEED,
/// and the code the monitor still runs faults back in from the page cache (the kernel maps 64
/// KiB around each fault). Nothing is lost: such a mapping holds only the file's contents, and
/// the file cannot change meanwhile (a running executable refuses writers with ETXTBSY).
pub fn shed_startup_pages() {
    // SAFETY: malloc_trim only hands free memory of glibc's allocator back to the kernel.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (start, end) in clean_file_mappings(&smaps) {
        // SAFETY: the range is a whole read-only private mapping of a file with no private
        // page (`clean_file_mappings`): dropping it unmaps page-cache pages only, which the
        // next access maps again with the same contents.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// The read-only, file-backed mappings in `/proc/self/smaps` text that hold no anonymous page.
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-') {
            let perms = words.next().unwrap_or_default();
            // offset, device, inode, then the path.
            let path = words.nth(3).unwrap_or_default();
            let range = usize::from_str_radix(a, 16)
                .ok()
                .zip(usize::from_str_radix(b, 16).ok());
            let read_only = perms.starts_with('r') && !perms.contains('w');
            cur = range.filter(|_| read_only && path.starts_with('/'));
        } else if first == "Anonymous:" {
            if let Some(r) = cur.take() {
                if words.next() == Some("0") {
                    out.push(r);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_clean_read_only_file_mappings_are_dropped() {
        let smaps = "\
5600-5700 r-xp 00001000 fe:00 12 /usr/bin/lasso
Rss:                 400 kB
Anonymous:             0 kB
5700-5800 r--p 00002000 fe:00 12 /usr/bin/lasso
Anonymous:            12 kB
5800-5900 rw-p 00003000 fe:00 12 /usr/bin/lasso
Anonymous:             0 kB
5900-5a00 rw-p 00000000 00:00 0 [heap]
Anonymous:             8 kB
5a00-5b00 r--p 00000000 00:00 0
Anonymous:             0 kB
7f00-7f10 r-xp 00000000 fe:00 34 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
";
        assert_eq!(
            super::clean_file_mappings(smaps),
            vec![(0x5600, 0x5700), (0x7f00, 0x7f10)]
        );
    }
}
