//! `gazette store copy`: move a publication's store between SQLite and PostgreSQL.

use clap::Subcommand;

use super::{EXIT_ERROR, EXIT_OK};
use crate::config::{Config, PgState, PgTls, Secret, State};
use crate::store::Store;

/// `gazette store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Copy the configured store (every essay, reply, subscriber, suppression, edition
    /// and ledger row) into a new, empty one: a PostgreSQL URL or a SQLite file. The
    /// copy is one transaction and is checked by counting every table on both sides.
    /// Stop `gazette run` first, then point `[state]` at the copy.
    Copy {
        /// Where to: `postgres://user@host:port/db` or a path for a new SQLite file.
        #[arg(long)]
        to: String,
        /// Environment variable holding the destination's PostgreSQL password.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        /// TLS to the destination PostgreSQL: prefer, require or off.
        #[arg(long, default_value = "prefer")]
        tls: String,
    },
}

/// Runs a `store` subcommand.
pub(super) fn store(config: &Config, cmd: &StoreCmd, say: impl Fn(String)) -> anyhow::Result<u8> {
    let StoreCmd::Copy {
        to,
        password_env,
        tls,
    } = cmd;
    let dest = if to.starts_with("postgres://") || to.starts_with("postgresql://") {
        let tls = match tls.as_str() {
            "prefer" => PgTls::Prefer,
            "require" => PgTls::Require,
            "off" => PgTls::Off,
            other => {
                eprintln!("error: --tls must be prefer, require or off, not {other:?}");
                return Ok(EXIT_ERROR);
            }
        };
        let password = match password_env {
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(Secret::new(v)),
                _ => {
                    eprintln!("error: --password-env: environment variable {var} is not set");
                    return Ok(EXIT_ERROR);
                }
            },
            None => None,
        };
        State::Postgres(PgState {
            url: to.to_owned(),
            password,
            tls,
            ca_pem: None,
        })
    } else {
        let path = std::path::PathBuf::from(to);
        if path.exists() {
            eprintln!(
                "error: {to} already exists; copy into a new file (a store is never overwritten)"
            );
            return Ok(EXIT_ERROR);
        }
        State::Sqlite(path)
    };
    if dest.describe() == config.state.describe() {
        eprintln!("error: --to names the configured store itself");
        return Ok(EXIT_ERROR);
    }
    if !config.state.exists() {
        eprintln!(
            "error: {} does not exist: there is nothing to copy",
            config.state.describe()
        );
        return Ok(EXIT_ERROR);
    }
    let src = Store::connect(&config.state)?;
    let mut dst = Store::connect(&dest)?;
    say(format!(
        "Copying {} into {} …",
        config.state.describe(),
        dest.describe()
    ));
    let counts = src.copy_into(&mut dst, &mut |table, n| {
        say(format!(
            "  {table}: {n} row{}",
            if n == 1 { "" } else { "s" }
        ));
    })?;
    let total: i64 = counts.iter().map(|c| c.1).sum();
    say(format!(
        "Copied {total} rows in {} tables; every table has the same count on both sides.",
        counts.len()
    ));
    match &dest {
        State::Postgres(_) => say(format!(
            "Next: set `[state] url = \"{}\"` (password in `password_env` or `password_file`), and keep signing links with the old secret: `[web] secret_file = \"{}\"`, so links in mail already sent keep working.",
            dest.describe(),
            config.state_path.with_file_name("gazette.secret").display()
        )),
        State::Sqlite(p) => say(format!(
            "Next: set `[state] path = \"{}\"` (and remove `url`).",
            p.display()
        )),
    }
    Ok(EXIT_OK)
}
