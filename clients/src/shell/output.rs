//! Printing results: ALIGNED tables, CSV/TSV (with or without header) and JSON lines.

use std::io::Write;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;

/// How results are printed (trino-cli's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[clap(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum OutputFormat {
    /// A table with a header.
    Aligned,
    /// Comma-separated, quoted as needed, no header.
    Csv,
    /// Comma-separated with a header.
    CsvHeader,
    /// Tab-separated, no header.
    Tsv,
    /// Tab-separated with a header.
    TsvHeader,
    /// One JSON object per row.
    Json,
}

/// Rows an ALIGNED table gathers before printing a block (streams stay bounded).
const ALIGNED_BLOCK_ROWS: usize = 10_000;

/// Prints batches as they arrive.
pub(crate) struct Printer<W: Write> {
    format: OutputFormat,
    schema: Schema,
    out: W,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    header_done: bool,
}

impl<W: Write> Printer<W> {
    pub(crate) fn new(format: OutputFormat, schema: Schema, out: W) -> Self {
        Self {
            format,
            schema,
            out,
            pending: Vec::new(),
            pending_rows: 0,
            header_done: false,
        }
    }

    pub(crate) fn print(&mut self, batch: &RecordBatch) -> Result<(), arrow::error::ArrowError> {
        match self.format {
            OutputFormat::Aligned => {
                self.pending_rows += batch.num_rows();
                self.pending.push(batch.clone());
                if self.pending_rows >= ALIGNED_BLOCK_ROWS {
                    self.flush_aligned()?;
                }
                Ok(())
            }
            OutputFormat::Csv
            | OutputFormat::CsvHeader
            | OutputFormat::Tsv
            | OutputFormat::TsvHeader => {
                let delimiter =
                    if matches!(self.format, OutputFormat::Tsv | OutputFormat::TsvHeader) {
                        b'\t'
                    } else {
                        b','
                    };
                let header = !self.header_done
                    && matches!(
                        self.format,
                        OutputFormat::CsvHeader | OutputFormat::TsvHeader
                    );
                self.header_done = true;
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(header)
                    .with_delimiter(delimiter)
                    .build(&mut self.out);
                writer.write(batch)
            }
            OutputFormat::Json => {
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut self.out);
                writer.write(batch)?;
                writer.finish()
            }
        }
    }

    fn flush_aligned(&mut self) -> Result<(), arrow::error::ArrowError> {
        if self.pending.is_empty() && self.header_done {
            return Ok(());
        }
        let table = if self.pending.is_empty() {
            arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                self.schema.clone().into(),
            )])?
        } else {
            arrow::util::pretty::pretty_format_batches(&self.pending)?
        };
        writeln!(self.out, "{table}")?;
        self.header_done = true;
        self.pending.clear();
        self.pending_rows = 0;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<(), arrow::error::ArrowError> {
        if self.format == OutputFormat::Aligned && !self.schema.fields().is_empty() {
            self.flush_aligned()?;
        }
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("x,y"), None])),
            ],
        )
        .expect("batch")
    }

    fn render(format: OutputFormat) -> String {
        let b = batch();
        let mut out = Vec::new();
        let mut p = Printer::new(format, b.schema().as_ref().clone(), &mut out);
        p.print(&b).expect("print");
        p.finish().expect("finish");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn formats() {
        assert_eq!(render(OutputFormat::Csv), "1,\"x,y\"\n2,\n");
        assert_eq!(render(OutputFormat::TsvHeader), "a\tb\n1\tx,y\n2\t\n");
        assert_eq!(
            render(OutputFormat::Json),
            "{\"a\":1,\"b\":\"x,y\"}\n{\"a\":2}\n"
        );
        let aligned = render(OutputFormat::Aligned);
        assert!(aligned.contains("| a | b   |"), "{aligned}");
    }
}
