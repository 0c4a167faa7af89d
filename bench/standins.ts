// The stand-ins the pipeline-driven benches call, in a process of their own: the OpenAI images API (instant answers)
// and an image host serving the two inputs. In production both are other machines; served from the process being
// measured, their request handling (multipart parsing, image writes) would load its event loop and skew its figures.
//
// The child runs bench/standinsMain.ts: it prints one JSON line {"openaiBaseUrl": …, "urls": [model, outfit]} once
// listening, and exits when its stdin closes (so also when this process dies).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface Standins {
  openaiBaseUrl: string;
  /** the model photo's URL, then the outfit's */
  urls: [string, string];
  stop(): Promise<void>;
}

/** Starts the stand-ins in a child process; inputs are two 2-megapixel photographs, or small 640x800 noise images. */
export async function startStandinsProcess(inputs: '2mp' | 'small'): Promise<Standins> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../bin/run-ts.mjs', import.meta.url)), fileURLToPath(new URL('./standinsMain.ts', import.meta.url)), ...(inputs === '2mp' ? ['--2mp'] : [])], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    child.stdin.end();
    await exited;
  };
  const line = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`bench stand-ins exited with ${code} before listening`)));
  });
  const { openaiBaseUrl, urls } = JSON.parse(line) as { openaiBaseUrl: string; urls: [string, string] };
  return { openaiBaseUrl, urls, stop };
}
