//! The host's AFL coverage map: the SysV shared-memory segment afl-fuzz created and names in
//! `__AFL_SHM_ID`, attached here for the executor's life.

/// An attached segment.
pub struct Segment {
    id: i32,
    address: *mut u8,
    size: usize,
}

impl Segment {
    /// Attaches segment `id` read-write.
    pub fn attach(id: i32) -> std::io::Result<Self> {
        // SAFETY: all-zero is a valid `shmid_ds`, which IPC_STAT fills in.
        let mut stat: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: `stat` is valid for writes for the call.
        if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut stat) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: attaching at an address the kernel picks creates a new mapping and touches no existing
        // memory; the result is checked below.
        let address = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if address as isize == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self { id, address: address.cast(), size: stat.shm_segsz })
    }

    pub fn id(&self) -> i32 {
        self.id
    }

    /// The segment's size in bytes (the mapping covers it rounded up to whole pages).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The mapping's start, for a KVM memory slot (valid while `self` lives).
    pub fn address(&self) -> *mut u8 {
        self.address
    }

    /// Copies `bytes` (at most the segment's size of them) to the segment's start.
    pub fn write(&self, bytes: &[u8]) {
        let length = bytes.len().min(self.size);
        // SAFETY: the segment maps `size` bytes at `address` while `self` lives, and `length` is at most
        // that; `bytes` is a separate buffer of ours. afl-fuzz reads the segment only after the status of
        // the execution reaches it, so nothing writes it concurrently.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.address, length) };
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `address` is this segment's attachment, detached once.
        unsafe { libc::shmdt(self.address.cast()) };
    }
}
