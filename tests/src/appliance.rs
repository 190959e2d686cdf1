//! What the T3 tests of the real root filesystem share: free host ports for the forwards, a
//! power cycle to a root shell, commands in it, what U-Boot chose and what the disk's A/B
//! counters say, and a peek at a forwarded port from the host.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use atomix_board::{Board, Slot};
use atomix_image::bootenv;
use atomix_qemu::{Forward, Protocol};

use crate::{Artifacts, Guest, Shell};

/// Boot to a root shell: a minute or two under TCG, more on a loaded host.
pub const TO_SHELL: Duration = Duration::from_secs(480);
/// One command in the guest.
pub const COMMAND: Duration = Duration::from_secs(240);
/// One power cycle, U-Boot to power-off.
pub const POWER_CYCLE: Duration = Duration::from_secs(1500);

/// `N` distinct free ports of 127.0.0.1 (held together while picked, so none repeats).
///
/// # Panics
/// No port can be bound.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1"))
        .collect();
    std::array::from_fn(|i| {
        held[i]
            .local_addr()
            .expect("the bound port's address")
            .port()
    })
}

/// A TCP forward from the host's `host_port` to the guest's `guest_port`.
pub fn tcp(host_port: u16, guest_port: u16) -> Forward {
    Forward {
        protocol: Protocol::Tcp,
        host_port,
        guest_port,
    }
}

/// One power cycle of `disks` (the first is the system disk) with both NICs and the given
/// forwards: U-Boot, boot.scr, `/init`, systemd, until the console's root shell.
///
/// # Panics
/// QEMU cannot be configured, or no shell comes in [`TO_SHELL`].
pub fn boot(
    artifacts: &Artifacts,
    disks: &[&Path],
    name: &str,
    wan: Vec<Forward>,
    lan: Vec<Forward>,
) -> Guest {
    let mut cfg = artifacts
        .appliance_config(disks[0], POWER_CYCLE, name, wan, lan)
        .expect("the appliance's QEMU configuration");
    cfg.disks = disks.iter().map(|d| d.to_path_buf()).collect();
    let mut guest = Guest::boot(name, cfg);
    if let Err(e) = guest.shell(TO_SHELL) {
        panic!("{e}");
    }
    guest
}

/// Runs `command` in the guest.
///
/// # Panics
/// It does not finish within [`COMMAND`].
pub fn run(guest: &mut Guest, command: &str) -> Shell {
    match guest.sh(command, COMMAND) {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    }
}

/// Runs `command` in the guest and expects exit status 0; its output.
///
/// # Panics
/// It fails or does not finish.
pub fn ok(guest: &mut Guest, command: &str) -> String {
    let out = run(guest, command);
    assert_eq!(
        out.status,
        0,
        "`{command}` exited {}: {} (console: {})",
        out.status,
        out.text(),
        guest.log()
    );
    out.text()
}

/// The slot boot.scr said it boots, and the tries it said are left after this one
/// (`AtomixOS: booting slot A from virtio 0:1, 2 tries left after this one (...)`).
///
/// # Panics
/// boot.scr said nothing of a slot.
pub fn chosen_slot(guest: &Guest) -> (String, String) {
    let line = guest
        .console
        .iter()
        .find_map(|l| l.strip_prefix("AtomixOS: booting slot "))
        .unwrap_or_else(|| panic!("boot.scr chose no slot (console: {})", guest.log()));
    let slot = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let left = line
        .split(", ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    (slot, left)
}

/// `[BOOT_A_LEFT, BOOT_B_LEFT]` and the next slot, read from the disk by the host.
///
/// # Panics
/// The counters cannot be read.
pub fn counters(disk: &Path, board: &Board) -> ([u32; 2], Option<Slot>) {
    let state = bootenv::read(disk, board).expect("the A/B counters on the disk");
    ([state.ab.left[0].1, state.ab.left[1].1], state.ab.next)
}

/// What the guest sends first on `port` of 127.0.0.1, if anything, within `wait`.
pub fn banner(port: u16, wait: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(wait)).ok()?;
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(n) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

/// `GET path` on 127.0.0.1:`port` (with a `Host` header naming it): the status line and the
/// body, if an HTTP answer comes within `wait`.
pub fn http_get(port: u16, path: &str, wait: Duration) -> Option<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(wait)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.lines().next().filter(|l| l.starts_with("HTTP/1."))?;
    Some((status.to_owned(), body.to_owned()))
}

/// Guest-clock marks of a first boot that provisioned the device, in seconds since the kernel
/// started.
#[derive(Debug, Clone, Copy)]
pub struct ProvisionMarks {
    /// systemd started (`UserspaceTimestampMonotonic`).
    pub systemd_start: f64,
    /// First boot logged that the booted slot is marked good (the journal's monotonic time).
    pub marked_good: f64,
    /// The container's image build started (the build unit left `inactive`).
    pub build_start: f64,
    /// The container became active.
    pub container_active: f64,
}

impl ProvisionMarks {
    /// systemd start → provisioned and marked good.
    pub fn to_marked_good(&self) -> f64 {
        self.marked_good - self.systemd_start
    }

    /// The container's start alone: its image build, then the container until active.
    pub fn container_start(&self) -> f64 {
        self.container_active - self.build_start
    }
}

/// One `systemctl show -P` property in microseconds, as seconds.
fn monotonic(guest: &mut Guest, property: &str, unit: &str) -> anyhow::Result<f64> {
    let out = guest.sh(&format!("systemctl show -P {property} {unit}"), COMMAND)?;
    let micros: f64 = out
        .text()
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{unit} {property}: {:?}", out.text()))?;
    anyhow::ensure!(micros > 0.0, "{unit} {property} is not set");
    Ok(micros / 1e6)
}

/// Reads the [`ProvisionMarks`] of the boot `guest` is in, whose container is `container`
/// (`probe`: units `probe-build.service` and `probe.service`).
///
/// # Errors
/// A mark is missing: first boot did not mark the slot good, or the units never ran.
pub fn provision_marks(guest: &mut Guest, container: &str) -> anyhow::Result<ProvisionMarks> {
    let marked = guest.sh(
        "journalctl -b -u atomix-first-boot -o short-monotonic --grep 'marked the booted slot' \
         | tail -n 1",
        COMMAND,
    )?;
    let text = marked.text();
    let marked_good = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.split(']').next())
        .and_then(|t| t.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no mark-good line in first boot's journal: {text:?}"))?;
    Ok(ProvisionMarks {
        systemd_start: monotonic(guest, "UserspaceTimestampMonotonic", "")?,
        marked_good,
        build_start: monotonic(
            guest,
            "InactiveExitTimestampMonotonic",
            &format!("{container}-build.service"),
        )?,
        container_active: monotonic(
            guest,
            "ActiveEnterTimestampMonotonic",
            &format!("{container}.service"),
        )?,
    })
}

/// Waits in the guest until `command` (POSIX shell, no single quotes) succeeds, for at most
/// `limit`; on a timeout, fails with provisioning's journal.
///
/// # Panics
/// `command` never succeeded in time.
pub fn wait_until(guest: &mut Guest, command: &str, limit: Duration) {
    let secs = limit.as_secs();
    let out = match guest.sh(
        &format!("timeout {secs} sh -c 'until {command}; do sleep 2; done'"),
        limit + Duration::from_secs(30),
    ) {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    };
    if out.status != 0 {
        let journal = run(
            guest,
            "journalctl -b -u atomix-first-boot -u atomix-activate -u atomix-provision-api -o cat",
        );
        panic!(
            "`{command}` never held in {secs} s: {}\n{}\n(console: {})",
            out.text(),
            journal.text(),
            guest.log()
        );
    }
}

/// The journal of `unit` in this boot, messages only.
///
/// # Panics
/// journalctl fails.
pub fn journal(guest: &mut Guest, unit: &str) -> String {
    ok(guest, &format!("journalctl -b -u {unit} -o cat"))
}
