//! `magnetar-learner`: see the library docs for modes; `--help` for every flag and variable.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use magnetar_learner::config::{Args, LearnerConfig};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,librdkafka=warn")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let print_config = args.print_config;
    let config = LearnerConfig::try_from(args)?;
    if print_config {
        println!("{}", serde_json::to_string_pretty(&config.summary())?);
        return Ok(());
    }
    if config.http_addr.ip().is_unspecified() {
        tracing::warn!(addr = %config.http_addr, "listening on every interface");
    }
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.http_addr))?;
    magnetar_learner::run(listener, config, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for sigterm");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!(signal = "ctrl-c", "signal received"),
        _ = terminate => tracing::info!(signal = "sigterm", "signal received"),
    }
}
