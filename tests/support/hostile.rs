//! A registry of the tests' own that misbehaves on purpose, where a real registry cannot.
//!
//! [`HostileRegistry`] serves one image (manifests by tag and digest, blobs with Range support)
//! over plain HTTP/1.1 on loopback, and asks a [`Faults`] function, for every request, whether to
//! answer normally or to misbehave: another status, wrong bytes, a reset connection, a stall.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the hostile registry saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenRequest {
    /// "GET", "HEAD".
    pub method: String,
    /// The request target.
    pub path: String,
    /// The Range header, if any.
    pub range: Option<String>,
    /// The Authorization header, if any.
    pub authorization: Option<String>,
    /// When the request arrived.
    pub at: std::time::Instant,
}

/// What to do with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer as a well-behaved registry would.
    Normal,
    /// Answer with this status, these extra headers, and an empty body.
    Status(u16, Vec<(String, String)>),
    /// Answer normally, but with this body (and its length) in place of the real one.
    Body(Vec<u8>),
    /// Send the normal headers and the first `n` bytes of the body, then reset the connection.
    ResetAfter(usize),
    /// Send the normal headers and the first `n` bytes of the body, then send nothing more
    /// for `pause`, then close.
    StallAfter(usize, Duration),
    /// Answer 307 to this URL.
    Redirect(String),
}

/// Decides the reply to request `n` (counting from 0) for its path.
pub type Faults = dyn Fn(&SeenRequest, usize) -> Reply + Send + Sync;

/// The content served: path-independent, by digest and tag.
#[derive(Default)]
struct Content {
    /// tag or digest -> (media type, bytes)
    manifests: HashMap<String, (String, Vec<u8>)>,
    /// digest -> bytes
    blobs: HashMap<String, Vec<u8>>,
}

/// A misbehaving registry on a loopback port; stopped on drop.
pub struct HostileRegistry {
    host: String,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    stop: Arc<AtomicBool>,
}

impl HostileRegistry {
    /// Serve `manifest` (under `tag` and its digest) and `blobs`, misbehaving as `faults` says.
    pub fn start(
        tag: &str,
        manifest: (&str, Vec<u8>),
        blobs: Vec<Vec<u8>>,
        faults: impl Fn(&SeenRequest, usize) -> Reply + Send + Sync + 'static,
    ) -> HostileRegistry {
        let mut content = Content::default();
        let (media_type, bytes) = manifest;
        let digest = super::sha256_digest(&bytes);
        content
            .manifests
            .insert(tag.to_string(), (media_type.to_string(), bytes.clone()));
        content
            .manifests
            .insert(digest, (media_type.to_string(), bytes));
        for blob in blobs {
            content.blobs.insert(super::sha256_digest(&blob), blob);
        }

        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let host = listener.local_addr().unwrap().to_string();
        let seen: Arc<Mutex<Vec<SeenRequest>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new((content, Box::new(faults) as Box<Faults>));

        let (seen_by_server, stop_by_server) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_by_server.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (state, seen) = (Arc::clone(&state), Arc::clone(&seen_by_server));
                std::thread::spawn(move || serve_connection(stream, &state.0, &*state.1, &seen));
            }
        });
        HostileRegistry { host, seen, stop }
    }

    /// Serve an OCI image of `layers` with the empty config `{}` under `tag`.
    pub fn serve_image(
        tag: &str,
        layers: &[super::Layer],
        faults: impl Fn(&SeenRequest, usize) -> Reply + Send + Sync + 'static,
    ) -> HostileRegistry {
        let config = b"{}".to_vec();
        let descriptor = |media_type: &str, bytes: &[u8]| {
            serde_json::json!({
                "mediaType": media_type,
                "digest": super::sha256_digest(bytes),
                "size": bytes.len(),
            })
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": super::OCI_MANIFEST,
            "config": descriptor(super::OCI_CONFIG, &config),
            "layers": layers
                .iter()
                .map(|l| descriptor(&l.media_type, &l.bytes))
                .collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let mut blobs: Vec<Vec<u8>> = layers.iter().map(|l| l.bytes.clone()).collect();
        blobs.push(config);
        HostileRegistry::start(tag, (super::OCI_MANIFEST, manifest), blobs, faults)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.host);
    }
}

fn serve_connection(
    stream: TcpStream,
    content: &Content,
    faults: &Faults,
    seen: &Mutex<Vec<SeenRequest>>,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("cloning a socket"));
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader) {
        let n = {
            let mut seen = seen.lock().unwrap();
            seen.push(request.clone());
            seen.iter()
                .filter(|r| r.path == request.path && r.method == request.method)
                .count()
                - 1
        };
        if !answer(&mut writer, &request, content, faults(&request, n)) {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<SeenRequest> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());

    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    if let Some(length) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
    }
    Some(SeenRequest {
        method,
        path,
        range: headers.get("range").cloned(),
        authorization: headers.get("authorization").cloned(),
        at: std::time::Instant::now(),
    })
}

/// Write the reply; false when the connection must end.
fn answer(stream: &mut TcpStream, request: &SeenRequest, content: &Content, reply: Reply) -> bool {
    let (status, mut headers, body) = normal_answer(request, content);
    match reply {
        Reply::Normal => write_response(stream, status, &headers, &body, request.method == "HEAD"),
        Reply::Status(status, extra) => write_response(stream, status, &extra, &[], false),
        Reply::Body(replacement) => write_response(
            stream,
            status,
            &headers,
            &replacement,
            request.method == "HEAD",
        ),
        Reply::Redirect(location) => {
            let headers = vec![("Location".to_string(), location)];
            write_response(stream, 307, &headers, &[], false)
        }
        Reply::ResetAfter(n) => {
            headers.push(("Content-Length".into(), body.len().to_string()));
            let _ = stream.write_all(&head(status, &headers));
            let _ = stream.write_all(&body[..n.min(body.len())]);
            let _ = stream.flush();
            reset(stream);
            false
        }
        Reply::StallAfter(n, pause) => {
            headers.push(("Content-Length".into(), body.len().to_string()));
            let _ = stream.write_all(&head(status, &headers));
            let _ = stream.write_all(&body[..n.min(body.len())]);
            let _ = stream.flush();
            std::thread::sleep(pause);
            let _ = stream.shutdown(Shutdown::Both);
            false
        }
    }
}

/// What a well-behaved registry answers: status, headers (without Content-Length), body.
fn normal_answer(
    request: &SeenRequest,
    content: &Content,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let path = request.path.split('?').next().unwrap_or_default();
    if path == "/v2/" {
        return (200, vec![], b"{}".to_vec());
    }
    let segments: Vec<&str> = path.rsplitn(3, '/').collect();
    let (reference, kind) = (segments[0], segments.get(1).copied().unwrap_or_default());

    match kind {
        "manifests" => match content.manifests.get(reference) {
            Some((media_type, bytes)) => {
                let headers = vec![
                    ("Content-Type".to_string(), media_type.clone()),
                    (
                        "Docker-Content-Digest".to_string(),
                        super::sha256_digest(bytes),
                    ),
                ];
                (200, headers, bytes.clone())
            }
            None => not_found("MANIFEST_UNKNOWN"),
        },
        "blobs" => match content.blobs.get(reference) {
            Some(bytes) => blob_answer(request, reference, bytes),
            None => not_found("BLOB_UNKNOWN"),
        },
        _ => not_found("NAME_UNKNOWN"),
    }
}

fn blob_answer(
    request: &SeenRequest,
    digest: &str,
    bytes: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut headers = vec![
        (
            "Content-Type".to_string(),
            "application/octet-stream".to_string(),
        ),
        ("Docker-Content-Digest".to_string(), digest.to_string()),
        ("Accept-Ranges".to_string(), "bytes".to_string()),
    ];
    let start = request
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<usize>().ok());
    match start {
        Some(start) if start < bytes.len() => {
            let range = format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len());
            headers.push(("Content-Range".to_string(), range));
            (206, headers, bytes[start..].to_vec())
        }
        _ => (200, headers, bytes.to_vec()),
    }
}

fn not_found(code: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"unknown"}}]}}"#);
    (
        404,
        vec![("Content-Type".into(), "application/json".into())],
        body.into_bytes(),
    )
}

fn head(status: u16, headers: &[(String, String)]) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status} X\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    head_only: bool,
) -> bool {
    let mut headers = headers.to_vec();
    headers.push(("Content-Length".into(), body.len().to_string()));
    let mut bytes = head(status, &headers);
    if !head_only {
        bytes.extend_from_slice(body);
    }
    stream.write_all(&bytes).is_ok() && stream.flush().is_ok()
}

/// Close with RST instead of FIN.
fn reset(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket this function borrows, with a correctly sized value.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
