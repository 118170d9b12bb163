//! Unix names belong to whoever created them: a creator's drop, `nipc shm rm`
//! and `nipc shm gc` never remove an object (or its owner record) that someone
//! else created under the same name, gc leaves objects a live process still
//! maps, and a creation whose owner record cannot be written leaves nothing
//! behind. Through real processes, the public API and `nipc`.
#![cfg(unix)]

mod common;

use std::path::PathBuf;

use common::*;

const KINDS: [&str; 3] = ["segment", "mutex", "event"];

/// A private runtime directory (`XDG_RUNTIME_DIR`) for the processes a test
/// starts, so `gc` run by other tests, or by other users of this machine, never
/// sees this test's owner records. The objects themselves share the system's
/// namespace (unique names keep them apart).
struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(unique("xdg"));
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        Sandbox { root }
    }

    fn env(&self) -> [(&str, &str); 1] {
        [("XDG_RUNTIME_DIR", self.root.to_str().unwrap())]
    }

    fn peer(&self, args: &[&str]) -> Peer {
        Peer::start_env(&peer_exe(), args, &self.env())
    }

    /// Runs `nipc ARGS`: exit code, stdout lines, stderr.
    fn nipc(&self, args: &[&str]) -> (i32, Vec<String>, String) {
        let mut p = Peer::start_env(&nipc_exe(), args, &self.env());
        let mut lines = Vec::new();
        while let Some(l) = p.try_line() {
            lines.push(l);
        }
        let st = p.wait();
        let err = p.stderr_text();
        (st.code().unwrap_or(-1), lines, err)
    }

    /// `nipc shm gc`: the names it reports as removed.
    fn gc(&self) -> Vec<String> {
        let (code, out, err) = self.nipc(&["shm", "gc"]);
        assert_eq!(code, 0, "nipc shm gc failed: {err}");
        out
    }

    /// The `nipc shm ls` line of `name`, if listed.
    fn ls_line(&self, name: &str) -> Option<String> {
        let (code, lines, err) = self.nipc(&["shm", "ls"]);
        assert_eq!(code, 0, "nipc shm ls failed: {err}");
        let os = format!("/{name}\t");
        lines.into_iter().find(|l| l.starts_with(&os))
    }

    /// Opens the object `name` of `kind` in another process: `OK` or
    /// `ERR <ErrorKind> …`.
    fn open(&self, kind: &str, name: &str) -> String {
        let mut p = self.peer(&["open", kind, name]);
        let line = p.line();
        p.wait_ok();
        line
    }

    fn objects(&self) -> PathBuf {
        self.root.join("named-ipc").join("objects")
    }

    /// Files in the registry directory about `name` (`/name` is written
    /// `%2Fname`).
    fn registry_files(&self, name: &str) -> Vec<String> {
        let prefix = format!("%2F{name}.");
        std::fs::read_dir(self.objects())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|f| f.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn not_found(line: &str) -> bool {
    line.starts_with("ERR NotFound")
}

#[test]
fn a_creators_drop_spares_what_another_process_recreated_under_its_name() {
    let sb = Sandbox::new();
    for kind in KINDS {
        let name = unique(&format!("recreated-{kind}"));
        let mut a = sb.peer(&["own", kind, &name]);
        a.expect("READY");
        let (code, _, err) = sb.nipc(&["shm", "rm", &name]);
        assert_eq!(code, 0, "{kind}: nipc shm rm failed: {err}");
        assert!(not_found(&sb.open(kind, &name)), "{kind}: rm left it");

        let mut b = sb.peer(&["own", kind, &name]);
        b.expect("READY");
        // A ends and drops what it created, which is no longer at that name.
        a.close_stdin();
        a.expect("DROPPED");
        a.wait_ok();

        assert_eq!(
            sb.open(kind, &name),
            "OK",
            "{kind}: A's drop removed B's object"
        );
        let line = sb
            .ls_line(&name)
            .unwrap_or_else(|| panic!("{kind}: A's drop removed B's record"));
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            fields[2..],
            [b.pid().to_string().as_str(), "alive", kind],
            "{kind}: {line}"
        );

        // B's own drop still removes it, record and all.
        b.close_stdin();
        b.expect("DROPPED");
        b.wait_ok();
        assert!(not_found(&sb.open(kind, &name)), "{kind}");
        assert_eq!(sb.ls_line(&name), None, "{kind}");
        assert_eq!(sb.registry_files(&name), Vec::<String>::new(), "{kind}");
    }
}

#[test]
fn gc_removes_what_a_killed_creator_left_and_ls_shows_nothing_stale() {
    let sb = Sandbox::new();
    for kind in KINDS {
        let name = unique(&format!("killed-{kind}"));
        let mut a = sb.peer(&["own", kind, &name]);
        a.expect("READY");
        let pid = a.pid().to_string();
        a.kill();
        let line = sb.ls_line(&name).expect("listed after the crash");
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields[2..], [pid.as_str(), "dead", kind], "{line}");

        let out = sb.gc();
        assert!(out.contains(&format!("removed /{name}")), "{kind}: {out:?}");
        assert!(not_found(&sb.open(kind, &name)), "{kind}");
        assert_eq!(sb.ls_line(&name), None, "{kind}: still listed after gc");
        assert_eq!(sb.registry_files(&name), Vec::<String>::new(), "{kind}");
    }
}

/// The object at the name is no longer the one the dead creator made: someone
/// removed it behind named-ipc's back and put another there. gc must drop the
/// stale record and leave the object alone.
#[cfg(target_os = "linux")]
#[test]
fn gc_leaves_an_object_recreated_under_a_dead_creators_name() {
    let sb = Sandbox::new();
    let name = unique("gc-recreated");
    let mut a = sb.peer(&["own", "segment", &name]);
    a.expect("READY");
    a.kill();
    let path = format!("/dev/shm/{name}");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"someone else's").unwrap();

    let out = sb.gc();
    assert!(!out.iter().any(|l| l.ends_with(&name)), "{out:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
    let line = sb.ls_line(&name).expect("still listed, as not ours");
    assert!(line.ends_with("\t-\tunknown\t-"), "{line}");
    assert_eq!(sb.registry_files(&name), Vec::<String>::new());
    std::fs::remove_file(&path).unwrap();
}

/// The creator died, but another process still has the segment mapped: it is
/// in use, so gc leaves it until that process is gone too.
#[cfg(target_os = "linux")]
#[test]
fn gc_leaves_an_object_a_live_process_still_maps() {
    use std::io::Write;

    let sb = Sandbox::new();
    let name = unique("gc-mapped");
    let mut a = sb.peer(&["shm-create", &name, "4096", "hello"]);
    a.expect("READY");
    let mut b = sb.peer(&["shm-open", &name, "ro"]);
    b.expect("READY");
    a.kill();

    let out = sb.gc();
    assert!(!out.iter().any(|l| l.ends_with(&name)), "{out:?}");
    writeln!(b.stdin(), "read 0 5").unwrap();
    assert_eq!(b.line(), "DATA hello");
    assert!(sb.ls_line(&name).expect("listed").contains("\tdead\t"));

    b.close_stdin();
    b.wait_ok();
    let out = sb.gc();
    assert!(out.contains(&format!("removed /{name}")), "{out:?}");
    assert!(not_found(&sb.open("segment", &name)));
}

/// The owner record cannot be written (its path is taken by a directory): the
/// creation fails with an error that says so, and leaves no object behind.
#[test]
fn a_creation_whose_owner_cannot_be_recorded_leaves_nothing() {
    use std::os::unix::fs::PermissionsExt;

    let sb = Sandbox::new();
    let objects = sb.objects();
    std::fs::create_dir_all(&objects).unwrap();
    for d in [&sb.root.join("named-ipc"), &objects] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    for kind in KINDS {
        let name = unique(&format!("unrecorded-{kind}"));
        let blocker = objects.join(format!("%2F{name}.owner"));
        std::fs::create_dir(&blocker).unwrap();
        let mut p = sb.peer(&["try-create", kind, &name]);
        let line = p.line();
        p.wait_ok();
        assert!(line.starts_with("ERR "), "{kind}: {line}");
        assert!(line.contains("owner"), "{kind}: {line}");
        assert!(
            not_found(&sb.open(kind, &name)),
            "{kind}: the object leaked"
        );
        std::fs::remove_dir(&blocker).unwrap();
        let left: Vec<_> = std::fs::read_dir(&objects)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{kind}: files left behind: {left:?}");
    }
}
