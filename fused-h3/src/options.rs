//! The options of `fused.h3.run_ingest_raster_to_h3`, with the SDK's defaults, and how the
//! unset resolutions are inferred.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A statistic of the pixel values per cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Hits per (cell, value): for categorical rasters (`cnt`, `cnt_total` columns).
    Cnt,
    /// Count-weighted mean (`data_avg`).
    Avg,
    /// Smallest value (`data_min`).
    Min,
    /// Largest value (`data_max`).
    Max,
    /// Count-weighted population standard deviation (`data_stddev`).
    Stddev,
    /// Sum of the values, each pixel counted once (`data_sum`).
    Sum,
}

impl Metric {
    /// The metric's name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cnt => "cnt",
            Metric::Avg => "avg",
            Metric::Min => "min",
            Metric::Max => "max",
            Metric::Stddev => "stddev",
            Metric::Sum => "sum",
        }
    }
}

fn default_metrics() -> Vec<Metric> {
    vec![Metric::Cnt]
}

fn one() -> u8 {
    1
}

fn yes() -> bool {
    true
}

/// The options of a raster-to-H3 ingestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct H3Options {
    /// `cnt` alone, or any of `avg`, `min`, `max`, `stddev`, `sum`.
    #[serde(default = "default_metrics")]
    pub metrics: Vec<Metric>,
    /// The output resolution (inferred from the pixel size when unset).
    #[serde(default)]
    pub res: Option<u8>,
    /// Each pixel also counts for the cells within this distance (at `res + res_offset`).
    #[serde(default = "one")]
    pub k_ring: u8,
    /// Pixels are assigned at `res + res_offset`, then aggregated to `res`.
    #[serde(default = "one")]
    pub res_offset: u8,
    /// Row groups per cell of this resolution (inferred: `max(res − 7, file_res + 2)`).
    #[serde(default)]
    pub chunk_res: Option<u8>,
    /// Files per cell of this resolution (inferred: `max(res − 10, 0)`; `-1`: one file).
    #[serde(default)]
    pub file_res: Option<i8>,
    /// Overview resolutions (default: 3 up to `min(res − 1, 7)`), each below `res`.
    #[serde(default)]
    pub overview_res: Option<Vec<u8>>,
    /// Row-group resolution of each overview (default: `max(r − 5, 0)`).
    #[serde(default)]
    pub overview_chunk_res: Option<Vec<u8>>,
    /// With a positive value, row groups hold this many rows instead of one `chunk_res` cell.
    #[serde(default)]
    pub max_rows_per_chunk: u64,
    /// Add the `source_url` column (the inputs a cell's values came from).
    #[serde(default = "yes")]
    pub include_source_url: bool,
    /// The nodata value (overrides the rasters' own).
    #[serde(default)]
    pub nodata: Option<f64>,
    /// Replace an existing dataset.
    #[serde(default)]
    pub overwrite: bool,
    /// Pixels per extract task in the SDK. Accepted and unused: our tasks are the raster's
    /// own tiles or strips, which bound memory as well.
    #[serde(default)]
    pub target_chunk_size: Option<u64>,
    /// A quick trial: extract only the first raster's first two chunks.
    #[serde(default)]
    pub debug_mode: bool,
    /// Delete the temporary files at the end; `false` keeps them (their folder is logged).
    #[serde(default = "yes")]
    pub remove_tmp_files: bool,
    /// Folder for the temporary files (default: beside the output).
    #[serde(default)]
    pub tmp_path: Option<String>,
    /// Steps to run, of `extract`, `partition`, `metadata`, `overview` (default: all). Ours
    /// run as one pass, so `extract`, `partition` and `metadata` go together; leaving out
    /// `overview` skips the overviews.
    #[serde(default)]
    pub steps: Option<Vec<String>>,
}

/// The steps of an ingestion, in the SDK's names.
pub(crate) const STEPS: [&str; 4] = ["extract", "partition", "metadata", "overview"];

impl Default for H3Options {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).unwrap_or_else(|_| unreachable!())
    }
}

/// Resolutions settled for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Output resolution.
    pub res: u8,
    /// Resolution pixels are assigned at (`res + res_offset`).
    pub assign_res: u8,
    /// File resolution (`None`: one file, id 0).
    pub file_res: Option<u8>,
    /// Row-group resolution (`None` when `max_rows_per_chunk` is set).
    pub chunk_res: Option<u8>,
    /// Overviews: (resolution, chunk resolution).
    pub overviews: Vec<(u8, u8)>,
}

impl H3Options {
    /// Checks the options and settles the resolutions, `res` being given or inferred.
    pub fn resolve(&self, res: u8) -> Result<Resolved> {
        if self.metrics.is_empty() {
            return Err(Error::Options("metrics is empty".into()));
        }
        if self.metrics.contains(&Metric::Cnt) && self.metrics.len() > 1 {
            return Err(Error::Options(
                "cnt cannot be combined with other metrics".into(),
            ));
        }
        let assign = res + self.res_offset;
        if assign > 15 {
            return Err(Error::Options(format!(
                "res + res_offset = {res} + {} = {assign} is past H3's finest resolution, 15",
                self.res_offset
            )));
        }
        let file_res = match self.file_res {
            Some(-1) => None,
            Some(r) if r < 0 || r as u8 > res => {
                return Err(Error::Options(format!(
                    "file_res {r} must be -1 or between 0 and res ({res})"
                )));
            }
            Some(r) => Some(r as u8),
            None => Some(res.saturating_sub(10)),
        };
        let chunk_res = if self.max_rows_per_chunk > 0 {
            None
        } else {
            let floor = file_res.map_or(0, |f| f + 2).min(res);
            let c = self
                .chunk_res
                .unwrap_or_else(|| res.saturating_sub(7).max(floor));
            if c > res || file_res.is_some_and(|f| c < f) {
                return Err(Error::Options(format!(
                    "chunk_res {c} must be between file_res and res ({res})"
                )));
            }
            Some(c)
        };
        if let Some(steps) = &self.steps {
            if let Some(bad) = steps.iter().find(|s| !STEPS.contains(&s.as_str())) {
                return Err(Error::Options(format!(
                    "unknown step {bad:?} (steps are {})",
                    STEPS.join(", ")
                )));
            }
            if let Some(missing) = STEPS[..3].iter().find(|s| !steps.iter().any(|t| t == *s)) {
                return Err(Error::Options(format!(
                    "steps leave out {missing}: extract, partition and metadata run as one \
                     pass here (no intermediate files are kept between runs); only overview \
                     may be left out"
                )));
            }
        }
        let with_overviews = self
            .steps
            .as_ref()
            .is_none_or(|s| s.iter().any(|t| t == "overview"));
        let overview_res = match &self.overview_res {
            _ if !with_overviews => Vec::new(),
            Some(v) => v.clone(),
            None => (3..=res.saturating_sub(1).min(7)).collect(),
        };
        let mut seen = std::collections::HashSet::new();
        if let Some(r) = overview_res.iter().find(|r| !seen.insert(**r)) {
            return Err(Error::Options(format!(
                "overview resolution {r} is given twice"
            )));
        }
        if let Some(bad) = overview_res.iter().find(|r| **r >= res) {
            return Err(Error::Options(format!(
                "overview resolution {bad} is not below res {res}"
            )));
        }
        let chunks: Vec<u8> = match &self.overview_chunk_res {
            Some(v) if v.len() == 1 => vec![v[0]; overview_res.len()],
            Some(v) if v.len() == overview_res.len() => v.clone(),
            Some(v) => {
                return Err(Error::Options(format!(
                    "overview_chunk_res has {} values for {} overview resolutions",
                    v.len(),
                    overview_res.len()
                )));
            }
            None => overview_res.iter().map(|r| r.saturating_sub(5)).collect(),
        };
        let overviews: Vec<(u8, u8)> = overview_res
            .into_iter()
            .zip(chunks)
            .map(|(r, c)| (r, c.min(r)))
            .collect();
        Ok(Resolved {
            res,
            assign_res: assign,
            file_res,
            chunk_res,
            overviews,
        })
    }
}
