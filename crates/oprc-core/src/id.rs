//! Newtype ids. Each one validates on construction, so a value that exists is
//! always well formed and safe to put in a URL path or a storage key.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {len} characters long, the limit is {max}")]
    TooLong {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{kind} {value:?} contains {ch:?}; allowed are letters, digits and . _ - ~")]
    BadChar {
        kind: &'static str,
        value: String,
        ch: char,
    },
}

const MAX_ID_LEN: usize = 200;

fn check(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            len: value.len(),
            max: MAX_ID_LEN,
        });
    }
    if let Some(ch) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~')))
    {
        return Err(IdError::BadChar {
            kind,
            value: value.to_owned(),
            ch,
        });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// Id of an object, unique within its class. Given by the caller or
    /// generated (time-ordered, so generated ids list in creation order).
    ObjectId,
    "object id"
);
string_id!(
    /// Qualified class key, `<package>.<class>`.
    ClassKey,
    "class key"
);
string_id!(
    /// Qualified function key, `<package>.<function>` (builtins: `builtin.<name>`).
    FunctionKey,
    "function key"
);
string_id!(
    /// Id of one invocation; generated ids are time-ordered.
    InvocationId,
    "invocation id"
);

impl ObjectId {
    /// A new time-ordered id (UUID v7, lowercase hex with dashes).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl InvocationId {
    /// A new time-ordered id (UUID v7).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl ClassKey {
    /// The package part of the key (`media` for `media.video`).
    pub fn package(&self) -> &str {
        self.0.split_once('.').map_or("", |(p, _)| p)
    }
}

impl FunctionKey {
    /// The package part of the key.
    pub fn package(&self) -> &str {
        self.0.split_once('.').map_or("", |(p, _)| p)
    }

    /// The last segment (`update` for `builtin.update`).
    pub fn short_name(&self) -> &str {
        self.0.rsplit_once('.').map_or(&self.0, |(_, n)| n)
    }
}

/// A partition of the object space. An object's partition is a stable hash of
/// its class and id; the partition decides which node owns the object and
/// which async log carries its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartitionId(pub u16);

impl PartitionId {
    /// The partition of an object among `count` partitions. FNV-1a: stable
    /// across processes, versions and platforms (unlike `std`'s hasher).
    pub fn of(cls: &ClassKey, oid: &ObjectId, count: u16) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in cls.as_str().bytes().chain([0]).chain(oid.as_str().bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Self((h % u64::from(count.max(1))) as u16)
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_path_characters() {
        assert!(ObjectId::new("a/b").is_err());
        assert!(ObjectId::new("").is_err());
        assert!(ObjectId::new("x".repeat(201)).is_err());
        assert!(ObjectId::new("obj-1_a.b~c").is_ok());
    }

    #[test]
    fn generated_ids_sort_in_creation_order() {
        let a = ObjectId::generate();
        let b = ObjectId::generate();
        assert!(a < b, "{a} < {b}");
    }

    #[test]
    fn partition_is_stable() {
        let cls = ClassKey::new("example.record").unwrap();
        let oid = ObjectId::new("o1").unwrap();
        let p = PartitionId::of(&cls, &oid, 16);
        assert_eq!(p, PartitionId::of(&cls, &oid, 16));
        assert!(p.0 < 16);
    }

    #[test]
    fn key_parts() {
        let f = FunctionKey::new("builtin.update").unwrap();
        assert_eq!(f.package(), "builtin");
        assert_eq!(f.short_name(), "update");
    }
}
