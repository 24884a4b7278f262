#!/usr/bin/env python3
"""PyTorch side of the VAE decode bench (bench/vae.ts, `npm run bench -- --vae`): SD-VAE (AutoencoderKL
"kl-f8") decode throughput on the same GPU as the TF.js side, printed as one JSON object.

Our own plain-PyTorch implementation of the decoder described in src/vae/ (no diffusers, no ldm code):
post_quant_conv 1x1 (E -> z), conv_in 3x3 (z -> B[L-1]), mid block (ResnetBlock, single-head AttnBlock,
ResnetBlock), then the levels from the deepest to the first, each R+1 ResnetBlocks and (except level 0)
nearest x2 upsampling + conv 3x3, GroupNorm, SiLU, conv_out 3x3. GroupNorm(G, eps 1e-6, affine); ResnetBlock
h = conv2(silu(norm2(conv1(silu(norm1(x)))))), out = shortcut(x) + h (1x1 nin_shortcut when channels
change); AttnBlock softmax(q k^T C^-1/2) v over the H*W positions with 1x1 q/k/v/proj_out and the residual.
SD's configuration: ch 128, ch_mult [1, 2, 4, 4], 2 res blocks (3 per decoder level), 32 groups.

Measured as bench/vae.ts measures ours: latents [B, E, h, h] ~ N(0, 1) divided by the scaling factor
0.18215, decode, then the uint8 quantisation of the reference's sample.py (clamp(127.5 x + 128, 0, 255),
NCHW -> NHWC, uint8, copied to the host). Random weights with a fixed seed: convs N(0, 1/fan_in), norms
gamma 1 beta 0, biases 0 (the same distribution as the TF.js side; throughput does not depend on values).
float32 with TF32 off (matmul and cuDNN); optionally autocast float16 as a second row. cuDNN autotuning
(torch.backends.cudnn.benchmark) on by default, recorded. Timing: warm-up passes, then CUDA-synchronised
passes, median. Peak memory: torch.cuda.max_memory_allocated after reset_peak_memory_stats over the timed
passes (weights and activations).

Usage: python3 bench/vae_torch.py [--batch 4] [--latent 32] [--iters 5] [--warmup 2] [--precision fp32,fp16]
                                   [--tiny] [--cudnn-benchmark on|off] [--expect-decoder-params N]
"""
import argparse
import json
import statistics
import sys
import time

SD_DECODER_PARAMS = 49490179  # decoder.* of the real kl-f8 configuration (issue 16; post_quant_conv apart)
SCALING_FACTOR = 0.18215


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(msg):
    sys.stderr.write(f"[vae_torch] {msg}\n")
    sys.stderr.flush()


try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001
    emit({"available": False, "reason": f"python3 cannot import torch ({e.__class__.__name__}: {e})"})
    sys.exit(0)

# ---- model ------------------------------------------------------------------------------------------


def norm(c, groups):
    return nn.GroupNorm(groups, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = norm(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):  # [N, Cin, H, W] -> [N, Cout, H, W]
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = norm(c, groups)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):  # [N, C, H, W]
        n, c, hh, ww = x.shape
        hn = self.norm(x)
        q = self.q(hn).reshape(n, c, hh * ww).transpose(1, 2)  # [N, T, C]
        k = self.k(hn).reshape(n, c, hh * ww)  # [N, C, T]
        v = self.v(hn).reshape(n, c, hh * ww).transpose(1, 2)  # [N, T, C]
        a = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=-1)  # [N, T, T] softmax over keys
        o = torch.bmm(a, v).transpose(1, 2).reshape(n, c, hh, ww)
        return x + self.proj_out(o)


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Mid(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.block_1 = ResnetBlock(c, c, groups)
        self.attn_1 = AttnBlock(c, groups)
        self.block_2 = ResnetBlock(c, c, groups)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


class Decoder(nn.Module):
    """ldm-style names: conv_in, mid.{block_1,attn_1,block_2}, up.{i}.block.{j}, up.{i}.upsample, norm_out, conv_out."""

    def __init__(self, block_out=(128, 256, 512, 512), layers=2, groups=32, z=4, out_ch=3):
        super().__init__()
        L = len(block_out)
        ch = block_out[-1]
        self.conv_in = nn.Conv2d(z, ch, 3, padding=1)
        self.mid = Mid(ch, groups)
        ups = [None] * L
        for i in reversed(range(L)):
            level = nn.Module()
            blocks = []
            for _ in range(layers + 1):
                blocks.append(ResnetBlock(ch, block_out[i], groups))
                ch = block_out[i]
            level.block = nn.ModuleList(blocks)
            level.upsample = Upsample(ch) if i > 0 else None
            ups[i] = level
        self.up = nn.ModuleList(ups)
        self.norm_out = norm(ch, groups)
        self.conv_out = nn.Conv2d(ch, out_ch, 3, padding=1)

    def forward(self, z):  # [N, z, h, w] -> [N, Cout, 8h, 8w] (SD)
        h = self.mid(self.conv_in(z))
        for i in reversed(range(len(self.up))):
            for b in self.up[i].block:
                h = b(h)
            if self.up[i].upsample is not None:
                h = self.up[i].upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VaeDecode(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.post_quant_conv = nn.Conv2d(cfg["embed"], cfg["z"], 1)
        self.decoder = Decoder(cfg["block_out"], cfg["layers"], cfg["groups"], cfg["z"], 3)

    def forward(self, latents):  # diffusion latents [N, E, h, w] (x scaling factor) -> image [N, 3, H, W]
        return self.decoder(self.post_quant_conv(latents / SCALING_FACTOR))


def init_random(m):
    """Convs N(0, 1/fan_in), biases 0; GroupNorm keeps its gamma 1, beta 0 (as bench/vae.ts)."""
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d):
                fan_in = mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
                mod.weight.normal_(0.0, fan_in ** -0.5)
                mod.bias.zero_()


def quantize_uint8(x):
    """sample.py: clamp(127.5 x + 128, 0, 255) -> NHWC uint8 on the host (the cast truncates)."""
    return torch.clamp(127.5 * x + 128.0, 0, 255).permute(0, 2, 3, 1).to("cpu", dtype=torch.uint8)


SD = {"block_out": (128, 256, 512, 512), "layers": 2, "groups": 32, "z": 4, "embed": 4}
TINY = {"block_out": (32, 64), "layers": 1, "groups": 8, "z": 4, "embed": 4}


def param_counts(cfg, expected):
    with torch.device("meta"):
        m = VaeDecode(cfg)
    dec = sum(p.numel() for p in m.decoder.parameters())
    pq = sum(p.numel() for p in m.post_quant_conv.parameters())
    ok = (dec == expected) if expected is not None else None
    log(f"decoder parameters {dec} vs expected {expected}: {'OK' if ok else ('no reference' if ok is None else 'MISMATCH')}")
    return {"decoder": dec, "postQuantConv": pq, "expectedDecoder": expected, "ok": ok}


def bench(cfg, batch, h, warmup, iters, precision, dev):
    torch.manual_seed(0)
    model = VaeDecode(cfg).to(dev).eval()
    init_random(model)
    z = torch.randn(batch, cfg["embed"], h, h, device=dev, generator=torch.Generator(device=dev).manual_seed(2))
    amp = precision == "fp16"

    @torch.no_grad()
    def one_pass():
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            img = model(z)
        return quantize_uint8(img.float())  # the host copy synchronises; sync() below makes it explicit

    for _ in range(warmup):
        one_pass()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        u8 = one_pass()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated()
    med = statistics.median(times)
    res = {
        "precision": "float32 (TF32 off)" if not amp else "autocast float16",
        "key": precision, "batch": batch, "image": f"{u8.shape[1]}x{u8.shape[2]}", "warmup": warmup,
        "seconds": times, "medianSeconds": med, "msPerBatch": med * 1000, "imagesPerSecond": batch / med, "peakBytes": peak,
    }
    del model, z
    torch.cuda.empty_cache()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--latent", type=int, default=32, help="latent side h (image side 8h for SD)")
    ap.add_argument("--iters", type=int, default=5, help="timed passes (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--precision", default="fp32,fp16", help="rows: fp32 (TF32 off) and/or fp16 (autocast)")
    ap.add_argument("--tiny", action="store_true", help="ch 32, [1, 2], 1 res block, 8 groups (as bench/vae.ts --tiny)")
    ap.add_argument("--cudnn-benchmark", default="on", choices=("on", "off"))
    ap.add_argument("--expect-decoder-params", type=int, default=None, help="default: 49490179 for the real configuration")
    a = ap.parse_args()
    cfg = TINY if a.tiny else SD
    expected = a.expect_decoder_params if a.expect_decoder_params is not None else (None if a.tiny else SD_DECODER_PARAMS)
    precisions = [p for p in a.precision.split(",") if p]
    bad = [p for p in precisions if p not in ("fp32", "fp16")]
    if bad or not precisions:
        emit({"available": False, "reason": f"--precision: '{','.join(bad) or '(empty)'}' is not fp32 or fp16"})
        return
    counts = param_counts(cfg, expected)
    base = {"config": "tiny (ch 32, [1,2], 1 res block)" if a.tiny else "SD VAE kl-f8", "params": counts}
    if not torch.cuda.is_available():
        emit({"available": False, "reason": "torch has no CUDA device here", "torch": torch.__version__, **base})
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = a.cudnn_benchmark == "on"
    dev = torch.device("cuda")
    res = {
        "available": True, "what": "vae decode + uint8 quantisation", "torch": torch.__version__, "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0), "tf32": {"matmul": False, "cudnn": False},
        "cudnnBenchmark": torch.backends.cudnn.benchmark, **base, "rows": [], "errors": [],
    }
    for p in precisions:
        try:
            log(f"decode {p}, batch {a.batch}, latent {a.latent}x{a.latent}")
            res["rows"].append(bench(cfg, a.batch, a.latent, a.warmup, a.iters, p, dev))
        except Exception as e:  # noqa: BLE001  (recorded: one failing row does not end the run)
            res["errors"].append(f"{p}: {e.__class__.__name__}: {e}")
            torch.cuda.empty_cache()
    emit(res)


if __name__ == "__main__":
    main()
