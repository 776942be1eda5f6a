//! Pruning: removing layers (least recently used first) to bring the cache under a size
//! budget, or those unused for a while, or all of them; and the image records and merged
//! directories that needed a removed layer.
//!
//! A layer is removed only by whoever holds its pin file exclusively (`flock`), which no one
//! can while a result of any process holds a shared pin on it, or a fetch is about to serve it.
//! The removal is one rename out of `layers/`, so a reader sees the layer whole or not at all.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::Result;
use crate::store::Store;

/// What to remove.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Remove least recently used layers until the cache holds at most this many bytes.
    pub max_size: Option<u64>,
    /// Remove layers unused for longer than this.
    pub unused_for: Option<Duration>,
    /// Remove every layer not in use.
    pub all: bool,
}

/// What a prune did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PruneReport {
    /// Layers removed.
    pub removed_layers: usize,
    /// Bytes of the files of the removed layers.
    pub removed_bytes: u64,
    /// Image records (and merged directories) removed because a layer of theirs was.
    pub removed_images: usize,
    /// Layers that were to go but are in use by a fetch or a result, and stayed.
    pub in_use: usize,
    /// Bytes of the layers before and after.
    pub size_before: u64,
    /// Bytes of the layers after.
    pub size_after: u64,
}

/// A layer that might go.
struct Candidate {
    digest: String,
    size: u64,
    last_use: SystemTime,
}

/// Prune `store` as `options` say.
pub(crate) fn prune(store: &Store, options: &PruneOptions) -> Result<PruneReport> {
    let mut candidates = candidates(store)?;
    candidates.sort_by_key(|c| c.last_use);
    let total: u64 = candidates.iter().map(|c| c.size).sum();
    let mut report = PruneReport {
        size_before: total,
        size_after: total,
        ..PruneReport::default()
    };
    let cutoff = options
        .unused_for
        .and_then(|age| SystemTime::now().checked_sub(age));

    for candidate in &candidates {
        let unused = cutoff.is_some_and(|cutoff| candidate.last_use < cutoff);
        let over_budget = options.max_size.is_some_and(|max| report.size_after > max);
        if !(options.all || unused || over_budget) {
            continue;
        }
        if remove_unless_pinned(store, &candidate.digest)? {
            report.removed_layers += 1;
            report.removed_bytes += candidate.size;
            report.size_after -= candidate.size;
        } else {
            report.in_use += 1;
        }
    }

    report.removed_images = drop_orphaned_images(store)?;
    tracing::info!(
        removed_layers = report.removed_layers,
        removed_bytes = report.removed_bytes,
        removed_images = report.removed_images,
        in_use = report.in_use,
        size_after = report.size_after,
        "cache pruned"
    );
    Ok(report)
}

/// Every published layer, with its size and last use.
fn candidates(store: &Store) -> Result<Vec<Candidate>> {
    Ok(store
        .layers()?
        .into_iter()
        .map(|digest| Candidate {
            size: crate::cache::tree_size(&store.layer_path(&digest)),
            last_use: store.last_use(&digest),
            digest,
        })
        .collect())
}

/// Remove the layer `digest` unless a result or a fetch pins it. True when removed.
fn remove_unless_pinned(store: &Store, digest: &str) -> Result<bool> {
    let Some(_exclusive) = crate::lock::try_lock_file(&store.layer_pin_path(digest)) else {
        tracing::debug!(digest, "layer in use: not pruned");
        return Ok(false);
    };
    if !store.has_layer(digest) {
        return Ok(false);
    }
    store.remove_layer(digest)?;
    tracing::debug!(digest, "layer pruned");
    Ok(true)
}

/// Remove the records and merged directories of images that lost a layer.
fn drop_orphaned_images(store: &Store) -> Result<usize> {
    let mut removed = 0;
    for record in store.image_records() {
        if record.layers.iter().all(|digest| store.has_layer(digest)) {
            continue;
        }
        store.remove_image(&record.manifest_digest)?;
        removed += 1;
    }
    Ok(removed)
}
