use super::*;
use crate::check::Checker;

/// Renders `[containers]` (TOML text) as the containers checker models it, without the Quadlet
/// checks of `Config::parse`.
fn quadlets(containers: &str) -> Result<Quadlets, Vec<QuadletError>> {
    let root = crate::tree::parse(containers).unwrap();
    let mut c = Checker::new(containers);
    let (model, _) = crate::containers::check(&mut c, root.get("containers").unwrap());
    let model = model.unwrap_or_else(|| panic!("{}", c.report.render_text("t.toml", containers)));
    render(&model, "/data/config")
}

fn file<'a>(q: &'a Quadlets, name: &str) -> &'a str {
    &q.files.iter().find(|(n, _)| n == name).unwrap().1
}

/// The warnings in the original's words.
fn warnings(q: &Quadlets) -> Vec<String> {
    q.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn a_privileged_container_gets_host_networking_where_network_was() {
    let q = quadlets(
        "[containers.container.web]\nprivileged = true\n[containers.container.web.Container]\n\
         Network = \"bridge\"\nImage = \"img\"\n",
    )
    .unwrap();
    assert_eq!(
        file(&q, "web.container"),
        "[Container]\nNetwork=host\nImage=img\n"
    );
    assert_eq!(
        warnings(&q),
        ["container.web.Container.Network overridden to host for privileged container"]
    );
    assert_eq!(
        q.warnings[0].path.to_string(),
        "containers.container.web.Container.Network"
    );
    // Already host: no warning; absent: appended last.
    let q = quadlets(
        "[containers.container.web]\nprivileged = true\n[containers.container.web.Container]\n\
         Network = \"host\"\nImage = \"img\"\n",
    )
    .unwrap();
    assert!(q.warnings.is_empty());
    let q = quadlets(
        "[containers.container.web]\nprivileged = true\n[containers.container.web.Container]\n\
         Image = \"img\"\nExec = 7\nReadOnly = false\n",
    )
    .unwrap();
    assert_eq!(
        file(&q, "web.container"),
        "[Container]\nImage=img\nExec=7\nReadOnly=false\nNetwork=host\n"
    );
    assert_eq!(q.units[0].mode, Mode::Rootful);
}

#[test]
fn a_rootless_container_gets_pasta_with_a_warning_whenever_network_was_set() {
    let q = quadlets(
        "[containers.container.web]\nprivileged = false\n[containers.container.web.Container]\n\
         Image = \"img\"\nNetwork = \"pasta\"\n",
    )
    .unwrap();
    assert_eq!(
        file(&q, "web.container"),
        "[Container]\nImage=img\nNetwork=pasta\n"
    );
    assert_eq!(
        warnings(&q),
        ["container.web.Container.Network overridden to pasta for rootless container"]
    );
    assert_eq!(q.units[0].mode, Mode::Rootless);
}

#[test]
fn rootless_publish_ports_are_bound_to_loopback_as_the_table_says() {
    let cases = [
        (
            "8080:80",
            Ok(Publish::Rewritten {
                value: "127.0.0.1:8080:80".into(),
                warn: false,
            }),
        ),
        ("127.0.0.1:8080:80", Ok(Publish::Kept)),
        ("127.0.1.1:8080:80", Ok(Publish::Kept)),
        (
            "localhost:8080:80",
            Ok(Publish::Rewritten {
                value: "127.0.0.1:8080:80".into(),
                warn: false,
            }),
        ),
        (
            "[::1]:8080:80",
            Ok(Publish::Rewritten {
                value: "127.0.0.1:8080:80".into(),
                warn: false,
            }),
        ),
        (
            "0.0.0.0:8080:80",
            Ok(Publish::Rewritten {
                value: "127.0.0.1:8080:80".into(),
                warn: true,
            }),
        ),
        (
            "[fe80::1]:8080:80",
            Ok(Publish::Rewritten {
                value: "127.0.0.1:8080:80".into(),
                warn: true,
            }),
        ),
        (
            "10.0.0.1:8080:80/udp",
            Ok(Publish::Rewritten {
                value: "127.0.0.1:8080:80/udp".into(),
                warn: true,
            }),
        ),
        ("[broken", Ok(Publish::Kept)),
        ("web:80", Err(PublishError::NonNumericHost)),
        (":80", Err(PublishError::NonNumericHost)),
        ("80", Err(PublishError::NoHost)),
    ];
    for (input, want) in cases {
        assert_eq!(loopback_publish(input), want, "{input}");
    }
}

#[test]
fn every_bad_publish_port_is_reported_with_its_path() {
    let errors = quadlets(
        "[containers.container.web]\nprivileged = false\n[containers.container.web.Container]\n\
         Image = \"img\"\nPublishPort = [\"80\", \"x:80\", \"8080:80\"]\n",
    )
    .unwrap_err();
    let port = TomlPath::keys(["containers", "container", "web", "Container", "PublishPort"]);
    assert_eq!(
        errors,
        [
            QuadletError {
                path: port.clone().index(0),
                kind: QuadletErrorKind::NoHostPort { value: "80".into() }
            },
            QuadletError {
                path: port.clone().index(1),
                kind: QuadletErrorKind::NonNumericHostPort {
                    value: "x:80".into()
                }
            },
        ]
    );
    assert_eq!(
        errors[0].to_string(),
        "containers.container.web.Container.PublishPort[0]: \"80\" must include an explicit \
         host port for rootless containers"
    );
    // A single value is the directive itself.
    let errors = quadlets(
        "[containers.container.web]\nprivileged = false\n[containers.container.web.Container]\n\
         Image = \"img\"\nPublishPort = \"80\"\n",
    )
    .unwrap_err();
    assert_eq!(errors[0].path, port);
}

#[test]
fn tokens_become_the_runtime_root_in_every_section() {
    let q = quadlets(
        "[containers.container.web]\nprivileged = true\n[containers.container.web.Unit]\n\
         Description = \"${CONFIG_DIR}\"\n[containers.container.web.Container]\nImage = \"img\"\n\
         Volume = [\"${FILES_DIR}/a:/a\", \"${CONFIG_DIR}/local.env:/env\"]\n\
         [containers.container.web.Install]\nWantedBy = \"default.target\"\n",
    )
    .unwrap();
    assert_eq!(
        file(&q, "web.container"),
        "[Unit]\nDescription=/data/config\n\n[Container]\nImage=img\n\
         Volume=/data/config/files/a:/a\nVolume=/data/config/local.env:/env\nNetwork=host\n\n\
         [Install]\nWantedBy=default.target\n"
    );
}

#[test]
fn a_volume_runs_in_each_mode_that_uses_it_and_a_build_where_its_tag_is_used() {
    let q = quadlets(
        "[containers.container.web]\nprivileged = true\n[containers.container.web.Container]\n\
         Image = \"localhost/app\"\nVolume = \"data:/d\"\n\
         [containers.container.app]\nprivileged = false\n[containers.container.app.Container]\n\
         Image = \"localhost/app\"\nVolume = [\"data:/d\", \"other:/o\"]\n\
         [containers.volume.data.Volume]\nLabel = \"x\"\n\
         [containers.volume.unused.Volume]\nLabel = \"y\"\n\
         [containers.build.app.Build]\nImageTag = \"localhost/app\"\n\
         [containers.build.lone.Build]\nImageTag = \"localhost/nobody\"\n",
    )
    .unwrap();
    let units: Vec<(&str, &str, Mode)> = q
        .units
        .iter()
        .map(|u| (u.filename.as_str(), u.service.as_str(), u.mode))
        .collect();
    assert_eq!(
        units,
        [
            ("web.container", "web.service", Mode::Rootful),
            ("app.container", "app.service", Mode::Rootless),
            ("data.volume", "data-volume.service", Mode::Rootful),
            ("data.volume", "data-volume.service", Mode::Rootless),
            ("unused.volume", "unused-volume.service", Mode::Rootful),
            ("app.build", "app-build.service", Mode::Rootful),
            ("app.build", "app-build.service", Mode::Rootless),
            ("lone.build", "lone-build.service", Mode::Rootful),
        ]
    );
    assert_eq!(file(&q, "data.volume"), "[Volume]\nLabel=x\n");
}

#[test]
fn two_units_of_one_service_in_one_mode_are_refused() {
    let errors = quadlets(
        "[containers.container.web]\nprivileged = true\n[containers.container.web.Container]\n\
         Image = \"img\"\n[containers.container.api-volume]\nprivileged = true\n\
         [containers.container.api-volume.Container]\nImage = \"img\"\n\
         [containers.volume.api.Volume]\nLabel = \"x\"\n",
    )
    .unwrap_err();
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "containers.volume.api: quadlet service name collision: api-volume.container and \
             api.volume both render api-volume.service (rootful)"
        ]
    );
    // The same service in two managers is fine.
    quadlets(
        "[containers.container.web]\nprivileged = false\n[containers.container.web.Container]\n\
         Image = \"img\"\n[containers.container.api-volume]\nprivileged = true\n\
         [containers.container.api-volume.Container]\nImage = \"img\"\n\
         [containers.volume.api.Volume]\nLabel = \"x\"\n[containers.container.x]\n\
         privileged = false\n[containers.container.x.Container]\nImage = \"i\"\n\
         Volume = \"api:/a\"\n",
    )
    .unwrap();
}

#[test]
fn warnings_quote_values_as_the_original_does() {
    assert_eq!(python_repr("0.0.0.0:1:2"), "'0.0.0.0:1:2'");
    assert_eq!(python_repr("it's"), "\"it's\"");
    assert_eq!(python_repr("a'b\"c"), "'a\\'b\"c'");
}
