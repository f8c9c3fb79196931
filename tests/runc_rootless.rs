//! Rootless: `spec --rootless` + `run`, and the create/start/state/delete cycle, with the
//! binary running as the unprivileged user `nobody` (65534) through setpriv, as a CI runner
//! would. The container's root is that user; the kernel grants nothing more.

mod runc_support;
use runc_support::*;
use std::process::Command;

const NOBODY: u32 = 65534;

fn as_nobody(runc: &Runc) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin())
        .arg("--root")
        .arg(runc.root.path());
    c
}

fn rootless_setup(script: &str) -> Option<(Runc, Bundle)> {
    if !can_run() {
        return None;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipping: setpriv (util-linux) missing");
        return None;
    }
    let runc = Runc::new();
    std::os::unix::fs::chown(runc.root.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let b = Bundle::with_spec_args(script, true);
    b.edit(|s| {
        s["linux"]["uidMappings"][0]["hostID"] = NOBODY.into();
        s["linux"]["gidMappings"][0]["hostID"] = NOBODY.into();
    });
    Some((runc, b))
}

#[test]
fn rootless_spec_runs_as_an_unprivileged_user() {
    let Some((runc, b)) = rootless_setup(
        "id -u; cat /proc/self/uid_map; grep CapEff /proc/self/status; hostname; \
         echo x > /proc/sys/kernel/hostname 2>/dev/null || echo sys-readonly; touch /tmp/made && echo ok",
    ) else {
        return;
    };
    // The rootfs belongs to the mapped user, as an unpacked image of that user would.
    std::os::unix::fs::chown(b.rootfs().join("tmp"), Some(NOBODY), Some(NOBODY)).unwrap();
    b.edit(|s| s["root"]["readonly"] = false.into());
    let id = unique_id("rootless");
    let out = as_nobody(&runc)
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(&words[..4], &["0", "0", "65534", "1"], "{text}");
    assert!(text.contains("CapEff:\t0000000020000420"), "{text}");
    assert!(text.contains("sys-readonly"), "{text}");
    assert!(text.ends_with("ok\n"), "{text}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(b.rootfs().join("tmp/made"))
            .unwrap()
            .uid(),
        NOBODY
    );
    assert!(!runc.root.path().join(&id).exists());
}

#[test]
fn rootless_lifecycle_create_start_kill_delete() {
    let Some((runc, b)) = rootless_setup("sleep 1000") else {
        return;
    };
    let id = unique_id("rlcycle");
    let _g = Guard::new(&runc, &id);
    let status = as_nobody(&runc)
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(b.path().join("err")).unwrap())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(b.path().join("err")).unwrap()
    );
    let state = |r: &Runc| {
        let out = as_nobody(r).args(["state", &id]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state(&runc), "created");
    assert!(as_nobody(&runc)
        .args(["start", &id])
        .status()
        .unwrap()
        .success());
    assert_eq!(state(&runc), "running");
    let ex = as_nobody(&runc)
        .args(["exec", &id, "id", "-u"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ex.stdout),
        "0\n",
        "{}",
        String::from_utf8_lossy(&ex.stderr)
    );
    assert!(as_nobody(&runc)
        .args(["kill", &id, "KILL"])
        .status()
        .unwrap()
        .success());
    assert!(runc.wait_status(&id, "stopped"));
    assert!(as_nobody(&runc)
        .args(["delete", &id])
        .status()
        .unwrap()
        .success());
    assert!(!runc.root.path().join(&id).exists());
}
