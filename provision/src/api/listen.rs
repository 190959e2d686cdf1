//! Where the service listens (spec 5.4, 6.1, 9.6).
//!
//! - A socket passed by systemd (`LISTEN_PID` is this process and `LISTEN_FDS` ≥ 1): that one,
//!   as it is, for the life of the process.
//! - Otherwise, while the device is unprovisioned: `--host`:`--port` (the unit gives
//!   `0.0.0.0:8080`, so the console is reachable on the WAN and the LAN).
//! - Once provisioned (the active root has `config.toml`): the LAN gateway's address from the
//!   persisted `lan-settings.json` (`gateway_ip`), at every start, so a reboot never opens
//!   `0.0.0.0` again (the original did). A loopback `--host` is kept as it is: it is already
//!   narrower (tests, debugging on the device). A provisioned root without a readable
//!   gateway is an error: the service does not fall back to a wider address.
//! - When a job commits a config, the address is worked out again [`REBIND_DELAY`] later (time
//!   for the client to read its job) and the service moves there if it changed.
//!
//! The socket is bound with `IP_FREEBIND`: at boot the service may start before networkd has
//! put the gateway address on eth1.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use socket2::{Domain, Protocol, Socket, Type};

use super::router::Api;
use crate::store::ConfigRoot;

/// The persisted LAN settings, in the active root.
pub use atomix_config::root_files::LAN_SETTINGS;
/// How long after a committed config the service moves to its new address.
pub const REBIND_DELAY: Duration = Duration::from_secs(30);

/// Why the service cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The provisioned root's LAN settings cannot be read.
    #[error("cannot read the LAN gateway from {}", path.display())]
    Settings {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The LAN settings have no usable `gateway_ip`.
    #[error("{}: no IPv4 gateway_ip", .0.display())]
    NoGateway(PathBuf),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The socket systemd passed cannot be used.
    #[error("the socket passed by systemd")]
    Inherited(#[source] std::io::Error),
    /// Serving failed.
    #[error("serving on {addr}")]
    Serve {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The LAN gateway of the provisioned root `active`.
fn gateway(root: &ConfigRoot) -> Result<IpAddr, ListenError> {
    let path = root.active().join(LAN_SETTINGS);
    let bytes = std::fs::read(&path).map_err(|source| ListenError::Settings {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("gateway_ip")?
                .as_str()?
                .parse::<std::net::Ipv4Addr>()
                .ok()
        })
        .map(IpAddr::V4)
        .ok_or(ListenError::NoGateway(path))
}

/// Where to listen: `host:port` before provisioning (or for a loopback `host`), the LAN
/// gateway's address and `port` after.
pub fn address(root: &ConfigRoot, host: IpAddr, port: u16) -> Result<SocketAddr, ListenError> {
    if host.is_loopback() || !root.active_config().exists() {
        return Ok(SocketAddr::new(host, port));
    }
    Ok(SocketAddr::new(gateway(root)?, port))
}

/// A listening socket on `addr` (`SO_REUSEADDR`, `IP_FREEBIND`), non-blocking.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, ListenError> {
    let err = |source| ListenError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    match addr {
        SocketAddr::V4(_) => socket.set_freebind_v4(true),
        SocketAddr::V6(_) => socket.set_freebind_v6(true),
    }
    .map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(128).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
}

/// The socket systemd passed to this process, if any. Call it before any thread starts (it
/// clears the `LISTEN_*` variables).
pub fn inherited() -> Result<Option<std::net::TcpListener>, ListenError> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if !ours {
        return Ok(None);
    }
    let listener = listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .map_err(ListenError::Inherited)?;
    if let Some(l) = &listener {
        l.set_nonblocking(true).map_err(ListenError::Inherited)?;
    }
    Ok(listener)
}

async fn run(
    listener: std::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ListenError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let serve_err = |source| ListenError::Serve {
        addr: addr.clone(),
        source,
    };
    let listener = tokio::net::TcpListener::from_std(listener).map_err(serve_err)?;
    eprintln!("listening on {addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(serve_err)
}

/// Serves `app` for `api`: on `inherited` if systemd passed a socket, else on [`address`],
/// moving when a committed config changes it.
pub async fn serve(
    api: Arc<Api>,
    app: Router,
    inherited: Option<std::net::TcpListener>,
    host: IpAddr,
    port: u16,
) -> Result<(), ListenError> {
    if let Some(listener) = inherited {
        return run(listener, app, std::future::pending()).await;
    }
    loop {
        let addr = address(&api.root, host, port)?;
        let listener = bind(addr)?;
        let watcher = Arc::clone(&api);
        let moved = async move {
            loop {
                watcher.provisioning_changes().await;
                tokio::time::sleep(REBIND_DELAY).await;
                match address(&watcher.root, host, port) {
                    Ok(next) if next != addr => {
                        eprintln!("the config moved the service: {addr} -> {next}");
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("staying on {addr}: {:#}", anyhow::Error::new(e)),
                }
            }
        };
        run(listener, app.clone(), moved).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_gateway_once_provisioned_unless_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let root = ConfigRoot::unchecked(&dir.path().join("config")).unwrap();
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(
            address(&root, any, 8080).unwrap().to_string(),
            "0.0.0.0:8080"
        );
        std::fs::create_dir(root.active()).unwrap();
        std::fs::write(root.active_config(), "version = 1\n").unwrap();
        assert!(matches!(
            address(&root, any, 8080),
            Err(ListenError::Settings { .. })
        ));
        std::fs::write(root.active().join(LAN_SETTINGS), "{\"gateway_ip\": 7}").unwrap();
        assert!(matches!(
            address(&root, any, 8080),
            Err(ListenError::NoGateway(_))
        ));
        std::fs::write(
            root.active().join(LAN_SETTINGS),
            "{\"gateway_ip\": \"10.44.0.1\", \"gateway_cidr\": \"10.44.0.1/24\"}",
        )
        .unwrap();
        assert_eq!(
            address(&root, any, 8080).unwrap().to_string(),
            "10.44.0.1:8080"
        );
        assert_eq!(address(&root, lo, 0).unwrap().to_string(), "127.0.0.1:0");
    }

    #[test]
    fn binds_loopback() {
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(l.local_addr().unwrap().ip().is_loopback());
    }
}
