//! Raster-to-H3 ingestion and the H3 dataset reader.
//!
//! This crate will hold `run_ingest_raster_to_h3(input, output)`: a pure-Rust GeoTIFF/COG reader,
//! the extract → partition → metadata → overview pipeline that aggregates pixels into H3 cells,
//! and `read_h3_dataset` for tile UDFs.
//!
//! Nothing is implemented yet: the work is tracked by the fused-h3 issue.
