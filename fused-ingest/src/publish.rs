//! Where an ingestion reads from and writes to: inputs located (storage URLs downloaded into
//! the scratch folder), and the output [`Target`] — checked before any work, written through a
//! staging folder, and published so that readers see the old table or the whole new one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use fused_core::storage::Storage;
use futures::StreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::options::IngestOptions;
use crate::read;
use crate::source;
use crate::write::ChunkEntry;

/// A temporary folder for downloads and extracted archives.
pub(crate) fn scratch_dir(base: Option<&Path>) -> Result<tempfile::TempDir> {
    let b = tempfile::Builder::new().prefix("fused-ingest-").tempdir_in(
        base.map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir),
    );
    b.map_err(|e| Error::io("creating a temporary folder", e))
}

/// A local path, when `s` names one (`/a/b`, `a/b`, `file:///a/b`).
pub(crate) fn local_path(s: &str) -> Option<PathBuf> {
    if let Some(p) = s.strip_prefix("file://") {
        return Some(PathBuf::from(p));
    }
    (!s.contains("://")).then(|| PathBuf::from(s))
}

fn need_storage<'a>(
    url: &str,
    storage: Option<&'a Arc<dyn Storage>>,
) -> Result<&'a Arc<dyn Storage>> {
    storage.ok_or_else(|| {
        Error::Options(format!(
            "{url} is a storage URL, and this ingestion has no storage to resolve it (give a \
             local path, or run it on a server)"
        ))
    })
}

/// The local files of the inputs: files as given, folders listed (filtered by `file_suffix`),
/// storage URLs downloaded (a folder with all its files, so shapefile sidecars come along).
pub(crate) async fn locate_inputs(
    inputs: &[String],
    opts: &IngestOptions,
    storage: Option<&Arc<dyn Storage>>,
    scratch: &Path,
) -> Result<Vec<PathBuf>> {
    if inputs.is_empty() {
        return Err(Error::Options("no input given".into()));
    }
    let suffix = opts.file_suffix.as_deref();
    let mut out = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let local = match local_path(input) {
            Some(p) => p,
            None => {
                let storage = need_storage(input, storage)?;
                let dest = scratch.join(format!("input-{i}"));
                download(storage, input, &dest).await?
            }
        };
        if local.is_dir() {
            let files = source::list_dir(&local, suffix)?;
            if files.is_empty() {
                return Err(Error::Empty(format!(
                    "{input} holds no input files{}",
                    suffix
                        .map(|s| format!(" ending with {s:?}"))
                        .unwrap_or_default()
                )));
            }
            out.extend(files);
        } else if local.is_file() {
            out.push(local);
        } else {
            return Err(Error::Options(format!("input {input} does not exist")));
        }
    }
    Ok(out)
}

/// Downloads a file or (when `url` lists entries) a folder into `dest`; returns the local
/// path.
async fn download(storage: &Arc<dyn Storage>, url: &str, dest: &Path) -> Result<PathBuf> {
    let listing = storage.list(url).await.unwrap_or_default();
    let files: Vec<_> = listing.iter().filter(|m| !m.is_directory).collect();
    if files.is_empty() {
        let name = url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("input");
        tokio::fs::create_dir_all(dest)
            .await
            .map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
        let path = dest.join(name);
        fetch(storage, url, &path).await?;
        return Ok(path);
    }
    tokio::fs::create_dir_all(dest)
        .await
        .map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
    for m in files {
        fetch(storage, &m.url, &dest.join(&m.file_name)).await?;
    }
    Ok(dest.to_path_buf())
}

async fn fetch(storage: &Arc<dyn Storage>, url: &str, path: &Path) -> Result<()> {
    let body = storage.get(url, None).await?;
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    let mut stream = body.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::io(format!("downloading {url}"), e))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    file.flush()
        .await
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// The predefined boxes of `partitioning_schema_input`: a table folder (its chunk index) or a
/// Parquet file with `file_id`, `chunk_id` and `bbox_*` columns.
pub(crate) async fn read_boxes(
    url: &str,
    storage: Option<&Arc<dyn Storage>>,
    scratch: &Path,
) -> Result<Vec<ChunkEntry>> {
    let path = match local_path(url) {
        Some(p) => p,
        None => {
            download(
                need_storage(url, storage)?,
                url,
                &scratch.join("schema-input"),
            )
            .await?
        }
    };
    if path.is_dir() {
        return read::read_chunk_index(&path);
    }
    let bad = |r: String| Error::input(&path, None, format!("partitioning_schema_input: {r}"));
    let file = std::fs::File::open(&path).map_err(|e| bad(e.to_string()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        let col = |n: &str, t: &DataType| {
            batch
                .column_by_name(n)
                .ok_or_else(|| bad(format!("no column {n}")))
                .and_then(|c| cast(c, t).map_err(|e| bad(e.to_string())))
        };
        let (f, c) = (
            col("file_id", &DataType::Int64)?,
            col("chunk_id", &DataType::Int64)?,
        );
        let b: Vec<_> = ["bbox_minx", "bbox_miny", "bbox_maxx", "bbox_maxy"]
            .iter()
            .map(|n| col(n, &DataType::Float64))
            .collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            let v = |k: usize| b[k].as_primitive::<Float64Type>().value(i);
            out.push(ChunkEntry {
                file_id: f.as_primitive::<Int64Type>().value(i),
                chunk_id: c.as_primitive::<Int64Type>().value(i),
                bbox: [v(0), v(1), v(2), v(3)],
                num_rows: 0,
            });
        }
    }
    if out.is_empty() {
        return Err(bad("it holds no boxes".into()));
    }
    Ok(out)
}

/// The output of an ingestion.
#[derive(Debug)]
pub(crate) enum Target {
    /// A local folder.
    Local {
        dir: PathBuf,
        /// Whether a table there may be replaced.
        overwrite: bool,
    },
    /// A prefix of a storage.
    Remote {
        storage: Arc<dyn Storage>,
        url: String,
        /// The entries there before (removed once the new table is published).
        old: Vec<fused_core::storage::ObjectMeta>,
        first_id: i64,
    },
}

impl Target {
    /// Checks the output before any work: refused when it holds files and `overwrite` is off.
    pub(crate) async fn prepare(
        output: &str,
        storage: Option<Arc<dyn Storage>>,
        overwrite: bool,
    ) -> Result<Self> {
        let occupied = |n: usize| {
            Error::Options(format!(
                "output {output} already holds {n} entries; pass overwrite to replace it"
            ))
        };
        if let Some(dir) = local_path(output) {
            if dir.is_file() {
                return Err(Error::Options(format!(
                    "output {output} is a file, not a folder"
                )));
            }
            if dir.is_dir() && !overwrite {
                let n = std::fs::read_dir(&dir)
                    .map_err(|e| Error::io(format!("listing {output}"), e))?
                    .count();
                if n > 0 {
                    return Err(occupied(n));
                }
            }
            return Ok(Target::Local { dir, overwrite });
        }
        let storage = need_storage(output, storage.as_ref())?.clone();
        let url = format!("{}/", output.trim_end_matches('/'));
        let root = storage.resolve("fd://")?;
        if storage.resolve(&url)?.trim_end_matches('/') == root.trim_end_matches('/') {
            return Err(Error::Options(format!(
                "output {output} is the storage root; ingest into a folder of it"
            )));
        }
        let old: Vec<_> = match storage.list(&url).await {
            Ok(l) => l,
            Err(fused_core::Error::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        if !old.is_empty() && !overwrite {
            return Err(occupied(old.len()));
        }
        let first_id = old
            .iter()
            .filter_map(|m| m.file_name.strip_suffix(".parquet")?.parse::<i64>().ok())
            .max()
            .map_or(0, |m| m + 1);
        Ok(Target::Remote {
            storage,
            url,
            old,
            first_id,
        })
    }

    /// The id of the first file written: 0, or past the ids of a table being replaced in
    /// object storage (so no file a reader may be reading is rewritten in place).
    pub(crate) fn first_file_id(&self) -> i64 {
        match self {
            Target::Local { .. } => 0,
            Target::Remote { first_id, .. } => *first_id,
        }
    }

    /// A staging folder: beside a local output (same file system, so publishing is a
    /// rename), in `temp` (or the system's temporary folder) otherwise.
    pub(crate) fn staging(&self, temp: Option<&Path>) -> Result<tempfile::TempDir> {
        match self {
            Target::Local { dir, .. } => stage_beside(dir),
            Target::Remote { .. } => {
                let base = temp
                    .map(Path::to_path_buf)
                    .unwrap_or_else(std::env::temp_dir);
                tempfile::Builder::new()
                    .prefix("fused-ingest-out-")
                    .tempdir_in(&base)
                    .map_err(|e| {
                        Error::io(
                            format!("creating a staging folder in {}", base.display()),
                            e,
                        )
                    })
            }
        }
    }

    /// Makes the staged table the output's, then copies its `_sample` to the metadata table
    /// when there is one.
    pub(crate) async fn publish(
        &self,
        staging: tempfile::TempDir,
        metadata: &Option<String>,
    ) -> Result<()> {
        let sample =
            tempfile::NamedTempFile::new_in(staging.path().parent().unwrap_or(Path::new(".")))
                .map_err(|e| Error::io("keeping a copy of _sample", e))?;
        std::fs::copy(staging.path().join("_sample"), sample.path())
            .map_err(|e| Error::io("keeping a copy of _sample", e))?;
        match self {
            Target::Local { dir, overwrite } => {
                let (dir, overwrite) = (dir.clone(), *overwrite);
                tokio::task::spawn_blocking(move || swap_in(staging, &dir, overwrite))
                    .await
                    .map_err(|e| Error::Encode(format!("publishing failed: {e}")))??;
            }
            Target::Remote {
                storage, url, old, ..
            } => {
                let mut names: Vec<String> = std::fs::read_dir(staging.path())
                    .map_err(|e| Error::io("listing the staging folder", e))?
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "_sample")
                    .collect();
                names.sort();
                names.push("_sample".into());
                for n in &names {
                    put_file(storage, &staging.path().join(n), &format!("{url}{n}")).await?;
                }
                // The replaced table's files (by name: listings spell URLs as `fd://…`).
                for o in old
                    .iter()
                    .filter(|o| !o.is_directory && !names.contains(&o.file_name))
                {
                    if let Err(e) = storage.delete(&o.url, Some(0)).await {
                        tracing::warn!(error = %e, "could not remove {} of the replaced table", o.url);
                    }
                }
            }
        }
        if let Some(meta) = metadata {
            copy_sample(sample.path(), meta, self).await?;
        }
        Ok(())
    }
}

async fn put_file(storage: &Arc<dyn Storage>, path: &Path, url: &str) -> Result<()> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let body = fused_core::transport::Body::from_stream(
        tokio_util::io::ReaderStream::with_capacity(file, 1 << 20),
    );
    storage.put(url, body).await?;
    Ok(())
}

async fn copy_sample(sample: &Path, meta: &str, target: &Target) -> Result<()> {
    match local_path(meta) {
        Some(dir) => {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            let tmp = dir.join("._sample.tmp");
            tokio::fs::copy(sample, &tmp)
                .await
                .map_err(|e| Error::io(format!("writing {}", dir.display()), e))?;
            tokio::fs::rename(&tmp, dir.join("_sample"))
                .await
                .map_err(|e| Error::io(format!("writing {}", dir.display()), e))?;
            Ok(())
        }
        None => {
            let storage = match target {
                Target::Remote { storage, .. } => storage,
                Target::Local { .. } => need_storage(meta, None)?,
            };
            put_file(
                storage,
                sample,
                &format!("{}/_sample", meta.trim_end_matches('/')),
            )
            .await
        }
    }
}

/// A staging folder beside the local folder `dir` (same file system, so [`publish_dir`] is a
/// rename).
pub fn stage_beside(dir: &Path) -> Result<tempfile::TempDir> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "table".into());
    tempfile::Builder::new()
        .prefix(&format!(".{name}.staging-"))
        .tempdir_in(parent)
        .map_err(|e| {
            Error::io(
                format!("creating a staging folder in {}", parent.display()),
                e,
            )
        })
}

/// Makes a folder staged with [`stage_beside`] the folder `dir`, replacing what is there only
/// with `overwrite` (atomically where the file system can exchange folders).
pub fn publish_dir(staging: tempfile::TempDir, dir: &Path, overwrite: bool) -> Result<()> {
    swap_in(staging, dir, overwrite)
}

/// Puts the staged folder at `dir`: a rename when `dir` is absent or empty, an atomic
/// exchange (Linux `renameat2`) when it holds a table being replaced — then the old table is
/// removed.
fn swap_in(staging: tempfile::TempDir, dir: &Path, overwrite: bool) -> Result<()> {
    let io = |what: &str, e: std::io::Error| Error::io(format!("{what} {}", dir.display()), e);
    if dir.is_dir() {
        let occupied = std::fs::read_dir(dir)
            .map_err(|e| io("listing", e))?
            .next()
            .is_some();
        if occupied && !overwrite {
            // Another run published here meanwhile: keep its table (`staging` is removed).
            return Err(Error::Options(format!(
                "output {} was filled by someone else during this ingestion; pass overwrite to \
                 replace it",
                dir.display()
            )));
        }
        if !occupied {
            std::fs::remove_dir(dir).map_err(|e| io("replacing", e))?;
        }
    }
    let staged = staging.keep();
    if !dir.exists() {
        return std::fs::rename(&staged, dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staged);
            io("publishing", e)
        });
    }
    let exchanged = rustix::fs::renameat_with(
        rustix::fs::CWD,
        &staged,
        rustix::fs::CWD,
        dir,
        rustix::fs::RenameFlags::EXCHANGE,
    );
    if exchanged.is_err() {
        // No atomic exchange on this file system: move the old table aside, then the new one
        // in (a reader may briefly find no table, never a mixed one).
        let aside = staged.with_extension("old");
        if let Err(e) = std::fs::rename(dir, &aside) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(io("moving aside", e));
        }
        if let Err(e) = std::fs::rename(&staged, dir) {
            let _ = std::fs::rename(&aside, dir);
            let _ = std::fs::remove_dir_all(&staged);
            return Err(io("publishing", e));
        }
        let _ = std::fs::remove_dir_all(&aside);
        return Ok(());
    }
    // `staged` now holds the old table.
    std::fs::remove_dir_all(&staged).map_err(|e| io("removing the replaced table of", e))
}
