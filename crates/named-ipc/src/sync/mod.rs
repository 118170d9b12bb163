//! Cross-process synchronisation by name: [`NamedMutex`] and [`NamedEvent`], the
//! "线程同步技术" the spec says real shared-memory use needs.
//!
//! | | Windows | Linux | other Unix |
//! |---|---|---|---|
//! | mutex | `CreateMutexW` | robust, process-shared pthread mutex in POSIX shm | `flock` on a file in the per-user directory |
//! | event | `CreateEventW` | futex on a word in POSIX shm | `__ulock` (macOS) / polling |
//!
//! Names follow the shared-memory rules ([`crate::name`]), and share its
//! namespace: on Windows a mutex, an event and a segment cannot have the same
//! name, and on Linux they are all `/dev/shm` objects.
//!
//! **Abandonment.** If a process dies holding a [`NamedMutex`], the next
//! [`lock`](NamedMutex::lock) succeeds and its guard's
//! [`abandoned`](NamedMutexGuard::abandoned) is `true` (Windows
//! `WAIT_ABANDONED`, Linux `EOWNERDEAD`): the data it protects may be half
//! updated, so check and repair it.
//!
//! **Lifetime** is as for segments: on Unix the creator's drop removes the
//! object it created, if the name still holds it (unless
//! [`set_remove_on_drop(false)`](NamedMutex::set_remove_on_drop)); on Windows
//! the object lives while any process holds it.
//!
//! **Pulses.** `set(); reset();` on a manual-reset [`NamedEvent`] releases
//! every thread, in every process, that was waiting when it was set — Windows
//! semantics, kept on Unix with a generation count.
//!
//! **Timeouts** run on the monotonic clock: changing the wall clock does not
//! change them.
//!
//! **ABI.** On Unix the object's header records the binary interface of what
//! follows (CPU, C library, pointer width, `pthread_mutex_t` size and
//! alignment); a process built for another one gets
//! [`ErrorKind::VersionMismatch`] instead of a mutex it would misread.
//!
//! # Examples
//! ```no_run
//! use named_ipc::sync::{EventMode, NamedEvent, NamedMutex};
//! use std::time::Duration;
//!
//! let lock = NamedMutex::open_or_create("app-state-lock")?;
//! let ready = NamedEvent::open_or_create("app-state-ready", EventMode::AutoReset, false)?;
//! {
//!     let guard = lock.lock()?;
//!     if guard.abandoned() {
//!         // the previous holder crashed: repair the shared state here
//!     }
//!     // ... update shared memory ...
//! }
//! ready.set()?;
//! assert!(ready.wait_timeout(Duration::from_secs(1))?);
//! # Ok::<(), named_ipc::Error>(())
//! ```

pub(crate) mod header;

use std::fmt;
use std::marker::PhantomData;
use std::thread::ThreadId;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::registry::{self, Kind};
use crate::security::Security;
use crate::sys::{self, Create, Locked, Wait};

/// Ownership of a name: the registry record, and whether drop removes it.
struct Ownership {
    owner: Option<registry::Owner>,
    remove_on_drop: bool,
}

impl Ownership {
    /// Creates or opens the object of `kind` with `open` (which returns it, its
    /// identity and whether it was created), holding the name lock while it
    /// might be created so that its owner record is written before anyone can
    /// see it (see `registry`). If the record cannot be written, the object
    /// just created is removed again and the error returned.
    fn establish<T>(
        os_name: &str,
        kind: Kind,
        create: Create,
        name: &str,
        open: impl FnOnce() -> Result<(T, Option<sys::ObjectId>, bool)>,
    ) -> Result<(T, Ownership)> {
        let what = || format!("cannot create {} {name:?} ({os_name})", kind.as_str());
        let creation = match create {
            Create::Open => None,
            _ => Some(registry::begin(os_name).map_err(|e| Error::from_io(e, name, &what(), ""))?),
        };
        let (object, id, created) = open()?;
        let owner = match (&creation, created) {
            (Some(c), true) => match c.commit(kind, 0, id) {
                Ok(o) => Some(o),
                Err(e) => {
                    drop(object);
                    c.abandon(kind, os_name, id);
                    return Err(Error::from_io(e, name, &what(), ""));
                }
            },
            _ => None,
        };
        Ok((
            object,
            Ownership {
                owner,
                remove_on_drop: true,
            },
        ))
    }

    fn finish(&mut self, os_name: &str) {
        if let Some(owner) = self.owner.take() {
            owner.finish(os_name, registry::End::on_drop(self.remove_on_drop));
        }
    }
}

/// A mutex shared by name between processes. See the [module docs](self).
pub struct NamedMutex {
    inner: sys::sync::Mutex,
    name: String,
    os_name: String,
    /// The thread holding it through this handle: named mutexes are not
    /// reentrant, on every OS.
    holder: std::sync::Mutex<Option<ThreadId>>,
    own: Ownership,
}

impl fmt::Debug for NamedMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedMutex")
            .field("name", &self.name)
            .field("os_name", &self.os_name)
            .finish_non_exhaustive()
    }
}

impl Drop for NamedMutex {
    fn drop(&mut self) {
        self.own.finish(&self.os_name);
    }
}

impl NamedMutex {
    fn with(name: &str, create: Create) -> Result<NamedMutex> {
        let os_name = sys::shm::resolve(name, "mutex")?;
        let (inner, own) = Ownership::establish(&os_name, Kind::Mutex, create, name, || {
            let (m, created) =
                sys::sync::Mutex::open(name, &os_name, create, &Security::OwnerOnly)?;
            let id = m.identity();
            Ok((m, id, created))
        })?;
        Ok(NamedMutex {
            inner,
            name: name.to_owned(),
            os_name,
            holder: std::sync::Mutex::new(None),
            own,
        })
    }

    /// Creates mutex `name`, unlocked; fails if it exists.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`], [`ErrorKind::InvalidName`], OS errors.
    #[doc(alias = "CreateMutex")]
    pub fn create(name: &str) -> Result<NamedMutex> {
        NamedMutex::with(name, Create::Exclusive)
    }

    /// Opens existing mutex `name`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`]; [`ErrorKind::InvalidInput`] if the name holds
    /// something else; [`ErrorKind::VersionMismatch`] (Unix) if it was made by
    /// another named-ipc layout version or by a process with another C ABI
    /// (CPU, C library, pointer width).
    #[doc(alias = "OpenMutex")]
    pub fn open(name: &str) -> Result<NamedMutex> {
        NamedMutex::with(name, Create::Open)
    }

    /// Opens mutex `name`, creating it if needed (like `CreateMutex`).
    ///
    /// # Errors
    /// As for [`create`](Self::create) and [`open`](Self::open).
    pub fn open_or_create(name: &str) -> Result<NamedMutex> {
        NamedMutex::with(name, Create::Either)
    }

    /// The name it was opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS-level name.
    pub fn os_name(&self) -> &str {
        &self.os_name
    }

    /// Unix: whether the creator's drop removes the name (default `true`).
    pub fn set_remove_on_drop(&mut self, remove: bool) {
        self.own.remove_on_drop = remove;
    }

    fn holder(&self) -> std::sync::MutexGuard<'_, Option<ThreadId>> {
        crate::lock(&self.holder)
    }

    fn acquire(&self, wait: Wait) -> Result<Option<NamedMutexGuard<'_>>> {
        let me = std::thread::current().id();
        if *self.holder() == Some(me) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                &self.name,
                format!(
                    "this thread already holds mutex {:?}; named mutexes are not reentrant",
                    self.name
                ),
            ));
        }
        match self.inner.lock(wait) {
            Ok((how, inner)) => {
                *self.holder() = Some(me);
                Ok(Some(NamedMutexGuard {
                    inner: Some(inner),
                    mutex: self,
                    abandoned: how == Locked::Abandoned,
                    _not_send: PhantomData,
                }))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::from_io(
                e,
                &self.name,
                &format!("cannot lock mutex {:?}", self.name),
                "",
            )),
        }
    }

    /// Waits until the mutex is free and takes it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if this thread already holds it through this
    /// handle; OS errors.
    pub fn lock(&self) -> Result<NamedMutexGuard<'_>> {
        self.acquire(Wait::Block)?
            .ok_or_else(|| Error::new(ErrorKind::Io, &self.name, "lock returned without the mutex"))
    }

    /// Takes the mutex if it is free now; `None` if another holder has it.
    ///
    /// # Errors
    /// As for [`lock`](Self::lock).
    pub fn try_lock(&self) -> Result<Option<NamedMutexGuard<'_>>> {
        self.acquire(Wait::Never)
    }

    /// Waits up to `timeout`; `None` if the mutex stayed taken.
    ///
    /// # Errors
    /// As for [`lock`](Self::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<NamedMutexGuard<'_>>> {
        self.acquire(Wait::timeout(Some(timeout)))
    }
}

/// Proof of holding a [`NamedMutex`]; unlocks on drop. Not `Send`: the OS
/// requires the locking thread to unlock.
pub struct NamedMutexGuard<'a> {
    inner: Option<sys::sync::MutexGuard<'a>>,
    mutex: &'a NamedMutex,
    abandoned: bool,
    _not_send: PhantomData<*const ()>,
}

impl NamedMutexGuard<'_> {
    /// `true` if the previous holder died holding the mutex: what it protects
    /// may be half updated.
    #[doc(alias = "WAIT_ABANDONED")]
    #[doc(alias = "EOWNERDEAD")]
    pub fn abandoned(&self) -> bool {
        self.abandoned
    }
}

impl fmt::Debug for NamedMutexGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedMutexGuard")
            .field("mutex", &self.mutex.name)
            .field("abandoned", &self.abandoned)
            .finish()
    }
}

impl Drop for NamedMutexGuard<'_> {
    fn drop(&mut self) {
        *self.mutex.holder() = None;
        drop(self.inner.take());
    }
}

/// Whether waking one waiter resets the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventMode {
    /// A successful wait resets it: each `set` releases one waiter.
    AutoReset,
    /// It stays set, releasing every waiter, until `reset`.
    ManualReset,
}

/// An event shared by name between processes, like Windows' `CreateEvent`.
/// See the [module docs](self).
pub struct NamedEvent {
    inner: sys::sync::Event,
    name: String,
    os_name: String,
    own: Ownership,
}

impl fmt::Debug for NamedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedEvent")
            .field("name", &self.name)
            .field("os_name", &self.os_name)
            .field("mode", &self.mode())
            .finish()
    }
}

impl Drop for NamedEvent {
    fn drop(&mut self) {
        self.own.finish(&self.os_name);
    }
}

impl NamedEvent {
    fn with(
        name: &str,
        create: Create,
        mode: EventMode,
        initially_set: bool,
    ) -> Result<NamedEvent> {
        let os_name = sys::shm::resolve(name, "event")?;
        let (inner, own) = Ownership::establish(&os_name, Kind::Event, create, name, || {
            let (e, created) = sys::sync::Event::open(
                name,
                &os_name,
                create,
                &Security::OwnerOnly,
                mode == EventMode::ManualReset,
                initially_set,
            )?;
            let id = e.identity();
            Ok((e, id, created))
        })?;
        Ok(NamedEvent {
            inner,
            name: name.to_owned(),
            os_name,
            own,
        })
    }

    /// Creates event `name`; fails if it exists.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`], [`ErrorKind::InvalidName`], OS errors.
    #[doc(alias = "CreateEvent")]
    pub fn create(name: &str, mode: EventMode, initially_set: bool) -> Result<NamedEvent> {
        NamedEvent::with(name, Create::Exclusive, mode, initially_set)
    }

    /// Opens existing event `name` (its mode is the creator's).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`]; [`ErrorKind::InvalidInput`] or
    /// [`ErrorKind::VersionMismatch`] if the name holds something else.
    #[doc(alias = "OpenEvent")]
    pub fn open(name: &str) -> Result<NamedEvent> {
        NamedEvent::with(name, Create::Open, EventMode::AutoReset, false)
    }

    /// Opens event `name`, creating it with `mode` and `initially_set` if needed.
    ///
    /// # Errors
    /// As for [`create`](Self::create) and [`open`](Self::open).
    pub fn open_or_create(name: &str, mode: EventMode, initially_set: bool) -> Result<NamedEvent> {
        NamedEvent::with(name, Create::Either, mode, initially_set)
    }

    /// The name it was opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS-level name.
    pub fn os_name(&self) -> &str {
        &self.os_name
    }

    /// Auto- or manual-reset.
    pub fn mode(&self) -> EventMode {
        if self.inner.is_manual() {
            EventMode::ManualReset
        } else {
            EventMode::AutoReset
        }
    }

    /// Unix: whether the creator's drop removes the name (default `true`).
    pub fn set_remove_on_drop(&mut self, remove: bool) {
        self.own.remove_on_drop = remove;
    }

    fn io(&self, what: &str, e: std::io::Error) -> Error {
        Error::from_io(
            e,
            &self.name,
            &format!("cannot {what} event {:?}", self.name),
            "",
        )
    }

    /// Signals the event (`SetEvent`).
    ///
    /// # Errors
    /// OS errors.
    #[doc(alias = "SetEvent")]
    pub fn set(&self) -> Result<()> {
        self.inner.set().map_err(|e| self.io("set", e))
    }

    /// Clears the event (`ResetEvent`). Threads that were waiting on a
    /// manual-reset event when it was last set are released even if it is
    /// reset before they run.
    ///
    /// # Errors
    /// OS errors.
    #[doc(alias = "ResetEvent")]
    pub fn reset(&self) -> Result<()> {
        self.inner.reset().map_err(|e| self.io("reset", e))
    }

    /// Waits until the event is set (and, for auto-reset, resets it).
    ///
    /// # Errors
    /// OS errors.
    pub fn wait(&self) -> Result<()> {
        self.inner
            .wait(Wait::Block)
            .map(drop)
            .map_err(|e| self.io("wait on", e))
    }

    /// Waits up to `timeout`: `true` if the event was set, `false` on timeout.
    ///
    /// # Errors
    /// OS errors.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.inner
            .wait(Wait::timeout(Some(timeout)))
            .map_err(|e| self.io("wait on", e))
    }

    /// `true` if the event is set now (an auto-reset event is reset by this).
    ///
    /// # Errors
    /// OS errors.
    pub fn try_wait(&self) -> Result<bool> {
        self.inner
            .wait(Wait::Never)
            .map_err(|e| self.io("wait on", e))
    }
}
