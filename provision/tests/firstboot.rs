//! First boot's decisions (T0): the real seed order, import path and engine, with fakes for
//! systemd, accounts, network, nftables, RAUC and the seed devices, on temporary directories.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use atomix_config::bundle::Limits;
use atomix_provision::activate::accounts::Shells;
use atomix_provision::activate::bootstrap::bootstrap_rule;
use atomix_provision::activate::rauc::RaucCall;
use atomix_provision::activate::{
    ActiveState, Deps, FakeAccounts, FakeClock, FakeFirewall, FakeNetwork, FakeRauc, FakeSystemd,
    FakeTimeSync, Firewall as _, Interfaces, Rootless,
};
use atomix_provision::firstboot::{
    self, BootSeed, Context, Finished, FirstBootError, Seed, SeedFinder, Settings,
};
use atomix_provision::source::Source;
use atomix_provision::store::{ConfigRoot, Owner, RealFs};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGWJTPQWixeXADe1Iu7qyvUW+Xrb1QRoB/IqOo3CBAE5 a@b";

/// A valid config whose admin is `user` (so the seed used can be told apart).
fn config(user: &str) -> String {
    format!(
        "version = 1\n\n[users.{user}]\nisAdmin = true\nssh_key = \"{KEY}\"\n\n\
         [activation]\nrequired = [\"web\"]\n\n[containers.container.web]\nprivileged = true\n\n\
         [containers.container.web.Container]\nImage = \"localhost/web:latest\"\n"
    )
}

/// An invalid config: two errors, the first on line 1.
const INVALID: &str = "version = 2\n[users.x]\nisAdmin = \"yes\"\n";

fn seed(origin: &str, toml: &str) -> Seed {
    Seed {
        origin: origin.to_owned(),
        read: Ok(Source {
            toml: toml.to_owned(),
            payload: None,
        }),
    }
}

/// Scripted seed devices: the boot seed, and what each USB scan finds.
#[derive(Default)]
struct FakeSeeds {
    boot: Option<Seed>,
    usb: VecDeque<Vec<Seed>>,
    boot_asked: usize,
    usb_scans: usize,
}

impl SeedFinder for FakeSeeds {
    fn boot_seed(&mut self) -> Option<Seed> {
        self.boot_asked += 1;
        self.boot.clone()
    }

    fn usb_seeds(&mut self) -> Vec<Seed> {
        self.usb_scans += 1;
        self.usb.pop_front().unwrap_or_default()
    }
}

/// One device: its directories and fakes.
struct Device {
    dir: tempfile::TempDir,
    system: FakeSystemd,
    user: FakeSystemd,
    accounts: FakeAccounts,
    network: FakeNetwork,
    firewall: FakeFirewall,
    clock: FakeClock,
    time_sync: FakeTimeSync,
    rauc: FakeRauc,
    seeds: FakeSeeds,
    log: Vec<String>,
    /// How many pauses the wait gets before it is stopped (a power cut, in effect).
    pauses: usize,
    slot: Option<String>,
}

impl Device {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["data", "etc/atomixos", "run", "home"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Self {
            dir,
            system: FakeSystemd::new(),
            user: FakeSystemd::new(),
            accounts: FakeAccounts::default(),
            network: FakeNetwork::default(),
            firewall: FakeFirewall::default(),
            clock: FakeClock::new(),
            time_sync: FakeTimeSync::default(),
            rauc: FakeRauc::default(),
            seeds: FakeSeeds::default(),
            log: Vec::new(),
            pauses: 0,
            slot: Some("boot.0".into()),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn root(&self) -> ConfigRoot {
        ConfigRoot::unchecked(&self.path("data/config")).unwrap()
    }

    /// `/init`'s fresh-flash marker for this boot.
    fn fresh_flash(&self) {
        fs::write(self.path("etc/atomixos/fresh-flash"), "").unwrap();
    }

    /// A reboot: the per-boot `/etc` and `/run` are new.
    fn reboot(&mut self) {
        for d in ["etc", "run"] {
            fs::remove_dir_all(self.path(d)).unwrap();
        }
        fs::create_dir_all(self.path("etc/atomixos")).unwrap();
        fs::create_dir_all(self.path("run")).unwrap();
        self.rauc = FakeRauc::default();
        self.log.clear();
    }

    fn settings(&self) -> Settings {
        Settings {
            config_root: self.root(),
            sentinel: self.path("data/.completed_first_boot"),
            fresh_flash_marker: self.path("etc/atomixos/fresh-flash"),
            boot_seed_pending: self.path("data/.atomixos-boot-seed-pending"),
            boot_seed: BootSeed::File(self.path("boot/config.toml")),
            usb_search_dirs: Vec::new(),
            slot: self.slot.clone(),
            rauc: true,
            status_file: self.path("run/atomixos/provisioning-status.json"),
            limits: Limits::default(),
            payload_owner: None,
        }
    }

    /// Runs first boot; `arrive` is called at each pause of the wait.
    fn first_boot_with(
        &mut self,
        mut arrive: impl FnMut(usize, &Path),
    ) -> Result<Finished, FirstBootError> {
        let settings = self.settings();
        let me = fs::metadata(self.dir.path()).unwrap();
        let rootless = Rootless {
            user: "appsvc".into(),
            owner: Owner {
                uid: me.uid(),
                gid: me.gid(),
            },
            home: self.path("home/appsvc"),
        };
        let mut deps = Deps {
            fs: &RealFs,
            system: &mut self.system,
            user: &mut self.user,
            accounts: &mut self.accounts,
            network: &mut self.network,
            firewall: &mut self.firewall,
            clock: &self.clock,
            time_sync: &mut self.time_sync,
            shells: Shells::detect(|_| false),
            interfaces: Interfaces::default(),
            rootful_target: self.dir.path().join("etc/containers/systemd"),
            rootless: Some(rootless),
        };
        let (budget, dir) = (self.pauses, self.dir.path().to_owned());
        let mut used = 0;
        let mut pause = || {
            used += 1;
            arrive(used, &dir);
            used <= budget
        };
        let log = &mut self.log;
        let mut say = |l: &str| log.push(l.to_owned());
        let mut ctx = Context {
            settings: &settings,
            fs: &RealFs,
            seeds: &mut self.seeds,
            deps: &mut deps,
            rauc: &mut self.rauc,
            pause: &mut pause,
            log: &mut say,
        };
        firstboot::run(&mut ctx)
    }

    fn first_boot(&mut self) -> Result<Finished, FirstBootError> {
        self.first_boot_with(|_, _| {})
    }

    fn active_config(&self) -> Option<String> {
        fs::read_to_string(self.path("data/config/config.toml")).ok()
    }

    fn sentinel(&self) -> bool {
        self.path("data/.completed_first_boot").exists()
    }

    fn logged(&self, text: &str) -> bool {
        self.log.iter().any(|l| l.contains(text))
    }

    fn status(&self) -> serde_json::Value {
        let text = fs::read_to_string(self.path("run/atomixos/provisioning-status.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

fn provisioned_from(done: Result<Finished, FirstBootError>) -> String {
    match done {
        Ok(Finished::Provisioned { origin, marked }) => {
            assert!(marked.is_some());
            origin
        }
        other => panic!("not provisioned: {other:?}"),
    }
}

#[test]
fn a_fresh_flash_uses_the_boot_seed_marks_good_and_writes_the_sentinel() {
    let mut d = Device::new();
    d.fresh_flash();
    // atomix-bootstrap-wan.service opened the WAN port at boot.
    let open = bootstrap_rule("eth0");
    d.firewall.apply(&format!("{open}\n")).unwrap();
    d.seeds.boot = Some(seed("/boot/config.toml", &config("bootadmin")));
    d.seeds
        .usb
        .push_back(vec![seed("/dev/sdb1:config.toml", &config("usbadmin"))]);
    assert_eq!(provisioned_from(d.first_boot()), "/boot/config.toml");
    assert_eq!(d.active_config(), Some(config("bootadmin")));
    assert_eq!(d.seeds.usb_scans, 0, "USB is not looked at");
    assert_eq!(d.rauc.calls, [RaucCall::MarkGoodBooted]);
    assert!(d.sentinel());
    let stamp = fs::read_to_string(d.path("data/.completed_first_boot")).unwrap();
    assert!(
        stamp.starts_with("20") && stamp.ends_with("Z\n"),
        "{stamp:?}"
    );
    // The boot seed is used up, the WAN port closed, the status says so.
    assert!(!d.path("data/.atomixos-boot-seed-pending").exists());
    assert!(
        !d.firewall
            .rules
            .iter()
            .any(|(_, r)| r.contains("ATOMIXOS_BOOTSTRAP_WAN")),
        "{:?}",
        d.firewall.rules
    );
    assert!(d.logged("bootstrap WAN port closed"));
    assert_eq!(d.status()["state"], "provisioned");
    // The container was started by the engine, not just written.
    assert!(d.system.restarted().contains(&"web.service".to_owned()));

    // The next boot: first boot is done.
    d.reboot();
    assert!(matches!(d.first_boot(), Ok(Finished::Skipped)));
    assert!(d.rauc.calls.is_empty());
}

#[test]
fn an_invalid_boot_seed_is_reported_with_its_place_and_the_usb_seed_is_used() {
    let mut d = Device::new();
    d.fresh_flash();
    d.seeds.boot = Some(seed("/boot/config.toml", INVALID));
    d.seeds
        .usb
        .push_back(vec![seed("/dev/sdb1:config.toml", &config("usbadmin"))]);
    assert_eq!(provisioned_from(d.first_boot()), "/dev/sdb1:config.toml");
    assert_eq!(d.active_config(), Some(config("usbadmin")));
    assert!(
        d.logged("seed /boot/config.toml not used") && d.logged("/boot/config.toml:1:11"),
        "{:#?}",
        d.log
    );
    assert_eq!(d.rauc.calls, [RaucCall::MarkGoodBooted]);
}

#[test]
fn an_unreadable_seed_falls_through_too() {
    let mut d = Device::new();
    d.fresh_flash();
    d.seeds.boot = Some(Seed {
        origin: "/boot/config.tar.zst".into(),
        read: Err("bundle member ../x: unsafe path".into()),
    });
    d.seeds
        .usb
        .push_back(vec![seed("/dev/sdb1:config.toml", &config("usbadmin"))]);
    assert_eq!(provisioned_from(d.first_boot()), "/dev/sdb1:config.toml");
    assert!(d.logged("unsafe path"));
}

#[test]
fn an_interrupted_first_boot_still_takes_the_boot_seed_next_time() {
    let mut d = Device::new();
    d.fresh_flash();
    // Boot 1: no seed anywhere yet; the power goes while it waits.
    assert!(matches!(d.first_boot(), Ok(Finished::StillWaiting)));
    assert!(d.logged("Waiting for provisioning via bootstrap web console"));
    assert_eq!(d.status()["state"], "waiting");
    assert!(d.path("data/.atomixos-boot-seed-pending").exists());
    // Boot 2: repart made boot-b in boot 1, so this is no fresh flash; the seed is still
    // taken from the boot partition.
    d.reboot();
    d.seeds.boot = Some(seed("/boot/config.toml", &config("bootadmin")));
    assert_eq!(provisioned_from(d.first_boot()), "/boot/config.toml");
    assert!(!d.path("data/.atomixos-boot-seed-pending").exists());
}

#[test]
fn without_a_fresh_flash_the_boot_seed_is_not_replayed() {
    // A wiped /data on a device whose disk was repartitioned long ago.
    let mut d = Device::new();
    d.seeds.boot = Some(seed("/boot/config.toml", &config("bootadmin")));
    d.seeds
        .usb
        .push_back(vec![seed("/dev/sdb1:config.toml", &config("usbadmin"))]);
    assert_eq!(provisioned_from(d.first_boot()), "/dev/sdb1:config.toml");
    assert_eq!(d.seeds.boot_asked, 0);
    assert!(d.logged("not a fresh flash"));
}

#[test]
fn a_failed_apply_step_discards_the_seed_and_gates_mark_good() {
    let mut d = Device::new();
    d.fresh_flash();
    d.network.fail = true;
    d.seeds.boot = Some(seed("/boot/config.toml", &config("bootadmin")));
    assert!(matches!(d.first_boot(), Ok(Finished::StillWaiting)));
    assert!(d.rauc.calls.is_empty(), "mark-good after a failed apply");
    assert!(!d.sentinel());
    assert_eq!(
        d.active_config(),
        None,
        "the failed initial import is discarded"
    );
    assert!(
        d.logged("network failed") && d.logged("rollback: discarded"),
        "{:#?}",
        d.log
    );
    let problems = &d.status()["problems"];
    assert_eq!(problems[0]["origin"], "/boot/config.toml");
    assert!(problems[0]["error"].as_str().unwrap().contains("network"));
}

#[test]
fn a_required_container_that_never_becomes_active_gates_mark_good() {
    let mut d = Device::new();
    d.fresh_flash();
    d.system.states("web.service", &[ActiveState::Failed]);
    d.seeds.boot = Some(seed("/boot/config.toml", &config("bootadmin")));
    d.seeds
        .usb
        .push_back(vec![seed("/dev/sdb1:config.toml", &config("usbadmin"))]);
    assert!(matches!(d.first_boot(), Ok(Finished::StillWaiting)));
    assert!(d.rauc.calls.is_empty());
    assert_eq!(d.active_config(), None);
    // Both seeds were tried (the USB one has the same container).
    assert!(
        d.logged("seed /boot/config.toml not used")
            && d.logged("seed /dev/sdb1:config.toml not used")
    );
    assert!(d.logged("web.service failed"), "{:#?}", d.log);
}

#[test]
fn an_existing_valid_config_is_activated_and_marked_good() {
    let mut d = Device::new();
    d.seeds
        .usb
        .push_back(vec![seed("/dev/sdb1:config.toml", &config("usbadmin"))]);
    assert_eq!(provisioned_from(d.first_boot()), "/dev/sdb1:config.toml");
    // The sentinel is lost (say, removed by hand); the config is there.
    fs::remove_file(d.path("data/.completed_first_boot")).unwrap();
    d.reboot();
    d.seeds
        .usb
        .push_back(vec![seed("/dev/sdc1:config.toml", &config("other"))]);
    assert_eq!(provisioned_from(d.first_boot()), "existing");
    assert_eq!(d.active_config(), Some(config("usbadmin")));
    assert_eq!(d.seeds.usb_scans, 1, "no seed is looked for");

    // When it does not activate: an error, and no mark-good.
    fs::remove_file(d.path("data/.completed_first_boot")).unwrap();
    d.reboot();
    d.system.states("web.service", &[ActiveState::Failed]);
    assert!(matches!(d.first_boot(), Err(FirstBootError::Existing(_))));
    assert!(d.rauc.calls.is_empty());
    assert!(!d.sentinel());
}

#[test]
fn a_config_that_arrives_while_waiting_is_activated_and_marked_good() {
    let mut d = Device::new();
    d.pauses = 10;
    let done = d.first_boot_with(|n, dir| {
        if n == 3 {
            // What the web console's import leaves: a committed root.
            let root = dir.join("data/config");
            fs::create_dir_all(root.join("quadlet")).unwrap();
            let toml = config("consoleadmin");
            let valid = atomix_provision::validate::validate(&toml, "/data/config").unwrap();
            let source = Source {
                toml: toml.clone(),
                payload: None,
            };
            let root = ConfigRoot::unchecked(&root).unwrap();
            fs::remove_dir_all(root.active()).unwrap();
            atomix_provision::import::import(
                &RealFs,
                &root,
                &source,
                &valid,
                Default::default(),
                None,
            )
            .unwrap();
        }
    });
    assert_eq!(provisioned_from(done), "console");
    assert_eq!(d.active_config(), Some(config("consoleadmin")));
    assert_eq!(d.rauc.calls, [RaucCall::MarkGoodBooted]);
}

#[test]
fn usb_is_looked_at_again_while_waiting() {
    let mut d = Device::new();
    d.pauses = 20;
    d.seeds.usb.push_back(Vec::new()); // the scan before the wait
    d.seeds
        .usb
        .push_back(vec![seed("/dev/sdb1:config.tgz", &config("late"))]);
    assert_eq!(provisioned_from(d.first_boot()), "/dev/sdb1:config.tgz");
    assert_eq!(d.seeds.usb_scans, 2);
    assert!(d.logged("Waiting for provisioning"));
}

#[test]
fn mark_good_needs_the_boot_slot() {
    let mut d = Device::new();
    d.slot = None;
    d.seeds
        .usb
        .push_back(vec![seed("/dev/sdb1:config.toml", &config("usbadmin"))]);
    assert!(matches!(d.first_boot(), Err(FirstBootError::NoSlot)));
    assert!(!d.sentinel());
    assert!(d.rauc.calls.is_empty());
}

#[test]
fn settings_come_from_the_originals_variables_and_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let s = Settings::from_env(
        env(&[]),
        "console=ttyAMA0 atomixos.lowerdev=/dev/vda4 rauc.slot=boot.1 panic=-1",
        dir.path(),
        None,
    )
    .unwrap();
    assert_eq!(s.config_root.active(), Path::new("/data/config"));
    assert_eq!(s.slot.as_deref(), Some("boot.1"));
    assert_eq!(
        s.boot_seed,
        BootSeed::Partition("/dev/disk/by-partlabel/boot-b".into())
    );
    assert_eq!(
        s.usb_search_dirs,
        [
            PathBuf::from("/dev/disk/by-label"),
            PathBuf::from("/dev/disk/by-partlabel")
        ]
    );
    assert!(s.rauc);
    assert_eq!(s.sentinel, Path::new("/data/.completed_first_boot"));

    let s = Settings::from_env(
        env(&[
            ("ATOMIXOS_BOOT_SLOT", "boot.0"),
            ("ATOMIXOS_RAUC_ENABLE", "0"),
            ("ATOMIXOS_BOOT_CONFIG_PATH", "/boot/config.toml"),
            ("ATOMIXOS_USB_SEARCH_DIRS", "/a::/b"),
        ]),
        "rauc.slot=boot.1",
        dir.path(),
        None,
    )
    .unwrap();
    assert_eq!(s.slot.as_deref(), Some("boot.0"));
    assert!(!s.rauc);
    assert_eq!(s.boot_seed, BootSeed::File("/boot/config.toml".into()));
    assert_eq!(
        s.usb_search_dirs,
        [PathBuf::from("/a"), PathBuf::from("/b")]
    );

    // Another root needs the original's opt-in.
    assert!(
        Settings::from_env(
            env(&[("ATOMIXOS_CONFIG_ROOT", "/tmp/x")]),
            "",
            dir.path(),
            None
        )
        .is_err()
    );
}
