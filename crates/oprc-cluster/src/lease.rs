//! How long a node may trust a lease by its own clock. The database grants
//! a lease and says how much of it is left, by its clock; the node takes
//! its monotonic instant *before* asking, and trusts the lease until that
//! instant plus what was left, shrunk by the clock-drift bound and a fixed
//! margin. The database measured "left" after the request arrived, so as
//! long as the node's clock runs within the bound of the database's, the
//! local deadline passes before the database's expiry, and no other node
//! can have claimed the partition while this one still trusts it.

use std::time::{Duration, Instant};

/// The drift bound and margin (ADR 13).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trust {
    /// The largest rate difference between a node's clock and the
    /// database's, as a fraction (0.05: 5 %).
    pub drift: f64,
    /// Subtracted besides, for scheduling delays after the deadline.
    pub margin: Duration,
}

impl Default for Trust {
    fn default() -> Self {
        Self {
            drift: 0.05,
            margin: Duration::from_millis(500),
        }
    }
}

impl Trust {
    /// Until when a lease with `left` to run, asked for at `asked_at`, may
    /// be trusted; `None` if not at all.
    pub fn until(&self, asked_at: Instant, left: Duration) -> Option<Instant> {
        let drift = self.drift.clamp(0.0, 1.0);
        let shrunk = left.mul_f64(1.0 - drift).checked_sub(self.margin)?;
        (!shrunk.is_zero()).then(|| asked_at + shrunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_trusted_for_less_than_it_runs() {
        let t = Trust::default();
        let asked = Instant::now();
        let until = t.until(asked, Duration::from_secs(10)).unwrap();
        assert_eq!(until - asked, Duration::from_millis(9_000));
        assert!(t.until(asked, Duration::from_millis(500)).is_none());
        assert!(t.until(asked, Duration::ZERO).is_none());
    }

    #[test]
    fn a_drift_out_of_range_is_clamped() {
        let t = Trust {
            drift: 3.0,
            margin: Duration::ZERO,
        };
        assert!(t.until(Instant::now(), Duration::from_secs(5)).is_none());
    }
}
