# Prints each training row's GPU ms per step and the kernel families whose names match the arguments
# (substrings), from bench JSON files: python3 families.py FILE... -- attention scores softmax pv
import json, sys
args = sys.argv[1:]
files, pats = (args[: args.index('--')], args[args.index('--') + 1 :]) if '--' in args else (args, [])
for f in files:
    d = json.load(open(f))
    for r in d.get('train', []):
        o = r['ours']
        k = o['profile']['kernels']
        fam = [f"{t['name']} {t['count']} {t['ms']:.2f}" for t in k['top'] if any(p in t['name'] for p in pats)]
        print(f, o['model'], f"{o['imagesPerSecond']:.1f} img/s", f"GPU {k['gpuMs']:.1f}", '; '.join(fam))
