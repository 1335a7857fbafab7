//! UDF folders and zips: the `meta.json` + `<name>.py` + README layout the Python SDK's
//! `to_directory` / `to_file` write and `fused.load` reads, and single `.py` files.
//!
//! The SDK renames the entrypoint to `udf` with Python's AST; here the `def <entrypoint>(`
//! line is renamed textually (an existing top-level `def udf(` becomes `udf_old`), which gives
//! the same result for the code UDFs are made of.

use std::io::{Read, Write};
use std::path::Path;

use serde_json::{Map, Value, json};

use super::meta::{Header, UdfMeta};
use crate::error::{Error, Result};

/// What every UDF source file starts with.
const IMPORTS: &str = "import fused\n\n";
/// Largest file read from a UDF folder or zip.
const MAX_FILE: u64 = 64 << 20;

fn invalid(m: impl Into<String>) -> Error {
    Error::InvalidUdf(m.into())
}

impl UdfMeta {
    /// The files of this UDF's folder, by name.
    fn folder_files(&self) -> Vec<(String, String)> {
        let name = self.display_name().to_owned();
        let code = rename_entrypoint(&self.code, &self.entrypoint);
        let mut udf = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        udf.remove("code");
        udf.insert("entrypoint".into(), "udf".into());
        if udf.get("metadata").is_none_or(Value::is_null) {
            udf.insert("metadata".into(), json!({}));
        }
        udf.insert("source".into(), format!("{name}.py").into());
        udf.insert(
            "headers".into(),
            Value::Array(
                self.headers
                    .iter()
                    .map(|h| {
                        let file = match &h.source_file {
                            Some(f) if f.starts_with("http") || f.starts_with("www") => f.clone(),
                            _ => format!("{}.py", h.module_name),
                        };
                        json!({ "module_name": h.module_name, "source_file": file })
                    })
                    .collect(),
            ),
        );
        let step = json!({
            "type": "udf",
            "name": name,
            "metadata": null,
            "ignore_chunk_error": false,
            "n_processes": null,
            "udf": udf,
            "input": null,
        });
        let meta = json!({ "job_config": { "name": null, "steps": [step], "metadata": null } });
        let mut readme = format!("# job_{name}\n\n");
        if let Some(m) = &self.metadata {
            let d = m
                .get("fused:description")
                .and_then(Value::as_str)
                .unwrap_or("");
            readme.push_str(&format!("{d}\n\n"));
        }
        let mut files = vec![
            ("meta.json".to_owned(), meta.to_string()),
            ("README.md".to_owned(), readme),
        ];
        for h in &self.headers {
            let file = format!("{}.py", h.module_name);
            if !files.iter().any(|(n, _)| *n == file) {
                files.push((file, h.source_code.clone().unwrap_or_default()));
            }
        }
        // Code read back from a folder already starts with the import: it is not doubled.
        let source = if code.starts_with(IMPORTS) {
            code
        } else {
            format!("{IMPORTS}{code}")
        };
        files.push((format!("{name}.py"), source));
        files
    }

    /// Writes the UDF as a folder (`meta.json`, `README.md`, `<name>.py`, header modules).
    /// An existing path is an error unless `overwrite`, which replaces it.
    pub fn to_directory(&self, dir: &Path, overwrite: bool) -> Result<()> {
        if dir.extension().is_some() {
            return Err(invalid(format!(
                "{} looks like a file; a UDF folder needs a path without an extension",
                dir.display()
            )));
        }
        clear(dir, overwrite)?;
        std::fs::create_dir_all(dir)?;
        for (name, text) in self.folder_files() {
            std::fs::write(dir.join(name), text)?;
        }
        Ok(())
    }

    /// Writes the UDF as a zip of its folder's files (DEFLATE, entries at the root).
    pub fn to_file(&self, path: &Path, overwrite: bool) -> Result<()> {
        clear(path, overwrite)?;
        let tmp = path.with_extension("zip.part");
        let write = || -> Result<()> {
            let f = std::fs::File::create(&tmp)?;
            let mut zip = zip::ZipWriter::new(f);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            for (name, text) in self.folder_files() {
                zip.start_file(name, opts).map_err(zip_err)?;
                zip.write_all(text.as_bytes())?;
            }
            zip.finish().map_err(zip_err)?.sync_all()?;
            Ok(())
        };
        let r = write().and_then(|()| Ok(std::fs::rename(&tmp, path)?));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }

    /// Loads a UDF from a folder, a `.zip`, or a `.py` file.
    pub fn load(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return from_files(|name| {
                let p = path.join(checked_file_name(name)?);
                read_limited(
                    std::fs::File::open(&p)
                        .map_err(|e| invalid(format!("{}: {e}", p.display())))?,
                )
            });
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("zip") => {
                let f = std::fs::File::open(path)?;
                let mut zip = zip::ZipArchive::new(f).map_err(zip_err)?;
                from_files(|name| {
                    let entry = zip
                        .by_name(checked_file_name(name)?)
                        .map_err(|e| invalid(format!("{name} in the zip: {e}")))?;
                    read_limited(entry)
                })
            }
            Some("py") => {
                let code = read_limited(std::fs::File::open(path)?)?;
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("udf");
                Self::from_code(&code, Some(stem))
            }
            _ => Err(invalid(format!(
                "{}: expected a UDF folder, a .zip or a .py file",
                path.display()
            ))),
        }
    }

    /// A UDF from the files of a folder in the SDK's layout, read by `read(file name)` (a
    /// folder fetched over HTTP, for example): `meta.json`, then the files it names.
    pub fn from_folder_files(read: impl FnMut(&str) -> Result<String>) -> Result<Self> {
        from_files(read)
    }

    /// A UDF from Python source: the entrypoint is the single function decorated with
    /// `@fused.udf` / `@udf` (or, among several, the one named `udf`); the name is `name` or
    /// the entrypoint.
    pub fn from_code(code: &str, name: Option<&str>) -> Result<Self> {
        let entry = entrypoint_of(code)?;
        let mut meta = Self::new(name.unwrap_or(&entry));
        meta.entrypoint = entry;
        meta.code = code.to_owned();
        Ok(meta)
    }
}

impl super::Udf {
    /// Writes this native UDF's description (its generated signature) as a UDF folder.
    pub fn to_directory(&self, dir: &Path, overwrite: bool) -> Result<()> {
        self.sdk_meta().to_directory(dir, overwrite)
    }

    /// Writes this native UDF's description as a UDF zip.
    pub fn to_file(&self, path: &Path, overwrite: bool) -> Result<()> {
        self.sdk_meta().to_file(path, overwrite)
    }
}

/// Reads `meta.json` and the files it names through `read`.
fn from_files(mut read: impl FnMut(&str) -> Result<String>) -> Result<UdfMeta> {
    let meta: Value = serde_json::from_str(&read("meta.json")?)
        .map_err(|e| invalid(format!("meta.json: {e}")))?;
    let steps = meta["job_config"]["steps"]
        .as_array()
        .ok_or_else(|| invalid("meta.json has no job_config.steps"))?;
    let [step] = steps.as_slice() else {
        return Err(invalid(format!(
            "meta.json has {} steps; a UDF folder has exactly one",
            steps.len()
        )));
    };
    if step["type"] != "udf" {
        return Err(invalid(format!(
            "the step is of type {}, not udf",
            step["type"]
        )));
    }
    let mut udf = step["udf"]
        .as_object()
        .cloned()
        .ok_or_else(|| invalid("the step has no udf"))?;
    let source = udf
        .remove("source")
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(|| invalid("the udf names no source file"))?;
    let code = read(&source)?;
    udf.insert("code".into(), Value::String(code));
    let headers = udf.remove("headers").unwrap_or(Value::Array(Vec::new()));
    let mut out = Vec::new();
    for h in headers.as_array().into_iter().flatten() {
        let module = h["module_name"].as_str().unwrap_or_default().to_owned();
        let file = h["source_file"].as_str().map(str::to_owned);
        let source_code = match &file {
            Some(f) if !f.starts_with("http") && !f.starts_with("www") => Some(read(f)?),
            _ => None,
        };
        out.push(Header {
            module_name: module,
            source_code: source_code.clone(),
            source_file: if source_code.is_some() { None } else { file },
        });
    }
    let mut meta = UdfMeta::from_json(&Value::Object(udf).to_string())?;
    meta.headers = out;
    Ok(meta)
}

/// A file name from `meta.json`, refused when it would leave the folder.
fn checked_file_name(name: &str) -> Result<&str> {
    let bad = name.is_empty() || name.contains(['/', '\\', '\0']) || name == "." || name == "..";
    if bad {
        return Err(invalid(format!(
            "meta.json names {name:?}, which is not a file of the folder"
        )));
    }
    Ok(name)
}

fn read_limited(r: impl Read) -> Result<String> {
    let mut s = String::new();
    r.take(MAX_FILE + 1).read_to_string(&mut s)?;
    if s.len() as u64 > MAX_FILE {
        return Err(invalid("a file of the UDF is larger than 64 MiB"));
    }
    Ok(s)
}

fn clear(path: &Path, overwrite: bool) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if !overwrite {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "{} already exists (pass overwrite to replace it)",
                path.display()
            ),
        )));
    }
    if path.is_dir() {
        std::fs::remove_dir_all(path)?;
    } else {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

fn zip_err(e: zip::result::ZipError) -> Error {
    invalid(format!("zip: {e}"))
}

/// The code with its entrypoint renamed to `udf` (a previous `udf` becomes `udf_old`).
fn rename_entrypoint(code: &str, entrypoint: &str) -> String {
    if entrypoint == "udf" {
        return code.to_owned();
    }
    let mut out = String::with_capacity(code.len() + 8);
    for line in code.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix(&format!("def {entrypoint}(")) {
            out.push_str("def udf(");
            out.push_str(rest);
        } else if let Some(rest) = line.strip_prefix("def udf(") {
            out.push_str("def udf_old(");
            out.push_str(rest);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// The function the `@fused.udf` / `@udf` decorator marks.
fn entrypoint_of(code: &str) -> Result<String> {
    let mut found = Vec::new();
    let mut decorated = false;
    for line in code.lines() {
        let t = line.trim_end();
        if t.starts_with("@fused.udf") || t == "@udf" || t.starts_with("@udf(") {
            decorated = true;
        } else if decorated && (t.starts_with("def ") || t.starts_with("async def ")) {
            let after = t.trim_start_matches("async ").trim_start_matches("def ");
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
            decorated = false;
        } else if !t.starts_with('@') && !t.is_empty() && !line.starts_with([' ', '\t', ')']) {
            decorated = false;
        }
    }
    match found.as_slice() {
        [] => Err(invalid("no function decorated with @fused.udf")),
        [one] => Ok(one.clone()),
        many if many.iter().any(|n| n == "udf") => Ok("udf".into()),
        many => Err(invalid(format!(
            "several @fused.udf functions ({}); name one of them `udf`",
            many.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UdfMeta {
        let mut m = UdfMeta::from_code(
            "@fused.udf\ndef area(n: int = 2):\n    import helper\n    return n\n",
            None,
        )
        .unwrap();
        m.headers.push(Header {
            module_name: "helper".into(),
            source_code: Some("X = 1\n".into()),
            source_file: None,
        });
        m.set_metadata("fused:description", "Areas.".into());
        m.parameters.insert("n".into(), 3.into());
        m
    }

    #[test]
    fn folder_and_zip_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let m = sample();
        let folder = dir.path().join("area");
        m.to_directory(&folder, false).unwrap();
        assert!(
            m.to_directory(&folder, false).is_err(),
            "no silent overwrite"
        );
        m.to_directory(&folder, true).unwrap();
        let code = std::fs::read_to_string(folder.join("area.py")).unwrap();
        assert!(
            code.starts_with("import fused\n\n@fused.udf\ndef udf(n: int = 2):"),
            "{code}"
        );
        assert_eq!(
            std::fs::read_to_string(folder.join("README.md")).unwrap(),
            "# job_area\n\nAreas.\n\n"
        );
        assert_eq!(
            std::fs::read_to_string(folder.join("helper.py")).unwrap(),
            "X = 1\n"
        );

        let back = UdfMeta::load(&folder).unwrap();
        assert_eq!(back.name.as_deref(), Some("area"));
        assert_eq!(back.entrypoint, "udf");
        assert_eq!(back.parameters["n"], 3);
        assert_eq!(back.headers[0].source_code.as_deref(), Some("X = 1\n"));
        assert_eq!(back.metadata_str("fused:description"), Some("Areas."));

        let zip = dir.path().join("area.zip");
        m.to_file(&zip, false).unwrap();
        let z = UdfMeta::load(&zip).unwrap();
        assert_eq!(z, back);
    }

    #[test]
    fn bad_folders_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("meta.json"), r#"{"job_config":{"steps":[{"type":"udf","udf":{"type":"geopandas_v2","entrypoint":"udf","source":"../../etc/passwd"}}]}}"#).unwrap();
        let e = UdfMeta::load(d).unwrap_err().to_string();
        assert!(e.contains("not a file of the folder"), "{e}");
        std::fs::write(d.join("meta.json"), r#"{"job_config":{"steps":[]}}"#).unwrap();
        assert!(
            UdfMeta::load(d)
                .unwrap_err()
                .to_string()
                .contains("0 steps")
        );
        std::fs::write(d.join("meta.json"), "not json").unwrap();
        assert!(UdfMeta::load(d).is_err());
        assert!(UdfMeta::from_code("def f(): pass", None).is_err());
        let two = "@fused.udf\ndef a(): pass\n\n@fused.udf\ndef udf(): pass\n";
        assert_eq!(UdfMeta::from_code(two, None).unwrap().entrypoint, "udf");
        let deco = "@fused.udf(cache_max_age=\"1h\")\nasync def my_fn(x):\n    pass\n";
        assert_eq!(UdfMeta::from_code(deco, None).unwrap().entrypoint, "my_fn");
    }
}
