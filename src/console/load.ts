// The console's entry module, loaded with React's production build unless NODE_ENV says
// otherwise. Without NODE_ENV, react and react-reconciler load their development builds,
// which check and track every render: about a third more CPU per frame in the console
// (bench/key-latency), and a key press waits behind those frames while a drill runs. React
// picks its build when it is first evaluated, so NODE_ENV is set before start.tsx (and with
// it react and ink) is imported; a static import in start.tsx could not do it, TypeScript
// puts react/jsx-runtime's import above every other. Tests keep the NODE_ENV vitest sets.
export async function loadConsole(): Promise<typeof import('./start.js')> {
  process.env.NODE_ENV ??= 'production';
  return import('./start.js');
}
