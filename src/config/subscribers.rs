//! `[[subscriber]]`: the subscribers listed in config.toml, with their validation.

use super::*;

/// One `[[subscriber]]`.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Normalised address (domain lower-cased).
    pub email: Address,
    /// Display name.
    pub name: Option<String>,
    /// Digests they receive.
    pub digests: Vec<String>,
    /// Their time zone, if not the digest's.
    pub timezone: Option<Tz>,
}

impl Validator<'_> {
    pub(super) fn subscriber(
        &mut self,
        s: &RawSubscriber,
        email_span: &S,
        key: &str,
        digests: &[String],
    ) -> Option<Subscriber> {
        let email = match parse_address(email_span.get_ref()) {
            Ok(a) => Some(a),
            Err(e) => {
                self.at_span(
                    email_span,
                    format!(
                        "`{key}.email`: \"{}\" is not a valid e-mail address ({e})",
                        email_span.get_ref()
                    ),
                );
                None
            }
        };
        let timezone = s
            .timezone
            .as_ref()
            .map(|tz| self.timezone(tz, &format!("{key}.timezone")));
        let wanted = match &s.digests {
            None => digests.to_vec(),
            Some(list) => {
                for d in list.get_ref() {
                    if !digests.iter().any(|k| k == d.get_ref()) {
                        self.at_span(
                            d,
                            format!(
                                "`{key}.digests`: unknown digest \"{}\"; defined digests: {}",
                                d.get_ref(),
                                quoted_list(digests)
                            ),
                        );
                    }
                }
                list.get_ref().iter().map(|d| d.get_ref().clone()).collect()
            }
        };
        // Some(None): a time zone was given but is invalid (already reported).
        let timezone = match timezone {
            Some(None) => return None,
            Some(tz) => tz,
            None => None,
        };
        Some(Subscriber {
            email: email?,
            name: s
                .name
                .as_ref()
                .map(|n| plain_line(n.get_ref()))
                .filter(|n| !n.is_empty()),
            digests: wanted,
            timezone,
        })
    }
}
