//! One connected end: native messages or bytes, with overlapped I/O that
//! completes (or is cancelled and waited for) within each call.

use std::io;
use std::os::windows::io::OwnedHandle;
use std::sync::Mutex;
use std::time::Instant;

use windows_sys::Win32::Foundation::{
    ERROR_BROKEN_PIPE, ERROR_FILE_NOT_FOUND, ERROR_OPERATION_ABORTED, ERROR_PIPE_BUSY,
    ERROR_PIPE_NOT_CONNECTED, ERROR_SEM_TIMEOUT, GENERIC_READ, GENERIC_WRITE, HANDLE,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FlushFileBuffers, ReadFile, WriteFile, FILE_FLAG_OVERLAPPED, FILE_READ_ATTRIBUTES,
    FILE_WRITE_ATTRIBUTES, OPEN_EXISTING, SECURITY_IDENTIFICATION, SECURITY_SQOS_PRESENT,
};
use windows_sys::Win32::System::Pipes::{
    DisconnectNamedPipe, GetNamedPipeInfo, PeekNamedPipe, SetNamedPipeHandleState, WaitNamedPipeW,
    PIPE_READMODE_MESSAGE, PIPE_TYPE_MESSAGE,
};

use super::super::{cvt, owned, raw, Overlapped, Started};
use crate::pipe::framing::Received;
use crate::pipe::{Access, ConnectOptions, PipeMode};
use crate::proto::recv::RecvState;
use crate::proto::send::{Outgoing, SendState, Sink, SEND_GRACE};
use crate::sys::{Backoff, Wait};

use super::{code, lock, Addr, BUSY_WAIT_MS, GROW_MIN};

/// One `CreateFileW` of the pipe, for overlapped I/O, with the client's
/// security quality of service (identification only).
pub(crate) fn open_client(addr: &Addr, opts: &ConnectOptions) -> io::Result<OwnedHandle> {
    let access = match opts.access {
        Access::ReadWrite => GENERIC_READ | GENERIC_WRITE,
        Access::Read => GENERIC_READ | FILE_WRITE_ATTRIBUTES,
        Access::Write => GENERIC_WRITE | FILE_READ_ATTRIBUTES,
    };
    // SAFETY: the name is NUL-terminated; no security attributes.
    let h = unsafe {
        CreateFileW(
            addr.wide.as_ptr(),
            access,
            0,
            std::ptr::null(),
            OPEN_EXISTING,
            FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
            std::ptr::null_mut(),
        )
    };
    owned(h, INVALID_HANDLE_VALUE)
}

/// `WaitNamedPipeW`: sleeps in the kernel until an instance is free or `ms`
/// pass (`ERROR_SEM_TIMEOUT`).
pub(crate) fn wait_named_pipe(wide: &[u16], ms: u32) -> io::Result<()> {
    // SAFETY: the name is NUL-terminated.
    cvt(unsafe { WaitNamedPipeW(wide.as_ptr(), ms) })
}

struct Rx {
    ov: Overlapped,
    /// Resumable receive: the part of a message an interrupted call read,
    /// whether we are inside a message (after `ERROR_MORE_DATA`), the limit.
    st: RecvState,
}

struct Tx {
    ov: Overlapped,
    st: SendState,
}

/// One connected end of a named pipe. Every read and write completes (or is
/// cancelled and waited for) within the call that started it, so no buffer is
/// ever lent to the kernel beyond a call, and dropping the stream has nothing
/// in flight to cancel.
pub(crate) struct Stream {
    handle: OwnedHandle,
    pub(super) server: bool,
    /// A client of a pipe on another machine.
    pub(super) remote: bool,
    mode: PipeMode,
    /// What the stream is, for messages: `pipe "jobs"`.
    pub(super) label: std::sync::Arc<str>,
    rx: Mutex<Rx>,
    tx: Mutex<Tx>,
}

impl Stream {
    pub(super) fn new(
        handle: OwnedHandle,
        rx_ov: Overlapped,
        server: bool,
        mode: PipeMode,
        max_message: u32,
        label: String,
    ) -> io::Result<Stream> {
        let label: std::sync::Arc<str> = label.into();
        Ok(Stream {
            handle,
            server,
            remote: false,
            mode,
            label: label.clone(),
            rx: Mutex::new(Rx {
                ov: rx_ov,
                st: RecvState::new(label.clone(), max_message),
            }),
            tx: Mutex::new(Tx {
                ov: Overlapped::new()?,
                st: SendState::new(label),
            }),
        })
    }

    pub(crate) fn connect(
        addr: &Addr,
        opts: &ConnectOptions,
        name: &str,
        wait: Wait,
    ) -> io::Result<Stream> {
        let mut backoff = Backoff::new();
        let mut waited_default = false;
        let handle = loop {
            let e = match open_client(addr, opts) {
                Ok(h) => break h,
                Err(e) => e,
            };
            match code(&e) {
                Some(ERROR_PIPE_BUSY) => {
                    // Wait for an instance; WaitNamedPipe sleeps in the kernel.
                    // Without a timeout, briefly: NMPWAIT_USE_DEFAULT_WAIT would
                    // wait the server's nDefaultTimeOut, which the server
                    // chooses (up to ~49 days).
                    let ms = match wait {
                        Wait::Never if !waited_default => {
                            waited_default = true;
                            BUSY_WAIT_MS
                        }
                        Wait::Never => return Err(e),
                        w => match w.remaining_ms_ceil() {
                            Some(0) => return Err(e),
                            Some(ms) => ms.min(u64::from(u32::MAX - 2)) as u32,
                            None => u32::MAX - 1,
                        },
                    };
                    if let Err(we) = wait_named_pipe(&addr.wide, ms) {
                        if code(&we) == Some(ERROR_SEM_TIMEOUT) {
                            return Err(e);
                        }
                        // The pipe vanished (server restarting), or the instance we
                        // waited for closed (Wine: ERROR_HANDLES_CLOSED): try again
                        // within the deadline.
                        if !backoff.sleep(wait) {
                            return Err(if code(&we) == Some(ERROR_FILE_NOT_FOUND) {
                                we
                            } else {
                                e
                            });
                        }
                    }
                }
                Some(ERROR_FILE_NOT_FOUND) => {
                    if !backoff.sleep(wait) {
                        return Err(e);
                    }
                }
                _ => return Err(e),
            }
        };
        Stream::client(handle, addr, opts, name)
    }

    /// The stream of a client handle just opened: message read mode when
    /// asked for.
    pub(crate) fn client(
        handle: OwnedHandle,
        addr: &Addr,
        opts: &ConnectOptions,
        name: &str,
    ) -> io::Result<Stream> {
        if opts.mode == PipeMode::Message && opts.access != Access::Write {
            let mode = PIPE_READMODE_MESSAGE;
            // SAFETY: handle is our open pipe; mode lives for the call.
            if let Err(e) = cvt(unsafe {
                SetNamedPipeHandleState(raw(&handle), &mode, std::ptr::null(), std::ptr::null())
            }) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the server created a byte-mode pipe, so message mode is not available ({e}); connect in byte mode"),
                ));
            }
        }
        let label = format!("pipe {name:?}");
        let mut s = Stream::new(
            handle,
            Overlapped::new()?,
            false,
            opts.mode,
            opts.max_message,
            label,
        )?;
        s.remote = addr.remote;
        Ok(s)
    }

    /// The stream's wire mode (for the async driver).
    #[cfg(feature = "tokio")]
    pub(crate) fn mode(&self) -> PipeMode {
        self.mode
    }

    /// The receive size limit (for the async driver).
    #[cfg(feature = "tokio")]
    pub(crate) fn max_message(&self) -> u32 {
        lock(&self.rx).st.max()
    }

    pub(super) fn h(&self) -> HANDLE {
        raw(&self.handle)
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

    /// One overlapped `ReadFile` into `buf`, completed or cancelled per `wait`.
    fn read_once(&self, rx: &Rx, buf: &mut [u8], wait: Wait) -> io::Result<(u32, bool)> {
        // SAFETY: buf is valid for writes of its length for this whole call.
        unsafe { self.read_raw(rx, buf.as_mut_ptr(), buf.len(), wait) }
    }

    /// Reads into the spare capacity of `out` and extends its length by what
    /// arrived, without initialising the spare part first.
    fn read_spare(&self, rx: &Rx, out: &mut Vec<u8>, wait: Wait) -> io::Result<(u32, bool)> {
        let spare = out.spare_capacity_mut();
        // SAFETY: the spare capacity is valid for writes of its length while
        // `out` is borrowed, which covers the whole call.
        let r = unsafe { self.read_raw(rx, spare.as_mut_ptr().cast(), spare.len(), wait) };
        if let Ok((n, _)) = r {
            // SAFETY: the OS wrote n (<= spare length) bytes right after the
            // initialised part.
            unsafe { out.set_len(out.len() + n as usize) };
        }
        r
    }

    /// # Safety
    /// `p` must be valid for writes of `len` bytes until this returns.
    unsafe fn read_raw(
        &self,
        rx: &Rx,
        p: *mut u8,
        len: usize,
        wait: Wait,
    ) -> io::Result<(u32, bool)> {
        let len = len.min(u32::MAX as usize) as u32;
        let h = self.h();
        // SAFETY: no operation is in flight on rx.ov (we hold the lock and every
        // read completes or is cancelled within this call); p is valid per the
        // caller's contract until then.
        unsafe {
            rx.ov
                .run(h, wait, |ov| ReadFile(h, p, len, std::ptr::null_mut(), ov))
        }
    }

    fn is_closed(e: &io::Error) -> bool {
        code(e) == Some(ERROR_BROKEN_PIPE) || code(e) == Some(ERROR_PIPE_NOT_CONNECTED)
    }

    /// Receives one whole native message into `out` (replacing its contents).
    /// The buffer grows as the message arrives; a message over the limit is
    /// refused as soon as its size is known.
    pub(crate) fn recv_msg(&self, out: &mut Vec<u8>, wait: Wait) -> io::Result<Option<usize>> {
        let mut rx = lock(&self.rx);
        rx.st.begin(out)?;
        let mut wait = wait;
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                // A message in several reads: they share one deadline.
                wait.anchor();
            }
            if out.capacity() == out.len() {
                let left = rx.st.total().map_or(4096, |t| t - out.len() as u64);
                out.reserve((left as usize).clamp(1, GROW_MIN.max(out.len())));
            }
            match self.read_spare(&rx, out, wait) {
                Ok((n, false)) => {
                    if !rx.st.is_mid() {
                        rx.st.start(Some(out.len() as u64))?;
                    }
                    rx.st.took(n as usize);
                    self.check_complete(&mut rx.st)?;
                    rx.st.finish();
                    return Ok(Some(out.len()));
                }
                Ok((n, true)) => {
                    if !rx.st.is_mid() {
                        let left = self.left_in_message()?;
                        rx.st.start(Some(out.len() as u64 + u64::from(left)))?;
                    }
                    rx.st.took(n as usize);
                }
                Err(e) if Self::is_closed(&e) => {
                    return rx.st.end_of_stream(Some(out.len() as u64))
                }
                Err(e) => {
                    // Keep what arrived for the next call.
                    rx.st.interrupt(out);
                    return Err(e);
                }
            }
        }
    }

    /// Reads as much of the current (or next) message as fits into `out`
    /// (`ERROR_MORE_DATA` semantics).
    pub(crate) fn recv_msg_slice(
        &self,
        out: &mut [u8],
        wait: Wait,
    ) -> io::Result<Option<Received>> {
        let mut rx = lock(&self.rx);
        rx.st.check()?;
        if rx.st.stashed() > 0 {
            let n = rx.st.take_stash(out);
            let left = if rx.st.is_mid() {
                u64::from(self.left_in_message()?)
            } else {
                0
            };
            let remaining = rx.st.stashed() as u64 + left;
            if remaining == 0 {
                rx.st.finish();
            }
            return Ok(Some(Received { len: n, remaining }));
        }
        match self.read_once(&rx, out, wait) {
            Ok((n, false)) => {
                if !rx.st.is_mid() {
                    rx.st.start(Some(u64::from(n)))?;
                }
                rx.st.took(n as usize);
                self.check_complete(&mut rx.st)?;
                rx.st.finish();
                Ok(Some(Received {
                    len: n as usize,
                    remaining: 0,
                }))
            }
            Ok((n, true)) => {
                let left = self.left_in_message()?;
                if !rx.st.is_mid() {
                    rx.st.start(Some(u64::from(n) + u64::from(left)))?;
                }
                rx.st.took(n as usize);
                Ok(Some(Received {
                    len: n as usize,
                    remaining: u64::from(left),
                }))
            }
            Err(e) if Self::is_closed(&e) => rx.st.end_of_stream(None).map(|_| None),
            Err(e) => Err(e),
        }
    }

    /// A message read to its end must have the length the pipe announced
    /// when it was first read in part (`ERROR_MORE_DATA` and
    /// `PeekNamedPipe`). A shorter one was cut by its writer (a write
    /// cancelled after part of it was read): the rest never comes, and what
    /// follows belongs to another message, so the stream is poisoned rather
    /// than handing out the cut message, or gluing the next one to it.
    fn check_complete(&self, st: &mut RecvState) -> io::Result<()> {
        match st.total() {
            Some(total) if st.got() != total => {
                let got = st.got();
                Err(st.fail(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: the writer gave up in the middle of a {total}-byte message \
                         ({got} bytes came); the stream cannot be trusted to be at a \
                         message boundary any more — reconnect",
                        self.label
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn read(&self, buf: &mut [u8], wait: Wait) -> io::Result<usize> {
        if self.mode == PipeMode::Message {
            // Message bytes without boundaries; skip empty messages (a 0 would
            // read as end of stream). With a deadline, the loop ends with it.
            let mut wait = wait;
            loop {
                match self.recv_msg_slice(buf, wait)? {
                    None => return Ok(0),
                    Some(r) if r.len == 0 && r.remaining == 0 && !buf.is_empty() => {
                        wait.anchor();
                        continue;
                    }
                    Some(r) => return Ok(r.len),
                }
            }
        }
        let rx = lock(&self.rx);
        match self.read_once(&rx, buf, wait) {
            Ok((n, _)) => Ok(n as usize),
            Err(e) if Self::is_closed(&e) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// One `WriteFile` of `data`, completed — or cancelled and waited for —
    /// before returning, so the kernel never holds our buffer past the call.
    /// Returns the bytes written (fewer only if a cancel cut it).
    fn write_once(&self, ov: &Overlapped, data: &[u8], wait: Wait) -> io::Result<usize> {
        let len = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a single write is limited to 4 GiB - 1 bytes",
            )
        })?;
        let h = self.h();
        let p = data.as_ptr();
        // SAFETY: nothing is in flight on `ov` (the caller holds the tx lock,
        // and every write completes or is cancelled within `run`); `data`
        // outlives the call.
        let (n, _) =
            unsafe { ov.run(h, wait, |ov| WriteFile(h, p, len, std::ptr::null_mut(), ov)) }?;
        Ok(n as usize)
    }

    /// Sends one native message: all of it or, if the wait runs out before it
    /// left, none (see [`crate::proto::send`]).
    pub(crate) fn send_msg(&self, msg: &[u8], wait: Wait) -> io::Result<()> {
        let mut tx = lock(&self.tx);
        let Tx { ov, st } = &mut *tx;
        let mut sink = MessageSink {
            stream: self,
            ov,
            cut: false,
        };
        st.send(&mut sink, &mut Outgoing::raw(msg), wait)
    }

    pub(crate) fn write(&self, buf: &[u8], wait: Wait) -> io::Result<usize> {
        if self.mode == PipeMode::Message {
            return self.send_msg(buf, wait).map(|()| buf.len());
        }
        let tx = lock(&self.tx);
        tx.st.check()?;
        let n = buf.len().min(u32::MAX as usize);
        self.write_once(&tx.ov, &buf[..n], wait)
    }

    /// Byte mode: small buffers are joined into one `WriteFile` (so a frame's
    /// size and payload travel together), large ones go one at a time
    /// (`Write` semantics). Message mode: the buffers as one message.
    pub(crate) fn write_vectored(
        &self,
        bufs: &[std::io::IoSlice<'_>],
        wait: Wait,
    ) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.mode == PipeMode::Message || (bufs.len() > 1 && total <= GROW_MIN) {
            let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            return self.write(&joined, wait);
        }
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.write(b, wait),
            None => Ok(0),
        }
    }

    /// Windows waits per call (the overlapped operation's event), so the
    /// handle keeps no timeout of its own.
    pub(crate) fn set_read_timeout(&self, _d: Option<std::time::Duration>) -> io::Result<()> {
        Ok(())
    }

    /// See [`set_read_timeout`](Self::set_read_timeout).
    pub(crate) fn set_write_timeout(&self, _d: Option<std::time::Duration>) -> io::Result<()> {
        Ok(())
    }

    /// Writes complete within the calls that start them, so there is nothing
    /// left to push; this reports a sending side closed by a cut message.
    pub(crate) fn flush(&self, _wait: Wait) -> io::Result<()> {
        lock(&self.tx).st.check()
    }

    pub(crate) fn disconnect(&self) -> io::Result<()> {
        self.flush(Wait::Block)?;
        if self.server {
            // SAFETY: our pipe handle.
            cvt(unsafe { FlushFileBuffers(self.h()) })?;
            // SAFETY: our pipe handle.
            cvt(unsafe { DisconnectNamedPipe(self.h()) })?;
        }
        Ok(())
    }

    /// The pipe's type (`GetNamedPipeInfo`), which decides how writes travel
    /// whatever this end's read mode.
    pub(crate) fn pipe_type(&self) -> io::Result<PipeMode> {
        let mut flags = 0u32;
        // SAFETY: our pipe handle; flags is a valid out-pointer, the other
        // outputs are optional and not asked for.
        cvt(unsafe {
            GetNamedPipeInfo(
                self.h(),
                &mut flags,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        })?;
        Ok(if flags & PIPE_TYPE_MESSAGE != 0 {
            PipeMode::Message
        } else {
            PipeMode::Byte
        })
    }
}

/// A message-mode pipe as a [`Sink`]: one `WriteFile` per message. A
/// message the pipe took only part of (the write timed out after a reader had
/// taken some of it, and the cancel left the rest) cannot be resumed — its
/// rest would arrive as another message — so the driver poisons the sending
/// side: no later message follows the cut one. A server also disconnects the
/// client, which then sees the pipe break; a client cannot close only its
/// sending side on Windows, so its server sees the cut message never finish
/// until the client drops the stream.
struct MessageSink<'a> {
    stream: &'a Stream,
    ov: &'a Overlapped,
    /// A timed-out write was cancelled and Windows said nothing was taken,
    /// which it also says of a write a reader had taken part of.
    cut: bool,
}

impl Sink for MessageSink<'_> {
    fn write(&mut self, out: &Outgoing<'_>, wait: &mut Wait) -> io::Result<usize> {
        if out.sent() > 0 || self.cut {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the write timed out after the pipe had taken part of the message",
            ));
        }
        let [_, body] = out.rest();
        let len = u32::try_from(body.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a message is limited to 4 GiB - 1 bytes",
            )
        })?;
        let (h, ov) = (self.stream.h(), self.ov);
        let p = body.as_ptr();
        // SAFETY: nothing is in flight on `ov` (the caller holds the tx lock);
        // `body` outlives this call, and every path below completes the write
        // or cancels it and waits for the cancel before returning.
        match unsafe { ov.start(h, |o| WriteFile(h, p, len, std::ptr::null_mut(), o)) }? {
            Started::Done(n, _) => return Ok(n as usize),
            Started::Pending => {}
        }
        if let Some((n, _)) = ov.wait(h, *wait)? {
            return Ok(n as usize);
        }
        let aborted = |e: &io::Error| e.raw_os_error() == Some(ERROR_OPERATION_ABORTED as i32);
        if *wait == Wait::Never {
            // Pending for an instant only: nothing taken unless a read raced
            // with it, which the reader then notices (its message ends short).
            return match ov.cancel(h) {
                Ok((n, _)) => Ok(n as usize),
                Err(e) if aborted(&e) => Err(wait.expired_error()),
                Err(e) => Err(e),
            };
        }
        // The pipe holds the message and a reader may be taking it: give it
        // the grace period before cancelling, since a cancelled write that a
        // reader took part of cannot be told from one it did not touch.
        if let Some((n, _)) = ov.wait(h, Wait::Until(Instant::now() + SEND_GRACE))? {
            return Ok(n as usize);
        }
        match ov.cancel(h) {
            Ok((n, _)) => Ok(n as usize),
            Err(e) if aborted(&e) => {
                self.cut = true;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the write timed out while the pipe held the message, and Windows does not \
                     say whether the reader had taken part of it",
                ))
            }
            Err(e) => Err(e),
        }
    }

    fn cut(&self) -> bool {
        self.cut
    }

    fn abort(&mut self) {
        if self.stream.server {
            // SAFETY: our server pipe handle; the client sees the pipe break.
            unsafe { DisconnectNamedPipe(self.stream.h()) };
        }
    }
}
