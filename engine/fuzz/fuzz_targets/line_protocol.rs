//! Feeds arbitrary UTF-8 to the line-protocol parser.
//!
//! Fails when the parser (`lines` and `parse_line`) and the slow specification-level parser
//! (`line_protocol::spec`, written straight from the rules in the module documentation)
//! disagree: on which lines there are, their numbers, their parsed values, or on the physical
//! line of an error. Also checks that `lines` and `parse_line` never panic, that errors point
//! inside the text, and that every line that parses can be written back to a line that parses
//! the same.
//!
//! Run from `engine/` with `cargo +nightly fuzz run line_protocol`.

#![no_main]

use ingot_engine::line_protocol::{ParsedLine, lines, parse_line, spec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(difference) = spec::disagreement(text) {
        panic!("the parser and the spec disagree: {difference}");
    }
    let physical_lines = text.split('\n').count();
    let mut out = ParsedLine::default();
    for (line_no, line) in lines(text) {
        assert!((1..=physical_lines).contains(&line_no));
        match parse_line(line, line_no, &mut out) {
            Ok(()) => {
                assert!(!out.measurement.is_empty());
                assert!(!out.fields.is_empty());
                let written = write_line(&out);
                let mut reparsed = ParsedLine::default();
                let result = parse_line(&written, 1, &mut reparsed);
                assert_eq!(result, Ok(()), "{line:?} written as {written:?}");
                assert_eq!(reparsed, out, "{line:?} written as {written:?}");
            }
            Err(e) => {
                assert!(e.line >= line_no && e.line <= physical_lines, "{e}");
                assert!(e.column >= 1, "{e}");
            }
        }
    }
});

/// Serializes a parsed line back into line protocol.
fn write_line(line: &ParsedLine<'_>) -> String {
    let mut out = String::new();
    line.write_to(&mut out);
    out
}
