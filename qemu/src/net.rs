//! Guest networking: QEMU's user-mode network (slirp), and nothing else.
//!
//! A guest's chrony, DNS or package manager must never reach anything outside this machine, so
//! every NIC this crate attaches is a `-netdev user` with `restrict=on` (the guest can talk to
//! nothing but the emulated router, and only through the forwarded ports below), and every port
//! forward listens on `127.0.0.1`. There is no way to ask for a tap, a bridge or an unrestricted
//! user network, and [`crate::run`] refuses network options smuggled in through
//! [`crate::QemuConfig::extra_args`].

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::Transport;

/// The QEMU options that attach or configure a network; none may appear in `extra_args`.
pub(crate) const NETWORK_OPTIONS: [&str; 3] = ["-netdev", "-nic", "-net"];

/// One virtio-net NIC on a restricted user-mode network. The guest names NICs in the order they
/// are attached (the first is `eth0` when the root filesystem keeps kernel names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The netdev id, also shown in QEMU's messages (`wan`, `lan`).
    pub id: String,
    /// The user network's subnet and prefix; `None` for slirp's default 10.0.2.0/24, where the
    /// guest gets 10.0.2.15 by DHCP.
    pub subnet: Option<(Ipv4Addr, u8)>,
    /// The emulated router's own address in `subnet` (slirp's default: the subnet's .2). It must
    /// not be an address the guest uses.
    pub router: Option<Ipv4Addr>,
    /// The guest address that forwards without their own go to; `None` for slirp's DHCP
    /// address (x.x.x.15).
    pub guest: Option<Ipv4Addr>,
    /// The NIC's MAC address.
    pub mac: Mac,
    /// Ports of 127.0.0.1 on the host forwarded to the guest.
    pub forwards: Vec<Forward>,
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A transport protocol of a port forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// `127.0.0.1:host_port` on the host forwarded to `guest_port` in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The port on the host's loopback.
    pub host_port: u16,
    /// The port in the guest.
    pub guest_port: u16,
}

/// A forward written `HOST:GUEST` (TCP), `tcp:HOST:GUEST` or `udp:HOST:GUEST`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a port forward (HOST:GUEST, with an optional tcp: or udp: in front)")]
pub struct BadForward {
    /// What was given.
    pub text: String,
}

impl FromStr for Forward {
    type Err = BadForward;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadForward {
            text: text.to_owned(),
        };
        let (protocol, ports) = match text.split_once(':') {
            Some(("tcp", rest)) => (Protocol::Tcp, rest),
            Some(("udp", rest)) => (Protocol::Udp, rest),
            _ => (Protocol::Tcp, text),
        };
        let (host, guest) = ports.split_once(':').ok_or_else(bad)?;
        let port = |s: &str| s.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad);
        Ok(Self {
            protocol,
            host_port: port(host)?,
            guest_port: port(guest)?,
        })
    }
}

/// The LAN gateway address of an AtomixOS device (rootfs/tree/etc/systemd/network/20-lan.network).
pub const LAN_GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 20, 30, 1);

/// An AtomixOS device's two NICs on the bench, in the order the guest names them: `wan` (eth0)
/// on slirp's default network, where the device's DHCP client gets 10.0.2.15, and `lan` (eth1)
/// on 172.20.30.0/24, where the device is the gateway [`LAN_GATEWAY`] and the emulated router
/// takes .254. Forwards on the LAN go to the gateway address. The WAN's MAC is the higher one,
/// so a guest that named NICs by MAC would get them the wrong way round.
pub fn appliance_nics() -> [Nic; 2] {
    let wan = Nic::new("wan", Mac([0x52, 0x54, 0x00, 0xa7, 0x00, 0x99]));
    let lan = Nic {
        subnet: Some((Ipv4Addr::new(172, 20, 30, 0), 24)),
        router: Some(Ipv4Addr::new(172, 20, 30, 254)),
        guest: Some(LAN_GATEWAY),
        ..Nic::new("lan", Mac([0x52, 0x54, 0x00, 0xa7, 0x00, 0x01]))
    };
    [wan, lan]
}

impl Nic {
    /// A NIC on slirp's default network (the guest's DHCP gets 10.0.2.15).
    pub fn new(id: impl Into<String>, mac: Mac) -> Self {
        Self {
            id: id.into(),
            subnet: None,
            router: None,
            guest: None,
            mac,
            forwards: Vec::new(),
        }
    }

    /// The `-netdev` value: always `user` with `restrict=on`, forwards bound to 127.0.0.1.
    pub(crate) fn netdev(&self) -> String {
        let mut value = format!("user,id={},restrict=on", self.id);
        if let Some((address, prefix)) = self.subnet {
            value.push_str(&format!(",net={address}/{prefix}"));
        }
        if let Some(router) = self.router {
            value.push_str(&format!(",host={router}"));
        }
        let guest = self.guest.map(|g| g.to_string()).unwrap_or_default();
        for forward in &self.forwards {
            value.push_str(&format!(
                ",hostfwd={}:127.0.0.1:{}-{guest}:{}",
                forward.protocol.name(),
                forward.host_port,
                forward.guest_port
            ));
        }
        value
    }

    /// The `-device` value for this NIC on `transport`. virtio-net-pci gets `romfile=` (no
    /// option ROM: iPXE is not installed, and neither U-Boot nor Linux needs it).
    pub(crate) fn device(&self, transport: Transport) -> String {
        match transport {
            Transport::Pci => format!(
                "virtio-net-pci,netdev={},mac={},romfile=",
                self.id, self.mac
            ),
            Transport::Mmio => format!("virtio-net-device,netdev={},mac={}", self.id, self.mac),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_parse_with_and_without_a_protocol() {
        let tcp = |host_port, guest_port| Forward {
            protocol: Protocol::Tcp,
            host_port,
            guest_port,
        };
        assert_eq!("18080:8080".parse(), Ok(tcp(18080, 8080)));
        assert_eq!("tcp:2222:22".parse(), Ok(tcp(2222, 22)));
        assert_eq!(
            "udp:5353:53".parse::<Forward>().map(|f| f.protocol),
            Ok(Protocol::Udp)
        );
        for bad in [
            "", "8080", "0:22", "22:0", "x:22", "sctp:1:2", "1:2:3", "70000:22",
        ] {
            assert!(bad.parse::<Forward>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_netdev_is_restricted_and_forwards_bind_loopback() {
        let mut nic = Nic::new("lan", Mac([0x52, 0x54, 0, 0, 0, 2]));
        nic.subnet = Some((Ipv4Addr::new(172, 20, 30, 0), 24));
        nic.router = Some(Ipv4Addr::new(172, 20, 30, 254));
        nic.guest = Some(Ipv4Addr::new(172, 20, 30, 1));
        nic.forwards = vec!["2222:22".parse().unwrap(), "udp:5353:53".parse().unwrap()];
        assert_eq!(
            nic.netdev(),
            "user,id=lan,restrict=on,net=172.20.30.0/24,host=172.20.30.254,\
             hostfwd=tcp:127.0.0.1:2222-172.20.30.1:22,hostfwd=udp:127.0.0.1:5353-172.20.30.1:53"
        );
        assert_eq!(
            nic.device(Transport::Pci),
            "virtio-net-pci,netdev=lan,mac=52:54:00:00:00:02,romfile="
        );
        assert_eq!(
            nic.device(Transport::Mmio),
            "virtio-net-device,netdev=lan,mac=52:54:00:00:00:02"
        );
        let wan = Nic {
            forwards: vec!["18080:8080".parse().unwrap()],
            ..Nic::new("wan", Mac([0x52, 0x54, 0, 0, 0, 1]))
        };
        assert_eq!(
            wan.netdev(),
            "user,id=wan,restrict=on,hostfwd=tcp:127.0.0.1:18080-:8080"
        );
    }
}
