//! Registry authentication: the credentials a caller holds per registry host, the answers to a
//! registry's `WWW-Authenticate` challenge (Basic, or Bearer through the registry's token
//! server), and the tokens kept until they expire or the registry refuses them.
//!
//! A credential is only ever sent to the registry host it was given for, or to the token
//! server that registry names in its challenge (never over plain HTTP unless the registry itself
//! is reached over plain HTTP). Redirects to another host drop the `Authorization` header.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::HeaderValue;

/// What a caller presents to one registry.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A user name and a password or access token, for Basic auth or the token server.
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
    /// An OAuth2 refresh token, as `docker login` stores in `identitytoken`.
    IdentityToken(String),
    /// A registry token, sent as it is with `Authorization: Bearer`.
    Bearer(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username:?}, <secret>)"),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<secret>)"),
            Credential::Bearer(_) => f.write_str("Bearer(<secret>)"),
        }
    }
}

/// Why a challenge could not be answered.
#[derive(Debug)]
pub enum AuthFailure {
    /// The registry wants credentials and the caller has none for it, or they were refused.
    Refused(String),
    /// The token server could not be reached or answered nonsense; worth another try.
    Transient(String),
}

/// How long a token lasts when its server does not say (the Distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// The longest answer read from a token server.
const MAX_TOKEN_RESPONSE_BYTES: usize = 1 << 20;

/// An `Authorization` header value that may be reused until `expires`.
#[derive(Clone)]
struct Grant {
    header: HeaderValue,
    expires: Option<Instant>,
}

/// Where credentials come from when the caller gave none for a registry explicitly (a Docker
/// config and its credential helpers). May block: it can run a helper program.
pub trait CredentialSource: Send + Sync + fmt::Debug {
    /// The credential for `registry` (`host[:port]`), None when there is none.
    fn credential(&self, registry: &str) -> Result<Option<Credential>, String>;
}

/// Credentials per registry host, and the grants obtained with them.
#[derive(Default)]
pub struct Authenticator {
    credentials: HashMap<String, Credential>,
    source: Option<Arc<dyn CredentialSource>>,
    /// Credentials looked up in `source`, by registry host.
    looked_up: Mutex<HashMap<String, Option<Credential>>>,
    /// (registry host, repository) -> the header that last worked.
    grants: Mutex<HashMap<(String, String), Grant>>,
    /// (registry host, repository) pairs the caller's credentials were sent for.
    credentialed: Mutex<HashSet<(String, String)>>,
}

impl Authenticator {
    /// An authenticator with explicit `credentials` (by registry host, `host[:port]`), and a
    /// `source` asked for registries that have none there.
    pub fn new(
        credentials: HashMap<String, Credential>,
        source: Option<Arc<dyn CredentialSource>>,
    ) -> Authenticator {
        Authenticator {
            credentials,
            source,
            ..Authenticator::default()
        }
    }

    /// The header to send with a request to `repository` on `registry`, if one is known: a
    /// grant from an earlier challenge that has not expired, or a bearer token given as is.
    pub fn authorization(&self, registry: &str, repository: &str) -> Option<HeaderValue> {
        let key = (registry.to_string(), repository.to_string());
        let grants = lock(&self.grants);
        if let Some(grant) = grants.get(&key) {
            if grant.expires.is_none_or(|expires| Instant::now() < expires) {
                return Some(grant.header.clone());
            }
        }
        match self.credentials.get(registry) {
            Some(Credential::Bearer(token)) => {
                lock(&self.credentialed).insert(key);
                bearer_header(token).ok()
            }
            _ => None,
        }
    }

    /// True when the caller's credentials were sent for `repository` on `registry`.
    pub fn used_credential(&self, registry: &str, repository: &str) -> bool {
        let key = (registry.to_string(), repository.to_string());
        lock(&self.credentialed).contains(&key)
    }

    /// Forget the grant for `repository` on `registry`: the registry refused it.
    pub fn forget(&self, registry: &str, repository: &str) {
        let key = (registry.to_string(), repository.to_string());
        lock(&self.grants).remove(&key);
    }

    /// Answer the registry's `WWW-Authenticate` challenge for pulling from `repository`,
    /// asking its token server for a token when it names one, and keep the answer.
    pub async fn answer(
        &self,
        http: &reqwest::Client,
        registry: &str,
        repository: &str,
        challenge: &str,
        registry_is_plain_http: bool,
    ) -> Result<HeaderValue, AuthFailure> {
        let credential = self.credential(registry).await?;
        let credential = credential.as_ref();
        let challenge = Challenge::parse(challenge)?;

        let grant = match challenge {
            Challenge::Basic => basic_grant(registry, credential)?,
            Challenge::Bearer { realm, service } => {
                let scope = format!("repository:{repository}:pull");
                let realm = checked_realm(&realm, registry_is_plain_http)?;
                let request = TokenRequest {
                    realm: &realm,
                    service: service.as_deref(),
                    scope: &scope,
                };
                request_token(http, &request, credential).await?
            }
        };
        tracing::debug!(
            registry,
            repository,
            with_credential = credential.is_some(),
            expires_in_s = grant.expires.map(|e| (e - Instant::now()).as_secs()),
            "registry authorization obtained"
        );

        let key = (registry.to_string(), repository.to_string());
        if credential.is_some() {
            lock(&self.credentialed).insert(key.clone());
        }
        lock(&self.grants).insert(key, grant.clone());
        Ok(grant.header)
    }

    /// The caller's credential for `registry`: the explicit one, else the source's (looked up
    /// once per handle, on a blocking thread since a helper program may run).
    async fn credential(&self, registry: &str) -> Result<Option<Credential>, AuthFailure> {
        if let Some(credential) = self.credentials.get(registry) {
            return Ok(Some(credential.clone()));
        }
        let Some(source) = self.source.clone() else {
            return Ok(None);
        };
        if let Some(known) = lock(&self.looked_up).get(registry) {
            return Ok(known.clone());
        }

        let host = registry.to_string();
        let found = tokio::task::spawn_blocking(move || source.credential(&host))
            .await
            .map_err(|e| AuthFailure::Refused(format!("credential lookup: {e}")))?
            .map_err(AuthFailure::Refused)?;
        tracing::debug!(registry, found = found.is_some(), "credentials looked up");
        lock(&self.looked_up).insert(registry.to_string(), found.clone());
        Ok(found)
    }
}

/// Lock a mutex, even one a panicking thread left poisoned (the maps stay consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The parts of a challenge this client answers.
#[derive(Debug, PartialEq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// The first Bearer or Basic challenge in a `WWW-Authenticate` value.
    fn parse(value: &str) -> Result<Challenge, AuthFailure> {
        let unusable = |why: String| {
            AuthFailure::Refused(format!("cannot answer the challenge {value:?}: {why}"))
        };
        let challenges = http_auth::parse_challenges(value).map_err(|e| unusable(e.to_string()))?;

        for challenge in &challenges {
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.to_unescaped())
            };
            if challenge.scheme.eq_ignore_ascii_case("bearer") {
                let realm = param("realm").ok_or_else(|| unusable("no realm".into()))?;
                let service = param("service");
                return Ok(Challenge::Bearer { realm, service });
            }
            if challenge.scheme.eq_ignore_ascii_case("basic") {
                return Ok(Challenge::Basic);
            }
        }
        Err(unusable("neither Bearer nor Basic".into()))
    }
}

/// Basic auth with the caller's user name and password.
fn basic_grant(registry: &str, credential: Option<&Credential>) -> Result<Grant, AuthFailure> {
    let Some(Credential::Basic { username, password }) = credential else {
        return Err(AuthFailure::Refused(format!(
            "the registry asks for a user name and password, and none was given for {registry}"
        )));
    };
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let header = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
        AuthFailure::Refused("the user name or password is not valid in HTTP".into())
    })?;
    Ok(Grant {
        header: sensitive(header),
        expires: None,
    })
}

/// The token server's URL, refused when it would carry credentials in clear text.
fn checked_realm(realm: &str, registry_is_plain_http: bool) -> Result<reqwest::Url, AuthFailure> {
    let url = reqwest::Url::parse(realm).map_err(|e| {
        AuthFailure::Refused(format!("the token server {realm:?} is not a URL: {e}"))
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if registry_is_plain_http => Ok(url),
        scheme => Err(AuthFailure::Refused(format!(
            "the token server {realm:?} uses {scheme}, and credentials go over https only"
        ))),
    }
}

/// One request to a token server.
struct TokenRequest<'a> {
    realm: &'a reqwest::Url,
    service: Option<&'a str>,
    scope: &'a str,
}

/// The token server's answer (the Distribution token spec; `access_token` is the OAuth2 name).
#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Ask the token server for a pull token, with the caller's credential if there is one.
async fn request_token(
    http: &reqwest::Client,
    request: &TokenRequest<'_>,
    credential: Option<&Credential>,
) -> Result<Grant, AuthFailure> {
    let mut query: Vec<(&str, &str)> = vec![("scope", request.scope)];
    if let Some(service) = request.service {
        query.push(("service", service));
    }

    let mut url = request.realm.clone();
    url.query_pairs_mut().extend_pairs(&query);
    let builder = match credential {
        Some(Credential::IdentityToken(refresh)) => {
            let mut form = query.clone();
            form.extend([
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", "oci-cache"),
            ]);
            let body = form_body(&form);
            http.post(request.realm.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
        }
        Some(Credential::Basic { username, password }) => {
            http.get(url).basic_auth(username, Some(password))
        }
        Some(Credential::Bearer(_)) | None => http.get(url),
    };
    let response = builder.send().await.map_err(|e| {
        AuthFailure::Transient(format!(
            "token server {}: {}",
            request.realm,
            super::error_chain(&e)
        ))
    })?;

    let status = response.status();
    let body = read_limited(response).await?;
    if !status.is_success() {
        let words = String::from_utf8_lossy(&body[..body.len().min(512)])
            .trim()
            .to_string();
        let failure = format!("token server {} answered {status}: {words}", request.realm);
        return Err(match status.is_server_error() || status.as_u16() == 429 {
            true => AuthFailure::Transient(failure),
            false => AuthFailure::Refused(failure),
        });
    }
    token_grant(&body, request.realm)
}

/// The grant in a token server's answer.
fn token_grant(body: &[u8], realm: &reqwest::Url) -> Result<Grant, AuthFailure> {
    let answer: TokenResponse = serde_json::from_slice(body).map_err(|e| {
        AuthFailure::Transient(format!("token server {realm} answered no token: {e}"))
    })?;
    let token = answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AuthFailure::Transient(format!("token server {realm} sent an empty token"))
        })?;

    // Renew a little before the server's deadline, so that no request carries a token that
    // expires on the way.
    let lifetime = answer
        .expires_in
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME);
    let margin = (lifetime / 10).min(Duration::from_secs(10));
    let header = bearer_header(&token).map_err(|_| {
        AuthFailure::Transient(format!(
            "token server {realm} sent a token that is not valid in HTTP"
        ))
    })?;
    Ok(Grant {
        header,
        expires: Some(Instant::now() + lifetime - margin),
    })
}

/// `Bearer <token>`, marked sensitive so that it never appears in logs.
fn bearer_header(token: &str) -> Result<HeaderValue, reqwest::header::InvalidHeaderValue> {
    HeaderValue::from_str(&format!("Bearer {token}")).map(sensitive)
}

fn sensitive(mut header: HeaderValue) -> HeaderValue {
    header.set_sensitive(true);
    header
}

/// Read at most [`MAX_TOKEN_RESPONSE_BYTES`] of a token server's answer.
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, AuthFailure> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| AuthFailure::Transient(format!("token server: {}", super::error_chain(&e))))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_TOKEN_RESPONSE_BYTES {
            return Err(AuthFailure::Refused(
                "the token server's answer is too long".into(),
            ));
        }
    }
    Ok(body)
}

/// `application/x-www-form-urlencoded` text of `pairs`.
fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut serializer = reqwest::Url::parse("http://x/").expect("a constant URL");
    serializer.query_pairs_mut().extend_pairs(pairs);
    serializer.query().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_give_realm_and_service() {
        let value = concat!(
            r#"Bearer realm="https://auth.example/token","#,
            r#"service="registry.example",scope="repository:a/b:pull""#
        );

        let challenge = Challenge::parse(value).unwrap();

        assert_eq!(
            challenge,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
            }
        );
    }

    #[test]
    fn basic_challenges_need_a_user_name() {
        let challenge = Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(challenge, Challenge::Basic);

        let refused = basic_grant("r.example", None);

        assert!(matches!(refused, Err(AuthFailure::Refused(m)) if m.contains("r.example")));
    }

    #[test]
    fn credentials_go_to_plain_http_token_servers_only_for_plain_http_registries() {
        assert!(checked_realm("http://auth.example/token", false).is_err());
        assert!(checked_realm("http://127.0.0.1:1/token", true).is_ok());
        assert!(checked_realm("https://auth.example/token", false).is_ok());
    }

    #[test]
    fn tokens_expire_a_little_before_the_server_says() {
        let realm = reqwest::Url::parse("https://auth.example/token").unwrap();

        let grant = token_grant(br#"{"access_token":"abc","expires_in":300}"#, &realm).unwrap();

        let left = grant.expires.unwrap() - Instant::now();
        assert!(left > Duration::from_secs(280) && left <= Duration::from_secs(290));
        assert_eq!(grant.header.to_str().unwrap(), "Bearer abc");
        assert!(grant.header.is_sensitive());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let credential = Credential::Basic {
            username: "ci".into(),
            password: "hunter2".into(),
        };

        assert!(!format!("{credential:?}").contains("hunter2"));
    }
}
