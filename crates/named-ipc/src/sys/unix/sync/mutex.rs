//! Named mutexes: a robust pthread mutex in a POSIX shm object on Linux and
//! Android, an `flock`ed file elsewhere.

#[cfg(linux_like)]
pub(crate) use robust::{mutex_identity, remove_mutex, Mutex, MutexGuard};

#[cfg(linux_like)]
mod robust {
    use std::io;
    use std::time::Duration;

    use crate::error::Result;
    use crate::security::Security;
    use crate::sync::header::{self, Abi, HEADER_LEN};
    use crate::sys::unix::shm::Mapping;
    use crate::sys::unix::sync::{open_object, Spec};
    use crate::sys::{Create, Locked, ObjectId, Wait};

    const BODY: usize = std::mem::size_of::<libc::pthread_mutex_t>();

    /// The C library whose `pthread_mutex_t` the body holds.
    const LIBC: &str = if cfg!(target_os = "android") {
        "bionic"
    } else if cfg!(target_env = "musl") {
        "musl"
    } else if cfg!(target_env = "uclibc") {
        "uclibc"
    } else if cfg!(target_env = "gnu") {
        "gnu"
    } else {
        std::env::consts::OS
    };

    /// This process's mutex ABI: CPU, C library, pointer width, and the size
    /// and alignment of `pthread_mutex_t`.
    fn mutex_abi() -> Abi {
        Abi::new(
            &format!("{}-{LIBC}", std::env::consts::ARCH),
            BODY,
            std::mem::align_of::<libc::pthread_mutex_t>(),
            true,
        )
    }

    /// Removes a mutex's name.
    pub(crate) fn remove_mutex(os_name: &str) -> io::Result<()> {
        crate::sys::unix::shm::unlink(os_name)
    }

    /// The identity of the mutex now at `os_name`.
    pub(crate) fn mutex_identity(os_name: &str) -> io::Result<Option<ObjectId>> {
        crate::sys::unix::shm::identity(os_name)
    }

    pub(crate) struct Mutex {
        map: Mapping,
    }

    /// Unlocks on drop. Must be dropped by the thread that locked (the portable
    /// guard is `!Send`).
    pub(crate) struct MutexGuard<'a> {
        m: &'a Mutex,
    }

    impl Drop for MutexGuard<'_> {
        fn drop(&mut self) {
            // SAFETY: the mutex is initialised and held by this thread.
            unsafe { libc::pthread_mutex_unlock(self.m.raw()) };
        }
    }

    /// `pthread_mutex_clocklock` (glibc 2.30+, bionic), if this C library has
    /// it. Looked up at run time, so the binary still runs on older ones.
    type ClockLock = unsafe extern "C" fn(
        *mut libc::pthread_mutex_t,
        libc::clockid_t,
        *const libc::timespec,
    ) -> libc::c_int;

    pub(super) fn clocklock() -> Option<ClockLock> {
        static FN: std::sync::OnceLock<Option<ClockLock>> = std::sync::OnceLock::new();
        *FN.get_or_init(|| {
            // SAFETY: dlsym only looks a symbol up; the name is NUL-terminated.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"pthread_mutex_clocklock".as_ptr()) };
            // SAFETY: a non-null pthread_mutex_clocklock has exactly this
            // signature (POSIX 2024, glibc 2.30).
            (!p.is_null())
                .then(|| unsafe { std::mem::transmute::<*mut libc::c_void, ClockLock>(p) })
        })
    }

    /// The time on `clock` `d` from now, as an absolute timespec.
    fn deadline_on(clock: libc::clockid_t, d: Duration) -> libc::timespec {
        // SAFETY: all-zero is a valid timespec; clock_gettime fills it.
        let mut now: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: now is a valid out-pointer; both clocks always exist.
        unsafe { libc::clock_gettime(clock, &mut now) };
        let total = Duration::new(
            now.tv_sec.max(0) as u64,
            now.tv_nsec.clamp(0, 999_999_999) as u32,
        )
        .saturating_add(d);
        libc::timespec {
            tv_sec: libc::time_t::try_from(total.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: total.subsec_nanos() as libc::c_long,
        }
    }

    /// Longest slice of a `CLOCK_REALTIME` timed lock in the fallback.
    const SLICE: Duration = Duration::from_millis(50);

    /// Locks `m` before `wait`'s (monotonic) deadline; returns the pthread
    /// result (`ETIMEDOUT` when it ran out).
    ///
    /// # Safety
    /// `m` points at an initialised mutex that stays alive during the call.
    unsafe fn timed_lock(m: *mut libc::pthread_mutex_t, wait: Wait) -> libc::c_int {
        if let Some(clocklock) = clocklock() {
            let abs = deadline_on(libc::CLOCK_MONOTONIC, wait.remaining().unwrap_or_default());
            // SAFETY: m is an initialised mutex (caller); abs is a live timespec.
            return unsafe { clocklock(m, libc::CLOCK_MONOTONIC, &abs) };
        }
        // SAFETY: as promised by our caller.
        unsafe { timed_lock_sliced(m, wait) }
    }

    /// The fallback: `pthread_mutex_timedlock` (which measures against
    /// `CLOCK_REALTIME`) in slices of at most [`SLICE`], until the monotonic
    /// deadline of `wait` has passed.
    ///
    /// # Safety
    /// As for [`timed_lock`].
    pub(super) unsafe fn timed_lock_sliced(
        m: *mut libc::pthread_mutex_t,
        wait: Wait,
    ) -> libc::c_int {
        loop {
            let left = wait.remaining().unwrap_or_default();
            let abs = deadline_on(libc::CLOCK_REALTIME, left.min(SLICE));
            // SAFETY: m is an initialised mutex (caller); abs is a live timespec.
            let r = unsafe { libc::pthread_mutex_timedlock(m, &abs) };
            if r != libc::ETIMEDOUT || wait.remaining() == Some(Duration::ZERO) {
                return r;
            }
        }
    }

    fn check(r: libc::c_int) -> io::Result<()> {
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(r))
        }
    }

    impl Mutex {
        fn raw(&self) -> *mut libc::pthread_mutex_t {
            // SAFETY: the body (validated size >= BODY) starts at HEADER_LEN,
            // 16-aligned within a page-aligned mapping.
            unsafe { self.map.ptr().add(HEADER_LEN).cast() }
        }

        pub(crate) fn open(
            name: &str,
            os_name: &str,
            create: Create,
            security: &Security,
        ) -> Result<(Mutex, bool)> {
            let mode = crate::sys::unix::mode_for(security);
            let spec = Spec {
                name,
                os_name,
                kind: "mutex",
                magic: header::MUTEX_MAGIC,
                abi: mutex_abi(),
                create,
                mode,
            };
            let (map, created) = open_object(spec, |m| {
                // SAFETY: all-zero is a valid pthread_mutexattr_t to hand to init.
                let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
                // SAFETY: attr is ours; the mutex memory is our freshly created
                // body, not yet visible as ready to anyone.
                unsafe {
                    check(libc::pthread_mutexattr_init(&mut attr))?;
                    let r = (|| {
                        check(libc::pthread_mutexattr_setpshared(
                            &mut attr,
                            libc::PTHREAD_PROCESS_SHARED,
                        ))?;
                        check(libc::pthread_mutexattr_setrobust(
                            &mut attr,
                            libc::PTHREAD_MUTEX_ROBUST,
                        ))?;
                        check(libc::pthread_mutexattr_settype(
                            &mut attr,
                            libc::PTHREAD_MUTEX_ERRORCHECK,
                        ))?;
                        check(libc::pthread_mutex_init(
                            m.ptr().add(HEADER_LEN).cast(),
                            &attr,
                        ))
                    })();
                    libc::pthread_mutexattr_destroy(&mut attr);
                    r
                }
            })?;
            Ok((Mutex { map }, created))
        }

        /// The identity of the object (see `crate::registry`).
        pub(crate) fn identity(&self) -> Option<ObjectId> {
            self.map.identity()
        }

        pub(crate) fn lock(&self, wait: Wait) -> io::Result<(Locked, MutexGuard<'_>)> {
            // SAFETY: the mutex is initialised (the header said ready) and lives
            // as long as `self`.
            let r = unsafe {
                match wait {
                    Wait::Block => libc::pthread_mutex_lock(self.raw()),
                    Wait::Never => libc::pthread_mutex_trylock(self.raw()),
                    Wait::Until(_) | Wait::After(_) => {
                        let mut wait = wait;
                        timed_lock(self.raw(), wait.anchor())
                    }
                }
            };
            let guard = MutexGuard { m: self };
            match r {
                0 => Ok((Locked::Clean, guard)),
                libc::EOWNERDEAD => {
                    // We hold it now; make it usable again and report.
                    // SAFETY: we hold the robust mutex after EOWNERDEAD.
                    unsafe { libc::pthread_mutex_consistent(self.raw()) };
                    Ok((Locked::Abandoned, guard))
                }
                _ => {
                    std::mem::forget(guard);
                    Err(match r {
                        libc::EBUSY | libc::ETIMEDOUT => wait.expired_error(),
                        libc::EDEADLK => io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "this thread already holds the mutex (named mutexes are not reentrant)",
                        ),
                        libc::ENOTRECOVERABLE => io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the mutex is unusable: an earlier holder died and it was never repaired",
                        ),
                        other => io::Error::from_raw_os_error(other),
                    })
                }
            }
        }
    }
}

#[cfg(not(linux_like))]
pub(crate) use flocked::{mutex_identity, remove_mutex, Mutex, MutexGuard};

#[cfg(not(linux_like))]
mod flocked {
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};

    use crate::error::{Error, Result};
    use crate::security::Security;
    use crate::sys::{Backoff, Create, Locked, ObjectId, Wait};

    fn path_of(os_name: &str) -> std::path::PathBuf {
        crate::sys::unix::runtime_dir()
            .join("mutex")
            .join(os_name.trim_start_matches('/'))
    }

    /// Removes a mutex's name.
    pub(crate) fn remove_mutex(os_name: &str) -> io::Result<()> {
        std::fs::remove_file(path_of(os_name))
    }

    /// The identity of the mutex file now at `os_name`.
    pub(crate) fn mutex_identity(os_name: &str) -> io::Result<Option<ObjectId>> {
        let f = File::open(path_of(os_name))?;
        crate::sys::unix::fd_id(&f)
    }

    pub(crate) struct Mutex {
        file: File,
        /// flock is per open file: threads of this process queue here first.
        local: std::sync::Mutex<()>,
    }

    pub(crate) struct MutexGuard<'a> {
        m: &'a Mutex,
        _local: std::sync::MutexGuard<'a, ()>,
    }

    impl Drop for MutexGuard<'_> {
        fn drop(&mut self) {
            let _ = self.m.file.write_at(&[0], 0);
            let _ = self.m.file.unlock();
        }
    }

    impl Mutex {
        pub(crate) fn open(
            name: &str,
            os_name: &str,
            create: Create,
            security: &Security,
        ) -> Result<(Mutex, bool)> {
            let mode = crate::sys::unix::mode_for(security);
            let dir = crate::sys::unix::runtime_dir().join("mutex");
            crate::sys::unix::ensure_private_dir(name, &dir)?;
            let path = path_of(os_name);
            let open = |create_new: bool| {
                let mut o = OpenOptions::new();
                o.read(true).write(true).mode(mode).create_new(create_new);
                o.open(&path)
            };
            // Created means "made by this open" (O_EXCL), never a guess.
            let opened = match create {
                Create::Exclusive => open(true).map(|f| (f, true)),
                Create::Open => open(false).map(|f| (f, false)),
                Create::Either => match open(true) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        open(false).map(|f| (f, false))
                    }
                    other => other.map(|f| (f, true)),
                },
            };
            let (file, created) = opened.map_err(|e| {
                Error::from_io(
                    e,
                    name,
                    &format!("cannot open mutex {name:?} ({})", path.display()),
                    "",
                )
            })?;
            Ok((
                Mutex {
                    file,
                    local: std::sync::Mutex::new(()),
                },
                created,
            ))
        }

        /// The identity of the mutex file (see `crate::registry`).
        pub(crate) fn identity(&self) -> Option<ObjectId> {
            crate::sys::unix::fd_id(&self.file).ok().flatten()
        }

        pub(crate) fn lock(&self, wait: Wait) -> io::Result<(Locked, MutexGuard<'_>)> {
            let mut backoff = Backoff::new();
            let local = loop {
                match wait {
                    Wait::Block => break self.local.lock().unwrap_or_else(|p| p.into_inner()),
                    _ => match self.local.try_lock() {
                        Ok(g) => break g,
                        Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                        Err(std::sync::TryLockError::WouldBlock) => {
                            if !backoff.sleep(wait) {
                                return Err(wait.expired_error());
                            }
                        }
                    },
                }
            };
            loop {
                if wait == Wait::Block {
                    self.file.lock()?;
                    break;
                }
                match self.file.try_lock() {
                    Ok(()) => break,
                    Err(std::fs::TryLockError::WouldBlock) => {
                        if !backoff.sleep(wait) {
                            return Err(wait.expired_error());
                        }
                    }
                    Err(std::fs::TryLockError::Error(e)) => return Err(e),
                }
            }
            let mut held = [0u8];
            let _ = self.file.read_at(&mut held, 0);
            self.file.write_at(&[1], 0)?;
            let how = if held[0] == 1 {
                Locked::Abandoned
            } else {
                Locked::Clean
            };
            Ok((
                how,
                MutexGuard {
                    m: self,
                    _local: local,
                },
            ))
        }
    }
}

#[cfg(all(test, linux_like))]
mod tests {
    use super::robust::{clocklock, timed_lock_sliced};
    use crate::sys::Wait;
    use std::time::{Duration, Instant};

    /// glibc 2.30 and later have `pthread_mutex_clocklock`, so timed locks
    /// there measure on `CLOCK_MONOTONIC`.
    #[cfg(target_env = "gnu")]
    #[test]
    fn glibc_2_30_and_later_lock_on_the_monotonic_clock() {
        // SAFETY: returns a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
        let v = v.to_str().unwrap();
        let (major, minor) = v.split_once('.').unwrap();
        let minor: u32 = minor.split('.').next().unwrap().parse().unwrap();
        let new_enough = major.parse::<u32>().unwrap() > 2 || minor >= 30;
        assert_eq!(clocklock().is_some(), new_enough, "glibc {v}");
    }

    /// The sliced fallback keeps waiting across slices until the monotonic
    /// deadline, then times out; and takes a free mutex at once.
    #[test]
    fn the_sliced_fallback_waits_out_its_whole_timeout() {
        struct Shared(std::cell::UnsafeCell<libc::pthread_mutex_t>);
        // SAFETY: a pthread mutex is made to be used from several threads.
        unsafe impl Sync for Shared {}
        let m = std::sync::Arc::new(Shared(std::cell::UnsafeCell::new(
            libc::PTHREAD_MUTEX_INITIALIZER,
        )));
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let m = m.clone();
            std::thread::spawn(move || {
                // SAFETY: a statically initialised mutex, alive via the Arc.
                unsafe { libc::pthread_mutex_lock(m.0.get()) };
                locked_tx.send(()).unwrap();
                let _ = done_rx.recv();
                // SAFETY: this thread locked it.
                unsafe { libc::pthread_mutex_unlock(m.0.get()) };
            })
        };
        locked_rx.recv().unwrap();
        let timeout = Duration::from_millis(130);
        let start = Instant::now();
        // SAFETY: initialised and alive.
        let r = unsafe { timed_lock_sliced(m.0.get(), Wait::timeout(Some(timeout))) };
        assert_eq!(r, libc::ETIMEDOUT);
        assert!(start.elapsed() >= timeout, "{:?}", start.elapsed());
        done_tx.send(()).unwrap();
        holder.join().unwrap();
        // SAFETY: initialised, alive, and now free.
        let r = unsafe { timed_lock_sliced(m.0.get(), Wait::timeout(Some(timeout))) };
        assert_eq!(r, 0);
        // SAFETY: we hold it.
        unsafe { libc::pthread_mutex_unlock(m.0.get()) };
    }
}
