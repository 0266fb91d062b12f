//! A stable 64-bit fingerprint of a JSON value: FNV-1a over a canonical
//! encoding (object keys sorted, every string and number length-prefixed),
//! the same in every process, run and platform.

use serde_json::Value;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

struct Fnv(u64);

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(PRIME);
        }
    }

    /// A length-prefixed string, so no two sequences encode alike.
    fn text(&mut self, tag: u8, text: &str) {
        self.write(&[tag]);
        self.write(&(text.len() as u64).to_le_bytes());
        self.write(text.as_bytes());
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.write(b"n"),
            Value::Bool(true) => self.write(b"t"),
            Value::Bool(false) => self.write(b"f"),
            Value::Number(n) => self.text(b'#', &n.to_string()),
            Value::String(s) => self.text(b's', s),
            Value::Array(items) => {
                self.write(b"[");
                self.write(&(items.len() as u64).to_le_bytes());
                items.iter().for_each(|item| self.value(item));
            }
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                self.write(b"{");
                self.write(&(entries.len() as u64).to_le_bytes());
                for (key, value) in entries {
                    self.text(b'k', key);
                    self.value(value);
                }
            }
        }
    }
}

/// The fingerprint of `value`.
pub(crate) fn of(value: &Value) -> u64 {
    let mut h = Fnv(OFFSET);
    h.value(value);
    h.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        let mut h = Fnv(OFFSET);
        h.write(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv(OFFSET);
        h.write(b"foobar");
        assert_eq!(h.0, 0x8594_4171_f739_67e8);
    }

    #[test]
    fn key_order_does_not_matter_but_every_value_does() {
        let a: Value = serde_json::from_str(r#"{"x": 1, "y": [true, null, "s"]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"y": [true, null, "s"], "x": 1}"#).unwrap();
        assert_eq!(of(&a), of(&b));
        assert_ne!(of(&a), of(&json!({"x": 2, "y": [true, null, "s"]})));
        assert_ne!(of(&json!(["ab", "c"])), of(&json!(["a", "bc"])));
        assert_ne!(of(&json!({"a": "1"})), of(&json!({"a": 1})));
        // Pinned (checked against an independent FNV-1a of the encoding): the
        // fingerprint is stable across runs and builds.
        assert_eq!(of(&json!({"k": "v"})), 0xb7ef_5b13_0314_e910);
    }
}
