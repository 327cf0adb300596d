//! The object store readers see: one bucket's store, its byte-range reads answered by the
//! cache, writes passed on (and what they replace dropped from the cache).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

use super::index::ObjectKey;
use super::{FsCache, MAX_CACHED_READ};

/// One bucket's store, read through the cache.
#[derive(Debug)]
pub(super) struct CachedStore {
    pub(super) cache: Arc<FsCache>,
    pub(super) bucket: Arc<str>,
    pub(super) inner: Arc<dyn ObjectStore>,
}

impl fmt::Display for CachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (fs.cache)", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CachedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let put = self.inner.put_opts(location, payload, opts).await;
        self.cache.invalidate(&self.bucket, location);
        put
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.cache.invalidate(&self.bucket, location);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let conditional = options.head
            || options.if_match.is_some()
            || options.if_none_match.is_some()
            || options.if_modified_since.is_some()
            || options.if_unmodified_since.is_some()
            || options.version.is_some();
        if conditional {
            return self.inner.get_opts(location, options).await;
        }
        let Some(asked) = &options.range else {
            // Whole objects (metastore files, Delta logs, small files) are read as they are now.
            return self.inner.get_opts(location, options).await;
        };
        let key = ObjectKey::new(&self.bucket, location);
        let current = self.cache.current(&key, &self.inner, false).await?;
        // A range out of the object, empty or too large: the store's own answer (and error).
        let range = match asked.as_range(current.meta.size) {
            Ok(range) if !range.is_empty() && range.end - range.start <= MAX_CACHED_READ => range,
            _ => return self.inner.get_opts(location, options).await,
        };
        let (meta, mut bytes) = self
            .cache
            .read(&key, &self.inner, std::slice::from_ref(&range))
            .await?;
        let bytes = bytes.pop().unwrap_or_default();
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(bytes) }).boxed()),
            meta,
            range,
            attributes: Attributes::default(),
        })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let (_, bytes) = self
            .cache
            .read(&ObjectKey::new(&self.bucket, location), &self.inner, ranges)
            .await?;
        Ok(bytes)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let cache = Arc::clone(&self.cache);
        let bucket = Arc::clone(&self.bucket);
        self.inner
            .delete_stream(locations)
            .inspect_ok(move |path| cache.invalidate(&bucket, path))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let copied = self.inner.copy_opts(from, to, options).await;
        self.cache.invalidate(&self.bucket, to);
        copied
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let renamed = self.inner.rename_opts(from, to, options).await;
        self.cache.invalidate(&self.bucket, from);
        self.cache.invalidate(&self.bucket, to);
        renamed
    }
}
