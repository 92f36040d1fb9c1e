//! `[web]`: the endpoint's address, public URL, secret and limits, with their validation.

use super::*;

/// The `[web]` table.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// Where `gazette serve` and `gazette run` listen.
    pub listen: std::net::SocketAddr,
    /// Public address of the endpoint (no trailing slash); links in messages start here.
    pub base_url: String,
    /// Where the token secret comes from.
    pub secret: SecretSource,
    /// Sign-up requests per client address per hour.
    pub subscribe_per_ip: u32,
    /// Confirmation messages per e-mail address per hour.
    pub subscribe_per_address: u32,
    /// Rate limits key on X-Forwarded-For's last entry (the proxy's view of the client).
    pub behind_proxy: bool,
    /// Open connections at once; more are closed on arrival.
    pub max_connections: usize,
    /// A separate address serving `/metrics` (and `/healthz`) without a token.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The bearer token `/metrics` asks for on `listen`; without it (and without
    /// `metrics_listen`) `/metrics` is not served.
    pub metrics_token: Option<Secret>,
}

/// Where the secret that signs links comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// An environment variable's value (read at load time).
    Env(Secret),
    /// A file, created with 32 random bytes (mode 0600) on first use.
    File(PathBuf),
}

impl Validator<'_> {
    pub(super) fn web(
        &mut self,
        raw: &raw::RawWeb,
        site_url: Option<&str>,
        state_path: &Path,
        shared: bool,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Option<WebSettings> {
        let listen = match &raw.listen {
            Some(l) => match l.get_ref().parse::<std::net::SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.at_span(l, format!("`web.listen`: \"{}\" is not an address and port; write e.g. \"127.0.0.1:8080\"", l.get_ref()));
                    None
                }
            },
            None => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8080))),
        };
        let base_url = match &raw.base_url {
            Some(u) => self.url(u, "web.base_url").and_then(|text| {
                let url = url::Url::parse(&text).ok()?;
                let loopback = match url.host() {
                    Some(url::Host::Domain(d)) => d == "localhost",
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    None => false,
                };
                if url.scheme() != "https" && !loopback {
                    self.at_span(u, format!("`web.base_url`: \"{text}\" must be https: mail clients only offer one-click unsubscribe (RFC 8058) over https"));
                    return None;
                }
                Some(text.trim_end_matches('/').to_owned())
            }),
            None => site_url.map(str::to_owned),
        };
        let secret = match (&raw.secret_env, &raw.secret_file) {
            (Some(_), Some(f)) => {
                self.at_span(
                    f,
                    "`web`: give `secret_env` or `secret_file`, not both".into(),
                );
                None
            }
            (Some(var), None) => match std::env::var(var.get_ref()) {
                Ok(v) if v.len() >= 32 => Some(SecretSource::Env(Secret::new(v))),
                Ok(_) => {
                    self.at_span(var, format!("`web.secret_env`: the value of {} is shorter than 32 characters; use e.g. `openssl rand -hex 32`", var.get_ref()));
                    None
                }
                Err(_) => {
                    self.at_span(
                        var,
                        format!(
                            "`web.secret_env`: environment variable {} is not set",
                            var.get_ref()
                        ),
                    );
                    None
                }
            },
            (None, Some(f)) => Some(SecretSource::File(resolve(f.get_ref()))),
            // Every instance on a shared store signs and checks the same links, so the
            // secret cannot be one each instance makes for itself.
            (None, None) if shared => {
                let offset = match DeTable::parse(self.text) {
                    Ok(t) => locate(t.get_ref(), &[Seg::Key("web".into())]).0,
                    Err(_) => 0,
                };
                self.at(offset, "`web`: with a PostgreSQL store every instance must sign links with one secret; set `secret_env` (the same value on each instance, e.g. from `openssl rand -hex 32`) or `secret_file` (a copy of one file)".into());
                None
            }
            (None, None) => Some(SecretSource::File(
                state_path.with_file_name("gazette.secret"),
            )),
        };
        let metrics_listen = raw.metrics_listen.as_ref().and_then(|l| {
            let parsed = l.get_ref().parse::<std::net::SocketAddr>().ok();
            if parsed.is_none() {
                self.at_span(l, format!("`web.metrics_listen`: \"{}\" is not an address and port; write e.g. \"127.0.0.1:9464\"", l.get_ref()));
            }
            parsed
        });
        let metrics_token = raw.metrics_token_env.as_ref().and_then(|var| {
            match std::env::var(var.get_ref()) {
                Ok(v) if v.len() >= 16 => Some(Secret::new(v)),
                Ok(_) => {
                    self.at_span(var, format!("`web.metrics_token_env`: the value of {} is shorter than 16 characters; use e.g. `openssl rand -hex 16`", var.get_ref()));
                    None
                }
                Err(_) => {
                    self.at_span(var, format!("`web.metrics_token_env`: environment variable {} is not set", var.get_ref()));
                    None
                }
            }
        });
        let max_connections = self
            .count(&raw.max_connections, "web.max_connections", 16)
            .map_or(4096, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let per_ip = self.count(&raw.subscribe_per_ip, "web.subscribe_per_ip", 1);
        let per_address = self.count(&raw.subscribe_per_address, "web.subscribe_per_address", 1);
        Some(WebSettings {
            listen: listen?,
            base_url: base_url?,
            secret: secret?,
            subscribe_per_ip: per_ip.map_or(10, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            subscribe_per_address: per_address.map_or(3, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            behind_proxy: raw.behind_proxy.unwrap_or(false),
            max_connections,
            metrics_listen,
            metrics_token,
        })
    }
}
