//! Applies one parsed profile on top of what its ancestors resolved to. Merging is by presence:
//! a key the child writes replaces the parent's value; lists follow the list-edit syntax
//! (`[...]` replaces, `{ add, remove }` edits). Removing an entry the parent does not have is an
//! error, so a typo cannot silently leave a rule in force.

use super::check;
use super::load::{line_col, ProfileError};
use super::profile::*;
use super::raw::*;
use std::collections::BTreeMap;
use toml::Spanned;

pub struct Merger<'a> {
    pub src: &'a super::load::ProfileSource,
}

impl Merger<'_> {
    fn rule_ref(&self, span: std::ops::Range<usize>) -> RuleRef {
        RuleRef {
            origin: self.src.origin.clone(),
            line: line_col(&self.src.text, span.start).0,
        }
    }

    fn invalid(&self, span: std::ops::Range<usize>, message: String) -> ProfileError {
        let (line, column) = line_col(&self.src.text, span.start);
        ProfileError::Invalid {
            origin: self.src.origin.clone(),
            line,
            column,
            message,
            hint: None,
        }
    }

    pub fn apply(&self, out: &mut ResolvedProfile, raw: RawProfile) -> Result<(), ProfileError> {
        out.chain.push(self.src.origin.clone());
        out.name = raw
            .name
            .map(Spanned::into_inner)
            .unwrap_or_else(|| self.src.default_name.clone());
        if let Some(d) = raw.description {
            out.description = d.into_inner();
        }
        if let Some(c) = raw.commands {
            self.commands(&mut out.commands, c, &out.name)?;
        }
        if let Some(n) = raw.network {
            self.network(&mut out.network, n)?;
        }
        if let Some(f) = raw.filesystem {
            self.filesystem(&mut out.filesystem, f)?;
        }
        if let Some(r) = raw.resources {
            if let Some(m) = r.memory {
                let span = m.span();
                out.resources.memory_bytes =
                    Some(check::memory_bytes(m.get_ref()).map_err(|e| self.invalid(span, e))?);
            }
            if let Some(c) = r.cpu {
                let span = c.span();
                out.resources.cpu_millis =
                    Some(check::cpu_millis(c.get_ref()).map_err(|e| self.invalid(span, e))?);
            }
            if let Some(p) = r.pids {
                if *p.get_ref() == 0 {
                    return Err(self.invalid(p.span(), "pids must be at least 1".into()));
                }
                out.resources.pids = Some(p.into_inner());
            }
        }
        if let Some(a) = raw.audit {
            if let Some(e) = a.enabled {
                out.audit.enabled = e.into_inner();
            }
            if let Some(r) = a.record {
                out.audit.record = r.into_inner();
            }
        }
        Ok(())
    }

    fn commands(
        &self,
        out: &mut CommandPolicy,
        raw: RawCommands,
        profile: &str,
    ) -> Result<(), ProfileError> {
        if let Some(m) = raw.mode {
            out.mode_source = Some(self.rule_ref(m.span()));
            out.mode = m.into_inner();
        }
        let entry = |list: &'static str| {
            move |e: Spanned<CommandEntry>| -> Result<CommandRule, String> {
                let source = self.rule_ref(e.span());
                let e = e.into_inner();
                Ok(CommandRule {
                    category: e.category.unwrap_or_else(|| "policy".into()),
                    reason: e.reason.unwrap_or_else(|| {
                        format!("listed in commands.{list} of profile {profile}")
                    }),
                    name: e.name,
                    source,
                })
            }
        };
        if let Some(b) = raw.blocked {
            self.list(&mut out.blocked, b, |r| &r.name, entry("blocked"))?;
        }
        if let Some(a) = raw.allowed {
            self.list(&mut out.allowed, a, |r| &r.name, entry("allowed"))?;
        }
        if let Some(map) = raw.blocked_args {
            self.arg_map(&mut out.blocked_args, map, "blocked_args")?;
        }
        if let Some(map) = raw.allowed_args {
            self.arg_map(&mut out.allowed_args, map, "allowed_args")?;
        }
        Ok(())
    }

    fn arg_map(
        &self,
        out: &mut BTreeMap<String, Vec<ArgRule>>,
        raw: BTreeMap<String, ListEdit<Spanned<ArgEntry>>>,
        table: &str,
    ) -> Result<(), ProfileError> {
        for (cmd, edit) in raw {
            let list = out.entry(cmd.clone()).or_default();
            self.list(
                list,
                edit,
                |r| &r.pattern,
                |e| {
                    let source = self.rule_ref(e.span());
                    let e = e.into_inner();
                    let pattern = e.args.split_whitespace().collect::<Vec<_>>().join(" ");
                    Ok(ArgRule {
                        reason: e.reason.unwrap_or_else(|| {
                            format!("`{cmd} {pattern}` is listed in commands.{table}")
                        }),
                        pattern,
                        source,
                    })
                },
            )?;
            if list.is_empty() {
                out.remove(&cmd);
            }
        }
        Ok(())
    }

    fn network(&self, out: &mut NetworkPolicy, raw: RawNetwork) -> Result<(), ProfileError> {
        if let Some(m) = raw.mode {
            out.mode = m.into_inner();
        }
        let checked = |f: fn(&str) -> Result<(), String>| {
            move |s: Spanned<String>| f(s.get_ref()).map(|_| s.into_inner())
        };
        let port = |p: Spanned<u16>| check::port(*p.get_ref()).map(|_| p.into_inner());
        if let Some(l) = raw.allowed_domains {
            self.list(&mut out.allowed_domains, l, |s| s, checked(check::domain))?;
        }
        if let Some(l) = raw.allowed_cidrs {
            self.list(&mut out.allowed_cidrs, l, |s| s, checked(check::cidr))?;
        }
        if let Some(l) = raw.blocked_cidrs {
            self.list(&mut out.blocked_cidrs, l, |s| s, checked(check::cidr))?;
        }
        if let Some(l) = raw.registries {
            self.list(&mut out.registries, l, |s| s, checked(check::ecosystem))?;
        }
        let ports = |out: &mut Vec<u16>, l: ListEdit<Spanned<u16>>| -> Result<(), ProfileError> {
            let mut keyed: Vec<(String, u16)> = out.iter().map(|p| (p.to_string(), *p)).collect();
            self.list(
                &mut keyed,
                l,
                |k| &k.0,
                |p| port(p).map(|p| (p.to_string(), p)),
            )?;
            *out = keyed.into_iter().map(|k| k.1).collect();
            Ok(())
        };
        if let Some(l) = raw.allowed_ports {
            ports(&mut out.allowed_ports, l)?;
        }
        if let Some(l) = raw.blocked_ports {
            ports(&mut out.blocked_ports, l)?;
        }
        Ok(())
    }

    fn filesystem(
        &self,
        out: &mut FilesystemPolicy,
        raw: RawFilesystem,
    ) -> Result<(), ProfileError> {
        if let Some(w) = raw.workspace {
            out.workspace = w.into_inner();
        }
        let path = |s: Spanned<String>| check::sandbox_path(s.get_ref()).map(|_| s.into_inner());
        if let Some(l) = raw.read_only {
            self.list(&mut out.read_only, l, |s| s, path)?;
        }
        if let Some(l) = raw.writable {
            self.list(&mut out.writable, l, |s| s, path)?;
        }
        if let Some(l) = raw.hidden {
            self.list(&mut out.hidden, l, |s| s, path)?;
        }
        if let Some(image) = raw.image {
            let span = image.span();
            let name = image.into_inner();
            // "" resets an inherited image to the host view.
            if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(self.invalid(
                    span,
                    format!("filesystem.image {name:?}: an image name has no spaces or control characters (e.g. \"prebuilt\" or \"lasso/claude-code:0.1.0\"; \"\" for the host view)"),
                ));
            }
            out.image = (!name.is_empty()).then_some(name);
        }
        Ok(())
    }

    /// Applies a list edit. Entries are keyed (a command name, a pattern, a domain); adding an
    /// existing key replaces that entry in place, so the result never holds duplicates.
    fn list<T, R>(
        &self,
        out: &mut Vec<R>,
        edit: ListEdit<Spanned<T>>,
        key: impl Fn(&R) -> &String,
        mut convert: impl FnMut(Spanned<T>) -> Result<R, String>,
    ) -> Result<(), ProfileError> {
        let mut push = |out: &mut Vec<R>, item: Spanned<T>| -> Result<(), ProfileError> {
            let span = item.span();
            let r = convert(item).map_err(|e| self.invalid(span, e))?;
            match out.iter().position(|x| key(x) == key(&r)) {
                Some(i) => out[i] = r,
                None => out.push(r),
            }
            Ok(())
        };
        match edit {
            ListEdit::Replace(items) => {
                out.clear();
                for item in items {
                    push(out, item)?;
                }
            }
            ListEdit::Edit { add, remove } => {
                for r in remove {
                    let before = out.len();
                    out.retain(|x| key(x) != r.get_ref());
                    if out.len() == before {
                        let keys: Vec<&str> = out.iter().map(|x| key(x).as_str()).collect();
                        let mut msg = format!(
                            "cannot remove {:?}: the parent list does not hold it",
                            r.get_ref()
                        );
                        if let Some(s) = check::nearest(r.get_ref(), keys) {
                            msg.push_str(&format!("; did you mean {s:?}?"));
                        }
                        return Err(self.invalid(r.span(), msg));
                    }
                }
                for item in add {
                    push(out, item)?;
                }
            }
        }
        Ok(())
    }
}
