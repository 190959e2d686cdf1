//! Who may call (spec 6.3, 6.5, 6.6). Before provisioning nobody can sign, so `POST
//! /api/config` is an unauthenticated initial import behind the browser protections
//! ([`super::origin`]), and the other routes are refused. Once the device is provisioned, or
//! was in this process, every mutating or reading route needs an admin's signature over the
//! request ([`super::sshsig`]) with a fresh nonce ([`super::nonces`]); admin signers that
//! cannot be read then fail closed. The order of the checks and the 401 details are the
//! original's.

use atomix_api::{HEADER_NONCE, HEADER_SIGNATURE, signed_message};
use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use base64ct::{Base64, Encoding as _};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use subtle::ConstantTimeEq as _;

use super::error::{
    AUTH_REQUIRED, BAD_ENCODING, BAD_NONCE, BAD_SIGNATURE, Reject, SIGNERS_UNAVAILABLE,
};
use super::origin;
use super::router::Api;
use super::sshsig::Signers;

/// Who a request is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// An admin: the request is signed by an admin signer.
    Admin,
    /// Nobody yet: an unauthenticated request before provisioning (initial import only).
    Bootstrap,
}

/// Reads the whole body, at most `limit` bytes: 413 beyond.
pub async fn read_body(body: Body, limit: u64) -> Result<Bytes, Reject> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(Reject::TooLarge),
        Err(_) => Err(Reject::BadRequest),
    }
}

/// The current admin signers; unreadable ones fail closed.
fn signers(api: &Api) -> Result<Option<Signers>, Reject> {
    match Signers::read(api.root.active()) {
        Ok(Some(s)) => {
            api.saw_signers();
            Ok(Some(s))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            eprintln!("api: {:#}", anyhow::Error::new(e));
            Err(Reject::Unauthorized(SIGNERS_UNAVAILABLE))
        }
    }
}

/// `POST /api/config`'s guard: an admin's signed request, or before provisioning an
/// unauthenticated one that passes the browser checks. Returns the caller and the body.
pub async fn submitter(
    api: &Api,
    headers: &HeaderMap,
    path: &str,
    body: Body,
) -> Result<(Caller, Bytes), Reject> {
    match signers(api)? {
        Some(signers) => Ok((
            Caller::Admin,
            verify(api, &signers, headers, path, body).await?,
        )),
        None if api.provisioned() => Err(Reject::Unauthorized(SIGNERS_UNAVAILABLE)),
        None => {
            origin::check(headers).map_err(Reject::Unauthorized)?;
            let body = read_body(body, api.limits.max_upload_bytes).await?;
            Ok((Caller::Bootstrap, body))
        }
    }
}

/// The guard of every other route that reads or changes the config: an admin's signed
/// request, always. Returns the body.
pub async fn admin(
    api: &Api,
    headers: &HeaderMap,
    path: &str,
    body: Body,
) -> Result<Bytes, Reject> {
    match signers(api)? {
        Some(signers) => verify(api, &signers, headers, path, body).await,
        None if api.provisioned() => Err(Reject::Unauthorized(SIGNERS_UNAVAILABLE)),
        None => Err(Reject::Unauthorized(AUTH_REQUIRED)),
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// Spec 6.5's verification: both headers, the nonce consumed (gone whatever follows), the
/// body read, the signature decoded (strict base64) and verified over the rebuilt message.
async fn verify(
    api: &Api,
    signers: &Signers,
    headers: &HeaderMap,
    path: &str,
    body: Body,
) -> Result<Bytes, Reject> {
    let (Some(nonce), Some(signature)) = (
        header(headers, HEADER_NONCE),
        header(headers, HEADER_SIGNATURE),
    ) else {
        return Err(Reject::Unauthorized(AUTH_REQUIRED));
    };
    if !api.nonces.consume(nonce) {
        return Err(Reject::Unauthorized(BAD_NONCE));
    }
    let body = read_body(body, api.limits.max_upload_bytes).await?;
    // Strict: base64ct refuses non-canonical padding and characters outside the alphabet.
    let armored = Base64::decode_vec(signature).map_err(|_| Reject::Unauthorized(BAD_ENCODING))?;
    let message = signed_message(nonce, path, &body);
    signers.verify(&armored, message.as_bytes()).map_err(|e| {
        eprintln!(
            "api: {path}: refused signature: {:#}",
            anyhow::Error::new(e)
        );
        Reject::Unauthorized(BAD_SIGNATURE)
    })?;
    Ok(body)
}

/// Whether `given` is `expected` (the web console's per-process form token), in constant
/// time.
pub fn token_matches(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abd"));
        assert!(!token_matches("abc", "ab"));
        assert!(!token_matches("abc", ""));
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413() {
        let ok = read_body(Body::from(vec![0u8; 10]), 10).await.unwrap();
        assert_eq!(ok.len(), 10);
        let over = read_body(Body::from(vec![0u8; 11]), 10).await;
        assert_eq!(over.unwrap_err(), Reject::TooLarge);
    }
}
