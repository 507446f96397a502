//! Usage periods of a key with a `reset` term: the key's usage returns to 0 at each boundary
//! (UTC), and the usage of each closed period is kept (rule R40 in docs/rules.md).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, Duration, Month, OffsetDateTime, Time};

/// How often a key's usage returns to 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// At 00:00 UTC every day.
    Daily,
    /// At 00:00 UTC every Monday (ISO 8601 weeks).
    Weekly,
    /// At 00:00 UTC on the first of every month.
    Monthly,
    /// At 00:00 UTC on the first of January.
    Yearly,
}

impl Period {
    /// The start (Unix seconds) of the period that holds `unix_secs`.
    pub fn start_of(self, unix_secs: i64) -> i64 {
        let day = date_of(unix_secs);
        let first = match self {
            Period::Daily => day,
            Period::Weekly => {
                day - Duration::days(i64::from(day.weekday().number_days_from_monday()))
            }
            Period::Monthly => day.replace_day(1).expect("day 1 exists"),
            Period::Yearly => {
                Date::from_calendar_date(day.year(), Month::January, 1).expect("January 1 exists")
            }
        };
        midnight(first)
    }

    /// The start (Unix seconds) of the period after the one starting at `start`.
    pub fn next_after(self, start: i64) -> i64 {
        let day = date_of(start);
        let next = match self {
            Period::Daily => day + Duration::days(1),
            Period::Weekly => day + Duration::days(7),
            Period::Monthly => {
                let (year, month) = match day.month() {
                    Month::December => (day.year() + 1, Month::January),
                    m => (day.year(), m.next()),
                };
                Date::from_calendar_date(year, month, 1).expect("day 1 exists")
            }
            Period::Yearly => Date::from_calendar_date(day.year() + 1, Month::January, 1)
                .expect("January 1 exists"),
        };
        midnight(next)
    }

    /// The key JSON and CLI word for this period.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The UTC date of a Unix second (clamped into the range `time` represents).
fn date_of(unix_secs: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(unix_secs)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .date()
}

/// 00:00 UTC of `day`, in Unix seconds.
fn midnight(day: Date) -> i64 {
    day.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn at(t: OffsetDateTime) -> i64 {
        t.unix_timestamp()
    }

    /// Each period's start and next start, across month, year and leap-day edges.
    #[test]
    fn period_boundaries_are_utc_midnights() {
        let cases = [
            (
                Period::Daily,
                datetime!(2026-12-03 22:57:42 UTC),
                datetime!(2026-12-03 0:00 UTC),
                datetime!(2026-12-04 0:00 UTC),
            ),
            (
                Period::Daily,
                datetime!(2026-12-31 23:59:59 UTC),
                datetime!(2026-12-31 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC),
            ),
            (
                Period::Daily,
                datetime!(2027-01-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC),
                datetime!(2027-01-02 0:00 UTC),
            ),
            // 2026-12-03 is a Thursday; its week started on Monday 2026-11-30.
            (
                Period::Weekly,
                datetime!(2026-12-03 12:00 UTC),
                datetime!(2026-11-30 0:00 UTC),
                datetime!(2026-12-07 0:00 UTC),
            ),
            (
                Period::Weekly,
                datetime!(2026-11-30 0:00 UTC),
                datetime!(2026-11-30 0:00 UTC),
                datetime!(2026-12-07 0:00 UTC),
            ),
            (
                Period::Weekly,
                datetime!(2026-11-29 23:59:59 UTC),
                datetime!(2026-11-23 0:00 UTC),
                datetime!(2026-11-30 0:00 UTC),
            ),
            (
                Period::Monthly,
                datetime!(2026-12-03 12:00 UTC),
                datetime!(2026-12-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC),
            ),
            (
                Period::Monthly,
                datetime!(2028-02-29 23:00 UTC),
                datetime!(2028-02-01 0:00 UTC),
                datetime!(2028-03-01 0:00 UTC),
            ),
            (
                Period::Yearly,
                datetime!(2026-12-03 12:00 UTC),
                datetime!(2026-01-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC),
            ),
            (
                Period::Yearly,
                datetime!(2027-01-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC),
                datetime!(2028-01-01 0:00 UTC),
            ),
        ];
        for (period, now, start, next) in cases {
            let got = period.start_of(at(now));
            assert_eq!(got, at(start), "{period} start of {now}");
            assert_eq!(period.next_after(got), at(next), "{period} after {start}");
        }
        let monday = date_of(Period::Weekly.start_of(at(datetime!(2026-12-06 12:00 UTC))));
        assert_eq!(monday.weekday(), time::Weekday::Monday);
    }

    #[test]
    fn periods_read_and_write_their_words() {
        for period in [
            Period::Daily,
            Period::Weekly,
            Period::Monthly,
            Period::Yearly,
        ] {
            let json = serde_json::to_string(&period).unwrap();
            assert_eq!(json, format!("\"{period}\""));
            assert_eq!(serde_json::from_str::<Period>(&json).unwrap(), period);
        }
        let bad = serde_json::from_str::<Period>("\"hourly\"")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("unknown variant `hourly`"), "{bad}");
    }
}
