use super::*;

fn config(pairs: &[(&str, &str)]) -> Result<HiveConfig> {
    let mut all = vec![
        ("connector.name", "hive"),
        ("hive.metastore", "file"),
        (
            "hive.metastore.catalog.dir",
            "file:///tmp/tributary-metastore",
        ),
    ];
    all.extend_from_slice(pairs);
    HiveConfig::from_properties("hive", &Properties::from_pairs("hive.properties", all))
}

fn error(pairs: &[(&str, &str)]) -> String {
    match config(pairs) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn data_sizes_name_their_key() {
    let c = config(&[("hive.max-split-size", "32MB")]).expect("config");
    assert_eq!(c.max_split_size, 32 << 20);
    let e = error(&[("hive.max-split-size", "lots")]);
    assert!(
        e.contains("hive.max-split-size") && e.contains("64MB"),
        "{e}"
    );
}

#[test]
fn the_file_system_cache_is_off_unless_enabled() {
    let c = config(&[]).expect("config");
    assert_eq!(c.fs_cache, None);
    // Trino accepts the other keys while the cache is off.
    let c = config(&[
        ("fs.cache.enabled", "false"),
        ("fs.cache.directories", "/nonexistent/x"),
        ("fs.cache.max-sizes", "1GB"),
    ])
    .expect("config");
    assert_eq!(c.fs_cache, None);
}

#[test]
fn the_file_system_cache_takes_trinos_keys() {
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let names = format!("{}, {}", dirs[0].path().display(), dirs[1].path().display());
    let c = config(&[
        ("fs.cache.enabled", "true"),
        ("fs.cache.directories", &names),
        ("fs.cache.max-sizes", "2GB,512MB"),
        ("fs.cache.ttl", "2h"),
        ("fs.cache.page-size", "256kB"),
        ("fs.cache.preferred-hosts-count", "2"),
    ])
    .expect("config");
    let cache = c.fs_cache.expect("enabled");
    assert_eq!(
        cache.directories,
        vec![
            (dirs[0].path().to_path_buf(), 2 << 30),
            (dirs[1].path().to_path_buf(), 512 << 20)
        ]
    );
    assert_eq!(cache.ttl, Duration::from_secs(7200));
    assert_eq!(cache.page_size, 256 << 10);

    // Defaults, and a share of the disk instead of a size.
    let dir = dirs[0].path().display().to_string();
    let c = config(&[
        ("fs.cache.enabled", "true"),
        ("fs.cache.directories", &dir),
        ("fs.cache.max-disk-usage-percentages", "10"),
    ])
    .expect("config");
    let cache = c.fs_cache.expect("enabled");
    assert!(cache.directories[0].1 > 0);
    assert_eq!(cache.ttl, Duration::from_secs(7 * 86400));
    assert_eq!(cache.page_size, 1 << 20);
}

#[test]
fn a_bad_file_system_cache_setting_names_its_key() {
    let dir = tempfile::tempdir().expect("dir");
    let dir = dir.path().display().to_string();
    let on = ("fs.cache.enabled", "true");
    let e = error(&[on, ("fs.cache.max-sizes", "1GB")]);
    assert!(e.contains("fs.cache.directories"), "{e}");
    let e = error(&[on, ("fs.cache.directories", &dir)]);
    assert!(e.contains("fs.cache.max-sizes"), "{e}");
    let e = error(&[
        on,
        ("fs.cache.directories", &dir),
        ("fs.cache.max-sizes", "1GB,2GB"),
    ]);
    assert!(
        e.contains("fs.cache.max-sizes") && e.contains("one value per directory"),
        "{e}"
    );
    let e = error(&[
        on,
        ("fs.cache.directories", "cache"),
        ("fs.cache.max-sizes", "1GB"),
    ]);
    assert!(e.contains("absolute"), "{e}");
    let e = error(&[
        on,
        ("fs.cache.directories", &dir),
        ("fs.cache.max-disk-usage-percentages", "120"),
    ]);
    assert!(
        e.contains("fs.cache.max-disk-usage-percentages") && e.contains("1 to 100"),
        "{e}"
    );
    let e = error(&[
        on,
        ("fs.cache.directories", &dir),
        ("fs.cache.max-sizes", "1GB"),
        ("fs.cache.ttl", "forever"),
    ]);
    assert!(e.contains("fs.cache.ttl"), "{e}");
    let e = error(&[
        on,
        ("fs.cache.directories", &dir),
        ("fs.cache.max-sizes", "1GB"),
        ("fs.cache.page-size", "1B"),
    ]);
    assert!(e.contains("fs.cache.page-size"), "{e}");
    let e = error(&[("fs.cache.enable", "true")]);
    assert!(e.contains("fs.cache.enable"), "{e}");
}
