//! A small pool of SMTP connections built on lettre's connection API.
//!
//! Why not `AsyncSmtpTransport`: it writes a message and its final `.` in two writes, and
//! without TCP_NODELAY the second waits for the server's delayed ACK — 40 ms per message,
//! which capped delivery near 25 messages/s per connection. Here the dot-stuffed message
//! and its terminator go out in one write. The pool also checks an idle connection with
//! NOOP before reusing it, so one the server closed is replaced, not reported as a
//! failure (lettre issue #743).

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
use lettre::Address;

use crate::config::{SmtpSettings, TlsMode};

/// Connections to one relay.
pub struct SmtpPool {
    host: String,
    port: u16,
    tls: TlsMode,
    tls_params: Option<TlsParameters>,
    hello: ClientId,
    credentials: Option<Credentials>,
    timeout: Duration,
    data_timeout: Duration,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
}

/// Why one SMTP transaction did not complete.
#[derive(Debug)]
pub enum SmtpFailure {
    /// The relay answered with an error, or the connection failed.
    Smtp(lettre::transport::smtp::Error),
    /// Opening the session failed (connect, greeting, EHLO, STARTTLS, AUTH): the relay's
    /// trouble whoever the recipient.
    Session(lettre::transport::smtp::Error),
    /// A phase took longer than its timeout (RFC 5321 §4.5.3.2).
    Timeout {
        /// What was being waited for.
        phase: &'static str,
        /// How long.
        after: Duration,
    },
}

impl From<lettre::transport::smtp::Error> for SmtpFailure {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        SmtpFailure::Smtp(e)
    }
}

/// Runs one phase of a transaction within its timeout.
async fn within<T>(
    phase: &'static str,
    after: Duration,
    f: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, SmtpFailure> {
    match tokio::time::timeout(after, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(SmtpFailure::Timeout { phase, after }),
    }
}

impl fmt::Debug for SmtpPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials stay out of every Debug output.
        f.debug_struct("SmtpPool")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// The dot-stuffed message body and its terminator, written in one go (RFC 5321 §4.5.2).
struct DataBlock<'a>(&'a str);

impl fmt::Display for DataBlock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.0.split_inclusive("\r\n") {
            if line.starts_with('.') {
                f.write_str(".")?;
            }
            f.write_str(line)?;
        }
        if !self.0.ends_with("\r\n") {
            f.write_str("\r\n")?;
        }
        f.write_str(".\r\n")
    }
}

impl SmtpPool {
    /// Prepares a pool; connections are opened on first use.
    pub fn new(s: &SmtpSettings) -> Result<SmtpPool, String> {
        let tls_params = match s.tls {
            TlsMode::None => None,
            TlsMode::StartTls | TlsMode::Tls => {
                let mut params = TlsParameters::builder(s.host.clone());
                if let Some(pem) = &s.ca_pem {
                    let cert = Certificate::from_pem(pem)
                        .map_err(|e| format!("`ca_file` is not a PEM certificate: {e}"))?;
                    params = params.add_root_certificate(cert);
                }
                Some(params.build_rustls().map_err(|e| e.to_string())?)
            }
        };
        Ok(SmtpPool {
            host: s.host.clone(),
            port: s.port,
            tls: s.tls,
            tls_params,
            hello: s.helo.clone().map(ClientId::Domain).unwrap_or_default(),
            credentials: match (&s.username, &s.password) {
                (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.expose().to_owned())),
                _ => None,
            },
            timeout: s.timeout,
            data_timeout: s.data_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, lettre::transport::smtp::Error> {
        let wrapper = (self.tls == TlsMode::Tls)
            .then(|| self.tls_params.clone())
            .flatten();
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            wrapper,
            None,
        )
        .await?;
        if self.tls == TlsMode::StartTls {
            if let Some(params) = &self.tls_params {
                // Required, not opportunistic: a relay that does not offer STARTTLS fails.
                conn.starttls(params.clone(), &self.hello).await?;
            }
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        Ok(conn)
    }

    async fn checkout(&self) -> Result<AsyncSmtpConnection, lettre::transport::smtp::Error> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match idle {
                Some(mut conn) => {
                    if conn.test_connected().await {
                        return Ok(conn);
                    }
                    // Closed while idle: not a delivery failure, just open another.
                    tracing::debug!(host = %self.host, "Pooled SMTP connection was closed; reconnecting.");
                }
                None => return self.connect().await,
            }
        }
    }

    /// Sends one message to one recipient; returns the server's final reply. Each phase
    /// has its own timeout, as RFC 5321 §4.5.3.2 suggests: `timeout` for connecting, the
    /// greeting and each command's reply, `data_timeout` (long) for the reply to the
    /// final dot, since giving up on that one early would send the message twice.
    pub async fn send(
        &self,
        from: &Address,
        to: &Address,
        raw: &[u8],
    ) -> Result<String, SmtpFailure> {
        let t = self.timeout;
        let mut conn = match within("the connection and greeting", t, self.checkout()).await {
            Ok(c) => c,
            Err(SmtpFailure::Smtp(e)) => return Err(SmtpFailure::Session(e)),
            Err(other) => return Err(other),
        };
        let mut params = Vec::new();
        if !raw.is_ascii() {
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let result = async {
            within(
                "the reply to MAIL FROM",
                t,
                conn.command(Mail::new(Some(from.clone()), params)),
            )
            .await?;
            within(
                "the reply to RCPT TO",
                t,
                conn.command(Rcpt::new(to.clone(), vec![])),
            )
            .await?;
            within("the reply to DATA", t, conn.command(Data)).await?;
            let final_dot = "the reply to the final dot";
            match std::str::from_utf8(raw) {
                Ok(text) => {
                    within(final_dot, self.data_timeout, conn.command(DataBlock(text))).await
                }
                // Not expected (lettre encodes bodies), but never send bytes mangled.
                Err(_) => within(final_dot, self.data_timeout, conn.message(raw)).await,
            }
        }
        .await;
        match result {
            Ok(response) => {
                self.idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(conn);
                Ok(format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                ))
            }
            Err(e) => {
                // After a failure the session state is unknown: never reuse it. A relay
                // that stopped answering gets no QUIT (it would not answer that either);
                // others get one, within the command timeout.
                if !matches!(e, SmtpFailure::Timeout { .. }) {
                    let _ = tokio::time::timeout(t, conn.abort()).await;
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffs_and_terminates_in_one_block() {
        assert_eq!(
            DataBlock("a\r\n.\r\n..b\r\nc").to_string(),
            "a\r\n..\r\n...b\r\nc\r\n.\r\n"
        );
        assert_eq!(DataBlock("x\r\n").to_string(), "x\r\n.\r\n");
    }
}
