//! Inputs: each supported file type opened as a list of [`Unit`]s of record batches plus where
//! their geometry is ([`GeomSpec`]) and in which CRS. Parquet files give one unit per row group,
//! so they are decoded on all cores; other formats give one unit per file.

mod csv;
mod features;
mod fgb;
mod geojson;
mod gpkg;
mod parquet;
mod shp;

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use fused_core::output::Crs;

use crate::error::{Error, Result};
use crate::options::IngestOptions;

/// Where a source keeps its geometry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GeomSpec {
    /// A WKB (binary) column.
    Wkb(String),
    /// A WKT (text) column.
    Wkt(String),
    /// Longitude and latitude columns.
    LonLat(String, String),
}

impl GeomSpec {
    /// The columns the geometry is built from.
    pub(crate) fn columns(&self) -> Vec<&str> {
        match self {
            GeomSpec::Wkb(c) | GeomSpec::Wkt(c) => vec![c],
            GeomSpec::LonLat(x, y) => vec![x, y],
        }
    }
}

/// A piece of a source that can be read on its own (on any thread).
pub(crate) type Unit = Box<dyn FnOnce() -> Result<BatchIter> + Send>;

/// Record batches of a unit, read lazily.
pub(crate) type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// An opened input file.
pub(crate) struct Opened {
    /// The file.
    pub file: PathBuf,
    /// Its geometry.
    pub geom: GeomSpec,
    /// The CRS its coordinates are in (`None`: lon/lat).
    pub crs: Option<Crs>,
    /// Its rows, in order.
    pub units: Vec<Unit>,
    /// Its row count when known up front (for progress).
    #[allow(dead_code)]
    pub rows: Option<u64>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("file", &self.file)
            .field("geom", &self.geom)
            .field("crs", &self.crs)
            .field("units", &self.units.len())
            .finish()
    }
}

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Parquet,
    Csv,
    GeoJson,
    GeoJsonSeq,
    FlatGeobuf,
    ShapefileZip,
    Shapefile,
    GeoPackage,
}

/// The format of a file, from its extension (or its magic bytes for Parquet).
pub(crate) fn kind_of(path: &Path) -> Result<Kind> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let ext = |e: &str| name.ends_with(e);
    Ok(if ext(".parquet") || ext(".geoparquet") || ext(".pq") {
        Kind::Parquet
    } else if ext(".csv") || ext(".tsv") {
        Kind::Csv
    } else if ext(".geojson") || ext(".json") {
        Kind::GeoJson
    } else if ext(".geojsonl") || ext(".geojsons") || ext(".ndjson") || ext(".jsonl") {
        Kind::GeoJsonSeq
    } else if ext(".fgb") {
        Kind::FlatGeobuf
    } else if ext(".shp.zip") || ext(".zip") {
        Kind::ShapefileZip
    } else if ext(".shp") {
        Kind::Shapefile
    } else if ext(".gpkg") {
        Kind::GeoPackage
    } else {
        let mut magic = [0u8; 4];
        use std::io::Read;
        let is_parquet = std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && &magic == b"PAR1";
        if is_parquet {
            Kind::Parquet
        } else {
            return Err(Error::input(
                path,
                None,
                "unknown input format (expected .parquet, .csv, .geojson, .geojsonl/.ndjson, \
                 .fgb, .shp or a zipped shapefile, .gpkg)",
            ));
        }
    })
}

/// Opens one local input file.
pub(crate) fn open(path: &Path, opts: &IngestOptions, scratch: &Path) -> Result<Opened> {
    match kind_of(path)? {
        Kind::Parquet => parquet::open(path, opts),
        Kind::Csv => csv::open(path, opts),
        Kind::GeoJson => geojson::open(path, false),
        Kind::GeoJsonSeq => geojson::open(path, true),
        Kind::FlatGeobuf => fgb::open(path),
        Kind::ShapefileZip => shp::open_zip(path, scratch),
        Kind::Shapefile => shp::open(path),
        Kind::GeoPackage => gpkg::open(path, opts),
    }
}

/// Lists the files of a local directory (recursively, sorted, hidden files skipped), keeping
/// those whose name ends with `suffix`.
pub(crate) fn list_dir(dir: &Path, suffix: Option<&str>) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| Error::io(format!("listing {}", d.display()), e))?;
        for e in entries {
            let e = e.map_err(|e| Error::io(format!("listing {}", d.display()), e))?;
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if suffix.is_none_or(|s| name.ends_with(s)) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The geometry of a table whose columns are `names`: by explicit lon/lat columns, else a
/// column named like a geometry (WKB or WKT by `is_binary`), else lon/lat by name.
pub(crate) fn detect_geometry(
    file: &Path,
    names: &[(String, bool)],
    opts: &IngestOptions,
) -> Result<GeomSpec> {
    let has = |n: &str| names.iter().find(|(c, _)| c == n);
    if let Some((lon, lat)) = &opts.lonlat_cols {
        for c in [lon, lat] {
            if has(c).is_none() {
                return Err(Error::input(
                    file,
                    None,
                    format!("lonlat_cols names {c:?}, which is not a column of this file"),
                ));
            }
        }
        return Ok(GeomSpec::LonLat(lon.clone(), lat.clone()));
    }
    let option_names = |key: &str| -> Vec<String> {
        opts.gdal_config
            .open_options
            .get(key)
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default()
    };
    let find_ci = |candidates: &[String]| {
        candidates.iter().find_map(|c| {
            names
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(c))
                .cloned()
        })
    };
    let mut geom_names = option_names("GEOM_POSSIBLE_NAMES");
    geom_names.extend(
        [
            "geometry",
            "geom",
            "wkb_geometry",
            "the_geom",
            "wkt",
            "shape",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    if let Some((n, binary)) = find_ci(&geom_names) {
        return Ok(if binary {
            GeomSpec::Wkb(n)
        } else {
            GeomSpec::Wkt(n)
        });
    }
    let mut xs = option_names("X_POSSIBLE_NAMES");
    xs.extend(
        ["lon", "lng", "long", "longitude", "x"]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut ys = option_names("Y_POSSIBLE_NAMES");
    ys.extend(["lat", "latitude", "y"].iter().map(|s| s.to_string()));
    if let (Some((x, _)), Some((y, _))) = (find_ci(&xs), find_ci(&ys)) {
        return Ok(GeomSpec::LonLat(x, y));
    }
    Err(Error::input(
        file,
        None,
        "no geometry: found no geometry column (geometry, geom, wkt, …) and no lon/lat \
         columns; name them with lonlat_cols",
    ))
}

/// The CRS a PROJJSON / WKT / `EPSG:n` / OGC URN text names.
pub(crate) fn crs_from_text(text: &str) -> Crs {
    let t = text.trim();
    if t.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(t)
    {
        if let (Some("EPSG"), Some(code)) = (
            v.pointer("/id/authority").and_then(|a| a.as_str()),
            v.pointer("/id/code").and_then(|c| c.as_u64()),
        ) {
            return Crs::Epsg(code as u32);
        }
        if v.pointer("/id/code").and_then(|c| c.as_str()) == Some("CRS84") {
            return Crs::Epsg(4326);
        }
        return Crs::Other(t.to_owned());
    }
    if let Some(c) = wkt_crs(t) {
        return c;
    }
    let upper = t.to_ascii_uppercase();
    if upper.contains("CRS84") {
        return Crs::Epsg(4326);
    }
    // A projected WKT names its base CRS's authority inside; only its own (at the top level)
    // says what it is.
    if upper.starts_with("PROJCS") || upper.starts_with("PROJCRS") {
        return top_level_epsg(&upper).map_or_else(|| Crs::Other(t.to_owned()), Crs::Epsg);
    }
    if let Some(i) = upper.rfind("EPSG") {
        let digits: String = upper[i + 4..]
            .trim_start_matches([':', ':', '"', ',', ' '])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(code) = digits.parse::<u32>() {
            return Crs::Epsg(code);
        }
    }
    Crs::parse(t)
}

/// The EPSG code in a top-level `AUTHORITY["EPSG", n]` / `ID["EPSG", n]` of a WKT text.
fn top_level_epsg(upper: &str) -> Option<u32> {
    let mut depth = 0usize;
    for (i, c) in upper.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 1 && (upper[i..].starts_with(",AUTHORITY[") || upper[i..].starts_with(",ID[")) {
            let rest = &upper[i..];
            let digits: String = rest
                .split(',')
                .nth(2)
                .unwrap_or_default()
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            if rest.contains("EPSG") {
                return digits.parse().ok();
            }
        }
    }
    None
}

/// The EPSG code of a WKT CRS (an `AUTHORITY["EPSG", …]` or a name we recognise, as ESRI
/// `.prj` files have).
fn wkt_crs(t: &str) -> Option<Crs> {
    let upper = t.to_ascii_uppercase();
    if !(upper.starts_with("GEOGCS")
        || upper.starts_with("PROJCS")
        || upper.starts_with("GEOGCRS")
        || upper.starts_with("PROJCRS"))
    {
        return None;
    }
    let head = upper.split('[').nth(1).unwrap_or_default().replace('"', "");
    let name = head.split(',').next().unwrap_or_default().trim().to_owned();
    // Datums a few hundred metres from WGS 84 are not ours to transform.
    if [
        "NAD27",
        "NAD_1927",
        "ED50",
        "EUROPEAN_1950",
        "TOKYO",
        "PULKOVO",
    ]
    .iter()
    .any(|d| upper.contains(d))
    {
        return Some(Crs::Other(t.to_owned()));
    }
    if upper.starts_with("GEOG") {
        if name.contains("WGS") && name.contains("84")
            || name.contains("NAD83")
            || name.contains("NORTH_AMERICAN_1983")
            || name.contains("ETRS")
        {
            return Some(Crs::Epsg(4326));
        }
        return None;
    }
    if name.contains("MERCATOR_AUXILIARY_SPHERE") || name.contains("PSEUDO-MERCATOR") {
        return Some(Crs::Epsg(3857));
    }
    if let Some(i) = name.find("UTM_ZONE_").or_else(|| name.find("UTM ZONE ")) {
        let rest = &name[i + 9..];
        let zone: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let zone: u32 = zone.parse().ok()?;
        let south = rest[zone.to_string().len()..].starts_with('S');
        return Some(Crs::Epsg(if south { 32700 } else { 32600 } + zone));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crs_texts_are_recognised() {
        assert_eq!(crs_from_text("EPSG:3857"), Crs::Epsg(3857));
        assert_eq!(
            crs_from_text("urn:ogc:def:crs:OGC:1.3:CRS84"),
            Crs::Epsg(4326)
        );
        assert_eq!(
            crs_from_text(r#"{"id": {"authority": "EPSG", "code": 32633}}"#),
            Crs::Epsg(32633)
        );
        assert_eq!(
            crs_from_text(r#"PROJCS["WGS_1984_UTM_Zone_18N",GEOGCS["GCS_WGS_1984"]]"#),
            Crs::Epsg(32618)
        );
        assert_eq!(
            crs_from_text(r#"GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984"]]"#),
            Crs::Epsg(4326)
        );
        // A projected CRS is not its base's 4326, and a NAD27 zone is not WGS 84's.
        assert!(matches!(
            crs_from_text(
                r#"PROJCS["Custom",GEOGCS["WGS 84",AUTHORITY["EPSG","4326"]],PROJECTION["Mercator"]]"#
            ),
            Crs::Other(_)
        ));
        assert_eq!(
            crs_from_text(
                r#"PROJCS["WGS 84 / UTM zone 33N",GEOGCS["WGS 84",AUTHORITY["EPSG","4326"]],AUTHORITY["EPSG","32633"]]"#
            ),
            Crs::Epsg(32633)
        );
        assert!(matches!(
            crs_from_text(r#"PROJCS["NAD27 / UTM zone 17N",GEOGCS["NAD27"]]"#),
            Crs::Other(_)
        ));
    }
}
