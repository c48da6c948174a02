//! hubsim: an offline Hugging Face Hub for tests and demos.
//!
//! `hubsim serve` runs the Hub API on one port, xet-core's own CAS `LocalServer` on a second and
//! a byte server (target of xet resolve redirects) on a third. `hubsim seed` fills it from a
//! local directory through the same CAS upload path real clients use.

// Route helpers return the error `Response` itself; it is large, but this is a test server.
#![allow(clippy::result_large_err)]

mod buckets;
mod bytes_server;
mod commits;
mod routes;
mod seed;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use xet_client::cas_client::{
    DeletionControlableClient, DirectAccessClient, LocalClient, LocalServer, LocalServerConfig, MemoryClient,
};
use xet_runtime::core::XetContext;

#[derive(Parser)]
#[command(name = "hubsim", about = "An offline Hugging Face Hub (Hub API + xet CAS) on loopback")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the Hub; prints `endpoint=http://HOST:PORT` once it accepts requests.
    Serve {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Keep state (repos, blobs, CAS) in this directory; in memory when absent.
        #[arg(long)]
        data: Option<PathBuf>,
        /// A user and their token, `NAME:TOKEN` (repeatable).
        #[arg(long = "user")]
        users: Vec<String>,
        /// Lifetime of issued xet tokens.
        #[arg(long, default_value_t = 3600)]
        xet_token_ttl_secs: u64,
    },
    /// Create or update a repo from a local directory.
    Seed {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        token: Option<String>,
        #[command(subcommand)]
        target: seed::Target,
    },
    /// Download one xet file straight from the CAS with xet-core (no mount) and print the
    /// throughput: the reference the mount's read path is measured against.
    CasDownload {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        hash: String,
        #[arg(long)]
        size: u64,
        /// Use xet-core's disk chunk cache in this directory, as a mount does by default.
        #[arg(long)]
        cache_dir: Option<std::path::PathBuf>,
        /// Download into this file (what `hf download` does) instead of streaming to memory.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Upload one local file straight to the CAS with xet-core (no mount) and print the
    /// throughput: the reference the mount's write path is measured against.
    CasUpload {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        file: std::path::PathBuf,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("HUBSIM_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Serving, the heap goes on huge pages (see hfm-alloc): the emulated CAS then takes about
    // half the CPU it shares with the mount. Not for `cas-upload` and `cas-download`, the
    // benchmarks' references, which run xet-core as its Python package does.
    if matches!(cli.cmd, Cmd::Serve { .. }) {
        hfm_alloc::reexec_with_huge_pages();
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.cmd {
        Cmd::Serve { listen, data, users, xet_token_ttl_secs } => {
            rt.block_on(serve(listen, data, users, xet_token_ttl_secs))
        }
        Cmd::Seed { endpoint, token, target } => rt.block_on(seed::run(&endpoint, token.as_deref(), target)),
        Cmd::CasDownload { endpoint, hash, size, cache_dir, out } => {
            rt.block_on(seed::cas_download(&endpoint, &hash, size, cache_dir, out))
        }
        Cmd::CasUpload { endpoint, file } => rt.block_on(seed::cas_upload(&endpoint, &file)),
    }
}

async fn serve(listen: SocketAddr, data: Option<PathBuf>, users: Vec<String>, xet_token_ttl_secs: u64) -> Result<()> {
    let mut state = match &data {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            state::HubState::load(dir).with_context(|| format!("loading state from {}", dir.display()))?
        }
        None => state::HubState::default(),
    };
    for u in &users {
        let Some((name, token)) = u.split_once(':') else { bail!("--user takes NAME:TOKEN, got {u:?}") };
        state.tokens.insert(token.to_string(), name.to_string());
    }

    let ip = listen.ip();
    let ctx = XetContext::default().context("creating the xet runtime")?;
    // With --data, the CAS and byte servers keep their ports across restarts (the casUrl in
    // tokens clients hold stays valid, as a production CAS address does).
    let saved_ports = data.as_ref().map(|d| d.join("ports"));
    let (cas_want, bytes_want) = saved_ports
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| s.trim().split_once(' ').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))))
        .unwrap_or((0u16, 0u16));
    let cas_listener = tokio::net::TcpListener::bind((ip, cas_want)).await.context("binding the CAS port")?;
    let cas_port = cas_listener.local_addr()?.port();
    let cas_config = LocalServerConfig {
        data_directory: data.as_ref().map(|d| d.join("cas")).unwrap_or_default(),
        host: ip.to_string(),
        port: cas_port,
        in_memory: data.is_none(),
    };
    // The store is built here (not by LocalServer::new) to keep its shard listing for the Hub.
    let (cas_client, shards): (Arc<dyn DirectAccessClient>, Arc<dyn DeletionControlableClient>) = if cas_config
        .in_memory
    {
        let c = MemoryClient::new(ctx.clone());
        (c.clone(), c)
    } else {
        let c = LocalClient::new(ctx.clone(), &cas_config.data_directory).await.context("starting the CAS store")?;
        (c.clone(), c)
    };
    let cas =
        LocalServer::from_client(cas_client.clone(), Some(shards.clone()), cas_config.host.clone(), cas_config.port);
    let (_cas_stop, cas_stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if let Err(e) = cas.serve_until_stopped(cas_listener, cas_stop_rx).await {
            tracing::error!("CAS server stopped: {e}");
        }
    });

    let bytes_listener =
        tokio::net::TcpListener::bind((ip, bytes_want)).await.context("binding the byte server port")?;
    let bytes_port = bytes_listener.local_addr()?.port();
    if let Some(p) = &saved_ports {
        std::fs::write(p, format!("{cas_port} {bytes_port}")).with_context(|| format!("writing {}", p.display()))?;
    }
    tokio::spawn(bytes_server::serve(bytes_listener, cas_client.clone()));

    let app = Arc::new(routes::App {
        state: Mutex::new(state),
        faults: Mutex::new(Vec::new()),
        cas_port,
        bytes_port,
        xet_token_ttl_secs,
        requests: AtomicU64::new(0),
        cas: cas_client,
        shards: Some(shards),
        shard_index: Mutex::new(Default::default()),
    });
    // Commits and batches of many files are large bodies (axum refuses more than 2 MB by default).
    let router = axum::Router::new()
        .fallback(routes::handle)
        .with_state(app)
        .layer(axum::extract::DefaultBodyLimit::max(1 << 30));
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    println!("endpoint=http://{addr}");
    use std::io::Write;
    std::io::stdout().flush()?;
    axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
