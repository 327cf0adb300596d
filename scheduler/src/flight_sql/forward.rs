//! A result partition forwarded to a client as its executor wrote it. The executor's file is an
//! Arrow IPC stream; a Flight `DoGet` stream is the same messages, one per `FlightData`. A
//! record batch whose columns already have the announced types, written without compression
//! and small enough for one message goes out as the bytes that were read: no decoding, no
//! encoding, no copy. Any other batch (view types to make plain, LZ4-compressed, too large
//! for one message, dictionaries) is decoded, given the announced schema and encoded again.

use std::collections::VecDeque;

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions};
use arrow::ipc::{MessageHeader, root_as_message};
use arrow_flight::error::FlightError;
use arrow_flight::{FlightData, SchemaAsIpc};
use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tributary_connector::conform_batch;

use crate::fetch::IpcStream;

/// The marker before each message's length (Arrow IPC format since 0.15).
const CONTINUATION: [u8; 4] = [0xff; 4];

/// Largest message body forwarded as it is (executors slice their result batches under it); a
/// larger batch is split.
const MAX_FORWARDED_BODY: usize = tributary_proto::MAX_RESULT_BODY_BYTES;

/// A partition's IPC bytes as `FlightData` in `schema`: the schema first, then its batches.
pub(super) fn forward(
    schema: SchemaRef,
    blocks: IpcStream,
) -> impl Stream<Item = Result<FlightData, FlightError>> + Send {
    let head = FlightData::from(SchemaAsIpc::new(&schema, &IpcWriteOptions::default()));
    let state = Forwarding {
        blocks,
        messages: IpcMessages::default(),
        batches: Batches::new(schema),
        ready: VecDeque::new(),
    };
    let body = futures::stream::try_unfold(state, |mut state| async move {
        loop {
            if let Some(data) = state.ready.pop_front() {
                return Ok(Some((data, state)));
            }
            if let Some(message) = state.messages.next_message()? {
                state.batches.forward(message, &mut state.ready)?;
                continue;
            }
            match state.blocks.next().await {
                Some(block) => state.messages.push(block?),
                None => {
                    state.messages.finish()?;
                    return Ok(None);
                }
            }
        }
    });
    futures::stream::once(futures::future::ready(Ok(head))).chain(body)
}

struct Forwarding {
    blocks: IpcStream,
    messages: IpcMessages,
    batches: Batches,
    ready: VecDeque<FlightData>,
}

/// One IPC message: the whole of it as read, and where its flatbuffer header and body are.
#[derive(Debug)]
struct IpcMessage {
    whole: Bytes,
    header: Bytes,
    body: Bytes,
}

/// Cuts IPC stream bytes, arriving in blocks of any size, into messages. A message within one
/// block is a slice of it; only one spanning blocks is copied together.
#[derive(Debug, Default)]
struct IpcMessages {
    blocks: VecDeque<Bytes>,
    /// Bytes in `blocks`.
    len: usize,
    /// The end-of-stream marker was read.
    ended: bool,
}

impl IpcMessages {
    fn push(&mut self, block: Bytes) {
        if !block.is_empty() {
            self.len += block.len();
            self.blocks.push_back(block);
        }
    }

    /// The next whole message, if its bytes have all arrived.
    fn next_message(&mut self) -> Result<Option<IpcMessage>, ArrowError> {
        loop {
            if self.ended {
                if self.len == 0 {
                    return Ok(None);
                }
                return Err(ArrowError::IpcError(format!(
                    "{} bytes after the end of a result stream",
                    self.len
                )));
            }
            let Some(start) = self.first(8.min(self.len)).filter(|b| b.len() >= 4) else {
                return Ok(None);
            };
            let (prefix, length) = if start[..4] == CONTINUATION {
                if start.len() < 8 {
                    return Ok(None);
                }
                (8, (&start[4..8]).get_i32_le())
            } else {
                (4, (&start[..4]).get_i32_le())
            };
            let length = usize::try_from(length).map_err(|_| {
                ArrowError::IpcError("a result message with a negative length".into())
            })?;
            if length == 0 {
                self.take(prefix);
                self.ended = true;
                continue;
            }
            let Some(head) = self.first(prefix + length) else {
                return Ok(None);
            };
            let message = root_as_message(&head[prefix..])
                .map_err(|e| ArrowError::IpcError(format!("a result message is invalid: {e}")))?;
            let body = usize::try_from(message.bodyLength()).map_err(|_| {
                ArrowError::IpcError("a result message with a negative body length".into())
            })?;
            let total = prefix + length + body;
            if self.len < total {
                return Ok(None);
            }
            let whole = self.take(total);
            return Ok(Some(IpcMessage {
                header: whole.slice(prefix..prefix + length),
                body: whole.slice(prefix + length..),
                whole,
            }));
        }
    }

    /// The first `n` bytes, if they have arrived (copied together when they span blocks).
    fn first(&self, n: usize) -> Option<std::borrow::Cow<'_, [u8]>> {
        if n > self.len {
            return None;
        }
        match self.blocks.front() {
            Some(block) if block.len() >= n => Some(std::borrow::Cow::Borrowed(&block[..n])),
            _ => {
                let mut joined = Vec::with_capacity(n);
                for block in &self.blocks {
                    let wanted = (n - joined.len()).min(block.len());
                    joined.extend_from_slice(&block[..wanted]);
                    if joined.len() == n {
                        break;
                    }
                }
                Some(std::borrow::Cow::Owned(joined))
            }
        }
    }

    /// Removes the first `n` bytes (which have arrived).
    fn take(&mut self, n: usize) -> Bytes {
        self.len -= n;
        let Some(front) = self.blocks.front_mut() else {
            return Bytes::new();
        };
        if front.len() > n {
            return front.split_to(n);
        }
        if front.len() == n {
            return self.blocks.pop_front().unwrap_or_default();
        }
        let mut joined = BytesMut::with_capacity(n);
        while joined.len() < n {
            let Some(block) = self.blocks.front_mut() else {
                break;
            };
            let wanted = (n - joined.len()).min(block.len());
            joined.extend_from_slice(&block.split_to(wanted));
            if block.is_empty() {
                self.blocks.pop_front();
            }
        }
        joined.freeze()
    }

    /// The stream ended: nothing may be left half-read.
    fn finish(&self) -> Result<(), ArrowError> {
        if self.len == 0 {
            Ok(())
        } else {
            Err(ArrowError::IpcError(format!(
                "a result stream ended inside a message ({} bytes left)",
                self.len
            )))
        }
    }
}

/// Turns a partition's messages into the client's `FlightData`.
struct Batches {
    schema: SchemaRef,
    /// Decodes what cannot be forwarded (it sees every message, schema and dictionaries
    /// included, so that it can decode any batch).
    decoder: StreamDecoder,
    /// Whether the file's columns have the announced types (known once its schema is read).
    same_types: bool,
    /// Fields (by position in the batch's depth-first list of field nodes) announced non-null.
    non_null_nodes: Vec<usize>,
    encoder: IpcDataGenerator,
    tracker: DictionaryTracker,
    options: IpcWriteOptions,
    context: IpcWriteContext,
}

impl Batches {
    fn new(schema: SchemaRef) -> Self {
        // SAFETY: the bytes are files our executors wrote with Arrow's writer from arrays
        // Arrow had validated (Ballista reads its shuffle files the same way).
        let decoder = unsafe { StreamDecoder::new().with_skip_validation(true) };
        let mut non_null_nodes = Vec::new();
        let mut node = 0;
        for field in schema.fields() {
            if !field.is_nullable() {
                non_null_nodes.push(node);
            }
            node += field_nodes(field.data_type());
        }
        Self {
            schema,
            decoder,
            same_types: false,
            non_null_nodes,
            encoder: IpcDataGenerator::default(),
            tracker: DictionaryTracker::new(false),
            options: IpcWriteOptions::default(),
            context: IpcWriteContext::default(),
        }
    }

    fn forward(
        &mut self,
        message: IpcMessage,
        out: &mut VecDeque<FlightData>,
    ) -> Result<(), ArrowError> {
        let parsed = root_as_message(&message.header)
            .map_err(|e| ArrowError::IpcError(format!("a result message is invalid: {e}")))?;
        match parsed.header_type() {
            MessageHeader::Schema => {
                let written = parsed
                    .header_as_schema()
                    .map(arrow::ipc::convert::fb_to_schema)
                    .ok_or_else(|| ArrowError::IpcError("a result schema is invalid".into()))?;
                self.same_types = same_types(&written, &self.schema);
            }
            MessageHeader::RecordBatch if self.same_types => {
                let batch = parsed.header_as_record_batch().ok_or_else(|| {
                    ArrowError::IpcError("a result batch message is invalid".into())
                })?;
                let nulls_allowed = batch.nodes().is_some_and(|nodes| {
                    self.non_null_nodes
                        .iter()
                        .all(|&i| i < nodes.len() && nodes.get(i).null_count() == 0)
                });
                if batch.compression().is_none()
                    && message.body.len() <= MAX_FORWARDED_BODY
                    && nulls_allowed
                {
                    out.push_back(FlightData {
                        data_header: message.header,
                        data_body: message.body,
                        ..FlightData::default()
                    });
                    return Ok(());
                }
            }
            _ => {}
        }
        let mut whole = Buffer::from(message.whole);
        while !whole.is_empty() {
            if let Some(batch) = self.decoder.decode(&mut whole)? {
                self.encode(&conform_batch(&batch, &self.schema)?, out)?;
            }
        }
        Ok(())
    }

    /// `batch` encoded in messages of about `FLIGHT_DATA_SIZE`.
    fn encode(
        &mut self,
        batch: &RecordBatch,
        out: &mut VecDeque<FlightData>,
    ) -> Result<(), ArrowError> {
        let size = batch.get_array_memory_size().max(1);
        let parts = size.div_ceil(super::results::FLIGHT_DATA_SIZE).max(1);
        let rows = batch.num_rows().div_ceil(parts).max(1);
        let mut offset = 0;
        loop {
            let length = rows.min(batch.num_rows() - offset);
            let (dictionaries, data) = self.encoder.encode(
                &batch.slice(offset, length),
                &mut self.tracker,
                &self.options,
                &mut self.context,
            )?;
            out.extend(dictionaries.into_iter().map(FlightData::from));
            out.push_back(FlightData::from(data));
            offset += length;
            if offset >= batch.num_rows() {
                return Ok(());
            }
        }
    }
}

/// Whether the columns `written` have the types `announced` (names and nullability aside),
/// none of them dictionaries (whose batches need the dictionary messages before them).
fn same_types(written: &Schema, announced: &Schema) -> bool {
    written.fields().len() == announced.fields().len()
        && written
            .fields()
            .iter()
            .zip(announced.fields())
            .all(|(w, a)| w.data_type() == a.data_type() && !has_dictionary(a.data_type()))
}

fn has_dictionary(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Dictionary(_, _))
        || child_types(data_type).into_iter().any(has_dictionary)
}

/// How many field nodes a column of `data_type` has in a record batch message (itself and
/// its children, depth first).
fn field_nodes(data_type: &DataType) -> usize {
    1 + child_types(data_type)
        .into_iter()
        .map(field_nodes)
        .sum::<usize>()
}

/// The types of a nested type's children, in order (none for other types; a dictionary's
/// values travel in messages of their own).
fn child_types(data_type: &DataType) -> Vec<&DataType> {
    match data_type {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => vec![f.data_type()],
        DataType::Struct(fields) => fields.iter().map(|f| f.data_type()).collect(),
        DataType::Union(fields, _) => fields.iter().map(|(_, f)| f.data_type()).collect(),
        DataType::RunEndEncoded(ends, values) => vec![ends.data_type(), values.data_type()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray, StringViewArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::ipc::CompressionType;
    use arrow::ipc::writer::StreamWriter;
    use arrow_flight::utils::flight_data_to_batches;
    use futures::TryStreamExt;

    use super::*;

    fn announced(nullable: bool) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, nullable),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn batch(ids: Vec<Option<i64>>, view: bool) -> RecordBatch {
        let names: Vec<String> = ids.iter().map(|i| format!("name {i:?}")).collect();
        let names: ArrayRef = if view {
            Arc::new(StringViewArray::from_iter_values(&names))
        } else {
            Arc::new(StringArray::from_iter_values(&names))
        };
        let fields = vec![
            Field::new("written_id", DataType::Int64, true),
            Field::new("written_name", names.data_type().clone(), true),
        ];
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            vec![Arc::new(Int64Array::from(ids)), names],
        )
        .expect("batch")
    }

    /// What an executor writes: an IPC stream of `batches`.
    fn file(batches: &[RecordBatch], compression: Option<CompressionType>) -> Vec<u8> {
        let options = IpcWriteOptions::default()
            .try_with_compression(compression)
            .expect("options");
        let mut writer =
            StreamWriter::try_new_with_options(Vec::new(), &batches[0].schema(), options)
                .expect("writer");
        for b in batches {
            writer.write(b).expect("write");
        }
        writer.finish().expect("finish");
        writer.into_inner().expect("bytes")
    }

    /// `bytes` in blocks of `block` bytes, forwarded as `schema`.
    async fn forwarded(
        schema: &SchemaRef,
        bytes: Vec<u8>,
        block: usize,
    ) -> Result<Vec<FlightData>, FlightError> {
        let blocks: Vec<Result<Bytes, FlightError>> = bytes
            .chunks(block)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        forward(Arc::clone(schema), futures::stream::iter(blocks).boxed())
            .try_collect()
            .await
    }

    fn compressed(data: &FlightData) -> bool {
        root_as_message(&data.data_header)
            .expect("message")
            .header_as_record_batch()
            .is_some_and(|b| b.compression().is_some())
    }

    fn expected(schema: &SchemaRef, batches: &[RecordBatch]) -> Vec<RecordBatch> {
        batches
            .iter()
            .map(|b| conform_batch(b, schema).expect("conform"))
            .collect()
    }

    #[tokio::test]
    async fn uncompressed_batches_of_the_announced_types_are_forwarded_as_read() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let written: Vec<RecordBatch> = (0..3)
            .map(|n| {
                RecordBatch::try_new(
                    Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)])),
                    vec![Arc::new(Int64Array::from_iter_values(
                        n * 100..n * 100 + 100,
                    ))],
                )
                .expect("batch")
            })
            .collect();
        let bytes = file(&written, None);
        let data = forwarded(&schema, bytes.clone(), 8 << 20)
            .await
            .expect("forwarded");
        // The schema announced, then each batch's message exactly as the file holds it.
        assert_eq!(data.len(), 4);
        let written_as = |part: &Bytes| bytes.windows(part.len()).any(|w| w == part.as_ref());
        for d in &data[1..] {
            assert!(written_as(&d.data_header), "a header not as written");
            assert!(
                d.data_body.len() >= 800 && written_as(&d.data_body),
                "a body not as written"
            );
        }
        let read = flight_data_to_batches(&data).expect("decodes");
        assert_eq!(read, expected(&schema, &written));
        assert_eq!(read[0].schema(), schema);
    }

    #[tokio::test]
    async fn compressed_and_view_typed_batches_are_decoded_and_encoded_plain() {
        let schema = announced(true);
        let written = vec![
            batch(vec![Some(1), None, Some(3)], true),
            batch(vec![Some(4)], true),
        ];
        for compression in [None, Some(CompressionType::LZ4_FRAME)] {
            let data = forwarded(&schema, file(&written, compression), 8 << 20)
                .await
                .expect("forwarded");
            assert!(data.iter().all(|d| !compressed(d)));
            let read = flight_data_to_batches(&data).expect("decodes");
            assert_eq!(read, expected(&schema, &written));
            assert_eq!(read[0].schema(), schema);
        }
        // Compressed but of the announced types: decoded too, sent uncompressed.
        let plain = vec![batch(vec![Some(7), Some(8)], false)];
        let data = forwarded(
            &schema,
            file(&plain, Some(CompressionType::LZ4_FRAME)),
            8 << 20,
        )
        .await
        .expect("forwarded");
        assert!(data.iter().all(|d| !compressed(d)));
        assert_eq!(
            flight_data_to_batches(&data).expect("decodes"),
            expected(&schema, &plain)
        );
    }

    #[tokio::test]
    async fn messages_are_cut_out_of_blocks_of_any_size() {
        let schema = announced(true);
        let written = vec![
            batch(vec![Some(1), Some(2)], false),
            batch(vec![None, Some(5), Some(6)], false),
            batch(vec![], false),
        ];
        let bytes = file(&written, None);
        for block in [1, 3, 7, 64, 1000, bytes.len()] {
            let data = forwarded(&schema, bytes.clone(), block)
                .await
                .expect("forwarded");
            assert_eq!(
                flight_data_to_batches(&data).expect("decodes"),
                expected(&schema, &written),
                "blocks of {block} bytes"
            );
        }
    }

    #[tokio::test]
    async fn large_batches_are_split_into_messages_clients_accept() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        // 8 MB of values: over what is forwarded as one message.
        let big = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..1_000_000))],
        )
        .expect("batch");
        let data = forwarded(&schema, file(std::slice::from_ref(&big), None), 8 << 20)
            .await
            .expect("forwarded");
        assert!(data.len() > 2);
        assert!(data.iter().all(|d| d.data_body.len() <= MAX_FORWARDED_BODY));
        let read = flight_data_to_batches(&data).expect("decodes");
        assert_eq!(
            arrow::compute::concat_batches(&schema, &read).expect("concat"),
            big
        );
    }

    #[tokio::test]
    async fn nulls_in_a_column_announced_non_null_fail_the_stream() {
        let schema = announced(false);
        let written = vec![batch(vec![Some(1), None], false)];
        let error = forwarded(&schema, file(&written, None), 8 << 20)
            .await
            .expect_err("nulls where none were announced");
        assert!(error.to_string().contains("non-nullable"), "{error}");
    }

    #[tokio::test]
    async fn a_stream_cut_short_is_an_error() {
        let schema = announced(true);
        let written = vec![batch(vec![Some(1), Some(2)], false)];
        let mut bytes = file(&written, None);
        // Without the end marker and half of the batch's body.
        bytes.truncate(bytes.len() - 40);
        let error = forwarded(&schema, bytes, 8 << 20)
            .await
            .expect_err("truncated");
        assert!(
            error.to_string().contains("ended inside a message"),
            "{error}"
        );
    }
}
