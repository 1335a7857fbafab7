//! The client side: transports and the remote executor.

mod api;
mod http;
mod in_process;
mod remote;

pub use self::http::HttpTransport;
pub use api::{FusedApi, JobLogLine, RunResponse, UdfAccessToken, UdfKey, Upload, Whoami, Whose};
pub use in_process::InProcessTransport;
pub use remote::RemoteExecutor;
