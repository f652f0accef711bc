//! Building the attack guests of `tests/guests/attacks/` with `gcc -nostdlib -static`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("eval/ has a parent directory")
}

/// `tests/guests/attacks/`.
pub fn attacks_dir() -> PathBuf {
    repo_root().join("tests").join("guests").join("attacks")
}

/// The guest that does nothing: the app of the run whose `--report` gives the kernel's layout.
pub const LAYOUT_PROBE: &str = "exit0";

/// Builds `tests/guests/attacks/<name>.S` into `out_dir/<name>` unless the binary is newer than the source
/// and the shared `attack.inc`. Returns the binary, or the compiler's complaint with an install hint.
pub fn build_attack_guest(name: &str, out_dir: &Path) -> Result<PathBuf, String> {
    let source = attacks_dir().join(format!("{name}.S"));
    if !source.is_file() {
        return Err(format!("attack guest source {} does not exist", source.display()));
    }
    std::fs::create_dir_all(out_dir).map_err(|error| format!("cannot create {}: {error}", out_dir.display()))?;
    let output = out_dir.join(name);
    let inputs = [source.clone(), attacks_dir().join("attack.inc")];
    if is_up_to_date(&output, &inputs) {
        return Ok(output);
    }
    // Build beside the final name and rename: a concurrent user never sees half a binary.
    let partial = out_dir.join(format!(".{name}.{}.partial", std::process::id()));
    let mut command = Command::new("gcc");
    command.args(["-nostdlib", "-static", "-o"]).arg(&partial).arg(&source);
    let built = command.output().map_err(|error| {
        format!("cannot run gcc for attack guest {name}: {error}\nhint: install the Debian package `gcc`")
    })?;
    if !built.status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(format!(
            "{command:?} failed with {}\n{}{}",
            built.status,
            String::from_utf8_lossy(&built.stdout),
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    std::fs::rename(&partial, &output).map_err(|error| format!("cannot rename {}: {error}", partial.display()))?;
    Ok(output)
}

fn is_up_to_date(output: &Path, inputs: &[PathBuf]) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|metadata| metadata.modified()).ok();
    let Some(built) = modified(output) else { return false };
    inputs.iter().all(|input| modified(input).is_some_and(|time: SystemTime| time <= built))
}
