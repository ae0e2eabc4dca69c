//! The subcommands: `serve` (default), `migrate`, `sweep`, `admin grant EMAIL`,
//! `clients add NAME | list | remove CLIENT_ID`, `keys rotate`, `keys list`.

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::db;
use crate::oauth::OAuthClient;
use crate::signing_keys::{KeyMaker, KeySchedule, Sealer, StoredKey};
use crate::startup::Application;
use crate::sweeper::{self, PassOutcome};
use crate::users::{canonical_email, normalize_email, User};

#[derive(Debug, Parser)]
#[command(name = "authgate", version, about = "A self-hosted JWT token server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pending migrations, then serve HTTP (the default).
    Serve,
    /// Run pending migrations and exit.
    Migrate,
    /// Run one sweeper pass (for cron): prints one line with what it removed.
    Sweep {
        /// Count what a pass would remove, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Administrative actions.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// OAuth clients allowed to introspect tokens (POST /oauth/introspect).
    Clients {
        #[command(subcommand)]
        action: ClientsAction,
    },
    /// The signing keys of jwt.algorithm = EdDSA or RS256.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientsAction {
    /// Register a client: prints `client_id=…` and `client_secret=…`, the
    /// secret this once (only its hash is stored).
    Add { name: String },
    /// One line per client: client_id, name, created_at (tab-separated).
    List,
    /// Remove a client; it can no longer introspect.
    Remove { client_id: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Make a new signing key now: it is published at once and signs from
    /// jwt.key_publish_ahead_secs on. Prints its kid.
    Rotate,
    /// Print every key: kid, alg, signs from, signs until ("-" for the newest).
    List,
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Give the admin role to the user with this email (takes effect at the
    /// user's next login or reissue).
    Grant { email: String },
}

/// Runs a parsed command. Reports go to stdout; errors come back to `main`,
/// which prints one line and exits non-zero.
pub fn run(cli: Cli, settings: Settings) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            actix_web::rt::System::new().block_on(async move {
                Application::build(settings)
                    .await?
                    .run_until_stopped()
                    .await?;
                anyhow::Ok(())
            })?;
        }
        Command::Migrate => {
            let mut conn = db::connect(&settings.database)?;
            let applied = db::run_migrations(&mut conn, &settings.database)?;
            db::make_partitions_ahead(&mut conn, &settings)?;
            println!("migrations applied={applied}");
        }
        Command::Sweep { dry_run } => {
            let mut conn = db::connect(&settings.database)?;
            let mut lock = db::connect(&settings.database)?;
            let lifetimes = sweeper::Lifetimes::of(&settings);
            match sweeper::run_pass(&mut conn, &mut lock, &settings.sweeper, lifetimes, dry_run)? {
                PassOutcome::Done(report) if dry_run => println!("dry-run {report}"),
                PassOutcome::Done(report) => println!("{report}"),
                PassOutcome::Skipped => println!("skipped: another sweeper pass is running"),
            }
        }
        Command::Admin {
            action: AdminAction::Grant { email },
        } => {
            let email = normalize_email(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
            let user = User::grant_role(
                &mut db::connect(&settings.database)?,
                &canonical_email(&email),
                "admin",
            )?
            .with_context(|| format!("no user has the email {email}"))?;
            println!("granted admin to {} ({})", user.email, user.id);
        }
        Command::Clients { action } => clients(action, &settings)?,
        Command::Keys {
            action: KeysAction::Rotate,
        } => {
            let alg = settings.jwt.algorithm();
            anyhow::ensure!(
                alg.is_asymmetric(),
                "jwt.algorithm is HS256: jwt.secret signs and there is no signing key to rotate \
                 (set jwt.algorithm to EdDSA or RS256)"
            );
            let sealer = Sealer::new(&settings.jwt.secret);
            let schedule = KeySchedule::of(&settings);
            let maker = KeyMaker {
                alg,
                sealer: &sealer,
                schedule: &schedule,
            };
            let made = maker
                .make_if_due(&mut db::connect(&settings.database)?, Utc::now, true)?
                .context("no key was made")?;
            log::info!(
                "signing key {} is published now and signs from {}",
                made.kid,
                made.signs_from
            );
            println!("{}", made.kid);
        }
        Command::Keys {
            action: KeysAction::List,
        } => {
            let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
            for key in StoredKey::all(&mut db::connect(&settings.database)?)? {
                let until = key.signs_until.map_or_else(|| "-".to_owned(), time);
                println!("{} {} {} {until}", key.kid, key.alg, time(key.signs_from));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn clients(action: ClientsAction, settings: &Settings) -> anyhow::Result<()> {
    let conn = &mut db::connect(&settings.database)?;
    match action {
        ClientsAction::Add { name } => {
            let (client, secret) = OAuthClient::add(conn, &name)?;
            println!("client_id={}", client.client_id);
            println!("client_secret={}", secret.expose());
        }
        ClientsAction::List => {
            for client in OAuthClient::list(conn)? {
                println!(
                    "{}\t{}\t{}",
                    client.client_id,
                    client.name,
                    client
                        .created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
        }
        ClientsAction::Remove { client_id } => {
            if !OAuthClient::remove(conn, &client_id)? {
                anyhow::bail!("no client has the id {client_id}");
            }
            println!("removed client {client_id}");
        }
    }
    Ok(())
}
