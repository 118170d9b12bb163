//! CPU affinity for `nipc bench` (feature `bench-support`): `sched_setaffinity`
//! on Linux and Android; elsewhere (macOS, the BSDs) a documented no-op.

use std::io;

/// The CPUs the calling thread may run on; `None` where the OS does not say.
#[cfg(linux_like)]
pub(crate) fn allowed_cpus() -> io::Result<Option<Vec<usize>>> {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is writable and its size is
    // passed.
    super::cvt(unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) })?;
    let max = libc::CPU_SETSIZE as usize;
    // SAFETY: `set` is initialised and every index is below CPU_SETSIZE.
    Ok(Some(
        (0..max)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect(),
    ))
}

/// Restricts the calling thread, and the threads and processes it starts
/// afterwards, to `cpus`. `Ok(true)`: done.
#[cfg(linux_like)]
pub(crate) fn set_affinity(cpus: &[usize]) -> io::Result<bool> {
    let max = libc::CPU_SETSIZE as usize;
    if cpus.is_empty() || cpus.iter().any(|&c| c >= max) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU numbers must be below {max}"),
        ));
    }
    // SAFETY: all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: `c` was checked to be below CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; `set` is initialised and its size
    // is passed.
    super::cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) })?;
    Ok(true)
}

/// No affinity API here: unknown.
#[cfg(not(linux_like))]
pub(crate) fn allowed_cpus() -> io::Result<Option<Vec<usize>>> {
    Ok(None)
}

/// No affinity API here: does nothing and says so (`Ok(false)`).
#[cfg(not(linux_like))]
pub(crate) fn set_affinity(_cpus: &[usize]) -> io::Result<bool> {
    Ok(false)
}
