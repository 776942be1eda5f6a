//! Registry faults, from a hostile registry of the tests' own: transient failures are retried
//! with growing pauses and broken transfers resumed; wrong content is never published.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use oci_cache::{Cache, CacheOptions, ErrorCode, FetchOptions};
use support::{Compression, Entry, HostileRegistry, Layer, Reply, SeenRequest};

/// A layer big enough to be cut in the middle.
fn layer() -> Layer {
    Layer::random(2 << 20, 11, Compression::Gzip, support::OCI_LAYER_GZIP)
}

fn open(dir: &Path) -> Cache {
    let options = CacheOptions {
        read_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    Cache::open(dir, options).unwrap()
}

fn fetch(registry: &HostileRegistry, dir: &Path) -> oci_cache::Result<oci_cache::Image> {
    let reference = format!("{}/hostile/image:1.0.0", registry.host());
    open(dir).fetch(&reference, &FetchOptions::default())
}

fn is_blob(request: &SeenRequest, layer: &Layer) -> bool {
    request.method == "GET" && request.path.ends_with(&layer.digest)
}

fn blob_requests(registry: &HostileRegistry, layer: &Layer) -> Vec<SeenRequest> {
    registry
        .requests()
        .into_iter()
        .filter(|r| is_blob(r, layer))
        .collect()
}

fn assert_nothing_published(dir: &Path, layer: &Layer) {
    let hex = layer.digest.trim_start_matches("sha256:");
    assert!(
        !dir.join("layers/sha256").join(hex).exists(),
        "the layer was published"
    );
    let staging: Vec<_> = std::fs::read_dir(dir.join("staging")).unwrap().collect();
    assert!(staging.is_empty(), "staging holds {staging:?}");
}

fn assert_layer_complete(image: &oci_cache::Image, layer: &Layer) {
    let expected = tempfile::tempdir().unwrap();
    support::gnu_tar_extract(&layer.tar, expected.path());
    support::assert_same_tree(expected.path(), &image.layers[0].path);
}

#[test]
fn server_errors_are_retried_then_the_fetch_succeeds() {
    let layer = layer();
    let digest = layer.digest.clone();
    let registry =
        HostileRegistry::serve_image("1.0.0", std::slice::from_ref(&layer), move |r, n| {
            match r.path.ends_with(&digest) && n < 2 {
                true => Reply::Status(500, vec![]),
                false => Reply::Normal,
            }
        });
    let dir = tempfile::tempdir().unwrap();

    let image = fetch(&registry, dir.path()).unwrap();

    assert_eq!(blob_requests(&registry, &layer).len(), 3);
    assert_layer_complete(&image, &layer);
}

#[test]
fn too_many_requests_is_retried() {
    let layer = layer();
    let registry = HostileRegistry::serve_image("1.0.0", std::slice::from_ref(&layer), |r, n| {
        let retry_after = vec![("Retry-After".to_string(), "0".to_string())];
        match r.path.contains("/manifests/") && n == 0 {
            true => Reply::Status(429, retry_after),
            false => Reply::Normal,
        }
    });
    let dir = tempfile::tempdir().unwrap();

    let image = fetch(&registry, dir.path()).unwrap();

    let manifest_gets = registry
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/1.0.0"))
        .count();
    assert_eq!(manifest_gets, 2);
    assert_layer_complete(&image, &layer);
}

#[test]
fn retry_after_is_honoured_when_longer_than_the_backoff() {
    // The first pause of our own is 250 ms; the registry asks for 2 s.
    let layer = layer();
    let registry = HostileRegistry::serve_image("1.0.0", std::slice::from_ref(&layer), |r, n| {
        let retry_after = vec![("Retry-After".to_string(), "2".to_string())];
        match r.path.ends_with("/1.0.0") && n == 0 {
            true => Reply::Status(429, retry_after),
            false => Reply::Normal,
        }
    });
    let dir = tempfile::tempdir().unwrap();

    let image = fetch(&registry, dir.path()).unwrap();

    let tries: Vec<_> = registry
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/1.0.0"))
        .collect();
    assert_eq!(tries.len(), 2, "{tries:?}");
    let pause = tries[1].at - tries[0].at;
    assert!(pause >= Duration::from_secs(2), "retried after {pause:?}");
    assert_layer_complete(&image, &layer);
}

#[test]
fn retry_after_beyond_the_bound_fails_at_once_and_says_why() {
    let layer = layer();
    let registry = HostileRegistry::serve_image("1.0.0", std::slice::from_ref(&layer), |r, _| {
        let retry_after = vec![("Retry-After".to_string(), "3600".to_string())];
        match r.path.ends_with("/1.0.0") {
            true => Reply::Status(503, retry_after),
            false => Reply::Normal,
        }
    });
    let dir = tempfile::tempdir().unwrap();

    let error = fetch(&registry, dir.path()).unwrap_err();

    assert_eq!(error.code(), ErrorCode::Registry, "{error}");
    let message = error.to_string();
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("retry after 3600 s"), "{message}");
    let tries = registry
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/1.0.0"))
        .count();
    assert_eq!(tries, 1, "no try after a pause longer than the bound");
}

#[test]
fn persistent_server_error_fails_after_a_bounded_number_of_tries() {
    let layer = layer();
    let digest = layer.digest.clone();
    let registry =
        HostileRegistry::serve_image("1.0.0", std::slice::from_ref(&layer), move |r, _| {
            match r.path.ends_with(&digest) {
                true => Reply::Status(503, vec![]),
                false => Reply::Normal,
            }
        });
    let dir = tempfile::tempdir().unwrap();

    let error = fetch(&registry, dir.path()).unwrap_err();

    assert_eq!(error.code(), ErrorCode::Registry, "{error}");
    assert!(error.to_string().contains("503"), "{error}");
    assert_eq!(blob_requests(&registry, &layer).len(), 4);
    assert_nothing_published(dir.path(), &layer);
}

#[test]
fn reset_in_the_middle_of_a_blob_resumes_with_a_range_request() {
    let layer = layer();
    let half = layer.bytes.len() / 2;
    let digest = layer.digest.clone();
    let registry =
        HostileRegistry::serve_image("1.0.0", std::slice::from_ref(&layer), move |r, n| {
            match r.path.ends_with(&digest) && n == 0 {
                true => Reply::ResetAfter(half),
                false => Reply::Normal,
            }
        });
    let dir = tempfile::tempdir().unwrap();

    let image = fetch(&registry, dir.path()).unwrap();

    let requests = blob_requests(&registry, &layer);
    assert_eq!(requests.len(), 2, "{requests:?}");
    let range = requests[1]
        .range
        .as_deref()
        .expect("the second request asks for a range");
    let offset: usize = range
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(
        offset > 0 && offset <= half,
        "resumed at {offset} of {half} sent"
    );
    assert_layer_complete(&image, &layer);
}

#[test]
fn stalled_server_times_out_and_the_fetch_fails() {
    let layer = layer();
    let digest = layer.digest.clone();
    let registry =
        HostileRegistry::serve_image("1.0.0", std::slice::from_ref(&layer), move |r, _| {
            match r.path.ends_with(&digest) {
                true => Reply::StallAfter(1000, Duration::from_secs(20)),
                false => Reply::Normal,
            }
        });
    let dir = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let error = fetch(&registry, dir.path()).unwrap_err();

    assert_eq!(error.code(), ErrorCode::Network, "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(blob_requests(&registry, &layer).len(), 4);
    assert_nothing_published(dir.path(), &layer);
}

/// Serve the layer's blob as `body` instead; the fetch must fail with an integrity error.
fn assert_refused_as(body: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static) {
    let layer = layer();
    let (digest, bytes) = (layer.digest.clone(), layer.bytes.clone());
    let registry =
        HostileRegistry::serve_image("1.0.0", std::slice::from_ref(&layer), move |r, _| {
            match r.path.ends_with(&digest) {
                true => Reply::Body(body(&bytes)),
                false => Reply::Normal,
            }
        });
    let dir = tempfile::tempdir().unwrap();

    let error = fetch(&registry, dir.path()).unwrap_err();

    assert_eq!(error.code(), ErrorCode::Integrity, "{error}");
    assert!(error.to_string().contains(&layer.digest), "{error}");
    assert_nothing_published(dir.path(), &layer);
    let tries = blob_requests(&registry, &layer).len();
    assert_eq!(tries, 1, "a complete but wrong answer is not retried");
}

#[test]
fn wrong_bytes_for_a_digest_are_refused() {
    assert_refused_as(|bytes| {
        let mut wrong = bytes.to_vec();
        let middle = wrong.len() / 2;
        wrong[middle] ^= 1;
        wrong
    });
}

#[test]
fn blob_longer_than_its_descriptor_is_refused() {
    assert_refused_as(|bytes| [bytes, b"trailing garbage".as_slice()].concat());
}

#[test]
fn blob_shorter_than_its_descriptor_is_refused() {
    assert_refused_as(|bytes| bytes[..bytes.len() - 100].to_vec());
}

/// A well-behaved registry serving only a hand-made manifest of one layer `descriptor`, with
/// `annotations`, and no blobs.
fn serve_manifest(
    descriptor: serde_json::Value,
    annotations: serde_json::Value,
) -> HostileRegistry {
    let config = serde_json::json!({
        "mediaType": support::OCI_CONFIG, "digest": support::sha256_digest(b"{}"), "size": 2,
    });
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": support::OCI_MANIFEST,
        "config": config,
        "layers": [descriptor],
        "annotations": annotations,
    });
    let manifest = (
        support::OCI_MANIFEST,
        serde_json::to_vec(&manifest).unwrap(),
    );
    HostileRegistry::start("1.0.0", manifest, vec![], |_, _| Reply::Normal)
}

#[test]
fn manifest_over_4_mib_is_refused() {
    let layer = Layer::build(
        &[Entry::file("a", "a")],
        Compression::Gzip,
        support::OCI_LAYER_GZIP,
    );
    let descriptor = serde_json::json!({
        "mediaType": layer.media_type, "digest": layer.digest, "size": layer.size(),
    });
    let padding = serde_json::json!({"padding": "x".repeat(5 << 20)});
    let registry = serve_manifest(descriptor, padding);
    let dir = tempfile::tempdir().unwrap();

    let error = fetch(&registry, dir.path()).unwrap_err();

    assert_eq!(error.code(), ErrorCode::Registry, "{error}");
    assert!(
        error.to_string().contains("more than the 4194304 allowed"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn descriptor_digest_that_could_name_a_path_is_refused_before_any_blob_request() {
    for digest in ["sha256:../../../../etc/passwd", "sha256:abc"] {
        let descriptor = serde_json::json!({
            "mediaType": support::OCI_LAYER_GZIP, "digest": digest, "size": 10,
        });
        let registry = serve_manifest(descriptor, serde_json::json!({}));
        let dir = tempfile::tempdir().unwrap();

        let error = fetch(&registry, dir.path()).unwrap_err();

        assert_eq!(error.code(), ErrorCode::Registry, "{error}");
        assert!(error.to_string().contains("invalid digest"), "{error}");
        assert!(registry
            .requests()
            .iter()
            .all(|r| !r.path.contains("/blobs/")));
    }
}

#[test]
fn credentials_are_not_forwarded_across_a_redirect_to_another_host() {
    // The registry asks for Basic credentials, then redirects the blob to another host (a
    // storage backend, as registries do): that host must see no Authorization header.
    let layer = layer();
    let storage =
        HostileRegistry::serve_image("1.0.0", std::slice::from_ref(&layer), |_, _| Reply::Normal);
    let elsewhere = format!(
        "http://localhost:{}/v2/hostile/image/blobs/{}",
        storage.host().rsplit(':').next().unwrap(),
        layer.digest
    );
    let digest = layer.digest.clone();
    let registry =
        HostileRegistry::serve_image("1.0.0", std::slice::from_ref(&layer), move |r, _| {
            let challenge = ("WWW-Authenticate".into(), r#"Basic realm="test""#.into());
            match (r.authorization.is_some(), r.path.ends_with(&digest)) {
                (false, _) => Reply::Status(401, vec![challenge]),
                (true, true) => Reply::Redirect(elsewhere.clone()),
                (true, false) => Reply::Normal,
            }
        });
    let dir = tempfile::tempdir().unwrap();
    let credential = oci_cache::Credential::Basic {
        username: "ci".into(),
        password: "secret".into(),
    };
    let options = CacheOptions {
        credentials: [(registry.host(), credential)].into(),
        ..Default::default()
    };
    let reference = format!("{}/hostile/image:1.0.0", registry.host());

    let image = Cache::open(dir.path(), options)
        .unwrap()
        .fetch(&reference, &FetchOptions::default())
        .unwrap();

    assert_layer_complete(&image, &layer);
    let sent = registry.requests();
    let basic = "Basic Y2k6c2VjcmV0"; // ci:secret
    assert!(
        sent.iter()
            .any(|r| r.authorization.as_deref() == Some(basic)),
        "{sent:?}"
    );
    let followed = storage.requests();
    assert_eq!(followed.len(), 1, "{followed:?}");
    assert_eq!(followed[0].authorization, None, "{followed:?}");
}
