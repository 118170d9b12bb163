//! CPU affinity for `nipc bench` (feature `bench-support`): `sched_setaffinity`
//! on Linux and Android; elsewhere (macOS, the BSDs) a documented no-op.

use std::io;

/// The CPUs the calling thread may run on; `None` where the OS does not say.
#[cfg(linux_like)]
pub(crate) fn allowed_cpus() -> io::Result<Option<Vec<usize>>> {
    let set = rustix::thread::sched_getaffinity(None)?;
    Ok(Some(
        (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect(),
    ))
}

/// Restricts the calling thread, and the threads and processes it starts
/// afterwards, to `cpus`. `Ok(true)`: done.
#[cfg(linux_like)]
pub(crate) fn set_affinity(cpus: &[usize]) -> io::Result<bool> {
    let max = rustix::thread::CpuSet::MAX_CPU;
    if cpus.is_empty() || cpus.iter().any(|&c| c >= max) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU numbers must be below {max}"),
        ));
    }
    let mut set = rustix::thread::CpuSet::new();
    for &c in cpus {
        set.set(c);
    }
    rustix::thread::sched_setaffinity(None, &set)?;
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
