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
    ETIMEDOUT,
}

impl Errno {
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
