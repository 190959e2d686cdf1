//! The [`Rauc`] trait (booted slot, mark-good), [`FakeRauc`] and [`DbusRauc`] on
//! `de.pengutronix.rauc.Installer`.

use std::collections::HashMap;

use zbus::blocking::Connection;
use zbus::zvariant::OwnedValue;

/// A RAUC call that failed or whose answer did not check out.
#[derive(Debug, thiserror::Error)]
pub enum RaucError {
    /// The D-Bus call failed (RAUC's own error message included).
    #[error("RAUC {operation} failed: {reason}")]
    Call {
        /// `connect`, `BootSlot`, `Mark` or `GetSlotStatus`.
        operation: &'static str,
        /// The error.
        reason: String,
    },
    /// `Mark` named no slot or one that `GetSlotStatus` does not list as good.
    #[error("RAUC marked {slot:?} good but its status reads {status:?}")]
    NotGood {
        /// The slot `Mark` returned.
        slot: String,
        /// Its `boot-status` (empty if missing).
        status: String,
    },
}

/// What a mark-good did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    /// The slot marked (RAUC's name, `rootfs.0`).
    pub slot: String,
    /// RAUC's message.
    pub message: String,
}

/// The RAUC service.
pub trait Rauc {
    /// The booted slot's boot name (`BootSlot`, `A` or `B`).
    fn booted_slot(&mut self) -> Result<String, RaucError>;
    /// `Mark("good", "booted")`, then checks the slot's `boot-status` with `GetSlotStatus`.
    fn mark_good_booted(&mut self) -> Result<Marked, RaucError>;
}

/// A call [`FakeRauc`] received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaucCall {
    /// [`Rauc::booted_slot`].
    BootedSlot,
    /// [`Rauc::mark_good_booted`].
    MarkGoodBooted,
}

/// A scripted RAUC.
#[derive(Debug, Default)]
pub struct FakeRauc {
    /// Every call, in order.
    pub calls: Vec<RaucCall>,
    /// Makes `mark_good_booted` fail.
    pub fail_mark: bool,
}

impl Rauc for FakeRauc {
    fn booted_slot(&mut self) -> Result<String, RaucError> {
        self.calls.push(RaucCall::BootedSlot);
        Ok("A".to_owned())
    }

    fn mark_good_booted(&mut self) -> Result<Marked, RaucError> {
        self.calls.push(RaucCall::MarkGoodBooted);
        if self.fail_mark {
            return Err(RaucError::Call {
                operation: "Mark",
                reason: "scripted".to_owned(),
            });
        }
        Ok(Marked {
            slot: "rootfs.0".to_owned(),
            message: "marked slot rootfs.0 as good".to_owned(),
        })
    }
}

#[zbus::proxy(
    interface = "de.pengutronix.rauc.Installer",
    default_service = "de.pengutronix.rauc",
    default_path = "/",
    gen_async = false,
    blocking_name = "InstallerProxy"
)]
trait Installer {
    fn mark(&self, state: &str, slot_identifier: &str) -> zbus::Result<(String, String)>;
    fn get_slot_status(&self) -> zbus::Result<Vec<(String, HashMap<String, OwnedValue>)>>;
    #[zbus(property)]
    fn boot_slot(&self) -> zbus::Result<String>;
}

/// How long a RAUC call may take.
pub const METHOD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// RAUC over D-Bus.
#[derive(Debug)]
pub struct DbusRauc {
    conn: Connection,
}

fn call(operation: &'static str) -> impl Fn(zbus::Error) -> RaucError {
    move |e| RaucError::Call {
        operation,
        reason: e.to_string(),
    }
}

impl DbusRauc {
    /// Connects to the system bus; calls time out after [`METHOD_TIMEOUT`] (a RAUC that does
    /// not start under D-Bus activation must not hang the gate).
    pub fn system() -> Result<Self, RaucError> {
        let conn = zbus::blocking::connection::Builder::system()
            .map_err(call("connect"))?
            .method_timeout(METHOD_TIMEOUT)
            .build()
            .map_err(call("connect"))?;
        Ok(Self { conn })
    }

    /// Uses an existing connection (a private bus in tests).
    pub fn with_connection(conn: Connection) -> Self {
        Self { conn }
    }

    fn proxy(&self) -> Result<InstallerProxy<'_>, RaucError> {
        InstallerProxy::builder(&self.conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .map_err(call("connect"))
    }
}

impl Rauc for DbusRauc {
    fn booted_slot(&mut self) -> Result<String, RaucError> {
        self.proxy()?.boot_slot().map_err(call("BootSlot"))
    }

    fn mark_good_booted(&mut self) -> Result<Marked, RaucError> {
        let proxy = self.proxy()?;
        let (slot, message) = proxy.mark("good", "booted").map_err(call("Mark"))?;
        let slots = proxy.get_slot_status().map_err(call("GetSlotStatus"))?;
        let status = slots
            .iter()
            .find(|(name, _)| *name == slot)
            .and_then(|(_, props)| props.get("boot-status"))
            .and_then(|v| String::try_from(v.clone()).ok())
            .unwrap_or_default();
        if slot.is_empty() || status != "good" {
            return Err(RaucError::NotGood { slot, status });
        }
        Ok(Marked { slot, message })
    }
}
