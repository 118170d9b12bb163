//! What the async tests share: unique names, deterministic payloads and
//! sizes, and a future that is dropped at a chosen await point.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// Longest a single step may take before a test fails (never a
/// performance assertion).
pub const STEP: Duration = Duration::from_secs(60);

/// A name no other test (or test run) uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "nat-{tag}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deterministic payload: message `seq` of `len` bytes.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

/// A small deterministic generator (xorshift), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Mostly small sizes, some around buffer edges, a few of several MiB.
    pub fn size(&mut self) -> usize {
        match self.below(100) {
            0..=59 => self.below(300) as usize,
            60..=89 => (self.below(70_000)) as usize,
            90..=97 => (60_000 + self.below(300_000)) as usize,
            _ => (1 << 20) + self.below(3 << 20) as usize,
        }
    }
}

/// Polls `fut` up to `polls + 1` times (re-polling at once after each
/// `Pending`), then drops it: `None` if it was cancelled that way. Each poll
/// that returns `Pending` is an await point the future was suspended at, so
/// varying `polls` cancels at every one.
pub struct CancelAfter<F> {
    fut: Option<Pin<Box<F>>>,
    polls: u32,
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready(None);
        };
        match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending if self.polls == 0 => {
                self.fut = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                // Polled again soon whether or not the future's event came.
                self.polls -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

/// See [`CancelAfter`].
pub fn cancel_after<F: Future>(polls: u32, fut: F) -> CancelAfter<F> {
    CancelAfter {
        fut: Some(Box::pin(fut)),
        polls,
    }
}

/// Open descriptors of this process (Linux).
#[cfg(target_os = "linux")]
pub fn handles() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Open handles of this process (Windows).
#[cfg(windows)]
#[allow(unsafe_code)]
pub fn handles() -> usize {
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, GetProcessHandleCount};
    let mut n = 0u32;
    // SAFETY: the pseudo-handle of this process and a valid out-pointer.
    let ok = unsafe { GetProcessHandleCount(GetCurrentProcess(), &mut n) };
    assert_ne!(ok, 0, "GetProcessHandleCount failed");
    n as usize
}

/// `fut`, or a panic naming `what` if it has not finished within twice
/// [`STEP`]: a hang becomes a failure that says where it hung (longer than
/// the library's own timeouts in these tests, which are `STEP`, so that
/// their errors are what a test reports).
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    let limit = 2 * STEP;
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not finished within {limit:?}"),
    }
}

/// A pipe listener and a connected client/server pair on a fresh name, the
/// client in `mode`, connect bounded by [`STEP`].
pub async fn pipe_pair(
    opts: &named_ipc::tokio::ListenerOptions,
    mode: named_ipc::tokio::PipeMode,
) -> (
    named_ipc::tokio::PipeListener,
    named_ipc::tokio::PipeStream,
    named_ipc::tokio::PipeStream,
) {
    use named_ipc::tokio::{ConnectOptions, PipeListener, PipeStream};
    let name = unique("pair");
    let l = PipeListener::bind_with(&name, opts).unwrap();
    let mut co = ConnectOptions::new();
    co.mode(mode).timeout(STEP);
    let (c, s) = tokio::join!(PipeStream::connect_with(&name, &co), l.accept());
    (l, c.unwrap(), s.unwrap())
}
