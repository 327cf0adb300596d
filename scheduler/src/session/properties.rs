//! The session properties Tributary knows (Trino's names, plus DataFusion's and Ballista's
//! own settings): their table as `SHOW SESSION` lists it, how a value is checked and
//! normalised, and how it is applied to a query's configuration.

use ballista_core::config::{
    BALLISTA_BROADCAST_JOIN_THRESHOLD_BYTES, BALLISTA_BROADCAST_JOIN_THRESHOLD_ROWS,
};
use datafusion::prelude::SessionConfig;

use crate::error::{Result, SchedulerError};

pub use tributary_connector::{parse_data_size, parse_duration};

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
pub const SESSION_PROPERTIES: [SessionPropertySpec; 18] = [
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
        name: "streaming_results",
        default: "true",
        sql_type: "boolean",
        description: "Send a query's rows as its final stage computes them (its result is \
                      announced when that stage starts, without a row count; a task failing \
                      after its first rows were sent, or its executor lost, fails the query \
                      instead of running again); false: once the query has finished, with its \
                      row count. Not under retry-policy QUERY",
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

/// Keys of `etc/config.properties` that set a session property's default where Trino's name
/// is not the property's with `-` for `_` (`join-distribution-type`, `streaming-results`, …
/// follow that rule).
const CONFIG_NAMES: [(&str, &str); 4] = [
    ("query.max-run-time", "query_max_run_time"),
    ("query.max-execution-time", "query_max_execution_time"),
    (
        "optimizer.join-reordering-strategy",
        "join_reordering_strategy",
    ),
    ("query.hash-partition-count", "hash_partition_count"),
];

/// The session property whose default an `etc/config.properties` key sets, as Trino's
/// configuration properties set the defaults of their session properties.
pub fn session_property_of_config_key(key: &str) -> Option<&'static str> {
    CONFIG_NAMES
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, name)| *name)
        .or_else(|| {
            SESSION_PROPERTIES
                .iter()
                .find(|p| p.name.replace('_', "-") == key)
                .map(|p| p.name)
        })
}

pub(super) fn is_known(name: &str) -> bool {
    SESSION_PROPERTIES.iter().any(|p| p.name == name)
        || name.starts_with("datafusion.")
        || name.starts_with("ballista.")
}

pub(super) fn unknown(name: &str) -> SchedulerError {
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

pub(super) fn normalise(name: &str, value: &str) -> Result<String> {
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
        "materialized_view_rewrite_enabled"
        | "enable_dynamic_filtering"
        | "skew_join_enabled"
        | "streaming_results" => match value.to_ascii_lowercase().as_str() {
            v @ ("true" | "false") => Ok(v.to_owned()),
            _ => Err(invalid(name, value, "true or false")),
        },
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

pub(super) fn apply(config: &mut SessionConfig, name: &str, value: &str) -> Result<()> {
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
        | "streaming_results"
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
