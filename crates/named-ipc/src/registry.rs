//! Who created which named object, so `nipc shm ls` can show owners and
//! `nipc shm gc` can remove what a crashed owner left behind — and nothing else.
//!
//! Shared memory keeps no header (byte 0 is the user's), so the records live
//! beside it, in the per-user directory (`…/named-ipc/objects/`, or
//! `%LOCALAPPDATA%\named-ipc\objects\` on Windows). For each object we created:
//!
//! - `<NAME>.owner`: text, one `key=value` per line: `kind`, `pid`, `size`,
//!   `kept` (1 when the creator let it outlive itself on purpose);
//! - `<NAME>.lock`: locked exclusively (`flock`/`LockFileEx`) by the creator
//!   while it lives. The OS drops the lock when the process dies, so "record
//!   present, lock free, not kept" means "owner crashed".
//!
//! `<NAME>` is the OS-level name with every byte outside `[A-Za-z0-9._-]`
//! written as `%XX`. Records are read back as untrusted text: anything
//! malformed is ignored, never a panic.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::sys;

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
}

/// A record of an object we created, with the liveness lock held.
#[derive(Debug)]
pub(crate) struct Owner {
    lock: File,
    dir: PathBuf,
    file: String,
    kind: Kind,
    size: u64,
}

/// A parsed record, plus what the lock says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) os_name: String,
    pub(crate) kind: Option<Kind>,
    pub(crate) pid: Option<u32>,
    pub(crate) size: Option<u64>,
    pub(crate) kept: bool,
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

/// Parses a record; unknown keys and malformed lines are skipped.
pub(crate) fn parse(text: &str) -> (Option<Kind>, Option<u32>, Option<u64>, bool) {
    let (mut kind, mut pid, mut size, mut kept) = (None, None, None, false);
    for line in text.lines().take(32) {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "kind" => kind = Kind::parse(v.trim()),
            "pid" => pid = v.trim().parse().ok(),
            "size" => size = v.trim().parse().ok(),
            "kept" => kept = v.trim() == "1",
            _ => {}
        }
    }
    (kind, pid, size, kept)
}

fn record_text(kind: Kind, size: u64, kept: bool) -> String {
    format!(
        "kind={}\npid={}\nsize={size}\nkept={}\n",
        kind.as_str(),
        std::process::id(),
        u8::from(kept)
    )
}

fn write_record(dir: &Path, file: &str, text: &str) -> io::Result<()> {
    // Write-then-rename, so a reader never sees half a record.
    let tmp = dir.join(format!("{file}.owner.tmp{}", std::process::id()));
    let mut f = File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    drop(f);
    fs::rename(&tmp, dir.join(format!("{file}.owner")))
}

/// Records that this process created `os_name`, and holds its liveness lock.
pub(crate) fn register(os_name: &str, kind: Kind, size: u64) -> io::Result<Owner> {
    let dir = sys::registry_dir()?;
    let file = encode(os_name);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{file}.lock")))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "another live process is recorded as its owner",
            ))
        }
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    write_record(&dir, &file, &record_text(kind, size, false))?;
    Ok(Owner {
        lock,
        dir,
        file,
        kind,
        size,
    })
}

impl Owner {
    /// Ends ownership: `kept` leaves a record saying the object outlives us on
    /// purpose (so `gc` leaves it alone); otherwise the record goes.
    pub(crate) fn finish(self, kept: bool) {
        if kept {
            let _ = write_record(
                &self.dir,
                &self.file,
                &record_text(self.kind, self.size, true),
            );
        } else {
            let _ = fs::remove_file(self.dir.join(format!("{}.owner", self.file)));
        }
        let _ = fs::remove_file(self.dir.join(format!("{}.lock", self.file)));
        drop(self.lock);
    }
}

/// Removes the record of `os_name`, if any.
pub(crate) fn forget(os_name: &str) {
    if let Ok(dir) = sys::registry_dir() {
        let file = encode(os_name);
        let _ = fs::remove_file(dir.join(format!("{file}.owner")));
        let _ = fs::remove_file(dir.join(format!("{file}.lock")));
    }
}

/// Every record, with whether its owner still holds the lock.
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
        // Records are small; a huge file is not ours.
        if ent.metadata().map(|m| m.len() > 4096).unwrap_or(true) {
            continue;
        }
        let text = fs::read_to_string(ent.path()).unwrap_or_default();
        let (kind, pid, size, kept) = parse(&text);
        let alive = match File::open(dir.join(format!("{file}.lock"))) {
            Ok(f) => matches!(f.try_lock_shared(), Err(fs::TryLockError::WouldBlock)),
            Err(_) => false,
        };
        out.push(Entry {
            os_name,
            kind,
            pid,
            size,
            kept,
            alive,
        });
    }
    out.sort_by(|a, b| a.os_name.cmp(&b.os_name));
    Ok(out)
}

#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse(&text);
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
        let r = parse("kind=segment\npid=42\nsize=4096\nkept=1\nfuture=x\n");
        assert_eq!(r, (Some(Kind::Segment), Some(42), Some(4096), true));
        assert_eq!(
            parse("garbage\n=\npid=-1\nkind=a b"),
            (None, None, None, false)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_records_and_names_never_panic(text in ".{0,300}", file in ".{0,40}") {
            let _ = parse(&text);
            if let Some(n) = decode(&file) {
                prop_assert_eq!(decode(&encode(&n)), Some(n));
            }
        }
    }
}
