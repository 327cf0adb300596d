//! Catalog property files, read exactly as Trino reads them (Java properties).
//!
//! A [`Properties`] is the parsed file; a connector turns it into its typed configuration
//! through a [`PropertyReader`], which records every key the connector asked for so that
//! [`PropertyReader::finish`] can reject keys nobody read (usually misspellings).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{ConnectorError, Result};

/// The key naming the connector of a catalog.
pub const CONNECTOR_NAME: &str = "connector.name";

/// The properties of one catalog file.
#[derive(Clone)]
pub struct Properties {
    path: PathBuf,
    values: BTreeMap<String, String>,
}

impl fmt::Debug for Properties {
    // Values may be secrets: show keys only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Properties")
            .field("path", &self.path)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Properties {
    /// Reads and parses a properties file, substituting `${ENV:NAME}` with the environment.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConnectorError::ReadCatalogFile {
                path: path.to_path_buf(),
                source,
            })?;
        Self::parse(path, &text, |name| std::env::var(name).ok())
    }

    /// Parses properties text; `env` resolves `${ENV:NAME}` references.
    pub fn parse(path: &Path, text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let raw = java_properties::read(text.as_bytes()).map_err(|e| {
            ConnectorError::PropertiesSyntax {
                path: path.to_path_buf(),
                line: e.line_number().unwrap_or(0),
                message: e.to_string(),
            }
        })?;
        let mut values = BTreeMap::new();
        for (key, value) in raw {
            let value = substitute_env(path, &key, &value, &env)?;
            values.insert(key, value);
        }
        Ok(Self {
            path: path.to_path_buf(),
            values,
        })
    }

    /// Builds properties from pairs (for tests and embedded defaults).
    pub fn from_pairs<'a>(
        path: impl Into<PathBuf>,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        Self {
            path: path.into(),
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The file these properties came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// All keys.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Starts reading typed values for `connector`.
    pub fn reader(&self, connector: &str) -> PropertyReader<'_> {
        let mut read = BTreeSet::new();
        read.insert(CONNECTOR_NAME.to_owned());
        PropertyReader {
            props: self,
            connector: connector.to_owned(),
            read,
            known: BTreeSet::new(),
        }
    }
}

fn substitute_env(
    path: &Path,
    key: &str,
    value: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${ENV:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let variable = &after[..end];
        let resolved = env(variable).ok_or_else(|| ConnectorError::MissingEnvironmentVariable {
            path: path.to_path_buf(),
            key: key.to_owned(),
            variable: variable.to_owned(),
        })?;
        out.push_str(&resolved);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The installation directory of an `etc/` directory (its parent; `.` for a bare `etc`):
/// Trino's files name other files (`etc/rules.json`) relative to it.
pub fn installation_dir(etc: &Path) -> &Path {
    etc.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A file a properties file names: as written when absolute, else in the installation
/// directory ([`installation_dir`]).
pub fn installation_path(etc: &Path, file: impl AsRef<Path>) -> PathBuf {
    let file = file.as_ref();
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        installation_dir(etc).join(file)
    }
}

/// A secret value from a catalog file: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Reads typed values out of [`Properties`] for one connector and checks for leftovers.
pub struct PropertyReader<'a> {
    props: &'a Properties,
    connector: String,
    read: BTreeSet<String>,
    known: BTreeSet<String>,
}

impl PropertyReader<'_> {
    fn raw(&mut self, key: &str) -> Option<&str> {
        self.read.insert(key.to_owned());
        self.known.insert(key.to_owned());
        self.props.get(key).map(str::trim)
    }

    /// A required string.
    pub fn required_string(&mut self, key: &str, expected: &str) -> Result<String> {
        let path = self.props.path.clone();
        self.raw(key)
            .map(str::to_owned)
            .ok_or_else(|| ConnectorError::MissingProperty {
                path,
                key: key.to_owned(),
                expected: expected.to_owned(),
            })
    }

    /// An optional string.
    pub fn optional_string(&mut self, key: &str) -> Option<String> {
        self.raw(key).map(str::to_owned)
    }

    /// An optional secret.
    pub fn optional_secret(&mut self, key: &str) -> Option<Secret> {
        self.raw(key).map(Secret::new)
    }

    /// An optional value parsed with [`FromStr`]; `expected` describes it in errors.
    pub fn optional<T: FromStr>(&mut self, key: &str, expected: &str) -> Result<Option<T>> {
        self.optional_with(key, |v| v.parse::<T>().ok(), expected)
    }

    /// An optional data size (`64MB`, `1GB`; see [`crate::parse_data_size`]).
    pub fn optional_data_size(&mut self, key: &str) -> Result<Option<u64>> {
        self.optional_with(
            key,
            crate::parse_data_size,
            "a data size such as 64MB or 1GB",
        )
    }

    /// An optional duration with its unit (`500ms`, `10s`, `7d`; see [`crate::parse_duration`]).
    pub fn optional_duration(&mut self, key: &str) -> Result<Option<std::time::Duration>> {
        self.optional_with(
            key,
            crate::parse_duration,
            "a duration with its unit, such as 10s, 5m or 7d",
        )
    }

    fn optional_with<T>(
        &mut self,
        key: &str,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<Option<T>> {
        let path = self.props.path.clone();
        match self.raw(key) {
            None => Ok(None),
            Some(v) => parse(v)
                .map(Some)
                .ok_or_else(|| ConnectorError::InvalidProperty {
                    path,
                    key: key.to_owned(),
                    value: v.to_owned(),
                    expected: expected.to_owned(),
                }),
        }
    }

    /// An optional value that must be one of `choices` (compared case-insensitively, as Trino
    /// does for enum properties); returns the choice as written in `choices`.
    pub fn optional_choice(
        &mut self,
        key: &str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>> {
        let path = self.props.path.clone();
        match self.raw(key) {
            None => Ok(None),
            Some(v) => choices
                .iter()
                .find(|c| c.eq_ignore_ascii_case(v))
                .copied()
                .map(Some)
                .ok_or_else(|| ConnectorError::InvalidProperty {
                    path,
                    key: key.to_owned(),
                    value: v.to_owned(),
                    expected: format!("one of {}", choices.join(", ")),
                }),
        }
    }

    /// Marks keys with a prefix as read (for pass-through families such as `hive.s3.*`),
    /// returning them.
    pub fn with_prefix(&mut self, prefix: &str) -> Vec<(String, String)> {
        let found: Vec<(String, String)> = self
            .props
            .values
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, _) in &found {
            self.read.insert(k.clone());
        }
        found
    }

    /// Ends reading: any key the connector did not ask for is an error naming it.
    pub fn finish(self) -> Result<()> {
        for key in self.props.values.keys() {
            if !self.read.contains(key) {
                return Err(ConnectorError::UnknownProperty {
                    path: self.props.path.clone(),
                    key: key.clone(),
                    connector: self.connector.clone(),
                    suggestion: closest(key, &self.known),
                });
            }
        }
        Ok(())
    }
}

/// The known key closest to `key` by edit distance, if it is close enough to be a typo.
fn closest(key: &str, known: &BTreeSet<String>) -> Option<String> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Properties> {
        Properties::parse(Path::new("etc/catalog/x.properties"), text, |n| {
            (n == "PASS").then(|| "s3cr3t".to_owned())
        })
    }

    #[test]
    fn reads_java_properties_syntax() {
        let p = parse("# comment\n! also comment\nconnector.name=tpch\na.b: two words\nc = x\\\n  y\nd=tab\\tend\n").expect("parse");
        assert_eq!(p.get("connector.name"), Some("tpch"));
        assert_eq!(p.get("a.b"), Some("two words"));
        assert_eq!(p.get("c"), Some("xy"));
        assert_eq!(p.get("d"), Some("tab\tend"));
    }

    #[test]
    fn substitutes_environment() {
        let p = parse("connection-password=${ENV:PASS}\nurl=a${ENV:PASS}b\n").expect("parse");
        assert_eq!(p.get("connection-password"), Some("s3cr3t"));
        assert_eq!(p.get("url"), Some("as3cr3tb"));
        let err = parse("x=${ENV:NOPE}").expect_err("missing variable");
        assert!(err.to_string().contains("'NOPE'"), "{err}");
        assert!(err.to_string().contains("x.properties"), "{err}");
    }

    #[test]
    fn unknown_key_is_named_with_suggestion() {
        let p = parse("connector.name=tpch\ntpch.colum-naming=STANDARD\n").expect("parse");
        let mut r = p.reader("tpch");
        assert_eq!(
            r.optional_choice("tpch.column-naming", &["SIMPLIFIED", "STANDARD"])
                .expect("ok"),
            None
        );
        let err = r.finish().expect_err("unknown key").to_string();
        assert!(err.contains("x.properties"), "{err}");
        assert!(err.contains("'tpch.colum-naming'"), "{err}");
        assert!(err.contains("did you mean 'tpch.column-naming'"), "{err}");
    }

    #[test]
    fn bad_value_names_key_and_expectation() {
        let p = parse("connector.name=tpch\ntpch.splits-per-table=many\n").expect("parse");
        let err = p
            .reader("tpch")
            .optional::<usize>("tpch.splits-per-table", "a positive integer")
            .expect_err("bad");
        let msg = err.to_string();
        assert!(
            msg.contains("'tpch.splits-per-table'") && msg.contains("positive integer"),
            "{msg}"
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        let p = parse("connector.name=mysql\nconnection-password=hunter2\n").expect("parse");
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
