//! execve and execveat: a new program in the running process, from a file of the guest's file system.
//!
//! The program passes the same checks the VMM made of the first one (`exec::elf::parse_app`, and in `mpk`
//! mode `exec::elf::inspect_app`: no writable-and-executable segment, and with `--strict-inspection` no
//! forbidden instruction at any byte offset; otherwise the kernel guards those, `crate::inspect`), gets a layout by the same rules (`isolation::layout::plan_exec`: random with `--aslr`, from the
//! kernel seed's stream for the n-th exec, so `--seed` replays it) and the initial stack the VMM builds
//! (`exec::initial_stack`). Everything that can fail is checked before the old program is touched; after
//! that point (`Process::replace_image`) the call cannot fail except for lack of memory, which kills the
//! process as on Linux.
//!
//! What the process keeps: its pid, parent, group and session, descriptors without `FD_CLOEXEC`, ignored
//! signals, the signal mask and pending signals, interval timers, limits, the working directory. What it
//! loses: every mapping, every other thread, handlers (back to the default action), the alternate stack,
//! POSIX timers. A `#!` script runs its interpreter (a static ELF in the guest), with the script's path
//! as an argument, up to four levels deep. A dynamically linked program is refused with ENOEXEC and a line
//! on the kernel log naming the reason, as the VMM refuses it at boot.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use exec::elf::{inspect_app, parse_app, AppElf, InspectionRefusal};
use exec::initial_stack::{build_initial_stack, AuxvInputs, InitialStack};
use isolation::layout::{plan_exec, ProcessLayout, Span};
use kernel_abi::{PERM_READ, PERM_WRITE};
use rand_core::{RngCore, SeedableRng};

use crate::errno::Errno;
use crate::fd::FileKind;
use crate::fs::NodeId;
use crate::inspect::Inspection;
use crate::machine::Machine;
use crate::mm::{page_align_up, Vma, VmaKind, VmaList, PAGE_SIZE};
use crate::process::Process;
use crate::syscall::{SysResult, AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use crate::thread::Run;
use crate::user;

/// Longest single argument or environment string (Linux's `MAX_ARG_STRLEN`, 32 pages).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;
/// Most bytes of arguments and environment together (Linux allows a quarter of the 8 MiB stack).
pub const ARG_MAX: usize = 2 << 20;
/// Most strings in argv or envp.
const MAX_ARG_STRINGS: usize = 0x7fff_ffff / 8;
/// How many `#!` interpreters may chain (Linux's `BINPRM_MAX_RECURSION`).
const MAX_INTERPRETER_DEPTH: u32 = 4;
/// The most of a `#!` line that is read (Linux's `BINPRM_BUF_SIZE`).
const SHEBANG_MAX: usize = 256;

/// What the new program starts with, computed before the old one is touched.
struct Prepared {
    app: AppElf,
    file: NodeId,
    /// Image base minus link base.
    bias: u64,
    layout: ProcessLayout,
    stack: InitialStack,
}

impl Process {
    pub(crate) fn sys_execve<M: Machine>(&mut self, m: &mut M, path: u64, argv: u64, envp: u64) -> SysResult {
        self.sys_execveat(m, AT_FDCWD as u64, path, argv, envp, 0)
    }

    pub(crate) fn sys_execveat<M: Machine>(
        &mut self,
        m: &mut M,
        dirfd: u64,
        path: u64,
        argv: u64,
        envp: u64,
        flags: u64,
    ) -> SysResult {
        let flags = flags as u32;
        if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
            return Err(Errno::EINVAL.into());
        }
        let path = user::read_path(&self.vmas, m, path, flags & AT_EMPTY_PATH != 0)?;
        let mut total = 0usize;
        let argv = self.read_strings(m, argv, &mut total)?;
        let envp = self.read_strings(m, envp, &mut total)?;
        let node = if path.is_empty() {
            match self.fds.get(crate::fd::fd_arg(dirfd))?.1.kind {
                FileKind::Node(id) => id,
                _ => return Err(Errno::EACCES.into()),
            }
        } else {
            let base = self.base_dir(dirfd, &path)?;
            let id = self.fs.resolve(base, &path, flags & AT_SYMLINK_NOFOLLOW == 0)?;
            if self.fs.node(id).is_some_and(|node| node.is_symlink()) {
                return Err(Errno::ELOOP.into());
            }
            id
        };
        let prepared = self.prepare(m, node, &path, argv, &envp, 0)?;
        self.replace_image(m, prepared);
        Ok(0)
    }

    /// Reads a NULL-terminated array of string pointers (a NULL array is empty), counting its bytes into
    /// `total` (E2BIG past [`ARG_MAX`]).
    fn read_strings<M: Machine>(&self, m: &mut M, array: u64, total: &mut usize) -> Result<Vec<Vec<u8>>, Errno> {
        let mut strings = Vec::new();
        if array == 0 {
            return Ok(strings);
        }
        for index in 0..MAX_ARG_STRINGS as u64 {
            let pointer = user::read_u64(&self.vmas, m, array.checked_add(index * 8).ok_or(Errno::EFAULT)?)?;
            if pointer == 0 {
                return Ok(strings);
            }
            let string = user::read_c_string(&self.vmas, m, pointer, MAX_ARG_STRLEN)?;
            if string.len() >= MAX_ARG_STRLEN {
                return Err(Errno::E2BIG);
            }
            // Each string, its NUL and its pointer.
            *total = total.saturating_add(string.len() + 1 + 8);
            if *total > ARG_MAX {
                return Err(Errno::E2BIG);
            }
            strings.push(string);
        }
        Err(Errno::E2BIG)
    }

    /// Checks the program at `node` (named `path`) and computes all it starts with; follows `#!`.
    fn prepare<M: Machine>(
        &mut self,
        m: &mut M,
        node: NodeId,
        path: &[u8],
        argv: Vec<Vec<u8>>,
        envp: &[Vec<u8>],
        depth: u32,
    ) -> Result<Prepared, Errno> {
        let file = self.fs.node(node).ok_or(Errno::ENOENT)?;
        if file.is_dir() {
            return Err(Errno::EACCES);
        }
        if !file.is_file() || file.mode & 0o111 == 0 {
            return Err(Errno::EACCES);
        }
        let bytes = self.fs.file_bytes(node)?;
        if bytes.starts_with(b"#!") {
            let head = bytes[..bytes.len().min(SHEBANG_MAX)].to_vec();
            return self.prepare_script(m, &head, path, argv, envp, depth);
        }
        let app = match parse_app(bytes) {
            Ok(app) => app,
            Err(error) => {
                self.log_exec(m, path, format_args!("{error}"));
                return Err(Errno::ENOEXEC);
            }
        };
        if self.inspection != Inspection::Off {
            if let Err(refusal) = inspect_app(&app, bytes, self.inspection == Inspection::Strict) {
                match refusal {
                    InspectionRefusal::WritableAndExecutable { vaddr, violation } => {
                        self.log_exec(m, path, format_args!("segment at {vaddr:#x}: {violation}"))
                    }
                    InspectionRefusal::ForbiddenInstruction { instruction, offset, file_offset } => self.log_exec(
                        m,
                        path,
                        format_args!(
                            "its code contains {instruction} at link address {offset:#x} (file offset \
                             {file_offset:#x}), which --strict-inspection refuses"
                        ),
                    ),
                }
                return Err(Errno::EACCES);
            }
        }
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(self.seed);
        rng.set_stream(kernel_abi::seed::EXEC_STREAMS.wrapping_add(self.execs));
        let kernel: Vec<Span> = self.reserved.iter().map(|&(start, end)| Span::new(start, end - start)).collect();
        let (image, layout) = match plan_exec(&kernel, app.placement(), self.aslr.then_some(&mut rng)) {
            Ok(planned) => planned,
            Err(error) => {
                self.log_exec(m, path, format_args!("no room for its image and stack: {error}"));
                return Err(Errno::ENOMEM);
            }
        };
        let bias = image.start - app.span.start;
        let mut random = [0u8; 16];
        rng.fill_bytes(&mut random);
        // AT_EXECFN names the file as execve was given it (Linux's rule).
        let execfn = path.to_vec();
        let aux = AuxvInputs {
            phdr: app.phdr_vaddr + bias,
            phnum: app.phnum,
            phent: app.phent,
            entry: app.entry + bias,
            random,
            execfn: &execfn,
        };
        let stack = build_initial_stack(layout.stack.end(), &argv, envp, &aux, ARG_MAX + 64 * 1024)
            .map_err(|_| Errno::E2BIG)?;
        Ok(Prepared { app, file: node, bias, layout, stack })
    }

    /// A `#!` script: its interpreter runs with `[interpreter, optional argument, script, argv[1..]]`.
    fn prepare_script<M: Machine>(
        &mut self,
        m: &mut M,
        bytes: &[u8],
        path: &[u8],
        argv: Vec<Vec<u8>>,
        envp: &[Vec<u8>],
        depth: u32,
    ) -> Result<Prepared, Errno> {
        if depth >= MAX_INTERPRETER_DEPTH {
            return Err(Errno::ELOOP);
        }
        let head = &bytes[2..];
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let trimmed = trim(line);
        let (interpreter, argument) = match trimmed.iter().position(|b| b.is_ascii_whitespace()) {
            Some(space) => (&trimmed[..space], Some(trim(&trimmed[space..]))),
            None => (trimmed, None),
        };
        if interpreter.is_empty() {
            return Err(Errno::ENOEXEC);
        }
        let interpreter = interpreter.to_vec();
        let mut new_argv = Vec::with_capacity(argv.len() + 2);
        new_argv.push(interpreter.clone());
        if let Some(argument) = argument.filter(|argument| !argument.is_empty()) {
            new_argv.push(argument.to_vec());
        }
        new_argv.push(path.to_vec());
        new_argv.extend(argv.into_iter().skip(1));
        let node = self.fs.resolve(self.cwd, &interpreter, true)?;
        self.prepare(m, node, &interpreter, new_argv, envp, depth + 1)
    }

    fn log_exec<M: Machine>(&self, m: &mut M, path: &[u8], why: core::fmt::Arguments<'_>) {
        let line =
            alloc::format!("secure-run kernel: execve {}: {why}\n", alloc::string::String::from_utf8_lossy(path));
        m.console(kernel_abi::Stream::Log, line.as_bytes());
    }

    /// The point of no return: the old program goes, the new one is mapped and starts at the return to
    /// the app.
    fn replace_image<M: Machine>(&mut self, m: &mut M, prepared: Prepared) {
        self.execs += 1;
        let pid = self.pid;
        let current = self.current;
        for (i, thread) in self.threads.iter_mut().enumerate() {
            if thread.pid == pid && i != current {
                thread.run = Run::Exited;
            }
        }
        let cloexec: Vec<i32> = self.fds.fds().filter(|(_, slot)| slot.cloexec).map(|(fd, _)| fd).collect();
        for fd in cloexec {
            if let Ok(Some(file)) = self.fds.close(fd) {
                self.release_file(file);
            }
        }
        self.actions.reset_for_exec();
        self.timers.posix.clear();
        let thread = self.thread_mut();
        thread.altstack = Default::default();
        thread.restart = None;
        thread.saved_mask = None;
        thread.sigreturn = false;
        let old = core::mem::take(&mut self.vmas);
        let mut nodes = Vec::new();
        for vma in old.iter() {
            m.unmap(vma.start, vma.end - vma.start);
            if let VmaKind::SharedFile { node, .. } = vma.kind {
                nodes.push(node);
            }
        }
        self.release_unmapped_shared(m, &nodes);
        if self.map_image(m, &prepared).is_err() {
            // Out of memory after the old program is gone: the process cannot go on.
            let _ = self.signal_process(pid, crate::SigInfo::kernel(kernel_abi::signal::SIGKILL as u32));
            return;
        }
        self.guard_image(m);
        self.layout = prepared.layout;
        self.brk = prepared.layout.brk.start;
        // `/proc/self/exe` names the program now (where its path can be known: a linked file).
        if let Ok(path) = self.fs.exe_path_of(prepared.file) {
            self.fs.replace_exe_path(path);
        }
        self.thread_mut().exec_start = Some((prepared.app.entry + prepared.bias, prepared.stack.rsp));
        self.sched.resched = true;
    }

    /// Maps the new program's segments (file bytes copied in, the rest zero) and its stack.
    fn map_image<M: Machine>(&mut self, m: &mut M, prepared: &Prepared) -> Result<(), Errno> {
        let Prepared { app, file, bias, layout, stack } = prepared;
        let mut vmas = VmaList::new();
        // Writable while the bytes go in; each segment gets its own permissions after, and a page two
        // segments share (where one ends and the next begins) gets both.
        let mut ranges: Vec<(u64, u64, u32)> = Vec::new();
        let mut shared_pages: Vec<(u64, u32)> = Vec::new();
        let mut previous: Option<(u64, u32)> = None;
        for segment in &app.segments {
            let mut start = (segment.vaddr + bias) & !(PAGE_SIZE - 1);
            let end = page_align_up(segment.end() + bias).ok_or(Errno::ENOMEM)?;
            let perms = segment.perms & (PERM_READ | PERM_WRITE | kernel_abi::PERM_EXEC);
            if let Some((last_page, last_perms)) = previous {
                if start == last_page {
                    shared_pages.push((start, last_perms | perms));
                    start += PAGE_SIZE;
                }
            }
            if start < end {
                vmas.insert(Vma { start, end, perms: PERM_READ | PERM_WRITE, kind: VmaKind::Image })
                    .map_err(|_| Errno::ENOMEM)?;
                m.map_anonymous(start, end - start, PERM_READ | PERM_WRITE).map_err(|_| Errno::ENOMEM)?;
                ranges.push((start, end, perms));
            }
            previous = Some((end - PAGE_SIZE, perms));
        }
        let data = self.fs.file_bytes(*file)?;
        for segment in &app.segments {
            let bytes = app.segment_bytes(segment, data);
            m.write_user(&vmas, segment.vaddr + bias, bytes).map_err(|_| Errno::ENOMEM)?;
        }
        let pages = shared_pages.iter().map(|&(page, perms)| (page, page + PAGE_SIZE, perms));
        for (start, end, perms) in ranges.iter().copied().chain(pages) {
            vmas.protect(start, end, perms).map_err(|_| Errno::ENOMEM)?;
            m.protect(start, end - start, perms).map_err(|_| Errno::ENOMEM)?;
        }
        let span = layout.stack;
        vmas.insert(Vma { start: span.start, end: span.end(), perms: PERM_READ | PERM_WRITE, kind: VmaKind::Stack })
            .map_err(|_| Errno::ENOMEM)?;
        m.map_anonymous(span.start, span.size, PERM_READ | PERM_WRITE).map_err(|_| Errno::ENOMEM)?;
        m.write_user(&vmas, stack.rsp, &stack.bytes).map_err(|_| Errno::ENOMEM)?;
        m.write_user(&vmas, stack.hwcap_slot, &self.hwcap.to_le_bytes()).map_err(|_| Errno::ENOMEM)?;
        self.vmas = vmas;
        Ok(())
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |end| end + 1);
    &bytes[start..end.max(start)]
}
