//! The registry client: manifest HEAD and GET, blob streams, and errors mapped to ours.
//!
//! One `oci_client::Client` is kept per registry host, because a client keeps the first
//! credentials it saw for a registry and decides http or https per client. Registries on
//! loopback use plain HTTP, as Docker does; any other needs to be named insecure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, SizedStream};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;

use crate::error::{Error, Result};
use crate::manifest::{self, Descriptor};
use crate::reference::ImageReference;

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
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure_registries: Vec::new(),
            read_timeout: Duration::from_secs(60),
            attempts: 4,
            retry_delay: Duration::from_millis(250),
        }
    }
}

/// The longest pause between two tries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Clients for the registries a cache talks to.
pub struct Registries {
    options: RegistryOptions,
    clients: Mutex<HashMap<String, Client>>,
}

/// A blob stream, and whether it starts at the requested offset (a Range request the server
/// honoured) or at byte 0 (the server sent the whole blob).
pub struct BlobStream {
    /// The bytes.
    pub stream: SizedStream,
    /// The offset of the first byte of `stream` in the blob.
    pub offset: u64,
}

impl Registries {
    /// Registries reached with `options`.
    pub fn new(options: RegistryOptions) -> Registries {
        Registries {
            options,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Ask for the digest of the manifest `reference` points at (a HEAD request).
    pub async fn resolve_digest(&self, reference: &ImageReference) -> Result<String> {
        let what = "manifest";
        let client = self.client(reference.registry())?;
        let target = reference.to_client_reference();

        let digest = self
            .retry(what, reference, || {
                client.fetch_manifest_digest(&target, &RegistryAuth::Anonymous)
            })
            .await?;
        crate::reference::parse_digest(&digest).map_err(|reason| Error::Registry {
            what: what.to_string(),
            reference: reference.to_string(),
            detail: format!("the registry answered with an invalid digest: {reason}"),
        })
    }

    /// Get the manifest or index `reference` points at: its exact bytes and their digest,
    /// checked against the reference's digest when it has one.
    pub async fn get_manifest(&self, reference: &ImageReference) -> Result<(Vec<u8>, String)> {
        let what = match reference.digest() {
            Some(digest) => format!("manifest {digest}"),
            None => "manifest".to_string(),
        };
        let client = self.client(reference.registry())?;
        let target = reference.to_client_reference();

        let (bytes, digest) = self
            .retry(&what, reference, || {
                client.pull_manifest_raw(&target, &RegistryAuth::Anonymous, manifest::ACCEPTED)
            })
            .await?;

        // The whole body is already in memory here: oci-client offers no bounded read.
        if bytes.len() as u64 > manifest::MAX_MANIFEST_BYTES {
            return Err(Error::Registry {
                what,
                reference: reference.to_string(),
                detail: format!(
                    "manifest is {} bytes, more than the {} allowed",
                    bytes.len(),
                    manifest::MAX_MANIFEST_BYTES
                ),
            });
        }
        Ok((bytes.to_vec(), digest))
    }

    /// Open a stream of the blob `descriptor` of `reference`'s repository, from byte `offset`
    /// when the server honours a Range request (else from byte 0: see [`BlobStream::offset`]).
    pub async fn blob_stream(
        &self,
        reference: &ImageReference,
        descriptor: &Descriptor,
        offset: u64,
    ) -> Result<BlobStream> {
        use oci_client::client::BlobResponse;

        let what = format!("blob {}", descriptor.digest);
        let client = self.client(reference.registry())?;
        let target = reference.to_client_reference();
        let layer = oci_client::manifest::OciDescriptor {
            media_type: descriptor.media_type.clone(),
            digest: descriptor.digest.clone(),
            size: descriptor.size,
            ..Default::default()
        };
        client
            .store_auth_if_needed(reference.registry(), &RegistryAuth::Anonymous)
            .await;

        if offset == 0 {
            let stream = self
                .retry(&what, reference, || {
                    client.pull_blob_stream(&target, &layer)
                })
                .await?;
            return Ok(BlobStream { stream, offset: 0 });
        }
        let response = self
            .retry(&what, reference, || {
                client.pull_blob_stream_partial(&target, &layer, offset, None)
            })
            .await?;
        Ok(match response {
            BlobResponse::Partial(stream) => BlobStream { stream, offset },
            BlobResponse::Full(stream) => BlobStream { stream, offset: 0 },
        })
    }

    /// Get a small blob (an image config) whole, refusing one longer than its descriptor. The
    /// caller checks the digest when it stores the bytes.
    pub async fn get_small_blob(
        &self,
        reference: &ImageReference,
        descriptor: &Descriptor,
    ) -> Result<Vec<u8>> {
        use futures_util::StreamExt;

        let mut blob = self.blob_stream(reference, descriptor, 0).await?.stream;
        let mut bytes = Vec::with_capacity(descriptor.size as usize);
        while let Some(chunk) = blob.next().await {
            let chunk = match chunk {
                // The transfer ended; the caller's digest check says what is wrong.
                Err(e) if is_digest_verdict(&e) => break,
                chunk => chunk,
            };
            let chunk = chunk.map_err(|e| Error::Network {
                what: format!("blob {}", descriptor.digest),
                reference: reference.to_string(),
                detail: error_chain(&e),
            })?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > descriptor.size as u64 {
                return Err(Error::Integrity {
                    what: format!("blob {}", descriptor.digest),
                    reference: reference.to_string(),
                    detail: format!(
                        "blob is longer than the {} bytes its descriptor says",
                        descriptor.size
                    ),
                });
            }
        }
        Ok(bytes)
    }

    /// Run `request` until it succeeds, fails for good, or runs out of tries; transient
    /// failures (transport errors, 5xx, 429) are retried after a pause that doubles each time.
    async fn retry<T, F, Fut>(
        &self,
        what: &str,
        reference: &ImageReference,
        request: F,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, OciDistributionError>>,
    {
        let mut attempt = 1;
        loop {
            let error = match request().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if attempt >= self.options.attempts.max(1) || !is_transient(&error) {
                return Err(map_error(error, what, reference));
            }

            let delay = self.retry_delay(attempt);
            tracing::warn!(
                what,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error_chain(&error),
                "registry request failed, retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
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

    fn client(&self, registry: &str) -> Result<Client> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(registry) {
            return Ok(client.clone());
        }

        let protocol = if is_loopback(registry)
            || self
                .options
                .insecure_registries
                .iter()
                .any(|r| r == registry)
        {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            user_agent: USER_AGENT,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(self.options.read_timeout),
            ..Default::default()
        };
        let client = Client::try_from(config).map_err(|e| Error::Network {
            what: "registry client".to_string(),
            reference: registry.to_string(),
            detail: format!("cannot build an HTTP client: {e}"),
        })?;
        clients.insert(registry.to_string(), client.clone());
        Ok(client)
    }
}

/// Loopback registries (`localhost`, `127.0.0.0/8`, `::1`) speak plain HTTP.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// True when a stream error is oci-client's digest check at the end of a complete response,
/// not a transport failure.
pub(crate) fn is_digest_verdict(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>())
}

/// Failures worth another try: the transport failed, or the registry said it is overloaded or
/// broken for now (5xx, 429).
fn is_transient(error: &OciDistributionError) -> bool {
    use oci_client::errors::OciErrorCode;
    use OciDistributionError as E;

    match error {
        E::RequestError(_) | E::IoError(_) => true,
        E::ServerError { code, .. } => *code == 429 || (500..600).contains(code),
        E::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        _ => false,
    }
}

/// Map a client error to ours, keeping the registry's words and the transport's causes.
pub(crate) fn map_error(
    error: OciDistributionError,
    what: &str,
    reference: &ImageReference,
) -> Error {
    use OciDistributionError as E;

    let (what, reference) = (what.to_string(), reference.to_string());
    match error {
        E::ImageManifestNotFoundError(_) => Error::NotFound { what, reference },
        E::RegistryError { ref envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}", e.code))
                .collect();
            let detail = error.to_string();
            if codes
                .iter()
                .any(|c| c.contains("Unknown") || c == "NotFound")
            {
                Error::NotFound { what, reference }
            } else if codes.iter().any(|c| c == "Unauthorized" || c == "Denied") {
                Error::Unauthorized {
                    what,
                    reference,
                    detail,
                }
            } else {
                Error::Registry {
                    what,
                    reference,
                    detail,
                }
            }
        }
        E::ServerError { code: 404, .. } => Error::NotFound { what, reference },
        E::UnauthorizedError { .. }
        | E::AuthenticationFailure(_)
        | E::ServerError {
            code: 401 | 403, ..
        } => Error::Unauthorized {
            what,
            reference,
            detail: error.to_string(),
        },
        E::DigestError(e) => Error::Integrity {
            what,
            reference,
            detail: e.to_string(),
        },
        E::RequestError(e) => Error::Network {
            what,
            reference,
            detail: error_chain(&e),
        },
        E::IoError(e) => Error::Network {
            what,
            reference,
            detail: error_chain(&e),
        },
        other => Error::Registry {
            what,
            reference,
            detail: other.to_string(),
        },
    }
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
}
