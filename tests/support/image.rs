//! Layers built in memory, and the media types the tests push them with.

use std::io::Write;

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

/// OCI layer, gzip-compressed tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd-compressed tar.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI layer, uncompressed tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Step image layer: a zstd-compressed tar.
pub const STEP_LAYER_ZSTD: &str = "application/vnd.gitlab.step.layer.v1.tar+zstd";
/// Docker schema 2 layer, gzip-compressed tar.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Every entry gets this modification time, so that a layer's digest depends on its entries only.
const ENTRY_MTIME: u64 = 1_700_000_000;

/// Length of the ustar name and link name fields; longer names go in a PAX header.
const NAME_FIELD_LEN: usize = 100;

/// Largest file in a [`Layer::random`] layer.
const RANDOM_FILE_MAX: usize = 1 << 20;

/// One entry of a layer's tar. Paths and targets are written verbatim (absolute names, `./`
/// prefixes and `..` included), so tests can build the archives real images and attackers make.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A regular file with permission bits `mode` (e.g. 0o755).
    File {
        path: String,
        contents: Vec<u8>,
        mode: u32,
    },
    /// A directory with permission bits `mode`.
    Dir { path: String, mode: u32 },
    /// A symbolic link to `target`.
    Symlink { path: String, target: String },
    /// A hard link to the earlier entry named `target`.
    Hardlink { path: String, target: String },
}

impl Entry {
    /// A regular file with mode 0o644.
    pub fn file(path: &str, contents: impl Into<Vec<u8>>) -> Entry {
        Entry::File {
            path: path.to_string(),
            contents: contents.into(),
            mode: 0o644,
        }
    }

    /// A directory with mode 0o755.
    pub fn dir(path: &str) -> Entry {
        Entry::Dir {
            path: path.to_string(),
            mode: 0o755,
        }
    }
}

/// How a layer's tar is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A layer blob built in memory.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The media type it is pushed with.
    pub media_type: String,
    /// The blob: the tar, compressed.
    pub bytes: Vec<u8>,
    /// "sha256:<hex>" of `bytes`.
    pub digest: String,
    /// The uncompressed tar.
    pub tar: Vec<u8>,
}

impl Layer {
    /// Builds a tar of `entries` (in order, owned by 0:0, fixed mtime) and compresses it.
    pub fn build(entries: &[Entry], compression: Compression, media_type: &str) -> Layer {
        Layer::from_tar(build_tar(entries), compression, media_type)
    }

    /// A layer of pseudo-random (incompressible) files totalling `bytes`, under `random/`.
    /// The same `seed` gives the same layer.
    pub fn random(bytes: usize, seed: u64, compression: Compression, media_type: &str) -> Layer {
        let mut generator = SplitMix64(seed);
        let mut entries = vec![Entry::dir("random/")];
        let mut remaining = bytes;
        while remaining > 0 {
            let len = remaining.min(RANDOM_FILE_MAX);
            let path = format!("random/{:05}.bin", entries.len() - 1);
            entries.push(Entry::file(&path, generator.bytes(len)));
            remaining -= len;
        }

        let tar = build_tar(&entries);
        drop(entries);
        Layer::from_tar(tar, compression, media_type)
    }

    /// A layer of about `bytes` in files of many sizes (from 512 bytes to 4 MiB) under
    /// `mixed/`, alternately incompressible and text-like, so that gzip and zstd have real work.
    /// The same `seed` gives the same layer.
    pub fn mixed(bytes: usize, seed: u64, compression: Compression, media_type: &str) -> Layer {
        const SIZES: [usize; 6] = [512, 4 << 10, 32 << 10, 256 << 10, 1 << 20, 4 << 20];
        let mut generator = SplitMix64(seed);
        let mut entries = vec![Entry::dir("mixed/")];
        let mut remaining = bytes;
        while remaining > 0 {
            let n = entries.len() - 1;
            let len = remaining.min(SIZES[n % SIZES.len()]);
            let contents = match n % 2 {
                0 => generator.bytes(len),
                _ => generator.text(len),
            };
            entries.push(Entry::file(&format!("mixed/{n:05}.dat"), contents));
            remaining -= len;
        }

        Layer::from_tar(build_tar(&entries), compression, media_type)
    }

    /// A layer from a tar built elsewhere (e.g. a hand-crafted malformed archive).
    pub fn from_tar(tar: Vec<u8>, compression: Compression, media_type: &str) -> Layer {
        let bytes = compress(&tar, compression);
        Layer {
            media_type: media_type.to_string(),
            digest: sha256_digest(&bytes),
            bytes,
            tar,
        }
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The digest of the uncompressed tar, as image configs list it in `rootfs.diff_ids`.
    pub fn diff_id(&self) -> String {
        sha256_digest(&self.tar)
    }
}

/// "sha256:<hex>" of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn build_tar(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        append_entry(&mut builder, entry);
    }
    builder.into_inner().expect("finishing the layer tar")
}

fn append_entry(builder: &mut tar::Builder<Vec<u8>>, entry: &Entry) {
    match entry {
        Entry::File {
            path,
            contents,
            mode,
        } => append_raw(builder, path, None, EntryType::Regular, *mode, contents),
        Entry::Dir { path, mode } => {
            append_raw(builder, path, None, EntryType::Directory, *mode, &[])
        }
        Entry::Symlink { path, target } => {
            append_raw(builder, path, Some(target), EntryType::Symlink, 0o777, &[])
        }
        Entry::Hardlink { path, target } => {
            append_raw(builder, path, Some(target), EntryType::Link, 0o644, &[])
        }
    }
}

/// Appends one entry with its names copied byte for byte. The tar crate's `set_path` would
/// normalise `./` away and refuse `..` and absolute names, which tests need to write.
fn append_raw(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    link: Option<&str>,
    kind: EntryType,
    mode: u32,
    contents: &[u8],
) {
    let mut pax = Vec::new();
    if path.len() > NAME_FIELD_LEN {
        pax_record(&mut pax, "path", path);
    }
    if let Some(link) = link.filter(|link| link.len() > NAME_FIELD_LEN) {
        pax_record(&mut pax, "linkpath", link);
    }
    if !pax.is_empty() {
        let header = entry_header("PaxHeader", None, EntryType::XHeader, 0o644, pax.len());
        append(builder, &header, &pax, path);
    }

    let header = entry_header(path, link, kind, mode, contents.len());
    append(builder, &header, contents, path);
}

fn entry_header(path: &str, link: Option<&str>, kind: EntryType, mode: u32, size: usize) -> Header {
    let mut header = Header::new_ustar();
    copy_truncated(&mut header.as_old_mut().name, path);
    if let Some(link) = link {
        copy_truncated(&mut header.as_old_mut().linkname, link);
    }
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(ENTRY_MTIME);
    header.set_size(size as u64);
    header.set_cksum();
    header
}

fn append(builder: &mut tar::Builder<Vec<u8>>, header: &Header, data: &[u8], path: &str) {
    builder
        .append(header, data)
        .unwrap_or_else(|err| panic!("appending tar entry {path:?}: {err}"));
}

/// Copies as much of `value` as fits; a longer value is also given in a PAX record.
fn copy_truncated(field: &mut [u8], value: &str) {
    let len = value.len().min(field.len());
    field[..len].copy_from_slice(&value.as_bytes()[..len]);
}

/// Appends the PAX record "<length> <key>=<value>\n", whose length counts its own digits.
fn pax_record(records: &mut Vec<u8>, key: &str, value: &str) {
    let body_len = 1 + key.len() + 1 + value.len() + 1;
    let mut len = body_len + 1;
    while len != body_len + len.to_string().len() {
        len = body_len + len.to_string().len();
    }
    records.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
}

fn compress(tar: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(tar).expect("gzip-compressing a layer");
            encoder.finish().expect("finishing a gzip layer")
        }
        // Level 1: tests want speed, not ratio, and debug builds compress slowly.
        Compression::Zstd => zstd::encode_all(tar, 1).expect("zstd-compressing a layer"),
    }
}

/// A small deterministic pseudo-random generator (SplitMix64).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Words from a small vocabulary, separated by spaces and newlines: compresses like text.
    fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: [&str; 16] = [
            "step", "image", "layer", "digest", "cache", "registry", "manifest", "index", "tag",
            "blob", "runner", "job", "script", "echo", "exit", "config",
        ];
        let mut text = Vec::with_capacity(len + 16);
        while text.len() < len {
            let next = self.next();
            text.extend_from_slice(WORDS[(next % 16) as usize].as_bytes());
            text.push(if next % 11 == 0 { b'\n' } else { b' ' });
        }
        text.truncate(len);
        text
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            bytes.extend_from_slice(&self.next().to_le_bytes());
        }
        bytes.truncate(len);
        bytes
    }
}
