//! CPU affinity for `nipc bench` (feature `bench-support`):
//! `SetProcessAffinityMask` and `SetThreadAffinityMask`. One processor group
//! only (CPUs 0–63).

use std::io;

use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentThread, GetProcessAffinityMask, SetProcessAffinityMask,
    SetThreadAffinityMask,
};

use super::cvt;

const BITS: usize = usize::BITS as usize;

/// The CPUs this process may run on.
pub(crate) fn allowed_cpus() -> io::Result<Option<Vec<usize>>> {
    let (mut process, mut system) = (0usize, 0usize);
    // SAFETY: the pseudo-handle of this process; both outputs are writable.
    cvt(unsafe { GetProcessAffinityMask(GetCurrentProcess(), &mut process, &mut system) })?;
    Ok(Some((0..BITS).filter(|c| process >> c & 1 == 1).collect()))
}

/// Restricts this process (every thread, and processes it starts afterwards)
/// to `cpus`. `Ok(true)`: done.
pub(crate) fn set_affinity(cpus: &[usize]) -> io::Result<bool> {
    if cpus.is_empty() || cpus.iter().any(|&c| c >= BITS) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU numbers must be below {BITS} (one processor group)"),
        ));
    }
    let mask = cpus.iter().fold(0usize, |m, &c| m | 1 << c);
    // SAFETY: the pseudo-handle of this process; any mask is accepted or
    // refused with an error.
    cvt(unsafe { SetProcessAffinityMask(GetCurrentProcess(), mask) })?;
    // SAFETY: the pseudo-handle of this thread. Returns the old mask, 0 on
    // failure.
    if unsafe { SetThreadAffinityMask(GetCurrentThread(), mask) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}
