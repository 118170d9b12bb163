//! Who created which named object, so a creator's drop, `nipc shm rm` and
//! `nipc shm gc` remove only what is theirs to remove, and `nipc shm ls` can
//! show owners.
//!
//! Shared memory keeps no header (byte 0 is the user's), so the records live
//! beside it, in the per-user directory (`…/named-ipc/objects/`, or
//! `%LOCALAPPDATA%\named-ipc\objects\` on Windows). `<N>` below is the
//! OS-level name with every byte outside `[A-Za-z0-9._-]` written as `%XX`.
//!
//! # Files
//! - `<N>.lock`, the **name lock**: an exclusive `flock`/`LockFileEx` taken
//!   briefly by whoever creates, records, removes or collects the object `N`.
//!   Whoever takes it checks afterwards that the path still names the file it
//!   locked (else it was removed meanwhile, and it tries again), and removes
//!   the file before letting go if no record is left.
//! - `<N>.owner`, the **record**, written to `<N>.owner.tmp<PID>` and renamed
//!   into place: text, one `key=value` per line: `kind`, `pid`, `size`, `kept`
//!   (1 when the creator let the object outlive it on purpose), `token` (64
//!   random bits naming this record), and `dev` + `ino`, the identity of the
//!   object the creator made (device and inode, from `fstat` of the creator's
//!   own descriptor; absent where the OS does not tell, as for POSIX shm on
//!   macOS).
//! - `<N>.<token>.live`, the **liveness lock**: locked exclusively by the
//!   creator for as long as it lives. The OS drops the lock when the process
//!   dies, so "record present, its liveness lock free, not kept" means "owner
//!   gone".
//!
//! # Protocol
//! - **Create**: take the name lock, *then* create the object exclusively
//!   (`O_EXCL`), then write the liveness lock and the record, then let go of
//!   the name lock. gc takes the same lock, so it never sees an object without
//!   its record. If the record cannot be written, the object just created is
//!   removed (after checking that the name still holds it) and the creation
//!   fails: nothing leaks.
//! - **Creator's drop**: under the name lock, remove the object only if the
//!   record there is still this creator's (same token) *and* the object at the
//!   name has the recorded identity; remove the record only if it is ours. So
//!   after `nipc shm rm N` and a new creator of `N`, the first creator's drop
//!   leaves the new object and its record alone.
//! - **rm**: under the name lock, remove whatever object is at the name (an
//!   explicit request), and its record.
//! - **gc**: for each record, under the name lock (a name someone holds right
//!   now is skipped): skip it if its owner is alive or it is kept; otherwise
//!   remove the object only if the name still holds the recorded identity and
//!   (Linux) no live process maps it or has it open; drop the record unless the
//!   object stays because it is in use. Leftover lock, liveness and temporary
//!   files of dead owners go too.
//!
//! # What is guaranteed where
//! - The name lock orders every named-ipc process: creation, drop, rm and gc
//!   of one name never interleave. A program that is not named-ipc (a Python
//!   script calling `shm_unlink`, say) ignores it; between our identity check
//!   and `shm_unlink` (microseconds, with no way to unlink "this inode only")
//!   such a program could swap the object. We never remove an object whose
//!   identity differs from the record, so the swap must fall exactly inside
//!   that window.
//! - Linux, FreeBSD: objects have device + inode, and gc on Linux sees every
//!   process of this user that maps or holds an object (`/proc`). Processes of
//!   other users (objects created with `Security::LocalUsers`) cannot be
//!   inspected and are not seen.
//! - macOS: POSIX shm objects report no inode, so segments and events are
//!   identified by their record alone (the token), which covers everything
//!   done through named-ipc but not a foreign program replacing the object;
//!   and gc cannot see who maps an object, so it removes a dead creator's
//!   object even if another process still maps it (that process keeps its
//!   view, as after any unlink). Mutexes there are files, with inodes.
//! - Windows: objects die with their last handle; records are only
//!   bookkeeping, and gc only removes records of dead owners.
//!
//! Records are read back as untrusted text: anything malformed is ignored,
//! never a panic.
//!
//! # Code
//! - here: the entry points: `begin` and `Creation` (create and record),
//!   `Owner::finish` (a creator's drop), `remove` (rm), `entries` (ls), and
//!   `gc` (re-exported from `gc`);
//! - `record`: record text, tokens, and the file names of the directory;
//! - `files`: the files of one name, and the name lock;
//! - `object`: object kinds, and whether the object at a name is the recorded one;
//! - `gc`: collection of dead creators' objects and leftover files.

mod files;
mod gc;
mod object;
mod record;

use std::fs::{self, File, OpenOptions};
use std::io;

pub(crate) use gc::gc;
pub(crate) use object::Kind;
#[cfg(feature = "fuzzing")]
pub(crate) use record::fuzz;

use files::{NameLock, Paths};
use object::same_object;
use record::{decode, random_token, Record};

use crate::sys::{self, ObjectId};

/// A parsed record, plus what its liveness lock says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) os_name: String,
    pub(crate) record: Record,
    pub(crate) alive: bool,
}

/// A creation in progress: the name lock, held from before the object is
/// created until its record is written.
pub(crate) struct Creation {
    paths: Paths,
    _lock: NameLock,
}

/// Takes the name lock of `os_name` before creating an object there.
pub(crate) fn begin(os_name: &str) -> io::Result<Creation> {
    let paths = Paths::new(os_name)?;
    let lock = paths.lock_name_or_fail(os_name)?;
    Ok(Creation { paths, _lock: lock })
}

impl Creation {
    /// Records that this process created the object `id` (`None` where the OS
    /// gives no identity), and holds its liveness lock. On error nothing of
    /// the record is left; remove the object with [`abandon`](Self::abandon).
    pub(crate) fn commit(&self, kind: Kind, size: u64, id: Option<ObjectId>) -> io::Result<Owner> {
        let token = random_token();
        let live_path = self.paths.live(token);
        let res = (|| -> io::Result<Owner> {
            let live = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&live_path)?;
            live.try_lock().map_err(|e| match e {
                fs::TryLockError::Error(e) => e,
                fs::TryLockError::WouldBlock => io::ErrorKind::WouldBlock.into(),
            })?;
            let record = Record {
                kind: Some(kind),
                pid: Some(std::process::id()),
                size: Some(size),
                kept: false,
                token: Some(token),
                id,
            };
            self.paths.write(&record)?;
            Ok(Owner {
                paths: self.paths.clone(),
                record,
                token,
                id,
                _live: live,
            })
        })();
        if res.is_err() {
            let _ = fs::remove_file(&live_path);
        }
        res.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot write its owner record {}: {e}; check that {} is a writable \
                     directory of yours",
                    self.paths.record().display(),
                    self.paths.dir.display()
                ),
            )
        })
    }

    /// Removes the object this process just created (identity `id`), after
    /// [`commit`](Self::commit) failed, if the name still holds it.
    pub(crate) fn abandon(&self, kind: Kind, os_name: &str, id: Option<ObjectId>) {
        // We hold the name lock and created the object under it: with no
        // identity to compare, it is ours.
        if let Ok(now) = kind.identity(os_name) {
            if same_object(id, now, true) {
                let _ = kind.remove(os_name);
            }
        }
    }
}

/// What a creator's drop does with its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Remove the object and its record (Unix, `remove_on_drop`).
    Remove,
    /// Leave the object, recorded as kept on purpose.
    Keep,
    /// Leave the object to the OS and drop the record (Windows).
    Forget,
}

impl End {
    /// What dropping a creator with `remove_on_drop` does on this OS.
    pub(crate) fn on_drop(remove_on_drop: bool) -> End {
        match (sys::shm::REMOVABLE, remove_on_drop) {
            (false, _) => End::Forget,
            (true, true) => End::Remove,
            (true, false) => End::Keep,
        }
    }
}

/// A record of an object we created, with the liveness lock held.
#[derive(Debug)]
pub(crate) struct Owner {
    paths: Paths,
    record: Record,
    token: u64,
    id: Option<ObjectId>,
    _live: File,
}

impl Owner {
    /// Ends ownership of `os_name` as `end` says, touching the object and the
    /// record only if they are still the ones this process created.
    pub(crate) fn finish(self, os_name: &str, end: End) {
        let kind = self.record.kind.unwrap_or(Kind::Segment);
        // If the lock cannot be had, leave everything: the record stays with
        // a free liveness lock, and gc handles it like a crashed owner's.
        if let Ok(_lock) = self.paths.lock_name_or_fail(os_name) {
            let ours = matches!(self.paths.read(), Ok(Some(r)) if r.token == Some(self.token));
            match end {
                End::Remove => {
                    if let Ok(now) = kind.identity(os_name) {
                        if same_object(self.id, now, ours) {
                            let _ = kind.remove(os_name);
                        }
                    }
                    if ours {
                        self.paths.remove_record();
                    }
                }
                End::Keep if ours => {
                    let kept = Record {
                        kept: true,
                        ..self.record.clone()
                    };
                    let _ = self.paths.write(&kept);
                }
                End::Forget if ours => self.paths.remove_record(),
                End::Keep | End::Forget => {}
            }
            let _ = fs::remove_file(self.paths.live(self.token));
        }
    }
}

/// Removes the object at `os_name` (of the kind its record gives, else
/// `default`) and its record: `nipc shm rm`.
pub(crate) fn remove(os_name: &str, default: Kind) -> io::Result<()> {
    let paths = Paths::new(os_name)?;
    let _lock = paths.lock_name_or_fail(os_name)?;
    let record = paths.read()?;
    let kind = record.as_ref().and_then(|r| r.kind).unwrap_or(default);
    let res = kind.remove(os_name);
    if let Some(r) = record {
        paths.remove_record();
        if !paths.alive(r.token) {
            if let Some(t) = r.token {
                let _ = fs::remove_file(paths.live(t));
            }
        }
    }
    res
}

/// Every record, with whether its owner still holds the liveness lock.
pub(crate) fn entries() -> io::Result<Vec<Entry>> {
    let dir = sys::registry_dir()?;
    let mut out = Vec::new();
    for ent in fs::read_dir(&dir)? {
        let ent = ent?;
        let fname = ent.file_name().to_string_lossy().into_owned();
        let Some(file) = fname.strip_suffix(".owner") else {
            continue;
        };
        let Some(os_name) = decode(file) else {
            continue;
        };
        let paths = Paths {
            dir: dir.clone(),
            file: file.to_owned(),
        };
        let Ok(Some(record)) = paths.read() else {
            continue;
        };
        let alive = paths.alive(record.token);
        out.push(Entry {
            os_name,
            record,
            alive,
        });
    }
    out.sort_by(|a, b| a.os_name.cmp(&b.os_name));
    Ok(out)
}
