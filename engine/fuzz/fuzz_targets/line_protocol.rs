//! Feeds arbitrary UTF-8 to the line-protocol parser.
//!
//! Checks that `lines` and `parse_line` never panic, that errors point inside the text, and
//! that every line that parses can be written back to a line that parses the same.
//!
//! Run from `engine/` with `cargo +nightly fuzz run line_protocol`.

#![no_main]

use ingot_engine::line_protocol::{FieldValue, ParsedLine, lines, parse_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
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

/// Writes `s`, escaping the characters in `specials` with a backslash.
fn write_escaped(out: &mut String, s: &str, specials: &[char]) {
    for c in s.chars() {
        if specials.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Serializes a parsed line back into line protocol.
fn write_line(line: &ParsedLine<'_>) -> String {
    let mut out = String::new();
    write_escaped(&mut out, &line.measurement, &[',', ' ']);
    for (key, value) in &line.tags {
        out.push(',');
        write_escaped(&mut out, key, &[',', '=', ' ']);
        out.push('=');
        write_escaped(&mut out, value, &[',', '=', ' ']);
    }
    for (i, (key, value)) in line.fields.iter().enumerate() {
        out.push(if i == 0 { ' ' } else { ',' });
        write_escaped(&mut out, key, &[',', '=', ' ']);
        out.push('=');
        match value {
            FieldValue::F64(x) => out.push_str(&format!("{x:?}")),
            FieldValue::I64(n) => out.push_str(&format!("{n}i")),
            FieldValue::U64(n) => out.push_str(&format!("{n}u")),
            FieldValue::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
            FieldValue::Str(s) => {
                out.push('"');
                write_escaped(&mut out, s, &['"', '\\']);
                out.push('"');
            }
        }
    }
    if let Some(ts) = line.timestamp {
        out.push_str(&format!(" {ts}"));
    }
    out
}
