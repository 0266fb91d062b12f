//! Data on stdout as JSON, YAML or a table. Tables are for people: one row
//! per item, a few columns; JSON and YAML print the document as the node
//! answered it (lists as `{"items": [...]}`).

use std::io::{self, Write};

use clap::ValueEnum;
use serde_json::Value;

/// The `-o/--output` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    Table,
}

/// Prints `value` on stdout in `format`; `table` renders it as a table.
pub fn print(
    format: Format,
    value: &Value,
    table: impl FnOnce(&Value) -> Table,
) -> anyhow::Result<()> {
    write_stdout(&render(format, value, table)?)
}

/// The text [`print`] writes.
fn render(
    format: Format,
    value: &Value,
    table: impl FnOnce(&Value) -> Table,
) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(value)?;
            s.push('\n');
            s
        }
        Format::Yaml => serde_norway::to_string(value)?,
        Format::Table => table(value).render(),
    })
}

/// Writes to stdout; a closed pipe (`oprc ... | head`) is not an error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Rows under upper-case headers, columns padded to their widest cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len(), "one cell per column");
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 3));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The `items` of a listing (or the value itself when it is an array).
pub fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        _ => v
            .get("items")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice),
    }
}

/// A cell: strings as they are, arrays joined with `,`, missing as `-`.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if s.is_empty() => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.is_empty() => "-".into(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| cell(Some(x)))
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Object(m)) if m.is_empty() => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// Compact JSON cut to `max` characters.
fn short_json(v: Option<&Value>, max: usize) -> String {
    let Some(v) = v else { return "-".into() };
    let s = v.to_string();
    if s.chars().count() <= max {
        s
    } else {
        let mut cut: String = s.chars().take(max.saturating_sub(3)).collect();
        cut.push_str("...");
        cut
    }
}

/// Keys of a JSON object, joined with `,`.
fn keys(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m.keys().cloned().collect::<Vec<_>>().join(","),
        _ => "-".into(),
    }
}

/// Objects (`{_meta: {id, cls, revision}, data}`): one per row.
pub fn objects(v: &Value) -> Table {
    let mut t = Table::new(&["ID", "CLASS", "REVISION", "DATA"]);
    let one = [v.clone()];
    let list = if v.get("_meta").is_some() {
        &one[..]
    } else {
        items(v)
    };
    for o in list {
        let meta = o.get("_meta");
        t.row(vec![
            cell(meta.and_then(|m| m.get("id"))),
            cell(meta.and_then(|m| m.get("cls"))),
            cell(meta.and_then(|m| m.get("revision"))),
            short_json(o.get("data"), 60),
        ]);
    }
    t
}

/// Resolved classes: key, declared parents, bindings.
pub fn classes(v: &Value) -> Table {
    let mut t = Table::new(&["KEY", "PARENTS", "FUNCTIONS"]);
    let one = [v.clone()];
    let list = if v.get("key").is_some() {
        &one[..]
    } else {
        items(v)
    };
    for c in list {
        t.row(vec![
            cell(c.get("key")),
            cell(c.get("parents")),
            keys(c.get("bindings")),
        ]);
    }
    t
}

/// Resolved functions: key, type, output class.
pub fn functions(v: &Value) -> Table {
    let mut t = Table::new(&[
        "KEY",
        "TYPE",
        "OUTPUT_CLS",
        "IMMUTABLE",
        "ENGINE",
        "INSTANCES",
        "IN_FLIGHT",
    ]);
    let one = [v.clone()];
    let list = if v.get("key").is_some() {
        &one[..]
    } else {
        items(v)
    };
    for f in list {
        t.row(vec![
            cell(f.get("key")),
            cell(f.get("type")),
            cell(f.get("outputCls")),
            cell(f.get("immutable")),
            cell(f.pointer("/deployment/engine/kind")),
            f.pointer("/deployment/instances")
                .and_then(Value::as_array)
                .map_or_else(String::new, |i| i.len().to_string()),
            cell(f.pointer("/deployment/counters/inFlight")),
        ]);
    }
    t
}

/// Resolved packages: name, class and function names.
pub fn packages(v: &Value) -> Table {
    let mut t = Table::new(&["NAME", "CLASSES", "FUNCTIONS"]);
    let one = [v.clone()];
    let list = if v.get("name").is_some() {
        &one[..]
    } else {
        items(v)
    };
    let names = |x: Option<&Value>| {
        let names: Vec<Value> = x
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|e| e.get("name").cloned()).collect())
            .unwrap_or_default();
        cell(Some(&Value::Array(names)))
    };
    for p in list {
        t.row(vec![
            cell(p.get("name")),
            names(p.get("classes")),
            names(p.get("functions")),
        ]);
    }
    t
}

/// An invocation answer: id, status, error, and the output object's id.
pub fn invocation(v: &Value) -> Table {
    let mut t = Table::new(&["INVOCATION", "STATUS", "OUTPUT", "ERROR"]);
    let error = v
        .get("error")
        .map(|e| format!("{} ({})", cell(e.get("message")), cell(e.get("code"))));
    t.row(vec![
        cell(v.get("invId")),
        cell(v.get("status")),
        cell(
            v.get("output")
                .and_then(|o| o.get("_meta"))
                .and_then(|m| m.get("id")),
        ),
        error.unwrap_or_else(|| "-".into()),
    ]);
    // A macro: one row per step, indented under it.
    for step in v
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let error = step
            .get("error")
            .map(|e| format!("{} ({})", cell(e.get("message")), cell(e.get("code"))));
        t.row(vec![
            format!("  {}", cell(step.get("name"))),
            cell(step.get("status")),
            cell(step.get("output")),
            error.unwrap_or_else(|| "-".into()),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(table: Table, expected: &str) {
        assert_eq!(table.render(), expected);
    }

    #[test]
    fn objects_render_one_row_each() {
        let list = json!({"items": [
            {"_meta": {"id": "o1", "cls": "ex.rec", "revision": 3}, "data": {"n": 1}},
            {"_meta": {"id": "object-2", "cls": "ex.rec", "revision": 12}, "data": {}},
        ], "next": "object-2"});
        check(
            objects(&list),
            "\
ID         CLASS    REVISION   DATA
o1         ex.rec   3          {\"n\":1}
object-2   ex.rec   12         {}
",
        );
    }

    #[test]
    fn a_single_object_is_one_row_and_long_data_is_cut() {
        let long = "x".repeat(100);
        let obj = json!({"_meta": {"id": "o1", "cls": "c", "revision": 0}, "data": {"s": long}});
        let text = objects(&obj).render();
        let row = text.lines().nth(1).unwrap();
        assert!(
            row.starts_with("o1   c       0          {\"s\":\"xxx"),
            "{row}"
        );
        assert!(row.ends_with("..."), "{row}");
        assert_eq!(row.split_whitespace().last().unwrap().chars().count(), 60);
    }

    #[test]
    fn classes_show_parents_and_bindings() {
        let list = json!({"items": [
            {"key": "builtin.base", "parents": [], "bindings": {"get": {}, "new": {}}},
            {"key": "media.video", "parents": ["media.file", "ex.tag"], "bindings": {"transcode": {}}},
        ], "offset": 0, "total": 2});
        check(
            classes(&list),
            "\
KEY            PARENTS             FUNCTIONS
builtin.base   -                   get,new
media.video    media.file,ex.tag   transcode
",
        );
    }

    #[test]
    fn an_empty_list_is_just_the_header() {
        check(
            classes(&json!({"items": [], "offset": 0, "total": 0})),
            "KEY   PARENTS   FUNCTIONS\n",
        );
    }

    #[test]
    fn packages_list_class_and_function_names() {
        let pkg = json!({"name": "t", "classes": [{"name": "c"}], "functions": []});
        check(
            packages(&pkg),
            "NAME   CLASSES   FUNCTIONS\nt      c         -\n",
        );
    }

    #[test]
    fn a_failed_invocation_shows_its_error() {
        let inv = json!({"invId": "i1", "status": "FAILED",
                         "error": {"code": "function_failed", "message": "boom"}});
        check(
            invocation(&inv),
            "INVOCATION   STATUS   OUTPUT   ERROR\ni1           FAILED   -        boom (function_failed)\n",
        );
    }

    #[test]
    fn a_macro_shows_its_steps_under_it() {
        let inv = json!({"invId": "m", "status": "FAILED",
        "error": {"code": "step_failed", "message": "step `b` failed"},
        "steps": [
            {"name": "a", "status": "SUCCEEDED", "invId": "m.a", "output": "m.a"},
            {"name": "b", "status": "FAILED", "invId": "m.b",
             "error": {"code": "function_failed", "message": "no"}},
            {"name": "c", "status": "DEPENDENCY_FAILED", "invId": "m.c"},
        ]});
        check(
            invocation(&inv),
            "\
INVOCATION   STATUS              OUTPUT   ERROR
m            FAILED              -        step `b` failed (step_failed)
  a          SUCCEEDED           m.a      -
  b          FAILED              -        no (function_failed)
  c          DEPENDENCY_FAILED   -        -
",
        );
    }

    #[test]
    fn yaml_and_json_print_the_document() {
        let v = json!({"b": 1, "a": [true]});
        let r = |f| render(f, &v, |_| unreachable!("not a table")).unwrap();
        assert_eq!(r(Format::Yaml), "b: 1\na:\n- true\n");
        assert_eq!(
            r(Format::Json),
            "{\n  \"b\": 1,\n  \"a\": [\n    true\n  ]\n}\n"
        );
    }
}
