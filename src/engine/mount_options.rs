//! runc's mount option vocabulary (`ro`, `nosuid`, `rbind`, `rslave`, `rro`, ...) turned into
//! what the kernel takes: mount(2) flags, propagation changes, recursive MOUNT_ATTR_* bits for
//! mount_setattr(2), and the filesystem data string. Pure: no system calls.

use nix::mount::MsFlags;

/// Mount options split the way the kernel wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Flags for the mount(2) call itself.
    pub flags: MsFlags,
    /// Propagation changes applied after mounting, in order.
    pub propagation: Vec<MsFlags>,
    /// MOUNT_ATTR_* bits set / cleared recursively with mount_setattr.
    pub attr_set: u64,
    pub attr_clr: u64,
    /// Filesystem-specific data (e.g. `mode=755,size=65536k`).
    pub data: Vec<String>,
    /// Options the engine recognises but cannot honour yet.
    pub unsupported: Vec<String>,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_RELATIME: u64 = 0x0;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR__ATIME: u64 = 0x70;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

impl Options {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// Parses runc's option vocabulary.
    pub fn parse(opts: &[String]) -> Options {
        let mut o = Options {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            attr_set: 0,
            attr_clr: 0,
            data: Vec::new(),
            unsupported: Vec::new(),
        };
        for opt in opts {
            let (set, clear): (MsFlags, MsFlags) = match opt.as_str() {
                "defaults" => (MsFlags::empty(), MsFlags::empty()),
                "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
                "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
                "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
                "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
                "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
                "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
                "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
                "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
                "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
                "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
                "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
                "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
                "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
                "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
                "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
                "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
                "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
                "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
                "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
                "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
                "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
                "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
                "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                | "unbindable" | "runbindable" => {
                    o.propagation.push(propagation_flag(opt).expect("listed"));
                    continue;
                }
                "rro" => {
                    o.attr_set |= MOUNT_ATTR_RDONLY;
                    continue;
                }
                "rrw" => {
                    o.attr_clr |= MOUNT_ATTR_RDONLY;
                    continue;
                }
                "rnosuid" => {
                    o.attr_set |= MOUNT_ATTR_NOSUID;
                    continue;
                }
                "rsuid" => {
                    o.attr_clr |= MOUNT_ATTR_NOSUID;
                    continue;
                }
                "rnodev" => {
                    o.attr_set |= MOUNT_ATTR_NODEV;
                    continue;
                }
                "rdev" => {
                    o.attr_clr |= MOUNT_ATTR_NODEV;
                    continue;
                }
                "rnoexec" => {
                    o.attr_set |= MOUNT_ATTR_NOEXEC;
                    continue;
                }
                "rexec" => {
                    o.attr_clr |= MOUNT_ATTR_NOEXEC;
                    continue;
                }
                "rnodiratime" => {
                    o.attr_set |= MOUNT_ATTR_NODIRATIME;
                    continue;
                }
                "rdiratime" => {
                    o.attr_clr |= MOUNT_ATTR_NODIRATIME;
                    continue;
                }
                "rnoatime" => {
                    o.attr_clr |= MOUNT_ATTR__ATIME;
                    o.attr_set |= MOUNT_ATTR_NOATIME;
                    continue;
                }
                "rrelatime" => {
                    o.attr_clr |= MOUNT_ATTR__ATIME;
                    o.attr_set |= MOUNT_ATTR_RELATIME;
                    continue;
                }
                "rstrictatime" => {
                    o.attr_clr |= MOUNT_ATTR__ATIME;
                    o.attr_set |= MOUNT_ATTR_STRICTATIME;
                    continue;
                }
                "rnosymfollow" => {
                    o.attr_set |= MOUNT_ATTR_NOSYMFOLLOW;
                    continue;
                }
                "rsymfollow" => {
                    o.attr_clr |= MOUNT_ATTR_NOSYMFOLLOW;
                    continue;
                }
                // Applied by the runtime before init exists (see `idmap`), not by mount(2).
                "idmap" | "ridmap" => continue,
                "tmpcopyup" => {
                    o.unsupported.push(opt.clone());
                    continue;
                }
                _ => {
                    o.data.push(opt.clone());
                    continue;
                }
            };
            o.flags.insert(set);
            o.flags.remove(clear);
        }
        o
    }
}

/// The propagation flag for an option name (`rslave` -> MS_SLAVE|MS_REC).
pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn later_options_override_earlier_ones_and_data_is_kept() {
        let o = Options::parse(&s(&[
            "ro", "nosuid", "rw", "mode=755", "size=64k", "rbind", "rprivate",
        ]));
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o
            .flags
            .contains(MsFlags::MS_NOSUID | MsFlags::MS_BIND | MsFlags::MS_REC));
        assert_eq!(o.data, s(&["mode=755", "size=64k"]));
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
    }

    #[test]
    fn recursive_readonly_is_an_attribute_not_a_flag() {
        let o = Options::parse(&s(&["rbind", "rro"]));
        assert_eq!(o.attr_set, MOUNT_ATTR_RDONLY);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn unknown_copyup_is_refused_not_ignored_and_idmap_is_no_fs_data() {
        assert_eq!(
            Options::parse(&s(&["tmpcopyup"])).unsupported,
            s(&["tmpcopyup"])
        );
        let o = Options::parse(&s(&["rbind", "ridmap", "idmap"]));
        assert!(o.unsupported.is_empty() && o.data.is_empty());
    }
}
