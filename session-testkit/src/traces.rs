//! Captures every span and event of the process, so a check can prove that
//! no session id reaches a trace (an id in a log is a credential).

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, OnceLock, PoisonError,
    },
};

use tracing::{
    field::{Field, Visit},
    span, Event, Metadata, Subscriber,
};

/// Everything recorded so far: span names and fields, event messages and
/// fields, one line each.
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Whether the capture could be installed as the process's subscriber.
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Installs the capturing subscriber for the whole process, once. `false`
/// when another global subscriber was there first.
pub(crate) fn install() -> bool {
    *INSTALLED.get_or_init(|| tracing::subscriber::set_global_default(Capture::default()).is_ok())
}

/// The lines recorded so far that contain `needle`.
pub(crate) fn lines_containing(needle: &str) -> Vec<String> {
    LINES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|line| line.contains(needle))
        .cloned()
        .collect()
}

#[derive(Default)]
struct Capture {
    next_id: AtomicU64,
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        use fmt::Write as _;
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        use fmt::Write as _;
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

fn keep(line: Line) {
    LINES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(line.0);
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        let mut line = Line(format!("span {}", span.metadata().name()));
        span.record(&mut line);
        keep(line);
        span::Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &span::Id, values: &span::Record<'_>) {
        let mut line = Line(String::from("record"));
        values.record(&mut line);
        keep(line);
    }

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line(format!("event {}", event.metadata().target()));
        event.record(&mut line);
        keep(line);
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}
