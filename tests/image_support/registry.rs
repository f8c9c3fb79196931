//! A real registry (Debian's docker-registry) on a free loopback port, with its own config and
//! storage in a tempdir, seeded with skopeo. The process is ours and is killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Registry {
    child: Child,
    pub host: String,
    pub storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// Starts a registry; with `user`, behind htpasswd (bcrypt) basic auth.
    pub fn start(user: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let port = free_port();
        let mut auth = String::new();
        if let Some((u, p)) = user {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("htpasswd (apache2-utils) is installed");
            assert!(out.status.success());
            std::fs::write(&htpasswd, out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: lasso-test\n    path: {}\n",
                htpasswd.display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            storage.display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed (.ci/run)");
        let r = Registry {
            child,
            host: format!("127.0.0.1:{port}"),
            storage,
            _dir: dir,
        };
        // Readiness, not timing: wait until it accepts connections (or give up after ~20 s).
        for _ in 0..400 {
            if TcpStream::connect(&r.host).is_ok() {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("docker-registry did not start on {}", r.host);
    }

    /// Copies `oci:LAYOUT:REF` into this registry as `repo_tag` (all platforms).
    pub fn seed(&self, layout: &Path, layout_ref: &str, repo_tag: &str, creds: Option<&str>) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--all", "--dest-tls-verify=false", "--quiet"]);
        if let Some(c) = creds {
            cmd.args(["--dest-creds", c]);
        }
        cmd.arg(format!("oci:{}:{layout_ref}", layout.display()));
        cmd.arg(format!("docker://{}/{repo_tag}", self.host));
        let out = cmd.output().expect("skopeo is installed (.ci/run)");
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
