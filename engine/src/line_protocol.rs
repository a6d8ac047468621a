//! InfluxDB line-protocol parser.
//!
//! A point is written as one line:
//!
//! ```text
//! measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]
//! ```
//!
//! * Lines are separated by `\n`; a trailing `\r` is stripped. Blank lines and lines whose
//!   first non-whitespace character is `#` are skipped, and leading whitespace is ignored.
//!   A `\n` inside a double-quoted string field value does not end the line.
//! * The measurement is non-empty; `\,` and `\ ` are its escapes and it may contain `=`.
//! * Tag keys, tag values and field keys are non-empty; `\,`, `\=` and `\ ` are their
//!   escapes. An unescaped `=` in a tag value is an error. Tags are optional; a tag key may
//!   appear only once per line.
//! * In all of the above, a backslash followed by any other character is kept literally,
//!   together with that character (so `a\\b` stays `a\\b`).
//! * At least one field is required. Field values are floats (`1`, `-1.5e3`, `.5`; `inf` and
//!   `nan` are rejected), signed integers with an `i` suffix (`-12i`), unsigned integers with a
//!   `u` suffix (`12u`), booleans (`t`, `T`, `true`, `True`, `TRUE`, `f`, `F`, `false`,
//!   `False`, `FALSE`) and double-quoted strings whose escapes are `\"` and `\\` (any other
//!   backslash sequence is kept literally). When a field key repeats, the field keeps the
//!   position of its first occurrence and the value of its last.
//! * The timestamp is an optional signed 64-bit integer, followed by nothing but whitespace.
//!
//! [`lines`] splits a text into lines and [`parse_line`] parses one of them, borrowing from
//! the text: keys and values are copied only when they contain escapes.

use std::borrow::Cow;

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

/// Iterates the non-blank, non-comment lines of `text` as `(line_number_from_1, line_str)`.
///
/// The yielded line keeps its leading whitespace (so that error columns match the text) but
/// not its trailing `\r`. A line holding a string field value with a `\n` in it spans several
/// physical lines; its number is the number of the first one.
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
            let nl = next_newline(b, start);
            // Only a line with a double quote can hold a string value that spans lines.
            let end = if b[start..nl].contains(&b'"') {
                quoted_line_end(b, start, nl)
            } else {
                nl
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
            let line = line.strip_suffix('\r').unwrap_or(line);
            match line.bytes().find(|c| !c.is_ascii_whitespace()) {
                None | Some(b'#') => continue,
                Some(_) => return Some((line_no, line)),
            }
        }
        None
    }
}

impl std::iter::FusedIterator for Lines<'_> {}

/// Index of the first `\n` at or after `from`, or the length of `b`.
#[inline]
fn next_newline(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| from + p)
}

fn count_newlines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

/// Finds the end of a line that contains a double quote, `nl` being its first `\n` (or the
/// text's end). Follows the grammar far enough to know where string field values are; a line
/// that goes wrong before its end ends at its next `\n`, and the parser reports the problem.
/// An unterminated string ends at the first `\n` after its opening quote.
fn quoted_line_end(b: &[u8], start: usize, nl: usize) -> usize {
    let mut i = start;
    while i < b.len() && b[i] != b'\n' && b[i].is_ascii_whitespace() {
        i += 1;
    }
    if b.get(i) == Some(&b'#') {
        return nl;
    }
    // Measurement and tags: up to the first unescaped space.
    loop {
        match b.get(i) {
            None => return b.len(),
            Some(b'\n') => return i,
            Some(b' ') => break,
            Some(b'\\') if b.get(i + 1).is_some_and(|&c| c != b'\n') => i += 2,
            Some(_) => i += 1,
        }
    }
    while b.get(i).is_some_and(|&c| is_separator_space(c)) {
        i += 1;
    }
    // Fields.
    loop {
        let key_start = i;
        loop {
            match b.get(i) {
                None => return b.len(),
                Some(b'\n') => return i,
                Some(b'=') if i > key_start => {
                    i += 1;
                    break;
                }
                Some(b'=' | b',' | b' ') => return next_newline(b, i),
                Some(b'\\') if b.get(i + 1).is_some_and(|&c| c != b'\n') => i += 2,
                Some(_) => i += 1,
            }
        }
        if b.get(i) == Some(&b'"') {
            let open = i;
            i += 1;
            loop {
                match b.get(i) {
                    None => return next_newline(b, open),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => i += 2,
                    Some(_) => i += 1,
                }
            }
        }
        // The rest of the value: all of an unquoted one, or whatever follows a string.
        loop {
            match b.get(i) {
                None => return b.len(),
                Some(b'\n') => return i,
                Some(b',') => {
                    i += 1;
                    break;
                }
                Some(b' ') => return next_newline(b, i),
                Some(_) => i += 1,
            }
        }
    }
}

/// Whitespace allowed between the sections of a line, after the space that separates them.
#[inline]
fn is_separator_space(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

type ByteSet = [bool; 256];

const fn byte_set(bytes: &[u8]) -> ByteSet {
    let mut set = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        set[bytes[i] as usize] = true;
        i += 1;
    }
    set
}

/// Characters a backslash escapes in a measurement.
static MEASUREMENT_ESCAPES: ByteSet = byte_set(b", ");
/// Bytes that end or interrupt the scan of a measurement.
static MEASUREMENT_STOPS: ByteSet = byte_set(b"\\, ");
/// Characters a backslash escapes in tag keys, tag values and field keys.
static KEY_ESCAPES: ByteSet = byte_set(b",= ");
/// Bytes that end or interrupt the scan of tag keys, tag values and field keys.
static KEY_STOPS: ByteSet = byte_set(b"\\,= ");
/// Characters a backslash escapes in a string field value.
static STRING_ESCAPES: ByteSet = byte_set(b"\"\\");

/// Scans an escaped token from `i` to the first unescaped byte of `stops` (other than the
/// backslash) or the end of `b`. A backslash always takes the next byte with it. Returns the
/// token's end and whether it contains an escape of `escapes`.
#[inline]
fn scan_token(b: &[u8], mut i: usize, stops: &ByteSet, escapes: &ByteSet) -> (usize, bool) {
    let mut escaped = false;
    while i < b.len() {
        let c = b[i];
        if !stops[c as usize] {
            i += 1;
        } else if c == b'\\' {
            match b.get(i + 1) {
                Some(&next) => {
                    escaped |= escapes[next as usize];
                    i += 2;
                }
                None => i += 1,
            }
        } else {
            break;
        }
    }
    (i, escaped)
}

/// `line[start..end]` as a `Cow`, unescaped (with the same backslash pairing as
/// [`scan_token`]) when `escaped` is set.
#[inline]
fn token<'a>(
    line: &'a str,
    start: usize,
    end: usize,
    escaped: bool,
    escapes: &ByteSet,
) -> Cow<'a, str> {
    let raw = &line[start..end];
    if escaped {
        Cow::Owned(unescape(raw, escapes))
    } else {
        Cow::Borrowed(raw)
    }
}

#[cold]
fn unescape(raw: &str, escapes: &ByteSet) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if escapes[b[i + 1] as usize] {
                // Drop the backslash; the escaped ASCII character is copied with what follows.
                out.push_str(&raw[copied..i]);
                copied = i + 1;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    out.push_str(&raw[copied..]);
    out
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

/// Up to this many tags or fields, duplicate keys are found by comparing every pair, which
/// needs no allocation; above it, by sorting.
const SMALL: usize = 16;

/// Parses one line into `out`, reusing its vectors' capacity (they are cleared first). No heap
/// allocation when the line has no escapes and `out` has capacity already.
///
/// `line_no` is the line's number in its text, as given by [`lines`]; errors report positions
/// relative to it. On error `out` holds an unspecified part of the line.
pub fn parse_line<'a>(
    line: &'a str,
    line_no: usize,
    out: &mut ParsedLine<'a>,
) -> Result<(), ParseError> {
    out.measurement = Cow::Borrowed("");
    out.tags.clear();
    out.fields.clear();
    out.timestamp = None;

    let b = line.as_bytes();
    let len = b.len();
    let err = |pos: usize, message: String| error(line, line_no, pos, message);

    let mut i = 0;
    while i < len && b[i].is_ascii_whitespace() {
        i += 1;
    }

    // Measurement.
    let (end, escaped) = scan_token(b, i, &MEASUREMENT_STOPS, &MEASUREMENT_ESCAPES);
    if end == i {
        return Err(err(
            i,
            "expected a measurement name at the start of the line".to_owned(),
        ));
    }
    out.measurement = token(line, i, end, escaped, &MEASUREMENT_ESCAPES);
    let measurement_end = end;
    i = end;

    // Tags.
    while i < len && b[i] == b',' {
        i += 1;
        let key_start = i;
        let (key_end, escaped) = scan_token(b, i, &KEY_STOPS, &KEY_ESCAPES);
        if key_end == key_start {
            return Err(err(i, "expected a tag key after ','".to_owned()));
        }
        let key = token(line, key_start, key_end, escaped, &KEY_ESCAPES);
        if b.get(key_end) != Some(&b'=') {
            return Err(err(
                key_end,
                format!("expected '=' after tag key {}", quoted(&key)),
            ));
        }
        let value_start = key_end + 1;
        let (value_end, escaped) = scan_token(b, value_start, &KEY_STOPS, &KEY_ESCAPES);
        if value_end == value_start {
            return Err(err(
                value_start,
                format!(
                    "expected a tag value after '=' for tag key {}",
                    quoted(&key)
                ),
            ));
        }
        if b.get(value_end) == Some(&b'=') {
            return Err(err(
                value_end,
                format!(
                    "unexpected '=' in the value of tag key {}: write it as '\\='",
                    quoted(&key)
                ),
            ));
        }
        let value = token(line, value_start, value_end, escaped, &KEY_ESCAPES);
        out.tags.push((key, value));
        i = value_end;
    }
    if let Some(dup) = find_duplicate_tag(&out.tags) {
        return Err(err(
            tag_key_start(b, measurement_end, dup),
            format!("duplicate tag key {}", quoted(&out.tags[dup].0)),
        ));
    }

    // Fields. Here `i` is at the end of the line or at the space that ends the tags.
    let key_section_end = i;
    while i < len && is_separator_space(b[i]) {
        i += 1;
    }
    if b[i..].iter().all(u8::is_ascii_whitespace) {
        return Err(err(
            key_section_end,
            "missing field set: a line needs at least one field (measurement tags fields [timestamp])"
                .to_owned(),
        ));
    }
    loop {
        let key_start = i;
        let (key_end, escaped) = scan_token(b, i, &KEY_STOPS, &KEY_ESCAPES);
        if key_end == key_start {
            let message = if out.fields.is_empty() {
                "expected a field key"
            } else {
                "expected a field key after ','"
            };
            return Err(err(i, message.to_owned()));
        }
        let key = token(line, key_start, key_end, escaped, &KEY_ESCAPES);
        if b.get(key_end) != Some(&b'=') {
            return Err(err(
                key_end,
                format!("expected '=' after field key {}", quoted(&key)),
            ));
        }
        let (value, value_end) = parse_field_value(line, line_no, key_end + 1, &key)?;
        out.fields.push((key, value));
        i = value_end;
        if i < len && b[i] == b',' {
            i += 1;
        } else {
            break;
        }
    }
    dedup_fields(&mut out.fields);

    // Timestamp. Here `i` is at the end of the line or at the space that ends the fields.
    while i < len && b[i].is_ascii_whitespace() {
        i += 1;
    }
    if i < len {
        let start = i;
        while i < len && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let text = &line[start..i];
        out.timestamp = Some(match parse_i64(text.as_bytes()) {
            Ok(ts) => ts,
            Err(IntError::Invalid) => {
                return Err(err(
                    start,
                    format!("invalid timestamp {}: expected an integer", quoted(text)),
                ));
            }
            Err(IntError::Overflow) => {
                return Err(err(
                    start,
                    format!("timestamp out of range for i64: {}", quoted(text)),
                ));
            }
        });
        while i < len && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < len {
            return Err(err(
                i,
                format!(
                    "expected the end of the line after the timestamp, found {}",
                    quoted(&line[i..])
                ),
            ));
        }
    }
    Ok(())
}

/// Parses the field value starting at byte `start` of `line`; returns it and the byte
/// position after it, which is the end of the line, a `,` or a space.
#[inline]
fn parse_field_value<'a>(
    line: &'a str,
    line_no: usize,
    start: usize,
    key: &str,
) -> Result<(FieldValue<'a>, usize), ParseError> {
    let b = line.as_bytes();
    let err = |pos: usize, message: String| error(line, line_no, pos, message);

    if b.get(start) == Some(&b'"') {
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            let Some(p) = b
                .get(i..)
                .and_then(|rest| rest.iter().position(|&c| c == b'"' || c == b'\\'))
            else {
                return Err(err(
                    start,
                    format!(
                        "unterminated string field value for field key {}: expected a closing '\"'",
                        quoted(key)
                    ),
                ));
            };
            i += p;
            if b[i] == b'"' {
                break;
            }
            escaped |= b.get(i + 1).is_some_and(|&c| STRING_ESCAPES[c as usize]);
            i += 2;
        }
        let value = token(line, start + 1, i, escaped, &STRING_ESCAPES);
        let end = i + 1;
        if end < b.len() && b[end] != b',' && b[end] != b' ' {
            return Err(err(
                end,
                format!(
                    "expected ',' or ' ' after the string value of field key {}, found {}",
                    quoted(key),
                    quoted(&line[end..])
                ),
            ));
        }
        return Ok((FieldValue::Str(value), end));
    }

    let end = b[start..]
        .iter()
        .position(|&c| c == b',' || c == b' ')
        .map_or(b.len(), |p| start + p);
    let text = &line[start..end];
    let v = text.as_bytes();
    let Some((&first, _)) = v.split_first() else {
        return Err(err(
            start,
            format!(
                "expected a field value after '=' for field key {}",
                quoted(key)
            ),
        ));
    };
    let value = if first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.') {
        match v.split_last() {
            Some((b'i', digits)) => match parse_i64(digits) {
                Ok(n) => FieldValue::I64(n),
                Err(IntError::Invalid) => {
                    return Err(err(
                        start,
                        format!(
                            "invalid integer field value {}: expected an optional sign and digits before the 'i' suffix",
                            quoted(text)
                        ),
                    ));
                }
                Err(IntError::Overflow) => {
                    return Err(err(
                        start,
                        format!("integer field value out of range for i64: {}", quoted(text)),
                    ));
                }
            },
            Some((b'u', digits)) => {
                let digits = digits.strip_prefix(b"+").unwrap_or(digits);
                if digits.first() == Some(&b'-') {
                    return Err(err(
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
                        return Err(err(
                            start,
                            format!(
                                "invalid unsigned integer field value {}: expected digits before the 'u' suffix",
                                quoted(text)
                            ),
                        ));
                    }
                    Err(IntError::Overflow) => {
                        return Err(err(
                            start,
                            format!(
                                "unsigned integer field value out of range for u64: {}",
                                quoted(text)
                            ),
                        ));
                    }
                }
            }
            _ => {
                // Rust's float syntax minus "inf", "infinity" and "nan".
                let float_chars = v
                    .iter()
                    .all(|&c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'));
                match text.parse::<f64>() {
                    Ok(x) if float_chars && x.is_finite() => FieldValue::F64(x),
                    Ok(_) if float_chars => {
                        return Err(err(
                            start,
                            format!("float field value out of range for f64: {}", quoted(text)),
                        ));
                    }
                    _ => {
                        return Err(err(
                            start,
                            format!(
                                "invalid numeric field value {}: expected a float (1.5), an integer (2i) or an unsigned integer (3u)",
                                quoted(text)
                            ),
                        ));
                    }
                }
            }
        }
    } else {
        match v {
            b"t" | b"T" | b"true" | b"True" | b"TRUE" => FieldValue::Bool(true),
            b"f" | b"F" | b"false" | b"False" | b"FALSE" => FieldValue::Bool(false),
            _ => {
                return Err(err(
                    start,
                    format!(
                        "invalid field value {}: expected a number (1.5, 2i, 3u), a boolean (t, f, true, false) or a double-quoted string",
                        quoted(text)
                    ),
                ));
            }
        }
    };
    Ok((value, end))
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

/// Parses an optional `+` or `-` followed by one or more ASCII digits.
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
        Some((b'+', digits)) => i64::try_from(parse_u64(digits)?).map_err(|_| IntError::Overflow),
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

/// Byte position of the key of tag `index` in a line whose tags start at `tags_start` (the
/// first `,`) and have been parsed successfully.
#[cold]
fn tag_key_start(b: &[u8], tags_start: usize, index: usize) -> usize {
    let mut i = tags_start;
    for _ in 0..index {
        let (key_end, _) = scan_token(b, i + 1, &KEY_STOPS, &KEY_ESCAPES);
        let (value_end, _) = scan_token(b, key_end + 1, &KEY_STOPS, &KEY_ESCAPES);
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
    /// Appends this line as line protocol (no trailing newline), escaping
    /// what needs escaping. A name ending in an odd number of backslashes
    /// cannot be written back faithfully, since `\\` is not an escape in
    /// names; every line [`parse_line`] produces can be.
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
                    write_escaped(out, v, &['"', '\\']);
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

    /// Parses a text whose third line is the only bad one; returns that line's error.
    fn third_line_error(bad: &str) -> ParseError {
        let text = format!("m,t=1 f=1 10\n\n{bad}\nm f=2\n");
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
        let mut parsed = parse_ok(line);
        assert_eq!(parsed.fields.len(), 1, "{line:?}");
        parsed.fields.remove(0).1
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
    }

    #[test]
    fn minimal_line_without_tags_or_timestamp() {
        let parsed = parse_ok("cpu value=1");
        assert_eq!(parsed.measurement, "cpu");
        assert!(parsed.tags.is_empty());
        assert_eq!(parsed.fields, vec![field("value", FieldValue::F64(1.0))]);
        assert_eq!(parsed.timestamp, None);
    }

    #[test]
    fn measurement_escapes() {
        let parsed = parse_ok(r"my\ meas\,ure=ment f=1");
        assert_eq!(parsed.measurement, "my meas,ure=ment");
        assert!(matches!(parsed.measurement, Cow::Owned(_)));
        // `\=` is not an escape in a measurement, nor is `\\`.
        assert_eq!(parse_ok(r"a\=b f=1").measurement, r"a\=b");
        assert_eq!(parse_ok(r"a\\b f=1").measurement, r"a\\b");
        // `\\` pairs, so the comma after it separates the tags.
        let parsed = parse_ok(r"a\\,t=v f=1");
        assert_eq!(parsed.measurement, r"a\\");
        assert_eq!(parsed.tags, vec![(b("t"), b("v"))]);
        // Unicode and `=`.
        assert_eq!(parse_ok("温度=x f=1").measurement, "温度=x");
    }

    #[test]
    fn tag_escapes() {
        let parsed = parse_ok(r"m,k\ e\=y\,=v\ a\=l\,ue,x=a\b f=1");
        assert_eq!(
            parsed.tags,
            vec![(b("k e=y,"), b("v a=l,ue")), (b("x"), b(r"a\b"))]
        );
        assert!(matches!(parsed.tags[0].0, Cow::Owned(_)));
        assert!(matches!(parsed.tags[1].1, Cow::Borrowed(_)));
        assert_eq!(parse_ok(r"m f=1,g\=x=2").fields[1].0, "g=x");
    }

    #[test]
    fn field_key_escapes() {
        let parsed = parse_ok(r"m f\ o\,o\=x=1,é=2i");
        assert_eq!(
            parsed.fields,
            vec![
                field("f o,o=x", FieldValue::F64(1.0)),
                field("é", FieldValue::I64(2)),
            ]
        );
    }

    #[test]
    fn float_values() {
        for (text, expected) in [
            ("1", 1.0),
            ("1.0", 1.0),
            ("-1.5e3", -1500.0),
            ("1e-3", 0.001),
            ("1E3", 1000.0),
            ("+1.0", 1.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("-0", -0.0),
            ("1.7976931348623157e308", f64::MAX),
        ] {
            assert_eq!(
                value(&format!("m f={text}")),
                FieldValue::F64(expected),
                "{text}"
            );
        }
        for text in ["inf", "-inf", "nan", "NaN", "infinity", "+Infinity"] {
            let e = parse_err(&format!("m f={text}"));
            assert!(e.message.contains("invalid"), "{text}: {e}");
            assert_eq!(e.column, 5);
        }
        for text in ["1.2.3", "1e", "-", "1x", "12x", "1_0", "0x10"] {
            let e = parse_err(&format!("m f={text}"));
            assert!(
                e.message
                    .starts_with(&format!("invalid numeric field value \"{text}\"")),
                "{e}"
            );
        }
        let e = parse_err("m f=1e400");
        assert_eq!(
            e.message,
            "float field value out of range for f64: \"1e400\""
        );
    }

    #[test]
    fn integer_values() {
        assert_eq!(value("m f=-12i"), FieldValue::I64(-12));
        assert_eq!(value("m f=+12i"), FieldValue::I64(12));
        assert_eq!(value("m f=0i"), FieldValue::I64(0));
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
        for text in ["-i", "1.5i", "12xi", "1e3i", "--1i", "+-1i"] {
            let e = parse_err(&format!("m f={text}"));
            assert!(
                e.message
                    .starts_with(&format!("invalid integer field value \"{text}\"")),
                "{text}: {e}"
            );
        }
        // "i" alone does not start like a number.
        assert!(
            parse_err("m f=i")
                .message
                .starts_with("invalid field value")
        );
    }

    #[test]
    fn unsigned_values() {
        assert_eq!(value("m f=12u"), FieldValue::U64(12));
        assert_eq!(value("m f=+12u"), FieldValue::U64(12));
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
        for text in ["1.5u", "-u", "+u", "1xu"] {
            let e = parse_err(&format!("m f={text}"));
            assert!(
                e.message
                    .starts_with("invalid unsigned integer field value")
                    || e.message.contains("must not be negative"),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn boolean_values() {
        for text in ["t", "T", "true", "True", "TRUE"] {
            assert_eq!(value(&format!("m f={text}")), FieldValue::Bool(true));
        }
        for text in ["f", "F", "false", "False", "FALSE"] {
            assert_eq!(value(&format!("m f={text}")), FieldValue::Bool(false));
        }
        for text in ["tRUE", "yes", "tru", "abc"] {
            let e = parse_err(&format!("m f={text}"));
            assert!(
                e.message
                    .starts_with(&format!("invalid field value \"{text}\": expected")),
                "{e}"
            );
        }
    }

    #[test]
    fn string_values() {
        assert_eq!(value(r#"m f="""#), FieldValue::Str(b("")));
        let v = value(r#"m f="a, b=c d""#);
        assert_eq!(v, FieldValue::Str(b("a, b=c d")));
        assert!(matches!(v, FieldValue::Str(Cow::Borrowed(_))));
        let v = value(r#"m f="say \"hi\" \\ \n \x""#);
        assert_eq!(v, FieldValue::Str(b(r#"say "hi" \ \n \x"#)));
        assert!(matches!(v, FieldValue::Str(Cow::Owned(_))));
        // Escaped backslash right before the closing quote.
        assert_eq!(value(r#"m f="a\\""#), FieldValue::Str(b(r"a\")));
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

        let e = parse_err(r#"m f="abc"#);
        assert!(
            e.message.starts_with("unterminated string field value"),
            "{e}"
        );
        assert_eq!(e.column, 5);
        let e = parse_err(r#"m f="abc\""#);
        assert!(
            e.message.starts_with("unterminated string field value"),
            "{e}"
        );
        let e = parse_err(r#"m f="abc"x"#);
        assert_eq!(
            e.message,
            r#"expected ',' or ' ' after the string value of field key "f", found "x""#
        );
        assert_eq!(e.column, 10);
        // A quote in the middle of an unquoted value does not start a string.
        assert!(
            parse_err(r#"m f=1"2""#)
                .message
                .starts_with("invalid numeric")
        );
    }

    #[test]
    fn strings_spanning_lines() {
        let text = "m s=\"one\ntwo\n#three\",g=1 7\nm f=2\n\"q\" g=1\n";
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

        // An unterminated string ends its line at the next newline, so later lines parse.
        let results = parse_all("m f=1\nm s=\"abc\nm f=2\n");
        let summary: Vec<(usize, bool)> = results.iter().map(|(n, r)| (*n, r.is_ok())).collect();
        assert_eq!(summary, vec![(1, true), (2, false), (3, true)]);
        // ...unless a later quote closes it: then the string takes in the lines up to it.
        let results = parse_all("m s=\"abc\nm f=2\nm g=\"x\"\nm f=3\n");
        let summary: Vec<(usize, bool)> = results.iter().map(|(n, r)| (*n, r.is_ok())).collect();
        assert_eq!(summary, vec![(1, false), (4, true)]);

        // Errors after a multi-line string report the physical line and its column.
        let results = parse_all("m f=1\nm s=\"a\nbc\",g=x\n");
        let e = results[1].1.as_ref().map(|_| ()).unwrap_err();
        assert_eq!((e.line, e.column), (3, 7), "{e}");

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
    fn timestamps() {
        assert_eq!(parse_ok("m f=1 123").timestamp, Some(123));
        assert_eq!(parse_ok("m f=1 -123").timestamp, Some(-123));
        assert_eq!(parse_ok("m f=1 +123").timestamp, Some(123));
        assert_eq!(parse_ok("m f=1 0").timestamp, Some(0));
        assert_eq!(
            parse_ok("m f=1 -9223372036854775808").timestamp,
            Some(i64::MIN)
        );
        assert_eq!(parse_ok("m f=1  \t 123 \t ").timestamp, Some(123));
        assert_eq!(parse_ok("m f=1 ").timestamp, None);
        assert_eq!(parse_ok("m f=1 \t").timestamp, None);

        let e = parse_err("m f=1 abc");
        assert_eq!(e.message, r#"invalid timestamp "abc": expected an integer"#);
        assert_eq!(e.column, 7);
        for text in ["12.5", "1e9", "-", "+", "12i"] {
            let e = parse_err(&format!("m f=1 {text}"));
            assert!(e.message.starts_with("invalid timestamp"), "{e}");
        }
        let e = parse_err("m f=1 9223372036854775808");
        assert!(
            e.message.starts_with("timestamp out of range for i64"),
            "{e}"
        );
        let e = parse_err("m f=1 123 456");
        assert_eq!(
            e.message,
            r#"expected the end of the line after the timestamp, found "456""#
        );
        assert_eq!(e.column, 11);
    }

    #[test]
    fn duplicate_keys() {
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

        let e = parse_err("m,plant=a,line=b,plant=c f=1");
        assert_eq!(e.message, r#"duplicate tag key "plant""#);
        assert_eq!(e.column, 18);
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

        let mut tags = tags;
        tags[30] = r"t\ 7=x".to_owned();
        tags[33] = "t7=y".to_owned();
        tags[35] = "t3=z".to_owned();
        let line = format!("m,{} f=1", tags.join(","));
        let e = parse_err(&line);
        assert_eq!(e.message, r#"duplicate tag key "t7""#);
        let col = line.find("t7=y").map(|p| p + 1);
        assert_eq!(Some(e.column), col);
    }

    #[test]
    fn lines_skips_blank_and_comment_lines() {
        let text = "\n  \n# comment\n   # indented comment \"x\n\t m f=1\r\n\r\nm f=2\n   \nm f=3";
        let got: Vec<(usize, &str)> = lines(text).collect();
        assert_eq!(got, vec![(5, "\t m f=1"), (7, "m f=2"), (9, "m f=3")]);
        assert_eq!(parse_ok("\t m f=1").measurement, "m");
        assert_eq!(lines("").count(), 0);
        assert_eq!(lines("\n\n").count(), 0);
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
    fn errors_on_third_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "cpu,host=a temp 1",
                16,
                r#"expected '=' after field key "temp""#,
            ),
            (
                "cpu,host=a temp,x=1 1",
                16,
                r#"expected '=' after field key "temp""#,
            ),
            (
                "cpu,host=a",
                11,
                "missing field set: a line needs at least one field (measurement tags fields [timestamp])",
            ),
            (
                "cpu   ",
                4,
                "missing field set: a line needs at least one field (measurement tags fields [timestamp])",
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
            (
                "cpu t=1 abc",
                9,
                r#"invalid timestamp "abc": expected an integer"#,
            ),
            ("cpu t=\"abc", 7, "unterminated string field value"),
            (
                "cpu,plant=1,plant=2 t=1",
                13,
                r#"duplicate tag key "plant""#,
            ),
            (",t=1 f=1", 1, "expected a measurement name"),
            ("  ,t=1 f=1", 3, "expected a measurement name"),
            ("cpu, f=1", 5, "expected a tag key after ','"),
            ("cpu,=1 f=1", 5, "expected a tag key after ','"),
            ("cpu,host f=1", 9, r#"expected '=' after tag key "host""#),
            (
                "cpu,host,a=b f=1",
                9,
                r#"expected '=' after tag key "host""#,
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
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(1000);
        let e = parse_err(&format!("m f={long}"));
        assert!(e.message.len() < 200, "{e}");
        assert!(e.message.contains('…'));
    }

    // ---- Property tests ----------------------------------------------------------------

    /// Writes `s`, escaping the characters in `specials` with a backslash.
    fn write_line(line: &ParsedLine<'_>) -> String {
        let mut out = String::new();
        line.write_to(&mut out);
        out
    }

    /// Makes `s` writable: since `\\` is not an escape in names, a run of an odd number of
    /// backslashes before an escaped character (or the end) cannot be written, so such runs get
    /// one more backslash.
    fn writable(s: &str, specials: &[char]) -> String {
        let mut out = String::with_capacity(s.len() + 1);
        let mut run = 0;
        for c in s.chars() {
            if c == '\\' {
                run += 1;
            } else {
                if run % 2 == 1 && specials.contains(&c) {
                    out.push('\\');
                }
                run = 0;
            }
            out.push(c);
        }
        if run % 2 == 1 {
            out.push('\\');
        }
        out
    }

    const NAME_CHARS: &[char] = &[
        'a', 'b', 'Z', '0', '-', ',', ' ', '=', '"', '\\', '#', '\t', 'é', '日', '🦀',
    ];
    const STRING_CHARS: &[char] = &[
        'a', 'b', ' ', ',', '=', '"', '\\', '\n', '\r', '#', 'n', 'é', '🦀',
    ];

    fn chars(set: &'static [char], len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(set), len).prop_map(String::from_iter)
    }

    fn measurement_strategy() -> impl Strategy<Value = String> {
        chars(NAME_CHARS, 1..8).prop_map(|s| {
            // A leading '#' makes a comment and leading whitespace is skipped.
            let s = if s.starts_with(['#', '\t']) {
                format!("x{s}")
            } else {
                s
            };
            writable(&s, &[',', ' '])
        })
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        chars(NAME_CHARS, 1..6).prop_map(|s| {
            // A field key right after the tags cannot start with a tab: it would be skipped.
            let s = if s.starts_with('\t') {
                format!("x{s}")
            } else {
                s
            };
            writable(&s, &[',', '=', ' '])
        })
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
            (0..=i64::MAX).prop_map(|n| (FieldValue::I64(n), format!("+{n}i"))),
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
            prop::sample::select(&["", " ", "\t "][..]),
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
            prop::sample::select(&["", " ", "\t"][..]),
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
                // Without a timestamp only a space may follow the last field value.
                if timestamp.is_some() || trailing == " " {
                    text.push_str(trailing);
                }
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
            let results: Vec<(usize, Result<ParsedLine<'_>, ParseError>)> = results;
            prop_assert_eq!(results.len(), expected.len(), "{:?}", text);
            for ((no, result), (expected_no, expected_line)) in results.into_iter().zip(expected) {
                prop_assert_eq!(no, expected_no, "{:?}", text);
                prop_assert_eq!(result, Ok(expected_line), "{:?}", text);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            check_never_panics(&text);
        }

        #[test]
        fn edited_lines_never_panic(
            line in line_strategy(),
            edits in prop::collection::vec(
                (any::<prop::sample::Index>(), 0..3u8, prop::sample::select(&[
                    ',', ' ', '=', '"', '\\', '\n', '\t', '#', 'i', 'u', '-', '.', 'é',
                ][..])),
                1..4,
            ),
        ) {
            let (_, text) = line;
            let mut chars: Vec<char> = text.chars().collect();
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
            check_never_panics(&String::from_iter(chars));
        }

        #[test]
        fn line_protocol_like_text_never_panics(
            text in prop::collection::vec(
                prop::sample::select(&[
                    "m", "a", "é", ",", " ", "=", "\"", "\\", "\n", "\r", "\t", "#", "1", "-",
                    ".", "e", "i", "u", "t", "f", "true", "12", "1.5", "9223372036854775808",
                ][..]),
                0..48,
            ).prop_map(|parts| parts.concat())
        ) {
            check_never_panics(&text);
        }
    }
}
