//! Linux error numbers, as the syscall layer returns them (negated).
#![forbid(unsafe_code)]

/// A Linux errno value (positive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// The errno values the kernel uses, by name; the values are Linux's (linux-raw-sys).
macro_rules! errnos {
    ($($name:ident,)*) => {
        impl Errno {
            $(pub const $name: Errno = Errno(linux_raw_sys::errno::$name as i32);)*

            /// The symbolic name (`"ENOENT"`), or `None` for a value this table does not know.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    512 => return Some("ERESTARTSYS"),
                    513 => return Some("ERESTARTNOINTR"),
                    514 => return Some("ERESTARTNOHAND"),
                    516 => return Some("ERESTART_RESTARTBLOCK"),
                    _ => {}
                }
                $(if self.0 == Self::$name.0 {
                    return Some(stringify!($name));
                })*
                None
            }
        }
    };
}

errnos! {
    EPERM,
    ENOENT,
    ESRCH,
    EINTR,
    EIO,
    ENXIO,
    E2BIG,
    ENOEXEC,
    EBADF,
    ECHILD,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENFILE,
    EMFILE,
    ENOTTY,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EMLINK,
    EPIPE,
    ERANGE,
    EDEADLK,
    ENAMETOOLONG,
    ENOSYS,
    ENOTEMPTY,
    ELOOP,
    EOVERFLOW,
    EOPNOTSUPP,
    ENOTSOCK,
    EMSGSIZE,
    EPROTONOSUPPORT,
    EAFNOSUPPORT,
    EISCONN,
    ETIMEDOUT,
}

impl Errno {
    /// Kernel-internal results of a syscall a signal interrupted (Linux's values, which never reach the
    /// app): the return to the app turns them into EINTR or a restart, by the rules of signal(7).
    /// Restart unless a handler runs without SA_RESTART.
    pub const ERESTARTSYS: Errno = Errno(512);
    /// Always restart.
    pub const ERESTARTNOINTR: Errno = Errno(513);
    /// Restart only if no handler runs.
    pub const ERESTARTNOHAND: Errno = Errno(514);
    /// Like ERESTARTNOHAND, but the restart continues the call where it was (`restart_syscall`).
    pub const ERESTART_RESTARTBLOCK: Errno = Errno(516);

    /// Whether this is one of the kernel-internal restart results.
    pub const fn is_restart(self) -> bool {
        matches!(self.0, 512 | 513 | 514 | 516)
    }

    /// The syscall return value: `-errno`.
    pub const fn to_return(self) -> i64 {
        -(self.0 as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::Errno;

    #[test]
    fn names_and_values() {
        assert_eq!(Errno::ENOENT.name(), Some("ENOENT"));
        assert_eq!(Errno::ENOSYS.to_return(), -38);
        assert_eq!(Errno(4000).name(), None);
    }
}
