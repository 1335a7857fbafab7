//! Wire formats: choosing one from the caller's ordered `format` list, and encoding outputs.
//!
//! Content types are the exact strings the Python SDK compares against: `application/json`,
//! `image/png`, `image/tiff`, `application/x-numpy-data`; Parquet is `application/octet-stream`
//! (the SDK decodes any other type as Parquet).

mod codec;
mod geojson;
mod image;
pub mod mvt;
mod npy;
mod parquet;
mod tabular;

pub use codec::{decode_output, encode_output};
pub use geojson::table_to_geojson;
pub use npy::{decode_npy, encode_npy};
pub use parquet::{decode_parquet, encode_parquet, projjson};

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::output::Output;
use crate::tile::Tile;

/// A wire format a caller can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// (Geo)Parquet: tables.
    Parquet,
    /// GeoJSON FeatureCollection: tables.
    GeoJson,
    /// JSON: JSON values, tables (as records).
    Json,
    /// CSV (geometry as WKT): tables.
    Csv,
    /// Arrow IPC file ("Feather" v2): tables.
    Feather,
    /// PNG image: rasters of 8-bit (1–4 bands) or 16-bit (1 band) samples.
    Png,
    /// GeoTIFF: rasters.
    Tiff,
    /// numpy `.npy`: rasters.
    Npy,
    /// Mapbox Vector Tile: tables with geometries, on tile calls only.
    Mvt,
}

impl Format {
    /// Every format, in the order used when none is asked for.
    pub const ALL: [Format; 9] = [
        Format::Parquet,
        Format::GeoJson,
        Format::Json,
        Format::Csv,
        Format::Feather,
        Format::Png,
        Format::Tiff,
        Format::Npy,
        Format::Mvt,
    ];

    /// The name used in `format=` lists.
    pub fn name(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::GeoJson => "geojson",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Feather => "feather",
            Format::Png => "png",
            Format::Tiff => "tiff",
            Format::Npy => "npy",
            Format::Mvt => "mvt",
        }
    }

    /// The exact `Content-Type` sent with this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Parquet => "application/octet-stream",
            // The SDK decodes only exact `application/json` as JSON; GeoJSON is JSON.
            Format::GeoJson | Format::Json => "application/json",
            Format::Csv => "text/csv",
            Format::Feather => "application/vnd.apache.arrow.file",
            Format::Png => "image/png",
            Format::Tiff => "image/tiff",
            Format::Npy => "application/x-numpy-data",
            Format::Mvt => mvt::CONTENT_TYPE,
        }
    }

    /// A file extension for this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::GeoJson => "geojson",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Feather => "arrow",
            Format::Png => "png",
            Format::Tiff => "tif",
            Format::Npy => "npy",
            Format::Mvt => "mvt",
        }
    }

    /// True when this format can encode `output` (for [`Format::Mvt`]: on a tile call).
    pub fn accepts(self, output: &Output) -> bool {
        match output {
            Output::Table(t) if self == Format::Mvt => mvt::supports(t),
            Output::Table(_) => {
                matches!(
                    self,
                    Format::Parquet
                        | Format::GeoJson
                        | Format::Json
                        | Format::Csv
                        | Format::Feather
                )
            }
            Output::Raster(r) => match self {
                Format::Npy => true,
                Format::Tiff => image::tiff_compatible(r).is_ok(),
                Format::Png => image::png_compatible(r).is_ok(),
                _ => false,
            },
            Output::Json(_) => self == Format::Json,
            Output::Bytes { .. } | Output::Empty => true,
        }
    }

    /// The format used when the caller names none: Parquet for tables, PNG for rasters that
    /// fit it (else TIFF, else npy), JSON for JSON values.
    pub fn default_for(output: &Output) -> Format {
        match output {
            Output::Raster(r) if image::png_compatible(r).is_ok() => Format::Png,
            Output::Raster(r) if image::tiff_compatible(r).is_ok() => Format::Tiff,
            Output::Raster(_) => Format::Npy,
            Output::Json(_) => Format::Json,
            _ => Format::Parquet,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|f| {
                f.name() == t
                    || (t == "tif" && *f == Format::Tiff)
                    || (t == "arrow" && *f == Format::Feather)
            })
            .ok_or_else(|| {
                Error::Format(format!(
                    "unknown format {s:?}; this server encodes {}",
                    Format::ALL.map(Format::name).join(", ")
                ))
            })
    }
}

/// The caller's ordered format preferences (`format=npy,tiff,parquet,json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FormatPrefs {
    known: Vec<Format>,
    unknown: Vec<String>,
}

impl FormatPrefs {
    /// Parses a comma-separated list; names this server does not know are remembered for the
    /// error message but otherwise skipped, so `xml,parquet` still gives Parquet.
    pub fn parse(list: &str) -> Self {
        let mut p = Self::default();
        for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match part.parse::<Format>() {
                Ok(f) if !p.known.contains(&f) => p.known.push(f),
                Ok(_) => {}
                Err(_) => p.unknown.push(part.to_owned()),
            }
        }
        p
    }

    /// Preferences from the SDK's deprecated `dtype_out_raster` / `dtype_out_vector` pair
    /// (raster first, as the SDK orders them).
    pub fn from_legacy(raster: Option<&str>, vector: Option<&str>) -> Self {
        let list = [raster, vector]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(",");
        Self::parse(&list)
    }

    /// True when the caller named no format at all.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty() && self.unknown.is_empty()
    }

    /// The known formats, in order.
    pub fn formats(&self) -> &[Format] {
        &self.known
    }

    /// The first format that can encode `output`; the default for the output when the list is
    /// empty; otherwise an error listing what would have worked.
    pub fn choose(&self, output: &Output) -> Result<Format> {
        self.choose_for(output, false)
    }

    /// [`FormatPrefs::choose`] for a tile call (`tiled`), where vector tiles are possible too.
    pub fn choose_for(&self, output: &Output, tiled: bool) -> Result<Format> {
        if self.is_empty() {
            return Ok(Format::default_for(output));
        }
        let possible = |f: &Format| (tiled || *f != Format::Mvt) && f.accepts(output);
        if let Some(f) = self.known.iter().copied().find(possible) {
            return Ok(f);
        }
        let asked: Vec<String> = self
            .known
            .iter()
            .map(|f| f.name().to_owned())
            .chain(self.unknown.iter().cloned())
            .collect();
        let fits: Vec<&str> = Format::ALL
            .iter()
            .filter(|f| possible(f))
            .map(|f| f.name())
            .collect();
        let why = match output {
            Output::Raster(r) => image::png_compatible(r)
                .err()
                .map(|e| format!(" (png: {e})"))
                .unwrap_or_default(),
            _ if self.known.contains(&Format::Mvt) && !tiled => {
                " (mvt: vector tiles are answered on tile calls, …/run/tiles/{z}/{x}/{y}?format=mvt)"
                    .into()
            }
            Output::Table(t) if self.known.contains(&Format::Mvt) && t.geometry().is_none() => {
                " (mvt: the table has no geometry column)".into()
            }
            Output::Table(t) if self.known.contains(&Format::Mvt) && !mvt::supports(t) => {
                format!(
                    " (mvt: vector tiles are made from lon/lat or Web Mercator geometries, not {})",
                    t.geometry().map(|g| g.crs.to_string()).unwrap_or_default()
                )
            }
            _ => String::new(),
        };
        Err(Error::Format(format!(
            "the UDF returned {}, which none of the requested formats [{}] can encode; use one of: {}{why}",
            output.kind(),
            asked.join(", "),
            fits.join(", ")
        )))
    }
}

/// An encoded output: the body and its exact content type.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The `Content-Type` to send.
    pub content_type: String,
    /// The body.
    pub body: Bytes,
}

/// The tile a tile call asked for, and the vector tile layer its features go to.
#[derive(Debug, Clone, Copy)]
pub struct TileLayer<'a> {
    /// The tile.
    pub tile: Tile,
    /// The layer name (the UDF's name).
    pub layer: &'a str,
}

/// Encodes `output` as `format` (which must accept it; see [`FormatPrefs::choose`]).
///
/// `Bytes` outputs keep their own content type whatever the format; `Empty` is an empty body.
pub fn encode(output: &Output, format: Format) -> Result<Encoded> {
    encode_in(output, format, None)
}

/// [`encode`] on a tile call: vector tiles need the tile.
pub fn encode_in(output: &Output, format: Format, tile: Option<TileLayer<'_>>) -> Result<Encoded> {
    let ct = |body: Vec<u8>| Encoded {
        content_type: format.content_type().to_owned(),
        body: body.into(),
    };
    match (output, format) {
        (Output::Bytes { content_type, data }, _) => Ok(Encoded {
            content_type: content_type.clone(),
            body: data.clone(),
        }),
        (Output::Empty, _) => Ok(Encoded {
            content_type: format.content_type().to_owned(),
            body: Bytes::new(),
        }),
        (Output::Table(t), Format::Parquet) => Ok(ct(encode_parquet(t)?)),
        (Output::Table(t), Format::GeoJson) => Ok(ct(serde_json::to_vec(&table_to_geojson(t)?)?)),
        (Output::Table(t), Format::Json) => Ok(ct(tabular::table_to_json(t)?)),
        (Output::Table(t), Format::Csv) => Ok(ct(tabular::table_to_csv(t)?)),
        (Output::Table(t), Format::Feather) => Ok(ct(tabular::table_to_feather(t)?)),
        (Output::Raster(r), Format::Png) => Ok(ct(image::encode_png(r)?)),
        (Output::Raster(r), Format::Tiff) => Ok(ct(image::encode_tiff(r)?)),
        (Output::Raster(r), Format::Npy) => Ok(ct(encode_npy(r))),
        (Output::Json(v), Format::Json) => Ok(ct(serde_json::to_vec(v)?)),
        (Output::Table(t), Format::Mvt) => match tile {
            Some(TileLayer { tile, layer }) => {
                Ok(ct(mvt::encode_mvt(t, tile, &mvt::MvtOptions::new(layer))?))
            }
            None => Err(Error::Format(
                "vector tiles (mvt) are answered on tile calls only".into(),
            )),
        },
        (o, f) => Err(Error::Format(format!(
            "format {f} cannot encode {}",
            o.kind()
        ))),
    }
}

/// Decodes a response body by its content type, as the Python SDK does: JSON, npy, and
/// Parquet (anything unrecognised); PNG, TIFF, CSV and other images stay bytes.
pub fn decode(content_type: &str, body: Bytes) -> Result<Output> {
    if body.is_empty() {
        return Ok(Output::Empty);
    }
    match content_type {
        "application/json" => Ok(Output::Json(serde_json::from_slice(&body)?)),
        "application/x-numpy-data" => Ok(Output::Raster(decode_npy(&body)?)),
        "image/png"
        | "image/tiff"
        | "text/csv"
        | "application/vnd.apache.arrow.file"
        | mvt::CONTENT_TYPE => Ok(Output::bytes(content_type, body)),
        ct if ct.starts_with("text/") || ct.starts_with("image/") => Ok(Output::bytes(ct, body)),
        _ => Ok(Output::Table(decode_parquet(body)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Raster, RasterData};
    use serde_json::json;

    #[test]
    fn choose_follows_the_list() {
        let j = Output::Json(json!(1));
        let r = Output::Raster(Raster::new(1, 2, 2, RasterData::F32(vec![0.0; 4])).unwrap());
        let sdk = FormatPrefs::parse("npy,tiff,parquet,json");
        assert_eq!(sdk.choose(&j).unwrap(), Format::Json);
        assert_eq!(sdk.choose(&r).unwrap(), Format::Npy);
        assert_eq!(FormatPrefs::parse("").choose(&r).unwrap(), Format::Tiff);
        let two_bands =
            Output::Raster(Raster::new(2, 1, 1, RasterData::F32(vec![0.0; 2])).unwrap());
        assert_eq!(
            FormatPrefs::parse("").choose(&two_bands).unwrap(),
            Format::Npy
        );
        assert_eq!(
            FormatPrefs::parse("tiff,npy").choose(&two_bands).unwrap(),
            Format::Npy
        );
        assert_eq!(
            FormatPrefs::parse("mvt, json").choose(&j).unwrap(),
            Format::Json
        );
        let e = FormatPrefs::parse("png,jpeg")
            .choose(&r)
            .unwrap_err()
            .to_string();
        assert!(e.contains("png, jpeg") && e.contains("tiff, npy"), "{e}");
        assert_eq!(
            FormatPrefs::from_legacy(Some("tiff"), Some("geojson")).formats(),
            [Format::Tiff, Format::GeoJson]
        );
    }

    #[test]
    fn unknown_format_names_the_alternatives() {
        let e = "xml".parse::<Format>().unwrap_err().to_string();
        assert!(e.contains("parquet") && e.contains("xml"), "{e}");
    }
}
