//! Work spread over the machine's cores: the per-column steps of a flush
//! (gathering sorted rows, encoding column chunks) are independent, and a
//! flush is what ingest waits for once the memtable is full.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Rows below which per-column work stays on the calling thread: starting
/// threads costs tens of microseconds, which a query's small merge of
/// memtable rows would notice.
const MIN_ROWS: usize = 1 << 16;

/// [`map`] over per-column work on `rows` rows: on the calling thread when
/// they are few.
pub(crate) fn map_columns<T, R, F>(rows: usize, items: Vec<T>, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    if rows < MIN_ROWS {
        return items.into_iter().map(f).collect();
    }
    map(items, f)
}

/// `f` of every item, on up to one scoped thread per core (taking items in
/// order as threads come free); the results come back in the order of
/// `items`. One item, or one core, runs on the calling thread.
pub(crate) fn map<T, R, F>(items: Vec<T>, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let n = items.len();
    let items: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let item = items[i].lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(item) = item {
                        let result = f(item);
                        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every item was taken by a thread, and a panic ends the scope")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_order_of_the_items() {
        let squares = super::map((0..1000u64).collect(), |i| i * i);
        assert_eq!(squares, (0..1000u64).map(|i| i * i).collect::<Vec<_>>());
        assert!(super::map(Vec::<u8>::new(), |i| i).is_empty());
    }
}
