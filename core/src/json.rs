//! [`Json`]: a JSON value kept as its text.
//!
//! The engine never looks inside an op's payload or a put's document: it stores them, sends them and
//! shows them to the app. Kept as the text the app's value became (`JSON.stringify` in the runtime), a
//! payload costs no parse at enqueue, no tree in memory, no re-encoding at each write, send or read,
//! and its bytes stay identical under one idempotency key for as long as the op lives. Only a merge
//! patch, a custom mutation and a conflict parse it ([`Json::value`]).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// A JSON value as text: always one complete, valid JSON value (checked when it is made). Cloning it
/// shares the text. Two values are equal when their texts are (`{"a":1}` and `{ "a": 1 }` are not).
///
/// In a record or a body it serializes as the JSON value itself, not as a string, so stored records
/// keep the format they had when payloads were `serde_json::Value`s.
#[derive(Clone)]
pub struct Json(Arc<RawValue>);

impl Json {
    /// `null`.
    pub fn null() -> Self {
        Json(Arc::from(RawValue::NULL.to_owned()))
    }

    /// The text, if it is one valid JSON value (surrounding whitespace is kept), or why not.
    pub fn from_text(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(|raw| Json(Arc::from(raw)))
    }

    /// The value's compact text.
    pub fn from_value(value: &Value) -> Self {
        // Writing a `Value` cannot fail: its map keys are strings and its numbers finite.
        serde_json::value::to_raw_value(value).map_or_else(|_| Json::null(), |raw| Json(raw.into()))
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The value, parsed. It parsed when it was made, so this cannot fail (a failure would read `null`).
    pub fn value(&self) -> Value {
        serde_json::from_str(self.text()).unwrap_or(Value::Null)
    }

    /// How deeply it nests (arrays and objects; a scalar is 0), read from the text without parsing it.
    pub fn depth(&self) -> usize {
        let (mut depth, mut deepest) = (0usize, 0usize);
        let (mut in_string, mut escaped) = (false, false);
        for b in self.text().bytes() {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        deepest
    }

    /// Whether it is `null`.
    pub fn is_null(&self) -> bool {
        self.text().trim() == "null"
    }
}

impl Default for Json {
    fn default() -> Self {
        Json::null()
    }
}

impl From<Value> for Json {
    fn from(value: Value) -> Self {
        Json::from_value(&value)
    }
}

impl From<&Value> for Json {
    fn from(value: &Value) -> Self {
        Json::from_value(value)
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.text() == other.text()
    }
}

impl Eq for Json {}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(|raw| Json(raw.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_kept_byte_for_byte_through_a_record() {
        // Key order and number spelling as the app's JSON.stringify wrote them: a parse and re-encode
        // would sort the keys.
        let payload = Json::from_text(r#"{"z":1,"a":[1.5,"x"]}"#.to_owned()).unwrap();
        let record = json!({ "payload": &payload }).to_string();
        assert_eq!(
            record, r#"{"payload":{"a":[1.5,"x"],"z":1}}"#,
            "through a Value it sorts"
        );
        #[derive(Serialize, Deserialize)]
        struct Record {
            payload: Json,
        }
        let text = serde_json::to_string(&Record { payload }).unwrap();
        assert_eq!(text, r#"{"payload":{"z":1,"a":[1.5,"x"]}}"#);
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back.payload.text(), r#"{"z":1,"a":[1.5,"x"]}"#);
        let from_value: Record =
            serde_json::from_value(serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(
            from_value.payload.value(),
            json!({ "z": 1, "a": [1.5, "x"] })
        );
    }

    #[test]
    fn depth_counts_nesting_outside_strings() {
        let depth = |text: &str| Json::from_text(text.to_owned()).unwrap().depth();
        assert_eq!(depth("1"), 0);
        assert_eq!(depth(r#""[{[{""#), 0);
        assert_eq!(depth("[]"), 1);
        assert_eq!(depth(r#"{"a":[1,{"b":"]\\\"["}],"c":[[[]]]}"#), 4);
        for value in [
            json!(null),
            json!([[1], {"a": {"b": [2]}}]),
            json!({"x": "}}\\"}),
        ] {
            assert_eq!(
                depth(&value.to_string()),
                crate::op::payload_depth(&value),
                "{value}"
            );
        }
    }

    #[test]
    fn only_one_whole_json_value_is_json() {
        assert!(Json::from_text("{".to_owned()).is_err());
        assert!(Json::from_text("1 2".to_owned()).is_err());
        assert!(Json::from_text("".to_owned()).is_err());
        assert!(Json::from_text("[1,2]".to_owned()).is_ok());
        assert!(Json::null().is_null());
        assert!(!Json::from(json!(0)).is_null());
        assert_eq!(Json::default(), Json::from(Value::Null));
    }
}
