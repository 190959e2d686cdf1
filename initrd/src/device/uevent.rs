//! The kernel's uevents: one datagram parsed ([`Uevent::parse`]), the source the wait blocks on
//! ([`UeventSource`]) and the real one, a `NETLINK_KOBJECT_UEVENT` socket ([`NetlinkUevents`]).

use std::os::fd::OwnedFd;
use std::time::Duration;

use super::DeviceError;

/// One kernel uevent, reduced to what the device stage looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `ACTION=` (`add`, `change`, `remove`, ...).
    pub action: String,
    /// `SUBSYSTEM=`.
    pub subsystem: String,
    /// `DEVNAME=`, if any.
    pub devname: Option<String>,
}

impl Uevent {
    /// Parses one kernel uevent datagram (`action@devpath\0KEY=VALUE\0...`). Messages re-sent by
    /// udev (`libudev` header) and garbage give `None`.
    pub fn parse(buf: &[u8]) -> Option<Uevent> {
        let mut fields = buf.split(|&b| b == 0).filter(|f| !f.is_empty());
        let header = std::str::from_utf8(fields.next()?).ok()?;
        if !header.contains('@') {
            return None;
        }
        let mut ev = Uevent {
            action: String::new(),
            subsystem: String::new(),
            devname: None,
        };
        for f in fields {
            let Ok(f) = std::str::from_utf8(f) else {
                continue;
            };
            if let Some(v) = f.strip_prefix("ACTION=") {
                v.clone_into(&mut ev.action);
            } else if let Some(v) = f.strip_prefix("SUBSYSTEM=") {
                v.clone_into(&mut ev.subsystem);
            } else if let Some(v) = f.strip_prefix("DEVNAME=") {
                ev.devname = Some(v.to_owned());
            }
        }
        Some(ev)
    }

    /// A block device appeared or changed (a partition table was re-read, media inserted).
    pub fn is_block_add_or_change(&self) -> bool {
        self.subsystem == "block" && (self.action == "add" || self.action == "change")
    }
}

/// What waiting on a uevent source gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// One event arrived.
    Event(Uevent),
    /// The timeout passed without events (or the wait was interrupted).
    Timeout,
    /// Events were lost (receive buffer overflow): scan again.
    Overflow,
}

/// A blocking source of kernel uevents.
pub trait UeventSource {
    /// Starts listening: events from now on are delivered by [`UeventSource::wait`].
    ///
    /// # Errors
    ///
    /// The source cannot be opened; the caller gives up.
    fn subscribe(&mut self) -> Result<(), DeviceError>;
    /// Waits at most `timeout` (always > 0) for the next event.
    ///
    /// # Errors
    ///
    /// The source broke; the caller gives up.
    fn wait(&mut self, timeout: Duration) -> Result<Wake, DeviceError>;
}

/// The real [`UeventSource`]: a `NETLINK_KOBJECT_UEVENT` socket bound to the kernel's group 1,
/// opened by [`UeventSource::subscribe`].
#[derive(Debug, Default)]
pub struct NetlinkUevents {
    fd: Option<OwnedFd>,
    buf: Vec<u8>,
}

impl NetlinkUevents {
    /// A source that is not listening yet (no system call).
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens and binds the socket.
    ///
    /// # Errors
    ///
    /// [`DeviceError::Uevent`] if the socket cannot be created or bound.
    fn open() -> Result<OwnedFd, DeviceError> {
        use rustix::net::{self, AddressFamily, SocketFlags, SocketType, netlink};
        let fd = net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::KOBJECT_UEVENT),
        )
        .map_err(|e| DeviceError::Uevent {
            op: "open",
            source: e.into(),
        })?;
        // A burst of module probes produces many events; a bigger buffer makes overflow (which
        // is handled by a rescan anyway) rare. Failure to enlarge it is harmless.
        if let Err(e) = net::sockopt::set_socket_recv_buffer_size(&fd, 1 << 20) {
            log::debug!("uevent socket: cannot enlarge receive buffer: {e}");
        }
        net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 1)).map_err(|e| {
            DeviceError::Uevent {
                op: "bind",
                source: e.into(),
            }
        })?;
        Ok(fd)
    }
}

impl UeventSource for NetlinkUevents {
    fn subscribe(&mut self) -> Result<(), DeviceError> {
        if self.fd.is_none() {
            self.fd = Some(Self::open()?);
            self.buf = vec![0; 16 * 1024];
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Result<Wake, DeviceError> {
        use rustix::io::Errno;
        use rustix::net::{RecvFlags, sockopt};
        // SO_RCVTIMEO of zero would mean "forever".
        let timeout = timeout.max(Duration::from_millis(1));
        self.subscribe()?;
        let Some(fd) = &self.fd else {
            return Ok(Wake::Timeout);
        };
        sockopt::set_socket_timeout(fd, sockopt::Timeout::Recv, Some(timeout)).map_err(|e| {
            DeviceError::Uevent {
                op: "set the receive timeout",
                source: e.into(),
            }
        })?;
        match rustix::net::recv(fd, &mut self.buf[..], RecvFlags::empty()) {
            Ok((n, _)) => Ok(self
                .buf
                .get(..n)
                .and_then(Uevent::parse)
                .map_or(Wake::Timeout, Wake::Event)),
            Err(Errno::AGAIN | Errno::INTR) => Ok(Wake::Timeout),
            Err(Errno::NOBUFS) => Ok(Wake::Overflow),
            Err(e) => Err(DeviceError::Uevent {
                op: "receive",
                source: e.into(),
            }),
        }
    }
}
