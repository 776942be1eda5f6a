//! The cache handle: the Rust API that the C ABI, the CLI and the tests all use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::extract::Limits;
use crate::logging::{self, LogCallback, SinkGuard};
use crate::manifest::Manifest;
use crate::platform::{self, Platform};
use crate::reference::ImageReference;
use crate::registry::docker_config::DockerConfig;
use crate::registry::{Registries, RegistryOptions};
use crate::runtime::{self, CancelToken};
use crate::store::Store;

/// The environment variable that turns caching off when set to `false`, `0`, `no` or `off`.
pub const CACHE_ENV: &str = "CI_STEPS_OCI_CACHE";

/// Options of a cache handle.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// The platform to choose from indexes; default: the host's.
    pub platform: Option<Platform>,
    /// Registries reached over plain HTTP although not on loopback.
    pub insecure_registries: Vec<String>,
    /// How many layers of one image download at once.
    pub max_concurrent_layers: usize,
    /// How long a registry connection may send nothing before the request fails (it is then
    /// retried, a few times, with growing pauses).
    pub read_timeout: std::time::Duration,
    /// Limits of the extractor.
    pub limits: Limits,
    /// Where the handle's log events go, besides any subscriber the host installed itself.
    pub log: Option<LogTarget>,
    /// Credentials by registry host (`host[:port]`, `docker.io` for Docker Hub). They take
    /// precedence over the Docker config's; a registry with none anywhere is asked anonymously.
    pub credentials: std::collections::HashMap<String, crate::Credential>,
    /// Read credentials from a Docker config: `auth_file` when set, else the content of
    /// `DOCKER_AUTH_CONFIG`, else `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    /// Default: true.
    pub docker_config: bool,
    /// A Docker config file to read credentials from, in place of the default places.
    pub auth_file: Option<PathBuf>,
    /// PEM files of certificate authorities trusted besides the system's.
    pub ca_files: Vec<PathBuf>,
    /// Mirrors by registry host, tried in order before the registry itself.
    pub mirrors: std::collections::HashMap<String, Vec<crate::Mirror>>,
    /// A size budget: after a fetch that downloaded something, least recently used layers that
    /// no result uses are pruned until the cache's layers fit.
    pub max_size: Option<u64>,
    /// No network at all: serve what is cached (a mutable tag from the digest it last resolved
    /// to, with a WARN), fail with `not_cached` otherwise.
    pub offline: bool,
}

/// A log callback and the most verbose level it wants.
#[derive(Clone)]
pub struct LogTarget {
    /// The most verbose level delivered.
    pub level: tracing::Level,
    /// Called on the thread that logged; it must not call back into the library.
    pub callback: LogCallback,
}

impl std::fmt::Debug for LogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogTarget")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            platform: None,
            insecure_registries: Vec::new(),
            max_concurrent_layers: 4,
            read_timeout: std::time::Duration::from_secs(60),
            limits: Limits::default(),
            log: None,
            credentials: Default::default(),
            docker_config: true,
            auth_file: None,
            ca_files: Vec::new(),
            mirrors: Default::default(),
            offline: false,
            max_size: None,
        }
    }
}

/// Options of one fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// The platform to choose from an index, overriding the handle's.
    pub platform: Option<Platform>,
    /// A token that cancels the fetch.
    pub cancel: Option<CancelToken>,
    /// Also give one directory with the layers applied in order ([`Image::merged_path`]).
    pub merged: bool,
    /// Told how far each layer is: once for a cached layer, and as a download goes (at most
    /// once per MiB, and at its end).
    pub progress: Option<ProgressSink>,
}

/// How far one layer of a fetch is.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The layer's digest.
    pub digest: &'a str,
    /// Bytes of its blob received (all of them for a cached layer).
    pub done: u64,
    /// Bytes of its blob in all.
    pub total: u64,
}

/// A progress callback. Called on the library's threads: it must return quickly and must not
/// call back into the library.
#[derive(Clone)]
pub struct ProgressSink(pub Arc<dyn Fn(&Progress<'_>) + Send + Sync>);

impl ProgressSink {
    /// Report `progress`.
    pub(crate) fn report(&self, digest: &str, done: u64, total: u64) {
        (self.0)(&Progress {
            digest,
            done,
            total,
        });
    }
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink(..)")
    }
}

/// How an image was served.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageOutcome {
    /// Served from the cache with no request.
    Hit = 0,
    /// Something had to be fetched.
    Miss = 1,
    /// The tag is mutable: one manifest request was made, cached layers were reused.
    Mutable = 2,
    /// Caching is disabled.
    Disabled = 3,
}

/// How a layer was served.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerOutcome {
    /// Already extracted in the cache.
    Hit = 0,
    /// Downloaded and extracted now.
    Miss = 1,
    /// Downloaded into a directory outside the cache, because caching is disabled.
    Disabled = 2,
}

impl ImageOutcome {
    /// The name used in logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ImageOutcome::Hit => "hit",
            ImageOutcome::Miss => "miss",
            ImageOutcome::Mutable => "mutable",
            ImageOutcome::Disabled => "disabled",
        }
    }
}

/// A fetched image.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    /// The normalised reference.
    pub reference: String,
    /// The digest of the image manifest (for an index: of the chosen platform's manifest).
    pub manifest_digest: String,
    /// The digest of the index, when the reference named one.
    pub index_digest: Option<String>,
    /// The platform: the chosen index entry's, or for a plain manifest the one its image config
    /// names (the empty config of step images names none).
    pub platform: Option<Platform>,
    /// How the image was served.
    pub cache: ImageOutcome,
    /// The layers, base first.
    pub layers: Vec<Layer>,
    /// With caching disabled: the directory that holds this fetch's layers. The caller owns it
    /// and removes it when done.
    pub uncached_root: Option<PathBuf>,
    /// When asked for: one directory with the layers applied in order, whiteouts honoured,
    /// made of hard links to the layers' (read-only) files.
    pub merged_path: Option<PathBuf>,
    /// Shared locks on the layers: while this result (or a clone) lives, no prune of any
    /// process removes them.
    #[serde(skip)]
    #[allow(dead_code)] // Held for its drop, which releases the locks.
    pub(crate) pins: Arc<Vec<crate::lock::LayerPin>>,
}

/// A layer of a fetched image.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    /// The blob digest.
    pub digest: String,
    /// The blob media type.
    pub media_type: String,
    /// The blob size in bytes.
    pub size: u64,
    /// The absolute path of the extracted layer directory.
    pub path: PathBuf,
    /// How the layer was served.
    pub cache: LayerOutcome,
}

/// What the cache holds of one reference, answered without network.
#[derive(Debug, Clone, Serialize)]
pub struct ImageStatus {
    /// The normalised reference.
    pub reference: String,
    /// True when the manifest and every layer are cached.
    pub cached: bool,
    /// The manifest digest, when the manifest is cached.
    pub manifest_digest: Option<String>,
    /// Each layer and whether it is present.
    pub layers: Vec<LayerStatus>,
}

/// Whether one layer is present.
#[derive(Debug, Clone, Serialize)]
pub struct LayerStatus {
    /// The blob digest.
    pub digest: String,
    /// True when the layer is extracted in the cache.
    pub present: bool,
    /// Where it is (or would be).
    pub path: PathBuf,
}

/// The cache as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStatus {
    /// The cache directory.
    pub dir: PathBuf,
    /// True when caching is disabled by the environment.
    pub disabled: bool,
    /// Total bytes of the files under the cache directory.
    pub size_bytes: u64,
    /// Number of extracted layers.
    pub layers: usize,
    /// Number of images recorded (by manifest digest).
    pub images: usize,
    /// Counters of this handle since it opened.
    pub session: Counters,
    /// Counters of every handle of every process, this one included, since the cache was made.
    pub total: Counters,
}

/// A reference and the digest it points at now.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Resolved {
    /// The reference as given.
    pub reference: String,
    /// `registry/repository[:tag]@digest`, normalised: a line for a lock file.
    pub pinned: String,
    /// The digest.
    pub digest: String,
}

/// Counters of cache use, by layer: served from the cache (a hit saves its blob's bytes) or
/// downloaded (a miss).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counters {
    /// Layers served from the cache.
    pub hits: u64,
    /// Layers downloaded.
    pub misses: u64,
    /// Blob bytes downloaded for the misses.
    pub bytes_downloaded: u64,
    /// Blob bytes not downloaded thanks to the hits.
    pub bytes_saved: u64,
}

impl Counters {
    /// Add `other` to these.
    pub fn add(&mut self, other: &Counters) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.bytes_downloaded += other.bytes_downloaded;
        self.bytes_saved += other.bytes_saved;
    }

    /// The counts of one fetch's layers.
    fn of(layers: &[Layer]) -> Counters {
        let mut counters = Counters::default();
        for layer in layers {
            match layer.cache {
                LayerOutcome::Hit => {
                    counters.hits += 1;
                    counters.bytes_saved += layer.size;
                }
                LayerOutcome::Miss | LayerOutcome::Disabled => {
                    counters.misses += 1;
                    counters.bytes_downloaded += layer.size;
                }
            }
        }
        counters
    }
}

/// The counters a handle keeps: since it opened, and not yet saved to the store.
#[derive(Default)]
pub(crate) struct HandleCounters {
    session: Counters,
    unsaved: Counters,
    last_save: Option<std::time::Instant>,
}

/// How often a long-lived handle saves its counters (they are also saved when it closes).
const COUNTER_SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// The state shared by clones of a [`Cache`] and by its running fetches.
pub(crate) struct CacheInner {
    pub(crate) dir: PathBuf,
    pub(crate) store: Option<Store>,
    pub(crate) registries: Registries,
    pub(crate) options: CacheOptions,
    pub(crate) disabled: bool,
    pub(crate) log_sink: Option<SinkGuard>,
    pub(crate) counters: std::sync::Mutex<HandleCounters>,
}

impl CacheInner {
    /// Count a fetch's layers, and save the counters when the last save is a while ago.
    pub(crate) fn count(&self, layers: &[Layer]) {
        let fetched = Counters::of(layers);
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.session.add(&fetched);
        counters.unsaved.add(&fetched);
        let due = counters
            .last_save
            .is_none_or(|at| at.elapsed() > COUNTER_SAVE_INTERVAL);
        if due {
            self.save_counters(&mut counters);
        }
    }

    fn save_counters(&self, counters: &mut HandleCounters) {
        let Some(store) = &self.store else {
            return;
        };
        if counters.unsaved == Counters::default() {
            return;
        }
        match store.save_counters(&counters.unsaved) {
            Ok(()) => counters.unsaved = Counters::default(),
            Err(error) => tracing::warn!(%error, "cache counters not saved"),
        }
        counters.last_save = Some(std::time::Instant::now());
    }
}

/// A closing handle saves what it counted.
impl Drop for CacheInner {
    fn drop(&mut self) {
        let mut counters =
            std::mem::take(self.counters.get_mut().unwrap_or_else(|e| e.into_inner()));
        self.save_counters(&mut counters);
    }
}

impl CacheInner {
    /// The span that routes this handle's events to its log callback.
    pub(crate) fn fetch_span(&self, reference: &ImageReference) -> tracing::Span {
        match &self.log_sink {
            Some(sink) => {
                tracing::info_span!("fetch", oci_cache_sink = sink.id(), reference = %reference)
            }
            None => tracing::info_span!("fetch", reference = %reference),
        }
    }
}

/// A cache directory opened with options. Cheap to clone; safe to use from many threads.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<CacheInner>,
}

impl Cache {
    /// Open the cache at `dir`. When [`CACHE_ENV`] disables caching, one WARN is logged and the
    /// directory is neither created nor read.
    pub fn open(dir: impl AsRef<Path>, options: CacheOptions) -> Result<Cache> {
        let dir = std::path::absolute(dir.as_ref())
            .map_err(Error::io("resolving cache directory", dir.as_ref()))?;
        let disabled = disabled_by_env();
        let log_sink = options
            .log
            .as_ref()
            .map(|log| logging::register(log.level, log.callback.clone()));
        let _span = match &log_sink {
            Some(sink) => tracing::info_span!("open", oci_cache_sink = sink.id()).entered(),
            None => tracing::Span::none().entered(),
        };

        let store = if disabled {
            let dir = dir.display();
            warn!(
                variable = CACHE_ENV,
                %dir,
                "caching is off: each fetch downloads to a new directory"
            );
            None
        } else {
            Some(Store::open(&dir)?)
        };
        debug!(dir = %dir.display(), disabled, "cache opened");

        let registries = Registries::new(RegistryOptions {
            insecure_registries: options.insecure_registries.clone(),
            read_timeout: options.read_timeout,
            credentials: options.credentials.clone(),
            credential_source: credential_source(&options)?,
            ca_certificates: read_ca_files(&options.ca_files)?,
            mirrors: options.mirrors.clone(),
            offline: options.offline,
            ..RegistryOptions::default()
        })?;
        let inner = CacheInner {
            dir,
            store,
            registries,
            options,
            disabled,
            log_sink,
            counters: Default::default(),
        };
        Ok(Cache {
            inner: Arc::new(inner),
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// True when caching is disabled by the environment.
    pub fn is_disabled(&self) -> bool {
        self.inner.disabled
    }

    /// Fetch `reference`, serving what the policy allows from the cache. Blocks the calling
    /// thread; the work runs on the library's runtime.
    pub fn fetch(&self, reference: &str, options: &FetchOptions) -> Result<Image> {
        let reference = ImageReference::parse(reference)?;
        let platform = options
            .platform
            .clone()
            .or_else(|| self.inner.options.platform.clone())
            .unwrap_or_else(Platform::host);
        let store = match &self.inner.store {
            Some(store) => store.clone(),
            None => Store::scratch()?,
        };

        let inner = Arc::clone(&self.inner);
        let name = reference.to_string();
        let merged = options.merged;
        let progress = options.progress.clone();
        runtime::block_on(
            async move {
                let request = crate::fetch::Request {
                    reference: &reference,
                    platform: &platform,
                    merged,
                    progress: progress.as_ref(),
                };
                crate::fetch::fetch(&inner, &store, &request).await
            },
            options.cancel.as_ref(),
            || Error::Cancelled { reference: name },
        )
    }

    /// What the cache holds of `reference`, without network.
    pub fn image_status(&self, reference: &str) -> Result<ImageStatus> {
        let reference = ImageReference::parse(reference)?;
        let mut status = ImageStatus {
            reference: reference.to_string(),
            cached: false,
            manifest_digest: None,
            layers: Vec::new(),
        };
        let Some(store) = &self.inner.store else {
            return Ok(status);
        };

        let top = match reference.digest() {
            Some(digest) => Some(digest.to_string()),
            None => store.read_tag(&reference)?.map(|record| record.digest),
        };
        let Some(top) = top else {
            return Ok(status);
        };
        let Some((digest, manifest)) = local_manifest(store, &top, &self.platform())? else {
            return Ok(status);
        };

        status.manifest_digest = Some(digest);
        status.layers = manifest
            .layers
            .iter()
            .map(|layer| LayerStatus {
                digest: layer.digest.clone(),
                present: store.has_layer(&layer.digest),
                path: store.layer_path(&layer.digest),
            })
            .collect();
        status.cached = status.layers.iter().all(|layer| layer.present);
        Ok(status)
    }

    /// The state of the whole cache, without network.
    pub fn cache_status(&self) -> Result<CacheStatus> {
        let (session, unsaved) = {
            let counters = self
                .inner
                .counters
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            (counters.session, counters.unsaved)
        };
        let mut status = CacheStatus {
            dir: self.inner.dir.clone(),
            disabled: self.inner.disabled,
            size_bytes: 0,
            layers: 0,
            images: 0,
            session,
            total: unsaved,
        };
        if let Some(store) = &self.inner.store {
            status.layers = store.layers()?.len();
            status.images = store.image_records().len();
            status.size_bytes = tree_size(store.root());
            status.total.add(&store.saved_counters());
        }
        Ok(status)
    }

    /// The digest `reference` points at now, for a lock file: one HEAD at the registry (none
    /// for a reference pinned by digest); nothing is downloaded or cached.
    pub fn resolve(&self, reference: &str) -> Result<Resolved> {
        let parsed = ImageReference::parse(reference)?;
        let name = match parsed.tag() {
            Some(tag) => format!("{}:{tag}", parsed.name()),
            None => parsed.name(),
        };

        let digest = match parsed.digest() {
            Some(digest) => digest.to_string(),
            None => {
                let inner = Arc::clone(&self.inner);
                runtime::block_on(
                    async move { inner.registries.resolve_digest(&parsed).await },
                    None,
                    || unreachable!("resolve has no cancel token"),
                )?
            }
        };
        Ok(Resolved {
            reference: reference.to_string(),
            pinned: format!("{name}@{digest}"),
            digest,
        })
    }

    /// Remove layers as `options` say, never one that a fetch or a result of any process is
    /// using, and the image records and merged directories that needed them.
    pub fn prune(&self, options: &crate::prune::PruneOptions) -> Result<crate::prune::PruneReport> {
        match &self.inner.store {
            Some(store) => crate::prune::prune(store, options),
            None => Ok(crate::prune::PruneReport::default()),
        }
    }

    fn platform(&self) -> Platform {
        self.inner
            .options
            .platform
            .clone()
            .unwrap_or_else(Platform::host)
    }
}

/// The image manifest behind `digest` in the store, through an index if need be.
fn local_manifest(
    store: &Store,
    digest: &str,
    platform: &Platform,
) -> Result<Option<(String, crate::manifest::ImageManifest)>> {
    let Some(bytes) = store.read_blob(digest)? else {
        return Ok(None);
    };
    match Manifest::parse(&bytes, None) {
        Ok(Manifest::Image(image)) => Ok(Some((digest.to_string(), image))),
        Ok(Manifest::Index(index)) => match platform::choose(&index.manifests, platform) {
            Some(entry) => local_manifest(store, &entry.digest, platform),
            None => Ok(None),
        },
        Err(_) => Ok(None),
    }
}

/// The JSON form of a fetch result, as the CLI prints it with `--json` and the C ABI returns it:
/// `reference`, `manifest_digest`, `index_digest` (or null), `platform` (`""` when unknown),
/// `image_cache`, `layers` (`digest`, `media_type`, `size`, `path`, `cache`), and
/// `uncached_root` (or null).
pub fn image_json(image: &Image) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = image
        .layers
        .iter()
        .map(|layer| {
            serde_json::json!({
                "digest": layer.digest,
                "media_type": layer.media_type,
                "size": layer.size,
                "path": layer.path,
                "cache": layer.cache,
            })
        })
        .collect();
    let mut json = serde_json::json!({
        "reference": image.reference,
        "manifest_digest": image.manifest_digest,
        "index_digest": image.index_digest,
        "platform": image.platform.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        "image_cache": image.cache,
        "layers": layers,
        "uncached_root": image.uncached_root,
    });
    if let Some(merged) = &image.merged_path {
        json["merged_path"] = serde_json::json!(merged);
    }
    json
}

/// Bytes of the regular files under `path`, not following symlinks, each file counted once
/// however many hard links it has (merged directories link to the layers' files).
pub(crate) fn tree_size(path: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    tree_size_once(path, &mut seen)
}

fn tree_size_once(path: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
    use std::os::unix::fs::MetadataExt;

    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.filter_map(|entry| entry.ok()) {
        total += match entry.file_type() {
            Ok(kind) if kind.is_dir() => tree_size_once(&entry.path(), seen),
            Ok(kind) if kind.is_file() => match entry.metadata() {
                Ok(meta) if meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) => 0,
                Ok(meta) => meta.len(),
                Err(_) => 0,
            },
            _ => 0,
        };
    }
    total
}

/// True when [`CACHE_ENV`] says `false`, `0`, `no` or `off`, in any case.
pub fn disabled_by_env() -> bool {
    std::env::var(CACHE_ENV)
        .map(|value| {
            matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "false" | "0" | "no" | "off"
            )
        })
        .unwrap_or(false)
}

/// The Docker config credentials come from, when the options ask for one and there is one.
fn credential_source(
    options: &CacheOptions,
) -> Result<Option<Arc<dyn crate::registry::auth::CredentialSource>>> {
    if !options.docker_config && options.auth_file.is_none() {
        return Ok(None);
    }
    let config = DockerConfig::load(options.auth_file.as_deref()).map_err(|reason| {
        Error::InvalidArgument {
            name: "auth_file",
            reason,
        }
    })?;
    if let Some(config) = &config {
        debug!(config = ?config, "Docker config read");
    }
    Ok(config.map(|c| Arc::new(c) as Arc<dyn crate::registry::auth::CredentialSource>))
}

/// The PEM text of each CA file.
fn read_ca_files(files: &[PathBuf]) -> Result<Vec<Vec<u8>>> {
    files
        .iter()
        .map(|file| std::fs::read(file).map_err(Error::io("reading CA file", file)))
        .collect()
}
