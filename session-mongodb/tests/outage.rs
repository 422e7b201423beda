//! A server that is down gives `Error::Backend` within the client's bounded
//! timeouts, and the store recovers when the server is back.
//!
//! This test starts its own server (the test tool from
//! `scripts/services/50-mongodb.sh`, `secantusd-py` unless `SECANTUSD` names
//! another command taking `--host`, `--port` and `--storage-path`) on a free
//! loopback port, so stopping it disturbs no other test.

mod common;

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use serde_json::json;
use session_core::{time, Record, SessionStore};
use session_mongodb::MongoDBStore;
use session_testkit::suite::now_micros;
use tokio::{
    net::TcpStream,
    process::{Child, Command},
};

/// How long the test waits for a server to listen, or for a failing call to
/// return: generous, only there so a hang fails the test instead of
/// blocking the run. The store's own bound is the 1 s set below.
const PATIENCE: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Where the test's server keeps its files: under `target/`, removed at the
/// end (a killed server cannot clean up an in-memory store's temporary
/// directory itself).
fn storage_path(port: u16) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("session-mongodb-outage-{port}"))
}

async fn start_server(port: u16) -> Child {
    let program = std::env::var("SECANTUSD").unwrap_or_else(|_| "secantusd-py".to_owned());
    let storage = storage_path(port);
    let child = Command::new(&program)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--storage-path")
        .arg(&storage)
        .args(["--log-level", "WARNING"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot start `{program}` for the outage test ({error}): \
                 pip install SecantusDB, or set SECANTUSD to a compatible server command"
            )
        });
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    tokio::time::timeout(PATIENCE, async {
        while TcpStream::connect(address).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the test server listens");
    child
}

async fn stop_server(mut child: Child) {
    child.kill().await.expect("stop the test server");
}

fn record(value: &str) -> Record {
    let mut record = Record::new(now_micros() + time::Duration::hours(1));
    record.data.insert("value".into(), json!(value));
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_a_backend_error_and_the_store_recovers() {
    let port = free_port();
    let server = start_server(port).await;
    let url =
        format!("mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000");
    let store = MongoDBStore::connect(&url, common::DATABASE)
        .await
        .expect("connect")
        .with_collection_name(&common::unique_collection("outage"));

    let mut before = record("before");
    store.create(&mut before).await.expect("create while up");
    assert_eq!(
        store.load(&before.id).await.expect("load while up"),
        Some(before.clone())
    );

    stop_server(server).await;

    let mut during = record("during");
    let load = tokio::time::timeout(PATIENCE, store.load(&before.id))
        .await
        .expect("load returns");
    assert!(
        matches!(&load, Err(e) if e.is_backend()),
        "load while down: {load:?}"
    );
    let save = tokio::time::timeout(PATIENCE, store.save(&during))
        .await
        .expect("save returns");
    assert!(
        matches!(&save, Err(e) if e.is_backend()),
        "save while down: {save:?}"
    );
    let create = tokio::time::timeout(PATIENCE, store.create(&mut during))
        .await
        .expect("create returns");
    assert!(
        matches!(&create, Err(e) if e.is_backend()),
        "create while down: {create:?}"
    );
    let mut stale = before.clone();
    let update = tokio::time::timeout(PATIENCE, store.update(&mut stale))
        .await
        .expect("update returns");
    assert!(
        matches!(&update, Err(e) if e.is_backend()),
        "update while down: {update:?}"
    );
    assert_eq!(
        stale.version, before.version,
        "a failed update bumps nothing"
    );
    let touch = tokio::time::timeout(PATIENCE, store.touch(&before.id, now_micros()))
        .await
        .expect("touch returns");
    assert!(
        matches!(&touch, Err(e) if e.is_backend()),
        "touch while down: {touch:?}"
    );
    let listed = tokio::time::timeout(PATIENCE, store.sessions_of_user("someone"))
        .await
        .expect("sessions_of_user returns");
    assert!(
        matches!(&listed, Err(e) if e.is_backend()),
        "sessions_of_user while down: {listed:?}"
    );
    let ended = tokio::time::timeout(PATIENCE, store.delete_sessions_of_user("someone", None))
        .await
        .expect("delete_sessions_of_user returns");
    assert!(
        matches!(&ended, Err(e) if e.is_backend()),
        "delete_sessions_of_user while down: {ended:?}"
    );
    let sweep = tokio::time::timeout(
        PATIENCE,
        session_core::ExpiredDeletion::delete_expired(&store),
    )
    .await
    .expect("delete_expired returns");
    assert!(
        matches!(&sweep, Err(e) if e.is_backend()),
        "delete_expired while down: {sweep:?}"
    );

    // The same port again: the client rediscovers the server by itself.
    let server = start_server(port).await;
    let mut after = record("after");
    let mut recovered = None;
    for _ in 0..60 {
        match store.create(&mut after).await {
            Ok(()) => {
                recovered = Some(());
                break;
            }
            Err(error) => {
                assert!(
                    error.is_backend(),
                    "only backend errors while recovering: {error:?}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    assert!(
        recovered.is_some(),
        "the store did not recover after the server came back"
    );
    assert_eq!(
        store.load(&after.id).await.expect("load after recovery"),
        Some(after)
    );
    stop_server(server).await;
    let _ = std::fs::remove_dir_all(storage_path(port));
}
