//! Trino's file system cache (`fs.cache.enabled=true`): the bytes a process reads from S3 are
//! kept on its local disks, in pages, and later reads of the same pages come from there.
//!
//! A catalog's [`FsCache`] wraps each bucket's object store ([`FsCache::wrap`]), so every read
//! of the catalog's buckets goes through it, on the scheduler and on every executor alike;
//! nothing about plans or codecs changes.
//!
//! - Pages: objects are cut into `fs.cache.page-size` pages; a read is served from the pages
//!   held and fetches the missing ones (runs of neighbouring pages as one request, several runs
//!   at once), which are then written to disk in the background (best effort: when the disks
//!   are busy, a page is simply not kept). Each page is a file
//!   `<directory>/<catalog>/<host>.<pid>/<object id>.<page>`; an object's pages all go to one of
//!   `fs.cache.directories`. Each directory holds at most its `fs.cache.max-sizes` (or its
//!   share of the disk); the least recently used pages make room, and pages unused for
//!   `fs.cache.ttl` are dropped.
//! - Versions: Trino keys pages by path and modification time from its listing. Here, the
//!   store behind DataFusion's readers sees only paths, so the cache asks the store (HEAD) what
//!   an object is when it was last asked more than [`REVALIDATE_AFTER`] ago; another ETag
//!   (else version, else modification time and size) drops the object's pages. Missing pages
//!   are fetched `If-Match` the ETag the held pages came from, so pages of two versions are
//!   never mixed in one read. An object rewritten in place is seen at the latest
//!   [`REVALIDATE_AFTER`] later; Tributary's own writes (new files, Delta commits) never
//!   rewrite one, and writes through the catalog drop what they replace at once.
//! - What is cached: reads of byte ranges, which is how DataFusion reads Parquet footers and
//!   column chunks, ORC stripes and CSV/JSON splits. What is not: reads of whole objects (the
//!   metastore's files, Delta logs, `_last_checkpoint`: small, and rewritten by other
//!   processes), ranges larger than [`MAX_CACHED_READ`], conditional or versioned requests,
//!   local files (already local).
//! - Metrics, at each process's `/metrics`: `tributary_fs_cache_read_bytes_total{catalog,
//!   source="cache"|"store"}`, `tributary_fs_cache_pages_written_total`,
//!   `tributary_fs_cache_pages_dropped_total`.
//! - Each process keeps its own directory under each cache directory and starts it empty: the
//!   index is in memory. Directories left by processes of this host that are gone are removed
//!   when a cache opens. The sizes are per process, as Trino's are per node: processes sharing
//!   a host and a directory (a scheduler and executors on one machine) each hold up to them.

mod dirs;
mod index;
mod metrics;
mod pages;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt};
use tokio::sync::Semaphore;

use crate::config::FsCacheConfig;
use crate::error::Result;
use index::{Current, Index, ObjectKey, PageFile};
use pages::{fill_from_files, pages_of, part, runs};
use store::CachedStore;

/// How long the store's word on an object's version is trusted before it is asked again.
pub const REVALIDATE_AFTER: Duration = Duration::from_secs(1);

/// Ranges larger than this go to the store uncached (they are streamed).
pub const MAX_CACHED_READ: u64 = 256 << 20;

/// Page writes in flight at once; pages fetched beyond that are not kept.
const WRITES_IN_FLIGHT: usize = 8;

/// Numbers the temporary files pages are written to.
static PARTIAL: AtomicU64 = AtomicU64::new(0);

/// Runs of missing pages fetched at once per read.
const FETCHES_IN_FLIGHT: usize = 8;

/// Caches open in this process, by their first directory and catalog: a catalog loaded twice
/// in one process shares its cache rather than clearing it.
static OPEN: LazyLock<Mutex<HashMap<OpenKey, Weak<FsCache>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// A cache's first directory and catalog.
type OpenKey = (PathBuf, String);

/// What a cache has done since it opened.
#[derive(Debug, Default)]
pub struct FsCacheStats {
    /// Bytes read from pages held on disk.
    pub hit_bytes: AtomicU64,
    /// Bytes fetched from the store (whole pages).
    pub miss_bytes: AtomicU64,
    /// Pages written to disk.
    pub pages_written: AtomicU64,
    /// Pages removed to make room, expired, or of objects that changed.
    pub pages_dropped: AtomicU64,
    /// Requests the store answered to check an object's version.
    pub checks: AtomicU64,
}

/// One catalog's file system cache in this process.
pub struct FsCache {
    catalog: String,
    /// This process's directory under each of `fs.cache.directories`.
    dirs: Vec<PathBuf>,
    page_size: u64,
    ttl: Duration,
    index: Mutex<Index>,
    writes: Arc<Semaphore>,
    stats: FsCacheStats,
}

impl fmt::Debug for FsCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsCache")
            .field("catalog", &self.catalog)
            .field("dirs", &self.dirs)
            .field("page_size", &self.page_size)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl FsCache {
    /// Opens `catalog`'s cache: this process's directories, created empty, after removing
    /// those of this host's processes that are gone.
    pub fn open(config: &FsCacheConfig, catalog: &str) -> Result<Arc<Self>> {
        let first = config
            .directories
            .first()
            .map(|(d, _)| d.clone())
            .unwrap_or_default();
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cache) = open
            .get(&(first.clone(), catalog.to_owned()))
            .and_then(Weak::upgrade)
        {
            return Ok(cache);
        }
        let dirs = dirs::own(config, catalog)?;
        let cache = Arc::new(Self {
            catalog: catalog.to_owned(),
            dirs,
            page_size: config.page_size,
            ttl: config.ttl,
            index: Mutex::new(Index::new(
                config.directories.iter().map(|(_, max)| *max).collect(),
            )),
            writes: Arc::new(Semaphore::new(WRITES_IN_FLIGHT)),
            stats: FsCacheStats::default(),
        });
        open.insert((first, catalog.to_owned()), Arc::downgrade(&cache));
        Ok(cache)
    }

    /// `inner` (the store of `bucket`) read through this cache.
    pub fn wrap(
        self: &Arc<Self>,
        bucket: &str,
        inner: Arc<dyn ObjectStore>,
    ) -> Arc<dyn ObjectStore> {
        Arc::new(CachedStore {
            cache: Arc::clone(self),
            bucket: Arc::from(bucket),
            inner,
        })
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> &FsCacheStats {
        &self.stats
    }

    /// Bytes held on disk, per directory.
    pub fn used(&self) -> Vec<u64> {
        self.lock().used().to_vec()
    }

    fn count_read(&self, cached: u64, fetched: u64) {
        self.stats.hit_bytes.fetch_add(cached, Ordering::Relaxed);
        self.stats.miss_bytes.fetch_add(fetched, Ordering::Relaxed);
        metrics::count_read(&self.catalog, cached, fetched);
    }

    fn count_pages(&self, written: u64, dropped: u64) {
        self.stats
            .pages_written
            .fetch_add(written, Ordering::Relaxed);
        self.stats
            .pages_dropped
            .fetch_add(dropped, Ordering::Relaxed);
        metrics::count_pages(&self.catalog, written, dropped);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file(&self, page: PageFile) -> PathBuf {
        self.dirs[page.dir].join(format!("{}.{}", page.object, page.page))
    }

    /// Deletes page files the index let go of (off the async threads).
    fn delete(&self, files: Vec<PageFile>) {
        if files.is_empty() {
            return;
        }
        self.count_pages(0, files.len() as u64);
        let paths: Vec<PathBuf> = files.into_iter().map(|f| self.file(f)).collect();
        let _detached = tokio::task::spawn_blocking(move || {
            for path in paths {
                let _ = std::fs::remove_file(path);
            }
        });
    }

    /// The object's current version: the index's if checked lately, else the store's.
    async fn current(
        &self,
        key: &ObjectKey,
        inner: &Arc<dyn ObjectStore>,
        recheck: bool,
    ) -> object_store::Result<Current> {
        let now = Instant::now();
        if !recheck && let Some(current) = self.lock().fresh(key, REVALIDATE_AFTER, now) {
            return Ok(current);
        }
        let meta = inner.head(&key.path).await?;
        self.stats.checks.fetch_add(1, Ordering::Relaxed);
        let (current, dropped) = self.lock().checked(key, meta, Instant::now());
        self.delete(dropped);
        Ok(current)
    }

    /// Reads `ranges` (each within the object) from held pages and the store.
    async fn read(
        self: &Arc<Self>,
        key: &ObjectKey,
        inner: &Arc<dyn ObjectStore>,
        ranges: &[Range<u64>],
    ) -> object_store::Result<(ObjectMeta, Vec<Bytes>)> {
        let mut recheck = false;
        loop {
            let current = self.current(key, inner, recheck).await?;
            let size = current.meta.size;
            if ranges.iter().any(|r| r.start >= r.end || r.end > size) {
                // Out of the object or empty: the store's own answer (and error).
                let bytes = inner.get_ranges(&key.path, ranges).await?;
                return Ok((current.meta, bytes));
            }
            match self.read_version(key, inner, &current, ranges).await {
                Ok(bytes) => return Ok((current.meta, bytes)),
                // The object changed since it was checked: check again, once.
                Err(object_store::Error::Precondition { .. }) if !recheck => recheck = true,
                Err(e) => return Err(e),
            }
        }
    }

    async fn read_version(
        self: &Arc<Self>,
        key: &ObjectKey,
        inner: &Arc<dyn ObjectStore>,
        current: &Current,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let ps = self.page_size;
        let size = current.meta.size;
        let mut pages: Vec<u64> = ranges.iter().flat_map(|r| pages_of(r, ps)).collect();
        pages.sort_unstable();
        pages.dedup();
        let now = Instant::now();
        let held = {
            let mut index = self.lock();
            let dropped = index.expire(self.ttl, now);
            let held = index.held(current.id, &pages, now);
            drop(index);
            self.delete(dropped);
            held
        };
        let held: Vec<u64> = pages
            .iter()
            .zip(&held)
            .filter_map(|(p, h)| h.then_some(*p))
            .collect();

        // Held pages: read straight into the answers, off the async threads.
        let mut buffers: Vec<Vec<u8>> = ranges
            .iter()
            .map(|r| vec![0; usize::try_from(r.end - r.start).unwrap_or(0)])
            .collect();
        let lost = if held.is_empty() {
            Vec::new()
        } else {
            let files: Vec<(u64, PathBuf)> = held
                .iter()
                .map(|p| {
                    (
                        *p,
                        self.file(PageFile {
                            dir: current.dir,
                            object: current.id,
                            page: *p,
                        }),
                    )
                })
                .collect();
            let ranges = ranges.to_vec();
            let (filled, lost, read) =
                tokio::task::spawn_blocking(move || fill_from_files(buffers, &ranges, &files, ps))
                    .await
                    .map_err(|e| generic(format!("reading cached pages: {e}")))?;
            buffers = filled;
            self.count_read(read, 0);
            lost
        };
        if !lost.is_empty() {
            let mut index = self.lock();
            for page in &lost {
                index.forget(current.id, *page);
            }
        }

        // Missing pages (and pages whose files went away): fetched in runs, If-Match.
        let missing: Vec<u64> = pages
            .iter()
            .filter(|p| !held.contains(p) || lost.contains(p))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(buffers.into_iter().map(Bytes::from).collect());
        }
        let runs = runs(&missing);
        let e_tag = current.meta.e_tag.clone();
        let fetched: Vec<(u64, Bytes)> = futures::stream::iter(runs.into_iter().map(|run| {
            let range = run.start * ps..(run.end * ps).min(size);
            let options = GetOptions {
                range: Some(GetRange::Bounded(range)),
                if_match: e_tag.clone(),
                ..GetOptions::default()
            };
            let path = &key.path;
            async move {
                let bytes = inner.get_opts(path, options).await?.bytes().await?;
                Ok::<_, object_store::Error>((run.start, bytes))
            }
        }))
        .buffered(FETCHES_IN_FLIGHT)
        .try_collect()
        .await?;
        let mut by_page: BTreeMap<u64, Bytes> = BTreeMap::new();
        for (first, bytes) in fetched {
            self.count_read(0, bytes.len() as u64);
            let mut offset = 0usize;
            let mut page = first;
            while offset < bytes.len() {
                let len = usize::try_from(ps)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - offset);
                by_page.insert(page, bytes.slice(offset..offset + len));
                offset += len;
                page += 1;
            }
        }
        for (range, buffer) in ranges.iter().zip(buffers.iter_mut()) {
            for page in pages_of(range, ps) {
                if let Some(bytes) = by_page.get(&page) {
                    let (from, to, at) = part(range, page, ps);
                    let src = bytes.get(from..to).ok_or_else(|| {
                        generic(format!(
                            "the store returned {} bytes of page {page} of {}",
                            bytes.len(),
                            key.path
                        ))
                    })?;
                    buffer[at..at + src.len()].copy_from_slice(src);
                }
            }
        }
        self.keep(current, by_page);
        Ok(buffers.into_iter().map(Bytes::from).collect())
    }

    /// Writes fetched pages to disk in the background and indexes them once written; skipped
    /// when enough writes are in flight already.
    fn keep(self: &Arc<Self>, current: &Current, pages: BTreeMap<u64, Bytes>) {
        let Ok(permit) = Arc::clone(&self.writes).try_acquire_owned() else {
            return;
        };
        let this = Arc::clone(self);
        let (dir, object) = (current.dir, current.id);
        let _detached = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            for (page, bytes) in pages {
                let file = PageFile { dir, object, page };
                let path = this.file(file);
                // Each writer its own temporary name: two reads may keep the same page at once.
                let partial = path.with_file_name(format!(
                    "{object}.{page}.{}.partial",
                    PARTIAL.fetch_add(1, Ordering::Relaxed)
                ));
                let written = std::fs::write(&partial, &bytes)
                    .and_then(|()| std::fs::rename(&partial, &path));
                if written.is_err() {
                    let _ = std::fs::remove_file(&partial);
                    continue;
                }
                let dropped = this.lock().add(file, bytes.len() as u64, Instant::now());
                this.count_pages(1, dropped.len() as u64);
                for f in dropped {
                    let _ = std::fs::remove_file(this.file(f));
                }
            }
        });
    }

    /// Forgets an object written, renamed or deleted through the catalog.
    fn invalidate(&self, bucket: &Arc<str>, path: &Path) {
        let dropped = self.lock().remove(&ObjectKey::new(bucket, path));
        self.delete(dropped);
    }
}

fn generic(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "fs.cache",
        source: message.into(),
    }
}

#[cfg(test)]
mod tests;
