//! A tool's answer: JSON as `structuredContent` and the same JSON as text.
//!
//! rmcp's `Json` does the same, but writes the text from the
//! `serde_json::Value` it made, through `Display`, a formatter call per
//! token. This one writes the text from the answer itself into a buffer:
//! the same bytes (serde_json keeps the fields' order), for less work on
//! every call (see BENCHMARKS.md). The `#[tool]` macro takes a tool's
//! output schema from any return type named `Json<T>`, so tools use this
//! one as they would rmcp's.

use rmcp::ErrorData;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use serde::Serialize;

/// A tool's answer, `T` serialised both ways.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoCallToolResult for Json<T> {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        let text = serde_json::to_string(&self.0).map_err(unwritable)?;
        let value = serde_json::to_value(self.0).map_err(unwritable)?;
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(value);
        Ok(result.into())
    }
}

/// An answer serde cannot write (a map with keys that are not strings,
/// say): a bug of the tool, not of the call.
fn unwritable(error: serde_json::Error) -> ErrorData {
    tracing::error!(%error, "a tool's answer could not be written as JSON");
    ErrorData::internal_error("internal error: the call failed unexpectedly", None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The text is exactly what rmcp's `Json` would write, fields in order.
    #[test]
    fn the_text_is_the_structured_content_written_out() {
        #[derive(Serialize)]
        struct Answer {
            zeta: &'static str,
            alpha: Option<f64>,
            list: Vec<u8>,
            quote: &'static str,
        }
        let answer = Answer {
            zeta: "z",
            alpha: Some(0.1),
            list: vec![1, 2],
            quote: "say \"hi\"\n",
        };
        let ours = Json(answer).into_call_tool_result().unwrap();
        let theirs = rmcp::Json(json!({
            "zeta": "z", "alpha": 0.1, "list": [1, 2], "quote": "say \"hi\"\n"
        }))
        .into_call_tool_result()
        .unwrap();
        let (CallToolResponse::Complete(ours), CallToolResponse::Complete(theirs)) = (ours, theirs)
        else {
            panic!("both answers are complete results");
        };
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&theirs).unwrap()
        );
        assert_eq!(ours, theirs);
    }
}
