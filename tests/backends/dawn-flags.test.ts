// Dawn's instance flags (src/backends/webgpu/device.ts dawnFlags): the toggles of FPDM_DAWN_TOGGLES join
// the enabled ones, and timestamp quantization is off on every device (GPU timings at full resolution).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DISABLED_DAWN_TOGGLES, MIXED_DAWN_FLAGS, dawnFlags } from '../../src/backends/webgpu/device.js';

function withToggles<T>(value: string | undefined, f: () => T): T {
  const prev = process.env.FPDM_DAWN_TOGGLES;
  if (value === undefined) delete process.env.FPDM_DAWN_TOGGLES;
  else process.env.FPDM_DAWN_TOGGLES = value;
  try {
    return f();
  } finally {
    if (prev === undefined) delete process.env.FPDM_DAWN_TOGGLES;
    else process.env.FPDM_DAWN_TOGGLES = prev;
  }
}

test('dawnFlags turns timestamp quantization off and adds FPDM_DAWN_TOGGLES to the enabled toggles', () => {
  assert.deepEqual(DISABLED_DAWN_TOGGLES, ['timestamp_quantization']);
  assert.deepEqual(
    withToggles(undefined, () => dawnFlags([])),
    ['disable-dawn-features=timestamp_quantization'],
  );
  assert.deepEqual(
    withToggles(undefined, () => dawnFlags(MIXED_DAWN_FLAGS)),
    [...MIXED_DAWN_FLAGS, 'disable-dawn-features=timestamp_quantization'],
  );
  assert.deepEqual(
    withToggles(' disable_robustness, allow_unsafe_apis ,', () => dawnFlags(MIXED_DAWN_FLAGS)),
    [
      'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness',
      'disable-dawn-features=timestamp_quantization',
    ],
  );
  assert.deepEqual(
    withToggles('skip_validation', () => dawnFlags([])),
    ['enable-dawn-features=skip_validation', 'disable-dawn-features=timestamp_quantization'],
  );
});
