//! `atomix device`: the operator's client of a device's provisioning API (spec 6), so nobody
//! scripts curl and ssh-keygen by hand: validate a config offline, push it (signed with a key
//! file or by ssh-agent, or unsigned to an unprovisioned device), follow its job to the end,
//! confirm a confirm-or-revert apply, export the active config, show a job.
//!
//! Owns: the arguments, the output (progress on stderr; the result, or with `--json` the final
//! JSON, on stdout) and the exit codes. The wire protocol is `atomix-api`'s, the validation
//! `atomix-config`'s (the same report as `atomix-provision validate`); [`client`] speaks HTTP,
//! [`sign`] makes the SSHSIG, [`follow`] polls a job.

mod client;
mod follow;
mod sign;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use atomix_api::{JobResponse, JobState};
use atomix_config::bundle::{Caller, Limits};
use atomix_config::source::Source;
use atomix_config::validate::{self, DEVICE_CONFIG_ROOT, Valid};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::print_json;
use client::{Device, RequestError};
use sign::Signer;

/// Exit code: the job succeeded (or the request did: export, `--no-wait`).
pub const EXIT_OK: u8 = 0;
/// Exit code: the job failed (and was not rolled back), the config was refused, or a request
/// failed otherwise (404, a 5xx, a malformed answer, a key that cannot sign).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the device cannot be reached (no connection, no answer in time).
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: the device refused the authentication (401).
pub const EXIT_AUTH: u8 = 4;
/// Exit code: the device is busy with another job (409).
pub const EXIT_BUSY: u8 = 5;
/// Exit code: the job failed and was rolled back: the device runs its previous config.
pub const EXIT_ROLLED_BACK: u8 = 6;

/// `atomix device --help`.
pub const ABOUT: &str = "\
The operator's client of a device's provisioning API (plain HTTP, e.g. --url \
http://172.20.30.1:8080). `push` validates the config or bundle offline first (a refused one \
is reported like `validate` does and nothing is sent), signs the request as an admin (SSHSIG, \
namespace atomixos-reapply) with --key KEY (an OpenSSH private key without passphrase) or \
--agent (ssh-agent at SSH_AUTH_SOCK: the key named by --key KEY.pub, else its only key), or \
sends it unsigned when neither is given (only an unprovisioned device accepts that), then \
follows the job, one line per event on stderr, until it ends. Passphrase-protected keys are \
used through ssh-agent (ssh-add KEY, then --agent --key KEY).

Exit codes:
  0  the job succeeded (export: written; --no-wait: accepted)
  1  the job failed, the config was refused (nothing sent), or a request failed (404, 5xx, ...)
  2  bad usage
  3  the device cannot be reached
  4  authentication refused (401): unsigned to a provisioned device, or not an admin's key
  5  the device is busy with another job (409)
  6  the job failed and was rolled back: the device runs its previous config";

/// `atomix device`.
#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Validate a config.toml or bundle offline: the report of `atomix-provision validate`,
    /// every error with file:line:col and a caret (0 valid, 1 invalid).
    Validate(ValidateArgs),
    /// Validate, then submit a config.toml or bundle and follow its job to the end.
    Push(PushArgs),
    /// Download the device's active config.toml (signed).
    Export(ExportArgs),
    /// Show a job, following it to its end unless --no-wait.
    Job(JobArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The config.toml (a name ending .toml) or bundle (.tar.gz, .tgz, .tar.zst, ...).
    file: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Where the device is.
#[derive(Debug, Args)]
struct Target {
    /// The device's API: http://HOST[:PORT].
    #[arg(long, value_name = "URL", value_parser = client::parse_url)]
    url: String,
}

/// How requests are signed.
#[derive(Debug, Args)]
struct Auth {
    /// The admin's OpenSSH private key (no passphrase); with --agent, the key to use: its
    /// public key file (KEY.pub) or the private key file.
    #[arg(long, value_name = "KEY", value_parser = crate::existing_path)]
    key: Option<PathBuf>,
    /// Sign with ssh-agent (SSH_AUTH_SOCK): the key named by --key, else the only one it holds.
    #[arg(long)]
    agent: bool,
}

impl Auth {
    fn signer(&self) -> Result<Option<Signer>, sign::SignError> {
        match (&self.key, self.agent) {
            (key, true) => Signer::from_agent(key.as_deref()).map(Some),
            (Some(key), false) => Signer::from_key_file(key).map(Some),
            (None, false) => Ok(None),
        }
    }
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The config.toml (a name ending .toml) or bundle (.tar.gz, .tgz, .tar.zst, ...).
    file: PathBuf,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    auth: Auth,
    /// Ask for confirm-or-revert: the device reverts a change of its network, firewall or
    /// admin keys unless it is confirmed within SECONDS (10 to 3600, default 120) of being
    /// applied; atomix confirms it as soon as the job awaits confirmation, signed by the same
    /// key, which proves the device still answers and still trusts that key.
    #[arg(long, value_name = "SECONDS", require_equals = true, num_args = 0..=1,
          value_parser = clap::value_parser!(u64)
              .range(atomix_api::MIN_CONFIRM_SECONDS..=atomix_api::MAX_CONFIRM_SECONDS),
          conflicts_with = "no_wait")]
    confirm: Option<Option<u64>>,
    /// Return once the device accepted the config (print the job's id) instead of following it.
    #[arg(long)]
    no_wait: bool,
    /// Print the final job (with --no-wait: the submission) as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    auth: Auth,
    /// Write the config to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print `{"config": ..., "out": ...}` on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job's id (as `push` printed it).
    id: String,
    #[command(flatten)]
    target: Target,
    /// Show the job as it is now instead of following it to its end.
    #[arg(long)]
    no_wait: bool,
    /// Print the job as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command; returns the exit code (every error is printed here).
pub fn run(cmd: DeviceCmd) -> u8 {
    match cmd {
        DeviceCmd::Validate(args) => validate_cmd(&args),
        DeviceCmd::Push(args) => push(&args),
        DeviceCmd::Export(args) => export(&args),
        DeviceCmd::Job(args) => job(&args),
    }
}

/// Writes `atomix: error: PREFIX ERROR` and its causes.
fn write_error(out: &mut dyn Write, prefix: &str, error: &(dyn std::error::Error + 'static)) {
    let _ = atomix_errchain::write_report(out, "atomix", prefix, error);
}

/// A config or bundle read and validated as `atomix-provision validate` does it.
struct Checked {
    /// The file's bytes, sent as they are.
    bytes: Vec<u8>,
    /// The config.toml text (the file's, or the bundle's), for the report's source lines.
    toml: String,
    valid: Valid,
}

/// Reads and validates `path`. A refused one is reported as `atomix-provision validate`
/// reports it (the report on stderr, or its JSON on stdout) and gives `None`.
fn check(path: &Path, json: bool) -> Option<Checked> {
    let name = path.display().to_string();
    let read = || -> anyhow::Result<(Vec<u8>, Source)> {
        let limits = Limits::from_env(|key| std::env::var(key).ok())?;
        let bytes = read_limited(path, limits.max_upload_bytes)
            .with_context(|| format!("cannot read {name}"))?;
        let file_name = path.file_name().and_then(|n| n.to_str());
        let source = Source::from_bytes(&bytes, file_name, Caller::Cli, &limits)
            .with_context(|| name.clone())?;
        Ok((bytes, source))
    };
    let (bytes, source) = match read() {
        Ok(read) => read,
        Err(e) => {
            if json {
                println!("{}", validate::unreadable_json(&format!("{e:#}")));
            } else {
                eprintln!("Invalid: {e:#}");
            }
            return None;
        }
    };
    match validate::validate(&source.toml, DEVICE_CONFIG_ROOT) {
        Ok(valid) => Some(Checked {
            bytes,
            toml: source.toml,
            valid,
        }),
        Err(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                eprint!("{}", validate::refusal_text(&report, &name, &source.toml));
            }
            None
        }
    }
}

/// At most `limit` bytes of `path`, and one more to tell the upload limit was passed.
fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn validate_cmd(args: &ValidateArgs) -> u8 {
    let Some(checked) = check(&args.file, args.json) else {
        return EXIT_FAILED;
    };
    let name = args.file.display().to_string();
    if args.json {
        println!("{}", checked.valid.warnings.to_json());
    } else {
        eprint!(
            "{}",
            checked.valid.warnings.render_text(&name, &checked.toml)
        );
        println!("Valid: {name}");
    }
    EXIT_OK
}

/// The exit code of a failed request.
fn request_exit(error: &RequestError) -> u8 {
    match (error, error.status().map(|s| s.as_u16())) {
        (RequestError::Unreachable { .. }, _) => EXIT_UNREACHABLE,
        (_, Some(401)) => EXIT_AUTH,
        (_, Some(409)) => EXIT_BUSY,
        _ => EXIT_FAILED,
    }
}

/// Prints a failed request with a hint where there is one (`signed`: whether it was, for a
/// command that can sign); returns its exit code.
fn request_failed(error: &RequestError, signed: Option<bool>) -> u8 {
    write_error(&mut std::io::stderr(), "", error);
    let hint = match (error.status().map(|s| s.as_u16()), signed) {
        (Some(401), Some(false)) => Some(
            "the device is provisioned (or refuses unsigned requests): sign with --key KEY or \
             --agent",
        ),
        (Some(401), Some(true)) => Some(
            "the key must be an admin's (isAdmin = true with this ssh_key) in the device's \
             active config",
        ),
        (Some(409), _) => {
            Some("another job is running on the device: wait for it to end, then push again")
        }
        _ => None,
    };
    if let Some(hint) = hint {
        eprintln!("atomix: {hint}");
    }
    request_exit(error)
}

/// The exit code of a job as it is (one not ended yet: 0).
fn job_exit(job: &JobResponse) -> u8 {
    match job.state {
        JobState::Failed if job.rollback_status.as_deref() == Some("completed") => EXIT_ROLLED_BACK,
        JobState::Failed => EXIT_FAILED,
        _ => EXIT_OK,
    }
}

/// One line on how the job ended (or where it is).
fn job_summary(job: &JobResponse) -> String {
    let id = &job.id;
    match job.state {
        JobState::Succeeded => {
            let what = match job.result.as_ref().and_then(|r| r.reapply) {
                Some(true) => " (re-apply)",
                Some(false) => " (first provisioning)",
                None => "",
            };
            match job.duration_seconds {
                Some(seconds) => format!("job {id} succeeded{what} in {seconds:.2} s"),
                None => format!("job {id} succeeded{what}"),
            }
        }
        JobState::Failed => {
            let error = job.error.as_deref().unwrap_or("no reason given");
            let rollback = match job.rollback_status.as_deref() {
                Some("completed") => "rolled back: the device runs its previous config".into(),
                Some("failed") => "the rollback failed too: check the device".into(),
                Some(other) => format!("rollback {other}"),
                None => "nothing was changed (it failed before the new config was promoted)".into(),
            };
            format!(
                "job {id} failed at step {}: {error}; {rollback}",
                job.current_step
            )
        }
        state => format!("job {id} is {} (step {})", state.as_str(), job.current_step),
    }
}

/// Prints a job as the command's result; returns its exit code.
fn finish(job: &JobResponse, json: bool) -> u8 {
    let summary = job_summary(job);
    let code = job_exit(job);
    if let Some(result) = &job.result {
        for warning in &result.warnings {
            eprintln!("atomix: warning: {warning}");
        }
    }
    if json {
        eprintln!("atomix: {summary}");
        if let Err(e) = print_json(job) {
            eprintln!("atomix: error: {e:#}");
            return EXIT_FAILED;
        }
    } else if code == EXIT_OK {
        println!("{summary}");
    } else {
        eprintln!("atomix: {summary}");
    }
    code
}

/// The `X-Config-Filename` of `path`, when its name can be sent as a header.
fn header_file_name(path: &Path) -> Option<&str> {
    path.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
}

fn push(args: &PushArgs) -> u8 {
    let Some(checked) = check(&args.file, args.json) else {
        eprintln!("atomix: refused: nothing was sent to {}", args.target.url);
        return EXIT_FAILED;
    };
    let name = args.file.display().to_string();
    eprint!(
        "{}",
        checked.valid.warnings.render_text(&name, &checked.toml)
    );
    let mut signer = match args.auth.signer() {
        Ok(signer) => signer,
        Err(e) => {
            write_error(&mut std::io::stderr(), "", &e);
            return EXIT_FAILED;
        }
    };
    match &signer {
        Some(s) => eprintln!("atomix: signing with {}", s.fingerprint()),
        None => eprintln!(
            "atomix: no --key or --agent: sending unsigned (only an unprovisioned device \
             accepts that)"
        ),
    }
    let device = Device::new(args.target.url.clone());
    let confirm = args
        .confirm
        .map(|seconds| seconds.unwrap_or(atomix_api::DEFAULT_CONFIRM_SECONDS));
    let submitted = match device.submit(
        &checked.bytes,
        header_file_name(&args.file),
        confirm,
        signer.as_mut(),
    ) {
        Ok(submitted) => submitted,
        Err(e) => return request_failed(&e, Some(signer.is_some())),
    };
    let id = submitted.job_id.clone();
    eprintln!("atomix: {} accepted {name} as job {id}", device.url());
    if args.no_wait {
        if args.json {
            return print_json(&submitted).map_or(EXIT_FAILED, |()| EXIT_OK);
        }
        println!("{id}");
        return EXIT_OK;
    }
    let signed = signer.is_some();
    let mut confirm_job = || device.confirm(&id, signer.as_mut());
    let confirm_job: Option<&mut dyn FnMut() -> Result<(), RequestError>> = match confirm {
        Some(_) => Some(&mut confirm_job),
        None => None,
    };
    match follow::follow(&device, &id, &mut std::io::stderr(), confirm_job) {
        Ok(job) => finish(&job, args.json),
        Err(e) => request_failed(&e, Some(signed)),
    }
}

/// `export --json`.
#[derive(Serialize)]
struct Exported<'a> {
    config: &'a str,
    out: Option<&'a Path>,
}

fn export(args: &ExportArgs) -> u8 {
    let mut signer = match args.auth.signer() {
        Ok(Some(signer)) => signer,
        Ok(None) => {
            eprintln!("atomix: error: export is signed: give --key KEY or --agent");
            return EXIT_USAGE;
        }
        Err(e) => {
            write_error(&mut std::io::stderr(), "", &e);
            return EXIT_FAILED;
        }
    };
    let device = Device::new(args.target.url.clone());
    let bytes = match device.export(Some(&mut signer)) {
        Ok(bytes) => bytes,
        Err(e) => return request_failed(&e, Some(true)),
    };
    if let Some(out) = &args.out {
        if let Err(e) = write_atomically(out, &bytes) {
            eprintln!("atomix: error: {e:#}");
            return EXIT_FAILED;
        }
        eprintln!(
            "atomix: wrote {} ({} bytes) from {}",
            out.display(),
            bytes.len(),
            device.url()
        );
    }
    if args.json {
        let config = String::from_utf8_lossy(&bytes);
        let exported = Exported {
            config: &config,
            out: args.out.as_deref(),
        };
        return print_json(&exported).map_or(EXIT_FAILED, |()| EXIT_OK);
    }
    if args.out.is_none() && std::io::stdout().write_all(&bytes).is_err() {
        return EXIT_FAILED;
    }
    EXIT_OK
}

/// Writes `bytes` to `path` through a temporary file beside it.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", temp.path().display()))?;
    temp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn job(args: &JobArgs) -> u8 {
    let device = Device::new(args.target.url.clone());
    let result = if args.no_wait {
        device.job(&args.id).inspect(|job| {
            follow::Progress::default().show(job, &mut std::io::stderr());
        })
    } else {
        follow::follow(&device, &args.id, &mut std::io::stderr(), None)
    };
    match result {
        Ok(job) => finish(&job, args.json),
        Err(e) => request_failed(&e, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState, rollback: Option<&str>) -> JobResponse {
        JobResponse {
            id: "j".into(),
            state,
            current_step: "health-check".into(),
            events: None,
            error: Some("web.service failed".into()),
            result: None,
            rollback_status: rollback.map(Into::into),
            duration_seconds: Some(1.0),
            confirm_deadline: None,
        }
    }

    #[test]
    fn a_job_exits_by_its_outcome() {
        assert_eq!(job_exit(&job(JobState::Succeeded, None)), EXIT_OK);
        assert_eq!(job_exit(&job(JobState::Running, None)), EXIT_OK);
        assert_eq!(
            job_exit(&job(JobState::Failed, Some("completed"))),
            EXIT_ROLLED_BACK
        );
        assert_eq!(
            job_exit(&job(JobState::Failed, Some("failed"))),
            EXIT_FAILED
        );
        assert_eq!(job_exit(&job(JobState::Failed, None)), EXIT_FAILED);
        let codes = [
            EXIT_OK,
            EXIT_FAILED,
            EXIT_USAGE,
            EXIT_UNREACHABLE,
            EXIT_AUTH,
            EXIT_BUSY,
            EXIT_ROLLED_BACK,
        ];
        let mut sorted = codes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len());
    }

    #[test]
    fn summaries_say_how_the_job_ended() {
        assert_eq!(
            job_summary(&job(JobState::Failed, Some("completed"))),
            "job j failed at step health-check: web.service failed; rolled back: the device \
             runs its previous config"
        );
        assert!(job_summary(&job(JobState::Failed, None)).ends_with(
            "nothing was changed (it \
                 failed before the new config was promoted)"
        ));
        assert_eq!(
            job_summary(&job(JobState::AwaitingConfirmation, None)),
            "job j is awaiting-confirmation (step health-check)"
        );
        assert_eq!(
            job_summary(&job(JobState::Succeeded, None)),
            "job j succeeded in 1.00 s"
        );
    }
}
