//! Topic description files, exactly in Trino's format (`etc/kafka/*.json`), and the tables
//! they describe. The directory is read again on every lookup, so files added or changed
//! while the scheduler runs are used by the next query; parsed files are kept by mtime.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::decoder::{DataFormat, RowDecoder};
use crate::error::{KafkaError, Result};
use crate::types::ColumnType;

/// A topic description file as written (Trino's `KafkaTopicDescription`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TopicFile {
    table_name: String,
    schema_name: Option<String>,
    topic_name: Option<String>,
    key: Option<FieldGroupFile>,
    message: Option<FieldGroupFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FieldGroupFile {
    data_format: String,
    data_schema: Option<String>,
    #[serde(default)]
    fields: Vec<FieldFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FieldFile {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    mapping: Option<String>,
    data_format: Option<String>,
    format_hint: Option<String>,
    #[serde(default)]
    hidden: bool,
    #[serde(default)]
    comment: Option<String>,
}

/// A described topic: the table it is, and how its keys and messages decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDescription {
    /// Schema of the table.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// The topic read and written.
    pub topic: String,
    /// How keys decode (`None`: no key columns).
    pub key: Option<FieldGroup>,
    /// How messages decode (`None`: no message columns).
    pub message: Option<FieldGroup>,
}

/// The `key` or `message` part of a description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldGroup {
    /// The decoder (`dataFormat`).
    pub format: DataFormat,
    /// The text of the `dataSchema` file (Avro's reader schema), read when the description is.
    pub data_schema: Option<String>,
    /// The fields, each a column.
    pub fields: Vec<FieldSpec>,
}

/// One described field (a column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// Column name.
    pub name: String,
    /// Column type.
    pub ty: ColumnType,
    /// Where the value is in the message: a JSON path (`a/b`), a CSV column index, a raw
    /// byte range (`0:4`). `None`: the decoder's default (the field name for JSON).
    pub mapping: Option<String>,
    /// How the value is written (`iso8601`, `milliseconds-since-epoch`, `INT`, …).
    pub data_format: Option<String>,
    /// A pattern for `custom-date-time`.
    pub format_hint: Option<String>,
    /// Hidden from `SELECT *` and `DESCRIBE`.
    pub hidden: bool,
}

impl FieldSpec {
    /// Where a JSON or Avro decoder finds the value: the mapping (the field's name when
    /// there is none), a leading `/` allowed, split at `/`.
    pub fn path(&self) -> Vec<&str> {
        let mapping = self.mapping.as_deref().unwrap_or(&self.name);
        mapping
            .strip_prefix('/')
            .unwrap_or(mapping)
            .split('/')
            .collect()
    }
}

impl TableDescription {
    /// The description of a table listed in `kafka.table-names` without a file: its topic
    /// has the table's name and it has only internal columns.
    pub fn default_for(schema: &str, table: &str) -> Self {
        Self {
            schema: schema.to_owned(),
            table: table.to_owned(),
            topic: table.to_owned(),
            key: None,
            message: None,
        }
    }

    /// Parses and checks one description file.
    pub fn parse(path: &Path, text: &str, default_schema: &str) -> Result<Self> {
        let bad = |message: String| KafkaError::Description {
            path: path.to_path_buf(),
            message,
        };
        let file: TopicFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if file.table_name.trim().is_empty() {
            return Err(bad("'tableName' is empty".into()));
        }
        let group = |g: Option<FieldGroupFile>, part: &str| -> Result<Option<FieldGroup>> {
            let Some(g) = g else { return Ok(None) };
            let format = DataFormat::parse(&g.data_format).ok_or_else(|| {
                bad(format!(
                    "{part}.dataFormat '{}' is not one of json, csv, raw, avro, dummy",
                    g.data_format
                ))
            })?;
            let data_schema = match &g.data_schema {
                None => None,
                Some(location) => Some(
                    read_data_schema(path, location)
                        .map_err(|e| bad(format!("{part}.dataSchema '{location}': {e}")))?,
                ),
            };
            let mut fields = Vec::with_capacity(g.fields.len());
            for f in g.fields {
                let _ = f.comment;
                let ty = ColumnType::parse(&f.type_name).ok_or_else(|| {
                    bad(format!(
                        "{part} field '{}': type '{}' is not supported (use boolean, tinyint, smallint, integer, bigint, real, double, decimal(p,s), varchar, varbinary, date, time, timestamp, timestamp with time zone)",
                        f.name, f.type_name
                    ))
                })?;
                fields.push(FieldSpec {
                    name: f.name,
                    ty,
                    mapping: f.mapping,
                    data_format: f.data_format,
                    format_hint: f.format_hint,
                    hidden: f.hidden,
                });
            }
            let group = FieldGroup {
                format,
                data_schema,
                fields,
            };
            RowDecoder::new(&group).map_err(|e| bad(format!("{part} {e}")))?;
            Ok(Some(group))
        };
        let key = group(file.key, "key")?;
        let message = group(file.message, "message")?;
        let topic = file
            .topic_name
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| file.table_name.clone());
        Ok(Self {
            schema: file
                .schema_name
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| default_schema.to_owned()),
            table: file.table_name,
            topic,
            key,
            message,
        })
    }
}

/// A description file as last read: the table, or why it cannot be used.
type Parsed = Arc<Result<TableDescription, String>>;

/// The text of a `dataSchema` file: an absolute path, or a path relative to the
/// description file's directory (then to the working directory), or a `file://` URL.
fn read_data_schema(description: &Path, location: &str) -> std::io::Result<String> {
    let location = location.strip_prefix("file://").unwrap_or(location);
    let path = Path::new(location);
    let beside = description.parent().map(|d| d.join(path));
    match beside {
        Some(p) if !path.is_absolute() && p.exists() => std::fs::read_to_string(p),
        _ => std::fs::read_to_string(path),
    }
}

/// The tables of a catalog, from `kafka.table-names` and the description directory.
#[derive(Debug)]
pub struct Descriptions {
    dir: PathBuf,
    default_schema: String,
    table_names: Vec<String>,
    parsed: Mutex<HashMap<PathBuf, (SystemTime, Parsed)>>,
}

/// The tables found, and the description files that could not be used.
#[derive(Debug, Default)]
pub struct Listing {
    /// `(schema, table)` → description.
    pub tables: BTreeMap<(String, String), TableDescription>,
    /// Errors of files that could not be read or parsed.
    pub problems: Vec<String>,
}

impl Descriptions {
    /// Tables described under `dir`, plus `table_names` (`table` or `schema.table`).
    pub fn new(dir: PathBuf, default_schema: String, table_names: Vec<String>) -> Self {
        Self {
            dir,
            default_schema,
            table_names,
            parsed: Mutex::new(HashMap::new()),
        }
    }

    /// The description directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the directory now. A missing directory means no description files.
    pub fn list(&self) -> Listing {
        let mut listing = Listing::default();
        for name in &self.table_names {
            let (schema, table) = match name.split_once('.') {
                Some((s, t)) => (s.to_owned(), t.to_owned()),
                None => (self.default_schema.clone(), name.clone()),
            };
            listing.tables.insert(
                (schema.clone(), table.clone()),
                TableDescription::default_for(&schema, &table),
            );
        }
        let mut paths = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect::<Vec<_>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => {
                listing.problems.push(format!(
                    "cannot read topic description directory {}: {e}",
                    self.dir.display()
                ));
                vec![]
            }
        };
        paths.sort();
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        parsed.retain(|p, _| paths.contains(p));
        for path in paths {
            let mtime = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let entry = match parsed.get(&path) {
                Some((seen, result)) if *seen == mtime => Arc::clone(result),
                _ => {
                    let result = std::fs::read_to_string(&path)
                        .map_err(|e| format!("topic description {}: {e}", path.display()))
                        .and_then(|text| {
                            TableDescription::parse(&path, &text, &self.default_schema)
                                .map_err(|e| e.to_string())
                        });
                    let result = Arc::new(result);
                    parsed.insert(path.clone(), (mtime, Arc::clone(&result)));
                    result
                }
            };
            match entry.as_ref() {
                Ok(d) => {
                    listing
                        .tables
                        .insert((d.schema.clone(), d.table.clone()), d.clone());
                }
                Err(e) => listing.problems.push(e.clone()),
            }
        }
        listing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's description file, as shipped in etc/.
    const SEED: &str = include_str!("../../../etc/kafka/orders.json");

    #[test]
    fn reads_the_seed_description() {
        let d = TableDescription::parse(Path::new("etc/kafka/orders.json"), SEED, "default")
            .expect("valid");
        assert_eq!((d.schema.as_str(), d.topic.as_str()), ("default", "orders"));
        let fields = &d.message.expect("message").fields;
        assert_eq!(fields.len(), 5);
        assert_eq!(fields[3].ty, ColumnType::Integer);
    }

    #[test]
    fn names_the_bad_field() {
        let text = SEED.replace("\"integer\"", "\"array(integer)\"");
        let e = TableDescription::parse(Path::new("etc/kafka/orders.json"), &text, "default")
            .expect_err("bad type")
            .to_string();
        assert!(
            e.contains("orders.json") && e.contains("quantity") && e.contains("array(integer)"),
            "{e}"
        );
        let text = SEED.replace("\"tableName\"", "\"table\"");
        let e = TableDescription::parse(Path::new("x.json"), &text, "default")
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("x.json") && e.contains("table"), "{e}");
    }

    #[test]
    fn lists_files_and_table_names_and_sees_new_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let descriptions = Descriptions::new(
            dir.path().to_path_buf(),
            "default".into(),
            vec!["orders".into(), "other.clicks".into()],
        );
        let listing = descriptions.list();
        assert_eq!(listing.tables.len(), 2);
        assert!(
            listing.tables[&("default".into(), "orders".into())]
                .message
                .is_none()
        );
        std::fs::write(dir.path().join("orders.json"), SEED).expect("write");
        std::fs::write(dir.path().join("broken.json"), "{").expect("write");
        let listing = descriptions.list();
        assert!(
            listing.tables[&("default".into(), "orders".into())]
                .message
                .is_some()
        );
        assert_eq!(listing.problems.len(), 1);
        assert!(listing.problems[0].contains("broken.json"));
    }
}
