//! `fused token create|ls|revoke`: API tokens, managed in a server's data folder (works whether
//! or not the server runs; a running server sees a revocation within seconds).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use fused_http::store::{Store, generate_api_token, rfc3339};

/// `fused token`.
#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
    /// The server's data folder.
    #[arg(
        long,
        global = true,
        default_value = "fused-data",
        env = "FUSED_DATA_DIR"
    )]
    data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an API token and print it (the only time it is shown).
    Create {
        /// The user it authenticates (created if new).
        #[arg(long, default_value = "owner@fused.local")]
        email: String,
        /// A label to recognize it by.
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// List API tokens (their first characters only).
    Ls,
    /// Revoke an API token, by the id `ls` shows (or by the token itself).
    Revoke {
        /// Id or token.
        id: String,
    },
}

pub(crate) async fn token(a: TokenArgs) -> fused::Result<ExitCode> {
    let store = Store::open(&a.data_dir)
        .await
        .map_err(fused_http::Error::from)?;
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| fused::Error::Io {
        context: "writing to standard output".into(),
        source: e,
    };
    match a.command {
        TokenCommand::Create { email, label } => {
            if !email.contains('@') || email.len() > 254 {
                return Err(fused::Error::Usage(format!(
                    "--email must be an e-mail address, got {email:?}"
                )));
            }
            let user = store
                .ensure_user(&email, None)
                .await
                .map_err(fused_http::Error::from)?;
            let secret = generate_api_token();
            store
                .add_api_token(&user, &secret, &label)
                .await
                .map_err(fused_http::Error::from)?;
            eprintln!("API token for {} (shown once; keep it secret):", user.email);
            writeln!(out, "{secret}").map_err(io)?;
        }
        TokenCommand::Ls => {
            let tokens = store.api_tokens().await.map_err(fused_http::Error::from)?;
            writeln!(
                out,
                "{:<36}  {:<10}  {:<24}  {:<20}  {:<12}  status",
                "id", "starts", "user", "created", "label"
            )
            .map_err(io)?;
            for t in tokens {
                let status = t
                    .revoked_at
                    .map_or("active".to_owned(), |r| format!("revoked {}", rfc3339(r)));
                writeln!(
                    out,
                    "{:<36}  {:<10}  {:<24}  {:<20}  {:<12}  {status}",
                    t.id,
                    format!("{}…", t.hint),
                    t.user_email,
                    rfc3339(t.created_at),
                    t.label
                )
                .map_err(io)?;
            }
        }
        TokenCommand::Revoke { id } => {
            store
                .revoke_api_token(&id)
                .await
                .map_err(fused_http::Error::from)?;
            eprintln!("revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
