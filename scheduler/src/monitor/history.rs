//! Finished queries persisted by the scheduler (an embedded SQLite file by default, a
//! PostgreSQL database when configured), so they, their stages and statistics survive a
//! restart. Rows older than the retention or beyond the most recent `max_queries` are
//! deleted on the first write and every `PRUNE_EVERY` writes after.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::now_ms;
use super::query_info::QueryInfo;
use crate::error::{Result, SchedulerError};

/// Where and how long history is kept.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    /// `sqlite:///path/history.db` (a plain path also means SQLite) or `postgresql://…`.
    pub url: String,
    /// Queries older than this are deleted.
    pub max_age: Duration,
    /// At most this many queries are kept.
    pub max_queries: usize,
    /// When the store cannot be opened: keep history in memory only (with a warning) rather
    /// than refuse to start (for the default location; an explicit URL must work).
    pub optional: bool,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// The history store.
#[derive(Debug, Clone)]
pub struct History {
    pool: Pool,
    options: HistoryOptions,
    saves: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Runs `$body` with the store's pool bound to `$p` and the statement text of its dialect
/// bound to `$sql` (`$statement` is `[SQLite, PostgreSQL]`): one body serves both databases,
/// whose statements differ only in placeholders.
macro_rules! on_pool {
    ($pool:expr, $statement:expr, |$p:ident, $sql:ident| $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => {
                let $sql: &'static str = $statement[0];
                $body
            }
            Pool::Postgres($p) => {
                let $sql: &'static str = $statement[1];
                $body
            }
        }
    };
}

/// Insert or replace one query's record.
const UPSERT: [&str; 2] = [
    "INSERT INTO tributary_query_history (query_id, created_ms, state, info) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (query_id) DO UPDATE SET \
     created_ms = excluded.created_ms, state = excluded.state, info = excluded.info",
    "INSERT INTO tributary_query_history (query_id, created_ms, state, info) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (query_id) DO UPDATE SET \
     created_ms = excluded.created_ms, state = excluded.state, info = excluded.info",
];

/// Delete records older than a time or beyond the newest N.
const PRUNE: [&str; 2] = [
    "DELETE FROM tributary_query_history WHERE created_ms < ?1 OR query_id IN \
     (SELECT query_id FROM tributary_query_history ORDER BY created_ms DESC LIMIT -1 OFFSET ?2)",
    "DELETE FROM tributary_query_history WHERE created_ms < $1 OR query_id IN \
     (SELECT query_id FROM tributary_query_history ORDER BY created_ms DESC OFFSET $2)",
];

/// The newest N records.
const LOAD: [&str; 2] = [
    "SELECT info FROM tributary_query_history ORDER BY created_ms DESC LIMIT ?1",
    "SELECT info FROM tributary_query_history ORDER BY created_ms DESC LIMIT $1",
];

/// Retention is applied on the first save and then every this many saves.
const PRUNE_EVERY: u64 = 50;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS tributary_query_history (\
    query_id VARCHAR(64) PRIMARY KEY, \
    created_ms BIGINT NOT NULL, \
    state VARCHAR(16) NOT NULL, \
    info TEXT NOT NULL)";
const INDEX: &str = "CREATE INDEX IF NOT EXISTS tributary_query_history_created \
    ON tributary_query_history (created_ms)";

impl History {
    /// Opens (and creates) the store.
    pub async fn open(options: HistoryOptions) -> Result<Self> {
        let url = options.url.trim();
        let failed = |e: sqlx::Error| {
            SchedulerError::Config(format!("query history store '{}': {e}", redact(url)))
        };
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(failed)?;
            Pool::Postgres(pool)
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    SchedulerError::Config(format!(
                        "query history store: cannot create {}: {e}",
                        dir.display()
                    ))
                })?;
            }
            let connect = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(connect)
                .await
                .map_err(failed)?;
            Pool::Sqlite(pool)
        };
        for statement in [CREATE, INDEX] {
            on_pool!(&pool, [statement, statement], |p, sql| {
                sqlx::query(sql).execute(p).await.map(|_| ())
            })
            .map_err(failed)?;
        }
        Ok(Self {
            pool,
            options,
            saves: std::sync::Arc::default(),
        })
    }

    /// Stores a finished query (replacing an earlier record of it) and applies retention.
    pub async fn save(&self, info: &QueryInfo) -> Result<()> {
        let json = serde_json::to_string(info)
            .map_err(|e| SchedulerError::Engine(format!("cannot encode query history: {e}")))?;
        let oldest = now_ms() - self.options.max_age.as_millis() as i64;
        let keep = self.options.max_queries as i64;
        let state = info.state.as_str();
        let prune = self
            .saves
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY);
        on_pool!(&self.pool, UPSERT, |p, sql| {
            sqlx::query(sql)
                .bind(&info.query_id)
                .bind(info.created_ms)
                .bind(state)
                .bind(&json)
                .execute(p)
                .await
                .map(|_| ())
        })?;
        if !prune {
            return Ok(());
        }
        on_pool!(&self.pool, PRUNE, |p, sql| {
            sqlx::query(sql)
                .bind(oldest)
                .bind(keep)
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// The most recent `limit` queries, oldest first.
    pub async fn load(&self, limit: usize) -> Result<Vec<QueryInfo>> {
        let limit = limit as i64;
        let rows: Vec<(String,)> = on_pool!(&self.pool, LOAD, |p, sql| {
            sqlx::query_as(sql).bind(limit).fetch_all(p).await
        })?;
        let mut queries: Vec<QueryInfo> = rows
            .into_iter()
            .filter_map(|(json,)| match serde_json::from_str(&json) {
                Ok(info) => Some(info),
                Err(e) => {
                    tracing::warn!("skipping unreadable query history record: {e}");
                    None
                }
            })
            .collect();
        queries.reverse();
        Ok(queries)
    }
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::QueryState;

    #[tokio::test]
    async fn keeps_the_newest_queries_and_reads_them_back() {
        let path = std::env::temp_dir().join(format!("history-{}.db", uuid::Uuid::new_v4()));
        let options = HistoryOptions {
            url: path.display().to_string(),
            max_age: Duration::from_secs(3600),
            max_queries: 10,
            optional: false,
        };
        let history = History::open(options.clone()).await.expect("open");
        let now = now_ms();
        for n in 0..=PRUNE_EVERY {
            let info = QueryInfo {
                query_id: format!("q{n:03}"),
                state: QueryState::Finished,
                created_ms: now + n as i64,
                ..QueryInfo::default()
            };
            history.save(&info).await.expect("save");
        }
        // A record older than the retention goes at the next prune.
        let old = QueryInfo {
            query_id: "old".into(),
            created_ms: now - 7200 * 1000,
            ..QueryInfo::default()
        };
        history.save(&old).await.expect("save");
        let again = History::open(options).await.expect("reopen");
        let kept = again.load(100).await.expect("load");
        let ids: Vec<_> = kept.iter().map(|q| q.query_id.as_str()).collect();
        assert_eq!(ids.len(), 11, "{ids:?}");
        assert_eq!(ids.last(), Some(&format!("q{PRUNE_EVERY:03}").as_str()));
        assert!(ids.contains(&"old"), "kept until the next prune");
        let _ = std::fs::remove_file(&path);
    }
}
