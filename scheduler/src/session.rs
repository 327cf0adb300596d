//! Client sessions: what `SET SESSION`, `RESET SESSION` and `USE` change, keyed by the
//! bearer token a handshake hands out.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballista_core::config::{
    BALLISTA_BROADCAST_JOIN_THRESHOLD_BYTES, BALLISTA_BROADCAST_JOIN_THRESHOLD_ROWS,
};
use datafusion::prelude::SessionConfig;

use crate::error::{Result, SchedulerError};

/// Sessions idle longer than this are forgotten.
const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// One session property, as `SHOW SESSION` lists it.
#[derive(Debug, Clone, Copy)]
pub struct SessionPropertySpec {
    /// Name used in `SET SESSION`.
    pub name: &'static str,
    /// Default value.
    pub default: &'static str,
    /// SQL type of the value.
    pub sql_type: &'static str,
    /// What it does.
    pub description: &'static str,
}

/// The session properties Tributary knows (Trino's names).
pub const SESSION_PROPERTIES: [SessionPropertySpec; 17] = [
    SessionPropertySpec {
        name: "join_distribution_type",
        default: "AUTOMATIC",
        sql_type: "varchar",
        description: "Join distribution type: AUTOMATIC (by statistics), BROADCAST or PARTITIONED",
    },
    SessionPropertySpec {
        name: "join_max_broadcast_table_size",
        default: "100MB",
        sql_type: "varchar",
        description: "Largest build side broadcast to every task under AUTOMATIC",
    },
    SessionPropertySpec {
        name: "join_reordering_strategy",
        default: "AUTOMATIC",
        sql_type: "varchar",
        description: "Join order: AUTOMATIC (a star's largest table first, the others by \
                      size, by statistics), ELIMINATE_CROSS_JOINS or NONE (as written)",
    },
    SessionPropertySpec {
        name: "enable_dynamic_filtering",
        default: "true",
        sql_type: "boolean",
        description: "Collect the keys of a join's selective build side before its probe side \
                      runs and filter the probe side's scan by them",
    },
    SessionPropertySpec {
        name: "dynamic_filtering_wait_timeout",
        default: "10s",
        sql_type: "varchar",
        description: "Longest a query waits for a dynamic filter's keys; past it, the query \
                      runs without that filter",
    },
    SessionPropertySpec {
        name: "dynamic_filtering_max_distinct_values",
        default: "10000",
        sql_type: "integer",
        description: "Most distinct build keys a dynamic filter lists (IN); with more, it \
                      filters by their range",
    },
    SessionPropertySpec {
        name: "dynamic_filtering_max_build_rows",
        default: "5000000",
        sql_type: "integer",
        description: "Largest build side, in rows its sources hold by statistics, whose keys \
                      are collected for a dynamic filter",
    },
    SessionPropertySpec {
        name: "dynamic_filtering_max_reused_build_rows",
        default: "20000000",
        sql_type: "integer",
        description: "Largest HAVING subquery of a semi join (IN, EXISTS over GROUP BY … \
                      HAVING), in rows its sources hold, whose keys are collected to stand in \
                      for it in the query (it then runs once, on the scheduler)",
    },
    SessionPropertySpec {
        name: "skew_join_enabled",
        default: "true",
        sql_type: "boolean",
        description: "Split a partitioned join's skewed partition (its side far above the median \
                      partition of the shuffle) into pieces joined in parallel: the skewed side \
                      split, the other side's matching partition joined with every piece",
    },
    SessionPropertySpec {
        name: "skew_join_factor",
        default: "2",
        sql_type: "integer",
        description: "A join partition is skewed when its side holds this many times the median \
                      partition of the same shuffle (and at least skew_join_min_size)",
    },
    SessionPropertySpec {
        name: "skew_join_min_size",
        default: "64MB",
        sql_type: "varchar",
        description: "Smallest join partition side that is split as skewed",
    },
    SessionPropertySpec {
        name: "query_max_run_time",
        default: "100d",
        sql_type: "varchar",
        description: "Longest a query may take, queued time included, before it is cancelled",
    },
    SessionPropertySpec {
        name: "query_max_execution_time",
        default: "100d",
        sql_type: "varchar",
        description: "Longest a query may execute on the cluster (queued and planning time \
                      excluded) before it is cancelled",
    },
    SessionPropertySpec {
        name: "query_max_memory_per_node",
        default: "0B",
        sql_type: "varchar",
        description: "Memory a query may reserve on each executor, below the executors' \
                      query.max-memory-per-node (0B: theirs)",
    },
    SessionPropertySpec {
        name: "hash_partition_count",
        default: "0",
        sql_type: "integer",
        description: "Partitions of shuffles, joins and aggregations (0: number of cluster cores)",
    },
    SessionPropertySpec {
        name: "materialized_view_max_staleness",
        default: "",
        sql_type: "varchar",
        description: "How long after its last refresh a stale materialized view is still read \
                      from its storage; past it, queries of the view read its sources ('': \
                      always the storage, flagged stale)",
    },
    SessionPropertySpec {
        name: "materialized_view_rewrite_enabled",
        default: "true",
        sql_type: "boolean",
        description: "Answer queries that contain a fresh materialized view's query from the \
                      view's storage",
    },
];

/// The state of one client session.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Session id (Ballista's session id too).
    pub id: String,
    /// Authenticated user.
    pub user: String,
    /// Catalog of unqualified names (`USE`).
    pub catalog: Option<String>,
    /// Schema of unqualified names (`USE`).
    pub schema: Option<String>,
    /// Properties set with `SET SESSION`, by name.
    pub properties: BTreeMap<String, String>,
}

impl Session {
    /// The value in force for a property (set or default).
    pub fn property(&self, name: &str) -> Option<String> {
        self.properties.get(name).cloned().or_else(|| {
            SESSION_PROPERTIES
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.default.to_owned())
        })
    }

    /// Sets a property after checking its name and value.
    pub fn set_property(&mut self, name: &str, value: &str) -> Result<()> {
        let value = normalise(name, value)?;
        // Check that it applies before keeping it.
        let mut probe = crate::cluster::base_config();
        apply(&mut probe, name, &value)?;
        self.properties.insert(name.to_owned(), value);
        Ok(())
    }

    /// Resets a property to its default.
    pub fn reset_property(&mut self, name: &str) -> Result<()> {
        if !is_known(name) {
            return Err(unknown(name));
        }
        self.properties.remove(name);
        Ok(())
    }

    /// Applies the session to a query's DataFusion/Ballista configuration.
    pub fn configure(&self, mut config: SessionConfig) -> Result<SessionConfig> {
        // `join_distribution_type` last: BROADCAST and PARTITIONED override the threshold
        // `join_max_broadcast_table_size` sets (which only bounds AUTOMATIC).
        let (distribution, others): (Vec<_>, Vec<_>) = self
            .properties
            .iter()
            .partition(|(name, _)| name.as_str() == "join_distribution_type");
        for (name, value) in others.into_iter().chain(distribution) {
            apply(&mut config, name, value)?;
        }
        if let (Some(catalog), Some(schema)) = (&self.catalog, &self.schema) {
            config = config.with_default_catalog_and_schema(catalog, schema);
        }
        Ok(config)
    }

    /// `query_max_run_time` as a duration.
    pub fn max_run_time(&self) -> Duration {
        self.property("query_max_run_time")
            .and_then(|v| parse_duration(&v))
            .unwrap_or(Duration::from_secs(100 * 86400))
    }

    /// `materialized_view_max_staleness`, when set.
    pub fn max_staleness(&self) -> Option<Duration> {
        self.property("materialized_view_max_staleness")
            .and_then(|v| parse_duration(&v))
    }

    /// `materialized_view_rewrite_enabled`.
    pub fn rewrite_enabled(&self) -> bool {
        self.property("materialized_view_rewrite_enabled")
            .is_none_or(|v| v == "true")
    }

    /// `query_max_execution_time`: how long a query may execute, not counting its time
    /// queued and planning.
    pub fn max_execution_time(&self) -> Duration {
        self.property("query_max_execution_time")
            .and_then(|v| parse_duration(&v))
            .unwrap_or(Duration::from_secs(100 * 86400))
    }
}

fn is_known(name: &str) -> bool {
    SESSION_PROPERTIES.iter().any(|p| p.name == name)
        || name.starts_with("datafusion.")
        || name.starts_with("ballista.")
}

fn unknown(name: &str) -> SchedulerError {
    SchedulerError::SessionProperty(format!(
        "unknown session property '{name}'; known: {} (and any datafusion.* or ballista.* setting)",
        SESSION_PROPERTIES
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn invalid(name: &str, value: &str, expected: &str) -> SchedulerError {
    SchedulerError::SessionProperty(format!(
        "invalid value '{value}' for session property '{name}': expected {expected}"
    ))
}

fn normalise(name: &str, value: &str) -> Result<String> {
    match name {
        "join_distribution_type" => {
            let v = value.to_ascii_uppercase();
            match v.as_str() {
                "AUTOMATIC" | "BROADCAST" | "PARTITIONED" => Ok(v),
                _ => Err(invalid(name, value, "AUTOMATIC, BROADCAST or PARTITIONED")),
            }
        }
        "join_reordering_strategy" => {
            let v = value.to_ascii_uppercase();
            match v.as_str() {
                "AUTOMATIC" | "ELIMINATE_CROSS_JOINS" | "NONE" => Ok(v),
                _ => Err(invalid(
                    name,
                    value,
                    "AUTOMATIC, ELIMINATE_CROSS_JOINS or NONE",
                )),
            }
        }
        "join_max_broadcast_table_size" => {
            parse_data_size(value)
                .ok_or_else(|| invalid(name, value, "a data size such as '100MB'"))?;
            Ok(value.to_owned())
        }
        "query_max_memory_per_node" | "skew_join_min_size" => {
            parse_data_size(value)
                .ok_or_else(|| invalid(name, value, "a data size such as '1GB'"))?;
            Ok(value.to_owned())
        }
        "materialized_view_max_staleness" if value.is_empty() => Ok(String::new()),
        "materialized_view_rewrite_enabled" | "enable_dynamic_filtering" | "skew_join_enabled" => {
            match value.to_ascii_lowercase().as_str() {
                v @ ("true" | "false") => Ok(v.to_owned()),
                _ => Err(invalid(name, value, "true or false")),
            }
        }
        "query_max_run_time"
        | "query_max_execution_time"
        | "materialized_view_max_staleness"
        | "dynamic_filtering_wait_timeout" => {
            parse_duration(value)
                .ok_or_else(|| invalid(name, value, "a duration such as '30s', '10m' or '1h'"))?;
            Ok(value.to_owned())
        }
        "skew_join_factor" => match value.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(value.to_owned()),
            _ => Err(invalid(name, value, "an integer of at least 1")),
        },
        "hash_partition_count"
        | "dynamic_filtering_max_distinct_values"
        | "dynamic_filtering_max_build_rows"
        | "dynamic_filtering_max_reused_build_rows" => {
            value
                .parse::<usize>()
                .map_err(|_| invalid(name, value, "a non-negative integer"))?;
            Ok(value.to_owned())
        }
        _ if is_known(name) => Ok(value.to_owned()),
        _ => Err(unknown(name)),
    }
}

fn apply(config: &mut SessionConfig, name: &str, value: &str) -> Result<()> {
    let options = config.options_mut();
    let set = |options: &mut datafusion::config::ConfigOptions, key: &str, v: &str| {
        options
            .set(key, v)
            .map_err(|e| SchedulerError::SessionProperty(format!("cannot set '{key}': {e}")))
    };
    match name {
        "join_distribution_type" => match value {
            "BROADCAST" => {
                set(
                    options,
                    "datafusion.optimizer.hash_join_single_partition_threshold",
                    &u64::MAX.to_string(),
                )?;
                set(
                    options,
                    "datafusion.optimizer.hash_join_single_partition_threshold_rows",
                    &u64::MAX.to_string(),
                )?;
                set(
                    options,
                    BALLISTA_BROADCAST_JOIN_THRESHOLD_BYTES,
                    &u64::MAX.to_string(),
                )?;
                set(
                    options,
                    BALLISTA_BROADCAST_JOIN_THRESHOLD_ROWS,
                    &u64::MAX.to_string(),
                )
            }
            "PARTITIONED" => {
                set(
                    options,
                    "datafusion.optimizer.hash_join_single_partition_threshold",
                    "0",
                )?;
                set(
                    options,
                    "datafusion.optimizer.hash_join_single_partition_threshold_rows",
                    "0",
                )?;
                set(options, BALLISTA_BROADCAST_JOIN_THRESHOLD_BYTES, "0")?;
                set(options, BALLISTA_BROADCAST_JOIN_THRESHOLD_ROWS, "0")
            }
            _ => Ok(()),
        },
        "join_max_broadcast_table_size" => {
            let bytes = parse_data_size(value).unwrap_or(100 << 20);
            set(
                options,
                "datafusion.optimizer.hash_join_single_partition_threshold",
                &bytes.to_string(),
            )?;
            set(
                options,
                BALLISTA_BROADCAST_JOIN_THRESHOLD_BYTES,
                &bytes.to_string(),
            )
        }
        "hash_partition_count" => match value {
            "0" => Ok(()),
            n => set(options, "datafusion.execution.target_partitions", n),
        },
        "query_max_run_time"
        | "query_max_execution_time"
        | "materialized_view_max_staleness"
        | "materialized_view_rewrite_enabled"
        | "join_reordering_strategy"
        | "enable_dynamic_filtering"
        | "dynamic_filtering_wait_timeout"
        | "dynamic_filtering_max_distinct_values"
        | "dynamic_filtering_max_build_rows"
        | "dynamic_filtering_max_reused_build_rows" => Ok(()),
        // Travel with every task; executors split skewed join partitions by them.
        "skew_join_enabled" => set(options, "tributary.skew_join_enabled", value),
        "skew_join_factor" => set(options, "tributary.skew_join_factor", value),
        "skew_join_min_size" => set(
            options,
            "tributary.skew_join_min_bytes",
            &parse_data_size(value).unwrap_or(0).to_string(),
        ),
        // Travels with every task; executors apply it to the query's memory pool.
        "query_max_memory_per_node" => set(
            options,
            "tributary.max_memory_per_node",
            &parse_data_size(value).unwrap_or(0).to_string(),
        ),
        key => set(options, key, value),
    }
}

/// `100MB`, `1.5GB`, `512kB`, `42B` → bytes.
pub fn parse_data_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    (number >= 0.0).then_some((number * factor) as u64)
}

/// `500ms`, `30s`, `10m`, `1h`, `2d` → duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        _ => return None,
    };
    (seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// A shared, lockable session.
pub type SessionRef = Arc<Mutex<Session>>;

/// Sessions by bearer token.
#[derive(Debug, Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<String, (SessionRef, Instant)>>,
    anonymous: SessionRef,
}

impl SessionStore {
    /// An empty store.
    pub fn new() -> Self {
        let anonymous = Session {
            id: uuid::Uuid::new_v4().to_string(),
            user: "anonymous".into(),
            ..Session::default()
        };
        Self {
            sessions: Mutex::new(HashMap::new()),
            anonymous: Arc::new(Mutex::new(anonymous)),
        }
    }

    /// Opens a session for `user`; returns its bearer token.
    pub fn open(&self, user: &str) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            user: user.to_owned(),
            ..Session::default()
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, (_, used)| used.elapsed() < SESSION_IDLE_TIMEOUT);
        sessions.insert(
            token.clone(),
            (Arc::new(Mutex::new(session)), Instant::now()),
        );
        token
    }

    /// The session keyed by `key` (basic credentials sent on every call), opened if absent.
    pub fn get_or_open(&self, key: &str, user: &str) -> SessionRef {
        if let Some(s) = self.get(key) {
            return s;
        }
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            user: user.to_owned(),
            ..Session::default()
        };
        let session = Arc::new(Mutex::new(session));
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), (Arc::clone(&session), Instant::now()));
        session
    }

    /// The session of a token.
    pub fn get(&self, token: &str) -> Option<SessionRef> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.get_mut(token).map(|(s, used)| {
            *used = Instant::now();
            Arc::clone(s)
        })
    }

    /// Closes a session.
    pub fn close(&self, token: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    /// The session shared by clients that never authenticated (only without a password file).
    pub fn anonymous(&self) -> SessionRef {
        Arc::clone(&self.anonymous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_properties() {
        let mut s = Session::default();
        s.set_property("join_distribution_type", "broadcast")
            .expect("valid");
        assert_eq!(
            s.property("join_distribution_type").as_deref(),
            Some("BROADCAST")
        );
        assert!(
            s.set_property("join_distribution_type", "sideways")
                .is_err()
        );
        assert!(s.set_property("no_such_thing", "1").is_err());
        s.set_property("datafusion.execution.batch_size", "1024")
            .expect("pass-through");
        let config = s
            .configure(crate::cluster::base_config())
            .expect("configure");
        s.set_property("join_distribution_type", "PARTITIONED")
            .expect("ballista settings apply");
        assert_eq!(usize::from(config.options().execution.batch_size), 1024);
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_data_size("1.5kB"), Some(1536));
    }

    #[test]
    fn distribution_type_beats_broadcast_size() {
        let threshold = |s: &Session| {
            let config = s
                .configure(crate::cluster::base_config())
                .expect("configure");
            config
                .options()
                .extensions
                .get::<ballista_core::config::BallistaConfig>()
                .expect("ballista config")
                .broadcast_join_threshold_bytes()
        };
        let mut s = Session::default();
        s.set_property("join_max_broadcast_table_size", "10MB")
            .expect("size");
        assert_eq!(threshold(&s), 10 << 20);
        s.set_property("join_distribution_type", "PARTITIONED")
            .expect("partitioned");
        assert_eq!(threshold(&s), 0, "PARTITIONED never broadcasts");
        s.set_property("join_distribution_type", "BROADCAST")
            .expect("broadcast");
        assert!(threshold(&s) > 1 << 40, "BROADCAST always broadcasts");
    }

    #[test]
    fn skew_settings_travel_with_the_query_s_tasks() {
        let task_settings = |s: &Session| {
            s.configure(crate::cluster::base_config())
                .expect("configure")
                .options()
                .extensions
                .get::<tributary_telemetry::QueryTelemetry>()
                .cloned()
                .expect("task settings")
        };
        let mut s = Session::default();
        let defaults = task_settings(&s);
        assert!(defaults.skew_join_enabled);
        assert_eq!(defaults.skew_join_factor, 2);
        assert_eq!(defaults.skew_join_min_bytes, 64 << 20);
        s.set_property("skew_join_enabled", "FALSE")
            .expect("boolean");
        s.set_property("skew_join_factor", "4").expect("factor");
        s.set_property("skew_join_min_size", "1kB").expect("size");
        let set = task_settings(&s);
        assert!(!set.skew_join_enabled);
        assert_eq!(set.skew_join_factor, 4);
        assert_eq!(set.skew_join_min_bytes, 1024);
        assert!(s.set_property("skew_join_factor", "0").is_err());
        assert!(s.set_property("skew_join_min_size", "big").is_err());
        assert!(s.set_property("skew_join_enabled", "sometimes").is_err());
    }
}
