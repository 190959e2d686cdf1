//! A job's events in the original's vocabulary (spec 6.3, 6.4): the import's steps
//! (`recover`, `write-candidate` and what it wrote, `promote`) and the engine's
//! ([`crate::activate::Event`]: `service-deploy`, `service-restart`, `settle`, `health-check`,
//! `service-status`, `rollback`, `cleanup`, and ours, `warning`), each with its message and,
//! for a unit, its service, mode and status.

use atomix_api::JobEvent;
use atomix_config::files::FileSet;
use atomix_config::root_files::LAN_SETTINGS;

use super::jobs::event;
use crate::activate::{DeployStatus, Event, ServiceStatus};
use crate::import::Progress;
use crate::store::Promotion;

fn with(mut ev: JobEvent, service: &str, mode: Option<&str>, status: Option<&str>) -> JobEvent {
    ev.service = Some(service.to_owned());
    ev.mode = mode.map(str::to_owned);
    ev.status = status.map(str::to_owned);
    ev
}

/// The job event of an engine event: the step its `Display` starts with, the rest as the
/// message.
pub fn engine_event(e: &Event) -> JobEvent {
    let text = e.to_string();
    let (step, message) = text.split_once(": ").unwrap_or((text.as_str(), ""));
    let ev = event(step, message);
    match e {
        Event::ServiceDeploy { unit, status } => {
            let status = match status {
                DeployStatus::Building => "building",
                DeployStatus::Starting => "starting",
            };
            with(ev, unit, None, Some(status))
        }
        Event::ServiceRestart { unit, mode, .. } => with(ev, unit, Some(mode.as_str()), None),
        Event::ServiceUnchanged { unit, mode } => {
            with(ev, unit, Some(mode.as_str()), Some("running"))
        }
        Event::HealthCheck { unit, healthy } => with(
            ev,
            unit,
            None,
            Some(if *healthy { "running" } else { "failed" }),
        ),
        Event::ServiceStatus { unit, status } => {
            let status = match status {
                ServiceStatus::Running => "running",
                ServiceStatus::Failed => "failed",
                ServiceStatus::Unknown => "unknown",
            };
            with(ev, unit, None, Some(status))
        }
        Event::Settle { .. } | Event::Warning(_) | Event::Rollback | Event::Cleanup => ev,
    }
}

/// The original's rendering steps, each with the first path component(s) it writes.
const WRITE_STEPS: &[(&str, &str, &[&str])] = &[
    ("write-config", "writing config.toml", &["config.toml"]),
    ("copy-files", "copying bundled files", &["files"]),
    (
        "write-admin-signers",
        "writing admin signer keys",
        &["admin-signers"],
    ),
    (
        "write-users",
        "rendering user accounts",
        &["users.json", "ssh-authorized-keys"],
    ),
    (
        "write-firewall",
        "rendering firewall rules",
        &["firewall-inbound.json"],
    ),
    ("write-lan", "rendering LAN settings", &[LAN_SETTINGS]),
    (
        "write-network",
        "rendering host network settings",
        &["host-network.json"],
    ),
    (
        "write-os-upgrade",
        "rendering OS upgrade settings",
        &["os-upgrade.json"],
    ),
    (
        "write-health",
        "rendering health checks",
        &["health-required.json", "activation-policy.json"],
    ),
];

/// The Quadlet steps, by unit file extension.
const QUADLET_STEPS: &[(&str, &str, &str)] = &[
    ("render-containers", "rendering containers", ".container"),
    (
        "render-container-networks",
        "rendering container networks",
        ".network",
    ),
    (
        "render-container-volumes",
        "rendering container volumes",
        ".volume",
    ),
    (
        "render-container-builds",
        "rendering container builds",
        ".build",
    ),
];

/// The events of what a candidate holds, in the original's order: `rendered` are the rendered
/// files, `payload` whether a bundle's `files/` came with them.
pub fn written(rendered: &FileSet, payload: bool) -> Vec<JobEvent> {
    let names: Vec<&str> = rendered.iter().map(|(p, _)| p.as_str()).collect();
    let has = |top: &str| names.iter().any(|n| n.split('/').next() == Some(top));
    let mut out = Vec::new();
    for (step, message, tops) in WRITE_STEPS {
        let present = if *step == "copy-files" {
            payload
        } else {
            tops.iter().any(|t| has(t))
        };
        if present {
            out.push(event(step, *message));
        }
    }
    let quadlets: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_prefix("quadlet/"))
        .collect();
    for (step, message, ext) in QUADLET_STEPS {
        if quadlets.iter().any(|q| q.ends_with(ext)) {
            out.push(event(step, *message));
        }
    }
    if !quadlets.is_empty() {
        out.push(event("write-quadlets", "writing container unit files"));
    }
    if has("quadlet-runtime.json") {
        out.push(event(
            "write-runtime-metadata",
            "writing container runtime metadata",
        ));
    }
    out
}

/// The events of an import step.
pub fn progress(p: &Progress<'_>) -> Vec<JobEvent> {
    match p {
        Progress::Recovered(recovery) => {
            let mut said: Vec<String> = recovery.actions.iter().map(ToString::to_string).collect();
            if recovery.emptied_trash {
                said.insert(0, "emptied the trash of an interrupted deletion".to_owned());
            }
            let message = if said.is_empty() {
                "checking for interrupted promotion: none".to_owned()
            } else {
                format!("checking for interrupted promotion: {}", said.join("; "))
            };
            vec![event("recover", message)]
        }
        Progress::WriteCandidate(kind) => vec![event(
            "write-candidate",
            match kind {
                Promotion::Initial => "rendering provisioned state (initial provisioning)",
                Promotion::Reapply => "rendering provisioned state (re-apply)",
            },
        )],
        Progress::Promote(kind) => vec![event(
            "promote",
            match kind {
                Promotion::Initial => "activating initial config root",
                Promotion::Reapply => "swapping active config root",
            },
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activate::JobResult;
    use crate::store::quadlet_sync::Mode;
    use atomix_config::files::RelPath;

    #[test]
    fn engine_events_keep_the_originals_steps_and_fields() {
        let ev = engine_event(&Event::ServiceDeploy {
            unit: "web.service".into(),
            status: DeployStatus::Building,
        });
        assert_eq!(
            (
                ev.step.as_str(),
                ev.service.as_deref(),
                ev.status.as_deref()
            ),
            ("service-deploy", Some("web.service"), Some("building"))
        );
        assert_eq!(ev.message.as_deref(), Some("web.service building"));
        let ev = engine_event(&Event::ServiceRestart {
            unit: "web.service".into(),
            mode: Mode::Rootless,
            result: JobResult::Failed,
        });
        assert_eq!(
            (ev.step.as_str(), ev.mode.as_deref()),
            ("service-restart", Some("rootless"))
        );
        assert_eq!(ev.message.as_deref(), Some("web.service (rootless) failed"));
        for (e, step) in [
            (Event::Settle { seconds: 5 }, "settle"),
            (Event::Rollback, "rollback"),
            (Event::Cleanup, "cleanup"),
            (Event::Warning("w".into()), "warning"),
            (
                Event::HealthCheck {
                    unit: "u".into(),
                    healthy: false,
                },
                "health-check",
            ),
            (
                Event::ServiceStatus {
                    unit: "u".into(),
                    status: ServiceStatus::Unknown,
                },
                "service-status",
            ),
        ] {
            assert_eq!(engine_event(&e).step, step);
        }
    }

    #[test]
    fn written_steps_follow_the_rendered_files() {
        let mut set = FileSet::new();
        for p in [
            "config.toml",
            "admin-signers",
            "users.json",
            "lan-settings.json",
            "quadlet/web.container",
            "quadlet/data.volume",
            "quadlet-runtime.json",
        ] {
            set.insert(RelPath::new(p).unwrap(), 0o600, b"x".to_vec());
        }
        let steps: Vec<String> = written(&set, true).into_iter().map(|e| e.step).collect();
        assert_eq!(
            steps,
            [
                "write-config",
                "copy-files",
                "write-admin-signers",
                "write-users",
                "write-lan",
                "render-containers",
                "render-container-volumes",
                "write-quadlets",
                "write-runtime-metadata"
            ]
        );
    }
}
