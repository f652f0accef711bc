//! The secure-run VMM.
