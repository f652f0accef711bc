//! Debian's static busybox (a real glibc program with many applets), applet by applet. Each
//! case runs natively and under secure-run, with the fixture directory mounted at `/data` (its host path
//! stands in natively and is mapped back in the output), and must match byte for byte.
//! Debian's static bash and zsh run command substitutions the same way (`*_static_command_substitution`).
//! The `sh_*` cases run shell pipelines and command lists: every stage a process of its own, started by
//! fork and execve of `/proc/self/exe`, as natively.

use std::path::PathBuf;

use crate::common::fixtures::{pseudo_random_bytes, LINES, WORDS};
use crate::common::*;

/// The busybox binary; fails the test if it is missing or not the static build.
pub fn busybox() -> PathBuf {
    let path = ["/bin/busybox", "/usr/bin/busybox"].into_iter().map(PathBuf::from).find(|path| path.is_file());
    let path = path.expect("busybox is not installed: install the Debian package `busybox-static`");
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        goblin::elf::Elf::parse(&bytes).unwrap().interpreter.is_none(),
        "{} is dynamically linked: install the Debian package `busybox-static` (not `busybox`)",
        path.display()
    );
    path
}

/// Runs `busybox args...` natively and under secure-run and compares stdout and status.
fn check_applet(mode: Mode, args: &[&str], stdin: Option<Vec<u8>>, env: &[&str]) -> RunResult {
    let busybox = busybox();
    let native_data = data_dir();
    let host = native_data.path().to_str().unwrap();
    let native_args: Vec<String> = args.iter().map(|arg| arg.replace(GUEST_DATA, host)).collect();
    let native_args: Vec<&str> = native_args.iter().map(String::as_str).collect();
    let mut native = run_native(&busybox, &native_args, env, stdin.as_deref());
    // Map host paths back to the guest's; binary output (gzip) is compared byte for byte as it is.
    if let Ok(text) = std::str::from_utf8(&native.stdout) {
        native.stdout = text.replace(host, GUEST_DATA).into_bytes();
    }

    let vm_data = data_dir();
    let mut secure_run = SecureRun::new(mode).env(env);
    // Mount only for the cases that use it, so the others do not depend on --mount.
    if args.iter().any(|arg| arg.contains(GUEST_DATA)) {
        secure_run = secure_run.mount(vm_data.path(), GUEST_DATA, false);
    }
    if let Some(stdin) = &stdin {
        secure_run = secure_run.stdin(stdin);
    }
    let in_vm = secure_run.run(&busybox, args);
    assert_same_as_native(&in_vm, &native);
    assert_no_panic(&in_vm);
    in_vm
}

/// `name: [args...] (, stdin = BYTES)? (, env = [K=V, ...])?;` → the test `busybox::name::<mode>`.
macro_rules! busybox_cases {
    ($($name:ident: [$($arg:expr),* $(,)?] $(, stdin = $stdin:expr)? $(, env = [$($var:expr),*])?;)*) => {
        $(
            abi_test!(fn $name(mode) {
                let stdin: Option<Vec<u8>> = None $(.or(Some(AsRef::<[u8]>::as_ref(&$stdin).to_vec())))?;
                check_applet(mode, &[$($arg),*], stdin, &[$($($var),*)?]);
            });
        )*
    };
}

busybox_cases! {
    echo: ["echo", "hello", "world", "\u{2764}"];
    echo_escapes: ["echo", "-n", "-e", "tab\\there\\nnewline"];
    printf: ["printf", "%05d|%-4s|%x|%.2f|%s\\n", "42", "ab", "255", "3.14159", "end"];
    cat: ["cat", "/data/lines.txt", "/data/words.txt"];
    cat_stdin: ["cat"], stdin = LINES;
    head: ["head", "-n", "3", "/data/lines.txt"];
    head_bytes: ["head", "-c", "10", "/data/lines.txt"];
    tail: ["tail", "-n", "2", "/data/lines.txt"];
    tail_bytes: ["tail", "-c", "10", "/data/lines.txt"];
    wc: ["wc", "/data/lines.txt", "/data/words.txt"];
    wc_stdin: ["wc", "-c"], stdin = pseudo_random_bytes(65536, 3);
    sort: ["sort", "/data/words.txt"];
    sort_unique: ["sort", "-u", "/data/words.txt"];
    sort_numeric_reverse: ["sort", "-n", "-r", "/data/numbers.txt"];
    sort_by_field: ["sort", "-t", ":", "-k", "3", "-n", "/data/passwd.txt"];
    uniq_count: ["uniq", "-c"], stdin = "apple\napple\nfig\npear\npear\npear\n";
    tr_upper: ["tr", "a-z", "A-Z"], stdin = LINES;
    tr_delete: ["tr", "-d", "aeiou"], stdin = WORDS;
    cut: ["cut", "-d", ":", "-f", "1,3", "/data/passwd.txt"];
    sed_substitute: ["sed", "s/o/0/g", "/data/lines.txt"];
    sed_range: ["sed", "-n", "2,4p", "/data/lines.txt"];
    awk_fields: ["awk", "-F", ":", "{ print $1, $3 * 2 }", "/data/passwd.txt"];
    awk_sum: ["awk", "{ s += $1 } END { print s, NR, s / NR }", "/data/numbers.txt"];
    grep: ["grep", "-n", "-i", "FOX", "/data/lines.txt"];
    grep_count: ["grep", "-c", "the", "/data/lines.txt"];
    grep_no_match: ["grep", "zebra", "/data/lines.txt"];
    seq: ["seq", "1", "3", "20"];
    seq_separator: ["seq", "-s", ",", "-w", "8", "12"];
    expr_multiply: ["expr", "6", "*", "7"];
    expr_length: ["expr", "length", "hello"];
    factor: ["factor", "360", "97", "1000001"];
    od: ["od", "-A", "x", "-t", "x1", "-v", "/data/binary.bin"];
    od_chars: ["od", "-c", "/data/lines.txt"];
    od_dev_zero: ["od", "-A", "d", "-t", "x1", "-N", "16", "/dev/zero"];
    hexdump: ["hexdump", "-C", "/data/binary.bin"];
    xxd: ["xxd", "/data/binary.bin"];
    strings: ["strings", "/data/binary.bin"];
    base64: ["base64", "/data/binary.bin"];
    base64_decode: ["base64", "-d"], stdin = "aGVsbG8gd29ybGQK\n";
    md5sum: ["md5sum", "/data/lines.txt", "/data/empty.txt"];
    md5sum_stdin: ["md5sum"], stdin = pseudo_random_bytes(256 * 1024, 5);
    sha1sum: ["sha1sum", "/data/lines.txt"];
    sha256sum: ["sha256sum", "/data/binary.bin"];
    sha512sum: ["sha512sum", "/data/words.txt"];
    crc32: ["crc32", "/data/lines.txt"];
    gzip_stdin: ["gzip", "-c", "-9"], stdin = LINES;
    ls: ["ls", "-1", "/data"];
    ls_recursive: ["ls", "-1", "-R", "/data/sub"];
    find: ["find", "/data", "-name", "leaf.txt"];
    stat_file: ["stat", "-c", "%n %s %F", "/data/lines.txt"];
    stat_dir: ["stat", "-c", "%n %F", "/data/sub"];
    realpath: ["realpath", "/data/sub/../lines.txt"];
    date_epoch: ["date", "-u", "-d", "@0"];
    date_format: ["date", "-u", "-d", "@1700000000", "+%Y-%m-%d %H:%M:%S %j %a"];
    true_status: ["true"];
    false_status: ["false"];
    test_numbers: ["test", "3", "-lt", "4"];
    basename: ["basename", "/a/b/c.txt", ".txt"];
    dirname: ["dirname", "/a/b/c.txt"];
    rev: ["rev", "/data/lines.txt"];
    tac: ["tac", "/data/lines.txt"];
    nl: ["nl", "/data/lines.txt"];
    fold: ["fold", "-w", "8", "/data/lines.txt"];
    paste: ["paste", "/data/left.txt", "/data/right.txt"];
    cmp_differs: ["cmp", "/data/left.txt", "/data/right.txt"];
    expand: ["expand"], stdin = "a\tb\tc\n\tindented\n";
    dd: ["dd", "if=/data/lines.txt", "bs=7", "count=2"];
    uname: ["uname", "-s", "-m"];
    env: ["env"], env = ["A=1", "B=two words"];
    sleep: ["sleep", "0.1"];
    touch_existing_and_new: ["touch", "/data/lines.txt", "/data/new.txt"];
    sh_sort_uniq_count: ["sh", "-c", "sort /data/words.txt | uniq -c | sort -rn | head -5"];
    sh_tr_sed: ["sh", "-c", "cat /data/lines.txt | tr a-z A-Z | sed -e 's/E/3/g' | head -3"];
    sh_awk_sum: ["sh", "-c", "awk '{ s += $1 } END { print \"sum\", s }' /data/numbers.txt | cat"];
    sh_md5sum: ["sh", "-c", "cat /data/lines.txt /data/words.txt | md5sum"];
    sh_gzip_round_trip: ["sh", "-c", "gzip -c /data/lines.txt | gzip -dc | md5sum; md5sum < /data/lines.txt"];
    sh_bzip2_round_trip: ["sh", "-c", "bzip2 -c /data/lines.txt | bzip2 -dc | cmp - /data/lines.txt && echo same"];
    sh_base64_od: ["sh", "-c", "head -c 48 /data/binary.bin | base64 | base64 -d | od -A d -t x1 | head -4"];
    sh_command_substitution: ["sh", "-c", "n=$(wc -l < /data/lines.txt); echo \"lines: $n\"; echo \"upper: $(echo abc | tr a-z A-Z)\""];
    sh_exit_statuses: ["sh", "-c", "(exit 3); echo \"subshell $?\"; true | false; echo \"failing pipeline $?\"; set -o pipefail; false | true; echo \"pipefail $?\"; sh -c 'exit 9'; echo \"nested $?\""];
    sh_trap_sigterm: ["sh", "-c", "trap 'echo trapped TERM; exit 42' TERM; kill -TERM $$; echo not reached"];
    sh_xargs_and_loop: ["sh", "-c", "printf 'a\\nb\\n' | xargs echo got; for i in 1 2 3; do echo \"item $i\" | tr 0-9 a-j; done"];
}

abi_test!(
    fn gzip_round_trip(mode) {
        // gzip in the VM must match native gzip; gunzip in the VM must restore the input.
        let compressed = check_applet(mode, &["gzip", "-c"], Some(LINES.as_bytes().to_vec()), &[]).stdout;
        let restored = SecureRun::new(mode).stdin(&compressed).run(&busybox(), &["gunzip", "-c"]);
        assert_output(&restored, 0, LINES.as_bytes());
    }
);

abi_test!(
    fn gunzip_a_mounted_file(mode) {
        let data = data_dir();
        let native = run_native(&busybox(), &["gzip", "-c", data.path().join("lines.txt").to_str().unwrap()], &[], None);
        assert_status(&native, 0);
        std::fs::write(data.path().join("lines.txt.gz"), &native.stdout).unwrap();
        let result = SecureRun::new(mode).mount(data.path(), GUEST_DATA, false).run(&busybox(), &["gunzip", "-c", "/data/lines.txt.gz"]);
        assert_output(&result, 0, LINES.as_bytes());
    }
);

/// Debian's static bash or zsh (`bash-static`, `zsh-static`); fails the test, naming the package, if missing.
fn static_shell(name: &str) -> PathBuf {
    let path = PathBuf::from(format!("/bin/{name}-static"));
    assert!(path.is_file(), "{} is not installed: install the Debian package `{name}-static`", path.display());
    // What makes these the test of `mpk` mode's step gate: their code holds guarded instructions by chance.
    assert!(!guarded_instructions(&path).is_empty(), "{} holds no guarded instruction any more", path.display());
    path
}

/// Command substitution, subshells and their statuses, a function's status through a substitution.
const SHELL_SCRIPT: &str =
    "x=$(echo sub); echo \"got $x\"; (exit 3); echo \"subshell $?\"; f() { echo in; return 4; }; y=$(f); echo \"$y $?\"; echo \"$(echo $(echo nested))\"";

abi_test!(fn bash_static_command_substitution(mode) {
    let bash = static_shell("bash");
    let native = run_native(&bash, &["-c", SHELL_SCRIPT], &[], None);
    assert_output(&native, 0, b"got sub\nsubshell 3\nin 4\nnested\n");
    let in_vm = SecureRun::new(mode).run(&bash, &["-c", SHELL_SCRIPT]);
    assert_same_as_native(&in_vm, &native);
    assert_no_panic(&in_vm);
});

abi_test!(fn zsh_static_command_substitution(mode) {
    let zsh = static_shell("zsh");
    let native = run_native(&zsh, &["-c", SHELL_SCRIPT], &[], None);
    assert_output(&native, 0, b"got sub\nsubshell 3\nin 4\nnested\n");
    let in_vm = SecureRun::new(mode).run(&zsh, &["-c", SHELL_SCRIPT]);
    assert_same_as_native(&in_vm, &native);
    assert_no_panic(&in_vm);
});
