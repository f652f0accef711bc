//! Runs one child process to completion: wall time from spawn to reap, exit status, captured output and
//! the child's peak RSS (from `wait4`, so per child rather than the process-wide RUSAGE_CHILDREN maximum).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one run of a child did.
#[derive(Clone, Debug)]
pub struct ChildRun {
    pub wall: Duration,
    /// The exit status, or `128 + signal` when a signal ended it.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident set size in KiB of the child and of its own waited-for children (Linux reports
    /// the larger of the two for `wait4`): for a QEMU run, the larger of secure-run and QEMU.
    pub max_rss_kib: u64,
    pub timed_out: bool,
}

impl ChildRun {
    /// A short reason for a run that did not exit with status 0.
    pub fn failure(&self) -> Option<String> {
        if self.timed_out {
            return Some(format!("timed out after {:.0} s", self.wall.as_secs_f64()));
        }
        if self.status == 0 {
            return None;
        }
        let last = self.stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("").trim();
        Some(format!("exit {}: {}", self.status, shorten(last, 160)))
    }
}

/// Cuts `text` to at most `limit` characters, marking the cut.
pub fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let cut: String = text.chars().take(limit).collect();
    format!("{cut}…")
}

/// Runs `program args` with stdin closed, killing its whole process group after `timeout`.
pub fn run(program: &Path, args: &[String], timeout: Duration) -> std::io::Result<ChildRun> {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let stdout_reader = std::thread::spawn(move || read_all(stdout));
    let stderr_reader = std::thread::spawn(move || read_all(stderr));

    // The watchdog kills the group unless the child was reaped first; `reaped` under the lock keeps it
    // from signalling a reused pid.
    let reaped = Arc::new(Mutex::new(false));
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = {
        let reaped = Arc::clone(&reaped);
        std::thread::spawn(move || {
            if finished.recv_timeout(timeout).is_err() {
                let guard = reaped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if !*guard {
                    // SAFETY: kill has no memory-safety preconditions; the group is the child's own,
                    // which has not been reaped (checked under the lock).
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                    return true;
                }
            }
            false
        })
    };

    let mut raw_status: libc::c_int = 0;
    // SAFETY: all-zero is a valid `rusage`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped_pid = loop {
        let mut guard = reaped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: `raw_status` and `usage` are valid for writes; WNOHANG keeps the lock short.
        let result = unsafe { libc::wait4(pid, &mut raw_status, libc::WNOHANG, &mut usage) };
        if result != 0 {
            *guard = result == pid;
            break result;
        }
        drop(guard);
        // Block without the lock until the child changes state, then reap it above.
        let mut info: libc::siginfo_t = {
            // SAFETY: all-zero is a valid `siginfo_t`.
            unsafe { std::mem::zeroed() }
        };
        // SAFETY: `info` is valid for writes; WNOWAIT leaves the child reapable.
        unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
    };
    let wall = started.elapsed();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    if reaped_pid != pid {
        return Err(std::io::Error::last_os_error());
    }
    // The child is reaped; make sure `Child`'s drop does not wait for it again.
    std::mem::forget(child);
    let status = if libc::WIFEXITED(raw_status) {
        libc::WEXITSTATUS(raw_status)
    } else if libc::WIFSIGNALED(raw_status) {
        128 + libc::WTERMSIG(raw_status)
    } else {
        -1
    };
    Ok(ChildRun {
        wall,
        status,
        stdout: stdout_reader.join().unwrap_or_default(),
        stderr: stderr_reader.join().unwrap_or_default(),
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
        timed_out,
    })
}

fn read_all(source: Option<impl Read>) -> String {
    let mut bytes = Vec::new();
    if let Some(mut source) = source {
        let _ = source.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
