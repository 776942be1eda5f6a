//! Log events delivered to the host: a `tracing` layer that hands each event to the callbacks
//! that hosts registered, with its level, target, message and fields.
//!
//! Events inside a fetch carry the span of the cache that runs it and reach only that cache's
//! callback; events without one (the HTTP stack's connection tasks, for instance) reach every
//! registered callback. Records of the `log` crate, which the HTTP and TLS crates use, are
//! turned into events too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// One event as the host sees it.
#[derive(Debug)]
pub struct LogRecord<'a> {
    /// Severity.
    pub level: Level,
    /// The module that logged (`oci_cache::fetch`, `reqwest::connect`).
    pub target: &'a str,
    /// The event's message.
    pub message: &'a str,
    /// The event's other fields, and those of its spans, as a JSON object.
    pub fields: &'a str,
}

/// A host's log callback.
pub type LogCallback = Arc<dyn Fn(&LogRecord<'_>) + Send + Sync>;

struct Sink {
    id: u64,
    level: Level,
    callback: LogCallback,
}

static SINKS: RwLock<Vec<Sink>> = RwLock::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static INSTALL: Once = Once::new();

/// A registered callback; dropping it unregisters the callback.
#[derive(Debug)]
pub struct SinkGuard {
    id: u64,
}

impl SinkGuard {
    /// The id that spans carry as `oci_cache_sink` to route events to this callback.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        let mut sinks = SINKS.write().unwrap_or_else(|e| e.into_inner());
        sinks.retain(|sink| sink.id != self.id);
        drop(sinks);
        refresh_levels();
    }
}

/// Register `callback` for events at `level` and above. Installs the library's subscriber as the
/// process default the first time, unless the host already set one.
pub fn register(level: Level, callback: LogCallback) -> SinkGuard {
    install();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    SINKS.write().unwrap_or_else(|e| e.into_inner()).push(Sink {
        id,
        level,
        callback,
    });
    refresh_levels();
    SinkGuard { id }
}

fn install() {
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(CallbackLayer);
        if tracing::subscriber::set_global_default(subscriber).is_ok() {
            let _ = tracing_log::LogTracer::init();
        }
    });
}

/// Recompute which callsites are enabled after the set of sinks changed.
fn refresh_levels() {
    let most_verbose = SINKS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|sink| sink.level)
        .max()
        .unwrap_or(Level::ERROR);
    log::set_max_level(match most_verbose {
        Level::TRACE => log::LevelFilter::Trace,
        Level::DEBUG => log::LevelFilter::Debug,
        Level::INFO => log::LevelFilter::Info,
        Level::WARN => log::LevelFilter::Warn,
        Level::ERROR => log::LevelFilter::Error,
    });
    tracing::callsite::rebuild_interest_cache();
}

/// The layer that forwards events to the sinks.
struct CallbackLayer;

/// Fields recorded on a span, kept in its extensions.
struct SpanFields {
    sink: Option<u64>,
    fields: BTreeMap<String, serde_json::Value>,
}

impl<S> Layer<S> for CallbackLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        let sinks = SINKS.read().unwrap_or_else(|e| e.into_inner());
        sinks.iter().any(|sink| *metadata.level() <= sink.level)
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut visitor = FieldVisitor::default();
        attrs.record(&mut visitor);
        let sink = visitor
            .fields
            .remove("oci_cache_sink")
            .and_then(|v| v.as_u64())
            .filter(|&id| id != 0);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields {
                sink,
                fields: visitor.fields,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let message = visitor.message.take().unwrap_or_default();

        let mut sink_id = None;
        let mut fields = BTreeMap::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    sink_id = span_fields.sink.or(sink_id);
                    fields.extend(span_fields.fields.clone());
                }
            }
        }
        fields.extend(visitor.fields);
        let fields = serde_json::to_string(&fields).unwrap_or_else(|_| "{}".into());

        let metadata = event.metadata();
        let target = visitor.log_target.as_deref().unwrap_or(metadata.target());
        let record = LogRecord {
            level: *metadata.level(),
            target,
            message: &message,
            fields: &fields,
        };
        deliver(&record, sink_id);
    }
}

/// Hand `record` to the sink `sink_id`, or to every sink when the event has no owner.
fn deliver(record: &LogRecord<'_>, sink_id: Option<u64>) {
    // The callbacks run under the read lock: unregistering takes the write lock, so once a
    // `SinkGuard` is dropped (a handle closed) its callback is never called again and the host
    // may free what the callback uses.
    let sinks = SINKS.read().unwrap_or_else(|e| e.into_inner());
    let wanted = sinks
        .iter()
        .filter(|sink| record.level <= sink.level)
        .filter(|sink| sink_id.is_none_or(|id| id == sink.id));
    for sink in wanted {
        (sink.callback)(record);
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    log_target: Option<String>,
    fields: BTreeMap<String, serde_json::Value>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        match field.name() {
            "message" => {
                self.message = Some(
                    value
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| value.to_string()),
                )
            }
            "log.target" => self.log_target = value.as_str().map(str::to_string),
            name if name.starts_with("log.") => {}
            name => {
                self.fields.insert(name.to_string(), value);
            }
        }
    }
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}
