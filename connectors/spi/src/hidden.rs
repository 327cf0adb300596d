//! Hidden columns (Trino's `ColumnMetadata.hidden`): columns a table has, that queries may
//! name, but that `SELECT *`, `DESCRIBE` and the Flight SQL metadata commands leave out.
//! A connector marks them in its table schema's field metadata; the scheduler honours the
//! mark when it expands wildcards.

use std::collections::HashMap;

use arrow::datatypes::Field;

/// The field metadata key that marks a hidden column (value `"true"`).
pub const HIDDEN_COLUMN: &str = "tributary.hidden";

/// `field`, marked hidden.
pub fn hide(field: Field) -> Field {
    let mut metadata: HashMap<String, String> = field.metadata().clone();
    metadata.insert(HIDDEN_COLUMN.to_owned(), "true".to_owned());
    field.with_metadata(metadata)
}

/// Whether a field is marked hidden.
pub fn is_hidden(field: &Field) -> bool {
    field
        .metadata()
        .get(HIDDEN_COLUMN)
        .is_some_and(|v| v == "true")
}
