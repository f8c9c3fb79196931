//! Finding the external programs the network module runs (pasta, nft). `PATH` first, then the
//! sbin directories, which a user's or a CI runner's `PATH` often lacks although `nft` lives
//! there on Debian.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

const SBIN: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// The path of `name`, if an executable file of that name is on `PATH` or in an sbin directory.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_tool_is_not_found() {
        assert!(super::find("lasso-no-such-tool-anywhere").is_none());
    }
}
