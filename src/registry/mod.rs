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
pub mod docker_config;

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::manifest::{self, Descriptor};
use crate::reference::ImageReference;
use auth::{AuthFailure, Authenticator, Credential, CredentialSource};

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
    pub credentials: HashMap<String, Credential>,
    /// Where credentials not given in `credentials` come from (a Docker config).
    pub credential_source: Option<Arc<dyn CredentialSource>>,
    /// Extra certificate authorities (PEM), trusted besides the system's.
    pub ca_certificates: Vec<Vec<u8>>,
    /// Mirrors by registry host, tried in order before the registry itself.
    pub mirrors: HashMap<String, Vec<Mirror>>,
    /// Refuse every request: the cache is offline.
    pub offline: bool,
}

/// A mirror of a registry: another registry that serves the same repositories (a pull-through
/// cache, a P2P mirror). Everything it serves is verified as if it came from the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Its base URL, `http://` or `https://`, without the `/v2/` path.
    pub url: String,
    /// It serves manifests by digest and blobs only, never resolves tags.
    pub digest_only: bool,
}

impl Mirror {
    /// Parse `URL`, checking that it is an http or https URL with a host.
    pub fn new(url: &str, digest_only: bool) -> std::result::Result<Mirror, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if !["http", "https"].contains(&parsed.scheme()) || parsed.host_str().is_none() {
            return Err(format!(
                "{url:?} is not an http:// or https:// URL with a host"
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(format!("{url:?} has a query or fragment"));
        }
        Ok(Mirror {
            url: url.trim_end_matches('/').to_string(),
            digest_only,
        })
    }

    /// Parse `REGISTRY=URL[,digest-only]`, the form the CLI, the C ABI and the bindings take:
    /// the registry host the mirror stands in for, and the mirror.
    pub fn parse_spec(spec: &str) -> std::result::Result<(String, Mirror), String> {
        let (registry, rest) = spec
            .split_once('=')
            .filter(|(registry, _)| !registry.is_empty())
            .ok_or_else(|| format!("mirror {spec:?} is not REGISTRY=URL[,digest-only]"))?;
        let (url, digest_only) = match rest.strip_suffix(",digest-only") {
            Some(url) => (url, true),
            None => (rest, false),
        };
        Ok((registry.to_string(), Mirror::new(url, digest_only)?))
    }

    /// `host[:port]`, the key of the mirror's own credentials.
    fn authority(&self) -> String {
        let url = reqwest::Url::parse(&self.url).expect("checked when made");
        match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        }
    }
}

/// Which sources a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    /// The registry's mirrors, in order, then the registry.
    Any,
    /// The registry alone (a mirror served wrong bytes).
    OriginOnly,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure_registries: Vec::new(),
            read_timeout: Duration::from_secs(60),
            attempts: 4,
            retry_delay: Duration::from_millis(250),
            credentials: Default::default(),
            credential_source: None,
            ca_certificates: Vec::new(),
            mirrors: HashMap::new(),
            offline: false,
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
    /// (registry, repository) -> when the caller last proved it may read that repository.
    access: Mutex<HashMap<(String, String), Instant>>,
}

/// How long a proof of access to a private repository is remembered by a handle.
pub const ACCESS_PROOF_LIFETIME: Duration = Duration::from_secs(300);

/// A blob stream, and whether it starts at the requested offset (a Range request the server
/// honoured) or at byte 0 (the server sent the whole blob).
pub struct BlobStream {
    /// The bytes.
    pub stream: ByteStream,
    /// The length the server announced for this response, if it did.
    pub content_length: Option<u64>,
    /// The offset of the first byte of `stream` in the blob.
    pub offset: u64,
    /// The mirror that serves it, or None for the registry itself.
    pub mirror: Option<String>,
}

/// One request's target, for messages.
struct Target<'a> {
    reference: &'a ImageReference,
    what: &'a str,
}

/// A place a request can go: a mirror or the registry itself.
struct Endpoint {
    /// `scheme://host[:port][/prefix]`.
    base: String,
    /// `host[:port]`: the key of credentials and grants.
    authority: String,
    /// The registry host, when this is one of its mirrors (sent as `ns`, as containerd does).
    mirror_of: Option<String>,
    plain_http: bool,
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

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Final(error) | Failure::Transient { error, .. } => error,
        }
    }
}

impl Registries {
    /// Registries reached with `options`.
    pub fn new(options: RegistryOptions) -> Result<Registries> {
        let invalid = |detail: String| Error::InvalidArgument {
            name: "ca_certificates",
            reason: detail,
        };
        let mut roots = Vec::new();
        for pem in &options.ca_certificates {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| invalid(format!("not PEM certificates: {}", error_chain(&e))))?;
            if certificates.is_empty() {
                return Err(invalid("no certificate in the PEM text".into()));
            }
            roots.extend(certificates);
        }

        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(options.read_timeout)
            .tls_certs_merge(roots)
            .build()
            .map_err(|e| Error::Network {
                what: "registry client".to_string(),
                reference: String::new(),
                detail: format!("cannot build an HTTP client: {}", error_chain(&e)),
            })?;
        let auth = Authenticator::new(
            options.credentials.clone(),
            options.credential_source.clone(),
        );
        Ok(Registries {
            options,
            http,
            auth,
            access: Mutex::default(),
        })
    }

    /// Ask for the digest of the manifest `reference` points at (a HEAD request).
    pub async fn resolve_digest(&self, reference: &ImageReference) -> Result<String> {
        let target = Target {
            reference,
            what: "manifest",
        };
        let path = manifest_path(reference);

        let response = self
            .send(
                &target,
                Method::HEAD,
                &path,
                &accept_manifests(),
                Sources::Any,
            )
            .await?
            .0;
        let digest = match announced_digest(&response) {
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
        let path = manifest_path(reference);

        let response = self
            .send(
                &target,
                Method::GET,
                &path,
                &accept_manifests(),
                Sources::Any,
            )
            .await?
            .0;
        let announced = announced_digest(&response);
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

    /// Prove that the caller may read `reference`'s repository, pinned at `digest`: one HEAD of
    /// the manifest with the caller's credentials, remembered for [`ACCESS_PROOF_LIFETIME`].
    /// Asked of the registry itself, never of a mirror: only the origin knows who may read.
    /// True when a request was made (false: proven recently).
    pub async fn prove_access(&self, reference: &ImageReference, digest: &str) -> Result<bool> {
        let key = (
            reference.registry().to_string(),
            reference.repository().to_string(),
        );
        let proven = self
            .access
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied();
        if proven.is_some_and(|at| at.elapsed() < ACCESS_PROOF_LIFETIME) {
            tracing::debug!(repository = %key.1, "access to private repository proven recently");
            return Ok(false);
        }

        let pinned = reference.with_digest(digest);
        let target = Target {
            reference: &pinned,
            what: "manifest (access check of a private image)",
        };
        let path = manifest_path(&pinned);
        self.send(
            &target,
            Method::HEAD,
            &path,
            &accept_manifests(),
            Sources::OriginOnly,
        )
        .await?;
        tracing::debug!(repository = %key.1, "access to private repository proven");
        self.access
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Instant::now());
        Ok(true)
    }

    /// True when a request to `reference`'s repository carried the caller's credentials: the
    /// registry asked for them, so the repository is private.
    pub fn used_credentials(&self, reference: &ImageReference) -> bool {
        self.auth
            .used_credential(reference.registry(), reference.repository())
    }

    /// True when `registry` has mirrors.
    pub fn has_mirrors(&self, registry: &str) -> bool {
        self.options
            .mirrors
            .get(registry)
            .is_some_and(|m| !m.is_empty())
    }

    /// Open a stream of the blob `descriptor` of `reference`'s repository, from byte `offset`
    /// when the server honours a Range request (else from byte 0: see [`BlobStream::offset`]).
    /// The bytes are not checked here: the caller hashes them as they pass.
    pub async fn blob_stream(
        &self,
        reference: &ImageReference,
        descriptor: &Descriptor,
        offset: u64,
        sources: Sources,
    ) -> Result<BlobStream> {
        let what = format!("blob {}", descriptor.digest);
        let target = Target {
            reference,
            what: &what,
        };
        let path = format!("/v2/{}/blobs/{}", reference.repository(), descriptor.digest);
        let mut headers = HeaderMap::new();
        if offset > 0 {
            let range = HeaderValue::from_str(&format!("bytes={offset}-")).expect("ASCII");
            headers.insert(header::RANGE, range);
        }

        let (response, mirror) = self
            .send(&target, Method::GET, &path, &headers, sources)
            .await?;
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
            mirror,
        })
    }

    /// Get a small blob (an image config) whole, refusing one longer than its descriptor. The
    /// caller checks the digest when it stores the bytes.
    pub async fn get_small_blob(
        &self,
        reference: &ImageReference,
        descriptor: &Descriptor,
        sources: Sources,
    ) -> Result<Vec<u8>> {
        let what = format!("blob {}", descriptor.digest);
        let network = |e: reqwest::Error| Error::Network {
            what: what.clone(),
            reference: reference.to_string(),
            detail: error_chain(&e),
        };

        let blob = self.blob_stream(reference, descriptor, 0, sources).await?;
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

    /// Send a request to the first source that answers it: each mirror once, in order, then
    /// the registry with retries. Returns the answer and the mirror that gave it, if any.
    async fn send(
        &self,
        target: &Target<'_>,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        sources: Sources,
    ) -> Result<(Response, Option<String>)> {
        if self.options.offline {
            return Err(Error::NotCached {
                reference: target.reference.to_string(),
                detail: format!("offline: the {} would need a registry request", target.what),
            });
        }
        let registry = target.reference.registry();
        let by_tag = path.contains("/manifests/") && target.reference.digest().is_none();
        let mirrors = match sources {
            Sources::Any => self.options.mirrors.get(registry).map(Vec::as_slice),
            Sources::OriginOnly => None,
        };

        for mirror in mirrors.unwrap_or_default() {
            if mirror.digest_only && by_tag {
                continue;
            }
            let endpoint = Endpoint {
                base: mirror.url.clone(),
                authority: mirror.authority(),
                mirror_of: Some(registry.to_string()),
                plain_http: mirror.url.starts_with("http:"),
            };
            match self
                .send_once(target, &endpoint, &method, path, headers)
                .await
            {
                Ok(response) => return Ok((response, Some(mirror.url.clone()))),
                Err(failure) => tracing::warn!(
                    mirror = %mirror.url,
                    what = target.what,
                    reference = %target.reference,
                    error = %failure.into_error(),
                    "mirror failed, trying the next source"
                ),
            }
        }

        let origin = self.origin(registry);
        let response = self
            .send_with_retries(target, &origin, &method, path, headers)
            .await?;
        Ok((response, None))
    }

    /// Send a request until it succeeds, fails for good, or runs out of tries. Transient
    /// failures are tried again after a pause that doubles each time, or after the pause the
    /// registry asked for with `Retry-After` when that is longer.
    async fn send_with_retries(
        &self,
        target: &Target<'_>,
        endpoint: &Endpoint,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Response> {
        let mut attempt = 1;
        loop {
            let (error, retry_after) = match self
                .send_once(target, endpoint, method, path, headers)
                .await
            {
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
        endpoint: &Endpoint,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> std::result::Result<Response, Failure> {
        let (host, repository) = (endpoint.authority.as_str(), target.reference.repository());
        let url = endpoint.url(path);
        let authorization = self.auth.authorization(host, repository);
        let answered_before = authorization.is_some();

        let response = self
            .request(target, method, &url, headers, authorization)
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return check_status(target, response).await;
        }

        // Refused: an expired or revoked grant, or none yet. Answer the challenge afresh.
        self.auth.forget(host, repository);
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(challenge) = challenge else {
            return check_status(target, response).await;
        };
        let authorization = self
            .auth
            .answer(
                &self.http,
                host,
                repository,
                &challenge,
                endpoint.plain_http,
            )
            .await
            .map_err(|failure| auth_failure(target, failure))?;
        tracing::debug!(
            registry = host,
            repository,
            renewed = answered_before,
            "registry challenge answered"
        );

        let response = self
            .request(target, method, &url, headers, Some(authorization))
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
                detail: transport_detail(&e),
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

    /// The registry itself, as an endpoint.
    fn origin(&self, registry: &str) -> Endpoint {
        let plain_http = self.is_plain_http(registry);
        let scheme = if plain_http { "http" } else { "https" };
        // Docker Hub's API is served from another name than its references use.
        let host = match registry {
            crate::reference::DEFAULT_REGISTRY => "registry-1.docker.io",
            other => other,
        };
        Endpoint {
            base: format!("{scheme}://{host}"),
            authority: registry.to_string(),
            mirror_of: None,
            plain_http,
        }
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

impl Endpoint {
    /// The URL of `path` (`/v2/...`) at this endpoint.
    fn url(&self, path: &str) -> String {
        match &self.mirror_of {
            Some(registry) => format!("{}{path}?ns={registry}", self.base),
            None => format!("{}{path}", self.base),
        }
    }
}

/// `/v2/<repository>/manifests/<digest or tag>`.
fn manifest_path(reference: &ImageReference) -> String {
    let tag_or_digest = reference
        .digest()
        .or(reference.tag())
        .unwrap_or(crate::reference::DEFAULT_TAG);
    format!("/v2/{}/manifests/{tag_or_digest}", reference.repository())
}

/// A transport error with its causes, and a hint when a certificate was not trusted.
fn transport_detail(error: &reqwest::Error) -> String {
    let detail = error_chain(error);
    if detail.contains("certificate") {
        return format!(
            "{detail} (the registry's certificate is not trusted: add its certificate \
             authority with a CA file option, or fix the certificate)"
        );
    }
    detail
}

/// The `Docker-Content-Digest` a registry sent with a manifest, if any.
fn announced_digest(response: &Response) -> Option<String> {
    let value = response.headers().get("docker-content-digest")?;
    value.to_str().ok().map(str::to_string)
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

        let url = registries
            .origin(reference.registry())
            .url(&manifest_path(&reference));

        assert_eq!(
            url,
            "https://registry-1.docker.io/v2/library/alpine/manifests/3"
        );
    }

    #[test]
    fn mirrors_are_asked_with_the_registry_as_namespace() {
        let mirror = Mirror::new("http://mirror.example:5000/", false).unwrap();
        let endpoint = Endpoint {
            base: mirror.url.clone(),
            authority: mirror.authority(),
            mirror_of: Some("registry.example".into()),
            plain_http: true,
        };

        let url = endpoint.url("/v2/steps/echo/blobs/sha256:00");

        assert_eq!(endpoint.authority, "mirror.example:5000");
        assert_eq!(
            url,
            "http://mirror.example:5000/v2/steps/echo/blobs/sha256:00?ns=registry.example"
        );
        assert!(Mirror::new("ftp://mirror.example", false).is_err());
        let (registry, mirror) =
            Mirror::parse_spec("r.example=https://m.example/,digest-only").unwrap();
        assert_eq!(
            (registry.as_str(), mirror.url.as_str()),
            ("r.example", "https://m.example")
        );
        assert!(mirror.digest_only);
        assert!(Mirror::parse_spec("https://m.example").is_err());
        assert!(Mirror::new("mirror.example", false).is_err());
    }
}
