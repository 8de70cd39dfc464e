"""A GPT-2 in plain PyTorch, written from the tensor names of an exported safetensors file alone
(no transformers, no safetensors library): what a PyTorch user needs to run a model that
`npm run export` wrote. It reads FILE.safetensors and the config.json beside it (n_head and
layer_norm_epsilon are not in the tensor names), runs the token id sequences given as JSON on
stdin ([[1, 5, 9], ...], the compact ids of vocab_map.json), and writes their logits as float32
[sum of lengths, vocab_size] to --out (or prints the shape and the last position's top tokens).

    python3 src/interchange/gpt2_torch.py export/model.safetensors --out logits.f32 < ids.json
"""

import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def load_safetensors(path):
    """name -> float32 tensor, parsed by hand: u64 header length, JSON header, raw little-endian data."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).float()
    return out


class GPT2:
    """GPT2LMHeadModel's forward: Conv1D weights are (in, out), so x @ W + b; lm_head tied to wte."""

    def __init__(self, w, n_head, eps):
        self.w = w
        self.n_head = n_head
        self.eps = eps
        self.n_layer = 1 + max(int(k.split(".")[2]) for k in w if k.startswith("transformer.h."))

    def ln(self, x, name):
        return F.layer_norm(x, x.shape[-1:], self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    def conv1d(self, x, name):
        return x @ self.w[name + ".weight"] + self.w[name + ".bias"]

    def forward(self, ids):
        w = self.w
        T = ids.shape[-1]
        x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][:T]
        C = x.shape[-1]
        hd = C // self.n_head
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        for l in range(self.n_layer):
            p = f"transformer.h.{l}."
            q, k, v = self.conv1d(self.ln(x, p + "ln_1"), p + "attn.c_attn").split(C, dim=-1)
            q, k, v = (t.view(-1, T, self.n_head, hd).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            att = att.masked_fill(~mask, float("-inf")).softmax(-1)
            y = (att @ v).transpose(1, 2).reshape(-1, T, C)
            x = x + self.conv1d(y, p + "attn.c_proj")
            h = self.conv1d(self.ln(x, p + "ln_2"), p + "mlp.c_fc")
            h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h.pow(3))))  # gelu_new
            x = x + self.conv1d(h, p + "mlp.c_proj")
        x = self.ln(x, "transformer.ln_f")
        head = w.get("lm_head.weight", w["transformer.wte.weight"])  # tied: save_pretrained leaves it out
        return x @ head.T


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--config", help="config.json (default: beside the file)")
    ap.add_argument("--out", help="write float32 logits here")
    args = ap.parse_args()
    with open(args.config or os.path.join(os.path.dirname(os.path.abspath(args.file)), "config.json")) as f:
        config = json.load(f)
    torch.set_num_threads(1)
    model = GPT2(load_safetensors(args.file), config["n_head"], config.get("layer_norm_epsilon", 1e-5))
    seqs = json.load(sys.stdin)
    with torch.no_grad():
        logits = torch.cat([model.forward(torch.tensor([s], dtype=torch.long))[0] for s in seqs])
    if args.out:
        with open(args.out, "wb") as f:
            f.write(logits.contiguous().numpy().astype("<f4").tobytes())
    print(json.dumps({"torch": torch.__version__, "shape": list(logits.shape), "top": logits[-1].topk(5).indices.tolist()}))


if __name__ == "__main__":
    main()
