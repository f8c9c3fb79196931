//! Sandbox ids: 8 characters of `[a-z0-9]`, from the kernel's random source. Short enough to
//! type, and 36^8 (about 2.8e12) makes collisions among a user's live sandboxes negligible.

use super::error::PlanError;
use std::fmt;

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
pub const ID_LEN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SandboxId(String);

impl SandboxId {
    /// A fresh random id.
    pub fn generate() -> Result<SandboxId, PlanError> {
        let mut out = String::with_capacity(ID_LEN);
        let mut buf = [0u8; 32];
        while out.len() < ID_LEN {
            getrandom::fill(&mut buf).map_err(|e| PlanError::Random(e.to_string()))?;
            // 252 = 7 * 36: rejecting bytes above it keeps every character equally likely.
            for b in buf.iter().filter(|b| **b < 252) {
                if out.len() == ID_LEN {
                    break;
                }
                out.push(ALPHABET[usize::from(*b) % 36] as char);
            }
        }
        Ok(SandboxId(out))
    }

    /// Accepts an id typed by a person (`lasso attach ID`) only if it has the id's shape.
    pub fn parse(s: &str) -> Option<SandboxId> {
        (s.len() == ID_LEN && s.bytes().all(|b| ALPHABET.contains(&b)))
            .then(|| SandboxId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The sandbox's hostname in its UTS namespace.
    pub fn hostname(&self) -> String {
        format!("lasso-{}", self.0)
    }
}

impl fmt::Display for SandboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape_and_differ() {
        let ids: Vec<SandboxId> = (0..200).map(|_| SandboxId::generate().unwrap()).collect();
        for id in &ids {
            assert_eq!(SandboxId::parse(id.as_str()).as_ref(), Some(id));
            assert!(id.hostname().starts_with("lasso-"));
        }
        let mut uniq = ids.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), ids.len());
    }

    #[test]
    fn ids_of_the_wrong_shape_are_rejected() {
        for bad in ["", "abc", "ABCDEFGH", "abcdefg!", "abcdefghi", "../../et"] {
            assert!(SandboxId::parse(bad).is_none(), "{bad}");
        }
    }
}
