//! `[state]`: where the store lives. A SQLite file by default; a PostgreSQL server
//! when `url` is given (several instances may then share it).

use std::path::PathBuf;

use super::raw::RawState;
use super::{Secret, Validator, S};

/// Where the store lives.
#[derive(Debug, Clone)]
pub enum State {
    /// A SQLite file (the default: `gazette.db` beside the config).
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgState),
}

impl State {
    /// Whether there is a store to read yet (a PostgreSQL server is assumed to be).
    pub fn exists(&self) -> bool {
        match self {
            State::Sqlite(p) => p.exists(),
            State::Postgres(_) => true,
        }
    }

    /// How it is named in messages: the file, or the URL (which holds no password).
    pub fn describe(&self) -> String {
        match self {
            State::Sqlite(p) => p.display().to_string(),
            State::Postgres(pg) => pg.url.clone(),
        }
    }
}

/// TLS to the PostgreSQL server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTls {
    /// Never (a server on loopback or a Unix socket).
    Off,
    /// If the server offers it, verified; plain otherwise (libpq's `prefer`).
    Prefer,
    /// Always, verified against `ca_file` or the system's roots.
    Require,
}

/// A PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgState {
    /// `postgres://user@host:port/db` (no password: that comes from the env or a file).
    pub url: String,
    /// From `password_env` or `password_file`.
    pub password: Option<Secret>,
    /// `tls`: "prefer" (default), "require" or "off".
    pub tls: PgTls,
    /// PEM roots to verify the server with, instead of the system's.
    pub ca_pem: Option<Vec<u8>>,
}

impl Validator<'_> {
    /// `[state]` as a [`State`]; problems are recorded against their keys.
    pub(super) fn state(&mut self, raw: &RawState, resolve: &dyn Fn(&str) -> PathBuf) -> State {
        let sqlite = || {
            State::Sqlite(resolve(
                raw.path
                    .as_ref()
                    .map(|s| s.get_ref().as_str())
                    .unwrap_or("gazette.db"),
            ))
        };
        let Some(url) = &raw.url else {
            for (key, v) in [
                ("password_env", &raw.password_env),
                ("password_file", &raw.password_file),
                ("tls", &raw.tls),
                ("ca_file", &raw.ca_file),
            ] {
                if let Some(v) = v {
                    self.at_span(v, format!("`state.{key}` is for a PostgreSQL store; set `state.url` too, or remove it"));
                }
            }
            return sqlite();
        };
        if let Some(p) = &raw.path {
            self.at_span(p, "`state.path` and `state.url` name two stores; give one (a SQLite file or a PostgreSQL URL)".into());
        }
        let text = url.get_ref();
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            self.at_span(url, format!("`state.url` must be a PostgreSQL URL, postgres://user@host:port/database; got {text:?}"));
        } else if let Err(e) = text.parse::<postgres::Config>() {
            self.at_span(
                url,
                format!("`state.url` is not a valid PostgreSQL URL: {e}"),
            );
        } else if has_password(text) {
            self.at_span(url, "`state.url` holds a password; move it to `state.password_env` or `state.password_file` (a password never goes in the file itself)".into());
        }
        let password = self.secret("state", &raw.password_env, &raw.password_file, resolve);
        let tls = match raw.tls.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("prefer") => PgTls::Prefer,
            Some("require") => PgTls::Require,
            Some("off") => PgTls::Off,
            Some(other) => {
                if let Some(t) = &raw.tls {
                    self.at_span(
                        t,
                        format!(
                            "`state.tls` must be \"prefer\", \"require\" or \"off\", not {other:?}"
                        ),
                    );
                }
                PgTls::Prefer
            }
        };
        let ca_pem = raw.ca_file.as_ref().and_then(|f| {
            let path = resolve(f.get_ref());
            match std::fs::read(&path) {
                Ok(b) => Some(b),
                Err(e) => {
                    self.at_span(
                        f,
                        format!("`state.ca_file`: cannot read {}: {e}", path.display()),
                    );
                    None
                }
            }
        });
        State::Postgres(PgState {
            url: text.clone(),
            password,
            tls,
            ca_pem,
        })
    }

    /// A password from `<table>.password_env` or `<table>.password_file` (never both).
    pub(super) fn secret(
        &mut self,
        table: &str,
        env: &Option<S>,
        file: &Option<S>,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Option<Secret> {
        match (env, file) {
            (Some(_), Some(f)) => {
                self.at_span(
                    f,
                    format!("`{table}`: give `password_env` or `password_file`, not both"),
                );
                None
            }
            (Some(var), None) => match std::env::var(var.get_ref()) {
                Ok(v) if !v.is_empty() => Some(Secret::new(v)),
                _ => {
                    self.at_span(
                        var,
                        format!(
                            "`{table}.password_env`: environment variable {} is not set",
                            var.get_ref()
                        ),
                    );
                    None
                }
            },
            (None, Some(file)) => {
                let path = resolve(file.get_ref());
                match std::fs::read_to_string(&path) {
                    Ok(v) => Some(Secret::new(v.trim_end_matches(['\r', '\n']).to_owned())),
                    Err(e) => {
                        self.at_span(
                            file,
                            format!(
                                "`{table}.password_file`: cannot read {}: {e}",
                                path.display()
                            ),
                        );
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }
}

/// Whether a URL's authority carries `user:password@`.
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}
