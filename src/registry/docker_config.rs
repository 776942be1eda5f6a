//! Credentials from a Docker config (`config.json`): `auths` entries (`auth`, or `username` and
//! `password`, `identitytoken`, `registrytoken`), and `credHelpers` and `credsStore` through
//! `docker-credential-<name> get`.
//!
//! The config is read, in order of precedence, from a file the caller names, from the content
//! of `DOCKER_AUTH_CONFIG` (as GitLab CI passes it), from `$DOCKER_CONFIG/config.json`, or from
//! `~/.docker/config.json`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::auth::{Credential, CredentialSource};

/// The variable whose content is a Docker config.
pub const AUTH_CONFIG_ENV: &str = "DOCKER_AUTH_CONFIG";

/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The key Docker uses for Docker Hub in `auths` and with helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A parsed Docker config.
#[derive(Default, Clone, serde::Deserialize)]
pub struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    /// Where it was read from, for messages.
    #[serde(skip)]
    origin: String,
}

#[derive(Default, Clone, serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl DockerConfig {
    /// Parse the text of a config; `origin` names where it came from in errors.
    pub fn parse(text: &str, origin: &str) -> Result<DockerConfig, String> {
        let mut config: DockerConfig = serde_json::from_str(text)
            .map_err(|e| format!("{origin} is not a valid Docker config: {e}"))?;
        config.origin = origin.to_string();
        Ok(config)
    }

    /// The config in force: `file` when given, else `DOCKER_AUTH_CONFIG`, else
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` when it exists. None when there
    /// is none at all.
    pub fn load(file: Option<&Path>) -> Result<Option<DockerConfig>, String> {
        if let Some(file) = file {
            return read_file(file).map(Some);
        }
        if let Ok(text) = std::env::var(AUTH_CONFIG_ENV) {
            if !text.trim().is_empty() {
                return DockerConfig::parse(&text, AUTH_CONFIG_ENV).map(Some);
            }
        }
        let directory = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".docker"),
                None => return Ok(None),
            },
        };
        let file = directory.join("config.json");
        match file.exists() {
            true => read_file(&file).map(Some),
            false => Ok(None),
        }
    }

    /// The credential for `registry` (`host[:port]`): from its helper when it has one, else
    /// from its `auths` entry, else from the default store.
    fn lookup(&self, registry: &str) -> Result<Option<Credential>, String> {
        let helper = self
            .cred_helpers
            .iter()
            .find(|(key, _)| normalise_key(key) == registry)
            .map(|(_, helper)| helper);
        if let Some(helper) = helper {
            return run_helper(helper, registry);
        }

        let entry = self
            .auths
            .iter()
            .find(|(key, _)| normalise_key(key) == registry);
        if let Some((_, entry)) = entry {
            return entry.credential(registry, &self.origin).map(Some);
        }
        match &self.creds_store {
            Some(store) if !store.is_empty() => run_helper(store, registry),
            _ => Ok(None),
        }
    }
}

/// Names where the config came from and which registries it covers, never a secret.
impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerConfig")
            .field("origin", &self.origin)
            .field("auths", &self.auths.keys().collect::<Vec<_>>())
            .field("cred_helpers", &self.cred_helpers)
            .field("creds_store", &self.creds_store)
            .finish()
    }
}

impl CredentialSource for DockerConfig {
    fn credential(&self, registry: &str) -> Result<Option<Credential>, String> {
        self.lookup(registry)
    }
}

impl AuthEntry {
    fn credential(&self, registry: &str, origin: &str) -> Result<Credential, String> {
        if let Some(token) = self.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Credential::IdentityToken(token.clone()));
        }
        if let Some(token) = self.registrytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Credential::Bearer(token.clone()));
        }
        if let (Some(username), Some(password)) = (&self.username, &self.password) {
            return Ok(Credential::Basic {
                username: username.clone(),
                password: password.clone(),
            });
        }
        let bad = |why: &str| format!("{origin}: the auths entry for {registry}: {why}");
        let auth = self
            .auth
            .as_deref()
            .ok_or_else(|| bad("no credentials in it"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("\"auth\" is not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad("\"auth\" is not UTF-8"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| bad("\"auth\" is not \"user:password\""))?;
        Ok(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        })
    }
}

fn read_file(file: &Path) -> Result<DockerConfig, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read the Docker config {}: {e}", file.display()))?;
    DockerConfig::parse(&text, &file.display().to_string())
}

/// The registry host an `auths` or `credHelpers` key names: `https://host/v1/` -> `host`, and
/// Docker Hub's names -> `docker.io`.
fn normalise_key(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        _ => host,
    }
}

/// `docker-credential-<helper> get`, given the server on stdin.
fn run_helper(helper: &str, registry: &str) -> Result<Option<Credential>, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }

    let program = format!("docker-credential-{helper}");
    let server = match registry {
        "docker.io" => DOCKER_HUB_KEY,
        other => other,
    };
    let output = run_with_timeout(&program, server)?;
    if !output.success {
        // The helpers' way of saying there is nothing stored for this server.
        if output.stdout.contains("credentials not found") {
            return Ok(None);
        }
        let words = format!("{} {}", output.stdout.trim(), output.stderr.trim());
        return Err(format!(
            "{program} get failed for {registry}: {}",
            words.trim()
        ));
    }

    let answer: Answer = serde_json::from_str(&output.stdout)
        .map_err(|e| format!("{program} get answered nonsense for {registry}: {e}"))?;
    Ok(Some(match answer.username.as_str() {
        "<token>" => Credential::IdentityToken(answer.secret),
        _ => Credential::Basic {
            username: answer.username,
            password: answer.secret,
        },
    }))
}

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Run `program get` with `input` on stdin, killing it after [`HELPER_TIMEOUT`].
fn run_with_timeout(program: &str, input: &str) -> Result<Output, String> {
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the credential helper {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading leaves a broken pipe: its exit status says more.
        let _ = stdin.write_all(input.as_bytes());
    }

    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > HELPER_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} get took more than {HELPER_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    };

    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    Ok(Output {
        success: status.success(),
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(username: &str, password: &str) -> Option<Credential> {
        Some(Credential::Basic {
            username: username.into(),
            password: password.into(),
        })
    }

    #[test]
    fn auths_entries_give_credentials_by_host() {
        let text = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
            "registry.example:5000": {"username": "ci", "password": "pw"},
            "https://tokens.example/v2/": {"identitytoken": "refresh"}
        }}"#;

        let config = DockerConfig::parse(text, "test").unwrap();

        assert_eq!(config.lookup("docker.io").unwrap(), basic("hub", "secret"));
        assert_eq!(
            config.lookup("registry.example:5000").unwrap(),
            basic("ci", "pw")
        );
        assert_eq!(
            config.lookup("tokens.example").unwrap(),
            Some(Credential::IdentityToken("refresh".into()))
        );
        assert_eq!(config.lookup("other.example").unwrap(), None);
    }

    #[test]
    fn bad_configs_and_entries_say_where_and_why() {
        let error = DockerConfig::parse("{not json", "DOCKER_AUTH_CONFIG").unwrap_err();
        assert!(error.contains("DOCKER_AUTH_CONFIG"), "{error}");

        let text = r#"{"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}}"#;
        let error = DockerConfig::parse(text, "cfg")
            .unwrap()
            .lookup("r.example")
            .unwrap_err();
        assert!(
            error.contains("r.example") && error.contains("user:password"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_helper_is_a_clear_error() {
        let text = r#"{"credHelpers": {"r.example": "oci-cache-test-no-such-helper"}}"#;

        let error = DockerConfig::parse(text, "cfg")
            .unwrap()
            .lookup("r.example")
            .unwrap_err();

        assert!(
            error.contains("docker-credential-oci-cache-test-no-such-helper"),
            "{error}"
        );
    }
}
