//! Secured registries for the tests: a certificate authority of the tests' own (made with the
//! `openssl` program), htpasswd files, and a token server that issues the JWTs Distribution's
//! token auth accepts.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// Run `openssl` with `args` in `dir`, panicking with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (install it with scripts/install-test-deps)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A certificate authority, a server certificate it signed for some host names, and a key and
/// self-signed certificate for signing tokens.
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    /// A new CA and a server certificate for `hosts` (DNS names) and 127.0.0.1.
    pub fn new(hosts: &[&str]) -> TestCa {
        let dir = tempfile::Builder::new()
            .prefix("oci-cache-ca-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let days = ["-days", "2"];

        openssl(d, &["genrsa", "-out", "ca.key", "2048"]);
        let subject = ["-subj", "/CN=oci-cache test CA"];
        openssl(
            d,
            &[
                &["req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem"][..],
                &subject,
                &days,
            ]
            .concat(),
        );

        let mut names: Vec<String> = hosts.iter().map(|h| format!("DNS:{h}")).collect();
        names.push("IP:127.0.0.1".into());
        std::fs::write(
            d.join("server.ext"),
            format!(
                "subjectAltName={}\nextendedKeyUsage=serverAuth\n",
                names.join(",")
            ),
        )
        .unwrap();
        openssl(d, &["genrsa", "-out", "server.key", "2048"]);
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                "server.key",
                "-subj",
                "/CN=registry",
                "-out",
                "server.csr",
            ],
        );
        openssl(
            d,
            &[
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    "server.pem",
                    "-extfile",
                    "server.ext",
                ][..],
                &days,
            ]
            .concat(),
        );

        openssl(d, &["genrsa", "-out", "token.key", "2048"]);
        let subject = ["-subj", "/CN=oci-cache test token signer"];
        openssl(
            d,
            &[
                &[
                    "req",
                    "-x509",
                    "-new",
                    "-key",
                    "token.key",
                    "-out",
                    "token.pem",
                ][..],
                &subject,
                &days,
            ]
            .concat(),
        );
        TestCa { dir }
    }

    /// The CA's certificate (PEM): what clients must trust.
    pub fn ca_certificate(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server's certificate and key (PEM).
    pub fn server_certificate(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("server.pem"),
            self.dir.path().join("server.key"),
        )
    }

    /// The token signer's certificate (PEM): the registry's `rootcertbundle`.
    pub fn token_certificate(&self) -> PathBuf {
        self.dir.path().join("token.pem")
    }

    fn token_key(&self) -> PathBuf {
        self.dir.path().join("token.key")
    }

    /// The libtrust key ID of the token signer's public key, as Distribution computes it: the
    /// first 240 bits of the SHA-256 of the DER public key, base32, in groups of four.
    fn token_key_id(&self) -> String {
        let der = openssl(
            self.dir.path(),
            &["pkey", "-in", "token.key", "-pubout", "-outform", "DER"],
        );
        let digest = Sha256::digest(&der);
        let encoded = base32(&digest[..30]);
        let groups: Vec<&str> = (0..encoded.len() / 4)
            .map(|i| &encoded[i * 4..i * 4 + 4])
            .collect();
        groups.join(":")
    }
}

/// RFC 4648 base32 without padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (String::new(), 0u32, 0);
    for &byte in bytes {
        buffer = (buffer << 8) | byte as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// An htpasswd file with bcrypt entries for `users` (name, password).
pub fn htpasswd(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("htpasswd");
    let mut text = String::new();
    for (user, password) in users {
        let output = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("running htpasswd (install apache2-utils with scripts/install-test-deps)");
        assert!(output.status.success(), "htpasswd failed");
        text.push_str(String::from_utf8_lossy(&output.stdout).trim());
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// One request a token server answered.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The user name the client authenticated with, if any.
    pub user: Option<String>,
    /// The `scope` query parameter.
    pub scope: String,
    /// The status answered.
    pub status: u16,
}

/// Who may pull what: user name -> repositories (`*` for all).
pub type Grants = HashMap<String, (String, Vec<String>)>;

/// A token server on loopback: checks Basic credentials, and issues RS256 JWTs granting `pull`
/// on the repositories the user may read (none for an anonymous client), as Distribution's
/// token auth expects. Stops when dropped.
pub struct TokenServer {
    port: u16,
    seen: Arc<Mutex<Vec<TokenRequest>>>,
    _thread: thread::JoinHandle<()>,
}

/// What the token server signs with and whom it serves.
struct Signer {
    key: PathBuf,
    key_id: String,
    service: String,
    issuer: String,
    users: Grants,
    /// Their `exp`, in seconds from issue (negative: already past).
    lifetime_secs: i64,
    /// How long the server tells clients they last (`expires_in`): longer than the truth lets
    /// a test see a client renew a token the registry refuses.
    announced_secs: u64,
}

impl TokenServer {
    /// The issuer name its tokens carry.
    pub const ISSUER: &'static str = "oci-cache-test-issuer";
    /// The service name its tokens are for.
    pub const SERVICE: &'static str = "oci-cache-test-registry";

    /// Start serving tokens signed with `ca`'s token key; `users` maps a user name to its
    /// password and the repositories it may pull (the user "" stands for anonymous clients);
    /// tokens expire `lifetime_secs` after issue, and the server
    /// says they last `announced_secs`.
    pub fn start(
        ca: &TestCa,
        users: &[(&str, &str, &[&str])],
        lifetime_secs: i64,
        announced_secs: u64,
    ) -> TokenServer {
        let signer = Signer {
            key: ca.token_key(),
            key_id: ca.token_key_id(),
            service: Self::SERVICE.into(),
            issuer: Self::ISSUER.into(),
            users: users
                .iter()
                .map(|(u, p, repos)| {
                    let repos = repos.iter().map(|r| r.to_string()).collect();
                    (u.to_string(), (p.to_string(), repos))
                })
                .collect(),
            lifetime_secs,
            announced_secs,
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let thread = thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(request) = answer(stream, &signer) {
                    log.lock().unwrap().push(request);
                }
            }
        });
        TokenServer {
            port,
            seen,
            _thread: thread,
        }
    }

    /// The realm URL registries send clients to.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The registry's side of this server.
    pub fn registry_auth(&self, ca: &TestCa) -> super::TokenAuth {
        super::TokenAuth {
            realm: self.realm(),
            service: Self::SERVICE.into(),
            issuer: Self::ISSUER.into(),
            root_certificates: ca.token_certificate(),
        }
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

/// Answer one token request.
fn answer(mut stream: TcpStream, signer: &Signer) -> Option<TokenRequest> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let (mut authorization, mut length) = (None, 0);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            } else if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut form = vec![0; length];
    std::io::Read::read_exact(&mut reader, &mut form).ok()?;
    let form = String::from_utf8_lossy(&form).into_owned();

    // GET with the scope in the query and Basic credentials, or the OAuth2 POST of a refresh
    // token (an `identitytoken`), which names the user whose password it equals.
    let target = request_line.split(' ').nth(1).unwrap_or_default();
    let query = match request_line.starts_with("POST") {
        true => form.as_str(),
        false => target.split_once('?').map(|(_, q)| q).unwrap_or_default(),
    };
    let scope = query_param(query, "scope").unwrap_or_default();
    let refreshed = query_param(query, "refresh_token").and_then(|token| {
        let user = signer
            .users
            .iter()
            .find(|(_, (password, _))| *password == token)?;
        Some((user.0.clone(), token))
    });
    let user = refreshed.or_else(|| authorization.as_deref().and_then(basic_user));

    let (status, body) = match &user {
        Some((name, password)) => match signer.users.get(name) {
            Some((expected, repos)) if expected == password => {
                (200, signer.token(Some(name), &scope, repos))
            }
            _ => (
                401,
                r#"{"details":"wrong user name or password"}"#.to_string(),
            ),
        },
        // Anonymous clients get what the user named "" may pull.
        None => {
            let anonymous = signer.users.get("").map(|(_, repos)| repos.as_slice());
            (
                200,
                signer.token(None, &scope, anonymous.unwrap_or_default()),
            )
        }
    };
    let reason = if status == 200 { "OK" } else { "Unauthorized" };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    Some(TokenRequest {
        user: user.map(|(name, _)| name),
        scope,
        status,
    })
}

impl Signer {
    /// A token granting pull on the scope's repository when `repos` allows it.
    fn token(&self, user: Option<&str>, scope: &str, repos: &[String]) -> String {
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let repository = scope.split(':').nth(1).unwrap_or_default();
        let allowed = repos.iter().any(|r| r == "*" || r == repository);
        let access = match allowed {
            true => {
                serde_json::json!([{"type": "repository", "name": repository, "actions": ["pull"]}])
            }
            false => serde_json::json!([]),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": self.key_id});
        let claims = serde_json::json!({
            "iss": self.issuer, "sub": user.unwrap_or(""), "aud": self.service,
            "exp": now.saturating_add_signed(self.lifetime_secs), "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", rand_suffix()), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            url.encode(header.to_string()),
            url.encode(claims.to_string())
        );
        let signature = sign(&self.key, signing_input.as_bytes());
        let token = format!("{signing_input}.{}", url.encode(signature));
        serde_json::json!({"token": token, "expires_in": self.announced_secs}).to_string()
    }
}

/// RS256: an RSA PKCS#1 v1.5 signature of the SHA-256 of `data`.
fn sign(key: &Path, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running openssl");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "openssl dgst -sign failed");
    output.stdout
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// (user, password) of a `Basic` authorization.
fn basic_user(authorization: &str) -> Option<(String, String)> {
    let encoded = authorization.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The percent-decoded value of `name` in a query string.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(super::base32(b"foobar"), "MZXW6YTBOI");
    }
}
