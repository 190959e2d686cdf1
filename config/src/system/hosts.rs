//! The gateway's line of `/etc/hosts`, so that the device resolves its own LAN names too.
//! The line is found by its tag comment; every other line is kept as it is. dnsmasq reads
//! `/etc/hosts` as well, so it is this file's reader for restarts.

use super::dnsmasq::with_domain;
use crate::lan::LanSettings;
use crate::net::DnsName;

/// The hosts file, relative to `/etc`.
pub const PATH: &str = "hosts";
/// The comment that marks the gateway's line.
pub const TAG: &str = "ATOMIXOS_LAN_GATEWAY";

/// `<gateway> <names> # ATOMIXOS_LAN_GATEWAY`, every name listed as in the dnsmasq hosts file.
pub fn gateway_line(lan: &LanSettings, names: &[DnsName]) -> String {
    let names: Vec<String> = names
        .iter()
        .flat_map(|n| with_domain(n, &lan.domain))
        .collect();
    format!("{} {} # {TAG}", lan.gateway_ip(), names.join(" "))
}

/// Whether `line`'s comment is exactly the tag.
fn is_tagged(line: &str) -> bool {
    line.split_once('#')
        .is_some_and(|(_, comment)| comment.trim() == TAG)
}

/// `old` with its tagged lines replaced by `line`: the first tagged line becomes `line`, any
/// further ones are dropped (one gateway, one line), and `line` is appended when no line is
/// tagged. The result ends with a newline.
pub fn replace_gateway_line(old: &str, line: &str) -> String {
    let mut out = String::with_capacity(old.len() + line.len() + 1);
    let mut placed = false;
    for l in old.lines() {
        if is_tagged(l) {
            if placed {
                continue;
            }
            placed = true;
            out.push_str(line);
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    if !placed {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "10.0.0.1 gw gw.lan # ATOMIXOS_LAN_GATEWAY";

    #[test]
    fn the_tagged_line_is_replaced_and_the_others_kept() {
        let old = "127.0.0.1 localhost\n# ATOMIXOS_LAN_GATEWAY is ours\n\
                   172.20.30.1 atomixos atomixos.local # ATOMIXOS_LAN_GATEWAY\n\
                   ::1 localhost ip6-localhost\n";
        assert_eq!(
            replace_gateway_line(old, LINE),
            format!(
                "127.0.0.1 localhost\n# ATOMIXOS_LAN_GATEWAY is ours\n{LINE}\n\
                 ::1 localhost ip6-localhost\n"
            )
        );
    }

    #[test]
    fn extra_tagged_lines_go_and_a_missing_one_is_appended() {
        let old = "1.2.3.4 a #ATOMIXOS_LAN_GATEWAY\n5.6.7.8 b\n9.9.9.9 c # ATOMIXOS_LAN_GATEWAY";
        assert_eq!(
            replace_gateway_line(old, LINE),
            format!("{LINE}\n5.6.7.8 b\n")
        );
        assert_eq!(
            replace_gateway_line("127.0.0.1 localhost", LINE),
            format!("127.0.0.1 localhost\n{LINE}\n")
        );
        assert_eq!(replace_gateway_line("", LINE), format!("{LINE}\n"));
        // Idempotent.
        let once = replace_gateway_line("127.0.0.1 localhost\n", LINE);
        assert_eq!(replace_gateway_line(&once, LINE), once);
    }
}
