//! Named events: three words in a POSIX shm object; waiters sleep on the
//! generation word with [`futex`].

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{body_word, open_object, Spec};
use crate::error::{Error, ErrorKind, Result};
use crate::security::Security;
use crate::sync::header::{self, Abi};
use crate::sys::unix::futex;
use crate::sys::unix::shm::Mapping;
use crate::sys::{Create, ObjectId, Wait};

/// Body: word 0 = manual-reset (0/1), word 1 = signalled (0/1), word 2 =
/// generation (bumped by every `set`, wrapping), word 3 reserved.
const EVENT_BODY: usize = 16;

/// Events are plain u32 words: any process on the machine can share them.
fn event_abi() -> Abi {
    Abi::new("u32-words", EVENT_BODY, 4, false)
}

pub(crate) struct Event {
    map: Mapping,
    manual: bool,
}

impl Event {
    pub(crate) fn open(
        name: &str,
        os_name: &str,
        create: Create,
        security: &Security,
        manual: bool,
        initial: bool,
    ) -> Result<(Event, bool)> {
        let mode = crate::sys::unix::mode_for(security);
        let spec = Spec {
            name,
            os_name,
            kind: "event",
            magic: header::EVENT_MAGIC,
            abi: event_abi(),
            create,
            mode,
        };
        let (map, created) = open_object(spec, |m| {
            body_word(m, 0).store(u32::from(manual), Ordering::Relaxed);
            body_word(m, 4).store(u32::from(initial), Ordering::Relaxed);
            Ok(())
        })?;
        let manual = match body_word(&map, 0).load(Ordering::Acquire) {
            0 => false,
            1 => true,
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    name,
                    format!("cannot open event {name:?}: its mode word is {other}, not 0 or 1; the object is corrupt"),
                ))
            }
        };
        Ok((Event { map, manual }, created))
    }

    pub(crate) fn is_manual(&self) -> bool {
        self.manual
    }

    /// The identity of the object (see `crate::registry`).
    pub(crate) fn identity(&self) -> Option<ObjectId> {
        self.map.identity()
    }

    fn signalled(&self) -> &AtomicU32 {
        body_word(&self.map, 4)
    }

    fn generation(&self) -> &AtomicU32 {
        body_word(&self.map, 8)
    }

    pub(crate) fn set(&self) -> io::Result<()> {
        self.signalled().store(1, Ordering::SeqCst);
        self.generation().fetch_add(1, Ordering::SeqCst);
        futex::wake(self.generation(), if self.manual { u32::MAX } else { 1 });
        Ok(())
    }

    pub(crate) fn reset(&self) -> io::Result<()> {
        self.signalled().store(0, Ordering::SeqCst);
        Ok(())
    }

    /// `Ok(true)` when signalled (an auto-reset event is reset by this wait),
    /// `Ok(false)` when the wait ran out.
    ///
    /// Manual-reset: true once the event is set, or once any `set` happened
    /// since the wait began (even if a `reset` followed). Auto-reset: true for
    /// the waiter that turns the signalled word from 1 to 0. Either way the
    /// waiter sleeps on the generation word, read *before* the check, so a
    /// `set` between the check and the sleep makes the sleep return at once.
    pub(crate) fn wait(&self, wait: Wait) -> io::Result<bool> {
        let (word, generation) = (self.signalled(), self.generation());
        let start = generation.load(Ordering::SeqCst);
        loop {
            let seen = generation.load(Ordering::SeqCst);
            let got = if self.manual {
                seen != start || word.load(Ordering::SeqCst) != 0
            } else {
                word.compare_exchange(1, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            };
            if got {
                return Ok(true);
            }
            // Time left on the monotonic clock; the futex takes it relative.
            let left = wait.remaining();
            if left == Some(Duration::ZERO) {
                return Ok(false);
            }
            futex::wait(generation, seen, left);
        }
    }
}
