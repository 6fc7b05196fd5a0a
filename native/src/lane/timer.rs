//! The lane's one timer: a Linux `timerfd` registered in the lane's poll, so that a deadline
//! (`requestAttemptTimeoutMs`, `totalTimeoutMs`, `l5d-ctx-deadline`) makes the lane's descriptor
//! readable when it passes, like any socket: the host needs no timer of its own, and a lane whose
//! routes have no deadline never creates it.
//!
//! The timer is armed relative to the moment it is set (`CLOCK_MONOTONIC`, the clock trio's runs
//! on): the core converts its host's clock to a delay, so the two clocks need not share an origin.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// A non-blocking `timerfd`, one-shot.
pub(super) struct Timer {
    fd: OwnedFd,
}

impl Timer {
    /// A new timer registered under `token` (readable once it fires).
    #[allow(unsafe_code)]
    pub(super) fn new(registry: &Registry, token: Token) -> io::Result<Timer> {
        // SAFETY: timerfd_create has no memory arguments; a non-negative result is a new
        // descriptor that nothing else owns, handed to OwnedFd at once.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Timer { fd })
    }

    /// Fires once, `delay` seconds from now (at least a microsecond: zero would disarm it).
    #[allow(unsafe_code)]
    pub(super) fn arm(&self, delay: f64) {
        let delay = if delay.is_finite() { delay.clamp(1e-6, 1e6) } else { 1e6 };
        let secs = delay.trunc();
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: secs as libc::time_t, tv_nsec: ((delay - secs) * 1e9) as libc::c_long },
        };
        // SAFETY: `spec` is a valid itimerspec on the stack; the old value is not asked for.
        unsafe {
            libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut());
        }
    }

    /// Takes the expiry count (the descriptor is readable until then; edge-triggered, it must be
    /// read for the next expiry to raise a new edge).
    #[allow(unsafe_code)]
    pub(super) fn clear(&self) {
        let mut n = 0u64;
        // SAFETY: reads at most 8 bytes into `n`, which has 8.
        unsafe {
            libc::read(self.fd.as_raw_fd(), (&mut n as *mut u64).cast(), 8);
        }
    }

    pub(super) fn deregister(&self, registry: &Registry) {
        let _ = registry.deregister(&mut SourceFd(&self.fd.as_raw_fd()));
    }
}
