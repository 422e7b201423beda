//! A Redis that goes away gives `Error::Backend` within the documented bound
//! instead of hanging, and the store recovers when Redis comes back.
//!
//! The test runs a redis-server of its own on a free loopback port (never
//! the shared 6379), stops it and starts it again on the same port.

mod common;

use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration as StdDuration, Instant},
};

use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    Record, SessionStore,
};
use session_redis::{RedisStore, COMMAND_TIMEOUT};

/// Slack on top of [`COMMAND_TIMEOUT`] for a loaded, shared machine: the
/// check is that calls do not hang, not how fast they fail.
const SLACK: StdDuration = StdDuration::from_secs(10);

/// A redis-server child process, killed when dropped.
struct OwnRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("pick a free loopback port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("session-redis-fault-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the redis-server directory");
        let mut redis = Self {
            port,
            dir,
            child: None,
        };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it accepts
    /// connections.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + StdDuration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on 127.0.0.1:{}",
                self.port
            );
            std::thread::sleep(StdDuration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn record() -> Record {
    let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    record.data.insert("k".into(), json!("v"));
    record
}

async fn must_fail_as_backend<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = session_core::Result<T>>,
) {
    let started = Instant::now();
    match tokio::time::timeout(COMMAND_TIMEOUT + SLACK, call).await {
        Err(_) => panic!(
            "{what} against a stopped Redis still hangs after {:?}",
            started.elapsed()
        ),
        Ok(Ok(value)) => panic!("{what} against a stopped Redis succeeded: {value:?}"),
        Ok(Err(error)) => {
            assert!(
                error.is_backend(),
                "{what}: expected Error::Backend, got {error:?}"
            );
            let source = std::error::Error::source(&error).expect("the fred error is the source");
            assert!(
                source
                    .downcast_ref::<session_redis::fred::error::Error>()
                    .is_some(),
                "{what}: the source is not a fred error: {source:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_fails_in_bounded_time_and_the_store_recovers() {
    let mut redis = OwnRedis::start();
    let pool = common::connect(&redis.url()).await;
    let store = RedisStore::new(pool).with_key_prefix(common::unique_prefix("fault"));

    let mut before = record();
    store
        .create(&mut before)
        .await
        .expect("create while Redis is up");
    assert_eq!(
        store.load(&before.id).await.expect("load"),
        Some(before.clone())
    );

    redis.stop();
    must_fail_as_backend("load", store.load(&before.id)).await;
    must_fail_as_backend("save", store.save(&before)).await;
    let mut created = record();
    must_fail_as_backend("create", store.create(&mut created)).await;
    must_fail_as_backend("delete", store.delete(&before.id)).await;

    redis.restart();
    // fred reconnects on its own (backoff of at most a second); wait for it.
    let after = record();
    let deadline = Instant::now() + StdDuration::from_secs(30);
    loop {
        match store.save(&after).await {
            Ok(()) => break,
            Err(error) => {
                assert!(error.is_backend(), "unexpected error {error:?}");
                assert!(
                    Instant::now() < deadline,
                    "the store did not recover after Redis came back: {error}"
                );
                tokio::time::sleep(StdDuration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(
        store.load(&after.id).await.expect("load after recovery"),
        Some(after)
    );
    let mut fresh = record();
    store
        .create(&mut fresh)
        .await
        .expect("create after recovery");
    assert_eq!(store.load(&fresh.id).await.expect("load"), Some(fresh));
}
