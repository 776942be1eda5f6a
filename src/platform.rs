//! Platforms (`os/architecture[/variant]`) and the choice of a manifest from an index.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::manifest::Descriptor;

/// The os that step images publish for content that runs anywhere.
pub const GENERIC_OS: &str = "generic";

/// An image platform in OCI terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system, as in `GOOS` (`linux`, `windows`, `generic`).
    pub os: String,
    /// Architecture, as in `GOARCH` (`amd64`, `arm64`).
    pub architecture: String,
    /// Variant (`v7`, `v8`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parse `os/architecture[/variant]`.
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid_part = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid_part) {
            return Err(format!(
                "platform {text:?} is not of the form os/architecture[/variant]"
            ));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }

    /// The platform of the running process, in Go's names.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Does an index entry's platform satisfy this one? A missing variant on either side
    /// matches any variant, except that `arm64` treats a missing variant as `v8`.
    fn matches(&self, entry: &Platform) -> bool {
        if entry.os != self.os || entry.architecture != self.architecture {
            return false;
        }
        let normal = |v: Option<&str>| match (self.architecture.as_str(), v) {
            ("arm64", None) => Some("v8".to_string()),
            (_, v) => v.map(str::to_string),
        };
        match (
            normal(self.variant.as_deref()),
            normal(entry.variant.as_deref()),
        ) {
            (Some(wanted), Some(offered)) => wanted == offered,
            _ => true,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// Choose the index entry for `wanted`: the first exact match, else the first entry whose os is
/// `generic`. Entries without a platform are never chosen.
pub fn choose<'a>(entries: &'a [Descriptor], wanted: &Platform) -> Option<&'a Descriptor> {
    let with_platform = || {
        entries
            .iter()
            .filter_map(|e| e.platform.as_ref().map(|p| (e, p)))
    };

    with_platform()
        .find(|(_, platform)| wanted.matches(platform))
        .or_else(|| with_platform().find(|(_, platform)| platform.os == GENERIC_OS))
        .map(|(entry, _)| entry)
}

/// The platforms an index offers, for error messages.
pub fn describe(entries: &[Descriptor]) -> String {
    let names: Vec<String> = entries
        .iter()
        .filter_map(|e| e.platform.as_ref())
        .map(Platform::to_string)
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(platform: &str, digest: &str) -> Descriptor {
        let p = Platform::parse(platform).unwrap();
        serde_json::from_value(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": 1,
            "platform": {"os": p.os, "architecture": p.architecture, "variant": p.variant},
        }))
        .unwrap()
    }

    #[test]
    fn exact_platform_wins_over_generic() {
        let entries = [entry("generic/any", "g"), entry("linux/amd64", "l")];
        let chosen = choose(&entries, &Platform::parse("linux/amd64").unwrap()).unwrap();
        assert_eq!(chosen.digest, "l");
    }

    #[test]
    fn generic_os_is_the_fallback() {
        let entries = [entry("linux/arm64", "a"), entry("generic/unknown", "g")];
        let chosen = choose(&entries, &Platform::parse("linux/amd64").unwrap()).unwrap();
        assert_eq!(chosen.digest, "g");
    }

    #[test]
    fn variant_is_respected() {
        let entries = [entry("linux/arm/v6", "6"), entry("linux/arm/v7", "7")];
        let chosen = choose(&entries, &Platform::parse("linux/arm/v7").unwrap()).unwrap();
        assert_eq!(chosen.digest, "7");
        assert!(choose(&entries, &Platform::parse("linux/amd64").unwrap()).is_none());
    }

    #[test]
    fn malformed_platform_is_refused() {
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/amd64/v1/x").is_err());
        assert!(Platform::parse("linux//v1").is_err());
    }
}
