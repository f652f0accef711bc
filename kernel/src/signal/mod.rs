//! Signals as Linux has them: numbers and sets, actions and what each signal does by default, the
//! `siginfo` a signal carries ([`info`]), the pending queues ([`queue`]), and the frame a handler runs on
//! ([`frame`]). Hardware-free: the arch side hands the app's registers in as a [`frame::UserContext`] when
//! the kernel returns to the app, and the syscall layer decides there what the app resumes with.
#![forbid(unsafe_code)]

pub mod deliver;
pub mod frame;
pub mod info;
pub mod queue;

use alloc::vec::Vec;

pub use linux_raw_sys::general::{
    SA_NOCLDSTOP, SA_NOCLDWAIT, SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART, SA_RESTORER, SA_SIGINFO, SIGABRT,
    SIGALRM, SIGBUS, SIGCHLD, SIGCONT, SIGFPE, SIGHUP, SIGILL, SIGINT, SIGIO, SIGKILL, SIGPIPE, SIGPROF, SIGPWR,
    SIGQUIT, SIGRTMIN, SIGSEGV, SIGSTKFLT, SIGSTOP, SIGSYS, SIGTERM, SIGTRAP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG,
    SIGUSR1, SIGUSR2, SIGVTALRM, SIGWINCH, SIGXCPU, SIGXFSZ, SIG_BLOCK, SIG_SETMASK, SIG_UNBLOCK, SS_AUTODISARM,
    SS_DISABLE, SS_ONSTACK,
};

/// Highest signal number.
pub const NSIG: u32 = linux_raw_sys::general::_NSIG;
/// `SIG_DFL` and `SIG_IGN`, the two handler values that are not addresses.
pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;
/// `struct sigaction` as the kernel sees it (handler, flags, restorer, mask).
pub const SIGACTION_SIZE: usize = 32;
/// The flags `rt_sigaction` keeps (Linux drops unknown bits silently).
const KNOWN_FLAGS: u64 =
    (SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER | SA_RESETHAND | SA_RESTORER)
        as u64
        | linux_raw_sys::general::SA_UNSUPPORTED as u64
        | linux_raw_sys::general::SA_EXPOSE_TAGBITS as u64;

/// Whether `signal` is a signal number (1..=64).
pub const fn is_signal(signal: u32) -> bool {
    signal >= 1 && signal <= NSIG
}

/// A set of signals (`sigset_t` as the kernel sees it: one bit per signal, bit 0 = signal 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SigSet(pub u64);

impl SigSet {
    pub const EMPTY: Self = Self(0);
    /// SIGKILL and SIGSTOP: never blocked, caught or ignored.
    pub const UNBLOCKABLE: Self = Self((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)));
    /// The signals a CPU exception raises: delivered before the others, as Linux does.
    pub const SYNCHRONOUS: Self = Self(
        (1 << (SIGSEGV - 1))
            | (1 << (SIGBUS - 1))
            | (1 << (SIGILL - 1))
            | (1 << (SIGTRAP - 1))
            | (1 << (SIGFPE - 1))
            | (1 << (SIGSYS - 1)),
    );

    pub const fn of(signal: u32) -> Self {
        Self(1 << (signal - 1))
    }
    pub const fn contains(self, signal: u32) -> bool {
        self.0 & (1 << (signal - 1)) != 0
    }
    pub fn insert(&mut self, signal: u32) {
        self.0 |= 1 << (signal - 1);
    }
    pub fn remove(&mut self, signal: u32) {
        self.0 &= !(1 << (signal - 1));
    }
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    pub const fn minus(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// What a mask may hold: everything but SIGKILL and SIGSTOP.
    pub const fn as_mask(self) -> Self {
        self.minus(Self::UNBLOCKABLE)
    }
    /// The signal delivered first from this set: a synchronous one, else the lowest number.
    pub fn first(self) -> Option<u32> {
        let synchronous = self.0 & Self::SYNCHRONOUS.0;
        let pick = if synchronous != 0 { synchronous } else { self.0 };
        (pick != 0).then(|| pick.trailing_zeros() + 1)
    }
    /// The set as strace shows a mask: `[]`, `[USR1 ALRM]`, `~[]` for every signal; the names without
    /// `SIG`.
    pub fn trace(self) -> alloc::string::String {
        let (prefix, set) = if self.0.count_ones() > 32 { ("~", Self(!self.0)) } else { ("", self) };
        let names: alloc::vec::Vec<_> = (1..=NSIG)
            .filter(|&signal| set.contains(signal))
            .map(|signal| alloc::string::String::from(name(signal).trim_start_matches("SIG")))
            .collect();
        alloc::format!("{prefix}[{}]", names.join(" "))
    }
}

/// What a signal does when its disposition is `SIG_DFL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    /// Terminate "with a core dump": for a fault, the crash report says what happened.
    CoreDump,
    Ignore,
    /// Stop, or continue: job control, which a single VM has no use for (documented: both are ignored).
    Stop,
    Continue,
}

/// Linux's default action of `signal` (signal(7)).
pub const fn default_action(signal: u32) -> DefaultAction {
    match signal {
        SIGCHLD | SIGURG | SIGWINCH => DefaultAction::Ignore,
        SIGCONT => DefaultAction::Continue,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Stop,
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGXCPU | SIGXFSZ | SIGSYS => {
            DefaultAction::CoreDump
        }
        _ => DefaultAction::Terminate,
    }
}

/// One `struct sigaction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: SigSet,
}

impl SigAction {
    pub fn from_bytes(raw: &[u8; SIGACTION_SIZE]) -> Self {
        let word = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        Self { handler: word(0), flags: word(1) & KNOWN_FLAGS, restorer: word(2), mask: SigSet(word(3)).as_mask() }
    }

    pub fn to_bytes(self) -> [u8; SIGACTION_SIZE] {
        let mut raw = [0u8; SIGACTION_SIZE];
        for (i, word) in [self.handler, self.flags, self.restorer, self.mask.0].into_iter().enumerate() {
            raw[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        raw
    }

    pub const fn has(self, flag: u32) -> bool {
        self.flags & flag as u64 != 0
    }
}

/// What happens to a signal that arrives now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Discarded (`SIG_IGN`, or a default action of ignore, stop or continue).
    Ignore,
    /// The process ends, killed by the signal.
    Kill { core: bool },
    /// The app's handler runs.
    Handle(SigAction),
}

/// The signal actions of a process. Sparse: most programs set a handful, and where kernel code is
/// emulated, moving a 64-entry table at boot costs milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Actions {
    set: Vec<(u32, SigAction)>,
}

impl Actions {
    pub fn get(&self, signal: u32) -> SigAction {
        self.set.iter().find(|(s, _)| *s == signal).map_or_else(SigAction::default, |(_, action)| *action)
    }

    pub fn set(&mut self, signal: u32, action: SigAction) {
        match self.set.iter_mut().find(|(s, _)| *s == signal) {
            Some((_, slot)) => *slot = action,
            None => self.set.push((signal, action)),
        }
    }

    pub fn disposition(&self, signal: u32) -> Disposition {
        let action = self.get(signal);
        match action.handler {
            SIG_IGN if signal != SIGKILL && signal != SIGSTOP => Disposition::Ignore,
            SIG_DFL | SIG_IGN => match default_action(signal) {
                DefaultAction::Terminate => Disposition::Kill { core: false },
                DefaultAction::CoreDump => Disposition::Kill { core: true },
                DefaultAction::Ignore | DefaultAction::Stop | DefaultAction::Continue => Disposition::Ignore,
            },
            _ => Disposition::Handle(action),
        }
    }

    /// What `execve` leaves: handlers go back to the default action, ignored signals stay ignored (and
    /// lose their flags and masks), as on Linux.
    pub fn reset_for_exec(&mut self) {
        self.set.retain(|(_, action)| action.handler == SIG_IGN);
        for (_, action) in &mut self.set {
            *action = SigAction { handler: SIG_IGN, ..SigAction::default() };
        }
    }

    /// The signals whose disposition is to ignore them (discarded when they arrive).
    pub fn ignored(&self) -> impl Fn(u32) -> bool + '_ {
        move |signal| self.disposition(signal) == Disposition::Ignore
    }
}

/// The alternate signal stack (`stack_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AltStack {
    pub sp: u64,
    /// `SS_DISABLE`, or 0 with `SS_AUTODISARM` possibly set.
    pub flags: u32,
    pub size: u64,
}

impl Default for AltStack {
    fn default() -> Self {
        Self { sp: 0, flags: SS_DISABLE, size: 0 }
    }
}

impl AltStack {
    pub fn enabled(&self) -> bool {
        self.flags & SS_DISABLE == 0
    }

    /// Whether `sp` is on this stack (Linux's `on_sig_stack`: the top itself counts, the bottom not).
    pub fn contains(&self, sp: u64) -> bool {
        self.enabled() && sp > self.sp && sp.wrapping_sub(self.sp) <= self.size
    }

    /// `ss_flags` as sigaltstack and a signal frame report them for code running at `sp`.
    pub fn flags_at(&self, sp: u64) -> u32 {
        if !self.enabled() {
            SS_DISABLE
        } else if self.contains(sp) {
            SS_ONSTACK
        } else {
            0
        }
    }

    pub fn to_bytes(self, flags: u32) -> [u8; 24] {
        let mut raw = [0u8; 24];
        raw[..8].copy_from_slice(&self.sp.to_le_bytes());
        raw[8..12].copy_from_slice(&flags.to_le_bytes());
        raw[16..].copy_from_slice(&self.size.to_le_bytes());
        raw
    }

    pub fn from_bytes(raw: &[u8; 24]) -> (u64, u32, u64) {
        let sp = u64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
        let flags = u32::from_le_bytes(raw[8..12].try_into().unwrap_or_default());
        let size = u64::from_le_bytes(raw[16..].try_into().unwrap_or_default());
        (sp, flags, size)
    }
}

/// The name strace gives a signal (`SIGSEGV`, `SIGRT_3`).
pub fn name(signal: u32) -> alloc::borrow::Cow<'static, str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match signal {
        1..=31 => NAMES[signal as usize - 1].into(),
        SIGRTMIN..=NSIG => alloc::format!("SIGRT_{}", signal - SIGRTMIN).into(),
        _ => alloc::format!("{signal}").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_print_as_strace_prints_them() {
        assert_eq!(SigSet::EMPTY.trace(), "[]");
        let mut set = SigSet::EMPTY;
        set.insert(SIGUSR1);
        set.insert(SIGALRM);
        set.insert(SIGRTMIN + 2);
        assert_eq!(set.trace(), "[USR1 ALRM RT_2]");
        assert_eq!(SigSet(u64::MAX).trace(), "~[]");
        assert_eq!(SigSet(!SigSet::of(SIGTERM).0).trace(), "~[TERM]");
    }

    #[test]
    fn sets_order_synchronous_signals_first() {
        let mut set = SigSet::EMPTY;
        set.insert(SIGUSR1);
        set.insert(SIGSEGV);
        set.insert(SIGHUP);
        assert_eq!(set.first(), Some(SIGSEGV));
        set.remove(SIGSEGV);
        assert_eq!(set.first(), Some(SIGHUP));
        assert!(!SigSet(u64::MAX).as_mask().contains(SIGKILL));
        assert_eq!(SigSet::EMPTY.first(), None);
        assert_eq!(SigSet::of(64).first(), Some(64));
    }

    #[test]
    fn dispositions_follow_signal_7() {
        let mut actions = Actions::default();
        assert_eq!(actions.disposition(SIGCHLD), Disposition::Ignore);
        assert_eq!(actions.disposition(SIGTERM), Disposition::Kill { core: false });
        assert_eq!(actions.disposition(SIGSEGV), Disposition::Kill { core: true });
        assert_eq!(actions.disposition(SIGSTOP), Disposition::Ignore, "job control is not modelled");
        actions.set(SIGTERM, SigAction { handler: SIG_IGN, ..Default::default() });
        assert_eq!(actions.disposition(SIGTERM), Disposition::Ignore);
        let handler = SigAction { handler: 0x1000, flags: SA_SIGINFO as u64, ..Default::default() };
        actions.set(SIGUSR1, handler);
        assert_eq!(actions.disposition(SIGUSR1), Disposition::Handle(handler));
    }

    #[test]
    fn sigaction_bytes_round_trip_without_unknown_flags_or_unblockable_mask() {
        let raw = SigAction { handler: 7, flags: u64::MAX, restorer: 9, mask: SigSet(u64::MAX) }.to_bytes();
        let action = SigAction::from_bytes(&raw);
        assert_eq!(action.flags, KNOWN_FLAGS);
        assert!(!action.mask.contains(SIGKILL) && !action.mask.contains(SIGSTOP) && action.mask.contains(SIGINT));
        assert_eq!(SigAction::from_bytes(&action.to_bytes()), action);
    }

    #[test]
    fn altstack_bounds_are_linux_s() {
        let stack = AltStack { sp: 0x1000, flags: 0, size: 0x2000 };
        assert!(!stack.contains(0x1000) && stack.contains(0x1001) && stack.contains(0x3000) && !stack.contains(0x3001));
        assert_eq!(stack.flags_at(0x2000), SS_ONSTACK);
        assert_eq!(AltStack::default().flags_at(0x2000), SS_DISABLE);
        assert_eq!(name(SIGSEGV), "SIGSEGV");
        assert_eq!(name(SIGRTMIN + 3), "SIGRT_3");
    }
}
