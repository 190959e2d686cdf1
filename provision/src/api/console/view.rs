//! The console's HTML: the page and the fragments that replace its `#job-status` panel (a
//! job, a refused config's report, a refusal of the form). Written with `maud`, which escapes
//! every value it splices in: nothing from a config, a file name or a job reaches the page as
//! markup. The only markup not written here is the logo, a constant.

use atomix_api::{Finding, JobEvent, JobResponse, JobState, ValidationResponse};
use atomix_config::diag::LineIndex;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::api::jobs::{COMPLETED_STEP, FAILED_STEP};
use crate::firstboot::{State, Status};

/// The logo (also served as `/assets/logo.svg`, the page's icon).
pub const LOGO: &str = include_str!("assets/logo.svg");

/// What the page says about first boot.
#[derive(Debug)]
pub enum SeedStatus {
    /// First boot has written no status (it is not running here).
    Unknown,
    /// First boot's status.
    Known(Status),
    /// The status file cannot be read.
    Unreadable(String),
}

/// The `#job-status` panel in `state` (a class and `data-state`), of `job` if any (the
/// script follows a job's events while its state is not terminal).
fn panel(state: &str, job: Option<&str>, body: Markup) -> Markup {
    html! {
        section #job-status class=(format!("card job job-{state}")) data-state=(state)
            data-job=[job] aria-live="polite" {
            (body)
        }
    }
}

/// A panel with a title and a line of text.
fn notice(state: &str, title: &str, text: &str) -> Markup {
    panel(
        state,
        None,
        html! {
            header.job-head { h2 { (title) } }
            p { (text) }
        },
    )
}

/// The page.
pub fn page(token: &str, status: &SeedStatus) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { "AtomixOS · first-boot console" }
                link rel="icon" href="/assets/logo.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                header.top {
                    div.brand {
                        span.logo { (PreEscaped(LOGO)) }
                        div {
                            p.product { "AtomixOS" }
                            h1 { "First-boot console" }
                        }
                    }
                    (state_pill(status))
                }
                main.layout {
                    div.column {
                        (device(status))
                        (form(token))
                    }
                    div.column.column-side {
                        (idle())
                    }
                }
                footer.foot {
                    p {
                        "Served by the device itself; nothing is loaded from the network. "
                        "This console closes once the device is provisioned."
                    }
                }
            }
        }
    }
}

fn state_pill(status: &SeedStatus) -> Markup {
    let (kind, text) = match status {
        SeedStatus::Known(Status { state, .. }) => match state {
            State::Searching => ("run", "Looking for a seed"),
            State::Waiting => ("wait", "Waiting for a configuration"),
            State::Provisioned => ("ok", "Provisioned"),
        },
        SeedStatus::Unknown | SeedStatus::Unreadable(_) => ("wait", "Not provisioned"),
    };
    html! { span class=(format!("pill pill-{kind}")) { span.dot {} (text) } }
}

/// The device's card: what first boot did, and every seed that failed and why.
fn device(status: &SeedStatus) -> Markup {
    html! {
        section.card.device {
            h2 { "This device" }
            @match status {
                SeedStatus::Known(Status { state, problems }) => {
                    p {
                        @match state {
                            State::Searching => "First boot is trying the seeds it found.",
                            State::Waiting => "No seed provisioned the device. It waits for a \
                                configuration from this page or from an operator.",
                            State::Provisioned => "First boot provisioned the device.",
                        }
                    }
                    @if problems.is_empty() {
                        @if *state == State::Waiting {
                            p.muted { "No seed was found on the boot partition or a USB stick." }
                        }
                    } @else {
                        h3 { "Seeds that were not used" }
                        ul.problems {
                            @for problem in problems {
                                li {
                                    p.origin { code { (problem.origin) } }
                                    pre.report { (problem.error.trim_end()) }
                                }
                            }
                        }
                    }
                }
                SeedStatus::Unknown => {
                    p { "The device is not provisioned yet. Give it its configuration below." }
                    p.muted { "First boot has not reported which seeds it tried." }
                }
                SeedStatus::Unreadable(why) => {
                    p { "The device is not provisioned yet. Give it its configuration below." }
                    p.muted { "First boot's report cannot be read: " (why) }
                }
            }
        }
    }
}

/// The drop-zone's picture: a document with an arrow.
const DROP_ICON: &str = r#"<svg viewBox="0 0 48 48" width="44" height="44" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round"><path d="M12 6h16l10 10v24a2 2 0 0 1-2 2H12a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2z"/><path d="M28 6v10h10"/><path d="M24 36V22"/><path d="M18 28l6-6 6 6"/></svg>"#;

fn form(token: &str) -> Markup {
    html! {
        form.card #apply-form method="post" action="/apply" enctype="multipart/form-data" {
            h2 { "Configuration" }
            p.muted {
                "A " code { "config.toml" } ", or a bundle (" code { ".tar.gz" } ", "
                code { ".tar.zst" } ") with its files. It is checked completely before anything "
                "is changed."
            }
            input type="hidden" name="bootstrap_token" value=(token);
            fieldset #apply-fields {
                label #drop-zone.drop for="config-file" {
                    span.drop-icon { (PreEscaped(DROP_ICON)) }
                    span.drop-title { "Drop the file here" }
                    span.drop-sub { "or " span.linkish { "choose a file" } }
                }
                input #config-file.visually-hidden type="file" name="config_file"
                    accept=".toml,.gz,.tgz,.zst,.tzst,application/gzip,application/zstd,application/toml,text/plain";
                div #picked.picked hidden {
                    span #picked-name {}
                    button #picked-clear.ghost type="button" { "Remove" }
                }
                div.or { span { "or paste a config.toml" } }
                textarea #config-text name="config" rows="10" spellcheck="false"
                    autocomplete="off" autocapitalize="off"
                    placeholder="version = 1\n\n[users.admin]\nisAdmin = true\nssh_key = \"ssh-ed25519 AAAA… you@laptop\"" {}
                div.actions {
                    button #apply-button.primary type="submit" { "Apply configuration" }
                    span #apply-hint.muted {}
                }
            }
        }
    }
}

fn idle() -> Markup {
    panel(
        "idle",
        None,
        html! {
            header.job-head { h2 { "Progress" } }
            p.muted { "Nothing has been applied yet. Once you apply a configuration, its steps appear here as they happen:" }
            ol.plan {
                li { strong { "Check" } " every value; each error is shown with its line" }
                li { strong { "Write" } " the new configuration beside the current one, then switch to it" }
                li { strong { "Activate" } " users, containers, network and firewall" }
                li { strong { "Keep" } " it once the required services are healthy, or roll back" }
            }
        },
    )
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Submitted => "submitted",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::AwaitingConfirmation => "awaiting-confirmation",
    }
}

/// A step's badge: its class and label.
fn badge(ev: &JobEvent, current: bool) -> (&'static str, &str) {
    match ev.status.as_deref() {
        Some("failed") => ("fail", "failed"),
        Some("running") => ("ok", "running"),
        Some(s @ ("building" | "starting")) => ("run", s),
        Some(other) => ("info", other),
        None => match ev.step.as_str() {
            FAILED_STEP => ("fail", "failed"),
            s @ ("warning" | "rollback") => ("warn", s),
            COMPLETED_STEP => ("ok", "done"),
            _ if current => ("run", "now"),
            _ => ("ok", "done"),
        },
    }
}

fn step(ev: &JobEvent, current: bool) -> Markup {
    let (kind, label) = badge(ev, current);
    html! {
        li class=(format!("step step-{kind}")) {
            span class=(format!("badge badge-{kind}")) { (label) }
            span.step-body {
                span.step-name { (ev.step) }
                @if let Some(message) = ev.message.as_deref().filter(|m| !m.is_empty()) {
                    span.step-msg { (message) }
                }
                @if let Some(service) = &ev.service {
                    span.step-svc {
                        (service)
                        @if let Some(mode) = &ev.mode { " · " (mode) }
                    }
                }
            }
            span.step-time { (format!("{:.1} s", ev.elapsed_seconds)) }
        }
    }
}

/// What a rollback status means for the device.
fn rollback_meaning(status: &str) -> &'static str {
    match status {
        "completed" => "the previous configuration was restored and is active again.",
        "failed" => {
            "restoring the previous configuration failed too: the device needs \
                     attention (its journal says why)."
        }
        "skipped" => "there was nothing to roll back.",
        "discarded" => {
            "the new configuration was discarded; the device is unprovisioned \
                        again and this console stays open."
        }
        _ => "",
    }
}

/// A job's panel: its state, the outcome once it ended, and every step so far.
pub fn job(job: &JobResponse) -> Markup {
    let state = state_name(job.state);
    let running = !job.state.is_terminal();
    let events = job.events.as_deref().unwrap_or_default();
    let title = match job.state {
        JobState::Submitted | JobState::Running => "Applying the configuration",
        JobState::AwaitingConfirmation => "Waiting for confirmation",
        JobState::Succeeded => "Configuration applied",
        JobState::Failed => "Configuration not applied",
    };
    let body = html! {
        header.job-head {
            h2 { (title) }
            span class=(format!("badge badge-lg badge-{state}")) { (state.replace('-', " ")) }
        }
        p.job-meta {
            "Step " code { (job.current_step) }
            @if let Some(seconds) = job.duration_seconds { " · " (format!("{seconds:.1} s")) }
            " · job " code.job-id { (job.id) }
        }
        @if let Some(result) = &job.result {
            div.outcome.outcome-ok {
                p { strong { "The device is provisioned." } " This console is closed from now on." }
                @if let Some(url) = &result.forwarding_url {
                    p.forward {
                        "Its provisioning service now answers at "
                        @if url.starts_with("http://") || url.starts_with("https://") {
                            a #forwarding-url href=(url) { (url) }
                        } @else {
                            code #forwarding-url { (url) }
                        }
                        " on the LAN, for an admin's signed requests ("
                        code { "atomix device" } ")."
                    }
                }
                @if !result.warnings.is_empty() {
                    h3 { "Warnings" }
                    ul.warnings { @for w in &result.warnings { li { (w) } } }
                }
            }
        }
        @if job.state == JobState::Failed {
            div.outcome.outcome-fail {
                pre.error { (job.error.as_deref().unwrap_or("unknown error")) }
                @match &job.rollback_status {
                    Some(status) => p #rollback-status {
                        strong { "Rollback: " (status) } " — " (rollback_meaning(status))
                    },
                    None => p #rollback-status {
                        strong { "Nothing was changed:" } " the job stopped before the new \
                        configuration was put in place."
                    },
                }
                p.muted { "Fix the configuration and apply it again." }
            }
        }
        ol.steps {
            @for (i, ev) in events.iter().enumerate() {
                (step(ev, running && i + 1 == events.len()))
            }
        }
    };
    panel(state, Some(&job.id), body)
}

/// The caret under column `col` (1-based) of `line`: tabs stay tabs, so it lines up.
fn caret(line: &str, col: u64) -> String {
    let pad: String = line
        .chars()
        .take(usize::try_from(col.saturating_sub(1)).unwrap_or(usize::MAX))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("{pad}^")
}

fn finding(f: &Finding, lines: Option<&LineIndex<'_>>) -> Markup {
    let source = match (f.line, lines) {
        (Some(line), Some(lines)) => usize::try_from(line)
            .ok()
            .map(|l| (line, lines.line_text(l))),
        _ => None,
    };
    html! {
        li.finding {
            div.finding-head {
                @match (f.line, f.col) {
                    (Some(line), Some(col)) => span.loc { "line " (line) ", col " (col) },
                    (Some(line), None) => span.loc { "line " (line) },
                    _ => span.loc { "file" },
                }
                @if let Some(path) = &f.path { code.path { (path) } }
            }
            p.finding-msg { (f.message) }
            @if let Some((line, text)) = source {
                pre.source {
                    span.gutter { (line) }
                    (text) "\n"
                    span.gutter {}
                    span.caret { (caret(text, f.col.unwrap_or(1))) }
                }
            }
        }
    }
}

/// A refused config's report: every error with its line:col, its path and, when the config's
/// text is known, its source line with a caret under the column.
pub fn refused(name: &str, report: &ValidationResponse, source: Option<&str>) -> Markup {
    let findings = report.errors.as_deref().unwrap_or_default();
    let lines = source.map(LineIndex::new);
    let count = findings.len();
    panel(
        "refused",
        None,
        html! {
            header.job-head {
                h2 { "Configuration refused" }
                span.badge.badge-lg.badge-failed { (count) (if count == 1 { " error" } else { " errors" }) }
            }
            p { code { (name) } " was checked and not applied; nothing on the device changed. Fix every error below and apply it again." }
            ol.findings { @for f in findings { (finding(f, lines.as_ref())) } }
        },
    )
}

/// 400: neither a file nor a pasted config.
pub fn no_config() -> Markup {
    notice(
        "failed",
        "No config provided",
        "Choose or drop a config.toml or bundle, or paste a config.toml, then apply it.",
    )
}

/// 400: the form is not one.
pub fn unreadable_form(why: &dyn std::error::Error) -> Markup {
    notice("failed", "The form could not be read", &why.to_string())
}

/// 403: the form's token is not this process's.
pub fn bad_token() -> Markup {
    notice(
        "failed",
        "Invalid bootstrap token",
        "This page was loaded before the device's provisioning service restarted, and its \
         form is no longer accepted. Reload the page and apply the configuration again.",
    )
}

/// 409: a job is running.
pub fn busy() -> Markup {
    notice(
        "failed",
        "A provision job is already running",
        "Another configuration is being applied. Wait for it to end, then reload the page.",
    )
}

/// 404: an unknown job before provisioning.
pub fn job_not_found() -> Markup {
    notice(
        "failed",
        "Provisioning job not found",
        "The device does not know this job (it keeps the last 64).",
    )
}

/// A job this process does not know on a provisioned device: the service restarted after
/// provisioning completed.
pub fn reconnected() -> Markup {
    notice(
        "succeeded",
        "Configuration applied",
        "The provisioning service reconnected after provisioning completed: the device is \
         provisioned, and this console is closed.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caret_keeps_tabs() {
        assert_eq!(caret("\tshell = 1", 10), "\t        ^");
        assert_eq!(caret("", 1), "^");
    }
}
