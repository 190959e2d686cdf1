//! The provisioning API in process (`tower::ServiceExt::oneshot` on the router): a device with
//! its temporary `/data`, requests (signed by the real `ssh-keygen`), and the engine's
//! dependencies as fakes.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use atomix_api::{HEADER_NONCE, HEADER_SIGNATURE, JobResponse, JobState, routes, signed_message};
use atomix_provision::activate::accounts::Shells;
use atomix_provision::activate::{
    ActiveState, Deps, FakeAccounts, FakeClock, FakeFirewall, FakeNetwork, FakeSystemd,
    FakeTimeSync, Interfaces, Rootless,
};
use atomix_provision::api::{Api, Engine, Settings, System, router};
use atomix_provision::store::{ConfigRoot, Owner, RealFs};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;

use super::sshkeys::{Key, sign, unqueried};

/// One device: a temporary `/data`, the state and the router.
pub struct Device {
    pub dir: tempfile::TempDir,
    pub api: Arc<Api>,
    pub app: Router,
}

impl Device {
    pub fn new(tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let mut settings = Settings::new(root_of(dir.path()));
        tweak(&mut settings);
        let api = Api::new(settings).unwrap();
        Self {
            app: router(Arc::clone(&api)),
            api,
            dir,
        }
    }

    /// The same `/data`, as the service sees it after a restart.
    pub fn restart(&self) -> Arc<Api> {
        self.restart_with(|_| {})
    }

    /// [`Device::restart`] with other settings.
    pub fn restart_with(&self, tweak: impl FnOnce(&mut Settings)) -> Arc<Api> {
        let mut settings = Settings::new(root_of(self.dir.path()));
        tweak(&mut settings);
        Api::new(settings).unwrap()
    }

    pub fn root(&self) -> ConfigRoot {
        root_of(self.dir.path())
    }

    pub async fn call(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        call(&self.app, req).await
    }

    pub async fn json(&self, req: Request<Body>) -> (StatusCode, Value) {
        let (status, _, body) = self.call(req).await;
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        (status, value)
    }

    pub async fn nonce(&self) -> String {
        let (status, body) = self.json(get(routes::NONCE)).await;
        assert_eq!(status, StatusCode::OK);
        body["nonce"].as_str().unwrap().to_owned()
    }

    /// A request signed by `key` with a fresh nonce.
    pub async fn signed(
        &self,
        key: &Key,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Request<Body> {
        let nonce = self.nonce().await;
        signed_with(key, &nonce, method, path, body)
    }

    /// Submits `body` (202 expected) and waits for the job's end.
    pub async fn apply(&self, req: Request<Body>) -> JobResponse {
        let (status, headers, body) = self.call(req).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let accepted: Value = serde_json::from_slice(&body).unwrap();
        let url = accepted["job_url"].as_str().unwrap().to_owned();
        assert_eq!(headers["location"], url.as_str());
        assert_eq!(accepted["state"], "submitted");
        self.wait(&url).await
    }

    /// Waits (30 s at most) for the job at `url` to end.
    pub async fn wait(&self, url: &str) -> JobResponse {
        self.wait_until(url, |job| job.state.is_terminal()).await
    }

    /// Waits (30 s at most) for the job at `url` to be as `done` wants.
    pub async fn wait_until(&self, url: &str, done: impl Fn(&JobResponse) -> bool) -> JobResponse {
        for _ in 0..1500 {
            let (status, body) = self.json(get(url)).await;
            assert_eq!(status, StatusCode::OK);
            let job: JobResponse = serde_json::from_value(body).unwrap();
            if done(&job) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("job {url} did not get there");
    }

    /// Submits `req` (202 expected); the job's URL.
    pub async fn submit(&self, req: Request<Body>) -> String {
        let (status, _, body) = self.call(req).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let accepted: Value = serde_json::from_slice(&body).unwrap();
        accepted["job_url"].as_str().unwrap().to_owned()
    }

    /// The active config.toml.
    pub fn active_config(&self) -> String {
        std::fs::read_to_string(self.root().active_config()).unwrap()
    }

    /// Provisions the device by an unauthenticated initial import of `toml`.
    pub async fn provision(&self, toml: &str) -> JobResponse {
        let job = self.apply(post(routes::CONFIG, toml.as_bytes())).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        job
    }
}

pub fn root_of(dir: &Path) -> ConfigRoot {
    ConfigRoot::unchecked(&dir.join("data/config")).unwrap()
}

pub async fn call(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, body.to_vec())
}

pub fn request(method: Method, path: &str, body: &[u8]) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:8080")
        .body(Body::from(body.to_vec()))
        .unwrap()
}

pub fn get(path: &str) -> Request<Body> {
    request(Method::GET, path, b"")
}

pub fn post(path: &str, body: &[u8]) -> Request<Body> {
    request(Method::POST, path, body)
}

pub fn signed_with(
    key: &Key,
    nonce: &str,
    method: Method,
    path: &str,
    body: &[u8],
) -> Request<Body> {
    let signature = sign(key, &signed_message(nonce, unqueried(path), body));
    with_auth(request(method, path, body), nonce, &signature)
}

pub fn with_auth(mut req: Request<Body>, nonce: &str, signature: &str) -> Request<Body> {
    let h = req.headers_mut();
    h.insert(HEADER_NONCE, nonce.parse().unwrap());
    h.insert(HEADER_SIGNATURE, signature.parse().unwrap());
    req
}

pub fn from_client(mut req: Request<Body>, ip: &str) -> Request<Body> {
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

pub fn detail(status: StatusCode, body: &Value) -> (u16, String) {
    assert_eq!(body["status_code"], status.as_u16(), "{body}");
    (
        status.as_u16(),
        body["detail"].as_str().unwrap_or("").to_owned(),
    )
}

pub fn steps(job: &JobResponse) -> Vec<String> {
    job.events
        .iter()
        .flatten()
        .map(|e| e.step.clone())
        .collect()
}

/// The engine's dependencies as fakes, made for each job.
pub struct FakeSystem {
    pub system: FakeSystemd,
    pub user: FakeSystemd,
    pub accounts: FakeAccounts,
    pub network: FakeNetwork,
    pub firewall: FakeFirewall,
    pub clock: FakeClock,
    pub time_sync: FakeTimeSync,
    pub dir: PathBuf,
}

impl System for FakeSystem {
    fn deps(&mut self) -> Deps<'_> {
        let me = std::fs::metadata(&self.dir).unwrap();
        Deps {
            fs: &RealFs,
            system: &mut self.system,
            user: &mut self.user,
            accounts: &mut self.accounts,
            network: &mut self.network,
            firewall: &mut self.firewall,
            clock: &self.clock,
            time_sync: &mut self.time_sync,
            shells: Shells::detect(|_| false),
            interfaces: Interfaces::default(),
            rootful_target: self.dir.join("etc/containers/systemd"),
            rootless: Some(Rootless {
                user: "appsvc".to_owned(),
                owner: Owner {
                    uid: me.uid(),
                    gid: me.gid(),
                },
                home: self.dir.join("home/appsvc"),
            }),
        }
    }
}

/// The engine with fakes made for each job, on a host at `dir` (which has `home/`): a rootless
/// `web.service` that fails while `failing` is set.
pub fn fake_engine(dir: &Path, failing: &Arc<AtomicBool>) -> Engine {
    let (dir, fail) = (dir.to_owned(), Arc::clone(failing));
    Engine::Systemd(Arc::new(move || {
        let mut user = FakeSystemd::new();
        if fail.load(Ordering::SeqCst) {
            user.states("web.service", &[ActiveState::Failed]);
        }
        Ok(Box::new(FakeSystem {
            system: FakeSystemd::new(),
            user,
            accounts: FakeAccounts::default(),
            network: FakeNetwork::default(),
            firewall: FakeFirewall::default(),
            clock: FakeClock::new(),
            time_sync: FakeTimeSync::default(),
            dir: dir.clone(),
        }) as Box<dyn System>)
    }))
}
