//! The runner against a fake `qemu`: a shell script passed as `binary` that prints, sleeps and
//! reads stdin. These run without QEMU.

use std::cell::Cell;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use atomix_qemu::{Ending, Expect, QemuConfig, QemuError, command_line, run, run_interactive};
use tempfile::TempDir;

/// A temp dir with a fake qemu script and a dummy firmware file.
struct Fake {
    dir: TempDir,
}

impl Fake {
    fn new(body: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("fake-qemu");
        fs::write(&script, format!("#!/bin/sh\n{body}\n")).expect("write the fake qemu");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
            .expect("chmod the fake qemu");
        fs::write(dir.path().join("fw.bin"), b"firmware").expect("write the firmware");
        Self { dir }
    }

    fn config(&self, timeout: Duration) -> QemuConfig {
        QemuConfig {
            binary: self.dir.path().join("fake-qemu"),
            bios: Some(self.dir.path().join("fw.bin")),
            timeout,
            ..QemuConfig::default()
        }
    }
}

fn run_collect(cfg: &QemuConfig) -> (atomix_qemu::Outcome, Vec<String>) {
    let mut lines = Vec::new();
    let outcome = run(cfg, &mut |line| lines.push(line.to_owned())).expect("run the fake qemu");
    (outcome, lines)
}

/// True once `pid` no longer runs (gone, or a zombie nobody reaps yet). Waits up to 3 s.
fn process_gone(pid: u32) -> bool {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"));
        let gone = match stat {
            Err(_) => true,
            // Field 3, after the parenthesised command name, is the state.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        };
        if gone || Instant::now() > until {
            return gone;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The number after `prefix` on the console line that starts with it.
fn pid_after(console: &str, prefix: &str) -> u32 {
    console
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in {console:?}"))
        .trim()
        .parse()
        .expect("a pid")
}

#[test]
fn streams_lines_crlf_partial_and_invalid_utf8_then_reports_exit_code() {
    let fake = Fake::new(
        r#"printf 'first\r\n'
printf 'bad \377 byte\r\n'
echo "warning from qemu" >&2
printf 'split '
sleep 0.2
printf 'line\n'
printf 'no newline at the end'
exit 3"#,
    );
    let (outcome, lines) = run_collect(&fake.config(Duration::from_secs(20)));
    assert_eq!(outcome.ending, Ending::Exited { code: Some(3) });
    assert_eq!(
        lines,
        [
            "first",
            "bad \u{fffd} byte",
            "split line",
            "no newline at the end"
        ]
    );
    assert_eq!(
        outcome.console,
        "first\nbad \u{fffd} byte\nsplit line\nno newline at the end\n"
    );
    assert_eq!(outcome.stderr, "warning from qemu\n");
}

#[test]
fn lines_arrive_while_qemu_still_runs() {
    let fake = Fake::new("echo early; sleep 1; echo late");
    let start = Instant::now();
    let mut seen = Vec::new();
    let outcome = run(&fake.config(Duration::from_secs(20)), &mut |line| {
        seen.push((line.to_owned(), start.elapsed()));
    })
    .unwrap();
    assert_eq!(outcome.ending, Ending::Exited { code: Some(0) });
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[1].1 - seen[0].1 >= Duration::from_millis(700),
        "the first line was not streamed before the second: {seen:?}"
    );
}

#[test]
fn the_arguments_reach_qemu() {
    let fake = Fake::new(r#"echo "$@""#);
    let mut cfg = fake.config(Duration::from_secs(20));
    cfg.disks = vec![fake.dir.path().join("fw.bin")];
    cfg.append = Some("console=ttyAMA0 panic=-1".into());
    let (outcome, _) = run_collect(&cfg);
    let expected = command_line(&cfg)[1..].join(" ");
    assert_eq!(outcome.console, format!("{expected}\n"));
}

#[test]
fn power_off_marker_decides_even_though_exit_code_is_zero() {
    let fake = Fake::new("echo 'ROOTFS-DONE'; echo '[    2.0] reboot: Power down'; exit 0");
    let (outcome, _) = run_collect(&fake.config(Duration::from_secs(20)));
    assert_eq!(outcome.ending, Ending::PowerOff);
}

#[test]
fn reset_and_panic_markers() {
    let fake = Fake::new("echo '[ 9.1] reboot: Restarting system'");
    let (outcome, _) = run_collect(&fake.config(Duration::from_secs(20)));
    assert_eq!(outcome.ending, Ending::Reset);

    let fake = Fake::new(
        "echo '[ 1.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100'\n\
         echo '[ 1.3] CPU: 0 PID: 1 Comm: init'",
    );
    let (outcome, _) = run_collect(&fake.config(Duration::from_secs(20)));
    assert_eq!(
        outcome.ending,
        Ending::Panic {
            message: "Attempted to kill init! exitcode=0x00000100".into()
        }
    );
    assert!(outcome.console.contains("CPU: 0 PID: 1"));
}

#[test]
fn a_guest_that_hangs_after_power_down_is_killed_after_a_grace() {
    let fake = Fake::new("echo \"pid $$\"; echo 'reboot: Power down'; exec sleep 100");
    let (outcome, _) = run_collect(&fake.config(Duration::from_secs(30)));
    assert_eq!(outcome.ending, Ending::PowerOff);
    assert!(outcome.wall < Duration::from_secs(8), "{:?}", outcome.wall);
    assert!(process_gone(pid_after(&outcome.console, "pid ")));
}

#[test]
fn panic_with_panic_0_hangs_and_the_end_line_cuts_the_grace_short() {
    let fake = Fake::new(
        "echo 'Kernel panic - not syncing: Fatal exception'\n\
         echo '---[ end Kernel panic - not syncing: Fatal exception ]---'\n\
         exec sleep 100",
    );
    let (outcome, _) = run_collect(&fake.config(Duration::from_secs(30)));
    assert_eq!(
        outcome.ending,
        Ending::Panic {
            message: "Fatal exception".into()
        }
    );
    assert!(outcome.wall < Duration::from_secs(3), "{:?}", outcome.wall);
}

#[test]
fn timeout_kills_qemu_and_everything_in_its_process_group() {
    let fake = Fake::new("echo \"pid $$\"; sleep 1000 & echo \"child $!\"; wait");
    let start = Instant::now();
    let (outcome, _) = run_collect(&fake.config(Duration::from_millis(800)));
    assert_eq!(outcome.ending, Ending::Timeout);
    assert!(outcome.wall >= Duration::from_millis(800));
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert!(process_gone(pid_after(&outcome.console, "pid ")));
    assert!(process_gone(pid_after(&outcome.console, "child ")));
}

#[test]
fn a_qemu_that_ignores_sigterm_is_killed() {
    let fake = Fake::new("trap '' TERM; echo \"pid $$\"; while :; do sleep 0.1; done");
    let (outcome, _) = run_collect(&fake.config(Duration::from_millis(500)));
    assert_eq!(outcome.ending, Ending::Timeout);
    assert!(outcome.wall < Duration::from_secs(5), "{:?}", outcome.wall);
    assert!(process_gone(pid_after(&outcome.console, "pid ")));
}

#[test]
fn stop_on_ends_the_run_at_once_even_across_writes() {
    let fake = Fake::new(
        "echo \"pid $$\"; echo booting; printf 'ROOTFS-'; sleep 0.2; printf 'DONE\\n'; exec sleep 100",
    );
    let mut cfg = fake.config(Duration::from_secs(30));
    cfg.stop_on = vec!["never printed".into(), "ROOTFS-DONE".into()];
    let (outcome, lines) = run_collect(&cfg);
    assert_eq!(outcome.ending, Ending::Matched("ROOTFS-DONE".into()));
    assert!(outcome.wall < Duration::from_secs(4), "{:?}", outcome.wall);
    assert_eq!(lines.last().map(String::as_str), Some("ROOTFS-DONE"));
    assert!(process_gone(pid_after(&outcome.console, "pid ")));
}

#[test]
fn the_expect_script_types_answers_in_order() {
    let fake = Fake::new(
        r#"printf 'login: '
read user
echo "hello $user"
printf '=> '
read cmd
echo "ran $cmd"
echo 'reboot: Power down'"#,
    );
    let mut cfg = fake.config(Duration::from_secs(20));
    cfg.script = vec![
        Expect::new("login: ", "root"),
        Expect::new("=> ", "ls -l /"),
    ];
    let (outcome, lines) = run_collect(&cfg);
    assert_eq!(outcome.ending, Ending::PowerOff, "{}", outcome.console);
    assert_eq!(
        lines,
        ["login: hello root", "=> ran ls -l /", "reboot: Power down"]
    );
}

/// A conversation from another thread: it types while the guest sits silently at a prompt
/// (no line arrives to trigger anything), and reads the answers as they come.
#[test]
fn a_second_thread_types_at_a_silent_prompt_and_reads_the_answers() {
    let fake = Fake::new(
        r#"printf '$ '
read a
echo "got $a"
printf '$ '
read b
echo "got $b"
echo 'reboot: Power down'"#,
    );
    let cfg = fake.config(Duration::from_secs(20));
    let (keys, input) = std::sync::mpsc::channel::<String>();
    let (lines_out, lines) = std::sync::mpsc::channel::<String>();
    let runner = thread::spawn(move || {
        run_interactive(&cfg, &input, &mut |line| {
            lines_out.send(line.to_owned()).unwrap();
        })
        .expect("run the fake qemu")
    });
    thread::sleep(Duration::from_millis(300));
    keys.send("one".into()).unwrap();
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(5)).unwrap(),
        "$ got one"
    );
    keys.send("two".into()).unwrap();
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(5)).unwrap(),
        "$ got two"
    );
    let outcome = runner.join().unwrap();
    assert_eq!(outcome.ending, Ending::PowerOff, "{}", outcome.console);
    drop(keys);
}

/// Hanging up stops the guest at once, long before its deadline.
#[test]
fn closing_the_input_stops_qemu() {
    let fake = Fake::new("echo \"pid $$\"; sleep 30");
    let cfg = fake.config(Duration::from_secs(60));
    let (keys, input) = std::sync::mpsc::channel::<String>();
    let (pids, pid) = std::sync::mpsc::channel::<String>();
    let runner = thread::spawn(move || {
        run_interactive(&cfg, &input, &mut |line| {
            let _ = pids.send(line.to_owned());
        })
        .expect("run the fake qemu")
    });
    let line = pid.recv_timeout(Duration::from_secs(5)).unwrap();
    let start = Instant::now();
    drop(keys);
    let outcome = runner.join().unwrap();
    assert_eq!(outcome.ending, Ending::Stopped);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(process_gone(pid_after(&line, "pid ")));
}

#[test]
fn an_unanswered_prompt_times_out() {
    let fake = Fake::new("printf 'password: '; read pw; echo \"got $pw\"");
    let mut cfg = fake.config(Duration::from_millis(700));
    cfg.script = vec![Expect::new("login: ", "root")];
    let (outcome, lines) = run_collect(&cfg);
    assert_eq!(outcome.ending, Ending::Timeout);
    assert_eq!(lines, ["password: "]);
}

#[test]
fn without_no_reboot_resets_and_panics_do_not_end_the_run() {
    let fake = Fake::new(
        "echo 'Kernel panic - not syncing: Attempted to kill init!'\n\
         echo 'reboot: Restarting system'\n\
         echo 'U-Boot 2023.01'\n\
         echo 'reboot: Power down'",
    );
    let mut cfg = fake.config(Duration::from_secs(20));
    cfg.no_reboot = false;
    let (outcome, _) = run_collect(&cfg);
    assert_eq!(outcome.ending, Ending::PowerOff);
    assert!(outcome.console.contains("U-Boot 2023.01"));
}

#[test]
fn the_console_log_is_written_with_the_command_and_the_ending() {
    let fake = Fake::new("echo 'line one'; echo oops >&2; echo 'reboot: Power down'");
    let mut cfg = fake.config(Duration::from_secs(20));
    let log: PathBuf = fake.dir.path().join("logs/nested/run.log");
    cfg.console_log = Some(log.clone());
    let (outcome, _) = run_collect(&cfg);
    assert_eq!(outcome.ending, Ending::PowerOff);
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("### atomix-qemu: command: "), "{text}");
    assert!(lines.contains(&"line one"), "{text}");
    assert!(
        lines.contains(&"### atomix-qemu: qemu stderr: oops"),
        "{text}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("### atomix-qemu: ending: power-off; wall "),
        "{text}"
    );
}

#[test]
fn a_panic_in_the_callback_still_kills_qemu() {
    let fake = Fake::new("echo \"pid $$\"; exec sleep 100");
    let cfg = fake.config(Duration::from_secs(60));
    let pid = Cell::new(0u32);
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| {
        run(&cfg, &mut |line| {
            if let Some(number) = line.strip_prefix("pid ") {
                pid.set(number.parse().unwrap());
                panic!("the caller panics");
            }
        })
    }));
    assert!(result.is_err());
    assert_ne!(pid.get(), 0);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(process_gone(pid.get()));
}

#[test]
fn failing_to_start_is_an_error() {
    let fake = Fake::new("true");
    let mut cfg = fake.config(Duration::from_secs(5));
    cfg.binary = fake.dir.path().join("no-such-qemu");
    let err = run(&cfg, &mut |_| {}).unwrap_err();
    assert!(matches!(err, QemuError::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-qemu"));

    cfg.binary = Path::new("/bin/true").to_owned();
    cfg.initramfs = Some(fake.dir.path().join("missing-initrd.img"));
    let err = run(&cfg, &mut |_| {}).unwrap_err();
    assert!(matches!(
        err,
        QemuError::MissingInput {
            what: "initramfs",
            ..
        }
    ));
}
