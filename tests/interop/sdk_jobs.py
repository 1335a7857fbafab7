"""Batch jobs through the official SDK: submit with an instance type (a batch job), the job
history, status, logs, waiting, execution time, results, and cancelling."""
import os

os.environ["FUSED_AUTH_TOKEN"] = os.environ["FUSED_TEST_OWNER_TOKEN"]
os.environ["FUSED_AUTH_TOKEN_TYPE"] = "Fused-Env-Bearer"

import fused  # noqa: E402

base = os.environ["FUSED_TEST_BASE_URL"]
fused.options.base_url = base
fused.options.shared_udf_base_url = f"{base}/realtime-shared"
api = fused.api.FusedAPI()

hello = fused.load("hello")
pool = fused.submit(hello, ["a", "b", "c"], instance_type="small", collect=False)
jobs = api.get_jobs()
job = jobs.jobs[0].id

done = fused.api.job_wait_for_job(job, poll_interval_seconds=0.1, timeout=30)
assert done.job_status == "Done" and done.terminal_status, done
status = fused.api.job_get_status(job)
assert (status.total_tasks, status.finished_tasks) == (3, 3), status
logs = fused.api.job_get_logs(job)
messages = [line["message"] for line in logs]
assert any("Run #2 success" in m for m in messages), messages
later = fused.api.job_get_logs(job, since_ms=logs[0]["timestamp"])
assert len(later) < len(logs)
fused.api.job_tail_logs(job)
assert fused.api.job_get_exec_time(job).total_seconds() >= 0
results = fused.api.job_get_results(job)
assert [r.data["message"].tolist() for r in results] == [["Hello, a!"], ["Hello, b!"], ["Hello, c!"]]
assert results[0].stdout.startswith("greeting a"), results[0].stdout

# A job with a failing task fails, and says why.
pool = fused.submit(hello, ["x", ""], instance_type="small", collect=False)
failed = api.get_jobs().jobs[0].id
st = fused.api.job_wait_for_job(failed, poll_interval_seconds=0.1, timeout=30)
assert st.job_status == "Failed", st
assert any("name must not be empty" in l["message"] for l in fused.api.job_get_logs(failed))

# Cancelling: a job cancelled before (or while) a worker runs it ends Canceled.
many = fused.submit(hello, [f"n{i}" for i in range(2000)], instance_type="small", collect=False)
target = api.get_jobs().jobs[0].id
cancelled = fused.api.job_cancel(target)
st = fused.api.job_wait_for_job(target, poll_interval_seconds=0.1, timeout=30)
assert st.job_status == "Canceled", st
# A bad argument is refused when the job is posted, before anything runs.
try:
    fused.submit(fused.load("vector_tile"), [{"cells": "many"}], instance_type="small", collect=False)
    raise AssertionError("expected a refusal")
except AssertionError:
    raise
except Exception as e:  # noqa: BLE001 — requests.HTTPError
    assert "cells" in str(e) and "many" in str(e), str(e)
print("ALL OK")
