//! The real `fleetmind` binary: one CLI run ([`run_fleetmind`]), or a server
//! ([`BinaryServer`]) with its stdout and stderr in files (never a terminal),
//! stopped with SIGTERM so that it writes every buffered log line before it
//! exits.

use super::eventually;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_fleetmind");

/// Runs the real `fleetmind` binary against the test database; its output.
pub async fn run_fleetmind(database_url: &str, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(BIN);
    command
        .arg("--database-url")
        .arg(database_url)
        .args(args)
        .env_remove("DATABASE_URL");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run fleetmind")
}

/// A port the OS just handed out; the server binds it right after.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The running binary.
pub struct BinaryServer {
    child: tokio::process::Child,
    pub port: u16,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

/// What the binary wrote.
pub struct Written {
    pub stdout: String,
    pub stderr: String,
}

impl BinaryServer {
    /// `serve` on a free port with `FLEETMIND_LOG=log` and `NO_COLOR=1`.
    pub async fn start(database_url: &str, log: &str) -> BinaryServer {
        Self::start_with(database_url, log, &[], &[("NO_COLOR", "1")]).await
    }

    /// `serve` on a free port with `FLEETMIND_LOG=log`, `args` after
    /// `serve`, and only `env` of the colour settings (`NO_COLOR` is removed
    /// unless `env` sets it).
    pub async fn start_with(
        database_url: &str,
        log: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> BinaryServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let stdout = dir.path().join("stdout.log");
        let stderr = dir.path().join("stderr.log");
        let port = free_port();
        let child = tokio::process::Command::new(BIN)
            .args(["--database-url", database_url, "serve", "--bind"])
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("NO_COLOR")
            .env_remove("FLEETMIND_LOG_FORMAT")
            .env_remove("FLEETMIND_METRICS_BIND")
            .env("FLEETMIND_LOG", log)
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start fleetmind");
        let server = BinaryServer {
            child,
            port,
            stdout,
            stderr,
            _dir: dir,
        };
        let health = format!("http://127.0.0.1:{port}/healthz");
        let client = reqwest::Client::new();
        let up = eventually(Duration::from_secs(30), || async {
            client
                .get(&health)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(up, "the server did not answer /healthz within 30 s");
        server
    }

    pub fn mcp_url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and returns what
    /// it wrote.
    pub async fn stop(mut self) -> Written {
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) on the pid of our own child, which has not been
            // waited for yet (so the pid is still ours).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        }
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        Written {
            stdout: read(&self.stdout),
            stderr: read(&self.stderr),
        }
    }
}
