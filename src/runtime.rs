//! The library's one tokio runtime, and cancellation.
//!
//! The runtime is created on first use and never dropped. Every network and extraction task runs
//! on its threads, which block SIGPIPE: a registry that resets a connection while the HTTP stack
//! writes to it would otherwise raise SIGPIPE, and a Go or C host dies of it. Callers on any
//! thread wait for a result on a channel, so the blocking API also works from threads that run
//! another runtime.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

const WORKER_THREADS: usize = 2;
const MAX_BLOCKING_THREADS: usize = 16;

struct Shared {
    runtime: Runtime,
    pid: u32,
}

static SHARED: OnceLock<std::result::Result<Shared, String>> = OnceLock::new();

/// A token that cancels the operations it is given to. Cloning shares the token.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(CancellationToken);

impl CancelToken {
    /// A new, untriggered token.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancel every operation that holds this token, now and later.
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// True once [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves when the token is triggered.
    pub async fn cancelled(&self) {
        self.0.cancelled().await
    }
}

/// Run `future` on the library's runtime and wait for its result on this thread. When `cancel`
/// fires first, the future is dropped and `on_cancel()` is returned.
pub fn block_on<T, F>(
    future: F,
    cancel: Option<&CancelToken>,
    on_cancel: impl FnOnce() -> Error,
) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    let runtime = runtime()?;
    let cancel = cancel.cloned().unwrap_or_default();
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);

    runtime.spawn(async move {
        // Biased, cancel first: a token triggered before the call always cancels it.
        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            outcome = future => Some(outcome),
        };
        let _ = sender.send(outcome);
    });

    match receiver.recv() {
        Ok(Some(outcome)) => outcome,
        Ok(None) => Err(on_cancel()),
        Err(_) => Err(Error::Panic(
            "the runtime task ended without a result".into(),
        )),
    }
}

/// The shared runtime, created on first use. Fails in a child process after `fork()`, where
/// the runtime's threads do not exist.
fn runtime() -> Result<&'static Runtime> {
    let shared = SHARED.get_or_init(|| build().map_err(|e| e.to_string()));
    let shared = shared.as_ref().map_err(|e| Error::Io {
        step: "starting the runtime",
        path: String::new(),
        source: std::io::Error::other(e.clone()),
    })?;

    if shared.pid != std::process::id() {
        return Err(Error::InvalidArgument {
            name: "process",
            reason: "the library was used before fork(); a child process cannot use it".into(),
        });
    }
    Ok(&shared.runtime)
}

fn build() -> std::io::Result<Shared> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_name("oci-cache")
        .on_thread_start(block_sigpipe)
        .enable_io()
        .enable_time()
        .build()?;
    Ok(Shared {
        runtime,
        pid: std::process::id(),
    })
}

/// Block SIGPIPE on the calling thread, so that a write to a reset socket returns EPIPE
/// instead of killing the process.
fn block_sigpipe() {
    // SAFETY: the signal set is a local value initialised by sigemptyset before use, and
    // pthread_sigmask only changes the calling thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_threads_block_sigpipe() {
        let blocked = block_on(
            async {
                // SAFETY: reads the calling thread's mask into a zeroed local set.
                let blocked = unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
                    libc::sigismember(&set, libc::SIGPIPE)
                };
                Ok(blocked)
            },
            None,
            || Error::Closed,
        )
        .unwrap();
        assert_eq!(blocked, 1);
    }

    #[test]
    fn a_token_triggered_before_the_call_always_cancels_it() {
        let token = CancelToken::new();
        token.cancel();
        for _ in 0..100 {
            let outcome: Result<()> = block_on(async { Ok(()) }, Some(&token), || Error::Closed);
            assert!(matches!(outcome, Err(Error::Closed)));
        }
    }

    #[test]
    fn cancel_returns_promptly() {
        let token = CancelToken::new();
        let trigger = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            trigger.cancel();
        });
        let outcome: Result<()> = block_on(
            async {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                Ok(())
            },
            Some(&token),
            || Error::Cancelled {
                reference: "x".into(),
            },
        );
        assert!(matches!(outcome, Err(Error::Cancelled { .. })));
    }
}
