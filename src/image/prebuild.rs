//! `lasso prebuild`: builds the agent images of `Dockerfile.images` (embedded in the binary) with
//! the builder found by [`builder::detect`], exports the result as an archive and imports it into
//! lasso's store as `lasso/<agent>:<lasso version>`. The builder's own output streams to stderr;
//! its image storage is its own (lasso never reads it, only the exported archive).

use crate::image::builder::{self, Builder, BuilderKind};
use crate::image::import::{self, ImportError, ImportOptions};
use crate::image::progress::Progress;
use crate::image::spec::Platform;
use crate::image::store::{ImageRecord, Store};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Dockerfile the images are built from.
pub const DOCKERFILE: &str = include_str!("../../Dockerfile.images");
/// Targets of `DOCKERFILE`, `base` first.
pub const TARGETS: &[&str] = &["base", "claude-code", "opencode", "codex"];

#[derive(Debug, thiserror::Error)]
pub enum PrebuildError {
    #[error("no image builder found on PATH; {}", builder::INSTALL_HINT)]
    NoBuilder,
    #[error("--builder {0}: not found on PATH; {hint}", hint = builder::INSTALL_HINT)]
    BuilderMissing(String),
    #[error("--builder {0:?}: unknown builder; use buildah, podman or docker")]
    UnknownBuilder(String),
    #[error("--agent {0:?}: no such target in Dockerfile.images; use one of: base, claude-code, opencode, codex")]
    UnknownTarget(String),
    #[error("cannot run {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}); its output is above")]
    Failed { what: String, status: String },
    #[error("cannot make a build directory: {0}")]
    Temp(#[source] std::io::Error),
    #[error("importing the built image: {0}")]
    Import(#[from] ImportError),
}

/// What to build.
#[derive(Debug, Clone)]
pub struct PrebuildOptions {
    /// A target of `Dockerfile.images`.
    pub agent: String,
    /// `ARG BASE`: the image `base` starts from (the Dockerfile's default when `None`).
    pub base: Option<String>,
    /// The builder by name; the first present when `None`.
    pub builder: Option<String>,
    /// Pull the base over plain HTTP / without TLS verification (buildah and podman).
    pub insecure: bool,
    /// Extra `--build-arg KEY=VALUE`s (agent versions, NPM_CONFIG_REGISTRY).
    pub build_args: Vec<String>,
    /// The builder's `--network` for RUN steps (its default when `None`).
    pub network: Option<String>,
    /// PEM certificates the image should trust (`ARG EXTRA_CA_CERT`), e.g. a proxy's CA.
    pub extra_ca: Option<String>,
}

/// The store name of a prebuilt image for `agent`.
pub fn image_name(agent: &str) -> String {
    format!("lasso/{agent}:{}", env!("CARGO_PKG_VERSION"))
}

/// Picks the builder: the named one, or the first present.
pub fn choose_builder(name: Option<&str>) -> Result<Builder, PrebuildError> {
    let Some(name) = name else {
        return builder::detect().ok_or(PrebuildError::NoBuilder);
    };
    if !["buildah", "podman", "docker"].contains(&name) {
        return Err(PrebuildError::UnknownBuilder(name.to_string()));
    }
    // Search only for the named one, keeping the others' precedence out of it.
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|path| Builder {
            kind: match name {
                "buildah" => BuilderKind::Buildah,
                "podman" => BuilderKind::Podman,
                _ => BuilderKind::Docker,
            },
            path,
        })
        .ok_or_else(|| PrebuildError::BuilderMissing(name.to_string()))
}

/// Runs `cmd` with its stdout and stderr both on our stderr (stdout stays for results).
fn stream(mut cmd: Command, what: &str) -> Result<(), PrebuildError> {
    let err = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(PrebuildError::Temp)?;
    cmd.stdin(Stdio::null()).stdout(Stdio::from(err));
    let status = cmd.status().map_err(|source| PrebuildError::Spawn {
        what: what.to_string(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(PrebuildError::Failed {
            what: what.to_string(),
            status: status.to_string(),
        })
    }
}

/// The builder's local tag for a target (`localhost/` keeps it off every registry).
fn local_tag(target: &str) -> String {
    format!("localhost/{}", image_name(target))
}

fn build_cmd(b: &Builder, ctx: &Path, target: &str, opts: &PrebuildOptions) -> Command {
    let mut c = Command::new(&b.path);
    c.arg("build");
    if b.kind != BuilderKind::Docker {
        // Reuse the `base` stage's layers when the agent's target is built next.
        c.arg("--layers");
        if opts.insecure {
            c.arg("--tls-verify=false");
        }
    }
    if let Some(n) = &opts.network {
        c.arg(format!("--network={n}"));
    }
    c.arg("-f").arg(ctx.join("Dockerfile.images"));
    c.arg("--target").arg(target);
    c.arg("-t").arg(local_tag(target));
    if let Some(base) = &opts.base {
        c.arg("--build-arg").arg(format!("BASE={base}"));
    }
    if let Some(pem) = &opts.extra_ca {
        c.arg("--build-arg").arg(format!("EXTRA_CA_CERT={pem}"));
    }
    for a in &opts.build_args {
        c.arg("--build-arg").arg(a);
    }
    c.arg(ctx);
    c
}

/// Exports the built image to `archive`: oci-archive from buildah and podman, docker-archive
/// from docker (which writes no other kind).
fn export_cmd(b: &Builder, target: &str, archive: &Path) -> Command {
    let mut c = Command::new(&b.path);
    let tag = local_tag(target);
    match b.kind {
        BuilderKind::Buildah => {
            c.arg("push")
                .arg(&tag)
                .arg(format!("oci-archive:{}", archive.display()));
        }
        BuilderKind::Podman => {
            c.args(["save", "--format", "oci-archive", "-o"])
                .arg(archive)
                .arg(&tag);
        }
        BuilderKind::Docker => {
            c.arg("save").arg("-o").arg(archive).arg(&tag);
        }
    }
    c
}

/// Builds `base`, then the agent's target, exports it and imports it into `store`.
pub fn prebuild(
    store: &Store,
    opts: &PrebuildOptions,
    progress: &Progress,
) -> Result<ImageRecord, PrebuildError> {
    if !TARGETS.contains(&opts.agent.as_str()) {
        return Err(PrebuildError::UnknownTarget(opts.agent.clone()));
    }
    let b = choose_builder(opts.builder.as_deref())?;
    eprintln!("lasso: building with {} ({})", b.name(), b.path.display());
    let ctx = store
        .temp_dir("prebuild")
        .map_err(|e| PrebuildError::Temp(std::io::Error::other(e.to_string())))?;
    let dockerfile = ctx.path().join("Dockerfile.images");
    std::fs::write(&dockerfile, DOCKERFILE).map_err(PrebuildError::Temp)?;
    let mut targets = vec!["base"];
    if opts.agent != "base" {
        targets.push(opts.agent.as_str());
    }
    for t in &targets {
        eprintln!("lasso: building target {t}");
        stream(
            build_cmd(&b, ctx.path(), t, opts),
            &format!("{} build --target {t}", b.name()),
        )?;
    }
    let archive: PathBuf = ctx.path().join("image.tar");
    stream(
        export_cmd(&b, &opts.agent, &archive),
        &format!("{} export of {}", b.name(), local_tag(&opts.agent)),
    )?;
    let name = image_name(&opts.agent);
    let recs = import::import(
        store,
        &archive,
        &ImportOptions {
            name: Some(name),
            platform: Platform::current(),
        },
        progress,
    )?;
    recs.into_iter()
        .next()
        .ok_or_else(|| PrebuildError::Failed {
            what: "import".into(),
            status: "the archive held no image".into(),
        })
}
