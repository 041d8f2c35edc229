/// A value as carried on the wire by either RPC encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum WireValue {
    /// XML-RPC `<string>` or bare text in `<value>`; JSON string.
    Str(String),
    /// XML-RPC `<int>`/`<i4>`/`<i8>`; JSON integer.
    Int(i64),
    /// XML-RPC `<boolean>`; JSON `true`/`false`.
    Bool(bool),
    /// XML-RPC `<double>`; JSON non-integer number.
    Double(f64),
    /// XML-RPC `<dateTime.iso8601>` text, kept as-is (never produced from JSON).
    DateTime(String),
    /// XML-RPC `<base64>` payload, decoded.
    Base64(Vec<u8>),
    /// XML-RPC `<array>`; JSON array.
    Array(Vec<WireValue>),
    /// XML-RPC `<struct>`; JSON object. Member order is kept.
    Struct(Vec<(String, WireValue)>),
    /// XML-RPC `<nil/>`; JSON `null`.
    Nil,
}

impl WireValue {
    /// The string content if this is a [`WireValue::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            WireValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The XML-RPC name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            WireValue::Str(_) => "string",
            WireValue::Int(_) => "int",
            WireValue::Bool(_) => "boolean",
            WireValue::Double(_) => "double",
            WireValue::DateTime(_) => "dateTime",
            WireValue::Base64(_) => "base64",
            WireValue::Array(_) => "array",
            WireValue::Struct(_) => "struct",
            WireValue::Nil => "nil",
        }
    }
}
