//! Trino's JSON functions over JSON text (a Trino `json` value is a `varchar` here):
//! `json_extract_scalar`, `json_extract`, `json_array_length`, `json_size`,
//! `json_array_contains`, `is_json_scalar`, `json_parse` and `json_format`, with Trino's
//! JSON path subset (`$`, `.key`, `."key"`, `["key"]`, `[index]`).
//!
//! DataFusion has no JSON functions, so these run as our own kernels on the executors: the
//! scheduler registers them for planning and [`crate::ConnectorCodec`] gives them back by
//! name when an executor decodes a task's plan. As in Trino, text that is not JSON extracts
//! to NULL (`json_extract*`, `json_array_length`, `json_size`) and fails `json_parse` and
//! `is_json_scalar`; a path that is not one fails the query naming it.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanBuilder, Int64Builder, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use serde_json::Value;

/// Every JSON function, for a session's registry.
pub fn json_functions() -> Vec<Arc<ScalarUDF>> {
    Kind::ALL
        .iter()
        .map(|&kind| Arc::new(ScalarUDF::new_from_impl(JsonFunction::new(kind))))
        .collect()
}

/// The JSON function called `name`, if it is one (an executor decoding a plan).
pub fn json_function(name: &str) -> Option<Arc<ScalarUDF>> {
    Kind::ALL
        .iter()
        .find(|kind| kind.name() == name)
        .map(|&kind| Arc::new(ScalarUDF::new_from_impl(JsonFunction::new(kind))))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    ExtractScalar,
    Extract,
    ArrayLength,
    Size,
    ArrayContains,
    IsScalar,
    Parse,
    Format,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::ExtractScalar,
        Kind::Extract,
        Kind::ArrayLength,
        Kind::Size,
        Kind::ArrayContains,
        Kind::IsScalar,
        Kind::Parse,
        Kind::Format,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::ExtractScalar => "json_extract_scalar",
            Kind::Extract => "json_extract",
            Kind::ArrayLength => "json_array_length",
            Kind::Size => "json_size",
            Kind::ArrayContains => "json_array_contains",
            Kind::IsScalar => "is_json_scalar",
            Kind::Parse => "json_parse",
            Kind::Format => "json_format",
        }
    }

    fn arguments(self) -> &'static str {
        match self {
            Kind::ExtractScalar | Kind::Extract | Kind::Size => "json, json_path",
            Kind::ArrayContains => "json, value",
            Kind::ArrayLength | Kind::IsScalar | Kind::Format => "json",
            Kind::Parse => "string",
        }
    }

    fn arity(self) -> usize {
        match self {
            Kind::ExtractScalar | Kind::Extract | Kind::Size | Kind::ArrayContains => 2,
            _ => 1,
        }
    }

    fn returns(self) -> DataType {
        match self {
            Kind::ExtractScalar | Kind::Extract | Kind::Parse | Kind::Format => DataType::Utf8,
            Kind::ArrayLength | Kind::Size => DataType::Int64,
            Kind::ArrayContains | Kind::IsScalar => DataType::Boolean,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonFunction {
    kind: Kind,
    signature: Signature,
}

impl JsonFunction {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

impl ScalarUDFImpl for JsonFunction {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let (name, arguments) = (self.kind.name(), self.kind.arguments());
        if arg_types.len() != self.kind.arity() {
            return plan_err!(
                "function {name} expects ({arguments}), got {} argument(s)",
                arg_types.len()
            );
        }
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| match (self.kind, i) {
                (Kind::ArrayContains, 1) => match t {
                    DataType::Boolean | DataType::Float64 | DataType::Int64 | DataType::Utf8 => {
                        Ok(t.clone())
                    }
                    t if t.is_integer() => Ok(DataType::Int64),
                    t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
                        Ok(DataType::Float64)
                    }
                    t if is_text(t) => Ok(DataType::Utf8),
                    t => plan_err!("{name}: cannot look for a {t} in a JSON array"),
                },
                _ if is_text(t) => Ok(DataType::Utf8),
                _ => plan_err!("{name} expects ({arguments}) as text, got {t}"),
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.kind.returns())
    }

    /// Also checks a constant path while the query is planned, so that a mistake in it is
    /// the statement's error, not a task's.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if matches!(self.kind, Kind::ExtractScalar | Kind::Extract | Kind::Size)
            && let Some(Some(path)) = args.scalar_arguments.get(1)
            && let Some(Some(path)) = path.try_as_str()
        {
            JsonPath::parse(path)?;
        }
        Ok(Arc::new(Field::new(self.name(), self.kind.returns(), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalar_path = match (self.kind, args.args.get(1)) {
            (
                Kind::ExtractScalar | Kind::Extract | Kind::Size,
                Some(ColumnarValue::Scalar(path)),
            ) => Some(match path.try_as_str().flatten() {
                Some(path) => Some(JsonPath::parse(path)?),
                None => None,
            }),
            _ => None,
        };
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let json = text(&arrays[0])?;
        let out: ArrayRef = match self.kind {
            Kind::ExtractScalar | Kind::Extract | Kind::Size => {
                let paths = text(&arrays[1])?;
                let path_at = |row: usize| -> Result<Option<JsonPath>> {
                    match &scalar_path {
                        Some(path) => Ok(path.clone()),
                        None if paths.is_null(row) => Ok(None),
                        None => JsonPath::parse(paths.value(row)).map(Some),
                    }
                };
                let found = |row: usize| -> Result<Option<Value>> {
                    if json.is_null(row) {
                        return Ok(None);
                    }
                    let Some(path) = path_at(row)? else {
                        return Ok(None);
                    };
                    Ok(parse(json.value(row)).and_then(|v| path.find(&v).cloned()))
                };
                match self.kind {
                    Kind::Size => {
                        let mut b = Int64Builder::with_capacity(rows);
                        for row in 0..rows {
                            b.append_option(found(row)?.map(|v| size(&v)));
                        }
                        Arc::new(b.finish())
                    }
                    kind => {
                        let mut b = StringBuilder::with_capacity(rows, rows * 8);
                        for row in 0..rows {
                            let value = found(row)?;
                            b.append_option(match kind {
                                Kind::ExtractScalar => value.as_ref().and_then(scalar_text),
                                _ => value.map(|v| v.to_string()),
                            });
                        }
                        Arc::new(b.finish())
                    }
                }
            }
            Kind::ArrayLength => {
                let mut b = Int64Builder::with_capacity(rows);
                for row in 0..rows {
                    b.append_option(
                        (!json.is_null(row))
                            .then(|| parse(json.value(row)))
                            .flatten()
                            .and_then(|v| v.as_array().map(|a| a.len() as i64)),
                    );
                }
                Arc::new(b.finish())
            }
            Kind::ArrayContains => {
                let mut b = BooleanBuilder::with_capacity(rows);
                for row in 0..rows {
                    let needle = ScalarValue::try_from_array(&arrays[1], row)?;
                    if json.is_null(row) || needle.is_null() {
                        b.append_null();
                        continue;
                    }
                    b.append_option(
                        parse(json.value(row))
                            .and_then(|v| v.as_array().map(|a| a.iter().any(|e| same(e, &needle)))),
                    );
                }
                Arc::new(b.finish())
            }
            Kind::IsScalar => {
                let mut b = BooleanBuilder::with_capacity(rows);
                for row in 0..rows {
                    if json.is_null(row) {
                        b.append_null();
                        continue;
                    }
                    let value = valid(self.kind, json.value(row))?;
                    b.append_value(!value.is_array() && !value.is_object());
                }
                Arc::new(b.finish())
            }
            Kind::Parse | Kind::Format => {
                let mut b = StringBuilder::with_capacity(rows, json.value_data().len());
                for row in 0..rows {
                    if json.is_null(row) {
                        b.append_null();
                        continue;
                    }
                    b.append_value(valid(self.kind, json.value(row))?.to_string());
                }
                Arc::new(b.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

fn text(array: &ArrayRef) -> Result<&StringArray> {
    match array.as_any().downcast_ref::<StringArray>() {
        Some(strings) => Ok(strings),
        None => exec_err!("JSON functions take text, got {}", array.data_type()),
    }
}

/// `text` as JSON, if it is JSON.
fn parse(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

/// `text` as JSON, or the query's error naming the function and the text.
fn valid(kind: Kind, text: &str) -> Result<Value> {
    serde_json::from_str::<Value>(text).or_else(|e| {
        let shown: String = text.chars().take(80).collect();
        exec_err!(
            "{}: cannot convert value to JSON: '{shown}' ({e})",
            kind.name()
        )
    })
}

/// A scalar as `json_extract_scalar` gives it; arrays, objects and null give NULL.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// `json_size`: fields of an object, elements of an array, 0 for a scalar.
fn size(value: &Value) -> i64 {
    match value {
        Value::Array(a) => a.len() as i64,
        Value::Object(o) => o.len() as i64,
        _ => 0,
    }
}

/// Whether a JSON array element equals the value looked for (`json_array_contains`).
fn same(element: &Value, needle: &ScalarValue) -> bool {
    match (element, needle) {
        (Value::Bool(a), ScalarValue::Boolean(Some(b))) => a == b,
        (Value::Number(a), ScalarValue::Int64(Some(b))) => a.as_i64() == Some(*b),
        (Value::Number(a), ScalarValue::Float64(Some(b))) => a.as_f64() == Some(*b),
        (Value::String(a), ScalarValue::Utf8(Some(b))) => a == b,
        _ => false,
    }
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A JSON path of Trino's subset: `$` then `.key`, `."key"`, `["key"]` or `[index]` steps.
#[derive(Debug, Clone, PartialEq)]
struct JsonPath(Vec<Step>);

impl JsonPath {
    fn parse(path: &str) -> Result<Self> {
        let invalid = |at: usize, expected: &str| {
            DataFusionError::Plan(format!(
                "invalid JSON path '{path}': expected {expected} at position {}",
                at + 1
            ))
        };
        let chars: Vec<char> = path.trim().chars().collect();
        if chars.first() != Some(&'$') {
            return Err(invalid(0, "'$'"));
        }
        let mut steps = Vec::new();
        let mut i = 1;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    if chars.get(i) == Some(&'"') {
                        let (key, next) =
                            quoted(&chars, i, '"').ok_or_else(|| invalid(i, "a closing '\"'"))?;
                        steps.push(Step::Key(key));
                        i = next;
                    } else {
                        let start = i;
                        while i < chars.len()
                            && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$' | '-'))
                        {
                            i += 1;
                        }
                        if i == start {
                            return Err(invalid(start, "a key"));
                        }
                        steps.push(Step::Key(chars[start..i].iter().collect()));
                    }
                }
                '[' => {
                    i += 1;
                    match chars.get(i) {
                        Some(&q @ ('"' | '\'')) => {
                            let (key, next) = quoted(&chars, i, q)
                                .ok_or_else(|| invalid(i, "a closing quote"))?;
                            steps.push(Step::Key(key));
                            i = next;
                        }
                        _ => {
                            let start = i;
                            while i < chars.len() && chars[i].is_ascii_digit() {
                                i += 1;
                            }
                            let digits: String = chars[start..i].iter().collect();
                            let Ok(index) = digits.parse::<usize>() else {
                                return Err(invalid(start, "an array index or a quoted key"));
                            };
                            steps.push(Step::Index(index));
                        }
                    }
                    if chars.get(i) != Some(&']') {
                        return Err(invalid(i, "']'"));
                    }
                    i += 1;
                }
                c if c.is_whitespace() => i += 1,
                _ => return Err(invalid(i, "'.' or '['")),
            }
        }
        Ok(Self(steps))
    }

    /// The value the path leads to in `value`.
    fn find<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.0.iter().try_fold(value, |v, step| match (step, v) {
            (Step::Key(key), Value::Object(fields)) => fields.get(key),
            (Step::Index(i), Value::Array(elements)) => elements.get(*i),
            _ => None,
        })
    }
}

/// The text of a quoted key starting at `chars[open]` (the quote), and the position after its
/// closing quote; a backslash escapes the next character.
fn quoted(chars: &[char], open: usize, quote: char) -> Option<(String, usize)> {
    let mut key = String::new();
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                key.push(chars[i + 1]);
                i += 2;
            }
            c if c == quote => return Some((key, i + 1)),
            c => {
                key.push(c);
                i += 1;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use datafusion::common::config::ConfigOptions;

    fn call(kind: Kind, args: Vec<ColumnarValue>, rows: usize) -> Result<ArrayRef> {
        let function = JsonFunction::new(kind);
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        let result = function.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("r", kind.returns(), true)),
            config_options: Arc::new(ConfigOptions::default()),
        })?;
        result.into_array(rows)
    }

    fn texts(values: &[Option<&str>]) -> ColumnarValue {
        ColumnarValue::Array(Arc::new(StringArray::from(values.to_vec())))
    }

    fn path(p: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(p.to_owned())))
    }

    fn strings(array: &ArrayRef) -> Vec<Option<String>> {
        array
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect()
    }

    #[test]
    fn paths_follow_keys_and_indexes() {
        let doc = r#"{"a": {"b c": [10, {"d": "x"}]}, "n": null, "t": true}"#;
        let rows = [Some(doc), Some("not json"), None, Some("[1, 2.5, \"s\"]")];
        let extract = |p: &str| call(Kind::ExtractScalar, vec![texts(&rows), path(p)], 4);
        let got = strings(&extract(r#"$.a["b c"][1].d"#).expect("extracts"));
        assert_eq!(got, [Some("x".into()), None, None, None]);
        let got = strings(&extract(r#"$.a."b c"[0]"#).expect("extracts"));
        assert_eq!(got[0].as_deref(), Some("10"));
        assert_eq!(
            strings(&extract("$.t").expect("extracts"))[0].as_deref(),
            Some("true")
        );
        // null, objects and arrays are not scalars.
        for p in ["$.n", "$.a", "$.a['b c']"] {
            assert_eq!(strings(&extract(p).expect("extracts"))[0], None, "{p}");
        }
        assert_eq!(
            strings(&extract("$[1]").expect("extracts"))[3].as_deref(),
            Some("2.5")
        );
        let json =
            strings(&call(Kind::Extract, vec![texts(&rows), path("$.a")], 4).expect("extracts"));
        assert_eq!(json[0].as_deref(), Some(r#"{"b c":[10,{"d":"x"}]}"#));
        let sizes = call(Kind::Size, vec![texts(&rows), path("$.a['b c']")], 4).expect("sizes");
        assert_eq!(sizes.as_primitive::<Int64Type>().value(0), 2);
        for bad in ["a.b", "$.", "$[x]", "$['open", "$.a]"] {
            let err = extract(bad).expect_err("a bad path").to_string();
            assert!(err.contains("invalid JSON path"), "{bad}: {err}");
        }
    }

    #[test]
    fn arrays_scalars_and_parsing_answer_as_trino() {
        let rows = [
            Some("[1, 2, \"x\", true]"),
            Some("{\"a\": 1}"),
            Some("oops"),
            None,
        ];
        let lengths = call(Kind::ArrayLength, vec![texts(&rows)], 4).expect("lengths");
        let lengths: Vec<Option<i64>> = lengths.as_primitive::<Int64Type>().iter().collect();
        assert_eq!(lengths, [Some(4), None, None, None]);
        let contains = |needle: ScalarValue| {
            let got = call(
                Kind::ArrayContains,
                vec![texts(&rows), ColumnarValue::Scalar(needle)],
                4,
            )
            .expect("looks");
            got.as_boolean().iter().collect::<Vec<_>>()
        };
        assert_eq!(contains(ScalarValue::Int64(Some(2)))[0], Some(true));
        assert_eq!(contains(ScalarValue::Utf8(Some("x".into())))[0], Some(true));
        assert_eq!(contains(ScalarValue::Boolean(Some(false)))[0], Some(false));
        assert_eq!(
            contains(ScalarValue::Int64(Some(2)))[1],
            None,
            "not an array"
        );
        let scalars = call(
            Kind::IsScalar,
            vec![texts(&[Some("1"), Some("[1]"), None])],
            3,
        )
        .expect("answers");
        assert_eq!(
            scalars.as_boolean().iter().collect::<Vec<_>>(),
            [Some(true), Some(false), None]
        );
        let parsed =
            call(Kind::Parse, vec![texts(&[Some(" { \"a\" : [1, 2] } ")])], 1).expect("parses");
        assert_eq!(strings(&parsed)[0].as_deref(), Some(r#"{"a":[1,2]}"#));
        let err = call(Kind::Parse, vec![texts(&[Some("{oops")])], 1)
            .expect_err("not JSON")
            .to_string();
        assert!(
            err.contains("json_parse: cannot convert value to JSON: '{oops'"),
            "{err}"
        );
        assert!(json_function("json_extract_scalar").is_some() && json_function("upper").is_none());
    }
}
