//! `options.history` and `options.health`: how much sync history is kept, and the thresholds of
//! `health()`. The history itself is recorded by the runtime (`src/runtime/history.rs`).

use outbox_core::{HealthConfig, HistoryBounds};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsValue;

use crate::error::{Error, Result};
use crate::option_names;
use crate::options::{get, invalid, number};

/// `options.history`: `{ maxEntries?, maxAgeMs? }`.
pub fn history_options(options: &JsValue) -> Result<HistoryBounds> {
    let mut bounds = HistoryBounds::default();
    let Some(history) = section(options, "history", "{ maxEntries, maxAgeMs }")? else {
        return Ok(bounds);
    };
    let prefixed = prefix("history");
    if let Some(n) = number(&history, "maxEntries", 1).map_err(&prefixed)? {
        bounds.max_entries = n as usize;
    }
    if let Some(ms) = number(&history, "maxAgeMs", 1).map_err(&prefixed)? {
        bounds.max_age_ms = ms as u64;
    }
    Ok(bounds)
}

/// `options.health`: `{ windowMs?, staleAfterMs?, failingAfter? }`.
pub fn health_options(options: &JsValue) -> Result<HealthConfig> {
    let mut config = HealthConfig::default();
    let Some(health) = section(
        options,
        "health",
        "{ windowMs, staleAfterMs, failingAfter }",
    )?
    else {
        return Ok(config);
    };
    let prefixed = prefix("health");
    if let Some(ms) = number(&health, "windowMs", 1).map_err(&prefixed)? {
        config.window_ms = ms as u64;
    }
    if let Some(ms) = number(&health, "staleAfterMs", 1).map_err(&prefixed)? {
        config.stale_after_ms = ms as u64;
    }
    if let Some(n) = number(&health, "failingAfter", 1).map_err(&prefixed)? {
        config.failing_after = u32::try_from(n as u64)
            .map_err(|_| invalid("options.health.failingAfter is too large"))?;
    }
    Ok(config)
}

/// `options.<name>` as an object with known names only, `None` when absent.
fn section(options: &JsValue, name: &str, shape: &str) -> Result<Option<JsValue>> {
    let value = get(options, name);
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    if !value.is_object() {
        return Err(invalid(format!(
            "options.{name} must be an object like {shape}"
        )));
    }
    let known = if name == "history" {
        option_names::HISTORY
    } else {
        option_names::HEALTH
    };
    option_names::check(&value, &format!("options.{name}"), known)?;
    Ok(Some(value))
}

fn prefix(name: &'static str) -> impl Fn(Error) -> Error {
    move |error| match error {
        Error::InvalidConfig(m) => {
            Error::InvalidConfig(m.replacen("options.", &format!("options.{name}."), 1))
        }
        other => other,
    }
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = include_str!("monitoring.d.ts");
