//! Relay mode (the paper's `oprc-relay`): a store whose URLs are the node's
//! own signed URLs, so that every byte passes through the node's storage
//! adapter, which streams it from or to the store inside.

use std::time::Duration;

use crate::{
    BlobError, BlobMeta, BlobPath, BlobStore, ByteRange, Download, Listed, Method, Signer, Upload,
};

/// `inner`, with URLs of the node instead of the backend's own.
pub struct Relayed<S> {
    inner: S,
    signer: Signer,
}

impl<S> Relayed<S> {
    pub fn new(inner: S, signer: Signer) -> Self {
        Self { inner, signer }
    }
}

#[async_trait::async_trait]
impl<S: BlobStore> BlobStore for Relayed<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn presign(&self, method: Method, path: &BlobPath, ttl: Duration) -> Result<String, BlobError> {
        Ok(self.signer.blob_url(method, path, ttl))
    }

    async fn head(&self, path: &BlobPath) -> Result<Option<BlobMeta>, BlobError> {
        self.inner.head(path).await
    }

    async fn get(
        &self,
        path: &BlobPath,
        range: Option<ByteRange>,
    ) -> Result<Option<Download>, BlobError> {
        self.inner.get(path, range).await
    }

    async fn put(&self, path: &BlobPath, body: Upload) -> Result<BlobMeta, BlobError> {
        self.inner.put(path, body).await
    }

    async fn copy(&self, from: &BlobPath, to: &BlobPath) -> Result<(), BlobError> {
        self.inner.copy(from, to).await
    }

    async fn delete(&self, path: &BlobPath) -> Result<(), BlobError> {
        self.inner.delete(path).await
    }

    async fn list(&self, after: Option<&BlobPath>, limit: usize) -> Result<Vec<Listed>, BlobError> {
        self.inner.list(after, limit).await
    }
}
