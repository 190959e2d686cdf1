//! Network values, validated when parsed: IPv4 CIDRs (an address with its prefix), DNS names,
//! IP literals in their normal form, MAC addresses and the OS upgrade server's https URL.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// An IPv4 address with a prefix length, `172.20.30.1/24` (Python's `IPv4Interface`): the
/// prefix may be written as a length, a netmask or a host mask, and is `/32` when left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0 to 32.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask_bits(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// The netmask, `255.255.255.0` for `/24`.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask_bits())
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask_bits())
    }

    /// The subnet, `172.20.30.0/24`.
    pub fn subnet(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    /// Whether `ip` is inside the subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask_bits() == u32::from(self.network())
    }
}

impl FromStr for Ipv4Cidr {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, "32"));
        let addr = Ipv4Addr::from_str(addr).map_err(|_| ())?;
        let prefix = if prefix.bytes().all(|b| b.is_ascii_digit()) && !prefix.is_empty() {
            match prefix.parse::<u8>() {
                Ok(p) if p <= 32 => p,
                _ => return Err(()),
            }
        } else {
            let mask = u32::from(Ipv4Addr::from_str(prefix).map_err(|_| ())?);
            if mask.leading_ones() + mask.trailing_zeros() == 32 {
                mask.leading_ones() as u8
            } else if mask.leading_zeros() + mask.trailing_ones() == 32 {
                mask.leading_zeros() as u8
            } else {
                return Err(());
            }
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A DNS name: lowercase, no trailing dot, at most 253 characters, labels of letters, digits
/// and inner hyphens, 1 to 63 characters each.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

/// Why a string is not a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsNameError {
    /// Nothing is left once blanks and trailing dots are removed.
    #[error("is empty")]
    Empty,
    /// More than 253 characters.
    #[error("is longer than 253 characters")]
    TooLong,
    /// A label is empty, too long or has a character other than a letter, digit or inner `-`.
    #[error("is not a DNS name (label {0:?})")]
    BadLabel(String),
}

impl DnsName {
    /// Normalizes (trim, lowercase, strip trailing dots) and validates `s`.
    pub fn new(s: &str) -> Result<Self, DnsNameError> {
        let name = s.trim().to_lowercase();
        let name = name.trim_end_matches('.');
        if name.is_empty() {
            return Err(DnsNameError::Empty);
        }
        if name.chars().count() > 253 {
            return Err(DnsNameError::TooLong);
        }
        for label in name.split('.') {
            let b = label.as_bytes();
            let ok = !b.is_empty()
                && b.len() <= 63
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b.first() != Some(&b'-')
                && b.last() != Some(&b'-');
            if !ok {
                return Err(DnsNameError::BadLabel(label.to_owned()));
            }
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A MAC address, as the kernel shows it (`/sys/class/net/<if>/address`: six hex octets
/// separated by `:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac([u8; 6]);

/// Why a string is not a [`Mac`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (six hex octets separated by ':')")]
pub struct MacError(pub String);

impl Mac {
    /// The twelve lowercase hex digits, no separators (`0200aabbccdd`).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl FromStr for Mac {
    type Err = MacError;

    /// Parses `aa:bb:cc:dd:ee:ff` (either case), blanks around it ignored.
    fn from_str(s: &str) -> Result<Self, MacError> {
        let bad = || MacError(s.to_owned());
        let mut octets = [0u8; 6];
        let mut parts = s.trim().split(':');
        for octet in &mut octets {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        match parts.next() {
            Some(_) => Err(bad()),
            None => Ok(Self(octets)),
        }
    }
}

/// An IP literal (v4 or v6) in its normal text form, or `None`.
pub fn ip_literal(s: &str) -> Option<IpAddr> {
    IpAddr::from_str(s.trim()).ok()
}

/// An IP address in Python's `str(ip)` form: like `Display`, except that an IPv4-mapped IPv6
/// address is written in hex (`::ffff:102:304`, not `::ffff:1.2.3.4`).
pub fn ip_text(ip: &IpAddr) -> String {
    let IpAddr::V6(v6) = ip else {
        return ip.to_string();
    };
    let seg = v6.segments();
    // The first longest run of two or more zero groups becomes `::`.
    let (mut best, mut run) = ((0, 0), (0, 0));
    for (i, s) in seg.iter().enumerate() {
        if *s == 0 {
            run = if run.1 == 0 {
                (i, 1)
            } else {
                (run.0, run.1 + 1)
            };
            if run.1 > best.1 {
                best = run;
            }
        } else {
            run = (0, 0);
        }
    }
    let hex = |r: &[u16]| {
        r.iter()
            .map(|s| format!("{s:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best.1 < 2 {
        return hex(&seg);
    }
    let (start, end) = (best.0, best.0 + best.1);
    format!("{}::{}", hex(&seg[..start]), hex(&seg[end..]))
}

/// Whether `s` has whitespace or a control character.
pub(crate) fn has_blank_or_control(s: &str) -> bool {
    s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Why an OS upgrade server URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Whitespace or a control character.
    #[error("must not contain whitespace or control characters")]
    Blank,
    /// Not `https://host...`.
    #[error("must be an https:// URL with a host")]
    NotHttps,
    /// The port is not a number from 0 to 65535.
    #[error("has an invalid port")]
    Port,
    /// A user name or password.
    #[error("must not carry credentials")]
    Credentials,
    /// A `?` query or `#` fragment.
    #[error("must not have a query string or fragment")]
    QueryOrFragment,
    /// The host is neither an IP literal nor a DNS name.
    #[error("has an invalid host: {0}")]
    Host(DnsNameError),
}

/// Validates an https base URL and drops trailing `/`s.
pub fn https_url(raw: &str) -> Result<String, UrlError> {
    let url = raw.trim();
    if has_blank_or_control(url) {
        return Err(UrlError::Blank);
    }
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::NotHttps)?;
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(UrlError::NotHttps);
    }
    if rest.contains(['?', '#']) {
        return Err(UrlError::QueryOrFragment);
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return Err(UrlError::Credentials);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(UrlError::NotHttps)?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or(UrlError::Port)?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(port) = port.filter(|p| !p.is_empty())
        && (!port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err())
    {
        return Err(UrlError::Port);
    }
    if host.is_empty() {
        return Err(UrlError::NotHttps);
    }
    if authority.starts_with('[') {
        if std::net::Ipv6Addr::from_str(host).is_err() {
            return Err(UrlError::NotHttps);
        }
    } else if ip_literal(host).is_none() {
        DnsName::new(host).map_err(UrlError::Host)?;
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_like_an_interface_address() {
        let c: Ipv4Cidr = "172.20.30.1/24".parse().unwrap();
        assert_eq!(c.to_string(), "172.20.30.1/24");
        assert_eq!(c.subnet().to_string(), "172.20.30.0/24");
        assert_eq!(c.netmask().to_string(), "255.255.255.0");
        assert_eq!(c.broadcast().to_string(), "172.20.30.255");
        assert!(c.contains("172.20.30.9".parse().unwrap()));
        assert!(!c.contains("172.20.31.9".parse().unwrap()));
        let m: Ipv4Cidr = "10.1.2.3/255.255.0.0".parse().unwrap();
        assert_eq!(m.prefix(), 16);
        assert_eq!("10.1.2.3".parse::<Ipv4Cidr>().unwrap().prefix(), 32);
        assert_eq!(
            "10.0.0.1/0"
                .parse::<Ipv4Cidr>()
                .unwrap()
                .network()
                .to_string(),
            "0.0.0.0"
        );
        for bad in [
            "10.0.0.1/33",
            "10.0.0/24",
            "010.0.0.1/24",
            "10.0.0.1/255.0.255.0",
            "x",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn macs_are_six_hex_octets_and_print_as_twelve_lowercase_digits() {
        let mac: Mac = "02:00:AA:bb:0c:Fd\n".parse().unwrap();
        assert_eq!(mac.hex(), "0200aabb0cfd");
        for bad in [
            "",
            "02:00:aa:bb:0c",
            "02:00:aa:bb:0c:fd:00",
            "02-00-aa-bb-0c-fd",
            "2:00:aa:bb:0c:fd",
            "02:00:aa:bb:0c:fg",
            "0200aabb0cfd",
            "+2:00:aa:bb:0c:fd",
        ] {
            assert_eq!(bad.parse::<Mac>(), Err(MacError(bad.to_owned())), "{bad:?}");
        }
    }

    #[test]
    fn ipv6_text_is_pythons() {
        for (raw, text) in [
            ("::ffff:1.2.3.4", "::ffff:102:304"),
            ("2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("::", "::"),
            ("::1", "::1"),
            ("1::", "1::"),
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
            ("2606:4700:4700::1111", "2606:4700:4700::1111"),
            ("10.0.0.1", "10.0.0.1"),
        ] {
            assert_eq!(ip_text(&ip_literal(raw).unwrap()), text, "{raw}");
        }
    }

    #[test]
    fn dns_names_are_normalized_and_checked() {
        assert_eq!(
            DnsName::new(" Example.COM. ").unwrap().as_str(),
            "example.com"
        );
        assert_eq!(DnsName::new("."), Err(DnsNameError::Empty));
        assert!(matches!(
            DnsName::new("-a.b"),
            Err(DnsNameError::BadLabel(_))
        ));
        assert!(matches!(
            DnsName::new("a..b"),
            Err(DnsNameError::BadLabel(_))
        ));
        assert!(matches!(
            DnsName::new("a_b"),
            Err(DnsNameError::BadLabel(_))
        ));
        assert!(DnsName::new(&"a".repeat(63)).is_ok());
        assert!(DnsName::new(&"a".repeat(64)).is_err());
        let long = vec!["abc"; 64].join(".");
        assert_eq!(DnsName::new(&long), Err(DnsNameError::TooLong));
    }

    #[test]
    fn upgrade_urls_are_https_without_credentials_query_or_fragment() {
        assert_eq!(
            https_url("https://up.example.com/rauc//").unwrap(),
            "https://up.example.com/rauc"
        );
        assert_eq!(
            https_url("https://10.0.0.1:8443").unwrap(),
            "https://10.0.0.1:8443"
        );
        assert_eq!(
            https_url("https://[fd00::1]:443/x").unwrap(),
            "https://[fd00::1]:443/x"
        );
        assert_eq!(https_url("http://a.example"), Err(UrlError::NotHttps));
        assert_eq!(https_url("https://"), Err(UrlError::NotHttps));
        assert_eq!(
            https_url("https://u:p@a.example"),
            Err(UrlError::Credentials)
        );
        assert_eq!(
            https_url("https://a.example/?x=1"),
            Err(UrlError::QueryOrFragment)
        );
        assert_eq!(
            https_url("https://a.example#f"),
            Err(UrlError::QueryOrFragment)
        );
        assert_eq!(https_url("https://a.example:99999"), Err(UrlError::Port));
        assert_eq!(https_url("https://a.example:8x"), Err(UrlError::Port));
        assert_eq!(https_url("https://a b"), Err(UrlError::Blank));
        assert!(matches!(
            https_url("https://a_b.example"),
            Err(UrlError::Host(_))
        ));
    }
}
