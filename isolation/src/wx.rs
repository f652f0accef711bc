//! W^X: no mapping is writable and executable at once.
//!
//! Applies to app segments at load, to `mmap` and to `mprotect` alike, with permissions as
//! `kernel_abi::PERM_*` bits (which have the values of Linux's `PROT_READ`/`PROT_WRITE`/`PROT_EXEC`).
//! Memory may go from writable to executable in two steps (write, then `mprotect` to read+exec); the
//! second step is when it must be scanned again ([`becomes_executable`], [`crate::scan`]).

use kernel_abi::{PERM_EXEC, PERM_READ, PERM_WRITE};

/// Every permission bit this rule knows.
pub const PERM_ALL: u32 = PERM_READ | PERM_WRITE | PERM_EXEC;

/// Why a set of permissions is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WxViolation {
    /// Both [`PERM_WRITE`] and [`PERM_EXEC`] were asked for.
    WritableAndExecutable { perms: u32 },
    /// A bit outside [`PERM_ALL`] is set.
    UnknownBits { perms: u32 },
}

impl core::fmt::Display for WxViolation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::WritableAndExecutable { perms } => {
                write!(f, "permissions {perms:#x} are writable and executable at once (W^X): drop one of them")
            }
            Self::UnknownBits { perms } => {
                write!(f, "permissions {perms:#x} have bits outside read/write/exec ({:#x})", perms & !PERM_ALL)
            }
        }
    }
}

impl core::error::Error for WxViolation {}

/// Accepts `perms` unless they are writable and executable at once or carry unknown bits.
pub const fn check_wx(perms: u32) -> Result<(), WxViolation> {
    if perms & !PERM_ALL != 0 {
        return Err(WxViolation::UnknownBits { perms });
    }
    if perms & PERM_WRITE != 0 && perms & PERM_EXEC != 0 {
        return Err(WxViolation::WritableAndExecutable { perms });
    }
    Ok(())
}

/// Whether changing permissions from `old` to `new` makes memory executable, so its bytes must be
/// scanned for forbidden instructions before the change takes effect.
pub const fn becomes_executable(old: u32, new: u32) -> bool {
    old & PERM_EXEC == 0 && new & PERM_EXEC != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_of_known_bits() {
        for perms in 0..=PERM_ALL {
            let expected = if perms & PERM_WRITE != 0 && perms & PERM_EXEC != 0 {
                Err(WxViolation::WritableAndExecutable { perms })
            } else {
                Ok(())
            };
            assert_eq!(check_wx(perms), expected, "{perms:#x}");
        }
        assert_eq!(check_wx(PERM_READ | PERM_EXEC), Ok(()));
        assert_eq!(check_wx(PERM_READ | PERM_WRITE), Ok(()));
        assert!(check_wx(PERM_WRITE | PERM_EXEC).is_err());
    }

    #[test]
    fn unknown_bits_are_refused() {
        for perms in [8, 0x10 | PERM_READ, u32::MAX, 1 << 31] {
            assert_eq!(check_wx(perms), Err(WxViolation::UnknownBits { perms }), "{perms:#x}");
        }
    }

    #[test]
    fn becoming_executable() {
        assert!(becomes_executable(PERM_READ | PERM_WRITE, PERM_READ | PERM_EXEC));
        assert!(becomes_executable(0, PERM_EXEC));
        assert!(!becomes_executable(PERM_READ | PERM_EXEC, PERM_EXEC));
        assert!(!becomes_executable(PERM_EXEC, PERM_READ));
        assert!(!becomes_executable(PERM_READ, PERM_READ | PERM_WRITE));
    }

    #[test]
    fn messages_say_what_was_wrong() {
        extern crate alloc;
        use alloc::string::ToString;
        let message = WxViolation::WritableAndExecutable { perms: 7 }.to_string();
        assert!(message.contains("W^X") && message.contains("0x7"), "{message}");
        assert!(WxViolation::UnknownBits { perms: 9 }.to_string().contains("0x8"));
    }
}
