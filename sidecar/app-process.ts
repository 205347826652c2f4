// Running the app under the sidecar: started only once the sidecar is ready, signals passed on, and the
// sidecar's exit status is the app's, so jobs finish and apps never start before their proxy.

import type { ChildProcess } from 'node:child_process';

export interface AppProcess {
  readonly child: ChildProcess;
  /** resolves with the exit status to use: the app's code, or 128 + signal number */
  readonly exited: Promise<number>;
}

export function startApp(command: readonly string[], env: NodeJS.ProcessEnv): AppProcess {
  // Loaded here, not imported: only a sidecar started with `-- app` needs node:child_process (and dgram, which
  // it pulls in).
  const { spawn } = process.getBuiltinModule('node:child_process');
  const child = spawn(command[0]!, command.slice(1), { stdio: 'inherit', env });
  const exited = new Promise<number>((resolve) => {
    child.once('error', (err) => {
      process.stderr.write(`weft sidecar: cannot start the app ${JSON.stringify(command[0])}: ${err.message}\n`);
      resolve(127);
    });
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? (process.getBuiltinModule('node:os').constants.signals[signal] ?? 0) : 0)));
  });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const) {
    process.on(sig, () => child.kill(sig));
  }
  return { child, exited };
}
