//! The allocator of every program that links the server: jemalloc, on
//! transparent huge pages.
//!
//! Ingest fills the memtable with hundreds of megabytes of column buffers,
//! and each flush allocates and drops arrays of the same size again. With
//! glibc's allocator every such buffer is fresh memory the kernel maps a
//! 4 KiB page at a time: a `small` load took close to a million page
//! faults, a third of its CPU time in the kernel. jemalloc keeps freed
//! memory for the next buffer, and with `thp:always` maps its extents as
//! 2 MiB pages (`bench/RESULTS.md`, "jemalloc on huge pages"). It replaces
//! `malloc` for the whole process, so the C libraries (zstd's contexts)
//! allocate from it too.
//!
//! Options given at run time in the `MALLOC_CONF` environment variable are
//! applied after the ones compiled in here.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's compiled-in options, read as the allocator starts.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static malloc_conf: Option<&'static std::ffi::c_char> =
    // SAFETY: the pointer is to the first byte of a static C string.
    Some(unsafe { &*c"thp:always".as_ptr() });

#[cfg(test)]
mod tests {
    use std::ffi::{CStr, c_char, c_void};

    /// The value of a string option of the running allocator.
    fn option(name: &CStr) -> String {
        let mut value: *const c_char = std::ptr::null();
        let mut len = std::mem::size_of::<*const c_char>();
        // SAFETY: `value` is a pointer-sized out-parameter, as jemalloc's
        // string options require, and nothing is written.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                &mut value as *mut *const c_char as *mut c_void,
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(rc, 0, "mallctl({name:?}) failed");
        // SAFETY: jemalloc returned a pointer to one of its static strings.
        unsafe { CStr::from_ptr(value) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn the_allocator_maps_huge_pages() {
        assert_eq!(option(c"opt.thp"), "always");
    }
}
