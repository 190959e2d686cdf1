//! T1: the original AtomixOS provisioner as the oracle (`../shared/anchors`, installed by
//! `scripts/setup.sh` into `<cache>/orig-venv`). For every config of a corpus (the fixtures
//! of `config/tests/fixtures/` and mutations of the full one, one rule each), both `validate`
//! must give the same verdict, except where we are deliberately stricter (listed, with the
//! reason, and checked to still differ); for every valid one both `import`s into an empty
//! `/data` must give the same tree: paths, modes, bytes (JSON compared as data, the root's
//! path replaced).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::oracle::{original, schema, workspace};

const OURS: &str = env!("CARGO_BIN_EXE_atomix-provision");

fn run(bin: &Path, args: &[&Path]) -> Output {
    Command::new(bin)
        .args(args)
        .env("ATOMIXOS_ALLOW_UNSAFE_CONFIG_ROOT", "1")
        .env("ATOMIXOS_CONFIG_SCHEMA", schema())
        .output()
        .unwrap()
}

/// The corpus: (name, text). Mutations replace one piece of the full fixture.
fn corpus() -> Vec<(String, String)> {
    let dir = workspace().join("config/tests/fixtures");
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    names.sort();
    for path in names {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        out.push((name, std::fs::read_to_string(&path).unwrap()));
    }
    let full = std::fs::read_to_string(dir.join("full.toml")).unwrap();
    let single = MUTATIONS
        .iter()
        .map(|(name, old, new)| (*name, vec![(*old, *new)]));
    let multi = MULTI_MUTATIONS
        .iter()
        .map(|(name, changes)| (*name, changes.to_vec()));
    for (name, changes) in single.chain(multi) {
        let mut text = full.clone();
        for (old, new) in changes {
            assert!(
                text.contains(old),
                "mutation {name}: {old:?} is not in full.toml"
            );
            text = text.replacen(old, new, 1);
        }
        out.push((name.to_owned(), text));
    }
    out
}

/// Mutations that change several places at once.
const MULTI_MUTATIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "lan-gateway-is-broadcast",
        &[
            ("address = \"10.44.0.1/24\"", "address = \"10.44.0.255/24\""),
            (
                "gateway_cidr = \"10.44.0.1/24\"",
                "gateway_cidr = \"10.44.0.255/24\"",
            ),
        ],
    ),
    (
        "lan-gateway-is-network",
        &[
            ("address = \"10.44.0.1/24\"", "address = \"10.44.0.0/24\""),
            (
                "gateway_cidr = \"10.44.0.1/24\"",
                "gateway_cidr = \"10.44.0.0/24\"",
            ),
        ],
    ),
];

/// One change each to `full.toml`: (name, what, by what).
const MUTATIONS: &[(&str, &str, &str)] = &[
    ("version-2", "version = 1", "version = 2"),
    ("version-bool", "version = 1", "version = true"),
    ("version-float", "version = 1", "version = 1.0"),
    ("unknown-top-level", "version = 1", "version = 1\nextra = 1"),
    (
        "no-activation",
        "[activation]\nrequired",
        "[activationx]\nrequired",
    ),
    ("bad-toml", "version = 1", "version = = 1"),
    ("user-uppercase", "[users.ops]", "[users.Ops]"),
    ("user-reserved", "[users.ops]", "[users.chrony]"),
    ("user-isadmin-string", "isAdmin = false", "isAdmin = \"no\""),
    ("user-shell-fish", "shell = \"sh\"", "shell = \"fish\""),
    (
        "user-unknown-key",
        "shell = \"sh\"",
        "shell = \"sh\"\nhome = \"/x\"",
    ),
    ("ssh-key-one-field", "ssh-ed25519 AAAAC3", "AAAAC3"),
    ("ssh-key-bad-type", "ssh-ed25519 AAAAC3", "ssh-dss AAAAC3"),
    (
        "ssh-key-type-mismatch",
        "ssh-ed25519 AAAAC3",
        "ssh-rsa AAAAC3",
    ),
    (
        "ssh-key-no-key-data",
        "AAAAC3NzaC1lZDI1NTE5AAAAIGWJTPQWixeXADe1Iu7qyvUW+Xrb1QRoB/IqOo3CBAE5",
        "AAAAC3NzaC1lZDI1NTE5",
    ),
    (
        "ssh-key-bad-base64",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5!",
    ),
    (
        "no-admin-key",
        "isAdmin = true\nssh_key = \"ssh-ed25519",
        "isAdmin = false\nssh_key = \"ssh-ed25519",
    ),
    (
        "dns-not-ip",
        "dns_servers = [\"1.1.1.1\",",
        "dns_servers = [\"one.one\",",
    ),
    (
        "dns-empty-list",
        "dns_servers = [\"192.168.1.1\"]",
        "dns_servers = []",
    ),
    (
        "search-domain-bad",
        "\"lab.example.com\"",
        "\"lab_example.com\"",
    ),
    (
        "default-gateway-v6",
        "default_gateway = \"192.168.1.1\"",
        "default_gateway = \"fe80::1\"",
    ),
    (
        "default-gateway-empty",
        "default_gateway = \"192.168.1.1\"",
        "default_gateway = \"\"",
    ),
    (
        "iface-wlan",
        "[network.interfaces.eth0]",
        "[network.interfaces.wlan0]",
    ),
    (
        "iface-no-mode",
        "mode = \"static\"\naddress = \"192.168.1.20/24\"",
        "address = \"192.168.1.20/24\"",
    ),
    (
        "iface-dhcp-with-address",
        "mode = \"static\"\naddress = \"192.168.1.20/24\"",
        "mode = \"dhcp\"\naddress = \"192.168.1.20/24\"",
    ),
    (
        "iface-eth0-dhcp",
        "mode = \"static\"\naddress = \"192.168.1.20/24\"\n",
        "mode = \"dhcp\"\n",
    ),
    (
        "eth1-dhcp",
        "mode = \"static\"\naddress = \"10.44.0.1/24\"",
        "mode = \"dhcp\"",
    ),
    ("dnsmasq-disabled", "enable = true", "enable = false"),
    (
        "dnsmasq-eth0",
        "interface = \"eth1\"",
        "interface = \"eth0\"",
    ),
    (
        "dnsmasq-prefix-8",
        "gateway_cidr = \"10.44.0.1/24\"",
        "gateway_cidr = \"10.44.0.1/8\"",
    ),
    (
        "dnsmasq-cidr-mismatch",
        "gateway_cidr = \"10.44.0.1/24\"",
        "gateway_cidr = \"10.44.0.2/24\"",
    ),
    (
        "dhcp-start-outside",
        "dhcp_start = \"10.44.0.100\"",
        "dhcp_start = \"10.45.0.100\"",
    ),
    (
        "dhcp-reversed",
        "dhcp_start = \"10.44.0.100\"",
        "dhcp_start = \"10.44.0.250\"",
    ),
    (
        "dhcp-range-has-gateway",
        "dhcp_start = \"10.44.0.100\"",
        "dhcp_start = \"10.44.0.1\"",
    ),
    (
        "hostname-no-mac",
        "hostname_pattern = \"device-{mac}\"",
        "hostname_pattern = \"device\"",
    ),
    (
        "hostname-bad",
        "hostname_pattern = \"device-{mac}\"",
        "hostname_pattern = \"dev ice-{mac}\"",
    ),
    (
        "hostname-empty",
        "hostname_pattern = \"device-{mac}\"",
        "hostname_pattern = \"\"",
    ),
    (
        "alias-bad",
        "\"gateway\", \"AtomixOS\"",
        "\"gate way\", \"AtomixOS\"",
    ),
    (
        "ntp-injection",
        "servers = [\"time.cloudflare.com\"",
        "servers = [\"time.cloudflare.com allow all\"",
    ),
    ("wan-8080", "tcp = [22, 443]", "tcp = [22, 443, 8080]"),
    ("port-zero", "tcp = [22, 443]", "tcp = [0]"),
    ("port-too-big", "tcp = [22, 443]", "tcp = [65536]"),
    ("port-string", "tcp = [22, 443]", "tcp = [\"22\"]"),
    ("firewall-no-lists", "tcp = [22, 443]\nudp = []", "udp = []"),
    (
        "required-unknown",
        "required = [\"edgeproxy\", \"myapp\"]",
        "required = [\"edgeproxy\", \"nope\"]",
    ),
    (
        "required-network",
        "required = [\"edgeproxy\", \"myapp\"]",
        "required = [\"appnet\"]",
    ),
    (
        "required-empty",
        "required = [\"edgeproxy\", \"myapp\"]",
        "required = []",
    ),
    (
        "timeout-zero",
        "timeout_seconds = 120",
        "timeout_seconds = 0",
    ),
    (
        "timeout-huge",
        "timeout_seconds = 120",
        "timeout_seconds = 3601",
    ),
    (
        "settle-negative",
        "settle_seconds = 5",
        "settle_seconds = -1",
    ),
    (
        "degraded-and-required",
        "allow_degraded = [\"metrics\"]",
        "allow_degraded = [\"myapp\"]",
    ),
    (
        "strategy-keep",
        "strategy = \"rollback\"",
        "strategy = \"keep-failed\"",
    ),
    (
        "upgrade-http",
        "https://updates.example.com/rauc/",
        "http://updates.example.com/rauc/",
    ),
    (
        "upgrade-credentials",
        "https://updates.example.com/rauc/",
        "https://u:p@updates.example.com/",
    ),
    (
        "upgrade-query",
        "https://updates.example.com/rauc/",
        "https://updates.example.com/?a=1",
    ),
    (
        "upgrade-port",
        "https://updates.example.com/rauc/",
        "https://updates.example.com:8443/rauc",
    ),
    (
        "container-no-privileged",
        "[containers.container.metrics]\nprivileged = false\n",
        "[containers.container.metrics]\n",
    ),
    (
        "container-bad-name",
        "[containers.container.metrics]",
        "[containers.container.\"-metrics\"]",
    ),
    (
        "container-extra-section",
        "[containers.container.edgeproxy.Install]",
        "[containers.container.edgeproxy.Service]",
    ),
    (
        "container-no-image",
        "Image = \"docker.io/prom/node-exporter:v1.8.0\"",
        "Pull = \"never\"",
    ),
    (
        "container-image-list",
        "Image = \"docker.io/prom/node-exporter:v1.8.0\"",
        "Image = [\"a\", \"b\"]",
    ),
    ("directive-bad-name", "ReadOnly = true", "Read_Only = true"),
    ("directive-float", "Ulimit = 1024", "Ulimit = 1.5"),
    ("directive-table", "Ulimit = 1024", "Ulimit = { soft = 1 }"),
    (
        "directive-newline",
        "Description = \"Edge reverse proxy\"",
        "Description = \"Edge\\nExecStart=/bin/sh\"",
    ),
    (
        "publish-no-host-port",
        "PublishPort = [\"10080:80\",",
        "PublishPort = [\"80\",",
    ),
    (
        "publish-named-host",
        "PublishPort = [\"10080:80\",",
        "PublishPort = [\"web:80\",",
    ),
    (
        "service-collision",
        "[containers.network.appnet.Network]",
        "[containers.container.appnet-network]\nprivileged = true\n[containers.container.appnet-network.Container]\nImage = \"x\"\n[containers.network.appnet.Network]",
    ),
    (
        "network-extra-key",
        "[containers.network.appnet.Network]",
        "[containers.network.appnet]\nx = 1\n[containers.network.appnet.Network]",
    ),
    ("comments-and-crlf", "version = 1\n", "version = 1 # v1\r\n"),
    (
        "unicode-description",
        "Edge reverse proxy",
        "Edge – proxy ünïcode",
    ),
    (
        "no-network-section",
        "[network.ntp]\nservers = [\"time.cloudflare.com\", \"192.168.1.1\"]\n",
        "",
    ),
    (
        "upgrade-bare-query",
        "https://updates.example.com/rauc/",
        "https://updates.example.com/rauc/?",
    ),
    (
        "dns-scope-id",
        "dns_servers = [\"1.1.1.1\",",
        "dns_servers = [\"fe80::1%eth0\",",
    ),
];

/// Where we refuse and the original accepts, on purpose (docs/provisioning.md).
const STRICTER: &[(&str, &str)] = &[
    (
        "lan-gateway-is-broadcast",
        "the LAN gateway cannot be the subnet's broadcast address",
    ),
    (
        "lan-gateway-is-network",
        "the LAN gateway cannot be the subnet's network address",
    ),
    (
        "ssh-key-no-key-data",
        "the key blob is decoded: a blob with only its type is no key",
    ),
    (
        "upgrade-bare-query",
        "a server_url with an empty query (a bare `?`) has a query",
    ),
    (
        "dns-scope-id",
        "a DNS server with an IPv6 zone index is refused",
    ),
];

fn verdict(out: &Output) -> bool {
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!("exit {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

#[test]
fn validate_gives_the_originals_verdict_on_the_corpus() {
    let orig = original();
    let dir = tempfile::tempdir().unwrap();
    let mut differ = Vec::new();
    let mut valid = 0;
    for (name, text) in corpus() {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, &text).unwrap();
        let theirs = verdict(&run(&orig, &[Path::new("validate"), &path]));
        let out = run(Path::new(OURS), &[Path::new("validate"), &path]);
        let ours = verdict(&out);
        valid += usize::from(ours);
        if ours != theirs {
            differ.push((
                name.clone(),
                ours,
                theirs,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
    }
    let stricter: Vec<&str> = STRICTER.iter().map(|(n, _)| *n).collect();
    let unexpected: Vec<_> = differ
        .iter()
        .filter(|(n, ours, theirs, _)| !(stricter.contains(&n.as_str()) && !ours && *theirs))
        .collect();
    assert!(
        unexpected.is_empty(),
        "verdicts differ (name, ours, original, our stderr): {unexpected:#?}"
    );
    let mut differing: Vec<&str> = differ.iter().map(|d| d.0.as_str()).collect();
    differing.sort_unstable();
    let mut stricter = stricter;
    stricter.sort_unstable();
    assert_eq!(
        differing, stricter,
        "every deliberate difference still differs"
    );
    assert!(valid >= 5, "the corpus has valid configs ({valid})");
}

/// Every file under `root`: relative path → (mode, contents with `root` replaced).
fn tree(root: &Path) -> BTreeMap<String, (u32, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.insert(format!("{rel}/"), (mode, String::new()));
                stack.push(e.path());
            } else {
                let text = String::from_utf8(std::fs::read(e.path()).unwrap()).unwrap();
                out.insert(
                    rel,
                    (
                        mode,
                        text.replace(&root.to_string_lossy().into_owned(), "ROOT"),
                    ),
                );
            }
        }
    }
    out
}

#[test]
fn import_writes_the_originals_tree_for_every_valid_config() {
    let orig = original();
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for (name, text) in corpus() {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, &text).unwrap();
        let theirs_root = dir.path().join(format!("{name}-orig/data"));
        let ours_root = dir.path().join(format!("{name}-ours/data"));
        let theirs = run(
            &orig,
            &[Path::new("import"), &path, &theirs_root.join("config")],
        );
        let ours = run(
            Path::new(OURS),
            &[Path::new("import"), &path, &ours_root.join("config")],
        );
        if !verdict(&theirs) || !verdict(&ours) {
            continue;
        }
        let (a, b) = (tree(&ours_root), tree(&theirs_root));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{name}: paths"
        );
        for (file, (mode, text)) in &a {
            let (their_mode, their_text) = &b[file];
            assert_eq!(mode, their_mode, "{name}: mode of {file}");
            if file.ends_with(".json") {
                let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
                assert_eq!(parse(text), parse(their_text), "{name}: {file}");
            } else {
                assert_eq!(text, their_text, "{name}: {file}");
            }
        }
        compared += 1;
    }
    assert!(compared >= 5, "valid configs compared: {compared}");
}
