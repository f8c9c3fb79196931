//! Finding, parsing and merging profiles: built-ins embedded in the binary, user profiles in
//! `<config>/profiles/NAME.toml`, explicit files, and `extends` chains. Merging is by presence: a
//! key written in a child wins even when it equals the default. The only I/O in `policy` is the
//! reading of profile files, here.

use super::check;
use super::profile::*;
use super::raw::*;
use crate::paths::Dirs;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The five built-in profiles, embedded so that a lasso binary needs no data files.
pub const BUILTINS: &[(&str, &str)] = &[
    ("standard", include_str!("../../profiles/standard.toml")),
    ("open", include_str!("../../profiles/open.toml")),
    ("offline", include_str!("../../profiles/offline.toml")),
    ("strict", include_str!("../../profiles/strict.toml")),
    ("evaluation", include_str!("../../profiles/evaluation.toml")),
];

/// Longest `extends` chain accepted; deeper is certainly a mistake and bounds the work.
pub const MAX_CHAIN: usize = 16;
/// Largest profile file read; a profile is a page of TOML, not a data set.
pub const MAX_PROFILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("profile {name:?} not found (looked for a built-in and for {})", searched.display())]
    NotFound {
        name: String,
        searched: PathBuf,
        suggestion: Option<String>,
    },
    #[error("cannot read profile {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("profile {} is larger than {MAX_PROFILE_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("{origin}:{line}:{column}: {message}")]
    Invalid {
        origin: String,
        line: u32,
        column: u32,
        message: String,
        hint: Option<String>,
    },
    #[error("profile `extends` cycle: {}", chain.join(" -> "))]
    Cycle { chain: Vec<String> },
    #[error("profile `extends` chain is longer than {MAX_CHAIN}: {}", chain.join(" -> "))]
    TooDeep { chain: Vec<String> },
}

impl ProfileError {
    /// The one-line fix shown under the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            ProfileError::NotFound {
                suggestion: Some(s),
                ..
            } => Some(format!(
                "did you mean {s:?}? (`lasso profile list` shows all)"
            )),
            ProfileError::NotFound { .. } => Some(
                "`lasso profile list` shows the profiles; pass a file with a path (./p.toml)"
                    .into(),
            ),
            ProfileError::Io { .. } => Some("check the path and its permissions".into()),
            ProfileError::TooLarge { .. } => {
                Some("a profile is a short TOML file; check that the path names one".into())
            }
            ProfileError::Invalid { hint, .. } => hint.clone(),
            ProfileError::Cycle { .. } => {
                Some("make one profile in the cycle extend a built-in instead".into())
            }
            ProfileError::TooDeep { .. } => {
                Some(format!("flatten the chain to at most {MAX_CHAIN} profiles"))
            }
        }
    }
}

/// One profile's text and where it came from.
#[derive(Debug, Clone)]
pub struct ProfileSource {
    /// `builtin:NAME` or the file path.
    pub origin: String,
    pub text: String,
    /// Where a relative `extends = "./base.toml"` is resolved; `None` for built-ins.
    pub dir: Option<PathBuf>,
    pub default_name: String,
}

impl ProfileSource {
    pub fn builtin(name: &str) -> Option<ProfileSource> {
        BUILTINS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| ProfileSource {
                origin: format!("builtin:{n}"),
                text: text.to_string(),
                dir: None,
                default_name: n.to_string(),
            })
    }

    pub fn file(path: &Path) -> Result<ProfileSource, ProfileError> {
        let io = |source| ProfileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > MAX_PROFILE_BYTES {
            return Err(ProfileError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let text = String::from_utf8(bytes).map_err(|e| ProfileError::Invalid {
            origin: path.display().to_string(),
            line: 1,
            column: 1,
            message: format!(
                "not UTF-8 text (bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            hint: Some("save the profile as UTF-8".into()),
        })?;
        Ok(ProfileSource {
            origin: path.display().to_string(),
            text,
            dir: path.parent().map(Path::to_path_buf),
            default_name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
    }

    /// A name is a built-in or a user profile; anything with a `/` or ending in `.toml` is a path
    /// (relative to `base`, the directory of the profile that names it).
    pub fn find(
        name_or_path: &str,
        dirs: &Dirs,
        base: Option<&Path>,
    ) -> Result<ProfileSource, ProfileError> {
        if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
            let p = Path::new(name_or_path);
            let p = match base {
                Some(b) if p.is_relative() => b.join(p),
                _ => p.to_path_buf(),
            };
            return ProfileSource::file(&p);
        }
        if let Some(b) = ProfileSource::builtin(name_or_path) {
            return Ok(b);
        }
        let user_dir = dirs.config.join("profiles");
        let path = user_dir.join(format!("{name_or_path}.toml"));
        if path.is_file() {
            return ProfileSource::file(&path);
        }
        let mut names: Vec<String> = BUILTINS.iter().map(|(n, _)| n.to_string()).collect();
        names.extend(user_profile_names(dirs));
        let suggestion =
            check::nearest(name_or_path, names.iter().map(String::as_str)).map(str::to_string);
        Err(ProfileError::NotFound {
            name: name_or_path.to_string(),
            searched: path,
            suggestion,
        })
    }
}

/// Names of the user's profiles (`<config>/profiles/*.toml`), sorted.
pub fn user_profile_names(dirs: &Dirs) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dirs.config.join("profiles"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".toml")
                .map(str::to_string)
        })
        .collect();
    out.sort();
    out
}

/// Loads a profile by built-in name, user profile name or path, and resolves its `extends` chain.
pub fn load(name_or_path: &str, dirs: &Dirs) -> Result<ResolvedProfile, ProfileError> {
    resolve(ProfileSource::find(name_or_path, dirs, None)?, dirs)
}

/// `load`, with the profile's digest when it came for free (a built-in's snapshot): the
/// caller computes `digest()` only when this is `None`.
pub fn load_digested(
    name_or_path: &str,
    dirs: &Dirs,
) -> Result<(ResolvedProfile, Option<String>), ProfileError> {
    resolve_digested(ProfileSource::find(name_or_path, dirs, None)?, dirs)
}

/// Resolves a source that is already in hand (the leaf), following `extends` to the root.
pub fn resolve(leaf: ProfileSource, dirs: &Dirs) -> Result<ResolvedProfile, ProfileError> {
    resolve_digested(leaf, dirs).map(|(p, _)| p)
}

/// `resolve`, with the digest when it is known without computing it (see `load_digested`).
/// A built-in in the chain is taken from its snapshot (`snapshot::lookup`) instead of parsing
/// its TOML and its own ancestors': merging is a fold from the root, so starting from what the
/// built-in's chain resolves to is the same as resolving it again.
pub fn resolve_digested(
    leaf: ProfileSource,
    dirs: &Dirs,
) -> Result<(ResolvedProfile, Option<String>), ProfileError> {
    walk(leaf, dirs, true)
}

/// `resolve` from the TOML of every profile in the chain, built-ins included (no snapshot):
/// the reference the snapshots are made from and checked against.
pub fn resolve_toml(leaf: ProfileSource, dirs: &Dirs) -> Result<ResolvedProfile, ProfileError> {
    walk(leaf, dirs, false).map(|(p, _)| p)
}

fn walk(
    leaf: ProfileSource,
    dirs: &Dirs,
    snapshots: bool,
) -> Result<(ResolvedProfile, Option<String>), ProfileError> {
    let mut chain: Vec<(ProfileSource, RawProfile)> = Vec::new();
    let mut base = None;
    let mut next = Some(leaf);
    while let Some(src) = next.take() {
        let ids: Vec<String> = chain.iter().map(|(s, _)| s.origin.clone()).collect();
        if ids.contains(&src.origin) {
            let mut c = ids;
            c.push(src.origin);
            return Err(ProfileError::Cycle { chain: c });
        }
        if chain.len() >= MAX_CHAIN {
            return Err(ProfileError::TooDeep { chain: ids });
        }
        if let Some((resolved, digest)) = snapshots.then(|| super::snapshot::lookup(&src)).flatten()
        {
            if chain.is_empty() {
                return Ok((resolved, Some(digest)));
            }
            // Walking the built-in's chain would have hit the depth limit: walk it, so the
            // error names the same chain as without snapshots.
            if chain.len() + resolved.chain.len() <= MAX_CHAIN {
                base = Some(resolved);
                break;
            }
        }
        let raw = parse(&src)?;
        if let Some(parent) = &raw.extends {
            let found = ProfileSource::find(parent.get_ref(), dirs, src.dir.as_deref()).map_err(|e| match e {
                ProfileError::NotFound { name, suggestion, .. } => {
                    let (line, column) = line_col(&src.text, parent.span().start);
                    ProfileError::Invalid {
                        origin: src.origin.clone(),
                        line,
                        column,
                        message: format!("`extends` names profile {name:?}, which does not exist"),
                        hint: Some(match suggestion {
                            Some(s) => format!("did you mean {s:?}?"),
                            None => "name a built-in (standard, open, offline, strict, evaluation), a user profile, or a path".into(),
                        }),
                    }
                }
                other => other,
            })?;
            next = Some(found);
        }
        chain.push((src, raw));
    }
    let mut out = base.unwrap_or_else(ResolvedProfile::defaults);
    for (src, raw) in chain.into_iter().rev() {
        Merger { src: &src }.apply(&mut out, raw)?;
    }
    Ok((out, None))
}

/// Parses one profile's text, turning TOML and schema errors into file:line:column messages
/// with the nearest valid key or value.
pub fn parse(src: &ProfileSource) -> Result<RawProfile, ProfileError> {
    toml::from_str::<RawProfile>(&src.text).map_err(|e| {
        let (line, column) = line_col(&src.text, e.span().map(|s| s.start).unwrap_or(0));
        let message = e.message().trim().to_string();
        ProfileError::Invalid {
            origin: src.origin.clone(),
            line,
            column,
            hint: suggest(&message),
            message,
        }
    })
}

/// serde names the bad key and the valid ones in backticks; pick the nearest as the suggestion.
fn suggest(message: &str) -> Option<String> {
    if !(message.starts_with("unknown field") || message.starts_with("unknown variant")) {
        return None;
    }
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let (bad, valid) = quoted.split_first()?;
    match check::nearest(bad, valid.iter().copied()) {
        Some(s) => Some(format!("did you mean `{s}`?")),
        None if !valid.is_empty() => Some(format!("valid here: {}", valid.join(", "))),
        None => None,
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line as u32, col as u32)
}

impl ResolvedProfile {
    /// What a profile without `extends` starts from: nothing blocked, no network, workspace
    /// writable, audit on. Documented in the README's Profiles section.
    pub fn defaults() -> ResolvedProfile {
        ResolvedProfile {
            name: String::new(),
            description: String::new(),
            chain: Vec::new(),
            commands: CommandPolicy {
                mode: CommandMode::Blocklist,
                mode_source: None,
                blocked: Vec::new(),
                allowed: Vec::new(),
                blocked_args: BTreeMap::new(),
                allowed_args: BTreeMap::new(),
            },
            network: NetworkPolicy {
                mode: NetworkMode::None,
                allowed_domains: Vec::new(),
                allowed_ports: Vec::new(),
                blocked_ports: Vec::new(),
                allowed_cidrs: Vec::new(),
                blocked_cidrs: Vec::new(),
                registries: Vec::new(),
            },
            filesystem: FilesystemPolicy {
                workspace: WorkspaceAccess::Rw,
                read_only: Vec::new(),
                writable: Vec::new(),
                hidden: Vec::new(),
                image: None,
            },
            resources: Resources {
                memory_bytes: None,
                cpu_millis: None,
                pids: None,
            },
            audit: AuditPolicy {
                enabled: true,
                record: AuditRecord::All,
            },
        }
    }
}

use super::merge::Merger;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("a\nbc\n", 3), (2, 2));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
