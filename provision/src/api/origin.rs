//! The browser protections of an unauthenticated request before provisioning (spec 6.6): the
//! `Host` must name the device in a way DNS rebinding cannot (`localhost`, `gateway`,
//! `atomixos`, a `.local` name or an IP literal), and an `Origin` or `Referer`, when present,
//! must be this same `http` origin. A cross-site form post or a rebinding page is refused.

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN, REFERER};

/// The detail of a refused `Host`.
pub const HOST_NOT_ALLOWED: &str = "bootstrap host is not allowed";
/// The detail of a refused `Origin`.
pub const ORIGIN_NOT_ALLOWED: &str = "bootstrap origin is not allowed";
/// The detail of a refused `Referer`.
pub const REFERER_NOT_ALLOWED: &str = "bootstrap referer is not allowed";

/// A scheme, lowercased host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// Splits `authority` (`host`, `host:port`, `[v6]:port`, with any `user@` dropped) into the
/// lowercased host and the port (`default` when absent). `None` if the host is empty or the
/// port is not a number up to 65535.
fn host_port(authority: &str, default: u16) -> Option<(String, u16)> {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None | Some("") => default,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        Some(_) => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// The origin of an `Origin` or `Referer` value: an `http` or `https` URL with a host.
fn url_origin(value: &str) -> Option<Origin> {
    let (scheme, rest) = value.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = host_port(authority, default)?;
    Some(Origin { scheme, host, port })
}

fn allowed_host(host: &str) -> bool {
    matches!(host, "localhost" | "gateway" | "atomixos")
        || host.ends_with(".local")
        || host.parse::<std::net::IpAddr>().is_ok()
}

/// Checks the request's `Host`, `Origin` and `Referer`; the 401 detail if refused.
pub fn check(headers: &HeaderMap) -> Result<(), &'static str> {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| host_port(h.trim(), 80))
        .filter(|(host, _)| allowed_host(host))
        .ok_or(HOST_NOT_ALLOWED)?;
    let own = Origin {
        scheme: "http".to_owned(),
        host: host.0,
        port: host.1,
    };
    for (name, detail) in [(ORIGIN, ORIGIN_NOT_ALLOWED), (REFERER, REFERER_NOT_ALLOWED)] {
        let Some(value) = headers.get(name) else {
            continue;
        };
        let value = value.to_str().map_err(|_| detail)?;
        if value.is_empty() {
            continue;
        }
        if url_origin(value).as_ref() != Some(&own) {
            return Err(detail);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hosts_that_cannot_be_rebound_pass() {
        for host in [
            "localhost",
            "gateway:8080",
            "ATOMIXOS",
            "rock64.local",
            "172.20.30.1:8080",
            "[::1]:8080",
            "127.0.0.1:",
        ] {
            assert_eq!(check(&headers(&[("host", host)])), Ok(()), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "172.20.30.1:notaport",
            "172.20.30.1:70000",
            "[::1",
        ] {
            assert_eq!(
                check(&headers(&[("host", host)])),
                Err(HOST_NOT_ALLOWED),
                "{host}"
            );
        }
        assert_eq!(check(&HeaderMap::new()), Err(HOST_NOT_ALLOWED));
    }

    #[test]
    fn origin_and_referer_must_be_the_same_http_origin() {
        let host = ("host", "172.20.30.1:8080");
        let ok = [
            ("origin", "http://172.20.30.1:8080"),
            ("referer", "http://172.20.30.1:8080/some/page?x#y"),
            ("origin", ""),
        ];
        for pair in ok {
            assert_eq!(check(&headers(&[host, pair])), Ok(()), "{pair:?}");
        }
        let refused = [
            ("origin", "http://172.20.30.1:8081", ORIGIN_NOT_ALLOWED),
            ("origin", "http://evil.example:8080", ORIGIN_NOT_ALLOWED),
            ("origin", "https://172.20.30.1:8080", ORIGIN_NOT_ALLOWED),
            ("origin", "null", ORIGIN_NOT_ALLOWED),
            ("origin", "http://172.20.30.1:bad", ORIGIN_NOT_ALLOWED),
            ("referer", "not a url", REFERER_NOT_ALLOWED),
        ];
        for (name, value, detail) in refused {
            assert_eq!(
                check(&headers(&[host, (name, value)])),
                Err(detail),
                "{value}"
            );
        }
        // The default port is 80 on both sides.
        assert_eq!(
            check(&headers(&[
                ("host", "gateway"),
                ("origin", "http://gateway")
            ])),
            Ok(())
        );
    }
}
