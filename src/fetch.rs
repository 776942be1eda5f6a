//! The fetch: resolve a reference to a manifest under the caching policy, then make every layer
//! present, downloading and extracting the missing ones in one streaming pass each.

use std::io::Read;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tracing::{debug, info, Instrument};

use crate::cache::{CacheInner, Image, ImageOutcome, Layer, LayerOutcome, ProgressSink};
use crate::error::{Error, Result};
use crate::extract::{self, Compression, Limits};
use crate::lock::{LayerLock, LayerPin};
use crate::manifest::{self, Descriptor, ImageManifest, Manifest};
use crate::platform::{self, Platform};
use crate::reference::{parse_digest, ImageReference, Mutability};
use crate::registry::Sources;
use crate::store::Store;

/// Chunks in flight between the download and the extractor of one layer.
const CHANNEL_CHUNKS: usize = 32;

/// What one fetch is asked for.
pub(crate) struct Request<'a> {
    pub reference: &'a ImageReference,
    pub platform: &'a Platform,
    /// Also build the merged directory.
    pub merged: bool,
    pub progress: Option<&'a ProgressSink>,
}

/// Fetch what `request` asks for into `store` (the cache, or a scratch store when caching is
/// disabled).
pub(crate) async fn fetch(
    cache: &CacheInner,
    store: &Store,
    request: &Request<'_>,
) -> Result<Image> {
    let (reference, platform, merged) = (request.reference, request.platform, request.merged);
    let span = cache.fetch_span(reference);
    async move {
        let mut fetch = Fetch {
            cache,
            store,
            reference,
            progress: request.progress,
            requests: 0,
        };

        let (top_digest, top_bytes) = fetch.resolve().await?;
        let (manifest_digest, manifest, chosen) =
            fetch.select(&top_digest, &top_bytes, platform).await?;
        let (layers, pins) = fetch.layers(&manifest).await?;
        fetch.remember_privacy()?;
        fetch.remember_image(&manifest_digest, &layers)?;
        cache.count(&layers);
        let merged_path = match merged {
            true => Some(fetch.merged(&manifest_digest, &layers).await?),
            false => None,
        };

        let outcome = fetch.outcome(&layers);
        let downloaded = layers
            .iter()
            .filter(|l| l.cache == LayerOutcome::Miss)
            .count();
        info!(
            manifest = %manifest_digest,
            image_cache = outcome.name(),
            layers = layers.len(),
            downloaded,
            requests = fetch.requests,
            "fetch complete"
        );
        Ok(Image {
            reference: reference.to_string(),
            manifest_digest,
            index_digest: (top_digest != chosen.digest).then_some(top_digest),
            platform: chosen.platform,
            cache: outcome,
            layers,
            uncached_root: cache.disabled.then(|| store.root().to_path_buf()),
            merged_path,
            pins: std::sync::Arc::new(pins),
        })
    }
    .instrument(span)
    .await
}

/// The manifest chosen for the platform.
struct Chosen {
    digest: String,
    platform: Option<Platform>,
}

/// One fetch in progress: what it works on and how many manifest requests it sent.
struct Fetch<'a> {
    cache: &'a CacheInner,
    store: &'a Store,
    reference: &'a ImageReference,
    progress: Option<&'a ProgressSink>,
    requests: u32,
}

impl Fetch<'_> {
    /// Find the digest and bytes of the manifest or index the reference names, asking the
    /// registry only as the policy requires.
    async fn resolve(&mut self) -> Result<(String, Vec<u8>)> {
        if self.offline() {
            return self.resolve_offline();
        }
        let mutability = self.reference.mutability();
        let digest = match (self.reference.digest(), mutability) {
            (Some(digest), _) => Some(digest.to_string()),
            _ if self.cache.disabled => None,
            (None, Mutability::MutableTag) => {
                debug!(
                    policy = mutability.name(),
                    "image cache bypassed: tag is mutable"
                );
                self.requests += 1;
                Some(self.cache.registries.resolve_digest(self.reference).await?)
            }
            (None, _) => self
                .store
                .read_tag(self.reference)?
                .map(|record| record.digest),
        };

        if let Some(digest) = &digest {
            if let Some(bytes) = self.store.read_blob(digest)? {
                debug!(digest = %digest, policy = mutability.name(), "manifest cache hit");
                self.check_access(digest).await?;
                self.remember_tag(digest)?;
                return Ok((digest.clone(), bytes));
            }
        }

        debug!(policy = mutability.name(), "manifest cache miss");
        let target = match &digest {
            Some(digest) => self.reference.with_digest(digest),
            None => self.reference.clone(),
        };
        let (bytes, digest) = self.get_manifest(&target).await?;
        self.remember_tag(&digest)?;
        Ok((digest, bytes))
    }

    /// Record the image (for status and pruning), and keep the cache within its budget after
    /// a download. The layers just fetched are pinned: the budget never takes them.
    fn remember_image(&self, manifest_digest: &str, layers: &[Layer]) -> Result<()> {
        if self.cache.disabled {
            return Ok(());
        }
        let digests: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
        let reference = self.reference.to_string();
        self.store
            .record_image(manifest_digest, &reference, &digests)?;

        let downloaded = layers.iter().any(|l| l.cache == LayerOutcome::Miss);
        if let (Some(max_size), true) = (self.cache.options.max_size, downloaded) {
            let options = crate::prune::PruneOptions {
                max_size: Some(max_size),
                ..Default::default()
            };
            crate::prune::prune(self.store, &options)?;
        }
        Ok(())
    }

    /// The image's merged directory, built on a blocking thread when it is not cached yet.
    async fn merged(&self, manifest_digest: &str, layers: &[Layer]) -> Result<PathBuf> {
        let store = self.store.clone();
        let digest = manifest_digest.to_string();
        let paths: Vec<PathBuf> = layers.iter().map(|layer| layer.path.clone()).collect();

        tokio::task::spawn_blocking(move || crate::merge::merged_dir(&store, &digest, &paths))
            .await
            .map_err(|e| Error::Panic(format!("merging layers: {e}")))?
    }

    /// Offline: the manifest the reference names from the store alone; a mutable tag from the
    /// digest it last resolved to, with a WARN. A private image is refused: its access cannot
    /// be proven without the registry.
    fn resolve_offline(&self) -> Result<(String, Vec<u8>)> {
        let digest = match self.reference.digest() {
            Some(digest) => Some(digest.to_string()),
            None => self
                .store
                .read_tag(self.reference)?
                .map(|record| record.digest),
        };
        let Some(digest) = digest else {
            return Err(self.not_cached("offline, and the tag was never fetched"));
        };
        let Some(bytes) = self.store.read_blob(&digest)? else {
            return Err(self.not_cached(&format!("offline, and manifest {digest} is not cached")));
        };

        if self.reference.digest().is_none()
            && self.reference.mutability() == Mutability::MutableTag
        {
            tracing::warn!(
                digest = %digest,
                "offline: serving the digest this mutable tag last resolved to; it may be stale"
            );
        }
        if self.store.is_private(self.reference) {
            return Err(Error::Unauthorized {
                what: "private image".into(),
                reference: self.reference.to_string(),
                detail: "offline: access to a private image cannot be proven without the registry"
                    .into(),
            });
        }
        debug!(digest = %digest, "manifest cache hit (offline)");
        Ok((digest, bytes))
    }

    fn offline(&self) -> bool {
        self.cache.options.offline && !self.cache.disabled
    }

    fn not_cached(&self, detail: &str) -> Error {
        Error::NotCached {
            reference: self.reference.to_string(),
            detail: detail.to_string(),
        }
    }

    /// Before serving a cached image of a private repository, prove that this caller may read
    /// it (one authenticated HEAD, remembered for a few minutes). A mutable tag's HEAD to the
    /// registry already proved it, unless a mirror answered that HEAD.
    async fn check_access(&mut self, digest: &str) -> Result<()> {
        if self.cache.disabled || !self.store.is_private(self.reference) {
            return Ok(());
        }
        let registries = &self.cache.registries;
        let resolved_at_origin = self.reference.mutability() == Mutability::MutableTag
            && self.reference.digest().is_none()
            && !registries.has_mirrors(self.reference.registry());
        if resolved_at_origin {
            return Ok(());
        }

        debug!(digest = %digest, "private image: proving access before serving it");
        if registries.prove_access(self.reference, digest).await? {
            self.requests += 1;
        }
        Ok(())
    }

    /// Record the repository as private when the registry asked for the caller's credentials.
    fn remember_privacy(&self) -> Result<()> {
        if self.cache.disabled || !self.cache.registries.used_credentials(self.reference) {
            return Ok(());
        }
        if !self.store.is_private(self.reference) {
            debug!(repository = %self.reference.name(), "repository recorded as private");
        }
        self.store.mark_private(self.reference)
    }

    /// Pick the image manifest for `platform` out of an index, or take the manifest as it is.
    async fn select(
        &mut self,
        digest: &str,
        bytes: &[u8],
        platform: &Platform,
    ) -> Result<(String, ImageManifest, Chosen)> {
        let index = match self.parse(digest, bytes)? {
            Manifest::Image(image) => {
                let chosen = Chosen {
                    digest: digest.to_string(),
                    platform: self.config_platform(&image.config).await?,
                };
                return Ok((digest.to_string(), image, chosen));
            }
            Manifest::Index(index) => index,
        };

        let entry = platform::choose(&index.manifests, platform).ok_or_else(|| {
            Error::NoMatchingPlatform {
                digest: digest.to_string(),
                reference: self.reference.to_string(),
                platform: platform.to_string(),
                available: platform::describe(&index.manifests),
            }
        })?;
        debug!(index = %digest, manifest = %entry.digest, platform = %platform, "platform chosen");

        let bytes = match self.store.read_blob(&entry.digest)? {
            Some(bytes) => bytes,
            None if self.offline() => {
                let detail = format!("offline, and manifest {} is not cached", entry.digest);
                return Err(self.not_cached(&detail));
            }
            None => {
                self.get_manifest(&self.reference.with_digest(&entry.digest))
                    .await?
                    .0
            }
        };
        match self.parse(&entry.digest, &bytes)? {
            Manifest::Image(image) => {
                let chosen = Chosen {
                    digest: entry.digest.clone(),
                    platform: entry.platform.clone(),
                };
                Ok((entry.digest.clone(), image, chosen))
            }
            Manifest::Index(_) => Err(Error::Unsupported {
                what: format!("index {digest}"),
                reference: self.reference.to_string(),
                detail: "an index entry points at another index".into(),
            }),
        }
    }

    /// The platform an image config names, for a plain manifest (an index entry names its own).
    /// The config is kept by digest like manifests; configs of other media types (the empty
    /// config of step images, artifacts) name no platform and are not fetched.
    async fn config_platform(&self, config: &Descriptor) -> Result<Option<Platform>> {
        let is_image_config =
            [manifest::OCI_CONFIG, manifest::DOCKER_CONFIG].contains(&config.media_type.as_str());
        if !is_image_config || config.size as u64 > manifest::MAX_CONFIG_BYTES {
            return Ok(None);
        }

        let bytes = match self.store.read_blob(&config.digest)? {
            Some(bytes) => bytes,
            // The config only names the platform: offline, the image is served without it.
            None if self.offline() => return Ok(None),
            None => {
                let bytes = self
                    .cache
                    .registries
                    .get_small_blob(self.reference, config, Sources::Any)
                    .await?;
                self.store.write_blob(&config.digest, &bytes)?;
                bytes
            }
        };

        // A config that does not parse names no platform; the image itself may still be fine.
        let platform = serde_json::from_slice::<Platform>(&bytes).ok();
        Ok(platform.filter(|p| !p.os.is_empty() && !p.architecture.is_empty()))
    }

    /// Make every layer present, downloading the missing ones concurrently, in manifest order.
    /// Every layer comes with its pin (none when caching is disabled): the result holds them.
    async fn layers(&self, manifest: &ImageManifest) -> Result<(Vec<Layer>, Vec<LayerPin>)> {
        let bound = self.cache.options.max_concurrent_layers.max(1);
        // The futures are made first: a closure in `map` trips the compiler's Send inference.
        let downloads: Vec<_> = manifest.layers.iter().map(|d| self.layer(d)).collect();
        let served: Vec<(Layer, Option<LayerPin>)> = futures_util::stream::iter(downloads)
            .buffered(bound)
            .try_collect()
            .await?;
        let (layers, pins): (Vec<_>, Vec<_>) = served.into_iter().unzip();
        Ok((layers, pins.into_iter().flatten().collect()))
    }

    /// Pin the layer `digest` if it is present; None when it is not (or a prune just took it).
    async fn pin_present(&self, digest: &str) -> Result<Option<LayerPin>> {
        if !self.store.has_layer(digest) {
            return Ok(None);
        }
        let path = self.store.layer_pin_path(digest);
        let pin = match crate::lock::try_pin_layer(&path)? {
            Some(pin) => pin,
            // A prune holds it: wait for it on a blocking thread, then look again.
            None => tokio::task::spawn_blocking(move || crate::lock::pin_layer(&path))
                .await
                .map_err(|e| Error::Panic(format!("pinning layer: {e}")))??,
        };
        Ok(self.store.has_layer(digest).then_some(pin))
    }

    async fn layer(&self, descriptor: &Descriptor) -> Result<(Layer, Option<LayerPin>)> {
        let digest = &descriptor.digest;
        let mut layer = Layer {
            digest: digest.clone(),
            media_type: descriptor.media_type.clone(),
            size: descriptor.size as u64,
            path: self.store.layer_path(digest),
            cache: LayerOutcome::Hit,
        };

        if self.cache.disabled {
            debug!(digest = %digest, outcome = "disabled", "layer cache");
            layer.path = self.download(descriptor, None).await?.0;
            layer.cache = LayerOutcome::Disabled;
            return Ok((layer, None));
        }
        if let Some(pin) = self.pin_present(digest).await? {
            debug!(digest = %digest, outcome = "hit", "layer cache");
            self.store.touch_use(digest);
            self.report_complete(&layer);
            return Ok((layer, Some(pin)));
        }
        if self.offline() {
            return Err(self.not_cached(&format!("offline, and layer {digest} is not cached")));
        }

        // The layer may be on its way: wait for whoever downloads it, then look again. (The
        // digest was validated when the manifest was parsed, so it names a plain file.)
        let lock = crate::lock::lock_layer(self.store.layer_lock_path(digest)).await?;
        if let Some(pin) = self.pin_present(digest).await? {
            debug!(digest = %digest, outcome = "hit", waited = true, "layer cache");
            self.store.touch_use(digest);
            self.report_complete(&layer);
            return Ok((layer, Some(pin)));
        }

        let reclaimed = self.store.reclaim_staging(digest)?;
        debug!(digest = %digest, outcome = "miss", reclaimed, "layer cache");
        let (path, pin) = match self.download(descriptor, Some(lock)).await {
            Err(error @ Error::Integrity { .. }) if self.has_mirrors() => {
                self.download_from_origin(descriptor, error).await?
            }
            downloaded => downloaded?,
        };
        self.store.touch_use(digest);
        layer.path = path;
        layer.cache = LayerOutcome::Miss;
        Ok((layer, Some(pin)))
    }

    /// After a mirror served wrong bytes for a layer: skip the mirrors and download it from the
    /// registry itself.
    async fn download_from_origin(
        &self,
        descriptor: &Descriptor,
        error: Error,
    ) -> Result<(PathBuf, LayerPin)> {
        let digest = &descriptor.digest;
        tracing::warn!(
            digest = %digest,
            error = %error,
            "a mirror served wrong bytes: downloading the layer from the registry itself"
        );

        let lock = crate::lock::lock_layer(self.store.layer_lock_path(digest)).await?;
        if let Some(pin) = self.pin_present(digest).await? {
            return Ok((self.store.layer_path(digest), pin));
        }
        self.store.reclaim_staging(digest)?;
        let target = Target {
            reference: self.reference,
            descriptor,
            sources: Sources::OriginOnly,
            progress: self.progress,
        };
        download_layer(self.cache, self.store, &target, Some(lock)).await
    }

    async fn download(
        &self,
        descriptor: &Descriptor,
        lock: Option<LayerLock>,
    ) -> Result<(PathBuf, LayerPin)> {
        let target = Target {
            reference: self.reference,
            descriptor,
            sources: Sources::Any,
            progress: self.progress,
        };
        download_layer(self.cache, self.store, &target, lock).await
    }

    /// Tell the progress callback that a cached layer is all there.
    fn report_complete(&self, layer: &Layer) {
        if let Some(progress) = self.progress {
            progress.report(&layer.digest, layer.size, layer.size);
        }
    }

    fn has_mirrors(&self) -> bool {
        self.cache.registries.has_mirrors(self.reference.registry())
    }

    fn outcome(&self, layers: &[Layer]) -> ImageOutcome {
        if self.cache.disabled {
            ImageOutcome::Disabled
        } else if self.reference.mutability() == Mutability::MutableTag {
            ImageOutcome::Mutable
        } else if self.requests == 0 && layers.iter().all(|l| l.cache == LayerOutcome::Hit) {
            ImageOutcome::Hit
        } else {
            ImageOutcome::Miss
        }
    }

    async fn get_manifest(&mut self, target: &ImageReference) -> Result<(Vec<u8>, String)> {
        self.requests += 1;
        let (bytes, digest) = self.cache.registries.get_manifest(target).await?;
        self.store.write_blob(&digest, &bytes)?;
        Ok((bytes, digest))
    }

    fn parse(&self, digest: &str, bytes: &[u8]) -> Result<Manifest> {
        Manifest::parse(bytes, None).map_err(|detail| Error::Registry {
            what: format!("manifest {digest}"),
            reference: self.reference.to_string(),
            detail,
        })
    }

    fn remember_tag(&self, digest: &str) -> Result<()> {
        match self.reference.tag() {
            Some(_) if self.reference.digest().is_none() && !self.cache.disabled => {
                self.store.write_tag(self.reference, digest)
            }
            _ => Ok(()),
        }
    }
}

/// What travels from the download to the extractor.
enum Chunk {
    Data(Bytes),
    End,
    Failed(String),
}

/// What a layer blob must be.
struct Expected {
    digest: String,
    size: u64,
    /// For error messages: the image reference.
    reference: String,
}

/// Download one layer blob and extract it as it arrives, into a staging directory that is
/// published only when the extraction succeeded and the blob matched its digest and size.
/// The layer's `lock` moves to the extraction thread: when the fetch is cancelled, the lock is
/// held until that thread stopped writing into its staging directory and removed it.
/// The network side only forwards bytes; hashing, extraction and publishing run on a blocking
/// thread, so the runtime's workers stay free to notice a cancellation.
async fn download_layer(
    cache: &CacheInner,
    store: &Store,
    target: &Target<'_>,
    lock: Option<LayerLock>,
) -> Result<(PathBuf, LayerPin)> {
    let (reference, descriptor) = (target.reference, target.descriptor);
    let digest = parse_digest(&descriptor.digest).map_err(|detail| Error::Registry {
        what: "layer descriptor".into(),
        reference: reference.to_string(),
        detail,
    })?;
    Compression::from_media_type(&descriptor.media_type).map_err(|source| Error::Extract {
        digest: digest.clone(),
        reference: reference.to_string(),
        source,
    })?;

    let staging = store.staging_dir(&digest)?;
    let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
    let expected = Expected {
        digest,
        size: descriptor.size as u64,
        reference: reference.to_string(),
    };
    let (store, media_type) = (store.clone(), descriptor.media_type.clone());
    let limits = cache.options.limits.clone();
    let span = tracing::Span::current();
    let extraction = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let published =
            extract_and_publish(&store, staging, receiver, &media_type, &limits, &expected);
        drop(lock);
        published
    });

    let downloaded = download_blob(cache, target, sender).await;
    let extracted = extraction
        .await
        .map_err(|e| Error::Panic(format!("layer extraction task: {e}")))?;
    downloaded?;
    extracted
}

/// Stream the blob into `sender`, counting bytes. Ends with `Chunk::End` only when every byte
/// the descriptor announces arrived; returns Ok when the extractor stopped reading (its own
/// error explains why).
async fn download_blob(
    cache: &CacheInner,
    target: &Target<'_>,
    sender: mpsc::Sender<Chunk>,
) -> Result<()> {
    let outcome = stream_blob(cache, target, &sender).await;
    let last = match &outcome {
        Ok(true) => Chunk::End,
        Ok(false) => return Ok(()),
        Err(error) => Chunk::Failed(error.to_string()),
    };
    let _ = sender.send(last).await;
    outcome.map(|_| ())
}

/// Returns Ok(true) when the whole blob was sent, Ok(false) when the receiver left. A transfer
/// that breaks off (a reset connection, a stalled server) is resumed where it stopped, with a
/// Range request, after a pause; the extractor and the hash just see one continuous stream.
async fn stream_blob(
    cache: &CacheInner,
    target: &Target<'_>,
    sender: &mpsc::Sender<Chunk>,
) -> Result<bool> {
    let registries = &cache.registries;
    let descriptor = target.descriptor;
    let mut transfer = Transfer {
        reference: target.reference,
        descriptor,
        sender,
        sources: target.sources,
        progress: target.progress,
        received: 0,
        reported: None,
    };

    let mut attempt = 1;
    loop {
        let error = match transfer.forward(registries).await {
            Ok(sent) => return Ok(sent),
            Err(error @ Error::Network { .. }) if attempt < registries.attempts() => error,
            Err(error) => return Err(error),
        };

        let delay = registries.retry_delay(attempt);
        tracing::warn!(
            digest = %descriptor.digest,
            received = transfer.received,
            attempt,
            delay_ms = delay.as_millis() as u64,
            error = %error,
            "blob download interrupted, resuming"
        );
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// A layer blob to download, and where from.
pub(crate) struct Target<'a> {
    reference: &'a ImageReference,
    descriptor: &'a Descriptor,
    sources: Sources,
    progress: Option<&'a ProgressSink>,
}

/// How often a download's progress is reported.
const PROGRESS_STEP: u64 = 1 << 20;

/// One blob on its way to the extractor.
struct Transfer<'a> {
    reference: &'a ImageReference,
    descriptor: &'a Descriptor,
    sender: &'a mpsc::Sender<Chunk>,
    /// Whether mirrors may serve it.
    sources: Sources,
    progress: Option<&'a ProgressSink>,
    /// Bytes already sent to the extractor.
    received: u64,
    /// `received` when progress was last reported.
    reported: Option<u64>,
}

impl Transfer<'_> {
    /// Open the blob at `received` and forward what is new. Ok(true) when the blob is complete,
    /// Ok(false) when the extractor left; a network error leaves `received` where it stopped.
    async fn forward(&mut self, registries: &crate::registry::Registries) -> Result<bool> {
        let expected = self.descriptor.size as u64;
        let blob = registries
            .blob_stream(self.reference, self.descriptor, self.received, self.sources)
            .await?;
        if let Some(mirror) = &blob.mirror {
            debug!(digest = %self.descriptor.digest, mirror = %mirror, "blob served by a mirror");
        }
        let mut stream = blob.stream;
        if let Some(length) = blob.content_length.filter(|&n| n > expected - blob.offset) {
            let offset = blob.offset;
            let detail = format!(
                "registry announces {length} bytes from offset {offset}, \
                 the descriptor says {expected} in all"
            );
            return Err(self.integrity(detail));
        }

        self.report(expected);

        // A server that ignores Range starts over at byte 0: skip what was already sent.
        let mut skip = self.received - blob.offset;
        while let Some(item) = stream.next().await {
            let mut bytes = match item {
                Ok(bytes) => bytes,
                Err(e) => return Err(self.network(crate::registry::error_chain(&e))),
            };
            let skipped = skip.min(bytes.len() as u64);
            skip -= skipped;
            let bytes = bytes.split_off(skipped as usize);
            if bytes.is_empty() {
                continue;
            }

            self.received += bytes.len() as u64;
            if self.received > expected {
                let detail =
                    format!("blob is longer than the {expected} bytes its descriptor says");
                return Err(self.integrity(detail));
            }
            if self.sender.send(Chunk::Data(bytes)).await.is_err() {
                return Ok(false);
            }
            self.report(expected);
        }

        if self.received != expected {
            let detail = format!(
                "blob is {} bytes, its descriptor says {expected}",
                self.received
            );
            return Err(self.integrity(detail));
        }
        Ok(true)
    }

    /// Tell the progress callback how far the blob is: at the start, every
    /// [`PROGRESS_STEP`] bytes, and at the end.
    fn report(&mut self, total: u64) {
        let Some(progress) = self.progress else {
            return;
        };
        let due = match self.reported {
            None => true,
            Some(last) => self.received >= last + PROGRESS_STEP || self.received == total,
        };
        if due && self.reported != Some(self.received) {
            progress.report(&self.descriptor.digest, self.received, total);
            self.reported = Some(self.received);
        }
    }

    fn integrity(&self, detail: String) -> Error {
        Error::Integrity {
            what: format!("blob {}", self.descriptor.digest),
            reference: self.reference.to_string(),
            detail,
        }
    }

    fn network(&self, detail: String) -> Error {
        Error::Network {
            what: format!(
                "blob {} (after {} bytes)",
                self.descriptor.digest, self.received
            ),
            reference: self.reference.to_string(),
            detail,
        }
    }
}

/// Extract the chunks from `receiver` into `staging`, check the blob's digest and size, and
/// publish the layer. Runs on a blocking thread.
fn extract_and_publish(
    store: &Store,
    staging: tempfile::TempDir,
    receiver: mpsc::Receiver<Chunk>,
    media_type: &str,
    limits: &Limits,
    expected: &Expected,
) -> Result<(PathBuf, LayerPin)> {
    let extract_error = |source| Error::Extract {
        digest: expected.digest.clone(),
        reference: expected.reference.clone(),
        source,
    };
    let root = cap_std::fs::Dir::open_ambient_dir(staging.path(), cap_std::ambient_authority())
        .map_err(Error::io("opening staging directory", staging.path()))?;
    let mut reader = ChunkReader::new(receiver);

    let stats =
        extract::extract_layer(&mut reader, media_type, &root, limits).map_err(extract_error)?;

    let (digest, size) = reader.finish();
    if (digest.as_str(), size) != (expected.digest.as_str(), expected.size) {
        return Err(Error::Integrity {
            what: format!("blob {}", expected.digest),
            reference: expected.reference.clone(),
            detail: format!(
                "digest mismatch (got {digest}, {size} bytes, expected {} bytes)",
                expected.size
            ),
        });
    }
    debug!(digest = %digest, entries = stats.entries, bytes = stats.bytes, "layer extracted");
    // Pinned before it is visible, so that no prune can take it between publish and use.
    let pin = crate::lock::pin_layer(&store.layer_pin_path(&digest))?;
    let path = store.publish_layer(staging, &digest)?;
    Ok((path, pin))
}

/// A blocking reader over the chunks of a download that hashes and counts every byte.
struct ChunkReader {
    receiver: mpsc::Receiver<Chunk>,
    current: Bytes,
    ended: bool,
    hasher: Sha256,
    received: u64,
}

impl ChunkReader {
    fn new(receiver: mpsc::Receiver<Chunk>) -> ChunkReader {
        ChunkReader {
            receiver,
            current: Bytes::new(),
            ended: false,
            hasher: Sha256::new(),
            received: 0,
        }
    }

    /// The digest and size of every byte received.
    fn finish(self) -> (String, u64) {
        (
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.received,
        )
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.receiver.blocking_recv() {
                Some(Chunk::Data(bytes)) => {
                    self.hasher.update(&bytes);
                    self.received += bytes.len() as u64;
                    self.current = bytes;
                }
                Some(Chunk::End) => self.ended = true,
                Some(Chunk::Failed(reason)) => return Err(std::io::Error::other(reason)),
                None => {
                    let reason = "the download stopped before the end of the blob";
                    return Err(std::io::Error::other(reason));
                }
            }
        }

        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
