//! Lenient date reading for feeds, as feed readers do it: RFC 822 and its variants
//! (no weekday, one-digit days, two-digit years, `UT`/`GMT`/US zone names, no seconds,
//! trailing comments), and ISO 8601 / RFC 3339 with or without seconds, fraction or zone
//! (no zone is UTC). A date that cannot be read — non-English month names, free text —
//! is "no date", never a failure; [`best`] picks the first readable one of an item's
//! dates.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// Reads one date as a feed wrote it; `None` when it cannot be read.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() || s.len() > 100 {
        return None;
    }
    iso8601(s).or_else(|| rfc822(s))
}

/// The first readable date among candidates given in order of preference.
pub fn best<'a>(candidates: impl IntoIterator<Item = &'a str>) -> Option<DateTime<Utc>> {
    candidates.into_iter().find_map(parse)
}

fn iso8601(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::parse_from_str(&s[..10], "%Y-%m-%d").ok()?;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc());
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    // Split the time from its zone: Z, or the first + or - after the time starts.
    let (time, zone) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let time = time.trim();
    let time = NaiveTime::parse_from_str(time, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M"))
        .ok()?;
    let local = NaiveDateTime::new(date, time);
    let offset = match zone.trim() {
        "" | "Z" | "z" => 0,
        z => numeric_offset(z)?,
    };
    Some(
        FixedOffset::east_opt(offset)?
            .from_local_datetime(&local)
            .single()?
            .with_timezone(&Utc),
    )
}

/// `+0100`, `+01:00`, `+01`, `-0530` as seconds east of UTC.
fn numeric_offset(z: &str) -> Option<i32> {
    let sign = match z.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    (h <= 14 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// RFC 822 / 2822 as it is written in the wild.
fn rfc822(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.with_timezone(&Utc));
    }
    // A trailing comment: "+0000 (UTC)".
    let s = s.split('(').next().unwrap_or(s);
    let tokens: Vec<&str> = s
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .collect();
    let (mut day, mut month, mut year, mut time, mut offset) = (None, None, None, None, None);
    for t in tokens {
        let lower = t.to_ascii_lowercase();
        if t.contains(':') && time.is_none() {
            time = Some(
                NaiveTime::parse_from_str(t, "%H:%M:%S")
                    .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
                    .ok()?,
            );
        } else if let Some(m) = MONTHS.iter().position(|m| {
            lower.len() >= 3
                && lower.starts_with(m)
                && lower.chars().all(|c| c.is_ascii_alphabetic() || c == '.')
        }) {
            month = Some(m as u32 + 1);
        } else if t.chars().all(|c| c.is_ascii_digit()) {
            let n: i32 = t.parse().ok()?;
            match (t.len(), day) {
                (1 | 2, None) => day = Some(n as u32),
                (2, Some(_)) => year = Some(if n < 50 { 2000 + n } else { 1900 + n }),
                (4, _) => year = Some(n),
                _ => return None,
            }
        } else if t.starts_with(['+', '-']) && time.is_some() {
            offset = Some(numeric_offset(t)?);
        } else if let Some(o) = zone_name(&lower) {
            offset = Some(o);
        } else if is_weekday(&lower) {
            // Ignored, as RFC 2822 allows readers to.
        } else {
            // A word we do not know, such as a month in another language: no date.
            return None;
        }
    }
    let date = NaiveDate::from_ymd_opt(year?, month?, day?)?;
    let local = NaiveDateTime::new(date, time.unwrap_or(NaiveTime::MIN));
    Some(
        FixedOffset::east_opt(offset.unwrap_or(0))?
            .from_local_datetime(&local)
            .single()?
            .with_timezone(&Utc),
    )
}

fn is_weekday(lower: &str) -> bool {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .any(|d| lower.starts_with(d) && lower.chars().all(|c| c.is_ascii_alphabetic() || c == '.'))
}

/// Zone names RFC 822 defines, and the military "Z".
fn zone_name(lower: &str) -> Option<i32> {
    let h = match lower {
        "ut" | "utc" | "gmt" | "z" => 0,
        "est" => -5,
        "edt" => -4,
        "cst" => -6,
        "cdt" => -5,
        "mst" => -7,
        "mdt" => -6,
        "pst" => -8,
        "pdt" => -7,
        _ => return None,
    };
    Some(h * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn reads_rfc822_as_written_in_the_wild() {
        let noon = at("2026-11-24T12:00:00Z");
        for s in [
            "Tue, 24 Nov 2026 12:00:00 +0000",
            "Tue, 24 Nov 2026 12:00:00 GMT",
            "24 Nov 2026 12:00:00 UT",
            "Tue, 24 Nov 2026 12:00 GMT",
            "Tuesday, 24 November 2026 12:00:00 GMT",
            "Tue, 24 Nov 26 12:00:00 GMT",
            "Tue, 24 Nov 2026 07:00:00 EST",
            "Tue, 24 Nov 2026 13:00:00 +01:00",
            "Tue, 24 Nov 2026 12:00:00 +0000 (UTC)",
            "Tue,  24 nov 2026 12:00:00 Z",
        ] {
            assert_eq!(parse(s), Some(noon), "{s}");
        }
        assert_eq!(
            parse("Tue, 4 Nov 2026 12:00:00 GMT"),
            Some(at("2026-11-04T12:00:00Z"))
        );
    }

    #[test]
    fn reads_iso8601_with_missing_parts_as_utc() {
        assert_eq!(parse("2026-11-24T12:00"), Some(at("2026-11-24T12:00:00Z")));
        assert_eq!(
            parse("2026-11-24T12:00:30"),
            Some(at("2026-11-24T12:00:30Z"))
        );
        assert_eq!(
            parse("2026-11-24 13:00+01:00"),
            Some(at("2026-11-24T12:00:00Z"))
        );
        assert_eq!(
            parse("2026-11-24T12:00:00.123Z"),
            Some(at("2026-11-24T12:00:00.123Z"))
        );
        assert_eq!(
            parse("2026-11-24T14:00:00+0200"),
            Some(at("2026-11-24T12:00:00Z"))
        );
        assert_eq!(parse("2026-11-24"), Some(at("2026-11-24T00:00:00Z")));
    }

    #[test]
    fn unreadable_dates_are_no_date() {
        for s in [
            "",
            "mar., 24 déc. 2026 12:00:00 +0100",
            "Dienstag, 24. März 2026 12:00:00",
            "Di, 24 Nov 2026 12:00:00",
            "yesterday",
            "2026-13-40T99:00",
            "24 Movember 2026",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }

    #[test]
    fn the_first_readable_candidate_wins() {
        assert_eq!(
            best(["not a date", "Tue, 24 Nov 2026 12:00:00 GMT"]),
            Some(at("2026-11-24T12:00:00Z"))
        );
        assert_eq!(best(["", "nope"]), None);
    }
}
