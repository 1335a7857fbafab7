//! A pool of warm workers: a call takes an idle worker (starting one only when none is idle),
//! compiles the code there once (each worker remembers what it compiled), and gives the
//! worker back. A worker that timed out, crashed or broke the protocol is dropped, and a
//! replacement is started in the background, so a warm pool never starts one on a request.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::protocol::{Compiled, Host, Reply, Source};
use crate::worker::{PythonWorker, WorkerConfig};
use crate::{Error, Result};

/// A worker and what it has compiled (by code hash and entrypoint).
struct Warm {
    worker: PythonWorker,
    compiled: HashMap<u64, Compiled>,
}

/// Warm Python workers, at most `size` busy at once.
pub struct PythonPool {
    cfg: WorkerConfig,
    idle: Mutex<Vec<Warm>>,
    slots: Semaphore,
    size: usize,
}

impl std::fmt::Debug for PythonPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonPool")
            .field("python", &self.cfg.python)
            .field("size", &self.size)
            .field("idle", &self.idle_count())
            .finish()
    }
}

fn hash(src: &Source) -> u64 {
    let mut h = DefaultHasher::new();
    src.hash(&mut h);
    h.finish()
}

impl PythonPool {
    /// A pool of up to `size` workers (at least one); none is started yet (see [`warm`](Self::warm)).
    pub fn new(cfg: WorkerConfig, size: usize) -> Arc<Self> {
        let size = size.max(1);
        Arc::new(Self {
            cfg,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(size),
            size,
        })
    }

    /// Starts workers until `size` are idle.
    pub async fn warm(&self) -> Result<()> {
        while self.idle_count() < self.size {
            let worker = PythonWorker::start(&self.cfg).await?;
            self.give_back(Warm {
                worker,
                compiled: HashMap::new(),
            });
        }
        Ok(())
    }

    /// Workers waiting for a call.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn take(&self) -> Option<Warm> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Returns a worker to the idle ones (beyond the pool's size — extra workers of nested
    /// calls — it is stopped).
    fn give_back(&self, w: Warm) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.size {
            idle.push(w);
        }
    }

    /// Starts a replacement in the background (a worker was lost).
    fn replace(self: &Arc<Self>) {
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            if pool.idle_count() < pool.size
                && let Ok(worker) = PythonWorker::start(&pool.cfg).await
            {
                pool.give_back(Warm {
                    worker,
                    compiled: HashMap::new(),
                });
            }
        });
    }

    /// Runs `f` on a worker with `code` compiled; the worker returns to the pool unless the
    /// call lost it.
    /// A nested call (a UDF's `fused.run`, its caller holding a worker) takes no slot: waiting
    /// for one could wait for its own caller; the recursion limit bounds how many there are.
    async fn with_udf<T>(
        self: &Arc<Self>,
        src: &Source,
        nested: bool,
        f: impl AsyncFnOnce(&mut PythonWorker, &Compiled) -> Result<T>,
    ) -> Result<T> {
        let _slot = if nested {
            None
        } else {
            Some(
                self.slots
                    .acquire()
                    .await
                    .map_err(|_| Error::Protocol("the pool is closed".into()))?,
            )
        };
        let mut warm = match self.take() {
            Some(w) => w,
            None => Warm {
                worker: PythonWorker::start(&self.cfg).await?,
                compiled: HashMap::new(),
            },
        };
        let key = hash(src);
        let compiled = match warm.compiled.get(&key) {
            Some(c) => c.clone(),
            None => match warm.worker.compile_source(src).await {
                Ok(c) => {
                    warm.compiled.insert(key, c.clone());
                    c
                }
                Err(e) => return Err(self.settle(warm, e)),
            },
        };
        match f(&mut warm.worker, &compiled).await {
            Ok(v) => {
                self.give_back(warm);
                Ok(v)
            }
            Err(e) => Err(self.settle(warm, e)),
        }
    }

    /// After an error: a worker still sound goes back, a lost one is replaced.
    fn settle(self: &Arc<Self>, mut warm: Warm, e: Error) -> Error {
        if matches!(e, Error::Udf(_)) && warm.worker.is_alive() {
            self.give_back(warm);
        } else {
            self.replace();
        }
        e
    }

    /// Compiles `src` on a worker: its entrypoint and parameters.
    pub async fn signature(self: &Arc<Self>, src: &Source) -> Result<Compiled> {
        self.with_udf(src, false, async |_, c| Ok(c.clone())).await
    }

    /// Calls the UDF of `src` with `params`, within `timeout`; `host` answers what it asks.
    /// `nested`: the call comes from another UDF's `fused.run` (see `with_udf`).
    pub async fn call(
        self: &Arc<Self>,
        src: &Source,
        params: &Map<String, Value>,
        timeout: Duration,
        host: Option<&dyn Host>,
        nested: bool,
    ) -> Result<Reply> {
        self.with_udf(src, nested, async |w, c| {
            w.call_with_host(&c.udf, params, timeout, host).await
        })
        .await
    }
}
