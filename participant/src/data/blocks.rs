//! Plain CSV files read in blocks of whole lines, parsed on all cores.
//!
//! A file with no `"` anywhere and no lone `\r` (each `\r` ends a `\r\n`)
//! has a simple structure: every `\n` ends a record, every `,` separates
//! two cells, and an empty line is no record. [`PlainCsv::scan`] checks that
//! in one cheap sequential pass, cutting the file into blocks of about
//! [`BLOCK_BYTES`] at line ends and counting each block's lines and
//! records; [`PlainCsv::par_blocks`] then hands the blocks to worker
//! threads, each of which knows the line and the row its block starts at.
//! A file that is not plain (quoted cells may hold commas and line breaks)
//! is read by the `csv` crate instead, as before.
//!
//! Memory: one block buffer per worker; nothing of the file is kept.
//!
//! ```
//! use fedcredit_participant::data::blocks::PlainCsv;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("a.csv");
//! std::fs::write(&path, "a,b\r\n1,2\r\n\r\n3,4\r\n").unwrap();
//! let csv = PlainCsv::scan(&path).unwrap().expect("plain");
//! assert_eq!(csv.rows(), 2);
//! let block = &csv.blocks()[0];
//! let text = "1,2\r\n\r\n3,4\r\n";
//! let records: Vec<_> = block.records(text).collect();
//! assert_eq!(records, [(2, "1,2"), (4, "3,4")]);
//!
//! std::fs::write(&path, "a,b\n\"1\",2\n").unwrap();
//! assert!(PlainCsv::scan(&path).unwrap().is_none()); // quoted: the csv crate reads it
//! ```

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Target size of a block: large enough that a read and a hand-over cost
/// nothing beside parsing, small enough to share a file among the cores.
pub const BLOCK_BYTES: usize = 1 << 20;

/// A run of whole lines of a plain CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Byte offset in the file.
    pub offset: u64,
    /// Length in bytes (ends with `\n`, or at the end of the file).
    pub len: usize,
    /// The file line of its first byte (the header is line 1).
    pub first_line: u64,
    /// How many data rows come before it.
    pub first_row: usize,
    /// Its non-empty lines, i.e. records.
    pub rows: usize,
}

impl Block {
    /// The records of this block's `text`, with their file lines: each
    /// line without its `\n` or `\r\n`, empty lines skipped (as the `csv`
    /// crate skips them).
    pub fn records<'t>(&self, text: &'t str) -> impl Iterator<Item = (u64, &'t str)> + 't {
        let first = self.first_line;
        let text = text.strip_suffix('\n').unwrap_or(text);
        text.split('\n').enumerate().filter_map(move |(i, line)| {
            let line = line.strip_suffix('\r').unwrap_or(line);
            (!line.is_empty()).then_some((first + i as u64, line))
        })
    }
}

/// A scanned plain CSV file: its data blocks (after the header line),
/// valid UTF-8 when scanned.
#[derive(Debug)]
pub struct PlainCsv {
    path: PathBuf,
    blocks: Vec<Block>,
    rows: usize,
}

/// Why [`PlainCsv::par_blocks`] stopped before the last block.
#[derive(Debug)]
pub enum Stopped {
    /// The file could not be read (or got shorter since the scan).
    Io(io::Error),
    /// A block is not valid UTF-8.
    NotUtf8,
    /// The work function asked to stop (it found a problem).
    ByWork,
}

impl PlainCsv {
    /// Scans `path`. `Ok(None)` when the file is not plain (it holds a `"`
    /// or a lone `\r`), is not UTF-8, has no line after its header, or
    /// its header is not followed by a line break: the `csv` crate reads
    /// (and reports on) such files.
    pub fn scan(path: &Path) -> io::Result<Option<Self>> {
        Self::scan_blocks(path, BLOCK_BYTES)
    }

    /// [`PlainCsv::scan`] with blocks of about `block_bytes` (tests use
    /// tiny ones to cut small files into many blocks).
    pub(crate) fn scan_blocks(path: &Path, block_bytes: usize) -> io::Result<Option<Self>> {
        let block_bytes = block_bytes.max(1);
        let mut file = File::open(path)?;
        let mut buf = vec![0u8; block_bytes];
        // `buf[..carry]` is the unfinished last line of the previous read.
        let (mut carry, mut offset) = (0usize, 0u64);
        let (mut line, mut row) = (1u64, 0usize);
        let mut blocks = Vec::new();
        let mut header_done = false;
        loop {
            let n = read_full(&mut file, &mut buf[carry..])?;
            let filled = carry + n;
            let eof = carry + n < buf.len();
            let data = &buf[..filled];
            if memchr::memchr(b'"', &data[carry..]).is_some() {
                return Ok(None);
            }
            let end = match memchr::memrchr(b'\n', data) {
                _ if eof => filled,
                Some(i) => i + 1,
                None => {
                    // One line longer than the buffer: read on with a larger one.
                    carry = filled;
                    buf.resize(buf.len() * 2, 0);
                    continue;
                }
            };
            let mut chunk = &data[..end];
            // Checked here rather than per block later, so that a caller
            // that has begun writing results never meets a block it must
            // leave to the csv reader (which shows invalid bytes as U+FFFD).
            if !lone_cr_free(chunk) || std::str::from_utf8(chunk).is_err() {
                return Ok(None);
            }
            let mut chunk_offset = offset;
            if !header_done {
                // csv skips blank lines before the header too: leave those files to it.
                let Some(i) = memchr::memchr(b'\n', chunk) else {
                    return Ok(None);
                };
                if is_blank(&chunk[..i]) {
                    return Ok(None);
                }
                chunk = &chunk[i + 1..];
                chunk_offset += i as u64 + 1;
                line += 1;
                header_done = true;
            }
            let (lines, records) = count_lines(chunk);
            if !chunk.is_empty() {
                blocks.push(Block {
                    offset: chunk_offset,
                    len: chunk.len(),
                    first_line: line,
                    first_row: row,
                    rows: records,
                });
            }
            line += lines;
            row += records;
            if eof {
                break;
            }
            buf.copy_within(end..filled, 0);
            carry = filled - end;
            offset += end as u64;
            if buf.len() > block_bytes && carry < block_bytes / 2 {
                buf.truncate(block_bytes);
            }
        }
        if row == 0 {
            return Ok(None);
        }
        Ok(Some(Self {
            path: path.to_owned(),
            blocks,
            rows: row,
        }))
    }

    /// Data rows in the file.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The blocks, in file order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Runs `work(block, text, job)` for each of `blocks` (a run of
    /// [`PlainCsv::blocks`]) with its job on up to `threads` threads
    /// (at least one), each reading its own blocks. `work` returns
    /// `false` to stop every thread after their current block. A block
    /// whose length changed since the scan is a read error.
    pub fn par_blocks<J, F>(
        &self,
        blocks: &[Block],
        jobs: Vec<J>,
        threads: usize,
        work: F,
    ) -> Result<(), Stopped>
    where
        J: Send,
        F: Fn(&Block, &str, J) -> bool + Sync,
    {
        par_jobs(
            blocks.iter().zip(jobs).collect(),
            threads,
            || Ok((File::open(&self.path).map_err(Stopped::Io)?, Vec::new())),
            |(file, buf), (block, job)| {
                read_block(file, block, buf)?;
                let text = std::str::from_utf8(buf).map_err(|_| Stopped::NotUtf8)?;
                if work(block, text, job) {
                    Ok(())
                } else {
                    Err(Stopped::ByWork)
                }
            },
        )
    }
}

/// Runs `work(state, job)` for every job on up to `threads` threads (at
/// least one, at most one per job), each with its own `state` from
/// `init` (a file handle, buffers). Jobs are taken in order; the first
/// error stops every thread after its current job and is returned.
pub fn par_jobs<J, S, E, I, F>(jobs: Vec<J>, threads: usize, init: I, work: F) -> Result<(), E>
where
    J: Send,
    E: Send,
    I: Fn() -> Result<S, E> + Sync,
    F: Fn(&mut S, J) -> Result<(), E> + Sync,
{
    let threads = threads.clamp(1, jobs.len().max(1));
    let queue = Mutex::new(jobs.into_iter());
    let stop = AtomicBool::new(false);
    let worker = || -> Result<(), E> {
        let mut state = init().inspect_err(|_| stop.store(true, Ordering::Relaxed))?;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let Some(job) = queue.lock().map_or(None, |mut q| q.next()) else {
                return Ok(());
            };
            if let Err(e) = work(&mut state, job) {
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
    };
    if threads == 1 {
        return worker();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
        let mut first = Ok(());
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if first.is_ok() {
                first = r;
            }
        }
        first
    })
}

/// Splits a record of a plain file at its commas into `cells` (cleared
/// first): one SIMD scan of the record rather than a search per cell.
///
/// ```
/// let mut cells = Vec::new();
/// fedcredit_participant::data::blocks::split_cells("a,,b c,", &mut cells);
/// assert_eq!(cells, ["a", "", "b c", ""]);
/// ```
pub fn split_cells<'t>(record: &'t str, cells: &mut Vec<&'t str>) {
    cells.clear();
    let mut start = 0;
    for i in memchr::memchr_iter(b',', record.as_bytes()) {
        cells.push(record.get(start..i).unwrap_or_default());
        start = i + 1;
    }
    cells.push(record.get(start..).unwrap_or_default());
}

/// Worker threads for parsing: the cores this process may use.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

fn read_block(file: &mut File, block: &Block, buf: &mut Vec<u8>) -> Result<(), Stopped> {
    buf.resize(block.len, 0);
    file.seek(SeekFrom::Start(block.offset))
        .and_then(|_| file.read_exact(buf))
        .map_err(Stopped::Io)
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Every `\r` in `chunk` is followed by `\n` (a lone `\r` ends a record
/// for the `csv` crate; such files are left to it).
fn lone_cr_free(chunk: &[u8]) -> bool {
    memchr::memchr_iter(b'\r', chunk).all(|i| chunk.get(i + 1) == Some(&b'\n'))
}

/// `(line breaks, non-empty lines)` of a chunk of whole lines; its last
/// line may lack a break (the end of the file).
fn count_lines(chunk: &[u8]) -> (u64, usize) {
    let (mut breaks, mut records, mut start) = (0u64, 0usize, 0usize);
    for i in memchr::memchr_iter(b'\n', chunk) {
        breaks += 1;
        if !is_blank(&chunk[start..i]) {
            records += 1;
        }
        start = i + 1;
    }
    if !is_blank(&chunk[start..]) {
        records += 1;
    }
    (breaks, records)
}

fn is_blank(line: &[u8]) -> bool {
    line.is_empty() || line == b"\r"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_text(text: &[u8]) -> Option<PlainCsv> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).expect("write");
        PlainCsv::scan(&path).expect("scan")
    }

    /// Every record of the file with its line, through blocks and threads.
    fn all_records(text: &[u8]) -> Vec<(u64, String)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).expect("write");
        let csv = PlainCsv::scan(&path).expect("scan").expect("plain");
        let out: Vec<Mutex<Vec<(u64, String)>>> = csv
            .blocks()
            .iter()
            .map(|_| Mutex::new(Vec::new()))
            .collect();
        let jobs: Vec<&Mutex<_>> = out.iter().collect();
        csv.par_blocks(csv.blocks(), jobs, 2, |block, text, slot| {
            let recs: Vec<_> = block
                .records(text)
                .map(|(l, r)| (l, r.to_owned()))
                .collect();
            assert_eq!(recs.len(), block.rows);
            slot.lock().expect("lock").extend(recs);
            true
        })
        .expect("blocks");
        out.into_iter()
            .flat_map(|m| m.into_inner().expect("lock"))
            .collect()
    }

    #[test]
    fn lines_and_rows_across_many_blocks() {
        // Lines of varying length over several blocks, with blank and CRLF lines.
        let mut text = b"a,b\n".to_vec();
        let mut want = Vec::new();
        for i in 0..200_000u64 {
            // The header is line 1.
            let line = i + 2;
            match i % 7 {
                0 => text.extend_from_slice(b"\n"),
                1 => text.extend_from_slice(b"\r\n"),
                _ => {
                    let rec = format!("{i},{}", "x".repeat((i % 13) as usize));
                    text.extend_from_slice(rec.as_bytes());
                    text.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
                    want.push((line, rec));
                }
            }
        }
        let csv = scan_text(&text).expect("plain");
        assert!(csv.blocks().len() > 1, "{}", csv.blocks().len());
        assert_eq!(csv.rows(), want.len());
        assert_eq!(all_records(&text), want);
    }

    #[test]
    fn a_last_line_without_a_break_and_a_line_longer_than_a_block() {
        let long = "y".repeat(3 * BLOCK_BYTES);
        let text = format!("h1,h2\n1,{long}\n\n2,3");
        assert_eq!(
            all_records(text.as_bytes()),
            [(2, format!("1,{long}")), (4, "2,3".to_owned())]
        );
    }

    #[test]
    fn files_left_to_the_csv_reader() {
        assert!(scan_text(b"a,b\n1,\"2\"\n").is_none(), "quote");
        assert!(scan_text(b"a,b\r1,2\n").is_none(), "lone CR in the header");
        assert!(scan_text(b"a,b\n1,2\r3,4\n").is_none(), "lone CR");
        assert!(scan_text(b"a,b\n1,2\r").is_none(), "CR at the end");
        assert!(
            scan_text(b"a,b").is_none(),
            "no line break after the header"
        );
        assert!(scan_text(b"a,b\n\n\r\n").is_none(), "no rows");
        assert!(scan_text(b"").is_none(), "empty");
        assert!(
            scan_text(b"\r\na,b\n1,2\n").is_none(),
            "blank line before the header"
        );
        // A quote beyond the first block is found too.
        let mut text = b"a,b\n".to_vec();
        for _ in 0..100_000 {
            text.extend_from_slice(b"1,2\n");
        }
        text.extend_from_slice(b"\"3\",4\n");
        assert!(scan_text(&text).is_none());
    }

    #[test]
    fn invalid_utf8_and_stopping_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.csv");
        std::fs::write(&path, b"a\n1\n\xff\n").expect("write");
        assert!(PlainCsv::scan(&path).expect("scan").is_none(), "not UTF-8");
        std::fs::write(&path, b"a\n1\n2\n").expect("write");
        let csv = PlainCsv::scan(&path).expect("scan").expect("plain");
        // Changed since the scan: the same length, no longer UTF-8.
        std::fs::write(&path, b"a\n1\n\xff\n").expect("write");
        let r = csv.par_blocks(csv.blocks(), vec![()], 2, |_, _, ()| true);
        assert!(matches!(r, Err(Stopped::NotUtf8)), "{r:?}");
        std::fs::write(&path, b"a\n1\n2\n").expect("write");
        let csv = PlainCsv::scan(&path).expect("scan").expect("plain");
        let r = csv.par_blocks(csv.blocks(), vec![()], 2, |_, _, ()| false);
        assert!(matches!(r, Err(Stopped::ByWork)), "{r:?}");
        // Shorter since the scan.
        std::fs::write(&path, b"a\n1\n").expect("write");
        let r = csv.par_blocks(csv.blocks(), vec![()], 2, |_, _, ()| true);
        assert!(matches!(r, Err(Stopped::Io(_))), "{r:?}");
    }
}
