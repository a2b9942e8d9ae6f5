//! The scenarios every dialect must pass. They speak only the neutral types; the harness
//! translates what the fake saw.

use std::time::{Duration, Instant};

use atlasai_core::{
    ChatRequest, EmbeddingRequest, FinishReason, Message, ProviderErrorKind, ResponseFormat,
    ToolCall, ToolChoice, ToolDefinition,
};
use atlasai_fakes::{FakeReply, FakeToolCall, RetryAfter, Step, embedding_for};
use atlasai_providers::{HttpOptions, collect_stream};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::harness::{Harness, fast_opts, model_calls};

fn weather_tools() -> Vec<ToolDefinition> {
    vec![
        ToolDefinition {
            name: "get_weather".into(),
            description: Some("Current weather for a city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
            strict: None,
        },
        ToolDefinition {
            name: "get_time".into(),
            description: Some("Current time in a timezone".into()),
            parameters: json!({"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}),
            strict: None,
        },
    ]
}

fn two_calls() -> Vec<FakeToolCall> {
    vec![
        FakeToolCall::new("call_a1", "get_weather", json!({"city": "Paris"})),
        FakeToolCall::new("call_b2", "get_time", json!({"tz": "Europe/Paris"})),
    ]
}

fn assert_calls(calls: &[ToolCall]) {
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].name, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].arguments).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(calls[1].name, "get_time");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[1].arguments).unwrap(),
        json!({"tz": "Europe/Paris"})
    );
    assert!(
        !calls[0].id.is_empty() && calls[0].id != calls[1].id,
        "{calls:?}"
    );
}

pub async fn plain_chat<H: Harness>() {
    let h = H::start().await;
    h.fake()
        .push(Step::Reply(FakeReply::text("Hello from the fake")));
    let client = h.client(fast_opts()).await;
    let resp = client.chat(&ChatRequest::user("Say hello")).await.unwrap();
    assert_eq!(resp.content.as_deref(), Some("Hello from the fake"));
    assert_eq!(resp.finish_reason, FinishReason::Stop);
    assert!(resp.tool_calls.is_empty());
    let usage = resp.usage.expect("usage reported");
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (12, 5));
    let calls = model_calls(&h);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        H::turns(&calls[0]),
        vec![("user".to_owned(), "Say hello".to_owned())]
    );
    assert!(!H::was_streaming(&calls[0]));
}

pub async fn system_and_multi_turn<H: Harness>() {
    let h = H::start().await;
    let client = h.client(fast_opts()).await;
    let req = ChatRequest {
        messages: vec![
            Message::system("You are an SRE assistant."),
            Message::user("The API is slow."),
            Message::assistant("Which service?"),
            Message::user("checkout"),
        ],
        max_tokens: Some(64),
        temperature: Some(0.2),
        ..ChatRequest::default()
    };
    client.chat(&req).await.unwrap();
    let sent = &model_calls(&h)[0];
    assert_eq!(
        H::system_texts(sent),
        vec!["You are an SRE assistant.".to_owned()]
    );
    assert_eq!(
        H::turns(sent),
        vec![
            ("user".to_owned(), "The API is slow.".to_owned()),
            ("assistant".to_owned(), "Which service?".to_owned()),
            ("user".to_owned(), "checkout".to_owned()),
        ]
    );
}

pub async fn parallel_tool_calls<H: Harness>() {
    let h = H::start().await;
    h.fake()
        .push(Step::Reply(FakeReply::tool_calls(two_calls())));
    let client = h.client(fast_opts()).await;
    let req = ChatRequest {
        tools: weather_tools(),
        tool_choice: Some(ToolChoice::Auto),
        ..ChatRequest::user("Weather and time in Paris?")
    };
    let resp = client.chat(&req).await.unwrap();
    assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
    assert_calls(&resp.tool_calls);
    let sent = &model_calls(&h)[0];
    assert_eq!(
        H::tools_declared(sent),
        vec!["get_weather".to_owned(), "get_time".to_owned()]
    );
}

pub async fn tool_results_go_back<H: Harness>() {
    let h = H::start().await;
    h.fake()
        .push(Step::Reply(FakeReply::tool_calls(two_calls())));
    h.fake().push(Step::Reply(FakeReply::text("Sunny, 14:00")));
    let client = h.client(fast_opts()).await;
    let mut req = ChatRequest {
        tools: weather_tools(),
        ..ChatRequest::user("Weather and time in Paris?")
    };
    let first = client.chat(&req).await.unwrap();
    req.messages.push(Message::Assistant {
        content: first.content.clone(),
        tool_calls: first.tool_calls.clone(),
    });
    req.messages
        .push(Message::tool(&first.tool_calls[0].id, r#"{"sky":"sunny"}"#));
    req.messages.push(Message::tool(
        &first.tool_calls[1].id,
        r#"{"time":"14:00"}"#,
    ));
    let second = client.chat(&req).await.unwrap();
    assert_eq!(second.content.as_deref(), Some("Sunny, 14:00"));
    let sent = &model_calls(&h)[1];
    let results = H::tool_results(sent);
    assert_eq!(results.len(), 2, "{results:?}");
    // Dialects with call ids must send the id back; Gemini pairs results by function name.
    let first_ref = &results[0].0;
    assert!(
        first_ref == &first.tool_calls[0].id || first_ref == "get_weather",
        "{results:?}"
    );
    assert!(results[0].1.contains("sunny"), "{results:?}");
    assert!(results[1].1.contains("14:00"), "{results:?}");
}

pub async fn json_schema_output<H: Harness>() {
    let h = H::start().await;
    h.fake().push(Step::Reply(FakeReply::text(
        r#"{"summary":"disk full","confidence":0.9}"#,
    )));
    let client = h.client(fast_opts()).await;
    let schema = json!({
        "type": "object",
        "properties": {"summary": {"type": "string"}, "confidence": {"type": "number"}},
        "required": ["summary", "confidence"],
        "additionalProperties": false,
    });
    let req = ChatRequest {
        response_format: Some(ResponseFormat::JsonSchema {
            name: "rca".into(),
            schema: schema.clone(),
            strict: Some(true),
            description: None,
        }),
        ..ChatRequest::user("Analyse")
    };
    let resp = client.chat(&req).await.unwrap();
    let parsed: Value = serde_json::from_str(resp.content.as_deref().unwrap()).unwrap();
    assert_eq!(parsed["summary"], "disk full");
    let sent = &model_calls(&h)[0];
    assert_eq!(H::json_schema_sent(sent), Some(schema));
}

pub async fn json_object_output<H: Harness>() {
    let h = H::start().await;
    h.fake()
        .push(Step::Reply(FakeReply::text(r#"{"ok":true}"#)));
    let client = h.client(fast_opts()).await;
    let req = ChatRequest {
        response_format: Some(ResponseFormat::JsonObject),
        ..ChatRequest::user("Answer in JSON")
    };
    let resp = client.chat(&req).await.unwrap();
    let parsed: Value = serde_json::from_str(resp.content.as_deref().unwrap()).unwrap();
    assert_eq!(parsed, json!({"ok": true}));
}

pub async fn stream_text<H: Harness>() {
    let h = H::start().await;
    h.fake()
        .push(Step::Reply(FakeReply::text("Streaming works end to end")));
    let client = h.client(fast_opts()).await;
    let mut stream = client
        .chat_stream(&ChatRequest::user("stream please"))
        .await
        .unwrap();
    let mut deltas = Vec::new();
    let mut acc = atlasai_core::StreamAccumulator::default();
    while let Some(event) = stream.next().await {
        let event = event.unwrap();
        if let atlasai_core::StreamEvent::TextDelta { text } = &event {
            deltas.push(text.clone());
        }
        acc.push(&event);
    }
    assert!(
        deltas.len() >= 2,
        "text should arrive in several deltas: {deltas:?}"
    );
    assert!(acc.finished());
    let resp = acc.finish("m");
    assert_eq!(resp.content.as_deref(), Some("Streaming works end to end"));
    assert_eq!(resp.finish_reason, FinishReason::Stop);
    let usage = resp.usage.expect("streams report usage");
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (12, 5));
    assert!(H::was_streaming(&model_calls(&h)[0]));
}

pub async fn stream_tool_calls<H: Harness>() {
    let h = H::start().await;
    h.fake()
        .push(Step::Reply(FakeReply::tool_calls(two_calls())));
    let client = h.client(fast_opts()).await;
    let req = ChatRequest {
        tools: weather_tools(),
        ..ChatRequest::user("Weather and time in Paris?")
    };
    let stream = client.chat_stream(&req).await.unwrap();
    let resp = collect_stream(stream, "m").await.unwrap();
    assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
    assert_calls(&resp.tool_calls);
}

pub async fn embeddings<H: Harness>() {
    let h = H::start().await;
    let client = h.client(fast_opts()).await;
    let inputs = vec![
        "disk full on db-1".to_owned(),
        "oom".to_owned(),
        "latency spike".to_owned(),
    ];
    let result = client
        .embed(&EmbeddingRequest {
            inputs: inputs.clone(),
            dimensions: None,
        })
        .await;
    if !H::SUPPORTS_EMBEDDINGS {
        assert_eq!(result.unwrap_err().kind, ProviderErrorKind::Unsupported);
        return;
    }
    let resp = result.unwrap();
    assert_eq!(resp.vectors.len(), 3);
    for (input, vector) in inputs.iter().zip(&resp.vectors) {
        assert_eq!(
            vector,
            &embedding_for(input, vector.len()),
            "vectors must be in input order"
        );
    }
}

pub async fn list_models<H: Harness>() {
    let h = H::start().await;
    let client = h.client(fast_opts()).await;
    let result = client.list_models().await;
    if !H::SUPPORTS_LIST_MODELS {
        assert_eq!(result.unwrap_err().kind, ProviderErrorKind::Unsupported);
        return;
    }
    let models = result.unwrap();
    assert!(!models.is_empty());
    assert!(models.iter().all(|m| !m.id.is_empty()));
}

pub async fn rate_limited_then_ok<H: Harness>() {
    let h = H::start().await;
    h.fake().push(Step::Fail {
        status: 429,
        retry_after: Some(RetryAfter::Seconds(1)),
    });
    h.fake()
        .push(Step::Reply(FakeReply::text("after the wait")));
    let client = h.client(fast_opts()).await;
    let started = Instant::now();
    let resp = client.chat(&ChatRequest::user("hi")).await.unwrap();
    assert_eq!(resp.content.as_deref(), Some("after the wait"));
    assert_eq!(model_calls(&h).len(), 2);
    // Behaviour, not speed: the client waited out the retry-after instead of its own 10ms backoff.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

pub async fn rate_limit_longer_than_we_wait<H: Harness>() {
    let h = H::start().await;
    h.fake().push(Step::Fail {
        status: 429,
        retry_after: Some(RetryAfter::Seconds(120)),
    });
    let client = h.client(fast_opts()).await;
    let err = client.chat(&ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::RateLimited, "{err}");
    assert_eq!(err.retry_after, Some(Duration::from_secs(120)));
    assert_eq!(
        model_calls(&h).len(),
        1,
        "must not retry when asked to wait longer than we allow"
    );
}

pub async fn server_errors_then_ok<H: Harness>() {
    let h = H::start().await;
    h.fake().push(Step::Fail {
        status: 500,
        retry_after: None,
    });
    h.fake().push(Step::Fail {
        status: 503,
        retry_after: None,
    });
    h.fake()
        .push(Step::Reply(FakeReply::text("third time lucky")));
    let client = h.client(fast_opts()).await;
    let resp = client.chat(&ChatRequest::user("hi")).await.unwrap();
    assert_eq!(resp.content.as_deref(), Some("third time lucky"));
    assert_eq!(model_calls(&h).len(), 3);
}

pub async fn persistent_server_errors<H: Harness>() {
    let h = H::start().await;
    for _ in 0..5 {
        h.fake().push(Step::Fail {
            status: 502,
            retry_after: None,
        });
    }
    let client = h.client(fast_opts()).await;
    let err = client.chat(&ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Unavailable, "{err}");
    assert_eq!(err.status, Some(502));
    assert_eq!(model_calls(&h).len(), 3, "one attempt plus max_retries");
}

pub async fn stream_retried_before_first_chunk<H: Harness>() {
    let h = H::start().await;
    h.fake().push(Step::Fail {
        status: 429,
        retry_after: None,
    });
    h.fake()
        .push(Step::Reply(FakeReply::text("streamed after a retry")));
    let client = h.client(fast_opts()).await;
    let stream = client.chat_stream(&ChatRequest::user("hi")).await.unwrap();
    let resp = collect_stream(stream, "m").await.unwrap();
    assert_eq!(resp.content.as_deref(), Some("streamed after a retry"));
    assert_eq!(model_calls(&h).len(), 2);
}

pub async fn bad_credentials<H: Harness>() {
    let h = H::start().await;
    let client = h.client_with_bad_credentials(fast_opts()).await;
    let err = client.chat(&ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Authentication, "{err}");
    assert!(
        model_calls(&h).len() <= 1,
        "authentication failures are not retried"
    );
}

pub async fn timeout<H: Harness>() {
    let h = H::start().await;
    h.fake().push(Step::Stall(Duration::from_secs(5)));
    let opts = HttpOptions {
        timeout: Duration::from_millis(300),
        retry: atlasai_providers::RetryPolicy::none(),
        ..fast_opts()
    };
    let client = h.client(opts).await;
    let err = client.chat(&ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Unavailable, "{err}");
    assert_eq!(err.code.as_deref(), Some("timeout"), "{err}");
}

pub async fn malformed_response<H: Harness>() {
    let h = H::start().await;
    h.fake().push(Step::Malformed);
    let client = h.client(fast_opts()).await;
    let err = client.chat(&ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidResponse, "{err}");
    assert_eq!(
        model_calls(&h).len(),
        1,
        "a malformed answer is not retried"
    );
}

pub async fn truncated_response<H: Harness>() {
    let h = H::start().await;
    h.fake().push(Step::Truncated(FakeReply::text(
        "this answer is cut in half",
    )));
    let client = h.client(fast_opts()).await;
    let err = client.chat(&ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidResponse, "{err}");
}

pub async fn truncated_stream<H: Harness>() {
    let h = H::start().await;
    h.fake().push(Step::Truncated(FakeReply::text(
        "this stream never finishes properly",
    )));
    let client = h.client(fast_opts()).await;
    let stream = client.chat_stream(&ChatRequest::user("hi")).await.unwrap();
    let err = collect_stream(stream, "m").await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::InvalidResponse, "{err}");
}

pub async fn reset_stream<H: Harness>() {
    let h = H::start().await;
    h.fake().push(Step::Reset(FakeReply::text(
        "the connection drops halfway through this",
    )));
    let client = h.client(fast_opts()).await;
    let stream = client.chat_stream(&ChatRequest::user("hi")).await.unwrap();
    let err = collect_stream(stream, "m").await.unwrap_err();
    assert!(
        matches!(
            err.kind,
            ProviderErrorKind::Unavailable | ProviderErrorKind::InvalidResponse
        ),
        "{err}"
    );
}

pub async fn context_too_long<H: Harness>() {
    let h = H::start().await;
    h.fake().push(Step::ContextTooLong);
    let client = h.client(fast_opts()).await;
    let err = client
        .chat(&ChatRequest::user("a very long prompt"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::ContextTooLong, "{err}");
    assert_eq!(model_calls(&h).len(), 1);
}

pub async fn tools_not_supported<H: Harness>() {
    let h = H::start().await;
    h.fake().push(Step::ToolsUnsupported);
    let client = h.client(fast_opts()).await;
    let req = ChatRequest {
        tools: weather_tools(),
        tool_choice: Some(ToolChoice::Auto),
        ..ChatRequest::user("Weather?")
    };
    let err = client.chat(&req).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::ToolsNotSupported, "{err}");
}

pub async fn refused_connection<H: Harness>() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let h = H::start().await;
    let client = h
        .client_at(&format!("http://127.0.0.1:{port}"), fast_opts())
        .await;
    let err = client.chat(&ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Unavailable, "{err}");
    assert_eq!(err.code.as_deref(), Some("connection"), "{err}");
}
