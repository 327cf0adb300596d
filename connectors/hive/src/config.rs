//! Typed configuration of `connector.name=hive` catalogs, with Trino's property names.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tributary_connector::{ConnectorError, Properties, PropertyReader, Result, Secret};

use crate::storage::Location;

/// The storage format of a table (`format` table property, `hive.storage-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated text (Trino's `CSV`: OpenCSVSerde, `,`).
    Csv,
    /// Newline-delimited JSON.
    Json,
    /// Delimited text (`TEXTFILE`: fields separated by `\u0001` unless the table says so).
    Textfile,
    /// Apache ORC (read with orc-rust; writes are Parquet only).
    Orc,
}

impl Format {
    /// The names accepted in `format = '…'`.
    pub const NAMES: [&'static str; 5] = ["PARQUET", "ORC", "CSV", "JSON", "TEXTFILE"];

    /// Parses a format name (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "PARQUET" => Self::Parquet,
            "ORC" => Self::Orc,
            "CSV" => Self::Csv,
            "JSON" => Self::Json,
            "TEXTFILE" => Self::Textfile,
            _ => return None,
        })
    }

    /// The name as Trino writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Parquet => "PARQUET",
            Self::Orc => "ORC",
            Self::Csv => "CSV",
            Self::Json => "JSON",
            Self::Textfile => "TEXTFILE",
        }
    }

    /// The extension of files Tributary writes.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Orc => "orc",
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Textfile => "txt",
        }
    }
}

/// S3 settings: `hive.s3.*` (legacy) or `s3.*` (Trino's native S3 file system).
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// Access key id (`hive.s3.aws-access-key`, `s3.aws-access-key`).
    pub access_key: Option<Secret>,
    /// Secret key (`hive.s3.aws-secret-key`, `s3.aws-secret-key`).
    pub secret_key: Option<Secret>,
    /// Region (`hive.s3.region`, `s3.region`; default us-east-1).
    pub region: Option<String>,
    /// Endpoint URL for S3-compatible servers (`hive.s3.endpoint`, `s3.endpoint`).
    pub endpoint: Option<String>,
    /// Path-style addressing (`hive.s3.path-style-access`, `s3.path-style-access`).
    pub path_style: bool,
}

/// Trino's file system cache (`fs.cache.*`): remote files' bytes kept on local disks, in
/// pages, least recently used first out (see [`crate::fs_cache`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FsCacheConfig {
    /// `fs.cache.directories`, each with its most bytes (`fs.cache.max-sizes`, or
    /// `fs.cache.max-disk-usage-percentages` of its disk's capacity).
    pub directories: Vec<(PathBuf, u64)>,
    /// `fs.cache.ttl`: pages unused this long are dropped (default 7d).
    pub ttl: Duration,
    /// `fs.cache.page-size`: the unit read, kept and evicted (default 1MB).
    pub page_size: u64,
}

/// Where the metastore is.
#[derive(Debug, Clone)]
pub enum MetastoreConfig {
    /// Trino's file metastore: schemas and tables described by files under a directory.
    File {
        /// `hive.metastore.catalog.dir`.
        dir: Location,
    },
}

/// Configuration of one Hive catalog.
#[derive(Debug, Clone)]
pub struct HiveConfig {
    /// The catalog's name.
    pub catalog: String,
    /// The metastore.
    pub metastore: MetastoreConfig,
    /// S3 settings.
    pub s3: S3Config,
    /// `hive.max-split-size`: files larger than this are read as several splits.
    pub max_split_size: u64,
    /// `hive.storage-format`: format of tables created without `format` (default PARQUET).
    pub default_format: Format,
    /// `hive.target-max-file-size`: files written are rolled over at this size.
    pub target_max_file_size: u64,
    /// `hive.non-managed-table-writes-enabled`: allow INSERT/CTAS into external tables.
    pub non_managed_table_writes: bool,
    /// `hive.orc.use-column-names`: match ORC columns to the table's by name instead of by
    /// position (Trino's default: position).
    pub orc_use_column_names: bool,
    /// `fs.cache.enabled=true`: the file system cache's settings.
    pub fs_cache: Option<FsCacheConfig>,
}

const DEFAULT_MAX_SPLIT_SIZE: u64 = 64 << 20;
const DEFAULT_TARGET_FILE_SIZE: u64 = 1 << 30;

impl HiveConfig {
    /// Reads and validates a catalog's properties.
    pub fn from_properties(catalog: &str, properties: &Properties) -> Result<Self> {
        let mut reader = properties.reader("hive");
        let path = properties.path().to_path_buf();
        let invalid = |key: &str, value: &str, expected: &str| ConnectorError::InvalidProperty {
            path: path.clone(),
            key: key.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        };
        let kind = reader.optional_choice("hive.metastore", &["file", "thrift"])?;
        let uri = reader.optional_string("hive.metastore.uri");
        let dir = reader.optional_string("hive.metastore.catalog.dir");
        reader.optional_string("hive.metastore.username");
        let metastore = match (kind, uri, dir) {
            (Some("thrift") | None, Some(uri), _) | (Some(_), Some(uri), None) => {
                return Err(invalid(
                    "hive.metastore.uri",
                    &uri,
                    "a file metastore for now: the Thrift Hive Metastore is not supported yet; \
                     use hive.metastore=file with hive.metastore.catalog.dir=s3://bucket/path or file:///path",
                ));
            }
            (Some("thrift"), None, _) => {
                return Err(ConnectorError::MissingProperty {
                    path,
                    key: "hive.metastore.uri".into(),
                    expected: "thrift://host:9083 (not supported yet: use hive.metastore=file)"
                        .into(),
                });
            }
            (_, _, Some(dir)) => MetastoreConfig::File {
                dir: catalog_dir(&dir).map_err(|e| {
                    let reason = match e {
                        crate::error::HiveError::InvalidLocation { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    invalid(
                        "hive.metastore.catalog.dir",
                        &dir,
                        &format!("s3://bucket/path, file:///path or a local path ({reason})"),
                    )
                })?,
            },
            (_, None, None) => {
                return Err(ConnectorError::MissingProperty {
                    path,
                    key: "hive.metastore.catalog.dir".into(),
                    expected: "the file metastore's directory, s3://bucket/path or file:///path"
                        .into(),
                });
            }
        };
        let s3 = read_s3(&mut reader, &invalid)?;
        let max_split_size = reader
            .optional_data_size("hive.max-split-size")?
            .unwrap_or(DEFAULT_MAX_SPLIT_SIZE)
            .max(1 << 20);
        let target_max_file_size = reader
            .optional_data_size("hive.target-max-file-size")?
            .unwrap_or(DEFAULT_TARGET_FILE_SIZE)
            .max(1 << 20);
        let default_format = match reader.optional_choice("hive.storage-format", &Format::NAMES)? {
            Some(name) => Format::parse(name).unwrap_or(Format::Parquet),
            None => Format::Parquet,
        };
        let non_managed_table_writes = reader
            .optional::<bool>("hive.non-managed-table-writes-enabled", "true or false")?
            .unwrap_or(false);
        let orc_use_column_names = reader
            .optional::<bool>("hive.orc.use-column-names", "true or false")?
            .unwrap_or(false);
        let fs_cache = read_fs_cache(&mut reader, properties.path())?;
        reader.optional::<bool>("fs.native-s3.enabled", "true or false")?;
        reader.optional::<bool>("hive.recursive-directories", "true or false")?;
        reader.finish()?;
        Ok(Self {
            catalog: catalog.to_owned(),
            metastore,
            s3,
            max_split_size,
            default_format,
            target_max_file_size,
            non_managed_table_writes,
            orc_use_column_names,
            fs_cache,
        })
    }
}

/// The metastore directory: a location, or a local path relative to the working directory
/// (so the repository's `etc/` works from its root).
fn catalog_dir(text: &str) -> crate::error::Result<Location> {
    let trimmed = text.trim();
    if !trimmed.contains("://") && !trimmed.starts_with('/') && !trimmed.is_empty() {
        let cwd =
            std::env::current_dir().map_err(|e| crate::error::HiveError::InvalidLocation {
                location: text.to_owned(),
                reason: format!("cannot resolve a relative path: {e}"),
            })?;
        return Location::parse(&cwd.join(trimmed).display().to_string());
    }
    Location::parse(trimmed)
}

fn read_s3(
    reader: &mut PropertyReader<'_>,
    invalid: &dyn Fn(&str, &str, &str) -> ConnectorError,
) -> Result<S3Config> {
    let mut pick = |name: &str| {
        let legacy = reader.optional_string(&format!("hive.s3.{name}"));
        let native = reader.optional_string(&format!("s3.{name}"));
        native.or(legacy)
    };
    let access_key = pick("aws-access-key").map(Secret::new);
    let secret_key = pick("aws-secret-key").map(Secret::new);
    let region = pick("region");
    let endpoint = pick("endpoint");
    let path_style = match pick("path-style-access") {
        None => false,
        Some(v) => v
            .parse::<bool>()
            .map_err(|_| invalid("hive.s3.path-style-access", &v, "true or false"))?,
    };
    if let Some(e) = &endpoint
        && url::Url::parse(e).is_err()
    {
        return Err(invalid(
            "hive.s3.endpoint",
            e,
            "a URL such as http://127.0.0.1:8333",
        ));
    }
    Ok(S3Config {
        access_key,
        secret_key,
        region,
        endpoint,
        path_style,
    })
}

const FS_CACHE_DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const FS_CACHE_DEFAULT_PAGE: u64 = 1 << 20;

/// `fs.cache.*`: read whether or not the cache is enabled (Trino accepts them either way),
/// checked only when it is. Each directory is created here, so an unusable one stops start-up
/// naming the key.
fn read_fs_cache(reader: &mut PropertyReader<'_>, file: &Path) -> Result<Option<FsCacheConfig>> {
    let invalid = |key: &str, value: &str, expected: &str| ConnectorError::InvalidProperty {
        path: file.to_path_buf(),
        key: key.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    };
    let list = |text: Option<String>| -> Vec<String> {
        text.map(|t| {
            t.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
    };
    let enabled = reader
        .optional::<bool>("fs.cache.enabled", "true or false")?
        .unwrap_or(false);
    let directories = list(reader.optional_string("fs.cache.directories"));
    let sizes_text = reader.optional_string("fs.cache.max-sizes");
    let percents_text = reader.optional_string("fs.cache.max-disk-usage-percentages");
    let ttl = reader.optional_duration("fs.cache.ttl")?;
    let page_size = reader.optional_data_size("fs.cache.page-size")?;
    // Trino sends a file's splits to the same hosts to find their pages again; Ballista places
    // tasks itself, so this is accepted and has no effect.
    reader.optional::<u32>("fs.cache.preferred-hosts-count", "a positive integer")?;
    if !enabled {
        return Ok(None);
    }
    if directories.is_empty() {
        return Err(ConnectorError::MissingProperty {
            path: file.to_path_buf(),
            key: "fs.cache.directories".into(),
            expected: "local directories for the file system cache, comma-separated (fs.cache.enabled=true)".into(),
        });
    }
    let page_size = page_size.unwrap_or(FS_CACHE_DEFAULT_PAGE);
    if !(4 << 10..=64 << 20).contains(&page_size) {
        return Err(invalid(
            "fs.cache.page-size",
            &page_size.to_string(),
            "a size from 4kB to 64MB",
        ));
    }
    for dir in &directories {
        if !dir.starts_with('/') {
            return Err(invalid("fs.cache.directories", dir, "absolute paths"));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            invalid(
                "fs.cache.directories",
                dir,
                &format!("directories this process can create and write ({e})"),
            )
        })?;
    }
    let count = |key: &str, text: &str, values: &[String]| {
        if values.len() == directories.len() {
            Ok(())
        } else {
            Err(invalid(
                key,
                text,
                &format!(
                    "one value per directory of fs.cache.directories ({} of them), in the same order",
                    directories.len()
                ),
            ))
        }
    };
    let limits: Vec<u64> = match (sizes_text, percents_text) {
        (Some(sizes), None) => {
            let values = list(Some(sizes.clone()));
            count("fs.cache.max-sizes", &sizes, &values)?;
            values
                .iter()
                .map(|v| {
                    tributary_connector::parse_data_size(v)
                        .filter(|b| *b > 0)
                        .ok_or_else(|| invalid("fs.cache.max-sizes", v, "data sizes such as 10GB"))
                })
                .collect::<Result<_>>()?
        }
        (None, Some(percents)) => {
            let values = list(Some(percents.clone()));
            count("fs.cache.max-disk-usage-percentages", &percents, &values)?;
            let mut limits = Vec::new();
            for (dir, value) in directories.iter().zip(&values) {
                let percent = value.parse::<u64>().ok().filter(|p| (1..=100).contains(p));
                let Some(percent) = percent else {
                    return Err(invalid(
                        "fs.cache.max-disk-usage-percentages",
                        value,
                        "whole percentages from 1 to 100",
                    ));
                };
                let capacity = disk_capacity(Path::new(dir)).ok_or_else(|| {
                    invalid(
                        "fs.cache.max-disk-usage-percentages",
                        value,
                        &format!("a directory on a disk whose size is known ({dir} is not); use fs.cache.max-sizes"),
                    )
                })?;
                limits.push(capacity / 100 * percent);
            }
            limits
        }
        (Some(_), Some(percents)) => {
            return Err(invalid(
                "fs.cache.max-disk-usage-percentages",
                &percents,
                "either fs.cache.max-sizes or fs.cache.max-disk-usage-percentages, not both",
            ));
        }
        (None, None) => {
            return Err(ConnectorError::MissingProperty {
                path: file.to_path_buf(),
                key: "fs.cache.max-sizes".into(),
                expected: "the most each cache directory may hold (10GB, …), or fs.cache.max-disk-usage-percentages".into(),
            });
        }
    };
    Ok(Some(FsCacheConfig {
        directories: directories
            .into_iter()
            .map(PathBuf::from)
            .zip(limits)
            .collect(),
        ttl: ttl.unwrap_or(FS_CACHE_DEFAULT_TTL),
        page_size,
    }))
}

/// The capacity of the disk holding `dir` (the mount point that is its longest prefix).
fn disk_capacity(dir: &Path) -> Option<u64> {
    let dir = dir.canonicalize().ok()?;
    let disks = sysinfo::Disks::new_with_refreshed_list();
    disks
        .list()
        .iter()
        .filter(|d| dir.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(sysinfo::Disk::total_space)
        .filter(|bytes| *bytes > 0)
}

#[cfg(test)]
mod tests;
