//! The provisioning HTTP API (spec 6), `atomix-provision serve`: the original's routes,
//! headers, signed message, status codes and JSON shapes (`atomix_api` holds those facts), so
//! clients made for it keep working; every change of the config goes through the one import
//! path ([`crate::import`]) and the activation engine.
//!
//! - [`router`](mod@router): the shared state [`Api`] and the routes; [`handlers`]: the routes' handlers.
//! - [`auth`]: who may call (signed requests, the bootstrap exception); [`nonces`]: single-use
//!   nonces; [`sshsig`]: SSHSIG verification against the admin signers; [`origin`]: the
//!   browser protections before provisioning.
//! - [`apply`]: a submission from the upload to the job's end; [`partial`]: the typed partial
//!   routes, edits of the active config made into submissions; [`confirm`]: confirm-or-revert
//!   (the `?confirm` window, the confirmation, the windows a stopped service left open);
//!   [`engine`]: how a job reaches the activation engine; [`events`]: the jobs' event
//!   vocabulary; [`jobs`]: the durable job store.
//! - [`openapi`]: the OpenAPI document; [`listen`]: where the service listens; [`error`]: the
//!   refusals and their shapes.
//! - [`console`]: the first-boot web console (its routes go on top with [`router_with`]).
//!
//! Deliberate changes from the original are listed in `docs/provisioning-api.md`.

pub mod apply;
pub mod auth;
pub mod confirm;
pub mod console;
pub mod engine;
pub mod error;
pub mod events;
pub mod handlers;
pub mod jobs;
pub mod listen;
pub mod nonces;
pub mod openapi;
pub mod origin;
pub mod partial;
pub mod router;
pub mod sshsig;

pub use engine::{Engine, System};
pub use router::{Api, Settings, router, router_with, routes};
