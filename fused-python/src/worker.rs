//! One worker process: started, asked to compile and call, killed past a deadline.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::protocol::{Compiled, Header, Host, Reply, Source};
use crate::{Error, Result};

/// The worker module, written next to nothing: passed to the interpreter with `-c`.
const WORKER: &str = include_str!("worker.py");

/// Lines of a worker's stderr kept for the error when it dies.
const STDERR_LINES: usize = 20;

/// How to start workers.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The interpreter (a virtualenv's `bin/python`).
    pub python: PathBuf,
    /// The environment the worker gets — nothing else of the host's.
    pub env: Vec<(String, String)>,
    /// How long a worker may take to come up.
    pub start_timeout: Duration,
    /// Address space a worker may use (bytes); a UDF past it gets a `MemoryError`.
    pub memory_limit: Option<u64>,
    /// Run workers as this OS user (and its group), through `setpriv`: the server must run as
    /// root, and the interpreter must be readable by that user.
    pub run_as: Option<String>,
}

impl WorkerConfig {
    /// Workers of `python`, with `PATH` and a `HOME` of the system's temporary folder.
    pub fn new(python: impl Into<PathBuf>) -> Self {
        let tmp = std::env::temp_dir().display().to_string();
        Self {
            python: python.into(),
            env: vec![
                ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
                ("HOME".into(), tmp.clone()),
                ("TMPDIR".into(), tmp),
                ("PYTHONUNBUFFERED".into(), "1".into()),
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ],
            start_timeout: Duration::from_secs(30),
            memory_limit: None,
            run_as: None,
        }
    }

    /// Runs workers as the OS user `user`.
    #[must_use]
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.run_as = Some(user.into());
        self
    }

    /// Sets the memory limit of each worker.
    #[must_use]
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }
}

/// A running worker.
#[derive(Debug)]
pub struct PythonWorker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The process id.
    pub pid: u32,
}

impl PythonWorker {
    /// Starts a worker and waits until it is ready.
    pub async fn start(cfg: &WorkerConfig) -> Result<Self> {
        let mut cmd = match &cfg.run_as {
            Some(user) => {
                let (uid, gid) = user_ids(user).ok_or_else(|| Error::Spawn {
                    python: cfg.python.display().to_string(),
                    source: std::io::Error::other(format!("no OS user {user:?} (/etc/passwd)")),
                })?;
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--init-groups")
                    .arg("--")
                    .arg(&cfg.python);
                c
            }
            None => Command::new(&cfg.python),
        };
        cmd.arg("-c")
            .arg(WORKER)
            .env_clear()
            .envs(cfg.env.iter().cloned())
            .envs(
                cfg.memory_limit
                    .map(|b| ("FUSED_WORKER_MEMORY_BYTES".to_owned(), b.to_string())),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| Error::Spawn {
            python: cfg.python.display().to_string(),
            source: e,
        })?;
        let (Some(stdin), Some(stdout), Some(err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Error::Protocol("the worker's pipes are missing".into()));
        };
        // Its stderr is drained all along (a full pipe would block it); the end is kept.
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                if t.len() == STDERR_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        let pid = child.id().unwrap_or(0);
        let mut w = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr,
            pid,
        };
        match tokio::time::timeout(cfg.start_timeout, w.read()).await {
            Ok(Ok((h, _))) if h.ok => Ok(w),
            Ok(Ok(_)) => Err(Error::Protocol(
                "the worker did not say it was ready".into(),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                w.kill().await;
                Err(Error::Timeout {
                    seconds: cfg.start_timeout.as_secs_f64(),
                })
            }
        }
    }

    fn died(&self) -> Error {
        let t = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        Error::Died {
            stderr: t.iter().cloned().collect::<Vec<_>>().join("\n"),
        }
    }

    async fn send(&mut self, msg: &Value) -> Result<()> {
        self.send_with(msg, &[]).await
    }

    /// Sends a message followed by `payload` (announced in it as `payload`, when not empty).
    async fn send_with(&mut self, msg: &Value, payload: &[u8]) -> Result<()> {
        let mut msg = msg.clone();
        if !payload.is_empty()
            && let Some(m) = msg.as_object_mut()
        {
            m.insert("payload".into(), payload.len().into());
        }
        let body = serde_json::to_vec(&msg).map_err(|e| Error::Protocol(e.to_string()))?;
        let len = u32::try_from(body.len())
            .map_err(|_| Error::Protocol("a request over 4 GiB".into()))?;
        let mut frame = Vec::with_capacity(4 + body.len() + payload.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&body);
        frame.extend_from_slice(payload);
        if self.stdin.write_all(&frame).await.is_err() || self.stdin.flush().await.is_err() {
            return Err(self.settle_death().await);
        }
        Ok(())
    }

    /// The error of a worker that stopped answering: waits briefly for its stderr.
    async fn settle_death(&mut self) -> Error {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.died()
    }

    async fn read(&mut self) -> Result<(Header, Vec<u8>)> {
        let mut len = [0u8; 4];
        if self.stdout.read_exact(&mut len).await.is_err() {
            return Err(self.settle_death().await);
        }
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        if self.stdout.read_exact(&mut body).await.is_err() {
            return Err(self.settle_death().await);
        }
        let header: Header = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("a reply that is not JSON: {e}")))?;
        let mut payload = vec![0u8; header.payload.unwrap_or(0)];
        if !payload.is_empty() && self.stdout.read_exact(&mut payload).await.is_err() {
            return Err(self.settle_death().await);
        }
        Ok((header, payload))
    }

    /// Compiles UDF code; `entrypoint` defaults to the one `@fused.udf` function (or `udf`).
    pub async fn compile(&mut self, code: &str, entrypoint: Option<&str>) -> Result<Compiled> {
        self.compile_source(&Source::new(code).with_entrypoint(entrypoint))
            .await
    }

    /// Compiles a UDF's code with its header modules.
    pub async fn compile_source(&mut self, src: &Source) -> Result<Compiled> {
        let headers: Vec<Value> = src
            .headers
            .iter()
            .map(|(name, code)| json!({"module_name": name, "source_code": code}))
            .collect();
        self.send(
            &json!({"op": "compile", "code": src.code, "entrypoint": src.entrypoint,
            "headers": headers}),
        )
        .await?;
        let (h, _) = self.read().await?;
        if !h.ok {
            return Err(Error::Udf(h.error.ok_or_else(|| {
                Error::Protocol("a failed reply without an error".into())
            })?));
        }
        serde_json::from_value(Value::Object(h.rest))
            .map_err(|e| Error::Protocol(format!("a compile reply: {e}")))
    }

    /// Calls a compiled UDF; past `timeout` the worker is killed (and no longer usable).
    pub async fn call(
        &mut self,
        udf: &str,
        params: &Map<String, Value>,
        timeout: Duration,
    ) -> Result<Reply> {
        self.call_with_host(udf, params, timeout, None).await
    }

    /// [`call`](Self::call), with `host` answering what the UDF asks while it runs (without
    /// one, such requests fail in the UDF).
    pub async fn call_with_host(
        &mut self,
        udf: &str,
        params: &Map<String, Value>,
        timeout: Duration,
        host: Option<&dyn Host>,
    ) -> Result<Reply> {
        let run = async {
            self.send(&json!({"op": "call", "udf": udf, "params": params}))
                .await?;
            loop {
                let (h, payload) = self.read().await?;
                let Some(request) = h.rest.get("callback") else {
                    return Ok((h, payload));
                };
                let (reply, bytes) = match host {
                    Some(host) => host.call(request.clone(), payload).await,
                    None => {
                        let mut m = Map::new();
                        m.insert("ok".into(), false.into());
                        m.insert(
                            "error".into(),
                            json!({"class": "RuntimeError",
                                "message": "this UDF runs without a host to call"}),
                        );
                        (m, Vec::new())
                    }
                };
                self.send_with(&Value::Object(reply), &bytes).await?;
            }
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => {
                let (h, payload) = r?;
                h.into_reply(payload).map_err(Error::Protocol)
            }
            Err(_) => {
                self.kill().await;
                Err(Error::Timeout {
                    seconds: timeout.as_secs_f64(),
                })
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process and reaps it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// The uid and primary gid of an OS user, from `/etc/passwd`.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&user) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}
