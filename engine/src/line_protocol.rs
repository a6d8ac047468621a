//! InfluxDB line-protocol parser.
//!
//! A point is written as one line:
//!
//! ```text
//! measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]
//! ```
//!
//! [`lines`] splits a text into lines and [`parse_line`] parses one of them, borrowing from
//! the text: keys and values are copied only when they contain escapes.
//!
//! # Rules
//!
//! Ingot reads line protocol the way InfluxDB's reference decoder does: the `lineprotocol`
//! package of the v2 Go library `influxdata/line-protocol`, read together with its grammar
//! file and its test corpus. The few places where Ingot deliberately differs are listed after
//! the rules; `engine/docs/line_protocol.md` has examples for each rule. Below, "space" is
//! U+0020 only, and a "control character" is U+0000 to U+001F or U+007F (so tab, carriage
//! return and line feed are control characters).
//!
//! Text and lines:
//!
//! 1. Lines end at `\n`. A `\r` right before a `\n`, or as the last character of the text,
//!    belongs to the line ending; any other `\r` outside a string field value is an error.
//! 2. A line that is empty or holds only spaces is skipped. Any other whitespace makes it an
//!    error (a tab is not a space).
//! 3. A line whose first character after any spaces is `#` is a comment and is skipped. A
//!    comment holding a control character (a tab, say) is an error.
//! 4. A `\n` inside a string field value belongs to the value, so a line can span several
//!    physical lines; it is numbered by its first. A line with an error ends at the end of the
//!    physical line where the error is, except that a string that is never closed runs to the
//!    end of the text: everything after its opening quote belongs to that one bad line.
//!
//! The parts of a line:
//!
//! 5. Spaces may come before the measurement and at the end of the line. One or more spaces
//!    separate the measurement and tags from the fields, and the fields from the timestamp.
//!    Nothing else separates anything: a tab in their place is an error.
//! 6. A comma after the measurement or after a tag value must be followed by a tag, and one
//!    after a field value by a field. Tags are optional; at least one field is required.
//!
//! Names (the measurement, tag keys, tag values and field keys):
//!
//! 7. A name is not empty and holds no control character. Unescaped, a measurement cannot
//!    hold a space or a comma and cannot start with `#` (rule 3); a tag key, tag value or field
//!    key cannot hold a space, a comma or `=`. A measurement may hold `=`.
//! 8. A backslash before a character that the name could not hold otherwise (space and comma
//!    in a measurement; space, comma and `=` in the others) stands for that character. Any
//!    other backslash is just a backslash, and the character after it is read as usual: `a\b`
//!    and `a\\b` stay as written, and `a\\ b` is `a\ b`, the second backslash escaping the
//!    space. A backslash at the end of the text stays.
//!
//! Field values:
//!
//! 9. A float is an optional `-`, decimal digits with an optional `.` (at least one digit, on
//!    either side of it), and an optional exponent: `e` or `E`, an optional sign and digits.
//!    `1`, `-1.5`, `.5`, `5.`, `1e-3`. Nothing else: no `+` in front, no `inf`, `nan`, `_` or
//!    hexadecimal. A value beyond the range of f64 is an error; one too small for it is 0.
//! 10. An integer is an optional `-`, digits and `i`, within i64 (`-12i`). An unsigned integer
//!     is digits and `u`, within u64 (`12u`). No `+` in front.
//! 11. A boolean is `t`, `T`, `true`, `True`, `TRUE`, `f`, `F`, `false`, `False` or `FALSE`.
//! 12. A string is written between double quotes. In it `\"`, `\\`, `\n`, `\r` and `\t` stand
//!     for a quote, a backslash, a line feed, a carriage return and a tab; any other backslash
//!     is just a backslash, and the character after it is read as usual. Everything else,
//!     line breaks and control characters included, is taken as it is.
//! 13. An unquoted value runs up to the next comma, space, `\r` or `\n`, and all of it must be
//!     one of the forms above. A string's closing quote must be followed by a comma, a space
//!     or the end of the line.
//!
//! Timestamp:
//!
//! 14. The timestamp is optional: an optional `-` and decimal digits, within i64, followed by
//!     nothing but spaces. No `+` in front. A line without one is written at the time of the
//!     write.
//!
//! Keys (Ingot's own rules, see below):
//!
//! 15. A tag key may appear only once in a line.
//! 16. When a field key repeats, the field keeps the position of its first occurrence and the
//!     value of its last.
//!
//! # Where Ingot differs from the reference decoder
//!
//! * Rules 15 and 16: the reference decoder hands every tag and field to its caller and leaves
//!   repeated keys to it. InfluxDB's servers reject a repeated tag key and keep the last value
//!   of a repeated field key; so does Ingot.
//! * Rule 9: the reference decoder passes float text to Go's `strconv.ParseFloat`, so it also
//!   takes `1_000` and hexadecimal floats such as `0x1p3`. The grammar published with it
//!   (`line-protocol.ebnf`) and InfluxDB's servers allow decimal floats only, and so does
//!   Ingot.
//! * After a stray `\r` that follows the last field of a line without a timestamp, the
//!   reference decoder reports a second error for the rest of that physical line. Ingot
//!   reports the line once.
//!
//! [`spec`] is a slow parser written straight from these rules; the tests and the fuzz target
//! check that it and this one agree.

use std::borrow::Cow;

#[doc(hidden)]
pub mod spec;

/// One parsed line. Borrowed from the input text; keys and values are `Cow::Owned` only when
/// they contained escapes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ParsedLine<'a> {
    /// The measurement name, unescaped.
    pub measurement: Cow<'a, str>,
    /// Tag keys and values, unescaped, in the order of the line. Keys are unique.
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Field keys and values, in the order of each key's first occurrence. Keys are unique;
    /// there is at least one field after a successful parse.
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    /// The timestamp as written, or `None` when the line has none (meaning "now").
    pub timestamp: Option<i64>,
}

/// The value of one field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// A finite float, written without a suffix: `1.5`, `-2`, `1e-3`.
    F64(f64),
    /// A signed integer, written with an `i` suffix: `-12i`.
    I64(i64),
    /// An unsigned integer, written with a `u` suffix: `12u`.
    U64(u64),
    /// A boolean: `t`, `true`, `f`, `false` and their capitalised spellings.
    Bool(bool),
    /// A double-quoted string, unescaped.
    Str(Cow<'a, str>),
}

/// A line-protocol syntax error. `line` and `column` count from 1; column is a character (not
/// byte) position in the line where the problem is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// The 1-based line number of the problem in the whole text.
    pub line: usize,
    /// The 1-based character position of the problem within its line.
    pub column: usize,
    /// What was wrong and what was expected instead.
    pub message: String,
}

/// Iterates the lines of `text` that are not blank (rule 2) or comments (rule 3) as
/// `(line_number_from_1, line_str)`.
///
/// The yielded line keeps its leading spaces (so that error columns match the text) but not
/// its line ending. A line holding a string field value with a `\n` in it spans several
/// physical lines and is numbered by the first (rule 4). Lines that [`parse_line`] will reject
/// are yielded too, cut where rule 4 says.
pub fn lines(text: &str) -> Lines<'_> {
    Lines {
        text,
        pos: 0,
        line_no: 1,
    }
}

/// The iterator returned by [`lines`].
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    text: &'a str,
    /// Byte offset of the next line's start.
    pos: usize,
    /// Physical line number of the line starting at `pos`.
    line_no: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.text.as_bytes();
        while self.pos < b.len() {
            let start = self.pos;
            // The line's first `\n`, and whether a double quote comes before it: one scan.
            let (nl, quoted) = match memchr::memchr2(b'\n', b'"', &b[start..]) {
                Some(p) if b[start + p] == b'"' => (next_newline(b, start + p), true),
                Some(p) => (start + p, false),
                None => (b.len(), false),
            };
            let physical = strip_cr(&b[start..nl]);
            let end = match physical.iter().position(|&c| c != b' ') {
                // Blank (rule 2).
                None => None,
                // A comment (rule 3), unless it holds a control character.
                Some(p) if physical[p] == b'#' => {
                    physical[p..].iter().any(|&c| is_control(c)).then_some(nl)
                }
                // Only a line with a double quote can hold a string value that spans lines.
                Some(_) if quoted => Some(quoted_line_end(self.text, start, nl)),
                Some(_) => Some(nl),
            };
            let Some(end) = end else {
                self.line_no += 1;
                self.pos = nl + 1;
                continue;
            };
            let line_no = self.line_no;
            let inner_newlines = if end > nl {
                count_newlines(&b[nl..end])
            } else {
                0
            };
            self.line_no += inner_newlines + 1;
            self.pos = end + 1;
            // `start` and `end` are 0, the text's length or next to a `\n`: char boundaries.
            let line = &self.text[start..end];
            return Some((line_no, line.strip_suffix('\r').unwrap_or(line)));
        }
        None
    }
}

impl std::iter::FusedIterator for Lines<'_> {}

/// Index of the first `\n` at or after `from`, or the length of `b`.
#[inline]
fn next_newline(b: &[u8], from: usize) -> usize {
    memchr::memchr(b'\n', &b[from..]).map_or(b.len(), |p| from + p)
}

fn count_newlines(b: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', b).count()
}

/// `b` without one trailing `\r`.
#[inline]
fn strip_cr(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Finds the end of the line that starts at `start` and contains a double quote, `nl` being
/// its first `\n` (or the text's end): `nl` unless a string field value runs past it (rule 4).
fn quoted_line_end(text: &str, start: usize, nl: usize) -> usize {
    let b = text.as_bytes();
    if !string_may_cross(b, start, nl) {
        return nl;
    }
    // Rare: a string value holds a line break, or is never closed. Where the line ends now
    // depends on whether it parses up to that string, so parse it. A `\r` that ends the text
    // is a line ending (rule 1).
    let rest = &text[start..];
    let rest = rest.strip_suffix('\r').unwrap_or(rest);
    let mut scratch = ParsedLine::default();
    match parse_entry(rest, &mut scratch) {
        Ok(end) => start + end,
        Err(e) if e.to_text_end => b.len(),
        Err(e) => next_newline(b, start + e.pos),
    }
}

/// Whether the line at `start`, read as far as it can be without checking values, has a
/// string field value whose closing quote is not before `nl`. When it has none, the line ends
/// at `nl` whether or not it parses: anything wrong in it is before `nl`.
fn string_may_cross(b: &[u8], start: usize, nl: usize) -> bool {
    let mut i = skip_spaces(b, start);
    let (end, _) = scan_name(b, i, &MEASUREMENT_STOPS, &MEASUREMENT_ESCAPES);
    if end == i {
        return false;
    }
    i = end;
    while b.get(i) == Some(&b',') {
        let (key_end, _) = scan_name(b, i + 1, &KEY_STOPS, &KEY_ESCAPES);
        if key_end == i + 1 || b.get(key_end) != Some(&b'=') {
            return false;
        }
        let (value_end, _) = scan_name(b, key_end + 1, &KEY_STOPS, &KEY_ESCAPES);
        if value_end == key_end + 1 {
            return false;
        }
        i = value_end;
    }
    if b.get(i) != Some(&b' ') {
        return false;
    }
    i = skip_spaces(b, i);
    loop {
        let (key_end, _) = scan_name(b, i, &KEY_STOPS, &KEY_ESCAPES);
        if key_end == i || b.get(key_end) != Some(&b'=') {
            return false;
        }
        i = key_end + 1;
        if b.get(i) == Some(&b'"') {
            match string_end(b, i + 1) {
                Some((close, _)) if close < nl => i = close + 1,
                _ => return true,
            }
        } else {
            i = unquoted_value_end(b, i);
        }
        if b.get(i) != Some(&b',') {
            return false;
        }
        i += 1;
    }
}

type ByteSet = [bool; 256];

/// The set of `bytes`, plus the control characters when `control` is set.
const fn byte_set(bytes: &[u8], control: bool) -> ByteSet {
    let mut set = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        set[bytes[i] as usize] = true;
        i += 1;
    }
    if control {
        let mut c = 0;
        while c < 0x20 {
            set[c] = true;
            c += 1;
        }
        set[0x7f] = true;
    }
    set
}

/// U+0000 to U+001F and U+007F.
static CONTROL: ByteSet = byte_set(b"", true);
/// Characters a backslash escapes in a measurement (rule 8).
static MEASUREMENT_ESCAPES: ByteSet = byte_set(b", ", false);
/// Bytes that end or interrupt the scan of a measurement (rule 7).
static MEASUREMENT_STOPS: ByteSet = byte_set(b"\\, ", true);
/// Characters a backslash escapes in tag keys, tag values and field keys (rule 8).
static KEY_ESCAPES: ByteSet = byte_set(b",= ", false);
/// Bytes that end or interrupt the scan of tag keys, tag values and field keys (rule 7).
static KEY_STOPS: ByteSet = byte_set(b"\\,= ", true);
/// Characters a backslash escapes in a string field value (rule 12).
static STRING_ESCAPES: ByteSet = byte_set(b"\"\\nrt", false);
/// Bytes that end an unquoted field value (rule 13).
static VALUE_STOPS: ByteSet = byte_set(b", \r\n", false);

#[inline]
fn is_control(c: u8) -> bool {
    CONTROL[c as usize]
}

#[inline]
fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// Whether `i` is at the end of the line: the end of `b`, a `\n`, or a `\r` before a `\n`.
#[inline]
fn at_line_end(b: &[u8], i: usize) -> bool {
    match b.get(i) {
        None | Some(b'\n') => true,
        Some(b'\r') => b.get(i + 1) == Some(&b'\n'),
        Some(_) => false,
    }
}

/// Scans a name (rules 7 and 8) from `i` to the first byte of `stops` that is neither a
/// backslash nor escaped, or the end of `b`. Returns the name's end and whether it holds an
/// escape.
#[inline]
fn scan_name(b: &[u8], mut i: usize, stops: &ByteSet, escapes: &ByteSet) -> (usize, bool) {
    let mut escaped = false;
    while i < b.len() {
        let c = b[i];
        if !stops[c as usize] {
            i += 1;
        } else if c == b'\\' {
            // An escape takes the next byte with it; any other backslash is itself.
            if b.get(i + 1).is_some_and(|&next| escapes[next as usize]) {
                escaped = true;
                i += 2;
            } else {
                i += 1;
            }
        } else {
            break;
        }
    }
    (i, escaped)
}

/// The name `line[start..end]` as a `Cow`, unescaped when `escaped` is set.
#[inline(always)]
fn name<'a>(
    line: &'a str,
    start: usize,
    end: usize,
    escaped: bool,
    escapes: &ByteSet,
) -> Cow<'a, str> {
    let raw = &line[start..end];
    if escaped {
        Cow::Owned(unescape_name(raw, escapes))
    } else {
        Cow::Borrowed(raw)
    }
}

#[cold]
fn unescape_name(raw: &str, escapes: &ByteSet) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1).is_some_and(|&c| escapes[c as usize]) {
            // Drop the backslash; the escaped ASCII character is copied with what follows.
            out.push_str(&raw[copied..i]);
            copied = i + 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    out.push_str(&raw[copied..]);
    out
}

/// Finds the closing quote of a string field value whose text starts at `from` (rule 12).
/// Returns its position and whether the string holds an escape; `None` when it is never
/// closed.
#[inline]
fn string_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        i += b.get(i..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
        if b[i] == b'"' {
            return Some((i, escaped));
        }
        if b.get(i + 1).is_some_and(|&c| STRING_ESCAPES[c as usize]) {
            escaped = true;
            i += 2;
        } else {
            i += 1;
        }
    }
}

#[cold]
fn unescape_string(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let replacement = match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'"')) => '"',
            (b'\\', Some(b'\\')) => '\\',
            (b'\\', Some(b'n')) => '\n',
            (b'\\', Some(b'r')) => '\r',
            (b'\\', Some(b't')) => '\t',
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&raw[copied..i]);
        out.push(replacement);
        i += 2;
        copied = i;
    }
    out.push_str(&raw[copied..]);
    out
}

/// The end of the unquoted field value starting at `i` (rule 13).
#[inline]
fn unquoted_value_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| VALUE_STOPS[c as usize])
        .map_or(b.len(), |p| i + p)
}

/// A syntax error found by [`parse_entry`].
#[derive(Debug)]
struct Syntax {
    /// Byte position of the problem.
    pos: usize,
    message: String,
    /// A string that is never closed: the bad line runs to the end of the text (rule 4).
    to_text_end: bool,
}

#[cold]
#[inline(never)]
fn syntax(pos: usize, message: String) -> Syntax {
    Syntax {
        pos,
        message,
        to_text_end: false,
    }
}

/// Builds the error for byte position `pos` of `line`, whose first physical line is `line_no`.
#[cold]
#[inline(never)]
fn error(line: &str, line_no: usize, pos: usize, message: String) -> ParseError {
    let b = line.as_bytes();
    let before = &b[..pos.min(b.len())];
    let (line, this_line) = match before.iter().rposition(|&c| c == b'\n') {
        Some(p) => (line_no + count_newlines(before), &before[p + 1..]),
        None => (line_no, before),
    };
    // Count characters: every byte that is not a UTF-8 continuation byte starts one.
    let column = 1 + this_line.iter().filter(|&&c| c & 0xC0 != 0x80).count();
    ParseError {
        line,
        column,
        message,
    }
}

/// Quotes `s` for an error message, shortened when long.
fn quoted(s: &str) -> String {
    const MAX_CHARS: usize = 48;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// Names the character at byte `pos` of `line` for an error message.
#[cold]
fn found(line: &str, pos: usize) -> String {
    match line.get(pos..).and_then(|rest| rest.chars().next()) {
        None => "the end of the line".to_owned(),
        Some(' ') => "a space".to_owned(),
        Some('\t') => "a tab (only spaces separate the parts of a line)".to_owned(),
        Some('\r') => "a carriage return (allowed only right before a line feed)".to_owned(),
        Some('\n') => "a line break".to_owned(),
        Some(c) if c.is_ascii_control() => format!("control character U+{:04X}", u32::from(c)),
        Some(c) => format!("{c:?}"),
    }
}

/// Up to this many tags or fields, duplicate keys are found by comparing every pair, which
/// needs no allocation; above it, by sorting.
const SMALL: usize = 16;

/// Parses one line into `out`, reusing its vectors' capacity (they are cleared first). No heap
/// allocation when the line has no escapes and `out` has capacity already.
///
/// `line` is a line as [`lines`] yields it, without its line ending; `line_no` is its number
/// in its text, and errors report positions relative to it. On error `out` holds an
/// unspecified part of the line.
pub fn parse_line<'a>(
    line: &'a str,
    line_no: usize,
    out: &mut ParsedLine<'a>,
) -> Result<(), ParseError> {
    out.measurement = Cow::Borrowed("");
    out.tags.clear();
    out.fields.clear();
    out.timestamp = None;

    match parse_entry(line, out) {
        Ok(end) if end == line.len() => {}
        Ok(end) => {
            return Err(error(
                line,
                line_no,
                end,
                "unexpected line break outside a string value: pass one line at a time, as `lines` yields them"
                    .to_owned(),
            ));
        }
        Err(e) => return Err(error(line, line_no, e.pos, e.message)),
    }
    if let Some(dup) = find_duplicate_tag(&out.tags) {
        return Err(error(
            line,
            line_no,
            tag_key_start(line.as_bytes(), dup),
            format!("duplicate tag key {}", quoted(&out.tags[dup].0)),
        ));
    }
    dedup_fields(&mut out.fields);
    Ok(())
}

/// Parses the line at the start of `s` up to the end of `s` or its line ending (rules 1 and 5
/// to 14), pushing tags and fields to `out` as they come, repeated keys and all. Returns the
/// position of the `\n` that ends the line, or the length of `s`.
fn parse_entry<'a>(s: &'a str, out: &mut ParsedLine<'a>) -> Result<usize, Syntax> {
    let b = s.as_bytes();

    // Measurement.
    let mut i = skip_spaces(b, 0);
    if b.get(i) == Some(&b'#') {
        return Err(comment_error(s, i));
    }
    let (end, escaped) = scan_name(b, i, &MEASUREMENT_STOPS, &MEASUREMENT_ESCAPES);
    if end == i {
        return Err(syntax(
            i,
            format!(
                "expected a measurement name at the start of the line, found {}",
                found(s, i)
            ),
        ));
    }
    out.measurement = name(s, i, end, escaped, &MEASUREMENT_ESCAPES);
    i = end;

    // Tags.
    while b.get(i) == Some(&b',') {
        i += 1;
        let key_start = i;
        let (key_end, escaped) = scan_name(b, i, &KEY_STOPS, &KEY_ESCAPES);
        if key_end == key_start {
            return Err(syntax(
                i,
                format!("expected a tag key after ',', found {}", found(s, i)),
            ));
        }
        let key = name(s, key_start, key_end, escaped, &KEY_ESCAPES);
        if b.get(key_end) != Some(&b'=') {
            return Err(syntax(
                key_end,
                format!(
                    "expected '=' after tag key {}, found {}",
                    quoted(&key),
                    found(s, key_end)
                ),
            ));
        }
        let value_start = key_end + 1;
        let (value_end, escaped) = scan_name(b, value_start, &KEY_STOPS, &KEY_ESCAPES);
        if value_end == value_start {
            return Err(syntax(
                value_start,
                format!(
                    "expected a tag value after '=' for tag key {}, found {}",
                    quoted(&key),
                    found(s, value_start)
                ),
            ));
        }
        let value = name(s, value_start, value_end, escaped, &KEY_ESCAPES);
        out.tags.push((key, value));
        i = value_end;
    }
    if b.get(i) != Some(&b' ') {
        return Err(after_tags_error(s, i, out));
    }

    // Fields.
    i = skip_spaces(b, i);
    if at_line_end(b, i) {
        return Err(missing_fields(i));
    }
    loop {
        let key_start = i;
        let (key_end, escaped) = scan_name(b, i, &KEY_STOPS, &KEY_ESCAPES);
        if key_end == key_start {
            let after = if out.fields.is_empty() {
                ""
            } else {
                " after ','"
            };
            return Err(syntax(
                i,
                format!("expected a field key{after}, found {}", found(s, i)),
            ));
        }
        let key = name(s, key_start, key_end, escaped, &KEY_ESCAPES);
        if b.get(key_end) != Some(&b'=') {
            return Err(syntax(
                key_end,
                format!(
                    "expected '=' after field key {}, found {}",
                    quoted(&key),
                    found(s, key_end)
                ),
            ));
        }
        let (value, value_end) = parse_field_value(s, key_end + 1, &key)?;
        out.fields.push((key, value));
        i = value_end;
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b' ') => break,
            _ if at_line_end(b, i) => return Ok(line_end(b, i)),
            _ => return Err(after_field_error(s, i, out)),
        }
    }

    // Timestamp. Here `i` is at the space after the fields.
    i = skip_spaces(b, i);
    if at_line_end(b, i) {
        return Ok(line_end(b, i));
    }
    let start = i;
    while b.get(i).is_some_and(|&c| c == b'-' || c.is_ascii_digit()) {
        i += 1;
    }
    if b.get(i) != Some(&b' ') && !at_line_end(b, i) {
        let end = unquoted_value_end(b, start);
        return Err(syntax(
            start,
            format!(
                "invalid timestamp {}: expected an integer, optionally negative, followed by the end of the line",
                quoted(&s[start..end])
            ),
        ));
    }
    let text = &s[start..i];
    out.timestamp = Some(match parse_i64(text.as_bytes()) {
        Ok(ts) => ts,
        Err(IntError::Invalid) => {
            return Err(syntax(
                start,
                format!(
                    "invalid timestamp {}: expected an integer, optionally negative",
                    quoted(text)
                ),
            ));
        }
        Err(IntError::Overflow) => {
            return Err(syntax(
                start,
                format!("timestamp out of range for i64: {}", quoted(text)),
            ));
        }
    });
    i = skip_spaces(b, i);
    if !at_line_end(b, i) {
        let end = next_newline(b, i);
        return Err(syntax(
            i,
            format!(
                "expected the end of the line after the timestamp, found {}",
                quoted(&s[i..end])
            ),
        ));
    }
    Ok(line_end(b, i))
}

/// The position of the `\n` of the line ending at `i` (see [`at_line_end`]), or `b.len()`.
#[inline]
fn line_end(b: &[u8], i: usize) -> usize {
    if b.get(i) == Some(&b'\r') { i + 1 } else { i }
}

#[cold]
fn missing_fields(pos: usize) -> Syntax {
    syntax(
        pos,
        "missing field set: a line needs at least one field (measurement[,tags] fields [timestamp])"
            .to_owned(),
    )
}

/// The error for a line whose first non-space character is `#` at `pos` (rule 3).
#[cold]
fn comment_error(s: &str, pos: usize) -> Syntax {
    let b = s.as_bytes();
    let end = next_newline(b, pos);
    match b[pos..end].iter().position(|&c| is_control(c)) {
        Some(p) => syntax(
            pos + p,
            format!(
                "a comment (a line starting with '#') must not hold control characters, found {}",
                found(s, pos + p)
            ),
        ),
        None => syntax(
            pos,
            "this line is a comment (it starts with '#') and holds no point".to_owned(),
        ),
    }
}

/// The error for a measurement or tag value at whose end `pos` there is no space.
#[cold]
fn after_tags_error(s: &str, pos: usize, out: &ParsedLine<'_>) -> Syntax {
    let b = s.as_bytes();
    match (b.get(pos), out.tags.last()) {
        (Some(b'='), Some((key, _))) => syntax(
            pos,
            format!(
                "unexpected '=' in the value of tag key {}: write it as '\\='",
                quoted(key)
            ),
        ),
        _ if at_line_end(b, pos) => missing_fields(pos),
        (_, None) => syntax(
            pos,
            format!(
                "expected ',' or a space after measurement {}, found {}",
                quoted(&out.measurement),
                found(s, pos)
            ),
        ),
        (_, Some((key, _))) => syntax(
            pos,
            format!(
                "expected ',' or a space after the value of tag key {}, found {}",
                quoted(key),
                found(s, pos)
            ),
        ),
    }
}

/// The error for a field value followed at `pos` by something other than a comma, a space or
/// the end of the line.
#[cold]
fn after_field_error(s: &str, pos: usize, out: &ParsedLine<'_>) -> Syntax {
    let key = out.fields.last().map_or("", |(key, _)| key.as_ref());
    syntax(
        pos,
        format!(
            "expected ',', a space or the end of the line after the value of field key {}, found {}",
            quoted(key),
            found(s, pos)
        ),
    )
}

/// Parses the field value starting at byte `start` of `line` (rules 9 to 13); returns it and
/// the byte position after it.
#[inline(always)]
fn parse_field_value<'a>(
    line: &'a str,
    start: usize,
    key: &str,
) -> Result<(FieldValue<'a>, usize), Syntax> {
    let b = line.as_bytes();

    if b.get(start) == Some(&b'"') {
        let Some((close, escaped)) = string_end(b, start + 1) else {
            return Err(Syntax {
                pos: start,
                message: format!(
                    "unterminated string field value for field key {}: expected a closing '\"'",
                    quoted(key)
                ),
                to_text_end: true,
            });
        };
        let raw = &line[start + 1..close];
        let value = if escaped {
            Cow::Owned(unescape_string(raw))
        } else {
            Cow::Borrowed(raw)
        };
        return Ok((FieldValue::Str(value), close + 1));
    }

    let end = unquoted_value_end(b, start);
    let text = &line[start..end];
    let v = text.as_bytes();
    let Some(&first) = v.first() else {
        return Err(syntax(
            start,
            format!(
                "expected a field value after '=' for field key {}, found {}",
                quoted(key),
                found(line, start)
            ),
        ));
    };
    let value = if first.is_ascii_digit() || first == b'-' || first == b'.' {
        match v.split_last() {
            Some((b'i', digits)) => match parse_i64(digits) {
                Ok(n) => FieldValue::I64(n),
                Err(IntError::Invalid) => {
                    return Err(syntax(
                        start,
                        format!(
                            "invalid integer field value {}: expected an optional '-' and digits before the 'i' suffix",
                            quoted(text)
                        ),
                    ));
                }
                Err(IntError::Overflow) => {
                    return Err(syntax(
                        start,
                        format!("integer field value out of range for i64: {}", quoted(text)),
                    ));
                }
            },
            Some((b'u', digits)) => {
                if digits.first() == Some(&b'-') {
                    return Err(syntax(
                        start,
                        format!(
                            "invalid unsigned integer field value {}: it must not be negative",
                            quoted(text)
                        ),
                    ));
                }
                match parse_u64(digits) {
                    Ok(n) => FieldValue::U64(n),
                    Err(IntError::Invalid) => {
                        return Err(syntax(
                            start,
                            format!(
                                "invalid unsigned integer field value {}: expected digits before the 'u' suffix",
                                quoted(text)
                            ),
                        ));
                    }
                    Err(IntError::Overflow) => {
                        return Err(syntax(
                            start,
                            format!(
                                "unsigned integer field value out of range for u64: {}",
                                quoted(text)
                            ),
                        ));
                    }
                }
            }
            _ => match parse_float(v) {
                Some(x) if x.is_finite() => FieldValue::F64(x),
                Some(_) => {
                    return Err(syntax(
                        start,
                        format!("float field value out of range for f64: {}", quoted(text)),
                    ));
                }
                None => {
                    return Err(syntax(
                        start,
                        format!(
                            "invalid numeric field value {}: expected a float (1.5), an integer (2i) or an unsigned integer (3u)",
                            quoted(text)
                        ),
                    ));
                }
            },
        }
    } else {
        match v {
            b"t" | b"T" | b"true" | b"True" | b"TRUE" => FieldValue::Bool(true),
            b"f" | b"F" | b"false" | b"False" | b"FALSE" => FieldValue::Bool(false),
            _ => {
                return Err(syntax(
                    start,
                    format!(
                        "invalid field value {}: expected a number (1.5, -2i, 3u), a boolean (t, f, true, false) or a double-quoted string",
                        quoted(text)
                    ),
                ));
            }
        }
    };
    Ok((value, end))
}

/// Powers of ten that an `f64` holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The float `v` writes (rule 9), rounded to the nearest `f64`, or `None`
/// when `v` is not a decimal float. Out of range, it is infinite.
///
/// A float without an exponent whose digits, read as an integer, fit in 53
/// bits (`45.23` is 4523 over 10^2) is that integer divided by a power of
/// ten: both are exact `f64`s, and one division rounds once, so the result
/// is the nearest `f64` to the decimal, as the standard library's parser
/// gives (Clinger's fast path). Sensor readings are all of that kind; any
/// other float goes to the standard library.
#[inline]
fn parse_float(v: &[u8]) -> Option<f64> {
    let negative = v.first() == Some(&b'-');
    let mut i = usize::from(negative);
    let mut mantissa = 0u64;
    let whole_start = i;
    while let Some(d) = v.get(i).map(|c| c.wrapping_sub(b'0')).filter(|&d| d < 10) {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let whole = i - whole_start;
    let mut fraction = 0;
    if v.get(i) == Some(&b'.') {
        i += 1;
        let fraction_start = i;
        while let Some(d) = v.get(i).map(|c| c.wrapping_sub(b'0')).filter(|&d| d < 10) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        fraction = i - fraction_start;
    }
    // Up to 19 digits the mantissa did not wrap.
    if i == v.len()
        && whole + fraction > 0
        && whole + fraction <= 19
        && mantissa <= 1 << 53
        && let Some(&power) = EXACT_POWERS_OF_TEN.get(fraction)
    {
        let x = mantissa as f64 / power;
        return Some(if negative { -x } else { x });
    }
    if !is_decimal_float(v) {
        return None;
    }
    // Validated as ASCII digits, signs, '.' and 'e' above.
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Whether `v` is a decimal float as rule 9 writes it: `-`? digits (`.` digits?)? or
/// `-`? `.` digits, then an optional exponent.
#[inline]
fn is_decimal_float(v: &[u8]) -> bool {
    let digits = |from: usize| v[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = usize::from(v.first() == Some(&b'-'));
    let whole = digits(i);
    i += whole;
    let mut fraction = 0;
    if v.get(i) == Some(&b'.') {
        fraction = digits(i + 1);
        i += 1 + fraction;
    }
    if whole + fraction == 0 {
        return false;
    }
    if matches!(v.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(v.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exponent = digits(i);
        if exponent == 0 {
            return false;
        }
        i += exponent;
    }
    i == v.len()
}

enum IntError {
    Invalid,
    Overflow,
}

/// Parses one or more ASCII digits.
#[inline]
fn parse_u64(digits: &[u8]) -> Result<u64, IntError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(IntError::Invalid);
    }
    digits.iter().try_fold(0u64, |n, &c| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(c - b'0')))
            .ok_or(IntError::Overflow)
    })
}

/// Parses an optional `-` followed by one or more ASCII digits.
#[inline]
fn parse_i64(text: &[u8]) -> Result<i64, IntError> {
    match text.split_first() {
        Some((b'-', digits)) => {
            let n = parse_u64(digits)?;
            if n > i64::MIN.unsigned_abs() {
                return Err(IntError::Overflow);
            }
            // Two's complement: this maps 2^63 to i64::MIN.
            Ok(0i64.wrapping_sub_unsigned(n))
        }
        _ => i64::try_from(parse_u64(text)?).map_err(|_| IntError::Overflow),
    }
}

/// Index of the first tag whose key already appeared before it.
fn find_duplicate_tag(tags: &[(Cow<'_, str>, Cow<'_, str>)]) -> Option<usize> {
    if tags.len() <= SMALL {
        (1..tags.len()).find(|&j| tags[..j].iter().any(|(key, _)| *key == tags[j].0))
    } else {
        let mut order: Vec<usize> = (0..tags.len()).collect();
        order.sort_unstable_by(|&a, &b| tags[a].0.cmp(&tags[b].0).then(a.cmp(&b)));
        order
            .windows(2)
            .filter(|pair| tags[pair[0]].0 == tags[pair[1]].0)
            .map(|pair| pair[1])
            .min()
    }
}

/// Byte position of the key of tag `index` in a line that parsed successfully.
#[cold]
fn tag_key_start(b: &[u8], index: usize) -> usize {
    let start = skip_spaces(b, 0);
    let (mut i, _) = scan_name(b, start, &MEASUREMENT_STOPS, &MEASUREMENT_ESCAPES);
    for _ in 0..index {
        let (key_end, _) = scan_name(b, i + 1, &KEY_STOPS, &KEY_ESCAPES);
        let (value_end, _) = scan_name(b, key_end + 1, &KEY_STOPS, &KEY_ESCAPES);
        i = value_end;
    }
    i + 1
}

/// Merges repeated field keys: the field stays where its key first appeared and takes the
/// value of its last occurrence.
fn dedup_fields(fields: &mut Vec<(Cow<'_, str>, FieldValue<'_>)>) {
    let n = fields.len();
    if n < 2 {
        return;
    }
    if n <= SMALL {
        // fields[..unique] hold distinct keys; later slots of merged duplicates are dropped.
        let mut unique = 1;
        for r in 1..n {
            match (0..unique).find(|&k| fields[k].0 == fields[r].0) {
                Some(k) => {
                    let value = std::mem::replace(&mut fields[r].1, FieldValue::Bool(false));
                    fields[k].1 = value;
                }
                None => {
                    fields.swap(unique, r);
                    unique += 1;
                }
            }
        }
        fields.truncate(unique);
        return;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| fields[a].0.cmp(&fields[b].0).then(a.cmp(&b)));
    let mut keep = vec![true; n];
    let mut group = 0;
    while group < n {
        let mut next = group + 1;
        while next < n && fields[order[next]].0 == fields[order[group]].0 {
            next += 1;
        }
        if next - group > 1 {
            let value = std::mem::replace(&mut fields[order[next - 1]].1, FieldValue::Bool(false));
            fields[order[group]].1 = value;
            for &dup in &order[group + 1..next] {
                keep[dup] = false;
            }
        }
        group = next;
    }
    let mut index = 0;
    fields.retain(|_| {
        index += 1;
        keep[index - 1]
    });
}

impl ParsedLine<'_> {
    /// Appends this line as line protocol (no trailing newline), escaping what needs escaping.
    ///
    /// Every line [`parse_line`] produces is written so that it parses back the same. Only
    /// names it cannot produce are not: an empty name, one with a control character, one that
    /// ends in a backslash (the backslash would escape what follows, rule 8), and a
    /// measurement that starts with `#`.
    pub fn write_to(&self, out: &mut String) {
        write_escaped(out, &self.measurement, &[',', ' ']);
        for (key, value) in &self.tags {
            out.push(',');
            write_escaped(out, key, &[',', '=', ' ']);
            out.push('=');
            write_escaped(out, value, &[',', '=', ' ']);
        }
        for (i, (key, value)) in self.fields.iter().enumerate() {
            out.push(if i == 0 { ' ' } else { ',' });
            write_escaped(out, key, &[',', '=', ' ']);
            out.push('=');
            match value {
                FieldValue::F64(x) => out.push_str(&format!("{x:?}")),
                FieldValue::I64(n) => out.push_str(&format!("{n}i")),
                FieldValue::U64(n) => out.push_str(&format!("{n}u")),
                FieldValue::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
                FieldValue::Str(v) => {
                    out.push('"');
                    for c in v.chars() {
                        match c {
                            '"' => out.push_str("\\\""),
                            '\\' => out.push_str("\\\\"),
                            '\n' => out.push_str("\\n"),
                            '\r' => out.push_str("\\r"),
                            '\t' => out.push_str("\\t"),
                            c => out.push(c),
                        }
                    }
                    out.push('"');
                }
            }
        }
        if let Some(ts) = self.timestamp {
            out.push(' ');
            out.push_str(&ts.to_string());
        }
    }
}

/// Writes `s`, escaping the characters in `specials` with a backslash.
fn write_escaped(out: &mut String, s: &str, specials: &[char]) {
    for c in s.chars() {
        if specials.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(line: &str) -> Result<ParsedLine<'_>, ParseError> {
        let mut out = ParsedLine::default();
        parse_line(line, 1, &mut out).map(|()| out)
    }

    fn parse_ok(line: &str) -> ParsedLine<'_> {
        match parse(line) {
            Ok(parsed) => parsed,
            Err(e) => panic!("{line:?} failed: {e}"),
        }
    }

    fn parse_err(line: &str) -> ParseError {
        match parse(line) {
            Ok(parsed) => panic!("{line:?} parsed as {parsed:?}"),
            Err(e) => e,
        }
    }

    /// Parses every line of `text`, returning the results with their line numbers.
    fn parse_all(text: &str) -> Vec<(usize, Result<ParsedLine<'_>, ParseError>)> {
        lines(text)
            .map(|(no, line)| {
                let mut out = ParsedLine::default();
                (no, parse_line(line, no, &mut out).map(|()| out))
            })
            .collect()
    }

    /// The line numbers `lines` yields for `text`, each with whether it parses.
    fn outline(text: &str) -> Vec<(usize, bool)> {
        parse_all(text)
            .iter()
            .map(|(no, result)| (*no, result.is_ok()))
            .collect()
    }

    /// Checks that the spec parser reads `text` the same way.
    fn assert_spec_agrees(text: &str) {
        if let Some(difference) = spec::disagreement(text) {
            panic!("{difference}");
        }
    }

    /// Parses a text whose third line is the only bad one; returns that line's error.
    fn third_line_error(bad: &str) -> ParseError {
        let text = format!("m,t=1 f=1 10\n\n{bad}\nm f=2\n");
        assert_spec_agrees(&text);
        let results = parse_all(&text);
        assert_eq!(results.len(), 3, "{text:?}");
        assert!(results[0].1.is_ok(), "{text:?}");
        assert!(results[2].1.is_ok(), "{text:?}");
        assert_eq!(results[1].0, 3);
        match &results[1].1 {
            Ok(parsed) => panic!("{bad:?} parsed as {parsed:?}"),
            Err(e) => e.clone(),
        }
    }

    fn b(s: &str) -> Cow<'_, str> {
        Cow::Borrowed(s)
    }

    fn field<'a>(key: &'a str, value: FieldValue<'a>) -> (Cow<'a, str>, FieldValue<'a>) {
        (Cow::Borrowed(key), value)
    }

    fn value(line: &str) -> FieldValue<'_> {
        assert_spec_agrees(line);
        let mut parsed = parse_ok(line);
        assert_eq!(parsed.fields.len(), 1, "{line:?}");
        parsed.fields.remove(0).1
    }

    fn tag_value(line: &str) -> Cow<'_, str> {
        assert_spec_agrees(line);
        let mut parsed = parse_ok(line);
        assert_eq!(parsed.tags.len(), 1, "{line:?}");
        parsed.tags.remove(0).1
    }

    #[test]
    fn floats_at_the_edges_of_the_fast_path_parse_as_written() {
        for text in [
            "45.23",
            "-45.23",
            "0",
            "-0",
            "-0.0",
            ".5",
            "5.",
            "0.1",
            "0.3",
            "1e3",
            "9007199254740992",
            "9007199254740993",
            "0.30000000000000004",
            "1.0000000000000002",
            "1234567890123456789",
            "12345678901234567890",
            "0.0000000000000000000001",
            "0.00000000000000000000001",
            "00000000000000000000001.5",
        ] {
            let expected = text.parse::<f64>().unwrap();
            assert_eq!(
                parse_float(text.as_bytes()).map(f64::to_bits),
                Some(expected.to_bits()),
                "{text}"
            );
        }
        for text in [
            "", "-", ".", "-.", "1.2.3", "1e", "+1", "1_0", "0x10", "inf", "1-",
        ] {
            assert_eq!(parse_float(text.as_bytes()), None, "{text:?}");
        }
        assert_eq!(parse_float(b"1e400"), Some(f64::INFINITY));
    }

    #[test]
    fn workload_line() {
        let line = "readings,plant=plant-0,line=line-0,device_id=dev-000000,model=model-5 temperature=25.07,pressure=1012.93,vibration=0.063,power_kw=0.5,voltage=377.7,rpm=0i,status=1i 1767225600000000000";
        let parsed = parse_ok(line);
        assert_eq!(
            parsed,
            ParsedLine {
                measurement: b("readings"),
                tags: vec![
                    (b("plant"), b("plant-0")),
                    (b("line"), b("line-0")),
                    (b("device_id"), b("dev-000000")),
                    (b("model"), b("model-5")),
                ],
                fields: vec![
                    field("temperature", FieldValue::F64(25.07)),
                    field("pressure", FieldValue::F64(1012.93)),
                    field("vibration", FieldValue::F64(0.063)),
                    field("power_kw", FieldValue::F64(0.5)),
                    field("voltage", FieldValue::F64(377.7)),
                    field("rpm", FieldValue::I64(0)),
                    field("status", FieldValue::I64(1)),
                ],
                timestamp: Some(1_767_225_600_000_000_000),
            }
        );
        assert!(matches!(parsed.measurement, Cow::Borrowed(_)));
        assert!(
            parsed
                .tags
                .iter()
                .all(|(k, v)| matches!((k, v), (Cow::Borrowed(_), Cow::Borrowed(_))))
        );
        assert!(
            parsed
                .fields
                .iter()
                .all(|(k, _)| matches!(k, Cow::Borrowed(_)))
        );
        assert_spec_agrees(line);
    }

    #[test]
    fn minimal_line_without_tags_or_timestamp() {
        let parsed = parse_ok("cpu value=1");
        assert_eq!(parsed.measurement, "cpu");
        assert!(parsed.tags.is_empty());
        assert_eq!(parsed.fields, vec![field("value", FieldValue::F64(1.0))]);
        assert_eq!(parsed.timestamp, None);
    }

    // ---- One test per rule of the module documentation ---------------------------------

    #[test]
    fn rule_01_carriage_return_only_in_line_endings() {
        // CRLF endings, and a CR that ends the text.
        assert_eq!(outline("m f=1\r\nm f=2\r\n"), vec![(1, true), (2, true)]);
        assert_eq!(outline("m f=1\r"), vec![(1, true)]);
        assert_eq!(outline("m f=1 5 \r\n\r\n \r\n"), vec![(1, true)]);
        assert_eq!(lines("m f=1 5\r\n").next(), Some((1, "m f=1 5")));
        // Anywhere else it is an error.
        for bad in [
            "m f=1\r\r",
            "m\r f=1",
            "m,t=v\r f=1",
            "m f=1\rx",
            "m f=1 5\rx",
            "\r\r",
        ] {
            assert_eq!(outline(bad), vec![(1, false)], "{bad:?}");
            assert_spec_agrees(bad);
        }
        let e = parse_err("m f=1\r");
        assert!(e.message.contains("carriage return"), "{e}");
        // Inside a string it is part of the value.
        assert_eq!(value("m s=\"a\rb\r\nc\""), FieldValue::Str(b("a\rb\r\nc")));
        // A lone CR line stops being blank.
        assert_eq!(outline("\r\n\r\rm f=1\n"), vec![(2, false)]);
    }

    #[test]
    fn rule_02_blank_lines_hold_only_spaces() {
        assert_eq!(outline("\n   \n\r\n  \r\nm f=1\n \n"), vec![(5, true)]);
        assert_eq!(lines("").count(), 0);
        assert_eq!(lines("\n\n").count(), 0);
        // A tab, or a character that is not a space, is not blank.
        assert_eq!(
            outline("m f=1\n\t\nm f=2"),
            vec![(1, true), (2, false), (3, true)]
        );
        assert_eq!(outline(" \t \n"), vec![(1, false)]);
        assert_eq!(outline("\u{a0}\n"), vec![(1, false)]);
        let e = parse_err("\t");
        assert_eq!(
            e.message,
            "expected a measurement name at the start of the line, found a tab (only spaces separate the parts of a line)"
        );
    }

    #[test]
    fn rule_03_comments_hold_no_control_characters() {
        let text = "# comment\n   # indented, with \"quote\n#\n# é ü\r\nm f=1\n#no space";
        assert_eq!(outline(text), vec![(5, true)]);
        assert_spec_agrees(text);
        // A control character (tab, CR, ...) makes the comment line an error.
        let text = "# a\tb\nm f=1\n# x\ry\n #\u{1}\n";
        assert_eq!(
            outline(text),
            vec![(1, false), (2, true), (3, false), (4, false)]
        );
        assert_spec_agrees(text);
        let e = parse_err("# a\tb");
        assert_eq!(e.column, 4);
        assert!(
            e.message.starts_with(
                "a comment (a line starting with '#') must not hold control characters, found a tab"
            ),
            "{e}"
        );
        // Given one directly, parse_line says it is a comment.
        let e = parse_err("# just a comment");
        assert!(e.message.contains("comment"), "{e}");
        // A '#' after the start is an ordinary character.
        assert_eq!(parse_ok("m#,t#=#v f#=1").measurement, "m#");
        assert_eq!(parse_ok(r"\#m f=1").measurement, r"\#m");
    }

    #[test]
    fn rule_04_string_line_breaks_and_where_bad_lines_end() {
        let text = "m s=\"one\ntwo\n#three\",g=1 7\nm f=2\n\"q\" g=1\n";
        assert_spec_agrees(text);
        let results = parse_all(text);
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].0, 1);
        let first = results[0].1.as_ref().map_err(ToString::to_string);
        assert_eq!(
            first.map(|p| p.fields.clone()),
            Ok(vec![
                field("s", FieldValue::Str(b("one\ntwo\n#three"))),
                field("g", FieldValue::F64(1.0)),
            ])
        );
        assert_eq!(results[1].0, 4);
        assert!(results[1].1.is_ok());
        // A quote in a measurement does not start a string.
        assert_eq!(results[2].0, 5);
        assert_eq!(
            results[2].1.as_ref().map(|p| p.measurement.clone()),
            Ok(b("\"q\""))
        );

        // A string that is never closed takes the rest of the text into its bad line.
        let text = "m f=1\nm s=\"abc\nm f=2\nm g=3\n";
        assert_eq!(outline(text), vec![(1, true), (2, false)]);
        assert_spec_agrees(text);
        let e = parse_err("m s=\"abc\nm f=2");
        assert!(
            e.message.starts_with("unterminated string field value"),
            "{e}"
        );
        assert_eq!((e.line, e.column), (1, 5));
        // A later quote closes it: the string takes in the lines up to it.
        let text = "m s=\"abc\nm f=2\nm g=\"x\"\nm f=3\n";
        assert_eq!(outline(text), vec![(1, false), (4, true)]);
        assert_spec_agrees(text);

        // A line with an error before its string ends where its first physical line does,
        // and the rest of the string's text is read as lines of its own.
        let text = "m a=1e400,s=\"x\ny\"\nm f=1";
        assert_eq!(outline(text), vec![(1, false), (2, false), (3, true)]);
        assert_spec_agrees(text);
        let text = "m,t=a\tb s=\"x\ny\"\nm f=1";
        assert_eq!(outline(text), vec![(1, false), (2, false), (3, true)]);
        // An error after the string ends the line with the physical line of the error.
        let text = "m f=1\nm s=\"a\nbc\",g=x\nm f=2";
        assert_eq!(outline(text), vec![(1, true), (2, false), (4, true)]);
        let results = parse_all(text);
        let e = results[1].1.as_ref().map(|_| ()).unwrap_err();
        assert_eq!((e.line, e.column), (3, 7), "{e}");
        assert_spec_agrees(text);

        // CRLF inside a string is kept; the line's own trailing CR is not.
        let results = parse_all("m s=\"a\r\nb\"\r\nm f=1\r\n");
        assert_eq!(results.len(), 2);
        assert_eq!(
            results[0].1.as_ref().map(|p| p.fields.clone()),
            Ok(vec![field("s", FieldValue::Str(b("a\r\nb")))])
        );
        assert_eq!(results[1].0, 3);
    }

    #[test]
    fn rule_05_only_spaces_separate_the_parts() {
        // Spaces before the measurement, several between parts, and at the end.
        let parsed = parse_ok("   m,t=v    f=1,g=2i    5   ");
        assert_eq!(parsed.measurement, "m");
        assert_eq!(parsed.fields.len(), 2);
        assert_eq!(parsed.timestamp, Some(5));
        assert_eq!(parse_ok("9 f=-7 ").timestamp, None);
        assert_eq!(lines("  m f=1").next(), Some((1, "  m f=1")));
        // Leading whitespace other than spaces, and tabs between the parts, are errors.
        for (bad, column) in [
            ("\tm v=1", 1),
            ("\u{b}m v=1", 1),
            (" \tm v=1", 2),
            ("m\tv=1", 2),
            ("m,t=v\tf=1", 6),
            ("m \tf=1", 3),
            ("m f=1\t5", 5),
            ("m f=1 \t5", 7),
            ("m f=1 5\t", 7),
        ] {
            let e = parse_err(bad);
            assert_eq!(e.column, column, "{bad:?}: {e}");
            assert_spec_agrees(bad);
        }
        let e = parse_err("m\tv=1");
        assert_eq!(
            e.message,
            r#"expected ',' or a space after measurement "m", found a tab (only spaces separate the parts of a line)"#
        );
    }

    #[test]
    fn rule_06_commas_need_a_tag_or_field_after_them() {
        for bad in [
            "m, f=1",
            "m,",
            "m,t=v, f=1",
            "m f=1,",
            "m f=1, g=2",
            "m f=1,,g=2",
            "m",
            "m,t=v",
            "m ",
            "m,t=v  ",
            "m\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
            assert_spec_agrees(bad);
        }
        let e = parse_err("cpu,host=a");
        assert!(e.message.starts_with("missing field set"), "{e}");
        assert_eq!(e.column, 11);
        let e = parse_err("m f=1, g=2");
        assert_eq!(e.message, "expected a field key after ',', found a space");
        assert_eq!(e.column, 7);
    }

    #[test]
    fn rule_07_names_are_not_empty_and_hold_no_control_characters() {
        // A control character at the start of a field key, in a tag value, in a measurement.
        let e = parse_err("m \u{1}f=1");
        assert_eq!(
            (e.column, e.message.as_str()),
            (3, "expected a field key, found control character U+0001")
        );
        let e = parse_err("m f=1,\u{1}=1,\u{1}=2");
        assert_eq!(e.column, 7);
        assert!(parse("m,foo=bar\u{2} x=1").is_err());
        assert!(parse("m,foo\u{3}=bar x=1").is_err());
        assert!(parse("m foo\u{1}=bar").is_err());
        assert!(parse("m\u{7f} f=1").is_err());
        for bad in ["m,=v f=1", "m,t= f=1", "m =1", " ,t=1 f=1", "m,t=a=b f=1"] {
            assert!(parse(bad).is_err(), "{bad:?}");
            assert_spec_agrees(bad);
        }
        // A measurement may hold '='; other characters, Unicode included, are fine.
        assert_eq!(parse_ok("温度=x f=1").measurement, "温度=x");
        let parsed = parse_ok("m,\"k\"=#v\u{a0} é\u{85}=1");
        assert_eq!(parsed.tags, vec![(b("\"k\""), b("#v\u{a0}"))]);
        assert_eq!(parsed.fields, vec![field("é\u{85}", FieldValue::F64(1.0))]);
    }

    #[test]
    fn rule_08_a_backslash_escapes_only_what_the_name_needs() {
        // Escaped space, comma and '='.
        let parsed = parse_ok(r"my\ meas\,ure=ment,k\ e\=y\,=v\ a\=l\,ue f\ o\,o\=x=1");
        assert_eq!(parsed.measurement, "my meas,ure=ment");
        assert!(matches!(parsed.measurement, Cow::Owned(_)));
        assert_eq!(parsed.tags, vec![(b("k e=y,"), b("v a=l,ue"))]);
        assert_eq!(parsed.fields, vec![field("f o,o=x", FieldValue::F64(1.0))]);
        // Any other backslash is itself: `\=` in a measurement, `\\`, `\t`, `\l`.
        assert_eq!(parse_ok(r"a\=b f=1").measurement, r"a\=b");
        assert_eq!(parse_ok(r"a\\b f=1").measurement, r"a\\b");
        assert_eq!(parse_ok(r"cpu va\lue=42").fields[0].0, r"va\lue");
        assert_eq!(tag_value(r"m,s=\t\r\n\v x=1"), r"\t\r\n\v");
        let v = tag_value(r"m,x=a\b f=1");
        assert!(matches!(v, Cow::Borrowed(r"a\b")));
        // ... and the character after it is read as usual, so a second backslash escapes.
        assert_eq!(tag_value(r"cpu,regions=east\\  value=1.0"), r"east\ ");
        assert_eq!(tag_value(r"cpu,host=two\\\ words value=42"), r"two\\ words");
        assert_eq!(tag_value(r"cpu,regions=\\ east value=1.0"), r"\ east");
        assert_eq!(tag_value(r"u,s=\\,\,\t e=1"), r"\,,\t");
        let parsed = parse_ok(r"a\\,t=v f=1");
        assert_eq!(parsed.measurement, r"a\,t=v");
        assert!(parsed.tags.is_empty());
        // A backslash before something a name cannot hold leaves it unescaped.
        for bad in [r"m\ f=1", r"m,t=v\ f=1", r"m f\=1", "m\\\tf=1"] {
            assert!(parse(bad).is_err(), "{bad:?}");
            assert_spec_agrees(bad);
        }
    }

    #[test]
    fn rule_09_floats() {
        for (text, expected) in [
            ("1", 1.0),
            ("1.0", 1.0),
            ("-1.5e3", -1500.0),
            ("1e-3", 0.001),
            ("1E3", 1000.0),
            ("1E+05", 100_000.0),
            ("1.e5", 100_000.0),
            (".5", 0.5),
            ("-.5e-3", -0.0005),
            ("5.", 5.0),
            ("-0", -0.0),
            ("007", 7.0),
            ("1e-400", 0.0),
            ("1.7976931348623157e308", f64::MAX),
        ] {
            assert_eq!(
                value(&format!("m f={text}")),
                FieldValue::F64(expected),
                "{text}"
            );
        }
        assert!(matches!(value("m f=-0"), FieldValue::F64(x) if x.is_sign_negative()));
        for text in [
            "inf",
            "-inf",
            "nan",
            "NaN",
            "infinity",
            "-Infinity",
            "+1.0",
            "+1",
        ] {
            let e = parse_err(&format!("m f={text}"));
            assert!(e.message.contains("invalid"), "{text}: {e}");
            assert_eq!(e.column, 5);
            assert_spec_agrees(&format!("m f={text}"));
        }
        for text in [
            "1.2.3", "1e", "1e+", "-", ".", "-.", "1x", "12x", "1_0", "1_000", "0x10", "0x1p3",
            "--1", "1e5e5", "1.5E", "-e5", "1.5e3.2",
        ] {
            let e = parse_err(&format!("m f={text}"));
            assert!(
                e.message
                    .starts_with(&format!("invalid numeric field value \"{text}\"")),
                "{e}"
            );
            assert_spec_agrees(&format!("m f={text}"));
        }
        for text in ["1e400", "-1e400", "1.7976931348623159e308"] {
            let e = parse_err(&format!("m f={text}"));
            assert_eq!(
                e.message,
                format!("float field value out of range for f64: \"{text}\"")
            );
        }
    }

    #[test]
    fn rule_10_integers_and_unsigned_integers() {
        assert_eq!(value("m f=-12i"), FieldValue::I64(-12));
        assert_eq!(value("m f=0i"), FieldValue::I64(0));
        assert_eq!(value("m f=-0i"), FieldValue::I64(0));
        assert_eq!(value("m f=00012i"), FieldValue::I64(12));
        assert_eq!(value("m f=9223372036854775807i"), FieldValue::I64(i64::MAX));
        assert_eq!(
            value("m f=-9223372036854775808i"),
            FieldValue::I64(i64::MIN)
        );
        for text in [
            "9223372036854775808i",
            "-9223372036854775809i",
            "99999999999999999999999i",
        ] {
            let e = parse_err(&format!("m f={text}"));
            assert!(
                e.message
                    .starts_with("integer field value out of range for i64"),
                "{e}"
            );
        }
        for text in ["-i", "1.5i", "12xi", "1e3i", "--1i", "-+1i", ".5i"] {
            let e = parse_err(&format!("m f={text}"));
            assert!(
                e.message
                    .starts_with(&format!("invalid integer field value \"{text}\"")),
                "{text}: {e}"
            );
        }
        // A '+' in front, or an "i" alone, does not start like a number.
        for text in ["+12i", "i", "+12u"] {
            let e = parse_err(&format!("m f={text}"));
            assert!(e.message.starts_with("invalid field value"), "{e}");
            assert_spec_agrees(&format!("m f={text}"));
        }

        assert_eq!(value("m f=12u"), FieldValue::U64(12));
        assert_eq!(value("m f=0u"), FieldValue::U64(0));
        assert_eq!(
            value("m f=18446744073709551615u"),
            FieldValue::U64(u64::MAX)
        );
        let e = parse_err("m f=18446744073709551616u");
        assert!(
            e.message
                .starts_with("unsigned integer field value out of range for u64"),
            "{e}"
        );
        for text in ["-1u", "-0u"] {
            let e = parse_err(&format!("m f={text}"));
            assert!(e.message.contains("must not be negative"), "{e}");
        }
        for text in ["1.5u", "1xu", ".5u"] {
            let e = parse_err(&format!("m f={text}"));
            assert!(
                e.message
                    .starts_with("invalid unsigned integer field value"),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn rule_11_booleans() {
        for text in ["t", "T", "true", "True", "TRUE"] {
            assert_eq!(value(&format!("m f={text}")), FieldValue::Bool(true));
        }
        for text in ["f", "F", "false", "False", "FALSE"] {
            assert_eq!(value(&format!("m f={text}")), FieldValue::Bool(false));
        }
        for text in ["tRUE", "yes", "tru", "abc", "t\t", "true\"\""] {
            let e = parse_err(&format!("m f={text}"));
            assert!(
                e.message
                    .starts_with(&format!("invalid field value {}: expected", quoted(text))),
                "{e}"
            );
        }
    }

    #[test]
    fn rule_12_string_escapes() {
        assert_eq!(value(r#"m f="""#), FieldValue::Str(b("")));
        let v = value(r#"m f="a, b=c d""#);
        assert_eq!(v, FieldValue::Str(b("a, b=c d")));
        assert!(matches!(v, FieldValue::Str(Cow::Borrowed(_))));
        // `\"`, `\\`, `\n`, `\r` and `\t`; any other backslash is itself.
        let v = value(r#"m f="say \"hi\" \\ \n\r\t \x \v""#);
        assert_eq!(v, FieldValue::Str(b("say \"hi\" \\ \n\r\t \\x \\v")));
        assert!(matches!(v, FieldValue::Str(Cow::Owned(_))));
        assert_eq!(value(r#"m s="\t\r\n\v""#), FieldValue::Str(b("\t\r\n\\v")));
        // An escaped backslash right before the closing quote, and a lone one before an
        // escaped quote.
        assert_eq!(value(r#"m f="a\\""#), FieldValue::Str(b(r"a\")));
        assert_eq!(value(r#"m f="a\\\"""#), FieldValue::Str(b(r#"a\""#)));
        assert_eq!(value(r#"m f="\x\"""#), FieldValue::Str(b(r#"\x""#)));
        // Control characters and line breaks are kept as they are.
        assert_eq!(
            value("m f=\"a\tb\u{1}\nc\""),
            FieldValue::Str(b("a\tb\u{1}\nc"))
        );
        for bad in [r#"m f="abc"#, r#"m f="abc\""#, r#"m s="\"#, r#"m s="a\"#] {
            let e = parse_err(bad);
            assert!(
                e.message.starts_with("unterminated string field value"),
                "{e}"
            );
            assert_eq!(e.column, 5);
            assert_spec_agrees(bad);
        }
    }

    #[test]
    fn rule_13_what_may_follow_a_value() {
        let parsed = parse_ok(r#"m s="x",n=1i,t="y" 5"#);
        assert_eq!(
            parsed.fields,
            vec![
                field("s", FieldValue::Str(b("x"))),
                field("n", FieldValue::I64(1)),
                field("t", FieldValue::Str(b("y"))),
            ]
        );
        assert_eq!(parsed.timestamp, Some(5));
        let e = parse_err(r#"m f="abc"x"#);
        assert_eq!(
            e.message,
            r#"expected ',', a space or the end of the line after the value of field key "f", found 'x'"#
        );
        assert_eq!(e.column, 10);
        // Odd quoting: text after a closing quote, or a quote inside an unquoted value.
        for bad in [
            r#"m a="x"" 1"#,
            r#"m a="x="y""#,
            r#"m a="b"c="d""#,
            r#"m f=1,s="x"y"#,
            r#"m a="=",b="="#,
            r#"m a="x",="y""#,
            r#"m f=1"2""#,
            r#"m f="a"=1"#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
            assert_spec_agrees(bad);
        }
        assert!(
            parse_err(r#"m f=1"2""#)
                .message
                .starts_with("invalid numeric")
        );
        // A quote that does not follow a field key's '=' is part of a name.
        assert_eq!(parse_ok(r#"m,t="a f=1"#).tags, vec![(b("t"), b("\"a"))]);
        assert_eq!(parse_ok(r#"m "a=1"#).fields[0].0, "\"a");
    }

    #[test]
    fn rule_14_timestamps() {
        assert_eq!(parse_ok("m f=1 123").timestamp, Some(123));
        assert_eq!(parse_ok("m f=1 -123").timestamp, Some(-123));
        assert_eq!(parse_ok("m f=1 0").timestamp, Some(0));
        assert_eq!(parse_ok("m f=1 -0").timestamp, Some(0));
        assert_eq!(parse_ok("m f=1 00012").timestamp, Some(12));
        assert_eq!(
            parse_ok("m f=1 -9223372036854775808").timestamp,
            Some(i64::MIN)
        );
        assert_eq!(parse_ok("m f=1   123   ").timestamp, Some(123));
        assert_eq!(parse_ok("m f=1 ").timestamp, None);

        let e = parse_err("m f=1 abc");
        assert_eq!(e.column, 7);
        assert!(e.message.starts_with(r#"invalid timestamp "abc""#), "{e}");
        for text in ["12.5", "1e9", "-", "+", "+123", "12i", "1-2", "--1", "5\t"] {
            let e = parse_err(&format!("m f=1 {text}"));
            assert!(e.message.starts_with("invalid timestamp"), "{text:?}: {e}");
            assert_spec_agrees(&format!("m f=1 {text}"));
        }
        for text in ["9223372036854775808", "-9223372036854775809"] {
            let e = parse_err(&format!("m f=1 {text}"));
            assert!(
                e.message.starts_with("timestamp out of range for i64"),
                "{e}"
            );
        }
        let e = parse_err("m f=1 123 456");
        assert_eq!(
            e.message,
            r#"expected the end of the line after the timestamp, found "456""#
        );
        assert_eq!(e.column, 11);
        // A missing comma between fields reads the next field as the timestamp.
        let e = parse_err(r#"TestBucket TagOne="Happy" FieldOne=123.45"#);
        assert!(e.message.starts_with("invalid timestamp"), "{e}");
    }

    #[test]
    fn rule_15_a_tag_key_appears_once() {
        let e = parse_err("m,plant=a,line=b,plant=c f=1");
        assert_eq!(e.message, r#"duplicate tag key "plant""#);
        assert_eq!(e.column, 18);
        // Keys are compared unescaped.
        let e = parse_err(r"m,a\ b=1,a\ b=2 f=1");
        assert_eq!(e.message, r#"duplicate tag key "a b""#);
        assert_spec_agrees("m,t=1,t=2 f=1");
    }

    #[test]
    fn rule_16_a_repeated_field_key_keeps_its_place_and_last_value() {
        let parsed = parse_ok("m a=1,b=2,a=3i,c=4,b=t");
        assert_eq!(
            parsed.fields,
            vec![
                field("a", FieldValue::I64(3)),
                field("b", FieldValue::Bool(true)),
                field("c", FieldValue::F64(4.0)),
            ]
        );
        assert_eq!(
            parse_ok(r"m a\ b=1,a\ b=2").fields,
            vec![(Cow::Owned("a b".to_owned()), FieldValue::F64(2.0))]
        );
        assert_spec_agrees("m f=1,f=2,g=1,f=\"x\"");
    }

    #[test]
    fn deliberate_differences_from_the_reference_decoder() {
        // The reference decoder takes these through Go's ParseFloat; rule 9 does not.
        for text in ["1_000", "1_0.5", "0x1p3", "0x1.8p1"] {
            assert!(parse(&format!("m f={text}")).is_err(), "{text}");
        }
        // Such a value is an error, so by rule 4 the bad line ends with its physical line,
        // where the reference decoder reads the string on.
        assert_eq!(
            outline("m f=0x1p3,s=\"a\nb\"\n"),
            vec![(1, false), (2, false)]
        );
        // A stray CR after the last field of a line without a timestamp: one bad line.
        assert_eq!(outline("m f=1\rx\nm g=1"), vec![(1, false), (2, true)]);
    }

    #[test]
    fn examples_from_the_reference_tests() {
        let text = "\n   # comment\n somename,tag1=val1,tag2=val2  floatfield=1,strfield=\"hello\",intfield=-1i,uintfield=1u,boolfield=true  1602841605822791506\n";
        let results = parse_all(text);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].0, 3);
        let parsed = results[0].1.as_ref().map_err(ToString::to_string);
        assert_eq!(
            parsed.map(|p| (p.fields.len(), p.timestamp)),
            Ok((5, Some(1_602_841_605_822_791_506)))
        );
        let text = "\n comma\\,1,equals\\==e\\,x,two=val2 field\\=x=\"fir\\\"\n,st\\\\\"  1602841605822791506\n\n # last comment\n";
        let results = parse_all(text);
        assert_eq!(results.len(), 1);
        assert_eq!(
            results[0].1,
            Ok(ParsedLine {
                measurement: b("comma,1"),
                tags: vec![(b("equals="), b("e,x")), (b("two"), b("val2"))],
                fields: vec![field("field=x", FieldValue::Str(b("fir\"\n,st\\")))],
                timestamp: Some(1_602_841_605_822_791_506),
            })
        );
        assert_eq!(
            outline("\nm1 value=12.0\nm2 value=2a.0\nm3 value=32.0\n"),
            vec![(2, true), (3, false), (4, true)]
        );
        assert_eq!(
            outline("TestBuckét, FieldOne=Happy\nnext x=1"),
            vec![(1, false), (2, true)]
        );
        assert_eq!(outline("m f=\"a\nb\",g=\"c\nd"), vec![(1, false)]);
        for text in [
            "m f=\"hello\ngoodbye\nx\",gé=invalid",
            "mmmé é=1e9999999999999",
            "b f=1 9223372036854775808",
            "TestBucket FieldOné=Happy,FieldTwo=sad",
            "m,x =y",
            "m,x",
            "m,=bar",
        ] {
            assert_eq!(outline(text), vec![(1, false)], "{text:?}");
            assert_spec_agrees(text);
        }
    }

    #[test]
    fn errors_on_third_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "cpu,host=a temp 1",
                16,
                r#"expected '=' after field key "temp", found a space"#,
            ),
            (
                "cpu,host=a temp,x=1 1",
                16,
                r#"expected '=' after field key "temp", found ','"#,
            ),
            (
                "cpu,host=a",
                11,
                "missing field set: a line needs at least one field",
            ),
            (
                "cpu   ",
                7,
                "missing field set: a line needs at least one field",
            ),
            (
                "cpu,host=a t=12x",
                14,
                "invalid numeric field value \"12x\"",
            ),
            (
                "cpu,host=a t=12xi",
                14,
                "invalid integer field value \"12xi\"",
            ),
            (
                "cpu,host=a t=99999999999999999999i",
                14,
                "integer field value out of range for i64",
            ),
            ("cpu t=1 abc", 9, r#"invalid timestamp "abc""#),
            (
                "cpu,plant=1,plant=2 t=1",
                13,
                r#"duplicate tag key "plant""#,
            ),
            (",t=1 f=1", 1, "expected a measurement name"),
            ("  ,t=1 f=1", 3, "expected a measurement name"),
            ("cpu, f=1", 5, "expected a tag key after ','"),
            ("cpu,=1 f=1", 5, "expected a tag key after ','"),
            (
                "cpu,host f=1",
                9,
                r#"expected '=' after tag key "host", found a space"#,
            ),
            (
                "cpu,host,a=b f=1",
                9,
                r#"expected '=' after tag key "host", found ','"#,
            ),
            (
                "cpu,host= f=1",
                10,
                r#"expected a tag value after '=' for tag key "host""#,
            ),
            (
                "cpu,host=a=b f=1",
                11,
                r#"unexpected '=' in the value of tag key "host""#,
            ),
            ("cpu =1", 5, "expected a field key"),
            ("cpu f=1,", 9, "expected a field key after ','"),
            ("cpu f=1,,g=2", 9, "expected a field key after ','"),
            (
                "cpu f=",
                7,
                r#"expected a field value after '=' for field key "f""#,
            ),
            (
                "cpu f=,g=1",
                7,
                r#"expected a field value after '=' for field key "f""#,
            ),
            (
                "cpu f=1 2 3",
                11,
                "expected the end of the line after the timestamp",
            ),
            (
                "cpu f=-1u",
                7,
                "invalid unsigned integer field value \"-1u\"",
            ),
            ("cpu f=inf", 7, "invalid field value \"inf\""),
            ("cpu f=nan", 7, "invalid field value \"nan\""),
            ("\tcpu f=1", 1, "expected a measurement name"),
            // Columns count characters, not bytes.
            (
                "温度,地点=東京 値 1",
                11,
                "expected '=' after field key \"値\"",
            ),
        ];
        for &(bad, column, message) in cases {
            let e = third_line_error(bad);
            assert_eq!(e.line, 3, "{bad:?}: {e}");
            assert_eq!(e.column, column, "{bad:?}: {e}");
            assert!(e.message.starts_with(message), "{bad:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("line 3, column {column}: {message}")),
                "{e}"
            );
        }
    }

    #[test]
    fn parse_line_takes_one_line() {
        let e = parse_err("m f=1\nm f=2");
        assert_eq!((e.line, e.column), (1, 6));
        assert!(e.message.starts_with("unexpected line break"), "{e}");
    }

    #[test]
    fn many_tags_and_fields() {
        // Above SMALL the sort-based paths are used.
        let tags: Vec<String> = (0..40).map(|i| format!("t{i}=v{i}")).collect();
        let fields: Vec<String> = (0..40).map(|i| format!("f{}={i}i", i % 25)).collect();
        let line = format!("m,{} {}", tags.join(","), fields.join(","));
        let parsed = parse_ok(&line);
        assert_eq!(parsed.tags.len(), 40);
        assert_eq!(parsed.fields.len(), 25);
        for (i, (key, value)) in parsed.fields.iter().enumerate() {
            assert_eq!(key.as_ref(), format!("f{i}"));
            let last = if i < 15 { i + 25 } else { i };
            assert_eq!(*value, FieldValue::I64(last as i64));
        }
        assert_spec_agrees(&line);

        let mut tags = tags;
        tags[30] = r"t\ 7=x".to_owned();
        tags[33] = "t7=y".to_owned();
        tags[35] = "t3=z".to_owned();
        let line = format!("m,{} f=1", tags.join(","));
        let e = parse_err(&line);
        assert_eq!(e.message, r#"duplicate tag key "t7""#);
        let col = line.find("t7=y").map(|p| p + 1);
        assert_eq!(Some(e.column), col);
        assert_spec_agrees(&line);
    }

    #[test]
    fn reuses_output() {
        let text = "a,x=1 f=1,g=2 5\nb h=\"s\"";
        let mut out = ParsedLine::default();
        let mut it = lines(text);
        let (no, line) = it.next().unwrap_or_default();
        assert!(parse_line(line, no, &mut out).is_ok());
        assert_eq!(out.tags.len(), 1);
        let (no, line) = it.next().unwrap_or_default();
        assert!(parse_line(line, no, &mut out).is_ok());
        assert_eq!(
            out,
            ParsedLine {
                measurement: b("b"),
                tags: vec![],
                fields: vec![field("h", FieldValue::Str(b("s")))],
                timestamp: None,
            }
        );
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(1000);
        let e = parse_err(&format!("m f={long}"));
        assert!(e.message.len() < 200, "{e}");
        assert!(e.message.contains('…'));
    }

    #[test]
    fn write_to_escapes_what_the_rules_need() {
        let line = ParsedLine {
            measurement: b(r"a b,c=\d"),
            tags: vec![(b(r"k=\ ,"), b(r"\,v"))],
            fields: vec![field("f", FieldValue::Str(b("q\"b\\n\nr\rt\t")))],
            timestamp: Some(-1),
        };
        let written = write_line(&line);
        assert_eq!(
            written,
            r#"a\ b\,c=\d,k\=\\ \,=\\,v f="q\"b\\n\nr\rt\t" -1"#
        );
        assert_eq!(parse(&written), Ok(line));
        assert_spec_agrees(&written);
    }

    // ---- Property tests ----------------------------------------------------------------

    fn write_line(line: &ParsedLine<'_>) -> String {
        let mut out = String::new();
        line.write_to(&mut out);
        out
    }

    const NAME_CHARS: &[char] = &[
        'a', 'b', 'Z', '0', '-', ',', ' ', '=', '"', '\\', '#', 'é', '日', '🦀',
    ];
    const STRING_CHARS: &[char] = &[
        'a', 'b', ' ', ',', '=', '"', '\\', '\n', '\r', '\t', '#', 'n', 't', 'é', '🦀',
    ];

    fn chars(set: &'static [char], len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(set), len).prop_map(String::from_iter)
    }

    /// A name the parser can produce: it does not end in a backslash (rule 8).
    fn writable(s: String) -> String {
        if s.ends_with('\\') {
            format!("{s}x")
        } else {
            s
        }
    }

    fn measurement_strategy() -> impl Strategy<Value = String> {
        chars(NAME_CHARS, 1..8).prop_map(|s| {
            // A leading '#' makes a comment (rule 3).
            writable(if s.starts_with('#') {
                format!("x{s}")
            } else {
                s
            })
        })
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        chars(NAME_CHARS, 1..6).prop_map(writable)
    }

    /// A field value and how to write it.
    fn value_strategy() -> impl Strategy<Value = (FieldValue<'static>, String)> {
        let finite = any::<f64>().prop_filter("finite", |x| x.is_finite());
        prop_oneof![
            finite
                .clone()
                .prop_map(|x| (FieldValue::F64(x), format!("{x:?}"))),
            finite
                .clone()
                .prop_map(|x| (FieldValue::F64(x), format!("{x}"))),
            finite.prop_map(|x| (FieldValue::F64(x), format!("{x:e}"))),
            (-1000i32..1000).prop_map(|n| (FieldValue::F64(f64::from(n)), format!("{n}"))),
            any::<i64>().prop_map(|n| (FieldValue::I64(n), format!("{n}i"))),
            any::<u64>().prop_map(|n| (FieldValue::U64(n), format!("{n}u"))),
            prop::sample::select(
                &[
                    "t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE",
                ][..]
            )
            .prop_map(|s| (FieldValue::Bool(s.starts_with(['t', 'T'])), s.to_owned())),
            chars(STRING_CHARS, 0..10).prop_map(|s| {
                let mut written = String::from("\"");
                write_escaped(&mut written, &s, &['"', '\\']);
                written.push('"');
                (FieldValue::Str(Cow::Owned(s)), written)
            }),
        ]
    }

    /// A generated line: its expected parse and its text.
    fn line_strategy() -> impl Strategy<Value = (ParsedLine<'static>, String)> {
        (
            prop::sample::select(&["", " ", "   "][..]),
            measurement_strategy(),
            prop::collection::btree_map(key_strategy(), key_strategy(), 0..4),
            prop::collection::vec(
                (
                    prop_oneof![
                        key_strategy(),
                        prop::sample::select(&["x", "y"][..]).prop_map(String::from)
                    ],
                    value_strategy(),
                ),
                1..6,
            ),
            prop::option::of(any::<i64>()),
            prop::sample::select(&["", " ", "  "][..]),
        )
            .prop_map(|(indent, measurement, tags, fields, timestamp, trailing)| {
                let mut text = String::from(indent);
                write_escaped(&mut text, &measurement, &[',', ' ']);
                for (key, value) in &tags {
                    text.push(',');
                    write_escaped(&mut text, key, &[',', '=', ' ']);
                    text.push('=');
                    write_escaped(&mut text, value, &[',', '=', ' ']);
                }
                for (i, (key, (_, written))) in fields.iter().enumerate() {
                    text.push(if i == 0 { ' ' } else { ',' });
                    write_escaped(&mut text, key, &[',', '=', ' ']);
                    text.push('=');
                    text.push_str(written);
                }
                if let Some(ts) = timestamp {
                    text.push_str(&format!(" {ts}"));
                }
                text.push_str(trailing);
                // Expected fields: first position, last value.
                let mut expected: Vec<(Cow<'static, str>, FieldValue<'static>)> = Vec::new();
                for (key, (value, _)) in fields {
                    match expected.iter_mut().find(|(k, _)| *k == key.as_str()) {
                        Some(slot) => slot.1 = value,
                        None => expected.push((Cow::Owned(key), value)),
                    }
                }
                let parsed = ParsedLine {
                    measurement: Cow::Owned(measurement),
                    tags: tags
                        .into_iter()
                        .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
                        .collect(),
                    fields: expected,
                    timestamp,
                };
                (parsed, text)
            })
    }

    /// Pieces of text that line protocol gives meaning to, repeated to weight them.
    const PIECES: &[&str] = &[
        "m",
        "cpu",
        "a",
        "é",
        "日",
        "t",
        "f",
        "T",
        "i",
        "u",
        "e",
        "E",
        "n",
        "x",
        "0",
        "1",
        "12",
        "-",
        "-",
        ".",
        "+",
        "_",
        "1.5",
        "-3i",
        "7u",
        "true",
        "FALSE",
        "1e400",
        "9223372036854775808",
        "0x1p3",
        ",",
        ",",
        ",",
        " ",
        " ",
        " ",
        " ",
        "=",
        "=",
        "=",
        "\"",
        "\"",
        "\"",
        "\\",
        "\\",
        "\\",
        "\t",
        "\n",
        "\n",
        "\r\n",
        "\r",
        "#",
        "\u{1}",
        "\u{7f}",
        "\u{a0}",
        "m f=1",
        " f=1",
        ",t=v",
        "=\"",
        "\\\\",
        "\\ ",
        "\\,",
        "\\=",
        "\\\"",
    ];

    /// Text made of [`PIECES`]: near line protocol, often wrong in the ways that matter.
    fn near_line_protocol() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 0..48).prop_map(|parts| parts.concat())
    }

    /// Lines assembled from parts that are each valid or subtly not.
    fn assembled_text() -> impl Strategy<Value = String> {
        let name = || {
            prop::sample::select(
                &[
                    "m",
                    "cpu",
                    "a\\ b",
                    "\\\\",
                    "a\\",
                    "a\\=b",
                    "a=b",
                    "\\,",
                    "#a",
                    "é",
                    "\"q",
                    "a\\\\\\ b",
                    "\\\\ x",
                    "",
                ][..],
            )
        };
        let value = prop::sample::select(
            &[
                "1",
                "-1.5e3",
                ".5",
                "5.",
                "+1",
                "1_0",
                "0x1p3",
                "1i",
                "-1i",
                "+1i",
                "1u",
                "-1u",
                "t",
                "TRUE",
                "tRUE",
                "\"s\"",
                "\"a\\\"b\"",
                "\"a\nb\"",
                "\"a\\\\\"",
                "\"unclosed",
                "\"x\"y",
                "inf",
                "1e400",
                "9223372036854775808i",
                "\"\\n\\t\"",
                "\"a\r\nb\"",
                "",
                "\"=\"",
            ][..],
        );
        let line = (
            prop::sample::select(&["", " ", "\t"][..]),
            name(),
            prop::collection::vec((name(), name()), 0..3),
            prop::sample::select(&[" ", "  ", "\t", " \t"][..]),
            prop::collection::vec((name(), value), 1..4),
            prop::sample::select(
                &[
                    "",
                    " 1",
                    " -1",
                    " +1",
                    " 1 ",
                    " 1\t",
                    " 1 2",
                    " 9223372036854775808",
                    " ",
                ][..],
            ),
            prop::sample::select(&["\n", "\r\n", "\r", "\r\r\n", "", "\n# c\n", "\n\t\n"][..]),
        )
            .prop_map(|(indent, measurement, tags, gap, fields, ts, end)| {
                let mut text = format!("{indent}{measurement}");
                for (k, v) in tags {
                    text.push_str(&format!(",{k}={v}"));
                }
                text.push_str(gap);
                let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                text.push_str(&fields.join(","));
                text.push_str(ts);
                text.push_str(end);
                text
            });
        prop::collection::vec(line, 1..4).prop_map(|lines| lines.concat())
    }

    /// Parses `text` with `lines` and `parse_line`; checks that errors point inside the text
    /// and that every parsed line writes back to something that parses the same.
    fn check_never_panics(text: &str) {
        let mut out = ParsedLine::default();
        let total_lines = text.split('\n').count();
        for (no, line) in lines(text) {
            assert!(no >= 1 && no <= total_lines);
            match parse_line(line, no, &mut out) {
                Ok(()) => {
                    assert!(!out.measurement.is_empty());
                    assert!(!out.fields.is_empty());
                    let written = write_line(&out);
                    let reparsed = parse(&written);
                    assert_eq!(
                        reparsed.as_ref(),
                        Ok(&out),
                        "{line:?} written as {written:?}"
                    );
                }
                Err(e) => {
                    assert!(e.line >= no && e.line <= total_lines, "{e}");
                    assert!(e.column >= 1, "{e}");
                }
            }
        }
    }

    /// Checks [`check_never_panics`] and that the spec parser agrees.
    fn check(text: &str) -> Result<(), TestCaseError> {
        check_never_panics(text);
        match spec::disagreement(text) {
            None => Ok(()),
            Some(difference) => Err(TestCaseError::fail(difference)),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(line in line_strategy()) {
            let (expected, text) = line;
            let mut out = ParsedLine::default();
            let result = parse_line(&text, 1, &mut out);
            prop_assert_eq!(result, Ok(()), "{:?}", text);
            prop_assert_eq!(&out, &expected, "{:?}", text);
            // Writing the parse back gives a line that parses the same.
            let written = write_line(&out);
            prop_assert_eq!(parse(&written), Ok(expected), "{:?}", written);
            check(&text)?;
        }

        #[test]
        fn round_trip_multi_line(
            generated in prop::collection::vec(
                (line_strategy(), prop::sample::select(&["\n", "\r\n", "\n\n", "\n# note \"\n", "\n  \n"][..])),
                1..5,
            )
        ) {
            let mut text = String::new();
            let mut expected = Vec::new();
            for ((parsed, line), separator) in generated {
                expected.push((1 + text.matches('\n').count(), parsed));
                text.push_str(&line);
                text.push_str(separator);
            }
            let results = parse_all(&text);
            prop_assert_eq!(results.len(), expected.len(), "{:?}", text);
            for ((no, result), (expected_no, expected_line)) in results.into_iter().zip(expected) {
                prop_assert_eq!(no, expected_no, "{:?}", text);
                prop_assert_eq!(result, Ok(expected_line), "{:?}", text);
            }
            check(&text)?;
        }

        #[test]
        fn arbitrary_text_agrees_with_spec(text in any::<String>()) {
            check(&text)?;
        }

        #[test]
        fn edited_lines_agree_with_spec(
            lines in prop::collection::vec(line_strategy(), 1..3),
            edits in prop::collection::vec(
                (any::<prop::sample::Index>(), 0..3u8, prop::sample::select(&[
                    ',', ' ', '=', '"', '\\', '\n', '\r', '\t', '#', 'i', 'u', '-', '.', 'é',
                ][..])),
                1..4,
            ),
        ) {
            let text: Vec<String> = lines.into_iter().map(|(_, text)| text).collect();
            let mut chars: Vec<char> = text.join("\n").chars().collect();
            for (index, kind, c) in edits {
                let at = index.index(chars.len() + 1);
                match kind {
                    0 => chars.insert(at, c),
                    1 if at < chars.len() => chars[at] = c,
                    _ if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ => chars.push(c),
                }
            }
            check(&String::from_iter(chars))?;
        }

        /// Decimal floats of up to 25 digits, with and without a sign,
        /// a point and an exponent: the value the standard library parses,
        /// bit for bit, the fast path's (up to 19 digits, no exponent)
        /// included.
        #[test]
        fn floats_parse_as_the_standard_library_parses_them(
            negative in any::<bool>(),
            whole in "[0-9]{0,13}",
            fraction in prop::option::of("[0-9]{0,12}"),
            exponent in prop::option::of(-330i32..330),
        ) {
            let mut text = String::from(if negative { "-" } else { "" });
            text.push_str(&whole);
            if let Some(fraction) = &fraction {
                text.push('.');
                text.push_str(fraction);
            }
            if let Some(e) = exponent {
                text.push_str(&format!("e{e}"));
            }
            let expected = text.parse::<f64>().ok().filter(|_| is_decimal_float(text.as_bytes()));
            let parsed = parse_float(text.as_bytes());
            prop_assert_eq!(parsed.map(f64::to_bits), expected.map(f64::to_bits), "{:?}", text);
        }

        #[test]
        fn near_line_protocol_text_agrees_with_spec(text in near_line_protocol()) {
            check(&text)?;
        }

        #[test]
        fn assembled_lines_agree_with_spec(text in assembled_text()) {
            check(&text)?;
        }
    }
}
