//! Windows-only settings.

use crate::pipe::{ListenerOptions, UserId};

/// Windows settings of [`ListenerOptions`].
pub trait ListenerOptionsExt: super::sealed::Sealed {
    /// A security descriptor in SDDL, replacing the default owner-only DACL and
    /// [`Security`](crate::security::Security). Example, owner and SYSTEM only:
    /// `D:P(A;;GA;;;OW)(A;;GA;;;SY)`. Checked by `create`.
    fn security_descriptor_sddl(&mut self, sddl: &str) -> &mut Self;
}

impl ListenerOptionsExt for ListenerOptions {
    fn security_descriptor_sddl(&mut self, sddl: &str) -> &mut Self {
        self.sddl = Some(sddl.to_owned());
        self
    }
}

/// Windows view of a [`UserId`].
pub trait UserIdExt: super::sealed::Sealed {
    /// The SID in string form, `S-1-5-…`.
    fn sid(&self) -> &str;
}

#[cfg(windows)]
impl UserIdExt for UserId {
    fn sid(&self) -> &str {
        &self.0 .0
    }
}
