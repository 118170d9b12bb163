//! `nipc shm gc`: collecting the objects of dead creators, and the leftover
//! files of the registry directory.

use std::collections::BTreeSet;
use std::fs;
use std::io;

use super::files::Paths;
use super::object::same_object;
use super::record::{decode, file_of, Record};
use super::Kind;
use crate::sys::{self, Wait};

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
