//! A redis-server of a test's own, on a free loopback port (never the
//! shared 6379), for tests that stop and restart Redis to see what a store
//! or the middleware does meanwhile.

use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a started server may take to accept connections.
const START_PATIENCE: Duration = Duration::from_secs(20);

/// A `redis-server` child process on `127.0.0.1`, killed (and its directory
/// removed) when dropped. Needs `redis-server` on the `PATH`.
///
/// Setting it up panics with a clear message when the server cannot be
/// started: it is for tests, where that is a failed test.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    durable: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server keeping nothing on disk; `name` names its directory
    /// under the temporary directory.
    pub fn start(name: &str) -> Self {
        Self::start_with(name, false)
    }

    /// Starts a server that writes every change to its append-only file
    /// before acknowledging it, so what was stored survives
    /// [`stop`](Self::stop) and comes back with [`restart`](Self::restart).
    pub fn start_durable(name: &str) -> Self {
        Self::start_with(name, true)
    }

    fn start_with(name: &str, durable: bool) -> Self {
        #[allow(clippy::expect_used)] // A test's set-up: a panic is a failed test.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("pick a free loopback port")
            .port();
        let dir = std::env::temp_dir().join(format!("{name}-{}-{port}", std::process::id()));
        #[allow(clippy::expect_used)]
        std::fs::create_dir_all(&dir).expect("create the redis-server directory");
        let mut server = Self {
            port,
            dir,
            durable,
            child: None,
        };
        server.restart();
        server
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and directory, and waits
    /// until it accepts connections.
    pub fn restart(&mut self) {
        let persistence: &[&str] = if self.durable {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        #[allow(clippy::expect_used)]
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", ""])
            .args(persistence)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + START_PATIENCE;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on 127.0.0.1:{}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (as a crash would) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
