//! Credentials, TLS and private images against real registries on loopback: Distribution with
//! htpasswd basic auth behind TLS (a CA of the tests' own), and Distribution in token mode with
//! a token server of the tests' own. Images are pushed to a plain registry that shares the
//! secured one's storage.

mod support;

use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;
use std::process::Command;

use oci_cache::{Cache, CacheOptions, Credential, ErrorCode, FetchOptions};
use support::secure::{htpasswd, TestCa, TokenServer};
use support::{Compression, Layer, Registry, Setup};

fn layer(seed: u64) -> Layer {
    Layer::random(64 << 10, seed, Compression::Gzip, support::OCI_LAYER_GZIP)
}

fn basic(username: &str, password: &str) -> Credential {
    Credential::Basic {
        username: username.into(),
        password: password.into(),
    }
}

/// This machine's name and the address it resolves to. References to it are not loopback
/// names, so the cache speaks HTTPS to them, while the registry still listens on this machine.
fn machine_name() -> (String, IpAddr) {
    let output = Command::new("hostname").output().expect("running hostname");
    let name = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let address = (name.as_str(), 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.find(|a| a.is_ipv4()))
        .unwrap_or_else(|| {
            panic!("this machine's name {name:?} does not resolve: the TLS tests need it")
        })
        .ip();
    (name, address)
}

/// A plain registry for pushing, and one behind TLS with htpasswd auth on the same storage.
struct TlsRegistry {
    ca: TestCa,
    plain: Registry,
    secured: Registry,
    host: String,
    _dir: tempfile::TempDir,
}

impl TlsRegistry {
    fn start(users: &[(&str, &str)]) -> TlsRegistry {
        let (name, address) = machine_name();
        let ca = TestCa::new(&[&name]);
        let dir = tempfile::tempdir().unwrap();
        let plain = Registry::start();
        let secured = Registry::start_with(Setup {
            storage: Some(plain.storage_root()),
            htpasswd: Some(htpasswd(dir.path(), users)),
            tls: Some(ca.server_certificate()),
            address: Some(address),
            ..Setup::default()
        });
        let host = format!("{name}:{}", secured.port());
        TlsRegistry {
            ca,
            plain,
            secured,
            host,
            _dir: dir,
        }
    }

    fn options(&self, credential: Option<Credential>) -> CacheOptions {
        CacheOptions {
            ca_files: vec![self.ca.ca_certificate()],
            credentials: credential
                .map(|c| (self.host.clone(), c))
                .into_iter()
                .collect(),
            docker_config: false,
            ..CacheOptions::default()
        }
    }
}

fn fetch(
    dir: &Path,
    options: CacheOptions,
    reference: &str,
) -> oci_cache::Result<oci_cache::Image> {
    Cache::open(dir, options)?.fetch(reference, &FetchOptions::default())
}

fn assert_layer(image: &oci_cache::Image, layer: &Layer) {
    let expected = tempfile::tempdir().unwrap();
    support::gnu_tar_extract(&layer.tar, expected.path());
    support::assert_same_tree(expected.path(), &image.layers[0].path);
}

#[test]
fn tls_registry_with_basic_auth_serves_the_right_credentials_and_refuses_wrong_ones() {
    let registry = TlsRegistry::start(&[("ci", "s3cret")]);
    let layer = layer(1);
    registry.plain.push_image(
        "team/app",
        Some("1.0.0"),
        std::slice::from_ref(&layer),
        None,
        false,
    );
    let reference = format!("{}/team/app:1.0.0", registry.host);

    let dir = tempfile::tempdir().unwrap();
    let image = fetch(
        dir.path(),
        registry.options(Some(basic("ci", "s3cret"))),
        &reference,
    )
    .unwrap();
    assert_layer(&image, &layer);
    assert!(!registry.secured.requests_for("team/app").is_empty());

    let other = tempfile::tempdir().unwrap();
    let wrong = fetch(
        other.path(),
        registry.options(Some(basic("ci", "wrong"))),
        &reference,
    );
    let error = wrong.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Unauthorized, "{error}");
    assert!(error.to_string().contains(&reference), "{error}");

    let none = fetch(other.path(), registry.options(None), &reference).unwrap_err();
    assert_eq!(none.code(), ErrorCode::Unauthorized, "{none}");
    assert!(none.to_string().contains("none was given"), "{none}");
}

#[test]
fn a_certificate_from_an_unknown_authority_is_a_clear_error() {
    let registry = TlsRegistry::start(&[("ci", "s3cret")]);
    registry
        .plain
        .push_image("team/app", Some("1.0.0"), &[layer(2)], None, false);
    let reference = format!("{}/team/app:1.0.0", registry.host);
    let options = CacheOptions {
        ca_files: Vec::new(),
        ..registry.options(Some(basic("ci", "s3cret")))
    };
    let dir = tempfile::tempdir().unwrap();

    let error = fetch(dir.path(), options, &reference).unwrap_err();

    assert_eq!(error.code(), ErrorCode::Network, "{error}");
    let message = error.to_string();
    assert!(message.contains("certificate"), "{message}");
    assert!(message.contains("not trusted"), "{message}");
}

#[test]
fn a_ca_file_that_is_not_pem_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("ca.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    let options = CacheOptions {
        ca_files: vec![bogus],
        ..CacheOptions::default()
    };

    let error = Cache::open(dir.path().join("cache"), options)
        .err()
        .unwrap();

    assert_eq!(error.code(), ErrorCode::InvalidArgument, "{error}");
}

/// A registry in token mode, its token server, and a plain registry on the same storage.
struct TokenRegistry {
    _ca: TestCa,
    tokens: TokenServer,
    plain: Registry,
    secured: Registry,
}

impl TokenRegistry {
    /// `alice` may pull `private/app` and `public/app`; `bob` and anonymous clients may pull
    /// `public/app` only.
    fn start(token_lifetime: i64, announced_lifetime: u64) -> TokenRegistry {
        let ca = TestCa::new(&[]);
        let tokens = TokenServer::start(
            &ca,
            &[
                ("alice", "alice-pw", &["private/app", "public/app"]),
                ("bob", "bob-pw", &["public/app"]),
                ("", "", &["public/app"]),
            ],
            token_lifetime,
            announced_lifetime,
        );
        let plain = Registry::start();
        let secured = Registry::start_with(Setup {
            storage: Some(plain.storage_root()),
            token: Some(tokens.registry_auth(&ca)),
            ..Setup::default()
        });
        TokenRegistry {
            _ca: ca,
            tokens,
            plain,
            secured,
        }
    }

    fn options(&self, credential: Option<Credential>) -> CacheOptions {
        CacheOptions {
            credentials: credential
                .map(|c| (self.secured.host(), c))
                .into_iter()
                .collect(),
            docker_config: false,
            ..CacheOptions::default()
        }
    }

    /// A handle on `dir` with `credential` for this registry.
    fn open(&self, dir: &Path, credential: Option<Credential>) -> Cache {
        Cache::open(dir, self.options(credential)).unwrap()
    }

    fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.secured.host())
    }
}

#[test]
fn token_auth_pulls_with_the_right_user_and_reuses_its_token() {
    let registry = TokenRegistry::start(300, 300);
    let layer = layer(3);
    let pushed = registry.plain.push_image(
        "private/app",
        Some("latest"),
        std::slice::from_ref(&layer),
        None,
        false,
    );
    let reference = registry.reference("private/app", "latest");
    let dir = tempfile::tempdir().unwrap();
    let cache = registry.open(dir.path(), Some(basic("alice", "alice-pw")));

    let image = cache.fetch(&reference, &FetchOptions::default()).unwrap();
    assert_layer(&image, &layer);
    assert_eq!(image.manifest_digest, pushed.digest);
    let after_first = registry.tokens.requests();
    assert_eq!(after_first.len(), 1, "{after_first:?}");
    assert_eq!(after_first[0].user.as_deref(), Some("alice"));
    assert_eq!(after_first[0].scope, "repository:private/app:pull");

    // The mutable tag costs its one HEAD, with the token already held.
    let before = registry.secured.requests_for("private/app").len();
    cache.fetch(&reference, &FetchOptions::default()).unwrap();
    assert_eq!(registry.tokens.requests().len(), 1, "the token was reused");
    let heads: Vec<_> = registry.secured.requests_for("private/app")[before..].to_vec();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert_eq!((heads[0].method.as_str(), heads[0].status), ("HEAD", 200));
}

#[test]
fn token_auth_refuses_a_user_without_access_and_a_wrong_password() {
    let registry = TokenRegistry::start(300, 300);
    registry
        .plain
        .push_image("private/app", Some("1.0.0"), &[layer(4)], None, false);
    let reference = registry.reference("private/app", "1.0.0");

    for credential in [
        Some(basic("bob", "bob-pw")),
        Some(basic("alice", "wrong")),
        None,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let error =
            fetch(dir.path(), registry.options(credential.clone()), &reference).unwrap_err();
        assert_eq!(
            error.code(),
            ErrorCode::Unauthorized,
            "{credential:?}: {error}"
        );
    }
}

#[test]
fn a_token_the_registry_refuses_is_renewed() {
    // Distribution accepts a token up to 60 s past its `exp`. These expire 57 s before they
    // are issued, so the registry takes them for about 3 s; the server says they last an hour,
    // so the client keeps one until the registry refuses it, and must then get a new one.
    let registry = TokenRegistry::start(-57, 3600);
    registry
        .plain
        .push_image("private/app", Some("latest"), &[layer(5)], None, false);
    let reference = registry.reference("private/app", "latest");
    let dir = tempfile::tempdir().unwrap();
    let cache = registry.open(dir.path(), Some(basic("alice", "alice-pw")));
    cache.fetch(&reference, &FetchOptions::default()).unwrap();
    assert_eq!(registry.tokens.requests().len(), 1);

    std::thread::sleep(std::time::Duration::from_secs(5));
    let image = cache.fetch(&reference, &FetchOptions::default()).unwrap();

    assert_eq!(image.layers.len(), 1);
    assert_eq!(
        registry.tokens.requests().len(),
        2,
        "a new token after the 401"
    );
    let statuses: Vec<u16> = registry
        .secured
        .requests_for("private/app")
        .iter()
        .map(|r| r.status)
        .collect();
    assert!(
        statuses.contains(&401),
        "the old token was refused: {statuses:?}"
    );
}

#[test]
fn a_private_image_cached_by_an_authorised_caller_is_refused_to_others() {
    let registry = TokenRegistry::start(300, 300);
    let private_layer = layer(6);
    registry.plain.push_image(
        "private/app",
        Some("1.0.0"),
        std::slice::from_ref(&private_layer),
        None,
        false,
    );
    registry
        .plain
        .push_image("public/app", Some("1.0.0"), &[layer(7)], None, false);
    let private = registry.reference("private/app", "1.0.0");
    let public = registry.reference("public/app", "1.0.0");
    let dir = tempfile::tempdir().unwrap();

    // alice caches the private image; anyone caches the public one.
    let alice = registry.open(dir.path(), Some(basic("alice", "alice-pw")));
    alice.fetch(&private, &FetchOptions::default()).unwrap();
    let anonymous = registry.open(dir.path(), None);
    anonymous.fetch(&public, &FetchOptions::default()).unwrap();

    // Another job on the same cache without access is refused, with no layer served.
    let before = registry.secured.requests().len();
    let error = anonymous
        .fetch(&private, &FetchOptions::default())
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::Unauthorized, "{error}");
    let bob = registry.open(dir.path(), Some(basic("bob", "bob-pw")));
    let error = bob.fetch(&private, &FetchOptions::default()).unwrap_err();
    assert_eq!(error.code(), ErrorCode::Unauthorized, "{error}");
    let checks: Vec<_> = registry.secured.requests()[before..].to_vec();
    assert!(
        checks.iter().all(|r| r.method == "HEAD" && r.status == 401),
        "only refused access checks: {checks:?}"
    );

    // alice, in a new handle (a new job), proves access with one HEAD and is served.
    let before = registry.secured.requests().len();
    let alice_again = registry.open(dir.path(), Some(basic("alice", "alice-pw")));
    let image = alice_again
        .fetch(&private, &FetchOptions::default())
        .unwrap();
    assert_layer(&image, &private_layer);
    let sent: Vec<_> = registry.secured.requests()[before..].to_vec();
    let served: Vec<_> = sent.iter().filter(|r| r.status == 200).collect();
    assert_eq!(served.len(), 1, "{sent:?}");
    assert_eq!(served[0].method, "HEAD");

    // The public image still costs no request at all, even anonymously.
    let before = registry.secured.requests().len();
    anonymous.fetch(&public, &FetchOptions::default()).unwrap();
    assert_eq!(registry.secured.requests().len(), before);
}

/// Run the CLI's fetch of `reference` with `args`, `env` and `stdin`; (success, stdout, stderr).
fn cli_fetch(
    registry: &TlsRegistry,
    reference: &str,
    args: &[&str],
    env: &[(&str, String)],
    stdin: &str,
) -> (bool, String, String) {
    use std::io::Write;
    use std::process::Stdio;

    let cache = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_oci-cache"));
    command
        .args(["fetch", "--json", "--cache-dir"])
        .arg(cache.path())
        .arg("--ca-file")
        .arg(registry.ca.ca_certificate())
        .args(args)
        .arg(reference)
        .env("HOME", home.path())
        .env_remove("DOCKER_AUTH_CONFIG")
        .env_remove("DOCKER_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn auths_config(host: &str, user: &str, password: &str) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    serde_json::json!({"auths": {host: {"auth": auth}}}).to_string()
}

#[test]
fn the_cli_reads_credentials_from_docker_auth_config() {
    let registry = TlsRegistry::start(&[("ci", "s3cret")]);
    registry
        .plain
        .push_image("team/app", Some("1.0.0"), &[layer(8)], None, false);
    let reference = format!("{}/team/app:1.0.0", registry.host);

    let right = auths_config(&registry.host, "ci", "s3cret");
    let env = [("DOCKER_AUTH_CONFIG", right)];
    let (ok, stdout, stderr) = cli_fetch(&registry, &reference, &[], &env, "");
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["layers"].as_array().unwrap().len(), 1, "{json}");

    let wrong = auths_config(&registry.host, "ci", "nope");
    let env = [("DOCKER_AUTH_CONFIG", wrong)];
    let (ok, _, stderr) = cli_fetch(&registry, &reference, &[], &env, "");
    assert!(!ok);
    assert!(
        stderr.contains("oci-cache: error:") && stderr.contains(&reference),
        "{stderr}"
    );
}

#[test]
fn the_cli_asks_a_credential_helper_for_the_registry_it_fetches_from() {
    let registry = TlsRegistry::start(&[("ci", "s3cret")]);
    registry
        .plain
        .push_image("team/app", Some("1.0.0"), &[layer(9)], None, false);
    let reference = format!("{}/team/app:1.0.0", registry.host);
    let helpers = tempfile::tempdir().unwrap();
    let asked = helpers.path().join("asked");
    let helper = helpers.path().join("docker-credential-ocitest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\ncat > '{}'\n\
             echo '{{\"ServerURL\":\"x\",\"Username\":\"ci\",\"Secret\":\"s3cret\"}}'\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        helpers.path().display(),
        std::env::var("PATH").unwrap()
    );

    // The helper named for this registry, then the default store: both ask the same program.
    for config_text in [
        serde_json::json!({"credHelpers": {&registry.host: "ocitest"}}),
        serde_json::json!({"credsStore": "ocitest"}),
    ] {
        let config = helpers.path().join("config.json");
        std::fs::write(&config, config_text.to_string()).unwrap();
        let _ = std::fs::remove_file(&asked);

        let args = ["--auth-file", config.to_str().unwrap()];
        let env = [("PATH", path.clone())];
        let (ok, _, stderr) = cli_fetch(&registry, &reference, &args, &env, "");

        assert!(ok, "{config_text}: {stderr}");
        assert_eq!(std::fs::read_to_string(&asked).unwrap(), registry.host);
    }
}

#[test]
fn the_cli_takes_a_user_name_and_a_password_on_stdin() {
    let registry = TlsRegistry::start(&[("ci", "s3cret")]);
    registry
        .plain
        .push_image("team/app", Some("1.0.0"), &[layer(10)], None, false);
    let reference = format!("{}/team/app:1.0.0", registry.host);
    let args = ["--username", "ci", "--password-stdin"];

    let (ok, _, stderr) = cli_fetch(&registry, &reference, &args, &[], "s3cret\n");
    assert!(ok, "{stderr}");

    let (ok, _, stderr) = cli_fetch(&registry, &reference, &args, &[], "wrong\n");
    assert!(!ok);
    assert!(
        stderr.contains("unauthorized") || stderr.contains("401"),
        "{stderr}"
    );
}

#[test]
fn an_identity_token_is_exchanged_at_the_token_server() {
    // A Docker config's `identitytoken` is an OAuth2 refresh token: the client POSTs it to the
    // realm. The test token server takes a user's password as that user's refresh token.
    let registry = TokenRegistry::start(300, 300);
    registry
        .plain
        .push_image("private/app", Some("1.0.0"), &[layer(11)], None, false);
    let reference = registry.reference("private/app", "1.0.0");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let entry =
        serde_json::json!({"auths": {registry.secured.host(): {"identitytoken": "alice-pw"}}});
    std::fs::write(&config, entry.to_string()).unwrap();
    let options = CacheOptions {
        auth_file: Some(config),
        ..registry.options(None)
    };

    let image = fetch(&dir.path().join("cache"), options, &reference).unwrap();

    assert_eq!(image.layers.len(), 1);
    let asked = registry.tokens.requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].user.as_deref(), Some("alice"));
    assert_eq!(asked[0].scope, "repository:private/app:pull");
}

#[test]
fn the_default_docker_config_is_read_from_home() {
    let registry = TlsRegistry::start(&[("ci", "s3cret")]);
    registry
        .plain
        .push_image("team/app", Some("1.0.0"), &[layer(12)], None, false);
    let reference = format!("{}/team/app:1.0.0", registry.host);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".docker")).unwrap();
    std::fs::write(
        home.path().join(".docker/config.json"),
        auths_config(&registry.host, "ci", "s3cret"),
    )
    .unwrap();

    let cache = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_oci-cache"))
        .args(["fetch", "--cache-dir"])
        .arg(cache.path())
        .arg("--ca-file")
        .arg(registry.ca.ca_certificate())
        .arg(&reference)
        .env("HOME", home.path())
        .env_remove("DOCKER_AUTH_CONFIG")
        .env_remove("DOCKER_CONFIG")
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
