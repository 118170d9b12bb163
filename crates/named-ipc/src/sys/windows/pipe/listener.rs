//! The server side: a pipe's instances, one always waiting for the next client.

use std::io;
use std::os::windows::io::OwnedHandle;
use std::sync::Mutex;

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_BROKEN_PIPE, ERROR_NO_DATA, ERROR_PIPE_BUSY, ERROR_PIPE_CONNECTED,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, PIPE_ACCESS_DUPLEX, PIPE_ACCESS_INBOUND,
    PIPE_ACCESS_OUTBOUND,
};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, DisconnectNamedPipe, PIPE_ACCEPT_REMOTE_CLIENTS,
    PIPE_READMODE_BYTE, PIPE_READMODE_MESSAGE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE,
    PIPE_TYPE_MESSAGE, PIPE_WAIT,
};

use super::super::security::SecurityDescriptor;
use super::super::{owned, raw, Overlapped, Started};
use crate::error::{Error, ErrorKind, Result};
use crate::pipe::{Direction, ListenerOptions, PipeMode};
use crate::security::Security;
use crate::sys::{Accept, Wait};

use super::super::flag::Flag;
use super::{code, lock, Addr, Stream};

/// A pipe instance waiting for (or being connected to) a client.
struct Instance {
    handle: OwnedHandle,
    ov: Overlapped,
    /// A `ConnectNamedPipe` is in flight on `ov`.
    connecting: bool,
}

impl Drop for Listener {
    fn drop(&mut self) {
        for inst in lock(&self.pending).drain(..) {
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
    /// Listening instances nobody is waiting on right now.
    pending: Mutex<Vec<Instance>>,
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
            pending: Mutex::new(Vec::new()),
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
        lock(&l.pending).push(first);
        Ok(l)
    }

    /// A listening instance with no operation in flight (at first, the
    /// instance `bind` created), for a driver that manages instances itself
    /// (the async listener).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn take_first(&self) -> Option<OwnedHandle> {
        let mut pending = lock(&self.pending);
        let idle = pending.iter().position(|i| !i.connecting)?;
        Some(pending.swap_remove(idle).handle)
    }

    /// A new instance of the pipe (`ERROR_PIPE_BUSY` when all are taken).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn new_instance(&self) -> io::Result<OwnedHandle> {
        self.create_instance(false).map(|i| i.handle)
    }

    /// The stream of an instance a client connected to.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn connected_stream(&self, handle: OwnedHandle) -> io::Result<Stream> {
        Stream::new(
            handle,
            Overlapped::new()?,
            true,
            self.mode,
            self.max_message,
            self.label.clone(),
        )
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

    /// Accepts one client, or [`Accept::Interrupted`] once `flag` is raised.
    /// [`Accept::Busy`]: no instance is free (all `max_instances`
    /// are connected); the caller waits for one of its streams to close.
    ///
    /// Several threads may accept at once: each takes an instance of its own
    /// (from the pool of listening ones, or a new one) and waits on it without
    /// holding any lock, so one waiting accept never delays another past its
    /// deadline.
    pub(crate) fn accept(&self, wait: Wait, flag: Option<&Flag>) -> io::Result<Accept<Stream>> {
        let put_back = |inst: Instance| lock(&self.pending).push(inst);
        loop {
            let taken = lock(&self.pending).pop();
            let mut inst = match taken {
                Some(i) => i,
                None => match self.create_instance(false) {
                    Ok(i) => i,
                    Err(e) if code(&e) == Some(ERROR_PIPE_BUSY) => return Ok(Accept::Busy),
                    Err(e) => return Err(e),
                },
            };
            let h = raw(&inst.handle);
            let connected = if inst.connecting {
                let waited = match flag {
                    Some(f) => inst.ov.wait_or(h, wait, f.handle()),
                    None => inst.ov.wait(h, wait).map(Ok),
                };
                match waited {
                    Ok(Ok(Some(_))) => {
                        inst.connecting = false;
                        true
                    }
                    Ok(Ok(None)) => {
                        // Still waiting for a client: keep the operation in flight.
                        put_back(inst);
                        return Err(wait.expired_error());
                    }
                    Ok(Err(())) => {
                        put_back(inst);
                        return Ok(Accept::Interrupted);
                    }
                    Err(e) => {
                        inst.connecting = false;
                        if code(&e) == Some(ERROR_NO_DATA) || code(&e) == Some(ERROR_BROKEN_PIPE) {
                            // The client left already: recycle the instance.
                            // SAFETY: h is our pipe instance.
                            unsafe { DisconnectNamedPipe(h) };
                            put_back(inst);
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
                        put_back(inst);
                        continue;
                    }
                    Err(e) if code(&e) == Some(ERROR_PIPE_CONNECTED) => true,
                    Err(e) if code(&e) == Some(ERROR_NO_DATA) => {
                        // A client connected and closed before we got here.
                        // SAFETY: h is our pipe instance.
                        unsafe { DisconnectNamedPipe(h) };
                        put_back(inst);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            debug_assert!(connected);
            // Keep an instance listening so clients never see "not found".
            let mut pool = lock(&self.pending);
            if pool.is_empty() {
                if let Ok(next) = self.create_instance(false) {
                    pool.push(next);
                }
            }
            drop(pool);
            let Instance { handle, ov, .. } = inst;
            return Stream::new(
                handle,
                ov,
                true,
                self.mode,
                self.max_message,
                self.label.clone(),
            )
            .map(Accept::Client);
        }
    }

    pub(crate) fn display(&self) -> String {
        self.addr.full.clone()
    }
}
