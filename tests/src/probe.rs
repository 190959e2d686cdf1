//! Parsing the marker lines that the test rootfs's probe init (`tests/rootfs/sbin/init`) prints.

/// The stages `/init` reports in initrd.json, in the order it runs them: what a T3 boot expects
/// (written here, apart from the initrd's own list, so that a change to it shows in the tests).
pub const STAGE_ORDER: [&str; 10] = [
    "early",
    "cmdline",
    "modules",
    "device",
    "fresh-flash",
    "repart",
    "lower",
    "overlay",
    "marker",
    "switch-root",
];

/// The partition labelled `data`, as the probe saw it (`PROBE data ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataProbe {
    /// No partition is labelled `data`.
    Absent,
    /// The kernel has no f2fs (it is loaded only on a boot that repartitions).
    NoF2fs,
    /// It did not mount as f2fs.
    Unmountable,
    /// It mounted read-only.
    Mounted {
        /// Its type in `/proc/mounts`.
        fstype: String,
        /// Its directories two levels deep, as absolute paths inside it (`/config/quadlet`).
        dirs: Vec<String>,
    },
}

/// One line of the guest's `/proc/mounts`, as the probe printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountLine {
    /// The mount source (`overlay`, `/dev/vda2`, `tmpfs`).
    pub source: String,
    /// The mount point (octal escapes such as `\040` decoded).
    pub target: String,
    /// The file-system type.
    pub fstype: String,
    /// The comma-separated options.
    pub options: String,
}

impl MountLine {
    /// Whether the options contain `option` exactly (`ro`, `rw`, `lowerdir=/run/rootfs-base`).
    pub fn has_option(&self, option: &str) -> bool {
        self.options.split(',').any(|o| o == option)
    }

    /// The value of the option `key=value`, if present.
    pub fn option_value(&self, key: &str) -> Option<&str> {
        self.options
            .split(',')
            .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
    }
}

/// What the probe init reported, parsed from a console transcript.
///
/// Marker formats (one per line; leading whitespace and a trailing `\r` are ignored):
///
/// | line | field |
/// |---|---|
/// | `ROOTFS-INIT pid=<n> uptime=<seconds\|unknown>` | `pid`, `uptime` |
/// | `PROBE mount <source> <target> <fstype> <options> <freq> <passno>` | `mounts` (in order) |
/// | `PROBE initrd-json <json on one line>` or `PROBE initrd-json absent` | `initrd_json` |
/// | `PROBE data absent\|no-f2fs\|none\|<fstype> [<dir>...]` | `data` |
/// | `PROBE cmdline <text>` | `cmdline` |
/// | `PROBE write-root ok\|fail` | `write_root_ok` |
/// | `PROBE lower-writable yes\|no\|absent` | `lower_writable` (`absent` → `None`) |
/// | `PROBE fresh-flash yes\|no` | `fresh_flash` |
/// | `ROOTFS-DONE` | `done` |
///
/// When the console holds several boots (several `ROOTFS-INIT` lines), only the last boot's
/// lines are used. Marker lines that do not parse are listed in `problems`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probe {
    /// The pid the rootfs init ran as (1 when `/init` exec'd it).
    pub pid: Option<u32>,
    /// `/proc/uptime` when the rootfs init started, in seconds.
    pub uptime: Option<f64>,
    /// The guest's mount table after switch_root.
    pub mounts: Vec<MountLine>,
    /// `/run/atomix/initrd.json`, if the probe found it and it parsed.
    pub initrd_json: Option<serde_json::Value>,
    /// `/proc/cmdline`.
    pub cmdline: Option<String>,
    /// Writing a file to `/` and reading it back worked.
    pub write_root_ok: bool,
    /// Whether writing into `/run/rootfs-base` worked (`Some(false)` is the wanted answer:
    /// the lower layer is read-only); `None` if the probe did not say or it was absent.
    pub lower_writable: Option<bool>,
    /// Whether `/etc/atomixos/fresh-flash` existed.
    pub fresh_flash: Option<bool>,
    /// The `data` partition as the guest saw it.
    pub data: Option<DataProbe>,
    /// The probe printed `ROOTFS-DONE`.
    pub done: bool,
    /// Marker lines that did not parse, with the reason.
    pub problems: Vec<String>,
}

const INIT: &str = "ROOTFS-INIT";
const PROBE: &str = "PROBE ";
const DONE: &str = "ROOTFS-DONE";

impl Probe {
    /// Parses the probe's markers out of `console` (kernel and `/init` lines are skipped).
    pub fn parse(console: &str) -> Self {
        let lines: Vec<&str> = console
            .lines()
            .map(|line| line.trim_end_matches('\r').trim_start())
            .collect();
        let last_boot = lines
            .iter()
            .rposition(|line| is_marker(line, INIT))
            .unwrap_or(0);
        let mut probe = Self::default();
        for line in &lines[last_boot..] {
            if is_marker(line, INIT) {
                probe.parse_init(line);
            } else if let Some(rest) = line.strip_prefix(PROBE) {
                let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
                probe.parse_probe(key, value.trim_end(), line);
            } else if *line == DONE {
                probe.done = true;
            }
        }
        probe
    }

    /// The mount that is on top at `target` (the last one listed there).
    pub fn mount_at(&self, target: &str) -> Option<&MountLine> {
        self.mounts.iter().rev().find(|m| m.target == target)
    }

    /// Whether the rootfs init ran at all.
    pub fn init_ran(&self) -> bool {
        self.pid.is_some()
    }

    fn parse_init(&mut self, line: &str) {
        for field in line[INIT.len()..].split_whitespace() {
            match field.split_once('=') {
                Some(("pid", value)) => match value.parse() {
                    Ok(pid) => self.pid = Some(pid),
                    Err(_) => self.problem(line, "pid is not a number"),
                },
                Some(("uptime", "unknown")) => {}
                Some(("uptime", value)) => match value.parse() {
                    Ok(uptime) => self.uptime = Some(uptime),
                    Err(_) => self.problem(line, "uptime is not a number"),
                },
                _ => self.problem(line, "unknown field"),
            }
        }
    }

    fn parse_probe(&mut self, key: &str, value: &str, line: &str) {
        match key {
            "mount" => match parse_mount(value) {
                Some(mount) => self.mounts.push(mount),
                None => self.problem(line, "fewer than four fields"),
            },
            "initrd-json" if value == "absent" => self.initrd_json = None,
            "initrd-json" => match serde_json::from_str(value) {
                Ok(json) => self.initrd_json = Some(json),
                Err(err) => self.problem(line, &format!("invalid JSON: {err}")),
            },
            "cmdline" => self.cmdline = Some(value.to_owned()),
            "write-root" => match value {
                "ok" => self.write_root_ok = true,
                "fail" => self.write_root_ok = false,
                _ => self.problem(line, "expected ok or fail"),
            },
            "lower-writable" => match value {
                "yes" => self.lower_writable = Some(true),
                "no" => self.lower_writable = Some(false),
                "absent" => self.lower_writable = None,
                _ => self.problem(line, "expected yes, no or absent"),
            },
            "fresh-flash" => match value {
                "yes" => self.fresh_flash = Some(true),
                "no" => self.fresh_flash = Some(false),
                _ => self.problem(line, "expected yes or no"),
            },
            "data" => {
                let mut words = value.split_whitespace();
                self.data = match words.next() {
                    Some("absent") => Some(DataProbe::Absent),
                    Some("no-f2fs") => Some(DataProbe::NoF2fs),
                    Some("none") => Some(DataProbe::Unmountable),
                    Some(fstype) => Some(DataProbe::Mounted {
                        fstype: fstype.to_owned(),
                        dirs: words.map(str::to_owned).collect(),
                    }),
                    None => {
                        self.problem(line, "expected absent, no-f2fs, none or a file-system type");
                        None
                    }
                };
            }
            _ => self.problem(line, "unknown probe"),
        }
    }

    fn problem(&mut self, line: &str, why: &str) {
        self.problems.push(format!("{why}: {line}"));
    }
}

/// `ROOTFS-INIT` followed by the end of the line or a space.
fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

/// A `/proc/mounts` line: `source target fstype options [freq passno]`.
fn parse_mount(text: &str) -> Option<MountLine> {
    let mut fields = text.split_whitespace().map(unescape);
    Some(MountLine {
        source: fields.next()?,
        target: fields.next()?,
        fstype: fields.next()?,
        options: fields.next()?,
    })
}

/// Decodes the kernel's octal escapes in `/proc/mounts` (`\040` space, `\011` tab, `\012`
/// newline, `\134` backslash).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            digits
                .iter()
                .all(|d| (b'0'..=b'7').contains(d))
                .then(|| digits.iter().fold(0u32, |n, d| n * 8 + u32::from(d - b'0')))
        });
        match (bytes[i], octal.and_then(|n| u8::try_from(n).ok())) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A console as a T3 boot prints it (kernel lines interleaved, `\r\n` endings).
    const CONSOLE: &str = "\
[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]\r
[    1.010000] atomix-init: stage early done\r
ROOTFS-INIT pid=1 uptime=1.42\r
PROBE mount overlay / overlay rw,relatime,lowerdir=/run/rootfs-base,upperdir=/run/overlay-root/upper,workdir=/run/overlay-root/work 0 0\r
PROBE mount devtmpfs /dev devtmpfs rw,relatime,size=498636k,nr_inodes=124659,mode=755 0 0\r
PROBE mount proc /proc proc rw,relatime 0 0\r
PROBE mount tmpfs /run tmpfs rw,relatime,size=65536k 0 0\r
PROBE mount /dev/vda2 /run/rootfs-base squashfs ro,relatime,errors=continue 0 0\r
PROBE mount tmpfs /run/overlay-root tmpfs rw,relatime 0 0\r
PROBE mount /dev/vda1 /mnt/with\\040space vfat rw 0 0\r
[    1.500000] random: crng init done\r
PROBE initrd-json {  \"slot\": \"a\",  \"stages\": [{\"name\": \"early\", \"ms\": 3.5}],  \"fresh_flash\": true}\r
PROBE cmdline console=ttyAMA0 panic=-1 atomixos.lowerdev=PARTLABEL=rootfs-a\r
PROBE write-root ok\r
PROBE lower-writable no\r
PROBE fresh-flash yes\r
PROBE data f2fs /config /containers /logs /config/quadlet /config/ssh-authorized-keys\r
ROOTFS-DONE\r
[    1.620000] reboot: Power down\r
";

    #[test]
    fn parses_a_full_probe() {
        let probe = Probe::parse(CONSOLE);
        assert_eq!(probe.problems, Vec::<String>::new());
        assert_eq!(probe.pid, Some(1));
        assert_eq!(probe.uptime, Some(1.42));
        assert!(probe.init_ran());
        assert_eq!(probe.mounts.len(), 7);
        let root = probe.mount_at("/").unwrap();
        assert_eq!(root.source, "overlay");
        assert_eq!(root.fstype, "overlay");
        assert_eq!(root.option_value("lowerdir"), Some("/run/rootfs-base"));
        assert!(root.has_option("rw"));
        assert!(!root.has_option("relatime,lowerdir"));
        let lower = probe.mount_at("/run/rootfs-base").unwrap();
        assert_eq!(
            (lower.source.as_str(), lower.fstype.as_str()),
            ("/dev/vda2", "squashfs")
        );
        assert!(lower.has_option("ro"));
        assert_eq!(probe.mount_at("/mnt/with space").unwrap().fstype, "vfat");
        let json = probe.initrd_json.as_ref().unwrap();
        assert_eq!(json["slot"], "a");
        assert_eq!(json["stages"][0]["name"], "early");
        assert_eq!(json["fresh_flash"], true);
        assert_eq!(
            probe.cmdline.as_deref(),
            Some("console=ttyAMA0 panic=-1 atomixos.lowerdev=PARTLABEL=rootfs-a")
        );
        assert!(probe.write_root_ok);
        assert_eq!(probe.lower_writable, Some(false));
        assert_eq!(probe.fresh_flash, Some(true));
        assert_eq!(
            probe.data,
            Some(DataProbe::Mounted {
                fstype: "f2fs".into(),
                dirs: vec![
                    "/config".into(),
                    "/containers".into(),
                    "/logs".into(),
                    "/config/quadlet".into(),
                    "/config/ssh-authorized-keys".into()
                ]
            })
        );
        assert!(probe.done);
    }

    #[test]
    fn data_probe_variants() {
        for (line, want) in [
            ("absent", Some(DataProbe::Absent)),
            ("no-f2fs", Some(DataProbe::NoF2fs)),
            ("none", Some(DataProbe::Unmountable)),
            (
                "f2fs",
                Some(DataProbe::Mounted {
                    fstype: "f2fs".into(),
                    dirs: vec![],
                }),
            ),
            ("", None),
        ] {
            let probe = Probe::parse(&format!("ROOTFS-INIT pid=1 uptime=1\nPROBE data {line}\n"));
            assert_eq!(probe.data, want, "{line}");
            assert_eq!(probe.problems.is_empty(), want.is_some(), "{line}");
        }
    }

    #[test]
    fn a_boot_that_never_reached_the_rootfs() {
        let probe = Probe::parse(
            "[ 0.9] Kernel panic - not syncing: VFS: Unable to mount root fs\n\
             ROOTFS-INITIALIZED is not a marker\n",
        );
        assert_eq!(probe, Probe::default());
        assert!(!probe.init_ran());
    }

    #[test]
    fn failures_and_absences() {
        let probe = Probe::parse(
            "ROOTFS-INIT pid=77 uptime=unknown\n\
             PROBE initrd-json absent\n\
             PROBE write-root fail\n\
             PROBE lower-writable yes\n\
             PROBE fresh-flash no\n",
        );
        assert_eq!(probe.pid, Some(77));
        assert_eq!(probe.uptime, None);
        assert_eq!(probe.initrd_json, None);
        assert!(!probe.write_root_ok);
        assert_eq!(probe.lower_writable, Some(true));
        assert_eq!(probe.fresh_flash, Some(false));
        assert!(!probe.done, "no ROOTFS-DONE line");
        assert!(probe.problems.is_empty(), "{:?}", probe.problems);

        let absent = Probe::parse("ROOTFS-INIT pid=1 uptime=2\nPROBE lower-writable absent\n");
        assert_eq!(absent.lower_writable, None);
    }

    #[test]
    fn malformed_markers_are_problems_not_values() {
        let probe = Probe::parse(
            "ROOTFS-INIT pid=one uptime=1.0 extra\n\
             PROBE mount overlay /\n\
             PROBE initrd-json {\"slot\": \n\
             PROBE write-root maybe\n\
             PROBE fresh-flash 1\n\
             PROBE lower-writable\n\
             PROBE telemetry on\n",
        );
        assert_eq!(probe.pid, None);
        assert_eq!(probe.uptime, Some(1.0));
        assert!(probe.mounts.is_empty());
        assert_eq!(probe.initrd_json, None);
        assert_eq!(probe.problems.len(), 8, "{:#?}", probe.problems);
        assert!(probe.problems[0].starts_with("pid is not a number: "));
        assert!(probe.problems[3].starts_with("invalid JSON: "));
        assert!(probe.problems[7].starts_with("unknown probe: PROBE telemetry on"));
    }

    #[test]
    fn only_the_last_boot_counts() {
        let console = "ROOTFS-INIT pid=1 uptime=1.0\n\
                       PROBE fresh-flash yes\n\
                       PROBE write-root ok\n\
                       ROOTFS-DONE\n\
                       [ 2.0] reboot: Restarting system\n\
                       ROOTFS-INIT pid=1 uptime=1.3\n\
                       PROBE fresh-flash no\n";
        let probe = Probe::parse(console);
        assert_eq!(probe.uptime, Some(1.3));
        assert_eq!(probe.fresh_flash, Some(false));
        assert!(!probe.write_root_ok);
        assert!(!probe.done);
    }

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape(r"trailing\04"), r"trailing\04");
        assert_eq!(unescape(r"not\999octal"), r"not\999octal");
    }
}
