//! Every option of the SDK's `fused.ingest` / `fused.ingest_nongeospatial`, with its defaults,
//! in the JSON shape of the job step the SDK sends (`partition_geospatial` /
//! `partition_nongeospatial`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The quantity summed per partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitioningMethod {
    /// Geometry area, in square degrees.
    Area,
    /// Geometry length (perimeter for polygons), in degrees.
    Length,
    /// Number of coordinates.
    Coords,
    /// One per row (the default).
    #[default]
    Rows,
}

/// Where a partition is split when it is over its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitMethod {
    /// At the mean of the centroids (the default).
    #[default]
    Mean,
    /// At the weighted median of the centroids (halves the partitioned quantity).
    Median,
}

/// Which partitions must keep their rows' centroids within one UTM zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForceUtm {
    /// Every file (and so every chunk).
    File,
    /// Every chunk (the SDK's default).
    Chunk,
}

/// How large geometries are subdivided before partitioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubdivideMethod {
    /// By area, in square degrees.
    #[default]
    Area,
}

/// Options of the readers of non-Parquet inputs (the SDK's `gdal_config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenConfig {
    /// Driver options (`X_POSSIBLE_NAMES`, `Y_POSSIBLE_NAMES`, `GEOM_POSSIBLE_NAMES` for CSV).
    #[serde(default)]
    pub open_options: std::collections::BTreeMap<String, String>,
    /// The layer to read (GeoPackage table name).
    #[serde(default)]
    pub layer: Option<String>,
}

fn default_ratio() -> f64 {
    2.0
}

fn default_target_num_chunks() -> u64 {
    500
}

fn default_true() -> bool {
    true
}

fn default_force_utm() -> Option<ForceUtm> {
    Some(ForceUtm::Chunk)
}

/// The options of a geospatial ingestion; field names and defaults are those of
/// `fused.ingest` (and its job step JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestOptions {
    /// Base path of the metadata table; when set, the chunk index (`_sample`) is written there
    /// too.
    #[serde(default)]
    pub output_metadata: Option<String>,
    /// Keep only the files of a directory input whose name ends with this.
    #[serde(default)]
    pub file_suffix: Option<String>,
    /// Read only these columns (the geometry is always read).
    #[serde(default)]
    pub load_columns: Option<Vec<String>>,
    /// Columns to drop.
    #[serde(default)]
    pub remove_cols: Vec<String>,
    /// Split multi-part geometries into one row per part.
    #[serde(default)]
    pub explode_geometries: bool,
    /// Drop rows whose geometry leaves lon [-180, 180] / lat [-90, 90] (`None` means yes).
    #[serde(default)]
    pub drop_out_of_bounds: Option<bool>,
    /// The quantity summed per partition.
    #[serde(default)]
    pub partitioning_method: PartitioningMethod,
    /// The most of that quantity per file (`None`: a tenth of the total).
    #[serde(default)]
    pub partitioning_maximum_per_file: Option<f64>,
    /// The most of that quantity per chunk (`None`: a hundredth of the total).
    #[serde(default)]
    pub partitioning_maximum_per_chunk: Option<f64>,
    /// A partition wider than this times its height is halved along x.
    #[serde(default = "default_ratio")]
    pub partitioning_max_width_ratio: f64,
    /// A partition taller than this times its width is halved along y.
    #[serde(default = "default_ratio")]
    pub partitioning_max_height_ratio: f64,
    /// Keep centroids of a file or chunk within one UTM zone.
    #[serde(default = "default_force_utm")]
    pub partitioning_force_utm: Option<ForceUtm>,
    /// Where over-budget partitions are split.
    #[serde(default)]
    pub partitioning_split_method: SplitMethod,
    /// Subdivision of large geometries (`None`: none).
    #[serde(default)]
    pub subdivide_method: Option<SubdivideMethod>,
    /// Geometries of a larger area than this are subdivided.
    #[serde(default)]
    pub subdivide_start: Option<f64>,
    /// Pieces smaller than this are not cut further.
    #[serde(default)]
    pub subdivide_stop: Option<f64>,
    /// Split a partition whose rows all share one centroid when it is over budget.
    #[serde(default = "default_true")]
    pub split_identical_centroids: bool,
    /// With no `partitioning_maximum_per_file`, files hold at most `total / min(10,
    /// target_num_chunks)`.
    #[serde(default = "default_target_num_chunks")]
    pub target_num_chunks: u64,
    /// Build point geometries from these (longitude, latitude) columns.
    #[serde(default)]
    pub lonlat_cols: Option<(String, String)>,
    /// A Parquet file of predefined boxes (`file_id`, `chunk_id`, `bbox_*`, as
    /// [`get_chunks_metadata`](crate::get_chunks_metadata) returns) to assign rows to.
    #[serde(default)]
    pub partitioning_schema_input: Option<String>,
    /// Reader options for non-Parquet inputs.
    #[serde(default)]
    pub gdal_config: OpenConfig,
    /// Write a GeoParquet 1.1 `bbox` covering column.
    #[serde(default)]
    pub write_covering_bbox: bool,
    /// Replace an existing table at the output.
    #[serde(default)]
    pub overwrite: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).unwrap_or_else(|_| unreachable!())
    }
}

impl IngestOptions {
    /// Checks values a run cannot use, as the SDK does before sending them.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: Option<f64>| match v {
            Some(v) if !(v.is_finite() && v > 0.0) => Err(Error::Options(format!(
                "{name} must be a positive number, got {v}"
            ))),
            _ => Ok(()),
        };
        positive(
            "partitioning_maximum_per_file",
            self.partitioning_maximum_per_file,
        )?;
        positive(
            "partitioning_maximum_per_chunk",
            self.partitioning_maximum_per_chunk,
        )?;
        for (name, r) in [
            (
                "partitioning_max_width_ratio",
                self.partitioning_max_width_ratio,
            ),
            (
                "partitioning_max_height_ratio",
                self.partitioning_max_height_ratio,
            ),
        ] {
            if !(r.is_finite() && r >= 1.0) {
                return Err(Error::Options(format!(
                    "{name} must be a number of at least 1, got {r}"
                )));
            }
        }
        if self.subdivide_method.is_none()
            && (self.subdivide_start.is_some() || self.subdivide_stop.is_some())
        {
            return Err(Error::Options(
                "subdivide_start and subdivide_stop need subdivide_method=\"area\"".into(),
            ));
        }
        positive("subdivide_start", self.subdivide_start)?;
        positive("subdivide_stop", self.subdivide_stop)?;
        if self.target_num_chunks == 0 {
            return Err(Error::Options(
                "target_num_chunks must be at least 1".into(),
            ));
        }
        if let Some((lon, lat)) = &self.lonlat_cols
            && (lon.is_empty() || lat.is_empty() || lon == lat)
        {
            return Err(Error::Options(format!(
                "lonlat_cols must name two different columns, got ({lon:?}, {lat:?})"
            )));
        }
        Ok(())
    }

    /// Whether rows outside the WGS 84 range are dropped.
    pub fn drops_out_of_bounds(&self) -> bool {
        self.drop_out_of_bounds.unwrap_or(true)
    }
}

fn default_max_file_rows() -> u64 {
    2_500_000
}

fn default_max_chunk_rows() -> u64 {
    65_000
}

fn file_rows_or_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or_else(default_max_file_rows))
}

fn chunk_rows_or_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or_else(default_max_chunk_rows))
}

/// The options of `fused.ingest_nongeospatial`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NonGeoOptions {
    /// Base path of the metadata table (gets a copy of the chunk index).
    #[serde(default)]
    pub output_metadata: Option<String>,
    /// Sort rows by this column, so each chunk covers a contiguous range of its values (equal
    /// values may span two chunks when they outnumber a chunk).
    #[serde(default)]
    pub partition_col: Option<String>,
    /// The most rows per file (`null` in a job step means the default).
    #[serde(
        default = "default_max_file_rows",
        deserialize_with = "file_rows_or_default"
    )]
    pub partitioning_maximum_per_file: u64,
    /// The most rows per chunk (`null` in a job step means the default).
    #[serde(
        default = "default_max_chunk_rows",
        deserialize_with = "chunk_rows_or_default"
    )]
    pub partitioning_maximum_per_chunk: u64,
    /// Replace an existing table at the output.
    #[serde(default)]
    pub overwrite: bool,
}

impl Default for NonGeoOptions {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).unwrap_or_else(|_| unreachable!())
    }
}

impl NonGeoOptions {
    /// Checks values a run cannot use.
    pub fn validate(&self) -> Result<()> {
        if self.partitioning_maximum_per_file == 0 || self.partitioning_maximum_per_chunk == 0 {
            return Err(Error::Options(
                "partitioning_maximum_per_file and _per_chunk must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_sdks() {
        let o = IngestOptions::default();
        assert_eq!(o.partitioning_method, PartitioningMethod::Rows);
        assert_eq!(o.partitioning_force_utm, Some(ForceUtm::Chunk));
        assert_eq!(o.partitioning_max_width_ratio, 2.0);
        assert_eq!(o.target_num_chunks, 500);
        assert!(o.split_identical_centroids && o.drops_out_of_bounds());
        let n = NonGeoOptions::default();
        assert_eq!(
            (
                n.partitioning_maximum_per_file,
                n.partitioning_maximum_per_chunk
            ),
            (2_500_000, 65_000)
        );
    }

    #[test]
    fn the_sdk_step_json_parses_and_bad_values_are_named() {
        let step = serde_json::json!({"type": "partition_geospatial", "partitioning_method": "area",
            "partitioning_force_utm": null, "lonlat_cols": ["x", "y"], "subdivide_method": null,
            "gdal_config": {"open_options": {}, "layer": null}, "partitioning_maximum_per_chunk": 10});
        let o: IngestOptions = serde_json::from_value(step).expect("parses");
        assert_eq!(o.partitioning_force_utm, None);
        assert_eq!(o.lonlat_cols, Some(("x".into(), "y".into())));
        o.validate().expect("valid");
        let bad = IngestOptions {
            subdivide_start: Some(1.0),
            ..IngestOptions::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("subdivide_method")
        );
    }
}
