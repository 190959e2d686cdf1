//! Every rule of spec 2.1 and 2.2, accepted and rejected, with the reported path and line:col.

#![allow(clippy::unwrap_used)]

mod common;

use atomix_config::Config;
use common::*;

#[test]
fn the_base_config_is_valid_and_gets_the_defaults() {
    let c = accepts(&base());
    assert_eq!(c.network.lan.gateway.to_string(), "172.20.30.1/24");
    assert_eq!(c.network.lan.ntp_servers, ["time.cloudflare.com"]);
    assert_eq!(c.activation.timeout_seconds, 300);
    assert!(!c.activation.allow_degraded_configured);
    assert!(c.os_upgrade.is_none());
}

#[test]
fn syntax_errors_are_one_error_at_their_position() {
    let src = "version = 1\nusers = {\n";
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "");
    assert_eq!(errs[0].1, 2);
    assert!(errs[0].3.starts_with("invalid TOML"));
    let dup = with("version = 1\n", "version = 1\nversion = 1\n");
    assert_eq!(errors(&dup)[0].1, 2);
}

#[test]
fn top_level_keys_are_allowed_and_required() {
    rejects(
        &with("version = 1\n", "version = 1\nextra = 2\n"),
        "extra",
        "extra",
    );
    let src = with("[activation]\nrequired = [\"web\"]\n", "");
    let errs = errors(&src);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        (errs[0].0.as_str(), errs[0].1, errs[0].2),
        ("activation", 1, 1)
    );
}

#[test]
fn version_is_the_integer_one() {
    for bad in ["2", "true", "1.0", "\"1\""] {
        let src = with("version = 1", &format!("version = {bad}"));
        rejects(&src, "version", bad);
    }
}

#[test]
fn user_names_follow_the_pattern_and_are_not_reserved() {
    accepts(&with("[users.admin]", "[users._a-1]"));
    accepts(&with(
        "[users.admin]",
        &format!("[users.{}]", "a".repeat(32)),
    ));
    for bad in ["Admin", "1a", "root", "appsvc", "systemd-network"] {
        rejects(
            &with("[users.admin]", &format!("[users.{bad}]")),
            &format!("users.{bad}"),
            bad,
        );
    }
    let long = "a".repeat(33);
    rejects(
        &with("[users.admin]", &format!("[users.{long}]")),
        &format!("users.{long}"),
        &long,
    );
}

#[test]
fn user_fields_have_types_and_shells_an_enum() {
    let src = with("isAdmin = true", "isAdmin = \"yes\"");
    let errs = errors(&src);
    assert_eq!(errs[0].0, "users.admin.isAdmin");
    assert_eq!((errs[0].1, errs[0].2), at(&src, "\"yes\""));
    for shell in ["bash", "sh", "zsh"] {
        let c = accepts(&with(
            "isAdmin = true",
            &format!("isAdmin = true\nshell = \"{shell}\""),
        ));
        assert_eq!(c.users.list[0].shell.map(|s| s.as_str()), Some(shell));
    }
    rejects(
        &with("isAdmin = true", "isAdmin = true\nshell = \"fish\""),
        "users.admin.shell",
        "\"fish\"",
    );
    rejects(
        &with("isAdmin = true", "isAdmin = true\nuid = 7"),
        "users.admin.uid",
        "uid",
    );
    rejects(
        &with("ssh_key = \"", "ssh_key = 5\n#\""),
        "users.admin.ssh_key",
        "5",
    );
}

#[test]
fn some_admin_needs_a_key() {
    let src = with("isAdmin = true", "isAdmin = false");
    rejects(&src, "users", "[|users.admin]");
    let src = with(&format!("ssh_key = \"{ED25519}\""), "ssh_key = \"  \"");
    rejects(&src, "users", "[|users.admin]");
    // An admin without a key is fine when another admin has one.
    accepts(&plus("\n[users.second]\nisAdmin = true\n"));
    rejects(
        &with(
            "[users.admin]\nisAdmin = true\nssh_key",
            "[users]\n[users.x]\nssh_key",
        )
        .replace("[users.x]\nssh_key = \"ssh", "[users.x]\n#"),
        "users",
        "[users]",
    );
}

#[test]
fn ssh_keys_decode_for_real() {
    for key in [RSA3072, P256, P384, P521, SK_ED25519, SK_P256] {
        let c = accepts(&with(ED25519, &format!("  {key}  ")));
        assert_eq!(c.users.list[0].ssh_key.as_ref().unwrap().line, key);
    }
    let blob = ED25519.split(' ').nth(1).unwrap();
    let cases = [
        RSA1024.to_owned(),                                 // too short
        format!("ssh-rsa {blob}"),                          // declared type != blob
        format!("ssh-dss {blob}"),                          // unsupported type
        format!("ssh-ed25519 !{}", &blob[1..]),             // not base64
        format!("ssh-ed25519 {}", &blob[..blob.len() - 8]), // truncated blob
        "ssh-ed25519".to_owned(),                           // one field
        format!("ssh-ed25519-cert-v01@openssh.com {blob}"), // certificate
        format!("ssh-ed25519 {blob}\\u0007"),               // control character
    ];
    for bad in cases {
        let src = with(ED25519, &bad);
        rejects(&src, "users.admin.ssh_key", &format!("\"{bad}"));
    }
}

#[test]
fn network_keys_and_resolvers() {
    rejects(&plus("[network]\nwifi = 1\n"), "network.wifi", "wifi");
    let c = accepts(&plus(
        "[network]\ndns_servers = [\" 1.1.1.1 \", \"::ffff:1.2.3.4\"]\n\
         dns_search_domains = [\"Corp.Example.\"]\ndefault_gateway = \"10.0.0.1\"\n",
    ));
    assert_eq!(
        c.network.host.dns_search_domains[0].as_str(),
        "corp.example"
    );
    assert_eq!(
        c.network.host.default_gateway.unwrap().to_string(),
        "10.0.0.1"
    );
    rejects(
        &plus("[network]\ndns_servers = []\n"),
        "network.dns_servers",
        "[]",
    );
    rejects(
        &plus("[network]\ndns_servers = [\"1.1.1\"]\n"),
        "network.dns_servers[0]",
        "\"1.1.1\"",
    );
    rejects(
        &plus("[network]\ndns_servers = [\"\"]\n"),
        "network.dns_servers[0]",
        "\"\"",
    );
    rejects(
        &plus("[network]\ndns_search_domains = [\"-x.com\"]\n"),
        "network.dns_search_domains[0]",
        "\"-x",
    );
    rejects(
        &plus("[network]\ndefault_gateway = \"\"\n"),
        "network.default_gateway",
        "\"\"",
    );
    rejects(
        &plus("[network]\ndefault_gateway = \"::1\"\n"),
        "network.default_gateway",
        "\"::1\"",
    );
}

#[test]
fn interfaces_are_ethernet_and_eth1_is_static() {
    let ok = accepts(&plus(
        "[network.interfaces.eth0]\nmode = \"dhcp\"\ngateway = \"192.168.1.1\"\n\
         [network.interfaces.eth1]\nmode = \"static\"\naddress = \"172.20.30.1/255.255.255.0\"\n",
    ));
    assert_eq!(
        ok.network.host.interfaces[1].address.unwrap().to_string(),
        "172.20.30.1/24"
    );
    rejects(
        &plus("[network.interfaces.wlan0]\nmode = \"dhcp\"\n"),
        "network.interfaces.wlan0",
        "wlan0]",
    );
    rejects(
        &plus("[network.interfaces.eth0]\nmode = \"auto\"\n"),
        "network.interfaces.eth0.mode",
        "\"auto\"",
    );
    rejects(
        &plus("[network.interfaces.eth0]\ngateway = \"1.2.3.4\"\n"),
        "network.interfaces.eth0.mode",
        "[network.interfaces.eth0]",
    );
    rejects(
        &plus("[network.interfaces.eth0]\nmode = \"static\"\n"),
        "network.interfaces.eth0.address",
        "[network.interfaces.eth0]",
    );
    rejects(
        &plus("[network.interfaces.eth0]\nmode = \"dhcp\"\naddress = \"10.0.0.2/24\"\n"),
        "network.interfaces.eth0.address",
        "\"10.0.0.2/24\"",
    );
    rejects(
        &plus("[network.interfaces.eth0]\nmode = \"static\"\naddress = \"10.0.0.2/33\"\n"),
        "network.interfaces.eth0.address",
        "\"10.0.0.2/33\"",
    );
    rejects(
        &plus("[network.interfaces.eth0]\nmode = \"dhcp\"\nmtu = 1500\n"),
        "network.interfaces.eth0.mtu",
        "mtu",
    );
    rejects(
        &plus("[network.interfaces.eth1]\nmode = \"dhcp\"\n"),
        "network.interfaces.eth1.mode",
        "\"dhcp\"",
    );
}

#[test]
fn dnsmasq_enable_and_interface() {
    accepts(&plus(
        "[network.dnsmasq]\nenable = true\ninterface = \"eth1\"\n",
    ));
    rejects(
        &plus("[network.dnsmasq]\nenable = false\n"),
        "network.dnsmasq.enable",
        "enable = |false",
    );
    rejects(
        &plus("[network.dnsmasq]\ninterface = \"eth0\"\n"),
        "network.dnsmasq.interface",
        "\"eth0\"",
    );
    rejects(
        &plus("[network.dnsmasq]\nport = 53\n"),
        "network.dnsmasq.port",
        "port",
    );
}

#[test]
fn the_gateway_cidr_prefix_and_address() {
    let c = accepts(&plus(
        "[network.dnsmasq]\ngateway_cidr = \"10.9.0.1/16\"\ndhcp_start = \"10.9.1.1\"\ndhcp_end = \"10.9.1.9\"\n",
    ));
    assert_eq!(c.network.lan.subnet().to_string(), "10.9.0.0/16");
    rejects(
        &plus("[network.dnsmasq]\ngateway_cidr = \"172.20.30.1/31\"\n"),
        "network.dnsmasq.gateway_cidr",
        "\"172",
    );
    rejects(
        &plus("[network.dnsmasq]\ngateway_cidr = \"172.20.0.1/15\"\n"),
        "network.dnsmasq.gateway_cidr",
        "\"172",
    );
    rejects(
        &plus("[network.dnsmasq]\ngateway_cidr = \"nope\"\n"),
        "network.dnsmasq.gateway_cidr",
        "\"nope\"",
    );
    // Better than the original: the network and broadcast addresses are refused.
    rejects(
        &plus("[network.dnsmasq]\ngateway_cidr = \"172.20.30.0/24\"\n"),
        "network.dnsmasq.gateway_cidr",
        "\"172",
    );
    rejects(
        &plus(
            "[network.dnsmasq]\ngateway_cidr = \"172.20.30.255/24\"\ndhcp_end = \"172.20.30.200\"\n",
        ),
        "network.dnsmasq.gateway_cidr",
        "\"172",
    );
}

#[test]
fn eth1_address_and_gateway_cidr_must_agree() {
    let eth1 = "[network.interfaces.eth1]\nmode = \"static\"\naddress = \"10.1.2.1/24\"\n";
    let range = "dhcp_start = \"10.1.2.10\"\ndhcp_end = \"10.1.2.20\"\n";
    let c = accepts(&plus(&format!("{eth1}[network.dnsmasq]\n{range}")));
    assert_eq!(c.network.lan.gateway.to_string(), "10.1.2.1/24");
    accepts(&plus(&format!(
        "{eth1}[network.dnsmasq]\ngateway_cidr = \"10.1.2.1/24\"\n{range}"
    )));
    let src = plus(&format!(
        "{eth1}[network.dnsmasq]\ngateway_cidr = \"10.1.2.2/24\"\n{range}"
    ));
    rejects(&src, "network.dnsmasq.gateway_cidr", "\"10.1.2.2/24\"");
    // eth1's address with the default range: the range is outside, reported at the address.
    let src = plus(eth1);
    let errs = errors(&src);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter()
            .all(|e| e.0 == "network.interfaces.eth1.address")
    );
    assert_eq!((errs[0].1, errs[0].2), at(&src, "\"10.1.2.1/24\""));
}

#[test]
fn the_dhcp_range() {
    let lan = |s: &str, e: &str| {
        plus(&format!(
            "[network.dnsmasq]\ndhcp_start = \"{s}\"\ndhcp_end = \"{e}\"\n"
        ))
    };
    accepts(&lan("172.20.30.2", "172.20.30.2"));
    rejects(
        &lan("172.20.31.2", "172.20.30.9"),
        "network.dnsmasq.dhcp_start",
        "\"172.20.31.2\"",
    );
    rejects(
        &lan("172.20.30.2", "172.20.31.9"),
        "network.dnsmasq.dhcp_end",
        "\"172.20.31.9\"",
    );
    rejects(
        &lan("172.20.30.9", "172.20.30.2"),
        "network.dnsmasq.dhcp_start",
        "\"172.20.30.9\"",
    );
    rejects(
        &lan("172.20.30.1", "172.20.30.9"),
        "network.dnsmasq.dhcp_start",
        "\"172.20.30.1\"",
    );
    rejects(
        &lan("x", "172.20.30.9"),
        "network.dnsmasq.dhcp_start",
        "\"x\"",
    );
}

#[test]
fn domain_pattern_and_aliases() {
    let c = accepts(&plus(
        "[network.dnsmasq]\ndomain = \"Home.Arpa.\"\nhostname_pattern = \" dev-{mac} \"\n\
         gateway_aliases = [\"GW\", \"gw\", \"router\"]\n",
    ));
    assert_eq!(c.network.lan.domain.as_str(), "home.arpa");
    assert_eq!(c.network.lan.hostname_pattern, "dev-{mac}");
    let aliases: Vec<_> = c
        .network
        .lan
        .gateway_aliases
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(aliases, ["gw", "router"]);
    let c = accepts(&plus(
        "[network.dnsmasq]\ngateway_aliases = []\nhostname_pattern = \"\"\n",
    ));
    assert_eq!(c.network.lan.gateway_aliases[0].as_str(), "atomixos");
    rejects(
        &plus("[network.dnsmasq]\nhostname_pattern = \"  \"\n"),
        "network.dnsmasq.hostname_pattern",
        "\"  \"",
    );
    rejects(
        &plus("[network.dnsmasq]\ndomain = \"a_b\"\n"),
        "network.dnsmasq.domain",
        "\"a_b\"",
    );
    rejects(
        &plus("[network.dnsmasq]\nhostname_pattern = \"dev\"\n"),
        "network.dnsmasq.hostname_pattern",
        "\"dev\"",
    );
    rejects(
        &plus("[network.dnsmasq]\nhostname_pattern = \"d_{mac}\"\n"),
        "network.dnsmasq.hostname_pattern",
        "\"d_",
    );
    rejects(
        &plus("[network.dnsmasq]\ngateway_aliases = [\"ok\", \"not ok\"]\n"),
        "network.dnsmasq.gateway_aliases[1]",
        "\"not ok\"",
    );
}

#[test]
fn ntp_servers() {
    let c = accepts(&plus(
        "[network.ntp]\nservers = [\"Pool.NTP.org\", \"2001:db8::1\"]\n",
    ));
    assert_eq!(c.network.lan.ntp_servers, ["Pool.NTP.org", "2001:db8::1"]);
    rejects(
        &plus("[network.ntp]\nservers = []\n"),
        "network.ntp.servers",
        "[]",
    );
    rejects(
        &plus("[network.ntp]\nservers = [\"a b\"]\n"),
        "network.ntp.servers[0]",
        "\"a b\"",
    );
    rejects(
        &plus("[network.ntp]\nservers = [\"bad_name\"]\n"),
        "network.ntp.servers[0]",
        "\"bad_name\"",
    );
    rejects(
        &plus("[network.ntp]\npool = []\n"),
        "network.ntp.pool",
        "pool",
    );
}

#[test]
fn firewall_ports() {
    let c = accepts(&plus(
        "[network.firewall.inbound.wan]\ntcp = [22, 22]\nudp = []\n[network.firewall.inbound.lan]\ntcp = [8080]\n",
    ));
    assert_eq!(c.network.firewall.wan.tcp.len(), 2);
    assert!(c.network.firewall.wan.udp.is_empty());
    let p = "[network.firewall.inbound.wan]\n";
    rejects(
        &plus(&format!("{p}tcp = [22, 8080]\n")),
        "network.firewall.inbound.wan.tcp[1]",
        "8080",
    );
    rejects(
        &plus(&format!("{p}tcp = [0]\n")),
        "network.firewall.inbound.wan.tcp[0]",
        "0]",
    );
    rejects(
        &plus(&format!("{p}udp = [65536]\n")),
        "network.firewall.inbound.wan.udp[0]",
        "65536",
    );
    rejects(
        &plus(&format!("{p}udp = [53.0]\n")),
        "network.firewall.inbound.wan.udp[0]",
        "53.0",
    );
    rejects(
        &plus(&format!("{p}udp = \"53\"\n")),
        "network.firewall.inbound.wan.udp",
        "\"53\"",
    );
    rejects(
        &plus(&format!("{p}sctp = [1]\n")),
        "network.firewall.inbound.wan.sctp",
        "sctp",
    );
    rejects(
        &plus("[network.firewall.inbound.dmz]\ntcp = [1]\n"),
        "network.firewall.inbound.dmz",
        "dmz",
    );
    rejects(
        &plus("[network.firewall.outbound]\n"),
        "network.firewall.outbound",
        "outbound",
    );
}

#[test]
fn activation_references_declared_containers() {
    let more = "\n[containers.container.db]\nprivileged = true\n[containers.container.db.Container]\nImage = \"pg\"\n\
                [containers.network.net.Network]\n";
    let src = with(
        "required = [\"web\"]",
        "required = [\"web\"]\nrestart = [\"db\"]\nallow_degraded = [\"db\"]\ntimeout_seconds = 1\nsettle_seconds = 300\nstrategy = \"rollback\"",
    ) + more;
    let c = accepts(&src);
    assert!(c.activation.allow_degraded_configured);
    assert_eq!(c.activation.settle_seconds, 300);
    let act = |body: &str| with("required = [\"web\"]", body) + more;
    rejects(&act("required = []"), "activation.required", "[]");
    rejects(
        &act("required = [\"net\"]"),
        "activation.required[0]",
        "\"net\"",
    );
    rejects(
        &act("required = [\"web\"]\nrestart = [\"nope\"]"),
        "activation.restart[0]",
        "\"nope\"",
    );
    rejects(
        &act("required = [\"web\"]\nallow_degraded = [\"web\"]"),
        "activation.allow_degraded[0]",
        "\"web\"]\n\n",
    );
    rejects(
        &act("required = [\"web\"]\ntimeout_seconds = 0"),
        "activation.timeout_seconds",
        "0\n",
    );
    rejects(
        &act("required = [\"web\"]\ntimeout_seconds = 3601"),
        "activation.timeout_seconds",
        "3601",
    );
    rejects(
        &act("required = [\"web\"]\ntimeout_seconds = 30.0"),
        "activation.timeout_seconds",
        "30.0",
    );
    rejects(
        &act("required = [\"web\"]\nsettle_seconds = -1"),
        "activation.settle_seconds",
        "-1",
    );
    rejects(
        &act("required = [\"web\"]\nstrategy = \"manual-confirm\""),
        "activation.strategy",
        "\"manual",
    );
    rejects(
        &act("required = [\"web\"]\nretries = 3"),
        "activation.retries",
        "retries",
    );
    rejects(
        &with("required = [\"web\"]", "restart = []"),
        "activation.required",
        "[activation]",
    );
}

#[test]
fn os_upgrade_urls() {
    let c = accepts(&plus(
        "[os_upgrade]\nserver_url = \" https://up.example.com/a/ \"\n",
    ));
    assert_eq!(c.os_upgrade.unwrap().server_url, "https://up.example.com/a");
    for bad in [
        "http://up.example.com",
        "https://u:p@up.example.com",
        "https://up.example.com/?x",
        "https://up.example.com/#x",
        "https://up.example.com:99999",
        "https://up_example.com",
        "https:///path",
    ] {
        rejects(
            &plus(&format!("[os_upgrade]\nserver_url = \"{bad}\"\n")),
            "os_upgrade.server_url",
            &format!("\"{bad}"),
        );
    }
    rejects(
        &plus("[os_upgrade]\n"),
        "os_upgrade.server_url",
        "[os_upgrade]",
    );
    rejects(
        &plus("[os_upgrade]\nserver_url = \"https://a.example\"\nchannel = \"x\"\n"),
        "os_upgrade.channel",
        "channel",
    );
}

#[test]
fn containers_sections_names_and_values() {
    let c = accepts(&plus(
        "[containers.container.web.Unit]\nDescription = \"web\"\n[containers.container.web.Install]\nWantedBy = \"default.target\"\n\
         [containers.volume.data.Volume]\n[containers.build.img.Build]\nImageTag = \"localhost/img\"\n",
    ));
    assert_eq!(
        c.containers.containers[0].image(),
        "docker.io/library/nginx:1"
    );
    assert_eq!(c.containers.volumes[0].name.as_str(), "data");
    assert!(c.containers.containers[0].unit.is_some());
    let web = "[containers.container.web.Container]\nImage = \"docker.io/library/nginx:1\"\n";
    let w = |extra: &str| with(web, &format!("{web}{extra}\n"));
    rejects(
        &w("Read_Only = true"),
        "containers.container.web.Container.Read_Only",
        "Read_Only",
    );
    rejects(
        &w("ReadOnly = 1.5"),
        "containers.container.web.Container.ReadOnly",
        "1.5",
    );
    rejects(
        &w("ReadOnly = []"),
        "containers.container.web.Container.ReadOnly",
        "[]",
    );
    rejects(
        &w("Exec = [\"a\", [\"b\"]]"),
        "containers.container.web.Container.Exec[1]",
        "[\"b\"]",
    );
    rejects(
        &w("Exec = \"a\\nb\""),
        "containers.container.web.Container.Exec",
        "\"a\\nb\"",
    );
    rejects(
        &w("Label = {a = 1}"),
        "containers.container.web.Container.Label",
        "{a = 1}",
    );
    rejects(
        &with("privileged = false", "privileged = \"no\""),
        "containers.container.web.privileged",
        "\"no\"",
    );
    rejects(
        &with("privileged = false\n", ""),
        "containers.container.web.privileged",
        "[containers.container.web]",
    );
    rejects(
        &with(
            "Image = \"docker.io/library/nginx:1\"",
            "Image = [\"a\", \"b\"]",
        ),
        "containers.container.web.Container.Image",
        "[\"a\"",
    );
    rejects(
        &with("Image = \"docker.io/library/nginx:1\"", "Image = \" \""),
        "containers.container.web.Container.Image",
        "\" \"",
    );
    rejects(
        &with("Image = \"docker.io/library/nginx:1\"", "Image = 3"),
        "containers.container.web.Container.Image",
        "3\n",
    );
    rejects(
        &with("Image = \"docker.io/library/nginx:1\"", "Name = \"x\""),
        "containers.container.web.Container.Image",
        "[containers.container.web.Container]",
    );
    accepts(&with(
        "Image = \"docker.io/library/nginx:1\"",
        "Image = [\"one\"]",
    ));
    rejects(
        &plus("[containers.container.web.Service]\nRestart = \"always\"\n"),
        "containers.container.web.Service",
        "Service]",
    );
    rejects(&plus("[containers.pod.p.Pod]\n"), "containers.pod", "pod");
    let src = plus("[containers.network.n.Net]\n");
    let errs: Vec<_> = errors(&src).into_iter().map(|e| (e.0, e.1, e.2)).collect();
    let (l, c) = at(&src, "n.|Net]");
    assert_eq!(
        errs,
        [
            ("containers.network.n.Network".to_owned(), l, c - 2),
            ("containers.network.n.Net".to_owned(), l, c)
        ]
    );
    rejects(
        &plus("[containers.network.-n.Network]\n"),
        "containers.network.-n",
        "-n",
    );
}

#[test]
fn quadlet_refusals_are_located_like_the_other_errors() {
    let image = "Image = \"docker.io/library/nginx:1\"\n";
    let port = |ports: &str| with(image, &format!("{image}PublishPort = {ports}\n"));
    // A rootless PublishPort without a host port, or with a name for one: at the value, or at
    // the element of a list.
    let src = port("\"80\"");
    rejects(
        &src,
        "containers.container.web.Container.PublishPort",
        "PublishPort = |\"80\"",
    );
    assert!(errors(&src)[0].3.contains("explicit host port"));
    let src = port("[\"8080:80\", \"web:80\"]");
    rejects(
        &src,
        "containers.container.web.Container.PublishPort[1]",
        "\"web:80\"",
    );
    assert!(errors(&src)[0].3.contains("numeric host port"));
    // Privileged containers publish as they like.
    accepts(&port("\"80\"").replace("privileged = false", "privileged = true"));

    // Two units of one service in one manager: at the later one (containers render before
    // volumes), naming the earlier by its file.
    let twins = "[containers.volume.api.Volume]\n\
        [containers.container.api-volume]\nprivileged = true\n\
        [containers.container.api-volume.Container]\nImage = \"i\"\n";
    let src = plus(twins);
    rejects(&src, "containers.volume.api", "volume.|api.Volume");
    assert_eq!(
        errors(&src)[0].3,
        "quadlet service name collision: api-volume.container and api.volume both render \
         api-volume.service (rootful)"
    );
    // A table with its own header is located at the header.
    let src = plus(
        "[containers.build.api]\nBuild = { ImageTag = \"t\" }\n\
         [containers.container.api-build]\nprivileged = true\n\
         [containers.container.api-build.Container]\nImage = \"i\"\n",
    );
    rejects(&src, "containers.build.api", "[containers.build.api]");
}

#[test]
fn quadlet_refusals_come_with_every_other_error() {
    let image = "Image = \"docker.io/library/nginx:1\"\n";
    let src = with(image, &format!("{image}PublishPort = [\"1\", \"2\"]\n"))
        .replace("isAdmin = true", "isAdmin = \"yes\"");
    let errs: Vec<_> = errors(&src)
        .into_iter()
        .map(|(path, line, col, _)| (path, line, col))
        .collect();
    let (l1, c1) = at(&src, "\"yes\"");
    let (l2, c2) = at(&src, "[|\"1\"");
    let (l3, c3) = at(&src, "\"2\"");
    let port = "containers.container.web.Container.PublishPort";
    assert_eq!(
        errs,
        [
            ("users.admin.isAdmin".to_owned(), l1, c1),
            (format!("{port}[0]"), l2, c2),
            (format!("{port}[1]"), l3, c3),
        ]
    );
}

#[test]
fn quadlet_warnings_are_located() {
    let image = "Image = \"docker.io/library/nginx:1\"\n";
    let src = with(
        image,
        &format!("{image}Network = \"bridge\"\nPublishPort = [\"1:1\", \"0.0.0.0:2:2\"]\n"),
    );
    let (_, report) = Config::parse_with_warnings(&src).unwrap();
    let found: Vec<_> = report
        .warnings()
        .map(|d| (d.path.as_str(), d.line, d.col, d.message.as_str()))
        .collect();
    let (l1, c1) = at(&src, "\"bridge\"");
    let (l2, c2) = at(&src, "\"0.0.0.0:2:2\"");
    assert_eq!(
        found,
        [
            (
                "containers.container.web.Container.Network",
                l1,
                c1,
                "overridden to pasta for rootless container"
            ),
            (
                "containers.container.web.Container.PublishPort[1]",
                l2,
                c2,
                "rewrote non-loopback bind '0.0.0.0:2:2' to 127.0.0.1"
            ),
        ]
    );
    assert_eq!(report.errors().count(), 0);
    let (_, report) = Config::parse_with_warnings(&base()).unwrap();
    assert!(report.diagnostics().is_empty());
}

#[test]
fn container_names_are_validated() {
    let src = base()
        .replace("container.web", "container.\"we.b\"")
        .replace("[\"web\"]", "[\"we.b\"]");
    let errs = errors(&src);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "containers.container.\"we.b\"");
    assert_eq!((errs[0].1, errs[0].2), at(&src, "\"we.b\"]\nprivileged"));
    let b = base();
    let src = b[..b.find("[containers").unwrap()].to_owned() + "[containers.container]\n";
    let errs = errors(&src);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        (errs[0].0.as_str(), errs[0].1),
        ("activation.required[0]", 8)
    );
    assert_eq!(errs[1].0, "containers.container");
    assert_eq!((errs[1].1, errs[1].2), at(&src, "[containers.container]"));
}

#[test]
fn a_config_with_many_errors_reports_all_of_them_in_order() {
    let src = format!(
        "version = 2\nbogus = 1\n\n[users.root]\nisAdmin = true\nssh_key = \"{RSA1024}\"\nshell = \"fish\"\n\n\
         [network]\ndns_servers = [\"x\"]\n[network.dnsmasq]\nenable = false\ndhcp_start = \"1.2.3.4\"\n\
         [network.firewall.inbound.wan]\ntcp = [8080, 0]\n\n[activation]\nrequired = [\"nope\"]\ntimeout_seconds = 0\n\n\
         [os_upgrade]\nserver_url = \"http://x\"\n\n[containers.container.web]\nprivileged = 1\n\n\
         [containers.container.web.Container]\nImage = 3\nBad_Name = 1\n"
    );
    let errs = errors(&src);
    let paths: Vec<_> = errs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "version",
            "bogus",
            "users.root",
            "users.admin.ssh_key",
            "users.root.shell",
            "network.dns_servers[0]",
            "network.dnsmasq.enable",
            "network.dnsmasq.dhcp_start",
            "network.firewall.inbound.wan.tcp[0]",
            "network.firewall.inbound.wan.tcp[1]",
            "activation.required[0]",
            "activation.timeout_seconds",
            "os_upgrade.server_url",
            "containers.container.web.privileged",
            "containers.container.web.Container.Image",
            "containers.container.web.Container.Bad_Name",
        ]
        .map(|p| p.replace("users.admin", "users.root")),
        "{errs:#?}"
    );
    let lines: Vec<_> = errs.iter().map(|e| e.1).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    assert_eq!((errs[0].1, errs[0].2), (1, 11));
    assert_eq!((errs[2].1, errs[2].2), (4, 8));
}
