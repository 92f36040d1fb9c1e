//! The fetch policy: what a gather may reach. Addresses a feed names (comment feeds,
//! redirects, a REST root, fallbacks) are written by strangers, so a fetch may not reach
//! loopback, private, link-local, multicast, unspecified or otherwise non-public
//! addresses — checked on the address actually connected to (the resolver below), so a
//! name that resolves to 127.0.0.1 or a redirect to one is caught too. A configured
//! source may opt its own host in (`allow_private = true`, for intranet feeds). A URL
//! with `user:pass@` is refused (it would be sent as Basic auth to whoever it names), and
//! a source only fetches from its own site unless `follow_hosts` names more.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Why the policy refused an address.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Refusal(pub String);

/// What kind of non-public address `ip` is, or `None` for a public one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64
            // (64:ff9b::a.b.c.d) forms reach the IPv4 address they embed.
            let seg = v6.segments();
            let embedded = v6.to_ipv4_mapped().or_else(|| {
                (seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (seg[..6] == [0; 6] && seg[6] != 0))
                    .then(|| Ipv4Addr::from(((seg[6] as u32) << 16) | seg[7] as u32))
            });
            if let Some(v4) = embedded {
                return non_public_v4(v4);
            }
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if seg[0] & 0xffc0 == 0xfe80 || seg[0] & 0xffc0 == 0xfec0 {
                Some("a link-local address")
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("a documentation address")
            } else {
                None
            }
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() || o[0] == 0 {
        // Linux connects 0.0.0.0 (and 0/8) to the local host.
        Some("the unspecified address (it reaches this machine)")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address (cloud metadata lives there)")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("a shared (carrier-grade NAT) address")
    } else if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        Some("a multicast, broadcast or reserved address")
    } else if ip.is_documentation() || (o[0] == 198 && (o[1] & 0xfe) == 18) {
        Some("a documentation or benchmarking address")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("an IETF protocol address")
    } else {
        None
    }
}

/// The key a URL's host is allowed under: `host:port` for an IP literal (the resolver is
/// never asked about those), the bare lower-case name otherwise (the resolver sees no port).
pub fn private_key(url: &Url) -> Option<String> {
    match url.host()? {
        Host::Domain(d) => Some(d.to_ascii_lowercase()),
        Host::Ipv4(ip) => Some(format!("{ip}:{}", url.port_or_known_default()?)),
        Host::Ipv6(ip) => Some(format!("[{ip}]:{}", url.port_or_known_default()?)),
    }
}

/// The checks a URL gets before it is fetched or followed: scheme, userinfo, and an IP
/// literal's class. Names are checked when they resolve ([`GuardedResolver`]).
pub fn check_url(url: &Url, private_ok: &HashSet<String>) -> Result<(), Refusal> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal(format!(
            "{}: URLs are never fetched, only http and https",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal(
            "the URL carries a user name or password; Gazette never sends credentials a feed names"
                .into(),
        ));
    }
    let ip = match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(Host::Domain(_)) => return Ok(()),
        None => return Err(Refusal("the URL names no host".into())),
    };
    match non_public(ip) {
        Some(kind) if !private_key(url).is_some_and(|k| private_ok.contains(&k)) => {
            Err(Refusal(refusal_text(&ip.to_string(), kind)))
        }
        _ => Ok(()),
    }
}

fn refusal_text(what: &str, kind: &str) -> String {
    format!(
        "{what} is {kind}; Gazette fetches only public addresses unless the configured source \
         sets `allow_private = true` for its own host"
    )
}

/// The DNS resolver every fetch goes through: it drops non-public addresses of names not
/// opted in, so the address connected to is the address checked (no rebinding window).
pub struct GuardedResolver {
    /// Host names whose private addresses are allowed (`allow_private` sources).
    pub private_ok: Arc<HashSet<String>>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let open = self.private_ok.contains(&host);
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if open {
                return Ok(Box::new(all.into_iter()) as reqwest::dns::Addrs);
            }
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| non_public(a.ip()).is_none())
                .collect();
            match (public.is_empty(), all.first()) {
                (true, Some(first)) => {
                    let kind = non_public(first.ip()).unwrap_or("not public");
                    Err(Box::new(Refusal(refusal_text(
                        &format!("{host} resolves to {}, which", first.ip()),
                        kind,
                    )))
                        as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The hosts one source may fetch from: those of its configured URLs and its
/// `follow_hosts`, with their subdomains (and `www.` stripped, so a feed on
/// `example.org` may name comment feeds on `www.example.org`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteScope {
    hosts: Vec<String>,
}

impl SiteScope {
    /// A scope of these configured URLs and extra hosts.
    pub fn new<'a>(urls: impl IntoIterator<Item = &'a str>, extra: &[String]) -> SiteScope {
        let mut hosts: Vec<String> = urls
            .into_iter()
            .filter_map(|u| Url::parse(u).ok()?.host_str().map(site_host))
            .chain(extra.iter().map(|h| site_host(h)))
            .collect();
        hosts.sort();
        hosts.dedup();
        SiteScope { hosts }
    }

    /// `Ok` when `url` is on the source's site; the refusal says what to configure.
    pub fn check(&self, url: &str) -> Result<(), Refusal> {
        let parsed = Url::parse(url).map_err(|e| Refusal(format!("not a URL ({e})")))?;
        let Some(host) = parsed.host_str().map(site_host) else {
            return Err(Refusal("the URL names no host".into()));
        };
        let inside = self.hosts.is_empty()
            || self.hosts.iter().any(|h| {
                host == *h
                    || host
                        .strip_suffix(h.as_str())
                        .is_some_and(|p| p.ends_with('.'))
            });
        if inside {
            Ok(())
        } else {
            Err(Refusal(format!(
                "{host} is not the source's own site ({}); add it to the source's `follow_hosts` to fetch from it",
                self.hosts.join(", ")
            )))
        }
    }
}

fn site_host(h: &str) -> String {
    let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
    h.strip_prefix("www.").map(str::to_owned).unwrap_or(h)
}

/// Whether an error chain holds a policy refusal, and which.
pub fn refusal_in(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refusal>() {
            return Some(r.0.clone());
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().expect("test address"))
    }

    fn refused(url: &str) -> bool {
        check_url(&Url::parse(url).expect("test URL"), &HashSet::new()).is_err()
    }

    #[test]
    fn every_spelling_of_a_local_address_is_refused() {
        for u in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://100.64.0.1/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://224.0.0.1/",
            "http://user:pass@example.org/",
            "ftp://example.org/",
        ] {
            assert!(refused(u), "{u} should be refused");
        }
        assert!(!refused("http://93.184.215.14/"));
        assert!(!refused("https://example.org/feed/"));
        assert_eq!(non_public(v6("2606:4700::1111")), None);
        assert!(non_public(v6("64:ff9b::7f00:1")).is_some());
    }

    #[test]
    fn an_opted_in_origin_is_allowed_on_its_own_port_only() {
        let ok: HashSet<String> = ["127.0.0.1:8080".to_owned()].into();
        let check = |u: &str| check_url(&Url::parse(u).expect("test URL"), &ok);
        assert!(check("http://127.0.0.1:8080/feed/").is_ok());
        assert!(check("http://127.0.0.1:8081/").is_err());
        assert!(check("http://[::1]:8080/").is_err());
    }

    #[test]
    fn a_source_stays_on_its_site() {
        let scope = SiteScope::new(["https://example.org/feed/"], &["cdn.example.net".into()]);
        assert!(scope
            .check("https://www.example.org/?p=1&feed=rss2")
            .is_ok());
        assert!(scope.check("https://blog.example.org/c/").is_ok());
        assert!(scope.check("https://cdn.example.net/x").is_ok());
        assert!(scope.check("https://evil-example.org/").is_err());
        assert!(scope.check("https://example.org.evil.net/").is_err());
        assert!(scope.check("http://169.254.169.254/").is_err());
    }
}
