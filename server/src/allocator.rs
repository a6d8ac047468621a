//! The allocator of every program that links the server: jemalloc, on
//! transparent huge pages, keeping what it frees while data arrives.
//!
//! Ingest fills the memtable with hundreds of megabytes of column buffers,
//! and each flush allocates and drops arrays of the same size again. With
//! glibc's allocator every such buffer is fresh memory the kernel maps a
//! 4 KiB page at a time: a `small` load took close to a million page
//! faults, a third of its CPU time in the kernel. jemalloc maps its extents
//! as 2 MiB pages with `thp:always` (`bench/RESULTS.md`, "jemalloc on huge
//! pages"). It replaces `malloc` for the whole process, so the C libraries
//! (zstd's contexts) allocate from it too.
//!
//! jemalloc's own policy hands memory back to the kernel soon after it is
//! freed: at once for allocations over 8 MiB, which go to an arena of their
//! own, and over ten seconds for the rest. Each flush's arrays then come
//! back as pages the kernel must zero again, and on a virtual machine whose
//! host reclaims the guest's free memory, a page touched afresh costs many
//! times a page reused: a `billion` load took 24 000 huge-page faults (48
//! GB zeroed) and more system time than its flushes' work
//! (`bench/RESULTS.md`, "Freed memory kept while data arrives"). So the
//! options compiled in here keep every freed page (`dirty_decay_ms:-1`), in
//! one arena that every thread shares (`narenas:1`, and no separate arena
//! for large allocations, `oversize_threshold:0`), so that memory one
//! thread frees another thread's next flush reuses. The process then holds
//! its peak, which the memtable budget bounds; [`release_when_idle`] hands
//! the pages back once writes stop.
//!
//! One arena serialises the allocations that miss the threads' caches.
//! Ingot's are mostly whole columns, few and large; on a machine with many
//! cores and a query-heavy load, `MALLOC_CONF=narenas:N` gives more arenas.
//! Options given at run time in the `MALLOC_CONF` environment variable are
//! applied after the ones compiled in here.

use std::ffi::CStr;
use std::time::Duration;

use ingot_engine::Engine;
use tokio::sync::watch;
use tracing::{debug, warn};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's compiled-in options, read as the allocator starts.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static malloc_conf: Option<&'static std::ffi::c_char> =
    // SAFETY: the pointer is to the first byte of a static C string.
    Some(unsafe {
        &*c"thp:always,narenas:1,oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:0".as_ptr()
    });

/// Hands every page the allocator keeps, freed but unused, back to the
/// kernel. Returns false if jemalloc refused.
pub fn release_retained_memory() -> bool {
    // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena's unused pages.
    const PURGE_ALL: &CStr = c"arena.4096.purge";
    // SAFETY: a purge takes and returns no value.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    rc == 0
}

/// What the engine has done, as far as the memory it frees goes: a change
/// means data arrived or was rewritten since the last look.
fn activity(engine: &Engine) -> (u64, u64, u64) {
    let stats = engine.stats();
    (stats.wal_records, stats.flushes, stats.compactions)
}

/// Every `interval` in which the engine took no write and ran no flush or
/// compaction, hands the memory the allocator keeps back to the kernel
/// (a query's freed memory included). Runs until `stopped` turns true.
pub(crate) async fn release_when_idle(
    engine: Engine,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut last = activity(&engine);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        let now = activity(&engine);
        if now == last {
            if release_retained_memory() {
                debug!("idle: freed memory returned to the kernel");
            } else {
                warn!("the allocator refused to return freed memory");
            }
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::{CStr, c_char, c_void};

    /// The value of an option of the running allocator, of type `T`.
    fn option<T: Copy>(name: &CStr, zero: T) -> T {
        let mut value = zero;
        let mut len = std::mem::size_of::<T>();
        // SAFETY: `value` is an out-parameter of the option's size, as
        // jemalloc checks against `len`, and nothing is written.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                &mut value as *mut T as *mut c_void,
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(rc, 0, "mallctl({name:?}) failed");
        value
    }

    #[test]
    fn the_allocator_maps_huge_pages_and_keeps_what_is_freed() {
        let thp: *const c_char = option(c"opt.thp", std::ptr::null());
        // SAFETY: jemalloc returned a pointer to one of its static strings.
        let thp = unsafe { CStr::from_ptr(thp) }.to_string_lossy();
        assert_eq!(thp, "always");
        assert_eq!(option::<isize>(c"opt.dirty_decay_ms", 0), -1);
        assert_eq!(option::<u32>(c"opt.narenas", 0), 1);
        assert_eq!(option::<usize>(c"opt.oversize_threshold", 1), 0);
    }
}
