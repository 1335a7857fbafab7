//! UDFs known to a process by name.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::run::UdfRef;
use crate::udf::{Udf, validate_name};

/// A set of UDFs by name, shared between executors and servers.
#[derive(Debug, Default)]
pub struct UdfRegistry {
    udfs: RwLock<BTreeMap<String, Arc<Udf>>>,
}

impl UdfRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a UDF under its name; the name must be URL- and file-safe.
    pub fn register(&self, udf: Udf) -> Result<Arc<Udf>> {
        validate_name(udf.name())?;
        let udf = Arc::new(udf);
        self.udfs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(udf.name().to_owned(), Arc::clone(&udf));
        Ok(udf)
    }

    /// Removes the UDF named `name`; whether there was one.
    pub fn remove(&self, name: &str) -> bool {
        self.udfs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .is_some()
    }

    /// The UDF named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Udf>> {
        self.udfs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every UDF, by name.
    pub fn list(&self) -> Vec<Arc<Udf>> {
        self.udfs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The UDF a reference names, when it is local: native objects and registered names.
    pub fn resolve(&self, r: &UdfRef) -> Option<Arc<Udf>> {
        match r {
            UdfRef::Native(u) => Some(Arc::clone(u)),
            UdfRef::Name(n) => self.get(n),
            UdfRef::Token(_) => None,
        }
    }

    /// Like [`resolve`](Self::resolve), with an error naming what was not found.
    pub fn require(&self, r: &UdfRef) -> Result<Arc<Udf>> {
        self.resolve(r).ok_or_else(|| match r {
            UdfRef::Name(n) => Error::UnknownUdf(n.clone()),
            other => Error::UnknownUdf(other.describe()),
        })
    }
}
