// What the mixed-precision webgpu suites skip on: not on webgpu (SKIP), or a GPU without f16 subgroup
// matrices (NO_TENSOR_CORES, with the reason), and the adapter's support as mixedPrecisionSupport says it.
import { mixedPrecisionSupport } from '../../src/backends/webgpu/device.js';
import { TEST_BACKENDS } from '../helpers.js';

export const onGpu = TEST_BACKENDS.includes('webgpu');
export const SKIP = 'webgpu only: npm run test:webgpu runs it (on a GPU, or on SwiftShader without one)';
export const support = onGpu ? await mixedPrecisionSupport() : undefined;
export const NO_TENSOR_CORES = support?.ok
  ? false
  : onGpu
    ? `this GPU cannot run mixed precision (${support?.ok === false ? support.reason : ''})`
    : SKIP;
