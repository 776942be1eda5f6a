//! GNU tar as the reference extractor, and a comparison of two extracted trees.

use std::fs::{self, Metadata};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;

/// Extracts `tar` (uncompressed) into `dir` with GNU tar, without restoring owners.
///
/// Panics with tar's messages if it exits with an error.
pub fn gnu_tar_extract(tar: &[u8], dir: &Path) {
    if let Err(messages) = gnu_tar_try_extract(tar, dir) {
        panic!(
            "GNU tar failed to extract into {}: {messages}",
            dir.display()
        );
    }
}

/// Like [`gnu_tar_extract`], but returns tar's messages instead of panicking when it exits
/// with an error; for archives that GNU tar extracts only in part (`..` members, for example).
pub fn gnu_tar_try_extract(tar: &[u8], dir: &Path) -> Result<(), String> {
    let mut child = Command::new("tar")
        .args(["-x", "-f", "-", "--no-same-owner", "-C"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("starting GNU tar: {err}"));
    let mut stdin = child.stdin.take().expect("tar's stdin is piped");

    // Feed stdin from another thread: tar may fill its stderr pipe before reading all input.
    // A write error means tar stopped reading; its exit status says why.
    let output = thread::scope(|scope| {
        scope.spawn(move || {
            let _ = stdin.write_all(tar);
        });
        child.wait_with_output()
    });
    let output = output.unwrap_or_else(|err| panic!("waiting for GNU tar: {err}"));

    if output.status.success() {
        return Ok(());
    }
    let messages = String::from_utf8_lossy(&output.stderr);
    Err(format!("{} ({})", messages.trim(), output.status))
}

/// Asserts that trees `a` and `b` hold the same names with the same file types, file contents,
/// execute bits (`mode & 0o111`, files and directories) and symlink targets.
///
/// Panics describing the first difference. Owners, times and other mode bits are not compared.
pub fn assert_same_tree(a: &Path, b: &Path) {
    if let Err(difference) = compare_dirs(a, b, Path::new("")) {
        panic!(
            "trees {} and {} differ: {difference}",
            a.display(),
            b.display()
        );
    }
}

fn compare_dirs(a: &Path, b: &Path, relative: &Path) -> Result<(), String> {
    let a_names = sorted_names(&a.join(relative));
    let b_names = sorted_names(&b.join(relative));
    if let Some(name) = a_names.iter().find(|name| !b_names.contains(name)) {
        return Err(format!(
            "{} is only in the first tree",
            relative.join(name).display()
        ));
    }
    if let Some(name) = b_names.iter().find(|name| !a_names.contains(name)) {
        return Err(format!(
            "{} is only in the second tree",
            relative.join(name).display()
        ));
    }

    for name in &a_names {
        compare_entries(a, b, &relative.join(name))?;
    }
    Ok(())
}

fn compare_entries(a: &Path, b: &Path, relative: &Path) -> Result<(), String> {
    let (a_path, b_path) = (a.join(relative), b.join(relative));
    let (a_meta, b_meta) = (metadata(&a_path), metadata(&b_path));
    let shown = relative.display();

    let (a_kind, b_kind) = (kind(&a_meta), kind(&b_meta));
    if a_kind != b_kind {
        return Err(format!(
            "{shown} is a {a_kind} in the first tree, a {b_kind} in the second"
        ));
    }

    let (a_exec, b_exec) = (exec_bits(&a_meta), exec_bits(&b_meta));
    if a_kind != "symlink" && a_exec != b_exec {
        return Err(format!(
            "{shown}: execute bits {a_exec:03o} != {b_exec:03o}"
        ));
    }

    match a_kind {
        "directory" => compare_dirs(a, b, relative),
        "file" => compare_contents(&a_path, &b_path, &shown.to_string()),
        "symlink" => {
            let (a_target, b_target) = (read_link(&a_path), read_link(&b_path));
            if a_target != b_target {
                return Err(format!("{shown}: symlink to {a_target:?} != {b_target:?}"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn compare_contents(a: &Path, b: &Path, shown: &str) -> Result<(), String> {
    let (a_bytes, b_bytes) = (read(a), read(b));
    if a_bytes == b_bytes {
        return Ok(());
    }
    let first_difference = a_bytes
        .iter()
        .zip(&b_bytes)
        .position(|(x, y)| x != y)
        .unwrap_or(a_bytes.len().min(b_bytes.len()));
    Err(format!(
        "{shown}: contents differ at byte {first_difference} (sizes {} and {})",
        a_bytes.len(),
        b_bytes.len()
    ))
}

fn kind(meta: &Metadata) -> &'static str {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_dir() {
        "directory"
    } else if file_type.is_file() {
        "file"
    } else {
        "special file"
    }
}

fn exec_bits(meta: &Metadata) -> u32 {
    meta.permissions().mode() & 0o111
}

fn sorted_names(dir: &Path) -> Vec<String> {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|err| panic!("listing {}: {err}", dir.display()));
    let mut names: Vec<String> = entries
        .map(|entry| {
            let entry = entry.unwrap_or_else(|err| panic!("listing {}: {err}", dir.display()));
            entry.file_name().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    names
}

fn metadata(path: &Path) -> Metadata {
    fs::symlink_metadata(path).unwrap_or_else(|err| panic!("inspecting {}: {err}", path.display()))
}

fn read_link(path: &Path) -> PathBuf {
    fs::read_link(path).unwrap_or_else(|err| panic!("reading link {}: {err}", path.display()))
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}
