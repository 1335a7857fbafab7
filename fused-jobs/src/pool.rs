//! [`submit`] and [`JobPool`]: many calls of one UDF, bounded, retried, observable.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use fused_core::{
    Args, Error, Executor, FailureKind, MaxAge, Output, Result, RunResult, UdfCall, UdfRef,
};
use tokio::sync::{Notify, Semaphore};

use crate::args::{ArgList, args_table};

/// Most workers a pool runs at once.
pub const MAX_WORKERS: usize = 1024;

/// The state of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskState {
    /// Waiting for a worker.
    Pending,
    /// Running (or waiting to retry).
    Running,
    /// Finished with an output.
    Success,
    /// Failed (a UDF error, a panic, a transport error).
    Error,
    /// Ran out of time.
    Timeout,
    /// Cancelled before it finished.
    Cancelled,
}

impl TaskState {
    /// The SDK's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Error => "error",
            TaskState::Timeout => "timeout",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// True once the task will not change again (unless retried).
    pub fn is_finished(self) -> bool {
        !matches!(self, TaskState::Pending | TaskState::Running)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a task failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Run #{index}: {message}")]
pub struct TaskError {
    /// The task's position in the argument list.
    pub index: usize,
    /// The failure (the UDF's error class and message, or the transport error).
    pub message: String,
    /// The state it ended in (error, timeout or cancelled).
    pub state: TaskState,
}

/// Options of [`submit`] (the SDK's, where they apply).
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// Tasks running at once (default 32, at most 1024).
    pub max_workers: usize,
    /// Extra attempts per task after a retryable failure (default 2).
    pub max_retry: u32,
    /// Also retry UDF errors (by default only transport errors and timeouts are retried).
    pub retry_errors: bool,
    /// Time limit of each attempt (default: the executor's).
    pub attempt_timeout: Option<Duration>,
    /// First pause before a retry; it doubles each time, with jitter.
    pub retry_delay: Duration,
    /// Max age of cached results each call may use.
    pub cache_max_age: Option<MaxAge>,
    /// Use cached results (false: every call runs).
    pub cache: bool,
    /// Arguments given to every call (they win over a task's own).
    pub constants: Args,
    /// Run only the first call (the SDK's `debug_mode`): a quick check of a large fan-out.
    pub debug_mode: bool,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        Self {
            max_workers: 32,
            max_retry: 2,
            retry_errors: false,
            attempt_timeout: None,
            retry_delay: Duration::from_millis(200),
            cache_max_age: None,
            cache: true,
            constants: Args::new(),
            debug_mode: false,
        }
    }
}

#[derive(Debug)]
struct TaskInfo {
    state: TaskState,
    attempts: u32,
    started: Option<Instant>,
    ended: Option<Instant>,
    result: Option<RunResult>,
    error: Option<String>,
}

#[derive(Debug)]
struct Task {
    args: Args,
    info: Mutex<TaskInfo>,
}

impl Task {
    fn info(&self) -> std::sync::MutexGuard<'_, TaskInfo> {
        self.info.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inner {
    udf: UdfRef,
    executor: Arc<dyn Executor>,
    options: SubmitOptions,
    tasks: Vec<Task>,
    workers: Arc<Semaphore>,
    changed: Notify,
    started: Instant,
    handles: Mutex<Vec<Option<tokio::task::JoinHandle<()>>>>,
}

/// The tasks of one [`submit`]: running in the background, observable and cancellable.
#[derive(Clone)]
pub struct JobPool {
    inner: Arc<Inner>,
}

impl fmt::Debug for JobPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<JobPool with {} jobs [{}]>",
            self.len(),
            self.status_message()
        )
    }
}

/// Runs `udf` once per entry of `arg_list` on `executor`, at most `max_workers` at a time;
/// returns at once with the pool of running tasks.
///
/// Checked before anything runs: an empty list, a list of values for a UDF without
/// parameters, and (for UDFs of this process) arguments the UDF does not declare.
pub fn submit(
    executor: Arc<dyn Executor>,
    udf: impl Into<UdfRef>,
    arg_list: impl Into<ArgList>,
    options: SubmitOptions,
) -> Result<JobPool> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::Options(
            "submit runs its tasks on a tokio runtime; call it from within one".into(),
        ));
    }
    let udf = udf.into();
    let arg_list = arg_list.into();
    if arg_list.is_empty() {
        return Err(Error::Options("arg_list must not be empty".into()));
    }
    let native = match &udf {
        UdfRef::Native(u) => Some(Arc::clone(u)),
        _ => None,
    };
    let first = native
        .as_ref()
        .and_then(|u| u.schema().params.first().map(|p| p.name.clone()));
    let mut calls = arg_list.into_calls(first.as_deref())?;
    if options.debug_mode {
        calls.truncate(1);
    }
    for args in &mut calls {
        for (k, v) in options.constants.iter() {
            args.insert(k.clone(), v.clone());
        }
    }
    if let Some(u) = &native {
        check_calls(u, &calls)?;
    }
    let max_workers = options.max_workers.clamp(1, MAX_WORKERS);
    let tasks = calls
        .into_iter()
        .map(|args| Task {
            args,
            info: Mutex::new(TaskInfo {
                state: TaskState::Pending,
                attempts: 0,
                started: None,
                ended: None,
                result: None,
                error: None,
            }),
        })
        .collect::<Vec<_>>();
    let n = tasks.len();
    let inner = Arc::new(Inner {
        udf,
        executor,
        options,
        tasks,
        workers: Arc::new(Semaphore::new(max_workers)),
        changed: Notify::new(),
        started: Instant::now(),
        handles: Mutex::new((0..n).map(|_| None).collect()),
    });
    let pool = JobPool { inner };
    for i in 0..n {
        pool.start(i);
    }
    Ok(pool)
}

/// Checks every call against `udf` before anything starts: a name it does not declare, or a
/// value of the wrong type, is an error naming the call.
pub fn check_calls(udf: &fused_core::Udf, calls: &[Args]) -> Result<()> {
    let schema = udf.schema();
    for (i, args) in calls.iter().enumerate() {
        if !schema.open
            && let Some((k, _)) = args.iter().find(|(k, _)| !schema.has(k))
        {
            let known: Vec<&str> = schema.params.iter().map(|p| p.name.as_str()).collect();
            return Err(Error::Options(format!(
                "arg_list[{i}]: `{k}` is not a parameter of {} (it takes {})",
                udf.name(),
                known.join(", ")
            )));
        }
        udf.bind(args, None)
            .map_err(|e| Error::Options(format!("arg_list[{i}]: {e}")))?;
    }
    Ok(())
}

/// True for failures worth another attempt without being asked: timeouts and transport
/// errors (a refused call — unknown UDF, bad argument, recursion — fails the same again).
fn retryable(r: &std::result::Result<RunResult, Error>, retry_errors: bool) -> bool {
    match r {
        Err(Error::Transport(_) | Error::Io(_) | Error::Storage(_)) => true,
        Err(Error::Http { status, .. }) => *status >= 500 || *status == 429,
        Err(_) => false,
        Ok(res) => match &res.output {
            Ok(_) => false,
            Err(f) => f.kind == FailureKind::Timeout || retry_errors,
        },
    }
}

impl JobPool {
    fn start(&self, i: usize) {
        let inner = Arc::clone(&self.inner);
        let handle = tokio::spawn(async move {
            // Whatever happens to this task (a panic in an executor), it ends as a result.
            let mut guard = Unfinished {
                inner: &inner,
                i,
                armed: true,
            };
            let task = &inner.tasks[i];
            let o = &inner.options;
            let mut attempt = 0u32;
            let outcome = loop {
                let Ok(permit) = Arc::clone(&inner.workers).acquire_owned().await else {
                    guard.armed = false;
                    return;
                };
                {
                    let mut info = task.info();
                    if info.state == TaskState::Cancelled {
                        guard.armed = false;
                        return;
                    }
                    info.state = TaskState::Running;
                    info.started.get_or_insert_with(Instant::now);
                }
                inner.changed.notify_waiters();
                let mut call = UdfCall::new(inner.udf.clone(), task.args.clone());
                if let Some(t) = o.attempt_timeout {
                    call = call.with_timeout(t);
                }
                if !o.cache {
                    call = call.with_cache_max_age(MaxAge::ZERO);
                } else if let Some(m) = o.cache_max_age {
                    call = call.with_cache_max_age(m);
                }
                let r = inner.executor.execute(call).await;
                // The slot is free while this task waits to retry.
                drop(permit);
                task.info().attempts = attempt + 1;
                if attempt < o.max_retry && retryable(&r, o.retry_errors) {
                    let base = o.retry_delay.as_secs_f64() * 2f64.powi(attempt.min(16) as i32);
                    let pause =
                        Duration::from_secs_f64((base * (0.5 + rand::random::<f64>())).min(60.0));
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                    continue;
                }
                break r;
            };
            guard.armed = false;
            {
                let mut info = task.info();
                // Cancelled while its last attempt finished: it stays cancelled.
                if info.state != TaskState::Cancelled {
                    info.ended = Some(Instant::now());
                    match outcome {
                        Ok(res) => {
                            info.state = match &res.output {
                                Ok(_) => TaskState::Success,
                                Err(f) if f.kind == FailureKind::Timeout => TaskState::Timeout,
                                Err(_) => TaskState::Error,
                            };
                            info.result = Some(res);
                        }
                        Err(e) => {
                            info.state = TaskState::Error;
                            info.error = Some(e.to_string());
                        }
                    }
                }
            }
            inner.changed.notify_waiters();
        });
        self.inner.handles.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(handle);
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.inner.tasks.len()
    }

    /// True when there is no task (never, for a pool from `submit`).
    pub fn is_empty(&self) -> bool {
        self.inner.tasks.is_empty()
    }

    /// The state of each task.
    pub fn states(&self) -> Vec<TaskState> {
        self.inner.tasks.iter().map(|t| t.info().state).collect()
    }

    /// How many tasks are in each state.
    pub fn status(&self) -> BTreeMap<TaskState, usize> {
        let mut m = BTreeMap::new();
        for s in self.states() {
            *m.entry(s).or_insert(0) += 1;
        }
        m
    }

    /// "2 running, 1 error, 3 success" (the SDK's order; cancelled tasks are not listed).
    pub fn status_message(&self) -> String {
        let counts = self.status();
        let parts: Vec<String> = [
            TaskState::Running,
            TaskState::Timeout,
            TaskState::Error,
            TaskState::Success,
            TaskState::Pending,
        ]
        .iter()
        .filter_map(|s| counts.get(s).map(|n| format!("{n} {s}")))
        .collect();
        if parts.is_empty() {
            "empty".into()
        } else {
            parts.join(", ")
        }
    }

    /// True when every task has finished.
    pub fn done(&self) -> bool {
        self.states().iter().all(|s| s.is_finished())
    }

    /// True when every task succeeded.
    pub fn all_succeeded(&self) -> bool {
        self.states().iter().all(|s| *s == TaskState::Success)
    }

    /// True when a task failed or timed out.
    pub fn any_failed(&self) -> bool {
        self.states()
            .iter()
            .any(|s| matches!(s, TaskState::Error | TaskState::Timeout))
    }

    /// True when a task succeeded.
    pub fn any_succeeded(&self) -> bool {
        self.states().contains(&TaskState::Success)
    }

    /// Waits until every task has finished; shows a progress bar on a terminal.
    pub async fn wait(&self) {
        let bar = progress_bar(self.len() as u64);
        loop {
            let notified = self.inner.changed.notified();
            let finished = self.states().iter().filter(|s| s.is_finished()).count();
            if let Some(b) = &bar {
                b.set_position(finished as u64);
            }
            if finished == self.len() {
                break;
            }
            // A bounded wait: a change missed between the check and the wait is caught.
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
        if let Some(b) = bar {
            b.finish();
        }
    }

    /// Prints each task's change of state until all have finished (or `timeout` passed, which
    /// is an error listing what did not succeed).
    pub async fn tail(&self, timeout: Option<Duration>) -> Result<()> {
        let start = Instant::now();
        let mut seen: Vec<TaskState> = self.states();
        loop {
            let notified = self.inner.changed.notified();
            let now = self.states();
            for (i, (old, new)) in seen.iter().zip(&now).enumerate() {
                if old != new && new.is_finished() {
                    println!(
                        "[{}] Run #{i} {new} ({}) {}",
                        clock(),
                        self.status_message(),
                        serde_json::Value::Object(self.inner.tasks[i].args.as_map().clone())
                    );
                }
            }
            seen = now;
            if seen.iter().all(|s| s.is_finished()) {
                println!("End of tail\n{}", self.status_message());
                return Ok(());
            }
            if let Some(t) = timeout
                && start.elapsed() >= t
            {
                let failing: Vec<String> = seen
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| **s != TaskState::Success)
                    .map(|(i, s)| format!("  Run #{i}: {s}"))
                    .collect();
                return Err(Error::Options(format!(
                    "tail timeout of {t:?} reached; {}\n{}",
                    self.status_message(),
                    failing.join("\n")
                )));
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    /// Cancels every unfinished task (running ones are stopped at their next await point).
    pub fn cancel(&self) -> usize {
        let mut n = 0;
        let handles = self.inner.handles.lock().unwrap_or_else(|p| p.into_inner());
        for (i, t) in self.inner.tasks.iter().enumerate() {
            let mut info = t.info();
            if !info.state.is_finished() {
                info.state = TaskState::Cancelled;
                info.ended = Some(Instant::now());
                if let Some(h) = &handles[i] {
                    h.abort();
                }
                n += 1;
            }
        }
        self.inner.changed.notify_waiters();
        n
    }

    /// Runs the failed (error or timeout) tasks again; returns their indices.
    pub fn retry(&self) -> Vec<usize> {
        let mut again = Vec::new();
        for (i, t) in self.inner.tasks.iter().enumerate() {
            let mut info = t.info();
            if matches!(info.state, TaskState::Error | TaskState::Timeout) {
                info.state = TaskState::Pending;
                info.result = None;
                info.error = None;
                info.ended = None;
                again.push(i);
            }
        }
        for &i in &again {
            self.start(i);
        }
        again
    }

    /// Time from the start of the pool to the end of its last task, once all have ended.
    pub fn total_time(&self) -> Option<Duration> {
        let ends: Vec<Option<Instant>> = self.inner.tasks.iter().map(|t| t.info().ended).collect();
        if ends.iter().any(Option::is_none) {
            return None;
        }
        ends.into_iter()
            .flatten()
            .max()
            .map(|e| e.duration_since(self.inner.started))
    }

    /// Each task's run time, once finished.
    pub fn times(&self) -> Vec<Option<Duration>> {
        self.inner
            .tasks
            .iter()
            .map(|t| {
                let i = t.info();
                Some(i.ended?.duration_since(i.started?))
            })
            .collect()
    }

    /// The arguments of each task, as a table.
    pub fn arg_df(&self) -> Result<RecordBatch> {
        let args: Vec<&Args> = self.inner.tasks.iter().map(|t| &t.args).collect();
        args_table(&args)
    }

    fn outcome(&self, i: usize) -> Option<std::result::Result<Output, TaskError>> {
        let info = self.inner.tasks[i].info();
        if !info.state.is_finished() {
            return None;
        }
        let fail = |message: String| TaskError {
            index: i,
            message,
            state: info.state,
        };
        Some(match (&info.result, &info.error) {
            (Some(r), _) => match &r.output {
                Ok(o) => Ok(o.clone()),
                Err(f) => Err(fail(f.to_string())),
            },
            (None, Some(e)) => Err(fail(e.clone())),
            (None, None) => Err(fail("cancelled".into())),
        })
    }

    /// Every task's outcome, in order, after waiting for all.
    pub async fn results(&self) -> Vec<std::result::Result<Output, TaskError>> {
        self.wait().await;
        (0..self.len())
            .map(|i| {
                self.outcome(i).unwrap_or_else(|| {
                    Err(TaskError {
                        index: i,
                        message: "not finished".into(),
                        state: TaskState::Running,
                    })
                })
            })
            .collect()
    }

    /// The outcomes of the tasks finished so far.
    pub fn results_now(&self) -> BTreeMap<usize, std::result::Result<Output, TaskError>> {
        (0..self.len())
            .filter_map(|i| self.outcome(i).map(|o| (i, o)))
            .collect()
    }

    /// Outputs of the tasks that succeeded.
    pub fn success(&self) -> BTreeMap<usize, Output> {
        self.results_now()
            .into_iter()
            .filter_map(|(i, r)| r.ok().map(|o| (i, o)))
            .collect()
    }

    /// Failures of the tasks that failed or timed out.
    pub fn errors(&self) -> BTreeMap<usize, TaskError> {
        self.results_now()
            .into_iter()
            .filter_map(|(i, r)| match r {
                Err(e) if e.state != TaskState::Cancelled => Some((i, e)),
                _ => None,
            })
            .collect()
    }

    /// The first failure in argument order.
    pub fn first_error(&self) -> Option<TaskError> {
        self.errors().into_values().next()
    }

    fn args_where(&self, state: TaskState) -> BTreeMap<usize, Args> {
        self.inner
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.info().state == state)
            .map(|(i, t)| (i, t.args.clone()))
            .collect()
    }

    /// Arguments of the tasks waiting for a worker.
    pub fn pending(&self) -> BTreeMap<usize, Args> {
        self.args_where(TaskState::Pending)
    }

    /// Arguments of the running tasks.
    pub fn running(&self) -> BTreeMap<usize, Args> {
        self.args_where(TaskState::Running)
    }

    /// Arguments of the cancelled tasks.
    pub fn cancelled(&self) -> BTreeMap<usize, Args> {
        self.args_where(TaskState::Cancelled)
    }

    /// What each finished task printed (`stdout` then `stderr`, as the SDK shows them).
    pub fn logs(&self) -> Vec<Option<String>> {
        self.inner
            .tasks
            .iter()
            .map(|t| {
                let i = t.info();
                if !i.state.is_finished() {
                    return None;
                }
                let mut s = String::new();
                if let Some(r) = &i.result {
                    if !r.logs.stdout.is_empty() {
                        s.push_str(&format!("stdout\n------\n{}", r.logs.stdout));
                    }
                    if !r.logs.stderr.is_empty() {
                        s.push_str(&format!("\nstderr\n------\n{}", r.logs.stderr));
                    }
                } else if let Some(e) = &i.error {
                    s.push_str(e);
                }
                Some(s)
            })
            .collect()
    }

    /// What each finished task printed, as printed (stdout and stderr apart).
    pub fn raw_logs(&self) -> Vec<Option<fused_core::Logs>> {
        self.inner
            .tasks
            .iter()
            .map(|t| t.info().result.as_ref().map(|r| r.logs.clone()))
            .collect()
    }

    /// The logs of the first finished task.
    pub fn first_log(&self) -> Option<String> {
        self.logs().into_iter().flatten().next()
    }

    /// Waits, then one table: the tables of all tasks concatenated, each row with its task's
    /// arguments as leading columns; when not every output is a table (or `flatten` is off),
    /// one `result` column of the outputs as JSON. A failure is an error unless
    /// `ignore_exceptions`, which leaves failed tasks out.
    pub async fn collect(&self, ignore_exceptions: bool, flatten: bool) -> Result<RecordBatch> {
        let results = self.results().await;
        let mut kept = Vec::new();
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(o) => kept.push((i, o)),
                Err(e) if ignore_exceptions => tracing::debug!(error = %e, "left out"),
                Err(e) => return Err(Error::Options(e.to_string())),
            }
        }
        let all_tables =
            !kept.is_empty() && kept.iter().all(|(_, o)| matches!(o, Output::Table(_)));
        if flatten && all_tables {
            // One argument table for all kept tasks, so every part gets the same column types.
            let all_args: Vec<&Args> = kept
                .iter()
                .map(|(i, _)| &self.inner.tasks[*i].args)
                .collect();
            let arg_table = args_table(&all_args)?;
            let mut parts = Vec::new();
            for (row, (_, o)) in kept.iter().enumerate() {
                let Output::Table(t) = o else { continue };
                for b in t.batches() {
                    let idx = arrow::array::UInt32Array::from(vec![row as u32; b.num_rows()]);
                    let cols = arg_table
                        .columns()
                        .iter()
                        .map(|c| arrow::compute::take(c.as_ref(), &idx, None))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    let opts = arrow::record_batch::RecordBatchOptions::new()
                        .with_row_count(Some(b.num_rows()));
                    let arg_part =
                        RecordBatch::try_new_with_options(arg_table.schema(), cols, &opts)?;
                    parts.push(hstack(&arg_part, b)?);
                }
            }
            let Some(first) = parts.first() else {
                return Ok(RecordBatch::new_empty(Arc::new(Schema::empty())));
            };
            let schema = first.schema();
            return arrow::compute::concat_batches(&schema, &parts).map_err(|e| {
                Error::Options(format!("the tasks' tables do not share one schema: {e}"))
            });
        }
        let args: Vec<&Args> = kept
            .iter()
            .map(|(i, _)| &self.inner.tasks[*i].args)
            .collect();
        let arg_cols = args_table(&args)?;
        let mut b = StringBuilder::new();
        for (_, o) in &kept {
            match o {
                Output::Json(v) => b.append_value(v.to_string()),
                Output::Empty => b.append_null(),
                Output::Table(t) => b.append_value(format!("<table: {} rows>", t.num_rows())),
                other => b.append_value(format!("{other:?}").chars().take(200).collect::<String>()),
            }
        }
        let result: ArrayRef = Arc::new(b.finish());
        let extra = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "result",
                arrow::datatypes::DataType::Utf8,
                true,
            )])),
            vec![result],
        )?;
        hstack(&arg_cols, &extra)
    }
}

/// Marks a task failed if it ends without a result (its future panicked or was dropped).
struct Unfinished<'a> {
    inner: &'a Inner,
    i: usize,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut info = self.inner.tasks[self.i].info();
        if !info.state.is_finished() {
            info.state = TaskState::Error;
            info.ended = Some(Instant::now());
            info.error = Some("the task stopped without a result (it panicked)".into());
        }
        drop(info);
        self.inner.changed.notify_waiters();
    }
}

impl JobPool {
    /// The same as [`collect`](Self::collect) (the SDK's name for it too).
    pub async fn df(&self, ignore_exceptions: bool, flatten: bool) -> Result<RecordBatch> {
        self.collect(ignore_exceptions, flatten).await
    }
}

/// Two tables side by side (same number of rows); a name clash keeps the right one's.
fn hstack(left: &RecordBatch, right: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in left.schema().fields().iter().zip(left.columns()) {
        if right.schema().field_with_name(f.name()).is_err() {
            fields.push(f.as_ref().clone());
            cols.push(Arc::clone(c));
        }
    }
    for (f, c) in right.schema().fields().iter().zip(right.columns()) {
        fields.push(f.as_ref().clone());
        cols.push(Arc::clone(c));
    }
    let schema = Schema::new(fields).with_metadata(right.schema().metadata().clone());
    let opts =
        arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(right.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(schema),
        cols,
        &opts,
    )?)
}

fn clock() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let s = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// A progress bar on standard error when it is a terminal.
fn progress_bar(n: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(n);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{percent:>3}%|{bar:30} | {pos}/{len} | {elapsed}")
    {
        b.set_style(style);
    }
    Some(b)
}
