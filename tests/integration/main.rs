//! Integration tests: real guest programs booted through the real `secure-run` binary.
//!
//! Guests are built from `tests/guests/{asm,c,rust}` by [`common::guests`]. Every run has a hard timeout
//! and a failing assertion prints the guest's stdout and stderr.
//!
//! - `native`: every guest builds with every toolchain and behaves as expected natively (no VM needed).
//! - `cli`: bad command lines and unrunnable files (no VM needed).
//! - `boot`: the boot path: assembly guests on both backends.
//! - `abi`: the Linux ABI: C guests (glibc static and static-PIE, musl) and a Rust std guest, each
//!   compared byte for byte with its native run.
//! - `busybox`: Debian's static busybox, applet by applet, compared with its native run.
//! - `go`: the Go programs Debian ships statically (threads, futexes, SIGURG preemption, epoll).
//! - `afl`: `--afl`, driven through the forkserver protocol and by a real afl-fuzz campaign.
//! - `aslr`: what `--aslr` and `--seed` promise; `attacks`: the attack corpus in every mode, and the
//!   hostile guest; `threat_model`: every test threat-model.md cites exists.

#[macro_use]
mod common;

mod abi;
mod afl;
mod aslr;
mod attacks;
mod boot;
mod busybox;
mod cli;
mod go;
mod native;
mod threat_model;
