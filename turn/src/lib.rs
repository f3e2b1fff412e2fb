//! Venue's TURN server: RFC 8656 relays for clients on UDP and TCP 3478 and TLS 5349, with
//! time-limited TURN REST credentials (draft-uberti-behave-turn-rest-00), and no open relay.
//!
//! # Contract
//! - [`TurnCore`] is sans-IO: [`TurnCore::handle`]`(now, transport, from, bytes)` takes one
//!   client datagram or TCP frame and returns [`Output`]s (send to a client, send from a relay
//!   to a peer, bind or release a relay socket); [`TurnCore::handle_peer`] takes what a relay
//!   socket received. It never reads the clock or touches a socket.
//! - [`shell`] is the thin tokio IO shell: UDP, TCP and TLS listeners (RFC 8656 §12.5 framing:
//!   STUN messages and ChannelData padded to 4 bytes, one code path for TCP and TLS), one UDP
//!   relay socket per allocation, one actor task owning the core (no locks).
//! - TURN over TLS (RFC 8656 §3.1, `turns:` URIs of RFC 7065) when `[turn] tls_listen`,
//!   `tls_cert` and `tls_key` are set ([`tls`]): rustls with the aws-lc-rs provider, TLS 1.2
//!   and 1.3, ALPN `stun.turn` echoed when offered (RFC 7443) and never required; a handshake
//!   must finish within 10 s; each message is its own TLS record (clients such as coturn's
//!   `turnutils_uclient` take one record for one message), and what is queued leaves in one
//!   write; TCP and TLS connections share `max_tcp_connections`. Failed
//!   handshakes and connections refused at the bound are counted in [`Stats`]. TLS is a
//!   distinct transport of the 5-tuple ([`Transport::Tls`]).
//! - Implemented: Binding (RFC 8489), Allocate (§7; UDP relays only, other
//!   REQUESTED-TRANSPORT → 442), Refresh (§8; default 600 s, at most 3600 s, 0 deletes),
//!   CreatePermission (§10), ChannelBind (§12, 0x4000–0x4FFF), Send/Data indications (§11),
//!   ChannelData both ways (§12.4), XOR-RELAYED-ADDRESS, XOR-MAPPED-ADDRESS, LIFETIME, the
//!   long-term credential mechanism (RFC 8489 §9.2: REALM, stateless NONCE with expiry → 438,
//!   MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 when the client uses it, FINGERPRINT),
//!   401 with REALM+NONCE, 437 Allocation Mismatch, 420 with UNKNOWN-ATTRIBUTES, 403 for
//!   refused peers, 486 per-user allocation quota.
//! - Credentials: username `"<expiry unix s>:<id>"`, password `base64(HMAC-SHA1(secret,
//!   username))` ([`rest_credentials`]); expired or forged → 401. `id` is the quota key.
//! - No open relay ([`PeerPolicy`]): only allow-listed peers (the SFU's media sockets) by
//!   default; private, loopback, link-local, CGNAT, multicast and metadata ranges are refused
//!   unless listed; public peers only with `allow_public_peers`.
//! - Bad input is dropped and counted ([`Stats`]), never a panic.
//!
//! # Why our own STUN codec
//! webrtc-rs `turn` 0.17 is UDP-only, async throughout (no sans-IO core to test on virtual
//! time) and owns its sockets; `stun_codec`/`bytecodec` and `stun-rs` parse into owned,
//! allocated attribute vectors per message, which the relay path (every ChannelData / Send
//! indication) cannot afford and which give us no say over malformed-input accounting. The
//! STUN wire format is small and fixed (RFC 8489 §5, §14), so [`stun`] parses in place with no
//! allocation and is checked against the RFC 5769 test vectors and fuzzed. Cryptography comes
//! from RustCrypto (`hmac`, `sha1`, `sha2`, `md-5`) and `crc32fast`.
//!
//! # Performance
//! The core handles a 1200-byte ChannelData or Send indication in ~70–110 ns
//! (`cargo bench -p venue-turn --bench relay`); the whole server relays 150,000–190,000
//! packets per server CPU-second over UDP (coturn 4.6.1: 105,000–125,000), ~120,000 over TCP
//! (coturn ~83,000) and ~105,000 over TLS (coturn ~68,000) under the same `turnutils_uclient`
//! load, without loss (`scripts/bench-turn`, BENCHMARKS.md "TURN relaying"). One actor owns
//! the core and reads the UDP listener itself in batches; datagrams from relay sockets (one
//! reader task per allocation) and TCP/TLS frames are still copied into a `Vec` once on their
//! way in, and the core allocates its outputs.
//!
//! # Not here (yet)
//! TURN over DTLS, TCP relays (RFC 6062), PASSWORD-ALGORITHM SHA-256 and USERHASH
//! (RFC 8489 §9.2: only the MD5 long-term key), EVEN-PORT/RESERVATION-TOKEN (refused with
//! 508), the ICMP attribute, channel numbers above 0x4FFF (RFC 5766 clients that pick them
//! get 400, per RFC 8656 §12), multiple relay shards, reloading the TLS certificate without a
//! restart, TLS client certificates, and `turns:` URIs derived by the gateway from
//! `tls_listen` (it needs a host name that matches the certificate; set `urls`).

// No panics on input: `unwrap`/`expect` are errors outside tests (DESIGN §4). No unsafe code.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
pub mod config;
pub mod core;
pub mod fuzzing;
pub mod policy;
pub mod shell;
pub mod stun;
pub mod tls;

pub use crate::auth::rest_credentials;
pub use crate::config::{TurnConfig, TurnSecret};
pub use crate::core::{CoreConfig, FiveTuple, Output, Stats, Transport, TurnCore};
pub use crate::policy::PeerPolicy;
pub use crate::shell::{ShellConfig, TlsListen, TurnServer};
pub use crate::tls::TlsConfig;
