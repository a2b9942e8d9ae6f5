//! Formats the fields of a log line exactly as `tracing-subscriber`'s default text format does
//! (`key=value`, strings quoted and escaped as `Debug` shows them), but without going through
//! `fmt::write` for every field.
//!
//! The default visitor writes each field with a `write!` of three arguments (the name and the
//! `=` wrapped in ANSI style helpers, even when colours are off): about a thousand instructions
//! a field. A gateway request logs two lines with seventeen fields between them, so that was
//! about 7 % of the instructions the tenant plane spends on a request (measured with callgrind,
//! see docs/gateway.md). Here plain strings, integers and booleans are appended directly;
//! anything else (`%` and `?` values, floats, errors, the message) is still written by
//! `fmt`, errors and the message by the default visitor itself so that its escaping of
//! terminal control characters applies unchanged. With colours on (a terminal) every field
//! goes through the default visitor.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};

/// The field formatter of the text log format.
#[derive(Debug, Default, Clone, Copy)]
pub struct LineFields;

impl<'writer> FormatFields<'writer> for LineFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            return DefaultFields::new().format_fields(writer, fields);
        }
        let mut visitor = LineVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct LineVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl LineVisitor<'_> {
    /// Starts a `name=` field (after a space unless it is the first).
    fn key(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::replace(&mut self.is_empty, false) {
            self.writer.write_char(' ')?;
        }
        let name = field.name();
        self.writer
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.writer.write_char('=')
    }

    /// Hands one field to the default visitor (which, like ours, writes nothing more once a
    /// write has failed).
    fn default_visitor(&mut self, visit: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut v = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        visit(&mut v);
        self.result = v.finish();
        self.is_empty = false;
    }

    /// Writes `name=value` with `value`, or, for the message (which the default visitor
    /// writes without its name and with its own escaping), hands it to `message`.
    fn write(
        &mut self,
        field: &Field,
        message: impl FnOnce(&mut DefaultVisitor<'_>),
        value: impl FnOnce(&mut Writer<'_>) -> fmt::Result,
    ) {
        if field.name() == "message" {
            self.default_visitor(message);
        } else if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| value(&mut self.writer));
        }
    }
}

/// Whether `Debug` would print the string as it is between quotes: printable ASCII without
/// quotes or backslashes.
fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

fn write_u64(w: &mut Writer<'_>, mut n: u64) -> fmt::Result {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    w.write_str(std::str::from_utf8(&buf[at..]).unwrap_or_default())
}

impl Visit for LineVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !plain(value) {
            self.default_visitor(|v| v.record_str(field, value));
            return;
        }
        self.write(
            field,
            |v| v.record_str(field, value),
            |w| {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            },
        );
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(
            field,
            |v| v.record_u64(field, value),
            |w| write_u64(w, value),
        );
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(
            field,
            |v| v.record_i64(field, value),
            |w| {
                if value < 0 {
                    w.write_char('-')?;
                }
                write_u64(w, value.unsigned_abs())
            },
        );
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(
            field,
            |v| v.record_bool(field, value),
            |w| w.write_str(if value { "true" } else { "false" }),
        );
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.default_visitor(|v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(
            field,
            |v| v.record_debug(field, value),
            |w| write!(w, "{value:?}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Outer(io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("could not write")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn events() {
        let tenant = "acme";
        let err = Outer(io::Error::other("disk full"));
        let plain_err = io::Error::other("gone");
        tracing::info!(
            tenant = %tenant,
            feature = "gateway",
            quoted = "say \"hi\"",
            backslash = "a\\b",
            newline = "two\nlines",
            escape = "\x1b[31mred",
            unicode = "café ✓",
            empty = "",
            small = 7u16,
            big = u64::MAX,
            zero = 0u64,
            negative = -42i64,
            most_negative = i64::MIN,
            yes = true,
            no = false,
            ratio = 0.25f64,
            debug = ?Some("x"),
            r#type = "keyword",
            error = &err as &(dyn std::error::Error + 'static),
            plain_error = &plain_err as &(dyn std::error::Error + 'static),
            "model call"
        );
        tracing::warn!(method = %"POST", status = 200u16, "request {} of {}", 3, "\x1b]8;;evil");
        tracing::info!(message = "a str message \"quoted\"", after = 1u64);
        tracing::error!("only a message");
        tracing::info!(first = "no message", second = 2i64);
    }

    fn render(fields: bool) -> String {
        let buf = Buf::default();
        let builder = tracing_subscriber::fmt()
            .with_writer({
                let buf = buf.clone();
                move || buf.clone()
            })
            .with_ansi(false)
            .without_time();
        if fields {
            tracing::subscriber::with_default(builder.fmt_fields(LineFields).finish(), events);
        } else {
            tracing::subscriber::with_default(builder.finish(), events);
        }
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_are_byte_for_byte_those_of_the_default_format() {
        let ours = render(true);
        let default = render(false);
        assert_eq!(ours.lines().count(), 5, "{ours}");
        assert_eq!(ours, default);
        // And the fast paths were taken for what they cover (sanity of the test itself).
        assert!(
            ours.contains(r#"feature="gateway" quoted="say \"hi\"""#),
            "{ours}"
        );
        assert!(
            ours.contains("big=18446744073709551615 zero=0 negative=-42"),
            "{ours}"
        );
        assert!(ours.contains("most_negative=-9223372036854775808 yes=true no=false"));
        assert!(ours.contains(r#"type="keyword""#), "{ours}");
        assert!(
            !ours.contains('\x1b'),
            "terminal escapes are neutralised: {ours}"
        );
    }
}
