//! Child processes the lab starts (wrangler dev, the learner, HAProxy, nginx), each in its own
//! process group so that stopping it leaves nothing behind (wrangler's `workerd` and `esbuild`
//! children included). Stopped on drop: TERM to the group, then KILL after a grace period.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// How long a process may take to answer its readiness probe.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopped group gets between TERM and KILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A child process in its own process group.
pub struct Group {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Group {
    /// Starts `command` in a new process group, stdout and stderr to `log`.
    pub fn spawn(name: &str, command: Command, log: PathBuf) -> Result<Group> {
        let out = fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        Group::spawn_with(name, command, log, Stdio::from(out), Stdio::from(err))
    }

    /// Starts `command` in a new process group with stdout piped: every line is sent on the
    /// returned channel (and appended to `log`). Stderr goes to `log`.
    pub fn spawn_piped(
        name: &str,
        command: Command,
        log: PathBuf,
    ) -> Result<(Group, mpsc::Receiver<String>)> {
        let err = fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut copy = err.try_clone()?;
        let mut group = Group::spawn_with(name, command, log, Stdio::piped(), Stdio::from(err))?;
        let stdout = group.child.stdout.take().context("child stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Write as _;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(copy, "{line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok((group, rx))
    }

    fn spawn_with(
        name: &str,
        mut command: Command,
        log: PathBuf,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<Group> {
        use std::os::unix::process::CommandExt;
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr).process_group(0);
        let child = command.spawn().with_context(|| format!("cannot start {name}"))?;
        Ok(Group { name: name.to_owned(), child, log })
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([format!("-{signal}"), "--".into(), format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }

    /// Stops the group: TERM, then KILL after a grace period.
    pub fn stop(&mut self) {
        if !self.exited() {
            self.signal("TERM");
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && !self.exited() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until `url` answers 200, or fails with the log tail.
    pub async fn wait_ready(&mut self, client: &reqwest::Client, url: &str) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.exited() {
                bail!("{} exited before it was ready:\n{}", self.name, self.log_tail());
            }
            let probe = client.get(url).timeout(Duration::from_secs(2)).send().await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer {url} in {READY_TIMEOUT:?}:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free loopback port `p` in `from..from + 5000` such that `p + offset` is free too (wrangler's
/// inspector port is the port plus 10,000). Ports are tried in a process-dependent order.
pub fn free_port(from: u16, offset: u16) -> Result<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 5000) as u16;
    let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
    for _ in 0..5000 {
        let port = from + (seed + NEXT.fetch_add(7, Ordering::Relaxed)) % 5000;
        if free(port) && (offset == 0 || free(port + offset)) {
            return Ok(port);
        }
    }
    bail!("no free loopback port in {from}..{}", from + 5000)
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch_dir(label: &str) -> Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir =
        std::env::temp_dir().join(format!("magnetar-lab-{label}-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// Whether `path` is an executable file.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A random token (32 hex digits from the OS's random source), for the credentials of a stack a
/// test or the lab starts.
pub fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
