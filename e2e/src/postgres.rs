//! A real PostgreSQL server for the tests: Debian's `postgresql` package (scripts/setup.sh
//! installs it), a fresh cluster (`initdb`) in a temporary directory, `postgres` in the
//! foreground on a claimed loopback port, stopped with its process group when dropped.
//!
//! PostgreSQL refuses to run as root: as root (CI), the directory is handed to the `postgres`
//! user the package creates and both commands run as that user (`runuser`); as anyone else they
//! run as the caller. Trust authentication on 127.0.0.1 only, user `magnetar`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{READY_TIMEOUT, Service, free_port, scratch_dir};

/// Where Debian 12's `postgresql` (15) puts its server binaries.
const BIN_DIRS: &[&str] =
    &["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"];

/// A running PostgreSQL server.
pub struct Postgres {
    pub service: Service,
    pub port: u16,
    pub dir: PathBuf,
}

fn bin_dir() -> PathBuf {
    BIN_DIRS.iter().map(PathBuf::from).find(|d| d.join("initdb").exists()).unwrap_or_else(|| {
        panic!("PostgreSQL is not installed (none of {BIN_DIRS:?}): run scripts/setup.sh")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program args...`, as the `postgres` user when we are root.
fn as_server_user(program: PathBuf, args: &[String]) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program).args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

impl Postgres {
    /// initdb, then `postgres` on a free loopback port; waits until it accepts connections.
    pub fn start(label: &str) -> Postgres {
        let bin = bin_dir();
        let dir = scratch_dir(label);
        let data = dir.join("data");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown {} to postgres", dir.display());
        }
        let initdb = as_server_user(
            bin.join("initdb"),
            &[
                "-D".into(),
                data.display().to_string(),
                "-A".into(),
                "trust".into(),
                "-U".into(),
                "magnetar".into(),
                "--no-sync".into(),
            ],
        )
        .stdin(Stdio::null())
        .output()
        .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = free_port();
        let command = as_server_user(
            bin.join("postgres"),
            &[
                "-D".into(),
                data.display().to_string(),
                "-p".into(),
                port.to_string(),
                "-k".into(),
                dir.display().to_string(),
                "-c".into(),
                "listen_addresses=127.0.0.1".into(),
                "-c".into(),
                "fsync=off".into(),
            ],
        );
        let service = Service::spawn("postgres", command, dir.join("postgres.log"));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "magnetar",
                    "-d",
                    "postgres",
                ])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "postgres did not start:\n{}", service.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        }
        Postgres { service, port, dir }
    }

    /// A new, empty database on this server; its URL for `LEARNER_DATABASE_URL`.
    pub fn database(&self, name: &str) -> String {
        let status = Command::new(bin_dir().join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "magnetar", name])
            .status()
            .expect("run createdb");
        assert!(status.success(), "createdb {name}");
        format!("postgres://magnetar@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    /// Stops the server, then removes its data directory (tens of MB); the log stays.
    fn drop(&mut self) {
        self.service.stop();
        let _ = std::fs::remove_dir_all(self.dir.join("data"));
    }
}
