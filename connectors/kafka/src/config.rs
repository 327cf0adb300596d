//! Typed configuration of a `connector.name=kafka` catalog, with Trino's property names.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tributary_connector::{ConnectorError, Properties, Result};

/// Configuration of a Kafka catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    /// `kafka.nodes`: the bootstrap brokers, `host:port` each.
    pub nodes: Vec<String>,
    /// `kafka.default-schema`: the schema of tables named without one (default `default`).
    pub default_schema: String,
    /// `kafka.table-names`: tables (`table` or `schema.table`) that exist even without a
    /// description file; their topic has the table's name.
    pub table_names: Vec<String>,
    /// `kafka.table-description-dir`: where the topic description files (`*.json`) are.
    pub table_description_dir: PathBuf,
    /// `kafka.hide-internal-columns` (default true).
    pub hide_internal_columns: bool,
    /// `kafka.messages-per-split` (default 100000).
    pub messages_per_split: u64,
    /// `kafka.timestamp-upper-bound-force-push-down-enabled` (default false): also narrow the
    /// end of each partition's range by an upper bound on `_timestamp`. Only exact when
    /// message timestamps grow with offsets (LogAppendTime topics).
    pub timestamp_upper_bound_push_down: bool,
    /// `kafka.internal-column-prefix` (default `_`).
    pub internal_column_prefix: String,
    /// `kafka.connect-timeout` (default 10s): the longest any broker request may take, and
    /// the longest a split waits for its next message.
    pub connect_timeout: Duration,
    /// librdkafka settings from `kafka.config.resources` files and `kafka.security-protocol`.
    pub client_settings: Vec<(String, String)>,
}

impl KafkaConfig {
    /// Reads the configuration; unknown keys are errors.
    pub fn from_properties(props: &Properties) -> Result<Self> {
        let path = props.path().to_path_buf();
        let mut r = props.reader("kafka");
        let nodes_text = r.required_string(
            "kafka.nodes",
            "the brokers to connect to, as host:port[,host:port…]",
        )?;
        let nodes: Vec<String> = split_list(&nodes_text);
        if nodes.is_empty() || nodes.iter().any(|n| !valid_node(n)) {
            return Err(ConnectorError::InvalidProperty {
                path,
                key: "kafka.nodes".into(),
                value: nodes_text,
                expected: "a comma-separated list of host:port".into(),
            });
        }
        let default_schema = r
            .optional_string("kafka.default-schema")
            .unwrap_or_else(|| "default".to_owned());
        let table_names = r
            .optional_string("kafka.table-names")
            .map(|s| split_list(&s))
            .unwrap_or_default();
        let etc = etc_dir(&path);
        let table_description_dir = match r.optional_string("kafka.table-description-dir") {
            Some(dir) => resolve_dir(&etc, &dir),
            None => etc.join("kafka"),
        };
        let hide_internal_columns = r
            .optional::<bool>("kafka.hide-internal-columns", "true or false")?
            .unwrap_or(true);
        let messages_per_split = r
            .optional::<u64>("kafka.messages-per-split", "a positive integer")?
            .unwrap_or(100_000);
        if messages_per_split == 0 {
            return Err(ConnectorError::InvalidProperty {
                path,
                key: "kafka.messages-per-split".into(),
                value: "0".into(),
                expected: "a positive integer".into(),
            });
        }
        let timestamp_upper_bound_push_down = r
            .optional::<bool>(
                "kafka.timestamp-upper-bound-force-push-down-enabled",
                "true or false",
            )?
            .unwrap_or(false);
        let internal_column_prefix = r
            .optional_string("kafka.internal-column-prefix")
            .unwrap_or_else(|| "_".to_owned());
        if internal_column_prefix.is_empty() {
            return Err(ConnectorError::InvalidProperty {
                path,
                key: "kafka.internal-column-prefix".into(),
                value: String::new(),
                expected: "a non-empty prefix".into(),
            });
        }
        let connect_timeout = r
            .optional_duration("kafka.connect-timeout")?
            .unwrap_or(Duration::from_secs(10));
        if let Some(supplier) =
            r.optional_choice("kafka.table-description-supplier", &["FILE", "CONFLUENT"])?
            && supplier != "FILE"
        {
            return Err(ConnectorError::InvalidProperty {
                path,
                key: "kafka.table-description-supplier".into(),
                value: supplier.into(),
                expected: "FILE (the Confluent schema registry is not supported yet)".into(),
            });
        }
        let mut client_settings = Vec::new();
        if let Some(protocol) = r.optional_choice(
            "kafka.security-protocol",
            &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
        )? {
            client_settings.push(("security.protocol".to_owned(), protocol.to_owned()));
        }
        if let Some(files) = r.optional_string("kafka.config.resources") {
            for file in split_list(&files) {
                let file = resolve_dir(&etc, &file);
                client_settings.extend(client_resource(&file)?);
            }
        }
        r.finish()?;
        Ok(Self {
            nodes,
            default_schema,
            table_names,
            table_description_dir,
            hide_internal_columns,
            messages_per_split,
            timestamp_upper_bound_push_down,
            internal_column_prefix,
            connect_timeout,
            client_settings,
        })
    }

    /// `kafka.nodes` as librdkafka's `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.nodes.join(",")
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn valid_node(node: &str) -> bool {
    match node.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// The `etc` directory a catalog file lives in (`etc/catalog/kafka.properties` → `etc`).
fn etc_dir(catalog_file: &Path) -> PathBuf {
    catalog_file
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A configured path: absolute as written; relative ones are relative to the directory that
/// holds `etc` (where Trino runs from), so `etc/kafka` means the catalog's own `etc/kafka`.
fn resolve_dir(etc: &Path, dir: &str) -> PathBuf {
    let dir = Path::new(dir);
    if dir.is_absolute() {
        return dir.to_path_buf();
    }
    match etc.parent() {
        Some(base) => base.join(dir),
        None => dir.to_path_buf(),
    }
}

/// The librdkafka settings of one `kafka.config.resources` file (Java properties, as for
/// Trino's Kafka client). Java's `sasl.jaas.config` for the PLAIN and SCRAM login modules
/// becomes librdkafka's `sasl.username`/`sasl.password`.
fn client_resource(path: &Path) -> Result<Vec<(String, String)>> {
    let props = Properties::load(path)?;
    let mut settings = Vec::new();
    for key in props.keys() {
        let value = props.get(key).unwrap_or_default().trim().to_owned();
        if key == "sasl.jaas.config" {
            for (name, setting) in [("username", "sasl.username"), ("password", "sasl.password")] {
                if let Some(v) = jaas_option(&value, name) {
                    settings.push((setting.to_owned(), v));
                }
            }
            continue;
        }
        settings.push((key.to_owned(), value));
    }
    Ok(settings)
}

/// `name="value"` inside a JAAS login module line.
fn jaas_option(jaas: &str, name: &str) -> Option<String> {
    let start = jaas.find(&format!("{name}=\""))? + name.len() + 2;
    let end = jaas[start..].find('"')? + start;
    Some(jaas[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        let mut all = vec![("connector.name", "kafka")];
        all.extend_from_slice(pairs);
        Properties::from_pairs("/srv/etc/catalog/kafka.properties", all)
    }

    #[test]
    fn reads_the_seed_catalog() {
        let c = KafkaConfig::from_properties(&props(&[
            ("kafka.nodes", "broker1:9092,broker2:9092"),
            ("kafka.default-schema", "default"),
            ("kafka.table-names", "orders,customers"),
        ]))
        .expect("valid");
        assert_eq!(c.bootstrap_servers(), "broker1:9092,broker2:9092");
        assert_eq!(c.table_names, ["orders", "customers"]);
        assert_eq!(c.table_description_dir, Path::new("/srv/etc/kafka"));
        assert_eq!(c.messages_per_split, 100_000);
        assert!(c.hide_internal_columns);
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
    }

    #[test]
    fn rejects_bad_values_by_name() {
        for (pairs, key) in [
            (vec![("kafka.nodes", "broker1")], "kafka.nodes"),
            (
                vec![("kafka.nodes", "b:9092"), ("kafka.messages-per-split", "0")],
                "kafka.messages-per-split",
            ),
            (
                vec![("kafka.nodes", "b:9092"), ("kafka.connect-timeout", "soon")],
                "kafka.connect-timeout",
            ),
            (
                vec![("kafka.nodes", "b:9092"), ("kafka.tabel-names", "x")],
                "kafka.tabel-names",
            ),
        ] {
            let e = KafkaConfig::from_properties(&props(&pairs))
                .expect_err("invalid")
                .to_string();
            assert!(e.contains(key) && e.contains("kafka.properties"), "{e}");
        }
    }

    #[test]
    fn jaas_options() {
        let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="s3cr=t";"#;
        assert_eq!(jaas_option(jaas, "username").as_deref(), Some("alice"));
        assert_eq!(jaas_option(jaas, "password").as_deref(), Some("s3cr=t"));
    }
}
