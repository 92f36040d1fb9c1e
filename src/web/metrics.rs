//! `/metrics` in the Prometheus text exposition format (version 0.0.4), from the store's
//! figures: a pure function, so it is tested without a server.

use std::fmt::Write as _;

use crate::store::Figures;

/// Escapes a label value: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// The text `/metrics` serves.
pub fn render(f: &Figures) -> String {
    let mut o = Out(String::new());
    o.family(
        "gazette_editions_total",
        "counter",
        "Editions created, by digest.",
    );
    for (digest, n) in &f.editions {
        o.sample("gazette_editions_total", &[("digest", digest)], *n as f64);
    }
    o.family(
        "gazette_edition_last_finished_timestamp_seconds",
        "gauge",
        "When the digest's latest edition finished sending (Unix time).",
    );
    for (digest, t) in &f.last_finished {
        o.sample(
            "gazette_edition_last_finished_timestamp_seconds",
            &[("digest", digest)],
            t.timestamp() as f64,
        );
    }
    o.family(
        "gazette_deliveries",
        "gauge",
        "Delivery rows in the ledger, by digest and status.",
    );
    for (digest, status, n) in &f.deliveries {
        o.sample(
            "gazette_deliveries",
            &[("digest", digest), ("status", status)],
            *n as f64,
        );
    }
    o.family(
        "gazette_source_gathers_total",
        "counter",
        "Gathers of each source, successful or not.",
    );
    for (source, gathers, _, _) in &f.sources {
        o.sample(
            "gazette_source_gathers_total",
            &[("source", source)],
            *gathers as f64,
        );
    }
    o.family(
        "gazette_source_failures_total",
        "counter",
        "Failed gathers of each source.",
    );
    for (source, _, failures, _) in &f.sources {
        o.sample(
            "gazette_source_failures_total",
            &[("source", source)],
            *failures as f64,
        );
    }
    o.family(
        "gazette_source_last_success_timestamp_seconds",
        "gauge",
        "When each source was last gathered successfully (Unix time).",
    );
    for (source, _, _, ok) in &f.sources {
        if let Some(t) = ok {
            o.sample(
                "gazette_source_last_success_timestamp_seconds",
                &[("source", source)],
                t.timestamp() as f64,
            );
        }
    }
    o.family(
        "gazette_subscribers",
        "gauge",
        "Known addresses, by status (active, unsubscribed, bounced).",
    );
    for (status, n) in &f.subscribers {
        o.sample("gazette_subscribers", &[("status", status)], *n as f64);
    }
    o.family(
        "gazette_signups",
        "gauge",
        "Sign-ups through the form in the last 30 days, by state.",
    );
    for (confirmed, n) in &f.signups {
        let state = if *confirmed { "confirmed" } else { "pending" };
        o.sample("gazette_signups", &[("state", state)], *n as f64);
    }
    o.family(
        "gazette_follows",
        "gauge",
        "Essays followed by readers, counted once per reader and essay.",
    );
    o.sample("gazette_follows", &[], f.follows as f64);
    o.family(
        "gazette_following_readers",
        "gauge",
        "Readers who follow at least one essay.",
    );
    o.sample("gazette_following_readers", &[], f.following_readers as f64);
    o.family(
        "gazette_inbound_messages_total",
        "counter",
        "Mail read by `gazette inbound`, by what it was: bounce, soft_bounce, complaint, unsubscribe, forged, unmatched, other.",
    );
    for (kind, n) in &f.inbound {
        o.sample(
            "gazette_inbound_messages_total",
            &[("kind", kind)],
            *n as f64,
        );
    }
    o.family(
        "gazette_archive_hits_total",
        "counter",
        "Archive pages and feeds served since the endpoint started.",
    );
    o.sample("gazette_archive_hits_total", &[], f.archive_hits as f64);
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_every_sample_follows_its_type() {
        let f = Figures {
            editions: vec![("we\"ird\\name\n".into(), 3)],
            sources: vec![("site".into(), 5, 1, None)],
            ..Figures::default()
        };
        let text = render(&f);
        assert!(
            text.contains("gazette_editions_total{digest=\"we\\\"ird\\\\name\\n\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("gazette_source_failures_total{source=\"site\"} 1\n"));
        assert!(!text.contains("gazette_source_last_success_timestamp_seconds{"));
        assert!(text.ends_with('\n'));
    }
}
