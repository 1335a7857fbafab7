//! `fused udf ls|show|save|pull|share|rm`: saved UDFs on a server.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use fused::UdfMeta;
use fused::api::{UdfKey, Whose};

use super::remote::RemoteArgs;

/// `fused udf`.
#[derive(Debug, clap::Args)]
pub(crate) struct UdfArgs {
    #[command(subcommand)]
    command: UdfCommand,
    #[command(flatten)]
    remote: RemoteArgs,
}

/// Whose UDFs to list.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum WhoseArg {
    /// Yours (natives of the server included when you own it).
    Mine,
    /// Your team's.
    Team,
    /// Publicly listed ones.
    Public,
}

#[derive(Debug, Subcommand)]
enum UdfCommand {
    /// List saved UDFs.
    Ls {
        /// Whose.
        #[arg(long, value_enum, default_value = "mine")]
        whose: WhoseArg,
    },
    /// Print a UDF's code (or, with --json, its UDF JSON).
    Show {
        /// Name, owner/name, team/name, or id.
        name: String,
        /// The whole UDF JSON.
        #[arg(long)]
        json: bool,
    },
    /// Save a UDF from a folder, a .zip or a .py file.
    Save {
        /// The UDF's folder, zip, or Python file.
        path: PathBuf,
        /// Save under this name (default: the UDF's).
        #[arg(long)]
        name: Option<String>,
        /// Replace a UDF of the same name.
        #[arg(long)]
        overwrite: bool,
    },
    /// Write a saved UDF as a folder (or a zip, when DEST ends in .zip).
    Pull {
        /// Name, owner/name, team/name, or id.
        name: String,
        /// Where to write it.
        dest: PathBuf,
        /// Replace DEST when it exists.
        #[arg(long)]
        overwrite: bool,
    },
    /// Create a shared token for a UDF and print its URLs.
    Share {
        /// Name, owner/name, or id.
        name: String,
    },
    /// Delete a saved UDF (its shared tokens stop working).
    Rm {
        /// Name, owner/name, team/name, or id.
        name: String,
    },
}

pub(crate) async fn udf(a: UdfArgs) -> fused::Result<ExitCode> {
    let api = a.remote.client()?;
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| fused::Error::Io {
        context: "writing to standard output".into(),
        source: e,
    };
    match a.command {
        UdfCommand::Ls { whose } => {
            let whose = match whose {
                WhoseArg::Mine => Whose::SelfOwned,
                WhoseArg::Team => Whose::Team,
                WhoseArg::Public => Whose::Public,
            };
            for (key, meta) in api.get_udfs(None, 0, UdfKey::Name, whose).await? {
                let about = meta.metadata_str("fused:description").unwrap_or("");
                let kind = if meta.metadata_str("fused:native").is_some() {
                    "native"
                } else {
                    "code"
                };
                writeln!(out, "{key:<32} {kind:<7} {about}").map_err(io)?;
            }
        }
        UdfCommand::Show { name, json } => {
            let meta = api.get_udf(&name).await?;
            if json {
                writeln!(out, "{}", meta.to_json()).map_err(io)?;
            } else {
                write!(out, "{}", meta.code).map_err(io)?;
            }
        }
        UdfCommand::Save {
            path,
            name,
            overwrite,
        } => {
            let mut meta = UdfMeta::load(&path)?;
            if let Some(n) = name {
                meta.name = Some(n);
            }
            let id = api.save_udf(&meta, overwrite).await?;
            eprintln!("saved {} (id {id})", meta.display_name());
        }
        UdfCommand::Pull {
            name,
            dest,
            overwrite,
        } => {
            let meta = api.get_udf(&name).await?;
            if dest.extension().is_some_and(|e| e == "zip") {
                meta.to_file(&dest, overwrite)?;
            } else {
                meta.to_directory(&dest, overwrite)?;
            }
            eprintln!("wrote {}", dest.display());
        }
        UdfCommand::Share { name } => {
            let t = api.create_udf_access_token(&name).await?;
            let shared = format!("{}/realtime-shared/{}", api.base_url(), t.token);
            writeln!(out, "token: {}", t.token).map_err(io)?;
            writeln!(out, "file:  {shared}/run").map_err(io)?;
            writeln!(out, "tiles: {shared}/run/tiles/{{z}}/{{x}}/{{y}}").map_err(io)?;
        }
        UdfCommand::Rm { name } => {
            api.delete_udf(&name).await?;
            eprintln!("deleted {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
