//! Runs the TURN server alone, for interop checks and load tests:
//!
//! ```sh
//! TURN_SECRET=0123456789abcdef TURN_ALLOWED=127.0.0.1:3480 \
//!   cargo run --release -p venue-turn --example serve -- 127.0.0.1:3478
//! ```
//!
//! `TURN_SECRET` (REST secret, ≥ 16 chars), `TURN_ALLOWED` (comma-separated allow-listed peers,
//! port 0 = any port), `TURN_RELAY_IP` (default 127.0.0.1), `TURN_REALM` (default `venue`),
//! `TURN_BANDWIDTH_BPS` (default 5000000, 0 = unlimited), `TURN_USER_QUOTA` (allocations per
//! credential id, default 5), `TURN_TLS_LISTEN` + `TURN_TLS_CERT` + `TURN_TLS_KEY` (TURN over
//! TLS on that address with those PEM files; off by default). Listens on UDP and TCP at the
//! address given (default 127.0.0.1:3478). Prints the counters every 5 s.

use std::net::SocketAddr;
use std::time::Duration;

use venue_turn::{TurnConfig, TurnSecret, TurnServer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let listen: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3478".into())
        .parse()?;
    let env = |k: &str| std::env::var(k).ok();
    let config = TurnConfig {
        enabled: true,
        udp_listen: Some(listen),
        tcp_listen: Some(listen),
        relay_ip: env("TURN_RELAY_IP")
            .unwrap_or_else(|| "127.0.0.1".into())
            .parse()?,
        realm: env("TURN_REALM").unwrap_or_else(|| "venue".into()),
        secret: TurnSecret::new(env("TURN_SECRET").unwrap_or_default()),
        allowed_peers: env("TURN_ALLOWED")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?,
        bandwidth_bps: env("TURN_BANDWIDTH_BPS").map_or(Ok(5_000_000), |v| v.parse())?,
        max_allocations_per_user: env("TURN_USER_QUOTA").map_or(Ok(5), |v| v.parse())?,
        tls_listen: env("TURN_TLS_LISTEN").map(|v| v.parse()).transpose()?,
        tls_cert: env("TURN_TLS_CERT").map(Into::into),
        tls_key: env("TURN_TLS_KEY").map(Into::into),
        ..TurnConfig::default()
    };
    let server = TurnServer::start(config.validate()?).await?;
    println!(
        "listening udp {:?} tcp {:?} tls {:?}",
        server.udp_addr(),
        server.tcp_addr(),
        server.tls_addr()
    );
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        println!("{:?}", server.stats().await);
    }
}
