//! The object model: `{"_meta": {...}, "data": {...}}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ClassKey, ObjectId};

/// Platform-owned metadata of an object. Functions may read it; only the
/// platform changes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub id: ObjectId,
    pub cls: ClassKey,
    /// Incremented by every committed change; the compare-and-swap token.
    pub revision: u64,
    /// Current version id of each file key (`<oid>/<version>/<key>`).
    #[serde(default)]
    pub ver_ids: BTreeMap<String, String>,
    /// Named references to other objects (of the class's `refSpec`).
    #[serde(default)]
    pub refs: BTreeMap<String, ObjectId>,
    /// Offset of the last async-log message applied to this object, committed
    /// atomically with the state (exactly-once, G5). 0: none yet.
    #[serde(default)]
    pub last_offset: u64,
}

/// An object as stored and as shown by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectRecord {
    #[serde(rename = "_meta")]
    pub meta: ObjectMeta,
    /// The structured state. Always a JSON value; `{}` for a fresh object.
    #[serde(default = "empty_data")]
    pub data: serde_json::Value,
}

fn empty_data() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl ObjectRecord {
    /// A new object at revision 0 (not yet committed).
    pub fn new(cls: ClassKey, id: ObjectId, data: serde_json::Value) -> Self {
        Self {
            meta: ObjectMeta {
                id,
                cls,
                revision: 0,
                ver_ids: BTreeMap::new(),
                refs: BTreeMap::new(),
                last_offset: 0,
            },
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_json_shape_matches_oparaca() {
        let obj = ObjectRecord::new(
            ClassKey::new("ex.record").unwrap(),
            ObjectId::new("o1").unwrap(),
            serde_json::json!({"n": 1}),
        );
        let v = serde_json::to_value(&obj).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "_meta": {"id": "o1", "cls": "ex.record", "revision": 0,
                          "verIds": {}, "refs": {}, "lastOffset": 0},
                "data": {"n": 1}
            })
        );
    }
}
