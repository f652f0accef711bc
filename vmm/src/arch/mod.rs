//! What the VMM fixes about the guest machine, by architecture (x86-64 is the only one): the
//! guest-physical layout below the loader's allocations, the boot GDT, and the vCPU state the kernel is
//! entered in. The KVM backend sets that state directly; the PVH trampoline of the QEMU backend reaches
//! it from 32-bit protected mode. Both take every value from here.

pub mod x86_64;
