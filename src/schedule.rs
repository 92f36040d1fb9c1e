//! When digests fire: the next times of a cron schedule read in a time zone, and what to do
//! about ticks missed while Gazette was down. Pure functions: the daemon reads the clock
//! and sleeps; this only computes.
//!
//! Cron expressions are evaluated on *local wall-clock* time and each local time is then
//! placed on the timeline: a time that does not exist (the hour skipped when clocks go
//! forward) fires at the first instant after the gap, and a time that exists twice (the
//! hour repeated when clocks go back) fires once, at its first occurrence. So "08:00 daily"
//! fires exactly once per local day, and so does "02:30 daily" on the day 02:30 is skipped.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant a local wall-clock time denotes, by the rules above.
fn place(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // In a gap: move forward minute by minute to the first time that exists
            // (gaps are at most a few hours; 24 h bounds the search).
            (1..=24 * 60).find_map(|m| {
                match tz.from_local_datetime(&(local + Duration::minutes(m))) {
                    LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
                    LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
                    LocalResult::None => None,
                }
            })
        }
    }
}

/// Fire times strictly after `after`, in order, for a schedule read in `tz`.
pub fn fire_times(
    schedule: &cron::Schedule,
    tz: Tz,
    after: DateTime<Utc>,
) -> impl Iterator<Item = DateTime<Utc>> + '_ {
    // Walk local wall-clock times: the cron crate iterates a naive time as if it were UTC.
    let local_after = after.with_timezone(&tz).naive_local() - Duration::hours(3);
    let mut last: Option<DateTime<Utc>> = None;
    schedule
        .after(&Utc.from_utc_datetime(&local_after))
        .filter_map(move |naive_as_utc| place(tz, naive_as_utc.naive_utc()))
        .filter(move |t| *t > after)
        // Two local times placed on one instant (a gap) fire once.
        .filter(move |t| {
            let new = last.is_none_or(|l| *t > l);
            if new {
                last = Some(*t);
            }
            new
        })
}

/// What to do about ticks missed while Gazette was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Drop missed ticks; wait for the next one.
    Skip,
    /// One late edition covering the whole gap, never one per missed tick (default).
    Once,
    /// Like `Once`, but only if the latest missed tick is at most this old.
    Within(Duration),
}

impl CatchUp {
    /// Parses "skip", "once" or "within:<duration>" (e.g. "within:6h").
    pub fn parse(text: &str) -> Option<CatchUp> {
        match text.trim() {
            "skip" => Some(CatchUp::Skip),
            "once" => Some(CatchUp::Once),
            other => {
                let d = other.strip_prefix("within:")?;
                let d = humantime::parse_duration(d.trim()).ok()?;
                Duration::from_std(d).ok().map(CatchUp::Within)
            }
        }
    }
}

/// What the daemon should do now for one digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Make an edition now for this scheduled tick (the latest one due).
    pub fire: Option<DateTime<Utc>>,
    /// Ticks that came due since the last fire (including the one fired).
    pub missed: usize,
    /// The latest tick that came due, fired or not: handled after this decision.
    pub latest: Option<DateTime<Utc>>,
    /// The next tick after `now`.
    pub next: Option<DateTime<Utc>>,
}

/// Decides, at `now`, whether a digest last fired at `last` should fire, given its
/// catch-up policy. A tick due within `grace` of now is on time, not a catch-up.
pub fn decide(
    schedule: &cron::Schedule,
    tz: Tz,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: CatchUp,
    grace: Duration,
) -> Decision {
    let mut due = fire_times(schedule, tz, last).take_while(|t| *t <= now);
    let mut missed = 0;
    let mut latest = None;
    for t in due.by_ref() {
        missed += 1;
        latest = Some(t);
        // Bound the walk after years of downtime on a per-second schedule.
        if missed >= 100_000 {
            break;
        }
    }
    let next = fire_times(schedule, tz, now).next();
    let fire = latest.filter(|t| {
        let on_time = now - *t <= grace;
        match policy {
            _ if on_time => true,
            CatchUp::Skip => false,
            CatchUp::Once => true,
            CatchUp::Within(d) => now - *t <= d,
        }
    });
    Decision {
        fire,
        missed,
        latest,
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_schedule;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fire_list(expr: &str, tz: &str, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        let s = parse_schedule(expr).unwrap();
        fire_times(&s, tz.parse().unwrap(), utc(from))
            .take(n)
            .collect()
    }

    /// Fire times as local wall-clock time in `tz`.
    fn fires(expr: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
        let zone: Tz = tz.parse().unwrap();
        fire_list(expr, tz, from, n)
            .into_iter()
            .map(|t| {
                t.with_timezone(&zone)
                    .format("%Y-%m-%d %H:%M %Z")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn daily_at_eight_fires_once_per_local_day_across_dst_in_two_zones() {
        // Europe/Berlin: clocks go forward 2026-03-29 and back 2026-10-25.
        for (from, zone) in [
            ("2026-03-27T12:00:00Z", "Europe/Berlin"),
            ("2026-10-23T12:00:00Z", "Europe/Berlin"),
            // America/New_York: forward 2026-03-08, back 2026-11-01.
            ("2026-03-06T18:00:00Z", "America/New_York"),
            ("2026-10-30T18:00:00Z", "America/New_York"),
        ] {
            let got = fires("0 8 * * *", zone, from, 4);
            assert_eq!(got.len(), 4);
            assert!(got.iter().all(|t| t.contains(" 08:00 ")), "{zone}: {got:?}");
            let days: std::collections::BTreeSet<_> = got.iter().map(|t| &t[..10]).collect();
            assert_eq!(days.len(), 4, "one per day: {got:?}");
        }
    }

    #[test]
    fn a_skipped_local_time_fires_after_the_gap_and_a_repeated_one_fires_once() {
        // 02:30 does not exist in Berlin on 2026-03-29: fire at 03:00 CEST instead.
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3),
            vec![
                "2026-03-28 02:30 CET",
                "2026-03-29 03:00 CEST",
                "2026-03-30 02:30 CEST"
            ]
        );
        // 02:30 exists twice on 2026-10-25: once, at the first (summer-time) one.
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", "2026-10-23T12:00:00Z", 3),
            vec![
                "2026-10-24 02:30 CEST",
                "2026-10-25 02:30 CEST",
                "2026-10-26 02:30 CET"
            ]
        );
        // New York skips 02:00-03:00 on 2027-03-14 and repeats 01:00-02:00 on 2027-11-07.
        assert_eq!(
            fires("15 2 * * *", "America/New_York", "2027-03-13T12:00:00Z", 2),
            vec!["2027-03-14 03:00 EDT", "2027-03-15 02:15 EDT"]
        );
        assert_eq!(
            fires("30 1 * * *", "America/New_York", "2027-11-06T12:00:00Z", 2),
            vec!["2027-11-07 01:30 EDT", "2027-11-08 01:30 EST"]
        );
    }

    #[test]
    fn the_repeated_hour_fires_once_on_an_hourly_schedule() {
        // Berlin, 2024-10-27: 02:00 local happens at 00:00Z (CEST) and again at 01:00Z
        // (CET). Wall-clock semantics: it fired at the first; the next is 03:00 CET.
        let got = fires("0 * * * *", "Europe/Berlin", "2024-10-27T00:30:00Z", 3);
        assert_eq!(
            got,
            vec![
                "2024-10-27 03:00 CET",
                "2024-10-27 04:00 CET",
                "2024-10-27 05:00 CET"
            ]
        );
    }

    #[test]
    fn five_and_six_field_and_shorthand_schedules() {
        assert_eq!(
            fires("@daily", "UTC", "2025-06-01T10:00:00Z", 1),
            vec!["2025-06-02 00:00 UTC"]
        );
        assert_eq!(
            fires("30 0 9 * * Mon", "UTC", "2025-06-01T10:00:00Z", 1),
            vec!["2025-06-02 09:00 UTC"]
        );
        assert_eq!(
            fires("0 9 * * 1", "UTC", "2025-06-01T10:00:00Z", 1),
            vec!["2025-06-02 09:00 UTC"]
        );
    }

    #[test]
    fn local_time_fan_out_puts_eight_o_clock_at_each_readers_own_morning() {
        // One schedule read in three readers' zones, across Berlin's change on 25 October
        // and Toronto's on 1 November; Kolkata has no DST.
        let at = |zone: &str| fires("0 8 * * *", zone, "2026-10-24T00:00:00Z", 2);
        let utc_of = |zone: &str| -> Vec<String> {
            fire_list("0 8 * * *", zone, "2026-10-31T00:00:00Z", 2)
                .iter()
                .map(DateTime::to_rfc3339)
                .collect()
        };
        assert_eq!(
            at("Asia/Kolkata"),
            ["2026-10-24 08:00 IST", "2026-10-25 08:00 IST"]
        );
        assert_eq!(
            at("Europe/Berlin"),
            ["2026-10-24 08:00 CEST", "2026-10-25 08:00 CET"]
        );
        assert_eq!(
            utc_of("Asia/Kolkata"),
            ["2026-10-31T02:30:00+00:00", "2026-11-01T02:30:00+00:00"]
        );
        assert_eq!(
            utc_of("America/Toronto"),
            ["2026-10-31T12:00:00+00:00", "2026-11-01T13:00:00+00:00"]
        );
        assert_eq!(
            utc_of("Europe/Berlin"),
            ["2026-10-31T07:00:00+00:00", "2026-11-01T07:00:00+00:00"]
        );
    }

    #[test]
    fn catch_up_policies_after_a_three_day_outage() {
        let s = parse_schedule("0 8 * * *").unwrap();
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let last = utc("2026-06-01T06:00:00Z"); // fired 08:00 CEST on 1 June
        let now = utc("2026-06-04T12:00:00Z"); // back at 14:00 CEST on 4 June
        let grace = Duration::minutes(5);
        let once = decide(&s, tz, last, now, CatchUp::Once, grace);
        assert_eq!(once.missed, 3, "2, 3 and 4 June");
        assert_eq!(
            once.fire,
            Some(utc("2026-06-04T06:00:00Z")),
            "one late edition for the latest tick"
        );
        assert_eq!(once.next, Some(utc("2026-06-05T06:00:00Z")));
        assert_eq!(decide(&s, tz, last, now, CatchUp::Skip, grace).fire, None);
        assert_eq!(
            decide(
                &s,
                tz,
                last,
                now,
                CatchUp::Within(Duration::hours(8)),
                grace
            )
            .fire,
            Some(utc("2026-06-04T06:00:00Z"))
        );
        assert_eq!(
            decide(
                &s,
                tz,
                last,
                now,
                CatchUp::Within(Duration::hours(2)),
                grace
            )
            .fire,
            None
        );
        // On time is on time, whatever the policy.
        let on_time = decide(
            &s,
            tz,
            last,
            utc("2026-06-02T06:01:00Z"),
            CatchUp::Skip,
            grace,
        );
        assert_eq!(on_time.fire, Some(utc("2026-06-02T06:00:00Z")));
        assert_eq!(
            CatchUp::parse("within:6h"),
            Some(CatchUp::Within(Duration::hours(6)))
        );
        assert_eq!(CatchUp::parse("sometimes"), None);
    }
}
