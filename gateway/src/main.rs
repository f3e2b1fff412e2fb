//! `venue`: parse the configuration, open the store, start the media plane, serve HTTP until
//! Ctrl-C or SIGTERM. In cluster mode SIGTERM first drains the node
//! ([`venue_gateway::Drainer::run`]); Ctrl-C and single-node mode stop at once.

use clap::Parser;
use tracing_subscriber::EnvFilter;
use venue_gateway::config::{Cli, Command, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match venue_gateway::raise_nofile_limit() {
        Ok((before, soft, hard)) => {
            tracing::info!(before, soft, hard, "open-file limit (RLIMIT_NOFILE)")
        }
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    let cli = Cli::parse();
    if let Some(Command::Migrate { from, to }) = &cli.command {
        return migrate(from, to).await;
    }
    let config = Config::load(&cli)?;
    let tls = match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(cert), Some(key)) => Some(venue_gateway::http::tls::TlsConfig::from_pem_files(
            cert, key,
        )?),
        _ => None,
    };
    let app = venue_gateway::build_app(&config).await?;
    let drainer = app.drainer();
    let listener = tokio::net::TcpListener::bind(config.http.listen).await?;
    let rtmp = if config.rtmp.enabled {
        venue_gateway::media::rtmp::spawn(app.rtmp.clone(), config.rtmp).await
    } else {
        None
    };
    tracing::info!(
        http = %listener.local_addr()?,
        tls = tls.is_some(),
        media = ?app.services.sfu.addrs().shards,
        rtmp = ?rtmp,
        data_dir = %config.data_dir.display(),
        database = app.services.store.backend_name(),
        "venue listening"
    );
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let signal = shutdown_signal().await;
        if let (Stop::Terminate, Some(drainer)) = (signal, drainer) {
            drainer.run().await;
            let _ = drained_tx.send(());
        }
    };
    let serve = async move {
        match tls {
            Some(tls) => app.serve_tls(listener, tls, shutdown).await,
            None => app.serve(listener, shutdown).await,
        }
    };
    // After a drain the process exits even if clients keep connections open (a page that did
    // not move): they had the drain timeout, plus this grace for in-flight requests.
    let after_drain = async move {
        match drained_rx.await {
            Ok(()) => tokio::time::sleep(std::time::Duration::from_secs(2)).await,
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        served = serve => served?,
        () = after_drain => tracing::info!("drained: closing the connections left"),
    }
    tracing::info!("venue stopped");
    Ok(())
}

/// `venue migrate --from sqlite://… --to postgres://…`: copies, prints rows per table.
async fn migrate(from: &str, to: &str) -> anyhow::Result<()> {
    let report = venue_gateway::store::copy::sqlite_to_postgres(from, to).await?;
    for (table, rows) in &report.tables {
        println!("{table:16} {rows:>10} rows");
    }
    println!("copied {} rows", report.rows());
    Ok(())
}

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Interrupt,
    Terminate,
}

async fn shutdown_signal() -> Stop {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    let stop = tokio::select! {
        _ = ctrl_c => Stop::Interrupt,
        _ = term => Stop::Terminate,
    };
    tracing::info!(signal = ?stop, "shutting down");
    stop
}
