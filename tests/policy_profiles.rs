//! Profiles: the built-ins load, `extends` merges by presence, list edits do what the README
//! says, and every broken profile is an error naming file, line, column and the fix.

use lasso::paths::Dirs;
use lasso::policy::{self, CommandMode, NetworkMode, ProfileError, WorkspaceAccess};
use std::path::{Path, PathBuf};

/// A config dir of our own, so user profiles never touch the machine's /etc/lasso.
struct Config {
    _tmp: tempfile::TempDir,
    dirs: Dirs,
}

impl Config {
    fn new() -> Config {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("profiles")).expect("mkdir");
        let dirs = Dirs {
            config: root.clone(),
            state: root.join("state"),
            data: root.join("data"),
            runtime: root.join("run"),
            audit_logs: root.join("audit"),
        };
        Config { _tmp: tmp, dirs }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self
            .dirs
            .config
            .join("profiles")
            .join(format!("{name}.toml"));
        std::fs::write(&p, text).expect("write profile");
        p
    }

    fn load(&self, name: &str) -> Result<policy::ResolvedProfile, ProfileError> {
        policy::load(name, &self.dirs)
    }
}

fn blocked(p: &policy::ResolvedProfile, cmd: &str) -> bool {
    !policy::decide_shell(p, cmd).allowed()
}

#[test]
fn every_builtin_profile_loads_and_resolves() {
    let c = Config::new();
    let mut digests = Vec::new();
    for (name, _) in policy::BUILTINS {
        let p = c.load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&p.name, name);
        assert!(!p.description.is_empty(), "{name} has a description");
        assert_eq!(
            p.digest(),
            c.load(name).unwrap().digest(),
            "digest is deterministic"
        );
        digests.push(p.digest());
    }
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 5, "the five built-ins differ");
}

#[test]
fn builtins_mean_what_the_table_says() {
    let c = Config::new();
    let std = c.load("standard").unwrap();
    assert_eq!(std.commands.mode, CommandMode::Blocklist);
    assert_eq!(std.network.mode, NetworkMode::Allowlist);
    assert!(std.network.registries.contains(&"pypi".to_string()));
    let open = c.load("open").unwrap();
    assert_eq!(open.network.mode, NetworkMode::Full);
    assert!(
        open.network
            .blocked_cidrs
            .iter()
            .any(|c| c == "169.254.0.0/16"),
        "metadata stays blocked"
    );
    assert!(
        open.network.blocked_cidrs.iter().any(|c| c == "10.0.0.0/8"),
        "private ranges stay blocked"
    );
    assert!(
        open.network.blocked_ports.contains(&5432),
        "database ports stay blocked"
    );
    assert_eq!(c.load("offline").unwrap().network.mode, NetworkMode::None);
    let strict = c.load("strict").unwrap();
    assert_eq!(strict.commands.mode, CommandMode::Allowlist);
    assert_eq!(strict.network.mode, NetworkMode::None);
    let eval = c.load("evaluation").unwrap();
    assert_eq!(eval.filesystem.workspace, WorkspaceAccess::Ro);
    assert_eq!(std.resources.memory_bytes, Some(8 << 30));
    assert_eq!(std.resources.cpu_millis, Some(4000));
    for name in [
        "rm",
        "dd",
        "mkfs.ext4",
        "mount",
        "umount",
        "chroot",
        "insmod",
        "rmmod",
        "modprobe",
        "reboot",
        "shutdown",
        "halt",
        "poweroff",
        "systemctl",
        "service",
        "iptables",
        "ip6tables",
        "nft",
        "tc",
        "nsenter",
        "unshare",
        "docker",
        "podman",
        "kubectl",
        "helm",
        "su",
        "sudo",
        "doas",
        "passwd",
        "useradd",
        "usermod",
        "groupadd",
        "crontab",
        "at",
        "nc",
        "ncat",
        "netcat",
        "socat",
        "telnet",
        "ssh",
        "scp",
        "sftp",
        "pkill",
        "kill",
        "killall",
        "fdisk",
        "parted",
        "psql",
        "mysql",
        "mariadb",
        "mongo",
        "mongosh",
        "redis-cli",
        "sqlcmd",
        "cqlsh",
        "clickhouse-client",
    ] {
        let v = policy::decide_shell(&std, &format!("{name} x"));
        let d = &v.decisions[0];
        assert!(!v.allowed(), "{name} is in the dangerous set");
        assert!(
            d.category.as_deref().is_some_and(|c| c != "policy"),
            "{name} carries a category"
        );
        assert!(
            d.rule
                .as_ref()
                .is_some_and(|r| r.origin == "builtin:standard" && r.line > 1),
            "{name} names its line"
        );
    }
}

#[test]
fn team_secure_example_from_lasso_loads_and_blocks_what_it_says() {
    let c = Config::new();
    c.write(
        "team-secure",
        "# team-secure.toml\nextends = \"strict\"\nname = \"team-secure\"\n\n[commands.blocked_args]\ngit = [\"push --force\", \"config --global\"]\n",
    );
    let p = c.load("team-secure").unwrap();
    assert_eq!(p.name, "team-secure");
    assert_eq!(
        p.commands.mode,
        CommandMode::Allowlist,
        "inherits strict's allowlist"
    );
    assert!(blocked(&p, "git push --force"));
    assert!(blocked(&p, "git config --global user.name x"));
    assert!(
        blocked(&p, "curl https://example.com"),
        "strict's allowlist still applies"
    );
    assert!(!blocked(&p, "git status"));
    let rule = policy::decide_shell(&p, "git push origin -f --force").decisions[0]
        .rule
        .clone()
        .unwrap();
    assert!(
        rule.origin.ends_with("team-secure.toml") || rule.origin == "builtin:strict",
        "{rule}"
    );
}

#[test]
fn a_key_written_in_the_child_wins_even_when_it_equals_the_default() {
    let c = Config::new();
    c.write(
        "quiet",
        "extends = \"standard\"\n[audit]\nenabled = false\n[filesystem]\nworkspace = \"ro\"\n",
    );
    c.write("loud", "extends = \"quiet\"\n[audit]\nenabled = true\n");
    let p = c.load("loud").unwrap();
    assert!(
        p.audit.enabled,
        "child's explicit default beats the parent's false"
    );
    assert_eq!(
        p.filesystem.workspace,
        WorkspaceAccess::Ro,
        "unwritten keys are inherited"
    );
    assert_eq!(p.chain.len(), 3);
}

#[test]
fn lists_are_replaced_added_to_and_removed_from() {
    let c = Config::new();
    c.write("edit", "extends = \"standard\"\n[commands]\nblocked = { remove = [\"kill\"], add = [{ name = \"curl\", category = \"network\", reason = \"no downloads\" }] }\n[network]\nallowed_domains = [\"example.org\"]\n");
    let p = c.load("edit").unwrap();
    assert!(!blocked(&p, "kill 1"), "removed from the parent's list");
    assert!(blocked(&p, "rm x"), "the rest of the parent's list stays");
    let v = policy::decide_shell(&p, "curl x");
    assert!(!v.allowed());
    assert_eq!(v.decisions[0].rule.as_ref().unwrap().line, 3);
    assert_eq!(
        p.network.allowed_domains,
        vec!["example.org".to_string()],
        "a plain array replaces"
    );
}

#[test]
fn an_image_root_is_inherited_and_an_empty_name_returns_to_the_host_view() {
    let c = Config::new();
    c.write(
        "imaged",
        "extends = \"standard\"\n[filesystem]\nimage = \"prebuilt\"\n",
    );
    c.write("child", "extends = \"imaged\"\n");
    c.write(
        "hostview",
        "extends = \"imaged\"\n[filesystem]\nimage = \"\"\n",
    );
    assert_eq!(
        c.load("child").unwrap().filesystem.image.as_deref(),
        Some("prebuilt")
    );
    assert_eq!(c.load("hostview").unwrap().filesystem.image, None);
    assert_eq!(c.load("standard").unwrap().filesystem.image, None);
}

fn invalid(e: ProfileError) -> (u32, u32, String, Option<String>) {
    let hint = e.hint();
    match e {
        ProfileError::Invalid {
            line,
            column,
            message,
            ..
        } => (line, column, message, hint),
        other => panic!("expected an Invalid error, got {other}"),
    }
}

#[test]
fn unknown_key_names_line_column_and_the_nearest_key() {
    let c = Config::new();
    c.write("typo", "name = \"t\"\n\n[comands]\nmode = \"allowlist\"\n");
    let (line, col, msg, hint) = invalid(c.load("typo").unwrap_err());
    assert_eq!((line, col), (3, 2));
    assert!(msg.contains("comands"), "{msg}");
    assert_eq!(hint.as_deref(), Some("did you mean `commands`?"));
    c.write("typo2", "[network]\nallowed_domain = [\"a.b\"]\n");
    let (line, _, _, hint) = invalid(c.load("typo2").unwrap_err());
    assert_eq!(line, 2);
    assert_eq!(hint.as_deref(), Some("did you mean `allowed_domains`?"));
    c.write("typo3", "[commands]\nmode = \"allowlst\"\n");
    let (_, _, _, hint) = invalid(c.load("typo3").unwrap_err());
    assert_eq!(hint.as_deref(), Some("did you mean `allowlist`?"));
}

#[test]
fn wrong_types_and_bad_values_name_their_line() {
    let c = Config::new();
    for (text, line, needle) in [
        ("[resources]\npids = \"many\"\n", 2, "invalid type"),
        ("[resources]\nmemory = \"8 gigs\"\n", 2, "unit"),
        ("[resources]\ncpu = -1\n", 2, "CPU"),
        (
            "[network]\nallowed_ports = [80, 70000]\n",
            2,
            "invalid value",
        ),
        (
            "[network]\nallowed_cidrs = [\n  \"10.0.0.0/8\",\n  \"10.0.0.0/99\",\n]\n",
            4,
            "prefix",
        ),
        (
            "[network]\nallowed_domains = [\"exa mple.com\"]\n",
            2,
            "domain",
        ),
        (
            "[network]\nregistries = [\"pipy\"]\n",
            2,
            "did you mean \"pypi\"",
        ),
        (
            "[filesystem]\nhidden = [\"relative/path\"]\n",
            2,
            "absolute",
        ),
        (
            "[commands]\nblocked = [\"/usr/bin/rm\"]\n",
            2,
            "without `/`",
        ),
        (
            "extends = \"standard\"\n[commands]\nblocked = { remove = [\"rn\"] }\n",
            3,
            "did you mean \"rm\"",
        ),
        ("[filesystem]\nimage = \"my image\"\n", 2, "image name"),
        ("name = \"x\"\n[commands\n", 2, ""),
    ] {
        c.write("bad", text);
        let (l, _, msg, _) = invalid(c.load("bad").unwrap_err());
        assert_eq!(l, line, "{text:?}: {msg}");
        assert!(msg.contains(needle), "{text:?}: {msg}");
    }
}

#[test]
fn extends_cycles_and_missing_parents_are_errors() {
    let c = Config::new();
    c.write("a", "extends = \"b\"\n");
    c.write("b", "extends = \"a\"\n");
    assert!(matches!(c.load("a"), Err(ProfileError::Cycle { .. })));
    c.write("self", "extends = \"self\"\n");
    assert!(matches!(c.load("self"), Err(ProfileError::Cycle { .. })));
    c.write("orphan", "name = \"o\"\nextends = \"strct\"\n");
    let (line, _, msg, hint) = invalid(c.load("orphan").unwrap_err());
    assert_eq!(line, 2);
    assert!(msg.contains("strct"));
    assert_eq!(hint.as_deref(), Some("did you mean \"strict\"?"));
    match c.load("standrad") {
        Err(e @ ProfileError::NotFound { .. }) => {
            assert!(e.hint().unwrap().contains("\"standard\""))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn chains_of_user_profiles_and_relative_paths_resolve() {
    let c = Config::new();
    c.write("base", "extends = \"offline\"\n[resources]\npids = 77\n");
    c.write("mid", "extends = \"base\"\n");
    let leaf = c.dirs.config.join("leaf.toml");
    std::fs::write(
        &leaf,
        "extends = \"profiles/mid.toml\"\n[resources]\nmemory = \"512MiB\"\n",
    )
    .unwrap();
    let p = policy::load(leaf.to_str().unwrap(), &c.dirs).unwrap();
    assert_eq!(p.resources.pids, Some(77));
    assert_eq!(p.resources.memory_bytes, Some(512 << 20));
    assert_eq!(p.network.mode, NetworkMode::None);
    assert_eq!(p.chain.len(), 5, "{:?}", p.chain);
}

#[test]
fn huge_and_non_utf8_profile_files_are_refused_cleanly() {
    let c = Config::new();
    let big = c.dirs.config.join("big.toml");
    std::fs::write(&big, vec![b'#'; 2 << 20]).unwrap();
    assert!(matches!(
        policy::load(big.to_str().unwrap(), &c.dirs),
        Err(ProfileError::TooLarge { .. })
    ));
    let bin = c.dirs.config.join("bin.toml");
    std::fs::write(&bin, b"name = \"\xff\"\n").unwrap();
    let (line, _, msg, _) = invalid(policy::load(bin.to_str().unwrap(), &c.dirs).unwrap_err());
    assert_eq!(line, 1);
    assert!(msg.contains("UTF-8"));
}

/// Every ```toml block in the README is a profile that must load (blocks whose first line is
/// `# NAME.toml` are saved under that name, so later blocks may extend earlier ones).
#[test]
fn every_profile_example_in_the_readme_loads() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    // Profile examples are fenced as plain ```toml; other TOML files shown in the README (a
    // containers.conf, a containerd config) carry their file name in the info string.
    let c = Config::new();
    let mut names = Vec::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("closed block");
        let block = &body[..end];
        let name = block
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# "))
            .and_then(|l| l.strip_suffix(".toml"))
            .map(str::to_string)
            .unwrap_or_else(|| format!("readme-{}", names.len()));
        c.write(&name, block);
        names.push(name);
        rest = &body[end + 3..];
    }
    assert!(names.len() >= 3, "the README shows profile examples");
    for n in &names {
        c.load(n)
            .unwrap_or_else(|e| panic!("README example {n} does not load: {e}"));
    }
}
