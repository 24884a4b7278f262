// The diffusion package: schedules, respacing, the process, losses, samplers, CFG, budgets.
export * from './schedules.js';
export * from './respace.js';
export * from './process.js';
export * from './losses.js';
export type * from './denoiser.js';
export * from './samplers.js';
export * from './cfg.js';
export * from './budget.js';
