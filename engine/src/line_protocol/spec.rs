//! A specification-level line-protocol parser, for tests only.
//!
//! It reads a whole text character by character, straight from the numbered rules in the
//! documentation of [`super`], and shares no parsing code with the parser there; it is slow
//! and allocates freely. [`disagreement`] compares the two; the unit tests, the property tests
//! and the fuzz target (`engine/fuzz`) call it. Nothing else should use this module.

use std::borrow::Cow;

use super::{FieldValue, ParsedLine, lines, parse_line};

/// A line that the rules reject.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    /// The physical line (from 1) of the problem.
    pub line: usize,
    /// What the problem is.
    pub message: String,
}

/// Parses `text`: every line that is neither blank nor a comment, with the number of its first
/// physical line, in order.
pub fn parse_text(text: &str) -> Vec<(usize, Result<ParsedLine<'static>, SpecError>)> {
    let c: Vec<char> = text.chars().collect();
    let mut results = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    while pos < c.len() {
        let newline = find_newline(&c, pos);
        // Rule 1: a `\r` before the `\n`, or at the end of the text, is part of the ending.
        let mut physical = &c[pos..newline];
        if physical.last() == Some(&'\r') {
            physical = &physical[..physical.len() - 1];
        }
        let skipped = match physical.iter().position(|&ch| ch != ' ') {
            // Rule 2: blank.
            None => true,
            // Rule 3: a comment, unless it holds a control character.
            Some(first) => {
                physical[first] == '#' && !physical[first..].iter().any(|&ch| is_control(ch))
            }
        };
        let end = if skipped {
            newline
        } else {
            let mut reader = Reader { c: &c, p: pos };
            let (result, end) = match reader.point() {
                Ok(point) => {
                    // The reader stopped at the line ending: `\n`, `\r\n`, the end of the
                    // text, or a `\r` that ends the text.
                    let end = find_newline(&c, reader.p);
                    (check_keys(point, line), end)
                }
                Err(fail) => {
                    let error_line = line + count_newlines(&c[pos..fail.pos]);
                    let error = SpecError {
                        line: error_line,
                        message: fail.message,
                    };
                    // Rule 4: a bad line ends with the physical line of its error, or with
                    // the text when a string is never closed.
                    let end = if fail.to_text_end {
                        c.len()
                    } else {
                        find_newline(&c, fail.pos)
                    };
                    (Err(error), end)
                }
            };
            results.push((line, result));
            end
        };
        line += count_newlines(&c[pos..end]) + 1;
        pos = end + 1;
    }
    results
}

/// Compares the parser of [`super`] (through [`lines`] and [`parse_line`]) with
/// [`parse_text`] on `text`: the same lines with the same numbers, each either parsed to the
/// same value (floats to the same bits) by both or rejected by both on the same physical
/// line. Returns a description of the first difference.
pub fn disagreement(text: &str) -> Option<String> {
    let expected = parse_text(text);
    let mut out = ParsedLine::default();
    let actual: Vec<(usize, Result<ParsedLine<'_>, super::ParseError>)> = lines(text)
        .map(|(no, line)| (no, parse_line(line, no, &mut out).map(|()| out.clone())))
        .collect();
    if actual.len() != expected.len() {
        return Some(format!(
            "{text:?}: parse_line saw {} lines, the spec {}:\n  parse_line: {actual:?}\n  spec: {expected:?}",
            actual.len(),
            expected.len()
        ));
    }
    for ((no, got), (expected_no, want)) in actual.iter().zip(&expected) {
        let same = no == expected_no
            && match (got, want) {
                (Ok(got), Ok(want)) => same_line(got, want),
                (Err(got), Err(want)) => got.line == want.line,
                _ => false,
            };
        if !same {
            return Some(format!(
                "{text:?}:\n  parse_line: line {no}: {got:?}\n  spec:       line {expected_no}: {want:?}"
            ));
        }
    }
    None
}

/// Equality of parsed lines that tells floats apart by their bits (`0.0` from `-0.0`).
fn same_line(a: &ParsedLine<'_>, b: &ParsedLine<'_>) -> bool {
    a.measurement == b.measurement
        && a.tags == b.tags
        && a.timestamp == b.timestamp
        && a.fields.len() == b.fields.len()
        && a.fields.iter().zip(&b.fields).all(|((ka, va), (kb, vb))| {
            ka == kb
                && match (va, vb) {
                    (FieldValue::F64(x), FieldValue::F64(y)) => x.to_bits() == y.to_bits(),
                    _ => va == vb,
                }
        })
}

fn find_newline(c: &[char], from: usize) -> usize {
    c[from..]
        .iter()
        .position(|&ch| ch == '\n')
        .map_or(c.len(), |p| from + p)
}

fn count_newlines(c: &[char]) -> usize {
    c.iter().filter(|&&ch| ch == '\n').count()
}

/// U+0000 to U+001F and U+007F.
fn is_control(ch: char) -> bool {
    ch < ' ' || ch == '\u{7f}'
}

/// A point as the rules read it, before rules 15 and 16.
struct Point {
    measurement: String,
    tags: Vec<(String, String)>,
    fields: Vec<(String, FieldValue<'static>)>,
    timestamp: Option<i64>,
}

/// Rules 15 and 16.
fn check_keys(point: Point, line: usize) -> Result<ParsedLine<'static>, SpecError> {
    for (i, (key, _)) in point.tags.iter().enumerate() {
        if point.tags[..i].iter().any(|(earlier, _)| earlier == key) {
            return Err(SpecError {
                line,
                message: format!("tag key {key:?} repeats"),
            });
        }
    }
    let mut fields: Vec<(Cow<'static, str>, FieldValue<'static>)> = Vec::new();
    for (key, value) in point.fields {
        match fields
            .iter_mut()
            .find(|(earlier, _)| *earlier == key.as_str())
        {
            Some(field) => field.1 = value,
            None => fields.push((Cow::Owned(key), value)),
        }
    }
    Ok(ParsedLine {
        measurement: Cow::Owned(point.measurement),
        tags: point
            .tags
            .into_iter()
            .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
            .collect(),
        fields,
        timestamp: point.timestamp,
    })
}

/// Why a line failed and where.
struct Fail {
    /// Character index in the text.
    pos: usize,
    message: String,
    /// A string that is never closed (rule 4).
    to_text_end: bool,
}

/// The kinds of names, for rules 7 and 8.
#[derive(Clone, Copy)]
enum Name {
    Measurement,
    /// Tag keys, tag values and field keys.
    Key,
}

impl Name {
    /// Rule 7: the characters that end a name.
    fn ends_at(self, ch: char) -> bool {
        is_control(ch)
            || match self {
                Name::Measurement => ch == ' ' || ch == ',',
                Name::Key => ch == ' ' || ch == ',' || ch == '=',
            }
    }

    /// Rule 8: the characters a backslash escapes.
    fn escapes(self, ch: char) -> bool {
        match self {
            Name::Measurement => ch == ' ' || ch == ',',
            Name::Key => ch == ' ' || ch == ',' || ch == '=',
        }
    }
}

/// Reads one line starting at `p` of the whole text `c`.
struct Reader<'c> {
    c: &'c [char],
    p: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<char> {
        self.c.get(self.p).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.c.get(self.p + ahead).copied()
    }

    fn fail<T>(&self, message: &str) -> Result<T, Fail> {
        Err(Fail {
            pos: self.p,
            message: message.to_owned(),
            to_text_end: false,
        })
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.p += 1;
        }
    }

    /// Rule 1: at `\n`, `\r\n`, the end of the text, or a `\r` that ends the text.
    fn at_line_end(&self) -> bool {
        match self.peek() {
            None | Some('\n') => true,
            Some('\r') => matches!(self.peek_at(1), None | Some('\n')),
            Some(_) => false,
        }
    }

    /// Rules 5, 6, 13 and 14: the parts of a line, in order.
    fn point(&mut self) -> Result<Point, Fail> {
        // Rule 5: spaces may come first.
        self.skip_spaces();
        // Rule 7: a measurement cannot start with `#`; such a line is a bad comment.
        if self.peek() == Some('#') {
            return self.fail("a comment holds a control character");
        }
        let measurement = self.name(Name::Measurement)?;
        // Rule 6: tags, each after a comma.
        let mut tags = Vec::new();
        while self.peek() == Some(',') {
            self.p += 1;
            let key = self.name(Name::Key)?;
            self.expect_equals()?;
            let value = self.name(Name::Key)?;
            tags.push((key, value));
        }
        // Rule 5: spaces before the fields.
        if self.peek() != Some(' ') {
            return self.fail("expected a space before the fields");
        }
        self.skip_spaces();
        // Rule 6: at least one field; more after commas.
        let mut fields = Vec::new();
        loop {
            let key = self.name(Name::Key)?;
            self.expect_equals()?;
            let value = self.value()?;
            fields.push((key, value));
            if self.peek() == Some(',') {
                self.p += 1;
            } else {
                break;
            }
        }
        // Rules 5 and 13: after the last value, spaces or the end of the line.
        let mut timestamp = None;
        if !self.at_line_end() {
            if self.peek() != Some(' ') {
                return self.fail("expected a comma, a space or the end of the line");
            }
            self.skip_spaces();
            if !self.at_line_end() {
                timestamp = Some(self.timestamp()?);
                self.skip_spaces();
                if !self.at_line_end() {
                    return self.fail("expected the end of the line after the timestamp");
                }
            }
        }
        Ok(Point {
            measurement,
            tags,
            fields,
            timestamp,
        })
    }

    fn expect_equals(&mut self) -> Result<(), Fail> {
        if self.peek() == Some('=') {
            self.p += 1;
            Ok(())
        } else {
            self.fail("expected '='")
        }
    }

    /// Rules 7 and 8.
    fn name(&mut self, kind: Name) -> Result<String, Fail> {
        let mut name = String::new();
        loop {
            match self.peek() {
                Some('\\') => match self.peek_at(1) {
                    Some(next) if kind.escapes(next) => {
                        name.push(next);
                        self.p += 2;
                    }
                    _ => {
                        name.push('\\');
                        self.p += 1;
                    }
                },
                Some(ch) if !kind.ends_at(ch) => {
                    name.push(ch);
                    self.p += 1;
                }
                _ => break,
            }
        }
        if name.is_empty() {
            return self.fail("expected a name");
        }
        Ok(name)
    }

    /// Rules 9 to 13.
    fn value(&mut self) -> Result<FieldValue<'static>, Fail> {
        if self.peek() == Some('"') {
            return self.string();
        }
        // Rule 13: an unquoted value runs up to a comma, a space, `\r` or `\n`.
        let start = self.p;
        let mut text = String::new();
        while let Some(ch) = self.peek() {
            if matches!(ch, ',' | ' ' | '\r' | '\n') {
                break;
            }
            text.push(ch);
            self.p += 1;
        }
        let fail = |message: &str| {
            Err(Fail {
                pos: start,
                message: format!("{text:?}: {message}"),
                to_text_end: false,
            })
        };
        // Rule 11.
        match text.as_str() {
            "t" | "T" | "true" | "True" | "TRUE" => return Ok(FieldValue::Bool(true)),
            "f" | "F" | "false" | "False" | "FALSE" => return Ok(FieldValue::Bool(false)),
            _ => {}
        }
        // Rule 10.
        if let Some(number) = text.strip_suffix('i') {
            let digits = number.strip_prefix('-').unwrap_or(number);
            if !is_digits(digits) {
                return fail("not an integer");
            }
            return match number.parse::<i64>() {
                Ok(n) => Ok(FieldValue::I64(n)),
                Err(_) => fail("integer out of range"),
            };
        }
        if let Some(digits) = text.strip_suffix('u') {
            if !is_digits(digits) {
                return fail("not an unsigned integer");
            }
            return match digits.parse::<u64>() {
                Ok(n) => Ok(FieldValue::U64(n)),
                Err(_) => fail("unsigned integer out of range"),
            };
        }
        // Rule 9.
        if !is_float(&text) {
            return fail("not a value");
        }
        match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(FieldValue::F64(x)),
            _ => fail("float out of range"),
        }
    }

    /// Rule 12.
    fn string(&mut self) -> Result<FieldValue<'static>, Fail> {
        let open = self.p;
        self.p += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(Fail {
                        pos: open,
                        message: "string never closed".to_owned(),
                        to_text_end: true,
                    });
                }
                Some('"') => {
                    self.p += 1;
                    return Ok(FieldValue::Str(Cow::Owned(text)));
                }
                Some('\\') => {
                    let escaped = match self.peek_at(1) {
                        Some('"') => Some('"'),
                        Some('\\') => Some('\\'),
                        Some('n') => Some('\n'),
                        Some('r') => Some('\r'),
                        Some('t') => Some('\t'),
                        _ => None,
                    };
                    match escaped {
                        Some(ch) => {
                            text.push(ch);
                            self.p += 2;
                        }
                        None => {
                            text.push('\\');
                            self.p += 1;
                        }
                    }
                }
                Some(ch) => {
                    text.push(ch);
                    self.p += 1;
                }
            }
        }
    }

    /// Rule 14: an optional `-` and digits, then a space or the end of the line.
    fn timestamp(&mut self) -> Result<i64, Fail> {
        let start = self.p;
        let mut text = String::new();
        if self.peek() == Some('-') {
            text.push('-');
            self.p += 1;
        }
        while let Some(ch) = self.peek().filter(char::is_ascii_digit) {
            text.push(ch);
            self.p += 1;
        }
        if !(self.peek() == Some(' ') || self.at_line_end()) {
            return self.fail("a timestamp is digits");
        }
        let digits = text.strip_prefix('-').unwrap_or(&text);
        if !is_digits(digits) {
            self.p = start;
            return self.fail("a timestamp is digits");
        }
        text.parse::<i64>().or_else(|_| {
            self.p = start;
            self.fail("timestamp out of range")
        })
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|ch| ch.is_ascii_digit())
}

/// Rule 9: `-`? then digits with an optional `.` and at least one digit, then an optional
/// exponent: `e` or `E`, an optional sign, digits.
fn is_float(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (mantissa, ""),
    };
    let all_digits = |s: &str| s.chars().all(|ch| ch.is_ascii_digit());
    let mantissa_ok =
        all_digits(whole) && all_digits(fraction) && !(whole.is_empty() && fraction.is_empty());
    let exponent_ok = match exponent {
        None => true,
        Some(e) => is_digits(e.strip_prefix(['+', '-']).unwrap_or(e)),
    };
    mantissa_ok && exponent_ok
}
