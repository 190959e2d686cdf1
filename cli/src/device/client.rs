//! A small blocking HTTP client of one device's provisioning API (spec 6): plain HTTP (devices
//! serve it on the LAN), a connect and a whole-request timeout on every request, no redirects
//! followed (a 3xx is an error naming where it pointed), no proxy (the device is reached
//! directly), and every failure saying the method, the URL, the status and the server's detail.

use std::time::Duration;

use atomix_api::{
    HEADER_FILENAME, HEADER_NONCE, HEADER_SIGNATURE, JobResponse, NonceResponse, SubmitResponse,
    routes,
};
use serde::de::DeserializeOwned;
use ureq::http::{self, StatusCode, Uri};

use super::sign::{SignError, Signer};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request may take (a 32 MiB bundle over a slow LAN fits).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest answer read (an exported config is at most the upload limit).
const MAX_ANSWER_BYTES: u64 = 33 << 20;
/// The longest piece of a non-JSON error body quoted in a message.
const MAX_QUOTED: usize = 200;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No connection (refused, no route, no such host) or no answer in time.
    #[error("{method} {url}: the device cannot be reached")]
    Unreachable {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: ureq::Error,
    },
    /// The device answered with an error status (or a redirect, not followed).
    #[error("{method} {url}: {status}: {detail}")]
    Status {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// The server's own message (or what the body says).
        detail: String,
    },
    /// The exchange failed otherwise (a malformed answer, a header that cannot be sent).
    #[error("{method} {url}: the request failed")]
    Failed {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: ureq::Error,
    },
    /// The answer is not the JSON the API documents.
    #[error("{method} {url}: unexpected answer ({status})")]
    Answer {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The request could not be signed.
    #[error("{method} {url}: cannot sign the request")]
    Sign {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<SignError>,
    },
}

impl RequestError {
    /// The HTTP status the device answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } | Self::Answer { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A device's base URL: `http://host[:port]`, without a path.
pub fn parse_url(text: &str) -> Result<String, String> {
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let uri: Uri = with_scheme
        .parse()
        .map_err(|e| format!("`{text}`: not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "`{text}`: https is not supported: devices serve their API over plain HTTP on \
                 the LAN"
            ));
        }
        _ => return Err(format!("`{text}`: expected http://HOST[:PORT]")),
    }
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(|| format!("`{text}`: no host"))?;
    if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
        return Err(format!(
            "`{text}`: give the device's address only (http://HOST[:PORT]), not a path"
        ));
    }
    Ok(format!("http://{authority}"))
}

/// One device's API.
#[derive(Debug)]
pub struct Device {
    base: String,
    agent: ureq::Agent,
}

/// A successful answer.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Device {
    /// The device at `base` (from [`parse_url`]).
    pub fn new(base: String) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            .user_agent(concat!("atomix/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self { base, agent }
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends one request; a 2xx answer comes back, anything else is an error.
    fn send(
        &self,
        method: &'static str,
        target: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Answer, RequestError> {
        let url = format!("{}{target}", self.base);
        let failed = |source| RequestError::Failed {
            method,
            url: url.clone(),
            source,
        };
        let mut request = http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let result = match body {
            Some(bytes) => request
                .header(http::header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes)
                .map(|r| self.agent.run(r)),
            None => request.body(()).map(|r| self.agent.run(r)),
        }
        .map_err(|e| failed(e.into()))?;
        let mut response = result.map_err(|source| match source {
            ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed => RequestError::Unreachable {
                method,
                url: url.clone(),
                source,
            },
            source => failed(source),
        })?;
        let status = response.status();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .map_err(failed)?;
        if status.is_success() {
            return Ok(Answer { status, body });
        }
        let detail = if status.is_redirection() {
            format!(
                "redirected to {}, not followed",
                location.as_deref().unwrap_or("(no Location)")
            )
        } else {
            atomix_api::error_detail(&body).unwrap_or_else(|| quote(&body))
        };
        Err(RequestError::Status {
            method,
            url,
            status,
            detail,
        })
    }

    /// Sends one request and reads its JSON answer.
    fn send_json<T: DeserializeOwned>(
        &self,
        method: &'static str,
        target: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<T, RequestError> {
        let answer = self.send(method, target, headers, body)?;
        serde_json::from_slice(&answer.body).map_err(|source| RequestError::Answer {
            method,
            url: format!("{}{target}", self.base),
            status: answer.status,
            source,
        })
    }

    /// The signature headers of a request to `path` with `body`: a fresh nonce, signed; none
    /// without a signer.
    fn auth(
        &self,
        signer: Option<&mut Signer>,
        method: &'static str,
        path: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>, RequestError> {
        let Some(signer) = signer else {
            return Ok(Vec::new());
        };
        let nonce: NonceResponse = self.send_json("GET", routes::NONCE, &[], None)?;
        let message = atomix_api::signed_message(&nonce.nonce, path, body);
        let armored = signer.sign(&message).map_err(|source| RequestError::Sign {
            method,
            url: format!("{}{path}", self.base),
            source: Box::new(source),
        })?;
        Ok(vec![
            (HEADER_NONCE, nonce.nonce),
            (HEADER_SIGNATURE, atomix_api::sign::header_value(&armored)),
        ])
    }

    /// `POST /api/config[?confirm=SECONDS]`: submits a config or bundle (signed when `signer`
    /// is given; the device takes an unsigned one only while it is unprovisioned).
    pub fn submit(
        &self,
        body: &[u8],
        filename: Option<&str>,
        confirm: Option<u64>,
        signer: Option<&mut Signer>,
    ) -> Result<SubmitResponse, RequestError> {
        let mut headers = self.auth(signer, "POST", routes::CONFIG, body)?;
        if let Some(name) = filename {
            headers.push((HEADER_FILENAME, name.to_owned()));
        }
        let target = match confirm {
            Some(seconds) => format!("{}?{}={seconds}", routes::CONFIG, atomix_api::CONFIRM_QUERY),
            None => routes::CONFIG.to_owned(),
        };
        self.send_json("POST", &target, &headers, Some(body))
    }

    /// `GET /api/jobs/{id}`.
    pub fn job(&self, id: &str) -> Result<JobResponse, RequestError> {
        self.send_json("GET", &routes::job(&encode_segment(id)), &[], None)
    }

    /// `POST /api/jobs/{id}/confirm`, signed over an empty body when `signer` is given.
    pub fn confirm(&self, id: &str, signer: Option<&mut Signer>) -> Result<(), RequestError> {
        let path = routes::job_confirm(&encode_segment(id));
        let headers = self.auth(signer, "POST", &path, b"")?;
        self.send("POST", &path, &headers, Some(b"")).map(|_| ())
    }

    /// `GET /api/config/export`, signed over an empty body: the active config.toml.
    pub fn export(&self, signer: Option<&mut Signer>) -> Result<Vec<u8>, RequestError> {
        let headers = self.auth(signer, "GET", routes::EXPORT, b"")?;
        self.send("GET", routes::EXPORT, &headers, None)
            .map(|answer| answer.body)
    }
}

/// A job id as one path segment: anything but unreserved characters percent-encoded, so an id
/// cannot reach another route.
fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The start of a body that is not one of the API's error shapes, on one line.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "(no detail)".into();
    }
    match line.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_a_plain_http_address() {
        assert_eq!(
            parse_url("http://10.0.0.5:8080").as_deref(),
            Ok("http://10.0.0.5:8080")
        );
        assert_eq!(
            parse_url("172.20.30.1:8080/").as_deref(),
            Ok("http://172.20.30.1:8080")
        );
        assert_eq!(
            parse_url("http://[::1]:8080").as_deref(),
            Ok("http://[::1]:8080")
        );
        assert!(
            parse_url("https://dev:8080")
                .unwrap_err()
                .contains("plain HTTP")
        );
        assert!(
            parse_url("http://dev:8080/api/config")
                .unwrap_err()
                .contains("not a path")
        );
        assert!(parse_url("ftp://dev").is_err());
        assert!(parse_url("http://").is_err());
    }

    #[test]
    fn job_ids_stay_one_segment() {
        assert_eq!(encode_segment("5f0c-a1"), "5f0c-a1");
        assert_eq!(encode_segment("../config/export"), "..%2Fconfig%2Fexport");
        assert_eq!(encode_segment("a b?c"), "a%20b%3Fc");
    }

    #[test]
    fn other_bodies_are_quoted_short_on_one_line() {
        assert_eq!(quote(b""), "(no detail)");
        assert_eq!(quote(b"<h1>Bad\n Gateway</h1>"), "<h1>Bad Gateway</h1>");
        assert_eq!(
            quote("x".repeat(500).as_bytes()).chars().count(),
            MAX_QUOTED + 1
        );
    }
}
