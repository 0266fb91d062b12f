//! Where a file version lives: `<cls>/<oid>/<version>/<key>`.

use std::fmt;

use oprc_core::{ClassKey, ObjectId};

/// The path of one version of one file of one object. Every segment is an
/// id (letters, digits and `. _ - ~`), so a path is safe in a URL and a
/// file system as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobPath {
    pub cls: ClassKey,
    pub oid: ObjectId,
    pub version: String,
    pub key: String,
}

/// Why a string is not a [`BlobPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{path}` is not a file path (`<cls>/<oid>/<version>/<key>`): {why}")]
pub struct PathError {
    pub path: String,
    pub why: String,
}

/// Checks one segment: the rules of ids, which keys and versions follow too.
fn segment(what: &str, value: &str) -> Result<(), String> {
    if value == "." || value == ".." {
        return Err(format!("{what} `{value}` would name a directory"));
    }
    ObjectId::new(value)
        .map(|_| ())
        .map_err(|e| format!("{what}: {e}"))
}

impl BlobPath {
    pub fn new(
        cls: ClassKey,
        oid: ObjectId,
        version: impl Into<String>,
        key: impl Into<String>,
    ) -> Result<Self, PathError> {
        let (version, key) = (version.into(), key.into());
        let path = Self {
            cls,
            oid,
            version,
            key,
        };
        segment("object id", path.oid.as_str())
            .and_then(|()| segment("version", &path.version))
            .and_then(|()| segment("key", &path.key))
            .map_err(|why| PathError {
                path: path.to_string(),
                why,
            })?;
        Ok(path)
    }

    /// Reads a path as [`fmt::Display`] writes it.
    pub fn parse(s: &str) -> Result<Self, PathError> {
        let err = |why: &str| PathError {
            path: s.to_owned(),
            why: why.to_owned(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        let [cls, oid, version, key] = parts.as_slice() else {
            return Err(err("it needs exactly four segments"));
        };
        let cls = ClassKey::new(*cls).map_err(|e| err(&format!("class: {e}")))?;
        let oid = ObjectId::new(*oid).map_err(|e| err(&format!("object id: {e}")))?;
        Self::new(cls, oid, *version, *key)
    }

    /// The prefix under which every file of one object lives.
    pub fn object_prefix(cls: &ClassKey, oid: &ObjectId) -> String {
        format!("{cls}/{oid}/")
    }
}

impl fmt::Display for BlobPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.cls, self.oid, self.version, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_refuse_what_could_escape() {
        let p = BlobPath::parse("pkg.text/o1/inv-1/data").unwrap();
        assert_eq!(p.to_string(), "pkg.text/o1/inv-1/data");
        for bad in [
            "a/b/c",
            "pkg.text/o1/inv/data/extra",
            "pkg.text/../inv/data",
            "pkg.text/o1/inv/",
            "pkg.text/o1/in v/data",
            "pkg.text/../inv/data",
            "pkg.text/o1/../data",
            "/o1/inv/data",
        ] {
            assert!(BlobPath::parse(bad).is_err(), "{bad}");
        }
    }
}
