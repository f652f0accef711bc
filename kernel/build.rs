//! For the guest build only: the linker script that gathers boot-only code into its own page-aligned
//! section, so the kernel can unmap it before the app starts.
fn main() {
    println!("cargo:rerun-if-changed=boot-text.ld");
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo:rustc-link-arg-bins=-T{dir}/boot-text.ld");
    }
}
