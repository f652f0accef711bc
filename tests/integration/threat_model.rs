//! threat-model.md backs each claim with a test; this checks that every test it cites exists.
//!
//! Cited names are backticked paths (`attacks::read_kernel_data::qemu_mpk`, `run::tests::some_test`).
//! A path is found when its last segment is defined as an item (`fn`, `mod`, `const`...) in the Rust
//! sources under tests/, vmm/src, isolation/src, kernel/src, kernel/abi/src or eval/src, or when its last
//! two segments are a test that the mode macros generate (`tests_in_modes!([qemu_none, ...] fn name`, and
//! the macros wrapping it, `boot_test!`, `abi_test!`, `attack_test!`: `name::qemu_none`). No VM needed.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::guests::repo_root;

const SOURCE_DIRS: &[&str] = &["tests", "vmm/src", "isolation/src", "kernel/src", "kernel/abi/src", "eval/src"];

#[test]
fn every_test_cited_by_the_threat_model_exists() {
    let path = repo_root().join("threat-model.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let sources = read_sources();
    let known = KnownNames::collect(&sources);
    let cited = cited_paths(&text);
    let missing: Vec<&String> = cited.iter().filter(|cited| !known.has(cited)).collect();
    assert!(
        missing.is_empty(),
        "threat-model.md cites {} name(s) that no source defines:\n  {}",
        missing.len(),
        missing.iter().map(|name| name.as_str()).collect::<Vec<_>>().join("\n  ")
    );
}

/// The backticked tokens of `markdown` that look like paths: identifiers joined by `::`.
fn cited_paths(markdown: &str) -> BTreeSet<String> {
    markdown
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::trim)
        .filter(|token| token.contains("::"))
        .filter(|token| token.split("::").all(|segment| !segment.is_empty() && segment.chars().all(is_ident_char)))
        .map(str::to_owned)
        .collect()
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn read_sources() -> Vec<String> {
    let mut sources = Vec::new();
    for dir in SOURCE_DIRS {
        collect_rust_files(&repo_root().join(dir), &mut sources);
    }
    assert!(!sources.is_empty(), "found no Rust sources under {SOURCE_DIRS:?}");
    sources
}

fn collect_rust_files(dir: &Path, sources: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rust_files(&path, sources);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            if let Ok(text) = std::fs::read_to_string(&path) {
                sources.push(text);
            }
        }
    }
}

/// Every name the sources define, and every `name::mode` test the mode macros generate.
#[derive(Debug, Default)]
struct KnownNames {
    items: BTreeSet<String>,
    generated: BTreeSet<(String, String)>,
}

impl KnownNames {
    fn collect(sources: &[String]) -> Self {
        let mut known = Self::default();
        // Macros that wrap `tests_in_modes!` with a fixed mode list: name -> modes.
        let mut wrappers: Vec<(String, Vec<String>)> = Vec::new();
        for source in sources {
            for keyword in ["fn", "mod", "const", "static", "struct", "enum", "trait", "type"] {
                for name in idents_after(source, &format!("{keyword} ")) {
                    known.items.insert(name);
                }
            }
            for (at, _) in source.match_indices("tests_in_modes!(") {
                let rest = source[at + "tests_in_modes!(".len()..].trim_start();
                let Some(list) = rest.strip_prefix('[').and_then(|rest| rest.split_once(']')) else { continue };
                let modes: Vec<String> =
                    list.0.split(',').map(str::trim).filter(|mode| !mode.is_empty()).map(str::to_owned).collect();
                let Some(name) = list.1.trim_start().strip_prefix("fn ").map(leading_ident) else { continue };
                if name.starts_with('$') || name.is_empty() {
                    // Inside `macro_rules! wrapper`: the last one defined before this point.
                    if let Some(wrapper) = source[..at].rfind("macro_rules! ").map(|m| leading_ident(&source[m + 13..]))
                    {
                        wrappers.push((wrapper, modes));
                    }
                } else {
                    for mode in modes {
                        known.generated.insert((name.clone(), mode));
                    }
                }
            }
        }
        for source in sources {
            for (wrapper, modes) in &wrappers {
                for (at, _) in source.match_indices(&format!("{wrapper}!(")) {
                    let rest = source[at + wrapper.len() + 2..].trim_start();
                    let name = leading_ident(rest.strip_prefix("fn ").unwrap_or(rest));
                    if name.is_empty() || name.starts_with('$') {
                        continue;
                    }
                    for mode in modes {
                        known.generated.insert((name.clone(), mode.clone()));
                    }
                }
            }
        }
        known
    }

    fn has(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split("::").collect();
        let last = segments[segments.len() - 1];
        if segments.len() >= 2 {
            let name = segments[segments.len() - 2];
            if self.generated.contains(&(name.to_owned(), last.to_owned())) {
                return true;
            }
        }
        self.items.contains(last)
    }
}

fn leading_ident(text: &str) -> String {
    let text = text.trim_start();
    let dollar = text.starts_with('$');
    let body: String = text.chars().skip(usize::from(dollar)).take_while(|&c| is_ident_char(c)).collect();
    if dollar {
        format!("${body}")
    } else {
        body
    }
}

fn idents_after(source: &str, keyword: &str) -> Vec<String> {
    source
        .match_indices(keyword)
        .filter(|(at, _)| *at == 0 || !source[..*at].ends_with(is_ident_char))
        .map(|(at, _)| leading_ident(&source[at + keyword.len()..]))
        .filter(|name| !name.is_empty() && !name.starts_with('$'))
        .collect()
}

#[test]
fn the_checker_finds_plain_and_generated_tests() {
    let sources = vec![
        "macro_rules! boot_test {\n ($n:ident) => { tests_in_modes!([qemu_none, kvm_none] fn $name($arg) $body); };\n}\n\
         boot_test!(\n    fn hello(mode) {}\n);\n#[test]\nfn plain_test() {}\n\
         tests_in_modes!([qemu_mpk] fn direct(mode) {});\nattack_test!(ignored);"
            .to_owned(),
    ];
    let known = KnownNames::collect(&sources);
    assert!(known.has("boot::hello::qemu_none"));
    assert!(known.has("hello::kvm_none"));
    assert!(!known.has("boot::hello::qemu_mpk"));
    assert!(known.has("tests::plain_test"));
    assert!(known.has("direct::qemu_mpk"));
    assert!(!known.has("attacks::missing_test"));
    let cited = cited_paths("see `boot::hello::qemu_none` and `--isolation mpk` and `a::b c` and `x::y`");
    assert_eq!(cited.into_iter().collect::<Vec<_>>(), ["boot::hello::qemu_none", "x::y"]);
}
