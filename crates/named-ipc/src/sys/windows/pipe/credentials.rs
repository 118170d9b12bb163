//! Who is at the other end: the peer's process id and user (impersonation
//! or the process token).

use std::io;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Security::RevertToSelf;
use windows_sys::Win32::Security::TOKEN_QUERY;
use windows_sys::Win32::System::Pipes::{
    GetNamedPipeClientProcessId, GetNamedPipeServerProcessId, ImpersonateNamedPipeClient,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentThread, OpenProcessToken, OpenThreadToken, PROCESS_QUERY_LIMITED_INFORMATION,
    PROCESS_SYNCHRONIZE as SYNCHRONIZE,
};

use super::super::security::token_user_sid;
use super::super::{cvt, owned, process, raw, UserRepr};

use super::Stream;

impl Stream {
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
        let whom = if self.server {
            "the pipe's client"
        } else {
            "the pipe's server"
        };
        let p = process::open(pid, PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, whom)?;
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: p is a process handle we own; token receives a new handle.
        let r = cvt(unsafe { OpenProcessToken(raw(&p), TOKEN_QUERY, &mut token) })
            .and_then(|()| owned(token, std::ptr::null_mut()))
            .and_then(|token| token_user_sid(raw(&token)));
        match r {
            // A process being killed refuses its token a moment before it
            // is gone: that is the peer leaving, not another user.
            Err(_) if process::ends_soon(&p) => Err(process::ended(whom, pid)),
            r => r.map(UserRepr),
        }
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
