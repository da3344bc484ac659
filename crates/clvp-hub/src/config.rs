//! Reproduces `PretrainedConfig.from_json_file`: a JSON object file, typed access, and errors naming file and field.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::JsonConfigError;

/// A JSON configuration file (`config.json`, `generation_config.json`, `preprocessor_config.json`, ...).
#[derive(Debug, Clone)]
pub struct JsonConfig {
    file: PathBuf,
    text: String,
    map: Map<String, Value>,
}

impl JsonConfig {
    /// Read and parse `path`; it must hold a JSON object.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, JsonConfigError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| JsonConfigError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &bytes)
    }

    /// Parse `bytes` as the content of `file`.
    pub fn parse(file: impl AsRef<Path>, bytes: &[u8]) -> Result<Self, JsonConfigError> {
        let file = file.as_ref().to_path_buf();
        let value: Value = serde_json::from_slice(bytes).map_err(|e| JsonConfigError::NotJson {
            file: file.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let map = match value {
            Value::Object(map) => map,
            other => {
                return Err(JsonConfigError::NotObject {
                    file,
                    found: kind(&other),
                });
            }
        };
        Ok(JsonConfig {
            file,
            text: String::from_utf8_lossy(bytes).into_owned(),
            map,
        })
    }

    /// The file it came from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The top-level object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// A top-level field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// The whole object as `T`; a failure names the field (from serde's message or the error position).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, JsonConfigError> {
        serde_json::from_str(&self.text).map_err(|e| {
            let message = e.to_string();
            let field = missing_field(&message)
                .unwrap_or_else(|| field_before(&self.text, e.line(), e.column()));
            JsonConfigError::Field {
                file: self.file.clone(),
                field,
                message,
            }
        })
    }

    /// A top-level field as `T` (`None` when absent or `null`).
    pub fn field<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, JsonConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                serde_json::from_value(v.clone())
                    .map(Some)
                    .map_err(|e| JsonConfigError::Field {
                        file: self.file.clone(),
                        field: key.to_string(),
                        message: e.to_string(),
                    })
            }
        }
    }

    /// A required top-level field as `T`.
    pub fn require<T: DeserializeOwned>(&self, key: &str) -> Result<T, JsonConfigError> {
        self.field(key)?.ok_or_else(|| JsonConfigError::Field {
            file: self.file.clone(),
            field: key.to_string(),
            message: "missing".into(),
        })
    }

    /// A [`JsonConfigError::Inconsistent`] for this file (for model configs' consistency checks).
    pub fn inconsistent(&self, field: &str, message: impl Into<String>) -> JsonConfigError {
        inconsistent(&self.file, field, message)
    }

    /// `Ok(())` when `ok`, else [`JsonConfigError::Inconsistent`] naming this file and `field`.
    pub fn ensure(
        &self,
        ok: bool,
        field: &str,
        message: impl FnOnce() -> String,
    ) -> Result<(), JsonConfigError> {
        if ok {
            Ok(())
        } else {
            Err(self.inconsistent(field, message()))
        }
    }
}

/// A [`JsonConfigError::Inconsistent`] naming `file` and `field`.
pub fn inconsistent(file: &Path, field: &str, message: impl Into<String>) -> JsonConfigError {
    JsonConfigError::Inconsistent {
        file: file.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// The last `"name":` before (line, column) — the field serde was reading when it failed.
fn field_before(text: &str, line: usize, column: usize) -> String {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            offset += column.min(l.len());
            break;
        }
        offset += l.len();
    }
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let Ok(re) = regex::Regex::new(r#""((?:[^"\\]|\\.)*)"\s*:"#) else {
        return "?".into();
    };
    re.captures_iter(before)
        .last()
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Small {
        hidden_size: usize,
        num_heads: usize,
    }

    #[test]
    fn typed_access_and_errors() {
        let ok = JsonConfig::parse(
            "c.json",
            br#"{"hidden_size": 8, "num_heads": 2, "name": "x"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.require::<usize>("hidden_size").ok(), Some(8));
        assert_eq!(ok.field::<usize>("absent").ok(), Some(None));
        assert!(ok.deserialize::<Small>().is_ok());
        let e = ok.field::<usize>("name").unwrap_err().to_string();
        assert!(e.contains("c.json") && e.contains("`name`"), "{e}");

        let bad_type = JsonConfig::parse(
            "c.json",
            b"{\n \"hidden_size\": 8,\n \"num_heads\": \"two\"\n}",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = bad_type.deserialize::<Small>().unwrap_err().to_string();
        assert!(e.contains("`num_heads`"), "{e}");
        let missing =
            JsonConfig::parse("c.json", br#"{"hidden_size": 8}"#).unwrap_or_else(|e| panic!("{e}"));
        let e = missing.deserialize::<Small>().unwrap_err().to_string();
        assert!(e.contains("`num_heads`"), "{e}");

        let e = JsonConfig::parse("c.json", b"{\"a\": 1,,}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.json is not valid JSON (line 1"), "{e}");
        let e = JsonConfig::parse("c.json", b"[1, 2]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must hold a JSON object, found an array"), "{e}");
        let e = ok
            .ensure(8 % 3 == 0, "num_heads", || "3 does not divide 8".into())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.json: field `num_heads` is inconsistent: 3 does not divide 8"),
            "{e}"
        );
    }
}
