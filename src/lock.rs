//! One download per layer digest, across threads and processes, without a daemon.
//!
//! A fetch that misses a layer first takes the digest's in-process flight (an async mutex shared
//! by every handle of the process), then the digest's lock file in `<cache>/locks/` with
//! `flock(2)`. Whoever holds both downloads; everyone else waits without polling: an async mutex
//! wakes its next waiter, and a blocked `flock` returns when the holder releases it. The kernel
//! releases a `flock` when its holder's file is closed, so a holder killed with SIGKILL frees
//! the digest at once, and the next waiter takes over. After taking the lock, a fetch looks for
//! the layer again: it is usually there, published by the holder it waited for.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::error::{Error, Result};

type Flight = tokio::sync::Mutex<()>;

/// The flights in progress in this process, by lock file path.
static FLIGHTS: OnceLock<Mutex<HashMap<PathBuf, Weak<Flight>>>> = OnceLock::new();

/// Exclusive right to download one layer digest into one cache directory. Dropping it releases
/// the lock for the other threads and processes.
pub struct LayerLock {
    _file: File,
    _flight: tokio::sync::OwnedMutexGuard<()>,
}

/// Wait for the right to download the layer whose lock file is `path`. Cancelling the future
/// stops the wait at once; a `flock` already blocked in the kernel then completes on its own
/// thread and releases the lock immediately.
pub async fn lock_layer(path: PathBuf) -> Result<LayerLock> {
    let flight = flight(&path).lock_owned().await;

    let file = tokio::task::spawn_blocking(move || lock_file(&path))
        .await
        .map_err(|e| Error::Panic(format!("layer lock task: {e}")))??;
    Ok(LayerLock {
        _file: file,
        _flight: flight,
    })
}

/// The in-process flight of `path`, shared while anyone holds or waits for it.
fn flight(path: &Path) -> Arc<Flight> {
    let flights = FLIGHTS.get_or_init(Mutex::default);
    let mut flights = flights.lock().unwrap_or_else(|e| e.into_inner());

    if let Some(flight) = flights.get(path).and_then(Weak::upgrade) {
        return flight;
    }
    flights.retain(|_, flight| flight.strong_count() > 0);
    let flight = Arc::new(Flight::default());
    flights.insert(path.to_path_buf(), Arc::downgrade(&flight));
    flight
}

/// Take the lock file `path` if nobody holds it, without waiting: Some while it is held.
/// Used to tell debris of dead processes from work in progress.
pub fn try_lock_file(path: &Path) -> Option<File> {
    let file = open_lock_file(path).ok()?;

    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    let status = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    (status == 0).then_some(file)
}

/// A shared `flock` on a layer's pin file: while any process holds one, pruning leaves the
/// layer alone. Results hold the pins of their layers until they are dropped.
#[derive(Debug)]
pub struct LayerPin {
    _file: File,
}

/// Pin the layer whose pin file is `path` if that can be done without waiting: None when a
/// prune holds it (the caller then waits with [`pin_layer`] on a blocking thread).
pub fn try_pin_layer(path: &Path) -> Result<Option<LayerPin>> {
    let file = open_lock_file(path).map_err(Error::io("opening layer pin", path))?;

    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    let status = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    Ok((status == 0).then_some(LayerPin { _file: file }))
}

/// Pin the layer whose pin file is `path`: a shared lock, taken at once unless a prune holds
/// it exclusively while removing that layer, in which case this waits until the prune is done
/// (the caller then finds the layer gone). Blocks only for that moment.
pub fn pin_layer(path: &Path) -> Result<LayerPin> {
    let file = flock_blocking(path, libc::LOCK_SH, "pinning layer")?;
    Ok(LayerPin { _file: file })
}

/// Open `path` and block until this process holds an exclusive `flock` on it.
fn lock_file(path: &Path) -> Result<File> {
    flock_blocking(path, libc::LOCK_EX, "locking layer")
}

/// Open (or create) `path` and block until this process holds a `flock` of kind `operation`
/// (`LOCK_SH` or `LOCK_EX`) on it; `step` names the lock in an error.
pub(crate) fn flock_blocking(
    path: &Path,
    operation: libc::c_int,
    step: &'static str,
) -> Result<File> {
    let file = open_lock_file(path).map_err(Error::io("opening lock file", path))?;

    loop {
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        let status = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if status == 0 {
            return Ok(file);
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::io(step, path)(error));
        }
    }
}

/// Open (or create, empty) the lock file `path` for `flock`.
fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_waits_until_the_first_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let runtime = tokio::runtime::Runtime::new().unwrap();

        runtime.block_on(async {
            let first = lock_layer(path.clone()).await.unwrap();
            let waiter = tokio::spawn(lock_layer(path.clone()));
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            assert!(!waiter.is_finished());

            drop(first);
            let second = tokio::time::timeout(std::time::Duration::from_secs(5), waiter);
            assert!(second.await.is_ok(), "the waiter took the lock");
        });
    }

    #[test]
    fn lock_file_excludes_other_open_files_of_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.lock");
        let held = lock_file(&path).unwrap();

        let other = File::options().write(true).open(&path).unwrap();
        // SAFETY: a non-blocking flock on a descriptor owned by this test.
        let status = unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(
            status, -1,
            "a second open file description must not get the lock"
        );
        drop(held);
    }
}
