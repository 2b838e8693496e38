//! Per-token limits ([`Quota`], with per-token overrides in the tokens
//! file) and what each token uses: jobs in flight, jobs and bytes
//! stored, compute over the last hour.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::{Error, QuotaKind};

/// What one token may use at once; [`Config::quota`](super::Config::quota)
/// holds the defaults, the tokens file may override each per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Jobs being uploaded, queued or running at once (default 4).
    pub concurrent_jobs: usize,
    /// Jobs kept at once, in flight or finished (default 64): one token's
    /// many tiny jobs cannot fill the server's `max_jobs`.
    pub stored_jobs: usize,
    /// Bytes held at once: uploads and payloads in flight plus stored
    /// results (default 2 GiB).
    pub stored_bytes: usize,
    /// Estimated compute admitted over the last hour, in cost units
    /// (`he_filter::Cost`, about 6 core-seconds each; default 4000, about
    /// 6.7 core-hours: five 48 MP photos with a 7x7 filter at 3072 bits).
    pub compute_per_hour: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            concurrent_jobs: 4,
            stored_jobs: 64,
            stored_bytes: 2 << 30,
            compute_per_hour: 4_000,
        }
    }
}

/// Per-token changes to the default [`Quota`], as the tokens file holds
/// them (`"quota": {"concurrent_jobs": 2}`); absent fields keep the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverrides {
    /// See [`Quota::concurrent_jobs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_jobs: Option<usize>,
    /// See [`Quota::stored_jobs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_jobs: Option<usize>,
    /// See [`Quota::stored_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<usize>,
    /// See [`Quota::compute_per_hour`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_per_hour: Option<u64>,
}

impl QuotaOverrides {
    /// Whether nothing is overridden.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == QuotaOverrides::default()
    }

    /// `defaults` with these overrides.
    #[must_use]
    pub fn apply(&self, defaults: Quota) -> Quota {
        Quota {
            concurrent_jobs: self.concurrent_jobs.unwrap_or(defaults.concurrent_jobs),
            stored_jobs: self.stored_jobs.unwrap_or(defaults.stored_jobs),
            stored_bytes: self.stored_bytes.unwrap_or(defaults.stored_bytes),
            compute_per_hour: self.compute_per_hour.unwrap_or(defaults.compute_per_hour),
        }
    }
}

/// The window compute is counted over.
const HOUR: Duration = Duration::from_secs(3600);

/// What one token uses now.
#[derive(Debug, Default)]
pub(super) struct Usage {
    /// Jobs admitted and not finished (from the upload on).
    pub(super) in_flight: usize,
    /// Jobs in the store (in flight or finished).
    pub(super) jobs: usize,
    /// Bytes held: reserved uploads, payloads in flight, results.
    pub(super) bytes: usize,
    /// Compute admitted, oldest first: when, and how many units.
    compute: VecDeque<(Instant, u64)>,
}

fn quota_error(kind: QuotaKind, retry_after: u64, message: String) -> Error {
    Error::Quota {
        kind,
        retry_after,
        message,
    }
}

impl Usage {
    /// Whether nothing is held (the entry can go).
    pub(super) fn is_idle(&self, now: Instant) -> bool {
        self.in_flight == 0
            && self.jobs == 0
            && self.bytes == 0
            && self
                .compute
                .iter()
                .all(|(t, _)| now.duration_since(*t) >= HOUR)
    }

    /// The usage of a token whose compute over the last hour is
    /// `entries` (when, how many units), oldest first: how a shared
    /// store's answer is checked by the same rule.
    pub(super) fn with_compute(entries: impl IntoIterator<Item = (Instant, u64)>) -> Usage {
        let mut compute: Vec<(Instant, u64)> = entries.into_iter().collect();
        compute.sort_by_key(|e| e.0);
        Usage {
            compute: compute.into(),
            ..Usage::default()
        }
    }

    /// Refuses a new job of `bytes` beyond `quota`.
    pub(super) fn check_new_job(&self, quota: &Quota, bytes: usize) -> Result<(), Error> {
        self.check_in_flight(quota)?;
        self.check_stored_jobs(quota)?;
        self.check_bytes(quota, bytes)
    }

    /// Refuses one more job stored beyond `quota`.
    pub(super) fn check_stored_jobs(&self, quota: &Quota) -> Result<(), Error> {
        if self.jobs >= quota.stored_jobs {
            return Err(quota_error(
                QuotaKind::StoredJobs,
                30,
                format!(
                    "this token has {} jobs stored, at most {}; fetch and delete results",
                    self.jobs, quota.stored_jobs
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a new upload (a job's or a tile's) beyond the jobs in flight.
    pub(super) fn check_in_flight(&self, quota: &Quota) -> Result<(), Error> {
        if self.in_flight >= quota.concurrent_jobs {
            return Err(quota_error(
                QuotaKind::ConcurrentJobs,
                5,
                format!(
                    "this token has {} jobs in flight, at most {}; wait for one to finish",
                    self.in_flight, quota.concurrent_jobs
                ),
            ));
        }
        Ok(())
    }

    /// Refuses an upload of `bytes` beyond the bytes held.
    pub(super) fn check_bytes(&self, quota: &Quota, bytes: usize) -> Result<(), Error> {
        if self.bytes.saturating_add(bytes) > quota.stored_bytes {
            return Err(quota_error(
                QuotaKind::StoredBytes,
                30,
                format!(
                    "this token holds {} bytes and this upload may take {bytes}, at most {} in all; \
                     fetch and delete results",
                    self.bytes, quota.stored_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Admits `units` of compute if the last hour's total allows it.
    pub(super) fn charge_compute(
        &mut self,
        quota: &Quota,
        units: u64,
        now: Instant,
    ) -> Result<(), Error> {
        while self
            .compute
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= HOUR)
        {
            self.compute.pop_front();
        }
        if units > quota.compute_per_hour {
            // No wait makes room for it: a 429 would be retried forever.
            return Err(Error::OverBudget {
                estimate: units,
                budget: quota.compute_per_hour,
                hint: format!(
                    "this job alone is over this token's compute per hour ({} units): \
                     split the image or ask for a larger quota",
                    quota.compute_per_hour
                ),
            });
        }
        let used: u64 = self.compute.iter().map(|(_, u)| u).sum();
        if used.saturating_add(units) > quota.compute_per_hour {
            // Retry once enough of the window has passed for this job.
            let mut freed = quota.compute_per_hour.saturating_sub(used);
            let mut wait = HOUR;
            for (t, u) in &self.compute {
                freed = freed.saturating_add(*u);
                if freed >= units {
                    wait = HOUR.saturating_sub(now.duration_since(*t));
                    break;
                }
            }
            return Err(quota_error(
                QuotaKind::ComputePerHour,
                wait.as_secs().max(1),
                format!(
                    "this job is estimated at {units} units and this token used {used} of its \
                     {} units in the last hour",
                    quota.compute_per_hour
                ),
            ));
        }
        self.compute.push_back((now, units));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_quota_refuses_with_its_kind() {
        let q = Quota {
            concurrent_jobs: 1,
            stored_jobs: 2,
            stored_bytes: 100,
            compute_per_hour: 10,
        };
        let kind = |r: Result<(), Error>| match r {
            Err(Error::Quota { kind, .. }) => Some(kind),
            _ => None,
        };
        let mut u = Usage::default();
        assert_eq!(kind(u.check_new_job(&q, 50)), None);
        assert_eq!(kind(u.check_new_job(&q, 101)), Some(QuotaKind::StoredBytes));
        u.in_flight = 1;
        assert_eq!(
            kind(u.check_new_job(&q, 1)),
            Some(QuotaKind::ConcurrentJobs)
        );
        u.in_flight = 0;
        u.jobs = 2;
        assert_eq!(kind(u.check_new_job(&q, 1)), Some(QuotaKind::StoredJobs));
        let now = Instant::now();
        u.charge_compute(&q, 6, now).unwrap();
        let e = u.charge_compute(&q, 6, now).unwrap_err();
        assert!(matches!(
            e,
            Error::Quota { kind: QuotaKind::ComputePerHour, retry_after, .. } if retry_after > 3000
        ));
        u.charge_compute(&q, 4, now).unwrap();
        // An hour later the window is empty again.
        u.charge_compute(&q, 10, now + HOUR).unwrap();
        // A job larger than the whole hour can never fit: 422, not a 429
        // that a client would retry every hour forever.
        let mut fresh = Usage::default();
        assert!(matches!(
            fresh.charge_compute(&q, 11, now),
            Err(Error::OverBudget {
                estimate: 11,
                budget: 10,
                ..
            })
        ));
        let o = QuotaOverrides {
            stored_jobs: Some(7),
            ..QuotaOverrides::default()
        };
        assert_eq!(o.apply(q).stored_jobs, 7);
        assert_eq!(o.apply(q).stored_bytes, 100);
    }
}
