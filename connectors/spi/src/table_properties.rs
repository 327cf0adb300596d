//! Trino's `WITH (name = value, …)` properties of `CREATE TABLE` and `CREATE SCHEMA`, handed
//! to the connector of the target catalog.

use std::fmt;

/// One property value as written in SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    /// `'text'`
    String(String),
    /// `42`, `1.5` (as written)
    Number(String),
    /// `true` / `false`
    Boolean(bool),
    /// `ARRAY['a', 'b']`
    Array(Vec<PropertyValue>),
}

impl fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Self::Number(n) => f.write_str(n),
            Self::Boolean(b) => write!(f, "{b}"),
            Self::Array(items) => {
                f.write_str("ARRAY[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// The `WITH (…)` list of a statement, in the order written; names are lower-cased.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableProperties(pub Vec<(String, PropertyValue)>);

impl TableProperties {
    /// No properties.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The property names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// A property's value.
    pub fn get(&self, name: &str) -> Option<&PropertyValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl fmt::Display for TableProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name} = {value}")?;
        }
        Ok(())
    }
}

/// A property a connector accepts in `CREATE TABLE … WITH (…)` (`system.metadata.table_properties`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertySpec {
    /// Property name.
    pub name: &'static str,
    /// Default value, as SQL text ('' when none).
    pub default: &'static str,
    /// SQL type of the value.
    pub sql_type: &'static str,
    /// What it does.
    pub description: &'static str,
}
