//! Partials kept in bounded memory: each chunk's aggregated cells are sent to the bucket of
//! their row group (their parent at `chunk_res`, or their file cell), buffered as fixed-size
//! records, and appended to that bucket's run in the temporary folder once the buffers pass a
//! budget. Buckets are then read back one at a time, in cell order, each sorted and merged —
//! so memory holds one bucket, not the dataset.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use h3o::{CellIndex, Resolution};

use crate::aggregate;
use crate::error::{Error, Result};
use crate::extract::{FastMap, Partial, Stats};
use crate::write::{Row, Value};

/// Bytes of a statistics record: hex, n, sum, sumsq, min, max, sources.
const STATS: usize = 56;
/// Bytes of a category record: hex, value bits, hits, sources.
const COUNT: usize = 32;

/// Buckets of partial rows.
pub(crate) struct Buckets {
    /// Buckets are cells of this resolution (`None`: one bucket).
    key_res: Option<Resolution>,
    counts: bool,
    dir: tempfile::TempDir,
    budget: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    buffers: FastMap<u64, Vec<u8>>,
    buffered: usize,
    spilled: BTreeMap<u64, PathBuf>,
}

impl Buckets {
    /// Buckets by cells of `key_res`, spilling into a folder of `temp` past `budget` bytes.
    pub(crate) fn new(
        key_res: Option<Resolution>,
        counts: bool,
        temp: &std::path::Path,
        budget: usize,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("h3-partials-")
            .tempdir_in(temp)
            .map_err(|e| Error::Io {
                context: "creating the partials folder".into(),
                source: e,
            })?;
        Ok(Self {
            key_res,
            counts,
            dir,
            budget,
            state: Mutex::new(State::default()),
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
        for (hex, s) in p.stats {
            self.put_stats(&mut local, hex, &s);
        }
        for ((hex, bits), (n, sources)) in p.counts {
            self.put_count(&mut local, hex, bits, n, sources);
        }
        self.append(local)
    }

    /// Adds aggregated rows (an overview's part): merged with the other rows of their cell
    /// (and value) when drained.
    pub(crate) fn add_rows(&self, rows: &[Row]) -> Result<()> {
        let mut local: FastMap<u64, Vec<u8>> = FastMap::default();
        for (hex, v) in rows {
            match v {
                Value::Stats(s) => self.put_stats(&mut local, *hex, s),
                Value::Count {
                    data, cnt, sources, ..
                } => self.put_count(&mut local, *hex, data.to_bits(), *cnt, *sources),
            }
        }
        self.append(local)
    }

    fn put_stats(&self, local: &mut FastMap<u64, Vec<u8>>, hex: u64, s: &Stats) {
        let b = local.entry(self.key(hex)).or_default();
        for v in [hex, s.n] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [s.sum, s.sumsq, s.min, s.max] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&s.sources.to_le_bytes());
    }

    fn put_count(
        &self,
        local: &mut FastMap<u64, Vec<u8>>,
        hex: u64,
        bits: u64,
        n: u64,
        sources: u64,
    ) {
        let b = local.entry(self.key(hex)).or_default();
        for v in [hex, bits, n, sources] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn append(&self, local: FastMap<u64, Vec<u8>>) -> Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for (k, bytes) in local {
            st.buffered += bytes.len();
            st.buffers.entry(k).or_default().extend_from_slice(&bytes);
        }
        if st.buffered > self.budget {
            self.spill(&mut st)?;
        }
        Ok(())
    }

    fn spill(&self, st: &mut State) -> Result<()> {
        for (k, bytes) in st.buffers.drain() {
            let path = self.dir.path().join(format!("{k}.bin"));
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Error::Io {
                    context: format!("writing {}", path.display()),
                    source: e,
                })?;
            f.write_all(&bytes).map_err(|e| Error::Io {
                context: format!("writing {}", path.display()),
                source: e,
            })?;
            st.spilled.insert(k, path);
        }
        st.buffered = 0;
        Ok(())
    }

    /// The buckets, in cell order, each as sorted, merged rows.
    pub(crate) fn drain(self) -> Result<BucketIter> {
        let st = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<u64> = st
            .buffers
            .keys()
            .chain(st.spilled.keys())
            .copied()
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(BucketIter {
            keys: keys.into_iter(),
            buffers: st.buffers,
            spilled: st.spilled,
            counts: self.counts,
            _dir: self.dir,
        })
    }
}

/// Buckets read back in order.
pub(crate) struct BucketIter {
    keys: std::vec::IntoIter<u64>,
    buffers: FastMap<u64, Vec<u8>>,
    spilled: BTreeMap<u64, PathBuf>,
    counts: bool,
    _dir: tempfile::TempDir,
}

fn u(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn f(b: &[u8], at: usize) -> f64 {
    f64::from_bits(u(b, at))
}

impl Iterator for BucketIter {
    type Item = Result<(u64, Vec<Row>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let k = self.keys.next()?;
        let mut bytes = match self.spilled.remove(&k) {
            Some(path) => match std::fs::read(&path) {
                Ok(b) => {
                    let _ = std::fs::remove_file(&path);
                    b
                }
                Err(e) => {
                    return Some(Err(Error::Io {
                        context: format!("reading {}", path.display()),
                        source: e,
                    }));
                }
            },
            None => Vec::new(),
        };
        if let Some(b) = self.buffers.remove(&k) {
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
            for r in bytes.chunks_exact(STATS) {
                let s = Stats {
                    n: u(r, 8),
                    sum: f(r, 16),
                    sumsq: f(r, 24),
                    min: f(r, 32),
                    max: f(r, 40),
                    sources: u(r, 48),
                };
                p.stats
                    .entry(u(r, 0))
                    .and_modify(|t| t.merge(&s))
                    .or_insert(s);
            }
        }
        Some(Ok((k, aggregate::rows_of(p, self.counts))))
    }
}
