/** Fused LSTM for the wasm and cpu backends: see fusedLstm.ts. */
export {
  fusedLstmClass,
  fusedLstmLayer,
  LSTM_IMPLEMENTATIONS,
  useFusedLstm,
  withFusedLstm,
  type FusedLstmClass,
  type FusedLstmLayer,
  type LstmImplementation,
} from './fusedLstm.js';
