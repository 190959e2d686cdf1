//! Shared test helpers: a small valid config, keys, and error locations.
#![allow(clippy::unwrap_used, dead_code)]

use atomix_config::Config;
use atomix_config::net::Mac;
use atomix_config::system::{self, NetworkFiles};

/// An ed25519 key.
pub const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGWJTPQWixeXADe1Iu7qyvUW+Xrb1QRoB/IqOo3CBAE5 admin@laptop";
/// A 3072-bit RSA key.
pub const RSA3072: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQDQx09Ye325t7gPqXhHXmpJQrPak4VXg33NJWhftxdRfec/CJ9LlTynp/rjvCAFR/Q0XdG+N4SNwuCLvljJ/JY/WI9jv5JkUxFjsBrhyk+RjOkj6qY5w+GgJiHgpzAMnliG+QptRIBm+JAwwk+jaU10ixLuzwPI8RgJg90cFLkmtVYMpDKE56j77fDp151VE4ymi2mz0I0fYXMzUsuyTFbukC8k64eHGw5Dbqp7x2H+6AVaDDg0tucfGksfWZZKCak1ljyNoqVjE6hYm6syqEVEIG1QdwiTz1o+4xefjmXfvHa4CumuU3pH75ijQc6W02t0NbNBW0PLNR8TpFlUU0zzFCQGvEmoxtkUDOc2ZFUAbTNLSVnjLvX7FFiCfuVCNGgspWB4wCSG/rXUotQOWjGEUdJ/GtwtUVpFmE9gPGqZYMTOwNdbgrpsmFn+xXq01+YEndHOH8yhjg6oWwZhxvW8o8NT/EvYIng0Wr6LdmKq3hG13BQcCkgMwAPTDgGGyN0= ops";
/// A P-256 key.
pub const P256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNN533Zf5KPF7BsKxtTDTaH5WNakS4bhSdbl5Wo9oSDZMpfdoFIPAszySdNdoV6TBE7+sy27WrHz+fg9B+SfUyc= root@vm";
/// A 1024-bit RSA key.
pub const RSA1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCUK2PTgZxcojgy/drrBPCMAFV+L0BOYKXxSx3tzGT2EsI8AKitKd+8t2OEqaEAmlolGYjyuIItEdqbtP353SKeuNlXLnVd7qN3b88JeyRi6sxwidecDGgpcZSI4SnIX6NeJA5bDPyvNUfxf+BwmgaqcrhZeB/d3V/gLYiLbTBCxQ== root@vm";

/// A minimal valid config.
pub fn base() -> String {
    format!(
        "version = 1\n\n[users.admin]\nisAdmin = true\nssh_key = \"{ED25519}\"\n\n         [activation]\nrequired = [\"web\"]\n\n[containers.container.web]\nprivileged = false\n\n         [containers.container.web.Container]\nImage = \"docker.io/library/nginx:1\"\n"
    )
}

/// The base with `from` replaced by `to` (which must be there).
pub fn with(from: &str, to: &str) -> String {
    let b = base();
    assert!(b.contains(from), "{from:?} not in the base");
    b.replacen(from, to, 1)
}

/// The base with `extra` appended.
pub fn plus(extra: &str) -> String {
    base() + extra
}

/// 1-based line and column (characters) of the first `needle` in `src`.
/// A needle `before|target` points at `target` where it follows `before`.
pub fn at(src: &str, needle: &str) -> (usize, usize) {
    let (before, target) = needle.split_once('|').unwrap_or(("", needle));
    let whole = format!("{before}{target}");
    let i = src
        .find(&whole)
        .unwrap_or_else(|| panic!("{whole:?} not in source"))
        + before.len();
    let line = src[..i].matches('\n').count() + 1;
    let col = src[..i].rsplit('\n').next().unwrap().chars().count() + 1;
    (line, col)
}

/// The errors as (path, line, col, message).
pub fn errors(src: &str) -> Vec<(String, usize, usize, String)> {
    match Config::parse(src) {
        Ok(_) => Vec::new(),
        Err(r) => r
            .errors()
            .map(|d| (d.path.clone(), d.line, d.col, d.message.clone()))
            .collect(),
    }
}

/// Asserts `src` has exactly one error, at `path`, located at the first `needle`.
#[track_caller]
pub fn rejects(src: &str, path: &str, needle: &str) {
    let errs = errors(src);
    let (line, col) = at(src, needle);
    assert_eq!(
        errs.len(),
        1,
        "expected one error at {path}, got {errs:#?}\n{src}"
    );
    let (p, l, c, m) = &errs[0];
    assert_eq!((p.as_str(), *l, *c), (path, line, col), "{m}\n{src}");
}

/// Asserts `src` is valid and gives the config.
#[track_caller]
pub fn accepts(src: &str) -> Config {
    Config::parse(src).unwrap_or_else(|r| panic!("{}\n{src}", r.render_text("config.toml", src)))
}

/// A P-384 key.
pub const P384: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBFlF985YG6G+JE+Xqfu5PuB7/iWKvK8bki0iyXXdD1HLsLwzoOjnvu4PJz8tXc0qjYGtlwQBHafppuQYmi0EsKdwHNPtFCawlJAuAzYNdFeuTIBEA586pNrjAGLaFqq0MA== root@vm";
/// A P-521 key.
pub const P521: &str = "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAH4MdWKRYBILN0KEiKdhJXBg+r44mtcohbCgqwFc13MR2j+SZ6dtjAPp9+EaTJMfY2GXPh2At6+CHPHzVeo/GJs1wHYo8gW9pBaRh1zFMImLsBI/p0TbhAmX0yG2Sagwuiz0Vo58QeYiLWzHCQuSdNX+4yeqGPtdGqE9ex7dswB4KQPjg== root@vm";
/// A FIDO ed25519 key (built by hand: a 32-byte key, application `ssh:`).
pub const SK_ED25519: &str = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fAAAABHNzaDo= fido";
/// A FIDO P-256 key (built by hand: the curve's generator point, application `ssh:`).
pub const SK_P256: &str = "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBGsX0fLhLEJH+Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT+NC4v4af5uO5+tKfA+eFivOM1drMV7Oy7ZAaDe/UfUAAAAEc3NoOg== fido";

/// The LAN NIC's address the network files are rendered with.
pub const MAC: &str = "02:00:0A:2c:00:01";

/// A file of the workspace (`rootfs/tree/etc/hosts`, ...).
pub fn workspace_file(path: &str) -> String {
    let path = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The network files of `config`, with [`MAC`] and the image's `/etc/hosts`.
pub fn network_files(config: &Config) -> NetworkFiles {
    let mac: Mac = MAC.parse().unwrap();
    let hosts = workspace_file("rootfs/tree/etc/hosts");
    system::render(&config.network, Some(&mac), &hosts).unwrap()
}

/// The network files of the fixture `fixtures/<name>.toml`.
pub fn fixture_network_files(name: &str) -> NetworkFiles {
    let src = workspace_file(&format!("config/tests/fixtures/{name}.toml"));
    let config = Config::parse(&src).unwrap_or_else(|r| panic!("{}", r.render_text(name, &src)));
    network_files(&config)
}
