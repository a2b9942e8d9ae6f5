//! Embedding bodies for InvokeModel: Amazon Titan Text Embeddings (one text per call) and
//! Cohere Embed (up to 96 texts per call).
//!
//! Shapes: Bedrock user guide, "Amazon Titan Embeddings Text" (`inputText`, `dimensions`,
//! `normalize` -> `embedding`, `inputTextTokenCount`) and "Cohere Embed" v3/v4 (`texts`,
//! `input_type`, `output_dimension` -> `embeddings`, a list or, by type, `{float: [...]}`).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ProviderError;

/// The most texts Cohere Embed accepts in one call.
pub(crate) const COHERE_MAX_TEXTS: usize = 96;
/// Titan embeds one text per call; this many calls run at once.
pub(crate) const TITAN_CONCURRENCY: usize = 4;

/// Which request shape a model id takes. Ids are matched by the model family they name, so
/// region-prefixed inference profiles (`us.cohere.embed-v4:0`) and foundation-model ARNs work;
/// an id that names no family (an application inference profile ARN) is taken to be Titan
/// Text Embeddings v2, the default embedding model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `amazon.titan-embed-text-v2:0`: `inputText`, `dimensions`, `normalize`.
    TitanV2,
    /// Titan Embeddings G1 and Titan Multimodal: `inputText` only.
    TitanV1,
    /// Cohere Embed English/Multilingual v3: `texts`, `input_type`.
    CohereV3,
    /// Cohere Embed v4: also `output_dimension`.
    CohereV4,
}

impl Family {
    pub(crate) fn of(model: &str) -> Family {
        let m = model.to_ascii_lowercase();
        if m.contains("cohere.embed") {
            if m.contains("embed-v4") {
                Family::CohereV4
            } else {
                Family::CohereV3
            }
        } else if m.contains("titan-embed-text-v1")
            || m.contains("titan-embed-g1")
            || m.contains("titan-embed-image")
        {
            Family::TitanV1
        } else {
            Family::TitanV2
        }
    }

    pub(crate) fn is_cohere(self) -> bool {
        matches!(self, Family::CohereV3 | Family::CohereV4)
    }
}

/// The body for one Titan call. Requested dimensions go only to v2, the one Titan text model
/// that can shorten its vectors.
pub(crate) fn titan_body(family: Family, text: &str, dimensions: Option<u32>) -> Value {
    match family {
        Family::TitanV2 => {
            let mut body = json!({"inputText": text, "normalize": true});
            if let Some(d) = dimensions {
                body["dimensions"] = json!(d);
            }
            body
        }
        _ => json!({"inputText": text}),
    }
}

/// The body for one Cohere call. Documents are embedded for storage (`search_document`),
/// which is what vector search indexes; v3 has fixed dimensions, so a requested size goes only
/// to v4.
pub(crate) fn cohere_body(family: Family, texts: &[String], dimensions: Option<u32>) -> Value {
    let mut body = json!({"texts": texts, "input_type": "search_document"});
    if family == Family::CohereV4 {
        body["embedding_types"] = json!(["float"]);
        if let Some(d) = dimensions {
            body["output_dimension"] = json!(d);
        }
    }
    body
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TitanResponse {
    pub(crate) embedding: Vec<f32>,
    pub(crate) input_text_token_count: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CohereResponse {
    embeddings: CohereEmbeddings,
}

/// `embeddings_floats` responses carry a list; `embeddings_by_type` ones a map by type.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CohereEmbeddings {
    Floats(Vec<Vec<f32>>),
    ByType { float: Vec<Vec<f32>> },
}

impl CohereResponse {
    pub(crate) fn into_vectors(self, expected: usize) -> Result<Vec<Vec<f32>>, ProviderError> {
        let vectors = match self.embeddings {
            CohereEmbeddings::Floats(v) | CohereEmbeddings::ByType { float: v } => v,
        };
        if vectors.len() != expected {
            return Err(ProviderError::invalid_response(format!(
                "asked for {expected} embeddings, got {}",
                vectors.len()
            )));
        }
        Ok(vectors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_recognised_through_profiles_and_arns() {
        assert_eq!(Family::of("amazon.titan-embed-text-v2:0"), Family::TitanV2);
        assert_eq!(Family::of("amazon.titan-embed-text-v1"), Family::TitanV1);
        assert_eq!(Family::of("amazon.titan-embed-g1-text-02"), Family::TitanV1);
        assert_eq!(Family::of("cohere.embed-english-v3"), Family::CohereV3);
        assert_eq!(Family::of("us.cohere.embed-v4:0"), Family::CohereV4);
        assert_eq!(
            Family::of("arn:aws:bedrock:us-east-1::foundation-model/cohere.embed-multilingual-v3"),
            Family::CohereV3
        );
        assert_eq!(
            Family::of(
                "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
            ),
            Family::TitanV2
        );
    }

    #[test]
    fn bodies_send_dimensions_only_where_the_model_takes_them() {
        assert_eq!(
            titan_body(Family::TitanV2, "hi", Some(256)),
            json!({"inputText": "hi", "normalize": true, "dimensions": 256})
        );
        assert_eq!(
            titan_body(Family::TitanV1, "hi", Some(256)),
            json!({"inputText": "hi"})
        );
        let texts = vec!["a".to_owned()];
        assert_eq!(
            cohere_body(Family::CohereV3, &texts, Some(256)),
            json!({"texts": ["a"], "input_type": "search_document"})
        );
        assert_eq!(
            cohere_body(Family::CohereV4, &texts, Some(256))["output_dimension"],
            256
        );
    }

    #[test]
    fn cohere_responses_parse_in_both_shapes() {
        let v3: CohereResponse = serde_json::from_value(json!({
            "id": "x", "response_type": "embeddings_floats", "texts": ["a"], "embeddings": [[0.5, 1.0]]
        }))
        .unwrap();
        assert_eq!(v3.into_vectors(1).unwrap(), vec![vec![0.5, 1.0]]);
        let v4: CohereResponse = serde_json::from_value(json!({
            "id": "x", "response_type": "embeddings_by_type", "embeddings": {"float": [[0.25]]}
        }))
        .unwrap();
        assert_eq!(v4.into_vectors(1).unwrap(), vec![vec![0.25]]);
        let short: CohereResponse = serde_json::from_value(json!({"embeddings": [[0.5]]})).unwrap();
        assert!(short.into_vectors(2).is_err());
    }
}
