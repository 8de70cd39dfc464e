#!/usr/bin/env python3
"""PyTorch reference of the project's GPT and AdamW, for `npm run bench -- --reference torch` and the
parity fixture (test/fixtures/parity/). Debian: `sudo apt-get install python3-torch libopenblas0`.

The model is the one of src/model/gpt.ts: GPT-2 style, pre-LayerNorm (eps 1e-5), GELU with the tanh
approximation, causal attention scaled by 1/sqrt(head_dim), an output head tied to the token embedding,
GPT-2 parameter names, and weights stored [in, out] (y = x @ W + b). The loss is the weighted mean
next-token cross-entropy: sum_i w_i * nll_i / max(sum_i w_i, 1e-8). The optimizer is torch.optim.AdamW
with decoupled weight decay on 2-D parameters only, and global-norm clipping before the step
(src/train/optimizer.ts; the trainer's clip scale is clip/norm where torch's is clip/(norm + 1e-6)).

Modes (all numbers go to stdout as JSON, notes to stderr):
  info                     torch version, threads, which BLAS the process actually loaded
  serve --config F --stream F --batch B [--threads 2] [--seed S] [--lr X --warmup N]
                           a persistent benchmark server: one JSON command per stdin line, one JSON
                           answer per line on stdout ({"cmd": "train", "steps": N} -> step_ms, ...;
                           "forward", "peak", "quit"), so the caller can interleave its own runs.
  parity --dir D --out O   read D/inputs.json + D/init.bin (written by src/bench/parity.ts), compute in
                           float64 the loss, all gradients and the parameters after one AdamW step,
                           and the loss and gradients at perturbed weights; write O/reference.json,
                           O/reference.bin and O/perturbed.bin (float32, little-endian).
  trajectory --dir D --out O
                           read D/trajectory.json + D/init.bin (the initial weights): train in float64
                           from fresh AdamW moments for its steps (gradient accumulation, the trainer's
                           clipping, the given learning rate per step) and write every step's loss and
                           gradient norm to O/trajectory-reference.json and the final parameters to
                           O/trajectory.bin (float32, little-endian).
"""
import argparse
import json
import math
import os
import resource
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the caller turns this into its one-line error
    sys.stderr.write(f"torch is not importable ({e}): sudo apt-get install python3-torch libopenblas0\n")
    sys.exit(3)


# ----------------------------------------------------------------------------- model

def parameter_shapes(cfg):
    """Names and shapes in the order of src/model/gpt.ts parameterShapes."""
    C, V, T = cfg["n_embd"], cfg["vocab_size"], cfg["block_size"]
    out = [("wte", [V, C]), ("wpe", [T, C])]
    for layer in range(cfg["n_layer"]):
        p = f"h.{layer}"
        out += [
            (f"{p}.ln_1.weight", [C]), (f"{p}.ln_1.bias", [C]),
            (f"{p}.attn.c_attn.weight", [C, 3 * C]), (f"{p}.attn.c_attn.bias", [3 * C]),
            (f"{p}.attn.c_proj.weight", [C, C]), (f"{p}.attn.c_proj.bias", [C]),
            (f"{p}.ln_2.weight", [C]), (f"{p}.ln_2.bias", [C]),
            (f"{p}.mlp.c_fc.weight", [C, 4 * C]), (f"{p}.mlp.c_fc.bias", [4 * C]),
            (f"{p}.mlp.c_proj.weight", [4 * C, C]), (f"{p}.mlp.c_proj.bias", [C]),
        ]
    out += [("ln_f.weight", [C]), ("ln_f.bias", [C])]
    return out


def init_weights(cfg, generator, dtype=torch.float32):
    """GPT-2 initialisation (the same distribution as initialWeights; not the same draws)."""
    params = {}
    for name, shape in parameter_shapes(cfg):
        if name.endswith(".bias"):
            w = torch.zeros(shape, dtype=dtype)
        elif "ln_" in name:
            w = torch.ones(shape, dtype=dtype)
        else:
            std = 0.02 / math.sqrt(2 * cfg["n_layer"]) if name.endswith("c_proj.weight") else 0.02
            w = torch.randn(shape, generator=generator, dtype=dtype) * std
        params[name] = w.requires_grad_(True)
    return params


_masks = {}


def causal_mask(T):
    m = _masks.get(T)
    if m is None:
        m = torch.ones(T, T, dtype=torch.bool).tril().logical_not()
        _masks[T] = m
    return m


def linear(x, w, b):
    """x [..., K] @ w [K, N] + b [N]."""
    lead = x.shape[:-1]
    y = torch.addmm(b, x.reshape(-1, x.shape[-1]), w)
    return y.view(*lead, w.shape[1])


def logits_of(params, ids, cfg):
    B, T = ids.shape
    C, H = cfg["n_embd"], cfg["n_head"]
    hd = C // H
    eps = 1e-5
    x = F.embedding(ids, params["wte"]) + params["wpe"][:T]
    mask = causal_mask(T)
    for layer in range(cfg["n_layer"]):
        def p(n):
            return params[f"h.{layer}.{n}"]
        h = F.layer_norm(x, (C,), p("ln_1.weight"), p("ln_1.bias"), eps)
        qkv = linear(h, p("attn.c_attn.weight"), p("attn.c_attn.bias"))
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, H, hd).transpose(1, 2)
        k = k.view(B, T, H, hd).transpose(1, 2)
        v = v.view(B, T, H, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(mask, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + linear(y, p("attn.c_proj.weight"), p("attn.c_proj.bias"))
        h = F.layer_norm(x, (C,), p("ln_2.weight"), p("ln_2.bias"), eps)
        h = F.gelu(linear(h, p("mlp.c_fc.weight"), p("mlp.c_fc.bias")), approximate="tanh")
        x = x + linear(h, p("mlp.c_proj.weight"), p("mlp.c_proj.bias"))
    x = F.layer_norm(x, (C,), params["ln_f.weight"], params["ln_f.bias"], eps)
    return x @ params["wte"].t()  # tied head


def loss_of(params, ids, targets, weights, cfg):
    logits = logits_of(params, ids, cfg)
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    w = weights.reshape(-1).to(nll.dtype)
    return (nll * w).sum() / w.sum().clamp_min(1e-8)


def make_adamw(params, opt):
    """AdamW with decay on 2-D parameters only (matrices and embeddings), as src/train/optimizer.ts."""
    plist = list(params.values())
    decay = [p for p in plist if p.dim() >= 2]
    no_decay = [p for p in plist if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": opt["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    kw = dict(lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"])
    try:  # the multi-tensor path is the faster one on CPU where this torch has it
        return torch.optim.AdamW(groups, foreach=opt.get("foreach", True), **kw)
    except TypeError:
        return torch.optim.AdamW(groups, **kw)


# ----------------------------------------------------------------------------- environment

def blas_in_use():
    """The BLAS library this process really loaded. Debian's torch is built against the generic
    libblas.so.3 (its config says BLAS_INFO=generic) and gets OpenBLAS through the alternatives
    system only when libopenblas0 is installed; otherwise the netlib reference BLAS, many times slower."""
    torch.mm(torch.ones(64, 64), torch.ones(64, 64))  # make sure the BLAS is loaded
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if "/" in line else ""
                base = os.path.basename(path)
                if "blas" in base or "mkl" in base:
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    config = torch.__config__.show()
    text = " ".join(sorted(libs)).lower()
    if "openblas" in text:
        name = "OpenBLAS"
    elif "mkl_" in text or "libmkl" in text:
        name = "MKL"
    elif libs:
        name = "reference BLAS"
    else:  # not Linux, or statically linked: fall back to what the build says
        cfg = config.lower()
        name = "OpenBLAS" if "openblas" in cfg else "MKL" if "blas_info=mkl" in cfg else "unknown"
    return name, sorted(libs)


def info(threads=None):
    if threads:
        torch.set_num_threads(threads)
    blas, libs = blas_in_use()
    return {
        "torch": torch.__version__,
        "python_version": sys.version.split()[0],
        "threads": torch.get_num_threads(),
        "blas": blas,
        "blas_libs": libs,
        "fast_blas": blas in ("OpenBLAS", "MKL"),
    }


def to_bytes(t):
    """float32 tensor -> little-endian bytes (numpy when present, struct otherwise)."""
    try:
        return t.contiguous().numpy().astype("<f4").tobytes()
    except (ImportError, RuntimeError):
        import struct
        return struct.pack(f"<{t.numel()}f", *t.reshape(-1).tolist())


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


# ----------------------------------------------------------------------------- serve

def read_stream(path):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    # uint16 little-endian token ids (torch 1.13 has no uint16)
    return (torch.frombuffer(data, dtype=torch.int16).to(torch.int64) & 0xFFFF)


def serve(a):
    torch.set_num_threads(a.threads)
    cfg = json.loads(a.config)
    stream = read_stream(a.stream)
    T, B = cfg["block_size"], a.batch
    if stream.numel() < T + 2:
        raise SystemExit(f"the token stream ({stream.numel()} tokens) is shorter than one window")
    g = torch.Generator().manual_seed(a.seed)
    params = init_weights(cfg, g)
    if a.init:  # the project's initialWeights(cfg, seed), float32 in parameter order
        flat = torch.frombuffer(bytearray(open(a.init, "rb").read()), dtype=torch.float32)
        sizes = [p.numel() for p in params.values()]
        if flat.numel() != sum(sizes):
            raise SystemExit(f"{a.init} holds {flat.numel()} values, expected {sum(sizes)}")
        with torch.no_grad():
            for p, chunk in zip(params.values(), flat.split(sizes)):
                p.copy_(chunk.view_as(p))
    opt_cfg = dict(lr=a.lr, beta1=a.beta1, beta2=a.beta2, eps=a.eps, weight_decay=a.weight_decay)
    optimizer = make_adamw(params, opt_cfg)
    plist = list(params.values())
    span = torch.arange(T + 1)
    step = 0

    def batch():
        offsets = torch.randint(0, stream.numel() - T - 1, (B,), generator=g)
        w = stream[offsets[:, None] + span]
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()

    ones = torch.ones(B, T)

    def train_step():
        nonlocal step
        lr = a.lr * (step + 1) / a.warmup if step < a.warmup else a.lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        ids, targets = batch()
        loss = loss_of(params, ids, targets, ones, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(plist, a.grad_clip)
        optimizer.step()
        step += 1
        return loss.item(), float(norm)

    def forward():
        ids, _ = batch()
        with torch.no_grad():
            logits_of(params, ids, cfg)

    def timed(fn, n):
        t0 = time.perf_counter()
        out = None
        for _ in range(n):
            out = fn()
        return (time.perf_counter() - t0) / n, out

    a_mm = torch.randn(2048, 512, generator=g)
    b_mm = torch.randn(512, 512, generator=g)

    def emit(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    emit({"ready": True, **info(a.threads)})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        kind = cmd.get("cmd")
        n = int(cmd.get("steps", 1))
        if kind == "train":
            sec, (loss, norm) = timed(train_step, n)
            emit({"cmd": kind, "step_ms": sec * 1e3, "tokens_per_s": B * T / sec, "loss": loss, "grad_norm": norm, "rss_mb": rss_mb()})
        elif kind == "forward":
            sec, _ = timed(forward, n)
            emit({"cmd": kind, "step_ms": sec * 1e3, "tokens_per_s": B * T / sec, "rss_mb": rss_mb()})
        elif kind == "peak":
            m, k2 = a_mm.shape
            nn = b_mm.shape[1]
            for _ in range(5):  # warm: the first products of a fresh OpenBLAS run several times slower
                torch.mm(a_mm, b_mm)
            times = [timed(lambda: torch.mm(a_mm, b_mm), max(1, n))[0] for _ in range(int(cmd.get("repeats", 5)))]
            emit({"cmd": kind, "gflops": 2 * m * k2 * nn / median(times) / 1e9, "shape": [m, k2, nn]})
        elif kind == "quit":
            emit({"cmd": kind})
            return
        else:
            emit({"error": f"unknown command {kind!r}"})


# ----------------------------------------------------------------------------- parity

def parity(a):
    """Loss, gradients and one AdamW step in float64 from the fixture's float32 inputs."""
    torch.set_num_threads(1)  # deterministic reductions
    with open(os.path.join(a.dir, "inputs.json")) as f:
        spec = json.load(f)
    cfg = spec["config"]
    shapes = parameter_shapes(cfg)
    names = [n for n, _ in shapes]
    if names != [p["name"] for p in spec["parameters"]]:
        raise SystemExit("inputs.json lists other parameters than this script's parameter_shapes()")
    raw = open(os.path.join(a.dir, "init.bin"), "rb").read()
    flat = torch.frombuffer(bytearray(raw), dtype=torch.float32).to(torch.float64)
    sizes = [math.prod(s) for _, s in shapes]
    total = sum(sizes)
    if flat.numel() != 4 * total:
        raise SystemExit(f"init.bin holds {flat.numel()} values, expected 4 x {total} (weights, m, v, perturbed weights)")
    chunks = list(flat.split(sizes * 4))
    n_p = len(shapes)

    def block(k):
        return [chunks[k * n_p + i].reshape(s).clone() for i, (_, s) in enumerate(shapes)]

    params = {n: t.requires_grad_(True) for n, t in zip(names, block(0))}
    m0, v0 = block(1), block(2)
    perturbed = {n: t.requires_grad_(True) for n, t in zip(names, block(3))}
    b = spec["batch"]
    shape = [b["batch"], b["T"]]
    ids = torch.tensor(b["ids"], dtype=torch.int64).view(shape)
    targets = torch.tensor(b["targets"], dtype=torch.int64).view(shape)
    weights = torch.tensor(b["weights"], dtype=torch.float64).view(shape)

    # Case 2: weights far from init (GELU's curvature, attention away from uniform), gradients only.
    loss_p = loss_of(perturbed, ids, targets, weights, cfg)
    loss_p.backward()
    grads_p = [perturbed[n].grad.detach().clone() for n in spec["perturbed"]["gradients"]]

    loss = loss_of(params, ids, targets, weights, cfg)
    loss.backward()
    grads = [params[n].grad.detach().clone() for n in names]

    o = spec["optimizer"]
    opt = make_adamw(params, dict(lr=o["lr"], beta1=o["beta1"], beta2=o["beta2"], eps=o["eps"],
                                  weight_decay=o["weightDecay"], foreach=False))
    plist = [params[n] for n in names]
    prior_steps = int(o["priorSteps"])
    for p, m, v in zip(plist, m0, v0):
        opt.state[p] = {"step": torch.tensor(float(prior_steps)), "exp_avg": m, "exp_avg_sq": v}
    norm = torch.nn.utils.clip_grad_norm_(plist, o["gradClip"])
    opt.step()
    after = [params[n].detach().clone() for n in names]

    os.makedirs(a.out, exist_ok=True)
    out = torch.cat([t.reshape(-1) for t in grads + after]).to(torch.float32)
    with open(os.path.join(a.out, "reference.bin"), "wb") as f:
        f.write(to_bytes(out))
    with open(os.path.join(a.out, "perturbed.bin"), "wb") as f:
        f.write(to_bytes(torch.cat([t.reshape(-1) for t in grads_p]).to(torch.float32)))
    meta = {
        "loss": float(loss),
        "grad_norm": float(norm),
        "clip_scale": min(1.0, o["gradClip"] / (float(norm) + 1e-6)),
        "perturbed_loss": float(loss_p),
        "layout": "reference.bin: float32 little-endian, every parameter's gradient, then every parameter after the step, in inputs.json's parameter order; perturbed.bin: float32, the perturbed weights' gradients of inputs.json's perturbed.gradients",
        "computed_in": "float64",
        "torch": torch.__version__,
    }
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps(meta))


# ----------------------------------------------------------------------------- trajectory

def trajectory(a):
    """A multi-step training run in float64 (llm.c's test_gpt2 style): the losses and gradient norms
    of every step, and the parameters at the end. Clipping is the trainer's (scale = clip / norm when
    norm > clip; torch's clip_grad_norm_ adds 1e-6 to the norm)."""
    torch.set_num_threads(1)  # deterministic reductions
    with open(os.path.join(a.dir, "trajectory.json")) as f:
        spec = json.load(f)
    cfg = spec["config"]
    shapes = parameter_shapes(cfg)
    names = [n for n, _ in shapes]
    if names != [p["name"] for p in spec["parameters"]]:
        raise SystemExit("trajectory.json lists other parameters than this script's parameter_shapes()")
    raw = open(os.path.join(a.dir, "init.bin"), "rb").read()
    flat = torch.frombuffer(bytearray(raw), dtype=torch.float32).to(torch.float64)
    sizes = [math.prod(s) for _, s in shapes]
    if flat.numel() != sum(sizes):
        raise SystemExit(f"init.bin holds {flat.numel()} values, expected {sum(sizes)}")
    params = {n: t.reshape(s).clone().requires_grad_(True) for n, t, (_, s) in zip(names, flat.split(sizes), shapes)}
    o = spec["optimizer"]
    opt = make_adamw(params, dict(lr=spec["lrs"][0], beta1=o["beta1"], beta2=o["beta2"], eps=o["eps"],
                                  weight_decay=o["weightDecay"], foreach=False))
    plist = [params[n] for n in names]
    accum = spec["gradAccum"]
    losses, norms = [], []
    for step, lr in enumerate(spec["lrs"]):
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(accum):
            b = spec["batches"][step * accum + micro]
            shape = [b["batch"], b["T"]]
            ids = torch.tensor(b["ids"], dtype=torch.int64).view(shape)
            targets = torch.tensor(b["targets"], dtype=torch.int64).view(shape)
            weights = torch.tensor(b["weights"], dtype=torch.float64).view(shape)
            loss = loss_of(params, ids, targets, weights, cfg) / accum
            loss.backward()
            total += float(loss)
        norm = math.sqrt(sum(float((p.grad * p.grad).sum()) for p in plist))
        if o["gradClip"] > 0 and norm > o["gradClip"]:
            for p in plist:
                p.grad.mul_(o["gradClip"] / norm)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        losses.append(total)
        norms.append(norm)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "trajectory.bin"), "wb") as f:
        f.write(to_bytes(torch.cat([params[n].detach().reshape(-1) for n in names]).to(torch.float32)))
    meta = {
        "losses": losses,
        "grad_norms": norms,
        "layout": "trajectory.bin: float32 little-endian, every parameter after the last step, in trajectory.json's parameter order",
        "computed_in": "float64",
        "torch": torch.__version__,
    }
    with open(os.path.join(a.out, "trajectory-reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps({"losses": losses}))


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    pi = sub.add_parser("info")
    pi.add_argument("--threads", type=int, default=2)
    ps = sub.add_parser("serve")
    ps.add_argument("--config", required=True, help="model config as JSON text")
    ps.add_argument("--stream", required=True, help="uint16 token stream file")
    ps.add_argument("--init", help="initial weights (float32, parameter order); default: torch's own draw")
    ps.add_argument("--batch", type=int, default=16)
    ps.add_argument("--threads", type=int, default=2)
    ps.add_argument("--seed", type=int, default=0)
    ps.add_argument("--lr", type=float, default=2e-3)
    ps.add_argument("--warmup", type=int, default=100)
    ps.add_argument("--beta1", type=float, default=0.9)
    ps.add_argument("--beta2", type=float, default=0.99)
    ps.add_argument("--eps", type=float, default=1e-8)
    ps.add_argument("--weight-decay", type=float, default=0.1)
    ps.add_argument("--grad-clip", type=float, default=1.0)
    pp = sub.add_parser("parity")
    pp.add_argument("--dir", required=True)
    pp.add_argument("--out", required=True)
    pt = sub.add_parser("trajectory")
    pt.add_argument("--dir", required=True)
    pt.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.mode == "info":
        print(json.dumps(info(a.threads)))
    elif a.mode == "serve":
        serve(a)
    elif a.mode == "trajectory":
        trajectory(a)
    else:
        parity(a)


if __name__ == "__main__":
    main()
