//! Partials kept in bounded memory: each chunk's cells are sent to their bucket (their parent
//! at the key resolution), buffered as records, and written to the temporary folder once the
//! buffers pass a budget — one file per bucket and spill, written outside the lock so the
//! other threads go on. Buckets are then loaded in cell order (several at once on all
//! cores), each sorted and merged — so memory holds a few buckets, not the dataset.
//!
//! Records: a statistics record is hex, n, sum, sumsq, min, max, sources (56 bytes); a single
//! pixel of the first input (the usual case when cells are smaller than pixels) is hex with
//! bit 63 set and its value (16 bytes); a category record is hex, value bits, hits, sources
//! (32 bytes).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use h3o::{CellIndex, Resolution};

use crate::aggregate;
use crate::error::{Error, Result};
use crate::extract::{FastMap, Partial, Stats};
use crate::write::{Row, Value};

/// Bytes of a statistics record.
const STATS: usize = 56;
/// Bytes of a single-pixel record.
const SINGLE: usize = 16;
/// Bytes of a category record.
const COUNT: usize = 32;
/// Marks a single-pixel record (bit 63 of an H3 index is always 0).
const SINGLE_FLAG: u64 = 1 << 63;

/// Buckets of partial rows.
pub(crate) struct Buckets {
    /// Buckets are cells of this resolution (`None`: one bucket).
    key_res: Option<Resolution>,
    counts: bool,
    dir: tempfile::TempDir,
    /// Keep the spilled files (the folder outlives the run).
    keep: bool,
    budget: usize,
    state: Mutex<State>,
    spilled: Mutex<BTreeMap<u64, Vec<PathBuf>>>,
}

#[derive(Default)]
struct State {
    buffers: FastMap<u64, Vec<u8>>,
    buffered: usize,
    spills: u64,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

impl Buckets {
    /// Buckets by cells of `key_res`, spilling into a folder of `temp` past `budget` bytes
    /// (kept after the run with `keep`).
    pub(crate) fn new(
        key_res: Option<Resolution>,
        counts: bool,
        temp: &std::path::Path,
        budget: usize,
        keep: bool,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("h3-partials-")
            .tempdir_in(temp)
            .map_err(io("creating the partials folder".into()))?;
        Ok(Self {
            key_res,
            counts,
            dir,
            keep,
            budget,
            state: Mutex::new(State::default()),
            spilled: Mutex::new(BTreeMap::new()),
        })
    }

    fn key(&self, hex: u64) -> u64 {
        match self.key_res {
            Some(r) => CellIndex::try_from(hex)
                .ok()
                .and_then(|c| c.parent(r))
                .map_or(0, u64::from),
            None => 0,
        }
    }

    /// Adds a chunk's partial.
    pub(crate) fn add(&self, p: Partial) -> Result<()> {
        // Serialise outside the lock, grouped by bucket.
        let mut local: FastMap<u64, Vec<u8>> = FastMap::default();
        // Cells agreeing above the key resolution's digits share a bucket: look the key up
        // once per run of them (neighbouring cells mostly do).
        let shift = self
            .key_res
            .map_or(0, |r| 3 * (15 - u32::from(u8::from(r))));
        let mut last: Option<(u64, u64)> = None;
        for (hex, s) in &p.stats {
            let high = hex.checked_shr(shift).unwrap_or(0);
            let k = match last {
                Some((h, k)) if h == high => k,
                _ => {
                    let k = self.key(*hex);
                    last = Some((high, k));
                    k
                }
            };
            put_stats(local.entry(k).or_default(), *hex, s);
        }
        for ((hex, bits), (n, sources)) in p.counts {
            put_count(
                local.entry(self.key(hex)).or_default(),
                hex,
                bits,
                n,
                sources,
            );
        }
        self.append(local)
    }

    /// Adds aggregated rows (an overview's part): merged with the other rows of their cell
    /// (and value) when loaded.
    pub(crate) fn add_rows(&self, rows: &[Row]) -> Result<()> {
        let mut local: FastMap<u64, Vec<u8>> = FastMap::default();
        for (hex, v) in rows {
            let b = local.entry(self.key(*hex)).or_default();
            match v {
                Value::Stats(s) => put_stats(b, *hex, s),
                Value::Count {
                    data, cnt, sources, ..
                } => put_count(b, *hex, data.to_bits(), *cnt, *sources),
            }
        }
        self.append(local)
    }

    fn append(&self, local: FastMap<u64, Vec<u8>>) -> Result<()> {
        let full = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            for (k, bytes) in local {
                st.buffered += bytes.len();
                st.buffers.entry(k).or_default().extend_from_slice(&bytes);
            }
            if st.buffered > self.budget {
                st.buffered = 0;
                st.spills += 1;
                Some((std::mem::take(&mut st.buffers), st.spills))
            } else {
                None
            }
        };
        match full {
            Some((buffers, n)) => self.spill(buffers, n),
            None => Ok(()),
        }
    }

    /// Writes taken buffers, one file per bucket named after the spill.
    fn spill(&self, buffers: FastMap<u64, Vec<u8>>, n: u64) -> Result<()> {
        let mut written = Vec::with_capacity(buffers.len());
        for (k, bytes) in buffers {
            let path = self.dir.path().join(format!("{k}-{n}.bin"));
            std::fs::write(&path, &bytes).map_err(io(format!("writing {}", path.display())))?;
            written.push((k, path));
        }
        let mut spilled = self.spilled.lock().unwrap_or_else(|p| p.into_inner());
        for (k, path) in written {
            spilled.entry(k).or_default().push(path);
        }
        Ok(())
    }

    /// The buckets, to be loaded in cell order.
    pub(crate) fn drain(self) -> Loader {
        let st = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        let spilled = self.spilled.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<u64> = st.buffers.keys().chain(spilled.keys()).copied().collect();
        keys.sort_unstable();
        keys.dedup();
        let dir = if self.keep {
            let kept = self.dir.keep();
            tracing::info!("temporary files kept in {}", kept.display());
            None
        } else {
            Some(self.dir)
        };
        Loader {
            keys,
            buffers: Mutex::new(st.buffers),
            spilled,
            counts: self.counts,
            _dir: dir,
        }
    }
}

fn put_stats(b: &mut Vec<u8>, hex: u64, s: &Stats) {
    if s.n == 1 && s.sources == 1 {
        b.extend_from_slice(&(hex | SINGLE_FLAG).to_le_bytes());
        b.extend_from_slice(&s.sum.to_le_bytes());
        return;
    }
    for v in [hex, s.n] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for v in [s.sum, s.sumsq, s.min, s.max] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&s.sources.to_le_bytes());
}

fn put_count(b: &mut Vec<u8>, hex: u64, bits: u64, n: u64, sources: u64) {
    for v in [hex, bits, n, sources] {
        b.extend_from_slice(&v.to_le_bytes());
    }
}

/// Buckets read back: their keys in cell order, each loaded (on any thread) as sorted,
/// merged rows.
pub(crate) struct Loader {
    keys: Vec<u64>,
    buffers: Mutex<FastMap<u64, Vec<u8>>>,
    spilled: BTreeMap<u64, Vec<PathBuf>>,
    counts: bool,
    /// Removed with the loader (`None`: kept).
    _dir: Option<tempfile::TempDir>,
}

fn u(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn f(b: &[u8], at: usize) -> f64 {
    f64::from_bits(u(b, at))
}

impl Loader {
    /// The buckets' keys, in cell order.
    pub(crate) fn keys(&self) -> &[u64] {
        &self.keys
    }

    /// Loads bucket `k` (once): its rows, sorted and merged.
    pub(crate) fn load(&self, k: u64) -> Result<Vec<Row>> {
        let mut bytes = Vec::new();
        for path in self.spilled.get(&k).into_iter().flatten() {
            let b = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
            if self._dir.is_some() {
                let _ = std::fs::remove_file(path);
            }
            if bytes.is_empty() {
                bytes = b;
            } else {
                bytes.extend_from_slice(&b);
            }
        }
        let buffered = self
            .buffers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&k);
        if let Some(b) = buffered {
            bytes.extend_from_slice(&b);
        }
        let mut p = Partial::default();
        if self.counts {
            for r in bytes.chunks_exact(COUNT) {
                let e = p.counts.entry((u(r, 0), u(r, 8))).or_insert((0, 0));
                e.0 += u(r, 16);
                e.1 |= u(r, 24);
            }
        } else {
            let mut at = 0;
            p.stats.reserve(bytes.len() / STATS);
            while at + SINGLE <= bytes.len() {
                let hex = u(&bytes, at);
                if hex & SINGLE_FLAG != 0 {
                    p.stats
                        .push((hex & !SINGLE_FLAG, Stats::new(f(&bytes, at + 8), 1)));
                    at += SINGLE;
                } else if at + STATS <= bytes.len() {
                    let r = &bytes[at..at + STATS];
                    p.stats.push((
                        hex,
                        Stats {
                            n: u(r, 8),
                            sum: f(r, 16),
                            sumsq: f(r, 24),
                            min: f(r, 32),
                            max: f(r, 40),
                            sources: u(r, 48),
                        },
                    ));
                    at += STATS;
                } else {
                    break;
                }
            }
        }
        Ok(aggregate::rows_of(p, self.counts))
    }
}
