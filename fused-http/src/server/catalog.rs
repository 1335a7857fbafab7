//! The UDFs a server knows: saved ones from the store, and the native ones compiled into it,
//! which appear as saved UDFs of the server's owner in the `default` collection.

use std::sync::Arc;

use fused_core::udf::python::native_name;
use fused_core::{Udf, UdfMeta};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::error::ApiError;
use crate::store::{SavedUdf, User};

/// The collection of UDFs saved without one, and of native UDFs.
pub(crate) const DEFAULT_COLLECTION: &str = "default";

/// What running a definition means on this server.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A native UDF of this server.
    Native(Arc<Udf>),
    /// Code, run by the server's code runtime when it has one.
    Code(Box<UdfMeta>),
}

/// One UDF as the API lists it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) owner_id: String,
    pub(crate) collection: String,
    pub(crate) slug: String,
    pub(crate) meta: UdfMeta,
    pub(crate) udf_type: String,
    pub(crate) public_list: bool,
    pub(crate) native: bool,
}

/// The stable id of a native UDF (a UUID derived from its name).
pub(crate) fn native_id(name: &str) -> String {
    let digest = Sha256::digest(format!("fused-rs native UDF\0{name}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The error for a code UDF while this server has no Python runtime.
pub(crate) fn code_unsupported(name: &str) -> ApiError {
    let failure = fused_core::UdfFailure::runtime(
        "NotImplementedError",
        format!(
            "UDF {name:?} is Python code, and this server has no Python runtime (start it \
             with a Python interpreter: `fused serve --python PATH`)"
        ),
    );
    let mut metadata = fused_core::RunMetadata::default();
    metadata.set_failure(&failure);
    ApiError::Udf {
        failure,
        metadata: Box::new(metadata),
    }
}

impl Entry {
    fn from_native(udf: &Udf, owner: &User) -> Self {
        let mut meta = udf.sdk_meta();
        meta.collection_name = Some(DEFAULT_COLLECTION.into());
        Self {
            id: native_id(udf.name()),
            owner_id: owner.id.clone(),
            collection: DEFAULT_COLLECTION.into(),
            slug: udf.name().to_owned(),
            meta,
            udf_type: "auto".into(),
            public_list: false,
            native: true,
        }
    }

    fn from_saved(s: SavedUdf) -> Result<Self, ApiError> {
        let meta = UdfMeta::from_json(&s.body)
            .map_err(|e| ApiError::Internal(format!("saved UDF {} is unreadable: {e}", s.id)))?;
        Ok(Self {
            id: s.id,
            owner_id: s.owner_id,
            collection: s.collection,
            slug: s.slug,
            meta,
            udf_type: s.udf_type,
            public_list: s.public_list,
            native: false,
        })
    }

    /// The record the SDK reads (`udf_body` is the UDF JSON as a string).
    pub(crate) fn record(&self, owner: Option<&User>) -> Value {
        let mut meta = self.meta.clone();
        meta.name = Some(self.slug.clone());
        meta.set_metadata("fused:id", Value::String(self.id.clone()));
        meta.collection_name = Some(self.collection.clone());
        json!({
            "id": self.id,
            "slug": self.slug,
            "udf_body": meta.to_json(),
            "udf_type": self.udf_type,
            "collection_id": null,
            "collection_name": self.collection,
            "is_visible": true,
            "allow_public_list": self.public_list,
            "native": self.native,
            "user_id": self.owner_id,
            "user_email": owner.map(|u| u.email.as_str()),
            "user_handle": owner.map(|u| u.handle.as_str()),
        })
    }
}

impl AppState {
    /// What running `meta` means here.
    pub(crate) fn target(&self, meta: &UdfMeta) -> Target {
        match native_name(meta).and_then(|n| self.registry.get(n)) {
            Some(udf) => Target::Native(udf),
            None => Target::Code(Box::new(meta.clone())),
        }
    }

    /// The UDF a target runs: a native one, or code loaded by the code runtime (an error when
    /// the server has none, or the code does not load).
    pub(crate) async fn runnable(&self, target: &Target) -> Result<Arc<Udf>, ApiError> {
        match target {
            Target::Native(u) => Ok(Arc::clone(u)),
            Target::Code(meta) => match self.code_runtime() {
                None => Err(code_unsupported(meta.display_name())),
                Some(rt) => rt.load(meta).await.map_err(|failure| {
                    let mut metadata = fused_core::RunMetadata::default();
                    metadata.set_failure(&failure);
                    ApiError::Udf {
                        failure,
                        metadata: Box::new(metadata),
                    }
                }),
            },
        }
    }

    /// A UDF by id.
    pub(crate) async fn entry_by_id(&self, id: &str) -> Result<Option<Entry>, ApiError> {
        if let Some(udf) = self
            .registry
            .list()
            .into_iter()
            .find(|u| native_id(u.name()) == id)
        {
            return Ok(Some(Entry::from_native(&udf, &self.owner)));
        }
        match self.store.udf_by_id(id).await? {
            Some(s) => Entry::from_saved(s).map(Some),
            None => Ok(None),
        }
    }

    /// A UDF of `owner` by collection and name.
    pub(crate) async fn entry_by_slug(
        &self,
        owner: &User,
        collection: &str,
        slug: &str,
    ) -> Result<Option<Entry>, ApiError> {
        if let Some(s) = self.store.udf_by_slug(&owner.id, collection, slug).await? {
            return Entry::from_saved(s).map(Some);
        }
        if owner.id == self.owner.id
            && collection == DEFAULT_COLLECTION
            && let Some(udf) = self.registry.get(slug)
        {
            return Ok(Some(Entry::from_native(&udf, owner)));
        }
        Ok(None)
    }

    /// UDFs: one owner's (natives included for the server's owner) or everybody's; optionally
    /// only publicly listed ones.
    pub(crate) async fn entries(
        &self,
        owner: Option<&User>,
        public_only: bool,
    ) -> Result<Vec<Entry>, ApiError> {
        let mut out = Vec::new();
        let with_natives = !public_only && owner.is_none_or(|o| o.id == self.owner.id);
        if with_natives {
            out.extend(
                self.registry
                    .list()
                    .iter()
                    .map(|u| Entry::from_native(u, &self.owner)),
            );
        }
        for s in self
            .store
            .list_udfs(owner.map(|o| o.id.as_str()), public_only)
            .await?
        {
            match Entry::from_saved(s) {
                Ok(e) => out.push(e),
                Err(e) => tracing::warn!(error = ?e, "skipping an unreadable saved UDF"),
            }
        }
        Ok(out)
    }
}
