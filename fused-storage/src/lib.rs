//! The [`Storage`](fused_core::Storage) backend of fused-rs: Fused file semantics over
//! [`object_store`].
//!
//! One implementation, [`ObjectStorage`], serves every root — a local folder (the default), memory
//! (tests), and, behind features, S3 / GCS / Azure. URLs are `fd://<key>` (the root the storage
//! was opened on) or the root's own URL followed by a key. Every key is checked by [`Key::parse`]
//! before anything is touched: traversal (`..`, encoded or doubly encoded), absolute paths,
//! backslashes, control characters, and — for local roots — symlinks that lead out of the root are
//! refused.
//!
//! ```
//! # tokio_test_block_on(async {
//! use fused_core::Storage;
//! use fused_storage::ObjectStorage;
//! let dir = tempfile::tempdir()?;
//! let storage = ObjectStorage::local(dir.path())?;
//! storage.put("fd://data/a.txt", bytes::Bytes::from("hi").into()).await?;
//! let names: Vec<_> = storage.list("fd://data/").await?.into_iter().map(|m| m.url).collect();
//! assert_eq!(names, ["fd://data/a.txt"]);
//! assert!(storage.get("fd://../etc/passwd", None).await.is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

mod faults;
mod key;
mod local;
mod object;

pub use faults::FaultInjector;
pub use key::Key;
pub use object::ObjectStorage;
