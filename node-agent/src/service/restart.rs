//! The restart budget of one instance, as a pure state machine: each crash
//! of an instance that was healthy is fed in with the instant it happened,
//! and the answer is to restart it after a delay (doubling from
//! `restart.delay` to `restart.max_delay`) or to give up once
//! `restart.attempts` restarts fall within `restart.interval`. The runner
//! owns the timer and the process; this owns the arithmetic.

use reef_proto::manifest::RestartPolicy;
use reef_proto::units::format_duration;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What to do about a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OnCrash {
    /// Start the process again after this delay.
    Restart(Duration),
    /// The budget is used up: the instance fails with this reason.
    GiveUp(String),
}

/// The crashes of one instance within the policy's window.
pub(crate) struct RestartBudget {
    attempts: u32,
    window: Duration,
    first_delay: Duration,
    max_delay: Duration,
    delay: Duration,
    restarts: VecDeque<Instant>,
}

impl RestartBudget {
    pub(crate) fn new(policy: &RestartPolicy) -> Self {
        let first_delay = Duration::from_millis(policy.delay_ms);
        Self {
            attempts: policy.attempts,
            window: Duration::from_millis(policy.interval_ms),
            first_delay,
            max_delay: Duration::from_millis(policy.max_delay_ms).max(first_delay),
            delay: first_delay,
            restarts: VecDeque::new(),
        }
    }

    /// A crash at `now` with exit code `code`. Once every earlier restart
    /// has left the window, the delay starts from the first one again.
    pub(crate) fn on_crash(&mut self, now: Instant, code: i32) -> OnCrash {
        while self
            .restarts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.window)
        {
            self.restarts.pop_front();
        }
        if self.restarts.is_empty() {
            self.delay = self.first_delay;
        }
        if self.restarts.len() as u32 >= self.attempts {
            return OnCrash::GiveUp(format!(
                "exited with code {code}; {} restarts within {} used up",
                self.attempts,
                format_duration(self.window)
            ));
        }
        self.restarts.push_back(now);
        let delay = self.delay;
        self.delay = (self.delay * 2).min(self.max_delay);
        OnCrash::Restart(delay)
    }
}

#[cfg(test)]
#[path = "restart_tests.rs"]
mod tests;
