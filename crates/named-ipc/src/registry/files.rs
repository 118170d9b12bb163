//! The registry files of one name: their paths, reading and writing the
//! record, the liveness check and the name lock.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use super::record::{encode, parse, record_text, Record};
use crate::sys::{self, Backoff, Wait};

/// How long a creator, a dropping creator or `rm` waits for a name lock that
/// another process holds (it is held for a few file operations).
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Largest record we read; anything bigger is not ours.
const MAX_RECORD: u64 = 4096;

/// The registry files of one name.
#[derive(Debug, Clone)]
pub(super) struct Paths {
    pub(super) dir: PathBuf,
    pub(super) file: String,
}

impl Paths {
    pub(super) fn new(os_name: &str) -> io::Result<Paths> {
        Ok(Paths {
            dir: sys::registry_dir()?,
            file: encode(os_name),
        })
    }

    pub(super) fn record(&self) -> PathBuf {
        self.dir.join(format!("{}.owner", self.file))
    }

    fn lock(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.file))
    }

    pub(super) fn live(&self, token: u64) -> PathBuf {
        self.dir.join(format!("{}.{token:016x}.live", self.file))
    }

    fn tmp(&self) -> PathBuf {
        self.dir
            .join(format!("{}.owner.tmp{}", self.file, std::process::id()))
    }

    /// The record, if there is one. Something at the path that is not a small
    /// regular file is not a record of ours: `Ok(None)`.
    pub(super) fn read(&self) -> io::Result<Option<Record>> {
        let path = self.record();
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() && m.len() <= MAX_RECORD => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(parse(&String::from_utf8_lossy(&bytes)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the record (write, then rename, so a reader never sees half).
    pub(super) fn write(&self, r: &Record) -> io::Result<()> {
        let tmp = self.tmp();
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(record_text(r).as_bytes())?;
            drop(f);
            fs::rename(&tmp, self.record())
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    pub(super) fn remove_record(&self) {
        let _ = fs::remove_file(self.record());
    }

    /// Whether the creator that holds the liveness lock of `token` still runs.
    pub(super) fn alive(&self, token: Option<u64>) -> bool {
        let Some(token) = token else { return false };
        match File::open(self.live(token)) {
            Ok(f) => matches!(f.try_lock_shared(), Err(fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }

    /// Takes the name lock, waiting as `wait` says. `Ok(None)`: another process
    /// held it throughout.
    pub(super) fn lock_name(&self, wait: Wait) -> io::Result<Option<NameLock>> {
        let path = self.lock();
        let mut backoff = Backoff::new();
        loop {
            if let Some(file) = sys::open_lock_file(&path)? {
                match file.try_lock() {
                    // Locked; but the file may have been removed (and made
                    // anew) by its previous holder in the meantime.
                    Ok(()) if sys::same_file(&file, &path)? => {
                        return Ok(Some(NameLock {
                            paths: self.clone(),
                            _file: file,
                        }))
                    }
                    Ok(()) => continue,
                    Err(fs::TryLockError::WouldBlock) => {}
                    Err(fs::TryLockError::Error(e)) => return Err(e),
                }
            }
            if !backoff.sleep(wait) {
                return Ok(None);
            }
        }
    }

    pub(super) fn lock_name_or_fail(&self, os_name: &str) -> io::Result<NameLock> {
        self.lock_name(Wait::timeout(Some(LOCK_WAIT)))?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "another process has been creating or removing {os_name} for {LOCK_WAIT:?} \
                         (it holds {}); try again, or end that process",
                        self.lock().display()
                    ),
                )
            })
    }
}

/// The name lock, held. Letting go removes the lock file if no record is left.
pub(super) struct NameLock {
    paths: Paths,
    _file: File,
}

impl Drop for NameLock {
    fn drop(&mut self) {
        if matches!(self.paths.read(), Ok(None)) {
            // Still locked by us: whoever opened this file meanwhile will see
            // that the path no longer names it, and try again.
            let _ = fs::remove_file(self.paths.lock());
        }
    }
}
