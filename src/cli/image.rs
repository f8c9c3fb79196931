//! `lasso image ...`: the thin face of `crate::image` (store, import, pull, unpack, builders).

use crate::cli::{CliError, CliResult};
use crate::image::import::{self, ImportError, ImportOptions};
use crate::image::progress::Progress;
use crate::image::pull::{self, PullError, PullOptions};
use crate::image::spec::Platform;
use crate::image::store::{Store, StoreError};
use crate::image::unpack;
use clap::{Args, Subcommand};
use std::path::PathBuf;

// Manage OCI images: pull, import, list, inspect, remove, prune, unpack.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Image store directory (default: $XDG_DATA_HOME/lasso/images, or /var/lib/lasso/images for root).
    #[arg(long, global = true, env = "LASSO_IMAGE_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Machine-readable output: JSON progress lines and a JSON result.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Pull an image from a registry (HOST[:PORT]/REPO[:TAG][@sha256:DIGEST]).
    Pull {
        reference: String,
        /// Speak plain HTTP to this registry host (repeatable; only the hosts named).
        #[arg(long = "insecure", value_name = "HOST")]
        insecure: Vec<String>,
        /// Credentials file (auth.json format), searched before the usual places.
        #[arg(long, value_name = "FILE")]
        authfile: Option<PathBuf>,
        /// Platform to pick from a multi-arch index (default: this machine's), e.g. linux/arm64.
        #[arg(long, value_name = "OS/ARCH")]
        platform: Option<String>,
    },
    /// Import an OCI layout directory, oci-archive, docker-archive or rootfs tarball.
    Import {
        path: PathBuf,
        /// Name for the image (default: the name the archive carries, else the file name).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_name = "OS/ARCH")]
        platform: Option<String>,
    },
    /// List images in the store.
    #[command(alias = "ls")]
    List,
    /// Show an image's manifest, config and layers as JSON.
    Inspect { name: String },
    /// Remove image names (their data goes with `prune`).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Delete partial downloads and data no image name uses.
    Prune,
    /// Unpack an image's layers into a new directory as one plain root file system.
    Unpack { name: String, target: PathBuf },
    /// Say which image builder `lasso prebuild` would use.
    Builder,
}

pub fn run(args: ImageArgs) -> CliResult {
    let root = args.store.clone().unwrap_or_else(Store::default_root);
    let store = Store::open(&root).map_err(store_err)?;
    let progress = Progress::choose(args.quiet, args.json);
    match args.command {
        ImageCommand::Pull {
            reference,
            insecure,
            authfile,
            platform,
        } => {
            let opts = PullOptions {
                insecure_hosts: insecure,
                platform: parse_platform(platform.as_deref())?,
                auth_file: authfile,
            };
            let rec = pull::pull(&store, &reference, &opts, &progress).map_err(pull_err)?;
            report(
                args.json,
                &serde_json::json!({"event": "pulled", "name": rec.name, "manifest": rec.manifest}),
                &format!("{} {}", rec.name, rec.manifest),
            );
        }
        ImageCommand::Import {
            path,
            name,
            platform,
        } => {
            let opts = ImportOptions {
                name,
                platform: parse_platform(platform.as_deref())?,
            };
            let recs = import::import(&store, &path, &opts, &progress).map_err(import_err)?;
            for r in recs {
                report(
                    args.json,
                    &serde_json::json!({"event": "imported", "name": r.name, "manifest": r.manifest}),
                    &format!("{} {}", r.name, r.manifest),
                );
            }
        }
        ImageCommand::List => {
            let list = store.list().map_err(store_err)?;
            if args.json {
                println!("{}", serde_json::to_string(&list).unwrap_or_default());
            } else {
                println!("{:<50} MANIFEST", "NAME");
                for r in list {
                    println!("{:<50} {}", r.name, &r.manifest.hex()[..12]);
                }
            }
        }
        ImageCommand::Inspect { name } => {
            let d = store.inspect(&name).map_err(store_err)?;
            println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
        }
        ImageCommand::Rm { names } => {
            for n in names {
                let r = store.remove(&n).map_err(store_err)?;
                report(
                    args.json,
                    &serde_json::json!({"event": "removed", "name": r.name}),
                    &format!("removed {}", r.name),
                );
            }
        }
        ImageCommand::Prune => {
            let r = store.prune().map_err(store_err)?;
            report(
                args.json,
                &serde_json::json!({"event": "pruned", "partial": r.partial, "blobs": r.blobs, "layers": r.layers}),
                &format!(
                    "removed {} partial downloads, {} blobs, {} layers",
                    r.partial, r.blobs, r.layers
                ),
            );
        }
        ImageCommand::Unpack { name, target } => {
            unpack_to(&store, &name, &target, &progress, args.json)?;
        }
        ImageCommand::Builder => match crate::image::builder::detect() {
            Some(b) => println!("{} ({})", b.name(), b.path.display()),
            None => {
                return Err(CliError::failure("no image builder found")
                    .hint(crate::image::builder::INSTALL_HINT))
            }
        },
    }
    Ok(crate::cli::exit::OK)
}

/// Unpacks into a sibling temporary directory and renames it into place, so that a failure
/// (a hostile layer, a full disk) leaves no half-made root behind.
fn unpack_to(
    store: &Store,
    name: &str,
    target: &std::path::Path,
    progress: &Progress,
    json: bool,
) -> CliResult<()> {
    if target.exists() {
        return Err(
            CliError::usage(format!("{} already exists", target.display()))
                .hint("unpack into a new directory; lasso does not merge into existing trees"),
        );
    }
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".lasso-unpack-")
        .tempdir_in(parent)
        .map_err(|e| {
            CliError::failure(format!(
                "cannot create a directory in {}: {e}",
                parent.display()
            ))
        })?;
    let opts = unpack::Options::for_current_user(unpack::Mode::Flatten);
    let r = store
        .unpack_flat(name, work.path(), opts, progress)
        .map_err(store_err)?;
    let kept = work.keep();
    std::fs::rename(&kept, target).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        CliError::failure(format!(
            "cannot move the unpacked tree to {}: {e}",
            target.display()
        ))
    })?;
    report(
        json,
        &serde_json::json!({"event": "unpacked", "target": target, "report": r}),
        &format!(
            "unpacked {} entries ({} bytes) into {}",
            r.entries,
            r.bytes,
            target.display()
        ),
    );
    Ok(())
}

fn report(json: bool, value: &serde_json::Value, text: &str) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

fn parse_platform(p: Option<&str>) -> CliResult<Platform> {
    let Some(p) = p else {
        return Ok(Platform::current());
    };
    let mut parts = p.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(os), Some(arch), variant) if !os.is_empty() && !arch.is_empty() => Ok(Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
        }),
        _ => Err(CliError::usage(format!("--platform {p:?} is not OS/ARCH"))
            .hint("e.g. --platform linux/amd64")),
    }
}

fn store_err(e: StoreError) -> CliError {
    match &e {
        StoreError::UnknownImage(_) | StoreError::BadName(_) => CliError::usage(e.to_string()),
        StoreError::NoSpace { .. } => CliError::failure(e.to_string())
            .hint("nothing half-written was kept; free space, then retry"),
        _ => CliError::failure(chain(&e)),
    }
}

fn import_err(e: ImportError) -> CliError {
    match e {
        ImportError::Store(s) => store_err(s),
        ImportError::WrongPlatform { .. }
        | ImportError::NameForMany { .. }
        | ImportError::NotAnImage { .. } => CliError::usage(chain(&e)),
        e => CliError::failure(chain(&e)),
    }
}

fn pull_err(e: PullError) -> CliError {
    match e {
        PullError::Store(s) => store_err(s),
        PullError::Reference(_) | PullError::WrongPlatform { .. } => CliError::usage(chain(&e)),
        e => CliError::failure(chain(&e)),
    }
}

/// An error with its causes, `a: b: c`, skipping causes the message already quotes.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s = format!("{s}: {t}");
        }
        cur = c.source();
    }
    s
}
