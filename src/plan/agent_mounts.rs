//! Turns an agent's facts (`agents::Agent`) into mounts: its config files under /home/agent with
//! the access each may have, and its binary (plus a script's interpreter) when installed outside
//! the host view's system directories. Also lists what must be prepared on the host first.

use super::error::PlanError;
use super::hostview::{ro_bind, rw_bind, system_dirs};
use super::mounts::sensitivity;
use super::HostPrep;
use crate::agents::{which_in, Agent, ConfigAccess, EntryKind, IfMissing, Installed};
use oci_spec::runtime::Mount;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a tool installed outside the system dirs is mounted, and the PATH directory (inside the
/// skeleton) that links to it.
pub const AGENT_ROOT: &str = "/run/lasso/agent";
pub const INTERPRETER_ROOT: &str = "/run/lasso/interpreter";
pub const LINK_DIR: &str = "/.lasso/bin";

pub struct AgentMounts {
    pub mounts: Vec<Mount>,
    pub prep: Vec<HostPrep>,
    pub warnings: Vec<String>,
    /// Container paths the agent may write (for Landlock).
    pub writable: Vec<PathBuf>,
    /// Container paths the agent may read.
    pub readable: Vec<PathBuf>,
    /// Container directories holding tools, to allow execution from.
    pub executable: Vec<PathBuf>,
}

fn in_system_dirs(p: &Path) -> bool {
    system_dirs()
        .filter(|d| *d != "/etc")
        .any(|d| p.starts_with(d))
}

/// Config mounts of `agent` from `home`. `private_dir` receives private copies; `owner` is the
/// host identity files created on the host are given to.
pub fn config_mounts(
    agent: &Agent,
    home: &Path,
    private_dir: &Path,
    owner: (u32, u32),
) -> AgentMounts {
    let mut out = AgentMounts {
        mounts: vec![],
        prep: vec![],
        warnings: vec![],
        writable: vec![],
        readable: vec![],
        executable: vec![],
    };
    let explicit: Vec<&str> = agent.config.iter().map(|c| c.path).collect();
    let mut skipped: Vec<&str> = Vec::new();
    for cm in agent.config {
        // Inside a directory that was not mounted, nothing is mounted or created either.
        if skipped
            .iter()
            .any(|s| cm.path.strip_prefix(s).is_some_and(|r| r.starts_with('/')))
        {
            continue;
        }
        skipped.push(cm.path);
        let host = home.join(cm.path);
        let dest = Path::new("/home/agent").join(cm.path);
        let meta = std::fs::symlink_metadata(&host);
        let host = match meta {
            Err(_) => match cm.if_missing {
                IfMissing::Skip => continue,
                IfMissing::Create(contents) => {
                    out.prep.push(match cm.kind {
                        EntryKind::Dir => HostPrep::CreateDir {
                            path: host.clone(),
                            owner,
                        },
                        EntryKind::File => HostPrep::CreateFile {
                            path: host.clone(),
                            contents: contents.to_string(),
                            owner,
                        },
                    });
                    host
                }
            },
            Ok(_) => {
                // A symlink here may have been planted by an earlier sandbox (its parent can be
                // writable): follow it only to a place that is not a host secret.
                let Ok(real) = std::fs::canonicalize(&host) else {
                    out.warnings
                        .push(format!("{}: dangling symlink, not mounted", host.display()));
                    continue;
                };
                if let Some(reason) = sensitivity(&real, &[home]) {
                    out.warnings.push(format!(
                        "{} resolves to {} ({reason}); not mounted",
                        host.display(),
                        real.display()
                    ));
                    continue;
                }
                let is_dir = real.is_dir();
                if is_dir != (cm.kind == EntryKind::Dir) {
                    out.warnings.push(format!(
                        "{}: expected a {}, found something else; not mounted",
                        host.display(),
                        if cm.kind == EntryKind::Dir {
                            "directory"
                        } else {
                            "file"
                        }
                    ));
                    continue;
                }
                real
            }
        };
        skipped.pop();
        out.readable.push(dest.clone());
        match cm.access {
            ConfigAccess::ReadOnly => out.mounts.push(ro_bind(&host, &dest)),
            ConfigAccess::ReadWrite { writable_entries } => {
                out.mounts.push(rw_bind(&host, &dest));
                out.writable.push(dest.clone());
                if let Some(keep) = writable_entries {
                    protect_unknown_entries(&host, &dest, cm.path, keep, &explicit, &mut out);
                }
            }
            ConfigAccess::PrivateCopy => {
                let copy = private_dir.join(cm.path.replace('/', "_"));
                out.prep.push(HostPrep::CopyFile {
                    from: host.clone(),
                    to: copy.clone(),
                    owner,
                });
                out.mounts.push(rw_bind(&copy, &dest));
                out.writable.push(dest.clone());
            }
        }
    }
    out
}

/// Binds every existing top-level entry of a writable config dir that is not known to be data
/// read-only over itself. Symlinks are left alone: inside the sandbox they resolve in the
/// sandbox's own view, and following them here could mount a host secret.
fn protect_unknown_entries(
    host: &Path,
    dest: &Path,
    rel: &str,
    keep: &[&str],
    explicit: &[&str],
    out: &mut AgentMounts,
) {
    let Ok(entries) = std::fs::read_dir(host) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| !t.is_symlink()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let rel_child = format!("{rel}/{name}");
        if keep.contains(&name.as_str()) || explicit.contains(&rel_child.as_str()) {
            continue;
        }
        out.mounts
            .push(ro_bind(&host.join(&name), &dest.join(&name)));
    }
}

/// The top directory of an installed tool: the npm package root when the binary lives in
/// `node_modules/[@scope/]pkg/...` (scripts load their siblings), else the binary's directory.
pub fn package_root(real: &Path) -> PathBuf {
    let mut cur = real.parent();
    while let Some(dir) = cur {
        let parent = dir.parent();
        let parent_name = parent.and_then(|p| p.file_name()).and_then(OsStr::to_str);
        if parent_name == Some("node_modules") {
            return dir.to_path_buf();
        }
        let grand_name = parent
            .and_then(|p| p.parent())
            .and_then(|p| p.file_name())
            .and_then(OsStr::to_str);
        let is_scope = parent
            .and_then(|p| p.file_name())
            .and_then(OsStr::to_str)
            .is_some_and(|n| n.starts_with('@'));
        if is_scope && grand_name == Some("node_modules") {
            return dir.to_path_buf();
        }
        cur = parent;
    }
    real.parent().unwrap_or(Path::new("/")).to_path_buf()
}

/// The interpreter named by a script's `#!` line: `#!/usr/bin/env node` gives `node`,
/// `#!/opt/x/bin/python3 -u` gives that path.
pub fn shebang_interpreter(file: &Path) -> Option<String> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(file).ok()?.read(&mut head).ok()?;
    let text = std::str::from_utf8(head[..n].strip_prefix(b"#!")?).ok()?;
    let line = text.lines().next()?.trim();
    let mut words = line.split_whitespace();
    let prog = words.next()?;
    if prog.ends_with("/env") {
        words.find(|w| !w.starts_with('-'))
    } else {
        Some(prog)
    }
    .map(str::to_string)
}

/// Mounts the agent's binary (and a script's interpreter) when they live outside the system
/// dirs, read-only, and links them into `LINK_DIR` so they are found on PATH by name.
pub fn binary_mounts(
    agent: &Agent,
    installed: &Installed,
    host_path: &OsStr,
    homes: &[&Path],
    rootfs: &Path,
) -> Result<AgentMounts, PlanError> {
    let mut out = AgentMounts {
        mounts: vec![],
        prep: vec![],
        warnings: vec![],
        writable: vec![],
        readable: vec![],
        executable: vec![],
    };
    let link_dir = rootfs.join(LINK_DIR.trim_start_matches('/'));
    let name = installed
        .on_path
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or(agent.binaries[0]);
    let mut tools = vec![(name.to_string(), installed.real.clone(), AGENT_ROOT)];
    if let Some(interp) = shebang_interpreter(&installed.real) {
        let found = if interp.starts_with('/') {
            std::fs::canonicalize(&interp).ok()
        } else {
            which_in(&interp, host_path).and_then(|p| std::fs::canonicalize(p).ok())
        };
        if let Some(real) = found {
            let base = Path::new(&interp)
                .file_name()
                .and_then(OsStr::to_str)
                .unwrap_or("interpreter")
                .to_string();
            tools.push((base, real, INTERPRETER_ROOT));
        }
    }
    for (link_name, real, mount_root) in tools {
        let inside = if in_system_dirs(&real) {
            real.clone()
        } else {
            let mut root = package_root(&real);
            // An interpreter in `.../bin/node` needs its install root (`../lib` holds its modules).
            if mount_root == INTERPRETER_ROOT && root.file_name() == Some(OsStr::new("bin")) {
                root = root.parent().map(Path::to_path_buf).unwrap_or(root);
            }
            if let Some(reason) = sensitivity(&root, homes) {
                return Err(PlanError::Mount(super::error::MountError::Sensitive {
                    flag: format!("--agent {}", agent.name),
                    value: real.display().to_string(),
                    source_path: root,
                    reason: format!(
                        "{reason}; the binary's directory would be mounted, install it in a directory of its own"
                    ),
                }));
            }
            let dest = PathBuf::from(mount_root);
            out.mounts.push(ro_bind(&root, &dest));
            out.readable.push(dest.clone());
            out.executable.push(dest.clone());
            dest.join(real.strip_prefix(&root).unwrap_or(&real))
        };
        out.prep.push(HostPrep::Symlink {
            path: link_dir.join(&link_name),
            target: inside,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_package_roots_are_found() {
        assert_eq!(
            package_root(Path::new(
                "/h/.npm-global/lib/node_modules/@anthropic-ai/claude-code/cli.js"
            )),
            PathBuf::from("/h/.npm-global/lib/node_modules/@anthropic-ai/claude-code")
        );
        assert_eq!(
            package_root(Path::new(
                "/h/.npm-global/lib/node_modules/opencode-ai/bin/opencode"
            )),
            PathBuf::from("/h/.npm-global/lib/node_modules/opencode-ai")
        );
        assert_eq!(
            package_root(Path::new("/h/.local/bin/codex")),
            PathBuf::from("/h/.local/bin")
        );
    }

    #[test]
    fn shebangs_name_their_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "#!/usr/bin/env -S node --x\nrest").unwrap();
        assert_eq!(shebang_interpreter(&f).as_deref(), Some("node"));
        std::fs::write(&f, "#!/opt/py/bin/python3 -u\n").unwrap();
        assert_eq!(
            shebang_interpreter(&f).as_deref(),
            Some("/opt/py/bin/python3")
        );
        std::fs::write(&f, "\x7fELF").unwrap();
        assert_eq!(shebang_interpreter(&f), None);
    }
}
