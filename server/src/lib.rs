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
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use crate::faults::FaultConfig;
use crate::store::sqlite::Synchronous;
use crate::store::{DbTarget, Store, StoreOptions};

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

    /// Where the data lives: a SQLite file (created if missing; WAL mode; one server process),
    /// or `postgres://user[:password]@host[:port]/database` for several instances sharing one
    /// PostgreSQL database. The schema is created or migrated at start either way.
    #[arg(long, default_value = "./outbox.sqlite", value_parser = DbTarget::parse)]
    pub db: DbTarget,

    /// Most PostgreSQL connections this instance opens (ignored for SQLite).
    #[arg(long, default_value_t = 16)]
    pub db_pool: usize,

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

    /// How often the cleanup job deletes expired idempotency records. Default: a quarter of the
    /// TTL, between 1 s and 60 s. Expired records are ignored on lookup whenever they are deleted.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub cleanup_every: Option<Duration>,

    /// Most expired records the cleanup job deletes in one transaction; it runs batches until
    /// none is left, letting writes in between.
    #[arg(long, default_value_t = 1000)]
    pub cleanup_batch: usize,

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
    let options = StoreOptions {
        ttl: config.idempotency_ttl,
        synchronous: match config.synchronous {
            SyncMode::Full => Synchronous::Full,
            SyncMode::Normal => Synchronous::Normal,
        },
        pg_pool_size: config.db_pool.max(1),
    };
    let store = store::open(&config.db, &options).await?;
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
    tracing::info!(%local, db = %config.db.describe(), base = %config.normalized_base(), "started");

    let every = config.cleanup_every.unwrap_or_else(|| {
        (config.idempotency_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
    });
    let cleanup = tokio::spawn(delete_expired_keys(
        store.clone(),
        every,
        config.cleanup_batch.max(1),
    ));
    serve::serve(listener, router, shutdown).await;
    cleanup.abort();
    tracing::info!("stopped");
    Ok(())
}

/// The cleanup job. Expired records are already ignored on lookup; this keeps the table from
/// growing. It deletes in bounded batches, each its own short transaction, so a large backlog
/// never holds a lock for long: SQLite writers queue behind one batch at most, and PostgreSQL
/// writers are not blocked at all (see the stores' `purge_expired`). Several instances may run it
/// at once.
async fn delete_expired_keys(store: Arc<dyn Store>, every: Duration, batch: usize) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        let (mut deleted, mut batches, mut slowest) = (0usize, 0usize, Duration::ZERO);
        loop {
            let t = Instant::now();
            match store.purge_expired(batch).await {
                Ok(n) => {
                    deleted += n;
                    batches += 1;
                    slowest = slowest.max(t.elapsed());
                    if n < batch {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "deleting expired idempotency keys failed");
                    break;
                }
            }
            // Between batches, writers waiting for the database go first.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if deleted > 0 {
            tracing::info!(
                deleted,
                batches,
                total_ms = started.elapsed().as_secs_f64() * 1e3,
                slowest_batch_ms = slowest.as_secs_f64() * 1e3,
                "expired idempotency records deleted"
            );
        }
    }
}
