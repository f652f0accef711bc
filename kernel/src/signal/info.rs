//! `siginfo_t`: the 128 bytes that say why a signal arrived, as Linux lays them out on x86-64.

pub use linux_raw_sys::general::{
    BUS_ADRALN, BUS_ADRERR, FPE_FLTDIV, FPE_FLTINV, FPE_FLTOVF, FPE_FLTRES, FPE_FLTSUB, FPE_FLTUND, FPE_INTDIV,
    FPE_INTOVF, ILL_ILLOPN, ILL_PRVOPC, SEGV_ACCERR, SEGV_MAPERR, SEGV_PKUERR, SI_KERNEL, SI_QUEUE, SI_TIMER, SI_TKILL,
    SI_USER, TRAP_BRKPT, TRAP_TRACE,
};

/// Size of `siginfo_t`.
pub const SIGINFO_SIZE: usize = 128;

// Offsets of the fields this kernel fills (the union starts at 16).
const SIGNO: usize = 0;
const ERRNO: usize = 4;
const CODE: usize = 8;
const PID: usize = 16;
const UID: usize = 20;
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
        u64::from_le_bytes(self.raw[ADDR..ADDR + 8].try_into().unwrap_or_default())
    }

    /// A timer's signal with its overrun count updated (the timer fired again before delivery).
    pub fn set_overrun(&mut self, overrun: i32) {
        self.put_u32(OVERRUN, overrun as u32);
    }

    pub fn bytes(&self) -> &[u8; SIGINFO_SIZE] {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linux_raw_sys::general::{SIGALRM, SIGRTMIN, SIGSEGV, SIGUSR1};

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
