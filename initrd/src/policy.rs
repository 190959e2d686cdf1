//! The failure policy: what `/init` prints and does after a fatal error or a panic.
//!
//! Console/kmsg lines on failure (all at error level):
//!
//! ```text
//! fatal: stage <stage> failed: <error>
//!   caused by: <source>            (one line per error in the chain)
//! hint: <one line for the stage>
//! rebooting in <N> s (atomix.emergency=reboot)
//! ```
//!
//! or, for the other policies, `starting /bin/sh (atomix.emergency=shell); the machine reboots
//! when it exits` then `shell exited; rebooting`, `atomix.emergency=shell but the initramfs has no
//! /bin/sh; rebooting in <N> s`, `powering off (atomix.emergency=halt)`. A panic prints
//! `fatal: panic in stage <stage>: <message>` and the hint, then the same policy lines.
//!
//! Must not: run stages or write the report; it only needs a clock and [`Rescue`].

use std::error::Error;
use std::path::PathBuf;

use crate::cmdline::{Emergency, FailurePolicy};
use crate::stage::Stage;
use crate::system::{Clock, Rescue};

/// How the boot ended. On the real machine only the failure variants can be seen, because a
/// successful exec, reboot or power-off does not return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The real init was exec'd.
    Exec(PathBuf),
    /// The machine was rebooted.
    Reboot,
    /// The machine was powered off.
    PowerOff,
    /// The reboot or power-off call itself failed; the caller exits (the kernel then panics).
    ActionFailed,
}

/// The failure policy for a failed `stage`: prints the error, its chain and the stage hint, then
/// acts on `policy`.
pub fn fail<S: Clock + Rescue>(
    sys: &mut S,
    policy: FailurePolicy,
    stage: Stage,
    err: &(dyn Error + 'static),
) -> Ending {
    log::error!("fatal: stage {stage} failed: {err}");
    for cause in atomix_errchain::causes(err) {
        log::error!("  caused by: {cause}");
    }
    log::error!("hint: {}", stage.hint());
    emergency(sys, policy)
}

/// The panic path: what the panic hook runs (then the process aborts if this returns).
pub fn on_panic<S: Clock + Rescue>(
    sys: &mut S,
    policy: FailurePolicy,
    stage: Stage,
    message: &str,
) -> Ending {
    log::error!("fatal: panic in stage {stage}: {message}");
    log::error!("hint: {}", stage.hint());
    emergency(sys, policy)
}

/// Acts on `atomix.emergency=`.
pub fn emergency<S: Clock + Rescue>(sys: &mut S, policy: FailurePolicy) -> Ending {
    let delay = policy.reboot_delay.as_secs();
    match policy.emergency {
        Emergency::Reboot => {
            log::error!("rebooting in {delay} s (atomix.emergency=reboot)");
            sys.sleep(policy.reboot_delay);
            reboot(sys)
        }
        Emergency::Shell if sys.shell_available() => {
            log::error!(
                "starting /bin/sh (atomix.emergency=shell); the machine reboots when it exits"
            );
            if let Err(e) = sys.run_shell() {
                log::error!("cannot run /bin/sh: {e}");
            }
            log::error!("shell exited; rebooting");
            reboot(sys)
        }
        Emergency::Shell => {
            log::error!(
                "atomix.emergency=shell but the initramfs has no /bin/sh; rebooting in {delay} s"
            );
            sys.sleep(policy.reboot_delay);
            reboot(sys)
        }
        Emergency::Halt => {
            log::error!("powering off (atomix.emergency=halt)");
            match sys.power_off() {
                Ok(()) => Ending::PowerOff,
                Err(e) => {
                    log::error!("power off failed: {e}");
                    Ending::ActionFailed
                }
            }
        }
    }
}

fn reboot<S: Rescue>(sys: &mut S) -> Ending {
    match sys.reboot() {
        Ok(()) => Ending::Reboot,
        Err(e) => {
            log::error!("reboot failed: {e}");
            Ending::ActionFailed
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::boot::run;
    use crate::fake::{CMDLINE, Call, Fake, Op, capture, lines};

    #[test]
    fn error_chain_is_printed() {
        capture();
        let mut f = Fake::new(CMDLINE);
        f.fail = Some(Op::MountLower);
        assert_eq!(run(&mut f), Ending::Reboot);
        let l = lines();
        let i = l
            .iter()
            .position(|l| l == "ERROR fatal: stage lower failed: cannot mount /dev/vda2 (squashfs) read-only at /run/rootfs-base")
            .unwrap();
        assert!(
            l[i + 1].starts_with("ERROR   caused by: Invalid argument"),
            "{}",
            l[i + 1]
        );
        assert!(l[i + 2].starts_with("ERROR hint: check atomixos.lowerfstype="));
        assert_eq!(f.calls.last().unwrap(), &Call::Reboot);
        assert!(f.calls.contains(&Call::sleep(10)), "default delay");
    }

    #[test]
    fn shell_policy_runs_shell_then_reboots() {
        capture();
        let mut f = Fake::new(&format!("{CMDLINE} atomix.emergency=shell"));
        f.shell = true;
        f.fail = Some(Op::MountLower);
        assert_eq!(run(&mut f), Ending::Reboot);
        let tail = f.last_calls(2);
        assert_eq!(tail, [Call::RunShell, Call::Reboot]);
        assert!(!f.called(Op::Sleep));
        let l = lines();
        assert!(l.contains(&"ERROR starting /bin/sh (atomix.emergency=shell); the machine reboots when it exits".to_string()));
        assert!(l.contains(&"ERROR shell exited; rebooting".to_string()));
    }

    #[test]
    fn shell_policy_without_shell_reboots_after_delay() {
        capture();
        let mut f = Fake::new(&format!(
            "{CMDLINE} atomix.emergency=shell atomix.reboot-delay=2"
        ));
        f.fail = Some(Op::MountLower);
        assert_eq!(run(&mut f), Ending::Reboot);
        let tail = f.last_calls(2);
        assert_eq!(tail, [Call::sleep(2), Call::Reboot]);
        assert!(
            lines().contains(
                &"ERROR atomix.emergency=shell but the initramfs has no /bin/sh; rebooting in 2 s"
                    .to_string()
            )
        );
    }

    #[test]
    fn halt_policy_powers_off() {
        capture();
        let mut f = Fake::new(&format!("{CMDLINE} atomix.emergency=halt"));
        f.fail = Some(Op::MountLower);
        assert_eq!(run(&mut f), Ending::PowerOff);
        assert_eq!(f.calls.last().unwrap(), &Call::PowerOff);
        assert!(!f.called(Op::Sleep) && !f.called(Op::Reboot));
        assert!(lines().contains(&"ERROR powering off (atomix.emergency=halt)".to_string()));
    }

    #[test]
    fn panic_path() {
        capture();
        // What the hook does with the context it was given.
        let mut f = Fake::new(CMDLINE);
        let policy = FailurePolicy {
            emergency: Emergency::Reboot,
            reboot_delay: Duration::from_secs(3),
        };
        assert_eq!(
            on_panic(&mut f, policy, Stage::Device, "boom at x.rs:1"),
            Ending::Reboot
        );
        assert_eq!(f.calls, [Call::sleep(3), Call::Reboot]);
        assert_eq!(
            lines()[..2],
            [
                "ERROR fatal: panic in stage device: boom at x.rs:1".to_string(),
                "ERROR hint: check atomixos.lowerdev= against the disk's partitions and that the storage driver is built in or in the initramfs".to_string()
            ]
        );
        // The runner hands the panic hook the running stage before each stage.
        let mut f = Fake::new(CMDLINE);
        f.panic_at = Some(Op::MountLower);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut f)));
        assert!(r.is_err());
        assert_eq!(f.contexts.last(), Some(&Stage::Lower));
    }
}
