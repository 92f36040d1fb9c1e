//! `[http]`: the manners and limits of the HTTP client web sources share.

use std::time::Duration;

use super::*;

/// Limits and manners of the client, from `[http]` in the config.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// Whole-request timeout (connect to last byte).
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Largest response body accepted, in bytes.
    pub max_body_bytes: u64,
    /// Retries after the first attempt for 5xx, 429, timeouts and resets.
    pub retries: u32,
    /// Longest Retry-After honoured; longer ones fail the fetch for this run.
    pub max_retry_after: Duration,
    /// Concurrent requests per host.
    pub per_host: usize,
    /// First backoff delay; doubled each retry, with jitter.
    pub backoff: Duration,
    /// Hosts (`host:port` for IP literals) whose private addresses may be fetched: those
    /// of sources configured with `allow_private = true`.
    pub private_ok: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: 10 * 1024 * 1024,
            retries: 3,
            max_retry_after: Duration::from_secs(120),
            per_host: 2,
            backoff: Duration::from_millis(500),
            private_ok: Vec::new(),
        }
    }
}

impl Validator<'_> {
    pub(super) fn http(&mut self, raw: &raw::RawHttp) -> HttpSettings {
        let mut h = HttpSettings::default();
        let mut duration = |v: &Option<S>, key: &str, into: &mut std::time::Duration| {
            if let Some(v) = v {
                match humantime::parse_duration(v.get_ref()) {
                    Ok(d) if !d.is_zero() => *into = d,
                    _ => self.at_span(
                        v,
                        format!(
                            "`http.{key}`: \"{}\" is not a duration; write e.g. \"30s\"",
                            v.get_ref()
                        ),
                    ),
                }
            }
        };
        duration(&raw.timeout, "timeout", &mut h.timeout);
        duration(
            &raw.connect_timeout,
            "connect_timeout",
            &mut h.connect_timeout,
        );
        if let Some(n) = self.count(&raw.max_body_bytes, "http.max_body_bytes", 1024) {
            h.max_body_bytes = n;
        }
        if let Some(n) = self.count(&raw.retries, "http.retries", 0) {
            h.retries = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(n) = self.count(&raw.per_host, "http.per_host", 1) {
            h.per_host = usize::try_from(n).unwrap_or(usize::MAX);
        }
        h
    }
}
