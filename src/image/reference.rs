//! Image references as `lasso image pull` takes them: `HOST[:PORT]/REPO[:TAG][@sha256:HEX]`.
//! The registry host is required: a short name would silently pick a registry for the user.

use crate::image::digest::Digest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub host: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("{0:?} has no registry host; write it out in full, e.g. registry.example:5000/{0}")]
    ShortName(String),
    #[error("{0:?} is not an image reference: {1}")]
    Invalid(String, &'static str),
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let invalid = |why| ReferenceError::Invalid(s.to_string(), why);
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    Digest::parse(d)
                        .map_err(|_| invalid("the part after @ must be sha256:<64 hex digits>"))?,
                ),
            ),
            None => (s, None),
        };
        let Some((host, path)) = rest.split_once('/') else {
            return Err(ReferenceError::ShortName(s.to_string()));
        };
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(ReferenceError::ShortName(s.to_string()));
        }
        // A tag is after the last ':' that follows the last '/'.
        let last = path.rsplit('/').next().unwrap_or(path);
        let (repository, tag) = match last.rsplit_once(':') {
            Some((_, t)) => (&path[..path.len() - t.len() - 1], Some(t.to_string())),
            None => (path, None),
        };
        let ok_repo = !repository.is_empty()
            && repository.split('/').all(|c| {
                // Components begin and end with a letter or digit, so `.` and `..` never pass.
                c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                    && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if !ok_repo {
            return Err(invalid(
                "repository names are lowercase letters, digits, . _ - and /",
            ));
        }
        if let Some(t) = &tag {
            if t.is_empty()
                || t.len() > 128
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(invalid("tags are letters, digits, . _ - (at most 128)"));
            }
        }
        Ok(Reference {
            host: host.to_string(),
            repository: repository.to_string(),
            tag: if tag.is_none() && digest.is_none() {
                Some("latest".into())
            } else {
                tag
            },
            digest,
        })
    }

    /// What the registry's manifest endpoint is asked for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// The name the store records: `host/repo:tag`, or `host/repo@digest` when pulled by digest.
    pub fn store_name(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{}/{}:{}", self.host, self.repository, t),
            (None, Some(d)) => format!("{}/{}@{}", self.host, self.repository, d),
            (None, None) => format!("{}/{}:latest", self.host, self.repository),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_with_port_tag_and_digest() {
        let r = Reference::parse("127.0.0.1:5000/lasso/busybox:1.36").unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repository, "lasso/busybox");
        assert_eq!(r.tag.as_deref(), Some("1.36"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost/x@{d}")).unwrap();
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(
            Reference::parse("localhost/x").unwrap().tag.as_deref(),
            Some("latest")
        );
    }

    #[test]
    fn short_and_hostile_names_are_refused() {
        assert!(matches!(
            Reference::parse("busybox"),
            Err(ReferenceError::ShortName(_))
        ));
        assert!(matches!(
            Reference::parse("library/busybox"),
            Err(ReferenceError::ShortName(_))
        ));
        assert!(Reference::parse("localhost/../x").is_err());
        assert!(Reference::parse("localhost/x:../../y").is_err());
    }
}
