//! The process afl-fuzz believes runs each input.
//!
//! afl-fuzz ends a hanging execution by killing the pid the forkserver named for it. The execution runs
//! inside this process's VM, so the pid named is a stand-in: a child that only waits. When afl-fuzz
//! kills it, the `SIGCHLD` handler reaps it and sets [`KILLED`], which the running backend watches
//! (`RunConfig::cancel`); the next execution gets a new stand-in. The stand-in dies with secure-run
//! (`PR_SET_PDEATHSIG`).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Set when afl-fuzz killed the current stand-in: the running execution must stop.
pub static KILLED: AtomicBool = AtomicBool::new(false);

/// The current stand-in's pid (0: none).
static STANDIN: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_sigchld(_: libc::c_int) {
    let pid = STANDIN.load(Ordering::SeqCst);
    if pid <= 0 {
        return;
    }
    let mut status = 0;
    // SAFETY: waitpid is async-signal-safe; `status` is valid for writes. Only the stand-in is reaped
    // here (other children, QEMU, are waited for by their owners).
    if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
        STANDIN.store(0, Ordering::SeqCst);
        KILLED.store(true, Ordering::SeqCst);
    }
}

/// Installs the `SIGCHLD` handler (without `SA_RESTART`, so that `KVM_RUN` returns when it runs).
pub fn install() -> std::io::Result<()> {
    // SAFETY: all-zero is a valid `sigaction`; the fields set below make it a plain handler.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigchld as *const () as usize;
    action.sa_flags = libc::SA_NOCLDSTOP;
    // SAFETY: `action` is valid; the handler only calls async-signal-safe functions and touches atomics.
    if unsafe { libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The live stand-in's pid, starting one if there is none, with [`KILLED`] cleared.
pub fn ensure() -> std::io::Result<i32> {
    let pid = STANDIN.load(Ordering::SeqCst);
    if pid > 0 {
        KILLED.store(false, Ordering::SeqCst);
        return Ok(pid);
    }
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child calls only async-signal-safe functions (prctl, close_range, getppid, pause, _exit) and never
    // returns into Rust code, so forking a possibly multi-threaded process is sound.
    let child = unsafe { libc::fork() };
    match child {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            // SAFETY: see above.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // Holds none of secure-run's files: afl-fuzz's pipes must close when secure-run ends.
                libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                loop {
                    libc::pause();
                }
            }
        }
        child => {
            STANDIN.store(child, Ordering::SeqCst);
            KILLED.store(false, Ordering::SeqCst);
            Ok(child)
        }
    }
}
