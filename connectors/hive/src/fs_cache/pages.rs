//! Page arithmetic and reading held pages: which pages a byte range covers, where a page's
//! share of a range lies, runs of missing pages to fetch at once, and filling answers from
//! page files.

use std::fs::File;
use std::ops::{Range, RangeInclusive};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// The pages a (non-empty) byte range covers.
pub(super) fn pages_of(range: &Range<u64>, page_size: u64) -> RangeInclusive<u64> {
    range.start / page_size..=(range.end - 1) / page_size
}

/// Where `page`'s share of `range` is: (from, to) inside the page, and its offset in the
/// range's answer.
pub(super) fn part(range: &Range<u64>, page: u64, page_size: u64) -> (usize, usize, usize) {
    let page_start = page * page_size;
    let start = range.start.max(page_start);
    let end = range.end.min(page_start + page_size);
    let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    (
        as_usize(start - page_start),
        as_usize(end - page_start),
        as_usize(start - range.start),
    )
}

/// Fills the answers from held pages' files; returns them, the pages whose files could not be
/// read in full, and the bytes read.
pub(super) fn fill_from_files(
    mut buffers: Vec<Vec<u8>>,
    ranges: &[Range<u64>],
    files: &[(u64, PathBuf)],
    page_size: u64,
) -> (Vec<Vec<u8>>, Vec<u64>, u64) {
    let mut lost = Vec::new();
    let mut read = 0u64;
    for (page, path) in files {
        let Ok(file) = File::open(path) else {
            lost.push(*page);
            continue;
        };
        for (range, buffer) in ranges.iter().zip(buffers.iter_mut()) {
            if !pages_of(range, page_size).contains(page) {
                continue;
            }
            let (from, to, at) = part(range, *page, page_size);
            if file
                .read_exact_at(&mut buffer[at..at + (to - from)], from as u64)
                .is_err()
            {
                lost.push(*page);
                break;
            }
            read += (to - from) as u64;
        }
    }
    (buffers, lost, read)
}

/// Consecutive pages as runs (`pages` sorted).
pub(super) fn runs(pages: &[u64]) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for &p in pages {
        match runs.last_mut() {
            Some(run) if run.end == p => run.end = p + 1,
            _ => runs.push(p..p + 1),
        }
    }
    runs
}
