//! Finding the slot device without udev and without sleep loops.
//!
//! [`wait_for`] scans `/sys/class/block` once and, if the device is not there yet, subscribes to
//! the kernel's uevents, scans again (so a device added between the first scan and the
//! subscription is not missed), then blocks on the uevent source until a block device is added or
//! changed, scanning again each time, until the deadline. When the device is already there (the
//! modules stage loads the disk driver synchronously, so it normally is), no socket is opened.
//!
//! - `/dev/NAME`: `NAME` exists in `/sys/class/block` and `/dev/NAME` exists.
//! - `PARTLABEL=`: a `/sys/class/block/*/uevent` with `PARTNAME=<label>`; the node is `DEVNAME=`.
//! - `PARTUUID=`: the kernel exports it neither in uevents nor in sysfs, so the GPT of every whole
//!   disk (an entry without a `partition` file) is read through a [`GptSource`], and partition
//!   `N` of disk `D` is mapped to its node with `atomix_blockdev::partition_name`.
//!
//! All paths are below a [`HostPaths`] root, so tests run the same code on fixture trees; sysfs
//! is read through `atomix_blockdev::Sysfs`.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atomix_blockdev::{Sysfs, SysfsError, partition_name};
use atomix_repart::gpt::Guid;

/// The slot device as named on the kernel command line (`atomixos.lowerdev=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A device node, e.g. `/dev/mmcblk1p2`.
    Path(PathBuf),
    /// A GPT partition name, e.g. `rootfs-a`.
    PartLabel(String),
    /// A GPT unique partition GUID (shown canonical and uppercase).
    PartUuid(Guid),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
            DeviceSpec::PartLabel(l) => write!(f, "PARTLABEL={l}"),
            DeviceSpec::PartUuid(u) => write!(f, "PARTUUID={u}"),
        }
    }
}

/// Where sysfs and `/dev` are. [`HostPaths::system`] is the real `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// The directory that holds `sys/class/block` and `dev`.
    pub root: PathBuf,
}

impl HostPaths {
    /// The running system (`/`).
    pub fn system() -> Self {
        HostPaths {
            root: PathBuf::from("/"),
        }
    }

    /// The sysfs below the root (`sys`), read through `atomix_blockdev`.
    fn sysfs(&self) -> Sysfs {
        Sysfs::at(&self.root.join("sys"))
    }

    fn dev(&self, name: &str) -> PathBuf {
        self.root.join("dev").join(name)
    }
}

/// A failure to find the slot device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A sysfs directory or file could not be read.
    #[error("cannot read {}", path.display())]
    Sysfs {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The uevent netlink socket could not be opened or read.
    #[error("kernel uevent socket: cannot {op}")]
    Uevent {
        /// The failed operation (`open`, `bind`, `receive`).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The device did not show up before the deadline.
    #[error("timed out after {} s waiting for {spec} (block devices seen: {})", timeout.as_secs_f64(), seen_list(seen))]
    Timeout {
        /// The device as given on the command line.
        spec: String,
        /// How long it waited.
        timeout: Duration,
        /// The names in `/sys/class/block` at the last scan.
        seen: Vec<String>,
    },
}

fn seen_list(seen: &[String]) -> String {
    if seen.is_empty() {
        "none".to_owned()
    } else {
        seen.join(", ")
    }
}

/// One partition of a GPT as the device stage needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPartition {
    /// 1-based entry number.
    pub number: u32,
    /// Unique partition GUID, canonical uppercase.
    pub uuid: String,
}

/// Reads the partition table of a whole disk.
pub trait GptSource {
    /// The partitions of the disk at `dev` of `size_bytes` bytes, or why there are none (no GPT,
    /// unreadable); the reason is only logged.
    fn partitions(&mut self, dev: &Path, size_bytes: u64) -> Result<Vec<GptPartition>, String>;
}

/// The real [`GptSource`]: `atomix_repart::gpt::read` on the device node.
#[derive(Debug, Default)]
pub struct RepartGpt;

impl GptSource for RepartGpt {
    fn partitions(&mut self, dev: &Path, size_bytes: u64) -> Result<Vec<GptPartition>, String> {
        let mut f = File::open(dev).map_err(|e| format!("cannot open: {e}"))?;
        let table = atomix_repart::gpt::read(&mut f, size_bytes).map_err(|e| e.to_string())?;
        Ok(table
            .partitions
            .iter()
            .map(|p| GptPartition {
                number: p.number,
                uuid: p.uuid.to_string().to_ascii_uppercase(),
            })
            .collect())
    }
}

/// The result of one scan of `/sys/class/block`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The device node, if the device is there.
    pub found: Option<PathBuf>,
    /// All names in `/sys/class/block`, sorted.
    pub seen: Vec<String>,
}

/// Looks for `spec` once.
///
/// # Errors
///
/// [`DeviceError::Sysfs`] if `/sys/class/block` cannot be listed.
pub fn scan(
    paths: &HostPaths,
    spec: &DeviceSpec,
    gpt: &mut dyn GptSource,
) -> Result<Scan, DeviceError> {
    let sys = paths.sysfs();
    let seen = sys.names().map_err(sysfs_error)?;

    let found = match spec {
        DeviceSpec::Path(p) => {
            let rel = p.strip_prefix("/dev").unwrap_or(p);
            let base = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let node = paths.root.join("dev").join(rel);
            (seen.iter().any(|s| s == base) && node.exists()).then_some(node)
        }
        DeviceSpec::PartLabel(label) => {
            let mut matches = Vec::new();
            for name in &seen {
                let uevent = sys.device_dir(name).join("uevent");
                // A device can vanish between readdir and read; that is not an error.
                let Ok(text) = fs::read_to_string(&uevent) else {
                    continue;
                };
                let mut partname = None;
                let mut devname = None;
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("PARTNAME=") {
                        partname = Some(v);
                    } else if let Some(v) = line.strip_prefix("DEVNAME=") {
                        devname = Some(v);
                    }
                }
                if partname == Some(label.as_str()) {
                    let node = paths.dev(devname.unwrap_or(name));
                    if node.exists() {
                        matches.push(node);
                    }
                }
            }
            if matches.len() > 1 {
                log::warn!(
                    "PARTLABEL={label} matches {} devices ({}); using the first",
                    matches.len(),
                    matches
                        .iter()
                        .map(|m| m.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            matches.into_iter().next()
        }
        DeviceSpec::PartUuid(uuid) => find_partuuid(paths, &seen, &uuid.to_string(), gpt),
    };
    Ok(Scan { found, seen })
}

fn find_partuuid(
    paths: &HostPaths,
    seen: &[String],
    uuid: &str,
    gpt: &mut dyn GptSource,
) -> Option<PathBuf> {
    let sys = paths.sysfs();
    for disk in seen {
        if sys.is_partition(disk) {
            continue;
        }
        let sectors = sys.sectors(disk).unwrap_or(0);
        // Empty loop devices, ejected media.
        if sectors == 0 {
            continue;
        }
        let node = paths.dev(disk);
        let parts = match gpt.partitions(&node, sectors * 512) {
            Ok(parts) => parts,
            Err(why) => {
                log::debug!("no GPT read from {}: {why}", node.display());
                continue;
            }
        };
        let Some(part) = parts.iter().find(|p| p.uuid.eq_ignore_ascii_case(uuid)) else {
            continue;
        };
        let name = partition_name(disk, part.number);
        let node = paths.dev(&name);
        if seen.contains(&name) && node.exists() {
            return Some(node);
        }
        log::debug!(
            "PARTUUID={uuid} is partition {} of {disk}; {name} not there yet",
            part.number
        );
    }
    None
}

/// The whole disk holding the block device `dev` (`/dev/vda2` -> `/dev/vda`), from sysfs: a
/// partition's `/sys/class/block/<name>` links into its disk's directory. `None` when `dev` is a
/// whole disk itself (it has no `partition` file).
///
/// # Errors
///
/// [`DeviceError::Sysfs`] when `dev` has no sysfs entry or the link cannot be resolved.
pub fn disk_of(paths: &HostPaths, dev: &Path) -> Result<Option<PathBuf>, DeviceError> {
    let name = dev.file_name().unwrap_or(dev.as_os_str());
    let disk = paths
        .sysfs()
        .parent_disk(&name.to_string_lossy())
        .map_err(sysfs_error)?;
    Ok(disk.map(|d| paths.dev(&d)))
}

/// A sysfs failure as [`DeviceError::Sysfs`], naming the file.
fn sysfs_error(e: SysfsError) -> DeviceError {
    match e {
        SysfsError::Read { path, source } => DeviceError::Sysfs { path, source },
        SysfsError::NotANumber { path, text } => DeviceError::Sysfs {
            path,
            source: io::Error::new(io::ErrorKind::InvalidData, format!("{text:?}")),
        },
    }
}

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

/// Waits until `spec` is present or `timeout` has passed, without polling: one scan; if the
/// device is not there, [`UeventSource::subscribe`] and a second scan (so nothing added between
/// the two is missed), then one scan per block `add`/`change` event (or lost events). `now` is
/// the monotonic clock.
///
/// # Errors
///
/// [`DeviceError::Timeout`] (with the block devices of the last scan), or the first sysfs or
/// uevent error.
pub fn wait_for(
    paths: &HostPaths,
    spec: &DeviceSpec,
    timeout: Duration,
    gpt: &mut dyn GptSource,
    events: &mut dyn UeventSource,
    now: &mut dyn FnMut() -> Duration,
) -> Result<PathBuf, DeviceError> {
    let deadline = now() + timeout;
    let mut last = scan(paths, spec, gpt)?;
    if last.found.is_none() {
        events.subscribe()?;
        last = scan(paths, spec, gpt)?;
    }
    loop {
        if let Some(found) = last.found.take() {
            return Ok(found);
        }
        let remaining = deadline.saturating_sub(now());
        if remaining.is_zero() {
            return Err(DeviceError::Timeout {
                spec: spec.to_string(),
                timeout,
                seen: last.seen,
            });
        }
        match events.wait(remaining)? {
            Wake::Event(ev) if ev.is_block_add_or_change() => {
                log::debug!(
                    "uevent {} {}",
                    ev.action,
                    ev.devname.as_deref().unwrap_or("?")
                );
            }
            Wake::Overflow => log::debug!("uevents lost; scanning again"),
            Wake::Event(_) | Wake::Timeout => continue,
        }
        last = scan(paths, spec, gpt)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A fixture tree: `sys/class/block/<name>/{uevent,size,partition}` and `dev/<name>`.
    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(dir.path().join("sys/class/block")).unwrap();
            fs::create_dir_all(dir.path().join("dev")).unwrap();
            Tree { dir }
        }
        fn paths(&self) -> HostPaths {
            HostPaths {
                root: self.dir.path().to_path_buf(),
            }
        }
        fn disk(&self, name: &str, sectors: u64) {
            let d = self.dir.path().join("sys/class/block").join(name);
            fs::create_dir_all(&d).unwrap();
            fs::write(
                d.join("uevent"),
                format!("MAJOR=254\nMINOR=0\nDEVNAME={name}\nDEVTYPE=disk\n"),
            )
            .unwrap();
            fs::write(d.join("size"), format!("{sectors}\n")).unwrap();
            fs::write(self.dir.path().join("dev").join(name), b"").unwrap();
        }
        fn part(&self, name: &str, n: u32, label: &str, node: bool) {
            let d = self.dir.path().join("sys/class/block").join(name);
            fs::create_dir_all(&d).unwrap();
            fs::write(
                d.join("uevent"),
                format!("MAJOR=254\nMINOR={n}\nDEVNAME={name}\nDEVTYPE=partition\nPARTN={n}\nPARTNAME={label}\n"),
            )
            .unwrap();
            fs::write(d.join("partition"), format!("{n}\n")).unwrap();
            fs::write(d.join("size"), "2048\n").unwrap();
            if node {
                fs::write(self.dir.path().join("dev").join(name), b"").unwrap();
            }
        }
        fn dev(&self, name: &str) -> PathBuf {
            self.dir.path().join("dev").join(name)
        }
    }

    struct NoGpt;
    impl GptSource for NoGpt {
        fn partitions(&mut self, _: &Path, _: u64) -> Result<Vec<GptPartition>, String> {
            Err("no GPT".into())
        }
    }

    const UUID: &str = "0B9D9B1E-4D4B-4A55-9C29-7B3E0C1F2A3D";

    #[test]
    fn finds_path_partlabel() {
        let t = Tree::new();
        t.disk("vda", 8192);
        t.part("vda1", 1, "boot-a", true);
        t.part("vda2", 2, "rootfs-a", true);
        let p = t.paths();
        let s = scan(&p, &DeviceSpec::PartLabel("rootfs-a".into()), &mut NoGpt).unwrap();
        assert_eq!(s.found, Some(t.dev("vda2")));
        assert_eq!(s.seen, ["vda", "vda1", "vda2"]);
        let s = scan(&p, &DeviceSpec::Path("/dev/vda1".into()), &mut NoGpt).unwrap();
        assert_eq!(s.found, Some(t.dev("vda1")));
        let s = scan(&p, &DeviceSpec::Path("/dev/vda3".into()), &mut NoGpt).unwrap();
        assert_eq!(s.found, None);
        let s = scan(&p, &DeviceSpec::PartLabel("rootfs-b".into()), &mut NoGpt).unwrap();
        assert_eq!(s.found, None);
    }

    #[test]
    fn partlabel_needs_the_node() {
        let t = Tree::new();
        t.part("vda2", 2, "rootfs-a", false);
        let s = scan(
            &t.paths(),
            &DeviceSpec::PartLabel("rootfs-a".into()),
            &mut NoGpt,
        )
        .unwrap();
        assert_eq!(s.found, None);
    }

    #[test]
    fn missing_sysfs_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = HostPaths {
            root: dir.path().into(),
        };
        let err = scan(&p, &DeviceSpec::PartLabel("x".into()), &mut NoGpt).unwrap_err();
        assert!(matches!(err, DeviceError::Sysfs { .. }), "{err}");
    }

    /// Writes a real GPT with the repart codec into the fixture's `dev/<disk>` file.
    fn write_gpt(t: &Tree, disk: &str, sectors: u64) {
        use atomix_repart::gpt::{self, Geometry, Guid, Partition, Table};
        let bytes = sectors * 512;
        let f = fs::OpenOptions::new()
            .write(true)
            .open(t.dev(disk))
            .unwrap();
        f.set_len(bytes).unwrap();
        let geo = Geometry::new(bytes, 512).unwrap();
        let mut table = Table::spanning(&geo, Guid::from_seed(b"disk"));
        let mk = |number: u32, first: u64, uuid: Guid, name: &str| Partition {
            number,
            type_guid: gpt::types::ROOT_ARM64,
            uuid,
            first_lba: first,
            last_lba: first + 2047,
            attributes: 0,
            name: name.into(),
        };
        table
            .partitions
            .push(mk(1, 2048, Guid::from_seed(b"one"), "boot-a"));
        table
            .partitions
            .push(mk(2, 4096, UUID.parse().unwrap(), "rootfs-a"));
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(t.dev(disk))
            .unwrap();
        gpt::write(&mut f, bytes, &table).unwrap();
    }

    #[test]
    fn finds_partuuid_through_the_gpt() {
        let t = Tree::new();
        t.disk("mmcblk1", 16384);
        write_gpt(&t, "mmcblk1", 16384);
        t.part("mmcblk1p1", 1, "boot-a", true);
        t.part("mmcblk1p2", 2, "rootfs-a", true);
        // An empty loop device is skipped, not read.
        t.disk("loop0", 0);
        let lower = DeviceSpec::PartUuid(UUID.parse().unwrap());
        let s = scan(&t.paths(), &lower, &mut RepartGpt).unwrap();
        assert_eq!(s.found, Some(t.dev("mmcblk1p2")));
        let other = DeviceSpec::PartUuid("11111111-2222-3333-4444-555555555555".parse().unwrap());
        assert_eq!(
            scan(&t.paths(), &other, &mut RepartGpt).unwrap().found,
            None
        );
    }

    #[test]
    fn partuuid_waits_for_the_partition_node() {
        let t = Tree::new();
        t.disk("vda", 16384);
        write_gpt(&t, "vda", 16384);
        let s = scan(
            &t.paths(),
            &DeviceSpec::PartUuid(UUID.parse().unwrap()),
            &mut RepartGpt,
        )
        .unwrap();
        assert_eq!(s.found, None, "vda2 not in sysfs yet");
    }

    #[test]
    fn disk_of_follows_the_sysfs_link_to_the_parent() {
        let t = Tree::new();
        let root = t.dir.path();
        let devices = root.join("sys/devices/pci0000:00/0000:00:01.0/virtio1/block");
        for (disk, part) in [
            ("vda", Some("vda2")),
            ("mmcblk1", Some("mmcblk1p2")),
            ("vdb", None),
        ] {
            fs::create_dir_all(devices.join(disk)).unwrap();
            std::os::unix::fs::symlink(
                format!("../../devices/pci0000:00/0000:00:01.0/virtio1/block/{disk}"),
                root.join("sys/class/block").join(disk),
            )
            .unwrap();
            if let Some(part) = part {
                let d = devices.join(disk).join(part);
                fs::create_dir_all(&d).unwrap();
                fs::write(d.join("partition"), "2\n").unwrap();
                std::os::unix::fs::symlink(
                    format!("../../devices/pci0000:00/0000:00:01.0/virtio1/block/{disk}/{part}"),
                    root.join("sys/class/block").join(part),
                )
                .unwrap();
            }
        }
        let p = t.paths();
        assert_eq!(
            disk_of(&p, Path::new("/dev/vda2")).unwrap(),
            Some(t.dev("vda"))
        );
        assert_eq!(
            disk_of(&p, Path::new("/dev/mmcblk1p2")).unwrap(),
            Some(t.dev("mmcblk1"))
        );
        // A whole disk holds no other disk.
        assert_eq!(disk_of(&p, Path::new("/dev/vdb")).unwrap(), None);
        let e = disk_of(&p, Path::new("/dev/sdz1")).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot read ")
                && e.to_string().ends_with("sys/class/block/sdz1"),
            "{e}"
        );
    }

    #[test]
    fn uevent_parse() {
        let msg = b"add@/devices/pci0000:00/virtio1/block/vda/vda2\0ACTION=add\0DEVPATH=/devices/x\0SUBSYSTEM=block\0DEVNAME=vda2\0DEVTYPE=partition\0";
        let ev = Uevent::parse(msg).unwrap();
        assert_eq!(ev.action, "add");
        assert_eq!(ev.subsystem, "block");
        assert_eq!(ev.devname.as_deref(), Some("vda2"));
        assert!(ev.is_block_add_or_change());
        let ev = Uevent::parse(b"remove@/x\0ACTION=remove\0SUBSYSTEM=block\0").unwrap();
        assert!(!ev.is_block_add_or_change());
        let ev = Uevent::parse(b"add@/x\0ACTION=add\0SUBSYSTEM=module\0").unwrap();
        assert!(!ev.is_block_add_or_change());
        assert_eq!(Uevent::parse(b"libudev\0\xfe\xed"), None);
        assert_eq!(Uevent::parse(b""), None);
    }

    /// Events that each run an action on the tree when delivered; time advances by the wait.
    struct Script<'a> {
        steps: VecDeque<(Duration, Box<dyn FnOnce() -> Wake + 'a>)>,
        clock: &'a std::cell::Cell<Duration>,
        waits: usize,
        subscribed: usize,
        /// Runs on the tree when the waiter subscribes.
        on_subscribe: Option<Box<dyn FnOnce() + 'a>>,
    }

    impl<'a> Script<'a> {
        fn new(
            clock: &'a std::cell::Cell<Duration>,
            steps: VecDeque<(Duration, Box<dyn FnOnce() -> Wake + 'a>)>,
        ) -> Self {
            Script {
                steps,
                clock,
                waits: 0,
                subscribed: 0,
                on_subscribe: None,
            }
        }
    }

    impl UeventSource for Script<'_> {
        fn subscribe(&mut self) -> Result<(), DeviceError> {
            self.subscribed += 1;
            if let Some(act) = self.on_subscribe.take() {
                act();
            }
            Ok(())
        }

        fn wait(&mut self, timeout: Duration) -> Result<Wake, DeviceError> {
            assert_eq!(self.subscribed, 1, "waits only after subscribing once");
            self.waits += 1;
            assert!(!timeout.is_zero());
            match self.steps.pop_front() {
                Some((after, act)) if after <= timeout => {
                    self.clock.set(self.clock.get() + after);
                    Ok(act())
                }
                _ => {
                    self.clock.set(self.clock.get() + timeout);
                    Ok(Wake::Timeout)
                }
            }
        }
    }

    fn block_event(action: &str, name: &str) -> Wake {
        Wake::Event(Uevent {
            action: action.into(),
            subsystem: "block".into(),
            devname: Some(name.into()),
        })
    }

    #[test]
    fn wait_rescans_on_block_events_only() {
        let t = Tree::new();
        t.disk("vda", 8192);
        let clock = std::cell::Cell::new(Duration::from_secs(1));
        let mut now = || clock.get();
        let mut events = Script::new(
            &clock,
            VecDeque::from([
                // A non-block event: ignored (no rescan), even though the partition exists by then.
                (
                    Duration::from_millis(10),
                    Box::new(|| {
                        t.part("vda1", 1, "boot-a", true);
                        Wake::Event(Uevent {
                            action: "add".into(),
                            subsystem: "module".into(),
                            devname: None,
                        })
                    }) as Box<dyn FnOnce() -> Wake>,
                ),
                (
                    Duration::from_millis(10),
                    Box::new(|| {
                        t.part("vda2", 2, "rootfs-a", true);
                        block_event("add", "vda2")
                    }),
                ),
            ]),
        );
        let found = wait_for(
            &t.paths(),
            &DeviceSpec::PartLabel("rootfs-a".into()),
            Duration::from_secs(5),
            &mut NoGpt,
            &mut events,
            &mut now,
        )
        .unwrap();
        assert_eq!(found, t.dev("vda2"));
        assert_eq!(events.waits, 2);
        assert_eq!(clock.get(), Duration::from_millis(1020));
    }

    #[test]
    fn wait_finds_present_device_without_waiting() {
        let t = Tree::new();
        t.disk("vda", 8192);
        let clock = std::cell::Cell::new(Duration::ZERO);
        let mut events = Script::new(&clock, VecDeque::new());
        let found = wait_for(
            &t.paths(),
            &DeviceSpec::Path("/dev/vda".into()),
            Duration::from_secs(5),
            &mut NoGpt,
            &mut events,
            &mut || clock.get(),
        )
        .unwrap();
        assert_eq!(found, t.dev("vda"));
        assert_eq!(events.waits, 0);
        assert_eq!(
            events.subscribed, 0,
            "no uevent socket for a device already there"
        );
    }

    #[test]
    fn device_added_before_the_subscription_is_not_missed() {
        let t = Tree::new();
        t.disk("vda", 8192);
        let clock = std::cell::Cell::new(Duration::ZERO);
        let mut events = Script::new(&clock, VecDeque::new());
        // It appears after the first scan, before any event can be received: only the scan
        // after subscribing can see it.
        events.on_subscribe = Some(Box::new(|| t.part("vda2", 2, "rootfs-a", true)));
        let found = wait_for(
            &t.paths(),
            &DeviceSpec::PartLabel("rootfs-a".into()),
            Duration::from_secs(5),
            &mut NoGpt,
            &mut events,
            &mut || clock.get(),
        )
        .unwrap();
        assert_eq!(found, t.dev("vda2"));
        assert_eq!((events.subscribed, events.waits), (1, 0));
        assert_eq!(clock.get(), Duration::ZERO, "no wait");
    }

    #[test]
    fn wait_times_out_naming_spec_timeout_and_seen() {
        let t = Tree::new();
        t.disk("vda", 8192);
        t.part("vda1", 1, "boot-a", true);
        let clock = std::cell::Cell::new(Duration::ZERO);
        let mut events = Script::new(
            &clock,
            VecDeque::from([(
                Duration::from_secs(1),
                Box::new(|| Wake::Overflow) as Box<dyn FnOnce() -> Wake>,
            )]),
        );
        let err = wait_for(
            &t.paths(),
            &DeviceSpec::PartLabel("rootfs-a".into()),
            Duration::from_secs(3),
            &mut NoGpt,
            &mut events,
            &mut || clock.get(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "timed out after 3 s waiting for PARTLABEL=rootfs-a (block devices seen: vda, vda1)"
        );
        assert_eq!(
            clock.get(),
            Duration::from_secs(3),
            "waited exactly until the deadline"
        );
        assert_eq!(events.waits, 2);
    }

    #[test]
    fn timeout_with_nothing_seen() {
        let err = DeviceError::Timeout {
            spec: "/dev/vda2".into(),
            timeout: Duration::from_secs(60),
            seen: vec![],
        };
        assert_eq!(
            err.to_string(),
            "timed out after 60 s waiting for /dev/vda2 (block devices seen: none)"
        );
    }
}
