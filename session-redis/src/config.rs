//! The fred settings that bound how long a call can take when Redis is down.

use std::time::Duration;

use fred::prelude::{Builder, Config, ReconnectPolicy};

/// How long a store call may wait for Redis with [`recommended_builder`]'s
/// settings before it fails with [`Error::Backend`](session_core::Error::Backend).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// A fred [`Builder`] for `config` with the settings this crate recommends
/// for a session store: no call hangs while Redis is away, and the client
/// reconnects by itself when it returns.
///
/// - `default_command_timeout` = [`COMMAND_TIMEOUT`] (2 s): every command,
///   including one queued while fred reconnects, fails with a fred
///   `Timeout` error (an [`Error::Backend`](session_core::Error::Backend))
///   after at most this long. fred's default is no timeout at all, which is
///   what makes calls hang forever against a Redis that is down.
/// - `connection_timeout` and `internal_command_timeout` = 1 s, so one
///   connection attempt to an unreachable host does not block the router for
///   fred's default 10 s.
/// - Reconnect policy: exponential backoff from 100 ms to at most 1 s, with
///   no limit on attempts. A limited policy stops the client for good once
///   it runs out, and the store would then fail until the process restarts;
///   unlimited attempts are safe because the command timeout bounds each call.
/// - `max_command_attempts` = 3 (fred's default): a command in flight when a
///   connection drops is retried on the new connection, within the timeout.
/// - An unresponsive connection (no reply for 2 s, checked every 500 ms) is
///   closed and reconnected, so a half-open TCP connection does not linger.
///
/// fred's `fail_fast` stays on: `init()` on a Redis that is down at start-up
/// fails at once rather than waiting for it.
///
/// A call that times out may still have reached Redis: a timed-out `save`
/// can have been applied, as with any network store.
///
/// ```
/// # fn main() -> Result<(), fred::error::Error> {
/// use fred::prelude::Config;
///
/// let config = Config::from_url("redis://127.0.0.1:6379")?;
/// let pool = session_redis::recommended_builder(config).build_pool(4)?;
/// # let _ = pool;
/// # Ok(())
/// # }
/// ```
pub fn recommended_builder(config: Config) -> Builder {
    let mut builder = Builder::from_config(config);
    builder
        .with_performance_config(|performance| {
            performance.default_command_timeout = COMMAND_TIMEOUT;
        })
        .with_connection_config(|connection| {
            connection.connection_timeout = Duration::from_secs(1);
            connection.internal_command_timeout = Duration::from_secs(1);
            connection.max_command_attempts = 3;
            connection.unresponsive.max_timeout = Some(Duration::from_secs(2));
            connection.unresponsive.interval = Duration::from_millis(500);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 1_000, 2));
    builder
}
