//! Hostile layers, end to end: each test pushes one malicious layer to a real registry and fetches
//! it through [`Cache`], so download, hashing, decompression, extraction and publishing all run.
//!
//! Every test owns a [`Scene`]: a base directory holding the cache (`base/cache`) and, next to it,
//! a sentinel tree (`base/outside`) that the layer tries to reach, by absolute path or by climbing
//! out of the directory it is extracted in. A layer is extracted in
//! `base/cache/staging/layer-<hex>-<random>/`, so `../../../outside` from the layer's root is the
//! sentinel; once published it lives one level deeper, in `base/cache/layers/sha256/<hex>/`.
//!
//! After the fetch the sentinel tree and the base directory must be exactly as before (names,
//! file types, modes, contents, symlink targets, link counts, modification and change times), and
//! the cache may only hold its own layout, with nothing left in `staging/`. A refused layer must
//! leave nothing published and nothing in `staging/`; an accepted one must hold the hostile
//! content inside its own directory. Each test says which
//! outcome the extraction profile (ARCHITECTURE.md, "Extraction profile") requires, and why.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_cache::extract::Limits;
use oci_cache::{Cache, CacheOptions, ErrorCode, FetchOptions, Image};
use support::{Compression, Entry, Layer, Registry};
use tempfile::TempDir;

/// The repository and tag every hostile image is pushed as (each test has its own registry).
const REPOSITORY: &str = "hostile/layer";
const TAG: &str = "1.0.0";

/// From the root of a layer being extracted (`base/cache/staging/layer-*`) up to the sentinel.
const UP_TO_OUTSIDE: &str = "../../../outside";

/// Contents of the sentinel files; a write through a link would change them.
const SECRET: &[u8] = b"sentinel: must never change\n";
const INNER: &[u8] = b"inner sentinel\n";

/// Mode of the sentinel directory: a chmod through a link would make it 0o777 (or add 0o700).
const SENTINEL_DIR_MODE: u32 = 0o750;

/// What the cache directory may contain, whatever a layer holds.
const CACHE_LAYOUT: &[&str] = &[
    "blobs",
    "images",
    "layers",
    "locks",
    "merged",
    "oci-cache-layout",
    "pins",
    "private",
    "staging",
    "stats.json",
    "tags",
    "uses",
];

// ---------------------------------------------------------------------------------------------
// The scene: a registry, a cache, a sentinel tree next to the cache.
// ---------------------------------------------------------------------------------------------

struct Scene {
    registry: Registry,
    base: TempDir,
    cache: Cache,
    before: Snapshot,
}

impl Scene {
    /// A cache with the default limits.
    fn new() -> Scene {
        Scene::with_limits(Limits::default())
    }

    /// A cache whose extraction limits are `limits`, so that bomb tests stay fast.
    fn with_limits(limits: Limits) -> Scene {
        let registry = Registry::start();
        let base = tempfile::Builder::new()
            .prefix("oci-cache-hostile-")
            .tempdir()
            .expect("creating the base directory");
        plant_sentinel(&base.path().join("outside"));

        let options = CacheOptions {
            limits,
            ..Default::default()
        };
        let cache = Cache::open(base.path().join("cache"), options).expect("cache opens");
        let before = Snapshot::take(base.path());
        Scene {
            registry,
            base,
            cache,
            before,
        }
    }

    /// The sentinel directory, as an absolute path (for symlink and hard-link targets).
    fn outside(&self) -> String {
        self.base.path().join("outside").display().to_string()
    }

    /// Pushes an image of `layer` and fetches it through the cache.
    fn fetch(&self, layer: &Layer) -> oci_cache::Result<Image> {
        self.registry.push_image(
            REPOSITORY,
            Some(TAG),
            std::slice::from_ref(layer),
            None,
            false,
        );
        let reference = format!("{}/{REPOSITORY}:{TAG}", self.registry.host());
        self.cache.fetch(&reference, &FetchOptions::default())
    }

    /// Fetches a zstd step layer of `entries` and asserts it is refused as an unsafe layer for the
    /// reason `because` (see [`Scene::assert_refused`]).
    fn assert_entries_refused(&self, entries: &[Entry], because: &str) {
        let layer = step_layer(entries);
        self.assert_refused(&layer, ErrorCode::UnsafeLayer, because);
    }

    /// Fetches a zstd step layer of `entries` and asserts it is accepted and contained (see
    /// [`Scene::assert_contained`]). Returns the layer's directory.
    fn assert_entries_contained(&self, entries: &[Entry]) -> PathBuf {
        self.assert_contained(&step_layer(entries))
    }

    /// Fetches `layer` and asserts that the fetch fails with `code` for the reason `because` (part
    /// of the message), publishes nothing, leaves nothing in `staging/` and touches nothing
    /// outside the cache.
    fn assert_refused(&self, layer: &Layer, code: ErrorCode, because: &str) {
        let error = match self.fetch(layer) {
            Ok(image) => panic!(
                "the hostile layer was accepted; it was expected to fail with {}: {:?}",
                code.name(),
                image.layers
            ),
            Err(error) => error,
        };
        assert_eq!(error.code(), code, "unexpected error: {error}");
        let message = error.to_string();
        assert!(
            message.contains(because),
            "refused for another reason: {message}"
        );
        assert!(
            message.contains(&layer.digest),
            "the error does not name the layer: {message}"
        );

        let published = self.layer_dir(layer);
        assert!(
            fs::symlink_metadata(&published).is_err(),
            "{} was published",
            published.display()
        );
        self.assert_nothing_escaped();
    }

    /// Fetches `layer` and asserts that the fetch succeeds, publishes the layer in its own
    /// directory and touches nothing outside the cache. Returns the layer's directory.
    fn assert_contained(&self, layer: &Layer) -> PathBuf {
        let image = self
            .fetch(layer)
            .unwrap_or_else(|e| panic!("the layer was expected to be accepted: {e}"));
        let published = self.layer_dir(layer);
        assert_eq!(image.layers.len(), 1);
        assert_eq!(image.layers[0].path, published);
        let is_dir = fs::symlink_metadata(&published).is_ok_and(|m| m.is_dir());
        assert!(is_dir, "{} is not a directory", published.display());
        self.assert_nothing_escaped();
        published
    }

    /// `layers/sha256/<hex>` of `layer`.
    fn layer_dir(&self, layer: &Layer) -> PathBuf {
        let hex = layer.digest.strip_prefix("sha256:").expect("sha256 digest");
        self.cache.dir().join("layers/sha256").join(hex)
    }

    /// The sentinel tree and the base directory are as before; the cache holds only its layout,
    /// `staging/` nothing (a layer root's `..`), and `layers/sha256/` only directories named by
    /// digests.
    fn assert_nothing_escaped(&self) {
        let after = Snapshot::take(self.base.path());
        self.before.assert_same(&after);

        let cache = self.cache.dir();
        let staging = names_in(&cache.join("staging"));
        assert!(staging.is_empty(), "staging/ keeps {staging:?}");
        for name in names_in(cache) {
            assert!(
                CACHE_LAYOUT.contains(&name.as_str()),
                "cache holds {name:?}"
            );
        }
        let layers = cache.join("layers/sha256");
        if layers.exists() {
            for name in names_in(&layers) {
                let is_hex = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
                assert!(is_hex, "layers/sha256 holds {name:?}");
                let meta = fs::symlink_metadata(layers.join(&name)).unwrap();
                assert!(meta.is_dir(), "layers/sha256/{name} is not a directory");
            }
        }
    }
}

/// The sentinel: a file and a directory with a file in it, each with a distinctive mode.
fn plant_sentinel(outside: &Path) {
    fs::create_dir(outside).unwrap();
    fs::write(outside.join("secret.txt"), SECRET).unwrap();
    fs::set_permissions(
        outside.join("secret.txt"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();

    let dir = outside.join("dir");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("inner.txt"), INNER).unwrap();
    fs::set_permissions(dir.join("inner.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(SENTINEL_DIR_MODE)).unwrap();
}

/// Sorted names of the entries of `dir`.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Everything under the base directory except the cache: relative path -> what is there.
#[derive(Debug, PartialEq)]
struct Snapshot(BTreeMap<PathBuf, Node>);

/// One entry as `lstat` and a read show it. The change time moves on any write, chmod or new hard
/// link, even one that restores the old contents and mode.
#[derive(Debug, PartialEq)]
struct Node {
    kind: NodeKind,
    mode: u32,
    links: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

#[derive(Debug, PartialEq)]
enum NodeKind {
    File { contents: Vec<u8> },
    Dir,
    Symlink { target: PathBuf },
    Other,
}

impl Snapshot {
    fn take(base: &Path) -> Snapshot {
        let mut nodes = BTreeMap::new();
        record(base, Path::new(""), &mut nodes);
        Snapshot(nodes)
    }

    /// Names what appeared or disappeared first: that is more telling than the parent
    /// directory's changed times.
    fn assert_same(&self, after: &Snapshot) {
        for path in after.0.keys() {
            let shown = path.display();
            assert!(
                self.0.contains_key(path),
                "base/{shown} appeared outside the cache"
            );
        }
        for (path, node) in &self.0 {
            let shown = path.display();
            let now = after.0.get(path);
            let now = now.unwrap_or_else(|| panic!("base/{shown} outside the cache disappeared"));
            assert_eq!(node, now, "base/{shown} outside the cache changed");
        }
    }
}

/// Records `base/relative` and, recursively, what it holds, skipping the cache. The snapshot is
/// taken after the cache created `cache/`, so the base directory's own times hold still too.
fn record(base: &Path, relative: &Path, nodes: &mut BTreeMap<PathBuf, Node>) {
    let at = base.join(relative);
    let meta = fs::symlink_metadata(&at).unwrap();
    let kind = if meta.file_type().is_symlink() {
        NodeKind::Symlink {
            target: fs::read_link(&at).unwrap(),
        }
    } else if meta.is_file() {
        NodeKind::File {
            contents: fs::read(&at).unwrap(),
        }
    } else if meta.is_dir() {
        for name in names_in(&at) {
            if relative.as_os_str().is_empty() && name == "cache" {
                continue;
            }
            record(base, &relative.join(name), nodes);
        }
        NodeKind::Dir
    } else {
        NodeKind::Other
    };
    let node = Node {
        kind,
        mode: meta.mode() & 0o7777,
        links: meta.nlink(),
        mtime_ns: nanoseconds(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: nanoseconds(meta.ctime(), meta.ctime_nsec()),
    };
    nodes.insert(relative.to_path_buf(), node);
}

fn nanoseconds(seconds: i64, nanoseconds: i64) -> i128 {
    i128::from(seconds) * 1_000_000_000 + i128::from(nanoseconds)
}

// ---------------------------------------------------------------------------------------------
// Hand-made tar: ustar headers with correct checksums, PAX records, GNU sparse headers.
// ---------------------------------------------------------------------------------------------

const BLOCK: usize = 512;

/// One ustar header block.
struct RawHeader([u8; BLOCK]);

impl RawHeader {
    /// A POSIX ustar header (`ustar\0` `00`) for `name` of type `kind` with `size` data bytes.
    fn ustar(name: &[u8], kind: u8, mode: u32, size: u64) -> RawHeader {
        let mut header = RawHeader([0; BLOCK]);
        header.field(0, 100, name);
        header.octal(100, 8, u64::from(mode));
        header.octal(108, 8, 0);
        header.octal(116, 8, 0);
        header.octal(124, 12, size);
        header.octal(136, 12, 1_700_000_000);
        header.0[156] = kind;
        header.field(257, 6, b"ustar\0");
        header.field(263, 2, b"00");
        header
    }

    /// A GNU header (`ustar  \0`), for the GNU-only fields such as the sparse map.
    fn gnu(name: &[u8], kind: u8, mode: u32, size: u64) -> RawHeader {
        let mut header = RawHeader::ustar(name, kind, mode, size);
        header.field(257, 8, b"ustar  \0");
        header
    }

    fn link_name(mut self, target: &[u8]) -> RawHeader {
        self.field(157, 100, target);
        self
    }

    /// Copies `value` into the field at `offset`, at most `len` bytes.
    fn field(&mut self, offset: usize, len: usize, value: &[u8]) {
        assert!(
            value.len() <= len,
            "{value:?} does not fit a {len}-byte field"
        );
        self.0[offset..offset + value.len()].copy_from_slice(value);
    }

    /// A zero-padded octal number with its terminating NUL.
    fn octal(&mut self, offset: usize, len: usize, value: u64) {
        let text = format!("{value:0width$o}\0", width = len - 1);
        self.field(offset, len, text.as_bytes());
    }

    /// A GNU base-256 number: the high bit of the first byte set, big-endian after it.
    fn base256(&mut self, offset: usize, len: usize, value: u64) {
        let field = &mut self.0[offset..offset + len];
        field.fill(0);
        field[len - 8..].copy_from_slice(&value.to_be_bytes());
        field[0] |= 0x80;
    }

    /// The block with its checksum: the byte sum with the checksum field counted as spaces.
    fn finish(mut self) -> [u8; BLOCK] {
        self.0[148..156].fill(b' ');
        let sum: u32 = self.0.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        self.0[148..156].copy_from_slice(text.as_bytes());
        self.0
    }
}

/// A tar stream assembled block by block.
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn new() -> RawTar {
        RawTar::default()
    }

    /// Appends a header block.
    fn header(mut self, header: RawHeader) -> RawTar {
        self.0.extend_from_slice(&header.finish());
        self
    }

    /// Appends `data`, padded with zeros to a whole block.
    fn data(mut self, data: &[u8]) -> RawTar {
        self.0.extend_from_slice(data);
        let padding = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.0.resize(self.0.len() + padding, 0);
        self
    }

    /// Appends a member: a header of type `kind` whose size is `data.len()`, and the data.
    fn member(self, name: &[u8], kind: u8, data: &[u8]) -> RawTar {
        let header = RawHeader::ustar(name, kind, 0o644, data.len() as u64);
        self.header(header).data(data)
    }

    /// Appends a PAX `x` header holding `records`, with its own (correct) size.
    fn pax(self, records: &[(&str, &[u8])]) -> RawTar {
        let body = pax_records(records);
        self.member(b"PaxHeaders/entry", b'x', &body)
    }

    /// The archive with its end-of-archive marker (two zero blocks).
    fn finish(mut self) -> Vec<u8> {
        self.0.resize(self.0.len() + 2 * BLOCK, 0);
        self.0
    }
}

/// PAX records `"<len> <key>=<value>\n"`, where `len` counts the whole record, its digits too.
fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in records {
        let rest = 1 + key.len() + 1 + value.len() + 1;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        body.extend_from_slice(format!("{len} {key}=").as_bytes());
        body.extend_from_slice(value);
        body.push(b'\n');
    }
    body
}

/// A step layer (zstd) of `entries`, written verbatim.
fn step_layer(entries: &[Entry]) -> Layer {
    Layer::build(entries, Compression::Zstd, support::STEP_LAYER_ZSTD)
}

/// An uncompressed layer of a hand-made tar, pushed with the plain OCI tar media type.
fn raw_layer(tar: Vec<u8>) -> Layer {
    Layer::from_tar(tar, Compression::None, support::OCI_LAYER_TAR)
}

/// A layer whose one file holds `size` zero bytes, streamed into the compressor so the tar is
/// never in memory: a decompression bomb.
fn zero_bomb(size: u64, compression: Compression) -> Layer {
    let header = RawHeader::ustar(b"bomb.bin", b'0', 0o644, size).finish();
    let zeros = vec![0u8; 1 << 20];
    let write_tar = |sink: &mut dyn Write| {
        sink.write_all(&header).unwrap();
        let mut left = size + 2 * BLOCK as u64;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            sink.write_all(&zeros[..n]).unwrap();
            left -= n as u64;
        }
    };

    let (bytes, media_type) = match compression {
        Compression::Gzip => {
            let level = flate2::Compression::best();
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            write_tar(&mut encoder);
            (encoder.finish().unwrap(), support::OCI_LAYER_GZIP)
        }
        Compression::Zstd => {
            let mut encoder = zstd::Encoder::new(Vec::new(), 3).unwrap();
            write_tar(&mut encoder);
            (encoder.finish().unwrap(), support::STEP_LAYER_ZSTD)
        }
        Compression::None => unreachable!("a bomb needs a compressor"),
    };
    Layer {
        media_type: media_type.to_string(),
        digest: support::sha256_digest(&bytes),
        bytes,
        // Only an image config with a platform lists diff_ids; these images have none.
        tar: Vec::new(),
    }
}

fn symlink(path: &str, target: &str) -> Entry {
    Entry::Symlink {
        path: path.to_string(),
        target: target.to_string(),
    }
}

fn hardlink(path: &str, target: &str) -> Entry {
    Entry::Hardlink {
        path: path.to_string(),
        target: target.to_string(),
    }
}

fn dir_with_mode(path: &str, mode: u32) -> Entry {
    Entry::Dir {
        path: path.to_string(),
        mode,
    }
}

// ---------------------------------------------------------------------------------------------
// Symlinks written through (containerd's breakout cases). The profile never follows a link: a
// parent that is a symlink refuses the layer, wherever it points.
// ---------------------------------------------------------------------------------------------

#[test]
fn write_through_absolute_symlink_is_refused() {
    let scene = Scene::new();
    scene.assert_entries_refused(
        &[
            symlink("escape", &scene.outside()),
            Entry::file("escape/pwned", "x"),
        ],
        "parent escape is a symbolic link",
    );
}

#[test]
fn write_through_up_and_out_relative_symlink_is_refused() {
    let scene = Scene::new();
    scene.assert_entries_refused(
        &[
            symlink("escape", UP_TO_OUTSIDE),
            Entry::file("escape/pwned", "x"),
        ],
        "parent escape is a symbolic link",
    );
}

#[test]
fn write_through_chained_symlinks_is_refused() {
    // Each link on its own points inside; only the chain leaves the layer.
    let scene = Scene::new();
    scene.assert_entries_refused(
        &[
            Entry::dir("a/"),
            Entry::dir("a/b/"),
            symlink("a/b/up", ".."),
            symlink("a/up", "b/up/.."),
            symlink("hop", "a/up/../../.."),
            symlink("escape", "hop/outside"),
            Entry::file("escape/pwned", "x"),
        ],
        "parent escape is a symbolic link",
    );
}

#[test]
fn write_through_relative_long_symlink_is_refused() {
    let scene = Scene::new();
    let target = format!("a/b/c/../../../{UP_TO_OUTSIDE}");
    scene.assert_entries_refused(
        &[
            Entry::dir("a/b/c/"),
            symlink("long", &target),
            Entry::file("long/pwned", "x"),
        ],
        "parent long is a symbolic link",
    );
}

#[test]
fn write_through_symlink_to_the_parent_directory_is_refused() {
    // `..` from the layer root is `staging/`: a write there would survive the layer's removal.
    let scene = Scene::new();
    scene.assert_entries_refused(
        &[symlink("parent", ".."), Entry::file("parent/pwned", "x")],
        "parent parent is a symbolic link",
    );
}

#[test]
fn write_through_slash_ended_symlink_name_is_refused() {
    // `escape/` names the link itself once normalised; the file below it is then under a link.
    let scene = Scene::new();
    scene.assert_entries_refused(
        &[
            symlink("escape/", &scene.outside()),
            Entry::file("escape/pwned", "x"),
        ],
        "parent escape is a symbolic link",
    );
}

#[test]
fn slash_ended_file_name_over_a_symlink_replaces_the_link() {
    // `open("link/")` would resolve the link; the profile strips the slash and replaces the link
    // with a regular file, so the layer is accepted and the outside file keeps its contents.
    let scene = Scene::new();
    let root = scene.assert_entries_contained(&[
        symlink("link", &format!("{}/secret.txt", scene.outside())),
        Entry::file("link/", "replaced"),
    ]);
    let meta = fs::symlink_metadata(root.join("link")).unwrap();
    assert!(meta.is_file(), "link is not a regular file: {meta:?}");
    assert_eq!(fs::read(root.join("link")).unwrap(), b"replaced");
}

#[test]
fn directory_entry_over_a_symlink_becomes_a_real_directory() {
    // The directory entry replaces the link; the file after it lands inside the layer.
    let scene = Scene::new();
    let root = scene.assert_entries_contained(&[
        symlink("d", &scene.outside()),
        Entry::dir("d/"),
        Entry::file("d/pwned", "inside"),
    ]);
    assert!(fs::symlink_metadata(root.join("d")).unwrap().is_dir());
    assert_eq!(fs::read(root.join("d/pwned")).unwrap(), b"inside");
}

#[test]
fn directory_entry_over_a_link_to_an_outside_directory_does_not_chmod_it() {
    // CVE-2026-33056 / CVE-2021-32760: the mode must be set on the layer's own directory, never
    // through the link; the sentinel directory keeps its 0o750.
    let scene = Scene::new();
    let root = scene.assert_entries_contained(&[
        symlink("d", &format!("{}/dir", scene.outside())),
        dir_with_mode("d", 0o777),
    ]);
    let outside_mode = fs::metadata(format!("{}/dir", scene.outside()))
        .unwrap()
        .mode();
    assert_eq!(outside_mode & 0o7777, SENTINEL_DIR_MODE);
    let meta = fs::symlink_metadata(root.join("d")).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o777, 0o777);
}

#[test]
fn symlink_over_a_directory_then_write_through_it_is_refused() {
    // CVE-2025-47290: a directory resolved for an earlier entry must not be reused once a link
    // replaced it.
    let scene = Scene::new();
    scene.assert_entries_refused(
        &[
            Entry::dir("d/"),
            Entry::file("d/first", "inside"),
            symlink("d", &scene.outside()),
            Entry::file("d/pwned", "x"),
        ],
        "parent d is a symbolic link",
    );
}

#[test]
fn symlink_over_a_directory_replaces_the_directory() {
    // On its own the link is content: accepted, kept as text, never followed.
    let scene = Scene::new();
    let root = scene.assert_entries_contained(&[
        Entry::dir("d/"),
        Entry::file("d/first", "inside"),
        symlink("d", &scene.outside()),
    ]);
    assert_eq!(
        fs::read_link(root.join("d")).unwrap(),
        Path::new(&scene.outside())
    );
}

#[test]
fn regular_file_over_a_symlink_replaces_the_link_and_does_not_write_through() {
    // RUSTSEC-2018-0002 / RUSTSEC-2021-0080: the link is unlinked, the file created afresh.
    let scene = Scene::new();
    let root = scene.assert_entries_contained(&[
        symlink("f", &format!("{}/secret.txt", scene.outside())),
        Entry::file("f", "replaced"),
    ]);
    assert!(fs::symlink_metadata(root.join("f")).unwrap().is_file());
    assert_eq!(fs::read(root.join("f")).unwrap(), b"replaced");
}

#[test]
fn regular_file_over_a_relative_symlink_out_does_not_write_through() {
    // Neither the contents nor the file's 0o777 may reach the link's target.
    let scene = Scene::new();
    let root = scene.assert_entries_contained(&[
        symlink("f", &format!("{UP_TO_OUTSIDE}/dir/inner.txt")),
        Entry::File {
            path: "f".into(),
            contents: b"replaced".to_vec(),
            mode: 0o777,
        },
    ]);
    assert!(fs::symlink_metadata(root.join("f")).unwrap().is_file());
}

#[test]
fn symlinks_pointing_outside_are_kept_as_text() {
    // Symlinks are content: the step's runtime resolves them, the extractor never does.
    let scene = Scene::new();
    let absolute = format!("{}/secret.txt", scene.outside());
    let root = scene.assert_entries_contained(&[
        symlink("absolute", &absolute),
        symlink("relative", UP_TO_OUTSIDE),
    ]);
    assert_eq!(
        fs::read_link(root.join("absolute")).unwrap(),
        Path::new(&absolute)
    );
    assert_eq!(
        fs::read_link(root.join("relative")).unwrap(),
        Path::new(UP_TO_OUTSIDE)
    );
}

// ---------------------------------------------------------------------------------------------
// Hard links: only to a regular file extracted earlier from the same layer.
// ---------------------------------------------------------------------------------------------

#[test]
fn hard_link_to_a_symlink_is_refused() {
    // Linking the symlink itself, or what it points to, would both reach outside.
    let scene = Scene::new();
    scene.assert_entries_refused(
        &[
            symlink("s", &format!("{}/secret.txt", scene.outside())),
            hardlink("h", "s"),
        ],
        "hard link target s is not a regular file",
    );
}

#[test]
fn hard_link_to_an_absolute_outside_path_is_refused() {
    // The absolute name is normalised into the layer, where no such file was extracted.
    let scene = Scene::new();
    scene.assert_entries_refused(
        &[hardlink("h", &format!("{}/secret.txt", scene.outside()))],
        "is not a regular file extracted earlier",
    );
}

#[test]
fn hard_link_to_a_relative_outside_path_is_refused() {
    let scene = Scene::new();
    let target = format!("{UP_TO_OUTSIDE}/secret.txt");
    scene.assert_entries_refused(
        &[hardlink("h", &target)],
        "the name contains a `..` component",
    );
}

#[test]
fn hard_link_through_a_symlinked_parent_is_refused() {
    // The target's name is that of a file extracted earlier, but a link now sits in its path.
    let scene = Scene::new();
    scene.assert_entries_refused(
        &[
            Entry::dir("d/"),
            Entry::file("d/secret.txt", "inside"),
            symlink("d", &scene.outside()),
            hardlink("h", "d/secret.txt"),
        ],
        "parent d is a symbolic link",
    );
}

#[test]
fn file_over_a_hard_link_does_not_change_the_linked_file() {
    // Replacing the link's name must unlink it, not truncate the shared inode.
    let scene = Scene::new();
    let root = scene.assert_entries_contained(&[
        Entry::file("original", "original"),
        hardlink("alias", "original"),
        Entry::file("alias", "replaced"),
    ]);
    assert_eq!(fs::read(root.join("original")).unwrap(), b"original");
    assert_eq!(fs::read(root.join("alias")).unwrap(), b"replaced");
}

// ---------------------------------------------------------------------------------------------
// Names: `..` refuses the layer; absolute names are normalised and stay inside.
// ---------------------------------------------------------------------------------------------

#[test]
fn dot_dot_name_climbing_out_is_refused() {
    let scene = Scene::new();
    let name = format!("{UP_TO_OUTSIDE}/pwned");
    scene.assert_entries_refused(
        &[Entry::file(&name, "x")],
        "the name contains a `..` component",
    );
}

#[test]
fn dot_dot_inside_a_name_is_refused_even_when_it_stays_inside() {
    // `a/../b` would stay inside, but the profile refuses any `..` rather than resolve it.
    let scene = Scene::new();
    scene.assert_entries_refused(
        &[Entry::dir("a/"), Entry::file("a/../b", "x")],
        "the name contains a `..` component",
    );
}

#[test]
fn entry_named_dot_dot_is_refused() {
    let scene = Scene::new();
    scene.assert_entries_refused(
        &[dir_with_mode("..", 0o777)],
        "the name contains a `..` component",
    );
}

#[test]
fn absolute_name_is_normalised_into_the_layer() {
    // Real images carry absolute names: `/etc/x` is the layer's `etc/x`.
    let scene = Scene::new();
    let root = scene.assert_entries_contained(&[Entry::file("/etc/x", "inside")]);
    assert_eq!(fs::read(root.join("etc/x")).unwrap(), b"inside");
}

#[test]
fn absolute_name_of_the_outside_tree_is_normalised_into_the_layer() {
    let scene = Scene::new();
    let name = format!("{}/secret.txt", scene.outside());
    let root = scene.assert_entries_contained(&[Entry::file(&name, "inside")]);
    let inside = root.join(name.trim_start_matches('/'));
    assert_eq!(fs::read(inside).unwrap(), b"inside");
}

#[test]
fn entry_with_an_empty_name_is_skipped() {
    // An empty name is the layer root: a file there cannot be written, so it is skipped.
    let scene = Scene::new();
    let tar = RawTar::new().member(b"", b'0', b"x").finish();
    let layer = raw_layer(tar);
    let root = scene.assert_contained(&layer);
    assert!(names_in(&root).is_empty());
}

#[test]
fn symlink_named_dot_is_skipped_and_the_root_stays_a_directory() {
    // `.` is the root: a link there would turn every later entry into a write through it.
    let scene = Scene::new();
    let root = scene.assert_entries_contained(&[
        symlink(".", &scene.outside()),
        Entry::file("./pwned", "inside"),
    ]);
    assert_eq!(fs::read(root.join("pwned")).unwrap(), b"inside");
}

#[test]
fn directory_named_dot_does_not_change_the_root() {
    let scene = Scene::new();
    scene.assert_entries_contained(&[dir_with_mode(".", 0o777)]);
}

// ---------------------------------------------------------------------------------------------
// PAX and GNU extension headers.
// ---------------------------------------------------------------------------------------------

/// The archive a reader sees if it steps over `smuggled` instead of the header's size: a link
/// to the sentinel and a file written through it.
fn smuggled_members(outside: &str) -> Vec<u8> {
    let link = RawHeader::ustar(b"smuggled", b'2', 0o777, 0).link_name(outside.as_bytes());
    RawTar::new()
        .header(link)
        .member(b"smuggled/pwned", b'0', b"x")
        .0
}

#[test]
fn pax_size_smaller_than_the_header_size_is_refused() {
    // CVE-2025-62518 class: the header says the data holds the smuggled members, PAX says the
    // file is empty. A reader trusting PAX would extract the smuggled link.
    let scene = Scene::new();
    let smuggled = smuggled_members(&scene.outside());
    let tar = RawTar::new()
        .pax(&[("size", b"0")])
        .member(b"carrier", b'0', &smuggled)
        .finish();
    let layer = raw_layer(tar);
    scene.assert_refused(
        &layer,
        ErrorCode::UnsafeLayer,
        "PAX size 0 disagrees with the header size",
    );
}

#[test]
fn pax_size_larger_than_the_header_size_is_refused() {
    // CVE-2026-33055 class: the header says empty, PAX says the smuggled members are data.
    let scene = Scene::new();
    let smuggled = smuggled_members(&scene.outside());
    let size = smuggled.len().to_string();
    let tar = RawTar::new()
        .pax(&[("size", size.as_bytes())])
        .member(b"carrier", b'0', b"")
        .data(&smuggled)
        .finish();
    let layer = raw_layer(tar);
    scene.assert_refused(
        &layer,
        ErrorCode::UnsafeLayer,
        "disagrees with the header size 0",
    );
}

#[test]
fn pax_size_that_is_not_a_number_is_an_integrity_failure() {
    // A corrupt extension header is a malformed stream, not a refused entry.
    let scene = Scene::new();
    let tar = RawTar::new()
        .pax(&[("size", b"12abc")])
        .member(b"carrier", b'0', b"x")
        .finish();
    let layer = raw_layer(tar);
    scene.assert_refused(&layer, ErrorCode::Integrity, "is not a number");
}

#[test]
fn pax_path_wins_over_an_escaping_ustar_name() {
    // PAX `path` replaces the ustar name; the escaping ustar name is never used.
    let scene = Scene::new();
    let ustar_name = format!("{UP_TO_OUTSIDE}/pwned");
    let tar = RawTar::new()
        .pax(&[("path", b"inside/pax-name")])
        .member(ustar_name.as_bytes(), b'0', b"inside")
        .finish();
    let layer = raw_layer(tar);
    let root = scene.assert_contained(&layer);
    assert_eq!(names_in(&root), ["inside"]);
    assert_eq!(fs::read(root.join("inside/pax-name")).unwrap(), b"inside");
}

#[test]
fn escaping_pax_path_over_a_harmless_ustar_name_is_refused() {
    // The PAX name is the one checked and used: a harmless ustar name cannot launder it.
    let scene = Scene::new();
    let pax_name = format!("{UP_TO_OUTSIDE}/pwned");
    let tar = RawTar::new()
        .pax(&[("path", pax_name.as_bytes())])
        .member(b"inside/ustar-name", b'0', b"x")
        .finish();
    let layer = raw_layer(tar);
    scene.assert_refused(
        &layer,
        ErrorCode::UnsafeLayer,
        "the name contains a `..` component",
    );
}

#[test]
fn pax_linkpath_wins_over_the_ustar_link_name_for_hard_links() {
    // The ustar link name names an earlier regular file; the PAX one climbs out and is refused.
    let scene = Scene::new();
    let pax_target = format!("{UP_TO_OUTSIDE}/secret.txt");
    let link = RawHeader::ustar(b"h", b'1', 0o644, 0).link_name(b"original");
    let tar = RawTar::new()
        .member(b"original", b'0', b"inside")
        .pax(&[("linkpath", pax_target.as_bytes())])
        .header(link)
        .finish();
    let layer = raw_layer(tar);
    scene.assert_refused(
        &layer,
        ErrorCode::UnsafeLayer,
        "hard link target \"../../../outside/secret.txt\" is refused",
    );
}

#[test]
fn pax_linkpath_with_a_nul_byte_is_refused_as_unsafe() {
    // Only PAX can carry a NUL in a name. The kernel would cut or refuse it; the layer is refused
    // as unsafe rather than reported as a failure of the cache's disk.
    let scene = Scene::new();
    let target = format!("{}/secret.txt\0ignored", scene.outside());
    let link = RawHeader::ustar(b"s", b'2', 0o777, 0).link_name(b"placeholder");
    let tar = RawTar::new()
        .pax(&[("linkpath", target.as_bytes())])
        .header(link)
        .finish();
    let layer = raw_layer(tar);
    scene.assert_refused(
        &layer,
        ErrorCode::UnsafeLayer,
        "the link target contains a NUL byte",
    );
}

#[test]
fn pax_header_over_the_one_mebibyte_limit_is_refused() {
    // CVE-2022-2879: the size is checked before any byte of the header is buffered.
    let scene = Scene::new();
    let comment = vec![b'a'; (1 << 20) + 1];
    let records = pax_records(&[("comment", &comment)]);
    let tar = RawTar::new()
        .member(b"PaxHeaders/huge", b'x', &records)
        .member(b"file", b'0', b"x")
        .finish();
    let layer = Layer::from_tar(tar, Compression::Gzip, support::OCI_LAYER_GZIP);
    scene.assert_refused(
        &layer,
        ErrorCode::UnsafeLayer,
        "bytes in a PAX extended header",
    );
}

#[test]
fn gnu_sparse_entry_with_a_huge_real_size_is_refused() {
    // CVE-2025-58183 class: a sparse map claiming an exabyte file from one data block.
    let scene = Scene::new();
    let mut header = RawHeader::gnu(b"sparse.bin", b'S', 0o644, BLOCK as u64);
    header.base256(386, 12, 1 << 60); // first map entry: offset
    header.octal(398, 12, BLOCK as u64); // first map entry: bytes
    header.base256(483, 12, (1 << 60) + BLOCK as u64); // real size
    let tar = RawTar::new().header(header).data(&[b'x'; BLOCK]).finish();
    let layer = raw_layer(tar);
    scene.assert_refused(
        &layer,
        ErrorCode::UnsafeLayer,
        "sparse files are not supported",
    );
}

#[test]
fn pax_sparse_map_with_a_huge_real_size_is_refused() {
    // The PAX 1.0 sparse format: the map is in records, the member is a regular file.
    let scene = Scene::new();
    let real_size = (1u64 << 60).to_string();
    let map = format!("{},{BLOCK}", 1u64 << 59);
    let tar = RawTar::new()
        .pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"sparse.bin"),
            ("GNU.sparse.realsize", real_size.as_bytes()),
            ("GNU.sparse.map", map.as_bytes()),
        ])
        .member(b"GNUSparseFile.0/sparse.bin", b'0', &[b'x'; BLOCK])
        .finish();
    let layer = raw_layer(tar);
    scene.assert_refused(
        &layer,
        ErrorCode::UnsafeLayer,
        "sparse files are not supported",
    );
}

// ---------------------------------------------------------------------------------------------
// Decompression bombs: the decompressed bytes are counted, whatever the headers claim.
// ---------------------------------------------------------------------------------------------

/// The decompressed-byte limit of the bomb tests, and the bombs' size: four times as much.
const BOMB_LIMIT: u64 = 64 << 20;
const BOMB_BYTES: u64 = 4 * BOMB_LIMIT;

fn bomb_scene() -> Scene {
    Scene::with_limits(Limits {
        max_total_bytes: BOMB_LIMIT,
        ..Default::default()
    })
}

#[test]
fn gzip_decompression_bomb_is_stopped_at_the_byte_limit() {
    let scene = bomb_scene();
    let layer = zero_bomb(BOMB_BYTES, Compression::Gzip);
    assert!(
        layer.size() < BOMB_BYTES / 500,
        "the bomb is {} bytes",
        layer.size()
    );
    scene.assert_refused(&layer, ErrorCode::UnsafeLayer, "decompressed bytes");
}

#[test]
fn zstd_decompression_bomb_is_stopped_at_the_byte_limit() {
    let scene = bomb_scene();
    let layer = zero_bomb(BOMB_BYTES, Compression::Zstd);
    assert!(
        layer.size() < BOMB_BYTES / 500,
        "the bomb is {} bytes",
        layer.size()
    );
    scene.assert_refused(&layer, ErrorCode::UnsafeLayer, "decompressed bytes");
}
