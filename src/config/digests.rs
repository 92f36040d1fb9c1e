//! `[[digest]]`: schedules, what goes in, templates and catch-up, with their validation.

use super::*;

/// What a digest carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Include {
    /// New essays.
    pub essays: bool,
    /// New reader replies.
    pub replies: bool,
}

/// One `[[digest]]`.
#[derive(Debug, Clone)]
pub struct Digest {
    /// Unique digest name (also used in List-Id and file names).
    pub name: String,
    /// Human title; defaults to the name.
    pub title: String,
    /// When it goes out.
    pub schedule: cron::Schedule,
    /// The schedule as written, for display.
    pub schedule_text: String,
    /// Time zone the schedule is read in.
    pub timezone: Tz,
    /// Subject line, a Tera template string.
    pub subject: String,
    /// Template set name: a folder in the templates directory.
    pub template: String,
    /// Essays, replies or both.
    pub include: Include,
    /// Names of the sources it draws from.
    pub sources: Vec<String>,
    /// Send nothing when there is nothing new.
    pub skip_if_empty: bool,
    /// At most this many essays per edition (newest first).
    pub max_essays: Option<usize>,
    /// How far back the first edition reaches.
    pub first_edition_lookback: chrono::Duration,
    /// What `gazette run` does about ticks missed while it was down.
    pub catch_up: crate::schedule::CatchUp,
    /// Fire at the schedule's wall-clock time in each subscriber's own time zone.
    pub local_time: bool,
    /// Which new replies each reader's copy carries.
    pub replies: Replies,
    /// Readers who have not chosen follow every essay a copy of this digest sends them.
    pub auto_follow: bool,
    /// Its editions are public at `/archive/<name>/` on the web endpoint.
    pub archive: bool,
}

/// Which replies a reader's copy carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replies {
    /// Every new reply (the same for everyone).
    #[default]
    All,
    /// Only new replies under the essays the reader follows.
    Followed,
}

/// Parses a cron schedule: standard 5-field cron (weekday 0-7, Sunday = 0 or 7), the
/// cron crate's 6/7-field form with seconds, or `@hourly`/`@daily`/`@weekly`/….
pub fn parse_schedule(text: &str) -> Result<cron::Schedule, String> {
    let text = text.trim();
    let fields: Vec<&str> = text.split_whitespace().collect();
    let expr = if fields.len() == 5 {
        // The cron crate numbers weekdays 1-7 from Sunday; standard cron numbers them 0-7
        // from Sunday. Names mean the same in both, so translate numbers to names.
        format!(
            "0 {} {} {} {} {}",
            fields[0],
            fields[1],
            fields[2],
            fields[3],
            weekday_names(fields[4])
        )
    } else {
        text.to_owned()
    };
    // The cron crate repeats the expression with a caret; keep only its explanation.
    cron::Schedule::from_str(&expr).map_err(|e| {
        let text = e.to_string();
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty() && l.trim() != "^")
            .unwrap_or("not a cron expression")
            .trim()
            .to_owned()
    })
}

fn weekday_names(field: &str) -> String {
    const NAMES: [&str; 8] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let mut out = String::new();
    let mut digits = String::new();
    let mut after_slash = false;
    let flush = |digits: &mut String, out: &mut String, after_slash: bool| {
        if digits.is_empty() {
            return;
        }
        match digits.parse::<usize>() {
            Ok(n) if !after_slash && n < NAMES.len() => out.push_str(NAMES[n]),
            _ => out.push_str(digits),
        }
        digits.clear();
    };
    for c in field.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out, after_slash);
            after_slash = c == '/';
            out.push(c);
        }
    }
    flush(&mut digits, &mut out, after_slash);
    out
}

impl Validator<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn digest(
        &mut self,
        d: &RawDigest,
        name: &S,
        schedule: &S,
        key: &str,
        site_tz: Tz,
        sources: &[String],
        templates_dir: &Path,
    ) -> Option<Digest> {
        let name_span = name;
        let name = name.get_ref().trim().to_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.at_span(
                name_span,
                format!("`{key}.name`: \"{}\" must be non-empty and use only letters, digits, '-' and '_' (it appears in List-Id and file names)", name_span.get_ref()),
            );
        }
        let schedule_text = schedule.get_ref().clone();
        let schedule = match parse_schedule(schedule.get_ref()) {
            Ok(s) => Some(s),
            Err(e) => {
                self.at_span(
                    schedule,
                    format!("`{key}.schedule`: invalid cron expression \"{}\": {e}; use 5 fields (min hour day month weekday), 6-7 fields with seconds, or @hourly/@daily/@weekly", schedule.get_ref()),
                );
                None
            }
        };
        let timezone = match &d.timezone {
            Some(tz) => self.timezone(tz, &format!("{key}.timezone")),
            None => Some(site_tz),
        };
        let template = d
            .template
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_else(|| "default".into());
        let set_dir = templates_dir.join(&template);
        let missing: Vec<&str> = ["digest.html", "digest.txt"]
            .into_iter()
            .filter(|f| !set_dir.join(f).is_file())
            .collect();
        if templates_dir.is_dir() && !missing.is_empty() {
            let offset = d
                .template
                .as_ref()
                .map(|t| t.span().start)
                .unwrap_or(name_span.span().start);
            self.at(
                offset,
                format!(
                    "`{key}.template`: template set \"{template}\" has no {} (looked in {})",
                    missing.join(" or "),
                    set_dir.display()
                ),
            );
        }
        let include = match d.include.as_ref().map(|i| i.get_ref().as_str()) {
            None | Some("both") => Include {
                essays: true,
                replies: true,
            },
            Some("essays") => Include {
                essays: true,
                replies: false,
            },
            Some("replies") => Include {
                essays: false,
                replies: true,
            },
            Some(other) => {
                let other = other.to_owned();
                if let Some(i) = &d.include {
                    self.at_span(
                        i,
                        format!("`{key}.include`: \"{other}\" is not one of \"essays\", \"replies\", \"both\""),
                    );
                }
                Include {
                    essays: true,
                    replies: true,
                }
            }
        };
        let digest_sources = match &d.sources {
            None => sources.to_vec(),
            Some(list) => {
                for s in list.get_ref() {
                    if !sources.iter().any(|k| k == s.get_ref()) {
                        self.at_span(
                            s,
                            format!(
                                "`{key}.sources`: unknown source \"{}\"; defined sources: {}",
                                s.get_ref(),
                                quoted_list(sources)
                            ),
                        );
                    }
                }
                list.get_ref().iter().map(|s| s.get_ref().clone()).collect()
            }
        };
        let max_essays = match &d.max_essays {
            // A reader skims twenty; a flood of hundreds would bury them (and the relay).
            None => Some(20),
            Some(m) if *m.get_ref() >= 1 => usize::try_from(*m.get_ref()).ok(),
            Some(m) => {
                self.at_span(
                    m,
                    format!(
                        "`{key}.max_essays` must be at least 1 (leave it out for the default, 20)"
                    ),
                );
                None
            }
        };
        let lookback = match &d.first_edition_lookback {
            None => Some(chrono::Duration::days(7)),
            Some(l) => match humantime::parse_duration(l.get_ref())
                .ok()
                .and_then(|d| chrono::Duration::from_std(d).ok())
            {
                Some(d) => Some(d),
                None => {
                    self.at_span(
                        l,
                        format!("`{key}.first_edition_lookback`: \"{}\" is not a duration; write e.g. \"7d\", \"36h\" or \"2weeks\"", l.get_ref()),
                    );
                    None
                }
            },
        };
        let subject = d
            .subject
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| "{{ site.name }}: {{ digest.title }}".into());
        let catch_up = match &d.catch_up {
            None => Some(crate::schedule::CatchUp::Once),
            Some(c) => crate::schedule::CatchUp::parse(c.get_ref()).or_else(|| {
                self.at_span(
                    c,
                    format!("`{key}.catch_up`: \"{}\" is not a catch-up policy; write \"skip\", \"once\" or \"within:<duration>\" (e.g. \"within:6h\")", c.get_ref()),
                );
                None
            }),
        };
        let replies = match d.replies.as_ref().map(|r| r.get_ref().trim()) {
            None | Some("all") => Some(Replies::All),
            Some("followed") => Some(Replies::Followed),
            Some(other) => {
                if let Some(r) = &d.replies {
                    self.at_span(
                        r,
                        format!("`{key}.replies`: \"{other}\" is not a choice; write \"all\" (every new reply) or \"followed\" (only under the essays each reader follows)"),
                    );
                }
                None
            }
        };
        Some(Digest {
            title: d
                .title
                .as_ref()
                .map(|t| plain_line(t.get_ref()))
                .unwrap_or_else(|| name.clone()),
            name,
            schedule: schedule?,
            schedule_text,
            timezone: timezone?,
            subject,
            template,
            include,
            sources: digest_sources,
            skip_if_empty: d.skip_if_empty.unwrap_or(true),
            max_essays,
            first_edition_lookback: lookback?,
            catch_up: catch_up?,
            local_time: d.local_time.unwrap_or(false),
            replies: replies?,
            auto_follow: d.auto_follow.unwrap_or(false),
            archive: d.archive.as_ref().is_some_and(|a| *a.get_ref()),
        })
    }
}
