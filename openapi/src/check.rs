//! Checks a JSON value against a schema of the document: [`validate`] for the JSON Schema
//! subset the document uses, [`same_fields`] for the drift test (the value and the schema name
//! exactly the same object fields, at every depth).
//!
//! The validator refuses every keyword it does not implement, so a schema that grows a new
//! keyword fails loudly here instead of being skipped.

use serde_json::{Map, Value};

/// The keywords [`validate`] implements; anything else in a schema is an error.
const KEYWORDS: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "minimum",
    "maxLength",
    "pattern",
    "description",
    "oneOf",
];

/// Resolves `#/components/schemas/NAME` references.
pub fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> Result<&'a Value, String> {
    let mut schema = schema;
    for _ in 0..16 {
        let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
            return Ok(schema);
        };
        let pointer = r
            .strip_prefix('#')
            .ok_or_else(|| format!("external reference {r}"))?;
        schema = doc
            .pointer(pointer)
            .ok_or_else(|| format!("dangling reference {r}"))?;
    }
    Err("reference loop".into())
}

/// The named component schema.
pub fn component<'a>(doc: &'a Value, name: &str) -> Result<&'a Value, String> {
    doc.pointer(&format!("/components/schemas/{name}"))
        .ok_or_else(|| format!("no schema {name}"))
}

fn type_matches(t: &str, value: &Value) -> bool {
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// Every way `value` violates `schema` (empty: valid), each prefixed by its JSON pointer.
pub fn validate(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = vec![];
    validate_at(doc, schema, value, "", &mut errors);
    errors
}

fn validate_at(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = match resolve(doc, schema) {
        Ok(s) => s,
        Err(e) => return errors.push(format!("{at}: {e}")),
    };
    let Some(keywords) = schema.as_object() else {
        return errors.push(format!("{at}: the schema is not an object"));
    };
    for k in keywords.keys() {
        if !KEYWORDS.contains(&k.as_str()) {
            errors.push(format!("{at}: unsupported schema keyword {k}"));
        }
    }
    if let Some(Value::Array(alternatives)) = keywords.get("oneOf") {
        let matching = alternatives
            .iter()
            .filter(|s| validate(doc, s, value).is_empty())
            .count();
        if matching != 1 {
            errors.push(format!(
                "{at}: {value} matches {matching} of the {} `oneOf` schemas, not exactly one",
                alternatives.len()
            ));
        }
    }
    if let Some(t) = keywords.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.iter().any(|t| type_matches(t, value)) {
            errors.push(format!("{at}: {value} is not of type {t}"));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = keywords.get("enum")
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(c) = keywords.get("const")
        && c != value
    {
        errors.push(format!("{at}: {value} is not {c}"));
    }
    if let (Some(min), Some(n)) = (
        keywords.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && n < min
    {
        errors.push(format!("{at}: {n} < {min}"));
    }
    if let (Some(max), Some(s)) = (
        keywords.get("maxLength").and_then(Value::as_u64),
        value.as_str(),
    ) && s.chars().count() as u64 > max
    {
        errors.push(format!("{at}: longer than {max} characters"));
    }
    if let (Some(p), Some(s)) = (
        keywords.get("pattern").and_then(Value::as_str),
        value.as_str(),
    ) {
        match regex_lite::Regex::new(p) {
            Ok(re) if re.is_match(s) => {}
            Ok(_) => errors.push(format!("{at}: {s:?} does not match {p}")),
            Err(e) => errors.push(format!("{at}: bad pattern {p}: {e}")),
        }
    }
    if let Value::Array(items) = value {
        if let Some(min) = keywords.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            errors.push(format!("{at}: fewer than {min} items"));
        }
        if let Some(item) = keywords.get("items") {
            for (i, v) in items.iter().enumerate() {
                validate_at(doc, item, v, &format!("{at}/{i}"), errors);
            }
        }
    }
    if let Value::Object(fields) = value {
        let empty = Map::new();
        let properties = keywords
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for name in keywords
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !fields.contains_key(name) {
                errors.push(format!("{at}: required field {name} is missing"));
            }
        }
        let closed = keywords.get("additionalProperties") == Some(&Value::Bool(false));
        for (name, v) in fields {
            match properties.get(name) {
                Some(s) => validate_at(doc, s, v, &format!("{at}/{name}"), errors),
                None if closed => errors.push(format!("{at}: undocumented field {name}")),
                None => {}
            }
        }
    }
}

/// Whether `value` (a fully populated sample: every optional field present) and `schema` name
/// exactly the same object fields, at every depth. Returns the differences.
pub fn same_fields(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = vec![];
    same_fields_at(doc, schema, value, "", &mut errors);
    errors
}

fn same_fields_at(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = match resolve(doc, schema) {
        Ok(s) => s,
        Err(e) => return errors.push(format!("{at}: {e}")),
    };
    match value {
        Value::Object(fields) => {
            let empty = Map::new();
            let properties = schema
                .get("properties")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            for name in fields.keys() {
                if !properties.contains_key(name) {
                    errors.push(format!("{at}/{name}: in the type, not in the document"));
                }
            }
            for (name, s) in properties {
                match fields.get(name) {
                    Some(v) => same_fields_at(doc, s, v, &format!("{at}/{name}"), errors),
                    None => errors.push(format!("{at}/{name}: in the document, not in the type")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    same_fields_at(doc, item, v, &format!("{at}/{i}"), errors);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_validator_reports_each_kind_of_violation() {
        let doc = json!({ "components": { "schemas": { "S": {
            "type": "object",
            "required": ["a"],
            "additionalProperties": false,
            "properties": {
                "a": { "type": ["integer", "null"], "minimum": 1 },
                "b": { "type": "string", "enum": ["x"] },
                "c": { "type": "array", "minItems": 1, "items": { "type": "string", "pattern": "^[0-9]+$" } },
            },
        }}}});
        let s = json!({ "$ref": "#/components/schemas/S" });
        assert!(validate(&doc, &s, &json!({ "a": 1, "b": "x", "c": ["12"] })).is_empty());
        assert!(validate(&doc, &s, &json!({ "a": null })).is_empty());
        let errors = validate(&doc, &s, &json!({ "b": "y", "c": ["1a"], "d": 1 }));
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert_eq!(validate(&doc, &s, &json!({ "a": 0, "c": [] })).len(), 2);
        assert_eq!(validate(&doc, &s, &json!({ "a": 1.5 })).len(), 1);
        let short = json!({ "type": "string", "maxLength": 3 });
        assert!(validate(&doc, &short, &json!("abé")).is_empty());
        assert_eq!(validate(&doc, &short, &json!("abcd")).len(), 1);
        let one = json!({ "oneOf": [
            { "type": "object", "required": ["a"] },
            { "type": "object", "required": ["b"] },
        ]});
        assert!(validate(&doc, &one, &json!({ "a": 1 })).is_empty());
        assert_eq!(validate(&doc, &one, &json!({})).len(), 1, "none");
        assert_eq!(
            validate(&doc, &one, &json!({ "a": 1, "b": 2 })).len(),
            1,
            "both"
        );
        let bad = json!({ "type": "string", "format": "uuid" });
        assert_eq!(
            validate(&doc, &bad, &json!("x")).len(),
            1,
            "unknown keyword"
        );
    }

    #[test]
    fn same_fields_names_both_sides() {
        let doc = json!({});
        let s = json!({ "type": "object", "properties": {
            "a": { "type": "object", "properties": { "x": {}, "y": {} } },
            "b": {},
        }});
        assert!(same_fields(&doc, &s, &json!({ "a": { "x": 1, "y": 2 }, "b": 3 })).is_empty());
        assert_eq!(
            same_fields(&doc, &s, &json!({ "a": { "x": 1, "z": 2 }, "b": 3 })),
            [
                "/a/z: in the type, not in the document",
                "/a/y: in the document, not in the type"
            ]
        );
    }
}
