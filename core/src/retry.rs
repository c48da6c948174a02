//! Retry policy for failed effects: which failures are retried, how often, and after how long.

use std::time::Duration;

use crate::effect::{EffectFailure, FailureKind};

/// Attempts per effect, the first included.
pub const MAX_ATTEMPTS: u32 = 4;

/// Delay before attempt `attempt + 1` (attempt counts from 1), or `None` to give up.
pub fn next_delay(failure: &EffectFailure, attempt: u32) -> Option<Duration> {
    if failure.kind != FailureKind::Transient || attempt >= MAX_ATTEMPTS {
        return None;
    }
    let backoff = Duration::from_millis(200) * 2u32.pow(attempt - 1);
    Some(failure.retry_after.map_or(backoff, |server| server.max(backoff)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_retried_with_backoff() {
        let f = EffectFailure::from_status(503, "x");
        assert_eq!(next_delay(&f, 1), Some(Duration::from_millis(200)));
        assert_eq!(next_delay(&f, 3), Some(Duration::from_millis(800)));
        assert_eq!(next_delay(&f, MAX_ATTEMPTS), None);
        let mut r = EffectFailure::from_status(429, "x");
        r.retry_after = Some(Duration::from_secs(3));
        assert_eq!(next_delay(&r, 1), Some(Duration::from_secs(3)));
        assert_eq!(next_delay(&EffectFailure::from_status(404, "x"), 1), None);
        assert_eq!(next_delay(&EffectFailure::from_status(401, "x"), 1), None);
    }
}
