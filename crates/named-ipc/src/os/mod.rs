//! OS-specific extensions, in sealed traits.
//!
//! Portable code needs none of this; it is for settings only one OS has, such as
//! a Unix socket's file mode or a Windows SDDL security descriptor.

#[cfg(any(unix, docsrs))]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub mod unix;

#[cfg(any(windows, docsrs))]
#[cfg_attr(docsrs, doc(cfg(windows)))]
pub mod windows;

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::pipe::ListenerOptions {}
    impl Sealed for crate::pipe::UserId {}
}
