//! The sqlx pool of a catalog, built from its configuration without connecting.

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::config::{Address, SqlConfig};
use crate::dialect::Dialect;

/// A pool of one of the three databases.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    /// MySQL / MariaDB.
    MySql(MySqlPool),
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite.
    Sqlite(SqlitePool),
}

pub(crate) fn make_pool(config: &SqlConfig) -> Pool {
    let size = config.pool_size;
    let timeout = config.connect_timeout;
    match (&config.address, config.dialect) {
        (
            Address::Server {
                host,
                port,
                database,
            },
            Dialect::MySql,
        ) => {
            let mut o = MySqlConnectOptions::new()
                .host(host)
                .port(*port)
                .charset("utf8mb4");
            if let Some(user) = &config.user {
                o = o.username(user);
            }
            if let Some(password) = &config.password {
                o = o.password(password.expose());
            }
            if let Some(db) = database {
                o = o.database(db);
            }
            Pool::MySql(
                MySqlPoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(timeout)
                    .connect_lazy_with(o),
            )
        }
        (
            Address::Server {
                host,
                port,
                database,
            },
            _,
        ) => {
            let mut o = PgConnectOptions::new_without_pgpass()
                .host(host)
                .port(*port)
                .application_name("tributary");
            if let Some(user) = &config.user {
                o = o.username(user);
            }
            if let Some(password) = &config.password {
                o = o.password(password.expose());
            }
            if let Some(db) = database {
                o = o.database(db);
            }
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(timeout)
                    .connect_lazy_with(o),
            )
        }
        (Address::File(path), _) => {
            let o = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true);
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(timeout)
                    .connect_lazy_with(o),
            )
        }
    }
}
