//! A JSON line formatter that writes span fields once, at span creation, and never parses them
//! back — tracing-subscriber's stock JSON formatter stores span fields as a JSON string and
//! re-parses it for every event, which is most of the cost of a request log line.
//!
//! Each line is one flat object: `timestamp`, `level`, `target`, the event's fields (`message`
//! first when present), then the fields of every span in scope, outermost first — so a line
//! logged while serving a request carries `method`, `route` and `request_id` as top-level keys.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as flat JSON objects, one per line.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonFormat;

/// Formats span fields as a JSON object body (`"a":1,"b":"x"`), stored once per span.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = JsonVisitor::new(&mut writer, true);
        fields.record(&mut visitor);
        visitor.result
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut writer = current.as_writer();
        let mut visitor = JsonVisitor::new(&mut writer, first);
        fields.record(&mut visitor);
        visitor.result
    }
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\",\"target\":", meta.level())?;
        write_str(&mut writer, meta.target())?;
        let mut visitor = JsonVisitor::new(&mut writer, false);
        event.record(&mut visitor);
        visitor.result?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.fields.is_empty()
                {
                    writer.write_char(',')?;
                    writer.write_str(&fields.fields)?;
                }
            }
        }
        writer.write_str("}\n")
    }
}

/// Writes `"name":value` pairs, comma-separated.
struct JsonVisitor<'a, W: Write> {
    writer: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<'a, W: Write> JsonVisitor<'a, W> {
    fn new(writer: &'a mut W, first: bool) -> Self {
        Self {
            writer,
            first,
            result: Ok(()),
        }
    }

    fn key(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(',')?;
        }
        write_str(self.writer, field.name())?;
        self.writer.write_char(':')
    }

    fn pair(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        // `otel.name`, `otel.kind`, …: instructions to the OpenTelemetry layer, not log data.
        if self.result.is_ok() && !field.name().starts_with("otel.") {
            self.result = self.key(field).and_then(|()| value(self.writer));
        }
    }
}

impl<W: Write> Visit for JsonVisitor<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, |w| write_str(w, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.pair(field, |w| write!(w, "{value}"));
        } else {
            self.pair(field, |w| write!(w, "\"{value}\""));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.pair(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value}")?;
            w.write_char('"')
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// A JSON string literal.
fn write_str<W: Write + ?Sized>(w: &mut W, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string.
struct Escaped<'a, W: ?Sized>(&'a mut W);

impl<W: Write + ?Sized> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_json_requires() {
        let mut out = String::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }
}
