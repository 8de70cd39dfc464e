import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/backend/select-backend.js';
import { nativeBackendStatus } from '../../src/backend/native/native-backend.js';

/** Backends the model tests run on: cpu (the reference), wasm, and native where it is built. */
export function testBackends(): string[] {
  const list = ['cpu', 'wasm'];
  if (nativeBackendStatus().available) list.push('native');
  return list;
}

export async function use(name: string): Promise<void> {
  await selectBackend(name as 'cpu');
  if (tf.getBackend() !== name) throw new Error(`could not activate ${name}`);
}
