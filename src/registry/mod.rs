//! The registry client: manifest HEAD and GET and blob streams over the OCI distribution API,
//! with authentication, bounded retries that honour `Retry-After`, and errors mapped to ours.
//!
//! Requests are made here, on one `reqwest` client, rather than through oci-client: the cache
//! needs the response headers (`Retry-After`, `Content-Range`, `Docker-Content-Digest`),
//! bounded reads of manifests, blob streams that it hashes once itself, tokens renewed when a
//! registry refuses them, and credentials chosen per request (ARCHITECTURE.md, "Registry
//! client"). Registries on loopback use plain HTTP, as Docker does; any other needs to be named
//! insecure.

pub mod auth;

use std::net::IpAddr;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::manifest::{self, Descriptor};
use crate::reference::ImageReference;
use auth::{AuthFailure, Authenticator, Credential};

const USER_AGENT: &str = concat!("oci-cache/", env!("CARGO_PKG_VERSION"));

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`) reached over plain HTTP although not on loopback.
    pub insecure_registries: Vec<String>,
    /// How long a connection may send nothing before the request fails (and is retried).
    pub read_timeout: Duration,
    /// How many times one request is tried in all, transient failures included.
    pub attempts: u32,
    /// The first pause between two tries; it doubles each time.
    pub retry_delay: Duration,
    /// Credentials by registry host (`host[:port]`).
    pub credentials: std::collections::HashMap<String, Credential>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure_registries: Vec::new(),
            read_timeout: Duration::from_secs(60),
            attempts: 4,
            retry_delay: Duration::from_millis(250),
            credentials: Default::default(),
        }
    }
}

/// The longest pause between two tries of our own choosing.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// The longest pause a registry may ask for with `Retry-After`; a longer one fails the request
/// at once rather than holding a CI job.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The most of an error body kept in a message.
const MAX_ERROR_BODY: usize = 512;

/// A stream of blob bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Clients for the registries a cache talks to.
pub struct Registries {
    options: RegistryOptions,
    http: reqwest::Client,
    auth: Authenticator,
}

/// A blob stream, and whether it starts at the requested offset (a Range request the server
/// honoured) or at byte 0 (the server sent the whole blob).
pub struct BlobStream {
    /// The bytes.
    pub stream: ByteStream,
    /// The length the server announced for this response, if it did.
    pub content_length: Option<u64>,
    /// The offset of the first byte of `stream` in the blob.
    pub offset: u64,
}

/// One request's target, for messages.
struct Target<'a> {
    reference: &'a ImageReference,
    what: &'a str,
}

/// How one try of a request failed.
enum Failure {
    /// For good: no other try would do better.
    Final(Error),
    /// For now: the transport failed, or the registry is overloaded or broken.
    Transient {
        error: Error,
        /// The pause the registry asked for.
        retry_after: Option<Duration>,
    },
}

impl Registries {
    /// Registries reached with `options`.
    pub fn new(options: RegistryOptions) -> Result<Registries> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(options.read_timeout)
            .build()
            .map_err(|e| Error::Network {
                what: "registry client".to_string(),
                reference: String::new(),
                detail: format!("cannot build an HTTP client: {}", error_chain(&e)),
            })?;
        let auth = Authenticator::new(options.credentials.clone());
        Ok(Registries {
            options,
            http,
            auth,
        })
    }

    /// Ask for the digest of the manifest `reference` points at (a HEAD request).
    pub async fn resolve_digest(&self, reference: &ImageReference) -> Result<String> {
        let target = Target {
            reference,
            what: "manifest",
        };
        let url = self.manifest_url(reference);

        let response = self
            .send(&target, Method::HEAD, &url, &accept_manifests())
            .await?;
        let announced = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let digest = match announced {
            Some(digest) => digest,
            // The registry did not say: get the manifest and hash it.
            None => return Ok(self.get_manifest(reference).await?.1),
        };
        crate::reference::parse_digest(&digest).map_err(|reason| Error::Registry {
            what: target.what.to_string(),
            reference: reference.to_string(),
            detail: format!("the registry answered with an invalid digest: {reason}"),
        })
    }

    /// Get the manifest or index `reference` points at: its exact bytes and their digest,
    /// checked against the reference's digest, and against the digest the registry announces.
    pub async fn get_manifest(&self, reference: &ImageReference) -> Result<(Vec<u8>, String)> {
        let what = match reference.digest() {
            Some(digest) => format!("manifest {digest}"),
            None => "manifest".to_string(),
        };
        let target = Target {
            reference,
            what: &what,
        };
        let url = self.manifest_url(reference);

        let response = self
            .send(&target, Method::GET, &url, &accept_manifests())
            .await?;
        let announced = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_bounded(response, manifest::MAX_MANIFEST_BYTES, &target).await?;

        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let expected = reference.digest().map(str::to_string).or(announced);
        if let Some(expected) = expected.filter(|e| e.starts_with("sha256:") && *e != digest) {
            return Err(Error::Integrity {
                what,
                reference: reference.to_string(),
                detail: format!("the manifest's bytes hash to {digest}, not {expected}"),
            });
        }
        Ok((bytes, digest))
    }

    /// Open a stream of the blob `descriptor` of `reference`'s repository, from byte `offset`
    /// when the server honours a Range request (else from byte 0: see [`BlobStream::offset`]).
    /// The bytes are not checked here: the caller hashes them as they pass.
    pub async fn blob_stream(
        &self,
        reference: &ImageReference,
        descriptor: &Descriptor,
        offset: u64,
    ) -> Result<BlobStream> {
        let what = format!("blob {}", descriptor.digest);
        let target = Target {
            reference,
            what: &what,
        };
        let url = self.blob_url(reference, &descriptor.digest);
        let mut headers = HeaderMap::new();
        if offset > 0 {
            let range = HeaderValue::from_str(&format!("bytes={offset}-")).expect("ASCII");
            headers.insert(header::RANGE, range);
        }

        let response = self.send(&target, Method::GET, &url, &headers).await?;
        let start = match response.status() {
            StatusCode::PARTIAL_CONTENT => range_start(response.headers()),
            _ => Some(0),
        };
        let start = start
            .filter(|&s| s == 0 || s == offset)
            .ok_or_else(|| Error::Registry {
                what: what.clone(),
                reference: reference.to_string(),
                detail: format!(
                    "asked for bytes from {offset}, the registry answered with the range {:?}",
                    response.headers().get(header::CONTENT_RANGE)
                ),
            })?;
        Ok(BlobStream {
            content_length: response.content_length(),
            stream: Box::pin(response.bytes_stream()),
            offset: start,
        })
    }

    /// Get a small blob (an image config) whole, refusing one longer than its descriptor. The
    /// caller checks the digest when it stores the bytes.
    pub async fn get_small_blob(
        &self,
        reference: &ImageReference,
        descriptor: &Descriptor,
    ) -> Result<Vec<u8>> {
        let what = format!("blob {}", descriptor.digest);
        let network = |e: reqwest::Error| Error::Network {
            what: what.clone(),
            reference: reference.to_string(),
            detail: error_chain(&e),
        };

        let blob = self.blob_stream(reference, descriptor, 0).await?;
        let limit = descriptor.size.max(0) as usize;
        let bytes: Vec<u8> = blob
            .stream
            .map_err(network)
            .try_fold(Vec::with_capacity(limit), |mut bytes, chunk| async move {
                bytes.extend_from_slice(&chunk);
                Ok(bytes)
            })
            .await?;
        if bytes.len() > limit {
            return Err(Error::Integrity {
                what,
                reference: reference.to_string(),
                detail: format!("blob is longer than the {limit} bytes its descriptor says"),
            });
        }
        Ok(bytes)
    }

    /// The pause after failed try `attempt` (1 for the first).
    pub(crate) fn retry_delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        (self.options.retry_delay * factor).min(MAX_RETRY_DELAY)
    }

    /// How many times a request is tried in all.
    pub(crate) fn attempts(&self) -> u32 {
        self.options.attempts.max(1)
    }

    /// Send a request until it succeeds, fails for good, or runs out of tries. Transient
    /// failures are tried again after a pause that doubles each time, or after the pause the
    /// registry asked for with `Retry-After` when that is longer.
    async fn send(
        &self,
        target: &Target<'_>,
        method: Method,
        url: &str,
        headers: &HeaderMap,
    ) -> Result<Response> {
        let mut attempt = 1;
        loop {
            let (error, retry_after) = match self.send_once(target, &method, url, headers).await {
                Ok(response) => return Ok(response),
                Err(Failure::Final(error)) => return Err(error),
                Err(Failure::Transient { error, retry_after }) => (error, retry_after),
            };
            if attempt >= self.attempts() {
                return Err(error);
            }
            let delay = self
                .retry_delay(attempt)
                .max(retry_after.unwrap_or_default());
            if delay > MAX_RETRY_AFTER {
                return Err(waited_too_long(target, error, delay));
            }

            tracing::warn!(
                what = target.what,
                reference = %target.reference,
                attempt,
                delay_ms = delay.as_millis() as u64,
                retry_after_s = retry_after.map(|d| d.as_secs()),
                error = %error,
                "registry request failed, retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One try: the request with the authorization known for the repository; on a 401, the
    /// challenge answered and the request sent once more.
    async fn send_once(
        &self,
        target: &Target<'_>,
        method: &Method,
        url: &str,
        headers: &HeaderMap,
    ) -> std::result::Result<Response, Failure> {
        let (registry, repository) = (target.reference.registry(), target.reference.repository());
        let authorization = self.auth.authorization(registry, repository);
        let answered_before = authorization.is_some();

        let response = self
            .request(target, method, url, headers, authorization)
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return check_status(target, response).await;
        }

        // Refused: an expired or revoked grant, or none yet. Answer the challenge afresh.
        self.auth.forget(registry, repository);
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(challenge) = challenge else {
            return check_status(target, response).await;
        };
        let plain_http = self.is_plain_http(registry);
        let authorization = self
            .auth
            .answer(&self.http, registry, repository, &challenge, plain_http)
            .await
            .map_err(|failure| auth_failure(target, failure))?;
        tracing::debug!(
            registry,
            repository,
            renewed = answered_before,
            "registry challenge answered"
        );

        let response = self
            .request(target, method, url, headers, Some(authorization))
            .await?;
        check_status(target, response).await
    }

    /// Send one HTTP request.
    async fn request(
        &self,
        target: &Target<'_>,
        method: &Method,
        url: &str,
        headers: &HeaderMap,
        authorization: Option<HeaderValue>,
    ) -> std::result::Result<Response, Failure> {
        let mut request = self
            .http
            .request(method.clone(), url)
            .headers(headers.clone());
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }

        let response = request.send().await.map_err(|e| Failure::Transient {
            error: Error::Network {
                what: target.what.to_string(),
                reference: target.reference.to_string(),
                detail: error_chain(&e),
            },
            retry_after: None,
        })?;
        tracing::debug!(
            method = %method,
            url,
            status = response.status().as_u16(),
            "registry answered"
        );
        Ok(response)
    }

    /// `<scheme>://<host>/v2/<repository>/manifests/<digest or tag>`.
    fn manifest_url(&self, reference: &ImageReference) -> String {
        let tag_or_digest = reference
            .digest()
            .or(reference.tag())
            .unwrap_or(crate::reference::DEFAULT_TAG);
        format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.base_url(reference.registry()),
            reference.repository()
        )
    }

    /// `<scheme>://<host>/v2/<repository>/blobs/<digest>`.
    fn blob_url(&self, reference: &ImageReference, digest: &str) -> String {
        format!(
            "{}/v2/{}/blobs/{digest}",
            self.base_url(reference.registry()),
            reference.repository()
        )
    }

    /// The scheme and host that serve `registry`'s API.
    fn base_url(&self, registry: &str) -> String {
        let scheme = match self.is_plain_http(registry) {
            true => "http",
            false => "https",
        };
        // Docker Hub's API is served from another name than its references use.
        let host = match registry {
            crate::reference::DEFAULT_REGISTRY => "registry-1.docker.io",
            other => other,
        };
        format!("{scheme}://{host}")
    }

    /// Loopback registries, and those named insecure, are reached over plain HTTP.
    fn is_plain_http(&self, registry: &str) -> bool {
        is_loopback(registry)
            || self
                .options
                .insecure_registries
                .iter()
                .any(|r| r == registry)
    }
}

/// The Accept header for manifests and indexes of every supported kind.
fn accept_manifests() -> HeaderMap {
    let mut headers = HeaderMap::new();
    let accepted = manifest::ACCEPTED.join(", ");
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_str(&accepted).expect("ASCII"),
    );
    headers
}

/// Turn a non-success answer into the failure it means.
async fn check_status(
    target: &Target<'_>,
    response: Response,
) -> std::result::Result<Response, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }

    let (what, reference) = (target.what.to_string(), target.reference.to_string());
    let retry_after = retry_after(response.headers(), SystemTime::now());
    let detail = format!("HTTP {status}{}", error_words(response).await);
    let error = match status.as_u16() {
        404 => Error::NotFound { what, reference },
        401 | 403 => Error::Unauthorized {
            what,
            reference,
            detail,
        },
        _ => Error::Registry {
            what,
            reference,
            detail,
        },
    };
    Err(match status.as_u16() {
        408 | 429 | 500..=599 => Failure::Transient { error, retry_after },
        _ => Failure::Final(error),
    })
}

/// ": " and the registry's explanation, from an OCI error body when there is one.
async fn error_words(response: Response) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: String,
        #[serde(default)]
        message: String,
    }

    let body = response.bytes().await.unwrap_or_default();
    let body = &body[..body.len().min(4096)];
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(body) {
        let entries: Vec<String> = envelope
            .errors
            .iter()
            .map(|e| format!("{} ({})", e.code, e.message))
            .collect();
        return format!(": {}", entries.join("; "));
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY)]);
    match text.trim() {
        "" => String::new(),
        text => format!(": {text}"),
    }
}

/// The pause a `Retry-After` header asks for: delay-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or_default())
}

/// The error for a registry that asks for a longer pause than this cache waits.
fn waited_too_long(target: &Target<'_>, error: Error, delay: Duration) -> Error {
    Error::Registry {
        what: target.what.to_string(),
        reference: target.reference.to_string(),
        detail: format!(
            "{error}; the registry asks to retry after {} s, longer than the {} s this cache \
             waits",
            delay.as_secs(),
            MAX_RETRY_AFTER.as_secs()
        ),
    }
}

/// Our error for a challenge that could not be answered.
fn auth_failure(target: &Target<'_>, failure: AuthFailure) -> Failure {
    let (what, reference) = (target.what.to_string(), target.reference.to_string());
    match failure {
        AuthFailure::Refused(detail) => Failure::Final(Error::Unauthorized {
            what,
            reference,
            detail,
        }),
        AuthFailure::Transient(detail) => Failure::Transient {
            error: Error::Network {
                what,
                reference,
                detail,
            },
            retry_after: None,
        },
    }
}

/// Read a body of at most `limit` bytes, refusing a longer one before reading it when its
/// length is announced, and as soon as it passes the limit otherwise.
async fn read_bounded(mut response: Response, limit: u64, target: &Target<'_>) -> Result<Vec<u8>> {
    let too_long = |length: String| Error::Registry {
        what: target.what.to_string(),
        reference: target.reference.to_string(),
        detail: format!("manifest is {length} bytes, more than the {limit} allowed"),
    };
    if let Some(length) = response.content_length().filter(|&n| n > limit) {
        return Err(too_long(length.to_string()));
    }

    let mut bytes = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|e| Error::Network {
            what: target.what.to_string(),
            reference: target.reference.to_string(),
            detail: error_chain(&e),
        })?;
        let Some(chunk) = chunk else {
            return Ok(bytes);
        };
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > limit {
            return Err(too_long(format!("over {}", bytes.len())));
        }
    }
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/TOTAL` answer.
fn range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// Loopback registries (`localhost`, `127.0.0.0/8`, `::1`) speak plain HTTP.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An error and all its causes, joined by ": ".
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.8.9.1"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();

        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));

        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));

        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn content_range_gives_the_first_byte() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 100-199/200"),
        );

        assert_eq!(range_start(&headers), Some(100));
    }

    #[test]
    fn docker_hub_is_reached_at_its_api_host() {
        let registries = Registries::new(RegistryOptions::default()).unwrap();
        let reference = ImageReference::parse("alpine:3").unwrap();

        assert_eq!(
            registries.manifest_url(&reference),
            "https://registry-1.docker.io/v2/library/alpine/manifests/3"
        );
    }
}
