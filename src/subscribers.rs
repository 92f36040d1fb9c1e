//! The managed subscriber list's input and output: CSV rows read into validated, merged
//! entries (every bad row reported with its line), and entries written back as CSV. Pure
//! functions over text; the store keeps the list and the CLI wires the two.
//!
//! CSV columns (a header row is required, any order, unknown columns refused):
//! `email` (required), `name`, `timezone` (IANA), `digests` (names separated by `;` or
//! spaces; empty: every digest).

use std::collections::BTreeMap;

use chrono_tz::Tz;

use crate::config::{parse_address, plain_line};

/// A subscriber to add or update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalised address (domain lower-cased, IDN domains in punycode).
    pub email: String,
    /// Display name, one line.
    pub name: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// Digest names, sorted; never empty.
    pub digests: Vec<String>,
}

/// A row that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line in the file.
    pub line: u64,
    /// What is wrong and what to do.
    pub message: String,
}

/// Validates one subscriber's fields against the known digests.
pub fn entry(
    email: &str,
    name: Option<&str>,
    timezone: Option<&str>,
    digests: &[String],
    known_digests: &[String],
) -> Result<Entry, String> {
    let address = parse_address(email)
        .map_err(|e| format!("{email:?} is not a valid e-mail address ({e})"))?;
    let name = name.map(plain_line).filter(|n| !n.is_empty());
    let timezone = match timezone.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Some(
            t.parse::<Tz>()
                .map_err(|_| format!("{t:?} is not an IANA time zone (e.g. \"Europe/Berlin\")"))?
                .name()
                .to_owned(),
        ),
        None => None,
    };
    let mut chosen: Vec<String> = Vec::new();
    for d in digests.iter().map(|d| d.trim()).filter(|d| !d.is_empty()) {
        if !known_digests.iter().any(|k| k == d) {
            return Err(format!(
                "no digest named {d:?}; defined digests: {}",
                known_digests.join(", ")
            ));
        }
        chosen.push(d.to_owned());
    }
    if chosen.is_empty() {
        chosen = known_digests.to_vec();
    }
    chosen.sort();
    chosen.dedup();
    Ok(Entry {
        email: address.to_string(),
        name,
        timezone,
        digests: chosen,
    })
}

/// Reads a subscriber CSV: the good rows as entries (an address listed twice is merged:
/// digests joined, the first name and zone kept) and every bad row with its line.
pub fn read_csv(text: &str, known_digests: &[String]) -> (Vec<Entry>, Vec<BadRow>) {
    let mut bad = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            bad.push(BadRow {
                line: 1,
                message: format!("cannot read the header row: {e}"),
            });
            return (Vec::new(), bad);
        }
    };
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    for (i, h) in headers.iter().enumerate() {
        // status and origin are what `export` adds; they are read back as nothing (an
        // import never changes a subscriber's status).
        let known = ["email", "name", "timezone", "digests", "status", "origin"];
        if column(h) == Some(i) && !known.contains(&h.to_ascii_lowercase().as_str()) {
            bad.push(BadRow {
                line: 1,
                message: format!(
                    "unknown column {h:?}; columns are email, name, timezone, digests"
                ),
            });
        }
    }
    let Some(email_col) = column("email") else {
        bad.push(BadRow {
            line: 1,
            message: "no `email` column; the header row must name it (email,name,timezone,digests)"
                .into(),
        });
        return (Vec::new(), bad);
    };
    if !bad.is_empty() {
        return (Vec::new(), bad);
    }
    let (name_col, tz_col, digests_col) = (column("name"), column("timezone"), column("digests"));
    let mut merged: BTreeMap<String, Entry> = BTreeMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                bad.push(BadRow {
                    line,
                    message: format!("cannot read this row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        // No field of a subscriber row holds a line break: one that does is a quote left
        // open, which swallowed the rows after it. Report them rather than import a
        // subscriber named with the next rows.
        let breaks: usize = record
            .iter()
            .map(|f| {
                f.matches('\n').count() + f.matches('\r').filter(|_| !f.contains('\n')).count()
            })
            .sum();
        if breaks > 0 {
            bad.push(BadRow {
                line,
                message: format!(
                    "a quote opened on this row is not closed, so lines {line}–{} were read as one row; close the quote (or remove it) and import again",
                    line + breaks as u64
                ),
            });
            continue;
        }
        let get = |col: Option<usize>| col.and_then(|c| record.get(c)).filter(|v| !v.is_empty());
        let digests: Vec<String> = get(digests_col)
            .map(|d| {
                d.split(|c: char| c == ';' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        match entry(
            record.get(email_col).unwrap_or_default(),
            get(name_col),
            get(tz_col),
            &digests,
            known_digests,
        ) {
            Ok(e) => {
                let key = e.email.to_lowercase();
                match merged.get_mut(&key) {
                    Some(prev) => {
                        prev.name = prev.name.take().or(e.name);
                        prev.timezone = prev.timezone.take().or(e.timezone);
                        prev.digests.extend(e.digests);
                        prev.digests.sort();
                        prev.digests.dedup();
                    }
                    None => {
                        merged.insert(key, e);
                    }
                }
            }
            Err(message) => bad.push(BadRow { line, message }),
        }
    }
    (merged.into_values().collect(), bad)
}

/// One row of `gazette subscribers export`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    /// Address.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// Digest names.
    pub digests: Vec<String>,
    /// active, unsubscribed or bounced.
    pub status: String,
    /// Where the entry came from: config, cli or web.
    pub origin: String,
    /// Why it was suppressed when not by the reader's own choice: "complained", or the
    /// failure a bounce reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Writes subscribers as CSV that [`read_csv`] reads back (plus status and origin).
pub fn write_csv(rows: &[Listed]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["email", "name", "timezone", "digests", "status", "origin"]);
    for r in rows {
        let _ = w.write_record([
            inert(r.email.as_str()).as_ref(),
            inert(r.name.as_deref().unwrap_or("")).as_ref(),
            inert(r.timezone.as_deref().unwrap_or("")).as_ref(),
            &r.digests.join(";"),
            &r.status,
            &r.origin,
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A cell a spreadsheet would not run as a formula (OWASP's CSV injection rule): text
/// that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`.
/// Names come from the public sign-up form, so this is hostile input.
fn inert(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_cells_never_start_a_formula() {
        for (cell, want) in [
            (
                "=HYPERLINK(\"http://evil\",\"x\")",
                "'=HYPERLINK(\"http://evil\",\"x\")",
            ),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("Ada", "Ada"),
        ] {
            assert_eq!(inert(cell), want);
        }
    }

    fn known() -> Vec<String> {
        vec!["essays".into(), "replies".into()]
    }

    #[test]
    fn good_rows_are_normalised_and_merged_and_bad_rows_named_by_line() {
        let csv = "email,name,timezone,digests\n\
                   Ada@Example.ORG,Ada Lovelace,Europe/London,essays\n\
                   not-an-address,Nobody,,\n\
                   bo@bücher.example,Bo,Mars/Olympus,\n\
                   carmen@example.org,\"Carmen, the reader\",,replies;essays\n\
                   ada@example.org,,Asia/Kolkata,replies\n\
                   dee@example.org,Dee,,weekly\n";
        let (good, bad) = read_csv(csv, &known());
        assert_eq!(
            good,
            vec![
                Entry {
                    email: "Ada@example.org".into(),
                    name: Some("Ada Lovelace".into()),
                    timezone: Some("Europe/London".into()),
                    digests: vec!["essays".into(), "replies".into()],
                },
                Entry {
                    email: "carmen@example.org".into(),
                    name: Some("Carmen, the reader".into()),
                    timezone: None,
                    digests: vec!["essays".into(), "replies".into()],
                },
            ]
        );
        let lines: Vec<(u64, &str)> = bad.iter().map(|b| (b.line, b.message.as_str())).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0].0, 3);
        assert!(lines[0].1.contains("not a valid e-mail address"));
        assert_eq!(lines[1].0, 4);
        assert!(lines[1]
            .1
            .contains("\"Mars/Olympus\" is not an IANA time zone"));
        assert_eq!(lines[2].0, 7);
        assert!(lines[2].1.contains("no digest named \"weekly\""));
    }

    #[test]
    fn idn_domains_become_punycode_and_the_export_reads_back() {
        let e = entry("zoë@Bücher.Example", None, None, &[], &known()).unwrap();
        assert_eq!(e.email, "zoë@xn--bcher-kva.example");
        assert_eq!(e.digests, known(), "no digests given: all of them");
        let listed = Listed {
            email: e.email.clone(),
            name: Some("Zoë, \"Z\"".into()),
            timezone: None,
            digests: e.digests.clone(),
            status: "active".into(),
            origin: "cli".into(),
            reason: None,
        };
        let text = write_csv(std::slice::from_ref(&listed));
        let (back, bad) = read_csv(&text, &known());
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(back[0].name.as_deref(), Some("Zoë, \"Z\""));
        assert_eq!(back[0].email, e.email);
    }

    #[test]
    fn a_file_without_an_email_column_or_with_an_unknown_one_is_refused_whole() {
        let (good, bad) = read_csv("mail,name\na@example.org,A\n", &known());
        assert!(good.is_empty());
        assert!(
            bad[0].message.contains("unknown column \"mail\""),
            "{bad:?}"
        );
        let (good, bad) = read_csv("name\nA\n", &known());
        assert!(good.is_empty());
        assert!(
            bad.iter().any(|b| b.message.contains("no `email` column")),
            "{bad:?}"
        );
    }
}
