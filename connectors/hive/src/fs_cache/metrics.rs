//! The caches' Prometheus counters, in the process's default registry (served with the
//! process's own at `/metrics`), labelled by catalog.

use std::sync::LazyLock;

struct Metrics {
    read_bytes: prometheus::IntCounterVec,
    pages_written: prometheus::IntCounterVec,
    pages_dropped: prometheus::IntCounterVec,
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| {
    let counter = |name: &str, help: &str, labels: &[&str]| {
        let c = prometheus::IntCounterVec::new(prometheus::Opts::new(name, help), labels).ok()?;
        prometheus::register(Box::new(c.clone())).ok()?;
        Some(c)
    };
    Some(Metrics {
        read_bytes: counter(
            "tributary_fs_cache_read_bytes_total",
            "Bytes the file system cache answered, by catalog and by where they came from (cache: local pages; store: fetched)",
            &["catalog", "source"],
        )?,
        pages_written: counter(
            "tributary_fs_cache_pages_written_total",
            "Pages the file system cache wrote to its local directories",
            &["catalog"],
        )?,
        pages_dropped: counter(
            "tributary_fs_cache_pages_dropped_total",
            "Pages the file system cache removed (room, ttl, objects that changed)",
            &["catalog"],
        )?,
    })
});

/// Counts bytes answered from local pages (`cached`) and fetched from the store.
pub(super) fn count_read(catalog: &str, cached: u64, fetched: u64) {
    if let Some(m) = METRICS.as_ref() {
        m.read_bytes
            .with_label_values(&[catalog, "cache"])
            .inc_by(cached);
        m.read_bytes
            .with_label_values(&[catalog, "store"])
            .inc_by(fetched);
    }
}

/// Counts pages written and dropped.
pub(super) fn count_pages(catalog: &str, written: u64, dropped: u64) {
    if let Some(m) = METRICS.as_ref() {
        m.pages_written
            .with_label_values(&[catalog])
            .inc_by(written);
        m.pages_dropped
            .with_label_values(&[catalog])
            .inc_by(dropped);
    }
}
