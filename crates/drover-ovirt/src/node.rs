//! The representation tree: every document the API reads or writes is a [`Node`], written as
//! oVirt's XML or JSON and read from either.

use std::borrow::Cow;
use std::fmt::Display;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesDecl, BytesEnd, BytesRef, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer, XmlVersion};
use serde_json::{Map, Value as Json};

/// One element: its name, attributes (`id`, `href`, `rel`), text, and children.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// Element name.
    pub name: Cow<'static, str>,
    /// Attributes, in order.
    pub attrs: Vec<(Cow<'static, str>, String)>,
    /// Text content of a leaf.
    pub text: Option<String>,
    /// Child elements.
    pub children: Vec<Node>,
    /// Whether the children form a list (JSON arrays even of one member).
    pub list: bool,
}

impl Node {
    /// An empty element.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Node {
        Node {
            name: name.into(),
            ..Node::default()
        }
    }

    /// An element whose children are a list (`<vms>`, `<devices>`).
    pub fn list(name: impl Into<Cow<'static, str>>) -> Node {
        Node {
            list: true,
            ..Node::new(name)
        }
    }

    /// A leaf with text.
    pub fn leaf(name: impl Into<Cow<'static, str>>, text: impl Display) -> Node {
        Node {
            text: Some(text.to_string()),
            ..Node::new(name)
        }
    }

    /// Adds an attribute.
    pub fn attr(mut self, key: impl Into<Cow<'static, str>>, value: impl Display) -> Node {
        self.attrs.push((key.into(), value.to_string()));
        self
    }

    /// Adds a child.
    pub fn child(mut self, child: Node) -> Node {
        self.children.push(child);
        self
    }

    /// Adds a child when there is one.
    pub fn opt_child(mut self, child: Option<Node>) -> Node {
        self.children.extend(child);
        self
    }

    /// Adds a leaf child.
    pub fn text(self, name: impl Into<Cow<'static, str>>, text: impl Display) -> Node {
        self.child(Node::leaf(name, text))
    }

    /// Adds children.
    pub fn children(mut self, children: impl IntoIterator<Item = Node>) -> Node {
        self.children.extend(children);
        self
    }

    /// Appends a child in place.
    pub fn push(&mut self, child: Node) {
        self.children.push(child);
    }

    /// An attribute's value.
    pub fn get_attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first child of a name.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The node at a `/`-separated path of child names.
    pub fn at(&self, path: &str) -> Option<&Node> {
        path.split('/').try_fold(self, |n, part| n.get(part))
    }

    /// The text at a path, trimmed; `None` when absent or empty.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        self.at(path)
            .and_then(|n| n.text.as_deref())
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// The `id` of a reference at a path (the attribute, or an `<id>` child as JSON sends it).
    pub fn id_at(&self, path: &str) -> Option<&str> {
        let n = self.at(path)?;
        n.get_attr("id")
            .or_else(|| n.text_at("id"))
            .filter(|s| !s.is_empty())
    }

    /// Every child of a name.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Writes the document as XML.
    pub fn to_xml(&self) -> Vec<u8> {
        let mut w = Writer::new(Vec::with_capacity(1024));
        let _ = w.write_event(Event::Decl(BytesDecl::new(
            "1.0",
            Some("UTF-8"),
            Some("yes"),
        )));
        self.write_xml(&mut w);
        let mut out = w.into_inner();
        out.push(b'\n');
        out
    }

    fn write_xml(&self, w: &mut Writer<Vec<u8>>) {
        let mut start = BytesStart::new(self.name.as_ref());
        for (k, v) in &self.attrs {
            start.push_attribute((k.as_ref(), v.as_str()));
        }
        if self.children.is_empty() && self.text.is_none() {
            let _ = w.write_event(Event::Empty(start));
            return;
        }
        let _ = w.write_event(Event::Start(start));
        if let Some(t) = &self.text {
            let _ = w.write_event(Event::Text(BytesText::new(t)));
        }
        for c in &self.children {
            c.write_xml(w);
        }
        let _ = w.write_event(Event::End(BytesEnd::new(self.name.as_ref())));
    }

    /// The document as oVirt's JSON: attributes and children as members, leaves as strings,
    /// list members and links as arrays.
    pub fn to_json(&self) -> Json {
        if let Some(t) = &self.text {
            if self.children.is_empty() && self.attrs.is_empty() {
                return Json::String(t.clone());
            }
        }
        let mut map = Map::new();
        for (k, v) in &self.attrs {
            map.insert(k.to_string(), Json::String(v.clone()));
        }
        for c in &self.children {
            let value = c.to_json();
            let array = self.list || c.name == "link";
            match map.get_mut(c.name.as_ref()) {
                Some(Json::Array(items)) if array => items.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = match first {
                        Json::Array(mut items) => {
                            items.push(value);
                            Json::Array(items)
                        }
                        other => Json::Array(vec![other, value]),
                    };
                }
                None if array => {
                    map.insert(c.name.to_string(), Json::Array(vec![value]));
                }
                None => {
                    map.insert(c.name.to_string(), value);
                }
            }
        }
        Json::Object(map)
    }

    /// Reads an XML document.
    pub fn from_xml(data: &[u8]) -> Result<Node, String> {
        let mut reader = Reader::from_reader(data);
        let mut stack: Vec<Node> = Vec::new();
        let mut buf = Vec::new();
        loop {
            let event = reader
                .read_event_into(&mut buf)
                .map_err(|e| format!("malformed XML at {}: {e}", reader.error_position()))?;
            let text: Option<Cow<'_, str>> = match event {
                Event::Start(s) => {
                    stack.push(start_node(&s)?);
                    None
                }
                Event::Empty(s) => {
                    let node = start_node(&s)?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => return Ok(node),
                    }
                    None
                }
                Event::Text(t) => Some(t.xml10_content().into_owned().into()),
                Event::CData(t) => Some(t.xml10_content().into_owned().into()),
                Event::GeneralRef(r) => Some(resolve_reference(&r)?.into()),
                Event::End(_) => {
                    let mut node = stack.pop().ok_or("unbalanced XML")?;
                    if !node.children.is_empty()
                        && node.text.as_deref().is_some_and(|t| t.trim().is_empty())
                    {
                        node.text = None;
                    }
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => return Ok(node),
                    }
                    None
                }
                Event::Eof => return Err("the XML document ended early".into()),
                _ => None,
            };
            if let (Some(t), Some(n)) = (text, stack.last_mut()) {
                n.text.get_or_insert_with(String::new).push_str(&t);
            }
            buf.clear();
        }
    }

    /// Reads a JSON document whose root element is `root`.
    pub fn from_json(root: &str, data: &[u8]) -> Result<Node, String> {
        let json: Json =
            serde_json::from_slice(data).map_err(|e| format!("malformed JSON: {e}"))?;
        let mut node = json_node(root.to_string(), &json);
        if node.name.is_empty() {
            node.name = Cow::Owned(root.to_string());
        }
        Ok(node)
    }
}

/// Resolves `&name;` (the predefined entities) and `&#N;` / `&#xN;`.
fn resolve_reference(r: &BytesRef<'_>) -> Result<String, String> {
    if let Some(text) = resolve_predefined_entity(r) {
        return Ok(text.to_string());
    }
    match r.resolve_char_ref() {
        Ok(Some(c)) => Ok(c.to_string()),
        _ => Err(format!("undefined entity &{};", &**r)),
    }
}

fn start_node(s: &BytesStart<'_>) -> Result<Node, String> {
    let name = s.local_name().into_inner().to_string();
    let mut node = Node::new(name);
    for a in s.attributes() {
        let a = a.map_err(|e| format!("malformed XML attribute: {e}"))?;
        let key = a.key.local_name().into_inner().to_string();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| format!("malformed XML attribute: {e}"))?
            .into_owned();
        node.attrs.push((Cow::Owned(key), value));
    }
    Ok(node)
}

fn json_node(name: String, json: &Json) -> Node {
    let mut node = Node::new(name);
    match json {
        Json::Object(map) => {
            for (k, v) in map {
                match v {
                    Json::Array(items) => {
                        node.list = true;
                        node.children
                            .extend(items.iter().map(|i| json_node(k.clone(), i)));
                    }
                    Json::String(s) if k == "id" || k == "href" || k == "rel" => {
                        node.attrs.push((Cow::Owned(k.clone()), s.clone()));
                    }
                    v => node.children.push(json_node(k.clone(), v)),
                }
            }
        }
        Json::String(s) => node.text = Some(s.clone()),
        Json::Null => {}
        other => node.text = Some(other.to_string()),
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_round_trip() {
        let n = Node::new("vm")
            .attr("id", "1")
            .text("name", "a<b")
            .child(Node::list("devices").text("device", "hd"));
        let back = Node::from_xml(&n.to_xml()).unwrap();
        assert_eq!(back.text_at("name"), Some("a<b"));
        assert_eq!(back.get_attr("id"), Some("1"));
        assert_eq!(back.text_at("devices/device"), Some("hd"));
    }

    #[test]
    fn json_lists_and_links() {
        let n = Node::list("vms").child(
            Node::new("vm")
                .attr("id", "1")
                .child(Node::new("link").attr("rel", "nics"))
                .child(Node::list("devices").text("device", "hd")),
        );
        let j = n.to_json();
        assert_eq!(j["vm"][0]["id"], "1");
        assert_eq!(j["vm"][0]["link"][0]["rel"], "nics");
        assert_eq!(j["vm"][0]["devices"]["device"][0], "hd");
    }

    #[test]
    fn json_body() {
        let n = Node::from_json(
            "vm",
            br#"{"name":"x","cluster":{"name":"Default"},"cpu":{"topology":{"cores":2}}}"#,
        )
        .unwrap();
        assert_eq!(n.text_at("cluster/name"), Some("Default"));
        assert_eq!(n.text_at("cpu/topology/cores"), Some("2"));
    }

    #[test]
    fn bad_xml_is_an_error() {
        assert!(Node::from_xml(b"<vm><name>x</vm>").is_err());
        assert!(Node::from_xml(b"<vm>").is_err());
    }
}
