//! Catalogs over SQL databases: `connector.name=mysql | mariadb | postgresql | sqlite`, on
//! `sqlx`, with Trino's catalog properties.
//!
//! # What happens to a query
//! - **Metadata**: schemas, tables and columns come from the database's catalog
//!   (`information_schema`, `pg_catalog`, `sqlite_master`), cached for `metadata.cache-ttl`.
//!   Names are shown in lower case, as Trino does; a lower-case name finds a mixed-case
//!   remote name when it is the only match (`case-insensitive-name-matching=true` matches
//!   any case).
//! - **Pushdown**: projections, filters and LIMIT become the remote SQL, shown by EXPLAIN
//!   (`remote_sql=…`, with its bound `params`). A filter is pushed only where the database
//!   evaluates it as Tributary would: comparisons, `IN`, `BETWEEN`, `IS [NOT] NULL`,
//!   `AND`/`OR`/`NOT`, `LIKE`. Text comparisons follow the collation: in MySQL/MariaDB
//!   (case-insensitive by default) `=`, `IN` and `LIKE` are pushed as a superset that
//!   Tributary filters again, ordering comparisons are not pushed; in PostgreSQL equality
//!   and `LIKE` are exact, ordering is not pushed (locale collations); SQLite (binary
//!   collation) pushes all but `LIKE` exactly. Literals are always bound parameters.
//!   Whole aggregates (`count`, `count(DISTINCT)`, `sum` of integers and decimals, `min`,
//!   `max`, with GROUP BY on non-text keys — any key in SQLite) and top-N
//!   (`ORDER BY … LIMIT n` on non-text keys, NULL order spelt out) over one table are sent
//!   whole by a logical optimizer rule (`remote_plan.rs`) when every filter is exact; sums are
//!   cast remotely to the type Tributary's own sum has. Inner and left joins of two tables
//!   of the same catalog on equal keys (of one type the database compares exactly) run as
//!   one remote query. `filter-pushdown.enabled=false` turns
//!   all of it off.
//! - **Splits**: tables bigger than `split.min-rows` are read in parallel, one split per
//!   range: MySQL/MariaDB by ranges of the (first) integer primary-key column between its MIN and MAX
//!   (first and last ranges open), PostgreSQL by `ctid` block ranges (TID range scans),
//!   SQLite by `rowid`. At most the query's target partitions (or `split.max-count`). All
//!   PostgreSQL splits of one query import one exported snapshot (`pg_export_snapshot()`,
//!   held until the query ends), so they see the table at one moment; splits without bound
//!   parameters are read with `COPY … TO STDOUT (FORMAT binary)`.
//! - **Writes**: `CREATE SCHEMA`, `CREATE TABLE`, `DROP TABLE`, `DROP SCHEMA`, and
//!   `INSERT INTO … SELECT` / CTAS through the scheduler: multi-row INSERTs with bound
//!   values (`insert.batch-size` rows each), all in one transaction per statement.
//!
//! # Type mapping
//!
//! | Database type | Tributary (Arrow) | Written back as (MySQL / PostgreSQL / SQLite) |
//! | --- | --- | --- |
//! | `BOOLEAN`, MySQL `TINYINT(1)` | boolean | `BOOLEAN` / `BOOLEAN` / `BOOLEAN` |
//! | `TINYINT` | tinyint (Int8) | `TINYINT` / `SMALLINT` / `INTEGER` |
//! | `SMALLINT` | smallint (Int16) | `SMALLINT` |
//! | `INTEGER`, `MEDIUMINT` | integer (Int32) | `INTEGER` |
//! | `BIGINT` | bigint (Int64) | `BIGINT` / `BIGINT` / `INTEGER` |
//! | MySQL `TINYINT/SMALLINT/INT UNSIGNED` | the next wider signed type | — |
//! | MySQL `BIGINT UNSIGNED` | decimal(20,0) | — |
//! | `REAL`/`FLOAT` | real (Float32) | `FLOAT` / `REAL` / `REAL` |
//! | `DOUBLE` | double (Float64) | `DOUBLE` / `DOUBLE PRECISION` / `REAL` |
//! | `DECIMAL(p,s)`, p ≤ 38 | decimal(p,s), exact | `DECIMAL(p,s)` |
//! | `DECIMAL(p>38)`, PostgreSQL unbounded `NUMERIC` | unsupported | — |
//! | `CHAR`, `VARCHAR`, `TEXT`, MySQL `ENUM`/`SET` | varchar (Utf8) | `LONGTEXT` / `TEXT` / `TEXT` |
//! | `JSON`, `JSONB`, `UUID`, PostgreSQL enums, `CITEXT` | varchar (converted by the database) | — |
//! | `BINARY`, `VARBINARY`, `BLOB`, `BYTEA` | varbinary (Binary) | `LONGBLOB` / `BYTEA` / `BLOB` |
//! | `DATE` | date (Date32) | `DATE` |
//! | `TIME` | time(6) (Time64 µs) | `TIME(6)` |
//! | `TIMESTAMP(p)`, MySQL `DATETIME(p)` | timestamp(6) (µs) | `DATETIME(p)` / `TIMESTAMP(p)` |
//! | `TIMESTAMP WITH TIME ZONE`, MySQL `TIMESTAMP` | timestamp(6) with time zone (UTC) | `TIMESTAMP(p)` / `TIMESTAMPTZ` |
//! | PostgreSQL arrays of the scalars above | array (List) | — |
//! | anything else (geometry, intervals, bit, …) | `unsupported-type-handling`: IGNORE (default) leaves the column out, CONVERT_TO_VARCHAR reads the database's text of it | — |

mod catalog;
mod catalog_queries;
mod client;
mod config;
mod connector;
mod dialect;
mod error;
mod pg_copy;
mod pool;
mod pushdown;
mod reader;
mod remote_plan;
mod rows;
mod sink;
mod table;
mod types;
mod value;

pub use catalog::SqlCatalog;
pub use client::SqlClient;
pub use config::{Address, SqlConfig, UnsupportedTypeHandling};
pub use connector::{SqlConnector, SqlConnectorFactory};
pub use dialect::Dialect;
pub use error::{Result, SqlError};
pub use remote_plan::SqlPushdownRule;
pub use types::{ReadAs, RemoteColumn, map_column};
