//! Layer extraction: whatever the blob holds, `extract_layer` returns (an error is fine), never
//! panics, and creates nothing outside the directory it was given.
//!
//! The first input byte chooses the media type (plain tar, gzip, zstd); the rest is the blob.
//! Each run extracts into `<sandbox>/a/b/c/root`, a fresh directory, then checks that every
//! level above it still holds only the next level, with its mode unchanged, and removes `root`.
//! A file that escaped by up to four `..` would be found there. The sandbox lives in `$TMPDIR`
//! (`scripts/fuzz` points it at a private directory that it removes afterwards).

#![no_main]

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cap_std::fs::Dir;
use libfuzzer_sys::fuzz_target;
use oci_cache::extract::{extract_layer, Limits};

const MEDIA_TYPES: [&str; 3] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.gitlab.step.layer.v1.tar+zstd",
];

/// The directories between the sandbox and the extraction root.
const LEVELS: [&str; 3] = ["a", "b", "c"];
const LEVEL_MODE: u32 = 0o750;

/// Small limits, so that one run stays fast and bombs hit them early.
fn limits() -> Limits {
    Limits {
        max_entries: 256,
        max_total_bytes: 4 << 20,
        max_path_bytes: 512,
        max_depth: 32,
        max_pax_header_bytes: 64 << 10,
    }
}

struct Sandbox {
    /// Kept so the directory lives as long as the process.
    _dir: tempfile::TempDir,
    /// The sandbox and each level below it, outermost first.
    levels: Vec<PathBuf>,
    /// Where each run extracts.
    root: PathBuf,
}

impl Sandbox {
    fn get() -> &'static Sandbox {
        static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
        SANDBOX.get_or_init(Sandbox::create)
    }

    fn create() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("oci-cache-fuzz-extract-")
            .tempdir()
            .expect("creating the sandbox");
        let mut levels = vec![dir.path().to_path_buf()];
        for name in LEVELS {
            let level = levels.last().unwrap().join(name);
            fs::DirBuilder::new()
                .mode(LEVEL_MODE)
                .create(&level)
                .expect("creating a sandbox level");
            levels.push(level);
        }
        let root = levels.last().unwrap().join("root");
        Sandbox {
            _dir: dir,
            levels,
            root,
        }
    }

    /// Every level holds exactly the next one (the innermost holds `root`), as a real directory.
    fn assert_untouched(&self) {
        let below = self.levels.iter().skip(1).chain([&self.root]);
        for (level, child) in self.levels.iter().zip(below) {
            let names = names_in(level);
            let expected = child.file_name().unwrap().to_string_lossy();
            assert_eq!(
                names,
                [expected.as_ref()],
                "{} gained entries",
                level.display()
            );

            let meta = fs::symlink_metadata(child).expect("reading a sandbox level");
            assert!(
                meta.is_dir(),
                "{} is no longer a directory",
                child.display()
            );
            if child != &self.root {
                assert_eq!(
                    meta.mode() & 0o7777,
                    LEVEL_MODE,
                    "{} changed mode",
                    child.display()
                );
            }
        }
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("listing a sandbox level")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, blob)) = data.split_first() else {
        return;
    };
    let media_type = MEDIA_TYPES[usize::from(selector) % MEDIA_TYPES.len()];
    let sandbox = Sandbox::get();

    fs::create_dir(&sandbox.root).expect("creating the extraction root");
    let root = Dir::open_ambient_dir(&sandbox.root, cap_std::ambient_authority())
        .expect("opening the extraction root");
    let _ = extract_layer(blob, media_type, &root, &limits());
    drop(root);

    sandbox.assert_untouched();
    fs::remove_dir_all(&sandbox.root).expect("removing the extraction root");
});
