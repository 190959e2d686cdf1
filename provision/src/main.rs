//! `atomix-provision`: the device's provisioning command, a drop-in for the original's
//! `atomixos-provision` (the same subcommands, arguments and environment variables).
//!
//! Owns: argument parsing, the environment, output and exit codes; every subcommand is a thin
//! call into the library.
//!
//! Exit codes: 0 done; 1 refused or failed, the reason on stderr; 2 bad usage.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use atomix_config::bundle::Limits;
use atomix_provision::activate::{
    DbusRauc, Event, Failure, Interfaces, Nft, RealSystem, accounts, bootstrap, check_health,
    mark_good, reactivate,
};
use atomix_provision::api::nonces::NonceLimits;
use atomix_provision::api::{self, Api, Engine, listen};
use atomix_provision::firstboot::{self, DeviceSeeds, MountCommand, Settings};
use atomix_provision::import::{self, Activation, Options};
use atomix_provision::store::{self, ConfigRoot, Fs as _, RealFs, quadlet_sync};
use atomix_provision::validate;
use atomix_provision::{source, store::root::DEFAULT_CONFIG_ROOT};
use clap::{Parser, Subcommand, ValueEnum};

/// Keeps an initial promotion pending (first boot completes it after its checks).
const KEEP_PENDING_ENV: &str = "ATOMIXOS_KEEP_INITIAL_PROMOTION_PENDING";
/// `serve`'s config root when none is given.
const CONFIG_ROOT_ENV: &str = "ATOMIXOS_CONFIG_ROOT";
/// `serve`'s address before provisioning when `--host` is not given.
const HOST_ENV: &str = "ATOMIXOS_BOOTSTRAP_HOST";
/// `serve`'s port when `--port` is not given.
const PORT_ENV: &str = "ATOMIXOS_BOOTSTRAP_PORT";
/// The original's default address: the default LAN gateway
/// (`atomix_config::lan::DEFAULT_GATEWAY_CIDR`).
const DEFAULT_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 20, 30, 1));

/// How `serve`'s jobs activate what they import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ActivationArg {
    /// The activation engine through systemd (the device).
    Systemd,
    /// No activation (a host without systemd, tests): imports and re-applies commit as written.
    None,
}

#[derive(Parser)]
#[command(
    name = "atomix-provision",
    version,
    about = "AtomixOS provisioning: validate, import, activate and recover the device's config; first boot"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config.toml or a config bundle (.tar.gz, .tar.zst): every error with its
    /// line:col. Prints `Valid: PATH`, or the report on stderr and exits 1.
    Validate {
        /// The config.toml (a name ending .toml) or bundle.
        path: PathBuf,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Make a config.toml or bundle the active config root (first provisioning).
    Import {
        /// The config.toml or bundle.
        source: PathBuf,
        /// The config root (`/data/config`; another needs ATOMIXOS_ALLOW_UNSAFE_CONFIG_ROOT=1).
        config_root: PathBuf,
    },
    /// Finish or undo an interrupted promotion of the config root (run at boot).
    Recover {
        /// The config root.
        config_root: PathBuf,
    },
    /// Copy the config root's Quadlet units into the rootful (and rootless) unit directories.
    SyncQuadlet {
        /// The config root.
        config_root: PathBuf,
        /// The rootful units' directory (`/etc/containers/systemd`).
        rootful: PathBuf,
        /// The rootless units' directory (the app user's `~/.config/containers/systemd`).
        rootless: Option<PathBuf>,
    },
    /// Complete a pending initial promotion after the first-boot checks passed.
    CompleteInitial {
        /// The config root.
        config_root: PathBuf,
    },
    /// Wait until every required unit of the active config is active for its settle window,
    /// within its timeout. Prints the units that are not and exits 1.
    CheckHealth {
        /// The config root.
        config_root: PathBuf,
    },
    /// Activate the active config as it is (users, Quadlet units, network, firewall, health):
    /// what every boot after the first does, since /etc is per boot.
    Activate {
        /// The config root.
        config_root: PathBuf,
        /// Mark the booted slot good with RAUC after the activation succeeded.
        #[arg(long)]
        mark_good: bool,
    },
    /// Provision the device once: the existing config, else the boot partition's seed (fresh
    /// flash), else USB seeds, else wait for one; then RAUC mark-good and the sentinel. Reads
    /// the original's ATOMIXOS_* variables.
    FirstBoot,
    /// Open tcp/8080 on the WAN while the device is unprovisioned (or a promotion is
    /// pending), close it otherwise.
    BootstrapWan {
        /// The config root.
        config_root: PathBuf,
    },
    /// Serve the provisioning API, and before provisioning the web console at `/` (it shows
    /// ATOMIXOS_PROVISIONING_STATUS, first boot's report). Before provisioning it listens on
    /// HOST:PORT; once provisioned on the LAN gateway's address (a loopback HOST is kept), or
    /// on the socket systemd passes.
    Serve {
        /// The config root (ATOMIXOS_CONFIG_ROOT, else /data/config).
        config_root: Option<PathBuf>,
        /// The address before provisioning (ATOMIXOS_BOOTSTRAP_HOST, else 172.20.30.1).
        #[arg(long)]
        host: Option<IpAddr>,
        /// The port (ATOMIXOS_BOOTSTRAP_PORT, else 8080).
        #[arg(long)]
        port: Option<u16>,
        /// How jobs activate what they import.
        #[arg(long, value_enum, default_value = "systemd")]
        activation: ActivationArg,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { path, json } => return validate_cmd(&path, json),
        Command::Import {
            source,
            config_root,
        } => import_cmd(&source, &config_root).context("Import failed"),
        Command::Recover { config_root } => recover_cmd(&config_root),
        Command::SyncQuadlet {
            config_root,
            rootful,
            rootless,
        } => sync_cmd(&config_root, &rootful, rootless.as_deref()),
        Command::CompleteInitial { config_root } => complete_cmd(&config_root),
        Command::CheckHealth { config_root } => check_health_cmd(&config_root),
        Command::Activate {
            config_root,
            mark_good,
        } => activate_cmd(&config_root, mark_good),
        Command::FirstBoot => first_boot_cmd(),
        Command::BootstrapWan { config_root } => bootstrap_wan_cmd(&config_root),
        Command::Serve {
            config_root,
            host,
            port,
            activation,
        } => serve_cmd(config_root, host, port, activation),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

fn limits() -> anyhow::Result<Limits> {
    Ok(Limits::from_env(env)?)
}

fn config_root(path: &Path) -> anyhow::Result<ConfigRoot> {
    let cwd = std::env::current_dir().context("the current directory")?;
    Ok(ConfigRoot::validate(path, &cwd, env)?)
}

fn validate_cmd(path: &Path, json: bool) -> ExitCode {
    let name = path.display().to_string();
    let outcome = limits().and_then(|l| Ok(source::read(path, &l)?));
    let source = match outcome {
        Ok(s) => s,
        Err(e) => {
            if json {
                println!("{}", validate::unreadable_json(&format!("{e:#}")));
            } else {
                eprintln!("Invalid: {e:#}");
            }
            return ExitCode::FAILURE;
        }
    };
    match validate::validate(&source.toml, DEFAULT_CONFIG_ROOT) {
        Ok(valid) => {
            if json {
                println!("{}", valid.warnings.to_json());
            } else {
                eprint!("{}", valid.warnings.render_text(&name, &source.toml));
                println!("Valid: {name}");
            }
            ExitCode::SUCCESS
        }
        Err(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                eprint!("{}", validate::refusal_text(&report, &name, &source.toml));
            }
            ExitCode::FAILURE
        }
    }
}

fn import_cmd(path: &Path, root: &Path) -> anyhow::Result<()> {
    let root = config_root(root)?;
    let source = source::read(path, &limits()?)?;
    let runtime_root = root.active().to_string_lossy().into_owned();
    let name = path.display().to_string();
    let valid = validate::validate(&source.toml, &runtime_root).map_err(|report| {
        anyhow::anyhow!("{}", report.render_text(&name, &source.toml).trim_end())
    })?;
    let options = Options {
        keep_pending: env(KEEP_PENDING_ENV).as_deref() == Some("1"),
        payload_owner: accounts::app_user(Path::new("/")).map(|u| u.owner),
        ..Options::default()
    };
    // A re-apply activates through systemd (checked again under the lock); an initial import
    // only writes the root, as the original's does.
    let mut system = if RealFs.exists(&root.active_config())? {
        Some(RealSystem::connect().context("a re-apply activates the new config")?)
    } else {
        None
    };
    let mut deps = system.as_mut().map(RealSystem::deps);
    let mut events = |e: Event| eprintln!("{e}");
    let activation = deps.as_mut().map(|deps| Activation {
        deps,
        events: &mut events,
    });
    let imported = import::import(&RealFs, &root, &source, &valid, options, activation)?;
    for action in &imported.recovery.actions {
        eprintln!("recover: {action}");
    }
    eprint!("{}", valid.warnings.render_text(&name, &source.toml));
    match &imported.completion {
        Some(done) if done.committed.is_none() => Err(anyhow::anyhow!(
            "{}; rollback {}",
            done.outcome.message(),
            done.rollback
        )),
        _ => Ok(()),
    }
}

fn recover_cmd(root: &Path) -> anyhow::Result<()> {
    let root = config_root(root)?;
    let _lock = root.lock()?;
    let recovery = store::recover(&RealFs, &root)?;
    for action in &recovery.actions {
        eprintln!("recover: {action}");
    }
    Ok(())
}

fn sync_cmd(root: &Path, rootful: &Path, rootless: Option<&Path>) -> anyhow::Result<()> {
    let targets = quadlet_sync::Targets { rootful, rootless };
    let report = quadlet_sync::sync(&RealFs, root, targets)?;
    for service in report.stale_rootful.iter().chain(&report.stale_rootless) {
        eprintln!("stale: {service}");
    }
    Ok(())
}

fn complete_cmd(root: &Path) -> anyhow::Result<()> {
    let root = config_root(root)?;
    let _lock = root.lock()?;
    Ok(store::cleanup(&RealFs, &root)?)
}

fn check_health_cmd(root: &Path) -> anyhow::Result<()> {
    let root = config_root(root)?;
    let mut system = RealSystem::connect()?;
    let mut deps = system.deps();
    let failures = check_health(root.active(), &mut deps);
    if failures.is_empty() {
        return Ok(());
    }
    let units: Vec<&str> = failures.iter().filter_map(Failure::unit).collect();
    for f in &failures {
        eprintln!("{f}");
    }
    anyhow::bail!("Required services failed: {}", units.join(", "))
}

fn activate_cmd(root: &Path, mark: bool) -> anyhow::Result<()> {
    let root = config_root(root)?;
    let _lock = root.lock()?;
    let recovery = store::recover(&RealFs, &root)?;
    for action in &recovery.actions {
        eprintln!("recover: {action}");
    }
    if !RealFs.exists(&root.active_config())? {
        eprintln!(
            "{} has no config: nothing to activate",
            root.active().display()
        );
        return Ok(());
    }
    let mut system = RealSystem::connect()?;
    let done = reactivate(&root, &mut system.deps(), &mut |e| eprintln!("{e}"));
    let Some(committed) = &done.committed else {
        anyhow::bail!("{}", done.outcome.message());
    };
    eprintln!("activated {}", root.active().display());
    if mark {
        let mut rauc = DbusRauc::system()?;
        mark_good(committed, &mut rauc).context("rauc mark-good")?;
        eprintln!("marked the booted slot good");
    }
    Ok(())
}

fn first_boot_cmd() -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("the current directory")?;
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let owner = accounts::app_user(Path::new("/")).map(|u| u.owner);
    let settings = Settings::from_env(env, &cmdline, &cwd, owner)?;
    let mut seeds = DeviceSeeds::new(
        settings.boot_seed.clone(),
        settings.usb_search_dirs.clone(),
        PathBuf::from("/dev/disk/by-partlabel"),
        PathBuf::from("/run"),
        settings.limits,
        MountCommand,
    );
    let mut system = RealSystem::connect()?;
    let mut rauc = DbusRauc::system()?;
    let mut deps = system.deps();
    let mut pause = || {
        std::thread::sleep(firstboot::POLL);
        true
    };
    let mut log = |line: &str| eprintln!("{line}");
    let mut ctx = firstboot::Context {
        settings: &settings,
        fs: &RealFs,
        seeds: &mut seeds,
        deps: &mut deps,
        rauc: &mut rauc,
        pause: &mut pause,
        log: &mut log,
    };
    firstboot::run(&mut ctx)?;
    Ok(())
}

fn bootstrap_wan_cmd(root: &Path) -> anyhow::Result<()> {
    let root = config_root(root)?;
    let open = bootstrap::toggle(&RealFs, &root, &mut Nft::default(), &Interfaces::default())?;
    eprintln!(
        "bootstrap WAN tcp/{}: {}",
        bootstrap::BOOTSTRAP_PORT,
        if open { "open" } else { "closed" }
    );
    Ok(())
}

fn serve_cmd(
    root: Option<PathBuf>,
    host: Option<IpAddr>,
    port: Option<u16>,
    activation: ActivationArg,
) -> anyhow::Result<()> {
    // Before any thread starts: it clears the LISTEN_* variables.
    let inherited = listen::inherited()?;
    let root = root
        .or_else(|| env(CONFIG_ROOT_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_ROOT));
    let root = config_root(&root)?;
    let host = match host {
        Some(h) => h,
        None => match env(HOST_ENV) {
            Some(h) => h
                .trim()
                .parse()
                .with_context(|| format!("{HOST_ENV}={h:?} is not an IP address"))?,
            None => DEFAULT_HOST,
        },
    };
    let port = match port {
        Some(p) => p,
        None => match env(PORT_ENV) {
            Some(p) => p
                .trim()
                .parse()
                .with_context(|| format!("{PORT_ENV}={p:?} is not a port"))?,
            None => bootstrap::BOOTSTRAP_PORT,
        },
    };
    let engine = match activation {
        ActivationArg::Systemd => Engine::real(),
        ActivationArg::None => Engine::None,
    };
    let settings = api::Settings {
        limits: limits()?,
        nonces: NonceLimits::from_env(env)?,
        engine,
        payload_owner: accounts::app_user(Path::new("/")).map(|u| u.owner),
        ..api::Settings::new(root)
    };
    let api = Api::new(settings)?;
    let console = api::console::Settings {
        status_file: env(firstboot::settings::STATUS_ENV)
            .map_or_else(|| firstboot::settings::STATUS_FILE.into(), PathBuf::from),
    };
    let app = api::router_with(api.clone(), api::console::routes(console));
    // One thread serves every connection (the handlers only read small state; validation and
    // jobs run on the blocking pool, and the job store never holds its lock across an fsync):
    // on a device with a few cores, fewer threads contending gives the lower tail latency.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("the async runtime")?;
    runtime.block_on(listen::serve(api, app, inherited, host, port))?;
    Ok(())
}
