//! The one HTTP client every web source shares: polite (a User-Agent that names Gazette
//! and the publication, conditional requests, a per-host concurrency limit, Retry-After
//! honoured) and defensive (timeouts, a response-size cap, at most 5 redirects and only
//! to http/https, retries with jittered backoff on 5xx, timeouts and resets, and the
//! fetch policy of [`super::policy`] on every URL, redirect and resolved address).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::policy::{self, GuardedResolver};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::StatusCode;
use tokio::sync::Semaphore;

pub use crate::config::HttpSettings;

/// What a previous fetch of a URL left behind, for a conditional request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// The ETag the server gave.
    pub etag: Option<String>,
    /// The Last-Modified the server gave.
    pub last_modified: Option<String>,
}

/// A successful fetch.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// 304: nothing changed since the validators were issued.
    NotModified,
    /// A fresh body.
    Body(Body),
}

/// A fetched body with what we need to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// The bytes (already decompressed).
    pub bytes: Vec<u8>,
    /// The Content-Type header.
    pub content_type: Option<String>,
    /// Where the body came from after redirects.
    pub final_url: String,
    /// Validators for the next conditional request.
    pub validators: Validators,
    /// Response headers worth keeping (X-WP-TotalPages, Link).
    pub headers: HashMap<String, String>,
}

/// Why a fetch failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not an http(s) URL.
    #[error("{url}: only http and https URLs can be fetched ({reason})")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered with an error status (after retries for 5xx/429).
    #[error("{url}: the server answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body exceeded the size cap.
    #[error("{url}: response larger than the {limit}-byte limit (`http.max_body_bytes`)")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: u64,
    },
    /// The fetch policy refused the address (see `source::policy`).
    #[error("{url}: not fetched: {reason}")]
    Refused {
        /// The URL.
        url: String,
        /// Why, and what to configure if it is wanted.
        reason: String,
    },
    /// The source's time budget ran out before this fetch finished.
    #[error(
        "{url}: not fetched: the source's time budget for this gather (`gather_budget`) ran out"
    )]
    OutOfTime {
        /// The URL.
        url: String,
    },
    /// Connecting, reading or redirecting failed.
    #[error("{url}: {reason}")]
    Network {
        /// The URL.
        url: String,
        /// Why, with the whole error chain.
        reason: String,
    },
}

impl HttpError {
    /// The HTTP status, if the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The shared client.
pub struct HttpClient {
    client: reqwest::Client,
    settings: HttpSettings,
    private_ok: Arc<HashSet<String>>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl HttpClient {
    /// Builds the client; `site_url` goes into the User-Agent so feed owners know who polls.
    pub fn new(settings: HttpSettings, site_url: &str) -> Result<HttpClient, HttpError> {
        // reqwest is built without a bundled crypto provider; ring is pure Rust + asm and
        // needs no C toolchain extras. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let user_agent = format!(
            "Gazette/{} (+{site_url}; e-mail digests)",
            env!("CARGO_PKG_VERSION")
        );
        let private_ok: Arc<HashSet<String>> =
            Arc::new(settings.private_ok.iter().cloned().collect());
        let allowed = private_ok.clone();
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error("more than 5 redirects");
            }
            match policy::check_url(attempt.url(), &allowed) {
                Ok(()) => attempt.follow(),
                Err(refusal) => {
                    let to = attempt.url().to_string();
                    attempt.error(policy::Refusal(format!("redirect to {to}: {refusal}")))
                }
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .redirect(policy)
            // Every name is resolved through the policy; a proxy would resolve it instead.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                private_ok: private_ok.clone(),
            }))
            .build()
            .map_err(|e| HttpError::Network {
                url: String::new(),
                reason: format!("cannot build the HTTP client: {}", crate::error_chain(&e)),
            })?;
        Ok(HttpClient {
            client,
            settings,
            private_ok,
            hosts: Mutex::new(HashMap::new()),
        })
    }

    fn host_permits(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self
            .hosts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        hosts
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.per_host.max(1))))
            .clone()
    }

    /// GETs a URL, conditionally when validators are given, retrying what is worth retrying.
    pub async fn get(
        &self,
        url: &str,
        validators: Option<&Validators>,
        accept: &str,
    ) -> Result<Fetched, HttpError> {
        self.get_until(url, validators, accept, None).await
    }

    /// [`HttpClient::get`], giving up rather than waiting past `deadline` for a retry.
    pub async fn get_until(
        &self,
        url: &str,
        validators: Option<&Validators>,
        accept: &str,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Fetched, HttpError> {
        let parsed = url::Url::parse(url).map_err(|e| HttpError::BadUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(HttpError::BadUrl {
                url: url.to_owned(),
                reason: format!("{}: is not allowed", parsed.scheme()),
            });
        }
        policy::check_url(&parsed, &self.private_ok).map_err(|r| HttpError::Refused {
            url: url.to_owned(),
            reason: r.0,
        })?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(accept) {
            headers.insert(header::ACCEPT, v);
        }
        if let Some(v) = validators {
            if let Some(etag) = v
                .etag
                .as_deref()
                .map(origin_etag)
                .and_then(|e| HeaderValue::from_str(&e).ok())
            {
                headers.insert(header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = v
                .last_modified
                .as_deref()
                .and_then(|e| HeaderValue::from_str(e).ok())
            {
                headers.insert(header::IF_MODIFIED_SINCE, lm);
            }
        }
        let mut attempt = 0;
        loop {
            let result = {
                let permits = self.host_permits(&host);
                let _permit = permits.acquire().await.map_err(|e| HttpError::Network {
                    url: url.to_owned(),
                    reason: e.to_string(),
                })?;
                self.once(url, headers.clone()).await
            };
            let (wait, error) = match result {
                Ok(fetched) => return Ok(fetched),
                Err(Retry::Fail(e)) => return Err(e),
                Err(Retry::After(wait, e)) => (Some(wait), e),
                Err(Retry::Backoff(e)) => (None, e),
            };
            if attempt >= self.settings.retries {
                return Err(error);
            }
            let delay = match wait {
                Some(w) if w > self.settings.max_retry_after => return Err(error),
                Some(w) => w,
                None => {
                    let base = self.settings.backoff * 2u32.saturating_pow(attempt);
                    // Full jitter: spread retries from many Gazettes over the interval.
                    base.mul_f64(0.5 + fastrand::f64() / 2.0)
                }
            };
            // A wait the source's budget cannot afford ends the fetch now, not later.
            if deadline.is_some_and(|d| tokio::time::Instant::now() + delay > d) {
                return Err(error);
            }
            tracing::warn!(url, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, error = %error, "Retrying fetch.");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn once(&self, url: &str, headers: HeaderMap) -> Result<Fetched, Retry> {
        let network = |e: reqwest::Error| {
            if let Some(reason) = policy::refusal_in(&e) {
                return Retry::Fail(HttpError::Refused {
                    url: url.to_owned(),
                    reason,
                });
            }
            let err = HttpError::Network {
                url: url.to_owned(),
                reason: crate::error_chain(&e),
            };
            if e.is_redirect() || e.is_builder() {
                Retry::Fail(err)
            } else {
                Retry::Backoff(err)
            }
        };
        let mut resp = self
            .client
            .get(url)
            .headers(headers)
            .send()
            .await
            .map_err(network)?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            let err = HttpError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            };
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Err(match (status.as_u16(), retry_after) {
                (429 | 503, Some(wait)) => Retry::After(wait, err),
                (429, None) | (500..=599, _) => Retry::Backoff(err),
                _ => Retry::Fail(err),
            });
        }
        let limit = self.settings.max_body_bytes;
        let too_large = || {
            Retry::Fail(HttpError::TooLarge {
                url: url.to_owned(),
                limit,
            })
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let header_str = |name: header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header_str(header::CONTENT_TYPE);
        let validators = kept_validators(
            header_str(header::ETAG),
            header_str(header::LAST_MODIFIED),
            header_str(header::DATE).as_deref(),
        );
        let kept: HashMap<String, String> = resp
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-wp-") || k.as_str() == "link")
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let final_url = resp.url().to_string();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(network)? {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body(Body {
            bytes,
            content_type,
            final_url,
            validators,
            headers: kept,
        }))
    }
}

/// What to do about a failed attempt.
enum Retry {
    /// The server asked us to wait this long.
    After(Duration, HttpError),
    /// Transient: back off and retry.
    Backoff(HttpError),
    /// Permanent: give up now.
    Fail(HttpError),
}

/// The ETag as the origin made it. Apache's mod_deflate appends `-gzip` (mod_brotli
/// `-br`) to the tag of a response it compressed; the application behind it (WordPress's
/// feeds) compares If-None-Match with its own tag and never answers 304 to the altered
/// one. Apache itself accepts the bare tag for what it serves, so the bare tag is sent.
fn origin_etag(etag: &str) -> String {
    for suffix in ["-gzip\"", "-br\"", "-deflate\"", "-zstd\""] {
        if let Some(bare) = etag.strip_suffix(suffix) {
            // `"abc-gzip"` → `"abc"`; a weak `W/"abc-gzip"` keeps its prefix.
            return format!("{bare}\"");
        }
    }
    etag.to_owned()
}

/// Retry-After is either delay-seconds or an HTTP date (RFC 9110 §10.2.3).
/// How long after its Last-Modified a response must be for its validators to be safe to
/// send back. Last-Modified has one-second resolution, and WordPress derives both it and
/// its ETag from the newest post or comment time: a comment written in the same second
/// as (or just after) the fetch leaves both unchanged, so a conditional request would be
/// answered 304 until something newer happened — that comment would never be seen.
const SETTLED: i64 = 2;

/// The validators worth keeping from a response: none while its Last-Modified is within
/// [`SETTLED`] seconds of its Date (our clock when the server sent no Date), so the
/// next fetch is a full one instead of a 304 that hides a same-second change.
fn kept_validators(
    etag: Option<String>,
    last_modified: Option<String>,
    date: Option<&str>,
) -> Validators {
    let parse = |v: &str| chrono::DateTime::parse_from_rfc2822(v.trim()).ok();
    if let Some(modified) = last_modified.as_deref().and_then(parse) {
        let served = date
            .and_then(parse)
            .map_or_else(crate::time::now, |d| d.with_timezone(&chrono::Utc));
        if (served - modified.with_timezone(&chrono::Utc)).num_seconds() < SETTLED {
            return Validators::default();
        }
    }
    Validators {
        etag,
        last_modified,
    }
}

fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - crate::time::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressed_responses_etag_is_sent_back_as_the_origin_made_it() {
        assert_eq!(origin_etag("\"5f3a-gzip\""), "\"5f3a\"");
        assert_eq!(origin_etag("W/\"5f3a-br\""), "W/\"5f3a\"");
        assert_eq!(origin_etag("\"5f3a\""), "\"5f3a\"");
        assert_eq!(origin_etag("\"gzip\""), "\"gzip\"");
    }

    #[test]
    fn validators_of_a_change_in_the_last_seconds_are_not_kept() {
        let etag = || Some("\"abc\"".to_owned());
        let lm = |v: &str| Some(v.to_owned());
        let date = "Thu, 03 Dec 2026 10:00:05 GMT";
        assert_eq!(
            kept_validators(etag(), lm("Thu, 03 Dec 2026 10:00:05 GMT"), Some(date)),
            Validators::default()
        );
        assert_eq!(
            kept_validators(etag(), lm("Thu, 03 Dec 2026 10:00:04 GMT"), Some(date)),
            Validators::default()
        );
        assert_eq!(
            kept_validators(etag(), lm("Thu, 03 Dec 2026 10:00:03 GMT"), Some(date)),
            Validators {
                etag: etag(),
                last_modified: lm("Thu, 03 Dec 2026 10:00:03 GMT"),
            }
        );
        // An ETag alone, or a Last-Modified we cannot read, is kept as it came.
        assert_eq!(kept_validators(etag(), None, Some(date)).etag, etag());
        assert_eq!(
            kept_validators(etag(), lm("yesterday"), Some(date)).last_modified,
            lm("yesterday")
        );
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
