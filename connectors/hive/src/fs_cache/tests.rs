use std::sync::atomic::AtomicUsize;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::{
    CopyOptions, GetResult, ListResult, MultipartUpload, PutMultipartOptions, PutOptions,
    PutPayload, PutResult,
};

use super::*;

const PAGE: u64 = 1024;

/// An in-memory store that counts what reaches it.
#[derive(Debug, Default)]
struct Counted {
    inner: InMemory,
    gets: AtomicUsize,
    heads: AtomicUsize,
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "counted")
    }
}

#[async_trait]
impl ObjectStore for Counted {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let counter = if options.head {
            &self.heads
        } else {
            &self.gets
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
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
        self.inner.copy_opts(from, to, options).await
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    counted: Arc<Counted>,
    cache: Arc<FsCache>,
    store: Arc<dyn ObjectStore>,
}

impl Fixture {
    /// Puts an object straight into the store, as another writer would.
    async fn upload(&self, path: &Path, bytes: Bytes) {
        self.counted.put(path, bytes.into()).await.expect("put");
    }

    /// This process's page directory.
    fn own_dir(&self) -> PathBuf {
        std::fs::read_dir(self.root.join("hive"))
            .expect("catalog dir")
            .flatten()
            .next()
            .expect("own dir")
            .path()
    }
}

fn fixture(max_pages: u64, ttl: Duration) -> Fixture {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().to_path_buf();
    let config = FsCacheConfig {
        directories: vec![(root.clone(), max_pages * PAGE)],
        ttl,
        page_size: PAGE,
    };
    let cache = FsCache::open(&config, "hive").expect("open");
    let counted = Arc::new(Counted::default());
    let store = cache.wrap("bucket", Arc::clone(&counted) as Arc<dyn ObjectStore>);
    Fixture {
        _dir: dir,
        root,
        counted,
        cache,
        store,
    }
}

fn data(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

/// An object's bytes, read as one range (whole-object reads are not cached).
async fn whole(f: &Fixture, path: &Path) -> Bytes {
    let size = f.counted.head(path).await.expect("head").size;
    f.store.get_range(path, 0..size).await.expect("read")
}

/// Waits until the background writes have indexed `pages` pages.
async fn written(cache: &FsCache, pages: u64) {
    for _ in 0..500 {
        if cache.stats().pages_written.load(Ordering::SeqCst) >= pages {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("pages not written: {:?}", cache.stats());
}

fn page_files(f: &Fixture) -> usize {
    std::fs::read_dir(f.own_dir())
        .expect("own dir")
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".partial"))
        .count()
}

#[tokio::test]
async fn a_second_read_comes_from_the_local_disk() {
    let f = fixture(64, Duration::from_secs(3600));
    let path = Path::from("orders/part-0.parquet");
    let bytes = data(3 * PAGE as usize + 500, 7);
    f.upload(&path, bytes.clone()).await;
    let ranges = [100..3000, 3100..3300, 0..(3 * PAGE + 500)];
    let first = f.store.get_ranges(&path, &ranges).await.expect("read");
    for (r, got) in ranges.iter().zip(&first) {
        assert_eq!(got, &bytes.slice(r.start as usize..r.end as usize));
    }
    let gets = f.counted.gets.load(Ordering::SeqCst);
    assert_eq!(gets, 1, "the missing pages are one run, fetched at once");
    written(&f.cache, 4).await;
    assert_eq!(f.cache.used(), vec![3 * PAGE + 500]);
    assert_eq!(page_files(&f), 4);

    let again = f.store.get_ranges(&path, &ranges).await.expect("read");
    assert_eq!(again, first);
    assert_eq!(
        f.counted.gets.load(Ordering::SeqCst),
        gets,
        "no read reached the store"
    );
    assert!(f.cache.stats().hit_bytes.load(Ordering::SeqCst) >= 3 * PAGE + 500);
    // One HEAD: the version was checked once within REVALIDATE_AFTER.
    assert_eq!(f.counted.heads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn get_answers_every_kind_of_range() {
    let f = fixture(64, Duration::from_secs(3600));
    let path = Path::from("t/f");
    let bytes = data(5000, 3);
    f.upload(&path, bytes.clone()).await;
    let cases = [
        (None, 0..5000), // a whole object: not cached, the same answer
        (Some(GetRange::Bounded(10..2100)), 10..2100),
        (Some(GetRange::Bounded(4000..9000)), 4000..5000),
        (Some(GetRange::Offset(4090)), 4090..5000),
        (Some(GetRange::Suffix(8)), 4992..5000),
    ];
    for _ in 0..2 {
        for (range, want) in &cases {
            let options = GetOptions {
                range: range.clone(),
                ..GetOptions::default()
            };
            let got = f.store.get_opts(&path, options).await.expect("get");
            assert_eq!(got.range, *want);
            assert_eq!(got.meta.size, 5000);
            let got = got.bytes().await.expect("bytes");
            assert_eq!(got, bytes.slice(want.start as usize..want.end as usize));
        }
        written(&f.cache, 5).await;
    }
    // Out of the object: the store's own error.
    let options = GetOptions {
        range: Some(GetRange::Bounded(6000..7000)),
        ..GetOptions::default()
    };
    assert!(f.store.get_opts(&path, options).await.is_err());
    // A HEAD is not cached and says what the store says.
    assert_eq!(f.store.head(&path).await.expect("head").size, 5000);
}

#[tokio::test]
async fn a_rewritten_object_is_read_anew() {
    let f = fixture(64, Duration::from_secs(3600));
    let path = Path::from("t/f");
    let old = data(2500, 1);
    f.upload(&path, old.clone()).await;
    assert_eq!(whole(&f, &path).await, old);
    written(&f.cache, 3).await;

    // Rewritten by someone else: seen once the version is checked again.
    let new = data(2600, 9);
    f.upload(&path, new.clone()).await;
    tokio::time::sleep(REVALIDATE_AFTER + Duration::from_millis(100)).await;
    assert_eq!(whole(&f, &path).await, new);
    written(&f.cache, 6).await;
    assert_eq!(
        f.cache.used(),
        vec![2600],
        "the old version's pages are gone"
    );

    // Written through the catalog: seen at once.
    let newer = data(700, 5);
    f.store.put(&path, newer.clone().into()).await.expect("put");
    assert_eq!(whole(&f, &path).await, newer);
}

#[tokio::test]
async fn pages_of_two_versions_are_never_mixed() {
    let f = fixture(64, Duration::from_secs(3600));
    let path = Path::from("t/f");
    let old = data(4 * PAGE as usize, 1);
    f.upload(&path, old.clone()).await;
    // Only the first page is held.
    let first = f.store.get_range(&path, 0..10).await.expect("read");
    assert_eq!(first, old.slice(0..10));
    written(&f.cache, 1).await;
    // Rewritten while the version is still trusted: the missing pages are fetched If-Match
    // the old ETag, the store refuses, the cache checks again and reads the new version whole.
    let new = data(4 * PAGE as usize, 2);
    f.upload(&path, new.clone()).await;
    let got = f.store.get_range(&path, 0..4 * PAGE).await.expect("read");
    assert_eq!(got, new);
}

#[tokio::test]
async fn the_least_recently_used_pages_make_room() {
    let f = fixture(4, Duration::from_secs(3600));
    let (a, b) = (Path::from("t/a"), Path::from("t/b"));
    f.upload(&a, data(3 * PAGE as usize, 1)).await;
    f.upload(&b, data(3 * PAGE as usize, 2)).await;
    whole(&f, &a).await;
    written(&f.cache, 3).await;
    whole(&f, &b).await;
    written(&f.cache, 6).await;
    assert_eq!(f.cache.used(), vec![4 * PAGE]);
    assert_eq!(page_files(&f), 4);
    assert!(f.cache.stats().pages_dropped.load(Ordering::SeqCst) >= 2);
    // b is whole; a lost its two oldest pages.
    let gets = f.counted.gets.load(Ordering::SeqCst);
    whole(&f, &b).await;
    assert_eq!(f.counted.gets.load(Ordering::SeqCst), gets);
    let got = whole(&f, &a).await;
    assert_eq!(got, data(3 * PAGE as usize, 1));
    assert_eq!(f.counted.gets.load(Ordering::SeqCst), gets + 1);
}

#[tokio::test]
async fn a_page_file_that_went_away_is_fetched_again() {
    let f = fixture(64, Duration::from_secs(3600));
    let path = Path::from("t/f");
    let bytes = data(2 * PAGE as usize, 4);
    f.upload(&path, bytes.clone()).await;
    whole(&f, &path).await;
    written(&f.cache, 2).await;
    for entry in std::fs::read_dir(f.own_dir()).expect("own").flatten() {
        std::fs::remove_file(entry.path()).expect("rm");
    }
    let got = whole(&f, &path).await;
    assert_eq!(got, bytes);
}

#[tokio::test]
async fn pages_unused_for_the_ttl_are_dropped() {
    let f = fixture(64, Duration::from_millis(50));
    let (a, b) = (Path::from("t/a"), Path::from("t/b"));
    f.upload(&a, data(2 * PAGE as usize, 1)).await;
    f.upload(&b, data(10, 2)).await;
    whole(&f, &a).await;
    written(&f.cache, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    whole(&f, &b).await;
    written(&f.cache, 3).await;
    assert_eq!(f.cache.used(), vec![10]);
}

#[tokio::test]
async fn directories_of_departed_processes_are_removed() {
    let dir = tempfile::tempdir().expect("dir");
    let parent = dir.path().join("lake");
    let host = dirs::host_name();
    let gone = parent.join(format!("{host}.4000000000"));
    let elsewhere = parent.join("another_host.1");
    for d in [&gone, &elsewhere] {
        std::fs::create_dir_all(d).expect("mkdir");
        std::fs::write(d.join("0.0"), b"x").expect("write");
    }
    let config = FsCacheConfig {
        directories: vec![(dir.path().to_path_buf(), 1 << 20)],
        ttl: Duration::from_secs(60),
        page_size: PAGE,
    };
    let cache = FsCache::open(&config, "lake").expect("open");
    assert!(!gone.exists());
    assert!(
        elsewhere.exists(),
        "another host's directory is not this process's to judge"
    );
    assert!(
        parent
            .join(format!("{host}.{}", std::process::id()))
            .is_dir()
    );
    // Opened again in this process: the same cache.
    let again = FsCache::open(&config, "lake").expect("open");
    assert!(Arc::ptr_eq(&cache, &again));
}
