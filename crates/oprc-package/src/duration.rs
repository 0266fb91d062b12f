//! Durations as packages write them: `500ms`, `30s`, `2m`, `1h`, compounds
//! such as `1m30s`, or a plain integer number of seconds.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A non-negative duration with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

/// Why a duration text is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{0}`; expected e.g. 500ms, 30s, 2m, 1h, 1m30s or a number of seconds")]
pub struct DurationError(String);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }

    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    /// Parses `500ms`, `30s`, `2m`, `1h`, `1h2m3s`, or digits only (seconds).
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let bad = || DurationError(text.to_owned());
        let s = text.trim();
        if s.is_empty() {
            return Err(bad());
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse::<u64>().map(Self::from_secs).map_err(|_| bad());
        }
        let mut millis: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let factor = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            millis = value
                .checked_mul(factor)
                .and_then(|v| millis.checked_add(v))
                .ok_or_else(bad)?;
        }
        Ok(Self::from_millis(millis))
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, DurationError> {
        Self::parse(s)
    }
}

/// Canonical form: largest units first (`1h2m3s500ms`), `0s` for zero.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if millis >= size {
                write!(f, "{}{unit}", millis / size)?;
                millis %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 30s, or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom(DurationError(v.to_string())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Marks the schema so the package checker knows to parse the text.
pub(crate) const SCHEMA_KIND: &str = "duration";

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: `500ms`, `30s`, `2m`, `1h`, a compound such as `1m30s`, or an integer number of seconds.",
            "x-kind": SCHEMA_KIND,
            "anyOf": [
                { "type": "string", "pattern": "^\\s*([0-9]+(ms|s|m|h))+\\s*$" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Option<&str>) {
        let got = Duration::parse(input).ok().map(|d| d.to_string());
        assert_eq!(got.as_deref(), expected, "input {input:?}");
    }

    #[test]
    fn parses_units_compounds_and_plain_seconds() {
        check("500ms", Some("500ms"));
        check("30s", Some("30s"));
        check("2m", Some("2m"));
        check("1h", Some("1h"));
        check("90s", Some("1m30s"));
        check("1m30s", Some("1m30s"));
        check("1h0m1500ms", Some("1h1s500ms"));
        check("45", Some("45s"));
        check("0", Some("0s"));
        check(" 10s ", Some("10s"));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        check("", None);
        check("s", None);
        check("10", Some("10s"));
        check("10x", None);
        check("1.5s", None);
        check("-1s", None);
        check("10 s", None);
        check("99999999999999999999h", None);
    }

    #[test]
    fn serde_accepts_text_and_integers() {
        let d: Duration = serde_json::from_str("\"2m\"").unwrap();
        assert_eq!(d.get(), std::time::Duration::from_secs(120));
        let d: Duration = serde_json::from_str("7").unwrap();
        assert_eq!(d.get(), std::time::Duration::from_secs(7));
        assert!(serde_json::from_str::<Duration>("-7").is_err());
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"7s\"");
    }
}
