//! `Retry-After` (RFC 9110 section 10.2.3): a downstream that answers 429 (RFC 6585) or 503
//! with it asks not to be sent requests until then. The router keeps each such answer as a
//! veto on that downstream ([`Vetoes`]), added to the attempt's exclusions, so no strategy
//! chooses it before the time is up.
//!
//! The value is either a number of seconds (`delay-seconds`) or an HTTP date; recipients must
//! accept the three date formats of RFC 9110 section 5.6.7: IMF-fixdate
//! (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37
//! GMT`) and asctime's (`Sun Nov  6 08:49:37 1994`). A date in the past asks for nothing. A
//! wait is capped at [`MAX_WAIT_MS`] (five minutes): an origin's mistaken "come back tomorrow"
//! must not take it out of the fleet for a day; after five minutes the strategy's own evidence
//! decides again.
//!
//! A veto never leaves a request without a downstream: when every downstream not already
//! excluded is vetoed, the vetoes are ignored for that attempt (an answer, even a 429, is better
//! than no attempt at all).

use crate::arm::ArmId;

/// The longest wait a `Retry-After` can impose, ms.
pub const MAX_WAIT_MS: u64 = 300_000;
/// The header's name (lowercase).
pub const HEADER: &str = "retry-after";

/// A `Retry-After` value that is neither a number of seconds nor an HTTP date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("retry-after: expected a number of seconds or an HTTP date, got {0:?}")]
pub struct InvalidRetryAfter(pub String);

/// Whether a response with `status` may carry a `Retry-After` the router honours.
pub fn applies(status: u16) -> bool {
    status == 429 || status == 503
}

/// Until when (caller's clock, ms since the Unix epoch) a downstream that sent `value` at
/// `now_ms` asks to be left alone; `now_ms` itself for a date in the past, at most
/// `now_ms + MAX_WAIT_MS`.
pub fn parse(value: &str, now_ms: u64) -> Result<u64, InvalidRetryAfter> {
    let v = value.trim();
    let bad = || InvalidRetryAfter(value.to_owned());
    let wait_ms = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Long runs of digits are a long wait: saturate rather than fail.
        v.parse::<u64>().unwrap_or(u64::MAX).saturating_mul(1_000)
    } else {
        http_date_ms(v).ok_or_else(bad)?.saturating_sub(now_ms)
    };
    Ok(now_ms.saturating_add(wait_ms.min(MAX_WAIT_MS)))
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] =
    ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// An HTTP date in any of the three formats, as ms since the Unix epoch.
fn http_date_ms(v: &str) -> Option<u64> {
    let (day_name, rest) = match v.split_once(", ") {
        Some((d, rest)) => (d, rest),
        None => return asctime_ms(v),
    };
    let parts: Vec<&str> = rest.split(' ').collect();
    match parts.as_slice() {
        // IMF-fixdate: "06 Nov 1994 08:49:37 GMT"
        [day, month, year, time, "GMT"] if DAYS.contains(&day_name) && year.len() == 4 => {
            civil_ms(number(year)?, month_number(month)?, two_digits(day)?, time)
        }
        // RFC 850: "06-Nov-94 08:49:37 GMT"; a two-digit year is the nearest century's
        // (RFC 9110: one more than 50 years ahead is the previous century), taken here as 19xx
        // above 69 and 20xx otherwise, as most implementations do.
        [date, time, "GMT"] if LONG_DAYS.contains(&day_name) => {
            let mut d = date.split('-');
            let (day, month, year) = (d.next()?, d.next()?, d.next()?);
            if d.next().is_some() || year.len() != 2 {
                return None;
            }
            let yy = number(year)?;
            let year = if yy >= 70 { 1900 + yy } else { 2000 + yy };
            civil_ms(year, month_number(month)?, two_digits(day)?, time)
        }
        _ => None,
    }
}

/// asctime: "Sun Nov  6 08:49:37 1994" (a one-digit day is padded with a space).
fn asctime_ms(v: &str) -> Option<u64> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    match parts.as_slice() {
        [day_name, month, day, time, year]
            if DAYS.contains(day_name) && (1..=2).contains(&day.len()) && year.len() == 4 =>
        {
            civil_ms(number(year)?, month_number(month)?, number(day)?, time)
        }
        _ => None,
    }
}

fn number(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

fn two_digits(s: &str) -> Option<u64> {
    (s.len() == 2).then(|| number(s)).flatten()
}

fn month_number(s: &str) -> Option<u64> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as u64 + 1)
}

/// Ms since the epoch of `year-month-day` at `hh:mm:ss` (UTC), for years from 1970.
fn civil_ms(year: u64, month: u64, day: u64, time: &str) -> Option<u64> {
    let mut t = time.split(':');
    let (h, m, s) = (two_digits(t.next()?)?, two_digits(t.next()?)?, two_digits(t.next()?)?);
    if t.next().is_some() || h > 23 || m > 59 || s > 60 || !(1970..=9999).contains(&year) {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    // Days from the civil date (Howard Hinnant's days_from_civil), shifted to start in March.
    let (y, mo) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + h * 3_600 + m * 60 + s) * 1_000)
}

/// Per downstream, until when its `Retry-After` vetoes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vetoes {
    until_ms: Vec<u64>,
}

impl Vetoes {
    /// No vetoes for a fleet of `arms` downstreams.
    pub fn new(arms: usize) -> Self {
        Vetoes { until_ms: vec![0; arms] }
    }

    /// `arm` asked to be left alone until `until_ms` (a later request wins over an earlier one).
    pub fn note(&mut self, arm: ArmId, until_ms: u64) {
        if let Some(u) = self.until_ms.get_mut(arm) {
            *u = (*u).max(until_ms);
        }
    }

    /// Whether `arm` is vetoed at `now_ms`.
    pub fn vetoed(&self, arm: ArmId, now_ms: u64) -> bool {
        self.until_ms.get(arm).is_some_and(|u| now_ms < *u)
    }

    /// `excluded` plus every downstream vetoed at `now_ms`, unless that excludes the whole
    /// fleet; then `excluded` alone.
    pub fn exclusions(&self, excluded: &[ArmId], now_ms: u64) -> Vec<ArmId> {
        let mut all = excluded.to_vec();
        for arm in 0..self.until_ms.len() {
            if self.vetoed(arm, now_ms) && !all.contains(&arm) {
                all.push(arm);
            }
        }
        if all.len() >= self.until_ms.len() { excluded.to_vec() } else { all }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 1994-11-06T08:49:37Z, RFC 9110's example date.
    const EXAMPLE_MS: u64 = 784_111_777_000;

    #[test]
    fn seconds_and_the_three_date_formats() {
        assert_eq!(parse("120", 1_000), Ok(121_000));
        assert_eq!(parse(" 0 ", 1_000), Ok(1_000));
        let before = EXAMPLE_MS - 30_000;
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse(date, before), Ok(EXAMPLE_MS), "{date}");
            assert_eq!(parse(date, EXAMPLE_MS + 5), Ok(EXAMPLE_MS + 5), "{date} is past");
        }
        assert_eq!(http_date_ms("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date_ms("Tue, 29 Feb 2028 23:59:59 GMT"), Some(1_835_481_599_000));
        assert_eq!(http_date_ms("Tuesday, 01-Dec-26 00:00:00 GMT"), Some(1_796_083_200_000));
    }

    #[test]
    fn a_long_wait_is_capped_and_nonsense_is_refused() {
        assert_eq!(parse("86400", 0), Ok(MAX_WAIT_MS));
        assert_eq!(parse("99999999999999999999999", 7), Ok(7 + MAX_WAIT_MS));
        assert_eq!(parse("Fri, 31 Dec 9999 23:59:59 GMT", 0), Ok(MAX_WAIT_MS));
        for bad in [
            "",
            "-5",
            "1.5",
            "soon",
            "Sun, 31 Feb 2026 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
        ] {
            let err = parse(bad, 0).unwrap_err();
            assert!(err.to_string().starts_with("retry-after: expected"), "{bad:?}: {err}");
        }
        assert!(applies(429) && applies(503) && !applies(500) && !applies(200));
    }

    #[test]
    fn vetoes_exclude_until_their_time_but_never_the_whole_fleet() {
        let mut v = Vetoes::new(3);
        v.note(1, 5_000);
        v.note(1, 2_000);
        assert!(v.vetoed(1, 4_999) && !v.vetoed(1, 5_000), "the later time wins");
        assert_eq!(v.exclusions(&[0], 100), [0, 1]);
        assert_eq!(v.exclusions(&[], 6_000), Vec::<ArmId>::new());
        v.note(2, 5_000);
        assert_eq!(v.exclusions(&[0], 100), [0], "every other host vetoed: ignored");
        v.note(7, 9_000);
        assert!(!v.vetoed(7, 0), "unknown arms are ignored");
    }

    proptest! {
        /// Any header value: no panic; a parsed value is a time from now to the cap.
        #[test]
        fn parsing_never_panics_and_stays_within_the_cap(value in "\\PC{0,40}", now in 0u64..4_000_000_000_000) {
            match parse(&value, now) {
                Ok(until) => prop_assert!(until >= now && until <= now + MAX_WAIT_MS),
                Err(e) => prop_assert_eq!(e.0, value),
            }
        }

        /// Every valid IMF-fixdate round-trips through the parser to its own instant.
        #[test]
        fn imf_fixdates_parse_to_their_instant(secs in 0u64..253_402_300_799) {
            let days = secs / 86_400;
            let (y, m, d) = civil_from_days(days);
            let weekday = DAYS[((days + 3) % 7) as usize];
            let t = secs % 86_400;
            let date = format!(
                "{weekday}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
                MONTHS[(m - 1) as usize],
                t / 3_600,
                t / 60 % 60,
                t % 60
            );
            prop_assert_eq!(http_date_ms(&date), Some(secs * 1_000), "{}", date);
        }

        /// Delays in seconds below the cap are exact.
        #[test]
        fn seconds_are_exact_below_the_cap(s in 0u64..300, now in 0u64..1u64 << 50) {
            prop_assert_eq!(parse(&s.to_string(), now), Ok(now + s * 1_000));
        }
    }

    /// The inverse of days_from_civil (Hinnant's civil_from_days), for the round trip.
    fn civil_from_days(days: u64) -> (u64, u64, u64) {
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + u64::from(m <= 2);
        (y, m, d)
    }
}
