//! `fused files ls|get|put|rm|sign`: the server's files (`fd://…`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use futures::StreamExt;

use super::remote::RemoteArgs;

/// `fused files`.
#[derive(Debug, clap::Args)]
pub(crate) struct FilesArgs {
    #[command(subcommand)]
    command: FilesCommand,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Subcommand)]
enum FilesCommand {
    /// List a folder (`fd://path/`).
    Ls {
        /// The folder.
        #[arg(default_value = "fd://")]
        path: String,
        /// With sizes and times.
        #[arg(short, long)]
        long: bool,
    },
    /// Download an object to a local file (`-` for standard output).
    Get {
        /// The object.
        path: String,
        /// Where to write it (default: its name, in the current folder).
        local: Option<PathBuf>,
    },
    /// Upload a local file (streamed); a PATH ending in `/` keeps the file's name.
    Put {
        /// The local file.
        local: PathBuf,
        /// Where to put it.
        path: String,
    },
    /// Delete an object, or a folder at most --max-depth levels deep.
    Rm {
        /// The object or folder.
        path: String,
        /// Refuse to delete objects deeper than this below PATH.
        #[arg(long, default_value_t = 3, conflicts_with = "unlimited")]
        max_depth: u32,
        /// Delete at any depth.
        #[arg(long)]
        unlimited: bool,
    },
    /// Print a URL that reads the object without credentials.
    Sign {
        /// The object (or, with --prefix, a folder).
        path: String,
        /// Sign every object under PATH.
        #[arg(long)]
        prefix: bool,
    },
}

pub(crate) async fn files(a: FilesArgs) -> fused::Result<ExitCode> {
    let api = a.remote.client()?;
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| fused::Error::Io {
        context: "writing to standard output".into(),
        source: e,
    };
    match a.command {
        FilesCommand::Ls { path, long: false } => {
            for u in api.list(&path).await? {
                writeln!(out, "{u}").map_err(io)?;
            }
        }
        FilesCommand::Ls { path, long: true } => {
            for m in api.list_details(&path).await? {
                let size = m.size.map_or_else(|| "-".to_owned(), |s| s.to_string());
                let time = m
                    .last_modified
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or_else(
                        || "-".to_owned(),
                        |d| fused_http::store::rfc3339(d.as_secs() as i64),
                    );
                writeln!(out, "{size:>12}  {time:<20}  {}", m.url).map_err(io)?;
            }
        }
        FilesCommand::Get { path, local } => match local {
            Some(l) if l.as_os_str() == "-" => {
                let mut s = api.get_stream(&path).await?.into_stream();
                while let Some(chunk) = s.next().await {
                    out.write_all(&chunk.map_err(fused_core::Error::Io)?)
                        .map_err(io)?;
                }
            }
            local => {
                let local = local.unwrap_or_else(|| {
                    PathBuf::from(
                        path.trim_end_matches('/')
                            .rsplit('/')
                            .next()
                            .unwrap_or("download"),
                    )
                });
                api.download(&path, &local).await?;
                eprintln!("wrote {}", local.display());
            }
        },
        FilesCommand::Put { local, path } => {
            api.upload(local.as_path(), &path).await?;
            eprintln!("uploaded {} to {path}", local.display());
        }
        FilesCommand::Rm {
            path,
            max_depth,
            unlimited,
        } => {
            api.delete(&path, (!unlimited).then_some(max_depth)).await?;
            eprintln!("deleted {path}");
        }
        FilesCommand::Sign {
            path,
            prefix: false,
        } => {
            writeln!(out, "{}", api.sign_url(&path).await?).map_err(io)?;
        }
        FilesCommand::Sign { path, prefix: true } => {
            for (k, v) in api.sign_url_prefix(&path).await? {
                writeln!(out, "{k}\t{v}").map_err(io)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
