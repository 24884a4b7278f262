#!/usr/bin/env node
// Runs the test suites that have webgpu cases on the webgpu backend alone (`npm test` covers cpu and
// wasm), through Dawn over a Vulkan driver: on a machine without a GPU, SwiftShader (Vulkan on the CPU,
// shipped in Debian's chromium-common package; apt-get install --no-install-recommends libvulkan1
// chromium-common).
//   suites: every tests/**/*.test.ts that imports TEST_BACKENDS from tests/helpers.ts, and every
//           tests/backends/webgpu-*.test.ts
//   driver: FPDM_VULKAN_ICD (a Vulkan ICD manifest, e.g. a GPU vendor's) when set, else SwiftShader's
//           manifest where Debian puts it
// Usage: node scripts/test-webgpu.mjs [substring filter ...]
//        node scripts/test-webgpu.mjs --check   prints the driver manifest, or why the suites cannot
//                                               run here (exit 1)
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { testFiles } from './test-files.mjs';

const SWIFTSHADER_ICDS = ['/usr/lib/chromium/vk_swiftshader_icd.json']; // Debian's chromium-common

/** The Vulkan ICD manifest to use, or why the webgpu suites cannot run on this machine. */
function findDriver() {
  if (process.platform !== 'linux')
    return { reason: `a Vulkan driver is looked for on Linux only (this is ${process.platform})` };
  try {
    createRequire(import.meta.url).resolve('webgpu');
  } catch {
    return { reason: "the optional package 'webgpu' (Dawn for Node) is not installed: npm install" };
  }
  try {
    process.dlopen({ exports: {} }, 'libvulkan.so.1'); // a plain library loads, then is refused as an addon
  } catch (e) {
    if (/cannot open shared object/.test(e.message))
      return { reason: 'no Vulkan loader (libvulkan.so.1): apt-get install libvulkan1' };
  }
  const override = process.env.FPDM_VULKAN_ICD;
  if (override) {
    return existsSync(override)
      ? { icd: override }
      : { reason: `FPDM_VULKAN_ICD names ${override}, which does not exist` };
  }
  const icd = SWIFTSHADER_ICDS.find((p) => existsSync(p));
  return icd
    ? { icd }
    : {
        reason: `no SwiftShader Vulkan driver (${SWIFTSHADER_ICDS.join(', ')}): apt-get install --no-install-recommends chromium-common, or set FPDM_VULKAN_ICD to a Vulkan ICD manifest`,
      };
}

/** The suites with webgpu cases: those that loop over TEST_BACKENDS, and the webgpu kernel tests. */
function webgpuSuites() {
  return testFiles('tests').filter(
    (f) =>
      /^tests\/backends\/webgpu-[^/]*\.test\.ts$/.test(f) ||
      /import\s*\{[^}]*\bTEST_BACKENDS\b[^}]*\}\s*from\s*'[./]*helpers\.js'/.test(readFileSync(f, 'utf8')),
  );
}

const args = process.argv.slice(2);
const driver = findDriver();
if (args[0] === '--check') {
  console.log(driver.icd ?? driver.reason);
  process.exit(driver.icd ? 0 : 1);
}
if (!driver.icd) {
  console.error(`cannot run the webgpu suites: ${driver.reason}`);
  process.exit(1);
}
const files = webgpuSuites().filter((f) => args.length === 0 || args.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(`no webgpu suite matches ${args.join(' ')}`);
  process.exit(1);
}
console.log(`webgpu suites on the Vulkan driver ${driver.icd}:\n  ${files.join('\n  ')}`);
const env = {
  ...process.env,
  FPDM_TEST_BACKENDS: 'webgpu',
  // VK_ICD_FILENAMES is the same variable for Vulkan loaders older than 1.3.207
  VK_DRIVER_FILES: driver.icd,
  VK_ICD_FILENAMES: driver.icd,
  // no implicit layers: Mesa's device-select layer (installed with Mesa's Vulkan drivers) would try to
  // reach a Wayland display and print "XDG_RUNTIME_DIR is invalid or not set"; with one driver there is
  // nothing to select. NODEVICE_SELECT is that layer's own switch, for loaders older than 1.3.234.
  VK_LOADER_LAYERS_DISABLE: '~implicit~',
  NODEVICE_SELECT: '1',
};
// SwiftShader runs the full Inception network at about a minute per image on 2 cores (all 6: ~400 s)
if (/swiftshader/i.test(driver.icd)) env.FPDM_TEST_INCEPTION_GPU_IMAGES ??= '1';
// one file at a time: SwiftShader spreads each kernel over every core, and two files at once took 386 s
// against 236 s one at a time on a 2-core machine
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], {
  stdio: 'inherit',
  env,
});
process.exit(r.status ?? 1);
