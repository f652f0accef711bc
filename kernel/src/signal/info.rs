//! `siginfo_t`: the 128 bytes that say why a signal arrived, as Linux lays them out on x86-64.

use alloc::string::String;
use core::fmt::Write;

pub use linux_raw_sys::general::{
    BUS_ADRALN, BUS_ADRERR, FPE_FLTDIV, FPE_FLTINV, FPE_FLTOVF, FPE_FLTRES, FPE_FLTSUB, FPE_FLTUND, FPE_INTDIV,
    FPE_INTOVF, ILL_ILLOPN, ILL_PRVOPC, SEGV_ACCERR, SEGV_MAPERR, SEGV_PKUERR, SI_KERNEL, SI_QUEUE, SI_TIMER, SI_TKILL,
    SI_USER, TRAP_BRKPT, TRAP_TRACE,
};

use super::{SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP};

/// Size of `siginfo_t`.
pub const SIGINFO_SIZE: usize = 128;

// Offsets of the fields this kernel fills (the union starts at 16).
const SIGNO: usize = 0;
const ERRNO: usize = 4;
const CODE: usize = 8;
const PID: usize = 16;
const UID: usize = 20;
const STATUS: usize = 24;
const TIMER_ID: usize = 16;
const OVERRUN: usize = 20;
const VALUE: usize = 24;
const ADDR: usize = 16;
const PKEY: usize = 32;

/// One `siginfo_t`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SigInfo {
    raw: [u8; SIGINFO_SIZE],
}

impl core::fmt::Debug for SigInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SigInfo {{ signo: {}, code: {} }}", self.signo(), self.code())
    }
}

impl SigInfo {
    fn with(signo: u32, code: i32) -> Self {
        let mut info = Self { raw: [0; SIGINFO_SIZE] };
        info.put_u32(SIGNO, signo);
        info.put_u32(CODE, code as u32);
        info
    }

    fn put_u32(&mut self, at: usize, value: u32) {
        self.raw[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn put_u64(&mut self, at: usize, value: u64) {
        self.raw[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.raw[at..at + 4].try_into().unwrap_or_default())
    }

    /// Sent by `kill` (SI_USER) or `tkill`/`tgkill` (SI_TKILL) from process `pid` (uid 0).
    pub fn sent(signo: u32, code: i32, pid: i32) -> Self {
        let mut info = Self::with(signo, code);
        info.put_u32(PID, pid as u32);
        info.put_u32(UID, 0);
        info
    }

    /// A child's change of state (SIGCHLD, or the exit signal clone named): `code` is CLD_EXITED,
    /// CLD_KILLED or CLD_DUMPED, `status` the exit code or the signal (uid 0, no CPU times).
    pub fn child(signo: u32, code: i32, pid: i32, status: i32) -> Self {
        let mut info = Self::sent(signo, code, pid);
        info.put_u32(STATUS, status as u32);
        info
    }

    /// Raised by the kernel itself (SI_KERNEL): SIGPIPE, a fault without a finer code.
    pub fn kernel(signo: u32) -> Self {
        Self::with(signo, SI_KERNEL as i32)
    }

    /// A CPU exception at `addr` (the faulting data address, or the instruction for #UD/#DE).
    pub fn fault(signo: u32, code: u32, addr: u64) -> Self {
        let mut info = Self::with(signo, code as i32);
        info.put_u64(ADDR, addr);
        info
    }

    /// A protection-key violation (SEGV_PKUERR) at `addr` on a page with key `pkey`.
    pub fn pkey_fault(addr: u64, pkey: u32) -> Self {
        let mut info = Self::fault(linux_raw_sys::general::SIGSEGV, SEGV_PKUERR, addr);
        info.put_u32(PKEY, pkey);
        info
    }

    /// An expired timer (SI_TIMER): its id, the overruns since its last signal, its `sigev_value`.
    pub fn timer(signo: u32, timer_id: i32, overrun: i32, value: u64) -> Self {
        let mut info = Self::with(signo, SI_TIMER);
        info.put_u32(TIMER_ID, timer_id as u32);
        info.put_u32(OVERRUN, overrun as u32);
        info.put_u64(VALUE, value);
        info
    }

    /// What `rt_sigqueueinfo` passed, kept as given (Linux checks only the code, see
    /// [`SigInfo::queued_code_allowed`]), with the signal number it is sent as.
    pub fn from_user(signo: u32, raw: [u8; SIGINFO_SIZE]) -> Self {
        let mut info = Self { raw };
        info.put_u32(SIGNO, signo);
        info
    }

    /// Linux refuses a sigqueue'd code that claims to come from the kernel (>= 0) or from tkill.
    pub fn queued_code_allowed(raw: &[u8; SIGINFO_SIZE]) -> bool {
        let code = i32::from_le_bytes(raw[CODE..CODE + 4].try_into().unwrap_or_default());
        code < 0 && code != SI_TKILL
    }

    pub fn signo(&self) -> u32 {
        self.u32_at(SIGNO)
    }
    pub fn code(&self) -> i32 {
        self.u32_at(CODE) as i32
    }
    pub fn errno(&self) -> i32 {
        self.u32_at(ERRNO) as i32
    }
    pub fn addr(&self) -> u64 {
        self.u64_at(ADDR)
    }

    /// A timer's signal (SI_TIMER): which timer, and how often it expired again before delivery.
    pub fn timer_id(&self) -> i32 {
        self.u32_at(TIMER_ID) as i32
    }
    pub fn overrun(&self) -> i32 {
        self.u32_at(OVERRUN) as i32
    }
    /// Whether this is the signal of POSIX timer `id`.
    pub fn is_from_timer(&self, id: i32) -> bool {
        self.code() == SI_TIMER && self.timer_id() == id
    }

    fn u64_at(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.raw[at..at + 8].try_into().unwrap_or_default())
    }

    /// The fields strace shows, as it shows them:
    /// `{si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x18}`.
    pub fn trace(&self) -> String {
        let signo = self.signo();
        let code = self.code();
        let mut out = String::new();
        let _ = write!(out, "{{si_signo={}, si_code=", super::name(signo));
        match code_name(signo, code) {
            Some(name) => out.push_str(name),
            None => {
                let _ = write!(out, "{code}");
            }
        }
        let value = self.u64_at(VALUE);
        let ptr = if value == 0 { String::from("NULL") } else { alloc::format!("{value:#x}") };
        if code == SI_USER as i32 || code == SI_TKILL || code == SI_QUEUE {
            let _ = write!(out, ", si_pid={}, si_uid={}", self.u32_at(PID) as i32, self.u32_at(UID));
            if code == SI_QUEUE {
                let _ = write!(out, ", si_value={{int={}, ptr={ptr}}}", value as i32);
            }
        } else if code == SI_TIMER {
            let (id, overrun) = (self.timer_id(), self.overrun());
            let _ =
                write!(out, ", si_timerid={id}, si_overrun={overrun}, si_value={{int={}, ptr={ptr}}}", value as i32);
        } else if code > 0 && super::SigSet::SYNCHRONOUS.contains(signo) {
            match self.addr() {
                0 => out.push_str(", si_addr=NULL"),
                addr => {
                    let _ = write!(out, ", si_addr={addr:#x}");
                }
            }
            if signo == SIGSEGV && code == SEGV_PKUERR as i32 {
                let _ = write!(out, ", si_pkey={}", self.u32_at(PKEY));
            }
        }
        out.push('}');
        out
    }

    /// A timer's signal with its overrun count updated (the timer fired again before delivery).
    pub fn set_overrun(&mut self, overrun: i32) {
        self.put_u32(OVERRUN, overrun as u32);
    }

    pub fn bytes(&self) -> &[u8; SIGINFO_SIZE] {
        &self.raw
    }
}

/// The name of `code` for `signo` (`SI_*` for any signal, the fault codes for the synchronous ones).
fn code_name(signo: u32, code: i32) -> Option<&'static str> {
    Some(match code {
        0 => "SI_USER",
        0x80 => "SI_KERNEL",
        -1 => "SI_QUEUE",
        -2 => "SI_TIMER",
        -3 => "SI_MESGQ",
        -4 => "SI_ASYNCIO",
        -5 => "SI_SIGIO",
        -6 => "SI_TKILL",
        _ => {
            let names: &[&str] = match signo {
                SIGSEGV => &["SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR"],
                SIGILL => &[
                    "ILL_ILLOPC",
                    "ILL_ILLOPN",
                    "ILL_ILLADR",
                    "ILL_ILLTRP",
                    "ILL_PRVOPC",
                    "ILL_PRVREG",
                    "ILL_COPROC",
                    "ILL_BADSTK",
                ],
                SIGFPE => &[
                    "FPE_INTDIV",
                    "FPE_INTOVF",
                    "FPE_FLTDIV",
                    "FPE_FLTOVF",
                    "FPE_FLTUND",
                    "FPE_FLTRES",
                    "FPE_FLTINV",
                    "FPE_FLTSUB",
                ],
                SIGBUS => &["BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR"],
                SIGTRAP => &["TRAP_BRKPT", "TRAP_TRACE"],
                _ => &[],
            };
            return usize::try_from(code).ok().and_then(|code| code.checked_sub(1)).and_then(|i| names.get(i)).copied();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use linux_raw_sys::general::{SIGALRM, SIGPIPE, SIGRTMIN, SIGUSR1};

    #[test]
    fn fields_sit_where_linux_puts_them() {
        let info = SigInfo::fault(SIGSEGV, SEGV_MAPERR, 0xdead_beef);
        assert_eq!(info.bytes()[..4], 11u32.to_le_bytes());
        assert_eq!(info.bytes()[8..12], 1u32.to_le_bytes());
        assert_eq!(info.bytes()[16..24], 0xdead_beefu64.to_le_bytes());
        let pkey = SigInfo::pkey_fault(0x1000, 2);
        assert_eq!((pkey.code(), pkey.bytes()[32]), (SEGV_PKUERR as i32, 2));
        let timer = SigInfo::timer(SIGALRM, 3, 5, 0x77);
        assert_eq!((timer.code(), timer.bytes()[16], timer.bytes()[20], timer.bytes()[24]), (SI_TIMER, 3, 5, 0x77));
        let sent = SigInfo::sent(SIGUSR1, SI_TKILL, 1);
        assert_eq!((sent.code(), sent.bytes()[16]), (SI_TKILL, 1));
    }

    #[test]
    fn trace_shows_what_strace_shows() {
        assert_eq!(
            SigInfo::fault(SIGSEGV, SEGV_MAPERR, 0x18).trace(),
            "{si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x18}"
        );
        assert_eq!(
            SigInfo::pkey_fault(0x1000, 1).trace(),
            "{si_signo=SIGSEGV, si_code=SEGV_PKUERR, si_addr=0x1000, si_pkey=1}"
        );
        assert_eq!(
            SigInfo::fault(SIGILL, ILL_ILLOPN, 0x40).trace(),
            "{si_signo=SIGILL, si_code=ILL_ILLOPN, si_addr=0x40}"
        );
        assert_eq!(
            SigInfo::sent(SIGUSR1, SI_TKILL, 1).trace(),
            "{si_signo=SIGUSR1, si_code=SI_TKILL, si_pid=1, si_uid=0}"
        );
        assert_eq!(
            SigInfo::timer(SIGALRM, 3, 1, 0x77).trace(),
            "{si_signo=SIGALRM, si_code=SI_TIMER, si_timerid=3, si_overrun=1, si_value={int=119, ptr=0x77}}"
        );
        assert_eq!(SigInfo::kernel(SIGPIPE).trace(), "{si_signo=SIGPIPE, si_code=SI_KERNEL}");
        assert_eq!(SigInfo::fault(SIGSEGV, 9, 0).trace(), "{si_signo=SIGSEGV, si_code=9, si_addr=NULL}");
    }

    #[test]
    fn sigqueue_codes_are_checked() {
        let mut raw = [0u8; SIGINFO_SIZE];
        raw[8..12].copy_from_slice(&(SI_QUEUE as u32).to_le_bytes());
        assert!(SigInfo::queued_code_allowed(&raw));
        let info = SigInfo::from_user(SIGRTMIN, raw);
        assert_eq!((info.signo(), info.code()), (SIGRTMIN, SI_QUEUE));
        raw[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert!(!SigInfo::queued_code_allowed(&raw), "SI_USER claims the kernel sent it");
        raw[8..12].copy_from_slice(&(SI_TKILL as u32).to_le_bytes());
        assert!(!SigInfo::queued_code_allowed(&raw));
    }
}
