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

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::sys::{self, Backoff, ObjectId, Wait};

/// How long a creator, a dropping creator or `rm` waits for a name lock that
/// another process holds (it is held for a few file operations).
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Largest record we read; anything bigger is not ours.
const MAX_RECORD: u64 = 4096;

/// What kind of object a record describes, and how to remove one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Segment,
    Mutex,
    Event,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Segment => "segment",
            Kind::Mutex => "mutex",
            Kind::Event => "event",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "segment" => Kind::Segment,
            "mutex" => Kind::Mutex,
            "event" => Kind::Event,
            _ => return None,
        })
    }

    /// Removes the OS object of this kind called `os_name` (Unix; Windows
    /// objects vanish with their last handle).
    pub(crate) fn remove(self, os_name: &str) -> io::Result<()> {
        match self {
            Kind::Segment => sys::shm::unlink(os_name),
            Kind::Mutex => sys::sync::remove_mutex(os_name),
            Kind::Event => sys::sync::remove_event(os_name),
        }
    }

    /// The identity of the object of this kind now at `os_name`: `NotFound`
    /// if there is none, `None` if the OS does not tell.
    pub(crate) fn identity(self, os_name: &str) -> io::Result<Option<ObjectId>> {
        match self {
            Kind::Segment | Kind::Event => sys::shm::identity(os_name),
            Kind::Mutex => sys::sync::mutex_identity(os_name),
        }
    }
}

/// What a record says. Every field may be missing from a damaged record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Record {
    pub(crate) kind: Option<Kind>,
    pub(crate) pid: Option<u32>,
    pub(crate) size: Option<u64>,
    pub(crate) kept: bool,
    pub(crate) token: Option<u64>,
    pub(crate) id: Option<ObjectId>,
}

/// A parsed record, plus what its liveness lock says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) os_name: String,
    pub(crate) record: Record,
    pub(crate) alive: bool,
}

pub(crate) fn encode(os_name: &str) -> String {
    let mut s = String::new();
    for b in os_name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

pub(crate) fn decode(file: &str) -> Option<String> {
    let bytes = file.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = file.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a record; unknown keys and malformed lines are skipped. The identity
/// counts only when both `dev` and `ino` parse.
pub(crate) fn parse(text: &str) -> Record {
    let mut r = Record::default();
    let (mut dev, mut ino) = (None, None);
    for line in text.lines().take(32) {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "kind" => r.kind = Kind::parse(v),
            "pid" => r.pid = v.parse().ok(),
            "size" => r.size = v.parse().ok(),
            "kept" => r.kept = v == "1",
            "token" => r.token = u64::from_str_radix(v, 16).ok().filter(|_| v.len() == 16),
            "dev" => dev = v.parse().ok(),
            "ino" => ino = v.parse().ok(),
            _ => {}
        }
    }
    r.id = dev.zip(ino).map(|(dev, ino)| ObjectId { dev, ino });
    r
}

fn record_text(r: &Record) -> String {
    let mut s = String::new();
    if let Some(k) = r.kind {
        s.push_str(&format!("kind={}\n", k.as_str()));
    }
    if let Some(p) = r.pid {
        s.push_str(&format!("pid={p}\n"));
    }
    if let Some(n) = r.size {
        s.push_str(&format!("size={n}\n"));
    }
    s.push_str(&format!("kept={}\n", u8::from(r.kept)));
    if let Some(t) = r.token {
        s.push_str(&format!("token={t:016x}\n"));
    }
    if let Some(id) = r.id {
        s.push_str(&format!("dev={}\nino={}\n", id.dev, id.ino));
    }
    s
}

/// 64 bits that no other record of this machine is likely to have.
fn random_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// The registry files of one name.
#[derive(Debug, Clone)]
struct Paths {
    dir: PathBuf,
    file: String,
}

impl Paths {
    fn new(os_name: &str) -> io::Result<Paths> {
        Ok(Paths {
            dir: sys::registry_dir()?,
            file: encode(os_name),
        })
    }

    fn record(&self) -> PathBuf {
        self.dir.join(format!("{}.owner", self.file))
    }

    fn lock(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.file))
    }

    fn live(&self, token: u64) -> PathBuf {
        self.dir.join(format!("{}.{token:016x}.live", self.file))
    }

    fn tmp(&self) -> PathBuf {
        self.dir
            .join(format!("{}.owner.tmp{}", self.file, std::process::id()))
    }

    /// The record, if there is one. Something at the path that is not a small
    /// regular file is not a record of ours: `Ok(None)`.
    fn read(&self) -> io::Result<Option<Record>> {
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
    fn write(&self, r: &Record) -> io::Result<()> {
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

    fn remove_record(&self) {
        let _ = fs::remove_file(self.record());
    }

    /// Whether the creator that holds the liveness lock of `token` still runs.
    fn alive(&self, token: Option<u64>) -> bool {
        let Some(token) = token else { return false };
        match File::open(self.live(token)) {
            Ok(f) => matches!(f.try_lock_shared(), Err(fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }

    /// Takes the name lock, waiting as `wait` says. `Ok(None)`: another process
    /// held it throughout.
    fn lock_name(&self, wait: Wait) -> io::Result<Option<NameLock>> {
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

    fn lock_name_or_fail(&self, os_name: &str) -> io::Result<NameLock> {
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
struct NameLock {
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

/// Whether the object now at a name is the one a record describes.
fn same_object(recorded: Option<ObjectId>, now: Option<ObjectId>, record_is_ours: bool) -> bool {
    match (recorded, now) {
        (Some(a), Some(b)) => a == b,
        // The OS gives no identity (macOS shm): the record has to do.
        (None, None) => record_is_ours,
        // A record without identity where the OS has one (damaged, or from an
        // older named-ipc): we cannot tell, so it is not ours to remove.
        _ => false,
    }
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

/// The encoded name a registry file belongs to.
fn file_of(fname: &str) -> Option<&str> {
    if let Some(f) = fname.strip_suffix(".owner") {
        return Some(f);
    }
    if let Some(f) = fname.strip_suffix(".lock") {
        return Some(f);
    }
    if let Some(rest) = fname.strip_suffix(".live") {
        let (f, token) = rest.rsplit_once('.')?;
        return (token.len() == 16 && u64::from_str_radix(token, 16).is_ok()).then_some(f);
    }
    let (f, pid) = fname.rsplit_once(".owner.tmp")?;
    pid.parse::<u32>().ok().map(|_| f)
}

/// Removes objects whose creator died without removing them, unless they are
/// kept, no longer the recorded object, or (Linux) still used by a live
/// process; drops stale records and leftover files. Returns the OS names
/// removed. See the module docs for the protocol.
pub(crate) fn gc() -> io::Result<Vec<String>> {
    let dir = sys::registry_dir()?;
    let mut files = BTreeSet::new();
    for ent in fs::read_dir(&dir)? {
        let fname = ent?.file_name().to_string_lossy().into_owned();
        if let Some(f) = file_of(&fname) {
            if decode(f).is_some() {
                files.insert(f.to_owned());
            }
        }
    }
    let mut removed = Vec::new();
    for file in files {
        let Some(os_name) = decode(&file) else {
            continue;
        };
        let paths = Paths {
            dir: dir.clone(),
            file,
        };
        // Someone is creating or removing it right now: not ours to judge.
        let Some(_lock) = paths.lock_name(Wait::Never)? else {
            continue;
        };
        let record = paths.read()?;
        let keep_token = match &record {
            Some(r) if r.kept || paths.alive(r.token) => r.token,
            Some(r) => {
                if collect(&os_name, r, &mut removed)? {
                    paths.remove_record();
                    None
                } else {
                    r.token
                }
            }
            None => None,
        };
        sweep(&paths, keep_token);
    }
    Ok(removed)
}

/// Judges the object of a dead owner's record `r`; removes it if it is still
/// the recorded one and unused. Returns whether the record should go.
fn collect(os_name: &str, r: &Record, removed: &mut Vec<String>) -> io::Result<bool> {
    if !sys::shm::REMOVABLE {
        return Ok(true);
    }
    let kind = r.kind.unwrap_or(Kind::Segment);
    let now = match kind.identity(os_name) {
        Ok(now) => now,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        // Cannot inspect it (another user's object?): leave it all.
        Err(_) => return Ok(false),
    };
    if !same_object(r.id, now, true) {
        // Someone else's object now holds the name: only the record is stale.
        return Ok(true);
    }
    if let Some(id) = now {
        if sys::shm::user_of(id)?.is_some() {
            return Ok(false);
        }
    }
    match kind.remove(os_name) {
        Ok(()) => removed.push(os_name.to_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(true)
}

/// Under the name lock: removes liveness files other than `keep`'s whose
/// owner is gone, and temporary files of interrupted record writes.
fn sweep(paths: &Paths, keep: Option<u64>) {
    let Ok(dir) = fs::read_dir(&paths.dir) else {
        return;
    };
    let live_prefix = format!("{}.", paths.file);
    let tmp_prefix = format!("{}.owner.tmp", paths.file);
    for ent in dir.flatten() {
        let fname = ent.file_name().to_string_lossy().into_owned();
        if fname.starts_with(&tmp_prefix) && file_of(&fname) == Some(paths.file.as_str()) {
            // Records are written only under the name lock, which we hold.
            let _ = fs::remove_file(ent.path());
            continue;
        }
        let Some(token) = fname
            .strip_prefix(&live_prefix)
            .and_then(|t| t.strip_suffix(".live"))
            .filter(|t| t.len() == 16)
            .and_then(|t| u64::from_str_radix(t, 16).ok())
        else {
            continue;
        };
        if Some(token) != keep && !paths.alive(Some(token)) {
            let _ = fs::remove_file(ent.path());
        }
    }
}

#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let r = parse(&text);
    // What we write, we read back the same.
    assert_eq!(parse(&record_text(&r)), r);
    let _ = file_of(&text);
    if let Some(n) = decode(&text) {
        assert_eq!(decode(&encode(&n)), Some(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip_through_file_names() {
        for n in ["/ShareMemory", r"Local\x", r"Global\a:b*c", "/a%b", "/ü"] {
            let f = encode(n);
            assert!(
                f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-_%".contains(&b)),
                "{f}"
            );
            assert_eq!(decode(&f).as_deref(), Some(n));
        }
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%zz"), None);
    }

    #[test]
    fn records_parse() {
        let r = parse(
            "kind=segment\npid=42\nsize=4096\nkept=1\ntoken=00000000000000ff\ndev=5\nino=77\nfuture=x\n",
        );
        assert_eq!(
            r,
            Record {
                kind: Some(Kind::Segment),
                pid: Some(42),
                size: Some(4096),
                kept: true,
                token: Some(255),
                id: Some(ObjectId { dev: 5, ino: 77 }),
            }
        );
        assert_eq!(parse(&record_text(&r)), r);
        assert_eq!(
            parse("garbage\n=\npid=-1\nkind=a b\ntoken=12\ndev=1"),
            Record::default()
        );
    }

    #[test]
    fn registry_file_names_map_to_their_object() {
        assert_eq!(file_of("%2Fa.b.owner"), Some("%2Fa.b"));
        assert_eq!(file_of("%2Fa.lock"), Some("%2Fa"));
        assert_eq!(file_of("%2Fa.0123456789abcdef.live"), Some("%2Fa"));
        assert_eq!(file_of("%2Fa.owner.tmp123"), Some("%2Fa"));
        assert_eq!(file_of("%2Fa.12.live"), None);
        assert_eq!(file_of("%2Fa.owner.tmpx"), None);
        assert_eq!(file_of("stray"), None);
    }

    #[test]
    fn identities_decide_what_may_be_removed() {
        let a = Some(ObjectId { dev: 1, ino: 2 });
        let b = Some(ObjectId { dev: 1, ino: 3 });
        assert!(same_object(a, a, false));
        assert!(!same_object(a, b, true));
        assert!(same_object(None, None, true));
        assert!(!same_object(None, None, false));
        assert!(!same_object(None, a, true));
        assert!(!same_object(a, None, true));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_records_and_names_never_panic(text in ".{0,300}", file in ".{0,40}") {
            let r = parse(&text);
            prop_assert_eq!(parse(&record_text(&r)), r);
            let _ = file_of(&file);
            if let Some(n) = decode(&file) {
                prop_assert_eq!(decode(&encode(&n)), Some(n));
            }
        }
    }
}
