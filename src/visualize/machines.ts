import type { AnyStateMachine } from 'xstate';
import { sessionMachine } from '../../machines/session.ts';
import { onboardingMachine } from '../../machines/onboarding.ts';
import { connectionMachine } from '../../machines/connection.ts';

/** Baton's machines, by the file name their diagrams get. */
export const batonMachines: Readonly<Record<string, AnyStateMachine>> = {
  session: sessionMachine,
  onboarding: onboardingMachine,
  connection: connectionMachine,
};
