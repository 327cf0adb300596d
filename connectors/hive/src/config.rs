//! Typed configuration of `connector.name=hive` catalogs, with Trino's property names.

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
        let max_split_size = data_size(&mut reader, "hive.max-split-size", &invalid)?
            .unwrap_or(DEFAULT_MAX_SPLIT_SIZE)
            .max(1 << 20);
        let target_max_file_size = data_size(&mut reader, "hive.target-max-file-size", &invalid)?
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

/// Trino's data sizes: `64MB`, `1GB`, `512kB`, `100B`.
fn data_size(
    reader: &mut PropertyReader<'_>,
    key: &str,
    invalid: &dyn Fn(&str, &str, &str) -> ConnectorError,
) -> Result<Option<u64>> {
    let Some(text) = reader.optional_string(key) else {
        return Ok(None);
    };
    parse_data_size(&text)
        .map(Some)
        .ok_or_else(|| invalid(key, &text, "a data size such as 64MB"))
}

/// Parses a data size (`64MB` = 64 MiB, as Trino counts).
pub fn parse_data_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    Some((number * factor as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sizes() {
        assert_eq!(parse_data_size("64MB"), Some(64 << 20));
        assert_eq!(parse_data_size("1GB"), Some(1 << 30));
        assert_eq!(parse_data_size("512kB"), Some(512 << 10));
        assert_eq!(parse_data_size("lots"), None);
    }
}
