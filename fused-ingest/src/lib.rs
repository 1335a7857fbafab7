//! Vector ingestion into the Fused partitioned table format.
//!
//! This crate will hold `ingest(input, output)`: readers for GeoParquet, CSV, GeoJSON, FlatGeobuf,
//! Shapefile and GeoPackage inputs, the spatial partitioner (area / length / coords / rows), the
//! writer of `<table>/<file_id>.parquet` files with one row group per chunk and the `_sample`
//! chunk index, and the readers `get_chunks_metadata` / `get_chunk_from_table`.
//!
//! Nothing is implemented yet: the work is tracked by the fused-ingest issue.
