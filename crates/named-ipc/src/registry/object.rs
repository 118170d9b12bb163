//! The objects records describe: their kinds, how to remove them, and
//! whether the object now at a name is the recorded one.

use std::io;

use crate::sys::{self, ObjectId};

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

    pub(super) fn parse(s: &str) -> Option<Kind> {
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

/// Whether the object now at a name is the one a record describes.
pub(super) fn same_object(
    recorded: Option<ObjectId>,
    now: Option<ObjectId>,
    record_is_ours: bool,
) -> bool {
    match (recorded, now) {
        (Some(a), Some(b)) => a == b,
        // The OS gives no identity (macOS shm): the record has to do.
        (None, None) => record_is_ours,
        // A record without identity where the OS has one (damaged, or from an
        // older named-ipc): we cannot tell, so it is not ours to remove.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
