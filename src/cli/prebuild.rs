//! `lasso prebuild` (the thin face of `crate::image::prebuild`) and the `--image` choice of
//! `run`/`up`/`shell`: which image from the store becomes a sandbox's root.

use crate::agents::Agent;
use crate::cli::{CliError, CliResult};
use crate::image::prebuild::{self, PrebuildError, PrebuildOptions};
use crate::image::progress::Progress;
use crate::image::store::Store;
use crate::plan::{self, ImageRoot, ImageRootError};
use clap::Args;
use std::path::PathBuf;

// Build the agent images of Dockerfile.images and import them into lasso's image store.
#[derive(Debug, Args)]
pub struct PrebuildArgs {
    /// The target to build: base, claude-code, opencode or codex.
    #[arg(long, short = 'a', default_value = "claude-code", value_name = "AGENT")]
    pub agent: String,
    /// The image `base` starts from (`ARG BASE`), e.g. your own Debian mirror's image.
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// The builder (default: the first of buildah, podman, docker on PATH).
    #[arg(long, value_name = "buildah|podman|docker")]
    pub builder: Option<String>,
    /// Fetch the base image without TLS (a plain-HTTP local registry; buildah and podman).
    #[arg(long)]
    pub insecure: bool,
    /// Extra build argument KEY=VALUE, e.g. CLAUDE_CODE_VERSION=1.0.0 (repeatable).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Network of the build's RUN steps, passed to the builder (e.g. `host`).
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// PEM file of extra CA certificates the build and the image trust (a TLS-inspecting
    /// proxy's CA, say); at most 128 KiB, since it travels as a build argument.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Image store directory (default: $XDG_DATA_HOME/lasso/images, or /var/lib/lasso/images for root).
    #[arg(long, env = "LASSO_IMAGE_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: PrebuildArgs) -> CliResult {
    let root = args.store.clone().unwrap_or_else(Store::default_root);
    let store = Store::open(&root).map_err(|e| CliError::failure(e.to_string()))?;
    let extra_ca = match &args.ca_file {
        None => None,
        Some(f) => {
            let pem = std::fs::read_to_string(f)
                .map_err(|e| CliError::usage(format!("--ca-file {}: {e}", f.display())))?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") || pem.len() > 120 << 10 {
                return Err(CliError::usage(format!(
                    "--ca-file {}: not a PEM certificate file of at most 120 KiB",
                    f.display()
                ))
                .hint("pass only the extra CA certificates, not the whole system bundle"));
            }
            Some(pem)
        }
    };
    let opts = PrebuildOptions {
        agent: args.agent,
        base: args.base,
        builder: args.builder,
        insecure: args.insecure,
        build_args: args.build_args,
        network: args.network,
        extra_ca,
    };
    let rec = prebuild::prebuild(&store, &opts, &Progress::choose(args.quiet, false)).map_err(
        |e| match e {
            PrebuildError::NoBuilder | PrebuildError::BuilderMissing(_) => {
                CliError::failure(e.to_string())
            }
            PrebuildError::UnknownBuilder(_) | PrebuildError::UnknownTarget(_) => {
                CliError::usage(e.to_string())
            }
            e => CliError::failure(e.to_string()),
        },
    )?;
    println!("{} {}", rec.name, rec.manifest);
    eprintln!("lasso: run it with `lasso up --image {}`", rec.name);
    Ok(crate::cli::exit::OK)
}

/// The sandbox's image root: `--image` when given, else the profile's `filesystem.image`.
/// The profile's `prebuilt` is a preference: this agent's prebuilt image when the store has
/// it, else the host view with a note saying how to build it. Every other name must exist.
pub fn image_choice(
    flag: Option<&str>,
    profile_image: Option<&str>,
    agent: &Agent,
) -> CliResult<Option<ImageRoot>> {
    if flag.is_some() {
        return image_for(flag, agent);
    }
    match profile_image {
        None => Ok(None),
        Some("prebuilt") => match image_for(Some("prebuilt"), agent) {
            Ok(root) => Ok(root),
            Err(_) => {
                eprintln!(
                    "lasso: the profile prefers the prebuilt image {}, which is not in the store; using the host view (build it with `lasso prebuild --agent {}`)",
                    prebuild::image_name(agent.name),
                    agent.name
                );
                Ok(None)
            }
        },
        Some(name) => image_for(Some(name), agent).map_err(|mut e| {
            e.message = format!("{} (from the profile's filesystem.image)", e.message);
            e
        }),
    }
}

/// The image root for `--image REF`: a store name, or `prebuilt` for this agent's
/// `lasso/<agent>:<version>`. Without the flag: none.
pub fn image_for(flag: Option<&str>, agent: &Agent) -> CliResult<Option<ImageRoot>> {
    let Some(reference) = flag else {
        return Ok(None);
    };
    let name = match reference {
        "prebuilt" => prebuild::image_name(agent.name),
        r => r.to_string(),
    };
    let root = std::env::var_os("LASSO_IMAGE_STORE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(Store::default_root);
    plan::resolve_image(&root, &name)
        .map(Some)
        .map_err(|e| match e {
            ImageRootError::Unknown { .. } => CliError::usage(format!("--image {reference}: {e}")),
            e => CliError::failure(format!("--image {reference}: {e}")),
        })
}
