import pino, { type Logger } from 'pino';

export type { Logger };

/** The root logger: JSON lines on stdout, one child per component (`log.child({ component })`). */
export function createLogger(level: string, destination: pino.DestinationStream | number = 1): Logger {
  return pino({ level, base: { service: 'forecastd' } }, typeof destination === 'number' ? pino.destination(destination) : destination);
}
