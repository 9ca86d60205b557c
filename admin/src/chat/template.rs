//! An index's chat `documentTemplate` rendered for one hit as Meilisearch 1.50 renders it for
//! chat completions (milli `prompt`): liquid with its standard library, the globals `doc` (the
//! document) and `fields` (`name`, `value`, `is_searchable` of each top-level field, in the
//! document's field order). The chat render is not cut at `documentTemplateMaxBytes`:
//! Meilisearch's `render_document` only uses it as a capacity hint.

use liquid::model::Value as LiquidValue;
use serde_json::{Map, Value};

/// Meilisearch's default chat document template (milli `default_template_text`).
pub const DEFAULT_TEMPLATE: &str = "{% for field in fields %}\
    {% if field.is_searchable and field.value != nil %}\
    {{ field.name }}: {{ field.value }}\n\
    {% endif %}\
    {% endfor %}";

/// A parsed template and the searchable attributes its `is_searchable` reads.
pub struct Template {
    template: liquid::Template,
    searchable: Vec<String>,
}

impl Template {
    /// `searchable` is the index's `searchableAttributes` setting (`["*"]` = every field).
    pub fn new(text: &str, searchable: Vec<String>) -> Result<Template, String> {
        let parser = liquid::ParserBuilder::with_stdlib()
            .build()
            .map_err(|e| e.to_string())?;
        let template = parser
            .parse(text)
            .map_err(|e| format!("template cannot be parsed: {e}"))?;
        Ok(Template {
            template,
            searchable,
        })
    }

    /// Renders one document; the error names the document as Meilisearch's does.
    pub fn render(
        &self,
        doc: &Map<String, Value>,
        external_id: Option<&str>,
    ) -> Result<String, String> {
        let doc_value = to_liquid(&Value::Object(doc.clone()));
        let fields: Vec<LiquidValue> = doc
            .iter()
            .map(|(name, value)| {
                let mut o = liquid::Object::new();
                o.insert("name".into(), LiquidValue::scalar(name.clone()));
                o.insert("value".into(), to_liquid(value));
                o.insert(
                    "is_searchable".into(),
                    LiquidValue::scalar(self.is_searchable(name)),
                );
                LiquidValue::Object(o)
            })
            .collect();
        let mut globals = liquid::Object::new();
        globals.insert("doc".into(), doc_value);
        globals.insert("fields".into(), LiquidValue::Array(fields));
        self.template
            .render(&globals)
            .map_err(|e| match external_id {
                Some(id) => format!("in `{id}`: {e}"),
                None => e.to_string(),
            })
    }

    /// Milli's `PatternMatch::Match` of a top-level field against the searchable patterns: a
    /// parent of a listed nested attribute is not searchable itself.
    fn is_searchable(&self, name: &str) -> bool {
        self.searchable.iter().any(|p| {
            p == "*"
                || p == name
                || name
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    }
}

fn to_liquid(v: &Value) -> LiquidValue {
    match v {
        Value::Null => LiquidValue::Nil,
        Value::Bool(b) => LiquidValue::scalar(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => LiquidValue::scalar(i),
            (None, Some(f)) => LiquidValue::scalar(f),
            (None, None) => LiquidValue::scalar(n.to_string()),
        },
        Value::String(s) => LiquidValue::scalar(s.clone()),
        Value::Array(a) => LiquidValue::Array(a.iter().map(to_liquid).collect()),
        Value::Object(m) => LiquidValue::Object(
            m.iter()
                .map(|(k, v)| (k.clone().into(), to_liquid(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn default_template_renders_as_meilisearch() {
        // Captured from Meilisearch 1.50 (its tool message for this document).
        let t = Template::new(DEFAULT_TEMPLATE, vec!["*".into()]).unwrap();
        let d = doc(json!({"id": 1, "title": "Star Wars", "genre": "scifi", "year": 1977}));
        assert_eq!(
            t.render(&d, Some("1")).unwrap(),
            "id: 1\ntitle: Star Wars\ngenre: scifi\nyear: 1977\n"
        );
    }

    #[test]
    fn searchable_attributes_and_nil_values_are_skipped() {
        let t = Template::new(DEFAULT_TEMPLATE, vec!["title".into(), "meta.a".into()]).unwrap();
        let d = doc(json!({"id": 1, "title": null, "meta": {"a": 1}, "genre": "x"}));
        assert_eq!(t.render(&d, None).unwrap(), "");
        let d = doc(json!({"id": 2, "title": "T"}));
        assert_eq!(t.render(&d, None).unwrap(), "title: T\n");
    }

    #[test]
    fn doc_fields_and_errors() {
        let t = Template::new("{{ doc.title }} ({{ doc.year }})", vec!["*".into()]).unwrap();
        let d = doc(json!({"title": "Amelie", "year": 2001}));
        assert_eq!(t.render(&d, None).unwrap(), "Amelie (2001)");
        assert!(Template::new("{{ doc.title", vec![]).is_err());
        let strict = Template::new("{{ doc.missing.deeper }}", vec![]).unwrap();
        assert!(strict
            .render(&d, Some("7"))
            .unwrap_err()
            .starts_with("in `7`"));
    }
}
