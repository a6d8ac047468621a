//! The allocator keeps the memory the process frees, for its next flush,
//! until it is told to hand it back. A test binary of its own: the resident
//! set it measures is the whole process's.

#![cfg(all(target_os = "linux", not(target_env = "musl")))]

/// The process's resident set, in bytes (`VmRSS` in `/proc/self/status`).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

#[test]
fn freed_memory_stays_with_the_process_until_it_is_released() {
    const SIZE: u64 = 256 << 20;
    let before = resident_bytes();
    let block = vec![1u8; SIZE as usize];
    std::hint::black_box(&block);
    let touched = resident_bytes();
    assert!(
        touched >= before + SIZE * 9 / 10,
        "a touched block of {SIZE} bytes took {before} -> {touched} resident"
    );
    drop(block);
    let kept = resident_bytes();
    assert!(
        kept + SIZE / 10 >= touched,
        "freed memory went back to the kernel at once: {touched} -> {kept} resident"
    );
    assert!(ingot_server::release_retained_memory());
    let released = resident_bytes();
    assert!(
        released + SIZE * 9 / 10 <= kept,
        "releasing kept memory left {kept} -> {released} resident"
    );
}
