//! AFL++'s forkserver protocol, the side a target speaks (AFL++ 4.x, `src/afl-forkserver.c` and
//! `instrumentation/afl-compiler-rt.o.c`): afl-fuzz starts the target once with a control pipe on fd
//! [`CONTROL_FD`] and a status pipe on fd [`STATUS_FD`]; the target says hello with four bytes on the
//! status pipe, then for each execution reads four bytes from the control pipe (whether afl-fuzz killed
//! the previous child), answers with the pid of the child that runs the input, and once it has ended,
//! with its `waitpid` status. All values are native-endian 32-bit integers.
//!
//! The hello is 0: no options (map size, dictionary, shared-memory input), which afl-fuzz takes as the
//! classic protocol; it then uses its own map size (`AFL_MAP_SIZE`, or 64 KiB). The newer 4.2x handshake
//! (a version word first) is not spoken: afl-fuzz 4.2x still accepts the classic hello, with a warning
//! ("Old fork server model is used by the target, this still works though"); LibAFL does not.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{FromRawFd, RawFd};

/// afl-fuzz's `FORKSRV_FD`: the control pipe, read by the target.
pub const CONTROL_FD: RawFd = 198;
/// `FORKSRV_FD + 1`: the status pipe, written by the target.
pub const STATUS_FD: RawFd = 199;

/// The two pipes to afl-fuzz.
pub struct ForkServer {
    control: File,
    status: File,
}

/// Whether `fd` is an open descriptor.
fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; any integer is a valid argument.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

impl ForkServer {
    /// Takes over fds 198 and 199, which afl-fuzz opened; `None` if they are not open (not run by
    /// afl-fuzz).
    pub fn open() -> Option<Self> {
        if !is_open(CONTROL_FD) || !is_open(STATUS_FD) {
            return None;
        }
        // SAFETY: both descriptors are open (checked above), were opened for this process by afl-fuzz, and
        // nothing else in secure-run uses them: the files take ownership. Close-on-exec keeps them from
        // QEMU.
        let (control, status) = unsafe {
            libc::fcntl(CONTROL_FD, libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(STATUS_FD, libc::F_SETFD, libc::FD_CLOEXEC);
            (File::from_raw_fd(CONTROL_FD), File::from_raw_fd(STATUS_FD))
        };
        Some(Self { control, status })
    }

    /// Says hello: the executor is ready for the first request.
    pub fn hello(&mut self) -> std::io::Result<()> {
        self.status.write_all(&0u32.to_ne_bytes())
    }

    /// Waits for the next request; `None` when afl-fuzz closed the control pipe (the campaign ended).
    pub fn next_request(&mut self) -> std::io::Result<Option<u32>> {
        let mut word = [0u8; 4];
        match self.control.read_exact(&mut word) {
            Ok(()) => Ok(Some(u32::from_ne_bytes(word))),
            Err(error) if error.kind() == ErrorKind::UnexpectedEof => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Names the process afl-fuzz may kill when the execution hangs.
    pub fn started(&mut self, pid: i32) -> std::io::Result<()> {
        self.status.write_all(&pid.to_ne_bytes())
    }

    /// Reports the execution's end as a `waitpid` status.
    pub fn finished(&mut self, wait_status: i32) -> std::io::Result<()> {
        self.status.write_all(&wait_status.to_ne_bytes())
    }
}

/// afl-fuzz's side of the protocol, for tests and benchmarks: starts a command with the two pipes on
/// fds [`CONTROL_FD`] and [`STATUS_FD`] and asks it for executions.
pub struct Fuzzer {
    child: std::process::Child,
    control: Option<File>,
    status: File,
}

fn pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is valid for two descriptors; O_CLOEXEC keeps them out of other children.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these two descriptors, owned by nobody else.
    Ok(unsafe { (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1])) })
}

impl Fuzzer {
    /// Spawns `command` with the control pipe's read end on fd 198 and the status pipe's write end on
    /// fd 199.
    pub fn spawn(command: &mut std::process::Command) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let (control_read, control_write) = pipe()?;
        let (status_read, status_write) = pipe()?;
        let (control_fd, status_fd) = (control_read.as_raw_fd(), status_write.as_raw_fd());
        // SAFETY: dup2 is async-signal-safe; the new descriptors are not close-on-exec.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(control_fd, CONTROL_FD) < 0 || libc::dup2(status_fd, STATUS_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        Ok(Self { child, control: Some(File::from(control_write)), status: File::from(status_read) })
    }

    pub fn child(&mut self) -> &mut std::process::Child {
        &mut self.child
    }

    /// Reads one word from the status pipe, waiting at most `timeout`.
    pub fn read_word(&mut self, timeout: std::time::Duration) -> std::io::Result<i32> {
        use std::os::fd::AsRawFd;
        let deadline = std::time::Instant::now() + timeout;
        let mut poll = libc::pollfd { fd: self.status.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::new(ErrorKind::TimedOut, "no answer from the forkserver"));
            }
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut poll, 1, left.as_millis().min(i32::MAX as u128) as i32) } > 0 {
                break;
            }
        }
        let mut word = [0u8; 4];
        self.status.read_exact(&mut word)?;
        Ok(i32::from_ne_bytes(word))
    }

    /// Asks for an execution (`previous_killed`: the last one was killed) and returns the pid the
    /// forkserver names for it.
    pub fn request(&mut self, previous_killed: bool, timeout: std::time::Duration) -> std::io::Result<i32> {
        let control = self.control.as_mut().ok_or_else(|| std::io::Error::from(ErrorKind::BrokenPipe))?;
        control.write_all(&u32::from(previous_killed).to_ne_bytes())?;
        self.read_word(timeout)
    }

    /// Closes the control pipe (the campaign's end) and waits for the forkserver to exit.
    pub fn finish(mut self) -> std::io::Result<std::process::ExitStatus> {
        self.control = None;
        self.child.wait()
    }
}
