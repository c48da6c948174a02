//! The runtime's clock: core time (`hfm_core::Instant`) as nanoseconds since the clock was
//! made, and the wall-clock time at that origin (for the mtimes core writes).

use std::time::{SystemTime, UNIX_EPOCH};

use hfm_core::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: std::time::Instant,
    wall_ms_at_origin: i64,
}

impl Clock {
    pub fn start() -> Self {
        let wall_ms_at_origin = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        Clock { origin: std::time::Instant::now(), wall_ms_at_origin }
    }

    pub fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Wall-clock milliseconds since the epoch at `Instant::ZERO` (`MountConfig::wall_ms_at_zero`).
    pub fn wall_ms_at_zero(&self) -> i64 {
        self.wall_ms_at_origin
    }

    /// How long from now until `at` (zero if it has passed).
    pub fn until(&self, at: Instant) -> std::time::Duration {
        at.saturating_duration_since(self.now())
    }
}
