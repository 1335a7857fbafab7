//! Both sides of the Fused wire.
//!
//! - [`server`]: the axum server — shared-token runs of files and XYZ tiles, wire-compatible
//!   with the official Python SDK (formats, content types, `x-fused-metadata`), with a response
//!   cache.
//! - [`client`]: [`HttpTransport`] (reqwest, retries with backoff and jitter),
//!   [`InProcessTransport`] (the router called directly, no socket) and [`RemoteExecutor`]
//!   (runs shared tokens on a server through any [`Transport`](fused_core::Transport)).

pub mod client;
mod error;
pub mod server;
pub mod store;

pub use client::{FusedApi, HttpTransport, InProcessTransport, RemoteExecutor};
pub use error::{ApiError, Error};
pub use server::{AppState, ServerConfig, ServerParts, ServerSecret};

/// The port the SDK's `dev` environment assumes.
pub const DEFAULT_PORT: u16 = 8783;
