//! Retry policy for failed effects: which failures are retried, how often, and after how long.
//! Backoff doubles from 200 ms with up to 25% jitter drawn from core's seeded generator, so
//! clients that failed together do not retry together, and a seed replays exactly.

use std::time::Duration;

use crate::effect::{EffectFailure, FailureKind};
use crate::rng::Rng;

/// Attempts per effect, the first included.
pub const MAX_ATTEMPTS: u32 = 4;
const BASE: Duration = Duration::from_millis(200);

/// Delay before attempt `attempt + 1` (attempt counts from 1), or `None` to give up.
pub fn next_delay(failure: &EffectFailure, attempt: u32, rng: &mut Rng) -> Option<Duration> {
    if failure.kind != FailureKind::Transient || attempt >= MAX_ATTEMPTS {
        return None;
    }
    let backoff = BASE * 2u32.pow(attempt - 1);
    let jitter = Duration::from_nanos(rng.below(backoff.as_nanos() as u64 / 4));
    let ours = backoff + jitter;
    Some(failure.retry_after.map_or(ours, |server| server.max(ours)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_retried_with_jittered_backoff() {
        let mut rng = Rng::new(1);
        let f = EffectFailure::from_status(503, "x");
        let d1 = next_delay(&f, 1, &mut rng).unwrap();
        assert!(d1 >= Duration::from_millis(200) && d1 < Duration::from_millis(250), "{d1:?}");
        let d3 = next_delay(&f, 3, &mut rng).unwrap();
        assert!(d3 >= Duration::from_millis(800) && d3 < Duration::from_millis(1000), "{d3:?}");
        assert_eq!(next_delay(&f, MAX_ATTEMPTS, &mut rng), None);
        let mut r = EffectFailure::from_status(429, "x");
        r.retry_after = Some(Duration::from_secs(3));
        assert_eq!(next_delay(&r, 1, &mut rng), Some(Duration::from_secs(3)));
        assert_eq!(next_delay(&EffectFailure::from_status(404, "x"), 1, &mut rng), None);
        assert_eq!(next_delay(&EffectFailure::from_status(401, "x"), 1, &mut rng), None);
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        assert_eq!(next_delay(&f, 2, &mut a), next_delay(&f, 2, &mut b));
    }
}
