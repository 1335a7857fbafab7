//! `submit` and `JobPool` over the local executor.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::{Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use fused_core::{Args, Output, RunContext, Table, Udf, UdfError, UdfRegistry};
use fused_jobs::{ArgList, LocalExecutor, SubmitOptions, TaskState, submit};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, schemars::JsonSchema)]
struct N {
    n: i64,
    #[serde(default)]
    label: Option<String>,
}

fn square() -> Udf {
    Udf::native("square", |ctx: RunContext, p: N| async move {
        ctx.print(format!("squaring {}", p.n));
        if p.n < 0 {
            return Err(UdfError::value(format!("negative: {}", p.n)));
        }
        Ok(Output::Json(json!({"sq": p.n * p.n, "label": p.label})))
    })
}

fn rows() -> Udf {
    Udf::native("rows", |_ctx: RunContext, p: N| async move {
        let b = RecordBatch::try_from_iter([(
            "i",
            Arc::new(Int64Array::from((0..p.n).collect::<Vec<_>>())) as _,
        )])
        .map_err(|e| UdfError::value(e.to_string()))?;
        Ok::<_, UdfError>(Output::Table(Table::from_batch(b)))
    })
}

fn setup() -> Arc<LocalExecutor> {
    let r = Arc::new(UdfRegistry::new());
    Arc::new(LocalExecutor::new(r).with_timeout(Duration::from_secs(5)))
}

#[tokio::test]
async fn scalars_bind_to_the_first_parameter_and_collect_with_their_arguments() {
    let ex = setup();
    let pool = submit(ex, square(), vec![1, 2, 3], SubmitOptions::default()).unwrap();
    let t = pool.collect(false, true).await.unwrap();
    assert_eq!(t.num_rows(), 3);
    let n = t
        .column_by_name("n")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(n.values(), &[1, 2, 3]);
    let r = t
        .column_by_name("result")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert!(r.value(2).contains("\"sq\":9"), "{}", r.value(2));
    assert!(pool.all_succeeded() && pool.done());
    assert_eq!(pool.status_message(), "3 success");
    assert_eq!(
        pool.logs()[0].as_deref(),
        Some("stdout\n------\nsquaring 1\n")
    );
    assert!(pool.times().iter().all(Option::is_some));
    assert!(pool.total_time().is_some());
}

#[tokio::test]
async fn tables_are_concatenated_with_argument_columns() {
    let ex = setup();
    let opts = SubmitOptions {
        constants: Args::new().with("label", "const"),
        ..SubmitOptions::default()
    };
    let pool = submit(ex, rows(), vec![json!({"n": 2}), json!({"n": 3})], opts).unwrap();
    let t = pool.collect(false, true).await.unwrap();
    assert_eq!(t.num_rows(), 5);
    assert_eq!(t.schema().field(0).name(), "n");
    assert_eq!(t.schema().field(1).name(), "label");
    let n = t.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(n.values(), &[2, 2, 3, 3, 3]);
    let i = t
        .column_by_name("i")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(i.values(), &[0, 1, 0, 1, 2]);
    let args = pool.arg_df().unwrap();
    assert_eq!((args.num_rows(), args.num_columns()), (2, 2));
}

#[tokio::test]
async fn the_rows_of_an_arrow_table_are_calls() {
    let ex = setup();
    let b = RecordBatch::try_from_iter([
        ("n", Arc::new(Int64Array::from(vec![4, 5])) as _),
        ("label", Arc::new(StringArray::from(vec!["a", "b"])) as _),
    ])
    .unwrap();
    let pool = submit(ex, square(), ArgList::Table(b), SubmitOptions::default()).unwrap();
    let out = pool.results().await;
    assert_eq!(
        out[1].as_ref().unwrap(),
        &Output::Json(json!({"sq": 25, "label": "b"}))
    );
}

#[tokio::test]
async fn bad_calls_are_refused_before_anything_runs() {
    let ex = setup();
    let e = submit(
        ex.clone(),
        square(),
        Vec::<i64>::new(),
        SubmitOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let e = submit(
        ex.clone(),
        square(),
        vec![json!({"n": 1, "nope": 2})],
        SubmitOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = submit(
        ex,
        square(),
        vec![json!({"n": 1}), json!({"n": "x"})],
        SubmitOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("arg_list[1]"), "{e}");
}

#[tokio::test]
async fn udf_errors_are_not_retried_timeouts_are() {
    let r = Arc::new(UdfRegistry::new());
    let ex = Arc::new(LocalExecutor::new(Arc::clone(&r)).with_timeout(Duration::from_millis(100)));
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&attempts);
    let slow_once = Udf::native("slow_once", move |_c: RunContext, p: N| {
        let first = a.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Ok::<_, UdfError>(Output::Json(json!(p.n)))
        }
    });
    let opts = SubmitOptions {
        retry_delay: Duration::from_millis(5),
        ..SubmitOptions::default()
    };
    let pool = submit(ex.clone(), slow_once, vec![7], opts.clone()).unwrap();
    assert_eq!(
        pool.results().await[0].as_ref().unwrap(),
        &Output::Json(json!(7))
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "the timeout was retried"
    );

    let pool = submit(ex, square(), vec![-1, 2], opts).unwrap();
    pool.wait().await;
    assert_eq!(pool.states(), [TaskState::Error, TaskState::Success]);
    assert!(pool.any_failed() && pool.any_succeeded() && !pool.all_succeeded());
    let e = pool.first_error().unwrap();
    assert!(e.message.contains("negative: -1"), "{e}");
    assert_eq!(pool.status_message(), "1 error, 1 success");
    assert!(pool.collect(false, true).await.is_err());
    let kept = pool.collect(true, true).await.unwrap();
    assert_eq!(kept.num_rows(), 1);
}

#[tokio::test]
async fn workers_are_bounded_and_cancel_stops_the_rest() {
    let r = Arc::new(UdfRegistry::new());
    let ex = Arc::new(LocalExecutor::new(Arc::clone(&r)).with_timeout(Duration::from_secs(60)));
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n2, p2) = (Arc::clone(&now), Arc::clone(&peak));
    let slow = Udf::native("slow", move |_c: RunContext, p: N| {
        let (now, peak) = (Arc::clone(&n2), Arc::clone(&p2));
        async move {
            let k = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(k, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(if p.n < 8 { 30 } else { 10_000 })).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, UdfError>(Output::Json(json!(p.n)))
        }
    });
    let opts = SubmitOptions {
        max_workers: 3,
        ..SubmitOptions::default()
    };
    let pool = submit(ex, slow, (0..12).collect::<Vec<i64>>(), opts).unwrap();
    // The first 8 finish; the rest would take 10 s each.
    let t = std::time::Instant::now();
    while pool.success().len() < 8 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(t.elapsed() < Duration::from_secs(5));
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 3,
        "{}",
        peak.load(Ordering::SeqCst)
    );
    let cancelled = pool.cancel();
    assert_eq!(cancelled, 4);
    pool.wait().await;
    assert_eq!(pool.cancelled().len(), 4);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "cancel stops running tasks at once"
    );
    assert!(pool.retry().is_empty(), "nothing failed");
}

#[tokio::test]
async fn tail_follows_until_done_or_times_out() {
    let ex = setup();
    let pool = submit(ex.clone(), square(), vec![1, -2], SubmitOptions::default()).unwrap();
    pool.tail(None).await.unwrap();
    assert!(pool.done());
    let r = Arc::new(UdfRegistry::new());
    let slow_ex = Arc::new(LocalExecutor::new(r).with_timeout(Duration::from_secs(60)));
    let slow = Udf::native("slow", |_c: RunContext, p: N| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<_, UdfError>(Output::Json(json!(p.n)))
    });
    let pool = submit(slow_ex, slow, vec![1], SubmitOptions::default()).unwrap();
    let e = pool
        .tail(Some(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Run #0: running"), "{e}");
    pool.cancel();
}

#[tokio::test]
async fn collect_types_argument_columns_across_all_tasks() {
    let ex = setup();
    let calls = vec![
        json!({"n": 1}),
        json!({"n": 2, "label": "x"}),
        json!({"n": 1, "label": null}),
    ];
    let pool = submit(ex, rows(), calls, SubmitOptions::default()).unwrap();
    let t = pool.collect(false, true).await.unwrap();
    assert_eq!(t.num_rows(), 4);
    let label = t.column_by_name("label").unwrap();
    assert_eq!(label.data_type(), &arrow::datatypes::DataType::Utf8);
    assert_eq!(label.null_count(), 2);
    assert!(
        submit(
            setup(),
            rows(),
            vec![json!({"n": 1})],
            SubmitOptions {
                debug_mode: true,
                ..Default::default()
            }
        )
        .unwrap()
        .len()
            == 1
    );
}

#[test]
fn submit_outside_a_runtime_is_an_error_not_a_panic() {
    let e = submit(setup(), square(), vec![1], SubmitOptions::default()).unwrap_err();
    assert!(e.to_string().contains("runtime"), "{e}");
}
