//! `Outbox.open(options)`: reading and checking the options object.
//!
//! Every field is checked here, once, so the rest of the runtime works with typed values. A bad field
//! fails with `INVALID_CONFIG` and a message that names it.

use js_sys::{Function, Reflect};

use outbox_core::{
    CollectionConfig, Config, ConflictStrategy, HealthConfig, HistoryBounds, RetryPolicy,
};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::RequestCredentials;

use crate::by_name::ByName;
use crate::error::{Error, Result};
use crate::option_names;
use crate::store::Durability;

/// The default per-request timeout: long enough for a slow mobile upload, short enough that a stalled
/// connection is retried well before the user gives up.
pub const DEFAULT_TIMEOUT_MS: u32 = 15_000;
/// The default largest op payload (JSON bytes).
pub const DEFAULT_MAX_OP_BYTES: usize = 1024 * 1024;
/// The default delay between an enqueue and the drain it triggers: enough to gather a burst of
/// enqueues into one batch, too short for a user to notice.
pub const DEFAULT_DRAIN_DELAY_MS: u32 = 5;
/// Options of the built-in fetch transport, refused next to a custom `transport`.
const FETCH_ONLY: [&str; 6] = [
    "route",
    "auth",
    "batch",
    "timeoutMs",
    "credentials",
    "clientId",
];
/// The shortest `pull.intervalMs`: polling faster than once a second is a mistake, not a design.
pub const MIN_PULL_INTERVAL_MS: u32 = 1_000;

/// The checked options.
pub struct Options {
    /// The outbox name, which is also the IndexedDB database name.
    pub name: String,
    /// How ops reach the server.
    pub transport: TransportOptions,
    /// Where ops are stored, and how durably.
    pub durability: Durability,
    /// Drain automatically after enqueue, on reconnect, on focus and on backoff expiry.
    pub auto_drain: bool,
    /// Open paused: nothing is sent until `resume()`.
    pub paused: bool,
    /// The debounce between an enqueue and its automatic drain.
    pub drain_delay_ms: u32,
    /// The largest payload an op may carry, in JSON bytes.
    pub max_op_bytes: usize,
    /// The engine's configuration (batching limits, retry policy, collections).
    pub engine: Config,
    /// Conflict resolvers the app wrote, by collection (the engine holds those conflicts for them).
    pub resolvers: ByName<Function>,
    /// Validators the app gave, by collection: a function or a Standard Schema.
    pub validators: ByName<JsValue>,
    /// Pulling server changes.
    pub pull: PullOptions,
    /// `options.history`: how much sync history is kept.
    pub history: HistoryBounds,
    /// `options.health`: the thresholds of `health()`.
    pub health: HealthConfig,
    /// `options.onStatus`: a status subscriber from the start, which hears the restore too.
    pub on_status: Option<Function>,
}

/// `options.pull`: how server changes are fetched.
#[derive(Default)]
pub struct PullOptions {
    /// Pull on this period, ms. `None`: only when the app calls `pull()`.
    pub interval_ms: Option<u32>,
    /// Pull when the page becomes visible again.
    pub on_focus: bool,
    /// Most changes per page.
    pub limit: u32,
    /// `source(cursor, { collections }) => { changes, cursor, hasMore }` instead of `GET {endpoint}/pull`.
    pub source: Option<Function>,
    /// Pull only these collections (`None`: every one).
    pub collections: Option<Vec<String>>,
}

/// How ops reach the server.
pub enum TransportOptions {
    /// The built-in fetch transport, speaking docs/PROTOCOL.md.
    Fetch(FetchOptions),
    /// The app's own `transport(batch)` function.
    Custom(Function),
}

/// Options of the built-in fetch transport.
pub struct FetchOptions {
    /// The API base URL; ops go to `{endpoint}/docs/{collection}/{key}` and `{endpoint}/push`.
    pub endpoint: String,
    /// Send batches to `{endpoint}/push` instead of one request per op.
    pub batch: bool,
    /// `route(op) => { method, url }`, to point ops at an existing REST API.
    pub route: Option<Function>,
    /// `auth({ refresh }) => headers`, called at send time.
    pub auth: Option<Function>,
    /// The fetch `credentials` mode.
    pub credentials: RequestCredentials,
    /// Per-request timeout.
    pub timeout_ms: u32,
    /// Sent as `Outbox-Client-Id`, which scopes idempotency keys on the server.
    pub client_id: Option<String>,
}

impl Options {
    /// Reads and checks `Outbox.open`'s argument.
    pub fn from_js(value: &JsValue) -> Result<Options> {
        if !value.is_object() {
            return Err(invalid("options must be an object like { name, endpoint }"));
        }
        option_names::check(value, "options", option_names::TOP)?;
        let name = string(value, "name")?.ok_or_else(|| invalid("options.name is required"))?;
        if name.is_empty() {
            return Err(invalid("options.name must not be empty"));
        }
        let endpoint = string(value, "endpoint")?;
        let transport = function(value, "transport")?;
        let transport = match (endpoint, transport) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "options.endpoint and options.transport are exclusive: give one",
                ))
            }
            (None, None) => {
                return Err(invalid(
                    "options.endpoint (a URL) or options.transport (a function) is required",
                ))
            }
            (None, Some(custom)) => {
                // These shape the built-in fetch transport; with the app's own one they would do nothing.
                for fetch_only in FETCH_ONLY {
                    if !get(value, fetch_only).is_undefined() {
                        return Err(invalid(format!(
                            "options.{fetch_only} applies to the built-in transport (options.endpoint); \
                             options.transport does its own"
                        )));
                    }
                }
                TransportOptions::Custom(custom)
            }
            (Some(endpoint), None) => TransportOptions::Fetch(FetchOptions {
                endpoint: check_endpoint(&endpoint)?,
                batch: boolean(value, "batch")?.unwrap_or(false),
                route: function(value, "route")?,
                auth: function(value, "auth")?,
                credentials: match string(value, "credentials")?.as_deref() {
                    None | Some("same-origin") => RequestCredentials::SameOrigin,
                    Some("include") => RequestCredentials::Include,
                    Some("omit") => RequestCredentials::Omit,
                    Some(other) => {
                        return Err(invalid(format!(
                            "options.credentials must be \"same-origin\", \"include\" or \"omit\", not {other:?}"
                        )))
                    }
                },
                timeout_ms: duration(value, "timeoutMs", 1)?.unwrap_or(DEFAULT_TIMEOUT_MS),
                client_id: string(value, "clientId")?
                    .map(|id| check_client_id(&id).map(|()| id))
                    .transpose()?,
            }),
        };
        let durability = match string(value, "durability")?.as_deref() {
            None | Some("relaxed") => Durability::Relaxed,
            Some("strict") => Durability::Strict,
            Some(other) => {
                return Err(invalid(format!(
                    "options.durability must be \"relaxed\" or \"strict\", not {other:?}"
                )))
            }
        };
        let mut engine = Config::default();
        if let TransportOptions::Fetch(FetchOptions { batch: false, .. }) = transport {
            // One request per op: a "batch" is one op, and more of them fly at once instead.
            engine.max_ops = 1;
            engine.max_in_flight = 4;
        }
        if let Some(n) = positive(value, "maxBatchOps")? {
            engine.max_ops = n as usize;
        }
        if let Some(n) = positive(value, "maxInFlight")? {
            engine.max_in_flight = n as usize;
        }
        engine.retry = retry_policy(value)?;
        if let Some(ms) = positive(value, "idempotencyRetentionMs")? {
            engine.idempotency_retention_ms = ms as u64;
        }
        let mut resolvers = ByName::default();
        let mut validators = ByName::default();
        read_collections(value, &mut engine, &mut resolvers, &mut validators)?;
        engine.validate().map_err(Error::from)?;
        let pull = pull_options(value)?;
        let can_fetch = matches!(transport, TransportOptions::Fetch(_)) || pull.source.is_some();
        if !can_fetch && (pull.interval_ms.is_some() || pull.on_focus) {
            return Err(invalid(
                "options.pull needs options.endpoint or options.pull.source to fetch changes from",
            ));
        }
        Ok(Options {
            name,
            transport,
            durability,
            auto_drain: boolean(value, "autoDrain")?.unwrap_or(true),
            paused: boolean(value, "paused")?.unwrap_or(false),
            drain_delay_ms: duration(value, "drainDelayMs", 0)?.unwrap_or(DEFAULT_DRAIN_DELAY_MS),
            max_op_bytes: positive(value, "maxOpBytes")?
                .map_or(DEFAULT_MAX_OP_BYTES, |n| n as usize),
            engine,
            resolvers,
            validators,
            pull,
            history: crate::monitoring::history_options(value)?,
            health: crate::monitoring::health_options(value)?,
            on_status: function(value, "onStatus")?,
        })
    }
}

/// `options.collections`: `{ [name]: { conflict?: "server-wins" | "client-wins" | "manual" | resolver,
/// versioned?: boolean } }`.
fn read_collections(
    options: &JsValue,
    engine: &mut Config,
    resolvers: &mut ByName<Function>,
    validators: &mut ByName<JsValue>,
) -> Result<()> {
    let collections = get(options, "collections");
    if collections.is_undefined() || collections.is_null() {
        return Ok(());
    }
    let Some(collections) = collections.dyn_ref::<js_sys::Object>() else {
        return Err(invalid(
            "options.collections must be an object keyed by collection name",
        ));
    };
    for entry in js_sys::Object::entries(collections).iter() {
        let pair: js_sys::Array = entry.unchecked_into();
        let name = pair.get(0).as_string().unwrap_or_default();
        let settings = pair.get(1);
        let field = |f: &str| format!("options.collections.{name}.{f}");
        if !settings.is_object() {
            return Err(invalid(format!(
                "options.collections.{name} must be an object"
            )));
        }
        option_names::check(
            &settings,
            &format!("options.collections.{name}"),
            option_names::COLLECTION,
        )?;
        let mut config = CollectionConfig::default();
        let conflict = get(&settings, "conflict");
        if let Some(resolver) = conflict.dyn_ref::<Function>() {
            // The app decides: the engine holds the conflict, the runtime asks the resolver.
            config.conflict = ConflictStrategy::Manual;
            resolvers.insert(name.clone(), resolver.clone());
        } else if !conflict.is_undefined() {
            config.conflict = match conflict.as_string().as_deref() {
                Some("server-wins") => ConflictStrategy::ServerWins,
                Some("client-wins") => ConflictStrategy::ClientWins,
                Some("manual") => ConflictStrategy::Manual,
                _ => {
                    return Err(invalid(format!(
                        "{} must be \"server-wins\", \"client-wins\", \"manual\" or a function",
                        field("conflict")
                    )))
                }
            };
        }
        let versioned = get(&settings, "versioned");
        if !versioned.is_undefined() {
            config.versioned = versioned
                .as_bool()
                .ok_or_else(|| invalid(format!("{} must be a boolean", field("versioned"))))?;
        }
        let validate = get(&settings, "validate");
        if !validate.is_undefined() && !validate.is_null() {
            if !crate::runtime::is_validator(&validate) {
                return Err(invalid(format!(
                    "{} must be a function or a Standard Schema (an object with ~standard.validate)",
                    field("validate")
                )));
            }
            validators.insert(name.clone(), validate);
        }
        engine.collections.insert(name, config);
    }
    Ok(())
}

/// `options.pull`: `{ intervalMs?, onFocus?, limit?, source?, collections? }`.
fn pull_options(options: &JsValue) -> Result<PullOptions> {
    let pull = get(options, "pull");
    if pull.is_undefined() || pull.is_null() {
        return Ok(PullOptions {
            limit: 100,
            ..PullOptions::default()
        });
    }
    if !pull.is_object() {
        return Err(invalid(
            "options.pull must be an object like { intervalMs, onFocus }",
        ));
    }
    option_names::check(&pull, "options.pull", option_names::PULL)?;
    let prefixed = |e: Error| match e {
        Error::InvalidConfig(m) => Error::InvalidConfig(m.replacen("options.", "options.pull.", 1)),
        other => other,
    };
    Ok(PullOptions {
        // A floor: a pull every millisecond is a mistake, and would hammer the server.
        interval_ms: duration(&pull, "intervalMs", MIN_PULL_INTERVAL_MS).map_err(prefixed)?,
        on_focus: boolean(&pull, "onFocus")
            .map_err(prefixed)?
            .unwrap_or(false),
        limit: positive(&pull, "limit")
            .map_err(prefixed)?
            .map_or(Ok(100), u32_field("pull.limit"))?,
        source: function(&pull, "source").map_err(prefixed)?,
        collections: pull_collections(&pull)?,
    })
}

/// `options.pull.collections`: a non-empty array of collection names.
fn pull_collections(pull: &JsValue) -> Result<Option<Vec<String>>> {
    let value = get(pull, "collections");
    if value.is_undefined() {
        return Ok(None);
    }
    let malformed =
        || invalid("options.pull.collections must be a non-empty array of collection names");
    let array = value.dyn_ref::<js_sys::Array>().ok_or_else(malformed)?;
    let names: Vec<String> = array
        .iter()
        .map(|v| v.as_string().filter(|n| !n.is_empty()))
        .collect::<Option<_>>()
        .ok_or_else(malformed)?;
    // An empty list would pull nothing, ever: surely a mistake (omit `pull` to pull nothing).
    if names.is_empty() {
        return Err(malformed());
    }
    Ok(Some(names))
}

fn retry_policy(options: &JsValue) -> Result<RetryPolicy> {
    let mut policy = RetryPolicy::default();
    let retry = get(options, "retry");
    if retry.is_undefined() {
        return Ok(policy);
    }
    if !retry.is_object() {
        return Err(invalid("options.retry must be an object"));
    }
    option_names::check(&retry, "options.retry", option_names::RETRY)?;
    if let Some(ms) = duration(&retry, "baseMs", 1).map_err(prefix_retry)? {
        policy.base_ms = u64::from(ms);
    }
    if let Some(ms) = duration(&retry, "capMs", 1).map_err(prefix_retry)? {
        policy.cap_ms = u64::from(ms);
    }
    if let Some(n) = positive(&retry, "maxAttempts").map_err(prefix_retry)? {
        policy.max_attempts = Some(u32_field("retry.maxAttempts")(n)?);
    }
    if let Some(ms) = positive(&retry, "maxAgeMs").map_err(prefix_retry)? {
        policy.max_age_ms = Some(ms as u64);
    }
    if let Some(ms) = duration(&retry, "floorMs", 1).map_err(prefix_retry)? {
        policy.floor_ms = u64::from(ms);
    }
    if let Some(ms) = duration(&retry, "maxServerWaitMs", 1).map_err(prefix_retry)? {
        policy.max_server_wait_ms = u64::from(ms);
    }
    if policy.cap_ms < policy.base_ms {
        return Err(invalid(
            "options.retry.capMs must be at least options.retry.baseMs",
        ));
    }
    Ok(policy)
}

fn prefix_retry(error: Error) -> Error {
    match error {
        Error::InvalidConfig(m) => {
            Error::InvalidConfig(m.replacen("options.", "options.retry.", 1))
        }
        other => other,
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidConfig(message.into())
}

pub(crate) fn get(object: &JsValue, field: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(field)).unwrap_or(JsValue::UNDEFINED)
}

fn string(object: &JsValue, field: &str) -> Result<Option<String>> {
    let value = get(object, field);
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value
        .as_string()
        .map(Some)
        .ok_or_else(|| invalid(format!("options.{field} must be a string")))
}

fn function(object: &JsValue, field: &str) -> Result<Option<Function>> {
    let value = get(object, field);
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value
        .dyn_into::<Function>()
        .map(Some)
        .map_err(|_| invalid(format!("options.{field} must be a function")))
}

fn boolean(object: &JsValue, field: &str) -> Result<Option<bool>> {
    let value = get(object, field);
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value
        .as_bool()
        .map(Some)
        .ok_or_else(|| invalid(format!("options.{field} must be a boolean")))
}

pub(crate) fn number(object: &JsValue, field: &str, min: u32) -> Result<Option<f64>> {
    let value = get(object, field);
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    match value.as_f64() {
        Some(n)
            if n.is_finite()
                && n.fract() == 0.0
                && n >= f64::from(min)
                && n <= 9_007_199_254_740_991.0 =>
        {
            Ok(Some(n))
        }
        _ => Err(invalid(format!(
            // `min` is an integer so the message needs no float formatting code in the wasm.
            "options.{field} must be an integer of at least {min}"
        ))),
    }
}

/// The longest a browser timer can wait (2^31 - 1 ms, about 24.8 days): a longer delay fires at once.
const MAX_TIMER_MS: u32 = i32::MAX as u32;

/// A duration in ms that a timer will wait: an integer from `min` to [`MAX_TIMER_MS`].
fn duration(object: &JsValue, field: &str, min: u32) -> Result<Option<u32>> {
    match number(object, field, min)? {
        Some(ms) if ms > f64::from(MAX_TIMER_MS) => Err(invalid(format!(
            "options.{field} must be at most {MAX_TIMER_MS} ms, the longest a timer can wait"
        ))),
        other => Ok(other.map(|ms| ms as u32)),
    }
}

/// `options.endpoint`: an absolute http(s) URL, or a path (`/api`, `./api`, `../api`) on the page's origin.
/// Checked at open: otherwise every op would fail later, one by one (`"not a url"` would resolve to a
/// path of the page and answer 404 or 405).
fn check_endpoint(endpoint: &str) -> Result<String> {
    let is_path = ["/", "./", "../"].iter().any(|p| endpoint.starts_with(p));
    let is_absolute = endpoint.starts_with("http://") || endpoint.starts_with("https://");
    if endpoint.chars().any(char::is_whitespace) || !(is_path || is_absolute) {
        return Err(invalid(format!(
            "options.endpoint must be an http(s) URL or a path starting with /, not {endpoint:?}"
        )));
    }
    let base = Reflect::get(&js_sys::global(), &"location".into())
        .ok()
        .and_then(|l| Reflect::get(&l, &"href".into()).ok())
        .and_then(|h| h.as_string());
    let url = match &base {
        Some(base) => web_sys::Url::new_with_base(endpoint, base),
        None => web_sys::Url::new(endpoint),
    };
    match url {
        Ok(url) if matches!(url.protocol().as_str(), "http:" | "https:") => {
            Ok(endpoint.trim_end_matches('/').to_owned())
        }
        _ => Err(invalid(format!(
            "options.endpoint must be an http(s) URL (absolute, or relative to the page), not {endpoint:?}"
        ))),
    }
}

/// `options.clientId`: 1-255 visible ASCII characters (docs/PROTOCOL.md §3), as the header carries it.
fn check_client_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 255 || !id.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(invalid(format!(
            "options.clientId must be 1-255 visible ASCII characters, not {id:?}"
        )));
    }
    Ok(())
}

fn positive(object: &JsValue, field: &str) -> Result<Option<f64>> {
    number(object, field, 1)
}

fn u32_field(field: &'static str) -> impl Fn(f64) -> Result<u32> {
    move |n| {
        if n <= u32::MAX as f64 {
            Ok(n as u32)
        } else {
            Err(invalid(format!("options.{field} is too large")))
        }
    }
}
