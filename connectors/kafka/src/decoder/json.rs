//! The `json` decoder: walks each message once with serde_json, keeping only the values of
//! described paths (mapping `a/b/c`, array elements by index) and skipping everything else
//! without building it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Corrupt, Raw};
use crate::description::FieldSpec;

/// The described paths of a JSON message, as a tree of keys.
#[derive(Debug, Default)]
pub(crate) struct JsonPaths {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    /// Fields whose value is this node's value.
    fields: Vec<usize>,
    /// Paths going deeper (a few keys: a linear scan beats hashing).
    children: Vec<(String, Node)>,
}

impl Node {
    fn child(&self, key: &str) -> Option<&Node> {
        self.children.iter().find(|(k, _)| k == key).map(|(_, n)| n)
    }

    fn child_mut(&mut self, key: &str) -> &mut Node {
        let index = match self.children.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.children.push((key.to_owned(), Node::default()));
                self.children.len() - 1
            }
        };
        &mut self.children[index].1
    }
}

impl JsonPaths {
    pub(crate) fn new(fields: &[FieldSpec]) -> Result<Self, String> {
        let mut root = Node::default();
        for (i, f) in fields.iter().enumerate() {
            let path = f.path();
            if path == [""] {
                return Err(format!("field '{}': empty mapping", f.name));
            }
            let mut node = &mut root;
            for segment in path {
                node = node.child_mut(segment);
            }
            node.fields.push(i);
        }
        Ok(Self { root })
    }

    /// Fills `out` (one slot per field) from one message; `Err` = not JSON.
    pub(crate) fn decode<'a>(&self, data: &'a [u8], out: &mut [Raw<'a>]) -> Result<(), Corrupt> {
        let mut de = serde_json::Deserializer::from_slice(data);
        NodeSeed {
            node: &self.root,
            out: &mut *out,
        }
        .deserialize(&mut de)
        .map_err(|_| Corrupt)?;
        de.end().map_err(|_| Corrupt)
    }
}

/// Deserializes the value at one node of the path tree.
struct NodeSeed<'n, 'o, 'a> {
    node: &'n Node,
    out: &'o mut [Raw<'a>],
}

impl NodeSeed<'_, '_, '_> {
    fn set<'a>(node: &Node, out: &mut [Raw<'a>], value: Raw<'a>) {
        if let Some((last, rest)) = node.fields.split_last() {
            for i in rest {
                out[*i] = value.clone();
            }
            out[*last] = value;
        }
    }
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for NodeSeed<'_, '_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if !self.node.fields.is_empty() && !self.node.children.is_empty() {
            // A field maps a container that other fields map into: keep it whole.
            let value = serde_json::Value::deserialize(deserializer)?;
            fill_from_value(self.node, &value, self.out);
            return Ok(());
        }
        deserializer.deserialize_any(self)
    }
}

use serde::Deserialize;

impl<'de: 'a, 'a> Visitor<'de> for NodeSeed<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Self::set(self.node, self.out, Raw::Bool(v));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        Self::set(self.node, self.out, Raw::Int(v));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let raw = i64::try_from(v).map_or(Raw::UInt(v), Raw::Int);
        Self::set(self.node, self.out, raw);
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Self::set(self.node, self.out, Raw::Float(v));
        Ok(())
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        Self::set(self.node, self.out, Raw::Text(Cow::Borrowed(v)));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Self::set(self.node, self.out, Raw::Text(Cow::Owned(v.to_owned())));
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        if !self.node.fields.is_empty() {
            // A field maps a whole object: its JSON text.
            let value = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
            Self::set(self.node, self.out, Raw::Json(value.to_string()));
            return Ok(());
        }
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match self.node.child(key.0.as_ref()) {
                Some(child) => map.next_value_seed(NodeSeed {
                    node: child,
                    out: &mut *self.out,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        if !self.node.fields.is_empty() {
            let value = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
            Self::set(self.node, self.out, Raw::Json(value.to_string()));
            return Ok(());
        }
        let mut index = 0usize;
        loop {
            let found = match self.node.child(index.to_string().as_str()) {
                Some(child) => seq
                    .next_element_seed(NodeSeed {
                        node: child,
                        out: &mut *self.out,
                    })?
                    .is_some(),
                None => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !found {
                return Ok(());
            }
            index += 1;
        }
    }
}

/// Fills fields from an already built value (the rare case of nested mappings under a
/// mapped container).
fn fill_from_value<'a>(node: &Node, value: &serde_json::Value, out: &mut [Raw<'a>]) {
    let raw = match value {
        serde_json::Value::Null => Raw::Null,
        serde_json::Value::Bool(b) => Raw::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Raw::Int(i),
            (None, Some(u), _) => Raw::UInt(u),
            (_, _, Some(f)) => Raw::Float(f),
            _ => Raw::Null,
        },
        serde_json::Value::String(s) => Raw::Text(Cow::Owned(s.clone())),
        other => Raw::Json(other.to_string()),
    };
    NodeSeed::set(node, out, raw);
    for (key, child) in &node.children {
        let inner = match value {
            serde_json::Value::Object(map) => map.get(key),
            serde_json::Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        if let Some(inner) = inner {
            fill_from_value(child, inner, out);
        }
    }
}

/// An object key, borrowed from the message when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::tests::field;

    #[test]
    fn paths_arrays_and_containers() {
        let fields = vec![
            field("first_item", "bigint", Some("items/0/id"), None),
            field("items", "varchar", Some("items"), None),
            field("escaped", "varchar", Some("k\"ey"), None),
        ];
        let paths = JsonPaths::new(&fields).expect("paths");
        let mut out = vec![Raw::Null; 3];
        paths
            .decode(
                br#"{"items": [{"id": 4}, {"id": 5}], "k\"ey": "v\n"}"#,
                &mut out,
            )
            .expect("json");
        assert_eq!(out[0], Raw::Int(4));
        assert_eq!(out[1], Raw::Json(r#"[{"id":4},{"id":5}]"#.into()));
        assert_eq!(out[2], Raw::Text("v\n".into()));
        let mut out = vec![Raw::Null; 3];
        assert!(paths.decode(br#"{"items": [1,]}"#, &mut out).is_err());
        assert!(paths.decode(br#"{} trailing"#, &mut out).is_err());
    }
}
