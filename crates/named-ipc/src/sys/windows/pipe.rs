//! Native Windows named pipes, always opened for overlapped I/O so that reads,
//! writes and accepts can time out, be nonblocking, and run concurrently from
//! two threads on one handle.

use std::io;
use std::os::windows::io::OwnedHandle;
use std::sync::{Mutex, MutexGuard};

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_BROKEN_PIPE, ERROR_FILE_NOT_FOUND, ERROR_NO_DATA, ERROR_PIPE_BUSY,
    ERROR_PIPE_CONNECTED, ERROR_PIPE_NOT_CONNECTED, ERROR_SEM_TIMEOUT, GENERIC_READ, GENERIC_WRITE,
    HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Security::RevertToSelf;
use windows_sys::Win32::Security::TOKEN_QUERY;
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FindClose, FindFirstFileW, FindNextFileW, FlushFileBuffers, ReadFile, WriteFile,
    FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, FILE_READ_ATTRIBUTES,
    FILE_WRITE_ATTRIBUTES, OPEN_EXISTING, PIPE_ACCESS_DUPLEX, PIPE_ACCESS_INBOUND,
    PIPE_ACCESS_OUTBOUND, SECURITY_IDENTIFICATION, SECURITY_SQOS_PRESENT, WIN32_FIND_DATAW,
};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, DisconnectNamedPipe, GetNamedPipeClientProcessId,
    GetNamedPipeInfo, GetNamedPipeServerProcessId, ImpersonateNamedPipeClient, PeekNamedPipe,
    SetNamedPipeHandleState, WaitNamedPipeW, PIPE_ACCEPT_REMOTE_CLIENTS, PIPE_READMODE_BYTE,
    PIPE_READMODE_MESSAGE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_TYPE_MESSAGE,
    PIPE_WAIT,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentThread, OpenProcess, OpenProcessToken, OpenThreadToken,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::security::{token_user_sid, SecurityDescriptor};
use super::{cvt, owned, raw, wide, Overlapped, Started, UserRepr};
use crate::error::{Error, ErrorKind, Result};
use crate::name::{self, PIPE_PREFIX};
use crate::pipe::framing::Received;
use crate::pipe::{Access, ConnectOptions, Direction, ListenerOptions, PipeEntry, PipeMode};
use crate::proto::recv::RecvState;
use crate::proto::send::{Outgoing, SendState, Sink};
use crate::security::Security;
use crate::sys::{Backoff, Wait};

/// While a large message arrives, the receive buffer grows by at least this
/// much (or its current length), never past what is left of the message.
const GROW_MIN: usize = 64 * 1024;
/// How long a client without a connect timeout waits for a busy pipe: the
/// Windows default `nDefaultTimeOut`, and what Unix clients wait. Never the
/// server's own `nDefaultTimeOut` (`NMPWAIT_USE_DEFAULT_WAIT`), which the
/// server chooses.
const BUSY_WAIT_MS: u32 = 50;

/// The whole `\\.\pipe\NAME` string may be at most this many UTF-16 units.
const MAX_NAME: usize = 256;

/// Where a pipe lives: its full `\\.\pipe\NAME`.
#[derive(Debug, Clone)]
pub(crate) struct Addr {
    full: String,
    wide: Vec<u16>,
    /// `\\server\pipe\NAME`: served on another machine.
    remote: bool,
}

impl Addr {
    pub(crate) fn display(&self) -> String {
        self.full.clone()
    }
}

pub(crate) fn resolve(name: &str) -> Result<Addr> {
    let bare = name::pipe_base_name(name, "pipe")?;
    let remote =
        name.starts_with(r"\\") && name::strip_prefix_ignore_case(name, PIPE_PREFIX).is_none();
    let full = if remote {
        // \\server\pipe\NAME: a remote pipe, for clients that ask for one.
        name.to_owned()
    } else {
        name::check_plain(name, bare, "pipe")?;
        format!("{PIPE_PREFIX}{bare}")
    };
    let wide = wide(&full);
    if wide.len() - 1 > MAX_NAME {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!(
                "pipe name {name:?} is too long: {full} is {} UTF-16 units and Windows allows \
                 {MAX_NAME}; use a shorter name",
                wide.len() - 1
            ),
        ));
    }
    Ok(Addr { full, wide, remote })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn code(e: &io::Error) -> Option<u32> {
    e.raw_os_error().map(|c| c as u32)
}

// ------------------------------------------------------------------ listener --

/// A pipe instance waiting for (or being connected to) a client.
struct Instance {
    handle: OwnedHandle,
    ov: Overlapped,
    /// A `ConnectNamedPipe` is in flight on `ov`.
    connecting: bool,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(inst) = lock(&self.pending).take() {
            if inst.connecting {
                // The OVERLAPPED must outlive the operation.
                let _ = inst.ov.cancel(raw(&inst.handle));
            }
        }
    }
}

pub(crate) struct Listener {
    addr: Addr,
    open_mode: u32,
    pipe_mode: u32,
    max_instances: u32,
    bufsizes: (u32, u32),
    default_timeout_ms: u32,
    sd: SecurityDescriptor,
    mode: PipeMode,
    max_message: u32,
    label: String,
    pending: Mutex<Option<Instance>>,
}

impl Listener {
    pub(crate) fn bind(name: &str, addr: &Addr, opts: &ListenerOptions) -> Result<Listener> {
        let what = format!("cannot create pipe {name:?} ({})", addr.full);
        let sd = match &opts.sddl {
            Some(s) => SecurityDescriptor::from_sddl(s).map_err(|e| {
                Error::from_io(e, name, &what, "the SDDL security descriptor is invalid")
            })?,
            None => SecurityDescriptor::default_for(opts.security == Security::LocalUsers)
                .map_err(|e| {
                    Error::from_io(e, name, &what, "cannot build the security descriptor")
                })?,
        };
        let access = match opts.direction {
            Direction::Duplex => PIPE_ACCESS_DUPLEX,
            Direction::Inbound => PIPE_ACCESS_INBOUND,
            Direction::Outbound => PIPE_ACCESS_OUTBOUND,
        };
        let ty = match opts.mode {
            PipeMode::Message => PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE,
            PipeMode::Byte => PIPE_TYPE_BYTE | PIPE_READMODE_BYTE,
        };
        let remote = if opts.reject_remote_clients {
            PIPE_REJECT_REMOTE_CLIENTS
        } else {
            PIPE_ACCEPT_REMOTE_CLIENTS
        };
        let l = Listener {
            addr: addr.clone(),
            open_mode: access | FILE_FLAG_OVERLAPPED,
            pipe_mode: ty | PIPE_WAIT | remote,
            max_instances: opts.max_instances,
            bufsizes: opts.buffer_sizes.unwrap_or((65536, 65536)),
            default_timeout_ms: opts
                .default_timeout
                .as_millis()
                .clamp(1, u128::from(u32::MAX - 1)) as u32,
            sd,
            mode: opts.mode,
            max_message: opts.max_message,
            label: format!("pipe {name:?}"),
            pending: Mutex::new(None),
        };
        let first = l.create_instance(true).map_err(|e| {
            if code(&e) == Some(ERROR_ACCESS_DENIED) || code(&e) == Some(ERROR_PIPE_BUSY) {
                // FILE_FLAG_FIRST_PIPE_INSTANCE fails with access denied when the
                // name exists.
                Error::new(
                    ErrorKind::AlreadyExists,
                    name,
                    format!("{what}: it is already in use by another server (or its security does not admit you); stop that server or choose another name"),
                )
                .with_source(e)
            } else {
                Error::from_io(e, name, &what, "")
            }
        })?;
        *lock(&l.pending) = Some(first);
        Ok(l)
    }

    fn create_instance(&self, first: bool) -> io::Result<Instance> {
        let sa = self.sd.attributes();
        let mut open_mode = self.open_mode;
        if first {
            open_mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
        }
        // SAFETY: the name is NUL-terminated; sa points at our live descriptor.
        let h = unsafe {
            CreateNamedPipeW(
                self.addr.wide.as_ptr(),
                open_mode,
                self.pipe_mode,
                self.max_instances,
                self.bufsizes.1,
                self.bufsizes.0,
                self.default_timeout_ms,
                &sa,
            )
        };
        let handle = owned(h, INVALID_HANDLE_VALUE)?;
        Ok(Instance {
            handle,
            ov: Overlapped::new()?,
            connecting: false,
        })
    }

    /// Accepts one client. `Ok(None)`: no instance is free (all `max_instances`
    /// are connected); the caller waits for one of its streams to close.
    pub(crate) fn accept(&self, wait: Wait) -> io::Result<Option<Stream>> {
        let mut pending = lock(&self.pending);
        loop {
            let mut inst = match pending.take() {
                Some(i) => i,
                None => match self.create_instance(false) {
                    Ok(i) => i,
                    Err(e) if code(&e) == Some(ERROR_PIPE_BUSY) => return Ok(None),
                    Err(e) => return Err(e),
                },
            };
            let h = raw(&inst.handle);
            let connected = if inst.connecting {
                match inst.ov.wait(h, wait) {
                    Ok(Some(_)) => {
                        inst.connecting = false;
                        true
                    }
                    Ok(None) => {
                        // Still waiting for a client: keep the operation in flight.
                        *pending = Some(inst);
                        return Err(wait.expired_error());
                    }
                    Err(e) => {
                        inst.connecting = false;
                        if code(&e) == Some(ERROR_NO_DATA) || code(&e) == Some(ERROR_BROKEN_PIPE) {
                            // The client left already: recycle the instance.
                            // SAFETY: h is our pipe instance.
                            unsafe { DisconnectNamedPipe(h) };
                            *pending = Some(inst);
                            continue;
                        }
                        return Err(e);
                    }
                }
            } else {
                // SAFETY: no operation is in flight on inst.ov; ConnectNamedPipe
                // uses no buffer.
                match unsafe { inst.ov.start(h, |ov| ConnectNamedPipe(h, ov)) } {
                    Ok(Started::Done(..)) => true,
                    Ok(Started::Pending) => {
                        inst.connecting = true;
                        *pending = Some(inst);
                        continue;
                    }
                    Err(e) if code(&e) == Some(ERROR_PIPE_CONNECTED) => true,
                    Err(e) if code(&e) == Some(ERROR_NO_DATA) => {
                        // A client connected and closed before we got here.
                        // SAFETY: h is our pipe instance.
                        unsafe { DisconnectNamedPipe(h) };
                        *pending = Some(inst);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            debug_assert!(connected);
            // Keep an instance listening so clients never see "not found".
            *pending = self.create_instance(false).ok();
            let Instance { handle, ov, .. } = inst;
            return Stream::new(
                handle,
                ov,
                true,
                self.mode,
                self.max_message,
                self.label.clone(),
            )
            .map(Some);
        }
    }

    pub(crate) fn display(&self) -> String {
        self.addr.full.clone()
    }
}

// -------------------------------------------------------------------- stream --

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
    server: bool,
    /// A client of a pipe on another machine.
    remote: bool,
    mode: PipeMode,
    /// What the stream is, for messages: `pipe "jobs"`.
    label: std::sync::Arc<str>,
    rx: Mutex<Rx>,
    tx: Mutex<Tx>,
}

impl Stream {
    fn new(
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
        _name: &str,
        wait: Wait,
    ) -> io::Result<Stream> {
        let access = match opts.access {
            Access::ReadWrite => GENERIC_READ | GENERIC_WRITE,
            Access::Read => GENERIC_READ | FILE_WRITE_ATTRIBUTES,
            Access::Write => GENERIC_WRITE | FILE_READ_ATTRIBUTES,
        };
        let mut backoff = Backoff::new();
        let mut waited_default = false;
        let handle = loop {
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
            let e = match owned(h, INVALID_HANDLE_VALUE) {
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
                    // SAFETY: the name is NUL-terminated.
                    if unsafe { WaitNamedPipeW(addr.wide.as_ptr(), ms) } == 0 {
                        let we = io::Error::last_os_error();
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
        let label = format!("pipe {:?}", _name);
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

    fn h(&self) -> HANDLE {
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
        loop {
            if out.capacity() == out.len() {
                let left = rx.st.total().map_or(4096, |t| t - out.len() as u64);
                out.reserve((left as usize).clamp(1, GROW_MIN.max(out.len())));
            }
            match self.read_spare(&rx, out, wait) {
                Ok((_, false)) => {
                    if !rx.st.is_mid() {
                        rx.st.start(Some(out.len() as u64))?;
                    }
                    rx.st.finish();
                    return Ok(Some(out.len()));
                }
                Ok((_, true)) => {
                    if !rx.st.is_mid() {
                        let left = self.left_in_message()?;
                        rx.st.start(Some(out.len() as u64 + u64::from(left)))?;
                    }
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
                Ok(Some(Received {
                    len: n as usize,
                    remaining: u64::from(left),
                }))
            }
            Err(e) if Self::is_closed(&e) => rx.st.end_of_stream(None).map(|_| None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn read(&self, buf: &mut [u8], wait: Wait) -> io::Result<usize> {
        if self.mode == PipeMode::Message {
            // Message bytes without boundaries; skip empty messages (a 0 would
            // read as end of stream). With a deadline, the loop ends with it.
            loop {
                match self.recv_msg_slice(buf, wait)? {
                    None => return Ok(0),
                    Some(r) if r.len == 0 && r.remaining == 0 && !buf.is_empty() => continue,
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
        let mut sink = MessageSink { stream: self, ov };
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

    pub(crate) fn peer_pid(&self) -> io::Result<u32> {
        let mut pid = 0u32;
        // SAFETY: our pipe handle; pid is a valid out-pointer.
        cvt(unsafe {
            if self.server {
                GetNamedPipeClientProcessId(self.h(), &mut pid)
            } else {
                GetNamedPipeServerProcessId(self.h(), &mut pid)
            }
        })?;
        Ok(pid)
    }

    pub(crate) fn peer_user(&self) -> io::Result<UserRepr> {
        if self.server {
            if let Ok(sid) = self.client_user_by_impersonation() {
                return Ok(UserRepr(sid));
            }
        } else if self.remote {
            // Its pid is another machine's: a local process of that number is
            // someone else.
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the pipe is served on another machine, whose users cannot be read here",
            ));
        }
        let pid = self.peer_pid()?;
        // SAFETY: plain OpenProcess; the handle is owned below.
        let p = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        let p = owned(p, std::ptr::null_mut())?;
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: p is a process handle we own; token receives a new handle.
        cvt(unsafe { OpenProcessToken(raw(&p), TOKEN_QUERY, &mut token) })?;
        let token = owned(token, std::ptr::null_mut())?;
        token_user_sid(raw(&token)).map(UserRepr)
    }

    /// The client's user, read from its token while impersonating it (possible
    /// at the identification level our clients grant).
    fn client_user_by_impersonation(&self) -> io::Result<String> {
        // SAFETY: our server pipe handle.
        cvt(unsafe { ImpersonateNamedPipeClient(self.h()) })?;
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: reading the impersonation token of this thread.
        let r = cvt(unsafe { OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, 1, &mut token) });
        // SAFETY: ends the impersonation started above; must run on every path.
        if unsafe { RevertToSelf() } == 0 {
            // The thread would go on with the client's identity. Microsoft's
            // advice when RevertToSelf fails is to end the process: nothing
            // this thread does afterwards could be trusted.
            let e = io::Error::last_os_error();
            eprintln!(
                "named-ipc: RevertToSelf failed ({e}) after reading the user of a client of \
                 {}; stopping the process rather than run on as that client",
                self.label
            );
            std::process::abort();
        }
        r?;
        let token = owned(token, std::ptr::null_mut())?;
        token_user_sid(raw(&token))
    }
}

/// A message-mode pipe as a [`Sink`]: one `WriteFile` per message. A
/// message the pipe took only part of (a cancel that raced with a reader)
/// cannot be resumed — its rest would arrive as another message — so the
/// driver poisons the sending side, and a server disconnects the client.
struct MessageSink<'a> {
    stream: &'a Stream,
    ov: &'a Overlapped,
}

impl Sink for MessageSink<'_> {
    fn write(&mut self, out: &Outgoing<'_>, wait: Wait) -> io::Result<usize> {
        if out.sent() > 0 {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the pipe took only part of the message",
            ));
        }
        let [_, body] = out.rest();
        self.stream.write_once(self.ov, body, wait)
    }

    fn abort(&mut self) {
        if self.stream.server {
            // SAFETY: our server pipe handle; the client sees the pipe break.
            unsafe { DisconnectNamedPipe(self.stream.h()) };
        }
    }
}

/// Every pipe under `\\.\pipe\`.
pub(crate) fn list() -> io::Result<Vec<PipeEntry>> {
    let pattern = wide(&format!("{PIPE_PREFIX}*"));
    // SAFETY: all-zero is a valid WIN32_FIND_DATAW.
    let mut data: WIN32_FIND_DATAW = unsafe { std::mem::zeroed() };
    // SAFETY: pattern is NUL-terminated; data is a valid out-pointer.
    let h = unsafe { FindFirstFileW(pattern.as_ptr(), &mut data) };
    if h == INVALID_HANDLE_VALUE {
        let e = io::Error::last_os_error();
        if code(&e) == Some(ERROR_FILE_NOT_FOUND) {
            return Ok(Vec::new());
        }
        return Err(e);
    }
    let mut out = Vec::new();
    loop {
        let n = data
            .cFileName
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(data.cFileName.len());
        let name = String::from_utf16_lossy(&data.cFileName[..n]);
        out.push(PipeEntry {
            os_name: format!("{PIPE_PREFIX}{name}"),
            name,
            server_pid: None,
            alive: Some(true),
        });
        // SAFETY: h is our find handle; data is a valid out-pointer.
        if unsafe { FindNextFileW(h, &mut data) } == 0 {
            break;
        }
    }
    // SAFETY: h is our find handle.
    unsafe { FindClose(h) };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
