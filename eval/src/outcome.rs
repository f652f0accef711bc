//! What a run of an attack ended with, classified from secure-run's exit status, the attack's stdout
//! and secure-run's crash report (the wording of `vmm/src/report.rs`).

use std::fmt;

/// How an attack ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// secure-run refused the program before it ran (status 126): inspection found `instruction`.
    RefusedAtLoad { instruction: String },
    /// A kernel PKRU gate caught forged registers and halted the VM.
    GateHalt,
    /// The VMM caught the app forging the kernel's console channel (status 159): `what` it forged.
    Tampering { what: String },
    /// The app was killed by `signal` (`SIGSEGV`, `SIGILL`...) for `cause` (the page-fault cause with its
    /// protection key, or the exception).
    Fault { signal: String, cause: String },
    /// The guest kernel faulted (secure-run reports its own bug, status 125): the VM stopped.
    KernelFault { cause: String },
    /// The kernel refused the attack's system call with `errno` and the attack gave up.
    SyscallRefused { errno: &'static str },
    /// secure-run's `--timeout` stopped the VM (status 124).
    TimedOut,
    /// The attack ran to its end: whatever it tried got through.
    Completed { status: i32 },
}

impl Outcome {
    /// Whether the attack got what it tried for.
    pub fn escaped(&self) -> bool {
        matches!(self, Self::Completed { .. })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RefusedAtLoad { instruction } => write!(f, "refused at load ({instruction})"),
            Self::GateHalt => f.write_str("gate halt (VM stopped)"),
            Self::Tampering { what } => write!(f, "tampering caught: {what}"),
            Self::Fault { signal, cause } => write!(f, "{signal}: {cause}"),
            Self::KernelFault { cause } => write!(f, "kernel fault, VM stopped ({cause})"),
            Self::SyscallRefused { errno } => write!(f, "{errno} from the kernel"),
            Self::TimedOut => f.write_str("timed out, VM stopped"),
            Self::Completed { status } => write!(f, "**ran to completion** (status {status})"),
        }
    }
}

/// Classifies a finished run of an attack guest.
pub fn classify(status: i32, stdout: &str, stderr: &str) -> Outcome {
    if let Some(rest) = after(stderr, "its code contains ") {
        if status == 126 {
            let instruction = rest.split(" at link address").next().unwrap_or(rest).trim().to_owned();
            return Outcome::RefusedAtLoad { instruction };
        }
    }
    if stderr.contains("protection-key gate violation") {
        return Outcome::GateHalt;
    }
    if let Some(rest) = after(stderr, "the app forged the kernel's console channel (") {
        // "a forged stdout frame (its header lacks ...)" -> "forged stdout frame".
        let what = rest.split(" (").next().unwrap_or(rest).split("); ").next().unwrap_or(rest);
        return Outcome::Tampering { what: what.trim_start_matches("a ").to_owned() };
    }
    if let Some(rest) = after(stderr, "the guest kernel faulted (a secure-run bug): ") {
        return Outcome::KernelFault { cause: fault_cause(rest) };
    }
    if stderr.contains("the guest kernel panicked") {
        return Outcome::KernelFault { cause: "kernel panic".to_owned() };
    }
    if let Some(rest) = after(stderr, "the app was killed by ") {
        let (signal, rest) = rest.split_once(": ").unwrap_or((rest, ""));
        return Outcome::Fault { signal: signal.to_owned(), cause: fault_cause(rest) };
    }
    if status == 124 && stderr.contains("did not finish within --timeout") {
        return Outcome::TimedOut;
    }
    // The attacks print system-call results as negative errno values.
    for (value, errno) in [("-14\n", "EFAULT"), ("-13\n", "EACCES"), ("-1\n", "EPERM")] {
        if stdout.contains(&format!("= {value}")) || stdout.contains(&format!(": {value}")) {
            return Outcome::SyscallRefused { errno };
        }
    }
    Outcome::Completed { status }
}

fn after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.find(marker).map(|index| &text[index + marker.len()..])
}

/// The cause from a crash report's text after "killed by SIGx: " or "faulted: ": for a page fault
/// "protection-key violation, key 2" or "supervisor-page violation, instruction fetch", else the
/// exception's short name ("#GP").
fn fault_cause(report: &str) -> String {
    let line = report.lines().next().unwrap_or("");
    let line = line.split("; at rip").next().unwrap_or(line);
    if let Some(rest) = after(line, "page fault (#PF), ") {
        let access = rest.split(" of address").next().unwrap_or("");
        let cause = rest.split_once(": ").map_or(rest, |(_, cause)| cause);
        let (cause, detail) = cause.split_once(" (").unwrap_or((cause, ""));
        let key = after(detail, "protection key ").map(|key| key.trim_end_matches(')'));
        let region = detail.trim_start_matches("in ").trim_end_matches(')');
        return match key {
            Some(key) => format!("{cause}, key {key} ({access})"),
            None => format!("{cause} ({access}, {region})"),
        };
    }
    // "general protection fault (#GP), error code 0x0" -> "#GP".
    match (line.find("(#"), line.find(')')) {
        (Some(start), Some(end)) if start < end => line[start + 1..end].to_owned(),
        _ => line.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_report_wordings() {
        let refused = "secure-run: refusing to run a: its code contains MOV to CR at link address 0x4010f2 (file offset 0x10f2); in";
        assert_eq!(classify(126, "", refused), Outcome::RefusedAtLoad { instruction: "MOV to CR".into() });
        let key = "secure-run: the app was killed by SIGSEGV: page fault (#PF), read of address 0x7e0000030000: \
                   protection-key violation (kernel data, protection key 2); at rip 0x4010fc (app segment)\n  rsp=0";
        assert_eq!(
            classify(139, "", key),
            Outcome::Fault { signal: "SIGSEGV".into(), cause: "protection-key violation, key 2 (read)".into() }
        );
        let supervisor =
            "secure-run: the app was killed by SIGSEGV: page fault (#PF), write of address 0x7e0000030000: \
                          supervisor-page violation (in kernel data); at rip 0x401100 (app segment)";
        assert_eq!(
            classify(139, "", supervisor).to_string(),
            "SIGSEGV: supervisor-page violation (write, kernel data)"
        );
        let gp = "secure-run: the app was killed by SIGSEGV: general protection fault (#GP), error code 0x0; at rip 0x4010ef";
        assert_eq!(classify(139, "", gp).to_string(), "SIGSEGV: #GP");
        let ud = "secure-run: the app was killed by SIGILL: invalid opcode (#UD); at rip 0x401100 (app segment)";
        assert_eq!(classify(132, "", ud).to_string(), "SIGILL: #UD");
        assert_eq!(classify(0, "write(1, kernel, 16) = -14\n", ""), Outcome::SyscallRefused { errno: "EFAULT" });
        assert_eq!(classify(1, "mmap RWX: -13\n", ""), Outcome::SyscallRefused { errno: "EACCES" });
        assert_eq!(classify(0, "wrote CR4\n", ""), Outcome::Completed { status: 0 });
        assert!(classify(0, "wrote CR4\n", "").escaped());
        let gate = "secure-run: tampering: the app forged the kernel's console channel (a protection-key gate \
                    violation: a jump into a PKRU gate with forged registers, caught by the kernel (its report";
        assert_eq!(classify(159, "", gate), Outcome::GateHalt);
        let forged = "secure-run: tampering: the app forged the kernel's console channel (a forged stdout frame \
                      (its header lacks the run's console key)); its output after that was dropped";
        assert_eq!(classify(159, "", forged).to_string(), "tampering caught: forged stdout frame");
        let stop = "secure-run: tampering: the app forged the kernel's console channel (a stop through the exit \
                    port without an authenticated exit status or crash report); its output";
        assert_eq!(
            classify(159, "", stop).to_string(),
            "tampering caught: stop through the exit port without an authenticated exit status or crash report"
        );
    }
}
