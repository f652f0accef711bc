//! Protection-key policy: which key tags each kind of region, the two PKRU values, and which regions are
//! user pages in each isolation mode.
//!
//! # Keys
//! | key | regions | while the app runs ([`PKRU_APP`]) |
//! |-----|---------|-----------------------------------|
//! | [`PKEY_APP`] = 0 | app segments, and everything the app legitimately uses (its stack, brk, mmap) | read, write |
//! | [`PKEY_KERNEL_CODE`] = 1 | kernel text and rodata, the boot trampoline | no access |
//! | [`PKEY_KERNEL_DATA`] = 2 | kernel data and bss (heap, stacks, tables inside the image) | no access |
//! | [`PKEY_PHYSMAP`] = 3 | the kernel's physical map (page tables, boot info, every frame) | no access |
//! | 4..=15 | unused, denied | no access |
//!
//! Key 0 is the app's because it is the key every page gets by default and the one Linux programs assume
//! is always usable. Kernel code and constants get a key of their own so that the app cannot *read* them
//! (to find gadgets or leak the kernel's layout); note that protection keys govern data accesses only:
//! instruction fetches are never key-checked, so the app can still *execute* kernel text. That is why the
//! kernel's own text is scanned for WRPKRU/XRSTOR sequences at every byte offset (see [`crate::scan`]) and
//! why every kernel entry checks PKRU after switching it. Kernel data and the physical map are split so a
//! kernel that wants to (say, while copying from user memory) can open one without the other; the
//! physical map is the most sensitive window since it reaches the page tables.
//!
//! # PKRU
//! PKRU holds two bits per key: access-disable (AD) at bit `2k` and write-disable (WD) at bit `2k + 1`.
//! WD stops supervisor-mode writes only while CR0.WP = 1, which the kernel must keep set.
//!
//! # User pages
//! In `mpk` mode the app runs at CPL0 and protection keys apply to user pages only, so every region is a
//! user page (U=1); the CPU-read structures (IDT/GDT/TSS, IST stacks) are supervisor pages, but the kernel
//! maps those itself, outside the [`RegionKind`]s. In `ring3` and `none` only the app's segments are user
//! pages.

use kernel_abi::{IsolationMode, RegionKind};

/// Key of the app's memory: the default key, always accessible.
pub const PKEY_APP: u8 = 0;
/// Key of kernel text, rodata and the boot trampoline.
pub const PKEY_KERNEL_CODE: u8 = 1;
/// Key of kernel data, bss, heap and stacks.
pub const PKEY_KERNEL_DATA: u8 = 2;
/// Key of the kernel's physical map.
pub const PKEY_PHYSMAP: u8 = 3;
/// Number of protection keys (4-bit key field in a page-table entry).
pub const PKEY_COUNT: u8 = 16;

/// The PKRU value that denies all access to every key whose bit is set in `keys` (bit k for key k).
pub const fn pkru_denying(keys: u16) -> u32 {
    let mut pkru = 0;
    let mut key = 0;
    while key < PKEY_COUNT as u32 {
        if keys & (1 << key) != 0 {
            pkru |= 0b11 << (2 * key);
        }
        key += 1;
    }
    pkru
}

/// PKRU while the kernel runs: nothing denied (page permissions and CR0.WP still protect its text).
pub const PKRU_KERNEL: u32 = 0;
/// PKRU while the app runs: access- and write-disable for every key but [`PKEY_APP`].
pub const PKRU_APP: u32 = pkru_denying(!(1 << PKEY_APP));
const _: () = assert!(PKRU_APP == 0xffff_fffc);

/// The key a region of `kind` is tagged with.
pub const fn pkey_for(kind: RegionKind) -> u8 {
    match kind {
        RegionKind::AppSegment => PKEY_APP,
        RegionKind::KernelText | RegionKind::KernelRodata | RegionKind::BootTrampoline => PKEY_KERNEL_CODE,
        RegionKind::KernelData => PKEY_KERNEL_DATA,
        RegionKind::PhysMap => PKEY_PHYSMAP,
    }
}

/// Whether `pkru` lets a data access (a write when `write`) reach a page tagged `key`, assuming CR0.WP=1.
/// Keys above 15 do not exist and are never allowed.
pub const fn pkru_allows(pkru: u32, key: u8, write: bool) -> bool {
    if key >= PKEY_COUNT {
        return false;
    }
    let access_disable = pkru & (1 << (2 * key as u32)) != 0;
    let write_disable = pkru & (1 << (2 * key as u32 + 1)) != 0;
    !(access_disable || (write && write_disable))
}

/// Whether a region of `kind` is mapped as a user page (U=1) in `mode`.
pub const fn is_user_page(kind: RegionKind, mode: IsolationMode) -> bool {
    match mode {
        IsolationMode::Mpk => true,
        IsolationMode::Ring3 | IsolationMode::None => matches!(kind, RegionKind::AppSegment),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [RegionKind; 6] = [
        RegionKind::KernelText,
        RegionKind::KernelRodata,
        RegionKind::KernelData,
        RegionKind::PhysMap,
        RegionKind::AppSegment,
        RegionKind::BootTrampoline,
    ];

    #[test]
    fn only_app_segments_get_the_app_key() {
        for kind in KINDS {
            assert_eq!(pkey_for(kind) == PKEY_APP, !kind.is_kernel(), "{kind:?}");
            assert!(pkey_for(kind) < PKEY_COUNT);
        }
        assert_eq!(pkey_for(RegionKind::KernelText), 1);
        assert_eq!(pkey_for(RegionKind::KernelRodata), 1);
        assert_eq!(pkey_for(RegionKind::KernelData), 2);
        assert_eq!(pkey_for(RegionKind::PhysMap), 3);
    }

    #[test]
    fn app_pkru_denies_every_kernel_region_and_allows_the_app() {
        for kind in KINDS {
            let key = pkey_for(kind);
            let app_may = !kind.is_kernel();
            assert_eq!(pkru_allows(PKRU_APP, key, false), app_may, "{kind:?}");
            assert_eq!(pkru_allows(PKRU_APP, key, true), app_may, "{kind:?}");
            assert!(pkru_allows(PKRU_KERNEL, key, false) && pkru_allows(PKRU_KERNEL, key, true));
        }
        for key in 1..PKEY_COUNT {
            assert!(!pkru_allows(PKRU_APP, key, false));
        }
    }

    #[test]
    fn pkru_bit_layout() {
        assert_eq!(PKRU_APP, 0xffff_fffc);
        assert_eq!(pkru_denying(0), 0);
        assert_eq!(pkru_denying(1 << 3), 0b11 << 6);
        // Write-disable alone on key 2 (bit 5): reads pass, writes do not; other keys untouched.
        let pkru = 1 << 5;
        assert!(pkru_allows(pkru, 2, false) && !pkru_allows(pkru, 2, true));
        assert!(pkru_allows(pkru, 1, true) && pkru_allows(pkru, 3, true));
        // Access-disable alone on key 1 (bit 2) denies reads and writes.
        assert!(!pkru_allows(1 << 2, 1, false) && !pkru_allows(1 << 2, 1, true));
        assert!(!pkru_allows(0, 16, false) && !pkru_allows(0, u8::MAX, false));
    }

    #[test]
    fn user_pages_per_mode() {
        for kind in KINDS {
            assert!(is_user_page(kind, IsolationMode::Mpk), "{kind:?}");
            let app = kind == RegionKind::AppSegment;
            assert_eq!(is_user_page(kind, IsolationMode::Ring3), app, "{kind:?}");
            assert_eq!(is_user_page(kind, IsolationMode::None), app, "{kind:?}");
        }
    }
}
