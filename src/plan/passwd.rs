//! The home directory of a user, read from `/etc/passwd` directly when that gives the answer
//! glibc's `getpwuid` would give, and through NSS otherwise.
//!
//! Planning asks for the workspace owner's home on every root run (`Identity::resolve`). Through
//! NSS that is ~0.1 ms here: glibc first tries two connections to nscd's socket, stats and parses
//! `/etc/nsswitch.conf`, then reads `/etc/passwd` through stdio. When `nsswitch.conf` names
//! `files` first for the `passwd` database, glibc returns the first `/etc/passwd` line with the
//! uid and asks no other source (a found entry ends the lookup unless an action after `files`
//! says otherwise), so reading that line ourselves is the same answer. Anything this module
//! does not fully understand (no `nsswitch.conf`, another source first, an action bracket after
//! `files`, a malformed line, no line with the uid) goes to NSS: never a guess.
//! It owns no state and writes nothing.

use std::path::{Path, PathBuf};

/// The home directory of `uid` as glibc's `getpwuid` reports it, `None` when no source knows
/// the uid.
pub fn home_of(uid: u32) -> Option<PathBuf> {
    match home_from_files(
        uid,
        Path::new("/etc/nsswitch.conf"),
        Path::new("/etc/passwd"),
    ) {
        Lookup::Found(home) => Some(home),
        Lookup::AskNss => nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.dir),
    }
}

/// What the files alone can say.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    /// The first entry of the uid in the passwd file, which NSS would return too.
    Found(PathBuf),
    /// The files cannot stand for NSS here: ask it.
    AskNss,
}

fn home_from_files(uid: u32, nsswitch: &Path, passwd: &Path) -> Lookup {
    let Ok(conf) = std::fs::read(nsswitch) else {
        return Lookup::AskNss;
    };
    if !files_answer_first(&conf) {
        return Lookup::AskNss;
    }
    match std::fs::read(passwd) {
        Ok(text) => first_home(&text, uid),
        Err(_) => Lookup::AskNss,
    }
}

/// Whether `nsswitch.conf` makes `files` the first source of the `passwd` database, with no
/// action bracket after it (an action could send a found entry on to the next source).
fn files_answer_first(conf: &[u8]) -> bool {
    let mut sources = None;
    for line in conf.split(|&b| b == b'\n') {
        let line = match line.iter().position(|&b| b == b'#') {
            Some(i) => &line[..i],
            None => line,
        };
        let Ok(line) = std::str::from_utf8(line) else {
            return false;
        };
        let Some((db, rest)) = line.split_once(':') else {
            continue;
        };
        if !db.trim().eq_ignore_ascii_case("passwd") {
            continue;
        }
        if sources.is_some() {
            // Two `passwd` lines: which one glibc takes is not ours to guess.
            return false;
        }
        sources = Some(rest.split_whitespace().take(2).collect::<Vec<_>>());
    }
    match sources.as_deref() {
        Some(["files"]) => true,
        Some(["files", next]) => !next.starts_with('['),
        _ => false,
    }
}

/// The home of the first line of `passwd` whose uid field is `uid`. A line this parser cannot
/// read before that one sends the lookup to NSS: glibc might have read it differently.
fn first_home(passwd: &[u8], uid: u32) -> Lookup {
    let Ok(text) = std::str::from_utf8(passwd) else {
        return Lookup::AskNss;
    };
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        // name:password:uid:gid:gecos:home:shell; compat entries (`+`, `-`) belong to another
        // module's syntax.
        if fields.len() != 7
            || fields[0].is_empty()
            || fields[0].starts_with(['+', '-', ' ', '\t'])
            || !is_decimal(fields[2])
            || !is_decimal(fields[3])
        {
            return Lookup::AskNss;
        }
        if fields[2].parse::<u32>() == Ok(uid) {
            return Lookup::Found(PathBuf::from(fields[5]));
        }
    }
    Lookup::AskNss
}

fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        \n\
        alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n\
        alias:x:1000:1000::/home/alias:/bin/sh\n";

    #[test]
    fn files_first_is_the_only_case_read_directly() {
        assert!(files_answer_first(b"passwd: files\n"));
        assert!(files_answer_first(
            b"# x\npasswd:         files systemd\ngroup: files\n"
        ));
        assert!(files_answer_first(b"passwd: files # trailing comment\n"));
        for conf in [
            "passwd: systemd files\n",
            "passwd: compat\n",
            "passwd: files [SUCCESS=continue] ldap\n",
            "passwd: files\npasswd: ldap\n",
            "passwd: files\nPASSWD: ldap\n",
            "group: files\n",
            "passwd:\n",
            "",
        ] {
            assert!(!files_answer_first(conf.as_bytes()), "{conf:?}");
        }
    }

    #[test]
    fn the_first_line_of_the_uid_wins_as_in_nss_files() {
        assert_eq!(
            first_home(PASSWD.as_bytes(), 1000),
            Lookup::Found("/home/alice".into())
        );
        assert_eq!(
            first_home(PASSWD.as_bytes(), 0),
            Lookup::Found("/root".into())
        );
        assert_eq!(first_home(PASSWD.as_bytes(), 4321), Lookup::AskNss);
    }

    #[test]
    fn a_line_it_cannot_read_before_the_match_goes_to_nss() {
        for bad in [
            "+bob:x:1000:1000::/home/bob:/bin/sh\n",
            "bob:x: 1000:1000::/home/bob:/bin/sh\n",
            "bob:x:1000:1000:/home/bob:/bin/sh\n",
            "bob:x:1000:1000::/home/bob:/bin/sh:extra\n",
            " bob:x:1000:1000::/home/bob:/bin/sh\n",
        ] {
            let text = format!("{bad}{PASSWD}");
            assert_eq!(first_home(text.as_bytes(), 1000), Lookup::AskNss, "{bad:?}");
        }
    }

    #[test]
    fn missing_files_go_to_nss() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nsswitch.conf");
        let passwd = dir.path().join("passwd");
        assert_eq!(home_from_files(1000, &conf, &passwd), Lookup::AskNss);
        std::fs::write(&conf, "passwd: files\n").unwrap();
        assert_eq!(home_from_files(1000, &conf, &passwd), Lookup::AskNss);
        std::fs::write(&passwd, PASSWD).unwrap();
        assert_eq!(
            home_from_files(1000, &conf, &passwd),
            Lookup::Found("/home/alice".into())
        );
    }

    #[test]
    fn every_user_of_this_host_gets_the_home_glibc_reports() {
        // The witness is glibc itself: for each uid in this host's passwd file, the fast path
        // (when it answers) must agree with getpwuid.
        let text = std::fs::read_to_string("/etc/passwd").unwrap();
        let mut checked = 0;
        for line in text.lines() {
            let Some(uid) = line.split(':').nth(2).and_then(|u| u.parse::<u32>().ok()) else {
                continue;
            };
            let nss = nix::unistd::User::from_uid(uid.into())
                .unwrap()
                .map(|u| u.dir);
            assert_eq!(home_of(uid), nss, "uid {uid}");
            checked += 1;
        }
        assert!(checked > 0);
        assert_eq!(home_of(u32::MAX - 7), None);
    }
}
