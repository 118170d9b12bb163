//! Helpers for cross-process tests, shared by the helper binaries and the
//! tests: what a process costs right now (memory, open descriptors or
//! handles), for soak tests and for hostile peers that must not make a
//! receiver allocate what they announce.

/// Memory and descriptor figures of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStats {
    /// Resident memory now, KiB (Linux `VmRSS`; Windows working set).
    pub rss_kib: u64,
    /// Largest resident memory so far, KiB (Linux `VmHWM`; Windows peak
    /// working set).
    pub peak_rss_kib: u64,
    /// Largest address space (Linux `VmPeak`) or committed private memory
    /// (Windows peak pagefile usage) so far, KiB: catches a large allocation
    /// even if its pages were never touched.
    pub peak_virtual_kib: u64,
    /// Open file descriptors (Linux `/proc/PID/fd`) or handles (Windows
    /// `GetProcessHandleCount`).
    pub handles: u64,
}

impl std::fmt::Display for ProcStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rss={}KiB peak_rss={}KiB peak_virtual={}KiB handles={}",
            self.rss_kib, self.peak_rss_kib, self.peak_virtual_kib, self.handles
        )
    }
}

impl ProcStats {
    /// Parses the form [`Display`](std::fmt::Display) writes.
    pub fn parse(s: &str) -> Option<ProcStats> {
        let field = |key: &str| -> Option<u64> {
            let rest = s.split_whitespace().find_map(|w| w.strip_prefix(key))?;
            rest.trim_end_matches("KiB").parse().ok()
        };
        Some(ProcStats {
            rss_kib: field("rss=")?,
            peak_rss_kib: field("peak_rss=")?,
            peak_virtual_kib: field("peak_virtual=")?,
            handles: field("handles=")?,
        })
    }
}

/// Figures of process `pid` (this process: `std::process::id()`), or `None`
/// where this OS has no way to tell.
#[cfg(target_os = "linux")]
pub fn proc_stats(pid: u32) -> Option<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    let handles = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ProcStats {
        rss_kib: kib("VmRSS:")?,
        peak_rss_kib: kib("VmHWM:")?,
        peak_virtual_kib: kib("VmPeak:")?,
        handles,
    })
}

/// Figures of process `pid` (this process: `std::process::id()`), or `None`
/// where this OS has no way to tell.
#[cfg(windows)]
#[allow(unsafe_code)]
pub fn proc_stats(pid: u32) -> Option<ProcStats> {
    use windows_sys::Win32::Foundation::CloseHandle;
    use windows_sys::Win32::System::ProcessStatus::{
        K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS,
    };
    use windows_sys::Win32::System::Threading::{
        GetProcessHandleCount, OpenProcess, PROCESS_QUERY_INFORMATION, PROCESS_VM_READ,
    };
    // SAFETY: plain OpenProcess; the handle is closed below.
    let h = unsafe { OpenProcess(PROCESS_QUERY_INFORMATION | PROCESS_VM_READ, 0, pid) };
    if h.is_null() {
        return None;
    }
    // SAFETY: all-zero is a valid PROCESS_MEMORY_COUNTERS.
    let mut m: PROCESS_MEMORY_COUNTERS = unsafe { std::mem::zeroed() };
    m.cb = std::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
    let mut n = 0u32;
    // SAFETY: h is a live process handle; both out-pointers are valid.
    let ok = unsafe {
        K32GetProcessMemoryInfo(h, &mut m, m.cb) != 0 && GetProcessHandleCount(h, &mut n) != 0
    };
    // SAFETY: h came from OpenProcess and is closed once.
    unsafe { CloseHandle(h) };
    // Our own handle to it counts when we look at ourselves.
    let own = u32::from(pid == std::process::id());
    ok.then(|| ProcStats {
        rss_kib: m.WorkingSetSize as u64 / 1024,
        peak_rss_kib: m.PeakWorkingSetSize as u64 / 1024,
        peak_virtual_kib: m.PeakPagefileUsage as u64 / 1024,
        handles: u64::from(n.saturating_sub(own)),
    })
}

/// Figures of process `pid`, or `None` where this OS has no way to tell.
#[cfg(not(any(target_os = "linux", windows)))]
pub fn proc_stats(_pid: u32) -> Option<ProcStats> {
    None
}

/// A small deterministic generator (xorshift64*) for chaos tests: each run
/// prints its seed, and the same seed replays the same choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced by a fixed non-zero value).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// A seed from `NIPC_CHAOS_SEED` if set, else from the clock and pid.
    pub fn seed_from_env() -> u64 {
        if let Some(s) = std::env::var("NIPC_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            return s;
        }
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        t ^ (u64::from(std::process::id()) << 32)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Deterministic payload: message `seq` of `len` bytes (the same function the
/// helpers and the tests use to check what arrived).
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

/// A message that carries its sequence number: 8 bytes of `seq` (LE), then
/// [`payload`]`(seq, len)`.
pub fn numbered(seq: u64, len: usize) -> Vec<u8> {
    let mut m = seq.to_le_bytes().to_vec();
    m.extend_from_slice(&payload(seq, len));
    m
}

/// Checks a [`numbered`] message: `Ok(seq)` if it is intact.
pub fn check_numbered(m: &[u8]) -> Result<u64, String> {
    let Some(head) = m.get(..8) else {
        return Err(format!("a {}-byte message has no sequence number", m.len()));
    };
    let seq = u64::from_le_bytes(head.try_into().unwrap_or_default());
    if m[8..] != payload(seq, m.len() - 8)[..] {
        return Err(format!("message {seq} ({} bytes) is corrupted", m.len()));
    }
    Ok(seq)
}

/// Size of the `seq`-th message of a chaos stream: mostly small, some larger
/// than a socket buffer or a ring record, so a kill often lands mid-message.
pub fn chaos_len(seq: u64) -> usize {
    const SIZES: [usize; 8] = [0, 24, 1000, 3000, 70_000, 100, 250_000, 8];
    SIZES[(seq % SIZES.len() as u64) as usize]
}

/// Median, 99th percentile and maximum of `samples` (sorted in place).
pub fn distribution(samples: &mut [std::time::Duration]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "n={} min={:?} median={:?} p99={:?} max={:?}",
        samples.len(),
        samples[0],
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    )
}
