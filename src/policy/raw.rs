//! The profile file as written: every key optional (merging is by presence), every value carrying
//! its byte span so errors and rules can name the file line. Owns the list-edit syntax; it does not
//! merge or check meaning (that is `load`).

use super::profile::{AuditRecord, CommandMode, NetworkMode, WorkspaceAccess};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub name: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub extends: Option<Spanned<String>>,
    pub commands: Option<RawCommands>,
    pub network: Option<RawNetwork>,
    pub filesystem: Option<RawFilesystem>,
    pub resources: Option<RawResources>,
    pub audit: Option<RawAudit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommands {
    pub mode: Option<Spanned<CommandMode>>,
    pub blocked: Option<ListEdit<Spanned<CommandEntry>>>,
    pub allowed: Option<ListEdit<Spanned<CommandEntry>>>,
    pub blocked_args: Option<BTreeMap<String, ListEdit<Spanned<ArgEntry>>>>,
    pub allowed_args: Option<BTreeMap<String, ListEdit<Spanned<ArgEntry>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub mode: Option<Spanned<NetworkMode>>,
    pub allowed_domains: Option<ListEdit<Spanned<String>>>,
    pub allowed_ports: Option<ListEdit<Spanned<u16>>>,
    pub blocked_ports: Option<ListEdit<Spanned<u16>>>,
    pub allowed_cidrs: Option<ListEdit<Spanned<String>>>,
    pub blocked_cidrs: Option<ListEdit<Spanned<String>>>,
    pub registries: Option<ListEdit<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesystem {
    pub workspace: Option<Spanned<WorkspaceAccess>>,
    pub read_only: Option<ListEdit<Spanned<String>>>,
    pub writable: Option<ListEdit<Spanned<String>>>,
    pub hidden: Option<ListEdit<Spanned<String>>>,
    pub image: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    pub memory: Option<Spanned<SizeOrNumber>>,
    pub cpu: Option<Spanned<SizeOrNumber>>,
    pub pids: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub enabled: Option<Spanned<bool>>,
    pub record: Option<Spanned<AuditRecord>>,
}

/// How a child changes a parent's list: a plain array replaces it, a table
/// `{ add = [...], remove = [...] }` edits it (removal first, then addition).
#[derive(Debug)]
pub enum ListEdit<T> {
    Replace(Vec<T>),
    Edit {
        add: Vec<T>,
        remove: Vec<Spanned<String>>,
    },
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ListEdit<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = ListEdit<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array (replaces the parent's list) or a table { add = [...], remove = [...] }")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(ListEdit::Replace(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut add, mut remove) = (Vec::new(), Vec::new());
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "add" => add = map.next_value()?,
                        "remove" => remove = map.next_value()?,
                        other => return Err(de::Error::unknown_field(other, &["add", "remove"])),
                    }
                }
                Ok(ListEdit::Edit { add, remove })
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A command-name entry: `"rm"` or `{ name = "rm", category = "...", reason = "..." }`.
#[derive(Debug, Clone)]
pub struct CommandEntry {
    pub name: String,
    pub category: Option<String>,
    pub reason: Option<String>,
}

/// An argument-pattern entry: `"push --force"` or `{ args = "push --force", reason = "..." }`.
#[derive(Debug, Clone)]
pub struct ArgEntry {
    pub args: String,
    pub reason: Option<String>,
}

/// Strings or tables with known keys; both entry kinds share this visitor.
fn string_or_table<'de, D: Deserializer<'de>>(
    d: D,
    key: &'static str,
    fields: &'static [&'static str],
) -> Result<BTreeMap<String, String>, D::Error> {
    struct V {
        key: &'static str,
        fields: &'static [&'static str],
    }
    impl<'de> Visitor<'de> for V {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a string or a table with `{}`", self.key)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(BTreeMap::from([(self.key.to_string(), v.to_string())]))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(k) = map.next_key::<String>()? {
                if !self.fields.contains(&k.as_str()) {
                    return Err(de::Error::unknown_field(&k, self.fields));
                }
                out.insert(k, map.next_value::<String>()?);
            }
            if !out.contains_key(self.key) {
                return Err(de::Error::missing_field(self.key));
            }
            Ok(out)
        }
    }
    d.deserialize_any(V { key, fields })
}

impl<'de> Deserialize<'de> for CommandEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut m = string_or_table(d, "name", &["name", "category", "reason"])?;
        let name = m.remove("name").unwrap_or_default();
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('/') {
            return Err(de::Error::custom(format!(
                "command name {name:?} must be a single word without `/` (rules match the program's file name)"
            )));
        }
        Ok(CommandEntry {
            name,
            category: m.remove("category"),
            reason: m.remove("reason"),
        })
    }
}

impl<'de> Deserialize<'de> for ArgEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut m = string_or_table(d, "args", &["args", "reason"])?;
        let args = m.remove("args").unwrap_or_default();
        if args.split_whitespace().next().is_none() {
            return Err(de::Error::custom("an argument pattern must not be empty"));
        }
        Ok(ArgEntry {
            args,
            reason: m.remove("reason"),
        })
    }
}

/// A number, or a string with a unit (`"8GiB"`, `"1.5"`), checked later by `units`.
#[derive(Debug, Clone)]
pub enum SizeOrNumber {
    Int(i64),
    Float(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for SizeOrNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SizeOrNumber;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string such as \"8GiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(SizeOrNumber::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(SizeOrNumber::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(SizeOrNumber::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SizeOrNumber::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
