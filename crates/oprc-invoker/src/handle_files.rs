//! What the API's file routes ask of the invoker: the current version of a
//! file an outside client may read, and where its upload goes.

use oprc_blob::BlobPath;
use oprc_core::{Caller, ClassKey, InvocationId, ObjectId};

use crate::files::{Relation, may_reach};
use crate::{Error, Handle};

impl Handle {
    /// Checks that `caller` may reach file `key` of objects of `cls`.
    fn check_key(&self, cls: &ClassKey, key: &str, caller: &Caller) -> Result<(), Error> {
        let catalog = self.shared.catalog.load();
        let class = catalog
            .class(cls)
            .ok_or_else(|| Error::ClassNotFound(cls.to_string()))?;
        let Some(spec) = class.keys.get(key) else {
            let known: Vec<&String> = class.keys.keys().collect();
            return Err(Error::BadRequest(format!(
                "class `{cls}` has no file key `{key}` (its keys: {known:?})"
            )));
        };
        may_reach(spec.access, cls, caller, Relation::Named).map_err(|r| Error::FileForbidden {
            cls: cls.to_string(),
            key: key.to_owned(),
            modifier: r.modifier,
            why: r.why,
        })
    }

    /// The current version of file `key` of an object, if `caller` may
    /// read it.
    pub async fn file(
        &self,
        cls: &ClassKey,
        oid: &ObjectId,
        key: &str,
        caller: &Caller,
    ) -> Result<BlobPath, Error> {
        self.check_key(cls, key, caller)?;
        let obj = self.object(cls, oid).await?;
        let not_found = || Error::FileNotFound {
            cls: cls.to_string(),
            oid: oid.to_string(),
            key: key.to_owned(),
        };
        let version = obj.meta.ver_ids.get(key).ok_or_else(not_found)?;
        BlobPath::new(cls.clone(), oid.clone(), version.clone(), key)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Where a new version of file `key` of an existing object goes, if
    /// `caller` may write it; commit it with the `file` builtin
    /// (`commit=VERSION`) once it is stored.
    pub async fn upload_target(
        &self,
        cls: &ClassKey,
        oid: &ObjectId,
        key: &str,
        caller: &Caller,
    ) -> Result<BlobPath, Error> {
        self.check_key(cls, key, caller)?;
        self.object(cls, oid).await?;
        let version = crate::file_calls::outside_version(InvocationId::generate().as_str());
        BlobPath::new(cls.clone(), oid.clone(), version, key)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// The blob store of this node.
    pub fn blobs(&self) -> &std::sync::Arc<dyn oprc_blob::BlobStore> {
        &self.shared.files.store
    }
}
