//! `CI_STEPS_OCI_CACHE=false` turns caching off. This file holds one test so that setting the
//! variable cannot affect other tests of the same process.

mod support;

use std::sync::{Arc, Mutex};

use oci_cache::{Cache, CacheOptions, FetchOptions, ImageOutcome, LayerOutcome, LogTarget};
use support::{Compression, Entry, Layer, Registry};

#[test]
fn cache_env_false_warns_works_and_leaves_the_cache_untouched() {
    let registry = Registry::start();
    let layers = vec![Layer::build(
        &[Entry::file("step.yml", "x")],
        Compression::Zstd,
        support::STEP_LAYER_ZSTD,
    )];
    registry.push_image("steps/nocache", Some("1.0.0"), &layers, None, false);
    let parent = tempfile::tempdir().unwrap();
    let cache_dir = parent.path().join("cache");
    let warnings: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&warnings);
    let log = LogTarget {
        level: tracing::Level::WARN,
        callback: Arc::new(move |record| {
            sink.lock()
                .unwrap()
                .push(format!("{} {}", record.message, record.fields))
        }),
    };
    let reference = format!("{}/steps/nocache:1.0.0", registry.host());

    for value in ["false", "0", "NO", "Off"] {
        std::env::set_var(oci_cache::CACHE_ENV, value);
        let cache = Cache::open(
            &cache_dir,
            CacheOptions {
                log: Some(log.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        let image = cache.fetch(&reference, &FetchOptions::default()).unwrap();

        assert!(cache.is_disabled(), "{value}");
        assert_eq!(image.cache, ImageOutcome::Disabled);
        assert_eq!(image.layers[0].cache, LayerOutcome::Disabled);
        assert!(image.layers[0].path.join("step.yml").is_file());
        let root = image
            .uncached_root
            .clone()
            .expect("an uncached fetch names its directory");
        assert!(image.layers[0].path.starts_with(&root));
        std::fs::remove_dir_all(root).unwrap();
    }

    assert!(!cache_dir.exists(), "the cache directory was created");
    let warnings = warnings.lock().unwrap();
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    assert!(warnings[0].contains("caching is off") && warnings[0].contains("CI_STEPS_OCI_CACHE"));
}
