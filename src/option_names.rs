//! Unknown option names are mistakes, not extensions: `retries: 5` or `retry: { maxAttempt: 5 }` would
//! otherwise be ignored without a word and the app would run with defaults it never chose. Each object
//! of the options is checked against the names it may hold; an unknown one is an `INVALID_CONFIG` naming
//! it, with the closest known name when one is close.

use js_sys::{Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::{Error, Result};

/// The names `Outbox.open`'s options object may hold.
pub const TOP: &[&str] = &[
    "name",
    "endpoint",
    "transport",
    "route",
    "auth",
    "batch",
    "maxBatchOps",
    "maxInFlight",
    "retry",
    "durability",
    "autoDrain",
    "paused",
    "drainDelayMs",
    "timeoutMs",
    "credentials",
    "clientId",
    "maxOpBytes",
    "idempotencyRetentionMs",
    "collections",
    "pull",
    "history",
    "health",
    "onStatus",
];
/// `options.retry`.
pub const RETRY: &[&str] = &[
    "baseMs",
    "capMs",
    "maxAttempts",
    "maxAgeMs",
    "floorMs",
    "maxServerWaitMs",
];
/// `options.pull`.
pub const PULL: &[&str] = &["intervalMs", "onFocus", "limit", "source", "collections"];
/// `options.history`.
pub const HISTORY: &[&str] = &["maxEntries", "maxAgeMs"];
/// `options.health`.
pub const HEALTH: &[&str] = &["windowMs", "staleAfterMs", "failingAfter"];
/// `options.collections.<name>`.
pub const COLLECTION: &[&str] = &["conflict", "versioned", "validate"];

/// Names that belong one level down: where the app should put them instead.
const MISPLACED: &[(&str, &str)] = &[
    ("conflict", "collections.<name>.conflict"),
    ("versioned", "collections.<name>.versioned"),
    ("validate", "collections.<name>.validate"),
    ("maxAttempts", "retry.maxAttempts"),
    ("baseMs", "retry.baseMs"),
    ("capMs", "retry.capMs"),
    ("intervalMs", "pull.intervalMs"),
    ("maxEntries", "history.maxEntries"),
    ("windowMs", "health.windowMs"),
];

/// Fails on the first own enumerable name of `object` (at `path`, e.g. `"options.retry"`) that is not in
/// `known`.
pub fn check(object: &JsValue, path: &str, known: &[&str]) -> Result<()> {
    let Some(object) = object.dyn_ref::<Object>() else {
        return Ok(());
    };
    for name in Object::keys(object).iter() {
        let Some(name) = name.as_string() else {
            continue;
        };
        if known.contains(&name.as_str()) {
            continue;
        }
        // A member explicitly set to `undefined` (a spread of optional settings) is harmless.
        if Reflect::get(object, &JsValue::from_str(&name)).is_ok_and(|v| v.is_undefined()) {
            continue;
        }
        let mut message = format!("{path}.{name} is not an option");
        if let Some(hint) = suggestion(&name, path, known) {
            message.push_str(&format!(": did you mean {hint}?"));
        }
        return Err(Error::InvalidConfig(message));
    }
    Ok(())
}

/// The known name `name` was probably meant to be: a misplaced one, or one a typo or two away.
fn suggestion(name: &str, path: &str, known: &[&str]) -> Option<String> {
    let prefix = path.strip_prefix("options").unwrap_or(path);
    let prefix = prefix.strip_prefix('.').unwrap_or(prefix);
    let qualified = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    if prefix.is_empty() {
        if let Some((_, place)) = MISPLACED.iter().find(|(n, _)| *n == name) {
            return Some((*place).to_owned());
        }
    }
    // The known names are ASCII: ASCII folding matches them and needs no Unicode case tables in the wasm.
    let name = name.to_ascii_lowercase();
    known
        .iter()
        .filter_map(|k| {
            let k_lower = k.to_ascii_lowercase();
            let distance = strsim::levenshtein(&name, &k_lower);
            // A plural or another inflection of a known name ("retries" for "retry") shares its stem.
            let stem = name
                .bytes()
                .zip(k_lower.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            let inflected = stem >= 4 && stem + 1 >= name.len().min(k_lower.len());
            (distance <= 2.max(k.len() / 4) || inflected).then_some((distance, k))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| qualified(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_name_the_option_meant() {
        let hint = |name, path, known| suggestion(name, path, known);
        assert_eq!(hint("retries", "options", TOP).as_deref(), Some("retry"));
        assert_eq!(
            hint("conflict", "options", TOP).as_deref(),
            Some("collections.<name>.conflict")
        );
        assert_eq!(
            hint("maxAttempt", "options.retry", RETRY).as_deref(),
            Some("retry.maxAttempts")
        );
        assert_eq!(
            hint("timeout", "options", TOP).as_deref(),
            Some("timeoutMs")
        );
        assert_eq!(
            hint("conflicts", "options.collections.todos", COLLECTION).as_deref(),
            Some("collections.todos.conflict")
        );
        assert_eq!(hint("colour", "options", TOP), None, "nothing close");
    }
}
