//! Client sessions: what `SET SESSION`, `RESET SESSION` and `USE` change, keyed by the
//! bearer token a handshake hands out.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::prelude::SessionConfig;

use crate::error::Result;

mod properties;

pub use properties::{
    SESSION_PROPERTIES, SessionPropertySpec, parse_data_size, parse_duration,
    session_property_of_config_key,
};
use properties::{apply, is_known, normalise, unknown};

/// Sessions idle longer than this are forgotten.
const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

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
    /// The deployment's defaults (`etc/config.properties`).
    pub defaults: SessionDefaults,
}

/// Defaults of session properties the deployment sets in `etc/config.properties` (Trino's
/// `join-distribution-type`, `query.max-run-time`, …), over the built-in ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionDefaults(Arc<BTreeMap<String, String>>);

impl SessionDefaults {
    /// Defaults from `etc/config.properties` entries `(key, value)`: those whose key names a
    /// session property ([`session_property_of_config_key`]; others are ignored), each value
    /// checked as `SET SESSION` checks it. The error names the key and what is expected.
    pub fn from_config(
        entries: impl IntoIterator<Item = (String, String)>,
    ) -> std::result::Result<Self, String> {
        let mut defaults = BTreeMap::new();
        for (key, value) in entries {
            let Some(name) = session_property_of_config_key(&key) else {
                continue;
            };
            let checked = checked(name, &value).map_err(|e| format!("{key}={value}: {e}"))?;
            defaults.insert(name.to_owned(), checked);
        }
        Ok(Self(Arc::new(defaults)))
    }

    /// The default of a property: the deployment's, else the built-in one.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned().or_else(|| {
            SESSION_PROPERTIES
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.default.to_owned())
        })
    }
}

impl Session {
    /// The value in force for a property (set, or its default).
    pub fn property(&self, name: &str) -> Option<String> {
        self.properties
            .get(name)
            .cloned()
            .or_else(|| self.defaults.get(name))
    }

    /// Sets a property after checking its name and value.
    pub fn set_property(&mut self, name: &str, value: &str) -> Result<()> {
        let value = checked(name, value)?;
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
        let mut values = (*self.defaults.0).clone();
        values.extend(self.properties.clone());
        let (distribution, others): (Vec<_>, Vec<_>) = values
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

    /// `streaming_results`: whether a query's rows are sent as its final stage computes them.
    pub fn streaming_results(&self) -> bool {
        self.property("streaming_results").as_deref() != Some("false")
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

/// A property's value normalised, once checked that it applies to a query's configuration.
fn checked(name: &str, value: &str) -> Result<String> {
    let value = normalise(name, value)?;
    let mut probe = crate::cluster::base_config();
    apply(&mut probe, name, &value)?;
    Ok(value)
}

/// A shared, lockable session.
pub type SessionRef = Arc<Mutex<Session>>;

/// Sessions by bearer token.
#[derive(Debug, Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<String, (SessionRef, Instant)>>,
    anonymous: SessionRef,
    defaults: SessionDefaults,
}

impl SessionStore {
    /// An empty store whose sessions start from `defaults`.
    pub fn new(defaults: SessionDefaults) -> Self {
        let anonymous = Session {
            id: uuid::Uuid::new_v4().to_string(),
            user: "anonymous".into(),
            defaults: defaults.clone(),
            ..Session::default()
        };
        Self {
            sessions: Mutex::new(HashMap::new()),
            anonymous: Arc::new(Mutex::new(anonymous)),
            defaults,
        }
    }

    /// Opens a session for `user`; returns its bearer token.
    pub fn open(&self, user: &str) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            user: user.to_owned(),
            defaults: self.defaults.clone(),
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
            defaults: self.defaults.clone(),
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
    fn the_deployments_defaults_start_every_session() {
        let threshold = broadcast_threshold;
        let defaults = SessionDefaults::from_config([
            (
                "join-distribution-type".to_owned(),
                "partitioned".to_owned(),
            ),
            ("streaming-results".to_owned(), "FALSE".to_owned()),
            ("query.max-memory".to_owned(), "1GB".to_owned()),
        ])
        .expect("valid defaults");
        let bad = SessionDefaults::from_config([(
            "join-distribution-type".to_owned(),
            "fast".to_owned(),
        )])
        .expect_err("refused");
        assert!(
            bad.starts_with("join-distribution-type=fast: invalid value 'fast'"),
            "{bad}"
        );
        let store = SessionStore::new(defaults);
        let session = store.get(&store.open("alice")).expect("opened");
        let mut s = session.lock().expect("session").clone();
        assert_eq!(
            s.property("join_distribution_type").as_deref(),
            Some("PARTITIONED")
        );
        assert!(!s.streaming_results());
        assert_eq!(threshold(&s), 0, "the default applies to queries");
        s.set_property("join_distribution_type", "BROADCAST")
            .expect("set");
        assert!(
            threshold(&s) > 1 << 40,
            "a session's value beats the default"
        );
        s.reset_property("join_distribution_type").expect("reset");
        assert_eq!(threshold(&s), 0, "reset to the deployment's default");
        assert_eq!(
            s.defaults.get("query_max_run_time").as_deref(),
            Some("100d")
        );
        assert_eq!(
            session_property_of_config_key("query.max-run-time"),
            Some("query_max_run_time")
        );
        assert_eq!(
            session_property_of_config_key("join-distribution-type"),
            Some("join_distribution_type")
        );
        assert_eq!(session_property_of_config_key("query.max-memory"), None);
    }

    /// The broadcast threshold a session gives its queries.
    fn broadcast_threshold(s: &Session) -> usize {
        s.configure(crate::cluster::base_config())
            .expect("configure")
            .options()
            .extensions
            .get::<ballista_core::config::BallistaConfig>()
            .expect("ballista config")
            .broadcast_join_threshold_bytes()
    }

    #[test]
    fn distribution_type_beats_broadcast_size() {
        let threshold = broadcast_threshold;
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
