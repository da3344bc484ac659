//! `cargo xtask public-api [--check]`: the `clvp` facade's public surface as text, compared with the committed
//! `crates/clvp/public-api.txt` — what the facade promises under semver, so that a change of it is deliberate
//! (issue 29). The listing comes from rustdoc's JSON output (`RUSTC_BOOTSTRAP=1`, as `cargo public-api` and
//! `cargo semver-checks` get it, without installing either): every public module, type, field, variant,
//! inherent method with its signature, trait impl, constant and re-export, one per line, sorted. Re-exports of
//! other crates (`clvp::raw::*`) are listed as re-exports only: the inner crates are outside the promise.

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::repo_root;

/// The committed snapshot.
const SNAPSHOT: &str = "crates/clvp/public-api.txt";

pub fn run(check: bool) -> Result<()> {
    let root = repo_root();
    let status = Command::new("cargo")
        .args(["rustdoc", "-p", "clvp", "--lib", "--"])
        .args(["-Z", "unstable-options", "--output-format", "json"])
        .env("RUSTC_BOOTSTRAP", "1")
        .current_dir(&root)
        .status()
        .context("cargo rustdoc")?;
    if !status.success() {
        bail!("cargo rustdoc --output-format json failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let json = std::fs::read(target.join("doc/clvp.json")).context("reading clvp.json")?;
    let doc: Value = serde_json::from_slice(&json)?;
    let text = listing(&doc)?;
    let path = root.join(SNAPSHOT);
    if check {
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old != text {
            let old: BTreeSet<&str> = old.lines().collect();
            let new: BTreeSet<&str> = text.lines().collect();
            for l in old.difference(&new) {
                println!("- {l}");
            }
            for l in new.difference(&old) {
                println!("+ {l}");
            }
            bail!(
                "the facade's public API differs from {SNAPSHOT} (above); if the change is deliberate, run \
                 `cargo xtask public-api` and commit the file"
            );
        }
        println!("public API unchanged ({} lines)", text.lines().count());
    } else {
        std::fs::write(&path, &text)?;
        println!("wrote {SNAPSHOT} ({} lines)", text.lines().count());
    }
    Ok(())
}

/// The sorted listing of the crate's public items.
fn listing(doc: &Value) -> Result<String> {
    let index = &doc["index"];
    let root = doc["root"].to_string();
    let mut lines = BTreeSet::new();
    walk(index, &root, "clvp", &mut lines);
    if lines.is_empty() {
        bail!("no public items found: has rustdoc's JSON format changed?");
    }
    let mut out = String::new();
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    Ok(out)
}

fn item<'a>(index: &'a Value, id: &Value) -> &'a Value {
    &index[id.to_string().trim_matches('"')]
}

fn public(it: &Value) -> bool {
    it["visibility"] == "public"
}

fn walk(index: &Value, id: &str, path: &str, out: &mut BTreeSet<String>) {
    let module = &index[id]["inner"]["module"];
    for child in module["items"].as_array().into_iter().flatten() {
        let it = item(index, child);
        if !public(it) {
            continue;
        }
        let name = it["name"].as_str().unwrap_or("_");
        let inner = &it["inner"];
        let here = format!("{path}::{name}");
        if let Some(u) = inner.get("use") {
            let alias = u["name"].as_str().unwrap_or("_");
            let glob = if u["is_glob"] == true { "::*" } else { "" };
            out.insert(format!(
                "pub use {path}::{alias}{glob} = {}",
                u["source"].as_str().unwrap_or("_")
            ));
        } else if inner.get("module").is_some() {
            out.insert(format!("pub mod {here}"));
            walk(index, child.to_string().trim_matches('"'), &here, out);
        } else if let Some(s) = inner.get("struct") {
            out.insert(format!("pub struct {here}{}", generics(&s["generics"])));
            if let Some(fields) = s["kind"]["plain"]["fields"].as_array() {
                for f in fields {
                    let f = item(index, f);
                    if public(f) {
                        out.insert(format!(
                            "pub field {here}.{}: {}",
                            f["name"].as_str().unwrap_or("_"),
                            ty(&f["inner"]["struct_field"])
                        ));
                    }
                }
            }
            impls(index, &s["impls"], &here, out);
        } else if let Some(e) = inner.get("enum") {
            out.insert(format!("pub enum {here}{}", generics(&e["generics"])));
            for v in e["variants"].as_array().into_iter().flatten() {
                let v = item(index, v);
                out.insert(format!(
                    "pub variant {here}::{}{}",
                    v["name"].as_str().unwrap_or("_"),
                    variant(index, &v["inner"]["variant"]["kind"])
                ));
            }
            impls(index, &e["impls"], &here, out);
        } else if let Some(f) = inner.get("function") {
            out.insert(format!("pub fn {here}{}", signature(f)));
        } else if let Some(c) = inner.get("constant") {
            out.insert(format!("pub const {here}: {}", ty(&c["type"])));
        } else if let Some(t) = inner.get("type_alias") {
            out.insert(format!("pub type {here} = {}", ty(&t["type"])));
        } else if let Some(k) = inner.as_object().and_then(|o| o.keys().next()) {
            out.insert(format!("pub {k} {here}"));
        }
    }
}

/// Inherent methods and the trait impls written in this crate (not auto or blanket ones).
fn impls(index: &Value, ids: &Value, here: &str, out: &mut BTreeSet<String>) {
    for id in ids.as_array().into_iter().flatten() {
        let imp = &item(index, id)["inner"]["impl"];
        if imp["is_synthetic"] == true || !imp["blanket_impl"].is_null() {
            continue;
        }
        if let Some(tr) = imp["trait"].as_object() {
            let name = tr.get("path").and_then(Value::as_str).unwrap_or("_");
            out.insert(format!("impl {name}{} for {here}", args(&tr["args"])));
            continue;
        }
        for m in imp["items"].as_array().into_iter().flatten() {
            let m = item(index, m);
            if !public(m) {
                continue;
            }
            let name = m["name"].as_str().unwrap_or("_");
            if let Some(f) = m["inner"].get("function") {
                out.insert(format!("pub fn {here}::{name}{}", signature(f)));
            } else if let Some(c) = m["inner"].get("assoc_const") {
                out.insert(format!("pub const {here}::{name}: {}", ty(&c["type"])));
            }
        }
    }
}

fn variant(index: &Value, kind: &Value) -> String {
    if let Some(fields) = kind["tuple"].as_array() {
        let tys: Vec<String> = fields
            .iter()
            .map(|f| {
                if f.is_null() {
                    "_".into()
                } else {
                    ty(&item(index, f)["inner"]["struct_field"])
                }
            })
            .collect();
        return format!("({})", tys.join(", "));
    }
    if let Some(fields) = kind["struct"]["fields"].as_array() {
        let fs: Vec<String> = fields
            .iter()
            .map(|f| {
                let f = item(index, f);
                format!(
                    "{}: {}",
                    f["name"].as_str().unwrap_or("_"),
                    ty(&f["inner"]["struct_field"])
                )
            })
            .collect();
        return format!(" {{ {} }}", fs.join(", "));
    }
    String::new()
}

fn generics(g: &Value) -> String {
    let params: Vec<String> = g["params"]
        .as_array()
        .into_iter()
        .flatten()
        // `impl Trait` arguments are synthetic parameters: the argument's type shows them.
        .filter(|p| p["kind"]["type"]["is_synthetic"] != true)
        .map(|p| {
            let name = p["name"].as_str().unwrap_or("_").to_string();
            match p["kind"]["type"]["bounds"].as_array() {
                Some(b) if !b.is_empty() => format!("{name}: {}", bounds(b)),
                _ => name,
            }
        })
        .collect();
    if params.is_empty() {
        String::new()
    } else {
        format!("<{}>", params.join(", "))
    }
}

fn bounds(b: &[Value]) -> String {
    b.iter()
        .map(|b| {
            let t = &b["trait_bound"]["trait"];
            if t.is_object() {
                format!("{}{}", t["path"].as_str().unwrap_or("_"), args(&t["args"]))
            } else if let Some(l) = b["outlives"].as_str() {
                l.to_string()
            } else {
                "_".into()
            }
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

fn signature(f: &Value) -> String {
    let sig = &f["sig"];
    let inputs: Vec<String> = sig["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let name = p[0].as_str().unwrap_or("_");
            let t = ty(&p[1]);
            if name == "self" {
                match t.as_str() {
                    "Self" => "self".into(),
                    "&Self" => "&self".into(),
                    "&mut Self" => "&mut self".into(),
                    _ => format!("self: {t}"),
                }
            } else {
                format!("{name}: {t}")
            }
        })
        .collect();
    let output = if sig["output"].is_null() {
        String::new()
    } else {
        format!(" -> {}", ty(&sig["output"]))
    };
    format!(
        "{}({}){output}",
        generics(&f["generics"]),
        inputs.join(", ")
    )
}

fn args(a: &Value) -> String {
    let Some(list) = a["angle_bracketed"]["args"].as_array() else {
        if let Some(inputs) = a["parenthesized"]["inputs"].as_array() {
            let i: Vec<String> = inputs.iter().map(ty).collect();
            let o = &a["parenthesized"]["output"];
            let o = if o.is_null() {
                String::new()
            } else {
                format!(" -> {}", ty(o))
            };
            return format!("({}){o}", i.join(", "));
        }
        return String::new();
    };
    let mut parts: Vec<String> = list
        .iter()
        .map(|g| {
            if let Some(l) = g["lifetime"].as_str() {
                l.to_string()
            } else if g["type"].is_object() {
                ty(&g["type"])
            } else {
                "_".into()
            }
        })
        .collect();
    for c in a["angle_bracketed"]["constraints"]
        .as_array()
        .into_iter()
        .flatten()
    {
        parts.push(format!(
            "{} = {}",
            c["name"].as_str().unwrap_or("_"),
            ty(&c["binding"]["equality"]["type"])
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("<{}>", parts.join(", "))
    }
}

fn ty(t: &Value) -> String {
    if let Some(p) = t.get("resolved_path") {
        return format!("{}{}", p["path"].as_str().unwrap_or("_"), args(&p["args"]));
    }
    if let Some(p) = t.get("primitive").and_then(Value::as_str) {
        return p.to_string();
    }
    if let Some(g) = t.get("generic").and_then(Value::as_str) {
        return g.to_string();
    }
    if let Some(r) = t.get("borrowed_ref") {
        let l = r["lifetime"]
            .as_str()
            .map(|l| format!("{l} "))
            .unwrap_or_default();
        let m = if r["is_mutable"] == true { "mut " } else { "" };
        return format!("&{l}{m}{}", ty(&r["type"]));
    }
    if let Some(s) = t.get("slice") {
        return format!("[{}]", ty(s));
    }
    if let Some(a) = t.get("array") {
        return format!("[{}; {}]", ty(&a["type"]), a["len"].as_str().unwrap_or("_"));
    }
    if let Some(items) = t.get("tuple").and_then(Value::as_array) {
        let i: Vec<String> = items.iter().map(ty).collect();
        return format!("({})", i.join(", "));
    }
    if let Some(b) = t.get("impl_trait").and_then(Value::as_array) {
        return format!("impl {}", bounds(b));
    }
    if let Some(d) = t.get("dyn_trait") {
        let traits: Vec<String> = d["traits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let t = &p["trait"];
                format!("{}{}", t["path"].as_str().unwrap_or("_"), args(&t["args"]))
            })
            .collect();
        let l = d["lifetime"]
            .as_str()
            .map(|l| format!(" + {l}"))
            .unwrap_or_default();
        return format!("dyn {}{l}", traits.join(" + "));
    }
    if let Some(q) = t.get("qualified_path") {
        return format!(
            "<{}>::{}",
            ty(&q["self_type"]),
            q["name"].as_str().unwrap_or("_")
        );
    }
    "_".into()
}
