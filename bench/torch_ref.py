#!/usr/bin/env python3
"""PyTorch side of `npm run bench`: DiT / FPDM training-step and sampling throughput, peak memory, and
Inception images/s, measured on the same GPU as the TF.js side, printed as one JSON object.

Our own PyTorch implementation of the architectures described in DESIGN.md §3 and src/models (the
reference code of the papers is NOT used or copied): adaLN-Zero DiT blocks (LayerNorm without affine,
eps 1e-6; attention with qkv bias; MLP ratio 4, tanh-GELU), Conv2d patch embedding, fixed 2-D sin-cos
position embedding (a buffer, not counted), timestep embedder (sinusoidal 256 -> Linear -> SiLU ->
Linear), label embedder with a null-class row, final layer (adaLN shift/scale + Linear); FPDM: pre
blocks, input injection Linear D->D, fixed-point block preceded by fc1 2D->2D, tanh-GELU, fc2 2D->D,
post blocks. S-JFB training: no-grad iterations under torch.no_grad, then with-grad iterations.

Conventions: float32, TF32 off, no gradient checkpointing unless --grad-checkpoint on (torch.utils.checkpoint per block); AdamW (lr 1e-4, wd 0) + an EMA copy of the
weights updated every step (as a training run keeps one); loss = hybrid (eps MSE + the VB term with
the mean frozen) of the learned-range variance parameterisation, 1000 linear-beta steps. Timing: CUDA
synchronised, median over timed steps after warm-up. Peak memory: torch.cuda.max_memory_allocated after
reset_peak_memory_stats, absolute (weights, grads, AdamW moments, EMA copy and activations).

Precision (--precision fp32,fp16; default fp32): each training and sampling case is measured once per
precision, its rows tagged "key" (fp32 / fp16) and "precision" (the dtype in words). fp32: float32 with
TF32 off, as above. fp16: the model's forward under torch.autocast("cuda", dtype=torch.float16) (f16
matmul operands, f32 accumulation in cuBLAS; layer norms and softmax in f32 as autocast chooses) with the
weights, AdamW moments and EMA kept in float32 (master weights), the loss computed in float32 from the
model output outside autocast, and dynamic loss scaling by GradScaler (torch.amp.GradScaler("cuda"),
torch.cuda.amp.GradScaler() before torch 2.3): a step whose gradients hold inf/NaN is skipped and the
scale halved (counted in "gradScaler"). Sampling: the forward under the same autocast, the DDPM update
in float32. Rows come in the order fp32 then fp16 for each case, so a reader that takes the first row of
a model gets the float32 one.

Usage: python3 bench/torch_ref.py --json --suite train,sample,inception [--quick] [--steps N] [--precision fp32,fp16]
"""
import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
import warnings

# stdout carries the one JSON object: anything else printed on it (a library's print) goes to stderr
_JSON_OUT = sys.stdout
sys.stdout = sys.stderr


def emit(obj):
    _JSON_OUT.write(json.dumps(obj) + "\n")
    _JSON_OUT.flush()


def log(msg):
    sys.stderr.write(f"[torch_ref] {msg}\n")
    sys.stderr.flush()


try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.utils.checkpoint
except Exception as e:  # noqa: BLE001
    emit({"available": False, "reason": f"python3 cannot import torch ({e.__class__.__name__}: {e})"})
    sys.exit(0)

# ---- model ------------------------------------------------------------------------------------------

SIZES = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}
# timed sampling passes per case (the median is reported), as bench/main.ts SAMPLE_REPEATS
SAMPLE_REPEATS = 3


def pos_embed_2d(dim, grid):
    """[T, D] sin-cos: first D/2 channels encode the column w, last D/2 the row h; [sin, cos] each."""
    q = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(q, dtype=torch.float64) / q))
    hh, ww = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing="ij")
    w = ww.reshape(-1, 1) * omega
    h = hh.reshape(-1, 1) * omega
    return torch.cat([torch.sin(w), torch.cos(w), torch.sin(h), torch.cos(h)], 1).float()


def modulate(x, shift, scale):  # x [N, T, D], shift/scale [N, D]
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):  # [N, T, D]
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [N, K, T, Dh]
        a = torch.softmax((q * (d // self.heads) ** -0.5) @ k.transpose(-2, -1), dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, d, heads, ratio=4):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, heads)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(d, int(d * ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))

    def forward(self, x, c):
        sa, ca, ga, sm, cm, gm = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + ga.unsqueeze(1) * self.attn(modulate(self.norm1(x), sa, ca))
        return x + gm.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sm, cm))


class Final(nn.Module):
    def __init__(self, d, patch, co):
        super().__init__()
        self.norm_final = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(d, patch * patch * co)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class TEmbed(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.register_buffer("freqs", torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32) / 128), persistent=False)

    def forward(self, t):
        a = t.float()[:, None] * self.freqs[None]
        return self.mlp(torch.cat([torch.cos(a), torch.sin(a)], -1))


class YEmbed(nn.Module):
    def __init__(self, classes, d, drop):
        super().__init__()
        self.embedding_table = nn.Embedding(classes + (1 if drop > 0 else 0), d)

    def forward(self, y):
        return self.embedding_table(y)


class PatchEmbed(nn.Module):
    def __init__(self, c, d, p):
        super().__init__()
        self.proj = nn.Conv2d(c, d, kernel_size=p, stride=p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # [N, T, D]


class Net(nn.Module):
    """DiT (fpdm=False) or FPDM (fpdm=True, pre/post blocks around one weight-tied block)."""

    def __init__(self, size="S", patch=2, fpdm=False, pre=1, post=1, input_size=32, in_ch=4, classes=1000, learn_sigma=True, drop=0.1):
        super().__init__()
        depth, d, heads = SIZES[size]
        self.patch, self.co, self.fpdm = patch, in_ch * (2 if learn_sigma else 1), fpdm
        self.depth = depth
        self.ckpt = False  # gradient checkpointing: torch.utils.checkpoint around each block / with-grad step
        self.x_embedder = PatchEmbed(in_ch, d, patch)
        self.t_embedder = TEmbed(d)
        self.y_embedder = YEmbed(classes, d, drop)
        self.register_buffer("pos_embed", pos_embed_2d(d, input_size // patch)[None], persistent=False)
        if fpdm:
            self.blocks_pre = nn.ModuleList([Block(d, heads) for _ in range(pre)])
            self.block_pre_projection = nn.Linear(d, d)
            self.block_fixed_point_projection_fc1 = nn.Linear(2 * d, 2 * d)
            self.block_fixed_point_projection_fc2 = nn.Linear(2 * d, d)
            self.block_fixed_point = Block(d, heads)
            self.blocks_post = nn.ModuleList([Block(d, heads) for _ in range(post)])
        else:
            self.blocks = nn.ModuleList([Block(d, heads) for _ in range(depth)])
        self.final_layer = Final(d, patch, self.co)

    def unpatchify(self, x):  # [N, T, P*P*Co] -> [N, Co, H, W]
        n, t, _ = x.shape
        g, p, c = int(round(t ** 0.5)), self.patch, self.co
        return x.reshape(n, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, g * p, g * p)

    def embed(self, x, t, y):
        return self.x_embedder(x) + self.pos_embed, self.t_embedder(t) + self.y_embedder(y)

    def fp_step(self, z, inj, c):
        u = self.block_fixed_point_projection_fc2(F.gelu(self.block_fixed_point_projection_fc1(torch.cat([z, inj], -1)), approximate="tanh"))
        return self.block_fixed_point(u, c)

    def forward(self, x, t, y, no_grad_iters=0, iters=1, state=None):
        """DiT: the forward. FPDM: S-JFB (no_grad_iters without graph, then `iters` with) or sampling
        (`iters` from `state` when given, for solution reuse). Returns (out, z) (z None for DiT)."""
        h, c = self.embed(x, t, y)
        run = (lambda f, *a: torch.utils.checkpoint.checkpoint(f, *a, use_reentrant=False)) if self.ckpt and torch.is_grad_enabled() else (lambda f, *a: f(*a))
        if not self.fpdm:
            for b in self.blocks:
                h = run(b, h, c)
            return self.unpatchify(self.final_layer(h, c)), None
        for b in self.blocks_pre:
            h = run(b, h, c)
        inj = self.block_pre_projection(h)
        z = h if state is None else state
        if no_grad_iters > 0:
            with torch.no_grad():
                for _ in range(no_grad_iters):
                    z = self.fp_step(z, inj, c)
            z = z.detach()
        for _ in range(iters):
            z = run(self.fp_step, z, inj, c)
        o = z
        for b in self.blocks_post:
            o = run(b, o, c)
        return self.unpatchify(self.final_layer(o, c)), z


def param_count(m):
    return sum(p.numel() for p in m.parameters())


def display_name(size, fpdm):
    return f"FPDM(DiT-{size}/2, pre=1, post=1)" if fpdm else f"DiT-{size}/2"


# ---- diffusion (float64 schedule, learned-range variance, hybrid loss) ------------------------------

class Diffusion:
    def __init__(self, dev, steps=1000, use_steps=None):
        betas = torch.linspace(1e-4, 0.02, steps, dtype=torch.float64)
        ab = torch.cumprod(1 - betas, 0)
        if use_steps is not None:  # respacing: keep the chosen timesteps, recompute betas from alphaBar
            last, nb = 1.0, []
            for i in use_steps:
                nb.append(1 - ab[i].item() / last)
                last = ab[i].item()
            betas = torch.tensor(nb, dtype=torch.float64)
            ab = torch.cumprod(1 - betas, 0)
        self.n = len(betas)
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
        post_var = betas * (1 - ab_prev) / (1 - ab)
        f = lambda a: a.to(dev)  # noqa: E731  (kept float64 on the device, cast on use)
        self.sqrt_ab, self.sqrt_1mab = f(ab.sqrt()), f((1 - ab).sqrt())
        self.sqrt_recip_ab, self.sqrt_recipm1_ab = f((1 / ab).sqrt()), f((1 / ab - 1).sqrt())
        self.post_log_var = f(torch.log(torch.cat([post_var[1:2], post_var[1:]])))
        self.log_betas = f(torch.log(betas))
        self.c1 = f(betas * ab_prev.sqrt() / (1 - ab))
        self.c2 = f((1 - ab_prev) * (1 - betas).sqrt() / (1 - ab))
        self.timestep_map = torch.tensor(use_steps if use_steps is not None else list(range(steps)), device=dev)

    @staticmethod
    def g(a, t):
        return a[t].float().view(-1, 1, 1, 1)

    def q_sample(self, x0, t, eps):
        return self.g(self.sqrt_ab, t) * x0 + self.g(self.sqrt_1mab, t) * eps

    def posterior(self, x0, xt, t):
        return self.g(self.c1, t) * x0 + self.g(self.c2, t) * xt, self.g(self.post_log_var, t)

    def p_mean_var(self, out, xt, t):
        c = xt.shape[1]
        eps, v = out[:, :c], out[:, c:]
        frac = (v + 1) / 2
        log_var = frac * self.g(self.log_betas, t) + (1 - frac) * self.g(self.post_log_var, t)
        x0 = self.g(self.sqrt_recip_ab, t) * xt - self.g(self.sqrt_recipm1_ab, t) * eps
        mean, _ = self.posterior(x0, xt, t)
        return mean, log_var

    def hybrid_loss(self, out, x0, xt, t, eps):
        c = x0.shape[1]
        mse = ((eps - out[:, :c]) ** 2).mean(dim=(1, 2, 3))
        frozen = torch.cat([out[:, :c].detach(), out[:, c:]], 1)
        mean, log_var = self.p_mean_var(frozen, xt, t)
        tmean, tlog = self.posterior(x0, xt, t)
        kl = 0.5 * (-1 + log_var - tlog + torch.exp(tlog - log_var) + (tmean - mean) ** 2 * torch.exp(-log_var))
        kl = kl.mean(dim=(1, 2, 3)) / math.log(2.0)
        # t = 0: the discretised-Gaussian NLL in the reference; the same amount of work is a log-prob term
        nll = 0.5 * ((x0 - mean) ** 2 * torch.exp(-log_var) + log_var + math.log(2 * math.pi)).mean(dim=(1, 2, 3)) / math.log(2.0)
        vb = torch.where(t == 0, nll, kl)
        return (mse + vb).mean()


def space_timesteps(total, n):
    """Evenly spaced section of n steps out of total (one section), as the respacing '20' does."""
    frac = (total - 1) / (n - 1) if n > 1 else 0
    return sorted({round(i * frac) for i in range(n)})


# ---- measurements -----------------------------------------------------------------------------------

def sync():
    torch.cuda.synchronize()


PRECISIONS = {"fp32": "float32 (TF32 off)", "fp16": "autocast float16"}


def forward_context(precision):
    """The context the model's forward runs in: autocast float16 for fp16, nothing for fp32."""
    return torch.autocast("cuda", dtype=torch.float16) if precision == "fp16" else contextlib.nullcontext()


def make_grad_scaler():
    """Dynamic loss scaling with PyTorch's defaults (initial scale 2^16, halved on inf/NaN gradients,
    doubled after 2000 good steps). torch.amp.GradScaler("cuda") from torch 2.3 on; before it only
    torch.cuda.amp.GradScaler() exists (deprecated from 2.4 on with a FutureWarning, not reached there)."""
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        return amp.GradScaler("cuda"), "torch.amp.GradScaler('cuda')"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.cuda.amp.GradScaler(), "torch.cuda.amp.GradScaler()"


def bench_train(size, fpdm, batch, warmup, steps, no_grad, with_grad, dev, ckpt=False, precision="fp32"):
    torch.manual_seed(0)
    model = Net(size, fpdm=fpdm).to(dev)
    model.ckpt = ckpt
    ema = Net(size, fpdm=fpdm).to(dev)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0)
    diff = Diffusion(dev)
    params, ema_params = list(model.parameters()), list(ema.parameters())
    x0 = torch.randn(batch, 4, 32, 32, device=dev)
    y = torch.randint(0, 1000, (batch,), device=dev)
    scaler, scaler_api = make_grad_scaler() if precision == "fp16" else (None, None)
    scale = scaler.get_scale() if scaler else None
    init_scale, skipped = scale, 0
    times = []
    sync()
    torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        t = torch.randint(0, 1000, (batch,), device=dev)
        eps = torch.randn_like(x0)
        xt = diff.q_sample(x0, t, eps)
        with forward_context(precision):
            out, _ = model(xt, t, y, no_grad_iters=no_grad, iters=with_grad)
        loss = diff.hybrid_loss(out.float(), x0, xt, t, eps)  # float32 (out.float() is out itself at fp32)
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:  # unscales the gradients, skips the step when they hold inf/NaN, then adjusts the scale
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        with torch.no_grad():
            torch._foreach_mul_(ema_params, 0.9999)
            torch._foreach_add_(ema_params, params, alpha=1 - 0.9999)
        loss.item()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
        if scaler is not None:  # outside the timed span: a lowered scale means this step was skipped
            now = scaler.get_scale()
            skipped += 1 if (i >= warmup and now < scale) else 0
            scale = now
    peak = torch.cuda.max_memory_allocated()
    res = {
        "model": display_name(size, fpdm), "params": param_count(model), "batch": batch,
        "noGradIters": no_grad if fpdm else None, "withGradIters": with_grad if fpdm else None,
        "warmup": warmup, "steps": steps, "seconds": times, "medianSeconds": statistics.median(times),
        "imagesPerSecond": batch / statistics.median(times), "peakBytes": peak, "gradCheckpoint": ckpt,
        "key": precision, "precision": PRECISIONS[precision],
    }
    if scaler is not None:
        res["gradScaler"] = {
            "api": scaler_api, "enabled": scaler.is_enabled(), "initScale": init_scale, "finalScale": scale,
            "growthInterval": scaler.get_growth_interval() if scaler.is_enabled() else None, "skippedTimedSteps": skipped,
        }
    del model, ema, opt, scaler
    torch.cuda.empty_cache()
    return res


@torch.no_grad()
def bench_sample(size, fpdm, batch, steps, iters, reuse, dev, repeats, precision="fp32"):
    torch.manual_seed(0)
    model = Net(size, fpdm=fpdm).to(dev).eval()
    diff = Diffusion(dev, use_steps=space_timesteps(1000, steps))
    y = torch.randint(0, 1000, (batch,), device=dev)

    def one_pass():
        x = torch.randn(batch, 4, 32, 32, device=dev)
        state = None
        for i in reversed(range(diff.n)):
            ti = torch.full((batch,), i, device=dev, dtype=torch.long)
            tm = diff.timestep_map[ti]
            with forward_context(precision):
                out, z = model(x, tm, y, iters=iters, state=state if reuse else None)
            state = z if reuse else None
            mean, log_var = diff.p_mean_var(out.float(), x, ti)  # the DDPM update in float32
            x = mean + (torch.exp(0.5 * log_var) * torch.randn_like(x) if i > 0 else 0)
        return x

    one_pass()  # warm-up
    sync()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        one_pass().sum().item()
        sync()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated()
    res = {
        "model": display_name(size, fpdm), "batch": batch, "steps": steps, "iters": iters if fpdm else None, "reuse": reuse,
        "blockEvaluations": steps * ((2 + iters) if fpdm else model.depth),
        "seconds": times, "medianSeconds": statistics.median(times), "imagesPerSecond": batch / statistics.median(times), "peakBytes": peak,
        "key": precision, "precision": PRECISIONS[precision],
    }
    del model
    torch.cuda.empty_cache()
    return res


@torch.no_grad()
def bench_inception(batch, warmup, repeats, dev):
    import torchvision
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False).to(dev).eval()
    x = torch.rand(batch, 3, 299, 299, device=dev) * 2 - 1
    for _ in range(warmup):
        net(x).sum().item()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        net(x).sum().item()
        sync()
        times.append(time.perf_counter() - t0)
    return {
        "network": "torchvision inception_v3(weights=None, aux_logits=False, init_weights=False), eval, 299x299 (not pytorch-fid's FID variant; same convolution work)",
        "torchvision": torchvision.__version__, "batch": batch, "seconds": times, "medianSeconds": statistics.median(times),
        "imagesPerSecond": batch / statistics.median(times),
    }


def check_param_counts(path):
    """Builds each model on the meta device and compares its parameter count with param_counts.json."""
    expected = {}
    if path and os.path.exists(path):
        with open(path) as f:
            expected = json.load(f)["param_counts_latent32x32x4_1000cls_learn_sigma"]
    out = []
    for size in ("S", "XL"):
        for fpdm in (False, True):
            with torch.device("meta"):
                n = param_count(Net(size, fpdm=fpdm))
            name = display_name(size, fpdm)
            exp = expected.get(name)
            out.append({"model": name, "params": n, "expected": exp, "ok": (exp == n) if exp is not None else None})
            log(f"param count {name}: {n} vs param_counts.json {exp}: {'OK' if exp == n else ('no reference' if exp is None else 'MISMATCH')}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout (always on)")
    ap.add_argument("--suite", default="train,sample,inception")
    ap.add_argument("--quick", action="store_true", help="S/2 only, fewer steps")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps (S/2); XL takes max(2, steps // 3)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--no-grad-iters", type=int, default=5)
    ap.add_argument("--with-grad-iters", type=int, default=7)
    ap.add_argument("--sample-budget", default="S=20,XL=20", help="DiT-step budget measured per size, e.g. S=20,XL=2")
    ap.add_argument("--sizes", default=None, help="model sizes, e.g. S or S,XL (default S,XL; --quick: S)")
    ap.add_argument("--grad-checkpoint", default="off", help="training variants: off, on, or off,on")
    ap.add_argument("--precision", default="fp32", help="rows per case: fp32 (float32, TF32 off) and/or fp16 (autocast float16 + GradScaler), e.g. fp32,fp16")
    ap.add_argument("--param-counts", default=os.environ.get("FPDM_PARAM_COUNTS", os.path.join(os.path.dirname(os.path.abspath(__file__)), "param_counts.reference.json")))
    a = ap.parse_args()
    asked = [p for p in a.precision.split(",") if p]
    bad = [p for p in asked if p not in PRECISIONS]
    if bad or not asked:
        emit({"available": False, "reason": f"--precision: '{','.join(bad) or '(empty)'}' is not fp32 or fp16"})
        return
    precisions = [p for p in PRECISIONS if p in asked]  # fp32 first: see the header
    counts = check_param_counts(a.param_counts)
    if not torch.cuda.is_available():
        emit({"available": False, "reason": "torch has no CUDA device here", "torch": torch.__version__, "paramCounts": counts})
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    suites = set(a.suite.split(","))
    sizes = a.sizes.split(",") if a.sizes else (["S"] if a.quick else ["S", "XL"])
    ckpts = [v == "on" for v in ("on", "off") if v in a.grad_checkpoint.split(",")]
    budgets = dict(kv.split("=") for kv in a.sample_budget.split(","))
    res = {
        "available": True, "torch": torch.__version__, "cuda": torch.version.cuda, "device": torch.cuda.get_device_name(0),
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
        "paramCounts": counts, "precisions": precisions,
        "autocast": {
            "dtype": "float16", "device": "cuda",
            "fp16ReducedPrecisionReduction": getattr(torch.backends.cuda.matmul, "allow_fp16_reduced_precision_reduction", None),
        } if "fp16" in precisions else None,
        "train": [], "sample": [], "inception": None, "errors": [],
    }
    for size in sizes:
        steps = a.steps if size == "S" else max(1, a.steps // 3)
        for ckpt in ckpts:
            for fpdm in (False, True):
                if "train" in suites:
                    for p in precisions:
                        tag = "" if p == "fp32" else f" ({PRECISIONS[p]})"
                        try:
                            log(f"train {display_name(size, fpdm)}{tag}" + (" (checkpointing)" if ckpt else ""))
                            res["train"].append(bench_train(size, fpdm, a.batch, a.warmup if size == "S" else 1, steps, a.no_grad_iters, a.with_grad_iters, dev, ckpt, p))
                        except Exception as e:  # noqa: BLE001  (recorded: one failing case does not end the suite)
                            res["errors"].append(f"train {display_name(size, fpdm)}{tag}: {e.__class__.__name__}: {e}")
                            torch.cuda.empty_cache()
        if "sample" in suites:
            k = int(budgets.get(size, 20))
            depth = SIZES[size][0]
            # a budget of k DiT steps = depth*k block evaluations; FPDM with 1 pre + 1 post block:
            # steps*(2 + iters) = depth*k (XL, k=20: 20x26 and 40x12; S: 20x10 and 40x4)
            for fpdm, st, reuse in ((False, k, False), (True, k, False), (True, 2 * k, True)):
                it = depth * k // st - 2 if fpdm else 0
                for p in precisions:
                    tag = "" if p == "fp32" else f" ({PRECISIONS[p]})"
                    try:
                        log(f"sample {display_name(size, fpdm)} {st} steps" + (f" x {it} iters{' reuse' if reuse else ''}" if fpdm else "") + tag)
                        res["sample"].append(bench_sample(size, fpdm, a.batch, st, it, reuse, dev, SAMPLE_REPEATS, p))
                    except Exception as e:  # noqa: BLE001
                        res["errors"].append(f"sample {display_name(size, fpdm)}{tag}: {e.__class__.__name__}: {e}")
                        torch.cuda.empty_cache()
    if "inception" in suites:
        try:
            log("inception")
            res["inception"] = bench_inception(50, 2, 5, dev)
        except Exception as e:  # noqa: BLE001
            res["errors"].append(f"inception: {e.__class__.__name__}: {e}")
    emit(res)


if __name__ == "__main__":
    main()
