//! Compile-time checks of which public types cross threads. A change that
//! makes one of them lose (or gain) `Send`/`Sync` fails the build here, not in
//! a user's program.
#![allow(dead_code)]

use crate::channel::{
    ChannelOptions, InPlace, InPlaceMut, ShmListener, ShmReceiver, ShmSender, ShmStream,
};
use crate::pipe::{
    Access, ConnectOptions, Direction, FrameDecoder, Framed, Incoming, ListenerOptions, PipeEntry,
    PipeListener, PipeMode, PipeStream, Received, UserId,
};
use crate::shm::{OwnerState, Protection, SegmentEntry, SegmentOptions, ShmSegment};
use crate::sync::{EventMode, NamedEvent, NamedMutex, NamedMutexGuard};
use crate::{Error, ErrorKind, Security};

const fn send_sync<T: Send + Sync>() {}
const fn send<T: Send>() {}

/// Compiles only if `T` is *not* `Send`: with `Send`, both impls apply and
/// the call is ambiguous.
trait NotSend<A> {
    fn check() {}
}
impl<T: ?Sized> NotSend<()> for T {}
impl<T: ?Sized + Send> NotSend<u8> for T {}

/// Compiles only if `T` is *not* `Sync`.
trait NotSync<A> {
    fn check() {}
}
impl<T: ?Sized> NotSync<()> for T {}
impl<T: ?Sized + Sync> NotSync<u8> for T {}

const _: () = {
    // Shared between threads as they are (`&self` APIs).
    send_sync::<PipeListener>();
    send_sync::<PipeStream>();
    send_sync::<ShmListener>();
    send_sync::<ShmStream>();
    send_sync::<ShmSegment>();
    send_sync::<NamedMutex>();
    send_sync::<NamedEvent>();
    send_sync::<Incoming<'static>>();
    // Plain values.
    send_sync::<ListenerOptions>();
    send_sync::<ConnectOptions>();
    send_sync::<ChannelOptions>();
    send_sync::<SegmentOptions>();
    send_sync::<PipeMode>();
    send_sync::<Direction>();
    send_sync::<Access>();
    send_sync::<Protection>();
    send_sync::<Security>();
    send_sync::<EventMode>();
    send_sync::<Received>();
    send_sync::<PipeEntry>();
    send_sync::<SegmentEntry>();
    send_sync::<OwnerState>();
    send_sync::<UserId>();
    send_sync::<Error>();
    send_sync::<ErrorKind>();
    send_sync::<FrameDecoder>();
    send_sync::<Framed<std::io::Cursor<Vec<u8>>>>();
    // Owned halves: each moves to its own thread.
    send::<ShmSender>();
    send::<ShmReceiver>();
};

/// Never `Send`: the OS requires the locking thread to unlock, and views of
/// shared memory must not leave the closure they were lent to.
fn not_send() {
    <NamedMutexGuard<'static> as NotSend<_>>::check();
    <InPlace<'static> as NotSend<_>>::check();
    <InPlaceMut<'static> as NotSend<_>>::check();
    <InPlace<'static> as NotSync<_>>::check();
    <InPlaceMut<'static> as NotSync<_>>::check();
}
