//! Shared helpers: unique names, helper processes with readiness lines and
//! watchdogs. No helper sleeps to wait for another process; every blocking step
//! has a deadline that fails the test (and kills the child) instead of hanging.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Longest a single step may take before the test fails: generous, because CI
/// machines are slow and Wine more so. Never a performance assertion.
pub const STEP: Duration = Duration::from_secs(60);

/// A name no other test (or test run) uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "nit-{tag}-{}-{}-{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// The `peer` helper binary (only in tests of the tests-integration package).
pub fn peer_exe() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_peer") {
        Some(p) => PathBuf::from(p),
        None => panic!("the peer helper exists only in tests-integration's tests"),
    }
}

/// The `hostile` helper binary (misbehaving peers; only in tests of the
/// tests-integration package).
pub fn hostile_exe() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_hostile") {
        Some(p) => PathBuf::from(p),
        None => panic!("the hostile helper exists only in tests-integration's tests"),
    }
}

/// The `nipc` binary: cargo's own path in nipc's tests; elsewhere the one built
/// next to `peer` by `cargo test --workspace` (nipc's integration tests make
/// cargo build it).
pub fn nipc_exe() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_nipc") {
        return PathBuf::from(p);
    }
    let p = peer_exe().with_file_name(format!("nipc{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so nipc is built",
        p.display()
    );
    p
}

/// How many times [`spawn_retrying_wine_startup`] tries.
const SPAWN_TRIES: u32 = 4;

/// Runs `spawn`, trying again (up to [`SPAWN_TRIES`] times) only when the
/// failure is `ERROR_INTERNAL_ERROR` (1359) on Windows. Wine returns that from
/// `CreateProcess` when the new process died before its Windows side finished
/// starting (`NtCreateUserProcess`: no success reported and exit code 0 ->
/// `STATUS_INTERNAL_ERROR`); it happened once in CI under load, before the
/// child ran any of our code. Every other error, and every error elsewhere, is
/// returned at once. Each retry is printed, so it shows in the test's output.
pub fn spawn_retrying_wine_startup(
    mut spawn: impl FnMut() -> std::io::Result<Child>,
) -> std::io::Result<Child> {
    const ERROR_INTERNAL_ERROR: i32 = 1359;
    let mut tries = 1;
    loop {
        match spawn() {
            Err(e)
                if cfg!(windows)
                    && e.raw_os_error() == Some(ERROR_INTERNAL_ERROR)
                    && tries < SPAWN_TRIES =>
            {
                eprintln!("process start failed ({e}), try {tries} of {SPAWN_TRIES}: retrying");
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Deterministic payload, the same as the peer's.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

/// A child process whose stdout lines arrive on a channel.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// A line read ahead by `has_line_within`.
    peeked: Option<String>,
    what: String,
    stderr: Option<Receiver<String>>,
}

impl Peer {
    /// Starts the `peer` helper with `args`.
    pub fn spawn(args: &[&str]) -> Peer {
        Peer::start(&peer_exe(), args)
    }

    /// Starts the `hostile` helper with `args`.
    pub fn hostile(args: &[&str]) -> Peer {
        Peer::start(&hostile_exe(), args)
    }

    /// Starts any program with piped stdin/stdout (stderr collected).
    pub fn start(exe: &std::path::Path, args: &[&str]) -> Peer {
        Peer::start_env(exe, args, &[])
    }

    /// [`Peer::start`] with extra environment variables.
    pub fn start_env(exe: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Peer {
        let spawn = || {
            Command::new(exe)
                .args(args)
                .envs(env.iter().copied())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        };
        let mut child = spawn_retrying_wine_startup(spawn)
            .unwrap_or_else(|e| panic!("cannot start {} {args:?}: {e}", exe.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let (etx, erx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = etx.send(line);
            }
        });
        Peer {
            stdin: child.stdin.take(),
            child,
            lines,
            peeked: None,
            what: format!("{} {args:?}", exe.display()),
            stderr: Some(erx),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.stdin.as_mut().expect("stdin already closed")
    }

    /// The next stdout line, within [`STEP`].
    pub fn line(&mut self) -> String {
        if let Some(l) = self.peeked.take() {
            return l;
        }
        match self.lines.recv_timeout(STEP) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no output line within {STEP:?}", self.what)
            }
            Err(RecvTimeoutError::Disconnected) => {
                let err = self.stderr_text();
                panic!("{}: stdout closed; stderr:\n{err}", self.what)
            }
        }
    }

    /// The next stdout line if one arrives within `d`; `None` otherwise. For
    /// checking that something does *not* happen within a window.
    pub fn try_line_within(&mut self, d: Duration) -> Option<String> {
        if let Some(l) = self.peeked.take() {
            return Some(l);
        }
        self.lines.recv_timeout(d).ok()
    }

    /// Whether a stdout line arrives within `d` (it stays unread).
    pub fn has_line_within(&mut self, d: Duration) -> bool {
        if self.peeked.is_none() {
            self.peeked = self.lines.recv_timeout(d).ok();
        }
        self.peeked.is_some()
    }

    /// The next stdout line, or `None` once stdout is closed.
    pub fn try_line(&mut self) -> Option<String> {
        if let Some(l) = self.peeked.take() {
            return Some(l);
        }
        match self.lines.recv_timeout(STEP) {
            Ok(l) => Some(l),
            Err(RecvTimeoutError::Timeout) => panic!("{}: no output within {STEP:?}", self.what),
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Reads the next line and checks that it starts with `prefix`.
    pub fn expect(&mut self, prefix: &str) -> String {
        let l = self.line();
        assert!(
            l.starts_with(prefix),
            "{}: expected a line starting with {prefix:?}, got {l:?}",
            self.what
        );
        l
    }

    /// Everything written to stderr so far; once the child has exited, all of it.
    pub fn stderr_text(&mut self) -> String {
        let exited = matches!(self.child.try_wait(), Ok(Some(_)));
        let mut s = String::new();
        if let Some(rx) = &self.stderr {
            loop {
                let next = if exited {
                    rx.recv_timeout(STEP).ok()
                } else {
                    rx.try_recv().ok()
                };
                let Some(l) = next else { break };
                s.push_str(&l);
                s.push('\n');
            }
        }
        s
    }

    /// Waits for the next stderr line containing `needle`, within [`STEP`].
    pub fn expect_stderr(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + STEP;
        let rx = self.stderr.as_ref().unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => continue,
                Err(_) => panic!("{}: no stderr line containing {needle:?}", self.what),
            }
        }
    }

    /// Writes one command line to the child's stdin.
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write;
        let what = self.what.clone();
        let stdin = self.stdin();
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{what}: cannot write {line:?} to its stdin: {e}"));
    }

    /// Sends a command and returns the reply line, which must start with
    /// `OK` (command-driven helper roles answer each line once it is done).
    pub fn cmd(&mut self, line: &str) -> String {
        self.send_line(line);
        let reply = self.line();
        assert!(
            reply.starts_with("OK"),
            "{}: command {line:?} answered {reply:?}",
            self.what
        );
        reply
    }

    /// Closes the child's stdin (helpers exit on EOF).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits for exit within [`STEP`]; kills the child and fails otherwise.
    pub fn wait(&mut self) -> ExitStatus {
        self.close_stdin();
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{}: did not exit within {STEP:?}", self.what);
            }
            // Polling a child's exit status against a deadline; nothing is
            // synchronised by this pause.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for a successful exit.
    pub fn wait_ok(&mut self) {
        let st = self.wait();
        let err = self.stderr_text();
        assert!(st.success(), "{} failed: {st}\nstderr:\n{err}", self.what);
    }

    /// Kills the child (SIGKILL / TerminateProcess) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether we run under Wine, which accepts but does not enforce some Windows
/// security features (`FILE_FLAG_FIRST_PIPE_INSTANCE`, DACLs). For scaling a
/// test down only: a test that cannot run under Wine is
/// `#[cfg_attr(wine, ignore = "reason")]` (the build scripts set `cfg(wine)`
/// when the target's runner is Wine), never an early return.
#[cfg(windows)]
#[allow(unsafe_code)]
pub fn is_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    let ntdll: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
    // SAFETY: ntdll is always loaded; we only look up an export by name.
    unsafe {
        let h = GetModuleHandleW(ntdll.as_ptr());
        !h.is_null() && GetProcAddress(h, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

#[cfg(not(windows))]
pub fn is_wine() -> bool {
    false
}

/// Runs `f` on a thread and fails the test if it does not finish within [`STEP`].
pub fn with_watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(STEP) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("{what}: hung for {STEP:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}
