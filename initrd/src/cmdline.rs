//! The kernel command line, parsed once into validated [`BootParams`].
//!
//! Tokenising follows the kernel's `next_arg`: words are split at whitespace outside double
//! quotes; a leading quote on the word or on the value is dropped together with the closing one
//! (`key="a b"` gives `a b`). Words after `--` belong to init and are not looked at. A key given
//! twice takes the last value, as in the kernel.
//!
//! Keys starting with `atomix.` or `atomixos.` are ours: a malformed value is an error naming the
//! key, the value and what was expected; an unknown one is a warning kept in
//! [`BootParams::warnings`]. `init=`, `rauc.slot=`, `rootwait` and `rootdelay=` are read too;
//! everything else belongs to the kernel or other programs and is ignored.

use std::path::PathBuf;
use std::time::Duration;

use atomix_repart::gpt::Guid;

use crate::device::DeviceSpec;
use crate::stage::{STAGES, Stage};

/// What `/init` does after a fatal error (`atomix.emergency=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emergency {
    /// Reboot after `atomix.reboot-delay=` seconds, so U-Boot's boot counter can fall back.
    Reboot,
    /// Run `/bin/sh` on the console if the initramfs has one, then reboot.
    Shell,
    /// Power off.
    Halt,
}

/// `atomix.repart=`: what the repart stage does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepartMode {
    /// Repartition when the disk needs it; failures are recorded, not fatal.
    Auto,
    /// Never repartition.
    Off,
    /// Repartition when needed; a failure is fatal.
    Required,
}

/// The failure policy: what to do after a fatal error. When the command line itself does not
/// parse, [`FailurePolicy::salvage`] takes what it can of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    /// `atomix.emergency=`.
    pub emergency: Emergency,
    /// `atomix.reboot-delay=`.
    pub reboot_delay: Duration,
}

impl FailurePolicy {
    /// The policy `cmdline` asks for, taking `atomix.emergency=` and `atomix.reboot-delay=` each
    /// only when its value is valid and ignoring everything else. Used when the command line as a
    /// whole does not parse, so that a typo in another parameter still gets the shell that
    /// `atomix.emergency=shell` asked for.
    pub fn salvage(cmdline: &str) -> Self {
        let mut policy = Self::default();
        for (key, value) in tokenize(cmdline) {
            let v = value.as_deref();
            match key.as_str() {
                "atomix.emergency" => {
                    if let Ok(e) = emergency(&key, v) {
                        policy.emergency = e;
                    }
                }
                "atomix.reboot-delay" => {
                    if let Ok(d) = seconds(&key, v) {
                        policy.reboot_delay = d;
                    }
                }
                _ => {}
            }
        }
        policy
    }
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            emergency: Emergency::Reboot,
            reboot_delay: Duration::from_secs(DEFAULT_REBOOT_DELAY_S),
        }
    }
}

const DEFAULT_FSTYPE: &str = "squashfs";
const DEFAULT_INIT: &str = "/sbin/init";
const DEFAULT_DEVICE_TIMEOUT_S: u64 = 60;
const DEFAULT_REBOOT_DELAY_S: u64 = 10;

/// The validated boot parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootParams {
    /// `atomixos.lowerdev=` (required): the slot device.
    pub lowerdev: DeviceSpec,
    /// `atomixos.lowerfstype=` (default `squashfs`), `[a-z0-9_]+`.
    pub lowerfstype: String,
    /// `rauc.slot=`: recorded and passed through untouched.
    pub rauc_slot: Option<String>,
    /// `init=` (default `/sbin/init`), absolute.
    pub init: PathBuf,
    /// `rootwait`: recorded. It never disables [`BootParams::device_timeout`]: `/init` must not
    /// wait without a deadline, so "wait forever" is bounded by `atomix.device-timeout=`.
    pub rootwait: bool,
    /// `rootdelay=`: pause this long before the device stage looks for the slot.
    pub rootdelay: Option<Duration>,
    /// `atomix.device-timeout=` (seconds, default 60): how long the device stage waits.
    pub device_timeout: Duration,
    /// `atomix.repart=` (default `auto`).
    pub repart: RepartMode,
    /// `atomix.repart.device=`: the disk to repartition (default: the disk holding the slot).
    pub repart_device: Option<PathBuf>,
    /// `atomix.emergency=` and `atomix.reboot-delay=`.
    pub policy: FailurePolicy,
    /// `atomix.break=STAGE`: run `/bin/sh` before this stage.
    pub break_before: Option<Stage>,
    /// `atomix.debug`: debug-level log.
    pub debug: bool,
    /// Unknown `atomix.*`/`atomixos.*` keys and ignored malformed kernel values, one message each.
    pub warnings: Vec<String>,
}

/// A command line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    /// A required parameter is absent.
    #[error("missing required boot parameter {key}=")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A parameter's value is malformed.
    #[error("invalid boot parameter {key}={value:?}: expected {expected}")]
    Invalid {
        /// The key.
        key: String,
        /// The value as given (quotes removed).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
}

/// Splits the command line into `(key, value)` words the way the kernel does.
pub fn tokenize(cmdline: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = cmdline.trim_start();
    while !rest.is_empty() {
        let mut in_quote = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            if c.is_whitespace() && !in_quote {
                end = i;
                break;
            }
            if c == '"' {
                in_quote = !in_quote;
            }
        }
        let word = &rest[..end];
        rest = rest[end..].trim_start();
        if word == "--" {
            break;
        }
        // A quote before the key: `"key=a b"`.
        let word = match word.strip_prefix('"') {
            Some(w) => w.strip_suffix('"').unwrap_or(w),
            None => word,
        };
        match word.split_once('=') {
            Some((k, v)) => {
                let v = match v.strip_prefix('"') {
                    Some(v) => v.strip_suffix('"').unwrap_or(v),
                    None => v,
                };
                out.push((k.to_owned(), Some(v.to_owned())));
            }
            None => out.push((word.to_owned(), None)),
        }
    }
    out
}

fn invalid(key: &str, value: &str, expected: impl Into<String>) -> CmdlineError {
    CmdlineError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        expected: expected.into(),
    }
}

fn need_value<'v>(
    key: &str,
    value: Option<&'v str>,
    expected: &str,
) -> Result<&'v str, CmdlineError> {
    value.ok_or_else(|| invalid(key, "", expected))
}

fn seconds(key: &str, value: Option<&str>) -> Result<Duration, CmdlineError> {
    const EXPECTED: &str = "a whole number of seconds";
    let v = need_value(key, value, EXPECTED)?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(key, v, EXPECTED));
    }
    v.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| invalid(key, v, EXPECTED))
}

fn flag(key: &str, value: Option<&str>) -> Result<bool, CmdlineError> {
    match value {
        None => Ok(true),
        Some(v) => Err(invalid(key, v, "no value (it is a flag)")),
    }
}

/// Parses `atomixos.lowerdev=`.
pub fn parse_device_spec(key: &str, v: &str) -> Result<DeviceSpec, CmdlineError> {
    const EXPECTED: &str = "/dev/<name>, PARTLABEL=<label> or PARTUUID=<guid>";
    if let Some(label) = v.strip_prefix("PARTLABEL=") {
        if label.is_empty() {
            return Err(invalid(key, v, "a non-empty PARTLABEL="));
        }
        return Ok(DeviceSpec::PartLabel(label.to_owned()));
    }
    if let Some(uuid) = v.strip_prefix("PARTUUID=") {
        return uuid.parse::<Guid>().map(DeviceSpec::PartUuid).map_err(|_| {
            invalid(
                key,
                v,
                "PARTUUID=XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX (hex digits)",
            )
        });
    }
    if let Some(name) = v.strip_prefix("/dev/")
        && !name.is_empty()
        && !name.ends_with('/')
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
    {
        return Ok(DeviceSpec::Path(PathBuf::from(v)));
    }
    Err(invalid(key, v, EXPECTED))
}

/// `8-4-4-4-12` hex digits.
fn emergency(key: &str, value: Option<&str>) -> Result<Emergency, CmdlineError> {
    one_of(
        key,
        value,
        &[
            ("reboot", Emergency::Reboot),
            ("shell", Emergency::Shell),
            ("halt", Emergency::Halt),
        ],
    )
}

fn one_of<T: Copy>(
    key: &str,
    value: Option<&str>,
    choices: &[(&str, T)],
) -> Result<T, CmdlineError> {
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    let expected = format!("one of {}", names.join(", "));
    let v = need_value(key, value, &expected)?;
    choices
        .iter()
        .find(|(n, _)| *n == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| invalid(key, v, expected))
}

impl BootParams {
    /// Parses the text of `/proc/cmdline`.
    ///
    /// # Errors
    ///
    /// [`CmdlineError::Missing`] without `atomixos.lowerdev=`, [`CmdlineError::Invalid`] for the
    /// first malformed `atomix.*`/`atomixos.*`/`init=` value.
    pub fn parse(cmdline: &str) -> Result<BootParams, CmdlineError> {
        let mut lowerdev = None;
        let mut p = BootParams {
            lowerdev: DeviceSpec::Path(PathBuf::new()),
            lowerfstype: DEFAULT_FSTYPE.to_owned(),
            rauc_slot: None,
            init: PathBuf::from(DEFAULT_INIT),
            rootwait: false,
            rootdelay: None,
            device_timeout: Duration::from_secs(DEFAULT_DEVICE_TIMEOUT_S),
            repart: RepartMode::Auto,
            repart_device: None,
            policy: FailurePolicy::default(),
            break_before: None,
            debug: false,
            warnings: Vec::new(),
        };
        for (key, value) in tokenize(cmdline) {
            let k = key.as_str();
            let v = value.as_deref();
            match k {
                "atomixos.lowerdev" => {
                    let v = need_value(k, v, "/dev/<name>, PARTLABEL=<label> or PARTUUID=<guid>")?;
                    lowerdev = Some(parse_device_spec(k, v)?);
                }
                "atomixos.lowerfstype" => {
                    const EXPECTED: &str = "a filesystem type ([a-z0-9_]+)";
                    let v = need_value(k, v, EXPECTED)?;
                    if v.is_empty()
                        || !v
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    {
                        return Err(invalid(k, v, EXPECTED));
                    }
                    v.clone_into(&mut p.lowerfstype);
                }
                "rauc.slot" => p.rauc_slot = v.map(str::to_owned),
                "init" => {
                    const EXPECTED: &str = "an absolute path";
                    let v = need_value(k, v, EXPECTED)?;
                    if !v.starts_with('/') {
                        return Err(invalid(k, v, EXPECTED));
                    }
                    p.init = PathBuf::from(v);
                }
                // Newer kernels accept `rootwait=<seconds>`; either way it is a flag here.
                "rootwait" => p.rootwait = true,
                "rootdelay" => match seconds(k, v) {
                    Ok(d) => p.rootdelay = Some(d),
                    Err(e) => p.warnings.push(format!("{e}; ignored")),
                },
                "atomix.device-timeout" => p.device_timeout = seconds(k, v)?,
                "atomix.repart" => {
                    p.repart = one_of(
                        k,
                        v,
                        &[
                            ("auto", RepartMode::Auto),
                            ("off", RepartMode::Off),
                            ("required", RepartMode::Required),
                        ],
                    )?;
                }
                "atomix.repart.device" => {
                    const EXPECTED: &str = "a disk device path /dev/<name>";
                    let v = need_value(k, v, EXPECTED)?;
                    match parse_device_spec(k, v) {
                        Ok(DeviceSpec::Path(path)) => p.repart_device = Some(path),
                        _ => return Err(invalid(k, v, EXPECTED)),
                    }
                }
                "atomix.emergency" => p.policy.emergency = emergency(k, v)?,
                "atomix.reboot-delay" => p.policy.reboot_delay = seconds(k, v)?,
                "atomix.break" => {
                    let names: Vec<&str> = STAGES
                        .iter()
                        .filter(|s| s.breakable())
                        .map(|s| s.name())
                        .collect();
                    let expected = format!("a stage name (one of {})", names.join(", "));
                    let v = need_value(k, v, &expected)?;
                    match Stage::from_name(v) {
                        Some(s) if s.breakable() => p.break_before = Some(s),
                        _ => return Err(invalid(k, v, expected)),
                    }
                }
                "atomix.debug" => p.debug = flag(k, v)?,
                _ if k.starts_with("atomix.") || k.starts_with("atomixos.") => {
                    p.warnings.push(match v {
                        Some(v) => format!("unknown boot parameter {k}={v} ignored"),
                        None => format!("unknown boot parameter {k} ignored"),
                    });
                }
                _ => {}
            }
        }
        p.lowerdev = lowerdev.ok_or(CmdlineError::Missing {
            key: "atomixos.lowerdev",
        })?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "console=ttyAMA0 atomixos.lowerdev=PARTLABEL=rootfs-a";

    fn parse(extra: &str) -> Result<BootParams, CmdlineError> {
        BootParams::parse(&format!("{BASE} {extra}\n"))
    }

    fn err(extra: &str) -> String {
        parse(extra).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let p = parse("").unwrap();
        assert_eq!(p.lowerdev, DeviceSpec::PartLabel("rootfs-a".into()));
        assert_eq!(p.lowerfstype, "squashfs");
        assert_eq!(p.rauc_slot, None);
        assert_eq!(p.init, PathBuf::from("/sbin/init"));
        assert!(!p.rootwait);
        assert_eq!(p.rootdelay, None);
        assert_eq!(p.device_timeout, Duration::from_secs(60));
        assert_eq!(p.repart, RepartMode::Auto);
        assert_eq!(p.repart_device, None);
        assert_eq!(p.policy.emergency, Emergency::Reboot);
        assert_eq!(p.policy.reboot_delay, Duration::from_secs(10));
        assert_eq!(p.policy, FailurePolicy::default());
        assert_eq!(p.break_before, None);
        assert!(!p.debug);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn every_parameter() {
        let p = BootParams::parse(
            "root=/dev/ram0 atomixos.lowerdev=/dev/mmcblk1p2 atomixos.lowerfstype=ext4 \
             rauc.slot=boot.1 init=/lib/systemd/systemd rootwait rootdelay=3 \
             atomix.device-timeout=5 atomix.repart=required atomix.repart.device=/dev/mmcblk1 \
             atomix.emergency=shell atomix.reboot-delay=0 atomix.break=device atomix.debug quiet",
        )
        .unwrap();
        assert_eq!(p.lowerdev, DeviceSpec::Path("/dev/mmcblk1p2".into()));
        assert_eq!(p.lowerfstype, "ext4");
        assert_eq!(p.rauc_slot.as_deref(), Some("boot.1"));
        assert_eq!(p.init, PathBuf::from("/lib/systemd/systemd"));
        assert!(p.rootwait);
        assert_eq!(p.rootdelay, Some(Duration::from_secs(3)));
        assert_eq!(p.device_timeout, Duration::from_secs(5));
        assert_eq!(p.repart, RepartMode::Required);
        assert_eq!(p.repart_device, Some(PathBuf::from("/dev/mmcblk1")));
        assert_eq!(p.policy.emergency, Emergency::Shell);
        assert_eq!(p.policy.reboot_delay, Duration::ZERO);
        assert_eq!(p.break_before, Some(Stage::Device));
        assert!(p.debug);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn enums() {
        assert_eq!(parse("atomix.repart=off").unwrap().repart, RepartMode::Off);
        assert_eq!(
            parse("atomix.repart=auto").unwrap().repart,
            RepartMode::Auto
        );
        assert_eq!(
            parse("atomix.emergency=halt").unwrap().policy.emergency,
            Emergency::Halt
        );
        assert_eq!(
            parse("atomix.emergency=reboot").unwrap().policy.emergency,
            Emergency::Reboot
        );
        for s in [
            "modules",
            "device",
            "fresh-flash",
            "repart",
            "lower",
            "overlay",
            "marker",
            "switch-root",
        ] {
            assert_eq!(
                parse(&format!("atomix.break={s}")).unwrap().break_before,
                Stage::from_name(s)
            );
        }
    }

    #[test]
    fn device_specs() {
        let uuid = "0b9d9b1e-4d4b-4a55-9c29-7b3e0c1f2a3d";
        let p = BootParams::parse(&format!("atomixos.lowerdev=PARTUUID={uuid}")).unwrap();
        assert_eq!(
            p.lowerdev,
            DeviceSpec::PartUuid("0B9D9B1E-4D4B-4A55-9C29-7B3E0C1F2A3D".parse().unwrap())
        );
        assert_eq!(
            p.lowerdev.to_string(),
            "PARTUUID=0B9D9B1E-4D4B-4A55-9C29-7B3E0C1F2A3D"
        );
        let p = BootParams::parse("atomixos.lowerdev=/dev/vda2").unwrap();
        assert_eq!(p.lowerdev, DeviceSpec::Path("/dev/vda2".into()));
        assert_eq!(p.lowerdev.to_string(), "/dev/vda2");
        assert_eq!(
            BootParams::parse("atomixos.lowerdev=PARTLABEL=rootfs-b")
                .unwrap()
                .lowerdev
                .to_string(),
            "PARTLABEL=rootfs-b"
        );
    }

    #[test]
    fn malformed_lowerdev() {
        for bad in [
            "vda2",
            "/dev/",
            "/dev/../etc/passwd",
            "/dev/vda2/",
            "/sys/vda2",
            "LABEL=x",
            "PARTLABEL=",
            "PARTUUID=1234",
            "PARTUUID=0B9D9B1E-4D4B-4A55-9C29-7B3E0C1F2A3G",
            "PARTUUID=0B9D9B1E4D4B-4A55-9C29-7B3E0C1F2A3D-",
            "PARTUUID=0B9D9B1E-4D4B-4A55-9C29-7B3E0C1F2A3D/PARTNROFF=1",
        ] {
            let e = BootParams::parse(&format!("atomixos.lowerdev={bad}")).unwrap_err();
            match &e {
                CmdlineError::Invalid { key, value, .. } => {
                    assert_eq!(key, "atomixos.lowerdev");
                    assert_eq!(value, bad);
                }
                other => panic!("{bad}: {other}"),
            }
        }
        assert_eq!(
            BootParams::parse("atomixos.lowerdev=vda2")
                .unwrap_err()
                .to_string(),
            "invalid boot parameter atomixos.lowerdev=\"vda2\": expected /dev/<name>, PARTLABEL=<label> or PARTUUID=<guid>"
        );
        assert_eq!(
            BootParams::parse("atomixos.lowerdev")
                .unwrap_err()
                .to_string(),
            "invalid boot parameter atomixos.lowerdev=\"\": expected /dev/<name>, PARTLABEL=<label> or PARTUUID=<guid>"
        );
    }

    #[test]
    fn missing_lowerdev() {
        let e = BootParams::parse("console=ttyS2 rauc.slot=boot.0").unwrap_err();
        assert_eq!(
            e,
            CmdlineError::Missing {
                key: "atomixos.lowerdev"
            }
        );
        assert_eq!(
            e.to_string(),
            "missing required boot parameter atomixos.lowerdev="
        );
        assert!(BootParams::parse("").is_err());
    }

    #[test]
    fn malformed_values_name_key_value_expected() {
        let cases = [
            (
                "atomixos.lowerfstype=Ext4",
                "atomixos.lowerfstype=\"Ext4\": expected a filesystem type ([a-z0-9_]+)",
            ),
            (
                "atomixos.lowerfstype=",
                "atomixos.lowerfstype=\"\": expected a filesystem type ([a-z0-9_]+)",
            ),
            (
                "atomixos.lowerfstype=squash-fs",
                "atomixos.lowerfstype=\"squash-fs\": expected a filesystem type ([a-z0-9_]+)",
            ),
            (
                "init=sbin/init",
                "init=\"sbin/init\": expected an absolute path",
            ),
            ("init", "init=\"\": expected an absolute path"),
            (
                "atomix.device-timeout=abc",
                "atomix.device-timeout=\"abc\": expected a whole number of seconds",
            ),
            (
                "atomix.device-timeout=-1",
                "atomix.device-timeout=\"-1\": expected a whole number of seconds",
            ),
            (
                "atomix.device-timeout=1.5",
                "atomix.device-timeout=\"1.5\": expected a whole number of seconds",
            ),
            (
                "atomix.device-timeout",
                "atomix.device-timeout=\"\": expected a whole number of seconds",
            ),
            (
                "atomix.device-timeout=99999999999999999999",
                "atomix.device-timeout=\"99999999999999999999\": expected a whole number of seconds",
            ),
            (
                "atomix.repart=yes",
                "atomix.repart=\"yes\": expected one of auto, off, required",
            ),
            (
                "atomix.repart.device=mmcblk1",
                "atomix.repart.device=\"mmcblk1\": expected a disk device path /dev/<name>",
            ),
            (
                "atomix.repart.device=PARTLABEL=x",
                "atomix.repart.device=\"PARTLABEL=x\": expected a disk device path /dev/<name>",
            ),
            (
                "atomix.emergency=panic",
                "atomix.emergency=\"panic\": expected one of reboot, shell, halt",
            ),
            (
                "atomix.emergency",
                "atomix.emergency=\"\": expected one of reboot, shell, halt",
            ),
            (
                "atomix.reboot-delay=10s",
                "atomix.reboot-delay=\"10s\": expected a whole number of seconds",
            ),
            (
                "atomix.break=early",
                "atomix.break=\"early\": expected a stage name (one of modules, device, fresh-flash, repart, lower, overlay, marker, switch-root)",
            ),
            (
                "atomix.break=cmdline",
                "atomix.break=\"cmdline\": expected a stage name (one of modules, device, fresh-flash, repart, lower, overlay, marker, switch-root)",
            ),
            (
                "atomix.break=bogus",
                "atomix.break=\"bogus\": expected a stage name (one of modules, device, fresh-flash, repart, lower, overlay, marker, switch-root)",
            ),
            (
                "atomix.debug=1",
                "atomix.debug=\"1\": expected no value (it is a flag)",
            ),
        ];
        for (arg, msg) in cases {
            assert_eq!(err(arg), format!("invalid boot parameter {msg}"), "{arg}");
        }
    }

    #[test]
    fn unknown_keys_warn_others_ignored() {
        let p =
            parse("atomix.frobnicate=1 atomixos.foo atomix quiet loglevel=3 foo.bar=baz").unwrap();
        assert_eq!(
            p.warnings,
            [
                "unknown boot parameter atomix.frobnicate=1 ignored",
                "unknown boot parameter atomixos.foo ignored"
            ]
        );
    }

    #[test]
    fn bad_rootdelay_is_a_warning() {
        let p = parse("rootdelay=soon").unwrap();
        assert_eq!(p.rootdelay, None);
        assert_eq!(
            p.warnings,
            [
                "invalid boot parameter rootdelay=\"soon\": expected a whole number of seconds; ignored"
            ]
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(
            tokenize("a=\"b c\" \"d=e f\" g"),
            [
                ("a".to_owned(), Some("b c".to_owned())),
                ("d".to_owned(), Some("e f".to_owned())),
                ("g".to_owned(), None),
            ]
        );
        let p = BootParams::parse("rauc.slot=\"boot 0\" atomixos.lowerdev=\"PARTLABEL=rootfs a\"")
            .unwrap();
        assert_eq!(p.rauc_slot.as_deref(), Some("boot 0"));
        assert_eq!(p.lowerdev, DeviceSpec::PartLabel("rootfs a".into()));
        // An unterminated quote runs to the end of the line.
        assert_eq!(
            tokenize("x=\"a b"),
            [("x".to_owned(), Some("a b".to_owned()))]
        );
        // Tabs and newlines separate words; an empty value is kept.
        assert_eq!(
            tokenize(" a=\tb=1\n"),
            [
                ("a".to_owned(), Some(String::new())),
                ("b".to_owned(), Some("1".to_owned()))
            ]
        );
    }

    #[test]
    fn words_after_double_dash_are_init_args() {
        let p = parse("-- atomix.emergency=bogus atomix.whatever").unwrap();
        assert_eq!(p.policy.emergency, Emergency::Reboot);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn last_value_wins() {
        let p = parse("atomix.emergency=shell atomix.emergency=halt atomixos.lowerdev=/dev/vdb1")
            .unwrap();
        assert_eq!(p.policy.emergency, Emergency::Halt);
        assert_eq!(p.lowerdev, DeviceSpec::Path("/dev/vdb1".into()));
    }

    #[test]
    fn rootwait_with_value_is_a_flag() {
        assert!(parse("rootwait=5").unwrap().rootwait);
    }

    #[test]
    fn salvage_takes_only_valid_policy_keys() {
        let p = FailurePolicy::salvage(
            "atomixos.lowerdev=vda2 atomix.emergency=shell atomix.reboot-delay=3",
        );
        assert_eq!(p.emergency, Emergency::Shell);
        assert_eq!(p.reboot_delay, Duration::from_secs(3));
        let p = FailurePolicy::salvage("atomix.emergency=panic atomix.reboot-delay=soon");
        assert_eq!(p, FailurePolicy::default());
        // Words after `--` belong to init.
        let p = FailurePolicy::salvage("quiet -- atomix.emergency=halt");
        assert_eq!(p, FailurePolicy::default());
    }
}
