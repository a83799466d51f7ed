//! `outbox-server`: the reference server of outbox-sync. See `docs/PROTOCOL.md` for the wire
//! contract and `server/README.md` for flags and the admin API.

pub mod app;
pub mod faults;
pub mod headers;
pub mod problem;
pub mod retention;
pub mod serve;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::faults::FaultConfig;
use crate::store::{Store, Synchronous};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "outbox-server",
    version,
    about = "Reference server for outbox-sync"
)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port; the bound address is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub addr: SocketAddr,

    /// SQLite database file (created if missing; WAL mode).
    #[arg(long, default_value = "./outbox.sqlite")]
    pub db: PathBuf,

    /// Serve the static files in DIR at `/` (the demo app).
    #[arg(long, value_name = "DIR")]
    pub www: Option<PathBuf>,

    /// Path prefix of the API: documents live at {base}/docs/{collection}/{key}.
    #[arg(long, default_value = "/api")]
    pub base_path: String,

    /// Allowed CORS origin, e.g. http://localhost:5173; repeatable; `*` allows any origin.
    /// Default: the serving origin and http(s)://localhost, 127.0.0.1 and [::1] on any port.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,

    /// Largest accepted request body in bytes; larger bodies get a 413 problem.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// How long an idempotency key and its stored response are kept (e.g. 24h, 90m, 30s).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_ttl: Duration,

    /// Most ops accepted in one push.
    #[arg(long, default_value_t = 1000)]
    pub max_batch_ops: usize,

    /// Initial fault-injection config, as the JSON accepted by POST /_admin/faults.
    #[arg(long, value_name = "JSON", value_parser = parse_faults)]
    pub faults: Option<FaultConfig>,

    /// SQLite `synchronous` setting: `full` makes every acknowledged write survive power loss;
    /// `normal` survives process crashes only.
    #[arg(long, value_enum, default_value_t = SyncMode::Full)]
    pub synchronous: SyncMode,

    /// Log filter, e.g. `info` or `outbox_server=debug,tower_http=debug`. Defaults to $RUST_LOG,
    /// then `info`. Logs go to stderr.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SyncMode {
    Full,
    Normal,
}

fn parse_faults(s: &str) -> Result<FaultConfig, String> {
    let config: FaultConfig = serde_json::from_str(s).map_err(|e| e.to_string())?;
    config.validate()?;
    Ok(config)
}

impl Config {
    /// The base path normalised to "" (root) or "/segment[/segment...]" without a trailing slash.
    pub fn normalized_base(&self) -> String {
        let trimmed = self.base_path.trim_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        }
    }
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens the database, binds, prints `outbox-server listening on http://ADDR` on stdout and
/// serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    let sync = match config.synchronous {
        SyncMode::Full => Synchronous::Full,
        SyncMode::Normal => Synchronous::Normal,
    };
    let store = Arc::new(Store::open(&config.db, sync, config.idempotency_ttl)?);
    let shared = app::Shared::new(store.clone(), &config);
    let router = app::router(shared, &config);

    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let local = listener.local_addr()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "outbox-server listening on http://{local}")?;
        out.flush()?;
    }
    tracing::info!(%local, db = %config.db.display(), base = %config.normalized_base(), "started");

    let sweeper = tokio::spawn(sweep_expired_keys(store.clone(), config.idempotency_ttl));
    serve::serve(listener, router, shutdown).await;
    sweeper.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Expired records are already ignored on lookup; this only keeps the table from growing.
async fn sweep_expired_keys(store: Arc<Store>, ttl: Duration) {
    let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.purge_expired()).await {
            Ok(Ok(n)) if n > 0 => tracing::debug!(purged = n, "expired idempotency keys"),
            Ok(Err(e)) => tracing::warn!(error = %e, "purging expired idempotency keys failed"),
            _ => {}
        }
    }
}
