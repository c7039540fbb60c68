/**
 * Champion / challenger: which model serves after a training, and how ready a forecast is. Pure.
 *
 * A new model (the challenger) replaces the serving one (the champion) only if it has a lower MAE than
 * both the champion and persistence on the same newest held-out windows. Whatever serves must beat
 * persistence there; if no model does, the best baseline serves and the forecast is `degraded`.
 */
import type { BaselineMethod } from './baselines.js';
import { bestBaseline, type Evaluation, type ServedBy } from './evaluate.js';

export type Readiness = 'warming_up' | 'ready' | 'degraded';

export interface PromotionDecision {
  promoted: boolean;
  /** The model version that serves after this training (null: none, a baseline serves). */
  servingVersion: string | null;
  servedBy: ServedBy;
  /** Whether the serving model beats persistence on the evaluation windows. */
  modelBeatsPersistence: boolean;
  bestBaseline: { method: BaselineMethod; mae: number } | null;
  reason: string;
  /**
   * Set when an operator's pin (`forecastd models --promote/--rollback`) holds: the pinned version, which keeps
   * serving. A `promoted` model was then written to the serving store but serves only once the pin is cleared.
   */
  pinned?: string | null;
}

const fmt = (value: number) => (Math.abs(value) >= 100 ? value.toFixed(1) : value.toPrecision(4));

export function decidePromotion(input: {
  evaluation: Evaluation;
  challengerVersion: string;
  /** The serving model's version, when there is one; `championIncompatible` when it was built for another configuration. */
  championVersion: string | null;
  championIncompatible?: boolean;
}): PromotionDecision {
  const { methods } = input.evaluation;
  const challenger = methods.model;
  const champion = input.championVersion !== null && !input.championIncompatible ? (methods.champion ?? null) : null;
  const persistence = methods.persistence;
  const baseline = bestBaseline(methods);
  if (!challenger || !persistence) {
    return {
      promoted: false,
      servingVersion: input.championIncompatible ? null : input.championVersion,
      servedBy: input.championVersion && !input.championIncompatible ? 'model' : (baseline?.method ?? 'persistence'),
      modelBeatsPersistence: false,
      bestBaseline: baseline,
      reason: 'no held-out windows to compare on: the serving model is kept',
    };
  }
  const beatsPersistence = challenger.mae < persistence.mae;
  const beatsChampion = champion === null || challenger.mae < champion.mae;
  const promoted = beatsPersistence && beatsChampion;
  let reason: string;
  if (promoted) {
    reason = champion
      ? `MAE ${fmt(challenger.mae)} beats the serving model ${input.championVersion} (${fmt(champion.mae)}) and persistence (${fmt(persistence.mae)})`
      : `MAE ${fmt(challenger.mae)} beats persistence (${fmt(persistence.mae)})` +
        (input.championIncompatible ? `; the serving model ${input.championVersion} was built for another configuration` : '');
  } else if (!beatsPersistence) {
    reason = `MAE ${fmt(challenger.mae)} does not beat persistence (${fmt(persistence.mae)})`;
  } else {
    reason = `MAE ${fmt(challenger.mae)} does not beat the serving model ${input.championVersion} (${fmt(champion!.mae)})`;
  }
  const servingVersion = promoted ? input.challengerVersion : champion ? input.championVersion : null;
  const servingMae = promoted ? challenger.mae : (champion?.mae ?? Infinity);
  const modelBeatsPersistence = servingVersion !== null && servingMae < persistence.mae;
  const servedBy: ServedBy = modelBeatsPersistence ? 'model' : (baseline?.method ?? 'persistence');
  if (!promoted && !modelBeatsPersistence) {
    reason += champion ? `; the serving model (${fmt(champion.mae)}) does not beat it either` : '';
    reason += `: ${servedBy.replace('_', ' ')} serves`;
  }
  return { promoted, servingVersion, servedBy, modelBeatsPersistence, bestBaseline: baseline, reason };
}

export interface HistoryNeed {
  /** Grid intervals of history there are (from the first reading to the last closed bucket). */
  haveIntervals: number;
  needIntervals: number;
}

/**
 * Readiness of one forecast from what is known about it:
 * - warming_up: no training has produced an evaluation yet (not enough history, or the first training is pending);
 * - degraded: no model beats persistence (a baseline serves), or the last training failed;
 * - ready: a model that beat persistence on the newest held-out windows serves.
 */
export function readinessOf(input: {
  hasEvaluation: boolean;
  servedBy: ServedBy | null;
  lastTrainingFailure: string | null;
  notEnoughHistory: boolean;
}): { readiness: Readiness; reason: string } {
  if (!input.hasEvaluation && (input.notEnoughHistory || input.lastTrainingFailure === null)) {
    return {
      readiness: 'warming_up',
      reason: input.notEnoughHistory ? 'not enough history to train yet' : 'the first training has not finished yet',
    };
  }
  if (input.lastTrainingFailure !== null && !input.notEnoughHistory) {
    return { readiness: 'degraded', reason: `the last training failed: ${input.lastTrainingFailure}` };
  }
  if (input.servedBy !== 'model') {
    return {
      readiness: 'degraded',
      reason: `no model beats persistence on the newest held-out windows: ${(input.servedBy ?? 'persistence').replace('_', ' ')} serves`,
    };
  }
  return { readiness: 'ready', reason: 'the model beats persistence on the newest held-out windows' };
}
