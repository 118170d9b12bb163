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

/// Body: word 0 = manual-reset (0/1); word 1 = the state: manual-reset,
/// signalled (0/1); auto-reset, [`Auto`] packed (releases owed in the low 16
/// bits, waiters asleep in the high 16); word 2 = generation (bumped by every
/// `set`, wrapping), the word waiters sleep on; word 3 reserved.
const EVENT_BODY: usize = 16;

/// Events are plain u32 words: any process on the machine can share them. The
/// name changed from `u32-words` when the auto-reset state became a count of
/// releases (builds that read it as 0/1 get `VersionMismatch`, not a hang).
fn event_abi() -> Abi {
    Abi::new("u32-event-count", EVENT_BODY, 4, false)
}

/// The auto-reset state word: `releases` that `set` handed out and no waiter
/// took yet, and `sleepers`, waiters registered as asleep. Packed in one word
/// so that "take a release and stop counting myself" is one atomic step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Auto {
    releases: u32,
    sleepers: u32,
}

impl Auto {
    const MAX: u32 = 0xFFFF;

    fn unpack(w: u32) -> Auto {
        Auto {
            releases: w & Self::MAX,
            sleepers: w >> 16,
        }
    }

    fn pack(self) -> u32 {
        (self.sleepers.min(Self::MAX) << 16) | self.releases.min(Self::MAX)
    }

    /// What one `set` makes of the state: one more release, up to one per
    /// sleeper (at least one: with nobody asleep the event stays signalled
    /// once, and more `set`s do not add up). `None`: already saturated.
    fn set(self) -> Option<Auto> {
        (self.releases < self.sleepers.max(1)).then_some(Auto {
            releases: self.releases + 1,
            ..self
        })
    }

    /// A waiter takes a release, if one is owed; `asleep` says whether it was
    /// counted among the sleepers (then it stops being counted).
    fn take(self, asleep: bool) -> Option<Auto> {
        (self.releases > 0).then(|| Auto {
            releases: self.releases - 1,
            sleepers: self.sleepers - u32::from(asleep && self.sleepers > 0),
        })
    }
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

    /// Manual-reset: signalled, every waiter released. Auto-reset, as on
    /// Windows: each `set` releases one waiter — two `set`s in a row release
    /// two sleeping waiters, even before the first of them has run — and with
    /// nobody waiting the event stays signalled once (more `set`s do not add
    /// up).
    pub(crate) fn set(&self) -> io::Result<()> {
        if self.manual {
            self.signalled().store(1, Ordering::SeqCst);
        } else {
            // Saturated (as many releases as sleepers) is not an error.
            let _ = self.update(|a| a.set());
        }
        self.generation().fetch_add(1, Ordering::SeqCst);
        futex::wake(self.generation(), if self.manual { u32::MAX } else { 1 });
        Ok(())
    }

    pub(crate) fn reset(&self) -> io::Result<()> {
        if self.manual {
            self.signalled().store(0, Ordering::SeqCst);
        } else {
            // Releases not yet taken are withdrawn; sleepers stay counted.
            let _ = self.update(|a| Some(Auto { releases: 0, ..a }));
        }
        Ok(())
    }

    /// Applies `f` to the auto-reset state atomically; `Err` if `f` declined.
    fn update(&self, f: impl Fn(Auto) -> Option<Auto>) -> std::result::Result<u32, u32> {
        self.signalled()
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                f(Auto::unpack(w)).map(Auto::pack)
            })
    }

    /// `Ok(true)` when signalled (an auto-reset event is reset by this wait),
    /// `Ok(false)` when the wait ran out.
    ///
    /// Manual-reset: true once the event is set, or once any `set` happened
    /// since the wait began (even if a `reset` followed). Auto-reset: true for
    /// the waiter that takes a release; a waiter that goes to sleep counts
    /// itself among the sleepers in the same atomic step that found no
    /// release, so every later `set` owes it one. Either way the waiter sleeps
    /// on the generation word, read *before* the check, so a `set` between the
    /// check and the sleep makes the sleep return at once.
    ///
    /// A waiter killed while asleep stays counted: afterwards the event can
    /// hold one more `set` than there are live waiters (it never loses one).
    pub(crate) fn wait(&self, mut wait: Wait) -> io::Result<bool> {
        let generation = self.generation();
        let start = generation.load(Ordering::SeqCst);
        let mut asleep = false;
        loop {
            let seen = generation.load(Ordering::SeqCst);
            if self.manual {
                if seen != start || self.signalled().load(Ordering::SeqCst) != 0 {
                    return Ok(true);
                }
            } else if self.update(|a| a.take(asleep)).is_ok() {
                return Ok(true);
            }
            // Time left on the monotonic clock; the futex takes it relative.
            let left = wait.anchor().remaining();
            if left == Some(Duration::ZERO) {
                if asleep {
                    self.stop_sleeping();
                }
                return Ok(false);
            }
            if !self.manual && !asleep {
                // Count myself among the sleepers, unless a release arrived
                // since the check above: then take it instead.
                match self.update(|a| {
                    a.take(false).or(Some(Auto {
                        sleepers: (a.sleepers + 1).min(Auto::MAX),
                        ..a
                    }))
                }) {
                    Ok(w) if Auto::unpack(w).releases > 0 => return Ok(true),
                    _ => asleep = true,
                }
            }
            futex::wait(generation, seen, left);
        }
    }

    /// A sleeper that gives up stops being counted (and takes nothing).
    fn stop_sleeping(&self) {
        let _ = self.update(|a| {
            Some(Auto {
                sleepers: a.sleepers.saturating_sub(1),
                ..a
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};
    use std::time::Instant;

    fn open_pair(tag: &str, manual: bool) -> (Event, Event, String) {
        let name = format!(
            "nipc-ut-event-{tag}-{}-{:?}",
            std::process::id(),
            Instant::now()
        )
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "");
        let os_name = crate::sys::shm::resolve(&name, "event").unwrap();
        let sec = Security::OwnerOnly;
        let (a, created) =
            Event::open(&name, &os_name, Create::Exclusive, &sec, manual, false).unwrap();
        assert!(created);
        let (b, _) = Event::open(&name, &os_name, Create::Open, &sec, manual, false).unwrap();
        (a, b, os_name)
    }

    fn state(e: &Event) -> Auto {
        Auto::unpack(e.signalled().load(Ordering::SeqCst))
    }

    #[test]
    fn the_auto_state_packs_and_saturates() {
        let a = Auto {
            releases: 3,
            sleepers: 7,
        };
        assert_eq!(Auto::unpack(a.pack()), a);
        let idle = Auto {
            releases: 0,
            sleepers: 0,
        };
        let once = idle.set().unwrap();
        assert_eq!(once.releases, 1);
        assert_eq!(once.set(), None, "nobody asleep: sets do not add up");
        let two = Auto {
            releases: 1,
            sleepers: 2,
        };
        assert_eq!(two.set().unwrap().releases, 2);
        assert_eq!(two.set().unwrap().set(), None);
        assert_eq!(
            two.take(true),
            Some(Auto {
                releases: 0,
                sleepers: 1
            })
        );
        assert_eq!(idle.take(false), None);
        // Garbage from another process cannot overflow the arithmetic.
        for w in [u32::MAX, 0xFFFF_0000, 0x0000_FFFF] {
            let a = Auto::unpack(w);
            let _ = a.set().map(Auto::pack);
            let _ = a.take(true).map(Auto::pack);
        }
    }

    /// Review finding #6: two `set`s in quick succession, with two waiters
    /// asleep, must release both (Windows does), not one.
    #[test]
    fn two_sets_release_two_sleeping_waiters() {
        for round in 0..50 {
            let (ev, other, os_name) = open_pair(&format!("two{round}"), false);
            let other = Arc::new(other);
            let start = Arc::new(Barrier::new(3));
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let (e, start) = (other.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        e.wait(Wait::After(Duration::from_secs(10))).unwrap()
                    })
                })
                .collect();
            start.wait();
            // Both counted as asleep (a readiness signal, not a sleep).
            let deadline = Instant::now() + Duration::from_secs(10);
            while state(&ev).sleepers < 2 {
                assert!(Instant::now() < deadline, "waiters never slept");
                std::thread::yield_now();
            }
            ev.set().unwrap();
            ev.set().unwrap();
            for w in waiters {
                assert!(w.join().unwrap(), "round {round}: a set was lost");
            }
            assert_eq!(
                state(&ev),
                Auto {
                    releases: 0,
                    sleepers: 0
                }
            );
            let _ = super::super::remove_event(&os_name);
        }
    }

    #[test]
    fn a_timed_out_waiter_stops_counting_and_sets_do_not_pile_up() {
        let (ev, other, os_name) = open_pair("timeout", false);
        assert!(!other.wait(Wait::After(Duration::from_millis(20))).unwrap());
        assert_eq!(state(&ev).sleepers, 0);
        ev.set().unwrap();
        ev.set().unwrap();
        ev.set().unwrap();
        assert!(other.wait(Wait::Never).unwrap());
        assert!(!other.wait(Wait::Never).unwrap(), "three sets, one release");
        ev.set().unwrap();
        ev.reset().unwrap();
        assert!(!other.wait(Wait::Never).unwrap(), "reset withdraws it");
        let _ = super::super::remove_event(&os_name);
    }
}
