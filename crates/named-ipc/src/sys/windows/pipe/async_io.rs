//! The tokio driver of Windows pipes: native overlapped I/O on the pipe
//! handles of the blocking API (same instances, security, modes).
//!
//! Why not tokio's `named_pipe` module: it goes through mio's emulation,
//! whose writes report success once copied into mio's own buffer (before the
//! data left, so `Ok` would not mean what it means everywhere else here) and
//! whose reads go through a fixed internal buffer that does not keep message
//! boundaries (`ERROR_MORE_DATA` is not surfaced as such). Instead each
//! operation here ([`Op`]) owns its `OVERLAPPED`, its event and its buffer;
//! when it goes pending, a thread-pool wait on its event
//! (`RegisterWaitForSingleObject`, run once: [`PoolWait`]) wakes the task. Nothing in
//! flight ever points into a future's memory, so dropping a future cannot
//! free memory the kernel still writes: a read or write whose future was
//! dropped stays in flight, owned by the stream, and the next call takes
//! its result. Only dropping the stream (or listener) cancels: `CancelIoEx`,
//! then wait for the completion, then free.

use std::io;
use std::mem::ManuallyDrop;
use std::os::windows::io::OwnedHandle;
use std::sync::Mutex;
use std::task::{Context, Poll};

use windows_sys::Win32::Foundation::{
    ERROR_BROKEN_PIPE, ERROR_FILE_NOT_FOUND, ERROR_NO_DATA, ERROR_OPERATION_ABORTED,
    ERROR_PIPE_BUSY, ERROR_PIPE_CONNECTED, ERROR_PIPE_NOT_CONNECTED, ERROR_SEM_TIMEOUT, HANDLE,
    WAIT_OBJECT_0,
};
use windows_sys::Win32::Storage::FileSystem::{ReadFile, WriteFile};
use windows_sys::Win32::System::Pipes::{ConnectNamedPipe, DisconnectNamedPipe, PeekNamedPipe};
use windows_sys::Win32::System::Threading::WaitForSingleObject;

use super::super::pool_wait::{PoolWait, Times};
use super::super::{cvt, raw, Overlapped, Started, UserRepr};
use super::stream::{open_client, wait_named_pipe};
use super::{code, lock, Addr, Listener, Stream, BUSY_WAIT_MS, GROW_MIN};
use crate::pipe::{ConnectOptions, ListenerOptions, PipeMode};
use crate::proto::recv::RecvState;
use crate::proto::send::SEND_GRACE;
use crate::sys::{Backoff, Wait};

/// One overlapped operation at a time, with the buffer it owns.
pub(super) struct Op {
    /// The thread-pool wait on the operation's event, registered while an
    /// operation is in flight (unregistered before the event closes).
    wait: PoolWait,
    /// Dropped by hand in `drop`, once the kernel is done with it.
    ov: ManuallyDrop<Overlapped>,
    /// Owned by the operation while it is in flight: never touched then.
    buf: Vec<u8>,
    /// Bytes of `buf` a byte-mode read has handed out.
    pos: usize,
    /// The handle the last operation was started on (as an integer: only
    /// ever passed back to `CancelIoEx`).
    on: usize,
}

/// An operation still in flight when its `Op` is dropped (its owner did not
/// cancel it: a task dropped while its runtime shuts down, say) is cancelled
/// and waited for here, so its `OVERLAPPED` and buffer are never freed under
/// the kernel; if it does not finish within 10 s they are leaked instead.
impl Drop for Op {
    fn drop(&mut self) {
        let done = if self.in_flight() {
            self.wait.unregister();
            self.ov.abandon(self.on as HANDLE, 10_000)
        } else {
            true
        };
        if done {
            // SAFETY: dropped once, here; nothing in flight uses it.
            unsafe { ManuallyDrop::drop(&mut self.ov) };
        } else {
            std::mem::forget(std::mem::take(&mut self.buf));
        }
    }
}

impl Op {
    fn new() -> io::Result<Op> {
        Ok(Op {
            ov: ManuallyDrop::new(Overlapped::new()?),
            buf: Vec::new(),
            wait: PoolWait::new(),
            pos: 0,
            on: 0,
        })
    }

    fn in_flight(&self) -> bool {
        self.wait.is_registered()
    }

    /// Starts an operation; `Ok(None)` when it went pending (then a wait is
    /// registered and [`poll`](Self::poll) finishes it).
    ///
    /// # Safety
    /// Nothing may be in flight; every buffer `start` passes must be this
    /// op's `buf` (or none).
    unsafe fn start(
        &mut self,
        h: HANDLE,
        start: impl FnOnce(*mut windows_sys::Win32::System::IO::OVERLAPPED) -> i32,
    ) -> io::Result<Option<(u32, bool)>> {
        debug_assert!(!self.in_flight());
        self.on = h as usize;
        // SAFETY: forwarded contract; buffers are owned by self until the
        // operation completes (poll or cancel).
        match unsafe { self.ov.start(h, start) }? {
            Started::Done(n, more) => Ok(Some((n, more))),
            Started::Pending => {
                // SAFETY: the event is ours and lives as long as the op,
                // which unregisters (unregister, drop) before freeing it.
                if let Err(e) = unsafe { self.wait.register(self.ov.event(), Times::Once) } {
                    // The operation is in flight and nothing would wake us:
                    // finish it here rather than leave it behind.
                    let _ = self.ov.cancel(h);
                    return Err(e);
                }
                Ok(None)
            }
        }
    }

    /// The in-flight operation's result, or `Pending` (the task is woken
    /// when it completes).
    fn poll(&mut self, h: HANDLE, cx: &mut Context<'_>) -> Poll<io::Result<(u32, bool)>> {
        debug_assert!(self.in_flight());
        self.wait.set_waker(cx.waker());
        // Woken by the event: the operation is over and its event set, so
        // the settling wait of `result` is not needed (one call less per
        // operation on the usual path).
        let r = if self.wait.fired() {
            self.ov.outcome(h, false)
        } else {
            self.ov.result(h, false)
        };
        match r {
            Ok(None) => Poll::Pending,
            Ok(Some(r)) => {
                self.unregister();
                Poll::Ready(Ok(r))
            }
            Err(e) => {
                self.unregister();
                Poll::Ready(Err(e))
            }
        }
    }

    /// Waits (blocking) up to `ms` for the in-flight operation.
    fn wait_blocking(&self, ms: u32) -> bool {
        // SAFETY: waiting on our own event.
        unsafe { WaitForSingleObject(self.ov.event(), ms) == WAIT_OBJECT_0 }
    }

    /// Removes the registered wait, waiting for a callback that is running.
    fn unregister(&mut self) {
        self.wait.unregister();
    }

    /// Cancels the in-flight operation and waits until the kernel is done
    /// with it (`CancelIoEx`, then its completion), so its buffer and
    /// `OVERLAPPED` may be freed.
    fn cancel(&mut self, h: HANDLE) {
        if self.in_flight() {
            let _ = self.ov.cancel(h);
            self.unregister();
        }
    }
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        code(e),
        Some(ERROR_BROKEN_PIPE) | Some(ERROR_PIPE_NOT_CONNECTED) | Some(ERROR_NO_DATA)
    )
}

/// A listener whose next instance always waits for a client.
pub(crate) struct AsyncListener {
    base: Listener,
    pending: Mutex<Option<Instance>>,
}

struct Instance {
    handle: OwnedHandle,
    op: Op,
}

impl Drop for AsyncListener {
    /// The listening instance's `ConnectNamedPipe` is cancelled and waited
    /// for before its `OVERLAPPED` is freed.
    fn drop(&mut self) {
        let pending = self.pending.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(inst) = pending.as_mut() {
            inst.op.cancel(raw(&inst.handle));
        }
    }
}

impl AsyncListener {
    pub(crate) fn bind(
        name: &str,
        addr: &Addr,
        opts: &ListenerOptions,
    ) -> crate::Result<AsyncListener> {
        let base = Listener::bind(name, addr, opts)?;
        let first = match base.take_first() {
            Some(h) => Some(Instance {
                handle: h,
                op: Op::new().map_err(|e| crate::Error::from_io(e, name, "cannot listen", ""))?,
            }),
            None => None,
        };
        Ok(AsyncListener {
            base,
            pending: Mutex::new(first),
        })
    }

    /// Accepts one client. Cancel-safe: the instance stays listening (its
    /// `ConnectNamedPipe` in flight) and the next call picks it up.
    pub(crate) fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<AsyncStream>> {
        let mut pending = lock(&self.pending);
        loop {
            if pending.is_none() {
                match self.base.new_instance() {
                    Ok(h) => {
                        *pending = Some(Instance {
                            handle: h,
                            op: Op::new()?,
                        })
                    }
                    Err(e) if code(&e) == Some(ERROR_PIPE_BUSY) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::WouldBlock,
                            format!(
                                "every instance of {} is taken by another server's clients",
                                self.base.display()
                            ),
                        )))
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            let Some(inst) = pending.as_mut() else {
                continue;
            };
            let h = raw(&inst.handle);
            let r = if inst.op.in_flight() {
                match inst.op.poll(h, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r.map(|_| ()),
                }
            } else {
                // SAFETY: nothing in flight; ConnectNamedPipe uses no buffer.
                match unsafe { inst.op.start(h, |ov| ConnectNamedPipe(h, ov)) } {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => continue,
                    Err(e) if code(&e) == Some(ERROR_PIPE_CONNECTED) => Ok(()),
                    Err(e) => Err(e),
                }
            };
            match r {
                Ok(()) => {}
                // The thread that started the wait for a client has exited
                // (Windows cancels a thread's I/O when the thread ends: the
                // runtime thread that polled an earlier accept): wait again.
                Err(e) if code(&e) == Some(ERROR_OPERATION_ABORTED) => continue,
                Err(e) if is_closed(&e) => {
                    // A client connected and left before we saw it: recycle.
                    // SAFETY: our pipe instance.
                    unsafe { DisconnectNamedPipe(h) };
                    continue;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
            let Some(inst) = pending.take() else {
                continue;
            };
            // Keep an instance for the next client before handing this one
            // out, so clients never see "not found".
            if let Ok(h) = self.base.new_instance() {
                if let Ok(op) = Op::new() {
                    *pending = Some(Instance { handle: h, op });
                }
            }
            // Nothing is in flight on the connected instance's op any more.
            let Instance { handle, op } = inst;
            drop(op);
            let s = self.base.connected_stream(handle)?;
            return Poll::Ready(AsyncStream::new(s));
        }
    }

    pub(crate) fn display(&self) -> String {
        self.base.display()
    }
}

/// One message send: the message, and whether its write was started.
pub(crate) struct SendOp<'a> {
    msg: &'a [u8],
    started: bool,
}

impl SendOp<'_> {
    /// The write was issued: the stream owns a copy and completes it.
    pub(crate) fn started(&self) -> bool {
        self.started
    }
}

struct Rx {
    op: Op,
    st: RecvState,
    /// Message mode `Read`: a whole message being handed out in pieces.
    rest: Vec<u8>,
    rest_pos: usize,
}

struct Tx {
    op: Op,
    /// The length of the write in flight.
    len: usize,
    /// The failure of a write whose sender had stopped waiting, for the next
    /// send or flush.
    failed: Option<io::Error>,
}

/// A connected pipe end driven by overlapped operations.
pub(crate) struct AsyncStream {
    /// The blocking stream: handle, label, peer queries. `None` only in drop.
    s: Option<Stream>,
    mode: PipeMode,
    rx: Mutex<Rx>,
    tx: Mutex<Tx>,
}

impl Drop for AsyncStream {
    fn drop(&mut self) {
        let Some(s) = self.s.take() else { return };
        let h = s.h();
        let rx = self.rx.get_mut().unwrap_or_else(|p| p.into_inner());
        rx.op.cancel(h);
        let tx = self.tx.get_mut().unwrap_or_else(|p| p.into_inner());
        if !tx.op.in_flight() {
            return;
        }
        // A message still going out: its write gets the grace period, on a
        // task when there is a runtime (a reader on the same thread can
        // then drain it), else here; then it is cancelled and waited for.
        let mut op = match Op::new() {
            Ok(fresh) => std::mem::replace(&mut tx.op, fresh),
            Err(_) => {
                tx.op.wait_blocking(SEND_GRACE.as_millis() as u32);
                tx.op.cancel(h);
                return;
            }
        };
        match ::tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = ::tokio::time::timeout(
                        SEND_GRACE,
                        std::future::poll_fn(|cx| op.poll(s.h(), cx)),
                    )
                    .await;
                    op.cancel(s.h());
                    drop(s);
                });
            }
            Err(_) => {
                op.wait_blocking(SEND_GRACE.as_millis() as u32);
                op.cancel(h);
                drop(s);
            }
        }
    }
}

impl AsyncStream {
    pub(crate) fn new(s: Stream) -> io::Result<AsyncStream> {
        let st = RecvState::new(s.label.clone(), s.max_message());
        Ok(AsyncStream {
            mode: s.mode(),
            s: Some(s),
            rx: Mutex::new(Rx {
                op: Op::new()?,
                st,
                rest: Vec::new(),
                rest_pos: 0,
            }),
            tx: Mutex::new(Tx {
                op: Op::new()?,
                len: 0,
                failed: None,
            }),
        })
    }

    /// Back to the blocking stream (for a handshake run on a blocking
    /// thread). Nothing may be in flight.
    pub(crate) fn into_sync(mut self) -> io::Result<Stream> {
        let busy = self.rx.get_mut().map_or(true, |rx| rx.op.in_flight())
            || self.tx.get_mut().map_or(true, |tx| tx.op.in_flight());
        match self.s.take() {
            Some(s) if !busy => Ok(s),
            s => {
                self.s = s;
                Err(io::Error::other(
                    "the stream has an operation in flight; it cannot leave the runtime",
                ))
            }
        }
    }

    fn sys(&self) -> &Stream {
        match &self.s {
            Some(s) => s,
            None => unreachable!("the stream is taken only by drop"),
        }
    }

    fn h(&self) -> HANDLE {
        self.sys().h()
    }

    /// Connects as the blocking client does: a missing pipe is waited for on
    /// the tokio timer (backoff to 50 ms), a busy one in `WaitNamedPipeW` on
    /// the blocking pool, in slices of at most 50 ms so a cancelled connect
    /// leaves nothing running for long.
    pub(crate) async fn connect(
        addr: &Addr,
        opts: &ConnectOptions,
        name: &str,
        wait: Wait,
    ) -> io::Result<AsyncStream> {
        let mut backoff = Backoff::new();
        let busy = match wait {
            Wait::Never => Wait::timeout(Some(std::time::Duration::from_millis(u64::from(
                BUSY_WAIT_MS,
            )))),
            w => w,
        };
        let handle = loop {
            let e = match open_client(addr, opts) {
                Ok(h) => break h,
                Err(e) => e,
            };
            match code(&e) {
                Some(ERROR_PIPE_BUSY) => {
                    let ms = match busy.remaining_ms_ceil() {
                        Some(0) => return Err(e),
                        Some(ms) => ms.min(u64::from(BUSY_WAIT_MS)) as u32,
                        None => BUSY_WAIT_MS,
                    };
                    let wide = addr.wide.clone();
                    let waited =
                        ::tokio::task::spawn_blocking(move || wait_named_pipe(&wide, ms)).await;
                    match waited {
                        Ok(Ok(())) => {}
                        Ok(Err(we)) if code(&we) == Some(ERROR_SEM_TIMEOUT) => {}
                        // Vanished or closed instance: retry within the deadline.
                        Ok(Err(_)) | Err(_) => {
                            if !backoff.sleep_async(busy).await {
                                return Err(e);
                            }
                        }
                    }
                }
                Some(ERROR_FILE_NOT_FOUND) => {
                    if !backoff.sleep_async(wait).await {
                        return Err(e);
                    }
                }
                _ => return Err(e),
            }
        };
        AsyncStream::new(Stream::client(handle, addr, opts, name)?)
    }

    /// Bytes left in the message being read (`PeekNamedPipe`).
    fn left_in_message(&self) -> io::Result<u32> {
        let mut left = 0u32;
        // SAFETY: a peek without buffer; left is a valid out-pointer.
        cvt(unsafe {
            PeekNamedPipe(
                self.h(),
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut left,
            )
        })?;
        Ok(left)
    }

    /// Starts a `ReadFile` into the spare capacity of the op's buffer
    /// (growing it first when full); the result when it completed at once.
    fn start_read(&self, rx: &mut Rx, at_least: usize) -> io::Result<Option<(u32, bool)>> {
        let op = &mut rx.op;
        if op.buf.capacity() - op.buf.len() < at_least.max(1) {
            op.buf.reserve(at_least.max(1));
        }
        let spare = op.buf.spare_capacity_mut();
        let len = spare.len().min(u32::MAX as usize) as u32;
        let p: *mut u8 = spare.as_mut_ptr().cast();
        let h = self.h();
        // SAFETY: nothing in flight on this op (checked by callers); the
        // buffer is the op's own and is not touched until the read
        // completes or is cancelled.
        unsafe { op.start(h, |ov| ReadFile(h, p, len, std::ptr::null_mut(), ov)) }
    }

    /// Receives one whole native message into `out`. The message collects
    /// in the read operation's own buffer, which is swapped into `out` when
    /// complete: a dropped call loses nothing and the kernel never writes
    /// into `out`.
    pub(crate) fn poll_recv_into(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Poll<io::Result<Option<usize>>> {
        let mut rx = lock(&self.rx);
        out.clear();
        rx.st.check()?;
        loop {
            let r = if rx.op.in_flight() {
                let h = self.h();
                match rx.op.poll(h, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                }
            } else {
                let have = rx.op.buf.len();
                let want = match rx.st.total() {
                    Some(t) => ((t - have as u64) as usize).clamp(1, GROW_MIN.max(have)),
                    None => 4096,
                };
                match self.start_read(&mut rx, want) {
                    Ok(None) => continue,
                    Ok(Some(r)) => Ok(r),
                    Err(e) => Err(e),
                }
            };
            match r {
                Ok((n, more)) => {
                    let len = rx.op.buf.len();
                    // SAFETY: the read that just completed wrote n bytes
                    // (at most the spare length it was given) right after
                    // the initialised part.
                    unsafe { rx.op.buf.set_len(len + n as usize) };
                    let total = rx.op.buf.len() as u64;
                    if more {
                        if !rx.st.is_mid() {
                            let left = self.left_in_message()?;
                            rx.st.start(Some(total + u64::from(left)))?;
                        }
                        continue;
                    }
                    if !rx.st.is_mid() {
                        rx.st.start(Some(total))?;
                    }
                    rx.st.finish();
                    std::mem::swap(out, &mut rx.op.buf);
                    rx.op.buf.clear();
                    return Poll::Ready(Ok(Some(out.len())));
                }
                Err(e) if is_closed(&e) => {
                    let got = rx.op.buf.len() as u64;
                    rx.op.buf.clear();
                    return Poll::Ready(rx.st.end_of_stream(Some(got)));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// `Read`: bytes (byte mode) or message payloads without boundaries.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.mode == PipeMode::Message {
            loop {
                {
                    let mut rx = lock(&self.rx);
                    if rx.rest_pos < rx.rest.len() {
                        let n = buf.len().min(rx.rest.len() - rx.rest_pos);
                        buf[..n].copy_from_slice(&rx.rest[rx.rest_pos..rx.rest_pos + n]);
                        rx.rest_pos += n;
                        return Poll::Ready(Ok(n));
                    }
                }
                let mut m = Vec::new();
                match std::task::ready!(self.poll_recv_into(cx, &mut m))? {
                    None => return Poll::Ready(Ok(0)),
                    Some(_) => {
                        let mut rx = lock(&self.rx);
                        rx.rest = m;
                        rx.rest_pos = 0;
                    }
                }
            }
        }
        let mut rx = lock(&self.rx);
        loop {
            if rx.op.in_flight() {
                let h = self.h();
                match std::task::ready!(rx.op.poll(h, cx)) {
                    Ok((n, _)) => {
                        let len = rx.op.buf.len();
                        // SAFETY: the completed read wrote n bytes after the
                        // initialised part.
                        unsafe { rx.op.buf.set_len(len + n as usize) };
                    }
                    Err(e) if is_closed(&e) => return Poll::Ready(Ok(0)),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            let op = &mut rx.op;
            if op.pos < op.buf.len() {
                let n = buf.len().min(op.buf.len() - op.pos);
                buf[..n].copy_from_slice(&op.buf[op.pos..op.pos + n]);
                op.pos += n;
                return Poll::Ready(Ok(n));
            }
            op.buf.clear();
            op.pos = 0;
            match self.start_read(&mut rx, buf.len().min(GROW_MIN)) {
                Ok(None) => {}
                Ok(Some((n, _))) => {
                    let len = rx.op.buf.len();
                    // SAFETY: the read wrote n bytes after the initialised part.
                    unsafe { rx.op.buf.set_len(len + n as usize) };
                }
                Err(e) if is_closed(&e) => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// A message send.
    pub(crate) fn send_op<'a>(&self, msg: &'a [u8]) -> io::Result<SendOp<'a>> {
        if u32::try_from(msg.len()).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a single write is limited to 4 GiB - 1 bytes",
            ));
        }
        Ok(SendOp {
            msg,
            started: false,
        })
    }

    /// Waits for a write left in flight by an earlier (abandoned) call and
    /// reports its failure.
    fn poll_previous(&self, tx: &mut Tx, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if tx.op.in_flight() {
            let h = self.h();
            let r = std::task::ready!(tx.op.poll(h, cx));
            if let Err(e) = Self::write_result(tx, r) {
                tx.failed = Some(e);
            }
        }
        match tx.failed.take() {
            Some(e) => Poll::Ready(Err(io::Error::new(
                e.kind(),
                format!(
                    "{}: an earlier message, whose sender stopped waiting, failed: {e}",
                    self.sys().label
                ),
            ))),
            None => Poll::Ready(Ok(())),
        }
    }

    fn write_result(tx: &Tx, r: io::Result<(u32, bool)>) -> io::Result<()> {
        let (n, _) = r?;
        if n as usize != tx.len {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the pipe took only part of the message",
            ));
        }
        Ok(())
    }

    /// Starts one `WriteFile` of a copy of `data` (owned by the operation).
    /// `Ok(true)`: it completed at once.
    fn start_write(&self, tx: &mut Tx, data: &[u8]) -> io::Result<bool> {
        tx.op.buf.clear();
        tx.op.buf.extend_from_slice(data);
        tx.len = data.len();
        let h = self.h();
        let p = tx.op.buf.as_ptr();
        let len = data.len() as u32;
        // SAFETY: nothing in flight; the buffer is the op's own copy, kept
        // until the write completes or is cancelled.
        match unsafe {
            tx.op
                .start(h, |ov| WriteFile(h, p, len, std::ptr::null_mut(), ov))
        }? {
            Some(r) => Self::write_result(tx, Ok(r)).map(|()| true),
            None => Ok(false),
        }
    }

    /// Sends `op`'s message as one `WriteFile`, after any write still in
    /// flight; `Ok` once the write completed.
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        op: &mut SendOp<'_>,
    ) -> Poll<io::Result<()>> {
        let mut tx = lock(&self.tx);
        if !op.started {
            std::task::ready!(self.poll_previous(&mut tx, cx))?;
            if self.start_write(&mut tx, op.msg)? {
                return Poll::Ready(Ok(()));
            }
            op.started = true;
        }
        if !tx.op.in_flight() {
            // Ours completed and was observed by a flush.
            return Poll::Ready(tx.failed.take().map_or(Ok(()), Err));
        }
        let h = self.h();
        let r = std::task::ready!(tx.op.poll(h, cx));
        Poll::Ready(Self::write_result(&tx, r))
    }

    /// The sender stopped waiting: a started write stays in flight, owned by
    /// the stream, and the next send or flush waits for it.
    pub(crate) fn abandon_send(&self, _op: &SendOp<'_>) {}

    /// Byte mode `write`: waits for the previous write, then hands a copy
    /// of (up to 1 MiB of) `buf` to a new one and reports it written;
    /// `poll_flush` waits for it.
    pub(crate) fn poll_write_bytes(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut tx = lock(&self.tx);
        std::task::ready!(self.poll_previous(&mut tx, cx))?;
        let n = buf.len().min(1 << 20);
        self.start_write(&mut tx, &buf[..n])?;
        Poll::Ready(Ok(n))
    }

    /// Waits for the write in flight, if any.
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut tx = lock(&self.tx);
        self.poll_previous(&mut tx, cx)
    }

    /// Windows pipes cannot half-close.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        Ok(())
    }

    pub(crate) fn peer_pid(&self) -> io::Result<u32> {
        self.sys().peer_pid()
    }

    pub(crate) fn peer_user(&self) -> io::Result<UserRepr> {
        self.sys().peer_user()
    }

    pub(crate) fn pipe_type(&self) -> io::Result<PipeMode> {
        self.sys().pipe_type()
    }
}
