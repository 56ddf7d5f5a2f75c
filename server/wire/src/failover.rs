//! The DHCPv4 failover protocol messages of draft-ietf-dhc-failover-12 §6, as ISC dhcpd 4.4.3
//! speaks them (the project's failover protocol notes, cited as "reference §n" throughout the
//! crates: §1.2–1.6, §2, §3).
//!
//! Pure codec: no clock, no sockets. The shell reads bytes from TCP, asks [`frame_len`] whether
//! a whole message has arrived (framing: "incomplete" is `Ok(None)`, "invalid" is an error that
//! ends the connection), then hands exactly that many bytes to [`decode`]. Outgoing messages
//! are built with the [`Message`] constructors and written with [`Message::encode`].
//!
//! One [`Message`] carries one [`Options`] value with one field per option, so a message can
//! never hold two bindings: ISC cannot parse batched BNDUPDs (reference §0 fact 2), and here
//! they cannot be expressed.
//!
//! Decoding accepts and refuses exactly what ISC's `do_a_failover_option` does (reference
//! §1.3), with one deliberate leniency (DDNS, see [`decode`]). Start reading at [`decode`] and
//! [`Message::encode`].

mod codec;

use std::fmt;
use std::net::Ipv4Addr;

use crate::hash::Hba;

pub use codec::{decode, frame_len, DecodeError, Decoded, EncodeError, FrameError};

/// Size of the fixed message header; also the payload offset ISC always sends (reference §0
/// fact 1: draft-12's "8" is an error).
pub const HEADER_LEN: usize = 12;
/// ISC's `DHCP_FAILOVER_MAX_MESSAGE_SIZE`: a longer message is a protocol error.
pub const MAX_MESSAGE_LEN: usize = 2048;
/// TCP port ISC uses by default, both to listen and to connect (reference §1.1).
pub const DEFAULT_PORT: u16 = 647;
/// server-flags (option 23) bit: the sender is in its startup phase (draft-12 §5.6).
pub const SERVER_FLAG_STARTUP: u8 = 0x01;
/// IP-flags (option 12) bit: the address is reserved.
pub const IP_FLAG_RESERVED: u16 = 0x0001;
/// IP-flags (option 12) bit: the address was given to a BOOTP client.
pub const IP_FLAG_BOOTP: u16 = 0x0002;
/// ISC's `MAX_TIME`, its "infinite" lease time; never send 0xFFFFFFFF (reference §3.1).
pub const INFINITE_TIME: u32 = 0x7FFF_FFFF;

/// Message type, header byte 2 (draft-12 §6.1). Note 7 = UPDREQALL and 9 = UPDREQ; Wireshark
/// 4.0 labels them the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    PoolReq = 1,
    PoolResp = 2,
    BndUpd = 3,
    BndAck = 4,
    Connect = 5,
    ConnectAck = 6,
    UpdReqAll = 7,
    UpdDone = 8,
    UpdReq = 9,
    State = 10,
    Contact = 11,
    Disconnect = 12,
}

impl MessageType {
    /// Every message type, in wire order.
    pub const ALL: [MessageType; 12] = [
        MessageType::PoolReq,
        MessageType::PoolResp,
        MessageType::BndUpd,
        MessageType::BndAck,
        MessageType::Connect,
        MessageType::ConnectAck,
        MessageType::UpdReqAll,
        MessageType::UpdDone,
        MessageType::UpdReq,
        MessageType::State,
        MessageType::Contact,
        MessageType::Disconnect,
    ];

    pub fn from_wire(v: u8) -> Option<MessageType> {
        MessageType::ALL
            .get(usize::from(v).checked_sub(1)?)
            .copied()
    }

    pub fn to_wire(self) -> u8 {
        self as u8
    }

    /// The draft-12 name, also the [`Display`](fmt::Display) form: "BNDUPD", "UPDREQALL", ….
    pub fn draft_name(self) -> &'static str {
        match self {
            MessageType::PoolReq => "POOLREQ",
            MessageType::PoolResp => "POOLRESP",
            MessageType::BndUpd => "BNDUPD",
            MessageType::BndAck => "BNDACK",
            MessageType::Connect => "CONNECT",
            MessageType::ConnectAck => "CONNECTACK",
            MessageType::UpdReqAll => "UPDREQALL",
            MessageType::UpdDone => "UPDDONE",
            MessageType::UpdReq => "UPDREQ",
            MessageType::State => "STATE",
            MessageType::Contact => "CONTACT",
            MessageType::Disconnect => "DISCONNECT",
        }
    }

    /// ISC's name for the message ("bind-update", "update-request-all", …).
    pub fn isc_name(self) -> &'static str {
        match self {
            MessageType::PoolReq => "pool-request",
            MessageType::PoolResp => "pool-response",
            MessageType::BndUpd => "bind-update",
            MessageType::BndAck => "bind-ack",
            MessageType::Connect => "connect",
            MessageType::ConnectAck => "connect-ack",
            MessageType::UpdReqAll => "update-request-all",
            MessageType::UpdDone => "update-done",
            MessageType::UpdReq => "update-request",
            MessageType::State => "state",
            MessageType::Contact => "contact",
            MessageType::Disconnect => "disconnect",
        }
    }

    /// A stable lower-case label for metrics ("bndupd", …).
    pub fn label(self) -> &'static str {
        match self {
            MessageType::PoolReq => "poolreq",
            MessageType::PoolResp => "poolresp",
            MessageType::BndUpd => "bndupd",
            MessageType::BndAck => "bndack",
            MessageType::Connect => "connect",
            MessageType::ConnectAck => "connectack",
            MessageType::UpdReqAll => "updreqall",
            MessageType::UpdDone => "upddone",
            MessageType::UpdReq => "updreq",
            MessageType::State => "state",
            MessageType::Contact => "contact",
            MessageType::Disconnect => "disconnect",
        }
    }

    /// The option codes this message type carries, in the order ISC writes them (reference
    /// §1.6, §2, §3.2; ISC's `dhcp_failover_send_*`). On receipt every other option is skipped,
    /// as ISC's `fto_allowed` table does; [`Message::encode`] writes only these.
    ///
    /// DDNS (9) is absent although ISC's table lists it for BNDUPD/BNDACK: it is never sent
    /// (reference §0 fact 3) and skipped on receipt.
    pub fn carried_options(self) -> &'static [u16] {
        use code::*;
        match self {
            MessageType::PoolResp => &[ADDRESSES_TRANSFERRED],
            MessageType::BndUpd => &[
                ASSIGNED_IP_ADDRESS,
                BINDING_STATUS,
                CLIENT_IDENTIFIER,
                CHADDR,
                LEASE_EXPIRY,
                POTENTIAL_EXPIRY,
                STOS,
                CLTT,
                IP_FLAGS,
                REQUEST_OPTIONS,
                REPLY_OPTIONS,
            ],
            MessageType::BndAck => &[
                ASSIGNED_IP_ADDRESS,
                BINDING_STATUS,
                CLIENT_IDENTIFIER,
                CHADDR,
                LEASE_EXPIRY,
                POTENTIAL_EXPIRY,
                STOS,
                CLTT,
                IP_FLAGS,
                REJECT_REASON,
                MESSAGE,
                REQUEST_OPTIONS,
                REPLY_OPTIONS,
            ],
            MessageType::Connect => &[
                RELATIONSHIP_NAME,
                MAX_UNACKED,
                RECEIVE_TIMER,
                VENDOR_CLASS,
                PROTOCOL_VERSION,
                TLS_REQUEST,
                MCLT,
                HBA,
            ],
            MessageType::ConnectAck => &[
                RELATIONSHIP_NAME,
                MAX_UNACKED,
                RECEIVE_TIMER,
                VENDOR_CLASS,
                PROTOCOL_VERSION,
                TLS_REPLY,
                REJECT_REASON,
                MESSAGE,
            ],
            MessageType::State => &[SERVER_STATE, SERVER_FLAGS, STOS],
            MessageType::Disconnect => &[REJECT_REASON, MESSAGE],
            MessageType::PoolReq
            | MessageType::UpdReqAll
            | MessageType::UpdDone
            | MessageType::UpdReq
            | MessageType::Contact => &[],
        }
    }

    /// Whether this message type carries option `code` (see [`carried_options`](Self::carried_options)).
    pub fn carries(self, code: u16) -> bool {
        self.carried_options().contains(&code)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.draft_name())
    }
}

/// Option codes of draft-12 §6.2 (1..=29, alphabetical in the draft; ISC 3.1+ and Wireshark
/// use the same numbers).
pub mod code {
    pub const ADDRESSES_TRANSFERRED: u16 = 1;
    pub const ASSIGNED_IP_ADDRESS: u16 = 2;
    pub const BINDING_STATUS: u16 = 3;
    pub const CLIENT_IDENTIFIER: u16 = 4;
    pub const CHADDR: u16 = 5;
    pub const CLTT: u16 = 6;
    pub const REPLY_OPTIONS: u16 = 7;
    pub const REQUEST_OPTIONS: u16 = 8;
    pub const DDNS: u16 = 9;
    pub const DELAYED_SERVICE: u16 = 10;
    pub const HBA: u16 = 11;
    pub const IP_FLAGS: u16 = 12;
    pub const LEASE_EXPIRY: u16 = 13;
    pub const MAX_UNACKED: u16 = 14;
    pub const MCLT: u16 = 15;
    pub const MESSAGE: u16 = 16;
    pub const MESSAGE_DIGEST: u16 = 17;
    pub const POTENTIAL_EXPIRY: u16 = 18;
    pub const RECEIVE_TIMER: u16 = 19;
    pub const PROTOCOL_VERSION: u16 = 20;
    pub const REJECT_REASON: u16 = 21;
    pub const RELATIONSHIP_NAME: u16 = 22;
    pub const SERVER_FLAGS: u16 = 23;
    pub const SERVER_STATE: u16 = 24;
    pub const STOS: u16 = 25;
    pub const TLS_REPLY: u16 = 26;
    pub const TLS_REQUEST: u16 = 27;
    pub const VENDOR_CLASS: u16 = 28;
    pub const VENDOR_OPTIONS: u16 = 29;
    /// The highest code ISC knows; above it an option is skipped.
    pub const MAX: u16 = VENDOR_OPTIONS;
}

/// ISC's name for an option code, as in its log lines ("duplicate option assigned-IP-address").
pub fn option_name(code: u16) -> &'static str {
    match code {
        code::ADDRESSES_TRANSFERRED => "addresses-transferred",
        code::ASSIGNED_IP_ADDRESS => "assigned-IP-address",
        code::BINDING_STATUS => "binding-status",
        code::CLIENT_IDENTIFIER => "client-identifier",
        code::CHADDR => "client-hardware-address",
        code::CLTT => "client-last-transaction-time",
        code::REPLY_OPTIONS => "client-reply-options",
        code::REQUEST_OPTIONS => "client-request-options",
        code::DDNS => "DDNS",
        code::DELAYED_SERVICE => "delayed-service",
        code::HBA => "hash-bucket-assignment",
        code::IP_FLAGS => "IP-flags",
        code::LEASE_EXPIRY => "lease-expiration-time",
        code::MAX_UNACKED => "max-unacked-bndupd",
        code::MCLT => "MCLT",
        code::MESSAGE => "message",
        code::MESSAGE_DIGEST => "message-digest",
        code::POTENTIAL_EXPIRY => "potential-expiration-time",
        code::RECEIVE_TIMER => "receive-timer",
        code::PROTOCOL_VERSION => "protocol-version",
        code::REJECT_REASON => "reject-reason",
        code::RELATIONSHIP_NAME => "relationship-name",
        code::SERVER_FLAGS => "server-flags",
        code::SERVER_STATE => "server-state",
        code::STOS => "start-time-of-state",
        code::TLS_REPLY => "TLS-reply",
        code::TLS_REQUEST => "TLS-request",
        code::VENDOR_CLASS => "vendor-class-identifier",
        code::VENDOR_OPTIONS => "vendor-specific-options",
        _ => "unknown",
    }
}

/// A failover server state with its wire value (option 24; reference §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ServerState {
    /// Not in the draft; ISC's "unknown-state".
    Unknown = 0,
    Startup = 1,
    Normal = 2,
    CommunicationsInterrupted = 3,
    PartnerDown = 4,
    PotentialConflict = 5,
    Recover = 6,
    Paused = 7,
    Shutdown = 8,
    RecoverDone = 9,
    ResolutionInterrupted = 10,
    ConflictDone = 11,
    /// Draft-12 gives it no number; ISC uses 254 (reference §0 fact 6).
    RecoverWait = 254,
}

impl ServerState {
    /// The values ISC accepts: 0..=11 and 254. Anything else makes ISC log `Invalid state: N`
    /// and move itself to SHUTDOWN.
    pub fn from_wire(v: u8) -> Option<ServerState> {
        Some(match v {
            0 => ServerState::Unknown,
            1 => ServerState::Startup,
            2 => ServerState::Normal,
            3 => ServerState::CommunicationsInterrupted,
            4 => ServerState::PartnerDown,
            5 => ServerState::PotentialConflict,
            6 => ServerState::Recover,
            7 => ServerState::Paused,
            8 => ServerState::Shutdown,
            9 => ServerState::RecoverDone,
            10 => ServerState::ResolutionInterrupted,
            11 => ServerState::ConflictDone,
            254 => ServerState::RecoverWait,
            _ => return None,
        })
    }

    pub fn to_wire(self) -> u8 {
        self as u8
    }

    /// ISC's log name ("normal", "communications-interrupted", "recover-wait", …); also the
    /// [`Display`](fmt::Display) form and a stable metric label.
    pub fn isc_name(self) -> &'static str {
        match self {
            ServerState::Unknown => "unknown-state",
            ServerState::Startup => "startup",
            ServerState::Normal => "normal",
            ServerState::CommunicationsInterrupted => "communications-interrupted",
            ServerState::PartnerDown => "partner-down",
            ServerState::PotentialConflict => "potential-conflict",
            ServerState::Recover => "recover",
            ServerState::Paused => "paused",
            ServerState::Shutdown => "shutdown",
            ServerState::RecoverDone => "recover-done",
            ServerState::ResolutionInterrupted => "resolution-interrupted",
            ServerState::ConflictDone => "conflict-done",
            ServerState::RecoverWait => "recover-wait",
        }
    }
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.isc_name())
    }
}

/// Binding status, option 3 (draft-12 §5.4, reference §4.1). 0 and 8..=255 are invalid and
/// must never be sent to ISC (reference §0 fact 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BindingStatus {
    Free = 1,
    Active = 2,
    Expired = 3,
    Released = 4,
    Abandoned = 5,
    Reset = 6,
    Backup = 7,
}

impl BindingStatus {
    pub fn from_wire(v: u8) -> Option<BindingStatus> {
        Some(match v {
            1 => BindingStatus::Free,
            2 => BindingStatus::Active,
            3 => BindingStatus::Expired,
            4 => BindingStatus::Released,
            5 => BindingStatus::Abandoned,
            6 => BindingStatus::Reset,
            7 => BindingStatus::Backup,
            _ => return None,
        })
    }

    pub fn to_wire(self) -> u8 {
        self as u8
    }

    /// ISC's name, as in its lease file and logs ("free", "active", …).
    pub fn isc_name(self) -> &'static str {
        match self {
            BindingStatus::Free => "free",
            BindingStatus::Active => "active",
            BindingStatus::Expired => "expired",
            BindingStatus::Released => "released",
            BindingStatus::Abandoned => "abandoned",
            BindingStatus::Reset => "reset",
            BindingStatus::Backup => "backup",
        }
    }
}

impl fmt::Display for BindingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.isc_name())
    }
}

/// Reject reason, option 21 (draft-12 §6.2.21, reference §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    IllegalIpAddr,
    FatalConflict,
    MissingBindInfo,
    TimeMismatch,
    InvalidMclt,
    /// "Unknown/misc": ISC's default reason for refused BNDUPDs.
    MiscReject,
    DuplicateConnection,
    InvalidPartner,
    TlsUnsupported,
    TlsUnconfigured,
    TlsRequired,
    DigestUnsupported,
    DigestUnconfigured,
    VersionMismatch,
    OutdatedBindInfo,
    LessCriticalBindInfo,
    NoTraffic,
    HbaConflict,
    IpNotReserved,
    DigestFailure,
    MissingDigest,
    Unknown,
    /// Any other code. [`from_wire`](Self::from_wire) never produces `Other` for a known code.
    Other(u8),
}

impl RejectReason {
    pub fn from_wire(v: u8) -> RejectReason {
        use RejectReason::*;
        match v {
            1 => IllegalIpAddr,
            2 => FatalConflict,
            3 => MissingBindInfo,
            4 => TimeMismatch,
            5 => InvalidMclt,
            6 => MiscReject,
            7 => DuplicateConnection,
            8 => InvalidPartner,
            9 => TlsUnsupported,
            10 => TlsUnconfigured,
            11 => TlsRequired,
            12 => DigestUnsupported,
            13 => DigestUnconfigured,
            14 => VersionMismatch,
            15 => OutdatedBindInfo,
            16 => LessCriticalBindInfo,
            17 => NoTraffic,
            18 => HbaConflict,
            19 => IpNotReserved,
            20 => DigestFailure,
            21 => MissingDigest,
            254 => Unknown,
            other => Other(other),
        }
    }

    pub fn to_wire(self) -> u8 {
        use RejectReason::*;
        match self {
            IllegalIpAddr => 1,
            FatalConflict => 2,
            MissingBindInfo => 3,
            TimeMismatch => 4,
            InvalidMclt => 5,
            MiscReject => 6,
            DuplicateConnection => 7,
            InvalidPartner => 8,
            TlsUnsupported => 9,
            TlsUnconfigured => 10,
            TlsRequired => 11,
            DigestUnsupported => 12,
            DigestUnconfigured => 13,
            VersionMismatch => 14,
            OutdatedBindInfo => 15,
            LessCriticalBindInfo => 16,
            NoTraffic => 17,
            HbaConflict => 18,
            IpNotReserved => 19,
            DigestFailure => 20,
            MissingDigest => 21,
            Unknown => 254,
            Other(v) => v,
        }
    }

    /// A stable snake-case label for metrics.
    pub fn label(self) -> &'static str {
        use RejectReason::*;
        match self {
            IllegalIpAddr => "illegal_ip_addr",
            FatalConflict => "fatal_conflict",
            MissingBindInfo => "missing_bind_info",
            TimeMismatch => "time_mismatch",
            InvalidMclt => "invalid_mclt",
            MiscReject => "misc_reject",
            DuplicateConnection => "duplicate_connection",
            InvalidPartner => "invalid_partner",
            TlsUnsupported => "tls_unsupported",
            TlsUnconfigured => "tls_unconfigured",
            TlsRequired => "tls_required",
            DigestUnsupported => "digest_unsupported",
            DigestUnconfigured => "digest_unconfigured",
            VersionMismatch => "version_mismatch",
            OutdatedBindInfo => "outdated_bind_info",
            LessCriticalBindInfo => "less_critical_bind_info",
            NoTraffic => "no_traffic",
            HbaConflict => "hba_conflict",
            IpNotReserved => "ip_not_reserved",
            DigestFailure => "digest_failure",
            MissingDigest => "missing_digest",
            Unknown => "unknown",
            Other(_) => "other",
        }
    }

    /// The text ISC prints for the reason (and sends as the message option when it has no
    /// better one).
    fn text(self) -> Option<&'static str> {
        use RejectReason::*;
        Some(match self {
            IllegalIpAddr => "Illegal IP address (not part of any address pool).",
            FatalConflict => "Fatal conflict exists: address in use by other client.",
            MissingBindInfo => "Missing binding information.",
            TimeMismatch => "Connection rejected, time mismatch too great.",
            InvalidMclt => "Connection rejected, invalid MCLT.",
            MiscReject => "Connection rejected, unknown reason.",
            DuplicateConnection => "Connection rejected, duplicate connection.",
            InvalidPartner => "Connection rejected, invalid failover partner.",
            TlsUnsupported => "TLS not supported.",
            TlsUnconfigured => "TLS supported but not configured.",
            TlsRequired => "TLS required but not supported by partner.",
            DigestUnsupported => "Message digest not supported.",
            DigestUnconfigured => "Message digest not configured.",
            VersionMismatch => "Protocol version mismatch.",
            OutdatedBindInfo => "Outdated binding information.",
            LessCriticalBindInfo => "Less critical binding information.",
            NoTraffic => "No traffic within sufficient time.",
            HbaConflict => "Hash bucket assignment conflict.",
            IpNotReserved => "IP not reserved on this server.",
            DigestFailure => "Message digest failed to compare.",
            MissingDigest => "Missing message digest.",
            Unknown => "Unknown Error.",
            Other(_) => return None,
        })
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text() {
            Some(t) => f.write_str(t),
            None => write!(
                f,
                "Undefined-{}: This reason code is not defined in the protocol standard.",
                self.to_wire()
            ),
        }
    }
}

/// The options of one message: one field per draft-12 option that some message type carries
/// (see [`MessageType::carried_options`]). Values are raw wire values; the engine validates
/// meaning (binding-status 1..=7, server-state, HBA length, …).
///
/// Not represented, because ISC never sends them and skips them on receipt: DDNS (9),
/// delayed-service-parameter (10), message-digest (17), vendor-specific-options (29).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// 1, POOLRESP.
    pub addresses_transferred: Option<u32>,
    /// 2, the first option of a binding.
    pub assigned_ip: Option<Ipv4Addr>,
    /// 3, raw; see [`BindingStatus::from_wire`].
    pub binding_status: Option<u8>,
    /// 4, the whole DHCP option 61 value, type byte included.
    pub client_id: Option<Vec<u8>>,
    /// 5, htype byte first, then the hardware address.
    pub chaddr: Option<Vec<u8>>,
    /// 6, client last transaction time.
    pub cltt: Option<u32>,
    /// 7, client-reply-options (ISC never sends or uses it).
    pub reply_options: Option<Vec<u8>>,
    /// 8, client-request-options (ISC never sends or uses it).
    pub request_options: Option<Vec<u8>>,
    /// 11, raw so that a wrong length can be rejected with reason 18; see [`Hba::from_bytes`].
    pub hba: Option<Vec<u8>>,
    /// 12, 16 bits ([`IP_FLAG_RESERVED`], [`IP_FLAG_BOOTP`]).
    pub ip_flags: Option<u16>,
    /// 13.
    pub lease_expiry: Option<u32>,
    /// 14.
    pub max_unacked: Option<u32>,
    /// 15.
    pub mclt: Option<u32>,
    /// 16, text without NUL; decoded lossily from UTF-8.
    pub message: Option<String>,
    /// 18.
    pub potential_expiry: Option<u32>,
    /// 19.
    pub receive_timer: Option<u32>,
    /// 20.
    pub protocol_version: Option<u8>,
    /// 21, raw; see [`RejectReason::from_wire`].
    pub reject_reason: Option<u8>,
    /// 22, compared byte-exact.
    pub relationship_name: Option<Vec<u8>>,
    /// 23 ([`SERVER_FLAG_STARTUP`]).
    pub server_flags: Option<u8>,
    /// 24, raw; see [`ServerState::from_wire`].
    pub server_state: Option<u8>,
    /// 25, start time of state (in BNDUPD, ISC sends the lease's start time here).
    pub stos: Option<u32>,
    /// 26.
    pub tls_reply: Option<u8>,
    /// 27.
    pub tls_request: Option<u8>,
    /// 28.
    pub vendor_class: Option<Vec<u8>>,
}

impl Options {
    /// Drop every option that `kind` does not carry: what an ISC receiver would keep, and
    /// what [`Message::encode`] writes.
    pub fn retain_carried(&mut self, kind: MessageType) {
        for c in 1..=code::MAX {
            if !kind.carries(c) {
                self.clear(c);
            }
        }
    }

    /// The reject reason, if present.
    pub fn reject(&self) -> Option<RejectReason> {
        self.reject_reason.map(RejectReason::from_wire)
    }
}

/// The parameters both CONNECT and CONNECTACK carry (reference §1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake<'a> {
    /// The `failover peer "NAME"` string, byte-exact, no NUL.
    pub relationship_name: &'a [u8],
    /// How many unacked BNDUPDs this server is willing to receive. Always send it: without it
    /// ISC never sends a BNDUPD (reference §0 fact 9).
    pub max_unacked: u32,
    /// This server's receive timer in seconds (at least 3; reference §1.7).
    pub receive_timer: u32,
    /// Free text; ISC sends `isc-4.4.3-P1` and never checks it.
    pub vendor_class: &'a [u8],
}

/// One binding as a BNDUPD carries it (reference §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    pub assigned_ip: Ipv4Addr,
    pub status: BindingStatus,
    /// The lease's uid (DHCP option 61 value, type byte included), if any.
    pub client_id: Option<&'a [u8]>,
    /// htype byte then the hardware address, if any.
    pub chaddr: Option<&'a [u8]>,
    /// The lease's `ends` (0 for a virgin lease).
    pub lease_expiry: u32,
    /// The potential expiry the sender wants the partner to hold (ISC's `tstp`).
    pub potential_expiry: u32,
    /// ISC sends the lease's `starts` as start-time-of-state.
    pub stos: u32,
    /// Client last transaction time; not sent when 0.
    pub cltt: u32,
    /// IP-flags; not sent when 0.
    pub ip_flags: u16,
}

/// One failover message (draft-12 §6.1). The header's length and payload offset are not
/// stored: [`Message::encode`] computes the length and always writes offset 12.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: MessageType,
    /// The sender's clock, UNIX seconds.
    pub time: u32,
    pub xid: u32,
    pub options: Options,
}

impl Message {
    /// A message with no options: POOLREQ, UPDREQ, UPDREQALL, UPDDONE, CONTACT.
    pub fn new(kind: MessageType, time: u32, xid: u32) -> Message {
        Message {
            kind,
            time,
            xid,
            options: Options::default(),
        }
    }

    /// CONTACT, the keepalive.
    pub fn contact(time: u32, xid: u32) -> Message {
        Message::new(MessageType::Contact, time, xid)
    }

    /// CONNECT as ISC sends it: name, max-unacked, receive-timer, vendor class,
    /// protocol-version 1, TLS-request 0, MCLT, HBA (in ISC's polarity).
    pub fn connect(time: u32, xid: u32, hs: &Handshake<'_>, mclt: u32, hba: &Hba) -> Message {
        let mut m = Message::new(MessageType::Connect, time, xid);
        m.set_handshake(hs);
        m.options.tls_request = Some(0);
        m.options.mclt = Some(mclt);
        m.options.hba = Some(hba.as_bytes().to_vec());
        m
    }

    /// An accepting CONNECTACK as ISC sends it (with TLS-reply 0, which ISC adds when the
    /// CONNECT had TLS-request, as ISC's own CONNECT always does). Xid: the CONNECT's.
    pub fn connect_ack(time: u32, xid: u32, hs: &Handshake<'_>) -> Message {
        let mut m = Message::new(MessageType::ConnectAck, time, xid);
        m.set_handshake(hs);
        m.options.tls_reply = Some(0);
        m
    }

    /// STATE: server-state, server-flags, start-time-of-state.
    pub fn state(time: u32, xid: u32, state: ServerState, flags: u8, stos: u32) -> Message {
        let mut m = Message::new(MessageType::State, time, xid);
        m.options.server_state = Some(state.to_wire());
        m.options.server_flags = Some(flags);
        m.options.stos = Some(stos);
        m
    }

    /// BNDUPD for one binding, with ISC's conventions: lease-expiry, potential-expiry and
    /// start-time-of-state always, CLTT and IP-flags only when non-zero. ISC never uses xid 0
    /// for a BNDUPD (reference §1.5); neither should the caller.
    pub fn bndupd(time: u32, xid: u32, b: &Binding<'_>) -> Message {
        let mut m = Message::new(MessageType::BndUpd, time, xid);
        let o = &mut m.options;
        o.assigned_ip = Some(b.assigned_ip);
        o.binding_status = Some(b.status.to_wire());
        o.client_id = b.client_id.map(<[u8]>::to_vec);
        o.chaddr = b.chaddr.map(<[u8]>::to_vec);
        o.lease_expiry = Some(b.lease_expiry);
        o.potential_expiry = Some(b.potential_expiry);
        o.stos = Some(b.stos);
        o.cltt = (b.cltt != 0).then_some(b.cltt);
        o.ip_flags = (b.ip_flags != 0).then_some(b.ip_flags);
        m
    }

    /// BNDACK as ISC sends it: the assigned address only (reference §8.9). Xid: the BNDUPD's.
    /// Add [`with_reject`](Self::with_reject) to refuse the update.
    pub fn bndack(time: u32, xid: u32, assigned_ip: Ipv4Addr) -> Message {
        let mut m = Message::new(MessageType::BndAck, time, xid);
        m.options.assigned_ip = Some(assigned_ip);
        m
    }

    /// POOLRESP. Xid: the POOLREQ's.
    pub fn poolresp(time: u32, xid: u32, addresses_transferred: u32) -> Message {
        let mut m = Message::new(MessageType::PoolResp, time, xid);
        m.options.addresses_transferred = Some(addresses_transferred);
        m
    }

    /// DISCONNECT with a reason and text.
    pub fn disconnect(time: u32, xid: u32, reason: RejectReason, text: &str) -> Message {
        Message::new(MessageType::Disconnect, time, xid).with_reject(reason, text)
    }

    /// Add reject-reason and message (for BNDACK, CONNECTACK and DISCONNECT). An empty `text`
    /// is replaced with ISC's text for the reason.
    pub fn with_reject(mut self, reason: RejectReason, text: &str) -> Message {
        self.options.reject_reason = Some(reason.to_wire());
        self.options.message = Some(if text.is_empty() {
            reason.to_string()
        } else {
            text.to_owned()
        });
        self
    }

    fn set_handshake(&mut self, hs: &Handshake<'_>) {
        let o = &mut self.options;
        o.relationship_name = Some(hs.relationship_name.to_vec());
        o.max_unacked = Some(hs.max_unacked);
        o.receive_timer = Some(hs.receive_timer);
        o.vendor_class = Some(hs.vendor_class.to_vec());
        o.protocol_version = Some(1);
    }
}
