//! Finding devices on fixture trees (paths, `PARTLABEL=`, `PARTUUID=` through a real GPT), the
//! whole disk of a partition, uevent parsing, and the wait driven by scripted uevents.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

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
