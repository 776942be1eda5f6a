//! A real registry process for one test: Debian's `docker-registry` (CNCF Distribution 2.8).

use std::fs::{self, File, OpenOptions};
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::http;
use super::push::Remote;

/// The registry program, found on `PATH`.
const PROGRAM: &str = "docker-registry";

/// How long a started registry may take to answer `GET /v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Another process can take the free port between our probe and the registry's bind: retry.
const START_ATTEMPTS: u32 = 3;

const READY_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The access log line is written after the response is sent, so a test that reads the log
/// right after a request can miss it: reread until the line count holds still for one interval.
const LOG_SETTLE_INTERVAL: Duration = Duration::from_millis(20);
const LOG_SETTLE_LIMIT: Duration = Duration::from_millis(100);

/// A `docker-registry` process on a free loopback port with its own storage directory.
///
/// The process is killed when the value is dropped. Its work directory (config, log, storage)
/// is deleted then too, unless the thread is panicking: a failed test keeps it for inspection
/// and prints where it is.
pub struct Registry {
    child: Child,
    port: u16,
    workdir: TempDir,
    remote: Remote,
}

/// Pushing goes through [`Remote`], which a running registry dereferences to.
impl std::ops::Deref for Registry {
    type Target = Remote;

    fn deref(&self) -> &Remote {
        &self.remote
    }
}

/// One request served by the registry, as its access log records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// HTTP method, e.g. "GET".
    pub method: String,
    /// The request target exactly as logged: path and query, e.g. "/v2/steps/x/manifests/1.0.0".
    pub path: String,
    /// Response status code.
    pub status: u16,
}

impl Request {
    /// True for `/v2/<name>/manifests/<reference>` (by tag or digest).
    pub fn is_manifest(&self) -> bool {
        self.penultimate_segment() == Some("manifests")
    }

    /// True for `/v2/<name>/blobs/<digest>`; blob uploads are not counted (see
    /// [`Request::is_upload`]).
    pub fn is_blob(&self) -> bool {
        self.penultimate_segment() == Some("blobs")
    }

    /// True for a request of a blob upload session (`/v2/<name>/blobs/uploads/...`).
    pub fn is_upload(&self) -> bool {
        self.path_without_query().contains("/blobs/uploads/")
    }

    fn path_without_query(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// The segment before the last one, when the last one is not empty.
    fn penultimate_segment(&self) -> Option<&str> {
        let path = self.path_without_query().strip_prefix("/v2/")?;
        let (parent, last) = path.rsplit_once('/')?;
        if last.is_empty() {
            return None;
        }
        Some(parent.rsplit('/').next().unwrap_or(parent))
    }
}

/// How a registry is set up beyond the plain default (anonymous, plain HTTP, own storage).
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Serve the storage of another registry (see [`Registry::storage_root`]): a plain registry
    /// takes the pushes, a secured one on the same storage serves them.
    pub storage: Option<PathBuf>,
    /// Basic auth with this htpasswd file (bcrypt entries).
    pub htpasswd: Option<PathBuf>,
    /// Token auth: clients must bring a token from this server.
    pub token: Option<TokenAuth>,
    /// TLS with this certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The address to listen on (default 127.0.0.1).
    pub address: Option<IpAddr>,
    /// A pull-through cache of this upstream registry URL.
    pub proxy_of: Option<String>,
}

/// The registry's side of token auth.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// Where clients get tokens.
    pub realm: String,
    /// The service name tokens are issued for (their audience).
    pub service: String,
    /// The issuer tokens name.
    pub issuer: String,
    /// PEM certificates whose keys may sign tokens.
    pub root_certificates: PathBuf,
}

impl Registry {
    /// Starts a registry on a free port of 127.0.0.1 and waits until `GET /v2/` answers 200.
    ///
    /// Panics, naming the log file, when `docker-registry` is missing or does not start.
    pub fn start() -> Registry {
        Registry::start_with(Setup::default())
    }

    /// Starts a registry set up as `setup` says, and waits until it answers `/v2/`.
    pub fn start_with(setup: Setup) -> Registry {
        let workdir = tempfile::Builder::new()
            .prefix("oci-cache-registry-")
            .tempdir()
            .expect("creating the registry's work directory");
        let address = setup.address.unwrap_or(IpAddr::from([127, 0, 0, 1]));

        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let mut child = spawn(workdir.path(), address, port, &setup);

            match wait_until_ready(&mut child, address, port, &setup) {
                Ok(()) => {
                    let remote = Remote {
                        host: format!("{address}:{port}"),
                    };
                    return Registry {
                        child,
                        port,
                        workdir,
                        remote,
                    };
                }
                Err(StartFailure::Exited(_)) if port_was_taken(workdir.path()) => {
                    if attempt < START_ATTEMPTS {
                        continue;
                    }
                    fail_start(child, workdir, "exited: its port was taken")
                }
                Err(failure) => fail_start(child, workdir, &failure.to_string()),
            }
        }
        unreachable!("the last start attempt returns or panics")
    }

    /// The address to reach the registry at: "127.0.0.1:PORT".
    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry's storage root directory.
    pub fn storage_root(&self) -> PathBuf {
        self.workdir.path().join("storage")
    }

    /// Where the registry keeps the bytes of blob `digest` ("sha256:<hex>"); tests corrupt
    /// blobs there.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("blob digest {digest:?} is not sha256:<hex>"));
        self.storage_root()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The file that receives the registry's stdout (the access log) and stderr.
    pub fn log_path(&self) -> PathBuf {
        log_path(self.workdir.path())
    }

    /// Every request the registry has served so far, in order, including the start-up probes
    /// of `GET /v2/`.
    pub fn requests(&self) -> Vec<Request> {
        let deadline = Instant::now() + LOG_SETTLE_LIMIT;
        let mut requests = self.read_access_log();
        loop {
            thread::sleep(LOG_SETTLE_INTERVAL);
            let again = self.read_access_log();
            if again.len() == requests.len() || Instant::now() >= deadline {
                return again;
            }
            requests = again;
        }
    }

    /// The requests under `/v2/<repository>/` only, in order.
    pub fn requests_for(&self, repository: &str) -> Vec<Request> {
        let prefix = format!("/v2/{repository}/");
        self.requests()
            .into_iter()
            .filter(|request| request.path.starts_with(&prefix))
            .collect()
    }

    fn read_access_log(&self) -> Vec<Request> {
        let path = self.log_path();
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("reading registry log {}: {err}", path.display()));
        text.lines().filter_map(parse_access_line).collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();

        if thread::panicking() {
            self.workdir.disable_cleanup(true);
            eprintln!(
                "registry work directory kept for inspection: {} (log: {})",
                self.workdir.path().display(),
                self.log_path().display()
            );
        }
    }
}

/// Why a started registry did not become ready.
enum StartFailure {
    Exited(ExitStatus),
    TimedOut,
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartFailure::Exited(status) => write!(f, "exited early ({status})"),
            StartFailure::TimedOut => {
                write!(f, "did not answer GET /v2/ within {START_TIMEOUT:?}")
            }
        }
    }
}

/// Parses one line of the access log, which Distribution 2.8 writes to stdout in Apache
/// combined format:
/// `127.0.0.1 - - [03/Dec/2026:13:01:40 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"`.
/// Other lines (the registry's own `time=... level=...` messages) give `None`.
fn parse_access_line(line: &str) -> Option<Request> {
    line.split(' ').next()?.parse::<IpAddr>().ok()?;

    let (_, after_date) = line.split_once("] \"")?;
    let (request_line, after_request) = after_date.split_once('"')?;
    let mut request_parts = request_line.split(' ');
    let method = request_parts.next()?;
    let path = request_parts.next()?;
    let status = after_request.split_whitespace().next()?.parse().ok()?;

    Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        status,
    })
}

/// A port that was free a moment ago (the registry binds it next; see [`START_ATTEMPTS`]).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a probe socket on loopback");
    listener
        .local_addr()
        .expect("reading the probe socket's address")
        .port()
}

fn config_path(workdir: &Path) -> PathBuf {
    workdir.join("config.yml")
}

fn log_path(workdir: &Path) -> PathBuf {
    workdir.join("registry.log")
}

/// The registry configuration: filesystem storage under `workdir` (or the shared one), deletes
/// allowed, the access log on, no background upload purging, and what `setup` adds.
fn write_config(workdir: &Path, address: IpAddr, port: u16, setup: &Setup) {
    // A JSON string is a valid YAML double-quoted scalar, whatever the text contains.
    let quoted = |path: &Path| serde_json::to_string(path).expect("encoding a path");
    let storage = setup
        .storage
        .clone()
        .unwrap_or_else(|| workdir.join("storage"));
    let mut config = format!(
        "version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {}
  secret: oci-cache-integration-tests
",
        quoted(&storage),
        std::net::SocketAddr::new(address, port)
    );
    if let Some((certificate, key)) = &setup.tls {
        config += &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            quoted(certificate),
            quoted(key)
        );
    }
    if let Some(htpasswd) = &setup.htpasswd {
        config += &format!(
            "auth:\n  htpasswd:\n    realm: oci-cache-tests\n    path: {}\n",
            quoted(htpasswd)
        );
    }
    if let Some(token) = &setup.token {
        config += &format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
             rootcertbundle: {}\n",
            serde_json::to_string(&token.realm).unwrap(),
            serde_json::to_string(&token.service).unwrap(),
            serde_json::to_string(&token.issuer).unwrap(),
            quoted(&token.root_certificates)
        );
    }
    if let Some(upstream) = &setup.proxy_of {
        config += &format!(
            "proxy:\n  remoteurl: {}\n",
            serde_json::to_string(upstream).unwrap()
        );
    }

    let path = config_path(workdir);
    fs::write(&path, config)
        .unwrap_or_else(|err| panic!("writing registry config {}: {err}", path.display()));
}

/// Writes the config and starts `docker-registry serve`, stdout and stderr to the log file.
fn spawn(workdir: &Path, address: IpAddr, port: u16, setup: &Setup) -> Child {
    write_config(workdir, address, port, setup);

    let log = log_path(workdir);
    let stdout = create_log(&log);
    let stderr = stdout
        .try_clone()
        .unwrap_or_else(|err| panic!("duplicating registry log {}: {err}", log.display()));

    let spawned = Command::new(PROGRAM)
        .arg("serve")
        .arg(config_path(workdir))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn();
    match spawned {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "starting {PROGRAM}: not found on PATH; install it with scripts/install-test-deps"
        ),
        Err(err) => panic!("starting {PROGRAM}: {err}"),
    }
}

/// Creates an empty log file, opened for appending so both streams add whole lines. A log left
/// by an earlier start attempt is removed first (append mode cannot truncate).
fn create_log(path: &Path) -> File {
    let _ = fs::remove_file(path);
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|err| panic!("creating registry log {}: {err}", path.display()))
}

/// Ready when `GET /v2/` answers: 200 for a plain registry, 401 for one that wants
/// credentials; a TLS registry is ready when its port accepts connections (this plain client
/// cannot speak TLS).
fn wait_until_ready(
    child: &mut Child,
    address: IpAddr,
    port: u16,
    setup: &Setup,
) -> Result<(), StartFailure> {
    let host = std::net::SocketAddr::new(address, port).to_string();
    let deadline = Instant::now() + START_TIMEOUT;
    let ready_status = match setup.htpasswd.is_some() || setup.token.is_some() {
        true => 401,
        false => 200,
    };

    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StartFailure::Exited(status));
        }
        if setup.tls.is_some() {
            if std::net::TcpStream::connect(&host).is_ok() {
                return Ok(());
            }
        } else if let Ok(response) = http::get(&host, "/v2/", &[]) {
            if response.status == ready_status {
                return Ok(());
            }
        }
        thread::sleep(READY_POLL_INTERVAL);
    }
    Err(StartFailure::TimedOut)
}

fn port_was_taken(workdir: &Path) -> bool {
    fs::read_to_string(log_path(workdir))
        .map(|log| log.contains("address already in use"))
        .unwrap_or(false)
}

/// Stops the failed registry, keeps its work directory and panics naming the log.
fn fail_start(mut child: Child, workdir: TempDir, failure: &str) -> ! {
    let _ = child.kill();
    let _ = child.wait();

    let workdir = workdir.keep();
    let log = log_path(&workdir);
    let text = fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(10)..];
    panic!(
        "{PROGRAM} {failure}; see its log {}, which ends:\n{}",
        log.display(),
        tail.join("\n")
    );
}
