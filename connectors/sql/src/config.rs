//! Typed configuration of `connector.name=mysql | mariadb | postgresql | sqlite` catalogs,
//! with Trino's property names.

use std::path::PathBuf;
use std::time::Duration;

use tributary_connector::{ConnectorError, Properties, Result, Secret};

use crate::dialect::Dialect;

/// What to do with a remote column whose type has no mapping (Trino's
/// `unsupported-type-handling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsupportedTypeHandling {
    /// Leave the column out of the table (Trino's default).
    Ignore,
    /// Read it as text (`varchar`), converted by the database.
    ConvertToVarchar,
}

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A server, by host and port.
    Server {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
        /// The database named in the URL (MySQL: optional; PostgreSQL: the database whose
        /// schemas the catalog shows).
        database: Option<String>,
    },
    /// An SQLite database file.
    File(PathBuf),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Server { host, port, .. } => write!(f, "{host}:{port}"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Configuration of one SQL database catalog.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    /// The catalog's name.
    pub catalog: String,
    /// The database flavour.
    pub dialect: Dialect,
    /// Where the database is.
    pub address: Address,
    /// `connection-user`.
    pub user: Option<String>,
    /// `connection-password`.
    pub password: Option<Secret>,
    /// `case-insensitive-name-matching`: find remote schemas and tables whatever their case.
    pub case_insensitive_name_matching: bool,
    /// `metadata.cache-ttl`: how long listings and table definitions are reused.
    pub metadata_cache_ttl: Duration,
    /// `connection-pool.max-size`: connections per node (scheduler or executor).
    pub pool_size: u32,
    /// `connection-timeout`: how long to wait for a connection.
    pub connect_timeout: Duration,
    /// `unsupported-type-handling`.
    pub unsupported_type_handling: UnsupportedTypeHandling,
    /// `filter-pushdown.enabled`: send WHERE clauses and LIMIT to the database.
    pub filter_pushdown: bool,
    /// `split.min-rows`: tables smaller than this are read as one split.
    pub min_rows_per_split: u64,
    /// `split.max-count`: most splits one table is cut into (default: the query's target
    /// partitions).
    pub max_splits: Option<usize>,
    /// `insert.batch-size`: rows per INSERT statement when writing.
    pub insert_batch_size: usize,
}

impl SqlConfig {
    /// Reads the configuration of a catalog; unknown keys are errors.
    pub fn from_properties(catalog: &str, dialect: Dialect, props: &Properties) -> Result<Self> {
        let mut r = props.reader(dialect.connector_name());
        let invalid = |key: &str, value: &str, expected: &str| ConnectorError::InvalidProperty {
            path: props.path().to_path_buf(),
            key: key.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        };
        let url = r.required_string("connection-url", dialect.url_example())?;
        let address = parse_url(dialect, &url).map_err(|e| invalid("connection-url", &url, &e))?;
        let user = r.optional_string("connection-user");
        // An empty value means no password (Trino's files often carry `connection-password=`).
        let password = r
            .optional_secret("connection-password")
            .filter(|p| !p.expose().is_empty());
        let case_insensitive_name_matching = r
            .optional::<bool>("case-insensitive-name-matching", "true or false")?
            .unwrap_or(false);
        // Trino's name for the cache of remote names; the same cache here, used when
        // `metadata.cache-ttl` is not given (a bad value is named under its own key).
        let names_ttl = r.optional_string("case-insensitive-name-matching.cache-ttl");
        let metadata_cache_ttl = match (r.optional_duration("metadata.cache-ttl")?, names_ttl) {
            (Some(ttl), _) => ttl,
            (None, None) => Duration::from_secs(0),
            (None, Some(text)) => tributary_connector::parse_duration(&text).ok_or_else(|| {
                invalid(
                    "case-insensitive-name-matching.cache-ttl",
                    &text,
                    "a duration with its unit, such as 10s, 5m or 0s",
                )
            })?,
        };
        let pool_size = r
            .optional::<u32>("connection-pool.max-size", "a positive integer")?
            .unwrap_or(8)
            .max(1);
        // Trino's pool switch; pooling is always on here.
        let _ = r.optional::<bool>("connection-pool.enabled", "true or false")?;
        let connect_timeout = r
            .optional_duration("connection-timeout")?
            .unwrap_or(Duration::from_secs(10));
        let unsupported_type_handling = match r.optional_choice(
            "unsupported-type-handling",
            &["IGNORE", "CONVERT_TO_VARCHAR"],
        )? {
            Some("CONVERT_TO_VARCHAR") => UnsupportedTypeHandling::ConvertToVarchar,
            _ => UnsupportedTypeHandling::Ignore,
        };
        let filter_pushdown = r
            .optional::<bool>("filter-pushdown.enabled", "true or false")?
            .unwrap_or(true);
        let min_rows_per_split = r
            .optional::<u64>("split.min-rows", "a positive integer")?
            .unwrap_or(50_000)
            .max(1);
        let max_splits = r.optional::<usize>("split.max-count", "a positive integer")?;
        let insert_batch_size = r
            .optional::<usize>("insert.batch-size", "a positive integer")?
            .unwrap_or(1000)
            .max(1);
        r.finish()?;
        Ok(Self {
            catalog: catalog.to_owned(),
            dialect,
            address,
            user,
            password,
            case_insensitive_name_matching,
            metadata_cache_ttl,
            pool_size,
            connect_timeout,
            unsupported_type_handling,
            filter_pushdown,
            min_rows_per_split,
            max_splits: max_splits.map(|n| n.max(1)),
            insert_batch_size,
        })
    }

    /// The database named in the URL.
    pub fn database(&self) -> Option<&str> {
        match &self.address {
            Address::Server { database, .. } => database.as_deref(),
            Address::File(_) => None,
        }
    }
}

/// Parses Trino's JDBC URL (`jdbc:mysql://host:3306/db?…`) or a plain URL
/// (`mysql://host/db`, `postgres://…`, `sqlite:/path/file.db`).
pub(crate) fn parse_url(dialect: Dialect, text: &str) -> std::result::Result<Address, String> {
    let text = text.trim();
    let plain = text.strip_prefix("jdbc:").unwrap_or(text);
    if dialect == Dialect::Sqlite {
        let path = plain
            .strip_prefix("sqlite://")
            .or_else(|| plain.strip_prefix("sqlite:"))
            .ok_or_else(|| "expected jdbc:sqlite:/path/to/file.db".to_owned())?;
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err("the URL names no database file".into());
        }
        return Ok(Address::File(PathBuf::from(path)));
    }
    let url = url::Url::parse(plain).map_err(|e| format!("not a URL ({e})"))?;
    if !dialect.url_schemes().contains(&url.scheme()) {
        return Err(format!(
            "scheme '{}' does not match the connector; expected {}",
            url.scheme(),
            dialect.url_example()
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "the URL names no host".to_owned())?
        .to_owned();
    let port = url.port().unwrap_or(dialect.default_port());
    let database = url
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    if dialect == Dialect::Postgres && database.is_none() {
        return Err(
            "a PostgreSQL URL must name the database: jdbc:postgresql://host:5432/db".into(),
        );
    }
    Ok(Address::Server {
        host,
        port,
        database,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trino_urls() {
        assert_eq!(
            parse_url(Dialect::MySql, "jdbc:mysql://db.local:3306/productsdb").expect("url"),
            Address::Server {
                host: "db.local".into(),
                port: 3306,
                database: Some("productsdb".into())
            }
        );
        assert_eq!(
            parse_url(Dialect::MySql, "jdbc:mariadb://127.0.0.1").expect("url"),
            Address::Server {
                host: "127.0.0.1".into(),
                port: 3306,
                database: None
            }
        );
        assert!(parse_url(Dialect::Postgres, "jdbc:postgresql://h:5432").is_err());
        assert!(parse_url(Dialect::Postgres, "jdbc:mysql://h:5432/x").is_err());
        assert_eq!(
            parse_url(Dialect::Sqlite, "jdbc:sqlite:/tmp/x.db").expect("url"),
            Address::File("/tmp/x.db".into())
        );
    }

    /// The error of a catalog file holding `pairs`.
    fn error_of(file: &str, dialect: Dialect, pairs: &[(&str, &str)]) -> String {
        let p = Properties::from_pairs(file, pairs.iter().copied());
        let catalog = file.trim_end_matches(".properties");
        SqlConfig::from_properties(catalog, dialect, &p)
            .expect_err("a bad file")
            .to_string()
    }

    #[test]
    fn rejects_unknown_and_bad_properties() {
        let e = error_of(
            "mysql.properties",
            Dialect::MySql,
            &[
                ("connector.name", "mysql"),
                ("connection-url", "jdbc:mysql://localhost:3306/productsdb"),
                ("connection-usr", "x"),
            ],
        );
        assert!(
            e.contains("connection-usr") && e.contains("connection-user"),
            "{e}"
        );
        let e = error_of(
            "pg.properties",
            Dialect::Postgres,
            &[
                ("connector.name", "postgresql"),
                ("connection-url", "jdbc:postgresql://localhost/test"),
                ("connection-password", "hunter2"),
                ("metadata.cache-ttl", "soon"),
            ],
        );
        assert!(
            e.contains("metadata.cache-ttl") && !e.contains("hunter2"),
            "{e}"
        );
        // Trino's other name for the cache's ttl is named under its own key.
        let e = error_of(
            "pg.properties",
            Dialect::Postgres,
            &[
                ("connector.name", "postgresql"),
                ("connection-url", "jdbc:postgresql://localhost/test"),
                ("case-insensitive-name-matching.cache-ttl", "soon"),
            ],
        );
        assert!(
            e.contains("case-insensitive-name-matching.cache-ttl") && e.contains("soon"),
            "{e}"
        );
    }
}
