//! How the client commands (`files`, `udf`) reach a server.

use clap::Args;
use fused::FusedApi;

/// Server and credentials of a client command.
#[derive(Debug, Args)]
pub(crate) struct RemoteArgs {
    /// The API's base URL (default: FUSED_BASE_URL, the settings file, or
    /// http://localhost:8783/v1).
    #[arg(long, global = true)]
    url: Option<String>,
    /// An API token (default: FUSED_AUTH_TOKEN, else ~/.fused/credentials).
    #[arg(long, global = true, hide_env_values = true)]
    token: Option<String>,
}

impl RemoteArgs {
    /// The client these options describe.
    pub(crate) fn client(&self) -> fused::Result<FusedApi> {
        let mut options = fused::Options::load()?;
        if let Some(u) = &self.url {
            options.base_url = u.trim_end_matches('/').to_owned();
        }
        let api = FusedApi::from_options(&options)?;
        Ok(match &self.token {
            Some(t) => api.with_token(t),
            None => api,
        })
    }
}
