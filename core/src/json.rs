//! [`Json`]: a JSON value kept as its text.
//!
//! The engine never looks inside an op's payload or a put's document: it stores them, sends them and
//! shows them to the app. Kept as the text the app's value became (`JSON.stringify` in the runtime), a
//! payload costs no parse at enqueue, no tree in memory, no re-encoding at each write, send or read,
//! and its bytes stay identical under one idempotency key for as long as the op lives. Only a merge
//! patch, a custom mutation and a conflict parse it ([`Json::value`]).

use std::fmt;
use std::sync::Arc;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A JSON value as text: always one complete, valid JSON value (checked when it is made). Cloning it
/// shares the text. Two values are equal when their texts are (`{"a":1}` and `{ "a": 1 }` are not).
///
/// In a record or a body it serializes as the JSON value itself, not as a string (the way serde_json's
/// `RawValue` does), so stored records keep the format they had when payloads were `serde_json::Value`s.
#[derive(Clone)]
pub struct Json(Arc<str>);

impl Json {
    /// `null`.
    pub fn null() -> Self {
        Json(Arc::from("null"))
    }

    /// The text, if it is one valid JSON value (surrounding whitespace is kept), or why not.
    pub fn from_text(text: String) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<IgnoredAny>(&text)?;
        Ok(Json(Arc::from(text)))
    }

    /// The value's compact text.
    pub fn from_value(value: &Value) -> Self {
        Json(Arc::from(value.to_string()))
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        &self.0
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
        // What serde_json's `RawValue` writes: serde_json's serializer copies the text in as it is,
        // its `Value` serializer parses it.
        let mut raw = serializer.serialize_struct(RAW_VALUE_TOKEN, 1)?;
        raw.serialize_field(RAW_VALUE_TOKEN, self.text())?;
        raw.end()
    }
}

/// The name under which serde_json passes a value's raw text (its `RawValue` uses it, with the
/// `raw_value` feature). Should it ever change, `text_is_kept_byte_for_byte_through_a_record` fails.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(RAW_VALUE_TOKEN, JsonVisitor)
    }
}

/// Reads a [`Json`] from serde_json (its text, or a `Value`'s) as text, and from serde's buffered
/// content of an internally tagged enum such as [`crate::Event`] as a value written back to text.
struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    // serde_json's answer: a map of one entry, the token and the text, which it read as one whole
    // JSON value (so it needs no second check). Any other map is not one serde_json made.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        match map.next_key_seed(Key)? {
            Some(true) => map.next_value_seed(Text),
            _ => Err(de::Error::custom("a JSON value is read from serde_json")),
        }
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Value::deserialize(d).map(Json::from)
    }
}

/// Whether a map key is serde_json's token (compared without making a string).
struct Key;

impl<'de> de::DeserializeSeed<'de> for Key {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == RAW_VALUE_TOKEN)
    }
}

/// The raw text serde_json passes, borrowed from the input when it can be: one copy, into the `Json`.
struct Text;

impl<'de> de::DeserializeSeed<'de> for Text {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the text of a JSON value")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Json, E> {
        Ok(Json(Arc::from(text)))
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
    fn an_event_holding_a_document_reads_back_through_its_tag() {
        // `Event` is internally tagged: serde buffers it before reading the variant's fields, so a
        // document reaches `Json` from serde's buffer, not from serde_json's text.
        let acked = crate::Event::Acked {
            id: crate::OpId(uuid::Uuid::from_u128(1)),
            collection: "notes".into(),
            key: "a".into(),
            version: Some("\"2\"".into()),
            doc: Some(Json::from_text(r#"{"b":[1,{"c":null}],"a":"x"}"#.to_owned()).unwrap()),
        };
        let text = serde_json::to_string(&acked).unwrap();
        let back: crate::Event = serde_json::from_str(&text).unwrap();
        let crate::Event::Acked { doc: Some(doc), .. } = &back else {
            panic!("{back:?}")
        };
        assert_eq!(doc.value(), json!({ "a": "x", "b": [1, { "c": null }] }));
        let value: crate::Event =
            serde_json::from_value(serde_json::to_value(&acked).unwrap()).unwrap();
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            serde_json::to_string(&back).unwrap()
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
