"""Conformance of the tenant plane's OpenAI-compatible API, checked with the official `openai`
Python SDK as an independent client.

Run by the Rust test `crates/tenant-plane/tests/api/conformance.rs`, which starts the real
tenant plane in front of a fake provider (OpenAI, Anthropic or Bedrock), scripts the fake's
answers for one scenario, and runs:

    python openai_sdk.py <scenario>

with TP_BASE_URL (…/v1), TP_API_KEY, CHAT_MODEL, EMBED_MODEL and EXPECT_TEXT in the
environment. Each scenario makes its calls in a fixed order (the order the Rust test scripted)
and exits non-zero with a message on the first mismatch.
"""

from __future__ import annotations

import json
import os
import sys

import openai
import pydantic

BASE_URL = os.environ["TP_BASE_URL"]
API_KEY = os.environ["TP_API_KEY"]
CHAT_MODEL = os.environ["CHAT_MODEL"]
EMBED_MODEL = os.environ.get("EMBED_MODEL", "")
EXPECT_TEXT = os.environ.get("EXPECT_TEXT", "")

# No retries: a retry would consume the next scripted answer and hide the first failure.
client = openai.OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0, timeout=30)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class Weather(pydantic.BaseModel):
    city: str
    temperature_c: int


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def chat() -> None:
    resp = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello"},
        ],
        max_tokens=50,
        temperature=0.2,
    )
    check(resp.object == "chat.completion", f"object: {resp.object}")
    check(bool(resp.id), "id is empty")
    check(bool(resp.model), "model is empty")
    check(len(resp.choices) == 1, f"choices: {resp.choices}")
    choice = resp.choices[0]
    check(choice.message.role == "assistant", f"role: {choice.message.role}")
    check(choice.message.content == EXPECT_TEXT, f"content: {choice.message.content!r}")
    check(choice.finish_reason == "stop", f"finish_reason: {choice.finish_reason}")
    check(resp.usage is not None and resp.usage.total_tokens > 0, f"usage: {resp.usage}")
    check(
        resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens,
        f"usage does not add up: {resp.usage}",
    )

    models = [m.id for m in client.models.list()]
    check(CHAT_MODEL in models, f"{CHAT_MODEL} not listed in {models}")
    check(client.models.retrieve(CHAT_MODEL).id == CHAT_MODEL, "retrieve")

    try:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
        raise AssertionError("an unknown model was accepted")
    except openai.NotFoundError as e:
        check(e.status_code == 404, f"status {e.status_code}")
        check(e.code == "model_not_found", f"code {e.code}")
        check(e.type == "invalid_request_error", f"type {e.type}")

    bad = openai.OpenAI(base_url=BASE_URL, api_key="sk-wrong-key-0000000000", max_retries=0)
    try:
        bad.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("a wrong key was accepted")
    except openai.AuthenticationError as e:
        check(e.code == "invalid_api_key", f"code {e.code}")


def tools() -> None:
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    resp = client.chat.completions.create(
        model=CHAT_MODEL, messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"
    )
    choice = resp.choices[0]
    check(choice.finish_reason == "tool_calls", f"finish_reason: {choice.finish_reason}")
    calls = choice.message.tool_calls or []
    check(len(calls) == 1, f"tool_calls: {calls}")
    call = calls[0]
    check(call.type == "function", f"type {call.type}")
    check(call.function.name == "get_weather", f"name {call.function.name}")
    check(json.loads(call.function.arguments) == {"city": "Paris"}, call.function.arguments)
    check(bool(call.id), "tool call id is empty")

    # The SDK's own message object goes back as it is, with the tool's result.
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'})
    resp = client.chat.completions.create(model=CHAT_MODEL, messages=messages, tools=[WEATHER_TOOL])
    check(resp.choices[0].message.content == EXPECT_TEXT, f"content {resp.choices[0].message.content!r}")

    # Forcing the function by name.
    resp = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Weather in Paris, please"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    check(resp.choices[0].message.tool_calls[0].function.name == "get_weather", "forced call")


def json_schema() -> None:
    completion = client.chat.completions.parse(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Weather in Paris as JSON"}],
        response_format=Weather,
    )
    parsed = completion.choices[0].message.parsed
    check(parsed == Weather(city="Paris", temperature_c=21), f"parsed: {parsed!r}")

    resp = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Weather in Paris as a JSON object"}],
        response_format={"type": "json_object"},
    )
    check(
        json.loads(resp.choices[0].message.content) == {"city": "Paris", "temperature_c": 21},
        f"json_object: {resp.choices[0].message.content!r}",
    )


def stream() -> None:
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    check(len(chunks) >= 3, f"only {len(chunks)} chunks")
    for c in chunks:
        check(c.object == "chat.completion.chunk", f"object {c.object}")
        check(c.id == chunks[0].id, "ids differ between chunks")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check(text == EXPECT_TEXT, f"streamed text {text!r}")
    check(chunks[0].choices[0].delta.role == "assistant", "first delta has no role")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    check(finishes == ["stop"], f"finish reasons {finishes}")
    last = chunks[-1]
    check(last.choices == [], f"last chunk has choices: {last.choices}")
    check(last.usage is not None and last.usage.completion_tokens > 0, f"usage {last.usage}")

    # Streamed tool calls, assembled by the SDK's streaming helper.
    with client.chat.completions.stream(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
    ) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    check(len(calls) == 1, f"streamed tool calls {calls}")
    check(calls[0].function.name == "get_weather", calls[0].function.name)
    check(json.loads(calls[0].function.arguments) == {"city": "Paris"}, calls[0].function.arguments)
    check(final.choices[0].finish_reason == "tool_calls", final.choices[0].finish_reason)


def stream_error() -> None:
    try:
        for _ in client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "Say hello"}], stream=True
        ):
            pass
        raise AssertionError("a stream cut by the provider ended cleanly")
    except openai.APIError as e:
        check(
            isinstance(e.body, dict) and e.body.get("code") == "upstream_unavailable",
            f"error body {e.body!r}",
        )


def embeddings() -> None:
    texts = ["first text", "second"]
    # The SDK asks for base64 by default and decodes it.
    resp = client.embeddings.create(model=EMBED_MODEL, input=texts)
    check(resp.object == "list", resp.object)
    check([d.index for d in resp.data] == [0, 1], f"indexes {[d.index for d in resp.data]}")
    for d, t in zip(resp.data, texts):
        check(len(d.embedding) > 1, "empty vector")
        # The fakes put the text's length first, so this proves order and decoding.
        check(d.embedding[0] == float(len(t)), f"{d.embedding[0]} for {t!r}")
    floats = client.embeddings.create(model=EMBED_MODEL, input="second", encoding_format="float")
    # Base64 carries the f32 bits; JSON the shortest decimal that reads back as that f32.
    pairs = list(zip(floats.data[0].embedding, resp.data[1].embedding))
    check(len(pairs) == len(resp.data[1].embedding), "float and base64 lengths differ")
    check(all(abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in pairs), "float and base64 differ")
    check(floats.usage.prompt_tokens >= 0, "usage")


SCENARIOS = {
    f.__name__: f for f in [chat, tools, json_schema, stream, stream_error, embeddings]
}

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in SCENARIOS:
        sys.exit(f"usage: openai_sdk.py {{{'|'.join(SCENARIOS)}}}")
    try:
        SCENARIOS[name]()
    except Exception as e:  # noqa: BLE001 - report any failure with its type
        sys.exit(f"{name}: FAILED: {type(e).__name__}: {e}")
    print(f"{name}: ok (openai {openai.__version__})")
