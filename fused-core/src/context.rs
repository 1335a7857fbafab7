//! What a running UDF can see: its run id, the tile, and where its logs go.

use std::fmt::Display;
use std::sync::{Arc, Mutex};

use crate::tile::{Bounds, Tile};

/// Largest amount of stdout (and, separately, stderr) kept per run; the rest is dropped with a
/// note, so a UDF that prints megabytes cannot exhaust memory or the metadata header.
pub const MAX_LOG_BYTES: usize = 1 << 20;

/// Captured output of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Logs {
    /// What the UDF printed.
    pub stdout: String,
    /// What the UDF printed as warnings or errors.
    pub stderr: String,
}

#[derive(Debug, Default)]
struct LogSink {
    logs: Logs,
    dropped_out: usize,
    dropped_err: usize,
}

fn append(buf: &mut String, dropped: &mut usize, line: &str) {
    if buf.len() + line.len() + 1 > MAX_LOG_BYTES {
        *dropped += line.len() + 1;
        return;
    }
    buf.push_str(line);
    buf.push('\n');
}

/// The context handed to a native UDF for one call.
///
/// Cheap to clone; clones share the log buffers.
#[derive(Debug, Clone)]
pub struct RunContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    run_id: String,
    udf_name: String,
    tile: Option<Tile>,
    recursion: u32,
    sink: Mutex<LogSink>,
}

impl RunContext {
    /// A context for one run of `udf_name`.
    pub fn new(
        run_id: impl Into<String>,
        udf_name: impl Into<String>,
        tile: Option<Tile>,
        recursion: u32,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                run_id: run_id.into(),
                udf_name: udf_name.into(),
                tile,
                recursion,
                sink: Mutex::new(LogSink::default()),
            }),
        }
    }

    /// The run's unique id.
    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    /// The UDF's name.
    pub fn udf_name(&self) -> &str {
        &self.inner.udf_name
    }

    /// The tile, for tile calls.
    pub fn tile(&self) -> Option<Tile> {
        self.inner.tile
    }

    /// The tile's lon/lat box, for tile calls.
    pub fn bounds(&self) -> Option<Bounds> {
        self.inner.tile.map(Tile::bounds)
    }

    /// How deep this call is in a chain of UDFs calling UDFs (1 at the top).
    pub fn recursion(&self) -> u32 {
        self.inner.recursion
    }

    /// Prints a line to the run's stdout (returned to the caller with the result).
    pub fn print(&self, line: impl Display) {
        let line = line.to_string();
        let mut s = self.inner.sink.lock().unwrap_or_else(|p| p.into_inner());
        let LogSink {
            logs, dropped_out, ..
        } = &mut *s;
        append(&mut logs.stdout, dropped_out, &line);
    }

    /// Prints a line to the run's stderr.
    pub fn eprint(&self, line: impl Display) {
        let line = line.to_string();
        let mut s = self.inner.sink.lock().unwrap_or_else(|p| p.into_inner());
        let LogSink {
            logs, dropped_err, ..
        } = &mut *s;
        append(&mut logs.stderr, dropped_err, &line);
    }

    /// Everything printed so far.
    pub fn logs(&self) -> Logs {
        let s = self.inner.sink.lock().unwrap_or_else(|p| p.into_inner());
        let mut logs = s.logs.clone();
        if s.dropped_out > 0 {
            logs.stdout
                .push_str(&format!("[… {} bytes of stdout dropped]\n", s.dropped_out));
        }
        if s.dropped_err > 0 {
            logs.stderr
                .push_str(&format!("[… {} bytes of stderr dropped]\n", s.dropped_err));
        }
        logs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_and_caps_logs() {
        let ctx = RunContext::new("r1", "u", None, 1);
        ctx.print("hello");
        ctx.eprint(format_args!("warn {}", 1));
        let big = "x".repeat(MAX_LOG_BYTES / 2);
        for _ in 0..4 {
            ctx.print(&big);
        }
        let l = ctx.logs();
        assert!(l.stdout.starts_with("hello\n"));
        assert!(l.stdout.len() <= MAX_LOG_BYTES + 100);
        assert!(
            l.stdout.ends_with("bytes of stdout dropped]\n"),
            "{}",
            &l.stdout[l.stdout.len() - 60..]
        );
        assert_eq!(l.stderr, "warn 1\n");
    }
}
