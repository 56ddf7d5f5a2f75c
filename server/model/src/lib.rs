//! The records the engine and the lease store both speak: leases, binding states, client
//! identities and each failover relationship's persisted state. No I/O, no clock.

use std::net::Ipv4Addr;

/// Seconds since the UNIX epoch. The engine never reads a clock; callers pass `now`.
pub type Time = u64;

/// Binding status of an address, with the wire values of draft-ietf-dhc-failover-12 §5.4
/// (so that failover can put them on the wire unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BindingState {
    Free = 1,
    Active = 2,
    Expired = 3,
    Released = 4,
    Abandoned = 5,
    Reset = 6,
    Backup = 7,
}

impl BindingState {
    pub const ALL: [BindingState; 7] = [
        BindingState::Free,
        BindingState::Active,
        BindingState::Expired,
        BindingState::Released,
        BindingState::Abandoned,
        BindingState::Reset,
        BindingState::Backup,
    ];

    pub fn from_wire(v: u8) -> Option<BindingState> {
        Self::ALL.into_iter().find(|s| *s as u8 == v)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BindingState::Free => "free",
            BindingState::Active => "active",
            BindingState::Expired => "expired",
            BindingState::Released => "released",
            BindingState::Abandoned => "abandoned",
            BindingState::Reset => "reset",
            BindingState::Backup => "backup",
        }
    }
}

/// A client's identity: option 61 when present, else hardware type + address (RFC 2131 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientKey {
    ClientId(Vec<u8>),
    Hardware { htype: u8, chaddr: Vec<u8> },
}

impl ClientKey {
    /// One byte string per key, stable for storage: `0x00 + client id` or `htype + chaddr`
    /// prefixed by 0x01.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            ClientKey::ClientId(id) => {
                let mut v = Vec::with_capacity(id.len() + 1);
                v.push(0);
                v.extend_from_slice(id);
                v
            }
            ClientKey::Hardware { htype, chaddr } => {
                let mut v = Vec::with_capacity(chaddr.len() + 2);
                v.push(1);
                v.push(*htype);
                v.extend_from_slice(chaddr);
                v
            }
        }
    }

    pub fn from_bytes(b: &[u8]) -> Option<ClientKey> {
        match b.split_first()? {
            (0, id) => Some(ClientKey::ClientId(id.to_vec())),
            (1, rest) => {
                let (htype, chaddr) = rest.split_first()?;
                Some(ClientKey::Hardware {
                    htype: *htype,
                    chaddr: chaddr.to_vec(),
                })
            }
            _ => None,
        }
    }
}

/// One address's binding. Everything failover needs is here so the store never migrates
/// for it: times are draft-12's (tstp, tsfp, atsfp, cltt) next to the lease's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub state: BindingState,
    /// Who holds (or last held) the address; kept after expiry for address affinity.
    pub client: Option<ClientKey>,
    /// Hardware type and address as last seen (for `dhcpair leases` and failover's chaddr).
    pub htype: u8,
    pub chaddr: Vec<u8>,
    pub hostname: Option<String>,
    /// Name of the pool the address belongs to ("" for a reservation outside any range).
    pub pool: String,
    pub starts: Time,
    pub ends: Time,
    /// Time sent to partner; time sent from partner; acknowledged tsfp; client last transaction time.
    pub tstp: Time,
    pub tsfp: Time,
    pub atsfp: Time,
    pub cltt: Time,
}

impl Lease {
    pub fn is_active_at(&self, now: Time) -> bool {
        self.state == BindingState::Active && self.ends > now
    }
}

/// A failover relationship's state as persisted in the store (server states by their
/// draft-12 wire values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationshipRecord {
    pub name: String,
    pub my_state: u8,
    pub partner_state: u8,
    pub stos: Time,
    pub mclt: u32,
}
