//! Layer extraction, specified by behaviour: each test builds a layer in memory, extracts it into
//! a staging directory next to a sentinel directory, and checks the files on disk.

mod fixtures;

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tar::{EntryType, Header};

use super::*;
use fixtures::*;

// ---- media types and compression -------------------------------------------------------------

#[test]
fn media_types_map_to_compressions() {
    assert_eq!(
        Compression::from_media_type(TAR).unwrap(),
        Compression::None
    );
    assert_eq!(
        Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar").unwrap(),
        Compression::None
    );
    assert_eq!(
        Compression::from_media_type(TAR_GZIP).unwrap(),
        Compression::Gzip
    );
    assert_eq!(
        Compression::from_media_type(DOCKER_GZIP).unwrap(),
        Compression::Gzip
    );
    assert_eq!(
        Compression::from_media_type(STEP_ZSTD).unwrap(),
        Compression::Zstd
    );
}

#[test]
fn unknown_media_type_is_unsupported() {
    let result = Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+encrypted");
    assert!(matches!(result, Err(ExtractError::UnsupportedMediaType(_))));
}

#[test]
fn plain_tar_round_trip_keeps_exec_bits() {
    let fixture = Fixture::new();
    let stats = fixture.extract(&step_layer(), TAR).unwrap();
    assert_step_layer_extracted(&fixture, &stats);
}

#[test]
fn gzip_layer_round_trip_keeps_exec_bits() {
    let fixture = Fixture::new();
    let stats = fixture.extract(&gzip(&step_layer()), DOCKER_GZIP).unwrap();
    assert_step_layer_extracted(&fixture, &stats);
}

#[test]
fn zstd_step_layer_round_trip_keeps_exec_bits() {
    let fixture = Fixture::new();
    let stats = fixture.extract(&zstd(&step_layer()), STEP_ZSTD).unwrap();
    assert_step_layer_extracted(&fixture, &stats);
}

#[test]
fn gzip_media_type_with_plain_bytes_is_a_compression_mismatch() {
    let fixture = Fixture::new();
    let result = fixture.extract(&step_layer(), TAR_GZIP);
    assert_compression_mismatch(result);
}

#[test]
fn zstd_media_type_with_gzip_bytes_is_a_compression_mismatch() {
    let fixture = Fixture::new();
    let result = fixture.extract(&gzip(&step_layer()), STEP_ZSTD);
    assert_compression_mismatch(result);
}

#[test]
fn plain_media_type_with_zstd_bytes_is_decompressed() {
    let fixture = Fixture::new();
    let stats = fixture.extract(&zstd(&step_layer()), TAR).unwrap();
    assert_step_layer_extracted(&fixture, &stats);
}

#[test]
fn corrupt_gzip_stream_is_malformed() {
    let fixture = Fixture::new();
    let mut blob = gzip(&step_layer());
    let middle = blob.len() / 2;
    blob[middle..].iter_mut().for_each(|b| *b = !*b);
    let result = fixture.extract(&blob, TAR_GZIP);
    assert_malformed(result);
}

#[test]
fn failing_blob_reader_is_an_io_error() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "reset by peer",
            ))
        }
    }
    let fixture = Fixture::new();
    let result = extract_layer(Broken, TAR, &fixture.root, &Limits::default());
    match result {
        Err(ExtractError::Io { entry, source, .. }) => {
            assert_eq!(entry, "layer blob");
            assert_eq!(source.kind(), io::ErrorKind::ConnectionReset);
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn name_component_longer_than_the_file_system_allows_is_the_layers_fault() {
    // Such a name used to fail as ENAMETOOLONG from the cache's disk: an I/O error, not the
    // layer's.
    let fixture = Fixture::new();
    let name = format!("dir/{}", "n".repeat(300));
    let layer = Layer::new()
        .pax(&[("path", name.as_bytes())])
        .file("x", 0o644, b"")
        .finish();
    assert_limit(fixture.extract(&layer, TAR), "one component");
    fixture.assert_outside_untouched();
}

#[test]
fn trailing_bytes_after_tar_end_are_read_to_eof() {
    let fixture = Fixture::new();
    let mut blob = step_layer();
    blob.extend_from_slice(&[0x5a; 10_000]);
    let mut reader = CountingReader {
        inner: &blob,
        read: 0,
    };
    extract_layer(&mut reader, TAR, &fixture.root, &Limits::default()).unwrap();
    assert_eq!(reader.read, blob.len() as u64);
}

#[test]
fn trailing_bytes_inside_gzip_stream_are_read_to_eof() {
    let fixture = Fixture::new();
    let mut tar = step_layer();
    tar.extend_from_slice(&[0; 100_000]);
    let blob = gzip(&tar);
    let mut reader = CountingReader {
        inner: &blob,
        read: 0,
    };
    extract_layer(&mut reader, TAR_GZIP, &fixture.root, &Limits::default()).unwrap();
    assert_eq!(reader.read, blob.len() as u64);
}

// ---- names -----------------------------------------------------------------------------------

#[test]
fn leading_slash_and_dot_slash_prefixes_are_normalised() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .dir("./", 0o755)
        .file("/abs/file", 0o644, b"a")
        .file("./rel/file", 0o644, b"r")
        .file(".//deep/./er//file", 0o644, b"d")
        .finish();
    let stats = fixture.extract(&layer, TAR).unwrap();
    assert_eq!(fs::read(fixture.path("abs/file")).unwrap(), b"a");
    assert_eq!(fs::read(fixture.path("rel/file")).unwrap(), b"r");
    assert_eq!(fs::read(fixture.path("deep/er/file")).unwrap(), b"d");
    assert_eq!((stats.entries, stats.skipped), (4, 0));
    fixture.assert_outside_untouched();
}

#[test]
fn dot_dot_component_is_refused() {
    let fixture = Fixture::new();
    let layer = Layer::new().file("a/../../outside/x", 0o644, b"x").finish();
    assert_unsafe(fixture.extract(&layer, TAR), "`..`");
    fixture.assert_outside_untouched();
}

#[test]
fn gnu_long_name_is_extracted() {
    let fixture = Fixture::new();
    let name = format!("{}/file", "d".repeat(150));
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = Header::new_gnu();
    header.set_size(1);
    header.set_mode(0o644);
    builder.append_data(&mut header, &name, &b"x"[..]).unwrap();
    fixture
        .extract(&builder.into_inner().unwrap(), TAR)
        .unwrap();
    assert_eq!(fs::read(fixture.path(&name)).unwrap(), b"x");
}

#[test]
fn pax_path_names_long_entries() {
    let fixture = Fixture::new();
    let name = format!("{}/file", "p".repeat(150));
    let layer = Layer::new()
        .pax(&[("path", name.as_bytes()), ("mtime", b"1600000000.5")])
        .file("short", 0o644, b"x")
        .finish();
    fixture.extract(&layer, TAR).unwrap();
    assert_eq!(fs::read(fixture.path(&name)).unwrap(), b"x");
    assert!(!fixture.path("short").exists());
    assert_eq!(
        fs::metadata(fixture.path(&name)).unwrap().mtime(),
        1_600_000_000
    );
}

#[test]
fn path_depth_limit_is_enforced() {
    let fixture = Fixture::new();
    let layer = Layer::new().file("a/b/c/d/e", 0o644, b"x").finish();
    let limits = Limits {
        max_depth: 4,
        ..Limits::default()
    };
    assert_limit(fixture.extract_with(&layer, TAR, &limits), "components");
}

#[test]
fn path_length_limit_is_enforced() {
    let fixture = Fixture::new();
    let layer = Layer::new().file("abcdefghij/klm", 0o644, b"x").finish();
    let limits = Limits {
        max_path_bytes: 10,
        ..Limits::default()
    };
    assert_limit(fixture.extract_with(&layer, TAR, &limits), "entry name");
}

#[test]
fn whiteout_files_are_extracted_as_regular_files() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .file("etc/.wh.old", 0o644, b"")
        .file(".wh..wh..opq", 0o644, b"")
        .finish();
    fixture.extract(&layer, TAR).unwrap();
    assert_eq!(fixture.kind("etc/.wh.old"), "file");
    assert_eq!(fixture.kind(".wh..wh..opq"), "file");
}

// ---- symlinks and escapes --------------------------------------------------------------------

#[test]
fn symlink_keeps_its_target_text() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .symlink("abs", "/etc/passwd")
        .symlink("rel", "../../outside/secret")
        .finish();
    fixture.extract(&layer, TAR).unwrap();
    assert_eq!(
        fs::read_link(fixture.path("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        fs::read_link(fixture.path("rel")).unwrap(),
        Path::new("../../outside/secret")
    );
    fixture.assert_outside_untouched();
}

#[test]
fn symlink_target_with_a_nul_byte_is_refused() {
    // Regression: the target reached symlinkat(2), whose EINVAL came back as an I/O error.
    let fixture = Fixture::new();
    let layer = Layer::new()
        .pax(&[("linkpath", b"/etc\0/passwd")])
        .symlink("s", "placeholder")
        .finish();
    assert_unsafe(
        fixture.extract(&layer, TAR),
        "the link target contains a NUL byte",
    );
    fixture.assert_outside_untouched();
}

#[test]
fn symlink_parent_pointing_outside_is_refused() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .symlink("a", fixture.outside_str())
        .file("a/x", 0o644, b"escaped")
        .finish();
    assert_unsafe(fixture.extract(&layer, TAR), "parent a is a symbolic link");
    fixture.assert_outside_untouched();
}

#[test]
fn symlink_parent_pointing_up_is_refused() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .dir("d", 0o755)
        .symlink("d/up", "../../outside")
        .file("d/up/x", 0o644, b"escaped")
        .finish();
    assert_unsafe(
        fixture.extract(&layer, TAR),
        "parent d/up is a symbolic link",
    );
    fixture.assert_outside_untouched();
}

#[test]
fn file_under_a_regular_file_is_refused() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .file("f", 0o644, b"")
        .file("f/x", 0o644, b"")
        .finish();
    assert_unsafe(fixture.extract(&layer, TAR), "parent f is not a directory");
}

#[test]
fn regular_file_replaces_an_earlier_symlink() {
    let fixture = Fixture::new();
    let secret = fixture.outside.join("secret");
    let layer = Layer::new()
        .symlink("f", secret.to_str().unwrap())
        .file("f", 0o644, b"new")
        .finish();
    fixture.extract(&layer, TAR).unwrap();
    assert_eq!(fixture.kind("f"), "file");
    assert_eq!(fs::read(fixture.path("f")).unwrap(), b"new");
    fixture.assert_outside_untouched();
}

#[test]
fn regular_file_replaces_an_earlier_directory_tree() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .dir("d", 0o500)
        .file("d/inner", 0o444, b"old")
        .file("d", 0o644, b"now a file")
        .finish();
    fixture.extract(&layer, TAR).unwrap();
    assert_eq!(fs::read(fixture.path("d")).unwrap(), b"now a file");
}

#[test]
fn directory_entry_over_symlink_leaves_outside_mode_unchanged() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .symlink("d", fixture.outside_str())
        .dir("d", 0o777)
        .finish();
    fixture.extract(&layer, TAR).unwrap();
    assert_eq!(fixture.kind("d"), "dir");
    assert_eq!(mode_of(&fixture.path("d")), 0o777);
    assert_eq!(mode_of(&fixture.outside), 0o750);
    fixture.assert_outside_untouched();
}

// ---- hard links ------------------------------------------------------------------------------

#[test]
fn hard_link_shares_the_extracted_file() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .file("bin/tool", 0o755, b"binary")
        .hard_link("bin/alias", "./bin/tool")
        .finish();
    fixture.extract(&layer, TAR).unwrap();
    let tool = fs::metadata(fixture.path("bin/tool")).unwrap();
    let alias = fs::metadata(fixture.path("bin/alias")).unwrap();
    assert_eq!((tool.ino(), tool.nlink()), (alias.ino(), 2));
}

#[test]
fn hard_link_to_a_path_outside_is_refused() {
    let fixture = Fixture::new();
    let layer = Layer::new().hard_link("l", "../outside/secret").finish();
    assert_unsafe(fixture.extract(&layer, TAR), "`..`");

    let absolute = fixture.outside.join("secret");
    let layer = Layer::new()
        .hard_link("l2", absolute.to_str().unwrap())
        .finish();
    assert_unsafe(
        fixture.extract(&layer, TAR),
        "not a regular file extracted earlier",
    );
    fixture.assert_outside_untouched();
}

#[test]
fn hard_link_to_a_symlink_is_refused() {
    let fixture = Fixture::new();
    let secret = fixture.outside.join("secret");
    let layer = Layer::new()
        .symlink("s", secret.to_str().unwrap())
        .hard_link("l", "s")
        .finish();
    assert_unsafe(
        fixture.extract(&layer, TAR),
        "not a regular file extracted earlier",
    );
    fixture.assert_outside_untouched();
}

#[test]
fn hard_link_to_a_file_later_replaced_by_a_symlink_is_refused() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .file("f", 0o644, b"x")
        .symlink("f", fixture.outside_str())
        .hard_link("l", "f")
        .finish();
    assert_unsafe(
        fixture.extract(&layer, TAR),
        "not a regular file extracted earlier",
    );
}

#[test]
fn hard_link_to_a_missing_file_is_refused() {
    let fixture = Fixture::new();
    let layer = Layer::new().hard_link("l", "nowhere").finish();
    assert_unsafe(
        fixture.extract(&layer, TAR),
        "not a regular file extracted earlier",
    );
}

// ---- modes and entry kinds -------------------------------------------------------------------

#[test]
fn setuid_setgid_and_sticky_bits_are_dropped() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .file("suid", 0o4755, b"")
        .file("sgid", 0o2755, b"")
        .dir("tmp", 0o1777)
        .finish();
    fixture.extract(&layer, TAR).unwrap();
    assert_eq!(mode_of(&fixture.path("suid")), 0o555);
    assert_eq!(mode_of(&fixture.path("sgid")), 0o555);
    assert_eq!(mode_of(&fixture.path("tmp")), 0o777);
}

#[test]
fn files_are_stored_read_only() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .file("writable", 0o666, b"x")
        .file("script", 0o775, b"x")
        .finish();
    fixture.extract(&layer, TAR).unwrap();
    assert_eq!(mode_of(&fixture.path("writable")), 0o444);
    assert_eq!(mode_of(&fixture.path("script")), 0o555);
}

#[test]
fn directory_mode_always_keeps_owner_access() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .dir("locked", 0o500)
        .file("locked/inside", 0o400, b"x")
        .dir("open", 0o055)
        .finish();
    fixture.extract(&layer, TAR).unwrap();
    assert_eq!(mode_of(&fixture.path("locked")), 0o700);
    assert_eq!(mode_of(&fixture.path("open")), 0o755);
    assert_eq!(mode_of(&fixture.path("locked/inside")), 0o400);
}

#[test]
fn implicit_parent_directories_get_mode_0755() {
    let fixture = Fixture::new();
    let layer = Layer::new().file("a/b/c", 0o644, b"").finish();
    fixture.extract(&layer, TAR).unwrap();
    assert_eq!(mode_of(&fixture.path("a")), 0o755);
    assert_eq!(mode_of(&fixture.path("a/b")), 0o755);
}

#[test]
fn device_and_fifo_entries_are_skipped() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .entry(EntryType::Char, "dev/null", 0o666, None, b"")
        .entry(EntryType::Block, "dev/sda", 0o660, None, b"")
        .entry(EntryType::Fifo, "pipe", 0o644, None, b"")
        .file("kept", 0o644, b"")
        .finish();
    let stats = fixture.extract(&layer, TAR).unwrap();
    assert_eq!((stats.entries, stats.files, stats.skipped), (4, 1, 3));
    assert!(!fixture.path("dev/null").exists());
    assert!(!fixture.path("pipe").exists());
}

#[test]
fn gnu_sparse_entry_is_refused() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .entry(EntryType::GNUSparse, "sparse", 0o644, None, b"")
        .finish();
    assert_unsafe(fixture.extract(&layer, TAR), "sparse");
}

#[test]
fn pax_sparse_records_are_refused() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .pax(&[("GNU.sparse.major", b"1"), ("GNU.sparse.minor", b"0")])
        .file("GNUSparseFile.0/f", 0o644, b"")
        .finish();
    assert_unsafe(fixture.extract(&layer, TAR), "sparse");
}

// ---- limits and malformed streams ------------------------------------------------------------

#[test]
fn gzip_bomb_is_stopped_by_max_total_bytes() {
    let fixture = Fixture::new();
    let zeros = vec![0; 16 << 20];
    let blob = gzip(&Layer::new().file("bomb", 0o644, &zeros).finish());
    let limits = Limits {
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    assert_limit(
        fixture.extract_with(&blob, TAR_GZIP, &limits),
        "decompressed bytes",
    );
    assert!(fs::metadata(fixture.path("bomb")).unwrap().len() <= 1 << 20);
}

#[test]
fn padding_after_tar_end_counts_against_max_total_bytes() {
    let fixture = Fixture::new();
    let mut tar = step_layer();
    tar.resize(tar.len() + (4 << 20), 0);
    let limits = Limits {
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    assert_limit(
        fixture.extract_with(&gzip(&tar), TAR_GZIP, &limits),
        "decompressed bytes",
    );
}

#[test]
fn entry_count_limit_is_enforced() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .file("1", 0o644, b"")
        .file("2", 0o644, b"")
        .file("3", 0o644, b"")
        .finish();
    let limits = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    assert_limit(fixture.extract_with(&layer, TAR, &limits), "entries");
}

#[test]
fn oversized_pax_header_is_refused_before_it_is_read() {
    let fixture = Fixture::new();
    let comment = vec![b'c'; 2000];
    let layer = Layer::new()
        .pax(&[("comment", &comment)])
        .file("f", 0o644, b"")
        .finish();
    let limits = Limits {
        max_pax_header_bytes: 1024,
        ..Limits::default()
    };
    assert_limit(fixture.extract_with(&layer, TAR, &limits), "PAX");
}

#[test]
fn pax_size_disagreeing_with_header_is_refused() {
    let fixture = Fixture::new();
    let layer = Layer::new()
        .pax(&[("size", b"0")])
        .file("f", 0o644, &[b'x'; 1024])
        .finish();
    assert_unsafe(fixture.extract(&layer, TAR), "PAX size 0 disagrees");
}

#[test]
fn truncated_file_data_is_malformed() {
    let fixture = Fixture::new();
    let mut layer = Layer::new().file("f", 0o644, &[b'x'; 4096]).finish();
    layer.truncate(512 + 1000);
    let result = fixture.extract(&layer, TAR);
    assert_malformed(result);
}

#[test]
fn extension_header_without_a_member_is_malformed() {
    let fixture = Fixture::new();
    let layer = Layer::new().pax(&[("path", b"orphan")]).finish();
    let result = fixture.extract(&layer, TAR);
    assert_malformed(result);
}

#[test]
fn pre_posix_directory_with_trailing_slash_is_a_directory() {
    let fixture = Fixture::new();
    let mut header = raw_header(EntryType::Regular, "olddir/", 0o755, 0);
    header.as_old_mut().linkflag = [0];
    header.set_cksum();
    let layer = Layer::new().header(&header, b"").finish();
    fixture.extract(&layer, TAR).unwrap();
    assert_eq!(fixture.kind("olddir"), "dir");
}
