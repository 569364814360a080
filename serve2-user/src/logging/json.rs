//! `"logFormat": "json"`: one JSON object per line, every field at the top
//! level — the event's and those of the spans it happened in (`peer` and
//! `port` of a connection's span), so a summary line carries all its stable
//! fields in one flat object:
//!
//! ```text
//! {"timestamp":"…","level":"INFO","message":"connection","peer":"127.0.0.1:50818","port":8080,"local":"127.0.0.1:8080","chain":"echo",…,"logger":"serve2::conn"}
//! ```
//!
//! Keys come in a fixed order: `timestamp`, `level`, `message`, span fields
//! (outermost span first), event fields, then `logger` (the `tracing`
//! target, as `target` is a summary field). A key given twice keeps its
//! first place and its innermost value. Strings are JSON-escaped, so bytes
//! from the wire cannot break a line.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter for JSON lines; pair it with
/// [`tracing_subscriber::fmt::format::JsonFields`], which stores span
/// fields as JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let mut line = Line::default();
        line.insert("timestamp", Value::String(timestamp));
        line.insert("level", Value::String(metadata.level().to_string()));
        if let Some(message) = fields.message.take() {
            line.insert("message", Value::String(message));
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(stored) = extensions.get::<FormattedFields<N>>() else { continue };
                if let Ok(span_fields) = serde_json::from_str::<Map<String, Value>>(stored) {
                    for (key, value) in span_fields {
                        line.insert(&key, value);
                    }
                }
            }
        }
        for (key, value) in fields.values {
            line.insert(&key, value);
        }
        let logger = fields.log_target.unwrap_or_else(|| metadata.target().to_owned());
        line.insert("logger", Value::String(logger));
        writeln!(writer, "{line}")
    }
}

/// An object that keeps its keys in insertion order.
#[derive(Debug, Default)]
struct Line(Vec<(String, Value)>);

impl Line {
    fn insert(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            // Serialising a string or a Value cannot fail.
            let key = serde_json::to_string(key).map_err(|_| fmt::Error)?;
            write!(f, "{key}:{value}")?;
        }
        f.write_str("}")
    }
}

/// An event's fields as JSON values, in the order written.
#[derive(Debug, Default)]
struct Fields {
    message: Option<String>,
    /// The real target of a record bridged from the `log` crate.
    log_target: Option<String>,
    values: Vec<(String, Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => self.message = Some(value.as_str().map_or_else(|| value.to_string(), str::to_owned)),
            "log.target" => self.log_target = value.as_str().map(str::to_owned),
            // The rest of the `log` bridge's bookkeeping.
            name if name.starts_with("log.") => {}
            name => self.values.push((name.strip_prefix("r#").unwrap_or(name).to_owned(), value)),
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let number =
            serde_json::Number::from_f64(value).map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.put(field, number);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests;
