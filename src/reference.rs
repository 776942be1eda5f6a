//! Image references and the caching policy that follows from them.
//!
//! A reference is `[registry/]repository[:tag][@digest]`, normalised as Docker does: no registry
//! means `docker.io`, and a one-component repository on Docker Hub gets `library/`. Parsing is
//! strict and happens before any network or file access, so that a malformed reference fails
//! with a message that names the part that is wrong.

use std::fmt;

use crate::error::{Error, Result};

/// The registry used when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// The tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

const MAX_REPOSITORY_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// Whether the content behind a reference can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Pinned by a digest: the content can never change.
    Digest,
    /// Tagged with a full semantic version (`1.2.3`, `1.2.3-rc.1`): treated as never re-pointed.
    SemverTag,
    /// Any other tag (`latest`, `3`, `3.2`, `pipeline-1234`): may be re-pointed at any time.
    MutableTag,
}

impl Mutability {
    /// True when a cached copy may be served without asking the registry.
    pub fn is_immutable(self) -> bool {
        !matches!(self, Mutability::MutableTag)
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Mutability::Digest => "digest",
            Mutability::SemverTag => "semver",
            Mutability::MutableTag => "mutable",
        }
    }
}

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageReference {
    /// Parse `text`, normalising it as Docker does.
    pub fn parse(text: &str) -> Result<ImageReference> {
        let invalid = |reason: String| Error::InvalidReference {
            reference: text.to_string(),
            reason,
        };

        if text.is_empty() {
            return Err(invalid("the reference is empty".into()));
        }
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(format!("it contains the character {c:?}")));
        }

        let (name, digest) = match text.rsplit_once('@') {
            Some((name, digest)) => (name, Some(parse_digest(digest).map_err(&invalid)?)),
            None => (text, None),
        };
        let (name, tag) = split_tag(name);
        if let Some(tag) = tag {
            check_tag(tag).map_err(&invalid)?;
        }

        let (registry, repository) = split_registry(name).map_err(&invalid)?;
        check_repository(&repository).map_err(&invalid)?;

        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(ImageReference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host, with its port if any (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path (`library/alpine`, `steps/echo`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference is pinned.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// How the caching policy treats this reference.
    pub fn mutability(&self) -> Mutability {
        if self.digest.is_some() {
            return Mutability::Digest;
        }
        match self.tag.as_deref().map(semver::Version::parse) {
            Some(Ok(version)) if version.build.is_empty() => Mutability::SemverTag,
            _ => Mutability::MutableTag,
        }
    }

    /// The same repository, pinned at `digest` (the tag is dropped).
    pub fn with_digest(&self, digest: &str) -> ImageReference {
        ImageReference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// `registry/repository`, the name under which tags are recorded.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Check that `digest` is `sha256:` followed by 64 lowercase hex digits, the only algorithm the
/// cache verifies. Used for references and for every descriptor before it names a path or URL.
pub fn parse_digest(digest: &str) -> std::result::Result<String, String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!(
            "digest {digest:?} has no algorithm (expected sha256:<64 hex>)"
        ));
    };
    if algorithm != "sha256" {
        return Err(format!(
            "digest algorithm {algorithm:?} is not supported (only sha256)"
        ));
    }
    if hex.len() != 64 {
        return Err(format!(
            "sha256 digest has {} hex digits, expected 64",
            hex.len()
        ));
    }
    if !hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("digest {digest:?} is not lowercase hexadecimal"));
    }
    Ok(digest.to_string())
}

/// Split `name[:tag]`: a colon after the last slash starts the tag.
fn split_tag(name: &str) -> (&str, Option<&str>) {
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    }
}

fn check_tag(tag: &str) -> std::result::Result<(), String> {
    if tag.is_empty() {
        return Err("the tag after ':' is empty".into());
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(format!(
            "the tag is {} characters long, at most {MAX_TAG_LEN} are allowed",
            tag.len()
        ));
    }
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(format!(
            "tag {tag:?} may only hold letters, digits, '_', '.' and '-', \
             and must not start with '.' or '-'"
        ));
    }
    Ok(())
}

/// Split the registry from the repository the way Docker does: the first component names a
/// registry when it holds a '.' or a ':' or is `localhost`.
fn split_registry(name: &str) -> std::result::Result<(String, String), String> {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            check_registry(first)?;
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
    };

    let registry = match registry.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
        _ => registry,
    };
    let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    Ok((registry, repository))
}

fn check_registry(registry: &str) -> std::result::Result<(), String> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("registry {registry:?} has an unclosed '['"))?;
        host.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("registry {registry:?} is not a valid IPv6 address"))?;
        (host, after.strip_prefix(':'))
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    };

    let host_ok = !host.is_empty()
        && (host.contains(':')
            || host.split('.').all(|label| {
                !label.is_empty()
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }));
    if !host_ok {
        return Err(format!("registry host {host:?} is not a valid host name"));
    }
    if let Some(port) = port {
        port.parse::<u16>()
            .map_err(|_| format!("registry port {port:?} is not a number from 0 to 65535"))?;
    }
    Ok(())
}

fn check_repository(repository: &str) -> std::result::Result<(), String> {
    if repository.is_empty() {
        return Err("the repository name is empty".into());
    }
    if repository.len() > MAX_REPOSITORY_LEN {
        return Err(format!(
            "the repository name is {} characters long, at most {MAX_REPOSITORY_LEN} are allowed",
            repository.len()
        ));
    }
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("repository {repository:?} must be lowercase"));
    }
    for component in repository.split('/') {
        check_path_component(component)
            .map_err(|reason| format!("repository component {component:?} {reason}"))?;
    }
    Ok(())
}

/// A component is lowercase alphanumerics joined by one '.', one or two '_', or any number of
/// '-', as the distribution grammar says.
fn check_path_component(component: &str) -> std::result::Result<(), &'static str> {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() {
        return Err("is empty (two slashes in a row, or a slash at an end)");
    }
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err("must start and end with a lowercase letter or digit");
    }

    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let valid = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !valid {
            return Err("may only separate letters and digits with '.', '_', '__' or dashes");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(text: &str) -> ImageReference {
        ImageReference::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn reason(text: &str) -> String {
        ImageReference::parse(text).expect_err(text).to_string()
    }

    #[test]
    fn short_names_are_normalised_to_docker_hub_library() {
        let reference = parse("alpine");
        assert_eq!(reference.to_string(), "docker.io/library/alpine:latest");
        assert_eq!(parse("index.docker.io/foo/bar:1").registry(), "docker.io");
        assert_eq!(parse("foo/bar").repository(), "foo/bar");
    }

    #[test]
    fn registry_is_recognised_by_dot_colon_or_localhost() {
        assert_eq!(parse("localhost/steps/echo").registry(), "localhost");
        assert_eq!(
            parse("127.0.0.1:5000/steps/echo:1.0.0").registry(),
            "127.0.0.1:5000"
        );
        assert_eq!(parse("[::1]:5000/echo").registry(), "[::1]:5000");
        assert_eq!(parse("registry.gitlab.com/a/b/c").repository(), "a/b/c");
    }

    #[test]
    fn tag_and_digest_are_both_kept() {
        let reference = parse(&format!("r.io/steps/x:1.2@{DIGEST}"));
        assert_eq!(reference.tag(), Some("1.2"));
        assert_eq!(reference.digest(), Some(DIGEST));
        assert_eq!(reference.mutability(), Mutability::Digest);
    }

    #[test]
    fn full_semantic_versions_are_immutable() {
        for tag in ["1.2.3", "0.0.1", "10.20.30-rc.1", "1.0.0-alpha"] {
            let reference = parse(&format!("r.io/x:{tag}"));
            assert_eq!(reference.mutability(), Mutability::SemverTag, "{tag}");
        }
    }

    #[test]
    fn partial_versions_and_names_are_mutable() {
        for tag in [
            "latest",
            "3",
            "3.2",
            "pipeline-1234567",
            "v1.2.3",
            "01.2.3",
            "1.2",
        ] {
            let reference = parse(&format!("r.io/x:{tag}"));
            assert_eq!(reference.mutability(), Mutability::MutableTag, "{tag}");
        }
    }

    #[test]
    fn malformed_references_say_what_is_wrong() {
        assert!(reason("").contains("empty"));
        assert!(reason("Alpine").contains("lowercase"));
        assert!(reason("r.io/x:").contains("tag after ':' is empty"));
        assert!(reason("r.io/x:-bad").contains("must not start"));
        assert!(reason("r.io/x:1.2.3+build").contains("may only hold"));
        assert!(reason("r.io/x@sha256:abc").contains("64"));
        assert!(reason("r.io/x@md5:abc").contains("not supported"));
        assert!(reason(&format!("r.io/x@{}", DIGEST.to_uppercase())).contains("algorithm"));
        assert!(reason("r.io//x").contains("empty"));
        assert!(reason("r.io/x y").contains("' '"));
        assert!(reason("r.io:99999/x").contains("port"));
        assert!(reason("r.io/a..b").contains("separate"));
        assert!(reason(&format!("r.io/x:{}", "a".repeat(129))).contains("at most 128"));
    }

    #[test]
    fn descriptor_digests_that_could_name_a_path_are_rejected() {
        assert!(parse_digest("sha256:../../x").is_err());
        assert!(parse_digest(&DIGEST[..70]).is_err());
        assert!(parse_digest(DIGEST).is_ok());
    }
}
