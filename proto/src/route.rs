//! Routing writes in a cluster of writer nodes: each series goes to one node,
//! chosen by a stable hash of its series key, so that every node holds whole
//! series and a replica can serve the union of the nodes' files without
//! deduplicating one node's rows against another's.
//!
//! The series key is the table name and the tag pairs sorted by tag name:
//! `readings,device_id=dev-7,plant=p1` (no escaping; names and values as
//! written). Nodes are chosen by rendezvous hashing: the node with the
//! highest weight `mix(crc32c(node_id) << 32 | crc32c(series_key))` (ties to
//! the smaller id), where `mix` is splitmix64's finalizer (see [`mix`]).
//! Adding a node moves only the series it wins, about 1/N of them; the
//! order in which nodes are listed does not matter. Clients in other
//! languages compute the same with any CRC-32C (Castagnoli) function.

/// The series key of a row of `table` with these tags (tags with no value
/// left out).
pub fn series_key<'a>(table: &str, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut tags: Vec<(&str, &str)> = tags.into_iter().collect();
    tags.sort_unstable();
    let mut key = String::from(table);
    for (name, value) in tags {
        key.push(',');
        key.push_str(name);
        key.push('=');
        key.push_str(value);
    }
    key
}

/// The position in `nodes` of the node that owns the series `series_key`;
/// `None` when `nodes` is empty.
pub fn node_for(series_key: &str, nodes: &[impl AsRef<str>]) -> Option<usize> {
    let key = u64::from(crc32c::crc32c(series_key.as_bytes()));
    nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let node = node.as_ref();
            let weight = mix(u64::from(crc32c::crc32c(node.as_bytes())) << 32 | key);
            (weight, std::cmp::Reverse(node), i)
        })
        .max()
        .map(|(_, _, i)| i)
}

/// splitmix64's finalizer: every bit of the input moves about half the
/// output's, which rendezvous hashing needs (a CRC alone is linear, and
/// would favour some nodes).
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The series key of one line of line protocol (`table,tag=v,... fields
/// time`), with escapes (`\,`, `\ `, `\=`) undone; `None` for a blank line
/// or a comment.
pub fn line_series_key(line: &str) -> Option<String> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    // The series part ends at the first space that is not escaped.
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    parts.last_mut().expect("one part").push(next);
                }
            }
            ',' => parts.push(String::new()),
            ' ' => break,
            c => parts.last_mut().expect("one part").push(c),
        }
    }
    let table = parts.remove(0);
    let tags: Vec<(&str, &str)> = parts.iter().filter_map(|p| p.split_once('=')).collect();
    Some(series_key(&table, tags))
}

/// Splits line protocol by owner: one text per node, in `nodes`' order.
pub fn split_lines(text: &str, nodes: &[impl AsRef<str>]) -> Vec<String> {
    let mut out = vec![String::new(); nodes.len()];
    for line in text.lines() {
        let Some(key) = line_series_key(line) else {
            continue;
        };
        if let Some(i) = node_for(&key, nodes) {
            out[i].push_str(line);
            out[i].push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_sorts_tags_and_undoes_escapes() {
        assert_eq!(
            line_series_key("readings,plant=p1,device_id=dev\\ 7 temperature=1 5"),
            Some("readings,device_id=dev 7,plant=p1".to_string())
        );
        assert_eq!(
            series_key("readings", [("plant", "p1"), ("device_id", "dev 7")]),
            "readings,device_id=dev 7,plant=p1"
        );
        assert_eq!(line_series_key("# comment"), None);
    }

    // Computed independently (a bitwise CRC-32C and splitmix64 in Python).
    const FIXED_OWNERS: [&str; 6] = ["a", "b", "c", "b", "c", "b"];

    #[test]
    fn routing_is_stable_spread_and_moves_little_when_a_node_joins() {
        let three = ["a", "b", "c"];
        let four = ["d", "c", "b", "a"];
        let mut counts = [0usize; 3];
        let mut moved = 0;
        for d in 0..3_000 {
            let key = series_key("readings", [("device_id", format!("dev-{d}").as_str())]);
            let i = node_for(&key, &three).unwrap();
            counts[i] += 1;
            // The same answer whatever the order the nodes are listed in.
            assert_eq!(
                node_for(&key, &["c", "a", "b"]).map(|j| ["c", "a", "b"][j]),
                Some(three[i])
            );
            let j = node_for(&key, &four).unwrap();
            if four[j] != three[i] {
                assert_eq!(four[j], "d", "a series moved between old nodes");
                moved += 1;
            }
        }
        assert!(counts.iter().all(|&n| n > 800), "{counts:?}");
        assert!((500..1_000).contains(&moved), "{moved} of 3000 moved");
        // Fixed answers, for clients in other languages to check against.
        let owners: Vec<&str> = (0..6)
            .map(|d| three[node_for(&format!("readings,device_id=dev-{d}"), &three).unwrap()])
            .collect();
        assert_eq!(owners, FIXED_OWNERS);
    }
}
