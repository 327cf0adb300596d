//! The Arrow IPC files executors write result partitions to, as Ballista's pass-through
//! writer frames them (a continuation marker and the header's length before each message,
//! the end-of-stream marker last), read in whole messages: by the scheduler from the work
//! directory of an executor in its process, and by an executor for a scheduler that reads a
//! partition while its task writes it ([`crate::TAIL_PARTITION_ACTION`]).

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use arrow::ipc::MessageHeader;

/// Bytes read from a result file at a time (whole messages: a few more or fewer).
pub const READ_BLOCK: u64 = 4 << 20;

/// What one read of a result file found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WholeMessages {
    /// Bytes appended (whole messages).
    pub bytes: u64,
    /// Whether they include a record batch.
    pub has_batch: bool,
    /// Whether the last of them is the end-of-stream marker.
    pub ended: bool,
    /// The file's length when read.
    pub length: u64,
}

/// Appends to `into` the whole IPC messages `file` holds from byte `at`, about [`READ_BLOCK`]
/// bytes of them (at least one, however large), and none of a message its writer has not
/// finished: of a finished result file or of one its task is writing. Each message is read at
/// its exact length (the continuation marker and the header's length, the header giving the
/// body's), so no byte is read twice, and the body goes straight into the buffer's spare room.
pub fn read_whole_messages(
    file: &std::fs::File,
    mut at: u64,
    mut into: Vec<u8>,
) -> (Vec<u8>, std::io::Result<WholeMessages>) {
    let mut found = WholeMessages::default();
    let result = (|| {
        let length = file.metadata()?.len();
        found.length = length;
        while found.bytes < READ_BLOCK && at + 8 <= length {
            let mut prefix = [0u8; 8];
            file.read_exact_at(&mut prefix, at)?;
            // The continuation marker, then the header's length (Ballista writes this framing).
            if prefix[..4] != [0xff; 4] {
                return Err(std::io::Error::other(format!(
                    "no IPC message at byte {at} (the file is damaged)"
                )));
            }
            let header = i32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
            let header = u64::try_from(header).map_err(std::io::Error::other)?;
            if header == 0 {
                into.extend_from_slice(&prefix);
                found.bytes += 8;
                found.ended = true;
                break;
            }
            if at + 8 + header > length {
                break;
            }
            let mut meta = vec![0u8; header as usize];
            file.read_exact_at(&mut meta, at + 8)?;
            let message = arrow::ipc::root_as_message(&meta).map_err(|e| {
                std::io::Error::other(format!("bad IPC message header at byte {at}: {e}"))
            })?;
            let body = u64::try_from(message.bodyLength()).map_err(std::io::Error::other)?;
            let kind = message.header_type();
            let end = at + 8 + header + body;
            if end > length {
                break;
            }
            into.extend_from_slice(&prefix);
            into.extend_from_slice(&meta);
            let mut reader = file;
            reader.seek(SeekFrom::Start(at + 8 + header))?;
            let read = reader.take(body).read_to_end(&mut into)?;
            if read as u64 != body {
                return Err(std::io::Error::other(format!(
                    "the IPC message at byte {at} was cut while read"
                )));
            }
            if matches!(
                kind,
                MessageHeader::RecordBatch | MessageHeader::DictionaryBatch
            ) {
                found.has_batch = true;
            }
            found.bytes += end - at;
            at = end;
        }
        Ok(())
    })();
    (into, result.map(|()| found))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::ipc::writer::StreamWriter;

    use super::*;

    /// A file name of its own in the temporary directory.
    fn temp_path(kind: &str) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        std::env::temp_dir().join(format!(
            "{kind}-{}-{}.arrow",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Ends of the whole messages at the start of `block`, and where the last one ends.
    fn message_ends(block: &[u8]) -> usize {
        let mut at = 0;
        while at + 8 <= block.len() {
            let header = i32::from_le_bytes(block[at + 4..at + 8].try_into().expect("4 bytes"));
            if header == 0 {
                return at + 8;
            }
            let header = header as usize;
            let message =
                arrow::ipc::root_as_message(&block[at + 8..at + 8 + header]).expect("a message");
            at += 8 + header + message.bodyLength() as usize;
        }
        at
    }

    #[test]
    fn a_result_file_is_read_in_blocks_of_whole_messages() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batch = |rows: usize| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                    Arc::new(StringArray::from_iter_values(
                        (0..rows).map(|i| format!("value {i}")),
                    )),
                ],
            )
            .expect("test value")
        };
        let mut bytes = Vec::new();
        let mut writer = StreamWriter::try_new(&mut bytes, &schema).expect("test value");
        // Messages of ~20 bytes to ~9 MB: several per block, and one larger than a block.
        for rows in [1, 100_000, 30_000, 400_000, 7, 150_000] {
            writer.write(&batch(rows)).expect("test value");
        }
        writer.finish().expect("test value");
        drop(writer);
        let path = temp_path("result");
        std::fs::write(&path, &bytes).expect("test value");
        let file = std::fs::File::open(&path).expect("test value");
        let (mut read, mut blocks, mut at) = (Vec::new(), 0, 0);
        loop {
            let (block, found) = read_whole_messages(&file, at, Vec::new());
            let found = found.expect("reads");
            if found.bytes == 0 {
                break;
            }
            assert_eq!(
                message_ends(&block),
                block.len(),
                "block {blocks} ends mid-message"
            );
            at += found.bytes;
            read.extend_from_slice(&block);
            blocks += 1;
            if found.ended {
                break;
            }
        }
        // The schema and three batches (3.7 MB) and the 11 MB batch whole; then the rest.
        assert_eq!(blocks, 2);
        assert_eq!(read, bytes);

        // A damaged file (cut inside a message, or bytes that are no message) is named.
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("test value");
        let file = std::fs::File::open(&path).expect("test value");
        let (block, found) = read_whole_messages(&file, 0, Vec::new());
        let found = found.expect("reads the whole messages before the cut");
        assert!(found.bytes > 0 && found.bytes < found.length && !found.ended);
        let (_, rest) = read_whole_messages(&file, found.bytes, block);
        assert_eq!(
            rest.expect("reads").bytes,
            0,
            "the cut message is not given"
        );
        let (_, damaged) = read_whole_messages(&file, 3, Vec::new());
        assert!(damaged.is_err());
        std::fs::remove_file(&path).expect("test value");
    }

    #[test]
    fn a_growing_file_is_read_in_whole_messages() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..10_000))],
        )
        .expect("test value");
        let mut bytes = Vec::new();
        let mut writer = StreamWriter::try_new(&mut bytes, &schema).expect("test value");
        let schema_end = writer.get_ref().len();
        writer.write(&batch).expect("test value");
        let batch_end = writer.get_ref().len();
        writer.write(&batch).expect("test value");
        writer.finish().expect("test value");
        drop(writer);

        // The writer's bytes arrive in pieces cut anywhere: each read takes the whole messages
        // written, none of the one being written, and the reads together are the file.
        let path = temp_path("growing");
        let mut out = std::fs::File::create(&path).expect("test value");
        let file = std::fs::File::open(&path).expect("test value");
        let (mut at, mut read) = (0u64, Vec::new());
        let (mut batches, mut ended) = (false, false);
        let cuts = [
            5,
            schema_end - 1,
            schema_end + 7,
            batch_end - 1,
            batch_end,
            bytes.len(),
        ];
        for cut in cuts {
            let written = out.metadata().expect("test value").len() as usize;
            out.write_all(&bytes[written..cut]).expect("test value");
            out.flush().expect("test value");
            let (into, found) = read_whole_messages(&file, at, std::mem::take(&mut read));
            let found = found.expect("reads");
            read = into;
            at += found.bytes;
            batches |= found.has_batch;
            ended = found.ended;
            let whole = match cut {
                c if c < schema_end => 0,
                c if c < batch_end => schema_end,
                c if c < bytes.len() => batch_end,
                _ => bytes.len(),
            };
            assert_eq!(
                (at as usize, read.len()),
                (whole, whole),
                "after {cut} bytes"
            );
            assert_eq!(batches, cut >= batch_end, "after {cut} bytes");
        }
        assert!(ended, "the end-of-stream marker is the last message read");
        assert_eq!(read, bytes);

        // Bytes that are no message are an error, not a wait.
        let (_, damaged) = read_whole_messages(&file, 3, Vec::new());
        assert!(damaged.is_err());
        std::fs::remove_file(&path).expect("test value");
    }
}
