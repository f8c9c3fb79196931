//! `lasso image pull`: the OCI distribution protocol over a blocking HTTP client. Manifests are
//! fetched (index -> this platform's manifest), verified against the digest asked for, and every
//! blob streams into the store through [`Store::put_blob`], which verifies digest and size before
//! anything becomes visible. TLS uses the system's roots; plain HTTP only for hosts the user
//! names with `--insecure`.

use crate::image::auth::{self, Credentials};
use crate::image::digest::Digest;
use crate::image::progress::Progress;
use crate::image::reference::{Reference, ReferenceError};
use crate::image::spec::{self, Manifest, Platform};
use crate::image::store::{ImageRecord, Store, StoreError, MAX_JSON};
use base64::Engine as _;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("cannot reach the registry {host}: {source}; check the address and that it is running (plain-HTTP registries need --insecure {host})")]
    Unreachable {
        host: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("registry {host} refused {what} with HTTP {status}{hint}")]
    Status {
        host: String,
        what: String,
        status: u16,
        hint: &'static str,
    },
    #[error("registry {host} answered {what} with something that is not a manifest: {source}")]
    BadManifest {
        host: String,
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("manifest of {reference} hashes to {actual}, not the digest asked for; the registry is serving something else")]
    ManifestDigest { reference: String, actual: Digest },
    #[error("{reference} has no image for {want}; the registry has only: {have}")]
    WrongPlatform {
        reference: String,
        want: Platform,
        have: String,
    },
    #[error("registry {host}: {what} is larger than {MAX_JSON} bytes")]
    TooLarge { host: String, what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = PullError> = std::result::Result<T, E>;

pub struct PullOptions {
    /// Hosts (`host` or `host:port`) spoken to over plain HTTP.
    pub insecure_hosts: Vec<String>,
    pub platform: Platform,
    pub auth_file: Option<PathBuf>,
}

/// Layers downloaded and unpacked at the same time.
const PARALLEL_LAYERS: usize = 3;

#[derive(Clone)]
struct Client<'a> {
    agent: ureq::Agent,
    reference: &'a Reference,
    base: String,
    creds: Option<Credentials>,
    /// The `Authorization` value that worked last (Basic or a bearer token).
    authorization: Option<String>,
}

/// Pulls `reference` into the store and names it; returns the record.
pub fn pull(
    store: &Store,
    reference: &str,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<ImageRecord> {
    let r = Reference::parse(reference)?;
    let insecure = opts.insecure_hosts.iter().any(|h| h == &r.host);
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .timeout_connect(Some(Duration::from_secs(20)))
        .https_only(!insecure)
        .build()
        .into();
    let mut c = Client {
        agent,
        reference: &r,
        base: format!(
            "{}://{}/v2/{}",
            if insecure { "http" } else { "https" },
            r.host,
            r.repository
        ),
        creds: auth::lookup(&r.host, &auth::auth_files(opts.auth_file.as_deref())),
        authorization: None,
    };

    let (mut manifest, mut digest) = c.manifest(&r.manifest_ref())?;
    if let Some(want) = &r.digest {
        if &digest != want {
            return Err(PullError::ManifestDigest {
                reference: reference.into(),
                actual: digest,
            });
        }
    }
    let (mut m, mut raw) = manifest;
    if m.is_index() {
        store.put_bytes(&raw)?;
        let pick = spec::select_platform(&m.manifests, &opts.platform).map_err(|have| {
            PullError::WrongPlatform {
                reference: reference.into(),
                want: opts.platform.clone(),
                have: have.join(", "),
            }
        })?;
        let pick_digest = pick.digest.clone();
        (manifest, digest) = c.manifest(pick_digest.as_str())?;
        if digest != pick_digest {
            return Err(PullError::ManifestDigest {
                reference: reference.into(),
                actual: digest,
            });
        }
        (m, raw) = manifest;
    }
    let config = m.config.clone().ok_or_else(|| PullError::Status {
        host: r.host.clone(),
        what: format!("manifest {digest}"),
        status: 200,
        hint: " (it has no config: not a container image)",
    })?;
    if !store.has_blob(&config.digest) {
        let body = c.get(
            &format!("{}/blobs/{}", c.base, config.digest),
            None,
            &format!("config {}", config.digest),
        )?;
        store.put_blob(
            &config.digest,
            Some(config.size),
            body.into_body().into_reader().take(MAX_JSON + 1),
            &Progress::Silent,
        )?;
    }
    let image_config: spec::ImageConfig = store.read_json("config", &config.digest)?;
    if image_config.rootfs.diff_ids.len() != m.layers.len() {
        return Err(StoreError::LayerCount {
            manifest: digest.clone(),
            layers: m.layers.len(),
            diff_ids: image_config.rootfs.diff_ids.len(),
        }
        .into());
    }
    // Each layer is downloaded, verified and unpacked in one pass (no second read of the
    // blob), a few layers at once: overlay-form layers are independent directories, so one
    // layer's unpack overlaps the next one's download. Layers already stored are skipped.
    let todo: Vec<(&spec::Descriptor, &Digest)> = m
        .layers
        .iter()
        .zip(&image_config.rootfs.diff_ids)
        .filter(|(d, diff_id)| !(store.has_blob(&d.digest) && store.layer_path(diff_id).is_dir()))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = todo.len().min(PARALLEL_LAYERS);
    let client = &c;
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let mut c = client.clone();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((d, diff_id)) = todo.get(i) else {
                            return Ok(());
                        };
                        let body = c.get(
                            &format!("{}/blobs/{}", c.base, d.digest),
                            None,
                            &format!("blob {}", d.digest),
                        )?;
                        store.put_layer_streaming(
                            &digest,
                            &d.digest,
                            Some(d.size),
                            diff_id,
                            body.into_body().into_reader(),
                            progress,
                        )?;
                    }
                })
            })
            .collect();
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        first_err.map_or(Ok(()), Err)
    })?;
    // The manifest goes in last: a store entry is never named before its parts are verified.
    store.put_bytes(&raw)?;
    let name = r.store_name();
    store.commit_image(std::slice::from_ref(&name), &digest, progress)?;
    Ok(ImageRecord {
        name,
        manifest: digest,
    })
}

impl Client<'_> {
    /// Fetches a manifest or index and its digest (of the exact bytes served).
    fn manifest(&mut self, reference: &str) -> Result<((Manifest, Vec<u8>), Digest)> {
        let what = format!("manifest {}:{}", self.reference.repository, reference);
        let mut resp = self.get(
            &format!("{}/manifests/{}", self.base, reference),
            Some(ACCEPT),
            &what,
        )?;
        let raw = resp
            .body_mut()
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .map_err(|_| PullError::TooLarge {
                host: self.reference.host.clone(),
                what: what.clone(),
            })?;
        let m: Manifest =
            serde_json::from_slice(&raw).map_err(|source| PullError::BadManifest {
                host: self.reference.host.clone(),
                what,
                source,
            })?;
        let d = Digest::of(&raw);
        Ok(((m, raw), d))
    }

    /// GET with the registry's auth dance: on 401, answer its challenge (Basic, or a bearer
    /// token from its realm) with the stored credentials, once.
    fn get(
        &mut self,
        url: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let mut tried_auth = false;
        loop {
            let mut req = self.agent.get(url);
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if let Some(a) = &self.authorization {
                req = req.header("Authorization", a);
            }
            let resp = req.call().map_err(|e| self.unreachable(e))?;
            let status = resp.status().as_u16();
            if status == 200 {
                return Ok(resp);
            }
            if status == 401 && !tried_auth {
                tried_auth = true;
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if let Some(a) = self.answer(&challenge)? {
                    self.authorization = Some(a);
                    continue;
                }
            }
            let hint = match status {
                401 | 403 if self.creds.is_none() => {
                    " (no credentials for this host in auth.json or ~/.docker/config.json)"
                }
                401 | 403 => " (the stored credentials were not accepted)",
                404 => " (no such image, tag or blob)",
                _ => "",
            };
            return Err(PullError::Status {
                host: self.reference.host.clone(),
                what: what.to_string(),
                status,
                hint,
            });
        }
    }

    fn unreachable(&self, e: ureq::Error) -> PullError {
        PullError::Unreachable {
            host: self.reference.host.clone(),
            source: Box::new(e),
        }
    }

    fn basic(&self) -> Option<String> {
        self.creds.as_ref().map(|c| {
            let raw = format!("{}:{}", c.username, c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        })
    }

    fn answer(&mut self, challenge: &str) -> Result<Option<String>> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Ok(self.basic());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(None);
        }
        let param = |k: &str| -> Option<String> {
            params.split(',').find_map(|p| {
                let (key, v) = p.trim().split_once('=')?;
                (key == k).then(|| v.trim_matches('"').to_string())
            })
        };
        let Some(realm) = param("realm") else {
            return Ok(None);
        };
        let mut req = self.agent.get(&realm);
        if let Some(s) = param("service") {
            req = req.query("service", s);
        }
        let scope = param("scope")
            .unwrap_or_else(|| format!("repository:{}:pull", self.reference.repository));
        req = req.query("scope", scope);
        if let Some(b) = self.basic() {
            req = req.header("Authorization", b);
        }
        let mut resp = req.call().map_err(|e| self.unreachable(e))?;
        if resp.status().as_u16() != 200 {
            return Ok(None);
        }
        let mut body = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(MAX_JSON)
            .read_to_end(&mut body)
            .map_err(|e| self.unreachable(ureq::Error::Io(e)))?;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        Ok(v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(|t| format!("Bearer {t}")))
    }
}
