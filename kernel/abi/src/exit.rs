//! secure-run's exit codes and the Linux signal numbers they are made of.

/// secure-run's own exit codes (the app's status passes through unchanged otherwise).
pub mod exit_code {
    /// Bad command line.
    pub const USAGE: i32 = 2;
    /// `--timeout` expired.
    pub const TIMEOUT: i32 = 124;
    /// The VMM or a backend failed.
    pub const VMM_ERROR: i32 = 125;
    /// The app cannot be executed (not an ELF, wrong machine, dynamically linked, refused by inspection).
    pub const CANNOT_EXECUTE: i32 = 126;
    /// The app file does not exist.
    pub const NOT_FOUND: i32 = 127;
    /// The console channel was tampered with (a frame without the run's key, garbage, a stop without an
    /// authenticated verdict: `crate::console`): 128 + SIGSYS, counted as a crash like the others. SIGSYS
    /// is what seccomp kills with for a call the program may not make; the app used the VMM's ports,
    /// an interface only the kernel may use.
    pub const TAMPERING: i32 = killed_by(super::signal::SIGSYS);
    /// The app killed by `signal` (a fault or signal it did not handle): 128 + signal.
    pub const fn killed_by(signal: i32) -> i32 {
        128 + signal
    }
}

/// Linux signal numbers used in crash exit codes.
pub mod signal {
    pub const SIGILL: i32 = 4;
    pub const SIGTRAP: i32 = 5;
    pub const SIGABRT: i32 = 6;
    pub const SIGBUS: i32 = 7;
    pub const SIGFPE: i32 = 8;
    pub const SIGKILL: i32 = 9;
    pub const SIGSEGV: i32 = 11;
    pub const SIGSYS: i32 = 31;
}
